//! A tiny blocking RESP2 client over `std::net::TcpStream`.
//!
//! Deliberately independent from the client library used by the system under
//! test, so that assertions do not share its bugs.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::Error;

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Simple string (`+OK`).
    Simple(String),
    /// Error reply (`-ERR ...`), without the leading `-`.
    Error(String),
    /// Integer (`:1`).
    Int(i64),
    /// Bulk string (`$3\r\nfoo`); `None` is the nil bulk (`$-1`).
    Bulk(Option<Vec<u8>>),
    /// Array (`*2 ...`); `None` is the nil array (`*-1`).
    Array(Option<Vec<Self>>),
}

impl Reply {
    /// The text of a simple string or of a UTF-8 bulk string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Simple(s) => Some(s),
            Self::Bulk(Some(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value of an integer reply.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The bytes of a non-nil bulk string (or of a simple string).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Simple(s) => Some(s.as_bytes()),
            Self::Bulk(Some(b)) => Some(b),
            _ => None,
        }
    }

    /// The elements of a non-nil array.
    pub fn as_array(&self) -> Option<&[Self]> {
        match self {
            Self::Array(Some(items)) => Some(items),
            _ => None,
        }
    }

    /// The message of an error reply.
    pub fn as_error(&self) -> Option<&str> {
        match self {
            Self::Error(e) => Some(e),
            _ => None,
        }
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error(_))
    }

    /// Whether this is a nil bulk string or nil array.
    pub fn is_nil(&self) -> bool {
        matches!(self, Self::Bulk(None) | Self::Array(None))
    }

    /// Whether this is the simple string `OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Simple(s) if s == "OK")
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub(crate) fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One `\r\n`-terminated line of the protocol, without its terminator:
/// an end of stream is an I/O error (`UnexpectedEof`), a line without
/// CRLF or not in UTF-8 a protocol error.
fn read_line<R: BufRead>(r: &mut R) -> Result<String, Error> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed by redis",
        )));
    }
    if !buf.ends_with(b"\r\n") {
        return Err(Error::Protocol(format!(
            "line not terminated by CRLF: {:?}",
            String::from_utf8_lossy(&buf)
        )));
    }
    buf.truncate(buf.len() - 2);
    String::from_utf8(buf).map_err(|e| Error::Protocol(format!("non UTF-8 line: {e}")))
}

/// A length or integer field of the protocol.
fn parse_len(s: &str) -> Result<i64, Error> {
    s.parse::<i64>()
        .map_err(|_| Error::Protocol(format!("bad length/integer {s:?}")))
}

/// Reads one RESP2 reply.
pub(crate) fn read_reply<R: BufRead>(r: &mut R) -> Result<Reply, Error> {
    let line = read_line(r)?;
    let mut chars = line.chars();
    let kind = chars
        .next()
        .ok_or_else(|| Error::Protocol("empty reply line".to_owned()))?;
    let rest = chars.as_str();
    match kind {
        '+' => Ok(Reply::Simple(rest.to_owned())),
        '-' => Ok(Reply::Error(rest.to_owned())),
        ':' => Ok(Reply::Int(parse_len(rest)?)),
        '$' => {
            let len = parse_len(rest)?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            let len = usize::try_from(len)
                .map_err(|_| Error::Protocol(format!("bulk length {len} too large")))?;
            let mut data = vec![0u8; len + 2];
            r.read_exact(&mut data)?;
            if !data.ends_with(b"\r\n") {
                return Err(Error::Protocol(
                    "bulk string not terminated by CRLF".to_owned(),
                ));
            }
            data.truncate(len);
            Ok(Reply::Bulk(Some(data)))
        }
        '*' => {
            let len = parse_len(rest)?;
            if len < 0 {
                return Ok(Reply::Array(None));
            }
            let len = usize::try_from(len)
                .map_err(|_| Error::Protocol(format!("array length {len} too large")))?;
            let mut items = Vec::with_capacity(len.min(1024));
            for _ in 0..len {
                items.push(read_reply(r)?);
            }
            Ok(Reply::Array(Some(items)))
        }
        other => Err(Error::Protocol(format!(
            "unknown RESP2 type byte {other:?} in line {line:?}"
        ))),
    }
}

/// One blocking RESP2 connection to a Redis server.
///
/// Obtain an authenticated one with
/// [`RedisServer::connection`](crate::RedisServer::connection), or a raw one
/// with [`Connection::connect`] (no `AUTH` is sent).
#[derive(Debug)]
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `addr`; `timeout` bounds the connect and every later read
    /// and write. Sends nothing.
    ///
    /// # Errors
    /// [`Error::Timeout`] or [`Error::Io`] when the connection fails.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, Error> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// Changes the read/write timeout of the connection.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket refuses the setting.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        let stream = self.reader.get_ref();
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(())
    }

    /// Sends `AUTH password` and fails with [`Error::Auth`] if the
    /// server rejects it.
    ///
    /// # Errors
    /// [`Error::Auth`] when refused; otherwise as [`call`](Self::call).
    pub fn auth(&mut self, password: &str) -> Result<(), Error> {
        match self.call(&["AUTH", password])? {
            Reply::Simple(_) => Ok(()),
            Reply::Error(e) => Err(Error::Auth(e)),
            other => Err(Error::Protocol(format!("unexpected AUTH reply {other:?}"))),
        }
    }

    /// Sends one command and reads its reply. Error replies are returned as
    /// `Ok(Reply::Error(..))`; `Err` means the transport failed.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the server does not answer in time (paused),
    /// [`Error::Io`] when the connection fails (refused: killed),
    /// [`Error::Protocol`] for bytes that are not RESP2.
    pub fn call(&mut self, args: &[&str]) -> Result<Reply, Error> {
        self.call_bytes(args)
    }

    /// Like [`Connection::call`], for binary arguments.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub fn call_bytes<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, Error> {
        let stream = self.reader.get_mut();
        stream.write_all(&encode(args))?;
        stream.flush()?;
        read_reply(&mut self.reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(bytes: &[u8]) -> Result<Reply, Error> {
        read_reply(&mut Cursor::new(bytes.to_vec()))
    }

    #[test]
    fn encodes_bulk_array() {
        assert_eq!(
            encode(&["SET", "k", ""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn parses_all_types() {
        assert_eq!(parse(b"+OK\r\n").expect("ok"), Reply::Simple("OK".into()));
        assert_eq!(
            parse(b"-ERR bad\r\n").expect("err"),
            Reply::Error("ERR bad".into())
        );
        assert_eq!(parse(b":-42\r\n").expect("int"), Reply::Int(-42));
        assert_eq!(
            parse(b"$5\r\na\r\nbc\r\n").expect("bulk"),
            Reply::Bulk(Some(b"a\r\nbc".to_vec()))
        );
        assert_eq!(parse(b"$-1\r\n").expect("nil"), Reply::Bulk(None));
        assert_eq!(parse(b"*-1\r\n").expect("nil arr"), Reply::Array(None));
        assert_eq!(
            parse(b"*2\r\n$1\r\n0\r\n*1\r\n:1\r\n").expect("nested"),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"0".to_vec())),
                Reply::Array(Some(vec![Reply::Int(1)])),
            ]))
        );
    }

    #[test]
    fn rejects_garbage_and_eof() {
        assert!(matches!(parse(b"?x\r\n"), Err(Error::Protocol(_))));
        assert!(matches!(parse(b":12"), Err(Error::Protocol(_))));
        assert!(matches!(parse(b""), Err(Error::Io(_))));
        assert!(matches!(parse(b"$3\r\nab"), Err(Error::Io(_))));
    }

    #[test]
    fn helpers() {
        assert_eq!(Reply::Bulk(Some(b"v".to_vec())).as_str(), Some("v"));
        assert_eq!(Reply::Simple("PONG".into()).as_str(), Some("PONG"));
        assert_eq!(Reply::Int(3).as_int(), Some(3));
        assert!(Reply::Bulk(None).is_nil());
        assert!(Reply::Simple("OK".into()).is_ok());
        assert!(Reply::Error("NOAUTH x".into()).is_error());
    }
}
