//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one replica allocates.
//!
//! Expiry is judged by the local clock from when this replica last saw the Lease change, not by
//! the timestamps in it, so clock skew between nodes cannot make two replicas leaders.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::{Api, Client};
use tokio::time::Instant;

/// Lease timings.
#[derive(Clone, Copy, Debug)]
pub struct LeaseTimings {
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_interval: Duration,
    /// How often a follower tries to acquire.
    pub retry_interval: Duration,
}

/// One replica's side of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
    /// The Lease record last seen (holder, renew time, transitions) and when it was first seen.
    observed: Option<(ObservedRecord, Instant)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ObservedRecord {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    transitions: Option<i32>,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409)
}

impl LeaderElector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timings: LeaseTimings,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timings,
            observed: None,
        }
    }

    pub fn timings(&self) -> LeaseTimings {
        self.timings
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.timings.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    fn our_spec(&self, transitions: i32, acquire_time: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_seconds()),
            acquire_time: Some(acquire_time.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Acquires the Lease when free or expired, or renews it when held. True while leader.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.our_spec(0, None)),
            };
            return match self.api.create(&crate::AGENT.post_params(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = ObservedRecord {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions,
        };
        let now = Instant::now();
        let first_seen = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => now,
        };
        self.observed = Some((record.clone(), first_seen));

        let ours = record.holder.as_deref() == Some(self.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.timings.lease_duration);
        let expired = now.duration_since(first_seen) >= duration;
        if !ours && record.holder.is_some() && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquire_time = if ours { spec.acquire_time } else { None };
        lease.spec = Some(self.our_spec(transitions, acquire_time));
        // `lease` carries the resourceVersion we read: a concurrent writer makes this conflict.
        match self
            .api
            .replace(&self.name, &crate::AGENT.post_params(), &lease)
            .await
        {
            Ok(written) => {
                let spec = written.spec.unwrap_or_default();
                self.observed = Some((
                    ObservedRecord {
                        holder: spec.holder_identity,
                        renew_time: spec.renew_time.map(|t| t.0),
                        transitions: spec.lease_transitions,
                    },
                    Instant::now(),
                ));
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up so a standby takes over at once instead of after it expires.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.name, &crate::AGENT.post_params(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
