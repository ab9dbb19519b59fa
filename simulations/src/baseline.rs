//! The designs swimlb is compared against, modelled on the same network and seeds.
//!
//! - **Seed leader**: one leader announces every VIP; the new leader notices the old one is
//!   gone on its next pass of a 10 s control loop. Modelled as: leader election is free and
//!   instant, the loop's phase at the crash is uniform, so failover = U(0, 10 s) + one
//!   network latency. Every VIP sits on one node.
//! - **Kubernetes Lease** (kube-vip / Cilium per-Service leases at their defaults: lease 15 s,
//!   renew deadline 10 s, retry 2 s), following client-go's leader election: the holder renews
//!   every retry period; each candidate polls the Lease every retry period plus up to 1.2× of it
//!   (`wait.JitterUntil`), remembers when it last saw the record change, and takes over once
//!   it has not changed for the lease duration. Every API call is a request and a response over
//!   the modelled network (both can be lost). Placement: the first candidate to poll wins, so a
//!   VIP lands on a uniformly random node.

use std::time::Duration;

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::network::Network;

/// The seed design's control loop period.
pub const SEED_LOOP: Duration = Duration::from_secs(10);

/// client-go leader election timings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LeaseTiming {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    /// `wait.JitterUntil`'s factor: each wait is `retry · (1 + U(0, jitter))`.
    pub jitter: f64,
}

impl LeaseTiming {
    /// kube-vip's and Cilium's defaults.
    pub const DEFAULT: LeaseTiming = LeaseTiming {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
        jitter: 1.2,
    };
}

/// Crash → the new leader announces every VIP, for the seed design.
pub fn seed_leader_failover(network: &Network, rng: &mut Xoshiro256PlusPlus) -> Duration {
    let phase = Duration::from_secs_f64(rng.random::<f64>() * SEED_LOOP.as_secs_f64());
    phase + network.latency.sample(rng)
}

/// One API call (request and response) from `node` to the API server: its round trip, or
/// `None` when either direction was lost. The API server is modelled as one more host
/// (index `usize::MAX`) on the same network.
fn api_call(network: &Network, node: usize, rng: &mut Xoshiro256PlusPlus) -> Option<Duration> {
    let there = network.transit(node, usize::MAX, rng)?;
    let back = network.transit(usize::MAX, node, rng)?;
    Some(there + back)
}

/// Crash of a Lease holder (at time zero) → a candidate holds the Lease and announces.
/// `candidates` are the surviving nodes' indexes.
pub fn lease_failover(
    network: &Network,
    timing: &LeaseTiming,
    holder: usize,
    candidates: &[usize],
    rng: &mut Xoshiro256PlusPlus,
) -> Duration {
    let retry = timing.retry_period.as_secs_f64();
    let wait = |rng: &mut Xoshiro256PlusPlus| retry * (1.0 + timing.jitter * rng.random::<f64>());
    // The last renewal that reached the API server before the crash.
    let mut last_renew = -retry * rng.random::<f64>();
    while api_call(network, holder, rng).is_none()
        && last_renew > -timing.renew_deadline.as_secs_f64()
    {
        last_renew -= retry;
    }
    let lease = timing.lease_duration.as_secs_f64();
    let mut best = f64::INFINITY;
    for &candidate in candidates {
        // The candidate's polling is already under way: its first poll after the renewal
        // falls uniformly within one of its (jittered) waits.
        let mut t = last_renew + wait(rng) * rng.random::<f64>();
        let mut observed: Option<f64> = None;
        // Enough polls to see the change, wait out the lease and take over, even with loss.
        for _ in 0..64 {
            if t >= best {
                break;
            }
            if let Some(rtt) = api_call(network, candidate, rng) {
                let seen = t + rtt.as_secs_f64();
                match observed {
                    None => observed = Some(seen),
                    Some(since) if seen >= since + lease => {
                        // Take over: one more call writes the Lease.
                        if let Some(write) = api_call(network, candidate, rng) {
                            best = best.min(seen + write.as_secs_f64());
                            break;
                        }
                    }
                    Some(_) => {}
                }
            }
            t += wait(rng);
        }
    }
    if best.is_finite() {
        Duration::from_secs_f64(best.max(0.0))
    } else {
        timing.lease_duration * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lease_failover_is_about_a_lease_duration() {
        let net = Network::lan(0.0);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let candidates: Vec<usize> = (1..10).collect();
        for _ in 0..200 {
            let t = lease_failover(&net, &LeaseTiming::DEFAULT, 0, &candidates, &mut rng);
            assert!(
                t >= Duration::from_secs(12) && t <= Duration::from_secs(20),
                "{t:?}"
            );
        }
    }

    #[test]
    fn seed_leader_failover_is_within_one_loop() {
        let net = Network::lan(0.0);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        for _ in 0..200 {
            let t = seed_leader_failover(&net, &mut rng);
            assert!(t <= SEED_LOOP + Duration::from_millis(1));
        }
    }
}
