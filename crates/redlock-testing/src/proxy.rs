//! A TCP proxy for fault injection between clients and one Redis master.
//!
//! It listens on `127.0.0.1:0` and forwards every accepted connection to
//! the upstream address, on one OS thread of its own (named
//! `proxy-<port>`) running a single-threaded tokio runtime, outside any
//! async runtime of the system under test. One thread, one event loop:
//! it costs the machine far less CPU than a thread per direction and
//! connection did (about 180 µs per lock cycle through one slowed master
//! of five, 40% of the client's own CPU, on the 2-core machines the
//! benchmarks run on), and that CPU is taken from the client being
//! measured. Its [`Mode`] can be switched at any time and applies to all
//! connections:
//!
//! * [`Mode::Pass`] forwards at once;
//! * [`Mode::Delay`] forwards every chunk a fixed time after it was read (a
//!   slow or distant link). Chunks are delayed independently (a reader
//!   stamps each one, a writer sleeps until it is due), so pipelined
//!   commands are each delayed once rather than queueing behind each
//!   other's delays: the proxy adds latency, not a throughput limit,
//!   never less than the delay. Due times are rounded up to a grid of
//!   `d / 20`, at most 1 ms, shared by every proxy of the process, so that
//!   chunks due close together cost one timer expiry; on Linux they are
//!   met to the microsecond (a `timerfd` per direction; elsewhere tokio's
//!   timer, within about a millisecond). While chunks keep coming less
//!   than two steps of that grid apart, Linux readers stop being woken by
//!   each arrival and read what came at each step instead (a chunk then
//!   counts as read at that step, after it came): a chunk is forwarded
//!   `d` to `d` plus two steps after it reached the proxy, and a busy
//!   connection wakes the proxy's thread about once a step, not twice a
//!   lock cycle. `redlock bench` and the benchmarks slow a master this
//!   way;
//! * [`Mode::Blackhole`] stops forwarding without closing anything (a
//!   partition); what was held is delivered, in order, when the mode
//!   changes back, as TCP would after a short partition heals;
//! * [`Mode::Refuse`] closes new connections as soon as they are accepted.
//!
//! [`Proxy::reset_all`] closes every open connection (a cut link).
//!
//! [`Proxy::set_upstream`] points new connections at another server (a
//! misrouted DNS name or load balancer); open ones keep their server until
//! they are reset.
//!
//! [`Proxy::fault_on`] arms a [`Fault`] on the first client chunk that
//! contains a byte pattern (a RESP-encoded command, say), on any
//! connection, until [`Proxy::clear_fault`]: the connection is cut, or
//! frozen (nothing more is forwarded, nothing is closed). The TCP
//! connection and the commands before the pattern pass, so a client's
//! handshake succeeds and the fault hits one chosen command.
//!
//! It never drops or reorders bytes inside a connection that stays open:
//! a real network cannot do that to a TCP stream, and a client that got
//! the reply of one command for another would be a fault of the test, not
//! of the system under test.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use crate::spawn::lock;

/// How the proxy treats traffic; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Forward every chunk this long after it was read (rounded up to a
    /// grid of at most 5% of it and 1 ms, and read at a step of that grid
    /// while chunks come often: up to two steps more; see the module
    /// docs).
    Delay(Duration),
    /// Forward nothing, close nothing.
    Blackhole,
    /// Close new connections at once.
    Refuse,
}

/// What [`Proxy::fault_on`] does to a connection whose client sends the
/// pattern. The chunk holding the pattern is not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection at once (both sides see the stream end).
    Reset,
    /// Forward nothing more from the client, close nothing: the command is
    /// never answered. [`Proxy::clear_fault`] closes frozen connections,
    /// as the reply they wait for can never come.
    Freeze,
}

/// An armed [`Fault`].
struct Trigger {
    pattern: Vec<u8>,
    fault: Fault,
}

/// One proxied connection: both sockets (duplicates of the descriptors
/// its tasks use), to close them from any thread, at once.
struct Conn {
    id: u64,
    client: TcpStream,
    upstream: TcpStream,
    dead: Arc<AtomicBool>,
}

impl Conn {
    /// Marks the connection dead and shuts both sockets, which ends its
    /// tasks.
    fn close(&self) {
        self.dead.store(true, Ordering::Release);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

/// What the proxy's handle, its accept loop and its pump threads share.
struct Inner {
    upstream: Mutex<SocketAddr>,
    mode: Mutex<Mode>,
    trigger: Mutex<Option<Trigger>>,
    /// Ids of connections frozen by [`Fault::Freeze`].
    frozen: Mutex<Vec<u64>>,
    /// How many times an armed fault hit a connection.
    faults: AtomicU64,
    conns: Mutex<Vec<Conn>>,
    next_id: AtomicU64,
    stop: AtomicBool,
    accepted: AtomicU64,
    /// Chunks read, both directions, every connection.
    reads: AtomicU64,
}

impl Inner {
    /// The current mode; each chunk reads it again, so a change applies to
    /// connections already open.
    fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    /// Where new connections go (the server can be switched at run time).
    fn upstream(&self) -> SocketAddr {
        *lock(&self.upstream)
    }
}

/// A running proxy. Dropping it stops accepting and closes every
/// connection.
pub struct Proxy {
    inner: Arc<Inner>,
    addr: SocketAddr,
    /// Dropped (or sent) to stop the accept loop, which ends the thread.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.inner.upstream())
            .field("mode", &self.inner.mode())
            .finish()
    }
}

/// How often a held chunk (blackhole) or a frozen connection looks at
/// the mode again, and how long a failing accept waits before the next.
const POLL: Duration = Duration::from_millis(2);

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port, in
    /// [`Mode::Pass`].
    ///
    /// # Errors
    ///
    /// Binding or configuring the listener failed.
    pub fn start(upstream: SocketAddr) -> io::Result<Self> {
        Self::start_with_mode(upstream, Mode::Pass)
    }

    /// Starts a proxy to `upstream` on a free loopback port, in `mode` from
    /// its first connection on (`Mode::Delay(one_way)` for a slowed master).
    ///
    /// # Errors
    ///
    /// Binding or configuring the listener failed.
    pub fn start_with_mode(upstream: SocketAddr, mode: Mode) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            upstream: Mutex::new(upstream),
            mode: Mutex::new(mode),
            trigger: Mutex::new(None),
            frozen: Mutex::new(Vec::new()),
            faults: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = {
            let inner = Arc::clone(&inner);
            thread::Builder::new()
                .name(format!("proxy-{}", addr.port()))
                .spawn(move || {
                    runtime.block_on(accept_loop(listener, inner, stopped));
                    // Dropping the runtime here drops every connection's
                    // tasks; `Drop for Proxy` closes their sockets.
                })?
        };
        Ok(Self {
            inner,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://` URL of [`addr`](Self::addr).
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Switches the mode for all connections, open and future.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.inner.mode) = mode;
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode()
    }

    /// Closes every open connection (both sides see the stream end).
    /// Returns how many were open.
    pub fn reset_all(&self) -> usize {
        let conns = std::mem::take(&mut *lock(&self.inner.conns));
        for c in &conns {
            c.close();
        }
        conns.len()
    }

    /// Points connections opened from now on at `upstream`. Open
    /// connections keep their server: [`reset_all`](Self::reset_all) to
    /// move them too.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.inner.upstream) = upstream;
    }

    /// Where new connections go.
    pub fn upstream(&self) -> SocketAddr {
        self.inner.upstream()
    }

    /// Arms `fault` for every client chunk, on any connection open or
    /// future, that contains `pattern` (also across two chunks), until
    /// [`clear_fault`](Self::clear_fault). Replaces an armed fault.
    ///
    /// # Panics
    ///
    /// If `pattern` is empty.
    pub fn fault_on(&self, pattern: &[u8], fault: Fault) {
        assert!(!pattern.is_empty(), "an empty pattern would match anything");
        *lock(&self.inner.trigger) = Some(Trigger {
            pattern: pattern.to_vec(),
            fault,
        });
    }

    /// Disarms the fault, and closes the connections it froze. Returns how
    /// many it closed.
    pub fn clear_fault(&self) -> usize {
        *lock(&self.inner.trigger) = None;
        let frozen = std::mem::take(&mut *lock(&self.inner.frozen));
        for id in &frozen {
            close_conn(&self.inner, *id);
        }
        frozen.len()
    }

    /// How many times an armed fault hit a connection so far.
    pub fn faults_triggered(&self) -> u64 {
        self.inner.faults.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        lock(&self.inner.conns).len()
    }

    /// Connections accepted so far (including refused ones).
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    /// Chunks read so far from both sides of every connection: each is a
    /// wake-up of the proxy's thread, unless it was read at a step of
    /// the grid with others (see the module docs).
    pub fn chunks_read(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.reset_all();
    }
}

/// Accepts connections until the proxy stops; in `Mode::Refuse` each is
/// closed at once, otherwise it is opened in a task of its own.
async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, mut stopped: oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            // Sent or dropped: the proxy stops.
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                inner.accepted.fetch_add(1, Ordering::Relaxed);
                if inner.mode() == Mode::Refuse {
                    if let Ok(client) = client.into_std() {
                        let _ = client.shutdown(Shutdown::Both);
                    }
                    continue;
                }
                // Connecting can take a while when upstream is paused
                // (backlog) or gone (refused at once): not in this loop.
                tokio::spawn(open(client, Arc::clone(&inner)));
            }
            // Out of descriptors, say: try again shortly.
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// `stream` and a duplicate of its socket as a std stream, to shut it
/// down from another thread (see [`Conn`]).
fn with_duplicate(stream: tokio::net::TcpStream) -> io::Result<(tokio::net::TcpStream, TcpStream)> {
    let stream = stream.into_std()?;
    let duplicate = stream.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(stream)?, duplicate))
}

/// Connects one accepted client to the upstream server and starts the
/// tasks of both directions; a client whose upstream cannot be reached
/// within a second is closed.
async fn open(client: tokio::net::TcpStream, inner: Arc<Inner>) {
    let connect = tokio::net::TcpStream::connect(inner.upstream());
    let Ok(Ok(upstream)) = tokio::time::timeout(Duration::from_secs(1), connect).await else {
        if let Ok(client) = client.into_std() {
            let _ = client.shutdown(Shutdown::Both);
        }
        return;
    };
    let setup = || -> io::Result<_> {
        client.set_nodelay(true)?;
        upstream.set_nodelay(true)?;
        Ok((with_duplicate(client)?, with_duplicate(upstream)?))
    };
    let Ok(((client, c_reg), (upstream, u_reg))) = setup() else {
        // The sockets were dropped, so closed.
        return;
    };
    let dead = Arc::new(AtomicBool::new(false));
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut conns = lock(&inner.conns);
        // A reset or a refusal that came while we were connecting applies
        // to this connection too.
        if inner.stop.load(Ordering::Acquire) || inner.mode() == Mode::Refuse {
            let _ = c_reg.shutdown(Shutdown::Both);
            let _ = u_reg.shutdown(Shutdown::Both);
            return;
        }
        conns.push(Conn {
            id,
            client: c_reg,
            upstream: u_reg,
            dead: Arc::clone(&dead),
        });
    }
    let (c_read, c_write) = client.into_split();
    let (u_read, u_write) = upstream.into_split();
    pump(c_read, u_write, &inner, &dead, id, true);
    pump(u_read, c_write, &inner, &dead, id, false);
}

/// What an armed fault says about a client chunk.
enum Hit {
    None,
    Fault(Fault),
}

/// Checks `chunk` (after `tail`, the end of the previous chunks) against
/// the armed fault, and keeps the new tail.
fn check_fault(inner: &Inner, tail: &mut Vec<u8>, chunk: &[u8]) -> Hit {
    let trigger = lock(&inner.trigger);
    let Some(t) = trigger.as_ref() else {
        tail.clear();
        return Hit::None;
    };
    tail.extend_from_slice(chunk);
    let hit = tail.windows(t.pattern.len()).any(|w| w == t.pattern);
    // Keep just enough to match a pattern split across two chunks.
    let keep = t.pattern.len() - 1;
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
    if hit {
        inner.faults.fetch_add(1, Ordering::Relaxed);
        Hit::Fault(t.fault)
    } else {
        Hit::None
    }
}

/// Copies `from` to `to` in the proxy's current mode until either side
/// ends, then closes the whole connection. `from_client`: this is the
/// client-to-server direction, where armed faults look for their pattern.
///
/// A reader task reads and stamps each chunk with the time it was read; a
/// writer task forwards it when the mode lets it (see [`forward`]).
fn pump(
    from: OwnedReadHalf,
    to: OwnedWriteHalf,
    inner: &Arc<Inner>,
    dead: &Arc<AtomicBool>,
    id: u64,
    from_client: bool,
) {
    // Unbounded: what is in flight is what the peer sends during a delay
    // or a blackhole, a few small commands for a lock client.
    let (tx, rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(forward(rx, to, Arc::clone(inner), Arc::clone(dead), id));
    tokio::spawn(read(
        from,
        tx,
        Arc::clone(inner),
        Arc::clone(dead),
        id,
        from_client,
    ));
}

/// The reader of one direction (see [`pump`]).
async fn read(
    from: OwnedReadHalf,
    tx: mpsc::UnboundedSender<(Instant, Vec<u8>)>,
    inner: Arc<Inner>,
    dead: Arc<AtomicBool>,
    id: u64,
    from_client: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut tail = Vec::new();
    let mut reader = Reader::new(from);
    loop {
        let (n, read_at) = match reader.next(&mut buf, &inner).await {
            Ok((0, _)) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        inner.reads.fetch_add(1, Ordering::Relaxed);
        if from_client {
            match check_fault(&inner, &mut tail, &buf[..n]) {
                Hit::None => {}
                Hit::Fault(Fault::Reset) => break,
                Hit::Fault(Fault::Freeze) => {
                    lock(&inner.frozen).push(id);
                    // Until something closes the connection: forward nothing.
                    while !dead.load(Ordering::Acquire) {
                        tokio::time::sleep(POLL).await;
                    }
                    break;
                }
            }
        }
        if tx.send((read_at, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    // The writer forwards what was read before this point, then closes
    // the connection (it sees the channel end).
}

/// Reads one direction's chunks, each with the time it counts as read.
///
/// A chunk is read as soon as it arrives, except in a busy `Delay(d)`
/// (Linux only): when a chunk comes less than two steps of the grid of
/// [`due`] after the previous one, the reader stops being woken by
/// arrivals (`SO_RCVLOWAT` above what a step brings, so the kernel does
/// not signal the socket) and reads what came at each step of the grid
/// instead, until [`QUIET_STEPS`] steps in a row find nothing. Each
/// arrival used to wake the proxy's thread: through a master slowed by
/// 20 ms, two wake-ups per lock cycle, most of the proxy's CPU, taken
/// from the client being measured. A chunk read at a step counts as read
/// then, after it came, so it is still delayed at least `d` (and at most
/// two steps more).
struct Reader {
    from: OwnedReadHalf,
    /// When the last chunk was read.
    last: Option<Instant>,
    #[cfg(target_os = "linux")]
    batch: Batch,
}

/// A reader's state between steps of the grid (see [`Reader`]).
#[cfg(target_os = "linux")]
#[derive(Default)]
struct Batch {
    /// Reading at each step, not at each arrival.
    on: bool,
    /// The last read filled the buffer: read again without waiting.
    more: bool,
    /// Steps in a row that found nothing.
    empty: u32,
    timer: Timer,
}

/// `SO_RCVLOWAT` while a reader reads at each step of the grid: more
/// than a step of lock traffic brings (a few hundred bytes), and well
/// under half the default receive buffer, so that Linux neither grows
/// the buffer nor clamps the window for it.
#[cfg(target_os = "linux")]
const BATCH_LOWAT: i32 = 16 * 1024;

/// Steps in a row that find nothing before a reader goes back to waking
/// at arrivals.
#[cfg(target_os = "linux")]
const QUIET_STEPS: u32 = 2;

impl Reader {
    fn new(from: OwnedReadHalf) -> Self {
        Self {
            from,
            last: None,
            #[cfg(target_os = "linux")]
            batch: Batch::default(),
        }
    }

    /// The next chunk's length (0: the stream ended) and when it counts
    /// as read.
    async fn next(&mut self, buf: &mut [u8], inner: &Inner) -> io::Result<(usize, Instant)> {
        let step = match inner.mode() {
            Mode::Delay(d) => grid_step(d),
            _ => Duration::ZERO,
        };
        #[cfg(target_os = "linux")]
        if let Some(chunk) = self.next_on_grid(buf, step).await? {
            return Ok(chunk);
        }
        let n = self.from.read(buf).await?;
        let now = Instant::now();
        let previous = self.last.replace(now);
        #[cfg(target_os = "linux")]
        if n > 0 && !step.is_zero() && previous.is_some_and(|p| now - p < 2 * step) {
            self.batch_on(true)?;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (previous, step);
        Ok((n, now))
    }

    /// While batching: waits for the next step of the grid and reads what
    /// came. `None` when not batching, or no longer (the mode changed, or
    /// the connection went quiet): the caller waits for the next arrival.
    #[cfg(target_os = "linux")]
    async fn next_on_grid(
        &mut self,
        buf: &mut [u8],
        step: Duration,
    ) -> io::Result<Option<(usize, Instant)>> {
        while self.batch.on {
            if step.is_zero() {
                self.batch_on(false)?;
                break;
            }
            if !self.batch.more {
                self.batch.timer.until(on_grid(Instant::now(), step)).await;
            }
            match rustix::net::recv(
                self.from.as_ref(),
                &mut *buf,
                rustix::net::RecvFlags::DONTWAIT,
            ) {
                Ok((n, _)) => {
                    let now = Instant::now();
                    self.last = Some(now);
                    self.batch.more = n == buf.len();
                    self.batch.empty = 0;
                    return Ok(Some((n, now)));
                }
                // Quiet: back to waking on arrivals. Setting the low
                // mark back signals the socket if something came
                // meanwhile, so nothing waits for a wake-up that never
                // comes.
                Err(rustix::io::Errno::AGAIN) => {
                    self.batch.empty += 1;
                    if self.batch.empty >= QUIET_STEPS {
                        self.batch_on(false)?;
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Starts or stops reading at each step of the grid.
    #[cfg(target_os = "linux")]
    fn batch_on(&mut self, on: bool) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let lowat: libc::c_int = if on { BATCH_LOWAT } else { 1 };
        let len = libc::socklen_t::try_from(size_of::<libc::c_int>())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `setsockopt` reads `len` bytes at the pointer, which
        // points to a live `c_int` of exactly that size; the descriptor
        // is this reader's socket, open as long as `self.from` is.
        // (No safe wrapper exposes `SO_RCVLOWAT`: neither rustix nor
        // socket2.)
        #[allow(unsafe_code)]
        let done = unsafe {
            libc::setsockopt(
                self.from.as_ref().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_ref(&lowat).cast(),
                len,
            )
        };
        if done != 0 {
            return Err(io::Error::last_os_error());
        }
        self.batch.on = on;
        self.batch.empty = 0;
        Ok(())
    }
}

/// The writer of one direction: forwards each chunk once the mode lets it
/// (held while blackholed, `d` after it was read in `Delay(d)`), then
/// closes the whole connection when the reader ended or a write failed.
async fn forward(
    mut rx: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    mut to: OwnedWriteHalf,
    inner: Arc<Inner>,
    dead: Arc<AtomicBool>,
    id: u64,
) {
    let mut timer = Timer::default();
    // A chunk taken from the channel that was not due yet.
    let mut next: Option<(Instant, Vec<u8>)> = None;
    loop {
        let (read_at, mut chunk) = match next.take() {
            Some(c) => c,
            None => match rx.recv().await {
                Some(c) => c,
                None => break,
            },
        };
        // Hold the chunk while blackholed; deliver it afterwards. A chunk
        // held back counts as read when the partition heals, so a delay
        // still applies to it in full.
        let mut ready_at = read_at;
        let mode = loop {
            if dead.load(Ordering::Acquire) {
                break None;
            }
            match inner.mode() {
                Mode::Blackhole => {
                    tokio::time::sleep(POLL).await;
                    ready_at = Instant::now();
                }
                m => break Some(m),
            }
        };
        let Some(mode) = mode else { break };
        let d = match mode {
            Mode::Delay(d) => d,
            _ => Duration::ZERO,
        };
        timer.until(due(ready_at, d)).await;
        // What else is due by now goes out in the same write: one system
        // call for the chunks one grid step released together.
        let now = Instant::now();
        while let Ok((at, more)) = rx.try_recv() {
            if due(at, d) <= now {
                chunk.extend_from_slice(&more);
            } else {
                next = Some((at, more));
                break;
            }
        }
        if dead.load(Ordering::Acquire) || to.write_all(&chunk).await.is_err() {
            break;
        }
    }
    close_conn(&inner, id);
    dead.store(true, Ordering::Release);
}

/// When a chunk read at `read_at` is forwarded in `Delay(d)`: `d` later,
/// rounded up to a grid shared by every proxy of the process, of
/// `d / 20` but at most 1 ms (so at most 5% and 1 ms more than `d`).
/// Chunks due within one step of the grid then wake the proxy's thread
/// once: each expiry of a timer is an interrupt, charged on these
/// machines (no IRQ time accounting) to whichever thread it lands on,
/// the measured client's often. Through a master slowed by 20 ms that
/// halved the proxy's timer expiries (`docs/benchmarks.md`).
fn due(read_at: Instant, d: Duration) -> Instant {
    let exact = read_at.checked_add(d).unwrap_or(read_at);
    on_grid(exact, grid_step(d))
}

/// The step of the grid of [`due`] in `Delay(d)`: `d / 20`, at most 1 ms.
fn grid_step(d: Duration) -> Duration {
    (d / 20).min(Duration::from_millis(1))
}

/// The first point of the grid of `step` at or after `at`.
fn on_grid(at: Instant, step: Duration) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let step = step.as_nanos();
    if step == 0 {
        return at;
    }
    let epoch = *EPOCH.get_or_init(Instant::now);
    let since = at.saturating_duration_since(epoch).as_nanos();
    let rounded = since.div_ceil(step).saturating_mul(step);
    // Before the epoch (a chunk read before the first delay began), or
    // beyond what a `Duration` holds: `at` itself.
    match u64::try_from(rounded) {
        Ok(ns) if at >= epoch => epoch + Duration::from_nanos(ns),
        _ => at,
    }
}

/// Waits for a chunk's due time in the proxy's event loop, to the
/// microsecond: tokio's own timers tick in whole milliseconds and round a
/// sleep up, so a 250 µs delay (the benchmarks' simulated network) would
/// become 1 ms, and a due time already past would still cost a tick.
/// On Linux a `timerfd` (made at the first wait) wakes the loop; where
/// that is not available, tokio's timer does, within a millisecond.
#[derive(Default)]
struct Timer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Timer {
    /// Returns at `due` or later (at once if it is past).
    async fn until(&mut self, due: Instant) {
        loop {
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            #[cfg(target_os = "linux")]
            if self.wait_fd(left).await.is_ok() {
                continue;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    }

    /// One expiry of the timerfd, `left` from now.
    #[cfg(target_os = "linux")]
    async fn wait_fd(&mut self, left: Duration) -> io::Result<()> {
        use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
        let fd = match &mut self.fd {
            Some(fd) => fd,
            none => {
                let timer = rustix::time::timerfd_create(
                    TimerfdClockId::Monotonic,
                    TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
                )?;
                // SAFETY: `register` asks that the descriptor stay open and
                // the same for the `AsyncFd`'s lifetime. An `OwnedFd` owns
                // it: it is closed only when the `AsyncFd` drops it, and
                // `as_raw_fd` always returns it. (`AsyncFd::new`, the safe
                // constructor, is deprecated for types that cannot promise
                // that.)
                #[allow(unsafe_code)]
                let registered = unsafe { tokio::io::unix::AsyncFd::register(timer) };
                none.insert(registered?)
            }
        };
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let value = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: left.subsec_nanos().into(),
        };
        rustix::time::timerfd_settime(
            fd.get_ref(),
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: zero,
                it_value: value,
            },
        )?;
        let mut ready = fd.readable().await?;
        let mut expirations = [0u8; 8];
        // Expired (the count is read, so the timer is quiet again), or a
        // stale readiness (`EAGAIN`): either way the caller checks the time.
        let read = rustix::io::read(ready.get_inner(), &mut expirations);
        ready.clear_ready();
        match read {
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Closes and forgets connection `id`.
fn close_conn(inner: &Inner, id: u64) {
    let mut conns = lock(&inner.conns);
    if let Some(i) = conns.iter().position(|c| c.id == id) {
        conns.swap_remove(i).close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    /// An echo server on a free port; returns its address.
    fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut r = s.try_clone().expect("clone");
                    let mut w = s;
                    let _ = io::copy(&mut r, &mut w);
                });
            }
        });
        addr
    }

    fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
        s.write_all(msg)?;
        let mut out = vec![0u8; msg.len()];
        s.read_exact(&mut out)?;
        Ok(out)
    }

    fn client(p: &Proxy) -> TcpStream {
        let s = TcpStream::connect(p.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s
    }

    #[test]
    fn modes_behave() {
        let p = Proxy::start(echo()).expect("proxy");
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"hello").expect("pass"), b"hello");

        p.set_mode(Mode::Delay(Duration::from_millis(100)));
        let t = Instant::now();
        assert_eq!(roundtrip(&mut s, b"slow").expect("delay"), b"slow");
        // Delayed once each way.
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );

        p.set_mode(Mode::Blackhole);
        s.write_all(b"held").expect("write");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut b = [0u8; 4];
        assert!(s.read_exact(&mut b).is_err(), "blackhole forwarded");
        p.set_mode(Mode::Pass);
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s.read_exact(&mut b)
            .expect("held data delivered after the heal");
        assert_eq!(&b, b"held");

        assert_eq!(p.reset_all(), 1);
        let mut rest = Vec::new();
        // The stream ends (EOF or reset).
        assert!(matches!(s.read_to_end(&mut rest), Ok(0) | Err(_)));

        p.set_mode(Mode::Refuse);
        let mut s = client(&p);
        assert!(
            roundtrip(&mut s, b"x").is_err(),
            "refused connection answered"
        );
        p.set_mode(Mode::Pass);
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"again").expect("pass"), b"again");
    }

    #[test]
    fn retarget_applies_to_new_connections() {
        let (a, b) = (echo(), echo());
        let p = Proxy::start(a).expect("proxy");
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"one").expect("pass"), b"one");
        p.set_upstream(b);
        assert_eq!(p.upstream(), b);
        // The open connection keeps its server until reset.
        assert_eq!(roundtrip(&mut s, b"two").expect("still a"), b"two");
        assert_eq!(p.reset_all(), 1);
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"three").expect("to b"), b"three");
    }

    #[test]
    fn faults_hit_the_pattern_only() {
        let p = Proxy::start(echo()).expect("proxy");
        p.fault_on(b"BOOM", Fault::Reset);
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"fine").expect("no pattern"), b"fine");
        // Split across two writes, still found.
        s.write_all(b"xBO").expect("write");
        thread::sleep(Duration::from_millis(50));
        s.write_all(b"OMx").expect("write");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert_eq!(rest, b"xBO", "only the bytes before the cut chunk");
        assert_eq!(p.faults_triggered(), 1);

        p.fault_on(b"HANG", Fault::Freeze);
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"ok").expect("no pattern"), b"ok");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        s.write_all(b"HANG").expect("write");
        let mut b = [0u8; 4];
        assert!(s.read_exact(&mut b).is_err(), "frozen connection answered");
        assert_eq!(p.faults_triggered(), 2);
        assert_eq!(p.clear_fault(), 1);
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut rest = Vec::new();
        assert!(matches!(s.read_to_end(&mut rest), Ok(0) | Err(_)));
        let mut s = client(&p);
        assert_eq!(roundtrip(&mut s, b"HANG").expect("cleared"), b"HANG");
    }

    /// A chunk is due at least `d` after it was read, at most 5% of `d`
    /// and 1 ms more, and chunks read close together share a due time.
    #[test]
    fn due_times_are_rounded_up_to_a_shared_grid() {
        for d in [
            Duration::ZERO,
            Duration::from_micros(250),
            Duration::from_millis(20),
            Duration::from_secs(1),
        ] {
            let step = (d / 20).min(Duration::from_millis(1));
            let t = Instant::now();
            for i in 0..200u32 {
                let read_at = t + Duration::from_micros(37) * i;
                let due = due(read_at, d);
                assert!(due >= read_at + d, "{d:?}: due before the delay");
                assert!(
                    due <= read_at + d + step,
                    "{d:?}: {:?} late",
                    due - (read_at + d)
                );
            }
            if d >= Duration::from_millis(20) {
                // 1 ms of reads, every 37 µs: a few due times, not 28.
                let dues: std::collections::HashSet<_> = (0..28u32)
                    .map(|i| due(t + Duration::from_micros(37) * i, d))
                    .collect();
                assert!(dues.len() <= 2, "{d:?}: {} due times", dues.len());
            }
        }
    }

    /// In a busy `Delay(d)`, chunks that come closer together than a step
    /// of the grid are read a step at a time, not one by one (a read is a
    /// wake-up of the proxy's thread), and still arrive intact, in order
    /// and delayed at least `d`; after a quiet spell the reader waits for
    /// arrivals again, so a lone chunk still goes through.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_busy_delay_reads_at_the_steps_of_the_grid() {
        let d = Duration::from_millis(40);
        let step = grid_step(d);
        let p = Proxy::start_with_mode(echo(), Mode::Delay(d)).expect("proxy");
        let mut s = client(&p);
        let mut sent = Vec::new();
        let start = Instant::now();
        for i in 0..50u32 {
            let word = format!("{i:02} ");
            s.write_all(word.as_bytes()).expect("write");
            sent.extend_from_slice(word.as_bytes());
            thread::sleep(step / 5);
        }
        let writing = start.elapsed();
        let mut got = vec![0u8; sent.len()];
        s.read_exact(&mut got).expect("read");
        assert!(start.elapsed() >= 2 * d, "{:?} round trip", start.elapsed());
        assert_eq!(got, sent);
        // Each direction reads at most once per step over its span (the
        // writes, plus a few steps), however slow the machine: the echo's
        // side as well, as the proxy writes to it once per step. One read
        // per chunk would be 50 from the client alone.
        let steps = u64::try_from(writing.as_nanos() / step.as_nanos()).expect("steps");
        let reads = p.chunks_read();
        assert!(
            reads <= 2 * (steps + 5),
            "{reads} reads over {steps} steps of {step:?}"
        );

        thread::sleep(20 * step);
        let t = Instant::now();
        assert_eq!(
            roundtrip(&mut s, b"lone").expect("after a quiet spell"),
            b"lone"
        );
        assert!(t.elapsed() >= 2 * d, "{:?} round trip", t.elapsed());
    }

    /// A round trip through `Delay(d)` takes at least twice `d`, bytes
    /// arrive intact and in order, and chunks sent back to back are each
    /// delayed once, not one after the other's delay.
    #[test]
    fn delay_is_latency_per_chunk_in_both_directions() {
        let one_way = Duration::from_millis(100);
        let p = Proxy::start_with_mode(echo(), Mode::Delay(one_way)).expect("proxy");
        assert_eq!(p.mode(), Mode::Delay(one_way));
        let mut s = client(&p);
        let t = Instant::now();
        for word in [&b"one "[..], b"two ", b"three ", b"four"] {
            s.write_all(word).expect("write");
            thread::sleep(Duration::from_millis(5));
        }
        let mut got = vec![0u8; 18];
        s.read_exact(&mut got).expect("read");
        let rtt = t.elapsed();
        assert_eq!(&got, b"one two three four");
        assert!(
            rtt >= 2 * one_way,
            "round trip {rtt:?} below 2 x {one_way:?}"
        );
        // Queued behind each other, the last of four chunks would arrive
        // after 5 x d (4 delays out, the last one back).
        assert!(rtt < 4 * one_way, "round trip {rtt:?}: delays queued");
        drop(p);
        // After drop, the forwarded connection is closed.
        let mut rest = [0u8; 1];
        assert!(matches!(s.read(&mut rest), Ok(0) | Err(_)));
    }
}
