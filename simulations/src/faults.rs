//! Faults on a node whose process keeps running (deaf, mute, cut, stall), a restart whose
//! generation went backwards (clock-step), replayed traffic (replay) and a joiner that asks every
//! peer at once (join-storm). Each trial records what the healthy members did: their Down and
//! Renewed events, VIPs taken over from an owner that never lost them, and the time from the heal
//! until every VIP has one owner again.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::RngExt;
use serde::Serialize;

use crate::metrics::{Summary, round_us};
use crate::scenario::{
    ConfigReport, Configuration, Params, Stream, Trial, failover_secs, random_phase,
    random_up_peers, secs, settle_cap, trial_rng, trial_window,
};
use crate::world::{Captured, Observation, Observed, World};

/// First generation of every node in clock-step: about the seconds since the epoch, so a step
/// back by a million still leaves a positive generation.
pub const WALL_CLOCK_GENERATION: u64 = 1_700_000_000;

/// How long agreement must hold after a heal to count: a fault's consequences (a Down of the
/// faulty node, renewals, takeovers) can arrive after a first moment of agreement.
const TAIL: Duration = Duration::from_secs(3);

/// What one trial's fault made the cluster do.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct FaultTrial {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Healthy members declared down (at their running generation) in healthy members' views.
    pub healthy_downs: usize,
    /// Healthy members declared down in the faulty node's own view.
    pub downs_by_faulty: usize,
    /// Healthy members that had to renew their identity.
    pub healthy_renewed: usize,
    /// Renewals of the faulty node itself.
    pub faulty_renewed: usize,
    /// VIPs announced by another node while their healthy owner still held them.
    pub spurious_takeovers: usize,
    /// Suspicions of healthy members, by anyone.
    pub suspicions_of_healthy: usize,
    /// Members whose process is gone that some member saw come back to life.
    pub dead_revived: usize,
    /// replay: crashed members still live in some member's view at the end of the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crashes_undetected: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinTrial>,
}

/// join-storm: one join through every peer.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct JoinTrial {
    /// Join → the joiner sees every running member as live.
    pub knows_all: Option<f64>,
    /// Bytes of member-list frames that reached the joiner's socket (before its queue).
    pub member_list_bytes: u64,
    /// Members that sent the joiner a member list.
    pub senders: usize,
    /// `member_list_bytes` in full member lists (one list: the median sender's bytes).
    pub member_lists: f64,
    /// Datagrams the joiner's full receive queue dropped, and every node's together.
    pub queue_drops: u64,
    pub cluster_queue_drops: u64,
}

/// Totals over a configuration's trials.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct FaultSummary {
    pub healthy_downs: usize,
    pub downs_by_faulty: usize,
    pub healthy_renewed: usize,
    pub faulty_renewed: usize,
    pub spurious_takeovers: usize,
    pub suspicions_of_healthy: usize,
    pub dead_revived: usize,
    pub crashes_undetected: usize,
    pub knows_all: Summary,
    /// The largest of any trial.
    pub member_list_bytes: u64,
    pub member_lists: f64,
    pub queue_drops: u64,
}

impl FaultSummary {
    pub fn of(trials: &[&FaultTrial]) -> Self {
        let sum = |f: &dyn Fn(&FaultTrial) -> usize| trials.iter().map(|t| f(t)).sum::<usize>();
        let joins: Vec<&JoinTrial> = trials.iter().filter_map(|t| t.join.as_ref()).collect();
        Self {
            healthy_downs: sum(&|t| t.healthy_downs),
            downs_by_faulty: sum(&|t| t.downs_by_faulty),
            healthy_renewed: sum(&|t| t.healthy_renewed),
            faulty_renewed: sum(&|t| t.faulty_renewed),
            spurious_takeovers: sum(&|t| t.spurious_takeovers),
            suspicions_of_healthy: sum(&|t| t.suspicions_of_healthy),
            dead_revived: sum(&|t| t.dead_revived),
            crashes_undetected: sum(&|t| t.crashes_undetected.unwrap_or(0)),
            knows_all: Summary::of(&joins.iter().filter_map(|j| j.knows_all).collect::<Vec<_>>()),
            member_list_bytes: joins.iter().map(|j| j.member_list_bytes).max().unwrap_or(0),
            member_lists: joins.iter().map(|j| j.member_lists).fold(0.0, f64::max),
            queue_drops: joins.iter().map(|j| j.queue_drops).sum(),
        }
    }
}

/// Counts what the observations say about the members not in `faulty`.
pub fn tally(observations: &[Observed], faulty: &[usize]) -> FaultTrial {
    let healthy = |i: &usize| !faulty.contains(i);
    let mut trial = FaultTrial::default();
    let mut taken = BTreeSet::new();
    let mut revived = BTreeSet::new();
    for observed in observations {
        match &observed.what {
            Observation::Down {
                observer,
                node,
                alive: true,
                ..
            } if healthy(node) => {
                if healthy(observer) {
                    trial.healthy_downs += 1;
                } else {
                    trial.downs_by_faulty += 1;
                }
            }
            Observation::Renewed { observer, .. } => {
                if healthy(observer) {
                    trial.healthy_renewed += 1;
                } else {
                    trial.faulty_renewed += 1;
                }
            }
            Observation::Takeover { vip, owner, .. } if healthy(owner) => {
                taken.insert(*vip);
            }
            Observation::Suspect { node, .. } if healthy(node) => trial.suspicions_of_healthy += 1,
            Observation::Revived { node, .. } => {
                revived.insert(*node);
            }
            _ => {}
        }
    }
    trial.spurious_takeovers = taken.len();
    trial.dead_revived = revived.len();
    trial
}

/// Where a trial's measurements start.
struct Mark {
    start: Duration,
    multi: Duration,
    none: Duration,
}

fn begin(world: &mut World) -> Mark {
    world.record(true);
    world.take_observations();
    world.clear_awaiting();
    let (multi, none) = world.claim_totals();
    Mark {
        start: world.now(),
        multi,
        none,
    }
}

fn settled(world: &World) -> bool {
    world.converged() && world.single_ownership()
}

/// After the heal: waits until every VIP has one agreed owner and every member sees the faulty
/// `node` live, in a state that then holds for [`TAIL`], and records the trial.
fn finish(
    world: &mut World,
    report: &mut ConfigReport,
    mark: Mark,
    trial: usize,
    node: usize,
    faulty: &[usize],
    generation: u64,
) -> Trial {
    let heal_at = world.now();
    let cap = heal_at + settle_cap(world.timing()) * 3;
    let agreed = |w: &World| settled(w) && w.seen_by_all(node);
    let mut agreement = None;
    while world.run_while(cap, agreed) {
        let since = world.now();
        let broke = world.run_while(since + TAIL, |w| !agreed(w));
        if !broke {
            agreement = Some(secs(since - heal_at));
            break;
        }
    }
    if agreement.is_none() {
        report.timeouts += 1;
    }
    let (multi, none) = world.claim_totals();
    let observations = world.take_observations();
    world.record(false);
    Trial {
        trial,
        node: Some(node),
        detection: world
            .first_down(node, generation)
            .filter(|t| *t >= mark.start)
            .map(|t| secs(t - mark.start)),
        failover: failover_secs(world),
        agreement,
        multi_claim: secs(multi - mark.multi),
        no_owner: secs(none - mark.none),
        faults: Some(tally(&observations, faulty)),
        claims: None,
    }
}

/// Waits (up to a cap) until the cluster has settled before the next trial.
fn settle(world: &mut World) {
    let cap = world.now() + settle_cap(world.timing()) * 3;
    world.run_while(cap, settled);
}

fn victim(params: &Params, trial: usize) -> usize {
    trial_rng(params, Stream::Victim, trial).random_range(0..params.nodes)
}

/// A node loses its inbound and/or outbound gossip for `duration` while its process runs.
fn trials_silenced(
    params: &Params,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
    inbound: bool,
    outbound: bool,
) {
    for trial in 0..params.trials {
        let node = victim(params, trial);
        let until = world.now() + random_phase(params, world, trial);
        world.run_until(until);
        let mark = begin(world);
        let generation = world.generation(node);
        let saved = (
            world.network.ingress_loss.get(&node).copied(),
            world.network.egress_loss.get(&node).copied(),
        );
        if inbound {
            world.network.ingress_loss.insert(node, 1.0);
        }
        if outbound {
            world.network.egress_loss.insert(node, 1.0);
        }
        // Both ways silent is a cut cable: the node is off the link too.
        let cable_cut = inbound && outbound;
        if cable_cut {
            world.network.link_cut.insert(node);
        }
        world.run_until(mark.start + params.options.duration);
        if cable_cut {
            world.network.link_cut.remove(&node);
        }
        for (losses, old) in [
            (&mut world.network.ingress_loss, saved.0),
            (&mut world.network.egress_loss, saved.1),
        ] {
            match old {
                Some(p) => losses.insert(node, p),
                None => losses.remove(&node),
            };
        }
        let record = finish(world, report, mark, trial, node, &[node], generation);
        report.trials.push(record);
        settle(world);
        progress(1);
    }
}

pub fn trials_deaf(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    trials_silenced(params, world, report, progress, true, false);
}

pub fn trials_mute(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    trials_silenced(params, world, report, progress, false, true);
}

pub fn trials_cut(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    trials_silenced(params, world, report, progress, true, true);
}

/// A node's process freezes for the configuration's stall, then resumes.
pub fn trials_stall(
    params: &Params,
    config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let stall = config.stall.unwrap_or(params.options.stall);
    for trial in 0..params.trials {
        let node = victim(params, trial);
        let until = world.now() + random_phase(params, world, trial);
        world.run_until(until);
        let mark = begin(world);
        let generation = world.generation(node);
        world.pause(node, stall);
        world.run_until(mark.start + stall);
        let record = finish(world, report, mark, trial, node, &[node], generation);
        report.trials.push(record);
        settle(world);
        progress(1);
    }
}

/// A node crashes and restarts `down` later with a generation `generation_step` below its
/// previous one, as after its wall clock stepped back.
pub fn trials_clock_step(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    for trial in 0..params.trials {
        let node = victim(params, trial);
        let until = world.now() + random_phase(params, world, trial);
        world.run_until(until);
        let mark = begin(world);
        let generation = world.generation(node);
        world.crash(node);
        world.run_until(mark.start + params.options.down);
        let mut peers_rng = trial_rng(params, Stream::Peers, trial);
        let peers = random_up_peers(world, &mut peers_rng, node);
        let stepped = generation.saturating_sub(params.options.generation_step);
        world.start_with_generation(node, &peers, stepped);
        let record = finish(world, report, mark, trial, node, &[node], generation);
        let stuck = record.agreement.is_none();
        report.trials.push(record);
        if stuck {
            // Let the next trial start from a healthy cluster: restart above every old generation.
            world.crash(node);
            let peers = random_up_peers(world, &mut peers_rng, node);
            world.start_with_generation(node, &peers, generation + 1);
        }
        settle(world);
        progress(1);
    }
}

/// Every captured datagram, sent to `to` at once as if by its original sender.
fn replay(world: &mut World, captured: &[Captured], to: usize) {
    for datagram in captured {
        world.inject(datagram.from, to, datagram.bytes.clone());
    }
}

/// `count` distinct nodes, drawn from `rng`.
pub(crate) fn distinct_nodes(rng: &mut impl RngExt, nodes: usize, count: usize) -> Vec<usize> {
    let mut picked = Vec::with_capacity(count);
    while picked.len() < count.min(nodes) {
        let i = rng.random_range(0..nodes);
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked
}

/// Captures every datagram while one member crashes and is declared down; replays the capture
/// into a freshly restarted member while another crashes, and again once the cluster has
/// forgotten the dead (`remove_down_after` + 1 s later) while a third crashes.
pub fn trials_replay(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let window = trial_window(world.timing(), params.nodes);
    for trial in 0..params.trials {
        let picked = distinct_nodes(
            &mut trial_rng(params, Stream::Victim, trial),
            params.nodes,
            4,
        );
        let [dead, target, first, second] = picked[..] else {
            return;
        };
        let mut peers_rng = trial_rng(params, Stream::Peers, trial);
        world.start_capture();
        let half = params.options.capture / 2;
        let until = world.now() + half;
        world.run_until(until);
        world.crash(dead);
        let until = world.now() + half;
        world.run_until(until);
        let captured = world.take_capture();
        world.crash(target);
        let peers = random_up_peers(world, &mut peers_rng, target);
        world.start(target, &peers);
        let later = world.timing().remove_down_after + Duration::from_secs(1);
        for (round, crashed, label) in [
            (0, first, "fresh restart".to_string()),
            (1, second, format!("after {} s", later.as_secs())),
        ] {
            if round == 1 {
                let until = world.now() + later;
                world.run_until(until);
            }
            let mark = begin(world);
            let generation = world.generation(crashed);
            world.crash(crashed);
            replay(world, &captured, target);
            world.run_until(mark.start + window);
            let observations = world.take_observations();
            world.record(false);
            let (multi, none) = world.claim_totals();
            let undetected = world
                .up_nodes()
                .into_iter()
                .filter(|&i| world.sees_live(i, crashed))
                .count();
            let revived_now: BTreeSet<usize> = (0..world.node_count())
                .filter(|&j| !world.state(j).is_up())
                .filter(|&j| world.up_nodes().into_iter().any(|i| world.sees_live(i, j)))
                .collect();
            let mut faults = tally(&observations, &[target]);
            faults.dead_revived = faults.dead_revived.max(revived_now.len());
            faults.crashes_undetected = Some(usize::from(undetected > 0));
            faults.label = Some(label);
            report.trials.push(Trial {
                trial,
                node: Some(target),
                detection: world
                    .first_down(crashed, generation)
                    .map(|t| secs(t.saturating_sub(mark.start))),
                failover: failover_secs(world),
                agreement: None,
                multi_claim: secs(multi - mark.multi),
                no_owner: secs(none - mark.none),
                faults: Some(faults),
                claims: None,
            });
        }
        for node in [dead, first, second] {
            let peers = random_up_peers(world, &mut peers_rng, node);
            world.start(node, &peers);
        }
        settle(world);
        progress(1);
    }
}

/// A new member joins through every running peer at once, every node reading its socket
/// through a bounded queue.
pub fn trials_join_storm(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let joiner = params.nodes;
    let window = trial_window(world.timing(), params.nodes);
    world.watch(joiner);
    for trial in 0..params.trials {
        if trial > 0 {
            world.leave(joiner);
            settle(world);
        }
        let mark = begin(world);
        let generation = world.generation(joiner) + 1;
        let drops0 = world.queue_drops(joiner);
        let cluster0: u64 = (0..world.node_count()).map(|i| world.queue_drops(i)).sum();
        let lists0 = world.member_list_bytes(joiner).clone();
        let peers: Vec<usize> = (0..params.nodes).collect();
        world.start(joiner, &peers);
        let knew = world.run_while(mark.start + window, |w| w.knows_all_up(joiner));
        let knows_all = knew.then(|| secs(world.now() - mark.start));
        // Lists still in flight count too.
        let until = world.now() + Duration::from_secs(1);
        world.run_until(until);
        let mut per_sender: Vec<u64> = world
            .member_list_bytes(joiner)
            .iter()
            .map(|(from, bytes)| bytes - lists0.get(from).copied().unwrap_or(0))
            .filter(|b| *b > 0)
            .collect();
        per_sender.sort_unstable();
        let total: u64 = per_sender.iter().sum();
        let one = per_sender.get(per_sender.len() / 2).copied().unwrap_or(0);
        let cluster1: u64 = (0..world.node_count()).map(|i| world.queue_drops(i)).sum();
        let join = JoinTrial {
            knows_all,
            member_list_bytes: total,
            senders: per_sender.len(),
            member_lists: if one == 0 {
                0.0
            } else {
                round_us(total as f64 / one as f64)
            },
            queue_drops: world.queue_drops(joiner) - drops0,
            cluster_queue_drops: cluster1 - cluster0,
        };
        if !knew {
            report.timeouts += 1;
        }
        let mut record = finish(world, report, mark, trial, joiner, &[joiner], generation);
        if let Some(faults) = record.faults.as_mut() {
            faults.join = Some(join);
        }
        report.trials.push(record);
        progress(1);
    }
}
