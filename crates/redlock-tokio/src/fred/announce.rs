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
//!   waiters poll. A waiter waits for its `SUBSCRIBE` at most the
//!   per-master timeout (the core bounds it too); a master that does not
//!   confirm in time leaves the subscription to land later, and the
//!   waiter polls meanwhile, never hanging (the failure mode of
//!   pub/sub-only waits, as in Spring's `RedisLockRegistry`).
//! - **Confirmed.** fred answers a `SUBSCRIBE` as soon as it is written;
//!   a `PING` on the same connection after it answers once the server has
//!   processed the `SUBSCRIBE`, which is what "subscribed before the next
//!   attempt" needs.
//! - **Ordered.** `SUBSCRIBE` and `UNSUBSCRIBE` go out from one task, in
//!   the order the waiters came and went, so a channel dropped by the
//!   last waiter and taken again by the next is never left unsubscribed.
//! - **Counted.** A channel is subscribed while at least one waiter of
//!   this manager watches it; the last one to leave unsubscribes it.
//! - **Re-subscribed.** After the connection is re-established, every
//!   channel still watched is subscribed again; a `SUBSCRIBE` that got no
//!   answer (the connection still coming up, a loaded or restarting
//!   server) is sent again, backing off up to a second, until it is
//!   confirmed or nobody watches its channels any more. Only a refusal by
//!   the server (an ACL without the channel, say) leaves the waiters
//!   polling.
//!
//! A waiter that joins a channel another waiter of the process is still
//! subscribing does not wait for that confirmation: in that short window
//! an announcement can be missed, which costs one retry delay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::config::Options;
use fred::types::{Builder, Value};
use futures::stream::{self, StreamExt};
use redlock_core::{MasterFailure, ReleaseWatch};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::link::command;
use super::reply::map_error;

/// Channels one master's subscriber connection carries at most.
pub(crate) const MAX_CHANNELS: usize = 10_000;

/// What the subscriber task is asked to do, in order.
enum Command {
    /// Subscribe to these channels and say how it went.
    Subscribe(Vec<String>, oneshot::Sender<Subscribed>),
    /// Unsubscribe from these channels (no waiter left on them).
    Unsubscribe(Vec<String>),
    /// Close the connection ([`Announcements::close`]).
    Close,
}

/// How a `SUBSCRIBE` went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subscribed {
    /// The server has processed it.
    Confirmed,
    /// No answer yet: the subscriber task sends it again until it is.
    Unanswered,
    /// The server refused it.
    Refused,
}

/// Longest pause between two tries of an unanswered `SUBSCRIBE`.
const MAX_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

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
    timeout: Duration,
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
        Self {
            channels,
            commands,
            timeout,
        }
    }

    /// Subscribes to the channels of `keys`; the stream yields once per
    /// announcement on any of them. `None` if the subscription was not
    /// confirmed within the per-master timeout or the bound is reached.
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
            match tokio::time::timeout(self.timeout, confirmed).await {
                // Confirmed; or not yet, and it lands later (announcements
                // from then on wake this waiter; it polls meanwhile).
                Ok(Ok(Subscribed::Confirmed | Subscribed::Unanswered)) | Err(_) => {}
                // Refused, or the subscriber task is gone.
                Ok(Ok(Subscribed::Refused) | Err(_)) => return None,
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
    // Channels whose `SUBSCRIBE` got no answer, and when to try again.
    let mut unanswered: Vec<String> = Vec::new();
    let mut delay = timeout;
    let retry = tokio::time::sleep(Duration::MAX);
    tokio::pin!(retry);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Subscribe(names, ack)) => {
                    let outcome = subscribe(&client, &options, &names).await;
                    if outcome == Subscribed::Unanswered {
                        if unanswered.is_empty() {
                            retry.as_mut().reset(tokio::time::Instant::now() + delay);
                        }
                        unanswered.extend(names);
                    }
                    let _ = ack.send(outcome);
                }
                Some(Command::Unsubscribe(names)) => {
                    let _ = client.with_options(&options).unsubscribe(names).await;
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
                    // Every channel still watched, the unanswered ones too.
                    let names: Vec<String> = lock(&channels).by_name.keys().cloned().collect();
                    unanswered.clear();
                    delay = timeout;
                    if !names.is_empty()
                        && subscribe(&client, &options, &names).await == Subscribed::Unanswered
                    {
                        unanswered = names;
                        retry.as_mut().reset(tokio::time::Instant::now() + delay);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            () = &mut retry, if !unanswered.is_empty() => {
                // Those still watched; the others' waiters are gone.
                let names: Vec<String> = {
                    let channels = lock(&channels);
                    unanswered.drain(..).filter(|n| channels.by_name.contains_key(n)).collect()
                };
                if !names.is_empty()
                    && subscribe(&client, &options, &names).await == Subscribed::Unanswered
                {
                    unanswered = names;
                    delay = (delay * 2).min(MAX_RESUBSCRIBE_DELAY);
                    retry.as_mut().reset(tokio::time::Instant::now() + delay);
                } else {
                    delay = timeout;
                }
            },
        }
    }
    let _ = tokio::time::timeout(timeout, client.quit()).await;
    task.abort();
}

/// Subscribes the connection to `names`; confirmed once a `PING` behind
/// the `SUBSCRIBE` is answered, so the server has processed it (see the
/// module docs).
async fn subscribe(client: &Client, options: &Options, names: &[String]) -> Subscribed {
    let client = client.with_options(options);
    let answered = match client.subscribe(names.to_vec()).await {
        Ok(()) => {
            client
                .custom::<Value, Value>(command("PING"), Vec::<Value>::new())
                .await
        }
        Err(e) => Err(e),
    };
    match answered.as_ref().map_err(map_error) {
        Ok(_) => Subscribed::Confirmed,
        Err(MasterFailure::TimedOut | MasterFailure::Unreachable(_)) => Subscribed::Unanswered,
        Err(_) => Subscribed::Refused,
    }
}

/// The channel table guards plain data that no panic leaves half-written.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
