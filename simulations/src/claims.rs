//! What the speaker cores' claims cost the client: dual-claim and no-claim time, ownership
//! moves per minute per VIP, wrong-MAC time on the modelled client (see [`crate::world`]), and
//! per scenario the figure its claim rule is about: the minority's fence delay in a gossip
//! partition, the hold-down of a flapping node, the time until every VIP is owned again after
//! a mass failure. The scenarios of their own are pause, gossip-flap and mass-failure; the
//! partition and rolling-restart scenarios record a [`ClaimTrial`] too.

use std::time::Duration;

use serde::Serialize;

use crate::faults::distinct_nodes;
use crate::metrics::round_us;
use crate::scenario::{
    ConfigReport, Configuration, Params, Stream, Trial, failover_secs, random_phase,
    random_up_peers, secs, settle_cap, trial_rng,
};
use crate::world::World;
use rand::RngExt;

/// How long single ownership must hold to count as settled: a fault's consequences (downs,
/// renewals, re-announcements) can arrive after a first moment of agreement.
const TAIL: Duration = Duration::from_secs(3);

/// The claim figures of one trial, in seconds unless named otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ClaimTrial {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Claims made per VIP per minute of the trial: the busiest VIP's, and the mean.
    pub moves_per_min_max: f64,
    pub moves_per_min_mean: f64,
    /// Wrong-MAC time summed over VIPs, the whole trial.
    pub wrong_mac: f64,
    /// Wrong-MAC time summed over VIPs from the heal (resume, restart) on.
    pub wrong_mac_after: f64,
    /// The longest stretch one VIP's entry pointed wrong during the trial.
    pub wrong_mac_longest: f64,
    /// The same from the heal on (counted from the heal at the earliest).
    pub wrong_mac_longest_after: f64,
    /// partition: start → the last moment a VIP was claimed from both sides; `None`: until
    /// the heal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fence_delay: Option<f64>,
    /// partition: dual-claim time after the fence delay, until the heal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dual_after_fence: Option<f64>,
    /// partition: the heal → every view agrees again (the gossip merge; until then the
    /// majority's owners serve the minority's VIPs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged: Option<f64>,
    /// partition: wrong-MAC time summed over VIPs, and the longest stretch, from the merge on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrong_mac_after_merge: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrong_mac_longest_after_merge: Option<f64>,
    /// mass-failure: the crash → every VIP has a claimant again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_owned: Option<f64>,
    /// gossip-flap: the first cut → every running node holds the flapping node down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_down_engaged: Option<f64>,
    /// gossip-flap: moves per minute of the busiest VIP once the hold-down is engaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moves_per_min_held: Option<f64>,
}

/// The worst of a configuration's trials.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ClaimSummary {
    pub moves_per_min_max: f64,
    pub wrong_mac: f64,
    pub wrong_mac_after: f64,
    pub wrong_mac_longest: f64,
    pub wrong_mac_longest_after: f64,
    /// Trials whose minority stayed split until the heal.
    pub unfenced: usize,
    pub fence_delay: Option<f64>,
    pub dual_after_fence: Option<f64>,
    pub merged: Option<f64>,
    pub wrong_mac_longest_after_merge: Option<f64>,
    pub all_owned: Option<f64>,
    pub hold_down_engaged: Option<f64>,
    pub moves_per_min_held: Option<f64>,
}

impl ClaimSummary {
    pub fn of(trials: &[&ClaimTrial]) -> Self {
        let max = |f: &dyn Fn(&ClaimTrial) -> f64| trials.iter().map(|t| f(t)).fold(0.0, f64::max);
        let worst = |f: &dyn Fn(&ClaimTrial) -> Option<f64>| {
            trials.iter().filter_map(|t| f(t)).reduce(f64::max)
        };
        let partitions = trials
            .iter()
            .filter(|t| t.label.as_deref() == Some("partition"));
        Self {
            moves_per_min_max: max(&|t| t.moves_per_min_max),
            wrong_mac: max(&|t| t.wrong_mac),
            wrong_mac_after: max(&|t| t.wrong_mac_after),
            wrong_mac_longest: max(&|t| t.wrong_mac_longest),
            wrong_mac_longest_after: max(&|t| t.wrong_mac_longest_after),
            unfenced: partitions.filter(|t| t.fence_delay.is_none()).count(),
            fence_delay: worst(&|t| t.fence_delay),
            dual_after_fence: worst(&|t| t.dual_after_fence),
            merged: worst(&|t| t.merged),
            wrong_mac_longest_after_merge: worst(&|t| t.wrong_mac_longest_after_merge),
            all_owned: worst(&|t| t.all_owned),
            hold_down_engaged: worst(&|t| t.hold_down_engaged),
            moves_per_min_held: worst(&|t| t.moves_per_min_held),
        }
    }
}

/// Where a trial's measurements start.
pub(crate) struct Mark {
    pub start: Duration,
    multi: Duration,
    none: Duration,
    wrong: Duration,
    moves: Vec<u64>,
}

pub(crate) fn begin(world: &mut World) -> Mark {
    world.clear_awaiting();
    world.forget_wrong_mac_stretches();
    let (multi, none) = world.claim_totals();
    Mark {
        start: world.now(),
        multi,
        none,
        wrong: world.wrong_mac_total(),
        moves: moves(world),
    }
}

fn moves(world: &World) -> Vec<u64> {
    (0..world.vip_count())
        .map(|v| world.claims_made(v))
        .collect()
}

/// Claims made per VIP per minute since `from` (taken at `since`): (busiest, mean).
fn moves_per_min(world: &World, from: &[u64], since: Duration) -> (f64, f64) {
    let minutes = (world.now() - since).as_secs_f64() / 60.0;
    if minutes <= 0.0 || from.is_empty() {
        return (0.0, 0.0);
    }
    let counts: Vec<u64> = moves(world)
        .iter()
        .zip(from)
        .map(|(now, then)| now - then)
        .collect();
    let busiest = counts.iter().copied().max().unwrap_or(0) as f64 / minutes;
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64 / minutes;
    (round_us(busiest), round_us(mean))
}

/// The wrong-MAC figures from a heal on: taken at the heal.
pub(crate) struct HealMark {
    pub at: Duration,
    wrong: Duration,
}

pub(crate) fn healed(world: &World) -> HealMark {
    HealMark {
        at: world.now(),
        wrong: world.wrong_mac_total(),
    }
}

/// Wrong-MAC time summed over VIPs since `mark`, and the longest stretch since then.
pub(crate) fn wrong_mac_since(world: &World, mark: &HealMark) -> (f64, f64) {
    (
        secs(world.wrong_mac_total() - mark.wrong),
        secs(world.wrong_mac_longest_since(mark.at)),
    )
}

/// The claim figures of the trial begun at `mark` and healed at `heal`.
pub(crate) fn claim_trial(world: &World, mark: &Mark, heal: &HealMark) -> ClaimTrial {
    let (max, mean) = moves_per_min(world, &mark.moves, mark.start);
    let (after, longest) = wrong_mac_since(world, heal);
    ClaimTrial {
        moves_per_min_max: max,
        moves_per_min_mean: mean,
        wrong_mac: secs(world.wrong_mac_total() - mark.wrong),
        wrong_mac_after: after,
        wrong_mac_longest: secs(world.wrong_mac_longest_since(mark.start)),
        wrong_mac_longest_after: longest,
        ..ClaimTrial::default()
    }
}

/// The trial record: claim totals since `mark`, the failovers, `agreement` given.
pub(crate) fn trial_record(
    world: &mut World,
    mark: &Mark,
    trial: usize,
    node: Option<usize>,
    agreement: Option<f64>,
    claims: ClaimTrial,
) -> Trial {
    let (multi, none) = world.claim_totals();
    Trial {
        trial,
        node,
        detection: None,
        failover: failover_secs(world),
        agreement,
        multi_claim: secs(multi - mark.multi),
        no_owner: secs(none - mark.none),
        faults: None,
        claims: Some(claims),
    }
}

/// Runs until every view agrees and every VIP has its true owner as only claimant, in a state
/// that then holds for [`TAIL`]; returns the time from `from`, `None` after `cap`.
pub(crate) fn settle_tail(world: &mut World, from: Duration, cap: Duration) -> Option<Duration> {
    let settled = |w: &World| w.converged() && w.single_ownership();
    while world.run_while(cap, settled) {
        let since = world.now();
        if !world.run_while(since + TAIL, |w| !settled(w)) {
            return Some(since - from);
        }
    }
    None
}

fn cap(world: &World) -> Duration {
    world.now() + settle_cap(world.timing()) * 3
}

/// The owner of a random VIP freezes for `down` (the command line's default: 500 ms), then
/// resumes.
pub fn trials_pause(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    for trial in 0..params.trials {
        let v = trial_rng(params, Stream::Victim, trial).random_range(0..params.vips);
        let until = world.now() + random_phase(params, world, trial);
        world.run_until(until);
        let Some(node) = world.true_owner(v) else {
            continue;
        };
        let mark = begin(world);
        world.pause(node, params.options.down);
        world.run_until(mark.start + params.options.down);
        let heal = healed(world);
        let resumed = world.now();
        let cap = cap(world);
        let agreement = settle_tail(world, resumed, cap);
        if agreement.is_none() {
            report.timeouts += 1;
        }
        let claims = claim_trial(world, &mark, &heal);
        let record = trial_record(world, &mark, trial, Some(node), agreement.map(secs), claims);
        report.trials.push(record);
        progress(1);
    }
}

/// One node's gossip is cut for `down` and restored for `up`, again and again for
/// `duration` (the command line's defaults: 1 s / 1 s for 2 minutes); the link stays up.
pub fn trials_gossip_flap(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let options = &params.options;
    let period = options.down + options.up;
    if period.is_zero() {
        return;
    }
    for trial in 0..params.trials {
        let v = trial_rng(params, Stream::Victim, trial).random_range(0..params.vips);
        let Some(node) = world.true_owner(v) else {
            continue;
        };
        world.forget_hold_downs();
        let mark = begin(world);
        let mut engaged: Option<(Duration, Vec<u64>)> = None;
        while world.now() + period <= mark.start + options.duration {
            let cycle = world.now();
            world.network.ingress_loss.insert(node, 1.0);
            world.network.egress_loss.insert(node, 1.0);
            world.run_until(cycle + options.down);
            world.network.ingress_loss.remove(&node);
            world.network.egress_loss.remove(&node);
            world.run_until(cycle + period);
            if engaged.is_none() && held_down_everywhere(world, node) {
                engaged = Some((world.now(), moves(world)));
            }
        }
        let flapping_end = world.now();
        let held = engaged
            .as_ref()
            .map(|(since, from)| moves_per_min(world, from, *since).0);
        let (max, mean) = moves_per_min(world, &mark.moves, mark.start);
        let heal = healed(world);
        // The hold-down ends `hold_down` after the last return: wait past it.
        let cap = world.now()
            + swimlb_speaker_core::flap::FlapPolicy::default().hold_down
            + settle_cap(world.timing()) * 3;
        let agreement = settle_tail(world, flapping_end, cap);
        if agreement.is_none() {
            report.timeouts += 1;
        }
        let mut claims = claim_trial(world, &mark, &heal);
        claims.moves_per_min_max = max;
        claims.moves_per_min_mean = mean;
        claims.hold_down_engaged = engaged.as_ref().map(|(at, _)| secs(*at - mark.start));
        claims.moves_per_min_held = held;
        let record = trial_record(world, &mark, trial, Some(node), agreement.map(secs), claims);
        report.trials.push(record);
        progress(1);
    }
}

/// Every running node's core has reported `node` in flap hold-down.
fn held_down_everywhere(world: &World, node: usize) -> bool {
    world
        .up_nodes()
        .into_iter()
        .all(|i| world.held_down_since(node, i).is_some())
}

/// A share (`fail_share`, 60 % by default) of the nodes crash at once; measured until every
/// VIP is owned again and the survivors settle, then the crashed nodes restart (measured as
/// a second record, "return").
pub fn trials_mass_failure(
    params: &Params,
    _config: &Configuration,
    world: &mut World,
    report: &mut ConfigReport,
    progress: &(dyn Fn(u64) + Sync),
) {
    let n = params.nodes;
    let count = ((n as f64 * params.options.fail_share).round() as usize).clamp(1, n - 1);
    for trial in 0..params.trials {
        let victims = distinct_nodes(&mut trial_rng(params, Stream::Victim, trial), n, count);
        let until = world.now() + random_phase(params, world, trial);
        world.run_until(until);
        let mark = begin(world);
        for &i in &victims {
            world.crash(i);
        }
        let cap = cap(world);
        let owned = world.run_while(cap, World::every_vip_claimed);
        let all_owned = owned.then(|| secs(world.now() - mark.start));
        let heal = healed(world);
        let agreement = settle_tail(world, mark.start, cap);
        if agreement.is_none() {
            report.timeouts += 1;
        }
        let mut claims = claim_trial(world, &mark, &heal);
        claims.label = Some("failure".into());
        claims.all_owned = all_owned;
        let record = trial_record(world, &mark, trial, None, agreement.map(secs), claims);
        report.trials.push(record);

        let mark = begin(world);
        let mut peers_rng = trial_rng(params, Stream::Peers, trial);
        for &i in &victims {
            let peers = random_up_peers(world, &mut peers_rng, i);
            world.start(i, &peers);
        }
        let heal = healed(world);
        let cap = world.now() + settle_cap(world.timing()) * 3;
        let agreement = settle_tail(world, mark.start, cap);
        if agreement.is_none() {
            report.timeouts += 1;
        }
        let mut claims = claim_trial(world, &mark, &heal);
        claims.label = Some("return".into());
        let record = trial_record(world, &mark, trial, None, agreement.map(secs), claims);
        report.trials.push(record);
        progress(1);
    }
}
