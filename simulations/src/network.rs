//! The modelled network: latency, loss (i.i.d., per direction, per link) and partitions.
//!
//! Every draw comes from the sending node's own seeded RNG, so one node's traffic never shifts
//! another node's random stream.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use serde::Serialize;

/// One-way latency, drawn uniformly from `[min, max]` for every datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub min: Duration,
    pub max: Duration,
}

impl Latency {
    /// A switched LAN: 0.1–1 ms one way.
    pub const LAN: Latency = Latency {
        min: Duration::from_micros(100),
        max: Duration::from_micros(1000),
    };

    pub fn sample(&self, rng: &mut Xoshiro256PlusPlus) -> Duration {
        let (lo, hi) = (self.min.as_nanos() as u64, self.max.as_nanos() as u64);
        if hi <= lo {
            return self.min;
        }
        Duration::from_nanos(rng.random_range(lo..=hi))
    }
}

/// A bounded receive queue per node, like a socket buffer counted in datagrams: the process
/// reads one datagram per `per_datagram`, and what arrives while `capacity` are waiting is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReceiveQueue {
    pub capacity: usize,
    pub per_datagram: Duration,
}

/// Everything that decides whether and when a datagram arrives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Network {
    pub latency: Latency,
    /// Probability that any datagram is lost, independently of every other.
    pub loss: f64,
    /// Extra loss on datagrams a node sends (one-way loss out of it).
    pub egress_loss: BTreeMap<usize, f64>,
    /// Extra loss on datagrams a node receives (one-way loss into it).
    pub ingress_loss: BTreeMap<usize, f64>,
    /// Extra loss on one direction of one link, `(from, to)`: asymmetric links.
    pub link_loss: BTreeMap<(usize, usize), f64>,
    /// Partition group of each node; datagrams between different groups are dropped.
    /// Empty: no partition.
    pub groups: Vec<u32>,
    /// Nodes whose cable is cut: besides their gossip, their link frames (announcements,
    /// probes and answers) reach nobody and nobody's reach them. A gossip partition alone
    /// leaves the link shared (see [`crate::world`]).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub link_cut: BTreeSet<usize>,
    /// `None`: every node reads every datagram the moment it arrives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_queue: Option<ReceiveQueue>,
}

impl Network {
    pub fn lan(loss: f64) -> Self {
        Self {
            latency: Latency::LAN,
            loss,
            egress_loss: BTreeMap::new(),
            ingress_loss: BTreeMap::new(),
            link_loss: BTreeMap::new(),
            groups: Vec::new(),
            link_cut: BTreeSet::new(),
            receive_queue: None,
        }
    }

    /// Splits the nodes into groups (`groups[i]` is node i's group) until [`Network::heal`].
    pub fn partition(&mut self, groups: Vec<u32>) {
        self.groups = groups;
    }

    pub fn heal(&mut self) {
        self.groups.clear();
    }

    pub fn partitioned(&self, from: usize, to: usize) -> bool {
        match (self.groups.get(from), self.groups.get(to)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        }
    }

    /// Whether node `i`'s link frames reach the segment (and the segment's reach it).
    pub fn on_link(&self, i: usize) -> bool {
        !self.link_cut.contains(&i)
    }

    /// The probability that a datagram from `from` to `to` is lost, all causes combined.
    pub fn loss_between(&self, from: usize, to: usize) -> f64 {
        let kept = [
            self.loss,
            self.egress_loss.get(&from).copied().unwrap_or(0.0),
            self.ingress_loss.get(&to).copied().unwrap_or(0.0),
            self.link_loss.get(&(from, to)).copied().unwrap_or(0.0),
        ]
        .iter()
        .map(|p| 1.0 - p.clamp(0.0, 1.0))
        .product::<f64>();
        1.0 - kept
    }

    /// When a datagram sent now from `from` to `to` arrives (as a delay), or `None` if lost.
    /// Always draws twice from `rng` so the stream does not depend on the outcome.
    pub fn transit(
        &self,
        from: usize,
        to: usize,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Option<Duration> {
        let lost = rng.random::<f64>() < self.loss_between(from, to);
        let delay = self.latency.sample(rng);
        if lost || self.partitioned(from, to) {
            None
        } else {
            Some(delay)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn losses_combine_and_partitions_cut() {
        let mut net = Network::lan(0.5);
        net.egress_loss.insert(1, 0.5);
        assert!((net.loss_between(1, 2) - 0.75).abs() < 1e-12);
        assert!((net.loss_between(2, 1) - 0.5).abs() < 1e-12);
        net.partition(vec![0, 0, 1]);
        assert!(net.partitioned(0, 2) && !net.partitioned(0, 1));
        net.heal();
        assert!(!net.partitioned(0, 2));
    }

    #[test]
    fn latency_stays_in_range_and_loss_rate_holds() {
        let net = Network::lan(0.1);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut lost = 0;
        for _ in 0..20_000 {
            match net.transit(0, 1, &mut rng) {
                Some(d) => assert!(d >= Latency::LAN.min && d <= Latency::LAN.max),
                None => lost += 1,
            }
        }
        assert!((1_700..2_300).contains(&lost), "lost {lost}");
    }
}
