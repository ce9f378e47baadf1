//! The masters' answers to one round of commands, as they come.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::stream::{FuturesUnordered, Stream, StreamExt};

/// The outputs of a set of futures in the order they finish, like the
/// [`FuturesUnordered`] it holds for two futures or more, except that
/// **every future is polled once before any output is given**: each
/// master's future sends its command when first polled, and a master may
/// answer within that same poll (an in-memory one always does; over a
/// socket the reply can be read at once when the thread was held up
/// after the write). A `FuturesUnordered` returns the first output it
/// gets, so a quorum answering at once decided the round before the last
/// masters' futures were ever polled, and they were dropped with the
/// round, never sent: a lock that stood on a bare quorum.
///
/// A single future is polled directly instead: a `FuturesUnordered`
/// allocates a queue, a stub task and a task per future (holding the
/// future, a few kB for a vote), which were 3 of the 37 allocations of a
/// one-master lock cycle for each round (`docs/benchmarks.md`).
///
/// Unpin whatever the futures are, so that it can be moved into a
/// background task half-way through.
pub(crate) enum Answers<F: Future> {
    /// One future, until it finished.
    One(Option<Pin<Box<F>>>),
    /// Two or more.
    Many {
        running: FuturesUnordered<Started<F>>,
        /// Outputs that came while the first poll went on to start the
        /// rest, given out first.
        early: VecDeque<F::Output>,
        /// Every future has been polled.
        started: bool,
    },
}

pin_project_lite::pin_project! {
    /// A future that notes it was polled.
    pub(crate) struct Started<F> {
        #[pin]
        future: F,
        started: bool,
    }
}

impl<F: Future> Future for Started<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        *this.started = true;
        this.future.poll(cx)
    }
}

impl<F: Future> Answers<F> {
    /// No future left and no output to give: nothing to wait for,
    /// nothing to hand over.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Self::One(one) => one.is_none(),
            Self::Many { running, early, .. } => running.is_empty() && early.is_empty(),
        }
    }

    /// Takes the futures still running (and outputs not yet given),
    /// leaving none (without allocating).
    pub(crate) fn hand_over(&mut self) -> Self {
        std::mem::replace(self, Self::One(None))
    }
}

impl<F: Future> FromIterator<F> for Answers<F> {
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let Some(first) = iter.next() else {
            return Self::One(None);
        };
        match iter.next() {
            None => Self::One(Some(Box::pin(first))),
            Some(second) => Self::Many {
                running: [first, second]
                    .into_iter()
                    .chain(iter)
                    .map(|future| Started {
                        future,
                        started: false,
                    })
                    .collect(),
                early: VecDeque::new(),
                started: false,
            },
        }
    }
}

/// Unpin outputs (the masters' answers), so that the stream is Unpin
/// whatever the futures are.
impl<F: Future> Stream for Answers<F>
where
    F::Output: Unpin,
{
    type Item = F::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        match self.get_mut() {
            Self::One(slot) => {
                let Some(future) = slot.as_mut() else {
                    return Poll::Ready(None);
                };
                let out = ready!(future.as_mut().poll(cx));
                *slot = None;
                Poll::Ready(Some(out))
            }
            Self::Many {
                running,
                early,
                started,
            } => {
                // Until every future has been polled: poll on, keeping
                // what comes meanwhile. Each round polls at least one not
                // yet started: they are queued in order, ahead of any
                // future woken since (a `Pending` here may also be
                // `FuturesUnordered` yielding before it reached them).
                while !*started {
                    if Pin::new(&*running)
                        .iter_pin_ref()
                        .all(|f| f.get_ref().started)
                    {
                        *started = true;
                        break;
                    }
                    match running.poll_next_unpin(cx) {
                        Poll::Ready(Some(out)) => early.push_back(out),
                        Poll::Ready(None) => break,
                        Poll::Pending => {}
                    }
                }
                if let Some(out) = early.pop_front() {
                    return Poll::Ready(Some(out));
                }
                running.poll_next_unpin(cx)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::One(one) => {
                let n = usize::from(one.is_some());
                (n, Some(n))
            }
            Self::Many { running, early, .. } => {
                let n = running.len() + early.len();
                (n, Some(n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::oneshot;
    use futures::FutureExt;

    #[test]
    fn none_one_and_many_give_every_output_once() {
        for n in 0..4usize {
            let answers: Answers<_> = (0..n).map(futures::future::ready).collect();
            assert!(matches!(answers, Answers::One(_)) == (n <= 1), "{n}");
            assert_eq!(answers.is_empty(), n == 0);
            let mut got = answers
                .collect::<Vec<_>>()
                .now_or_never()
                .expect("all ready");
            got.sort_unstable();
            assert_eq!(got, (0..n).collect::<Vec<_>>());
        }
    }

    /// The first answers may be there at once (a master that answers
    /// within the poll that sent its command): the futures after them
    /// must still be polled, that is, their commands sent, before any
    /// answer is given out. A round decided by those first answers drops
    /// the rest, and a future dropped unpolled never sent anything.
    #[test]
    fn every_future_is_polled_before_the_first_output_is_given() {
        use std::sync::atomic::{AtomicBool, Ordering};
        for n in 2..6usize {
            let polled: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
            let polled = &polled;
            // All but the last answer within their first poll.
            let mut answers: Answers<_> = (0..n)
                .map(|i| async move {
                    polled[i].store(true, Ordering::Relaxed);
                    if i == n - 1 {
                        futures::future::pending::<()>().await;
                    }
                    i
                })
                .collect();
            let first = answers.next().now_or_never().expect("one is ready");
            assert!(first.is_some_and(|i| i < n - 1), "{first:?}");
            let unpolled: Vec<usize> = (0..n)
                .filter(|&i| !polled[i].load(Ordering::Relaxed))
                .collect();
            assert_eq!(unpolled, Vec::<usize>::new(), "{n} futures");
            // The ready ones still come out, each once, then nothing.
            let mut got = vec![first.expect("checked")];
            while let Some(Some(i)) = answers.next().now_or_never() {
                got.push(i);
            }
            got.sort_unstable();
            assert_eq!(got, (0..n - 1).collect::<Vec<_>>());
            assert!(!answers.is_empty(), "the pending one is left");
        }
    }

    #[test]
    fn outputs_come_in_the_order_the_futures_finish() {
        let (tx0, rx0) = oneshot::channel::<u8>();
        let (tx1, rx1) = oneshot::channel::<u8>();
        let mut answers: Answers<_> = [rx0, rx1].into_iter().collect();
        assert!(answers.next().now_or_never().is_none());
        tx1.send(1).expect("receiver alive");
        assert_eq!(answers.next().now_or_never(), Some(Some(Ok(1))));
        tx0.send(0).expect("receiver alive");
        assert_eq!(answers.next().now_or_never(), Some(Some(Ok(0))));
        assert_eq!(answers.next().now_or_never(), Some(None));
        assert!(answers.is_empty());
    }

    #[test]
    fn one_pending_future_is_handed_over_and_finishes_later() {
        let (tx, rx) = oneshot::channel::<u8>();
        let mut answers: Answers<_> = std::iter::once(rx).collect();
        assert!(answers.next().now_or_never().is_none());
        let mut rest = answers.hand_over();
        assert!(answers.is_empty() && !rest.is_empty());
        assert_eq!(answers.next().now_or_never(), Some(None));
        tx.send(7).expect("receiver alive");
        assert_eq!(rest.next().now_or_never(), Some(Some(Ok(7))));
        assert!(rest.is_empty());
    }
}
