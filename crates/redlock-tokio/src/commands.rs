//! The lock commands as both links send them: `SET NX GET` first for one
//! resource, then which script with which `KEYS` and `ARGV`, and what its
//! integer reply means. A link supplies the transport alone
//! ([`ScriptLink`]), so the fred and redis-rs links cannot drift apart on
//! an argument's order or encoding.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use fred::types::Value;
use redlock_core::{scripts, Fence, FenceKeys, MasterFailure, Token, Ttl};

use crate::fred::{fenced_argv, is_syntax_error, set_nx_get_outcome, Script, Scripts, SetNxGet};
use crate::link::{Delivery, Release, Timed};

/// What a link does for the shared commands: run a script, send one
/// command.
pub(crate) trait ScriptLink: Sync {
    /// The manager's scripts.
    fn scripts(&self) -> &Scripts;

    /// Set once the server answered `SET ... NX GET` with a syntax error
    /// (Redis before 7.0): single-key acquires use the script from then on.
    fn no_set_get(&self) -> &AtomicBool;

    /// Runs `script` by SHA (`EVAL` after `NOSCRIPT`; the redis-rs link
    /// sends a release as `EVAL` at once) and returns its integer reply,
    /// within the per-master timeout; `delivery` says whether the client
    /// may give it up unsent.
    fn eval_int<K: AsRef<str> + Sync, D: Delivery>(
        &self,
        script: &Script,
        keys: &[K],
        args: &[&str],
        delivery: D,
    ) -> impl Future<Output = Result<i64, MasterFailure>> + Send;

    /// Sends the command `name` with `args`, within the per-master
    /// timeout ([`Timed`]), and returns its reply as a fred value (the
    /// reply rules of `fred/reply.rs` read both links' replies).
    fn command(
        &self,
        name: &'static str,
        args: &[&str],
    ) -> impl Future<Output = Result<Value, MasterFailure>> + Send;
}

/// The TTL as `PX` and the scripts take it: whole milliseconds, written
/// into `buf` (on the stack: one heap allocation less per master and
/// call).
fn ttl_arg(ttl: Ttl, buf: &mut itoa::Buffer) -> &str {
    buf.format(ttl.as_millis())
}

/// [`Master::acquire`](redlock_core::Master::acquire). One resource, the
/// common case: `SET NX GET` decides in one round trip without Lua. Only
/// a key that already holds our token (a late command of an earlier
/// attempt, whose expiry may be shorter than this attempt's) needs the
/// script, which never shortens it.
pub(crate) async fn acquire(
    link: &impl ScriptLink,
    keys: &[String],
    token: &Token,
    ttl: Ttl,
) -> Result<(), MasterFailure> {
    let mut buf = itoa::Buffer::new();
    let ttl = ttl_arg(ttl, &mut buf);
    if let [key] = keys {
        if !link.no_set_get().load(Ordering::Relaxed) {
            let set = [key.as_str(), token.expose(), "NX", "PX", ttl, "GET"];
            match link.command("SET", &set).await {
                // Redis before 7.0 does not know `NX` with `GET`: the
                // script, from now on.
                Err(e) if is_syntax_error(&e) => link.no_set_get().store(true, Ordering::Relaxed),
                reply => match reply.and_then(|v| set_nx_get_outcome(Ok(v), token.expose()))? {
                    SetNxGet::Set => return Ok(()),
                    SetNxGet::Other => return Err(MasterFailure::Held),
                    SetNxGet::Ours => {}
                },
            }
        }
    }
    let n = link
        .eval_int(&link.scripts().acquire, keys, &[token.expose(), ttl], Timed)
        .await?;
    scripts::acquire_outcome(n)
}

/// [`Master::extend`](redlock_core::Master::extend).
pub(crate) async fn extend(
    link: &impl ScriptLink,
    keys: &[String],
    token: &Token,
    ttl: Ttl,
    recreate: bool,
) -> Result<(), MasterFailure> {
    let mut buf = itoa::Buffer::new();
    let ttl = ttl_arg(ttl, &mut buf);
    let recreate = if recreate { "1" } else { "0" };
    let n = link
        .eval_int(
            &link.scripts().extend,
            keys,
            &[token.expose(), ttl, recreate],
            Timed,
        )
        .await?;
    scripts::extend_outcome(n)
}

/// [`Master::release`](redlock_core::Master::release), or with
/// `announced` [`Master::release_announced`](redlock_core::Master::release_announced):
/// the announcing script when the manager's releases announce themselves.
/// Never given up unsent ([`Release`]).
pub(crate) async fn release(
    link: &impl ScriptLink,
    keys: &[String],
    token: &Token,
    announced: bool,
) -> Result<(), MasterFailure> {
    let scripts = link.scripts();
    let script = if announced && scripts.announce {
        &scripts.release_announce
    } else {
        &scripts.release
    };
    let n = link
        .eval_int(script, keys, &[token.expose()], Release)
        .await?;
    scripts::release_outcome(n)
}

/// [`Master::acquire_fenced`](redlock_core::Master::acquire_fenced).
pub(crate) async fn acquire_fenced(
    link: &impl ScriptLink,
    keys: &[String],
    fences: FenceKeys<'_>,
    token: &Token,
    ttl: Ttl,
) -> Result<u64, MasterFailure> {
    let mut buf = itoa::Buffer::new();
    let ttl = ttl_arg(ttl, &mut buf);
    let (keys, args) = fenced_argv(keys, fences, &[token.expose(), ttl]);
    let n = link
        .eval_int(&link.scripts().acquire_fenced, &keys, &args, Timed)
        .await?;
    scripts::acquire_fenced_outcome(n)
}

/// [`Master::set_fence`](redlock_core::Master::set_fence).
pub(crate) async fn set_fence(
    link: &impl ScriptLink,
    keys: &[String],
    fences: FenceKeys<'_>,
    token: &Token,
    fence: Fence,
) -> Result<(), MasterFailure> {
    let mut buf = itoa::Buffer::new();
    let fence = buf.format(fence.get());
    let (keys, args) = fenced_argv(keys, fences, &[token.expose(), fence]);
    let n = link
        .eval_int(&link.scripts().set_fence, &keys, &args, Timed)
        .await?;
    scripts::set_fence_outcome(n)
}
