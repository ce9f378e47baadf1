//! Release announcements from one master, for waiters
//! ([`LockManagerBuilder::wake_on_release`](crate::LockManagerBuilder::wake_on_release)).
//!
//! With the switch on, the release script `PUBLISH`es on a channel named
//! after each key it deleted (the lock key itself: channels and keys are
//! separate namespaces), and a waiter that was refused once subscribes to
//! its keys' channels on every master before its next attempt; an
//! announcement wakes it from its retry delay at once. The core treats an
//! announcement as a hint only (see `Master::watch_releases`): it grants
//! nothing, and a lost one costs one retry delay.
//!
//! Per master and manager, one extra connection, opened with the manager
//! and idle until a waiter subscribes (an uncontended acquisition sends
//! nothing on it), carries every subscription:
//! - **Bounded.** At most [`MAX_CHANNELS`] channels per master; past that,
//!   waiters poll. The core waits for a `SUBSCRIBE` at most the
//!   per-master timeout before the waiter's next attempt; one that lands
//!   later makes it retry then, and it polls meanwhile, never hanging
//!   (the failure mode of pub/sub-only waits, as in Spring's
//!   `RedisLockRegistry`).
//! - **Confirmed.** fred answers a `SUBSCRIBE` as soon as it is written;
//!   a `PING` on the same connection after it answers once the server has
//!   processed the `SUBSCRIBE`, which is what "subscribed before the next
//!   attempt" needs.
//! - **Ordered.** `SUBSCRIBE` and `UNSUBSCRIBE` go out from one task, in
//!   the order the waiters came and went, so a channel dropped by the
//!   last waiter and taken again by the next is never left unsubscribed.
//! - **Counted.** A channel is subscribed while at least one waiter of
//!   this manager watches it; the last one to leave unsubscribes it.
//! - **Re-sent.** After the connection is re-established, every channel
//!   still watched is subscribed again. A `SUBSCRIBE` or `UNSUBSCRIBE`
//!   that got no answer (fred drops a command that timed out before it
//!   was written: a starved router on a loaded machine, a connection
//!   coming up) is sent again while connected, backing off up to a second,
//!   until the server has processed it; what is sent then follows who
//!   watches the channel at that moment. Only an error reply from the
//!   server (an ACL without the channel, say) leaves the waiters polling.
//!
//! A waiter that joins a channel another waiter of the process is still
//! subscribing does not wait for that confirmation: in that short window
//! an announcement can be missed, which costs one retry delay.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::Client;
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::config::Options;
use fred::types::{Builder, Value};
use futures::stream::{self, StreamExt};
use redlock_core::ReleaseWatch;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::link::command;

/// Channels one master's subscriber connection carries at most.
pub(crate) const MAX_CHANNELS: usize = 10_000;

/// What the subscriber task is asked to do, in order.
enum Command {
    /// Subscribe to these channels; answered `true` once the server has
    /// processed it, `false` if it refused.
    Subscribe(Vec<String>, oneshot::Sender<bool>),
    /// Unsubscribe from these channels (no waiter left on them).
    Unsubscribe(Vec<String>),
    /// Close the connection ([`Announcements::close`]).
    Close,
}

/// How a `SUBSCRIBE` or `UNSUBSCRIBE` went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// The server has processed it.
    Done,
    /// No answer: the subscriber task sends it again.
    Unanswered,
    /// The server refused it.
    Refused,
}

/// Longest pause between two tries of an unanswered command.
const MAX_RESEND_DELAY: Duration = Duration::from_secs(1);

/// The watched channels: an announcement goes to every receiver of the
/// channel's sender; `watchers` counts the watches holding it.
#[derive(Default)]
struct Channels {
    by_name: HashMap<String, (broadcast::Sender<()>, usize)>,
}

/// One master's announcements (see the module docs).
pub(crate) struct Announcements {
    channels: Arc<Mutex<Channels>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Announcements {
    /// Announcements over a connection like `client`'s (same server, same
    /// settings), opened now by a task of its own; `options` are the
    /// link's per-call options (their timeout is the per-master timeout).
    pub(crate) fn new(client: &Client, options: &Options) -> Self {
        let timeout = options.timeout.unwrap_or(Duration::from_secs(1));
        let channels = Arc::new(Mutex::new(Channels::default()));
        let (commands, rx) = mpsc::unbounded_channel();
        // As the link's client, except that it keeps reconnecting from the
        // first connection on: with `fail_fast`, fred tries a client's
        // first connection once, and a master that was down then would
        // never announce anything to this manager.
        let mut config = client.client_config();
        config.fail_fast = false;
        let mut builder = Builder::from_config(config);
        builder
            .set_performance_config(client.perf_config())
            .set_connection_config(client.connection_config().clone());
        if let Some(policy) = client.client_reconnect_policy() {
            builder.set_policy(policy);
        }
        if let Ok(subscriber_client) = builder.build() {
            tokio::spawn(subscriber(
                subscriber_client,
                options.clone(),
                timeout,
                rx,
                Arc::clone(&channels),
            ));
        }
        // Without a client (fred refused the copied config, which it built
        // once already), every watch answers `None`: the waiters poll.
        Self { channels, commands }
    }

    /// Subscribes to the channels of `keys`; resolves once the server has
    /// processed the `SUBSCRIBE` (however long that takes: the core bounds
    /// its wait, and keeps polling) with a stream that yields once per
    /// announcement on any of them. `None` if the server refused it, the
    /// bound is reached, or the subscriber task is gone.
    pub(crate) async fn watch(&self, keys: &[String]) -> Option<ReleaseWatch> {
        let mut receivers = Vec::with_capacity(keys.len());
        let mut new = Vec::new();
        {
            let mut channels = lock(&self.channels);
            let fresh = keys
                .iter()
                .filter(|k| !channels.by_name.contains_key(*k))
                .count();
            if channels.by_name.len() + fresh > MAX_CHANNELS {
                return None;
            }
            for key in keys {
                let (sender, watchers) = channels.by_name.entry(key.clone()).or_insert_with(|| {
                    new.push(key.clone());
                    (broadcast::channel(1).0, 0)
                });
                *watchers += 1;
                receivers.push(sender.subscribe());
            }
        }
        // From here on the guard gives the channels back, whatever happens.
        let guard = Arc::new(Watch {
            channels: Arc::clone(&self.channels),
            commands: self.commands.clone(),
            keys: keys.to_vec(),
        });
        if !new.is_empty() {
            let (ack, confirmed) = oneshot::channel();
            self.commands.send(Command::Subscribe(new, ack)).ok()?;
            if !confirmed.await.unwrap_or(false) {
                return None;
            }
        }
        let streams = receivers.into_iter().map(move |rx| {
            let guard = Arc::clone(&guard);
            stream::unfold((rx, guard), |(mut rx, guard)| async move {
                match rx.recv().await {
                    Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some(((), (rx, guard))),
                    Err(broadcast::error::RecvError::Closed) => None,
                }
            })
            .boxed()
        });
        Some(stream::select_all(streams).boxed())
    }

    /// Closes the subscriber connection (the manager is shutting down);
    /// later watches answer `None`.
    pub(crate) fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

/// A waiter's hold on its channels: the last one to drop unsubscribes.
struct Watch {
    channels: Arc<Mutex<Channels>>,
    commands: mpsc::UnboundedSender<Command>,
    keys: Vec<String>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut channels = lock(&self.channels);
        let mut gone = Vec::new();
        for key in &self.keys {
            if let Some((_, watchers)) = channels.by_name.get_mut(key) {
                *watchers -= 1;
                if *watchers == 0 {
                    channels.by_name.remove(key);
                    gone.push(key.clone());
                }
            }
        }
        // Queued under the lock, so it cannot pass a later subscription of
        // the same channel.
        if !gone.is_empty() {
            let _ = self.commands.send(Command::Unsubscribe(gone));
        }
    }
}

/// The subscriber connection's task: connects at once, sends the commands
/// in order, hands announcements to the watchers, and subscribes again
/// after a reconnection. Ends when the link is closed or gone (every
/// sender dropped), closing the connection within `timeout`.
async fn subscriber(
    client: Client,
    options: Options,
    timeout: Duration,
    mut commands: mpsc::UnboundedReceiver<Command>,
    channels: Arc<Mutex<Channels>>,
) {
    // The connection task runs for the life of the client (its reconnect
    // policy never gives up); it is stopped below.
    let task = client.connect();
    let mut messages = client.message_rx();
    let mut reconnects = client.reconnect_rx();
    // Commands wait in their queue until the connection is up (a waiter
    // waits for its subscription at most the per-master timeout, and it
    // lands when the connection does), and they queue rather than fail
    // while fred reconnects, bounded by the per-master timeout.
    let connecting = client.connection_config().connection_timeout;
    let _ = tokio::time::timeout(connecting, client.wait_for_connect()).await;
    let options = Options {
        fail_fast: false,
        ..options
    };
    // Channels whose last `SUBSCRIBE` or `UNSUBSCRIBE` got no answer, the
    // waiters whose subscription waits on one, and when to try again.
    let mut unsure: BTreeSet<String> = BTreeSet::new();
    let mut waiting: Vec<oneshot::Sender<bool>> = Vec::new();
    let mut delay = timeout;
    let retry = tokio::time::sleep(Duration::MAX);
    tokio::pin!(retry);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Subscribe(names, ack)) => {
                    match send(&client, &options, Kind::Subscribe, &names).await {
                        Answer::Done => {
                            let _ = ack.send(true);
                        }
                        Answer::Refused => {
                            let _ = ack.send(false);
                        }
                        Answer::Unanswered => {
                            if unsure.is_empty() {
                                retry.as_mut().reset(tokio::time::Instant::now() + delay);
                            }
                            unsure.extend(names);
                            waiting.push(ack);
                        }
                    }
                }
                Some(Command::Unsubscribe(names)) => {
                    if send(&client, &options, Kind::Unsubscribe, &names).await == Answer::Unanswered {
                        if unsure.is_empty() {
                            retry.as_mut().reset(tokio::time::Instant::now() + delay);
                        }
                        unsure.extend(names);
                    }
                }
                Some(Command::Close) | None => break,
            },
            message = messages.recv() => match message {
                Ok(message) => {
                    let channels = lock(&channels);
                    if let Some((sender, _)) = channels.by_name.get(&*message.channel) {
                        let _ = sender.send(());
                    }
                }
                // Lost announcements only cost their waiters a retry delay.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            reconnect = reconnects.recv() => match reconnect {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    // A new connection carries no subscription: every
                    // channel still watched is subscribed, nothing else.
                    let names: Vec<String> = lock(&channels).by_name.keys().cloned().collect();
                    unsure.clear();
                    delay = timeout;
                    subscribe_watched(&client, &options, names, &mut unsure, &mut waiting).await;
                    if !unsure.is_empty() {
                        retry.as_mut().reset(tokio::time::Instant::now() + delay);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            () = &mut retry, if !unsure.is_empty() => {
                delay = (delay * 2).min(MAX_RESEND_DELAY);
                // While disconnected, the reconnection above sends it all.
                if client.is_connected() {
                    // What to send follows who watches each channel now.
                    let (watched, unwatched): (Vec<String>, Vec<String>) = {
                        let channels = lock(&channels);
                        std::mem::take(&mut unsure)
                            .into_iter()
                            .partition(|n| channels.by_name.contains_key(n))
                    };
                    // The longer it takes, the longer each try may wait.
                    let options = Options {
                        timeout: Some(delay.max(timeout)),
                        ..options.clone()
                    };
                    if !unwatched.is_empty()
                        && send(&client, &options, Kind::Unsubscribe, &unwatched).await
                            == Answer::Unanswered
                    {
                        unsure.extend(unwatched);
                    }
                    subscribe_watched(&client, &options, watched, &mut unsure, &mut waiting).await;
                }
                if unsure.is_empty() {
                    delay = timeout;
                } else {
                    retry.as_mut().reset(tokio::time::Instant::now() + delay);
                }
            },
        }
    }
    let _ = tokio::time::timeout(timeout, client.quit()).await;
    task.abort();
}

/// Which of the two commands [`send`] sends.
#[derive(Clone, Copy)]
enum Kind {
    Subscribe,
    Unsubscribe,
}

/// Sends `SUBSCRIBE` or `UNSUBSCRIBE` for `names`; done once a `PING`
/// behind it is answered, so the server has processed it (see the module
/// docs).
async fn send(client: &Client, options: &Options, kind: Kind, names: &[String]) -> Answer {
    let client = client.with_options(options);
    let sent = match kind {
        Kind::Subscribe => client.subscribe(names.to_vec()).await,
        Kind::Unsubscribe => client.unsubscribe(names.to_vec()).await,
    };
    let answered = match sent {
        Ok(()) => client
            .custom::<Value, Value>(command("PING"), Vec::<Value>::new())
            .await
            .map(drop),
        Err(e) => Err(e),
    };
    answer(&answered)
}

/// Sorts a reply: only an error reply from the server (a word in capitals
/// first, as `NOPERM` or `ERR`) is a refusal; fred's own errors (timed
/// out, disconnected, canceled, "Max attempts exceeded", ...) mean that the
/// server may never have seen the command, which is then sent again.
fn answer(reply: &Result<(), FredError>) -> Answer {
    match reply {
        Ok(()) => Answer::Done,
        Err(e) => {
            let code = e.details().split_whitespace().next().unwrap_or("");
            let from_server = code.len() >= 2 && code.bytes().all(|b| b.is_ascii_uppercase());
            if from_server {
                Answer::Refused
            } else {
                Answer::Unanswered
            }
        }
    }
}

/// Subscribes `names`, all still watched (none: nothing to send). Once
/// that is answered, every waiter whose subscription waited on an earlier
/// unanswered `SUBSCRIBE` gets the answer: confirmed unless the server
/// refused; without an answer, `names` go back to `unsure`.
async fn subscribe_watched(
    client: &Client,
    options: &Options,
    names: Vec<String>,
    unsure: &mut BTreeSet<String>,
    waiting: &mut Vec<oneshot::Sender<bool>>,
) {
    let answer = if names.is_empty() {
        Answer::Done
    } else {
        send(client, options, Kind::Subscribe, &names).await
    };
    if answer == Answer::Unanswered {
        unsure.extend(names);
    } else {
        for ack in waiting.drain(..) {
            let _ = ack.send(answer == Answer::Done);
        }
    }
}

/// The channel table guards plain data that no panic leaves half-written.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use fred::error::{Error as FredError, ErrorKind};

    use super::{answer, Answer};

    #[test]
    fn only_an_error_reply_from_the_server_is_a_refusal() {
        let err = |kind, details: &str| Err(FredError::new(kind, details.to_owned()));
        assert_eq!(answer(&Ok(())), Answer::Done);
        // Error replies, as fred turns them into errors.
        for reply in [
            "NOPERM this user has no permissions to access one of the channels used as arguments",
            "ERR unknown command 'SUBSCRIBE'",
        ] {
            assert_eq!(
                answer(&err(ErrorKind::Unknown, reply)),
                Answer::Refused,
                "{reply}"
            );
        }
        // fred's own: the server may never have seen the command.
        for (kind, details) in [
            (ErrorKind::Timeout, "Request timed out."),
            (ErrorKind::Unknown, "Max attempts exceeded"),
            (ErrorKind::Routing, "Max attempts reached."),
            (ErrorKind::IO, "Connection closed unexpectedly."),
            (ErrorKind::Canceled, "Canceled."),
            (ErrorKind::Unknown, ""),
        ] {
            assert_eq!(answer(&err(kind, details)), Answer::Unanswered, "{details}");
        }
    }
}
