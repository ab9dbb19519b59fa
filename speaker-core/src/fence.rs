//! Fencing: what a speaker that cannot trust its view of the cluster may still claim.
//!
//! A speaker that is isolated (its probes go unanswered, or it sees fewer live members than a
//! majority of those it expects) cannot tell "the others died" from "I am cut off". If it is cut
//! off, the others have moved its VIPs and every claim it makes is a second one; if they died,
//! nobody else will answer for the VIPs and it must.
//!
//! The tie-breaker is the link itself: while fenced, a speaker claims a VIP only after asking
//! the link whether anyone holds it (ARP probes, IPv6 duplicate address detection), and gives up
//! any VIP as soon as another MAC claims it (a gratuitous frame, an answer to a probe). So
//! - a minority cut off from the gossip but still on the clients' segment keeps quiet: the
//!   majority's owners answer its probes and their takeover announcements make it yield;
//! - the survivors of a real mass failure get no answer and take the VIPs after the probes;
//! - a speaker cut off from everything claims into the void, and on the heal yields within a
//!   recheck period, when its recheck probe is answered by the VIP's real owner.
//!
//! Pure state; the caller passes the time in, sends the probes and reports the claims it sees.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use swimlb_gossip::IsolationReason;
use swimlb_gossip::owner::NodePrefix;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePolicy {
    /// Probes sent before a VIP counts as unheld.
    pub probes: u32,
    /// Time between probes; the VIP is claimed one interval after the last probe.
    pub interval: Duration,
    /// How often a claim made while fenced, and a VIP found held, are probed again.
    pub recheck: Duration,
}

impl Default for ProbePolicy {
    /// Three probes 100 ms apart: a VIP is claimed 300 ms after the speaker wants it. (RFC 5227
    /// spaces its probes 1–2 s apart for hosts that may sleep; a speaker answers within a
    /// millisecond, so a few lost frames are what the three probes cover.)
    fn default() -> Self {
        Self {
            probes: 3,
            interval: Duration::from_millis(100),
            recheck: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// `sent` probes went out without an answer; the next step is due at `next`.
    Probing { sent: u32, next: Instant },
    /// Nobody answered: claimed; probed again at `recheck`.
    Unheld { recheck: Instant },
    /// Another MAC holds it: left alone until `until`, then probed again.
    Held { until: Instant },
}

/// The fence and the standing of every VIP this speaker wants while fenced.
#[derive(Debug, Clone)]
pub struct Fence {
    policy: ProbePolicy,
    /// Spreads the rechecks of different speakers (by their rendezvous score for the VIP): two
    /// fenced speakers that yielded a VIP to each other at the same moment must not probe it
    /// again in step.
    node: NodePrefix,
    reason: Option<IsolationReason>,
    standing: BTreeMap<IpAddr, Standing>,
}

impl Fence {
    /// A fence for the speaker named `node` (the name seeds its recheck spread).
    pub fn new(policy: ProbePolicy, node: &str) -> Self {
        Self {
            policy,
            node: NodePrefix::new(node),
            reason: None,
            standing: BTreeMap::new(),
        }
    }

    /// How long a VIP found held is left alone: the recheck period and up to half of it more,
    /// fixed per (speaker, VIP).
    fn held_for(&self, vip: IpAddr) -> Duration {
        let spread = self.policy.recheck / 2;
        let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX).max(1);
        self.policy.recheck + Duration::from_millis(self.node.score(vip) % spread_ms)
    }

    pub fn reason(&self) -> Option<IsolationReason> {
        self.reason
    }

    pub fn is_engaged(&self) -> bool {
        self.reason.is_some()
    }

    /// Engages (or re-reasons) the fence. The VIPs `held` now stay claimed but are rechecked
    /// at once: they are yielded to the first other MAC that answers.
    pub fn engage(&mut self, now: Instant, reason: IsolationReason, held: &BTreeSet<IpAddr>) {
        if self.reason.replace(reason).is_none() {
            self.standing = held
                .iter()
                .map(|vip| (*vip, Standing::Unheld { recheck: now }))
                .collect();
        }
    }

    pub fn lift(&mut self) {
        self.reason = None;
        self.standing.clear();
    }

    /// Makes `wanted` the VIPs this speaker would own by its own view: new ones are probed
    /// from `now`, ones no longer wanted are forgotten.
    pub fn want(&mut self, now: Instant, wanted: &BTreeSet<IpAddr>) {
        if !self.is_engaged() {
            return;
        }
        self.standing.retain(|vip, _| wanted.contains(vip));
        for vip in wanted {
            self.standing
                .entry(*vip)
                .or_insert(Standing::Probing { sent: 0, next: now });
        }
    }

    /// The VIPs the fence lets this speaker claim.
    pub fn claims(&self) -> BTreeSet<IpAddr> {
        self.standing
            .iter()
            .filter(|(_, standing)| matches!(standing, Standing::Unheld { .. }))
            .map(|(vip, _)| *vip)
            .collect()
    }

    /// Another MAC claims `vip`: it is left to that holder until a recheck. True when this
    /// speaker had claimed it (and must now let it go).
    pub fn held_elsewhere(&mut self, now: Instant, vip: IpAddr) -> bool {
        let until = now + self.held_for(vip);
        let Some(standing) = self.standing.get_mut(&vip) else {
            return false;
        };
        let was_claimed = matches!(standing, Standing::Unheld { .. });
        *standing = Standing::Held { until };
        was_claimed
    }

    /// Advances every standing whose step is due at `now`: returns the VIPs to probe now, and
    /// whether the claimed set changed.
    pub fn poll(&mut self, now: Instant) -> (Vec<IpAddr>, bool) {
        let mut probes = Vec::new();
        let mut changed = false;
        let policy = self.policy;
        for (vip, standing) in &mut self.standing {
            match *standing {
                Standing::Probing { sent, next } if next <= now => {
                    if sent < policy.probes {
                        probes.push(*vip);
                        *standing = Standing::Probing {
                            sent: sent + 1,
                            next: now + policy.interval,
                        };
                    } else {
                        *standing = Standing::Unheld {
                            recheck: now + policy.recheck,
                        };
                        changed = true;
                    }
                }
                Standing::Unheld { recheck } if recheck <= now => {
                    probes.push(*vip);
                    *standing = Standing::Unheld {
                        recheck: now + policy.recheck,
                    };
                }
                Standing::Held { until } if until <= now => {
                    probes.push(*vip);
                    *standing = Standing::Probing {
                        sent: 1,
                        next: now + policy.interval,
                    };
                }
                _ => {}
            }
        }
        (probes, changed)
    }

    /// The next time [`Fence::poll`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.standing
            .values()
            .map(|standing| match *standing {
                Standing::Probing { next, .. } => next,
                Standing::Unheld { recheck } => recheck,
                Standing::Held { until } => until,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ms, vip};

    const REASON: IsolationReason = IsolationReason::NoQuorum {
        live: 2,
        expected: 5,
    };

    #[test]
    fn an_unanswered_vip_is_claimed_one_interval_after_the_third_probe() {
        let start = Instant::now();
        let mut fence = Fence::new(ProbePolicy::default(), "a");
        fence.engage(start, REASON, &BTreeSet::new());
        fence.want(start, &BTreeSet::from([vip(1)]));
        let mut sent = Vec::new();
        let mut claimed_at = None;
        let mut now = start;
        while now <= start + ms(1000) && claimed_at.is_none() {
            let (probes, changed) = fence.poll(now);
            sent.extend(probes.iter().map(|_| now.duration_since(start)));
            if changed {
                claimed_at = Some(now.duration_since(start));
            }
            now = fence.next_deadline().expect("a step is always pending");
        }
        assert_eq!(sent, vec![ms(0), ms(100), ms(200)]);
        assert_eq!(claimed_at, Some(ms(300)));
        assert_eq!(fence.claims(), BTreeSet::from([vip(1)]));
    }

    #[test]
    fn an_answered_probe_leaves_the_vip_to_its_holder_until_the_recheck() {
        let start = Instant::now();
        let mut fence = Fence::new(ProbePolicy::default(), "a");
        fence.engage(start, REASON, &BTreeSet::new());
        fence.want(start, &BTreeSet::from([vip(1)]));
        fence.poll(start);
        assert!(
            !fence.held_elsewhere(start + ms(1), vip(1)),
            "not claimed yet"
        );
        let (probes, changed) = fence.poll(start + ms(400));
        assert!(probes.is_empty() && !changed);
        assert!(fence.claims().is_empty());
        // Probed again after the recheck period and its spread.
        let again = start + ms(1) + fence.held_for(vip(1));
        assert!(fence.poll(again - ms(1)).0.is_empty());
        assert_eq!(fence.poll(again).0, vec![vip(1)]);
    }

    #[test]
    fn rechecks_of_different_speakers_are_spread_over_half_a_period() {
        let policy = ProbePolicy::default();
        let waits: BTreeSet<Duration> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|node| Fence::new(policy, node).held_for(vip(1)))
            .collect();
        assert!(
            waits.len() > 1,
            "the same wait for every speaker: {waits:?}"
        );
        for wait in waits {
            assert!(wait >= policy.recheck && wait < policy.recheck * 3 / 2);
        }
    }

    #[test]
    fn vips_held_when_the_fence_engages_stay_claimed_until_someone_answers() {
        let start = Instant::now();
        let mut fence = Fence::new(ProbePolicy::default(), "a");
        let held = BTreeSet::from([vip(1), vip(2)]);
        fence.engage(start, REASON, &held);
        fence.want(start, &held);
        assert_eq!(fence.claims(), held);
        let (probes, _) = fence.poll(start);
        assert_eq!(probes, vec![vip(1), vip(2)], "rechecked at once");
        assert!(fence.held_elsewhere(start + ms(3), vip(2)));
        assert_eq!(fence.claims(), BTreeSet::from([vip(1)]));
    }

    #[test]
    fn a_vip_no_longer_wanted_is_forgotten_and_lifting_clears_everything() {
        let start = Instant::now();
        let mut fence = Fence::new(ProbePolicy::default(), "a");
        let held = BTreeSet::from([vip(1), vip(2)]);
        fence.engage(start, REASON, &held);
        fence.want(start, &BTreeSet::from([vip(2)]));
        assert_eq!(fence.claims(), BTreeSet::from([vip(2)]));
        fence.lift();
        assert!(!fence.is_engaged());
        assert!(fence.claims().is_empty());
        assert_eq!(fence.next_deadline(), None);
        // Not engaged: wanting does nothing.
        fence.want(start, &held);
        assert!(fence.claims().is_empty());
    }
}
