#![doc = include_str!("../README.md")]

mod error;
mod masters;
pub mod proxy;
mod resp;
mod server;
mod spawn;
mod sys;

pub use error::Error;
pub use masters::Masters;
pub use proxy::{Fault, Mode, Proxy};
pub use resp::{Connection, Reply};
pub use rustix::process::Signal;
pub use server::{Persistence, RedisServer, ServerOptions};
pub use spawn::redis_server_path;
pub use sys::{die_with_parent, signal, signal_group};
