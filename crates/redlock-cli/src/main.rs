#![doc = include_str!("../README.md")]

use std::process::ExitCode;
use std::time::Duration;

use redlock_tokio::{LockManager, LockManagerBuilder, RedisMaster, Redlock, TokioRuntime};

mod bench;
mod cli;
mod exec;
mod inspect;
mod output;
mod plot;
mod signals;
mod spawn;
mod sys;
mod unlock;

use cli::{Cli, Cmd, Global, MasterSource, Parsed, RuntimeArg};
use output::Failure;

/// The production lock manager.
pub(crate) type Manager = Redlock<RedisMaster, TokioRuntime>;

fn main() -> ExitCode {
    let status = match run() {
        Ok(status) => status,
        Err(failure) => {
            failure.report();
            failure.status
        }
    };
    ExitCode::from(status)
}

/// Everything that can fail returns here, so every destructor (spawned
/// servers, the runtime and its connections) runs before the process exits.
fn run() -> Result<u8, Failure> {
    let (cli, source) = match cli::parse(std::env::args_os())? {
        Parsed::Run(cli, source) => (cli, source),
        Parsed::Exit(status) => return Ok(status),
    };
    cli.check_settings(source.count())?;

    // Spawned on the main thread, before the runtime exists: the servers'
    // parent-death signal is tied to the spawning thread.
    let spawned = match source {
        MasterSource::Spawn(n) => Some(spawn::start(n)?),
        MasterSource::Urls(_) => None,
    };
    // The benchmark pauses the last master only if it is one of these.
    let spawned_pids: Vec<u32> = spawned
        .as_ref()
        .map(|m| m.iter().map(redlock_testing::RedisServer::pid).collect())
        .unwrap_or_default();
    let urls = match (&spawned, source) {
        (Some(s), _) => s.urls(),
        (None, MasterSource::Urls(urls)) => urls,
        (None, MasterSource::Spawn(_)) => Vec::new(),
    };

    // `exec` runs on the main thread alone (current-thread runtime), so CMD
    // is spawned from the main thread too (see `sys::die_with_parent`). The
    // benchmark gives the client every core unless told otherwise
    // (`--runtime current`).
    let runtime = match &cli.command {
        Cmd::Bench(args) if args.runtime == RuntimeArg::Multi => {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
        }
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .map_err(|e| Failure::software(format_args!("cannot start the async runtime: {e}")))?;

    let Cli {
        mut global,
        command,
    } = *cli;
    // Servers we just started empty, for this run alone, lost nothing: the
    // restart guard would only hold them back for a TTL.
    global.danger_disable_restart_guard |= spawned.is_some();
    let result = runtime.block_on(async move {
        match command {
            Cmd::Exec(args) => exec::run(&global, &urls, args).await,
            Cmd::Bench(args) => bench::run(&global, &urls, &spawned_pids, args).await,
            Cmd::Inspect(args) => inspect::run(&global, &urls, args).await,
            Cmd::Unlock(args) => unlock::run(&global, &urls, args).await,
        }
    });
    // Only now may the runtime go: background tasks still running here are
    // dropped unpolled. `exec` waits for its releases (the adapter's
    // `shutdown`) inside `block_on`, on every path, before this point.
    // Connection tasks go with the runtime; then the servers they used.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(spawned);
    result
}

/// Connects a manager over `urls` with the global options and `ttl`.
///
/// # Errors
///
/// The [`ConfigError`](redlock_core::ConfigError), mapped to 64 (bad input)
/// or 69 (masters unavailable).
pub(crate) async fn connect(
    global: &Global,
    urls: &[String],
    ttl: Duration,
) -> Result<Manager, Failure> {
    connect_core(global, urls, ttl).await.map_err(Failure::from)
}

/// As [`connect`], with the core's error, for callers that tell its cases
/// apart (`inspect` looks at each master alone when too few answer).
///
/// # Errors
///
/// The [`ConfigError`](redlock_core::ConfigError).
pub(crate) async fn connect_core(
    global: &Global,
    urls: &[String],
    ttl: Duration,
) -> Result<Manager, redlock_core::ConfigError> {
    builder(global, urls, ttl, None).connect_core().await
}

/// The one place the CLI's lock managers are configured, from the global
/// options: `exec` adds its label and guards, the other commands take the
/// core manager ([`connect_core`]).
pub(crate) fn builder(
    global: &Global,
    urls: &[String],
    ttl: Duration,
    label: Option<&str>,
) -> LockManagerBuilder {
    let builder = LockManager::builder(urls.iter().cloned())
        .settings(|s| {
            let s = s
                .ttl(ttl)
                .max_ttl(global.max_ttl)
                .master_timeout(global.master_timeout)
                .key_prefix(global.prefix.clone())
                .danger_disable_restart_guard(global.danger_disable_restart_guard);
            // Host and pid are recorded anyway (the library's default).
            match label {
                Some(label) => s.holder_label(label),
                None => s,
            }
        })
        .connect_timeout(global.connect_timeout)
        .wake_on_release(global.wake_on_release)
        .client(global.client.into());
    match &global.tls_ca {
        Some(ca) => builder.tls_ca_file(ca.clone()),
        None => builder,
    }
}
