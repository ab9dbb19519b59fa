//! Measures down-detection on loopback with real sockets: starts a cluster of drivers on
//! 127.0.0.1, crashes one member per trial and reports how long until every other member saw it
//! down.
//!
//! `cargo run --release -p swimlb-gossip --example detect -- [preset] [members] [trials]`

use std::collections::BTreeSet;
use std::time::Duration;

use swimlb_gossip::driver::{self, DriverConfig, GossipHandle};
use swimlb_gossip::{KeyRing, Preset};
use tokio::time::{Instant, timeout};

const KEY: [u8; 32] = [0x24; 32];

async fn start(name: String, peers: Vec<std::net::SocketAddr>, preset: Preset) -> GossipHandle {
    let config = DriverConfig {
        node_name: name,
        bind: "127.0.0.1:0".parse().expect("literal"),
        advertise: None,
        peers,
        timing: preset.timing(),
        keyring: KeyRing::new(1, KEY),
        generation: None,
    };
    driver::spawn(config).await.expect("bind on loopback")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let preset: Preset = args
        .first()
        .map_or(Ok(Preset::Fast), |p| p.parse())
        .expect("preset");
    let members: usize = args.get(1).map_or(5, |n| n.parse().expect("members"));
    let trials: usize = args.get(2).map_or(10, |n| n.parse().expect("trials"));

    let mut samples = Vec::new();
    for trial in 0..trials {
        let first = start(format!("t{trial}-m0"), vec![], preset).await;
        let seed = vec![first.identity().addr];
        let mut cluster = vec![first];
        for i in 1..members {
            cluster.push(start(format!("t{trial}-m{i}"), seed.clone(), preset).await);
        }
        let everyone: BTreeSet<String> =
            cluster.iter().map(|m| m.identity().name.clone()).collect();
        for member in &cluster {
            let mut live = member.live_members();
            timeout(Duration::from_secs(30), live.wait_for(|s| *s == everyone))
                .await
                .expect("cluster formed")
                .expect("driver running");
        }
        let victim = cluster.pop().expect("members ≥ 2");
        let victim_name = victim.identity().name.clone();
        let crashed_at = Instant::now();
        drop(victim);
        let mut slowest = Duration::ZERO;
        for member in &cluster {
            let mut live = member.live_members();
            timeout(
                Duration::from_secs(60),
                live.wait_for(|s| !s.contains(&victim_name)),
            )
            .await
            .expect("crash detected")
            .expect("driver running");
            slowest = slowest.max(crashed_at.elapsed());
        }
        println!("trial {trial}: every member saw the crash after {slowest:?}");
        samples.push(slowest);
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "preset {preset}, {members} members, {trials} trials: min {:?} p50 {:?} p90 {:?} max {:?} (bound {:?})",
        samples[0],
        pick(0.5),
        pick(0.9),
        samples[samples.len() - 1],
        preset.timing().detection_bound(members)
    );
}
