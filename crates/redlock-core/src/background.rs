//! Counting a manager's background tasks, so that a process about to exit
//! can wait for them.

use std::sync::Arc;

use futures::channel::oneshot;

/// Background work of one manager (releases finishing after their
/// decision, cleanups after refused attempts), counted so that a process
/// about to exit can wait for it ([`Redlock::background_idle`](crate::Redlock::background_idle)).
#[derive(Debug, Default)]
pub(crate) struct Background {
    state: std::sync::Mutex<(usize, Vec<oneshot::Sender<()>>)>,
}

impl Background {
    fn state(&self) -> std::sync::MutexGuard<'_, (usize, Vec<oneshot::Sender<()>>)> {
        // A counter and a list of senders: a panic elsewhere cannot tear them.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn enter(self: &Arc<Self>) -> BackgroundTicket {
        self.state().0 += 1;
        BackgroundTicket(Arc::clone(self))
    }

    pub(crate) async fn idle(&self) {
        let rx = {
            let mut st = self.state();
            if st.0 == 0 {
                return;
            }
            let (tx, rx) = oneshot::channel();
            st.1.push(tx);
            rx
        };
        let _ = rx.await;
    }
}

/// Held by one background task; dropping it (the task finished, or was
/// dropped with its runtime) counts the task out.
pub(crate) struct BackgroundTicket(Arc<Background>);

impl Drop for BackgroundTicket {
    fn drop(&mut self) {
        let mut st = self.0.state();
        st.0 = st.0.saturating_sub(1);
        if st.0 == 0 {
            for tx in st.1.drain(..) {
                let _ = tx.send(());
            }
        }
    }
}
