//! An experiment, not a backend: [`Master`] over a redis-rs multiplexed
//! connection, so that the benchmarks can run the very same
//! `redlock-core` over two clients (fred, the library's; redis-rs,
//! rslock's) and tell what the client costs from what the algorithm
//! costs. It speaks only what the sequential and concurrent cycles need
//! (acquire, extend, release, with the core's scripts) and none of the
//! admission checks of `redlock-tokio`'s `RedisMaster`: do not use it for
//! locks.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Script, Value};
use redlock_core::{scripts, Master, MasterFailure, Token, Ttl};

/// One master over one redis-rs multiplexed connection.
pub struct RedisRsMaster {
    conn: MultiplexedConnection,
    address: Arc<str>,
    timeout: Duration,
    acquire: Script,
    extend: Script,
    release: Script,
}

impl RedisRsMaster {
    /// Connects to `url`; every command is bounded by `timeout`.
    ///
    /// # Errors
    ///
    /// When the master cannot be reached.
    pub async fn connect(url: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        Ok(Self {
            conn,
            address: Arc::from(url),
            timeout,
            acquire: Script::new(scripts::ACQUIRE),
            extend: Script::new(scripts::EXTEND),
            release: Script::new(scripts::RELEASE),
        })
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, MasterFailure> {
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(MasterFailure::TimedOut),
            Ok(Err(e)) if e.is_io_error() => Err(MasterFailure::Unreachable(e.to_string())),
            Ok(Err(e)) => Err(MasterFailure::Server(e.to_string())),
            Ok(Ok(v)) => Ok(v),
        }
    }

    async fn script(
        &self,
        script: &Script,
        keys: &[String],
        args: &[&str],
    ) -> Result<i64, MasterFailure> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key.as_str());
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let mut conn = self.conn.clone();
        self.bounded(invocation.invoke_async::<i64>(&mut conn))
            .await
    }
}

impl Master for RedisRsMaster {
    fn address(&self) -> &Arc<str> {
        &self.address
    }

    async fn acquire(&self, keys: &[String], token: &Token, ttl: Ttl) -> Result<(), MasterFailure> {
        let ttl = ttl.as_millis().to_string();
        // As `FredLink`: `SET NX GET` for one key, the script when the key
        // is already ours or for several keys.
        if let [key] = keys {
            let mut conn = self.conn.clone();
            let mut set = redis::cmd("SET");
            set.arg(key.as_str())
                .arg(token.expose())
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_str())
                .arg("GET");
            match self.bounded(set.query_async::<Value>(&mut conn)).await? {
                Value::Nil => return Ok(()),
                Value::BulkString(v) if v == token.expose().as_bytes() => {}
                Value::BulkString(_) => return Err(MasterFailure::Held),
                other => return Err(MasterFailure::BadReply(format!("{other:?}"))),
            }
        }
        let n = self
            .script(&self.acquire, keys, &[token.expose(), &ttl])
            .await?;
        scripts::acquire_outcome(n)
    }

    async fn extend(
        &self,
        keys: &[String],
        token: &Token,
        ttl: Ttl,
        recreate: bool,
    ) -> Result<(), MasterFailure> {
        let ttl = ttl.as_millis().to_string();
        let recreate = if recreate { "1" } else { "0" };
        let n = self
            .script(&self.extend, keys, &[token.expose(), &ttl, recreate])
            .await?;
        scripts::extend_outcome(n)
    }

    async fn release(&self, keys: &[String], token: &Token) -> Result<(), MasterFailure> {
        let n = self.script(&self.release, keys, &[token.expose()]).await?;
        scripts::release_outcome(n)
    }
}
