//! swimlb's deterministic failover simulator.
//!
//! N real membership cores ([`swimlb_gossip::Membership`]), each feeding a real speaker core
//! ([`swimlb_speaker_core::SpeakerCore`]), run over a modelled network, link and client in
//! virtual time. One event queue ordered by (time, sequence), one
//! seeded `Xoshiro256PlusPlus` per node, nothing read from the wall clock: the same seed and
//! parameters give the same report, byte for byte.
//!
//! - [`network`]: latency, loss (i.i.d., one-way, per link), partitions;
//! - [`world`]: the cluster, the event queue, node pause/crash/restart/leave, ownership views;
//! - [`baseline`]: the models compared against (a single leader on a 10 s loop, Kubernetes Leases);
//! - [`scenario`]: the registry of scenarios; failover, partition, flap, rolling-restart, drain,
//!   loss-sweep;
//! - [`faults`]: deaf, mute, cut, stall, clock-step, replay, join-storm;
//! - [`claims`]: what the speaker cores' claims cost the client: pause, gossip-flap,
//!   mass-failure (and the claim figures of partition and rolling-restart);
//! - [`metrics`], [`report`], [`plot`]: percentiles, the table and JSON, the SVG plots.

pub mod baseline;
pub mod claims;
pub mod faults;
pub mod metrics;
pub mod network;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod world;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid parameter: {0}")]
    Parameter(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode the report: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot draw {path}: {message}")]
    Plot { path: String, message: String },
}

/// Derives an independent 64-bit seed from a run seed and two coordinates (SplitMix64 steps).
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut x = seed;
    for word in [a, b] {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_add(word);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
    }
    x
}
