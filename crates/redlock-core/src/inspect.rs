//! Inspection: what each master holds for a resource, and who holds the
//! lock. Read-only; for operators, tools and services that want to show
//! the holder of a busy resource.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Quorum, Resource};
use crate::holder::Holder;
use crate::tally::MasterFailure;

/// What one master holds under a lock key, as read by
/// [`Master::inspect`](crate::Master::inspect).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// No key: nobody holds the resource on this master.
    Free,
    /// A lock key: the holder's token and the time left before it expires
    /// (`None`: the key has no expiry, so it was not set by redlock).
    Held {
        /// The stored token (with the holder record, when recorded).
        token: String,
        /// Who holds it, when the holder recorded itself.
        holder: Option<Holder>,
        /// Time to live left.
        ttl: Option<Duration>,
    },
    /// A key of another kind (a hash, a list, ...) sits where the lock key
    /// should be: every acquire on this master fails until it is removed.
    WrongType {
        /// The Redis type found.
        kind: String,
    },
}

/// One master's view of the resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterView {
    /// Index of the master in the manager's list.
    pub master: usize,
    /// Address for humans, without credentials.
    pub address: Arc<str>,
    /// What it holds, or why it could not be read.
    pub state: Result<KeyState, MasterFailure>,
    /// The resource's fence counter there (0 when none), when read.
    pub fence: Option<u64>,
}

/// What every master holds for one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    pub(crate) resource: Resource,
    pub(crate) key: String,
    pub(crate) views: Vec<MasterView>,
    pub(crate) quorum: Quorum,
}

impl Inspection {
    /// Builds an inspection from views read some other way (for instance
    /// one master at a time, when fewer than a quorum are reachable).
    pub fn from_views(
        resource: Resource,
        key: String,
        views: Vec<MasterView>,
        quorum: Quorum,
    ) -> Self {
        Self {
            resource,
            key,
            views,
            quorum,
        }
    }

    /// The resource.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// The lock key on each master.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Every master's view, in master order.
    pub fn views(&self) -> &[MasterView] {
        &self.views
    }

    /// The quorum the masters vote with.
    pub fn quorum(&self) -> Quorum {
        self.quorum
    }

    /// Masters that answered.
    pub fn reachable(&self) -> usize {
        self.views.iter().filter(|v| v.state.is_ok()).count()
    }

    /// The holder record of the token held on the most masters, when it
    /// recorded one.
    pub fn holder_record(&self) -> Option<Holder> {
        let (token, _) = self.holder()?;
        self.views.iter().find_map(|v| match &v.state {
            Ok(KeyState::Held {
                token: t, holder, ..
            }) if t == token => holder.clone(),
            _ => None,
        })
    }

    /// The token held on the most masters, and on how many (`None` when
    /// no master holds a key).
    pub fn holder(&self) -> Option<(&str, usize)> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for v in &self.views {
            if let Ok(KeyState::Held { token, .. }) = &v.state {
                *counts.entry(token.as_str()).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
    }

    /// Whether one token holds the key on a quorum: the resource is
    /// locked (a holder may still be inside its validity).
    pub fn held_by_quorum(&self) -> bool {
        self.holder()
            .is_some_and(|(_, n)| n >= self.quorum.needed())
    }

    /// The highest fence counter any master reported (0 when none).
    pub fn fence(&self) -> u64 {
        self.views.iter().filter_map(|v| v.fence).max().unwrap_or(0)
    }
}

impl fmt::Display for Inspection {
    /// One line per master, then the verdict; tokens shortened to 8
    /// characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.views {
            write!(f, "{}: ", v.address)?;
            match &v.state {
                Ok(KeyState::Free) => f.write_str("free")?,
                Ok(KeyState::Held { token, holder, ttl }) => {
                    write!(f, "held by {}…", token.get(..8).unwrap_or(token))?;
                    if let Some(h) = holder {
                        write!(f, " ({h})")?;
                    }
                    match ttl {
                        Some(ttl) => write!(f, ", {} ms left", ttl.as_millis())?,
                        None => f.write_str(", no expiry")?,
                    }
                }
                Ok(KeyState::WrongType { kind }) => {
                    write!(f, "a {kind} key, not a lock: acquires fail here")?
                }
                Err(e) => write!(f, "unreadable ({e})")?,
            }
            writeln!(f)?;
        }
        match self.holder() {
            Some((token, n)) => write!(
                f,
                "{} on {n}/{} masters ({} needed): {}",
                token.get(..8).unwrap_or(token),
                self.views.len(),
                self.quorum.needed(),
                if self.held_by_quorum() {
                    "locked"
                } else {
                    "not held by a quorum"
                }
            ),
            None => write!(f, "free on every master that answered"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(i: usize, state: Result<KeyState, MasterFailure>) -> MasterView {
        MasterView {
            master: i,
            address: Arc::from(format!("m{i}")),
            state,
            fence: Some(i as u64),
        }
    }

    fn held(t: &str) -> Result<KeyState, MasterFailure> {
        Ok(KeyState::Held {
            token: t.into(),
            holder: None,
            ttl: Some(Duration::from_secs(1)),
        })
    }

    #[test]
    fn quorum_holder_is_found() {
        let q = Quorum::majority(3).expect("3 masters");
        let r = Resource::new("r").expect("valid");
        let i = Inspection::from_views(
            r.clone(),
            "redlock:r".into(),
            vec![
                view(0, held("aaaa")),
                view(1, held("aaaa")),
                view(2, Err(MasterFailure::TimedOut)),
            ],
            q,
        );
        assert_eq!(i.holder(), Some(("aaaa", 2)));
        assert!(i.held_by_quorum());
        assert_eq!(i.reachable(), 2);
        assert_eq!(i.fence(), 2);
        let split = Inspection::from_views(
            r,
            "redlock:r".into(),
            vec![
                view(0, held("aaaa")),
                view(1, held("bbbb")),
                view(2, Ok(KeyState::Free)),
            ],
            q,
        );
        assert!(!split.held_by_quorum());
        assert!(split.to_string().contains("not held by a quorum"));
    }
}
