//! Support code for the integration tests in `tests/`.
//!
//! Most tests need nothing from here. The chaos run (`tests/chaos.rs`) and
//! its worker process (`src/bin/chaos_worker.rs`) share:
//!
//! * [`sys`]: the system-wide monotonic clock every process logs on, and
//!   signals (SIGSTOP/SIGCONT) to our own child processes;
//! * [`events`]: the workers' event log, one line per event;
//! * [`checker`]: finds overlapping holds, overlapping protected actions
//!   and lost counter updates in those logs;
//! * [`proxy`]: a TCP proxy that delays, blackholes, cuts or refuses the
//!   traffic to one master.

pub mod checker;
pub mod events;
pub mod proxy;
pub mod sys;
