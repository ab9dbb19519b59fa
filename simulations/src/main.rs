//! `swimlb-sim`: runs a scenario over the simulated cluster, prints the comparison table and
//! writes the JSON report and SVG plots.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use swimlb_gossip::preset::{Retransmissions, Suspicion};
use swimlb_gossip::{Preset, Timing};
use swimlb_simulations::baseline::LeaseTiming;
use swimlb_simulations::network::{Network, ReceiveQueue};
use swimlb_simulations::scenario::{
    self, Configuration, Model, Params, ScenarioKind, ScenarioOptions,
};
use swimlb_simulations::{plot, report};

#[derive(Parser)]
#[command(
    name = "swimlb-sim",
    about = "Deterministic failover simulator for swimlb"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Crash the owner of a VIP; compare presets and baselines.
    Failover(Common),
    /// Cut a minority of nodes off the gossip (the link stays shared), heal, measure the return
    /// to single ownership, the fence delay and the wrong-MAC time.
    Partition {
        #[command(flatten)]
        common: Common,
        /// Share of nodes cut off.
        #[arg(long, default_value_t = 0.3)]
        minority: f64,
        /// How long the partition lasts, in seconds.
        #[arg(long, default_value_t = 10.0)]
        duration_s: f64,
    },
    /// One node goes down and comes back repeatedly.
    Flap {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 2000)]
        down_ms: u64,
        #[arg(long, default_value_t = 3000)]
        up_ms: u64,
        /// Freeze the process instead of crashing it.
        #[arg(long)]
        pause: bool,
    },
    /// Restart nodes one after another (graceful leave, down, new generation).
    RollingRestart {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        down_ms: u64,
        /// Pause between one node being back and the next restart.
        #[arg(long, default_value_t = 2000)]
        interval_ms: u64,
    },
    /// The owner of a VIP leaves gracefully (node drain).
    Drain(Common),
    /// No faults but loss (and optional process stalls): false downs and traffic per loss rate.
    LossSweep {
        #[command(flatten)]
        common: Common,
        /// Loss rates to try.
        #[arg(long, value_delimiter = ',', default_value = "0,0.01,0.02,0.05,0.1")]
        losses: Vec<f64>,
        /// Virtual seconds per trial.
        #[arg(long, default_value_t = 300.0)]
        duration_s: f64,
        /// Every node freezes for this long ...
        #[arg(long, default_value_t = 0)]
        stall_ms: u64,
        /// ... about once per this many seconds.
        #[arg(long, default_value_t = 60.0)]
        stall_every_s: f64,
    },
    /// A node drops all inbound gossip for a while, then heals (its process keeps running).
    Deaf(Silenced),
    /// A node's outbound gossip is all lost for a while, then heals.
    Mute(Silenced),
    /// A node's cable is pulled both ways while its process keeps running, then restored.
    Cut(Silenced),
    /// A node's process freezes, then resumes; one configuration per stall length.
    Stall {
        #[command(flatten)]
        common: Common,
        /// Stall lengths to try.
        #[arg(long, value_delimiter = ',', default_value = "100,200,400")]
        stalls_ms: Vec<u64>,
    },
    /// A node restarts with a generation far below its previous one (its clock stepped back).
    ClockStep {
        #[command(flatten)]
        common: Common,
        /// How long the node is down before it restarts.
        #[arg(long, default_value_t = 1000)]
        down_ms: u64,
        /// How far its new generation is below the old one.
        #[arg(long, default_value_t = 1_000_000)]
        step: u64,
    },
    /// Every captured datagram is replayed into a freshly restarted member, and again once the
    /// cluster has forgotten its dead (`remove_down_after` + 1 s later: 3,601 s with `fast`).
    Replay {
        #[command(flatten)]
        common: Common,
        /// How long datagrams are captured (a member crashes halfway).
        #[arg(long, default_value_t = 10.0)]
        capture_s: f64,
    },
    /// A member joins a cluster through every peer at once; every node reads its socket
    /// through a bounded receive queue.
    JoinStorm {
        #[command(flatten)]
        common: Common,
        /// Datagrams each node's receive queue holds.
        #[arg(long, default_value_t = 200)]
        queue: usize,
        /// Time a node takes to read one datagram, in microseconds.
        #[arg(long, default_value_t = 5)]
        read_us: u64,
    },
    /// The owner of a VIP freezes briefly, then resumes: claim time, moves, wrong-MAC time.
    Pause {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 500)]
        pause_ms: u64,
    },
    /// One node's gossip is cut and restored again and again (the link stays up): moves per
    /// minute per VIP before and after the flap hold-down engages.
    GossipFlap {
        #[command(flatten)]
        common: Common,
        /// How long each cut lasts.
        #[arg(long, default_value_t = 1000)]
        cut_ms: u64,
        /// How long the gossip is back between cuts.
        #[arg(long, default_value_t = 1000)]
        restored_ms: u64,
        /// How long the flapping goes on, in seconds.
        #[arg(long, default_value_t = 120.0)]
        duration_s: f64,
    },
    /// A share of the nodes crash at once: time until every VIP is owned again, then their
    /// return.
    MassFailure {
        #[command(flatten)]
        common: Common,
        /// Share of nodes that crash.
        #[arg(long, default_value_t = 0.6)]
        share: f64,
    },
}

#[derive(Args, Clone)]
struct Silenced {
    #[command(flatten)]
    common: Common,
    /// How long the fault lasts, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
}

#[derive(Args, Clone)]
struct Common {
    /// Cluster size (3 to 2,000; default per scenario: 100, replay 20, join-storm 1,000).
    #[arg(long)]
    nodes: Option<usize>,
    /// Number of VIPs (default: two per node).
    #[arg(long)]
    vips: Option<usize>,
    #[arg(long)]
    trials: Option<usize>,
    /// Probability that a datagram is lost (0.01 = 1 %).
    #[arg(long, default_value_t = 0.01)]
    loss: f64,
    /// Gossip preset for single-preset scenarios and the `custom` configuration's base.
    #[arg(long, default_value = "fast")]
    preset: Preset,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Configurations to compare: fast, memberlist, wan, seed-leader, lease, custom.
    #[arg(long, value_delimiter = ',')]
    configs: Option<Vec<String>>,
    /// Nodes (the last ones) that may not own VIPs.
    #[arg(long, default_value_t = 0)]
    ineligible: usize,
    /// Where the JSON report and plots go.
    #[arg(long, default_value = "target/simulations")]
    out: PathBuf,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timing overrides for the `custom` configuration (added when any is given).
    #[arg(long)]
    probe_period_ms: Option<u64>,
    #[arg(long)]
    probe_timeout_ms: Option<u64>,
    #[arg(long)]
    suspicion_ms: Option<u64>,
    #[arg(long)]
    gossip_interval_ms: Option<u64>,
    #[arg(long)]
    gossip_fanout: Option<usize>,
    #[arg(long)]
    retransmissions: Option<u8>,
    #[arg(long)]
    indirect_probes: Option<usize>,
}

impl Common {
    fn custom_timing(&self) -> Option<Timing> {
        let mut t = self.preset.timing();
        let mut changed = false;
        let ms = Duration::from_millis;
        if let Some(v) = self.probe_period_ms {
            t.probe_period = ms(v);
            changed = true;
        }
        if let Some(v) = self.probe_timeout_ms {
            t.probe_timeout = ms(v);
            changed = true;
        }
        if let Some(v) = self.suspicion_ms {
            t.suspicion = Suspicion::Fixed(ms(v));
            changed = true;
        }
        if let Some(v) = self.gossip_interval_ms {
            t.gossip_interval = ms(v);
            changed = true;
        }
        if let Some(v) = self.gossip_fanout {
            t.gossip_fanout = v;
            changed = true;
        }
        if let Some(v) = self.retransmissions {
            t.retransmissions = Retransmissions::Fixed(v);
            changed = true;
        }
        if let Some(v) = self.indirect_probes {
            t.indirect_probes = v;
            changed = true;
        }
        changed.then_some(t)
    }

    fn configurations(&self, default: &[&str]) -> anyhow::Result<Vec<Configuration>> {
        let names: Vec<String> = match &self.configs {
            Some(list) => list.clone(),
            None => {
                let mut names: Vec<String> = default
                    .iter()
                    .map(|s| match *s {
                        "preset" => self.preset.name().to_string(),
                        name => name.to_string(),
                    })
                    .collect();
                if self.custom_timing().is_some() {
                    names.push("custom".into());
                }
                names
            }
        };
        names
            .iter()
            .map(|name| {
                let model = match name.as_str() {
                    "seed-leader" => Model::SeedLeader,
                    "lease" => Model::Lease {
                        timing: LeaseTiming::DEFAULT,
                    },
                    "custom" => Model::Gossip {
                        timing: self
                            .custom_timing()
                            .context("`custom` needs at least one timing override")?,
                    },
                    preset => Model::Gossip {
                        timing: preset
                            .parse::<Preset>()
                            .with_context(|| format!("unknown configuration {preset:?}"))?
                            .timing(),
                    },
                };
                Ok(Configuration::new(name.clone(), model))
            })
            .collect()
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut options = ScenarioOptions::default();
    let mut queue = None;
    let (kind, common) = match &cli.scenario {
        Command::Failover(c) => (ScenarioKind::Failover, c),
        Command::Drain(c) => (ScenarioKind::Drain, c),
        Command::Partition {
            common,
            minority,
            duration_s,
        } => {
            options.minority = *minority;
            options.duration = seconds(*duration_s)?;
            (ScenarioKind::Partition, common)
        }
        Command::Flap {
            common,
            down_ms,
            up_ms,
            pause,
        } => {
            options.down = Duration::from_millis(*down_ms);
            options.up = Duration::from_millis(*up_ms);
            options.pause = *pause;
            (ScenarioKind::Flap, common)
        }
        Command::RollingRestart {
            common,
            down_ms,
            interval_ms,
        } => {
            options.down = Duration::from_millis(*down_ms);
            options.up = Duration::from_millis(*interval_ms);
            (ScenarioKind::RollingRestart, common)
        }
        Command::LossSweep {
            common,
            duration_s,
            stall_ms,
            stall_every_s,
            ..
        } => {
            options.duration = seconds(*duration_s)?;
            options.stall = Duration::from_millis(*stall_ms);
            options.stall_every = seconds(*stall_every_s)?;
            (ScenarioKind::LossSweep, common)
        }
        Command::Deaf(s) | Command::Mute(s) | Command::Cut(s) => {
            options.duration = seconds(s.duration_s)?;
            let kind = match &cli.scenario {
                Command::Deaf(_) => ScenarioKind::Deaf,
                Command::Mute(_) => ScenarioKind::Mute,
                _ => ScenarioKind::Cut,
            };
            (kind, &s.common)
        }
        Command::Stall { common, .. } => (ScenarioKind::Stall, common),
        Command::ClockStep {
            common,
            down_ms,
            step,
        } => {
            options.down = Duration::from_millis(*down_ms);
            options.generation_step = *step;
            (ScenarioKind::ClockStep, common)
        }
        Command::Replay { common, capture_s } => {
            options.capture = seconds(*capture_s)?;
            (ScenarioKind::Replay, common)
        }
        Command::JoinStorm {
            common,
            queue: capacity,
            read_us,
        } => {
            queue = Some(ReceiveQueue {
                capacity: *capacity,
                per_datagram: Duration::from_micros(*read_us),
            });
            (ScenarioKind::JoinStorm, common)
        }
        Command::Pause { common, pause_ms } => {
            options.down = Duration::from_millis(*pause_ms);
            (ScenarioKind::Pause, common)
        }
        Command::GossipFlap {
            common,
            cut_ms,
            restored_ms,
            duration_s,
        } => {
            options.down = Duration::from_millis(*cut_ms);
            options.up = Duration::from_millis(*restored_ms);
            options.duration = seconds(*duration_s)?;
            (ScenarioKind::GossipFlap, common)
        }
        Command::MassFailure { common, share } => {
            if !(0.0..1.0).contains(share) {
                bail!("share {share} is not in [0, 1)");
            }
            options.fail_share = *share;
            (ScenarioKind::MassFailure, common)
        }
    };
    let spec = kind.spec();
    let mut configs = common.configurations(spec.configs)?;
    // Scenarios that sweep a setting run every configuration once per value.
    match &cli.scenario {
        Command::LossSweep { losses, .. } => {
            let mut swept = Vec::new();
            for base in configs {
                for &loss in losses {
                    if !(0.0..1.0).contains(&loss) {
                        bail!("loss {loss} is not in [0, 1)");
                    }
                    swept.push(Configuration {
                        name: format!("{}@{}%", base.name, loss * 100.0),
                        loss: Some(loss),
                        ..base.clone()
                    });
                }
            }
            configs = swept;
        }
        Command::Stall { stalls_ms, .. } => {
            let mut swept = Vec::new();
            for base in configs {
                for &stall in stalls_ms {
                    swept.push(Configuration {
                        name: format!("{}/{stall}ms", base.name),
                        stall: Some(Duration::from_millis(stall)),
                        ..base.clone()
                    });
                }
            }
            configs = swept;
        }
        _ => {}
    }
    let nodes = common.nodes.unwrap_or(spec.nodes);
    let mut network = Network::lan(common.loss);
    network.receive_queue = queue;
    let params = Params {
        scenario: kind,
        nodes,
        vips: common.vips.unwrap_or(nodes * 2),
        trials: common.trials.unwrap_or((spec.trials)(nodes)),
        loss: common.loss,
        seed: common.seed,
        ineligible: common.ineligible,
        options,
        network,
    };
    println!("seed {}", params.seed);
    let bar = ProgressBar::new(scenario::progress_units(&params) * configs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} trials")
            .context("progress bar template")?,
    );
    let wall = Instant::now();
    let result = scenario::run(&params, &configs, common.threads, &|k| bar.inc(k))?;
    bar.finish_and_clear();
    let elapsed = wall.elapsed();

    print!("{}", report::table(&result));
    std::fs::create_dir_all(&common.out)
        .with_context(|| format!("cannot create {}", common.out.display()))?;
    let stem = format!(
        "{}-{}n-{}loss-seed{}",
        spec.name,
        params.nodes,
        params.loss * 100.0,
        params.seed
    );
    let json = common.out.join(format!("{stem}.json"));
    report::write_json(&result, &json)?;
    let cdf = common.out.join(format!("{stem}-failover-cdf.svg"));
    let load = common.out.join(format!("{stem}-vips-per-node.svg"));
    if result.configs.iter().any(|c| c.failover.count > 0) {
        plot::failover_cdf(&result, &cdf)?;
        eprintln!("wrote {}", cdf.display());
    }
    plot::vips_per_node(&result, &load)?;
    eprintln!("wrote {}\nwrote {}", json.display(), load.display());
    eprintln!("wall time {:.1}s", elapsed.as_secs_f64());
    Ok(())
}

fn seconds(value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{value} is not a duration"))
}
