//! The Lua scripts, and what their integer replies mean (the `*_outcome`
//! functions, shared by every transport). Each runs atomically on one
//! master, so a multi-resource lock is all-or-none per master.
//!
//! Every script reads with `GET`, which raises `WRONGTYPE` if a key under
//! our prefix holds a non-string value: the script aborts before writing,
//! and the master's vote counts as a failure.

use crate::MasterFailure;

/// `KEYS` = lock keys, `ARGV[1]` = token, `ARGV[2]` = TTL in ms.
///
/// Sets all keys only if each is absent or already ours; a key that already
/// holds our token means a resent command, which must succeed again.
/// Returns 1 on success, 0 if any key holds another token.
///
/// Like extend, it never shortens a key: a resent acquire arriving after an
/// extension to a longer TTL leaves the longer expiry in place (the holder
/// trusts the validity of that extension).
pub const ACQUIRE: &str = r#"
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v and v ~= ARGV[1] then
    return 0
  end
end
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ttl)
  end
end
return 1
"#;

/// `KEYS` = lock keys, `ARGV[1]` = token, `ARGV[2]` = TTL in ms,
/// `ARGV[3]` = "1" to re-create missing keys.
///
/// Returns 1 if every key now lives at least `ttl`, 0 if some key holds
/// another token, -1 if some key is missing (and re-creating was not
/// allowed). A key held by another token is never touched, even with
/// re-creation on.
///
/// It never *shortens* a key. An extend with a TTL shorter than what the
/// keys have left may fail or be abandoned after reaching some masters;
/// had it shortened their keys, the lock would still trust its older,
/// longer validity while those keys expire first (found by the simulation,
/// `tests/redlock-sim`). The `PTTL` comparison, rather than `PEXPIRE GT`,
/// keeps the script working on Redis older than 7.0.
pub const EXTEND: &str = r#"
local missing = false
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v then
    missing = true
  elseif v ~= ARGV[1] then
    return 0
  end
end
if missing and ARGV[3] ~= '1' then
  return -1
end
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  local left = redis.call('PTTL', KEYS[i])
  if left == -2 then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ttl)
  elseif left < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 1
"#;

/// `KEYS` = lock keys, `ARGV[1]` = token. Deletes the keys that hold the
/// token and returns how many it deleted.
pub const RELEASE: &str = r#"
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    n = n + redis.call('DEL', KEYS[i])
  end
end
return n
"#;

/// [`RELEASE`], and for each key it deleted a `PUBLISH` on the channel
/// named after the key: the release announcement waiters subscribe to
/// when a manager is built to wake them on release. Same reply. The
/// `PUBLISH` is a `pcall`: a user whose ACL forbids the channel (Redis 7
/// users get no channels by default) still releases, silently.
pub const RELEASE_ANNOUNCE: &str = r#"
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    n = n + redis.call('DEL', KEYS[i])
    redis.pcall('PUBLISH', KEYS[i], '')
  end
end
return n
"#;

/// Fenced acquire. `KEYS` = lock keys, then the fence hash (the key prefix
/// itself, which no lock key can be: resource names are non-empty);
/// `ARGV[1]` = token, `ARGV[2]` = TTL in ms, `ARGV[3..]` = the resource
/// names (the hash's fields).
///
/// As [`ACQUIRE`], and in the same atomic step reads the fences stored
/// for the resources: returns -1 if any key holds another token, else the
/// highest stored fence (0 when none). Reading in the step that sets the
/// key is what the monotonicity argument needs: any earlier holder's
/// fence write-back on this master happened while it held the key, so
/// before this step.
pub const ACQUIRE_FENCED: &str = r#"
local n = #KEYS - 1
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v and v ~= ARGV[1] then
    return -1
  end
end
local ttl = tonumber(ARGV[2])
for i = 1, n do
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ttl)
  end
end
local max = 0
for i = 3, #ARGV do
  local f = redis.call('HGET', KEYS[n + 1], ARGV[i])
  if f then
    local x = tonumber(f)
    if not x then
      return redis.error_reply('ERR fence of ' .. ARGV[i] .. ' is not a number')
    end
    if x > max then
      max = x
    end
  end
end
return max
"#;

/// Fence write-back. `KEYS` and `ARGV[3..]` as [`ACQUIRE_FENCED`];
/// `ARGV[1]` = token, `ARGV[2]` = the new fence.
///
/// Only where every lock key still holds our token, raises each
/// resource's stored fence to the new one (never lowers it). Returns 1,
/// or 0 if some key no longer holds our token (nothing written).
pub const SET_FENCE: &str = r#"
local n = #KEYS - 1
for i = 1, n do
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then
    return 0
  end
end
local t = tonumber(ARGV[2])
for i = 3, #ARGV do
  local f = tonumber(redis.call('HGET', KEYS[n + 1], ARGV[i]) or '0') or 0
  if f < t then
    redis.call('HSET', KEYS[n + 1], ARGV[i], ARGV[2])
  end
end
return 1
"#;

/// Inspection (read-only). `KEYS[1]` = lock key, `KEYS[2]` = fence hash;
/// `ARGV[1]` = the resource name. Returns `{0, fence}` (no key),
/// `{1, fence, value, pttl}` (a string key) or `{2, fence, type}` (a key
/// of another type). `fence` is 0 when none is stored (or the fence hash
/// is unreadable).
pub const INSPECT: &str = r#"
local f = redis.pcall('HGET', KEYS[2], ARGV[1])
local fence = 0
if type(f) == 'string' then
  fence = tonumber(f) or 0
end
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then
  return {0, fence}
end
if kind ~= 'string' then
  return {2, fence, kind}
end
return {1, fence, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
"#;

// What each script's integer reply means, for every transport.

/// The acquire script returns 1 (set) or 0 (held by another token).
pub fn acquire_outcome(n: i64) -> Result<(), MasterFailure> {
    match n {
        1 => Ok(()),
        0 => Err(MasterFailure::Held),
        n => Err(MasterFailure::BadReply(format!(
            "acquire script returned {n}"
        ))),
    }
}

/// The extend script returns 1 (extended), 0 (another token), -1 (missing).
pub fn extend_outcome(n: i64) -> Result<(), MasterFailure> {
    match n {
        1 => Ok(()),
        0 => Err(MasterFailure::Held),
        -1 => Err(MasterFailure::NotHeld),
        n => Err(MasterFailure::BadReply(format!(
            "extend script returned {n}"
        ))),
    }
}

/// The fenced acquire script returns -1 (held by another token) or the
/// highest stored fence.
pub fn acquire_fenced_outcome(n: i64) -> Result<u64, MasterFailure> {
    match n {
        -1 => Err(MasterFailure::Held),
        n if n >= 0 => Ok(n.unsigned_abs()),
        n => Err(MasterFailure::BadReply(format!(
            "fenced acquire script returned {n}"
        ))),
    }
}

/// The fence write-back script returns 1 (written) or 0 (keys not ours).
pub fn set_fence_outcome(n: i64) -> Result<(), MasterFailure> {
    match n {
        1 => Ok(()),
        0 => Err(MasterFailure::NotHeld),
        n => Err(MasterFailure::BadReply(format!(
            "fence script returned {n}"
        ))),
    }
}

/// The release script returns how many keys it deleted.
pub fn release_outcome(n: i64) -> Result<(), MasterFailure> {
    match n {
        0 => Err(MasterFailure::NotHeld),
        n if n > 0 => Ok(()),
        n => Err(MasterFailure::BadReply(format!(
            "release script returned {n}"
        ))),
    }
}
