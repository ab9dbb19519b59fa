//! Scenarios: what happens to the cluster, and what is measured per trial.
//!
//! [`ScenarioKind::spec`] is the one place that says, per scenario, its name, defaults, table
//! columns and trial loop. Every random choice draws from its own stream ([`Stream`]), so the
//! configurations of a run (and the baselines) hit the same victims at the same phases, and a
//! draw added for one purpose cannot shift another's.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use swimlb_gossip::Timing;

use crate::baseline::{self, LeaseTiming};
use crate::claims::{self, ClaimSummary, ClaimTrial};
use crate::faults::{self, FaultSummary, FaultTrial};
use crate::metrics::{Summary, round_us};
use crate::network::Network;
use crate::world::{NODE_LIMIT, NodeState, World, WorldConfig};
use crate::{SimError, mix};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    Failover,
    Partition,
    Flap,
    RollingRestart,
    Drain,
    LossSweep,
    Deaf,
    Mute,
    Cut,
    Stall,
    ClockStep,
    Replay,
    JoinStorm,
    Pause,
    GossipFlap,
    MassFailure,
}

/// The columns of a scenario's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// Two timing columns (p50 p90 p99 max each) with these headers: failover then agreement,
    /// or with `agreement_first`, agreement then detection.
    Timing {
        first: &'static str,
        second: &'static str,
        agreement_first: bool,
    },
    /// A fault on a node that keeps running: what the healthy members did, and the heal.
    Fault {
        heal: &'static str,
    },
    JoinStorm,
    Replay,
    /// What the claims cost the client (see [`crate::claims`]).
    Claims {
        heal: &'static str,
    },
}

/// A scenario's trial loop, run after boot on a gossip configuration.
pub type Trials = fn(&Params, &Configuration, &mut World, &mut ConfigReport, &(dyn Fn(u64) + Sync));

/// Everything about one scenario apart from its command-line flags.
pub struct Spec {
    pub name: &'static str,
    /// Configurations compared without `--configs`; `preset`: the `--preset` given.
    pub configs: &'static [&'static str],
    pub nodes: usize,
    pub trials: fn(nodes: usize) -> usize,
    pub columns: Columns,
    /// The seed leader and Lease models can run it.
    pub baselines: bool,
    /// The fewest nodes it needs.
    pub min_nodes: usize,
    /// Nodes beyond `--nodes` that the trial loop starts itself (a joiner), not boot.
    pub late_nodes: usize,
    /// Generation of every node's first start.
    pub first_generation: u64,
    pub run: Trials,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 16] = [
        ScenarioKind::Failover,
        ScenarioKind::Partition,
        ScenarioKind::Flap,
        ScenarioKind::RollingRestart,
        ScenarioKind::Drain,
        ScenarioKind::LossSweep,
        ScenarioKind::Deaf,
        ScenarioKind::Mute,
        ScenarioKind::Cut,
        ScenarioKind::Stall,
        ScenarioKind::ClockStep,
        ScenarioKind::Replay,
        ScenarioKind::JoinStorm,
        ScenarioKind::Pause,
        ScenarioKind::GossipFlap,
        ScenarioKind::MassFailure,
    ];

    pub fn spec(self) -> Spec {
        let base = Spec {
            name: "",
            configs: &["preset"],
            nodes: 100,
            trials: |_| 5,
            columns: Columns::Timing {
                first: "failover",
                second: "agreement",
                agreement_first: false,
            },
            baselines: false,
            min_nodes: *NODE_LIMIT.start(),
            late_nodes: 0,
            first_generation: 1,
            run: trials_failover,
        };
        let fault = |name, run: Trials| Spec {
            name,
            columns: Columns::Fault {
                heal: "heal→single owner",
            },
            run,
            ..base
        };
        match self {
            ScenarioKind::Failover => Spec {
                name: "failover",
                configs: &["fast", "memberlist", "seed-leader", "lease"],
                trials: |_| 30,
                baselines: true,
                ..base
            },
            ScenarioKind::Drain => Spec {
                name: "drain",
                configs: &["fast", "memberlist"],
                trials: |_| 20,
                columns: Columns::Timing {
                    first: "leave→new owner",
                    second: "agreement",
                    agreement_first: false,
                },
                baselines: true,
                ..base
            },
            ScenarioKind::Partition => Spec {
                name: "partition",
                columns: Columns::Timing {
                    first: "heal→single owner",
                    second: "detection",
                    agreement_first: true,
                },
                run: trials_partition,
                ..base
            },
            ScenarioKind::Flap => Spec {
                name: "flap",
                trials: |_| 10,
                run: trials_flap,
                ..base
            },
            ScenarioKind::RollingRestart => Spec {
                name: "rolling-restart",
                trials: |nodes| nodes.min(10),
                columns: Columns::Timing {
                    first: "leave→new owner",
                    second: "restart→agreement",
                    agreement_first: false,
                },
                run: trials_rolling,
                ..base
            },
            ScenarioKind::LossSweep => Spec {
                name: "loss-sweep",
                trials: |_| 1,
                run: trials_steady,
                ..base
            },
            ScenarioKind::Deaf => fault("deaf", faults::trials_deaf),
            ScenarioKind::Mute => fault("mute", faults::trials_mute),
            ScenarioKind::Cut => fault("cut", faults::trials_cut),
            ScenarioKind::Stall => Spec {
                trials: |_| 20,
                columns: Columns::Fault {
                    heal: "resume→single owner",
                },
                ..fault("stall", faults::trials_stall)
            },
            ScenarioKind::ClockStep => Spec {
                columns: Columns::Fault {
                    heal: "restart→single owner",
                },
                // Like seconds since the epoch: room to step back by a million.
                first_generation: faults::WALL_CLOCK_GENERATION,
                ..fault("clock-step", faults::trials_clock_step)
            },
            ScenarioKind::Replay => Spec {
                nodes: 20,
                min_nodes: 5,
                trials: |_| 2,
                columns: Columns::Replay,
                ..fault("replay", faults::trials_replay)
            },
            ScenarioKind::JoinStorm => Spec {
                nodes: 1000,
                trials: |_| 1,
                columns: Columns::JoinStorm,
                late_nodes: 1,
                ..fault("join-storm", faults::trials_join_storm)
            },
            ScenarioKind::Pause => Spec {
                name: "pause",
                trials: |_| 10,
                columns: Columns::Claims {
                    heal: "resume→single owner",
                },
                run: claims::trials_pause,
                ..base
            },
            ScenarioKind::GossipFlap => Spec {
                name: "gossip-flap",
                trials: |_| 1,
                columns: Columns::Claims {
                    heal: "end→single owner",
                },
                run: claims::trials_gossip_flap,
                ..base
            },
            ScenarioKind::MassFailure => Spec {
                name: "mass-failure",
                trials: |_| 3,
                columns: Columns::Claims {
                    heal: "crash→single owner",
                },
                run: claims::trials_mass_failure,
                ..base
            },
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// The purposes random draws are made for; each has its own stream per seed and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Which VIP's owner (or which node) a trial hits.
    Victim,
    /// When in the timers' cycle a trial starts.
    Phase,
    /// Which peers a restarted node joins through.
    Peers,
    /// The nodes cut off by a partition.
    Cut,
    /// Which nodes stall, and when.
    Stall,
    /// The baselines' own randomness (polls, loop phases, latencies).
    Baseline,
    /// Where the Lease baseline's VIPs land.
    Placement,
    /// Who each node joins through at boot.
    Boot,
}

/// The generator for one purpose in one trial (or other index) of a run.
pub fn stream(seed: u64, purpose: Stream, index: u64) -> Xoshiro256PlusPlus {
    let tag = match purpose {
        Stream::Victim => 0x7669_6374,
        Stream::Phase => 0x7068_6173,
        Stream::Peers => 0x7065_6572,
        Stream::Cut => 0x6375_7400,
        Stream::Stall => 0x7374_616c,
        Stream::Baseline => 0x6261_7365,
        Stream::Placement => 0x706c_6163,
        Stream::Boot => 0x626f_6f74,
    };
    Xoshiro256PlusPlus::seed_from_u64(mix(seed, tag, index))
}

/// What runs the VIPs in one configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Model {
    /// swimlb: real gossip cores with these timings, per-VIP rendezvous owners.
    Gossip { timing: Timing },
    /// One leader holds every VIP, failure noticed on the next 10 s loop.
    SeedLeader,
    /// A Kubernetes Lease per VIP (kube-vip / Cilium defaults).
    Lease { timing: LeaseTiming },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Configuration {
    pub name: String,
    /// Loss for this configuration; `None`: the run's loss.
    pub loss: Option<f64>,
    pub model: Model,
    /// stall: how long the node freezes in this configuration.
    pub stall: Option<Duration>,
}

impl Configuration {
    /// A configuration at the run's loss with no scenario-specific setting.
    pub fn new(name: impl Into<String>, model: Model) -> Self {
        Self {
            name: name.into(),
            loss: None,
            model,
            stall: None,
        }
    }
}

/// Knobs of the scenarios that have them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioOptions {
    /// partition: share of nodes cut off.
    pub minority: f64,
    /// partition: how long the split lasts; loss-sweep: virtual time per loss rate.
    pub duration: Duration,
    /// flap / rolling-restart: how long a node stays down.
    pub down: Duration,
    /// flap: how long a node stays up between downs; rolling-restart: pause between nodes.
    pub up: Duration,
    /// flap: freeze the process instead of crashing it.
    pub pause: bool,
    /// loss-sweep: every node freezes for `stall` about once per `stall_every` (zero: never).
    pub stall: Duration,
    pub stall_every: Duration,
    /// clock-step: how far the restarted node's generation is below its previous one.
    pub generation_step: u64,
    /// replay: how long datagrams are captured before the replay.
    pub capture: Duration,
    /// mass-failure: share of nodes that crash at once.
    pub fail_share: f64,
}

impl Default for ScenarioOptions {
    fn default() -> Self {
        Self {
            minority: 0.3,
            duration: Duration::from_secs(10),
            down: Duration::from_secs(2),
            up: Duration::from_secs(3),
            pause: false,
            stall: Duration::ZERO,
            stall_every: Duration::from_secs(60),
            generation_step: 1_000_000,
            capture: Duration::from_secs(10),
            fail_share: 0.6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Params {
    pub scenario: ScenarioKind,
    pub nodes: usize,
    pub vips: usize,
    pub trials: usize,
    pub loss: f64,
    pub seed: u64,
    pub ineligible: usize,
    pub options: ScenarioOptions,
    pub network: Network,
}

/// One trial's measurements, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Trial {
    pub trial: usize,
    /// The node crashed, drained, restarted or flapped (if any).
    pub node: Option<usize>,
    /// Event → first "down" anywhere.
    pub detection: Option<f64>,
    /// Event → the new owner, by its own view, announces; one sample per VIP that moved.
    pub failover: Vec<f64>,
    /// Event → every up node's view gives the same, true owner for every VIP.
    pub agreement: Option<f64>,
    /// Time with two or more claimants, summed over VIPs.
    pub multi_claim: f64,
    /// Time with no claimant, summed over VIPs.
    pub no_owner: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultTrial>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimTrial>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigReport {
    pub name: String,
    pub model: Model,
    pub loss: f64,
    pub failover: Summary,
    pub detection: Summary,
    pub agreement: Summary,
    pub multi_claim_per_trial: Summary,
    pub no_owner_per_trial: Summary,
    /// Trials whose failover or agreement did not finish within the window.
    pub timeouts: usize,
    pub false_downs: usize,
    pub node_hours: f64,
    pub false_downs_per_1000_node_hours: f64,
    /// Gossip datagrams' bytes and count per node per second (API requests for Leases).
    pub bytes_per_node_per_s: Option<f64>,
    pub messages_per_node_per_s: Option<f64>,
    /// VIPs each node owns with every node up.
    pub vips_per_node: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimSummary>,
    pub trials: Vec<Trial>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub params: Params,
    pub configs: Vec<ConfigReport>,
}

pub(crate) fn secs(d: Duration) -> f64 {
    round_us(d.as_secs_f64())
}

/// A trial's generator for `purpose`.
pub(crate) fn trial_rng(params: &Params, purpose: Stream, trial: usize) -> Xoshiro256PlusPlus {
    stream(params.seed, purpose, trial as u64)
}

/// Runs every configuration (on up to `threads` threads; results keep the given order).
pub fn run(
    params: &Params,
    configs: &[Configuration],
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report, SimError> {
    validate(params, configs)?;
    let next = Mutex::new(0usize);
    let results: Mutex<BTreeMap<usize, Result<ConfigReport, SimError>>> =
        Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, configs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let index = {
                        let Ok(mut next) = next.lock() else { return };
                        let index = *next;
                        *next += 1;
                        index
                    };
                    let Some(config) = configs.get(index) else {
                        return;
                    };
                    let result = run_config(params, config, progress);
                    if let Ok(mut results) = results.lock() {
                        results.insert(index, result);
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| SimError::Parameter("a simulation thread panicked".into()))?;
    let configs = results.into_values().collect::<Result<Vec<_>, _>>()?;
    Ok(Report {
        params: params.clone(),
        configs,
    })
}

fn validate(params: &Params, configs: &[Configuration]) -> Result<(), SimError> {
    let spec = params.scenario.spec();
    let total = params.nodes + spec.late_nodes;
    if params.nodes < spec.min_nodes
        || !NODE_LIMIT.contains(&params.nodes)
        || !NODE_LIMIT.contains(&total)
    {
        return Err(SimError::Parameter(format!(
            "{}: nodes must be {}..={}, got {}",
            spec.name,
            spec.min_nodes.max(*NODE_LIMIT.start()),
            NODE_LIMIT.end() - spec.late_nodes,
            params.nodes
        )));
    }
    if !spec.baselines
        && let Some(c) = configs
            .iter()
            .find(|c| !matches!(c.model, Model::Gossip { .. }))
    {
        return Err(SimError::Parameter(format!(
            "{} has no {} model",
            spec.name, c.name
        )));
    }
    if params.vips == 0 || params.trials == 0 {
        return Err(SimError::Parameter(
            "vips and trials must be at least 1".into(),
        ));
    }
    if !(0.0..1.0).contains(&params.loss) {
        return Err(SimError::Parameter(format!(
            "loss must be in [0, 1), got {}",
            params.loss
        )));
    }
    Ok(())
}

/// The trial count each configuration reports progress in.
pub fn progress_units(params: &Params) -> u64 {
    params.trials as u64
}

fn run_config(
    params: &Params,
    config: &Configuration,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ConfigReport, SimError> {
    let loss = config.loss.unwrap_or(params.loss);
    let mut network = params.network.clone();
    network.loss = loss;
    let timing = match &config.model {
        Model::Gossip { timing } => timing.clone(),
        // Baselines need a world only for placement; its timing is irrelevant.
        _ => swimlb_gossip::Preset::Fast.timing(),
    };
    let spec = params.scenario.spec();
    let mut world = World::new(WorldConfig {
        nodes: params.nodes + spec.late_nodes,
        vips: params.vips,
        timing,
        network,
        seed: params.seed,
        ineligible: params.ineligible,
        first_generation: spec.first_generation,
    })?;
    let mut report = ConfigReport {
        name: config.name.clone(),
        model: config.model.clone(),
        loss,
        failover: Summary::default(),
        detection: Summary::default(),
        agreement: Summary::default(),
        multi_claim_per_trial: Summary::default(),
        no_owner_per_trial: Summary::default(),
        timeouts: 0,
        false_downs: 0,
        node_hours: 0.0,
        false_downs_per_1000_node_hours: 0.0,
        bytes_per_node_per_s: None,
        messages_per_node_per_s: None,
        vips_per_node: world.vips_per_node_all_up(),
        faults: None,
        claims: None,
        trials: Vec::new(),
    };
    match &config.model {
        Model::Gossip { .. } => run_gossip(params, config, &mut world, &mut report, progress),
        Model::SeedLeader | Model::Lease { .. } => {
            run_baseline(params, &world, &config.model, &mut report, progress)
        }
    }
    summarise(&mut report);
    Ok(report)
}

fn summarise(report: &mut ConfigReport) {
    let all =
        |f: &dyn Fn(&Trial) -> Vec<f64>| -> Vec<f64> { report.trials.iter().flat_map(f).collect() };
    report.failover = Summary::of(&all(&|t| t.failover.clone()));
    report.detection = Summary::of(&all(&|t| t.detection.into_iter().collect()));
    report.agreement = Summary::of(&all(&|t| t.agreement.into_iter().collect()));
    report.multi_claim_per_trial = Summary::of(&all(&|t| vec![t.multi_claim]));
    report.no_owner_per_trial = Summary::of(&all(&|t| vec![t.no_owner]));
    let fault_trials: Vec<&FaultTrial> = report
        .trials
        .iter()
        .filter_map(|t| t.faults.as_ref())
        .collect();
    if !fault_trials.is_empty() {
        report.faults = Some(FaultSummary::of(&fault_trials));
    }
    let claim_trials: Vec<&ClaimTrial> = report
        .trials
        .iter()
        .filter_map(|t| t.claims.as_ref())
        .collect();
    if !claim_trials.is_empty() {
        report.claims = Some(ClaimSummary::of(&claim_trials));
    }
}

// ----- baselines -------------------------------------------------------------------------------

fn run_baseline(
    params: &Params,
    world: &World,
    model: &Model,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let n = params.nodes;
    let owners: Vec<Option<usize>> = (0..params.vips).map(|v| world.owner_all_up(v)).collect();
    match model {
        Model::SeedLeader => {
            report.vips_per_node = (0..n)
                .map(|i| if i == 0 { params.vips } else { 0 })
                .collect();
        }
        Model::Lease { timing } => {
            // The first candidate to poll wins each Lease: a uniformly random node.
            let mut rng = stream(params.seed, Stream::Placement, 0);
            let mut load = vec![0; n];
            for _ in 0..params.vips {
                load[rng.random_range(0..n)] += 1;
            }
            report.vips_per_node = load;
            // Every node polls every Lease once per jittered retry (mean 1 + jitter/2 periods).
            let mean_wait = timing.retry_period.as_secs_f64() * (1.0 + timing.jitter / 2.0);
            report.messages_per_node_per_s = Some(round_us(params.vips as f64 / mean_wait));
        }
        Model::Gossip { .. } => {}
    }
    for trial in 0..params.trials {
        let v = trial_rng(params, Stream::Victim, trial).random_range(0..params.vips);
        let mut rng = trial_rng(params, Stream::Baseline, trial);
        let Some(victim) = owners[v] else { continue };
        let mut record = Trial {
            trial,
            node: Some(victim),
            ..Trial::default()
        };
        match model {
            Model::SeedLeader => {
                let t = secs(baseline::seed_leader_failover(&world.network, &mut rng));
                record.failover = vec![t];
                record.no_owner = round_us(t * params.vips as f64);
                record.detection = Some(t);
                record.agreement = Some(t);
            }
            Model::Lease { timing } => {
                let candidates: Vec<usize> = (0..n).filter(|&i| i != victim).collect();
                let moved: Vec<usize> = (0..params.vips)
                    .filter(|&u| owners[u] == Some(victim))
                    .collect();
                for _ in &moved {
                    let t = baseline::lease_failover(
                        &world.network,
                        timing,
                        victim,
                        &candidates,
                        &mut rng,
                    );
                    record.failover.push(secs(t));
                }
                let worst = record.failover.iter().copied().fold(0.0, f64::max);
                record.detection = record.failover.iter().copied().reduce(f64::min);
                record.agreement = Some(worst);
                record.no_owner = round_us(record.failover.iter().sum());
            }
            Model::Gossip { .. } => {}
        }
        report.trials.push(record);
        progress(1);
    }
}

// ----- gossip ----------------------------------------------------------------------------------

/// How long a trial may take before it counts as timed out.
pub(crate) fn trial_window(timing: &Timing, nodes: usize) -> Duration {
    (timing.detection_bound(nodes) * 6).max(Duration::from_secs(10))
}

/// How long to wait for the cluster to settle after a restart or heal.
pub(crate) fn settle_cap(timing: &Timing) -> Duration {
    (timing.anti_entropy_interval * 2).max(Duration::from_secs(10))
}

/// Starts every node, staggered by a millisecond, each joining through node 0 and two
/// nodes started before it; returns once every view agrees (or after a cap).
pub fn boot(world: &mut World, seed: u64) {
    let n = world.node_count();
    boot_first(world, seed, n);
}

/// [`boot`] for the first `n` nodes only; the others stay down.
pub fn boot_first(world: &mut World, seed: u64, n: usize) {
    let mut rng = stream(seed, Stream::Boot, 0);
    for i in 0..n {
        world.run_until(Duration::from_millis(i as u64));
        let mut peers = vec![0];
        if i > 1 {
            peers.push(rng.random_range(1..i));
            peers.push(rng.random_range(1..i));
        }
        world.start(i, &peers);
    }
    let cap = world.now() + settle_cap(world.timing()) * 3;
    world.run_while(cap, World::converged);
    let settle = world.now() + Duration::from_secs(1);
    world.run_until(settle);
}

pub(crate) fn random_up_peers(
    world: &World,
    rng: &mut Xoshiro256PlusPlus,
    except: usize,
) -> Vec<usize> {
    let up: Vec<usize> = world
        .up_nodes()
        .into_iter()
        .filter(|&i| i != except)
        .collect();
    if up.is_empty() {
        return Vec::new();
    }
    (0..3).map(|_| up[rng.random_range(0..up.len())]).collect()
}

pub(crate) fn restart(world: &mut World, node: usize, rng: &mut Xoshiro256PlusPlus) {
    let peers = random_up_peers(world, rng, node);
    world.start(node, &peers);
    let cap = world.now() + settle_cap(world.timing());
    world.run_while(cap, World::converged);
}

fn run_gossip(
    params: &Params,
    config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    boot_first(world, params.seed, params.nodes);
    let (sent0, bytes0) = world.traffic_sent();
    let up0 = world.up_time();
    let false0 = world.false_downs().len();
    let elapsed0 = world.now();
    (params.scenario.spec().run)(params, config, world, report, progress);
    let (sent1, bytes1) = world.traffic_sent();
    let node_seconds = (world.up_time() - up0).as_secs_f64();
    report.false_downs = world.false_downs().len() - false0;
    report.node_hours = round_us(node_seconds / 3600.0);
    if node_seconds > 0.0 && world.now() > elapsed0 {
        report.false_downs_per_1000_node_hours =
            round_us(report.false_downs as f64 * 3_600_000.0 / node_seconds);
        report.bytes_per_node_per_s = Some(round_us((bytes1 - bytes0) as f64 / node_seconds));
        report.messages_per_node_per_s = Some(round_us((sent1 - sent0) as f64 / node_seconds));
    }
}

/// A random phase against every node's timers, to wait before a trial's fault.
pub(crate) fn random_phase(params: &Params, world: &World, trial: usize) -> Duration {
    let draw: f64 = trial_rng(params, Stream::Phase, trial).random();
    world.timing().probe_period.mul_f64(draw)
}

/// Failover times recorded since the last call, in seconds.
pub(crate) fn failover_secs(world: &mut World) -> Vec<f64> {
    world
        .take_failovers()
        .into_iter()
        .map(|(_, d)| secs(d))
        .collect()
}

/// Seconds from `start` until `node`'s `generation` was first declared down anywhere.
pub(crate) fn detection_secs(
    world: &World,
    node: usize,
    generation: u64,
    start: Duration,
) -> Option<f64> {
    world
        .first_down(node, generation)
        .map(|t| secs(t.saturating_sub(start)))
}

/// Crash (or drain) the owner of a random VIP, measure, bring it back.
fn trials_failover(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let window = trial_window(world.timing(), params.nodes);
    for trial in 0..params.trials {
        let v = trial_rng(params, Stream::Victim, trial).random_range(0..params.vips);
        let gap = random_phase(params, world, trial);
        let until = world.now() + gap;
        world.run_until(until);
        let Some(victim) = world.true_owner(v) else {
            continue;
        };
        world.clear_awaiting();
        let (multi0, none0) = world.claim_totals();
        let start = world.now();
        let generation = world.generation(victim);
        if params.scenario == ScenarioKind::Drain {
            world.leave(victim);
        } else {
            world.crash(victim);
        }
        let finished = world.run_while(start + window, |w| {
            w.awaiting_failover() == 0 && w.agreed() && w.first_down(victim, generation).is_some()
        });
        let (multi1, none1) = world.claim_totals();
        let record = Trial {
            trial,
            node: Some(victim),
            detection: detection_secs(world, victim, generation, start),
            failover: failover_secs(world),
            agreement: finished.then(|| secs(world.now() - start)),
            multi_claim: secs(multi1 - multi0),
            no_owner: secs(none1 - none0),
            faults: None,
            claims: None,
        };
        if !finished {
            report.timeouts += 1;
        }
        report.trials.push(record);
        restart(world, victim, &mut trial_rng(params, Stream::Peers, trial));
        progress(1);
    }
}

/// Cut a random minority off for `duration`, heal, measure the return to single ownership.
fn trials_partition(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let n = params.nodes;
    let minority = ((n as f64 * params.options.minority).round() as usize).clamp(1, n - 1);
    for trial in 0..params.trials {
        let mut rng = trial_rng(params, Stream::Cut, trial);
        let mut groups = vec![0u32; n];
        let mut cut = 0;
        while cut < minority {
            let i = rng.random_range(0..n);
            if groups[i] == 0 {
                groups[i] = 1;
                cut += 1;
            }
        }
        let mark = claims::begin(world);
        let (multi0, none0) = world.claim_totals();
        let start = world.now();
        world.watch_split(groups.clone());
        world.network.partition(groups);
        let heal_at = start + params.options.duration;
        world.run_until(heal_at);
        let split = world.split_report();
        world.network.heal();
        let heal = claims::healed(world);
        let cap = heal_at + settle_cap(world.timing()) * 3;
        let merged = world.run_while(cap, World::agreed);
        let merge = claims::healed(world);
        let healed = world.run_while(cap, World::single_ownership);
        // Wrong-MAC time and moves count until the trial's settle second is over too.
        let settle = world.now() + Duration::from_secs(1);
        world.run_until(settle);
        let (multi1, none1) = world.claim_totals();
        let mut claim = claims::claim_trial(world, &mark, &heal);
        claim.label = Some("partition".into());
        claim.fence_delay = split.and_then(|s| s.fence_delay).map(|at| secs(at - start));
        claim.dual_after_fence = split.and_then(|s| s.dual_claim_after).map(secs);
        if merged {
            let (wrong, longest) = claims::wrong_mac_since(world, &merge);
            claim.merged = Some(secs(merge.at - heal_at));
            claim.wrong_mac_after_merge = Some(wrong);
            claim.wrong_mac_longest_after_merge = Some(longest);
        }
        report.trials.push(Trial {
            trial,
            node: None,
            detection: None,
            failover: Vec::new(),
            agreement: healed.then(|| secs(world.now() - heal_at)),
            multi_claim: secs(multi1 - multi0),
            no_owner: secs(none1 - none0),
            faults: None,
            claims: Some(claim),
        });
        if !healed {
            report.timeouts += 1;
        }
        progress(1);
    }
}

/// One node goes down and comes back, again and again (crash/restart, or a frozen process).
fn trials_flap(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let v = trial_rng(params, Stream::Victim, 0).random_range(0..params.vips);
    let mut rng = trial_rng(params, Stream::Peers, 0);
    let Some(node) = world.true_owner(v) else {
        return;
    };
    for trial in 0..params.trials {
        world.clear_awaiting();
        let (multi0, none0) = world.claim_totals();
        let start = world.now();
        let generation = world.generation(node);
        if params.options.pause {
            world.pause(node, params.options.down);
            world.run_until(start + params.options.down);
        } else {
            world.crash(node);
            world.run_until(start + params.options.down);
            let peers = random_up_peers(world, &mut rng, node);
            world.start(node, &peers);
        }
        world.run_until(start + params.options.down + params.options.up);
        let (multi1, none1) = world.claim_totals();
        report.trials.push(Trial {
            trial,
            node: Some(node),
            detection: detection_secs(world, node, generation, start),
            failover: failover_secs(world),
            agreement: None,
            multi_claim: secs(multi1 - multi0),
            no_owner: secs(none1 - none0),
            faults: None,
            claims: None,
        });
        progress(1);
    }
}

/// Restart nodes one after another: leave gracefully, stay down, start with a new generation.
fn trials_rolling(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let mut rng = trial_rng(params, Stream::Peers, 0);
    for trial in 0..params.trials {
        let node = trial % params.nodes;
        let mark = claims::begin(world);
        let (multi0, none0) = world.claim_totals();
        let start = world.now();
        let generation = world.generation(node);
        world.leave(node);
        world.run_until(start + params.options.down);
        let failover = failover_secs(world);
        let peers = random_up_peers(world, &mut rng, node);
        world.start(node, &peers);
        let heal = claims::healed(world);
        let back = world.now();
        let cap = back + settle_cap(world.timing());
        let settled = world.run_while(cap, World::single_ownership);
        let agreement = settled.then(|| secs(world.now() - back));
        if !settled {
            report.timeouts += 1;
        }
        let next = world.now() + params.options.up;
        world.run_until(next);
        let (multi1, none1) = world.claim_totals();
        let mut claim = claims::claim_trial(world, &mark, &heal);
        claim.label = Some("restart".into());
        report.trials.push(Trial {
            trial,
            node: Some(node),
            detection: detection_secs(world, node, generation, start),
            failover,
            agreement,
            multi_claim: secs(multi1 - multi0),
            no_owner: secs(none1 - none0),
            faults: None,
            claims: Some(claim),
        });
        progress(1);
    }
}

/// No faults but loss (and optional stalls): count false downs.
fn trials_steady(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let step = Duration::from_secs(1);
    let options = &params.options;
    let per_trial = options.duration.max(step);
    let stall_chance = if options.stall.is_zero() || options.stall_every.is_zero() {
        0.0
    } else {
        step.as_secs_f64() / options.stall_every.as_secs_f64()
    };
    for trial in 0..params.trials {
        let mut rng = trial_rng(params, Stream::Stall, trial);
        let (multi0, none0) = world.claim_totals();
        let end = world.now() + per_trial;
        while world.now() < end {
            if stall_chance > 0.0 {
                for i in 0..params.nodes {
                    if world.state(i) == NodeState::Running && rng.random::<f64>() < stall_chance {
                        world.pause(i, options.stall);
                    }
                }
            }
            let next = (world.now() + step).min(end);
            world.run_until(next);
        }
        let (multi1, none1) = world.claim_totals();
        report.trials.push(Trial {
            trial,
            node: None,
            detection: None,
            failover: Vec::new(),
            agreement: None,
            multi_claim: secs(multi1 - multi0),
            no_owner: secs(none1 - none0),
            faults: None,
            claims: None,
        });
        progress(1);
    }
}
