//! Timing presets: how fast members are probed, suspected and declared down.
//!
//! | preset | probe period | probe timeout | suspect → down | gossip | use |
//! |---|---|---|---|---|---|
//! | `fast` (default) | 100 ms | 30 ms | 150 ms – 900 ms | every 30 ms to 3 | LANs; sub-second failover |
//! | `memberlist` | 1 s | 500 ms | 4·max(1, log10 n) s – 6× that | every 200 ms to 3 | what MetalLB runs; lossy networks |
//! | `wan` | 5 s | 3 s | 30·max(1, log10 n) s – 6× that | every 500 ms to 4 | links across sites |
//!
//! `memberlist` mirrors hashicorp/memberlist's `DefaultLANConfig` (3 indirect probes,
//! retransmissions 4·log10(n+1)); `wan` its `DefaultWANConfig`. Every preset disseminates each
//! update many more times than foca's `new_lan` (whose tail reaches tens of seconds at 100
//! nodes) and the membership core gossips at once whenever it learns that a member is down.
//!
//! Suspicion is dynamic (Lifeguard): the longer figure applies while nobody confirms the
//! suspicion, the shorter once two other members independently found the suspect unreachable.
//!
//! The cost of `fast`: a member that cannot answer for about 250 ms while others confirm it
//! (the probe, its indirect probes and checks, then 150 ms of suspicion in which to refute) is
//! declared down and rejoins with a new generation. A process stalled that long (CPU
//! throttling, swapping) loses its VIPs for a moment; clusters with such stalls should use
//! `memberlist`.

use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    #[default]
    Fast,
    Memberlist,
    Wan,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Fast, Preset::Memberlist, Preset::Wan];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Fast => "fast",
            Preset::Memberlist => "memberlist",
            Preset::Wan => "wan",
        }
    }

    pub fn timing(self) -> Timing {
        match self {
            Preset::Fast => Timing {
                probe_period: Duration::from_millis(100),
                probe_timeout: Duration::from_millis(30),
                indirect_probes: 3,
                suspicion: Suspicion::Fixed(Duration::from_millis(150)),
                suspicion_max_multiplier: 6,
                suspicion_confirmations: 2,
                suspicion_checks: true,
                gossip_interval: Duration::from_millis(30),
                gossip_fanout: 3,
                retransmissions: Retransmissions::Fixed(16),
                anti_entropy_interval: Duration::from_secs(10),
                announce_to_down_interval: Duration::from_secs(5),
                rejoin_interval: Duration::from_secs(1),
                remove_down_after: Duration::from_secs(3600),
                local_health_max: 8,
                isolation_hold: Duration::from_secs(30),
                replay_max_age: Duration::from_secs(120),
            },
            Preset::Memberlist => Timing {
                probe_period: Duration::from_secs(1),
                probe_timeout: Duration::from_millis(500),
                indirect_probes: 3,
                suspicion: Suspicion::Log10Scaled { multiplier: 4 },
                suspicion_max_multiplier: 6,
                suspicion_confirmations: 2,
                // As memberlist: only members whose own probes failed confirm.
                suspicion_checks: false,
                gossip_interval: Duration::from_millis(200),
                gossip_fanout: 3,
                retransmissions: Retransmissions::Log10Scaled { multiplier: 4 },
                anti_entropy_interval: Duration::from_secs(30),
                announce_to_down_interval: Duration::from_secs(30),
                rejoin_interval: Duration::from_secs(30),
                remove_down_after: Duration::from_secs(3600),
                local_health_max: 8,
                isolation_hold: Duration::from_secs(30),
                replay_max_age: Duration::from_secs(120),
            },
            Preset::Wan => Timing {
                probe_period: Duration::from_secs(5),
                probe_timeout: Duration::from_secs(3),
                indirect_probes: 3,
                suspicion: Suspicion::Log10Scaled { multiplier: 6 },
                suspicion_max_multiplier: 6,
                suspicion_confirmations: 4,
                suspicion_checks: true,
                gossip_interval: Duration::from_millis(500),
                gossip_fanout: 4,
                retransmissions: Retransmissions::Log10Scaled { multiplier: 4 },
                anti_entropy_interval: Duration::from_secs(60),
                announce_to_down_interval: Duration::from_secs(60),
                rejoin_interval: Duration::from_secs(60),
                remove_down_after: Duration::from_secs(3600),
                local_health_max: 8,
                isolation_hold: Duration::from_secs(30),
                replay_max_age: Duration::from_secs(120),
            },
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown gossip preset {0:?}: expected fast, memberlist or wan")]
pub struct UnknownPreset(pub String);

impl FromStr for Preset {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPreset(s.to_owned()))
    }
}

/// How long a suspected member has to refute before it is declared down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Suspicion {
    Fixed(Duration),
    /// `multiplier · max(1, log10 n) · probe_period`, as memberlist computes it.
    Log10Scaled {
        multiplier: u32,
    },
}

/// How many times each membership update is piggybacked before it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Retransmissions {
    Fixed(u8),
    /// `multiplier · log10(n + 1)`, memberlist's `RetransmitMult`.
    Log10Scaled {
        multiplier: u32,
    },
}

/// Every timing knob of the membership core, in one typed value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// How often this member probes another one.
    pub probe_period: Duration,
    /// How long a direct probe may take before indirect probes are sent.
    pub probe_timeout: Duration,
    /// How many members are asked to probe on our behalf.
    pub indirect_probes: usize,
    /// The shortest suspicion: what a suspect gets once enough members confirm it.
    pub suspicion: Suspicion,
    /// The longest suspicion, as a multiple of the shortest: what a suspect gets when nobody
    /// confirms it (Lifeguard's dynamic suspicion; memberlist uses 6).
    pub suspicion_max_multiplier: u32,
    /// Independent confirmations that bring a suspicion down to its shortest.
    pub suspicion_confirmations: usize,
    /// Whether members asked to probe indirectly, and a few chosen ones that check the suspect
    /// directly, confirm a suspicion too (swimlb's addition); without, only members whose own
    /// probes failed do, as in memberlist.
    pub suspicion_checks: bool,
    /// How often pending updates are pushed to `gossip_fanout` random members.
    pub gossip_interval: Duration,
    pub gossip_fanout: usize,
    pub retransmissions: Retransmissions,
    /// How often the full membership state is exchanged with one random member, both ways
    /// (repairs anything piggybacking missed, downs included).
    pub anti_entropy_interval: Duration,
    /// How often one member believed down is contacted, so healed partitions merge.
    pub announce_to_down_interval: Duration,
    /// How often the configured peers are contacted while this member knows no other.
    pub rejoin_interval: Duration,
    /// How long a down member is remembered (so stale updates about it are ignored).
    pub remove_down_after: Duration,
    /// The highest local-health score: a sick member's timeouts stretch up to `max + 1` times.
    pub local_health_max: u8,
    /// How long a member that nobody answers holds back the downs it would declare. Past it,
    /// the member believes itself again: after a real mass failure the last survivors take
    /// over, this much later.
    pub isolation_hold: Duration,
    /// How far a datagram's timestamp may be from the receiver's clock (see `replay`).
    pub replay_max_age: Duration,
}

impl Timing {
    pub fn suspicion_for(&self, cluster_size: usize) -> Duration {
        match self.suspicion {
            Suspicion::Fixed(d) => d,
            Suspicion::Log10Scaled { multiplier } => {
                let scale = (cluster_size.max(1) as f64).log10().max(1.0);
                self.probe_period.mul_f64(scale * f64::from(multiplier))
            }
        }
    }

    /// Lifeguard's suspicion timeouts in a cluster of `cluster_size` members.
    pub fn suspicion_timeouts(&self, cluster_size: usize) -> crate::suspicion::SuspicionTimeouts {
        let min = self.suspicion_for(cluster_size);
        crate::suspicion::SuspicionTimeouts {
            min,
            max: min * self.suspicion_max_multiplier.max(1),
            expected_confirmations: self.suspicion_confirmations,
        }
    }

    pub fn retransmissions_for(&self, cluster_size: usize) -> NonZeroU8 {
        let count = match self.retransmissions {
            Retransmissions::Fixed(n) => n,
            Retransmissions::Log10Scaled { multiplier } => {
                let n = ((cluster_size as f64) + 1.0).log10() * f64::from(multiplier);
                n.ceil().clamp(1.0, 255.0) as u8
            }
        };
        NonZeroU8::new(count).unwrap_or(NonZeroU8::MIN)
    }

    /// foca's configuration for a cluster of `cluster_size` members.
    pub fn foca_config(&self, cluster_size: usize) -> foca::Config {
        let nonzero = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        let size = NonZeroU32::new(u32::try_from(cluster_size).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_timeout,
            num_indirect_probes: nonzero(self.indirect_probes),
            max_transmissions: self.retransmissions_for(size.get() as usize),
            suspect_to_down_after: self.suspicion_for(size.get() as usize),
            remove_down_after: Some(self.remove_down_after),
            max_packet_size: nonzero(MAX_FOCA_PACKET),
            notify_down_members: true,
            // The core's own full-state exchange replaces foca's periodic announce.
            periodic_announce: None,
            periodic_announce_to_down_members: Some(foca::PeriodicParams {
                frequency: self.announce_to_down_interval,
                num_members: NonZeroUsize::MIN,
            }),
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: self.gossip_interval,
                num_members: nonzero(self.gossip_fanout),
            }),
        }
    }

    /// How long a crash normally takes to be declared down, before dissemination: up to a
    /// period until some member probes the crashed one, a period for that probe and its
    /// indirect probes to fail, a period of slack for unlucky probe order, then the suspicion.
    /// A rule of thumb for tests and reports, not a guarantee: probe order is random.
    pub fn detection_bound(&self, cluster_size: usize) -> Duration {
        self.probe_period * 3 + self.suspicion_for(cluster_size)
    }
}

/// The largest foca payload; with the envelope's overhead a datagram stays under a 1500-byte MTU.
pub const MAX_FOCA_PACKET: usize = 1370;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberlist_matches_hashicorp_lan_defaults() {
        let t = Preset::Memberlist.timing();
        assert_eq!(t.probe_period, Duration::from_secs(1));
        assert_eq!(t.probe_timeout, Duration::from_millis(500));
        assert_eq!(t.indirect_probes, 3);
        assert_eq!(t.suspicion_for(3), Duration::from_secs(4));
        assert_eq!(t.suspicion_for(10), Duration::from_secs(4));
        assert_eq!(t.suspicion_for(100), Duration::from_secs(8));
        assert_eq!(t.suspicion_for(1000), Duration::from_secs(12));
        assert_eq!(t.retransmissions_for(100).get(), 9);
    }

    #[test]
    fn fast_retransmits_more_than_foca_lan() {
        let fast = Preset::Fast.timing().foca_config(100);
        let lan = foca::Config::new_lan(NonZeroU32::new(100).expect("literal"));
        assert!(fast.max_transmissions.get() >= 2 * lan.max_transmissions.get());
        assert!(fast.suspect_to_down_after < Duration::from_secs(1));
    }

    #[test]
    fn presets_parse_by_name() {
        for preset in Preset::ALL {
            assert_eq!(preset.name().parse::<Preset>(), Ok(preset));
        }
        assert!("lan".parse::<Preset>().is_err());
    }
}
