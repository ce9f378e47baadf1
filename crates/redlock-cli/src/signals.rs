//! Signals received by `redlock`, as an async stream of signal numbers.
//!
//! Once a handler is installed the signal no longer kills the process, so
//! every subcommand decides what a signal means: `exec` forwards it to CMD,
//! `bench` and `inspect` stop and return, so that destructors run (spawned
//! servers are stopped, locks released).

use std::future::poll_fn;
use std::task::Poll;

use rustix::process::Signal as Sig;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::output::Failure;

/// Signals that stop `bench` and `inspect`.
pub(crate) const STOP: &[i32] = &[
    Sig::INT.as_raw(),
    Sig::TERM.as_raw(),
    Sig::HUP.as_raw(),
    Sig::QUIT.as_raw(),
];

/// Signals `exec` forwards to CMD.
pub(crate) const FORWARD: &[i32] = &[
    Sig::INT.as_raw(),
    Sig::TERM.as_raw(),
    Sig::HUP.as_raw(),
    Sig::QUIT.as_raw(),
    Sig::USR1.as_raw(),
    Sig::USR2.as_raw(),
];

/// Handlers for a set of signals.
#[derive(Debug)]
pub(crate) struct Signals {
    streams: Vec<(i32, Signal)>,
}

impl Signals {
    /// Installs handlers for `which`. Must run inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// When the runtime cannot register a handler (status 70).
    pub(crate) fn install(which: &[i32]) -> Result<Self, Failure> {
        let streams = which
            .iter()
            .map(|&n| {
                signal(SignalKind::from_raw(n))
                    .map(|s| (n, s))
                    .map_err(|e| {
                        Failure::software(format_args!(
                            "cannot handle {}: {e}",
                            crate::sys::signal_name(n)
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { streams })
    }

    /// The next signal received.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a signal that arrives while no one waits is kept until
    /// the next call.
    pub(crate) async fn recv(&mut self) -> i32 {
        poll_fn(|cx| {
            for (n, s) in &mut self.streams {
                if s.poll_recv(cx).is_ready() {
                    return Poll::Ready(*n);
                }
            }
            Poll::Pending
        })
        .await
    }
}
