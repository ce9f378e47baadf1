//! A connection that its callers write and read themselves: the redis-rs
//! link's transport for plain TCP masters (`redis://`).
//!
//! Why: a redis-rs `MultiplexedConnection` hands every command to an I/O
//! task of its own and every reply back. On tokio's multi-thread runtime
//! the caller and that task run in turn on two workers that park and
//! wake each other, and on these VMs those hand-overs are most of what a
//! five-master cycle costs over a one-master one (`docs/benchmarks.md`,
//! eleventh and twelfth sessions). Here no task stands between a caller
//! and its socket:
//!
//! - **Writing**: a command is queued under the connection's lock, in the
//!   order its reply is expected, and written by its caller at once
//!   unless another caller is already there to write it: one writing
//!   now (it takes the queue along, outside the lock), or a leader
//!   waiting for replies (woken, it writes whatever is queued by the time
//!   it runs). So concurrent callers' commands go out in one write, as
//!   redis-rs's I/O task batches them, and a caller alone writes its own
//!   at once. What the socket does not take waits in the queue.
//! - **Reading**: one waiting caller at a time is the *leader*: it
//!   flushes the queue, reads whatever came and hands each reply to the
//!   caller it belongs to (in order, as Redis answers). Alone on its
//!   connection, a caller is its own leader and nothing is handed to
//!   anyone. A leader that got its reply (or gave up) makes the next
//!   waiting caller the leader (registered with the socket, not woken for
//!   nothing); with none, the link's watcher (`watch`, which
//!   `keep_connected` runs as the connection's driver) takes the socket's
//!   wake-ups, so a connection that closes while idle is noticed at
//!   once, as redis-rs's I/O task notices it. A leader not polled between
//!   two of the reconnect loop's checks loses the lead to the watcher.
//! - **Giving up**: a caller dropped before its command was written takes
//!   it out of the queue (a timed-out vote is never written late); one
//!   dropped while or after it was written leaves its reply to be read
//!   and discarded, so the replies of the others stay in step. A command
//!   partly written stays queued until it is whole. A [`Request`] (a vote,
//!   a release) dropped unwritten is not taken back but seen through by a
//!   task of its own, only until it is written: that task then lets it go
//!   like any other caller, rather than lead the connection for a round
//!   trip while later callers leave their commands to it.
//! - **Timing out**: a caller's wait is ended by one timer per
//!   connection, which the watcher keeps armed for the earliest wait
//!   still running while requests come (and for a second after the last
//!   one), rather than by a timer per command: five timers set up and
//!   taken down per quorum round were a measurable part of a five-master
//!   cycle (`docs/benchmarks.md`, sixteenth session). A request that
//!   finds that timer lapsed (the first after an idle second) sets up its
//!   own and has the watcher arm it for the next ones.
//! - **Failing**: end of stream, a socket error or a reply that is not
//!   RESP2 fails every caller waiting on the connection and closes it;
//!   the link's reconnect loop opens the next one.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use redis::{RedisError, RedisResult, Value};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// How much one read asks the socket for.
const READ_SIZE: usize = 4096;

/// At most how much one write gives the socket.
const WRITE_BATCH: usize = 64 * 1024;

/// How long a connection's timer stays armed after a request last relied
/// on it (see [`State::timer_due`]): it then fires every bound or so,
/// and a request that comes meanwhile needs no timer of its own. A
/// request that finds it lapsed sets up its own and has the watcher arm
/// it again, a wake-up of the watcher's task.
const TIMER_KEPT: Duration = Duration::from_secs(1);

/// One plain TCP connection to a master, shared by its callers.
#[derive(Clone, Debug)]
pub(crate) struct DirectConn(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    stream: TcpStream,
    state: Mutex<State>,
}

/// A command queued or written, whose reply is still to come.
#[derive(Debug)]
struct Awaited {
    id: u64,
    /// The caller to wake when its reply comes, or to make leader.
    waker: Option<Waker>,
    /// Its caller is gone: the reply is read and dropped.
    abandoned: bool,
    /// When its caller stops waiting, if the watcher's timer wakes it
    /// then (see [`State::timer_due`]).
    wait_until: Option<Instant>,
}

/// Bytes of one command not yet written whole.
#[derive(Debug)]
struct Outgoing {
    id: u64,
    bytes: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    /// Commands not yet written whole, in order; `written` bytes of the
    /// first are out.
    out: VecDeque<Outgoing>,
    written: usize,
    /// A caller is writing (outside the lock) the first `committed`
    /// commands of `out`, copied into `batch`.
    writing: bool,
    committed: usize,
    batch: Vec<u8>,
    /// The leader was woken to write the queue.
    flush_asked: bool,
    /// Every command whose reply is still to come, in the order Redis
    /// answers them.
    awaited: VecDeque<Awaited>,
    /// Replies read for callers that have not yet taken them.
    replies: Vec<(u64, Value)>,
    /// What was read and not yet parsed: the first `filled` bytes. The
    /// rest is room for the next read, zeroed once when it grew rather
    /// than at every read (4 KB cleared per read was a `memset` in every
    /// profile of a lock cycle).
    input: Vec<u8>,
    filled: usize,
    /// The caller reading for everyone, if any.
    leader: Option<u64>,
    /// Polls of a leader so far, and as of the last `nudge`.
    leader_polls: u64,
    polls_seen: u64,
    /// The watcher, woken by the socket while nobody leads.
    watcher: Option<Waker>,
    /// When the watcher's timer fires next (`None`: not armed). It wakes
    /// the callers whose wait ran out and is armed again for the next
    /// one, so that a request with a bound needs no timer of its own: a
    /// tokio timer per command (allocated, entered into the timer wheel
    /// and taken out again) was five per quorum round.
    timer_due: Option<Instant>,
    /// When a request last relied on the timer (or asked for it): for
    /// [`TIMER_KEPT`] after that, the timer is kept armed, `timer_bound`
    /// ahead at each firing, so that the next requests find it armed.
    /// Then it lapses.
    timer_used: Option<Instant>,
    /// The wait of the latest request that relied on the timer.
    timer_bound: Duration,
    /// A request found no timer armed early enough (it set up its own):
    /// the watcher arms one when next polled, for the requests after it.
    timer_wanted: bool,
    /// Why the connection failed; every call fails from then on.
    failed: Option<Arc<str>>,
    next_id: u64,
}

impl DirectConn {
    /// A connection over `stream` (already connected, nodelay set).
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self(Arc::new(Inner {
            stream,
            state: Mutex::new(State {
                input: vec![0; READ_SIZE],
                ..State::default()
            }),
        }))
    }

    /// Sends one command (`packed`, in RESP) and returns its reply, a
    /// server error reply as `Err`, within `bound` (`Duration::MAX`: no
    /// bound). The command is written (or queued) now, before the future
    /// is polled. Given no answer within `bound`, it fails as timed out,
    /// and a command not yet written by then never is. Dropped before its
    /// command was written whole, the request goes on in a task of its
    /// own until written (or out of time): a vote dropped by an early
    /// decision must still reach its master. Once written, or dropped
    /// after that, it needs no task: its reply is read and dropped by
    /// whoever reads the connection next.
    pub(crate) fn request(&self, packed: Vec<u8>, bound: Duration) -> Request {
        self.request_until(packed, bound, true)
    }

    /// Sends one command (`packed`, in RESP) and returns its reply, a
    /// server error reply as `Err`; its caller waits at most `wait`, then
    /// gets a timeout, but the command is never given up: one not yet
    /// written then goes on in a task of its own until written (releases,
    /// `link::Release`).
    pub(crate) fn request_kept(&self, packed: Vec<u8>, wait: Duration) -> Request {
        self.request_until(packed, wait, false)
    }

    /// [`request`](Self::request) (`give_up`) or
    /// [`request_kept`](Self::request_kept).
    fn request_until(&self, packed: Vec<u8>, wait: Duration, give_up: bool) -> Request {
        let now = Instant::now();
        let wait_until = (wait != Duration::MAX)
            .then(|| now.checked_add(wait))
            .flatten();
        let (call, covered) = self.send_until(packed, wait_until.map(|until| (now, until)));
        Request {
            call: Some(call),
            wait_until,
            give_up,
            covered,
            sleep: None,
        }
    }

    /// Sends one command (`packed`, in RESP) and returns a future of its
    /// reply, a server error reply as `Ok(Value::ServerError)`. The
    /// command is written (or queued) now, before the future is polled.
    /// Dropping the future before the command is written takes it back.
    pub(crate) fn send(&self, packed: Vec<u8>) -> Call {
        self.send_until(packed, None).0
    }

    /// [`send`](Self::send), for a caller that waits from `now` until
    /// `until` (`wait`): `true` if the watcher's timer wakes it then, so
    /// that it needs no timer of its own.
    fn send_until(&self, packed: Vec<u8>, wait: Option<(Instant, Instant)>) -> (Call, bool) {
        let mut state = self.0.lock();
        let id = state.next_id;
        state.next_id += 1;
        let mut covered = false;
        if state.failed.is_none() {
            if let Some((now, until)) = wait.filter(|_| state.watcher.is_some()) {
                state.timer_used = Some(now);
                state.timer_bound = until - now;
                if state.timer_due.is_some_and(|due| due <= until) {
                    // Armed to fire by then: when it fires, it wakes this
                    // caller or is armed again no later than `until`.
                    covered = true;
                } else if !state.timer_wanted {
                    // The first request of a busy spell: its own timer
                    // this time, the watcher's for the next ones.
                    state.timer_wanted = true;
                    if let Some(watcher) = &state.watcher {
                        watcher.wake_by_ref();
                    }
                }
            }
            state.awaited.push_back(Awaited {
                id,
                waker: None,
                abandoned: false,
                wait_until: wait.map(|(_, until)| until).filter(|_| covered),
            });
            state.out.push_back(Outgoing { id, bytes: packed });
            // With another caller waiting for replies here, that one
            // writes this along with whatever else is queued by the time
            // it runs (what redis-rs's I/O task does), so that concurrent
            // callers' commands go out in one write, not one each.
            if !state.leader_flushes() {
                let (mut flushed, outcome) = self.0.flush(state, Flusher::Sender);
                if let Err(e) = outcome {
                    self.0.fail(&mut flushed, &e.to_string());
                }
            }
        }
        let call = Call {
            conn: Arc::clone(&self.0),
            id,
            done: false,
        };
        (call, covered)
    }

    /// Wakes the watcher if nobody leads: it reads what came for callers
    /// that gave up (a leader stepping down leaves that to the next
    /// caller, rather than wake the watcher for each such reply), and
    /// from then on takes the socket's wake-ups. The reconnect loop calls
    /// it at each of its checks.
    ///
    /// A leader not polled since the last nudge loses the lead to the
    /// watcher: a caller that keeps its request without polling it (a
    /// future held aside in a `select!` loop) must not keep the others'
    /// replies unread.
    pub(crate) fn nudge(&self) {
        let mut state = self.0.lock();
        if state.leader.is_some() && state.leader_polls == state.polls_seen {
            state.leader = None;
        }
        state.polls_seen = state.leader_polls;
        if state.leader.is_none() {
            if let Some(watcher) = &state.watcher {
                watcher.wake_by_ref();
            }
        }
    }

    /// Resolves once the connection has failed. Meanwhile, whenever no
    /// caller leads, it reads for the connection: replies to callers that
    /// gave up, and the end of stream of a server that closed it. The
    /// reconnect loop runs it as the connection's driver; dropping it
    /// closes the connection, as dropping redis-rs's driver does.
    pub(crate) fn watch(&self) -> impl Future<Output = ()> + Send + 'static {
        Watch {
            inner: Arc::clone(&self.0),
            timer: None,
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole between statements that can
        // panic (none on user input): take it back after a panic.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails the connection for `why`: every waiting caller is woken to
    /// find out, and the socket is shut so the server sees it closed.
    fn fail(&self, state: &mut State, why: &str) {
        if state.failed.is_some() {
            return;
        }
        state.failed = Some(why.into());
        state.out.clear();
        state.leader = None;
        for awaited in &mut state.awaited {
            if let Some(waker) = awaited.waker.take() {
                waker.wake();
            }
        }
        if let Some(waker) = state.watcher.take() {
            waker.wake();
        }
        let _ = rustix::net::shutdown(&self.stream, rustix::net::Shutdown::Both);
    }

    /// Writes what is queued and reads what came, handing replies to
    /// their callers: everything that can be done without waiting.
    /// `Ok(true)` if anything was read.
    fn pump<'a>(
        &'a self,
        state: MutexGuard<'a, State>,
        by: Flusher,
    ) -> (MutexGuard<'a, State>, io::Result<bool>) {
        let (mut state, flushed) = self.flush(state, by);
        let outcome = flushed.and_then(|()| self.read(&mut state));
        (state, outcome)
    }

    /// [`pump`](Self::pump), failing the connection on an error: `true`
    /// if anything was read or the connection failed (look again).
    fn step<'a>(
        &'a self,
        state: MutexGuard<'a, State>,
        by: Flusher,
    ) -> (MutexGuard<'a, State>, bool) {
        let (mut state, outcome) = self.pump(state, by);
        let moved = match outcome {
            Ok(read) => read,
            Err(e) => {
                self.fail(&mut state, &e.to_string());
                true
            }
        };
        (state, moved)
    }

    /// Reads what came and hands the replies to their callers.
    /// `Ok(true)` if anything was read.
    fn read(&self, state: &mut State) -> io::Result<bool> {
        let mut read = false;
        loop {
            let had = state.filled;
            if state.input.len() < had + READ_SIZE {
                state.input.resize(had + READ_SIZE, 0);
            }
            let mut got = 0;
            // Read inside `try_io`, so that a short read (the socket is
            // drained) clears tokio's readiness as of *before* the read:
            // data that came since is a newer event and stays marked.
            // Reading again only to hear "would block" would cost a
            // system call per reply.
            let outcome = self.stream.try_io(tokio::io::Interest::READABLE, || {
                let buf = &mut state.input[had..had + READ_SIZE];
                got = rustix::net::recv(&self.stream, buf, rustix::net::RecvFlags::empty())?.0;
                if got > 0 && got < READ_SIZE {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(got)
                }
            });
            state.filled = had + got;
            read |= got > 0;
            match outcome {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if read {
            state.deliver()?;
        }
        Ok(read)
    }

    /// Registers `cx` for the socket's next wake-up (readable, or
    /// writable while bytes wait); `Ready` if one is already there.
    fn poll_ready(&self, state: &State, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // While another caller writes, it takes the queue along.
        if !state.out.is_empty() && !state.writing {
            if let Poll::Ready(ready) = self.stream.poll_write_ready(cx) {
                return Poll::Ready(ready);
            }
        }
        self.stream.poll_read_ready(cx)
    }

    /// The leader stepped down: the next waiting caller leads, or, with
    /// none and no reply still to come, the watcher gets the socket's
    /// wake-ups (registered here without waking it). Replies still to
    /// come with nobody waiting for them (their callers gave up) are read
    /// by the next caller, or by the watcher once `nudge`d.
    fn hand_over(&self, state: &mut State) {
        state.leader = None;
        if let Some(next) = state.awaited.iter().find(|a| a.waker.is_some()) {
            // The next caller leads from now: the socket wakes it when
            // there is something to read (not woken now for nothing).
            let (id, waker) = (next.id, next.waker.clone().expect("found with one"));
            state.leader = Some(id);
            // With commands queued (left for a leader to write), woken
            // to write them.
            if !state.out.is_empty()
                || self
                    .poll_ready(state, &mut Context::from_waker(&waker))
                    .is_ready()
            {
                state.flush_asked = true;
                waker.wake();
            }
            return;
        }
        if !state.awaited.is_empty() || !state.out.is_empty() {
            return;
        }
        if let Some(watcher) = state.watcher.clone() {
            if self
                .poll_ready(state, &mut Context::from_waker(&watcher))
                .is_ready()
            {
                watcher.wake();
            }
        }
    }
}

/// Who writes the queue: a caller sending a command, or whoever reads
/// (the leader, or the watcher with no leader).
#[derive(Clone, Copy, Debug)]
enum Flusher {
    Sender,
    Leader(u64),
    Watcher,
}

impl Inner {
    /// Writes as much of the queue as the socket takes now, outside the
    /// lock: callers that send meanwhile only queue their commands, and
    /// the writer takes them along in its next write (one system call for
    /// the commands of several tasks, as redis-rs's I/O task batches
    /// them). With a writer at work already, it does nothing.
    fn flush<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        by: Flusher,
    ) -> (MutexGuard<'a, State>, io::Result<()>) {
        if state.writing {
            return (state, Ok(()));
        }
        while state.failed.is_none() && !state.out.is_empty() {
            let mut batch = std::mem::take(&mut state.batch);
            batch.clear();
            let mut from = state.written;
            let mut taken = 0;
            for o in &state.out {
                let room = WRITE_BATCH.saturating_sub(batch.len());
                if room == 0 {
                    break;
                }
                let end = o.bytes.len().min(from + room);
                batch.extend_from_slice(&o.bytes[from..end]);
                from = 0;
                taken += 1;
            }
            // The commands in `batch` are being written: none of them can
            // be taken back now (see `Call`'s drop).
            state.committed = taken;
            state.writing = true;
            drop(state);
            let mut sent = 0;
            let outcome = loop {
                if sent == batch.len() {
                    break Ok(());
                }
                match self.stream.try_write(&batch[sent..]) {
                    Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            state = self.lock();
            state.batch = batch;
            state.writing = false;
            state.committed = 0;
            // What was queued meanwhile is this writer's to write now.
            state.flush_asked = false;
            if state.failed.is_none() {
                state.advance(sent);
            }
            match outcome {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The socket is full. Whoever reads may have waited
                    // for readable only while this write was under way:
                    // woken, it waits for writable too. Not this writer
                    // if it reads: it registers next (woken by itself,
                    // it would spin).
                    let reads = match by {
                        Flusher::Sender => false,
                        Flusher::Leader(id) => state.leader == Some(id),
                        Flusher::Watcher => state.leader.is_none(),
                    };
                    if !reads {
                        state.wake_reader();
                    }
                    return (state, Ok(()));
                }
                Err(e) => return (state, Err(e)),
            }
        }
        (state, Ok(()))
    }
}

impl State {
    /// Whether a leader waiting for the socket is there to write what
    /// was just queued: woken now (once until it writes), it writes the
    /// queue when it runs. A leader that is running (no waker: it is
    /// between its read and its wait) sees the queue before it waits.
    fn leader_flushes(&mut self) -> bool {
        if self.leader.is_none() {
            return false;
        }
        if self.writing {
            return true;
        }
        let Some(waker) = self.leader_waker() else {
            return false;
        };
        if !self.flush_asked {
            waker.wake_by_ref();
            self.flush_asked = true;
        }
        true
    }

    /// Wakes the leader, or the watcher with no leader.
    fn wake_reader(&self) {
        let waker = match self.leader {
            Some(_) => self.leader_waker(),
            None => self.watcher.as_ref(),
        };
        if let Some(waker) = waker {
            waker.wake_by_ref();
        }
    }

    /// `n` more bytes of the queue are written.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(head) = self.out.front() else {
                return;
            };
            let left = head.bytes.len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.out.pop_front();
            self.written = 0;
        }
    }

    /// Hands every whole reply in `input` to its caller, in order.
    fn deliver(&mut self) -> io::Result<()> {
        let mut used = 0;
        while let Some((reply, len)) =
            parse_reply(&self.input[used..self.filled]).map_err(bad_reply)?
        {
            used += len;
            let Some(awaited) = self.awaited.pop_front() else {
                return Err(bad_reply("a reply to no command"));
            };
            if awaited.abandoned {
                continue;
            }
            self.replies.push((awaited.id, reply));
            if let Some(waker) = awaited.waker {
                waker.wake();
            }
        }
        self.input.copy_within(used..self.filled, 0);
        self.filled -= used;
        Ok(())
    }

    /// The entry of `id`'s command, while its reply is still to come.
    fn awaited_mut(&mut self, id: u64) -> Option<&mut Awaited> {
        self.awaited.iter_mut().find(|a| a.id == id)
    }

    /// The waker of the leader's caller, if it waits.
    fn leader_waker(&self) -> Option<&Waker> {
        let leader = self.leader?;
        self.awaited
            .iter()
            .find(|a| a.id == leader)
            .and_then(|a| a.waker.as_ref())
    }

    /// Takes `id`'s reply, if it came.
    fn take_reply(&mut self, id: u64) -> Option<Value> {
        let at = self.replies.iter().position(|(of, _)| *of == id)?;
        Some(self.replies.swap_remove(at).1)
    }
}

fn bad_reply(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a RESP2 reply: {what}"),
    )
}

/// The error a call on a failed connection gets: an I/O error, so that
/// it maps to "unreachable" as redis-rs's closed connections do.
fn closed(why: &str) -> RedisError {
    RedisError::from(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        why.to_owned(),
    ))
}

/// The error of a command that got no answer in time.
pub(crate) fn timed_out() -> RedisError {
    RedisError::from(io::Error::from(io::ErrorKind::TimedOut))
}

/// The RESP bytes of the command made of `parts` (its name first), in one
/// allocation sized up front: what `redis::Cmd` packs, without the two
/// buffers a `Cmd` fills with the arguments first (two allocations and a
/// copy of every key and token, on every master).
pub(crate) fn pack<'a>(parts: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let mut digits = itoa::Buffer::new();
    let (mut count, mut len) = (0usize, 0usize);
    for part in parts.clone() {
        count += 1;
        // `$`, the length, `\r\n`, the bytes, `\r\n`.
        len += 1 + digits.format(part.len()).len() + 2 + part.len() + 2;
    }
    len += 1 + digits.format(count).len() + 2;
    let mut out = Vec::with_capacity(len);
    out.push(b'*');
    out.extend_from_slice(digits.format(count).as_bytes());
    out.extend_from_slice(b"\r\n");
    for part in parts {
        out.push(b'$');
        out.extend_from_slice(digits.format(part.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// [`DirectConn::request`]'s future.
#[derive(Debug)]
pub(crate) struct Request {
    /// `None` once answered.
    call: Option<Call>,
    /// When the caller stops waiting.
    wait_until: Option<Instant>,
    /// A command not yet written by then is taken back
    /// ([`DirectConn::request`]), or seen through
    /// ([`DirectConn::request_kept`]).
    give_up: bool,
    /// The watcher's timer wakes this request at `wait_until`.
    covered: bool,
    /// Its own timer, when not `covered`: set up only once the reply was
    /// not there at the first poll.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Request {
    /// Whether the caller's wait has run out, registering `cx` to be
    /// woken when it does (the watcher's timer does that when `covered`).
    fn out_of_time(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(until) = self.wait_until else {
            return false;
        };
        if self.covered {
            return Instant::now() >= until;
        }
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        sleep.as_mut().poll(cx).is_ready()
    }

    /// Lets `call` go: a command written (or partly written) needs
    /// nothing more, its reply is read and dropped by whoever reads the
    /// connection next; one not yet written is taken back if `give_up`
    /// and the wait ran out, and otherwise goes on in a task of its own
    /// until written (or out of time).
    fn let_go(&self, call: Call) {
        if call.written() {
            return;
        }
        let bound = self.wait_until.filter(|_| self.give_up);
        if bound.is_some_and(|until| Instant::now() >= until) {
            // Dropped here: taken back.
            return;
        }
        // Off a runtime there is none to run it on: taken back.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            call.unbounded();
            let written = call.written_or_answered();
            drop(runtime.spawn(async move {
                match bound {
                    Some(until) => drop(tokio::time::timeout_at(until, written).await),
                    None => written.await,
                }
            }));
        }
    }
}

impl Future for Request {
    type Output = RedisResult<Value>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let call = this
            .call
            .as_mut()
            .expect("a Request polled after its answer");
        if let Poll::Ready(reply) = Pin::new(call).poll(cx) {
            this.call = None;
            return Poll::Ready(reply.and_then(Value::extract_error));
        }
        if this.out_of_time(cx) {
            if let Some(call) = this.call.take() {
                this.let_go(call);
            }
            return Poll::Ready(Err(timed_out()));
        }
        Poll::Pending
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            self.let_go(call);
        }
    }
}

/// The reply to one command sent with [`DirectConn::send`].
#[derive(Debug)]
pub(crate) struct Call {
    conn: Arc<Inner>,
    id: u64,
    done: bool,
}

impl Future for Call {
    type Output = RedisResult<Value>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let inner = &*this.conn;
        let mut state = inner.lock();
        loop {
            if let Some(reply) = state.take_reply(this.id) {
                this.done = true;
                if state.leader == Some(this.id) {
                    inner.hand_over(&mut state);
                }
                return Poll::Ready(Ok(reply));
            }
            if let Some(why) = &state.failed {
                this.done = true;
                let why = Arc::clone(why);
                state.awaited.retain(|a| a.id != this.id);
                return Poll::Ready(Err(closed(&why)));
            }
            if state.leader.is_some_and(|leader| leader != this.id) {
                // Someone else reads: wait to be handed the reply, or the
                // lead.
                if let Some(awaited) = state.awaited_mut(this.id) {
                    awaited.waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            state.leader = Some(this.id);
            state.leader_polls += 1;
            // Reading now: not to be woken by its own reply.
            if let Some(awaited) = state.awaited_mut(this.id) {
                awaited.waker = None;
            }
            let (pumped, moved) = inner.step(state, Flusher::Leader(this.id));
            state = pumped;
            // The lock was let go while writing: the lead may have passed
            // (`nudge`); only the leader registers with the socket.
            if moved || state.leader != Some(this.id) {
                continue;
            }
            match inner.poll_ready(&state, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => inner.fail(&mut state, &e.to_string()),
                Poll::Pending => {
                    // Also where the reply is handed over if the lead
                    // passes to the watcher meanwhile (`nudge`).
                    if let Some(awaited) = state.awaited_mut(this.id) {
                        awaited.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Call {
    /// Whether the command was written whole (or the connection failed:
    /// nothing more will be written).
    fn written(&self) -> bool {
        !self.conn.lock().out.iter().any(|o| o.id == self.id)
    }

    /// Resolves once the command is written whole (or answered, or the
    /// connection failed), dropping the call: what a task seeing an
    /// unwritten request through waits for. Its reply is then read and
    /// dropped by whoever reads next, as for any caller that gave up after
    /// writing. Waiting for the reply instead kept that task leading the
    /// connection for a whole round trip, and while a task leads, callers
    /// leave their commands for it to write: behind a slow master, each of
    /// them was then dropped unwritten by the next early decision and
    /// spawned the next such task (`docs/benchmarks.md`, seventeenth
    /// session).
    fn written_or_answered(self) -> impl Future<Output = ()> + Send + 'static {
        let mut call = Some(self);
        std::future::poll_fn(move |cx| {
            let Some(pending) = call.as_mut() else {
                return Poll::Ready(());
            };
            // Polled, it leads if nobody does, and the leader writes.
            if Pin::new(&mut *pending).poll(cx).is_ready() || pending.written() {
                call = None;
                return Poll::Ready(());
            }
            Poll::Pending
        })
    }

    /// From now on awaited by a task of its own, with a timer of its own
    /// if bounded: the watcher's timer no longer wakes it.
    fn unbounded(&self) {
        if let Some(awaited) = self.conn.lock().awaited_mut(self.id) {
            awaited.wait_until = None;
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let inner = &*self.conn;
        let mut state = inner.lock();
        let id = self.id;
        if state.take_reply(id).is_none() {
            // Not written at all: take it back. Partly or wholly written:
            // its reply is still to come, and is dropped.
            let unsent = state
                .out
                .iter()
                .position(|o| o.id == id)
                .filter(|&at| at >= state.committed && (at > 0 || state.written == 0));
            if let Some(at) = unsent {
                state.out.remove(at);
                state.awaited.retain(|a| a.id != id);
            } else if let Some(awaited) = state.awaited_mut(id) {
                awaited.abandoned = true;
                awaited.waker = None;
                awaited.wait_until = None;
            }
        }
        if state.leader == Some(id) {
            inner.hand_over(&mut state);
        }
    }
}

/// [`DirectConn::watch`]'s future.
struct Watch {
    inner: Arc<Inner>,
    /// The connection's timer (see [`State::timer_due`]), set up at its
    /// first use and armed again from then on.
    timer: Option<Pin<Box<Sleep>>>,
}

/// Tends the connection's timer: once it fired, wakes the callers
/// whose wait ran out and arms it for the earliest wait still
/// running, or one bound from now if a request relied on it since it
/// last fired (kept armed through a busy spell); with neither it
/// lapses. Asked for by a request that found it unarmed, it arms it.
fn tend_timer(timer: &mut Option<Pin<Box<Sleep>>>, state: &mut State, cx: &mut Context<'_>) {
    loop {
        let fired = match (state.timer_due, timer.as_mut()) {
            (Some(_), Some(timer)) => timer.as_mut().poll(cx).is_ready(),
            _ => false,
        };
        if !fired && !std::mem::take(&mut state.timer_wanted) {
            return;
        }
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut woke = false;
        for awaited in &state.awaited {
            match awaited.wait_until {
                Some(until) if until <= now => {
                    woke = true;
                    if let Some(waker) = &awaited.waker {
                        waker.wake_by_ref();
                    }
                }
                Some(until) => next = Some(next.map_or(until, |n| n.min(until))),
                None => {}
            }
        }
        // Asked for, or used lately: a bound ahead. A caller woken
        // now may send its next request at once.
        let used = state
            .timer_used
            .is_some_and(|at| now.saturating_duration_since(at) < TIMER_KEPT);
        let kept = (!fired || used || woke)
            .then(|| now.checked_add(state.timer_bound))
            .flatten();
        let Some(due) = next.into_iter().chain(kept).min() else {
            state.timer_due = None;
            return;
        };
        if fired || state.timer_due.is_none_or(|armed| due < armed) {
            match timer.as_mut() {
                Some(armed) => armed.as_mut().reset(due),
                None => *timer = Some(Box::pin(tokio::time::sleep_until(due))),
            }
            state.timer_due = Some(due);
        }
        // Polled again at the top: registered, or fired already.
    }
}

impl Future for Watch {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Self { inner, timer } = &mut *self;
        let inner = &**inner;
        let mut state = inner.lock();
        if state.failed.is_none() {
            tend_timer(timer, &mut state, cx);
        }
        loop {
            if state.failed.is_some() {
                return Poll::Ready(());
            }
            state.watcher = Some(cx.waker().clone());
            if state.leader.is_some() {
                // The leader gets the wake-ups; it registers ours when it
                // steps down with nobody else waiting.
                return Poll::Pending;
            }
            let (pumped, moved) = inner.step(state, Flusher::Watcher);
            state = pumped;
            if state.leader.is_some() {
                // A caller took the lead while this wrote: it registers.
                continue;
            }
            if moved {
                // A caller still waiting may lead now: woken, it takes
                // the lead when polled (not made leader unpolled, as
                // `hand_over` does: the watcher may be reading because a
                // caller was not polled).
                if let Some(next) = state.awaited.iter_mut().find_map(|a| a.waker.take()) {
                    next.wake();
                }
                continue;
            }
            match inner.poll_ready(&state, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => inner.fail(&mut state, &e.to_string()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.watcher = None;
        self.inner.fail(&mut state, "connection closed by its link");
    }
}

/// The first whole RESP2 reply in `buf` as redis-rs reads it, and its
/// length; `None` while it is incomplete. (`redis::parse_redis_value`
/// gives the same values, but sets up a decoder with a buffer of its own
/// for every reply: 8 KB allocated per reply, measured.)
fn parse_reply(buf: &[u8]) -> Result<Option<(Value, usize)>, &'static str> {
    /// The index after the line that starts at `from` (its `\r\n`
    /// included), and the line without its type byte.
    fn line(buf: &[u8], from: usize) -> Option<(usize, &[u8])> {
        let rest = buf.get(from..)?;
        let cr = rest.windows(2).position(|w| w == b"\r\n")?;
        // A line that is only `\r\n` has no type byte: `\r` is refused as
        // an unknown one.
        Some((from + cr + 2, rest.get(1..cr).unwrap_or_default()))
    }
    fn number(text: &[u8]) -> Result<i64, &'static str> {
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or("a number that is not one")
    }
    fn walk(buf: &[u8], at: usize, depth: u32) -> Result<Option<(Value, usize)>, &'static str> {
        if depth > 64 {
            return Err("nested too deep");
        }
        let Some(&kind) = buf.get(at) else {
            return Ok(None);
        };
        let Some((next, text)) = line(buf, at) else {
            return Ok(None);
        };
        let value = match kind {
            b'+' if text == b"OK" => Value::Okay,
            b'+' => Value::SimpleString(String::from_utf8_lossy(text).into_owned()),
            b':' => Value::Int(number(text)?),
            // Rare (a refused command): redis-rs reads the error's code
            // and kind.
            b'-' => redis::parse_redis_value(&buf[at..next]).map_err(|_| "an error reply")?,
            b'$' => {
                let Ok(len) = usize::try_from(number(text)?) else {
                    return Ok(Some((Value::Nil, next))); // $-1
                };
                let end = next
                    .checked_add(len)
                    .and_then(|e| e.checked_add(2))
                    .ok_or("a length too large")?;
                return match buf.get(end - 2..end) {
                    None => Ok(None),
                    Some(b"\r\n") => {
                        Ok(Some((Value::BulkString(buf[next..end - 2].to_vec()), end)))
                    }
                    Some(_) => Err("a bulk string without its \\r\\n"),
                };
            }
            b'*' => {
                let Ok(count) = usize::try_from(number(text)?) else {
                    return Ok(Some((Value::Nil, next))); // *-1
                };
                let mut items = Vec::with_capacity(count.min(1024));
                let mut at = next;
                for _ in 0..count {
                    match walk(buf, at, depth + 1)? {
                        Some((item, after)) => {
                            items.push(item);
                            at = after;
                        }
                        None => return Ok(None),
                    }
                }
                return Ok(Some((Value::Array(items), at)));
            }
            _ => return Err("an unknown type byte"),
        };
        Ok(Some((value, next)))
    }
    walk(buf, 0, 0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::Instant;

    use super::{pack, parse_reply, DirectConn};

    /// A connection, with its watcher running, to a server that reads
    /// every command and answers none (a paused master).
    async fn silent_master() -> (DirectConn, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("bound");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("the client");
            let mut buf = [0u8; 4096];
            while socket.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        });
        let stream = TcpStream::connect(address).await.expect("connected");
        let conn = DirectConn::new(stream);
        let watch = tokio::spawn(conn.watch());
        while conn.0.lock().watcher.is_none() {
            tokio::task::yield_now().await;
        }
        (conn, watch)
    }

    /// A request dropped before it was written (an early decision, while
    /// another caller led and was to write it) is seen through by a task
    /// of its own until it is written, and no longer: a task that went on
    /// to wait for the reply led the connection for a round trip, and the
    /// next caller left its command to that task instead of writing it.
    #[tokio::test(start_paused = true)]
    async fn a_request_seen_through_lets_the_connection_go_once_written() {
        let (conn, watch) = silent_master().await;
        let bound = Duration::from_millis(50);
        let ping = || pack([&b"PING"[..]].into_iter());
        // A caller waiting for its reply leads.
        let mut first = conn.request(ping(), bound);
        assert!(futures::poll!(&mut first).is_pending());
        assert_eq!(conn.0.lock().leader, Some(0));
        // The next command is left to that leader to write, and its
        // caller is gone before the leader ran: a task sees it through.
        let second = conn.request(ping(), bound);
        assert!(!second.call.as_ref().expect("unanswered").written());
        drop(second);
        drop(first);
        while !conn.0.lock().out.is_empty() {
            tokio::task::yield_now().await;
        }
        // Written, by that task: it leads no more.
        assert_eq!(conn.0.lock().leader, None);
        // So the next caller writes its own command at once.
        let third = conn.request(ping(), bound);
        assert!(third.call.as_ref().expect("unanswered").written());
        assert!(third.await.is_err_and(|e| e.is_timeout()));
        watch.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchers_timer_ends_the_wait_of_every_request_at_its_bound() {
        let (conn, watch) = silent_master().await;
        let bound = Duration::from_millis(50);
        let mut covered = Vec::new();
        for kept in [false, false, false, true, true, false] {
            let packed = pack([&b"PING"[..]].into_iter());
            let started = Instant::now();
            let request = if kept {
                conn.request_kept(packed, bound)
            } else {
                conn.request(packed, bound)
            };
            covered.push(request.covered);
            let outcome = request.await;
            assert!(
                outcome.as_ref().is_err_and(redis::RedisError::is_timeout),
                "no answer, so a timeout: {outcome:?}"
            );
            assert!(started.elapsed() >= bound, "never before its bound");
        }
        // The first sets up its own timer and has the watcher arm the
        // connection's; every later one relies on that.
        assert_eq!(covered, [false, true, true, true, true, true]);
        // Kept armed a while for the next requests, then, idle, it
        // lapses: an idle connection sets no timer.
        tokio::time::sleep(bound).await;
        assert!(conn.0.lock().timer_due.is_some());
        tokio::time::sleep(super::TIMER_KEPT + bound * 2).await;
        assert_eq!(conn.0.lock().timer_due, None);
        // The next request has the watcher arm it again.
        let request = conn.request(pack([&b"PING"[..]].into_iter()), bound);
        assert!(!request.covered);
        while conn.0.lock().timer_due.is_none() {
            tokio::task::yield_now().await;
        }
        assert!(request.await.is_err_and(|e| e.is_timeout()));
        watch.abort();
    }

    #[test]
    fn commands_are_packed_as_redis_rs_packs_them() {
        let commands: &[&[&[u8]]] = &[
            &[b"PING"],
            &[
                b"SET",
                b"redlock:job",
                b"tok",
                b"NX",
                b"PX",
                b"10000",
                b"GET",
            ],
            &[b"EVALSHA", b"0123abcd", b"2", b"a", b"b", b"tok", b"10000"],
            &[b"ECHO", b""],
            &[b"ECHO", b"\r\n\0\xff binary"],
            &[b"ECHO", &[b'x'; 1000]],
        ];
        for parts in commands {
            let mut cmd = redis::Cmd::new();
            for part in *parts {
                cmd.arg(*part);
            }
            let packed = pack(parts.iter().copied());
            assert_eq!(packed, cmd.get_packed_command(), "{parts:?}");
            assert_eq!(packed.capacity(), packed.len(), "sized up front: {parts:?}");
        }
    }

    #[test]
    fn replies_are_read_as_redis_rs_reads_them_and_only_when_whole() {
        let whole: &[&[u8]] = &[
            b"+OK\r\n",
            b"+PONG\r\n",
            b"-ERR no\r\n",
            b"-NOSCRIPT No matching script\r\n",
            b":42\r\n",
            b":-7\r\n",
            b"$-1\r\n",
            b"$3\r\nabc\r\n",
            b"$4\r\na\r\nb\r\n",
            b"$0\r\n\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n",
        ];
        for reply in whole {
            let expected = redis::parse_redis_value(reply).expect("redis-rs reads it");
            assert_eq!(
                parse_reply(reply),
                Ok(Some((expected.clone(), reply.len()))),
                "{reply:?}"
            );
            for cut in 0..reply.len() {
                assert_eq!(
                    parse_reply(&reply[..cut]),
                    Ok(None),
                    "{reply:?} cut at {cut}"
                );
            }
            let mut two = reply.to_vec();
            two.extend_from_slice(b":1\r\n");
            assert_eq!(
                parse_reply(&two),
                Ok(Some((expected, reply.len()))),
                "{reply:?} then more"
            );
        }
    }

    #[test]
    fn what_is_not_resp2_is_refused() {
        for garbage in [
            &b"%1\r\n"[..],
            b"$x\r\n",
            b"$3\r\nabcd\r\n",
            b":1.5\r\n",
            b"\r\n",
            b"*1\r\n\r\n",
        ] {
            assert!(parse_reply(garbage).is_err(), "{garbage:?}");
        }
    }
}
