//! The operator's side of a manager: what the masters hold for a
//! resource, and the `danger_` resets (force unlock, forget fences), each
//! sent to every master and reported master by master.

use std::sync::Arc;

use crate::config::{Resource, ResourceSet};
use crate::error::{ConfigError, ReleaseError};
use crate::fence::FenceKeys;
use crate::inspect::{Inspection, MasterView};
use crate::master::{Master, Runtime};
use crate::release::{ReleaseReport, ReleaseTally};
use crate::tally::MasterFailure;

use super::Redlock;

impl<M: Master, R: Runtime> Redlock<M, R> {
    /// What every master holds for `resource`: the token and time left
    /// there, keys of the wrong type, unreachable masters, the fence
    /// counter, and whether one token holds a quorum. Read-only; each
    /// master is bounded by the per-master timeout.
    ///
    /// ```no_run
    /// # async fn demo<M: redlock_core::Master, R: redlock_core::Runtime>(redlock: &redlock_core::Redlock<M, R>)
    /// # -> Result<(), redlock_core::ConfigError> {
    /// let seen = redlock.inspect("invoice:42").await?;
    /// if seen.held_by_quorum() {
    ///     println!("busy:\n{seen}");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a bad resource name.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn inspect<S>(&self, resource: S) -> Result<Inspection, ConfigError>
    where
        S: TryInto<Resource>,
        S::Error: Into<ConfigError>,
    {
        let resource: Resource = resource.try_into().map_err(Into::into)?;
        let key = format!("{}{}", self.settings.prefix.as_str(), resource.as_str());
        let fields = [resource.as_str().to_owned()];
        let fences = FenceKeys {
            hash: self.settings.prefix.as_str(),
            fields: &fields,
        };
        let answers =
            futures::future::join_all(self.masters.iter().map(|m| m.inspect(&key, fences))).await;
        let views = answers
            .into_iter()
            .enumerate()
            .map(|(master, answer)| {
                let (state, fence) = match answer {
                    Ok((state, fence)) => (Ok(state), Some(fence)),
                    Err(e) => (Err(e), None),
                };
                MasterView {
                    master,
                    address: Arc::clone(&self.addresses[master]),
                    state,
                    fence,
                }
            })
            .collect();
        Ok(Inspection::from_views(
            resource,
            key,
            views,
            self.settings.quorum,
        ))
    }

    /// Deletes the lock keys of `resources` on every master, **whoever
    /// holds them**: the operator's last resort for a lock whose holder is
    /// gone and whose TTL is too long to wait for.
    ///
    /// Dangerous by design: if the holder is alive, it keeps trusting its
    /// lock until its validity ends (or its next extension fails), while
    /// the next contender takes the resource at once. Prefer releasing by
    /// the holder's token ([`release_token`](Self::release_token)), which
    /// can only ever remove that holder's keys.
    ///
    /// # Errors
    ///
    /// [`ReleaseError::Incomplete`] when some master could not confirm
    /// (the key there expires with its TTL).
    ///
    /// # Cancel safety
    ///
    /// Dropping it may leave the keys on the masters not reached yet.
    pub async fn danger_force_unlock(
        &self,
        resources: &ResourceSet,
    ) -> Result<ReleaseReport, ReleaseError> {
        let keys = resources.keys(&self.settings.prefix);
        let answers =
            futures::future::join_all(self.masters.iter().map(|m| m.force_delete(&keys))).await;
        self.every_master_confirmed(answers)
    }

    /// Deletes the fence counters of `resources` on every master: the next
    /// fenced holder of each starts again from fence 1.
    ///
    /// Dangerous by design: a protected resource that still remembers a
    /// higher fence from an earlier holder will refuse every new holder
    /// until it is reset too, and a holder fenced before the reset
    /// compares as newer than one fenced after. For resources retired for
    /// good, and for tests and benchmarks that must leave nothing behind
    /// (fence counters never expire).
    ///
    /// # Errors
    ///
    /// [`ReleaseError::Incomplete`] when some master could not confirm
    /// (its counters stay).
    ///
    /// # Cancel safety
    ///
    /// Dropping it may leave the counters on the masters not reached yet.
    pub async fn danger_forget_fences(
        &self,
        resources: &ResourceSet,
    ) -> Result<ReleaseReport, ReleaseError> {
        let fields: Vec<String> = resources.iter().map(|r| r.as_str().to_owned()).collect();
        let fences = FenceKeys {
            hash: self.settings.prefix.as_str(),
            fields: &fields,
        };
        let answers =
            futures::future::join_all(self.masters.iter().map(|m| m.forget_fences(fences))).await;
        self.every_master_confirmed(answers)
    }

    /// The report of an operator's write sent to every master: complete
    /// only if every master confirmed.
    fn every_master_confirmed(
        &self,
        answers: Vec<Result<(), MasterFailure>>,
    ) -> Result<ReleaseReport, ReleaseError> {
        let mut tally = ReleaseTally::new(self.settings.quorum);
        for (i, answer) in answers.into_iter().enumerate() {
            tally.record(i, answer);
        }
        let report = tally.report(&self.addresses);
        if report.failed() == 0 {
            Ok(report)
        } else {
            Err(ReleaseError::Incomplete { report })
        }
    }
}
