//! Fault scenarios at small sizes: what the healthy members do when one node goes deaf, mute,
//! cut off or stalls, restarts with a stepped-back clock, receives replayed traffic, or joins
//! through every peer at once. The targets are the membership-trust guarantees; the ones the
//! gossip core does not meet yet are ignored with the reason.

mod common;

use std::time::Duration;

use common::{fast, gossip, params, run_one};
use swimlb_gossip::{Preset, Timing};
use swimlb_simulations::faults::{FaultSummary, FaultTrial};
use swimlb_simulations::network::{Network, ReceiveQueue};
use swimlb_simulations::report::to_json;
use swimlb_simulations::scenario::{
    self, ConfigReport, Configuration, Model, ScenarioKind, ScenarioOptions, boot,
};
use swimlb_simulations::world::{NODE_LIMIT, World, WorldConfig};

/// After a heal, every VIP's owner is agreed everywhere within this.
const AGREEMENT: f64 = 1.0;

fn summary(report: &ConfigReport) -> FaultSummary {
    report
        .faults
        .clone()
        .expect("a fault scenario reports faults")
}

/// The membership-trust targets for a node whose fault heals.
fn assert_healthy_untouched(report: &ConfigReport) {
    let f = summary(report);
    assert_eq!(
        f.healthy_downs, 0,
        "{}: healthy members declared down",
        report.name
    );
    assert_eq!(
        f.healthy_renewed, 0,
        "{}: healthy members renewed",
        report.name
    );
    assert_eq!(
        f.spurious_takeovers, 0,
        "{}: VIPs taken from their owner",
        report.name
    );
    assert_eq!(report.timeouts, 0, "{}: never agreed again", report.name);
    for trial in &report.trials {
        let took = trial.agreement.expect("agreed");
        assert!(
            took <= AGREEMENT,
            "{} trial {}: agreement {took}s after the heal",
            report.name,
            trial.trial
        );
    }
}

fn silenced(kind: ScenarioKind) -> ConfigReport {
    let mut p = params(kind, 8, 1, ScenarioOptions::default());
    p.options.duration = Duration::from_secs(10);
    run_one(&p, fast())
}

#[test]
fn a_deaf_node_turns_no_healthy_member_down() {
    assert_healthy_untouched(&silenced(ScenarioKind::Deaf));
}

#[test]
fn a_mute_node_turns_no_healthy_member_down() {
    assert_healthy_untouched(&silenced(ScenarioKind::Mute));
}

#[test]
fn a_cut_node_turns_no_healthy_member_down() {
    assert_healthy_untouched(&silenced(ScenarioKind::Cut));
}

#[test]
fn the_deaf_scenario_sees_what_the_deaf_node_does() {
    // Whatever the core decides, the deaf node hears nobody for 10 s: the cluster must notice
    // it (a Down of its generation) and it must be agreed on again after the heal.
    let report = silenced(ScenarioKind::Deaf);
    let trial = &report.trials[0];
    assert!(
        trial.detection.is_some(),
        "the deaf node was never declared down"
    );
    assert!(trial.agreement.is_some(), "no agreement after the heal");
    let f = trial.faults.as_ref().expect("fault figures");
    assert!(f.join.is_none() && f.crashes_undetected.is_none());
}

fn stalls(lengths: &[u64], trials: usize, loss: f64) -> Vec<ConfigReport> {
    let mut p = params(ScenarioKind::Stall, 8, trials, ScenarioOptions::default());
    p.loss = loss;
    p.network.loss = loss;
    let configs: Vec<Configuration> = lengths
        .iter()
        .map(|&ms| Configuration {
            stall: Some(Duration::from_millis(ms)),
            ..gossip(&format!("fast/{ms}ms"), Preset::Fast.timing())
        })
        .collect();
    scenario::run(&p, &configs, 2, &|_| {})
        .expect("runs")
        .configs
}

#[test]
fn stalls_up_to_200ms_turn_no_healthy_member_down() {
    for report in stalls(&[100, 200], 4, 0.01) {
        assert_healthy_untouched(&report);
    }
}

#[test]
fn a_resumed_node_reads_its_queued_acks_before_its_probe_timers() {
    // A 400 ms freeze outlasts the probe timeout: a node that fired its overdue probe timers
    // before reading the acks waiting in its socket would suspect the healthy member it had
    // just probed. Reading first, it suspects nobody (no loss, so no ack is really missing).
    for report in stalls(&[400], 10, 0.0) {
        let f = summary(&report);
        assert_eq!(f.suspicions_of_healthy, 0, "{}", report.name);
        assert_eq!(f.downs_by_faulty + f.healthy_downs, 0, "{}", report.name);
    }
}

#[test]
fn a_restart_with_a_stepped_back_clock_is_accepted_at_once() {
    let mut p = params(ScenarioKind::ClockStep, 6, 1, ScenarioOptions::default());
    p.options.down = Duration::from_secs(1);
    let report = run_one(&p, fast());
    assert_healthy_untouched(&report);
}

/// `fast` with dead members forgotten after 20 s, so the second replay (remove_down_after
/// + 1 s later) stays cheap.
fn forgetful() -> Configuration {
    gossip(
        "fast",
        Timing {
            remove_down_after: Duration::from_secs(20),
            ..Preset::Fast.timing()
        },
    )
}

fn replayed() -> ConfigReport {
    let mut p = params(ScenarioKind::Replay, 6, 1, ScenarioOptions::default());
    p.options.capture = Duration::from_secs(4);
    run_one(&p, forgetful())
}

#[test]
fn replayed_datagrams_bring_no_dead_member_back() {
    let report = replayed();
    let rounds: Vec<&FaultTrial> = report
        .trials
        .iter()
        .filter_map(|t| t.faults.as_ref())
        .collect();
    assert_eq!(rounds.len(), 2, "a fresh-restart round and a later one");
    for round in rounds {
        assert_eq!(round.dead_revived, 0, "{:?}", round.label);
        assert_eq!(round.crashes_undetected, Some(0), "{:?}", round.label);
    }
}

#[test]
fn a_crash_during_a_replay_is_still_seen() {
    // The replay must not blind the measurement itself: the member crashed at the replay is
    // declared down by someone in each round.
    let report = replayed();
    assert_eq!(report.trials.len(), 2);
    for trial in &report.trials {
        assert!(trial.detection.is_some(), "round {:?}", trial.faults);
    }
}

fn join_storm(nodes: usize) -> ConfigReport {
    let mut p = params(
        ScenarioKind::JoinStorm,
        nodes,
        1,
        ScenarioOptions::default(),
    );
    p.network.receive_queue = Some(ReceiveQueue {
        capacity: 200,
        per_datagram: Duration::from_micros(5),
    });
    run_one(&p, fast())
}

#[test]
fn a_join_through_every_peer_gets_under_three_member_lists() {
    let report = join_storm(40);
    let join = report.trials[0]
        .faults
        .as_ref()
        .and_then(|f| f.join.clone())
        .expect("join figures");
    assert!(
        join.member_lists < 3.0,
        "{} member lists",
        join.member_lists
    );
    let knows = join.knows_all.expect("the joiner learned every member");
    assert!(knows <= 0.5, "knew every member after {knows}s");
}

#[test]
fn a_join_storm_ends_with_the_joiner_knowing_everyone() {
    let report = join_storm(40);
    let join = report.trials[0]
        .faults
        .as_ref()
        .and_then(|f| f.join.clone())
        .expect("join figures");
    assert!(join.knows_all.is_some(), "never learned every member");
    assert!(join.senders >= 1 && join.member_list_bytes > 0, "{join:?}");
    assert_eq!(report.timeouts, 0);
}

fn small_world(nodes: usize, network: Network) -> World {
    let mut world = World::new(WorldConfig {
        nodes,
        vips: nodes,
        timing: Preset::Fast.timing(),
        network,
        seed: 3,
        ineligible: 0,
        first_generation: 1,
    })
    .expect("valid parameters");
    boot(&mut world, 3);
    world
}

#[test]
fn a_full_receive_queue_drops_what_does_not_fit() {
    let mut network = Network::lan(0.0);
    network.receive_queue = Some(ReceiveQueue {
        capacity: 10,
        per_datagram: Duration::from_millis(1),
    });
    let mut world = small_world(4, network);
    let before = world.queue_drops(2);
    for _ in 0..100 {
        world.inject(1, 2, vec![0; 64]);
    }
    let until = world.now() + Duration::from_millis(50);
    world.run_until(until);
    // One is read at once, ten wait, the rest find the queue full.
    assert_eq!(world.queue_drops(2) - before, 89);
}

#[test]
fn fault_scenarios_are_deterministic_per_seed() {
    let run = |seed| {
        let mut p = params(ScenarioKind::Cut, 5, 1, ScenarioOptions::default());
        p.seed = seed;
        p.options.duration = Duration::from_secs(2);
        to_json(&scenario::run(&p, &[fast()], 1, &|_| {}).expect("runs")).expect("encodes")
    };
    let first = run(4);
    assert_eq!(first, run(4));
    assert_ne!(first, run(5), "the seed is ignored");
    assert!(first.contains("\"healthy_downs\""));
}

#[test]
fn baselines_hit_the_same_victims_as_the_gossip_configurations() {
    let mut p = params(ScenarioKind::Failover, 5, 4, ScenarioOptions::default());
    p.vips = 10;
    let lease = Configuration::new(
        "lease",
        Model::Lease {
            timing: swimlb_simulations::baseline::LeaseTiming::DEFAULT,
        },
    );
    let report = scenario::run(
        &p,
        &[
            fast(),
            lease,
            Configuration::new("seed-leader", Model::SeedLeader),
        ],
        2,
        &|_| {},
    )
    .expect("runs");
    let victims = |c: &ConfigReport| c.trials.iter().map(|t| t.node).collect::<Vec<_>>();
    assert_eq!(victims(&report.configs[0]), victims(&report.configs[1]));
    // A configuration alone gets the same trials as beside others.
    let alone = run_one(&p, fast());
    assert_eq!(alone, report.configs[0]);
}

#[test]
fn one_node_limit_holds_for_the_world_and_every_scenario() {
    let too_many = NODE_LIMIT.end() + 1;
    let config = WorldConfig {
        nodes: too_many,
        vips: 1,
        timing: Preset::Fast.timing(),
        network: Network::lan(0.0),
        seed: 1,
        ineligible: 0,
        first_generation: 1,
    };
    assert!(World::new(config.clone()).is_err());
    assert!(
        World::new(WorldConfig {
            nodes: NODE_LIMIT.start() - 1,
            ..config
        })
        .is_err()
    );
    let mut p = params(
        ScenarioKind::Failover,
        too_many,
        1,
        ScenarioOptions::default(),
    );
    p.vips = 1;
    assert!(scenario::run(&p, &[fast()], 1, &|_| {}).is_err());
    // join-storm adds its joiner to the cluster, so the largest cluster is one smaller.
    let p = params(
        ScenarioKind::JoinStorm,
        *NODE_LIMIT.end(),
        1,
        ScenarioOptions::default(),
    );
    assert!(scenario::run(&p, &[fast()], 1, &|_| {}).is_err());
    // Fault scenarios compare gossip configurations only.
    let p = params(ScenarioKind::Deaf, 5, 1, ScenarioOptions::default());
    let seed_leader = Configuration::new("seed-leader", Model::SeedLeader);
    assert!(scenario::run(&p, &[seed_leader], 1, &|_| {}).is_err());
}

#[test]
fn every_scenario_has_a_distinct_name() {
    let mut names: Vec<&str> = ScenarioKind::ALL.iter().map(|k| k.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ScenarioKind::ALL.len());
}
