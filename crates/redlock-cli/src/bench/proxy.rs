//! A delaying TCP proxy: makes one real master slow (or every master
//! distant) without touching it.
//!
//! One file, two users: `redlock bench` (its slowed-master scenario) and
//! the `redlock-benches` crate, which compiles this same file with
//! `#[path]`. The file lives here because this crate is published and a
//! published crate cannot reach outside its own directory, while the
//! benches crate (`publish = false`) can; a crate dependency either way
//! would not do (the CLI cannot depend on a `publish = false` crate, and
//! it has no library for the benches to depend on). Hence `std` only and
//! `pub(crate)` items, so it builds warning-free in both.
//!
//! Every chunk read from either side is forwarded `one_way` later, in
//! order. Chunks are delayed independently (a reader thread stamps each
//! chunk with its due time and a writer thread sleeps until then), so
//! pipelined commands are each delayed by `one_way` rather than queueing
//! behind each other's delays: the proxy adds latency, not a throughput
//! limit.
//!
//! It runs on plain OS threads, outside the benchmark's tokio runtime, so
//! it does not compete with the client for the runtime's workers (it still
//! shares the machine's cores, as a remote master would not), and its delay
//! has the precision of `std::thread::sleep` (tens of microseconds on
//! Linux) rather than the 1 ms granularity of tokio's timer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A running proxy on `127.0.0.1:<random port>` in front of one server.
///
/// Dropping it stops the listener and closes every forwarded connection.
#[derive(Debug)]
pub(crate) struct DelayProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Both ends of every forwarded connection, to close them on drop
    /// (which ends the threads blocked reading them).
    streams: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards each accepted
    /// connection to `target`, delaying every chunk by `one_way` in each
    /// direction.
    ///
    /// # Errors
    ///
    /// When the listening socket cannot be bound or the thread not spawned.
    pub(crate) fn start(target: SocketAddr, one_way: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let stop = Arc::clone(&stop);
            let streams = Arc::clone(&streams);
            thread::Builder::new()
                .name(format!("delay-proxy-{}", addr.port()))
                .spawn(move || accept_loop(&listener, target, one_way, &stop, &streams))?
        };
        Ok(Self {
            addr,
            stop,
            streams,
            acceptor: Some(acceptor),
        })
    }

    /// The address clients should connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept so it sees the flag.
        let woken = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok();
        for s in lock(&self.streams).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.acceptor.take() {
            // Joining an acceptor that was not woken would block forever;
            // leave it to end with the process instead.
            if woken {
                let _ = t.join();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned list of sockets is still a list of sockets.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(
    listener: &TcpListener,
    target: SocketAddr,
    one_way: Duration,
    stop: &AtomicBool,
    streams: &Mutex<Vec<TcpStream>>,
) {
    for client in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(target) else {
            continue;
        };
        // Without nodelay, Nagle would add its own (much larger) delay to
        // the small RESP frames and the proxy would not add what it claims.
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let clones = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        );
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = clones else {
            continue;
        };
        lock(streams).extend([c3, s3]);
        pump(client, s2, one_way);
        pump(server, c2, one_way);
    }
}

/// Copies `from` to `to` on two threads, each chunk `delay` after it was
/// read. Ends when `from` ends (EOF, error, or shutdown by the proxy's
/// drop); the writer then flushes what was read and ends too.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    // Unbounded: the amount in flight is what the peer sends in `delay`,
    // a few small commands for a lock client.
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let _ = thread::Builder::new()
        .name("delay-proxy-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx
                            .send((Instant::now() + delay, buf[..n].to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
    let _ = thread::Builder::new()
        .name("delay-proxy-write".into())
        .spawn(move || {
            while let Ok((due, chunk)) = rx.recv() {
                let now = Instant::now();
                if due > now {
                    thread::sleep(due - now);
                }
                if to.write_all(&chunk).is_err() {
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
            }
            // The reader ended: pass the end of stream on.
            let _ = to.shutdown(Shutdown::Write);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server behind the proxy: a round trip takes at least twice
    /// the one-way delay, and bytes arrive intact and in order.
    #[test]
    fn delays_both_directions_and_keeps_order() {
        let echo = TcpListener::bind("127.0.0.1:0").expect("bind echo");
        let echo_addr = echo.local_addr().expect("echo addr");
        thread::spawn(move || {
            let (mut s, _) = echo.accept().expect("accept");
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let one_way = Duration::from_millis(20);
        let proxy = DelayProxy::start(echo_addr, one_way).expect("proxy");
        let mut c = TcpStream::connect(proxy.addr()).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let t = Instant::now();
        c.write_all(b"hello ").expect("write");
        c.write_all(b"world").expect("write");
        let mut got = vec![0u8; 11];
        c.read_exact(&mut got).expect("read");
        let rtt = t.elapsed();
        assert_eq!(&got, b"hello world");
        assert!(
            rtt >= 2 * one_way,
            "round trip {rtt:?} below 2 x {one_way:?}"
        );
        assert!(
            rtt < 2 * one_way + Duration::from_secs(1),
            "round trip {rtt:?}"
        );
        drop(proxy);
        // After drop, the forwarded connection is closed.
        let mut rest = [0u8; 1];
        assert!(matches!(c.read(&mut rest), Ok(0) | Err(_)));
    }
}
