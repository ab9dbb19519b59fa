//! Fixed-seed scenario tests at small sizes: ownership, failover bound, determinism, healing.

use std::time::Duration;

use swimlb_gossip::Preset;
use swimlb_simulations::network::Network;
use swimlb_simulations::report::to_json;
use swimlb_simulations::scenario::{
    self, Configuration, Model, Params, ScenarioKind, ScenarioOptions, boot,
};
use swimlb_simulations::world::{NodeState, World, WorldConfig};

fn world(nodes: usize, vips: usize, loss: f64, seed: u64, ineligible: usize) -> World {
    let mut world = World::new(WorldConfig {
        nodes,
        vips,
        timing: Preset::Fast.timing(),
        network: Network::lan(loss),
        seed,
        ineligible,
        first_generation: 1,
    })
    .expect("valid parameters");
    boot(&mut world, seed);
    world
}

/// Every VIP is claimed by exactly one node, which is up, eligible and the best candidate.
fn assert_single_owners(world: &World) {
    for v in 0..world.vip_count() {
        let claimants = world.claimants(v);
        assert_eq!(claimants.len(), 1, "VIP {v} claimed by {claimants:?}");
        let owner = claimants[0];
        assert!(world.is_eligible(owner), "VIP {v} on ineligible {owner}");
        assert_eq!(world.state(owner), NodeState::Running);
        let up_eligible: Vec<&str> = world
            .up_nodes()
            .into_iter()
            .filter(|&i| world.is_eligible(i))
            .map(|i| world.name(i))
            .collect();
        let expected = swimlb_gossip::owner::owner(world.vip(v), up_eligible);
        assert_eq!(Some(world.name(owner)), expected, "VIP {v}");
    }
}

#[test]
fn after_convergence_every_vip_has_one_owner_among_live_eligible_nodes() {
    for seed in [1, 2] {
        let mut world = world(6, 24, 0.01, seed, 2);
        assert!(world.single_ownership(), "seed {seed} did not converge");
        assert_single_owners(&world);
        // Still so after a crash has been absorbed.
        let victim = world.true_owner(0).expect("an owner");
        world.crash(victim);
        let until = world.now() + Duration::from_secs(5);
        assert!(world.run_while(until, World::single_ownership));
        assert_single_owners(&world);
        assert!(world.claimants(0).iter().all(|&i| i != victim));
    }
}

#[test]
fn a_crash_at_five_nodes_fails_over_within_the_fast_bound() {
    let timing = Preset::Fast.timing();
    // Detection by the prober, plus one gossip round for the news to reach the new owner.
    let bound = timing.detection_bound(5) + timing.gossip_interval + Duration::from_millis(10);
    for seed in 1..=4 {
        let mut world = world(5, 10, 0.01, seed, 0);
        let victim = world.true_owner(3).expect("an owner");
        let moving: usize = (0..10)
            .filter(|&v| world.true_owner(v) == Some(victim))
            .count();
        world.clear_awaiting();
        world.crash(victim);
        let until = world.now() + Duration::from_secs(10);
        assert!(world.run_while(until, |w| w.awaiting_failover() == 0));
        let failovers = world.take_failovers();
        assert_eq!(failovers.len(), moving);
        for (vip, took) in failovers {
            assert!(
                took <= bound,
                "seed {seed}: VIP {vip} took {took:?} > {bound:?}"
            );
            assert_ne!(world.claimants(vip), vec![victim]);
        }
    }
}

fn small_params(scenario: ScenarioKind, seed: u64) -> Params {
    Params {
        scenario,
        nodes: 5,
        vips: 10,
        trials: 2,
        loss: 0.01,
        seed,
        ineligible: 0,
        options: ScenarioOptions {
            duration: Duration::from_secs(2),
            ..ScenarioOptions::default()
        },
        network: Network::lan(0.01),
    }
}

fn configs() -> Vec<Configuration> {
    vec![
        Configuration::new(
            "fast",
            Model::Gossip {
                timing: Preset::Fast.timing(),
            },
        ),
        Configuration::new(
            "lease",
            Model::Lease {
                timing: swimlb_simulations::baseline::LeaseTiming::DEFAULT,
            },
        ),
        Configuration::new("seed-leader", Model::SeedLeader),
    ]
}

#[test]
fn the_same_seed_gives_byte_identical_json() {
    let params = small_params(ScenarioKind::Failover, 7);
    let run = |threads| {
        let report = scenario::run(&params, &configs(), threads, &|_| {}).expect("runs");
        to_json(&report).expect("encodes")
    };
    let first = run(2);
    assert_eq!(first, run(1), "thread count changed the report");
    assert_eq!(first, run(2));
    let other = scenario::run(
        &small_params(ScenarioKind::Failover, 8),
        &configs(),
        2,
        &|_| {},
    )
    .expect("runs");
    assert_ne!(
        first,
        to_json(&other).expect("encodes"),
        "the seed is ignored"
    );
    assert!(first.contains("\"failover\""));
}

#[test]
fn a_gossip_partition_leaves_one_claimant_per_vip_and_heals_to_single_ownership() {
    let mut world = world(6, 24, 0.0, 3, 0);
    assert!(world.single_ownership());
    world.network.partition(vec![0, 0, 0, 0, 1, 1]);
    let heal_at = world.now() + Duration::from_secs(3);
    world.run_until(heal_at);
    // The minority (2 of 6, no quorum) is fenced: on the shared link it yields every VIP the
    // majority took over, and nothing is left unclaimed.
    for v in 0..24 {
        assert_eq!(
            world.claimant_count(v),
            1,
            "VIP {v}: {:?}",
            world.claimants(v)
        );
        assert!(
            world.claimants(v).iter().all(|&i| i < 4),
            "VIP {v} on the minority"
        );
    }
    world.network.heal();
    let limit = heal_at + Duration::from_secs(30);
    assert!(
        world.run_while(limit, World::single_ownership),
        "still split {:?} after healing",
        world.now() - heal_at
    );
    assert_single_owners(&world);
}

#[test]
fn a_long_pause_is_a_false_down_and_a_short_one_is_not() {
    let mut world = world(5, 10, 0.0, 4, 0);
    world.pause(2, Duration::from_millis(60));
    let until = world.now() + Duration::from_secs(3);
    world.run_until(until);
    assert!(world.false_downs().is_empty(), "{:?}", world.false_downs());
    world.pause(2, Duration::from_secs(2));
    let until = world.now() + Duration::from_secs(6);
    world.run_until(until);
    assert!(world.false_downs().iter().any(|d| d.node == 2));
    // It comes back with a new identity and the cluster agrees again.
    let until = world.now() + Duration::from_secs(10);
    assert!(world.run_while(until, World::single_ownership));
}

#[test]
fn a_drained_owner_hands_over_sooner_than_a_crashed_one() {
    let mut world = world(5, 10, 0.0, 5, 0);
    let victim = world.true_owner(0).expect("an owner");
    world.clear_awaiting();
    world.leave(victim);
    let until = world.now() + Duration::from_secs(5);
    assert!(world.run_while(until, |w| w.awaiting_failover() == 0));
    let worst = world
        .take_failovers()
        .into_iter()
        .map(|(_, d)| d)
        .max()
        .expect("a VIP moved");
    assert!(worst < Duration::from_millis(100), "drain took {worst:?}");
}
