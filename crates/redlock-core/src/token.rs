//! Lock tokens: 128 random bits from the runtime's secret source (the
//! operating system's CSPRNG in production), fresh for every acquisition,
//! never printed.

use std::fmt;

use crate::error::ConfigError;
use crate::holder::Holder;
use crate::master::Runtime;

/// Bytes of randomness in a token (128 bits).
pub const TOKEN_BYTES: usize = 16;

/// The secret value stored in every lock key. Whoever knows it can extend or
/// release the lock, so `Debug` and `Display` never show it; use
/// [`Token::expose`] where it must leave the process on purpose (for
/// instance to hand the lock to a child process, or as a fencing value).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// A new token from `runtime`'s secret source
    /// ([`Runtime::fill_secret`]), hex-encoded.
    pub fn random(runtime: &impl Runtime) -> Self {
        Self::from_bytes(secret_bytes(runtime))
    }

    /// The token made of these random bytes, hex-encoded. They must be
    /// unpredictable (see [`Runtime::fill_secret`]).
    pub fn from_bytes(bytes: [u8; TOKEN_BYTES]) -> Self {
        let mut s = String::with_capacity(2 * TOKEN_BYTES);
        push_hex(&mut s, &bytes);
        Self(s)
    }

    /// Parses a token previously obtained from [`Token::expose`]: at least
    /// 32 and at most 128 lowercase hex digits, optionally followed by a
    /// space and a holder record ([`Token::with_holder`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidToken`] otherwise (the error does not repeat the
    /// input, which may be a secret).
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        // The random part, then optionally the holder record (see
        // `Holder`), as `Token::with_holder` writes it.
        let (random, record) = match s.split_once(' ') {
            Some((random, record)) => (random, Some(record)),
            None => (s, None),
        };
        let ok_len = (2 * TOKEN_BYTES..=128).contains(&random.len()) && s.len() <= 1024;
        let ok_chars = random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let ok_record = record.is_none_or(|r| Holder::parse(r).is_some());
        if ok_len && ok_chars && ok_record {
            Ok(Self(s.to_owned()))
        } else {
            Err(ConfigError::InvalidToken { len: s.len() })
        }
    }

    /// A fresh random token that also records who holds the lock
    /// (`Holder`): the value stored in every lock key is then the random
    /// part followed by the holder record. Compare-and-delete compares the
    /// whole value, so it is exactly as strict as with the random part
    /// alone.
    pub fn with_holder(runtime: &impl Runtime, holder: &Holder) -> Self {
        Self::from_bytes_with_holder(secret_bytes(runtime), holder)
    }

    /// The token of these random bytes followed by the holder record,
    /// written into one buffer sized once: this runs on every
    /// acquisition, and building the parts apart cost four allocations.
    fn from_bytes_with_holder(bytes: [u8; TOKEN_BYTES], holder: &Holder) -> Self {
        let mut s = String::with_capacity(2 * TOKEN_BYTES + 1 + holder.record_len_hint());
        push_hex(&mut s, &bytes);
        s.push(' ');
        holder.write_record(&mut s);
        Self(s)
    }

    /// The holder recorded in this token, if any.
    pub fn holder(&self) -> Option<Holder> {
        self.0.split_once(' ').and_then(|(_, r)| Holder::parse(r))
    }

    /// The secret value, as stored in Redis.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A token's random part, from `runtime`'s secret source.
fn secret_bytes(runtime: &impl Runtime) -> [u8; TOKEN_BYTES] {
    let mut bytes = [0u8; TOKEN_BYTES];
    runtime.fill_secret(&mut bytes);
    bytes
}

fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token from a counter: the core's tests need distinct tokens, not
    /// secret ones (the production source is tested in `redlock-tokio`).
    fn token(n: u8) -> Token {
        Token::from_bytes([n; TOKEN_BYTES])
    }

    #[test]
    fn tokens_are_128_bit_lowercase_hex() {
        let t = Token::from_bytes([0xab; TOKEN_BYTES]);
        assert_eq!(t.expose(), "ab".repeat(16));
        assert!(Token::parse(t.expose()).is_ok());
        assert_ne!(token(1), token(2));
    }

    #[test]
    fn tokens_with_a_holder_parse_back() {
        let h = Holder::new("web-1", 7, 1_700_000_000_000, Some("nightly"));
        let t = Token::from_bytes_with_holder([7; TOKEN_BYTES], &h);
        // The stored value, exactly: scripts compare it whole, and other
        // processes (and `redlock inspect`) parse it.
        assert_eq!(
            t.expose(),
            format!("{} web-1 7 1700000000000 nightly", "07".repeat(16))
        );
        // Sized once: a buffer that had to grow would have more capacity.
        assert_eq!(t.0.capacity(), 2 * TOKEN_BYTES + 1 + h.record_len_hint());
        assert_eq!(t.holder(), Some(h));
        let bare = Holder::new("h", 1, 2, None);
        let t = Token::from_bytes_with_holder([0xff; TOKEN_BYTES], &bare);
        assert_eq!(t.expose(), format!("{} h 1 2", "ff".repeat(16)));
        assert_eq!(Token::parse(t.expose()).ok(), Some(t.clone()));
        assert!(Token::parse(&format!("{} not a record", &t.expose()[..32])).is_err());
        assert_eq!(token(8).holder(), None);
    }

    #[test]
    fn token_never_printed() {
        let t = token(0x5e);
        let secret = t.expose().to_owned();
        for shown in [format!("{t:?}"), format!("{t}"), format!("{t:#?}")] {
            assert!(!shown.contains(&secret), "{shown}");
            assert!(!shown.contains(&secret[..8]), "{shown}");
        }
    }

    #[test]
    fn parse_rejects_bad_tokens_without_echoing() {
        for bad in [
            "",
            "abc",
            "zz".repeat(16).as_str(),
            "A".repeat(32).as_str(),
            "a".repeat(129).as_str(),
        ] {
            let err = Token::parse(bad).expect_err("bad token");
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
    }
}
