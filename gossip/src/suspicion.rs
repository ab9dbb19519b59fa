//! Dynamic suspicion: how long a suspected member has to refute before it is declared down.
//!
//! foca starts a fixed suspicion timer on the member whose own probe failed. Here, as in
//! Lifeguard (Dadgar et al., 2018), that timer starts long and shrinks with every other member
//! that independently finds the suspect unreachable:
//!
//! ```text
//! timeout(C) = max(min, max − (max − min) · ln(C + 1) / ln(K + 1))
//! ```
//!
//! with `C` confirmations received and `K` expected (capped by how many other members could
//! confirm). A member nobody else can reach is declared down after `min`, sooner than with a
//! fixed timer; a member only one prober cannot reach (a sick prober, one bad link) has the whole
//! `max` to refute, which it does as soon as it hears of the suspicion.
//!
//! [`Suspicions`] holds the suspicions this member raised itself (each with the timer to hand back
//! to foca when it is due) and the confirmations heard from others, including those that arrive
//! before this member's own probe fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Lifeguard's suspicion timeout parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuspicionTimeouts {
    pub min: Duration,
    pub max: Duration,
    /// Confirmations after which the timeout is down to `min` (memberlist: suspicion
    /// multiplier − 2).
    pub expected_confirmations: usize,
}

impl SuspicionTimeouts {
    /// How many confirmations to wait for in a cluster of `cluster_size` members: every member
    /// but this one and the suspect could confirm.
    pub fn expected_in(&self, cluster_size: usize) -> usize {
        self.expected_confirmations
            .min(cluster_size.saturating_sub(2))
    }

    /// The timeout after `confirmations` of `expected` have arrived.
    pub fn timeout(&self, confirmations: usize, expected: usize) -> Duration {
        if expected == 0 || self.max <= self.min {
            return self.min;
        }
        let heard = confirmations.min(expected) as f64;
        let fraction = (heard + 1.0).ln() / (expected as f64 + 1.0).ln();
        let span = self.max - self.min;
        (self.max - span.mul_f64(fraction.clamp(0.0, 1.0))).max(self.min)
    }
}

/// One suspicion: a member at the incarnation it had when it was suspected.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub name: String,
    pub generation: u64,
    pub incarnation: u16,
}

#[derive(Debug, Clone)]
struct Own<T> {
    started: Duration,
    /// Local-health stretch at the time the suspicion was raised.
    stretch: u32,
    expected: usize,
    /// Set while this member is isolated: the suspicion waits instead of firing.
    held_until: Option<Duration>,
    timer: T,
}

#[derive(Debug, Clone, Default)]
struct Heard {
    by: BTreeSet<String>,
    last: Duration,
}

/// The suspicions this member raised and the confirmations it heard.
#[derive(Debug, Clone)]
pub struct Suspicions<T> {
    timeouts: SuspicionTimeouts,
    own: BTreeMap<Target, Own<T>>,
    heard: BTreeMap<Target, Heard>,
}

impl<T> Suspicions<T> {
    pub fn new(timeouts: SuspicionTimeouts) -> Self {
        Self {
            timeouts,
            own: BTreeMap::new(),
            heard: BTreeMap::new(),
        }
    }

    pub fn timeouts(&self) -> &SuspicionTimeouts {
        &self.timeouts
    }

    pub fn set_timeouts(&mut self, timeouts: SuspicionTimeouts) {
        self.timeouts = timeouts;
    }

    /// This member's own probe of `target` failed; `timer` goes back to foca when due. A second
    /// failure of the same suspicion keeps the first start time.
    pub fn raise(
        &mut self,
        target: Target,
        now: Duration,
        stretch: u32,
        expected: usize,
        timer: T,
    ) {
        self.own.entry(target).or_insert(Own {
            started: now,
            stretch: stretch.max(1),
            expected,
            held_until: None,
            timer,
        });
    }

    /// Another member `by` found `target` unreachable. True when this is news.
    pub fn confirm(&mut self, target: Target, by: &str, now: Duration) -> bool {
        let heard = self.heard.entry(target).or_default();
        heard.last = now;
        heard.by.insert(by.to_owned())
    }

    pub fn confirmations(&self, target: &Target) -> usize {
        self.heard.get(target).map_or(0, |h| h.by.len())
    }

    pub fn is_raised(&self, target: &Target) -> bool {
        self.own.contains_key(target)
    }

    fn deadline(&self, target: &Target, own: &Own<T>) -> Duration {
        if let Some(until) = own.held_until {
            return until;
        }
        let timeout = self
            .timeouts
            .timeout(self.confirmations(target), own.expected);
        own.started + timeout * own.stretch
    }

    /// When the next raised suspicion is due.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.own
            .iter()
            .map(|(target, own)| self.deadline(target, own))
            .min()
    }

    /// Removes and returns every suspicion due by `now`, in deadline order, each with whether
    /// it had been held (see [`Suspicions::hold`]).
    pub fn take_due(&mut self, now: Duration) -> Vec<(Target, T, bool)> {
        let mut due: Vec<(Duration, Target)> = self
            .own
            .iter()
            .map(|(target, own)| (self.deadline(target, own), target.clone()))
            .filter(|(deadline, _)| *deadline <= now)
            .collect();
        due.sort();
        due.into_iter()
            .filter_map(|(_, target)| {
                let own = self.own.remove(&target)?;
                let held = own.held_until.is_some();
                Some((target, own.timer, held))
            })
            .collect()
    }

    /// Puts a due suspicion back to wait until `until` (this member is isolated: its view of
    /// others is not to be trusted). When it fires again after the isolation ended, it starts
    /// over from [`Suspicions::resume`].
    pub fn hold(&mut self, target: Target, timer: T, until: Duration, expected: usize) {
        self.own.insert(
            target,
            Own {
                started: until,
                stretch: 1,
                expected,
                held_until: Some(until),
                timer,
            },
        );
    }

    /// A held suspicion whose member is still suspected once this member can reach others
    /// again: it gets a whole new timeout from `now`, so refutations it could not hear while
    /// isolated have time to arrive.
    pub fn resume(
        &mut self,
        target: Target,
        timer: T,
        now: Duration,
        stretch: u32,
        expected: usize,
    ) {
        self.own.insert(
            target,
            Own {
                started: now,
                stretch: stretch.max(1),
                expected,
                held_until: None,
                timer,
            },
        );
    }

    /// Forgets confirmations not heard of for `keep_for`.
    pub fn prune(&mut self, now: Duration, keep_for: Duration) {
        self.heard
            .retain(|target, heard| heard.last + keep_for > now || self.own.contains_key(target));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> SuspicionTimeouts {
        SuspicionTimeouts {
            min: Duration::from_millis(150),
            max: Duration::from_millis(900),
            expected_confirmations: 2,
        }
    }

    fn target(name: &str) -> Target {
        Target {
            name: name.into(),
            generation: 1,
            incarnation: 0,
        }
    }

    #[test]
    fn the_timeout_shrinks_from_max_to_min_with_confirmations() {
        let t = timeouts();
        assert_eq!(t.timeout(0, 2), Duration::from_millis(900));
        let one = t.timeout(1, 2);
        assert!(one < Duration::from_millis(900) && one > Duration::from_millis(150));
        assert_eq!(t.timeout(2, 2), Duration::from_millis(150));
        assert_eq!(t.timeout(7, 2), Duration::from_millis(150));
        // Nobody else could confirm: nothing to wait for.
        assert_eq!(t.timeout(0, 0), Duration::from_millis(150));
        assert_eq!(t.expected_in(3), 1);
        assert_eq!(t.expected_in(2), 0);
        assert_eq!(t.expected_in(100), 2);
    }

    #[test]
    fn confirmations_bring_a_raised_suspicion_forward() {
        let mut s = Suspicions::new(timeouts());
        let x = target("x");
        s.raise(x.clone(), Duration::ZERO, 1, 2, "timer-x");
        assert_eq!(s.next_deadline(), Some(Duration::from_millis(900)));
        assert!(s.take_due(Duration::from_millis(200)).is_empty());
        assert!(s.confirm(x.clone(), "b", Duration::from_millis(50)));
        assert!(
            !s.confirm(x.clone(), "b", Duration::from_millis(60)),
            "same confirmer"
        );
        assert!(s.confirm(x.clone(), "c", Duration::from_millis(60)));
        assert_eq!(s.next_deadline(), Some(Duration::from_millis(150)));
        assert_eq!(
            s.take_due(Duration::from_millis(200)),
            vec![(x, "timer-x", false)]
        );
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn confirmations_heard_first_count_when_the_suspicion_is_raised() {
        let mut s = Suspicions::new(timeouts());
        let x = target("x");
        s.confirm(x.clone(), "b", Duration::ZERO);
        s.confirm(x.clone(), "c", Duration::ZERO);
        s.raise(x.clone(), Duration::from_millis(100), 1, 2, ());
        assert_eq!(s.next_deadline(), Some(Duration::from_millis(250)));
        // Another incarnation is another suspicion.
        let refuted = Target {
            incarnation: 1,
            ..x
        };
        assert_eq!(s.confirmations(&refuted), 0);
    }

    #[test]
    fn local_health_stretches_and_holding_postpones() {
        let mut s = Suspicions::new(timeouts());
        let x = target("x");
        s.raise(x.clone(), Duration::ZERO, 3, 2, 1u8);
        assert_eq!(s.next_deadline(), Some(Duration::from_millis(2700)));
        let due = s.take_due(Duration::from_secs(3));
        assert_eq!(due.len(), 1);
        assert!(!due[0].2, "never held");
        s.hold(x.clone(), 1, Duration::from_secs(4), 2);
        assert!(s.take_due(Duration::from_millis(3900)).is_empty());
        let (target, timer, held) = s.take_due(Duration::from_secs(4)).remove(0);
        assert!(held);
        s.resume(target, timer, Duration::from_secs(4), 1, 2);
        assert_eq!(s.next_deadline(), Some(Duration::from_millis(4900)));
        assert!(!s.take_due(Duration::from_millis(4900)).remove(0).2);
    }

    #[test]
    fn old_confirmations_are_pruned_unless_a_suspicion_needs_them() {
        let mut s = Suspicions::new(timeouts());
        s.confirm(target("x"), "b", Duration::ZERO);
        s.confirm(target("y"), "b", Duration::ZERO);
        s.raise(target("y"), Duration::ZERO, 1, 2, ());
        s.prune(Duration::from_secs(60), Duration::from_secs(10));
        assert_eq!(s.confirmations(&target("x")), 0);
        assert_eq!(s.confirmations(&target("y")), 1);
    }
}
