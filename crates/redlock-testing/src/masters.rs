//! A set of independent Redis masters.

use std::ops::{Index, IndexMut};

use crate::server::report;
use crate::spawn::Launched;
use crate::{redis_server_path, Error, RedisServer, ServerOptions};

/// `N` independent masters (no replication), each its own process on its own
/// port — the deployment Redlock assumes.
#[derive(Debug)]
pub struct Masters {
    servers: Vec<RedisServer>,
}

impl Masters {
    /// Starts `n` masters with default options.
    ///
    /// # Panics
    /// If any of them cannot be started (those already started are stopped).
    pub fn start(n: usize) -> Self {
        Self::start_with(n, ServerOptions::default())
    }

    /// Starts `n` masters, all with `opts`.
    ///
    /// # Panics
    /// If any of them cannot be started (those already started are stopped).
    pub fn start_with(n: usize, opts: ServerOptions) -> Self {
        Self::try_start_with(n, opts).unwrap_or_else(|e| panic!("{}", report(&e)))
    }

    /// Starts `n` masters, all with `opts`, returning the failure instead
    /// of panicking.
    ///
    /// All `n` are spawned first, then awaited, so the start-up time is
    /// paid once rather than `n` times. They are spawned from the calling
    /// thread, which matters with
    /// [`ServerOptions::with_parent_death_signal`].
    ///
    /// # Errors
    /// As [`RedisServer::try_start_with`]. Servers already started are
    /// stopped (and their directories removed) before it returns.
    pub fn try_start_with(n: usize, opts: ServerOptions) -> Result<Self, Error> {
        let bin = redis_server_path()?;
        // Each launched server is owned from its spawn on: an early return
        // drops (kills, reaps) every one started so far.
        let launched = (0..n)
            .map(|_| Launched::spawn(&bin, &opts))
            .collect::<Result<Vec<_>, _>>()?;
        let mut servers = Vec::with_capacity(n);
        for l in launched {
            let ready = l.ready(&bin, &opts)?;
            servers.push(RedisServer::from_ready(ready, opts.clone(), bin.clone()));
        }
        Ok(Self { servers })
    }

    /// The URL of every master, in index order.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(RedisServer::url).collect()
    }

    /// The URLs joined with `,` (the `REDLOCK_MASTERS` format).
    pub fn urls_csv(&self) -> String {
        self.urls().join(",")
    }

    /// Master `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn get(&self, i: usize) -> &RedisServer {
        &self.servers[i]
    }

    /// Master `i`, mutably (for `kill`/`restart`).
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn get_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.servers[i]
    }

    /// Number of masters.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there are no masters.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Iterates over the masters in index order.
    pub fn iter(&self) -> impl Iterator<Item = &RedisServer> {
        self.servers.iter()
    }

    /// Iterates mutably over the masters in index order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut RedisServer> {
        self.servers.iter_mut()
    }

    /// All keys matching `pattern` on every master that is running and not
    /// paused (killed and paused masters cannot be asked and are skipped),
    /// as `(master index, key)`.
    pub fn keys_everywhere(&self, pattern: &str) -> Vec<(usize, String)> {
        self.servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_running() && !s.is_paused())
            .flat_map(|(i, s)| s.keys(pattern).into_iter().map(move |k| (i, k)))
            .collect()
    }
}

impl Index<usize> for Masters {
    type Output = RedisServer;

    fn index(&self, i: usize) -> &RedisServer {
        &self.servers[i]
    }
}

impl IndexMut<usize> for Masters {
    fn index_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.servers[i]
    }
}

impl<'a> IntoIterator for &'a Masters {
    type Item = &'a RedisServer;
    type IntoIter = std::slice::Iter<'a, RedisServer>;

    fn into_iter(self) -> Self::IntoIter {
        self.servers.iter()
    }
}
