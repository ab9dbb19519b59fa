//! Local health: how much this member should trust its own view of the others.
//!
//! A member whose probes keep failing is more likely to be the sick one (a NIC that stopped
//! receiving, a starved CPU, a full conntrack table) than to have found many dead peers. In the
//! spirit of Lifeguard's "local health awareness" (Dadgar et al., 2018) it keeps a small score:
//! every probe of its own that fails raises it, every probe answered lowers it, and every time it
//! has to refute a suspicion about itself raises it too. Its probe period, probe timeout and the
//! suspicion timeouts it starts are all stretched by `score + 1`, so a sick member probes less,
//! waits longer for answers, and its suspicions come too late to matter: by then the healthy
//! members have either confirmed them or seen them refuted.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalHealth {
    score: u8,
    max: u8,
}

impl LocalHealth {
    /// A healthy member whose score may rise to `max` (memberlist uses 8).
    pub fn new(max: u8) -> Self {
        Self { score: 0, max }
    }

    pub fn score(&self) -> u8 {
        self.score
    }

    pub fn probe_failed(&mut self) {
        self.raise();
    }

    pub fn probe_answered(&mut self) {
        self.score = self.score.saturating_sub(1);
    }

    /// Someone suspected this member although it was running: evidence that its answers do not
    /// get through in time.
    pub fn refuted_suspicion(&mut self) {
        self.raise();
    }

    /// `base` stretched by this member's ill health.
    pub fn scale(&self, base: Duration) -> Duration {
        base * (u32::from(self.score) + 1)
    }

    fn raise(&mut self) {
        self.score = self.score.saturating_add(1).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_stretch_timeouts_up_to_the_cap_and_answers_heal() {
        let mut health = LocalHealth::new(3);
        let base = Duration::from_millis(100);
        assert_eq!(health.scale(base), base);
        for _ in 0..10 {
            health.probe_failed();
        }
        assert_eq!(health.score(), 3);
        assert_eq!(health.scale(base), Duration::from_millis(400));
        health.probe_answered();
        health.probe_answered();
        assert_eq!(health.scale(base), Duration::from_millis(200));
        health.refuted_suspicion();
        assert_eq!(health.score(), 2);
        for _ in 0..5 {
            health.probe_answered();
        }
        assert_eq!(health.score(), 0);
    }
}
