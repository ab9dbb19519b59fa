//! [`SpeakerCore`]: every rule deciding which VIPs this speaker claims and when it announces
//! them, as one sans-io state machine.
//!
//! Inputs: the VIP placement, the live members and membership events (with the isolation
//! signal), claims of VIPs seen from other MACs, and the time. Outputs are [`Effect`]s, polled
//! like foca's runtime: claim or release a VIP (answer for it, or stop; join or leave its IPv6
//! group), send one announcement round, send a probe, report a notice. The daemon executes them
//! on real interfaces; the simulator runs the same core for every node it models.
//!
//! The rules, each in one place:
//! - ownership: rendezvous hashing over (live members not held down) ∩ nodes allowed for the
//!   VIP ([`crate::ownership`]);
//! - start-up hold ([`crate::startup`]);
//! - fencing while isolated ([`crate::fence`]);
//! - flap hold-down ([`crate::flap`]);
//! - re-assert: the owner restarts a VIP's burst when another MAC claims it (at most once per
//!   [`REANNOUNCE_MIN_INTERVAL`] per VIP), and all its bursts after its own renewal, after a
//!   member it saw down rejoins, and when its own isolation ends ([`crate::announce`]).

use crate::announce::{
    Announcements, BurstSchedule, REANNOUNCE_DELAY, REANNOUNCE_MIN_INTERVAL,
    calls_for_reannouncement,
};
use crate::fence::{Fence, ProbePolicy};
use crate::flap::{FlapPolicy, FlapTracker};
use crate::ownership::{VipPlacement, owned_vips, owner_of};
use crate::startup::StartupHold;
use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::Instant;
use swimlb_gossip::{IsolationReason, MembershipEvent, Reachability};

#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub node: String,
    pub schedule: BurstSchedule,
    /// `None` switches fencing off: an isolated speaker then claims by its own view.
    pub fencing: Option<ProbePolicy>,
    /// `None` switches the flap hold-down off.
    pub flap: Option<FlapPolicy>,
}

/// Why a VIP was claimed or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The live members or the placement changed.
    Owner,
    /// The start-up hold ended.
    StartupOver,
    /// Fenced: probes found nobody holding it.
    Unheld,
    /// Fenced: another MAC claims it.
    HeldElsewhere,
    /// The fence engaged or lifted.
    Fence,
    /// A member's flap hold-down began or ended.
    HoldDown,
    /// The speaker stops.
    Stopping,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Owner => "owner",
            Reason::StartupOver => "start-up hold over",
            Reason::Unheld => "fenced, nobody else holds it",
            Reason::HeldElsewhere => "fenced, another MAC holds it",
            Reason::Fence => "fence changed",
            Reason::HoldDown => "flap hold-down",
            Reason::Stopping => "stopping",
        }
    }
}

/// What made the speaker re-announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassertCause {
    /// This node was declared down and renewed its identity.
    OwnRenewal,
    /// A member this node had seen down rejoined.
    MemberReturned,
    /// This node's isolation ended.
    Healed,
    /// Another MAC claimed a VIP this node owns.
    ForeignClaim,
}

impl ReassertCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ReassertCause::OwnRenewal => "own_renewal",
            ReassertCause::MemberReturned => "member_returned",
            ReassertCause::Healed => "healed",
            ReassertCause::ForeignClaim => "foreign_claim",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    StartupOver {
        members: usize,
    },
    Fenced(IsolationReason),
    FenceLifted,
    /// `member` flaps: it owns nothing until its hold-down ends.
    HeldDown {
        member: String,
    },
    HoldDownOver {
        member: String,
    },
    /// Bursts restarted for `vips` VIPs.
    Reasserted {
        vips: usize,
        cause: ReassertCause,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start answering for `vip` (for IPv6, join its solicited-node group). Its first
    /// announcement follows as an [`Effect::Announce`].
    Claim {
        vip: IpAddr,
        previous_owner: Option<String>,
        reason: Reason,
    },
    /// Stop answering for `vip` (for IPv6, leave its group).
    Release {
        vip: IpAddr,
        new_owner: Option<String>,
        reason: Reason,
    },
    /// Send one gratuitous round for `vip` on every interface.
    Announce(IpAddr),
    /// Ask every interface whether another host holds `vip` (ARP probe, DAD solicitation);
    /// answers come back through [`SpeakerCore::foreign_claim`].
    Probe(IpAddr),
    Notice(Notice),
}

/// The speaker's claim state machine (see the module documentation).
#[derive(Debug, Clone)]
pub struct SpeakerCore {
    node: String,
    placement: VipPlacement,
    /// Live members as the membership reports them, this node always included.
    live: BTreeSet<String>,
    /// `live` without members in hold-down, as of the last reconciliation.
    effective: BTreeSet<String>,
    /// When the next hold-down counted in `effective` ends.
    hold_release_at: Option<Instant>,
    hold: StartupHold,
    fence: Option<Fence>,
    flaps: FlapTracker,
    /// Members this node saw declared down and not yet back with a new generation.
    seen_down: BTreeSet<String>,
    announcements: Announcements,
    reannounce_at: Option<(Instant, ReassertCause)>,
    draining: bool,
    effects: VecDeque<Effect>,
}

impl SpeakerCore {
    pub fn new(config: CoreConfig, hold: StartupHold) -> Self {
        let live = BTreeSet::from([config.node.clone()]);
        Self {
            placement: VipPlacement::new(),
            effective: live.clone(),
            hold_release_at: None,
            live,
            hold,
            fence: config
                .fencing
                .map(|policy| Fence::new(policy, &config.node)),
            flaps: FlapTracker::new(config.flap),
            seen_down: BTreeSet::new(),
            announcements: Announcements::new(config.schedule),
            reannounce_at: None,
            draining: false,
            effects: VecDeque::new(),
            node: config.node,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The VIPs this node claims now.
    pub fn owned(&self) -> BTreeSet<IpAddr> {
        self.announcements.owned()
    }

    pub fn holding(&self) -> bool {
        self.hold.holding()
    }

    pub fn fenced(&self) -> Option<IsolationReason> {
        self.fence.as_ref().and_then(Fence::reason)
    }

    pub fn placement(&self) -> &VipPlacement {
        &self.placement
    }

    /// When this node took `vip`, if it claims it.
    pub fn taken_at(&self, vip: IpAddr) -> Option<Instant> {
        self.announcements.taken_at(vip)
    }

    /// The owner of `vip` by this node's view (hold-downs applied), fencing aside.
    pub fn view_owner(&self, vip: IpAddr) -> Option<&str> {
        let allowed = self.placement.get(&vip)?.as_ref();
        owner_of(vip, allowed, &self.effective)
    }

    /// The next effect to execute, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// The next time [`SpeakerCore::tick`] has something to do.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if self.hold.holding() {
            return self.hold.deadline();
        }
        [
            (!self.draining)
                .then(|| self.announcements.next_due())
                .flatten(),
            self.reannounce_at.map(|(at, _)| at),
            self.fence.as_ref().and_then(Fence::next_deadline),
            self.flaps.next_release(now),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn set_schedule(&mut self, schedule: BurstSchedule) {
        self.announcements.set_schedule(schedule);
    }

    /// Takes a new placement (every VIP with the nodes allowed to own it).
    pub fn set_placement(&mut self, now: Instant, placement: VipPlacement) {
        self.placement = placement;
        self.reconcile(now, Reason::Owner);
    }

    /// Kubernetes mode: the first full list is in at `now` (see [`crate::startup`]).
    pub fn placement_known(&mut self, now: Instant, has_peers: bool) {
        self.hold.placement_known(now, has_peers);
        self.tick(now);
    }

    /// Takes the live members (this node is added if absent).
    pub fn set_live(&mut self, now: Instant, live: &BTreeSet<String>) {
        self.live.clone_from(live);
        self.live.insert(self.node.clone());
        self.reconcile(now, Reason::Owner);
    }

    /// Takes a membership event.
    pub fn membership_event(&mut self, now: Instant, event: &MembershipEvent) {
        let seen_down = match event {
            MembershipEvent::Rejoined { new, .. } => self.seen_down.contains(&new.name),
            _ => false,
        };
        if !self.hold.holding() && calls_for_reannouncement(event, &self.node, seen_down) {
            let cause = match event {
                MembershipEvent::Renewed(_) => ReassertCause::OwnRenewal,
                _ => ReassertCause::MemberReturned,
            };
            self.schedule_reassert(now, cause);
        }
        match event {
            MembershipEvent::Down(id) => {
                self.seen_down.insert(id.name.clone());
            }
            MembershipEvent::Rejoined { new, .. } => {
                self.seen_down.remove(&new.name);
                if seen_down {
                    self.note_return(now, &new.name);
                }
            }
            MembershipEvent::Renewed(id) if id.name == self.node => {
                let name = self.node.clone();
                self.note_return(now, &name);
            }
            MembershipEvent::Connected => self.hold.connected(now),
            MembershipEvent::Reachability(verdict) => self.reachability(now, *verdict),
            _ => {}
        }
        self.tick(now);
    }

    /// Another MAC claims `vip` (a gratuitous frame, an ARP reply, a neighbor advertisement).
    pub fn foreign_claim(&mut self, now: Instant, vip: IpAddr) {
        if let Some(fence) = self.fence.as_mut().filter(|f| f.is_engaged()) {
            if fence.held_elsewhere(now, vip) {
                self.reconcile(now, Reason::HeldElsewhere);
            }
            return;
        }
        if self.draining || self.hold.holding() {
            return;
        }
        if self
            .announcements
            .restart_burst(now, vip, REANNOUNCE_MIN_INTERVAL)
        {
            self.effects.push_back(Effect::Notice(Notice::Reasserted {
                vips: 1,
                cause: ReassertCause::ForeignClaim,
            }));
            self.push_due(now);
        }
    }

    /// Runs whatever is due at `now`: the end of the start-up hold, re-assertion, probes, the
    /// end of hold-downs, announcement rounds.
    pub fn tick(&mut self, now: Instant) {
        if self.hold.holding() {
            if !self.hold.expire(now) {
                return;
            }
            self.effects.push_back(Effect::Notice(Notice::StartupOver {
                members: self.live.len(),
            }));
            self.reconcile(now, Reason::StartupOver);
        }
        if let Some(fence) = self.fence.as_mut() {
            let (probes, changed) = fence.poll(now);
            self.effects.extend(probes.into_iter().map(Effect::Probe));
            if changed {
                self.reconcile(now, Reason::Unheld);
            }
        }
        if self.hold_release_at.is_some_and(|at| at <= now) {
            self.reconcile(now, Reason::HoldDown);
        }
        if let Some((at, cause)) = self.reannounce_at
            && at <= now
        {
            self.reannounce_at = None;
            let restarted = self
                .announcements
                .restart_bursts(now, REANNOUNCE_MIN_INTERVAL);
            if !restarted.is_empty() {
                self.effects.push_back(Effect::Notice(Notice::Reasserted {
                    vips: restarted.len(),
                    cause,
                }));
            }
        }
        self.flaps.prune(now);
        self.push_due(now);
    }

    /// Drain: keep every claim, but send no more announcements (the successors' are the
    /// ones clients must hear last).
    pub fn drain(&mut self) {
        self.draining = true;
        self.reannounce_at = None;
    }

    /// Releases every claim.
    pub fn stop(&mut self, now: Instant) {
        self.draining = true;
        for vip in self.announcements.owned() {
            self.effects.push_back(Effect::Release {
                vip,
                new_owner: None,
                reason: Reason::Stopping,
            });
        }
        self.announcements.set_owned(now, &BTreeSet::new());
    }

    fn schedule_reassert(&mut self, now: Instant, cause: ReassertCause) {
        self.reannounce_at
            .get_or_insert((now + REANNOUNCE_DELAY, cause));
    }

    fn note_return(&mut self, now: Instant, member: &str) {
        if self.flaps.returned(member, now) {
            self.effects.push_back(Effect::Notice(Notice::HeldDown {
                member: member.to_owned(),
            }));
        }
        // A hold-down began, or a mass return ended some: the claims change now.
        if self.effective != self.effective_live(now) {
            self.reconcile(now, Reason::HoldDown);
        }
    }

    fn reachability(&mut self, now: Instant, verdict: Reachability) {
        let Some(fence) = self.fence.as_mut() else {
            return;
        };
        match verdict {
            Reachability::Isolated(reason) => {
                let newly = !fence.is_engaged();
                fence.engage(now, reason, &self.announcements.owned());
                if newly {
                    self.effects
                        .push_back(Effect::Notice(Notice::Fenced(reason)));
                }
                self.reconcile(now, Reason::Fence);
            }
            Reachability::Reachable => {
                if fence.is_engaged() {
                    fence.lift();
                    self.effects.push_back(Effect::Notice(Notice::FenceLifted));
                    self.reconcile(now, Reason::Fence);
                    if !self.hold.holding() {
                        self.schedule_reassert(now, ReassertCause::Healed);
                    }
                }
            }
        }
    }

    fn effective_live(&self, now: Instant) -> BTreeSet<String> {
        self.live
            .iter()
            .filter(|member| !self.flaps.held_down(member, now))
            .cloned()
            .collect()
    }

    /// Recomputes the claimed set and emits the releases (first) and claims.
    fn reconcile(&mut self, now: Instant, reason: Reason) {
        let effective = self.effective_live(now);
        let previous = std::mem::replace(&mut self.effective, effective);
        self.hold_release_at = self.flaps.next_release(now);
        let released: Vec<String> = self
            .live
            .iter()
            .filter(|m| !previous.contains(*m) && self.effective.contains(*m))
            .filter(|m| self.flaps.was_held_down(m))
            .cloned()
            .collect();
        for member in released {
            self.effects
                .push_back(Effect::Notice(Notice::HoldDownOver { member }));
        }
        if self.hold.holding() || self.draining {
            return;
        }
        let wanted = if self.effective.contains(&self.node) {
            owned_vips(&self.node, &self.placement, &self.effective)
        } else {
            BTreeSet::new()
        };
        let claimed = match self.fence.as_mut().filter(|f| f.is_engaged()) {
            Some(fence) => {
                fence.want(now, &wanted);
                let (probes, _) = fence.poll(now);
                self.effects.extend(probes.into_iter().map(Effect::Probe));
                fence.claims()
            }
            None => wanted,
        };
        let change = self.announcements.set_owned(now, &claimed);
        for vip in change.lost {
            let new_owner = self.view_owner(vip).map(str::to_owned);
            self.effects.push_back(Effect::Release {
                vip,
                new_owner,
                reason,
            });
        }
        for vip in change.gained {
            let allowed = self.placement.get(&vip).and_then(Option::as_ref);
            let previous_owner = owner_of(vip, allowed, &previous).map(str::to_owned);
            self.effects.push_back(Effect::Claim {
                vip,
                previous_owner,
                reason,
            });
        }
        self.push_due(now);
    }

    fn push_due(&mut self, now: Instant) {
        if self.draining || self.hold.holding() {
            return;
        }
        let due = self.announcements.take_due(now);
        self.effects.extend(due.into_iter().map(Effect::Announce));
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
