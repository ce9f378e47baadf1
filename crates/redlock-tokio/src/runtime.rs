//! The production [`Runtime`]: the one place where the algorithm's time,
//! sleep, randomness and background tasks meet the operating system and
//! tokio. `redlock-core` reads none of them itself.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use rand::RngCore;
use redlock_core::{Holder, Runtime};

/// The production runtime: the suspend-aware clock [`now`], tokio's timer
/// and spawner, the thread-local RNG for retry jitter, and a CSPRNG seeded
/// by the operating system for lock tokens.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn now(&self) -> Instant {
        now()
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }

    fn random_u64(&self) -> u64 {
        rand::thread_rng().next_u64()
    }

    fn fill_secret(&self, dest: &mut [u8]) {
        // A token must not be guessable by another client. rand's
        // `ThreadRng` is a CSPRNG (ChaCha12) seeded from the operating
        // system and reseeded periodically and after a fork; it spares
        // every acquisition a getrandom(2) system call.
        rand::thread_rng().fill_bytes(dest);
    }

    fn holder(&self, label: Option<&str>) -> Holder {
        // The host name is read once (uname(2)), not at every acquisition.
        static HOST: OnceLock<String> = OnceLock::new();
        let host = HOST.get_or_init(|| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        });
        let since_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Holder::new(host, std::process::id(), since_unix_ms, label)
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

/// The clock every production validity is measured on: an [`Instant`]
/// that, on Linux, also advances while the machine is suspended.
///
/// `Instant::now()` reads `CLOCK_MONOTONIC`, which stops while a machine
/// (or a VM) is suspended; the masters' clocks do not, so their keys
/// expire during the suspension while a validity measured on
/// `CLOCK_MONOTONIC` would still trust them. This clock reads
/// `CLOCK_BOOTTIME` (which counts suspended time) and maps it onto
/// `Instant`s: the first call anchors both clocks, and every later reading
/// is the anchor plus the boot-time elapsed since. After a suspension its
/// instants run ahead of `Instant::now()` by the time suspended, which is
/// the point: validity passes, and the adapter's timers (which sleep in
/// bounded steps and re-read this clock) notice within a step.
///
/// Elsewhere than Linux it is `Instant::now()`.
pub fn now() -> Instant {
    #[cfg(target_os = "linux")]
    {
        fn boottime() -> Duration {
            let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
            // The kernel's boot time is never negative.
            Duration::new(
                u64::try_from(ts.tv_sec).unwrap_or(0),
                u32::try_from(ts.tv_nsec).unwrap_or(0),
            )
        }
        static ANCHOR: OnceLock<(Instant, Duration)> = OnceLock::new();
        let (at, boot) = *ANCHOR.get_or_init(|| (Instant::now(), boottime()));
        let elapsed = boottime().saturating_sub(boot);
        // Far beyond any uptime: fall back rather than panic.
        at.checked_add(elapsed).unwrap_or_else(Instant::now)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use redlock_core::Token;

    use super::*;

    #[test]
    fn tokens_are_128_bit_hex_and_unique() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let t = Token::random(&TokioRuntime);
            assert_eq!(t.expose().len(), 32);
            assert!(Token::parse(t.expose()).is_ok());
            assert!(seen.insert(t));
        }
    }

    #[test]
    fn a_million_tokens_have_no_duplicate() {
        // 128 random bits: a collision among 10^6 has probability ~1e-27, so
        // a duplicate here means the generator is broken (seeded, reused).
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            assert!(
                seen.insert(Token::random(&TokioRuntime).expose().to_owned()),
                "duplicate token"
            );
        }
    }

    #[test]
    fn the_holder_is_this_process() {
        let holder = TokioRuntime.holder(Some("nightly"));
        assert_eq!(holder.pid(), std::process::id());
        assert!(!holder.host().is_empty());
        assert_eq!(holder.label(), Some("nightly"));
        let token = Token::with_holder(&TokioRuntime, &holder);
        assert_eq!(token.holder(), Some(holder));
    }

    #[test]
    fn now_is_monotonic() {
        let mut last = now();
        for _ in 0..1000 {
            let t = now();
            assert!(t >= last);
            last = t;
        }
    }
}
