//! The start-up hold: when a starting speaker may begin to announce.
//!
//! A speaker that has just started knows no other member yet and would compute itself the
//! owner of every VIP, pulling every client towards it for a moment. It therefore announces
//! nothing until
//! - it knows its VIPs: at once in static mode, after the first full list of Services, Nodes
//!   and EndpointSlices in Kubernetes mode (before it, the peers to join are unknown too); and
//! - it has the cluster's member list (the membership reports `Connected`) and `settle` has
//!   passed, so the old owners have heard of it and let its VIPs go; or `join_timeout` has passed
//!   since it knew whom to join (it may be alone); or there is nobody to join.
//!
//! `settle` follows the gossip preset's dissemination time ([`HoldTimes::for_timing`]).
//! Pure state; the caller passes the time in.

use std::time::{Duration, Instant};
use swimlb_gossip::Timing;

/// The settle time never goes below this: a joiner's first round of gossip takes a few
/// network round trips even on the fastest preset.
pub const MIN_SETTLE: Duration = Duration::from_millis(300);
/// How long a starting speaker waits to meet another member before it assumes it is alone.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The two durations of the hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldTimes {
    /// After the member list is in, how long the old owners get to learn of this member.
    pub settle: Duration,
    /// How long to wait for the member list once the peers are known.
    pub join_timeout: Duration,
}

impl HoldTimes {
    /// The settle time of a preset: its dissemination time for a cluster of `cluster_size`
    /// (a gossip round per doubling of the members informed, and two of slack), at least
    /// [`MIN_SETTLE`]. With `memberlist` (200 ms rounds) and 100 members that is 1.8 s.
    pub fn for_timing(timing: &Timing, cluster_size: usize) -> Self {
        let rounds = usize::BITS - cluster_size.max(2).saturating_sub(1).leading_zeros() + 2;
        Self {
            settle: (timing.gossip_interval * rounds).max(MIN_SETTLE),
            join_timeout: JOIN_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupHold {
    times: HoldTimes,
    /// When the VIPs became known, and whether there were peers to join then.
    known: Option<(Instant, bool)>,
    /// When the member list first came in.
    connected: Option<Instant>,
    over: bool,
}

impl StartupHold {
    /// A hold for a speaker whose VIPs are still unknown (Kubernetes mode).
    pub fn new(times: HoldTimes) -> Self {
        Self {
            times,
            known: None,
            connected: None,
            over: false,
        }
    }

    /// A hold for a speaker that knows its VIPs and peers at `started` (static mode).
    pub fn known_at(times: HoldTimes, started: Instant, has_peers: bool) -> Self {
        let mut hold = Self::new(times);
        hold.placement_known(started, has_peers);
        hold
    }

    /// Notes that the VIPs (and so the peers to join) became known at `now`; only the first
    /// call counts.
    pub fn placement_known(&mut self, now: Instant, has_peers: bool) {
        self.known.get_or_insert((now, has_peers));
    }

    /// Notes that the membership reported the whole member list at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.connected.get_or_insert(now);
    }

    /// When the hold ends, while it lasts and the end is known.
    pub fn deadline(&self) -> Option<Instant> {
        if self.over {
            return None;
        }
        let (known, has_peers) = self.known?;
        if !has_peers {
            return Some(known);
        }
        let timeout = known + self.times.join_timeout;
        let settled = self.connected.map(|at| at + self.times.settle);
        Some(settled.map_or(timeout, |at| at.min(timeout)).max(known))
    }

    pub fn holding(&self) -> bool {
        !self.over
    }

    /// Ends the hold if its time has come; true exactly once, when it ends.
    pub fn expire(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(until) if until <= now => {
                self.over = true;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ms;
    use swimlb_gossip::Preset;

    const TIMES: HoldTimes = HoldTimes {
        settle: Duration::from_millis(300),
        join_timeout: JOIN_TIMEOUT,
    };

    #[test]
    fn no_peers_means_no_hold_once_the_vips_are_known() {
        let start = Instant::now();
        let mut hold = StartupHold::known_at(TIMES, start, false);
        assert_eq!(hold.deadline(), Some(start));
        assert!(hold.expire(start));
        assert!(!hold.holding());
    }

    #[test]
    fn the_member_list_shortens_the_hold_to_the_settle_time() {
        let start = Instant::now();
        let mut hold = StartupHold::known_at(TIMES, start, true);
        assert_eq!(hold.deadline(), Some(start + JOIN_TIMEOUT));
        hold.connected(start + ms(20));
        assert_eq!(hold.deadline(), Some(start + ms(320)));
        // A second report (after a rejoin) does not push the end back.
        hold.connected(start + ms(200));
        assert!(!hold.expire(start + ms(319)));
        assert!(hold.expire(start + ms(320)));
        assert!(!hold.holding());
        assert!(!hold.expire(start + ms(400)), "ends only once");
    }

    #[test]
    fn nobody_answering_ends_the_hold_after_the_join_timeout() {
        let start = Instant::now();
        let mut hold = StartupHold::known_at(TIMES, start, true);
        assert!(!hold.expire(start + JOIN_TIMEOUT - ms(1)));
        assert!(hold.expire(start + JOIN_TIMEOUT));
    }

    #[test]
    fn in_kubernetes_mode_nothing_ends_the_hold_before_the_first_full_list() {
        let start = Instant::now();
        let mut hold = StartupHold::new(TIMES);
        assert_eq!(hold.deadline(), None);
        // Even a member list and a long wait do not end it: the VIPs are unknown.
        hold.connected(start + ms(10));
        assert!(!hold.expire(start + JOIN_TIMEOUT * 3));
        // The list came in after the settle time had run: the hold ends with it.
        let listed = start + JOIN_TIMEOUT * 3;
        hold.placement_known(listed, true);
        assert_eq!(hold.deadline(), Some(listed));
    }

    #[test]
    fn the_join_timeout_runs_from_the_first_full_list_not_from_process_start() {
        let start = Instant::now();
        let mut hold = StartupHold::new(TIMES);
        let listed = start + ms(7000);
        hold.placement_known(listed, true);
        assert!(!hold.expire(listed + JOIN_TIMEOUT - ms(1)));
        assert!(hold.expire(listed + JOIN_TIMEOUT));
    }

    #[test]
    fn the_settle_time_follows_the_preset() {
        let fast = HoldTimes::for_timing(&Preset::Fast.timing(), 100);
        let memberlist = HoldTimes::for_timing(&Preset::Memberlist.timing(), 100);
        assert_eq!(
            fast.settle, MIN_SETTLE,
            "fast disseminates within the minimum"
        );
        // 100 members: 7 doublings and 2 rounds of slack at 200 ms.
        assert_eq!(memberlist.settle, ms(1800));
        let small = HoldTimes::for_timing(&Preset::Memberlist.timing(), 3);
        assert_eq!(small.settle, ms(800));
    }
}
