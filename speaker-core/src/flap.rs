//! Flap hold-down: a member that keeps going down and coming back takes its VIPs back only
//! after a quiet period, so its clients are not moved back and forth every few seconds.
//!
//! Every speaker counts the returns of every member (another member rejoining after this node
//! saw it down; this node renewing its own identity after the others declared it down). A
//! member with more than `max_returns` returns within `window` is held down until `hold_down`
//! after its latest return: while held down it owns nothing, in every speaker's computation,
//! its own included.
//!
//! A flap is one member's trouble. Returns of two or more members within [`MASS_RETURN`] of
//! each other are the cluster's trouble (a healed partition renews every member on both
//! sides at once): they count for nobody, so repeated partitions never leave the VIPs without
//! owners. Every speaker sees such a burst (each side sees the other return, and itself
//! renew), so they agree on it. Pure state; the caller passes the time in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// Returns of different members this close together are one event of the whole cluster.
pub const MASS_RETURN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapPolicy {
    /// Returns tolerated within `window` before the hold-down engages.
    pub max_returns: usize,
    pub window: Duration,
    /// How long after its latest return a flapping member stays without VIPs.
    pub hold_down: Duration,
}

impl Default for FlapPolicy {
    fn default() -> Self {
        Self {
            max_returns: 3,
            window: Duration::from_secs(60),
            hold_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct FlapTracker {
    /// `None`: hold-down switched off.
    policy: Option<FlapPolicy>,
    returns: BTreeMap<String, VecDeque<Instant>>,
    /// Every return of the last [`MASS_RETURN`], counted or not.
    recent: VecDeque<(Instant, String)>,
}

impl FlapTracker {
    pub fn new(policy: Option<FlapPolicy>) -> Self {
        Self {
            policy,
            returns: BTreeMap::new(),
            recent: VecDeque::new(),
        }
    }

    /// Notes that `member` came back at `now`; true when this return puts it in hold-down
    /// (or extends one).
    pub fn returned(&mut self, member: &str, now: Instant) -> bool {
        let Some(policy) = self.policy else {
            return false;
        };
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > MASS_RETURN)
        {
            self.recent.pop_front();
        }
        self.recent.push_back((now, member.to_owned()));
        let returning: BTreeSet<&str> = self.recent.iter().map(|(_, m)| m.as_str()).collect();
        if returning.len() > 1 {
            // A mass return: uncount every return of the burst, this one included.
            for (at, other) in &self.recent {
                if let Some(counted) = self.returns.get_mut(other) {
                    counted.retain(|t| t != at);
                }
            }
            return false;
        }
        let returns = self.returns.entry(member.to_owned()).or_default();
        returns.push_back(now);
        while returns
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) > policy.window)
        {
            returns.pop_front();
        }
        returns.len() > policy.max_returns
    }

    /// Whether `member` is held down at `now`.
    pub fn held_down(&self, member: &str, now: Instant) -> bool {
        self.release_at(member).is_some_and(|release| now < release)
    }

    /// Whether `member` has been put in a hold-down that may since have ended.
    pub fn was_held_down(&self, member: &str) -> bool {
        self.release_at(member).is_some()
    }

    /// When `member`'s hold-down ends, if it was ever put in one.
    fn release_at(&self, member: &str) -> Option<Instant> {
        let policy = self.policy?;
        let returns = self.returns.get(member)?;
        if returns.len() <= policy.max_returns {
            return None;
        }
        returns.back().map(|last| *last + policy.hold_down)
    }

    /// The earliest end of a hold-down still running at `now`, for the caller's timer.
    pub fn next_release(&self, now: Instant) -> Option<Instant> {
        self.returns
            .keys()
            .filter_map(|member| self.release_at(member))
            .filter(|release| *release > now)
            .min()
    }

    /// Forgets returns older than the window (bounded memory over a long run).
    pub fn prune(&mut self, now: Instant) {
        let Some(policy) = self.policy else { return };
        let horizon = policy.window.max(policy.hold_down);
        self.returns.retain(|_, returns| {
            returns
                .back()
                .is_some_and(|last| now.saturating_duration_since(*last) <= horizon)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_few_returns_are_tolerated_and_the_fourth_engages_the_hold_down() {
        let start = Instant::now();
        let mut flaps = FlapTracker::new(Some(FlapPolicy::default()));
        for i in 0..3 {
            assert!(!flaps.returned("b", start + s(2 * i)));
            assert!(!flaps.held_down("b", start + s(2 * i)));
        }
        assert!(flaps.returned("b", start + s(6)));
        assert!(flaps.held_down("b", start + s(6)));
        assert!(flaps.held_down("b", start + s(35)));
        assert!(
            !flaps.held_down("b", start + s(36)),
            "30 s after the last return"
        );
        assert_eq!(flaps.next_release(start + s(7)), Some(start + s(36)));
        assert!(
            !flaps.held_down("a", start + s(6)),
            "only the flapping member"
        );
    }

    #[test]
    fn returns_outside_the_window_do_not_count() {
        let start = Instant::now();
        let mut flaps = FlapTracker::new(Some(FlapPolicy::default()));
        for i in 0..10 {
            assert!(!flaps.returned("b", start + s(61 * i)), "return {i}");
        }
    }

    #[test]
    fn each_further_return_extends_the_hold_down() {
        let start = Instant::now();
        let mut flaps = FlapTracker::new(Some(FlapPolicy::default()));
        for i in 0..6 {
            flaps.returned("b", start + s(2 * i));
        }
        assert!(flaps.held_down("b", start + s(39)));
        assert!(!flaps.held_down("b", start + s(40)));
    }

    #[test]
    fn returns_of_several_members_together_count_for_nobody() {
        let start = Instant::now();
        let mut flaps = FlapTracker::new(Some(FlapPolicy::default()));
        for i in 0..6 {
            // A partition healing every 4 s: a renews, b and c return with it.
            let heal = start + s(4 * i);
            assert!(!flaps.returned("a", heal));
            assert!(!flaps.returned("b", heal + Duration::from_millis(300)));
            assert!(!flaps.returned("c", heal + Duration::from_millis(900)));
        }
        for member in ["a", "b", "c"] {
            assert!(!flaps.held_down(member, start + s(21)), "{member}");
        }
        // b alone keeps flapping afterwards: that counts again.
        for i in 0..4 {
            flaps.returned("b", start + s(30 + 4 * i));
        }
        assert!(flaps.held_down("b", start + s(43)));
        assert!(!flaps.held_down("a", start + s(43)));
    }

    #[test]
    fn switched_off_it_never_holds_anyone_down() {
        let start = Instant::now();
        let mut flaps = FlapTracker::new(None);
        for i in 0..10 {
            assert!(!flaps.returned("b", start + s(i)));
        }
        assert!(!flaps.held_down("b", start + s(10)));
        assert_eq!(flaps.next_release(start), None);
    }

    #[test]
    fn pruning_forgets_quiet_members() {
        let start = Instant::now();
        let mut flaps = FlapTracker::new(Some(FlapPolicy::default()));
        flaps.returned("b", start);
        flaps.prune(start + s(61));
        assert!(flaps.returns.is_empty());
    }
}
