//! A [`Master`] that applies the [`Admission`] rules in front of a raw
//! connection ([`Link`]). The production client (`redlock-tokio`'s
//! `FredLink`) and the simulation's masters are both links, so both run
//! this one gate: the simulation checks the admission code that ships.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::future::{BoxFuture, FutureExt, Shared};

use crate::admission::{Admission, Gate, Intent, MasterFacts, Pass};
use crate::clock::{ClockSample, ClockVerdict};
use crate::config::Ttl;
use crate::fence::{Fence, FenceKeys};
use crate::inspect::KeyState;
use crate::master::{Master, ReleaseWatch};
use crate::tally::MasterFailure;
use crate::token::Token;

/// One raw connection to a master: the commands (its [`Master`] side,
/// ungated), the facts the admission rules need, and the seams a gate
/// needs to run (time, a task of its own).
///
/// Contract: as [`Master`]'s; every future resolves within the per-master
/// timeout and maps every failure to a [`MasterFailure`]; a command that
/// timed out is never re-sent.
pub trait Link: Master {
    /// The clock the admission rules are fed with (the runtime's).
    fn now(&self) -> Instant;

    /// Whether the connection was replaced since the last call (drains the
    /// client's reconnect notifications).
    fn take_reconnects(&self) -> bool;

    /// Asks the server who it is (`INFO`) and prepares it for the lock
    /// commands (loads the scripts). Returns when the answer arrived and
    /// the facts. `'static`: it runs in a task of its own.
    fn identify(&self) -> BoxFuture<'static, Result<(Instant, MasterFacts), MasterFailure>>;

    /// Reads the server's clock (`TIME`) for the clock check; `None` on any
    /// failure. `'static`: it runs in a task of its own.
    fn sample_clock(&self) -> BoxFuture<'static, Option<ClockSample>>;

    /// Runs `task` in the background (a verification, a clock sample).
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// A [`Link`] behind the admission gate: the [`Master`] the algorithm
/// votes with.
pub struct Admitted<L> {
    link: Arc<L>,
    index: usize,
    admission: Arc<Mutex<Admission>>,
    checking: Arc<Mutex<Option<Check>>>,
    next_check: AtomicU64,
}

/// An identity check in flight: calls that need one for the same
/// connection generation await it rather than send their own (see
/// [`Admitted::verify`]).
struct Check {
    id: u64,
    generation: u64,
    answer: CheckAnswer,
}

/// The answer of an identity check, for every call awaiting it.
type CheckAnswer = Shared<BoxFuture<'static, Result<(), MasterFailure>>>;

impl<L> std::fmt::Debug for Admitted<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The admission state and the check in flight: every update is a few
    // field writes or a whole replacement; a panic elsewhere cannot leave
    // either torn, so poison is ignored.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `admission` with every reconnect `link` (master `index`) reported
/// recorded: drained and recorded under the lock, as one step (see
/// [`Admitted::synced`]).
fn synced<'a, L: Link>(
    admission: &'a Mutex<Admission>,
    link: &L,
    index: usize,
) -> MutexGuard<'a, Admission> {
    let mut admission = lock(admission);
    if link.take_reconnects() {
        admission.reconnected(index);
    }
    admission
}

impl<L: Link> Admitted<L> {
    /// Master `index` of the manager whose masters share `admission`.
    pub fn new(link: L, index: usize, admission: Arc<Mutex<Admission>>) -> Self {
        Self {
            link: Arc::new(link),
            index,
            admission,
            checking: Arc::new(Mutex::new(None)),
            next_check: AtomicU64::new(0),
        }
    }

    /// The raw connection.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// This master's index in the manager's list.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The admission state shared by the manager's masters.
    pub fn admission(&self) -> &Arc<Mutex<Admission>> {
        &self.admission
    }

    /// The clock check's current verdict on this master, or `None` when
    /// the check is off.
    pub fn clock_verdict(&self) -> Option<ClockVerdict> {
        lock(&self.admission).clock_verdict(self.index)
    }

    /// The admission state, with every reconnect the link reported
    /// recorded. The link is asked under the lock: drained and recorded
    /// as one step, so no other call can find the reconnect drained but
    /// not yet recorded, and count a reply from the new connection
    /// (`tests::a_reconnect_drained_by_another_call_still_voids_a_reply`).
    fn synced(&self) -> MutexGuard<'_, Admission> {
        synced(&self.admission, &*self.link, self.index)
    }

    /// Asks the master who it is, in a task of its own, and records the
    /// answer (unless a reconnect happened meanwhile).
    ///
    /// The task matters: this call is dropped by an early decision
    /// whenever this master is the slowest, and a verification dropped
    /// halfway would leave the master unverified, so the slowest again,
    /// for ever.
    ///
    /// # Errors
    ///
    /// The [`MasterFailure`] of the `INFO` or script load, or of the
    /// admission rules' verdict on the answer.
    ///
    /// One check at a time per connection: a call that needs one while a
    /// check of the same generation is in flight awaits that check's
    /// answer. Its answer is as good as a new one (it is recorded against
    /// the generation it was asked on, and the caller decides on the state
    /// it left), and a master that does not answer (paused, overloaded)
    /// gets one `INFO` per per-master timeout instead of one per vote,
    /// each waiting on its socket.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the verification runs in a task of its own and records
    /// its answer even when this future is dropped.
    pub async fn verify(&self, generation: u64) -> Result<(), MasterFailure> {
        let (answer, task) = {
            let mut checking = lock(&self.checking);
            match &*checking {
                Some(check) if check.generation == generation => (check.answer.clone(), None),
                _ => {
                    let id = self.next_check.fetch_add(1, Ordering::Relaxed);
                    let (answer, task) = self.verification(id, generation);
                    *checking = Some(Check {
                        id,
                        generation,
                        answer: answer.clone(),
                    });
                    (answer, Some(task))
                }
            }
        };
        // Spawned outside the lock: the task takes it when it ends.
        if let Some(task) = task {
            self.link.spawn(task);
        }
        answer.await
    }

    /// Check `id`: its answer, and the task that asks the master (to run
    /// on its own). The task forgets the check, so that the next call
    /// asks again, before it answers.
    fn verification(&self, id: u64, generation: u64) -> (CheckAnswer, BoxFuture<'static, ()>) {
        let (tx, rx) = futures::channel::oneshot::channel();
        let identify = self.link.identify();
        let (link, admission, checking, index) = (
            Arc::clone(&self.link),
            Arc::clone(&self.admission),
            Arc::clone(&self.checking),
            self.index,
        );
        let task = Box::pin(async move {
            let result = match identify.await {
                Ok((observed_at, facts)) => {
                    // A reconnect that happened before the answer arrived
                    // is announced by now: record it first (in the same
                    // step as the drain, see `synced`), so an answer from
                    // the previous server is seen as stale.
                    synced(&admission, &*link, index)
                        .verified(index, generation, observed_at, &facts)
                        .map_err(|r| r.to_failure())
                }
                Err(e) => Err(e),
            };
            {
                let mut checking = lock(&checking);
                if checking.as_ref().is_some_and(|c| c.id == id) {
                    *checking = None;
                }
            }
            let _ = tx.send(result);
        });
        let answer: BoxFuture<'static, Result<(), MasterFailure>> = Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(MasterFailure::Unreachable(
                    "identity check did not complete".into(),
                ))
            })
        });
        (answer.shared(), task)
    }

    /// The gate in front of one call.
    async fn admit(&self, intent: Intent) -> Result<Pass, MasterFailure> {
        // Twice at most: verify once, then decide on the fresh state.
        for _ in 0..2 {
            let now = self.link.now();
            let (gate, sample) = {
                let mut a = self.synced();
                let gate = a.check(self.index, now, intent);
                let sample = intent != Intent::Release && a.take_clock_sample(self.index, now);
                (gate, sample)
            };
            if sample {
                self.spawn_clock_sample();
            }
            match gate {
                Gate::Proceed(pass) => return Ok(pass),
                Gate::Refuse(failure) => return Err(failure),
                Gate::Verify(generation) => self.verify(generation).await?,
            }
        }
        Err(MasterFailure::Unreachable(
            "reconnected while its identity was checked".into(),
        ))
    }

    /// After a reply: it counts only if the connection was not replaced
    /// while the command was in flight.
    fn confirm(&self, pass: &Pass) -> Result<(), MasterFailure> {
        self.synced().confirm(self.index, pass)
    }

    /// Reads the master's clock in a task of its own: not part of the
    /// caller's future, which an early decision drops whenever this master
    /// is the slowest (exactly the master whose clock must still be read).
    fn spawn_clock_sample(&self) {
        let sample = self.link.sample_clock();
        let (admission, index) = (Arc::clone(&self.admission), self.index);
        self.link.spawn(Box::pin(async move {
            if let Some(s) = sample.await {
                lock(&admission).clock_sample(index, s);
            }
        }));
    }
}

impl<L: Link> Master for Admitted<L> {
    fn address(&self) -> &Arc<str> {
        self.link.address()
    }

    async fn acquire(&self, keys: &[String], token: &Token, ttl: Ttl) -> Result<(), MasterFailure> {
        let pass = self.admit(Intent::Acquire { ttl }).await?;
        let reply = self.link.acquire(keys, token, ttl).await;
        // A reply over a replaced connection may come from a server the
        // guard has not seen: it does not count. Our key there (if any)
        // holds our token and is released with the rest.
        self.confirm(&pass)?;
        reply
    }

    async fn extend(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> Result<(), MasterFailure> {
        let pass = self.admit(Intent::Extend { ttl, recreate }).await?;
        let reply = self.link.extend(keys, token, ttl, recreate).await;
        self.confirm(&pass)?;
        reply
    }

    async fn release(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        // Deleting keys that hold our token is safe on any server: no
        // verification, no confirmation, never held back (see
        // `Admission::check`).
        self.admit(Intent::Release).await?;
        self.link.release(keys, token).await
    }

    async fn release_announced(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        self.admit(Intent::Release).await?;
        self.link.release_announced(keys, token).await
    }

    fn sends_dropped_releases(&self) -> bool {
        // A release's admission never waits (see `release`): its first
        // poll reaches the link's.
        self.link.sends_dropped_releases()
    }

    fn settle(&self) -> impl std::future::Future<Output = ()> + Send {
        self.link.settle()
    }

    async fn acquire_fenced(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        ttl: Ttl,
    ) -> Result<u64, MasterFailure> {
        let pass = self.admit(Intent::Acquire { ttl }).await?;
        let reply = self.link.acquire_fenced(keys, fences, token, ttl).await;
        self.confirm(&pass)?;
        reply
    }

    async fn inspect(
        &self,
        key: &str,
        fences: FenceKeys<'_>,
    ) -> Result<(KeyState, u64), MasterFailure> {
        // Read-only: like a release, it needs no verification.
        self.admit(Intent::Release).await?;
        self.link.inspect(key, fences).await
    }

    async fn force_delete(&self, keys: &[String]) -> Result<(), MasterFailure> {
        self.admit(Intent::Release).await?;
        self.link.force_delete(keys).await
    }

    async fn forget_fences(&self, fences: FenceKeys<'_>) -> Result<(), MasterFailure> {
        // Like a force-delete: an operator's write that needs no vote.
        self.admit(Intent::Release).await?;
        self.link.forget_fences(fences).await
    }

    async fn close(&self) {
        self.link.close().await;
    }

    async fn watch_releases(&self, keys: &[String]) -> Option<ReleaseWatch> {
        // Not admitted: an announcement grants nothing, it only shortens
        // a waiter's sleep before an attempt that is admitted as usual.
        self.link.watch_releases(keys).await
    }

    async fn set_fence(
        &self,
        keys: &[String],
        fences: FenceKeys<'_>,
        token: &Token,
        fence: Fence,
    ) -> Result<(), MasterFailure> {
        // Writes only where our token holds the keys, like a plain extend;
        // its vote counts toward the fence's quorum, so the identity and
        // generation rules apply.
        let pass = self.admit(Intent::Fence).await?;
        let reply = self.link.set_fence(keys, fences, token, fence).await;
        self.confirm(&pass)?;
        reply
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;
    use std::time::Duration;

    use futures::channel::oneshot;
    use futures::FutureExt;

    use super::*;

    /// The admission state of one master, restart guard off (the tests'
    /// masters have no past).
    fn one_master_admission() -> Arc<Mutex<Admission>> {
        let settings = crate::Settings::builder()
            .danger_disable_restart_guard(true)
            .build(1)
            .expect("settings");
        Arc::new(Mutex::new(Admission::for_settings(&settings)))
    }

    /// What a master reports: a run id of `c` repeated, role master.
    fn master_facts(c: char) -> MasterFacts {
        MasterFacts {
            run_id: c.to_string().repeat(40),
            role: "master".into(),
            uptime_secs: 1_000,
        }
    }

    /// A link whose connection is replaced when the test says so, and
    /// whose drain of that replacement can be held, to interleave two
    /// calls exactly.
    struct Replaced {
        installed: AtomicU64,
        seen: AtomicU64,
        /// The reply of the one pending acquire.
        reply: Mutex<Option<oneshot::Receiver<()>>>,
        /// When set, the next drain that finds a reconnect says so on
        /// `drained` and waits (at most 500 ms) on `resume`.
        hold: AtomicBool,
        drained: Mutex<Option<mpsc::Sender<()>>>,
        resume: Mutex<Option<mpsc::Receiver<()>>>,
        address: Arc<str>,
    }

    impl Master for Replaced {
        fn address(&self) -> &Arc<str> {
            &self.address
        }
        async fn acquire(&self, _: &[String], _: &Token, _: Ttl) -> Result<(), MasterFailure> {
            let reply = self.reply.lock().expect("reply").take();
            match reply {
                Some(rx) => rx.await.map_err(|_| MasterFailure::TimedOut),
                None => Ok(()),
            }
        }
        async fn extend(
            &self,
            _: &[String],
            _: &Token,
            _: Ttl,
            _: bool,
        ) -> Result<(), MasterFailure> {
            Ok(())
        }
        async fn release(&self, _: &[String], _: &Token) -> Result<(), MasterFailure> {
            Ok(())
        }
    }

    impl Link for Replaced {
        fn now(&self) -> Instant {
            Instant::now()
        }
        fn take_reconnects(&self) -> bool {
            let installed = self.installed.load(Ordering::SeqCst);
            let found = self.seen.swap(installed, Ordering::SeqCst) != installed;
            if found && self.hold.swap(false, Ordering::SeqCst) {
                let drained = self.drained.lock().expect("drained").take();
                let resume = self.resume.lock().expect("resume").take();
                if let (Some(drained), Some(resume)) = (drained, resume) {
                    let _ = drained.send(());
                    let _ = resume.recv_timeout(Duration::from_millis(500));
                }
            }
            found
        }
        fn identify(&self) -> BoxFuture<'static, Result<(Instant, MasterFacts), MasterFailure>> {
            Box::pin(async { Err(MasterFailure::TimedOut) })
        }
        fn sample_clock(&self) -> BoxFuture<'static, Option<ClockSample>> {
            Box::pin(async { None })
        }
        fn spawn(&self, _: BoxFuture<'static, ()>) {}
    }

    /// Call B passed the gate and sent its acquire; the connection was
    /// then replaced, and B's reply comes over the new one. Call X
    /// drains that reconnect first, and B confirms while X has not yet
    /// recorded it. B's reply must not count: the drain and the record
    /// are one step. (Before they were, B counted a grant from a server
    /// nobody had verified.)
    #[test]
    fn a_reconnect_drained_by_another_call_still_voids_a_reply() {
        let admission = one_master_admission();
        let facts = master_facts('a');
        lock(&admission)
            .verified(0, 0, Instant::now(), &facts)
            .expect("verified");
        let (reply_tx, reply_rx) = oneshot::channel();
        let (drained_tx, drained_rx) = mpsc::channel();
        let (resume_tx, resume_rx) = mpsc::channel();
        let link = Replaced {
            installed: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            reply: Mutex::new(Some(reply_rx)),
            hold: AtomicBool::new(false),
            drained: Mutex::new(Some(drained_tx)),
            resume: Mutex::new(Some(resume_rx)),
            address: Arc::from("test"),
        };
        let master = Admitted::new(link, 0, admission);
        let (keys, token) = (vec!["k".to_owned()], Token::from_bytes([7; 16]));
        let ttl = Ttl::from_millis(10_000).expect("ttl");

        // B: through the gate, its acquire in flight.
        let mut b = Box::pin(master.acquire(&keys, &token, ttl));
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        assert!(b.poll_unpin(&mut cx).is_pending(), "B waits for its reply");

        // The connection is replaced; X's next call drains it and is held
        // right after the drain.
        master.link().installed.fetch_add(1, Ordering::SeqCst);
        master.link().hold.store(true, Ordering::SeqCst);
        let outcome = std::thread::scope(|scope| {
            let x = scope.spawn(|| master.release(&keys, &token).now_or_never());
            drained_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("X drained the reconnect");
            // B's reply arrives over the new connection, and B confirms.
            // With the fix, B waits here for the admission lock that X
            // holds until its 500 ms hold runs out (`resume` comes only
            // after B): then X records the reconnect, and B sees it. On
            // the old order B confirmed at once against the old
            // generation (the test still passes there if this thread
            // stalls for the whole 500 ms: a weaker regression check,
            // never a false failure).
            reply_tx.send(()).expect("B waits");
            let outcome = (0..1_000)
                .find_map(|_| match b.poll_unpin(&mut cx) {
                    std::task::Poll::Ready(outcome) => Some(outcome),
                    std::task::Poll::Pending => None,
                })
                .expect("B completes once its reply is there");
            let _ = resume_tx.send(());
            let x = x.join().expect("X");
            assert!(x.is_some(), "X's release needs no await");
            outcome
        });
        assert!(
            outcome.is_err(),
            "a reply over a replaced connection counted: {outcome:?}"
        );
    }

    type Identity = Result<(Instant, MasterFacts), MasterFailure>;

    /// A link whose identity checks wait for answers the test gives, in
    /// the order the checks were asked, and whose spawned tasks the test
    /// polls by hand.
    struct Checked {
        answers: Mutex<Vec<oneshot::Receiver<Identity>>>,
        asked: AtomicU64,
        tasks: Mutex<Vec<BoxFuture<'static, ()>>>,
        address: Arc<str>,
    }

    impl Master for Checked {
        fn address(&self) -> &Arc<str> {
            &self.address
        }
        async fn acquire(&self, _: &[String], _: &Token, _: Ttl) -> Result<(), MasterFailure> {
            Ok(())
        }
        async fn extend(
            &self,
            _: &[String],
            _: &Token,
            _: Ttl,
            _: bool,
        ) -> Result<(), MasterFailure> {
            Ok(())
        }
        async fn release(&self, _: &[String], _: &Token) -> Result<(), MasterFailure> {
            Ok(())
        }
    }

    impl Link for Checked {
        fn now(&self) -> Instant {
            Instant::now()
        }
        fn take_reconnects(&self) -> bool {
            false
        }
        fn identify(&self) -> BoxFuture<'static, Result<(Instant, MasterFacts), MasterFailure>> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            let mut answers = self.answers.lock().expect("answers");
            // More checks than the test answers: counted, and failed.
            let answer = (!answers.is_empty()).then(|| answers.remove(0));
            Box::pin(async move {
                match answer {
                    Some(answer) => answer.await.unwrap_or(Err(MasterFailure::TimedOut)),
                    None => Err(MasterFailure::Unreachable("unexpected check".into())),
                }
            })
        }
        fn sample_clock(&self) -> BoxFuture<'static, Option<ClockSample>> {
            Box::pin(async { None })
        }
        fn spawn(&self, task: BoxFuture<'static, ()>) {
            self.tasks.lock().expect("tasks").push(task);
        }
    }

    impl Checked {
        /// Polls every spawned task once, dropping the finished ones.
        fn run_tasks(&self) {
            let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
            self.tasks
                .lock()
                .expect("tasks")
                .retain_mut(|t| t.poll_unpin(&mut cx).is_pending());
        }
    }

    /// A paused master that needs an identity check got one `INFO` per
    /// call: every vote spawned its own check, each waiting out its
    /// timeout, and they piled up on the master's socket. Calls that need
    /// a check while one is in flight for the same connection now share
    /// it; a check that ended (here: failed) is not reused.
    #[test]
    fn calls_needing_an_identity_check_share_the_one_in_flight() {
        let admission = one_master_admission();
        let (first_tx, first_rx) = oneshot::channel();
        let (second_tx, second_rx) = oneshot::channel();
        let link = Checked {
            answers: Mutex::new(vec![first_rx, second_rx]),
            asked: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            address: Arc::from("test"),
        };
        let master = Admitted::new(link, 0, admission);
        let (keys, token) = (vec!["k".to_owned()], Token::from_bytes([7; 16]));
        let ttl = Ttl::from_millis(10_000).expect("ttl");
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());

        let mut calls: Vec<_> = (0..3)
            .map(|_| Box::pin(master.acquire(&keys, &token, ttl)))
            .collect();
        for call in &mut calls {
            assert!(call.poll_unpin(&mut cx).is_pending(), "waits for the check");
        }
        master.link().run_tasks();
        assert_eq!(master.link().asked.load(Ordering::SeqCst), 1, "one check");

        // That check fails: every call that waited for it fails with it.
        first_tx.send(Err(MasterFailure::TimedOut)).expect("asked");
        master.link().run_tasks();
        for call in &mut calls {
            match call.poll_unpin(&mut cx) {
                std::task::Poll::Ready(Err(MasterFailure::TimedOut)) => {}
                other => panic!("expected the check's timeout, got {other:?}"),
            }
        }

        // The next call asks again, and proceeds on the answer.
        let mut next = Box::pin(master.acquire(&keys, &token, ttl));
        assert!(next.poll_unpin(&mut cx).is_pending());
        master.link().run_tasks();
        assert_eq!(master.link().asked.load(Ordering::SeqCst), 2, "asked again");
        let facts = master_facts('b');
        second_tx.send(Ok((Instant::now(), facts))).expect("asked");
        master.link().run_tasks();
        assert!(matches!(
            next.poll_unpin(&mut cx),
            std::task::Poll::Ready(Ok(()))
        ));
    }
}
