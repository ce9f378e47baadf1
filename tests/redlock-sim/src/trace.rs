//! The event trace of a run: always a fingerprint (a hash of every event,
//! in order, with its virtual time), and the readable lines only when asked
//! for (replaying one seed), because formatting every message of 500 seeds
//! would cost more than simulating them.

use std::time::Duration;

/// Events of one run.
pub(crate) struct Trace {
    enabled: bool,
    hash: u64,
    events: u64,
    lines: Vec<String>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Trace {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            hash: FNV_OFFSET,
            events: 0,
            lines: Vec::new(),
        }
    }

    fn mix(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.hash ^= u64::from(*b);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
    }

    /// Records one event at true time `at`. `ids` go into the fingerprint;
    /// `line` is only formatted when the trace is enabled.
    pub(crate) fn event(
        &mut self,
        at: Duration,
        kind: &'static str,
        ids: [u64; 3],
        line: impl FnOnce() -> String,
    ) {
        self.events += 1;
        self.mix(&(at.as_nanos() as u64).to_le_bytes());
        self.mix(kind.as_bytes());
        for id in ids {
            self.mix(&id.to_le_bytes());
        }
        if self.enabled {
            self.lines
                .push(format!("{:>11.3}ms  {}", at.as_secs_f64() * 1e3, line()));
        }
    }

    /// The fingerprint and the number of events.
    pub(crate) fn fingerprint(&self) -> (u64, u64) {
        (self.hash, self.events)
    }

    /// The readable lines (empty unless enabled).
    pub(crate) fn take_lines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }
}
