//! The masters' answers to one round of commands, as they come.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::stream::{FuturesUnordered, Stream, StreamExt};

/// The outputs of a set of futures in the order they finish, like the
/// [`FuturesUnordered`] it holds for two futures or more. A single future
/// is polled directly instead: a `FuturesUnordered` allocates a queue, a
/// stub task and a task per future (holding the future, a few kB for a
/// vote), which were 3 of the 37 allocations of a one-master lock cycle
/// for each round (`docs/benchmarks.md`).
///
/// Unpin whatever the futures are, so that it can be moved into a
/// background task half-way through.
pub(crate) enum Answers<F> {
    /// One future, until it finished.
    One(Option<Pin<Box<F>>>),
    /// Two or more.
    Many(FuturesUnordered<F>),
}

impl<F> Answers<F> {
    /// No future left: nothing to wait for, nothing to hand over.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Self::One(one) => one.is_none(),
            Self::Many(many) => many.is_empty(),
        }
    }

    /// Takes the futures still running, leaving none (without allocating).
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
            Some(second) => Self::Many([first, second].into_iter().chain(iter).collect()),
        }
    }
}

impl<F: Future> Stream for Answers<F> {
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
            Self::Many(many) => many.poll_next_unpin(cx),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::One(one) => {
                let n = usize::from(one.is_some());
                (n, Some(n))
            }
            Self::Many(many) => many.size_hint(),
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
