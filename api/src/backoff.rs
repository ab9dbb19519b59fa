//! The delay between a failed watch and its retry, for both binaries.
//!
//! kube-runtime's default doubles from 800 ms up to 30 s and may add as much again in jitter, so
//! after a minute without an API server a watch could wait most of a minute more before it tried
//! again, and once more after the restarted server answered "too old" and the watch had to list
//! afresh. Nothing announced depends on the watches, but a Service created meanwhile waited for
//! them. This policy doubles from 500 ms and stops at 5 s, so a returning API server is seen
//! within seconds; the jitter only ever shortens a delay, never past half, so the speakers of a
//! cluster spread their retries without any of them waiting longer than the cap.

use std::time::Duration;

use kube::runtime::utils::Backoff;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// The delay before the first retry, before jitter.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest delay between two retries.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Exponential delays from [`FIRST_DELAY`] to [`MAX_DELAY`], each scaled by a random factor in
/// [½, 1]; never gives up. Reset (by kube-runtime's `StreamBackoff`) on every event a watch yields.
#[derive(Debug, Clone)]
pub struct ReconnectBackoff {
    /// Retries since the last reset.
    failures: u32,
    jitter: Xoshiro256PlusPlus,
}

impl ReconnectBackoff {
    /// A backoff whose jitter is drawn from `seed`: fixed in tests.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            failures: 0,
            jitter: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// A backoff seeded from the operating system, so that processes started together do not
    /// retry in step.
    pub fn from_entropy() -> Self {
        Self {
            failures: 0,
            jitter: rand::make_rng::<Xoshiro256PlusPlus>(),
        }
    }

    /// The delay before jitter after `failures` earlier retries.
    fn ceiling(failures: u32) -> Duration {
        // 2^4 × 500 ms already passes the cap; the shift stays small whatever the count.
        FIRST_DELAY
            .saturating_mul(1 << failures.min(4))
            .min(MAX_DELAY)
    }
}

impl Iterator for ReconnectBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let ceiling = Self::ceiling(self.failures);
        self.failures = self.failures.saturating_add(1);
        Some(ceiling.mul_f64(self.jitter.random_range(0.5..=1.0)))
    }
}

impl Backoff for ReconnectBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(backoff: &mut ReconnectBackoff, count: usize) -> Vec<Duration> {
        backoff.by_ref().take(count).collect()
    }

    #[test]
    fn delays_double_from_the_first_and_stop_at_the_cap() {
        let mut backoff = ReconnectBackoff::with_seed(1);
        let ceilings = [500, 1_000, 2_000, 4_000, 5_000, 5_000, 5_000];
        for (delay, ceiling) in delays(&mut backoff, ceilings.len())
            .into_iter()
            .zip(ceilings)
        {
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{delay:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
    }

    #[test]
    fn no_delay_ever_passes_the_cap_however_long_the_outage() {
        let mut backoff = ReconnectBackoff::with_seed(7);
        let all = delays(&mut backoff, 10_000);
        assert!(all.iter().all(|delay| *delay <= MAX_DELAY));
        assert!(all[5..].iter().all(|delay| *delay >= MAX_DELAY / 2));
    }

    #[test]
    fn a_minute_without_the_api_server_is_retried_often() {
        // The outage the cluster test stages: a minute of refused connections. Every retry
        // comes within the cap, so a watch is at most 5 s from seeing the server back.
        let mut backoff = ReconnectBackoff::with_seed(3);
        let mut waited = Duration::ZERO;
        let mut retries = 0;
        while waited < Duration::from_secs(60) {
            waited += backoff.next().unwrap_or(MAX_DELAY);
            retries += 1;
        }
        assert!(retries >= 12, "only {retries} retries in a minute");
    }

    #[test]
    fn reset_starts_again_from_the_first_delay() {
        let mut backoff = ReconnectBackoff::with_seed(5);
        delays(&mut backoff, 8);
        backoff.reset();
        let first = backoff.next().unwrap_or(MAX_DELAY);
        assert!(first <= FIRST_DELAY, "{first:?} after a reset");
    }

    #[test]
    fn the_jitter_spreads_backoffs_with_different_seeds() {
        let mut first = ReconnectBackoff::with_seed(11);
        let mut second = ReconnectBackoff::with_seed(12);
        assert_ne!(delays(&mut first, 6), delays(&mut second, 6));
        let mut again = ReconnectBackoff::with_seed(11);
        let mut first = ReconnectBackoff::with_seed(11);
        assert_eq!(delays(&mut first, 6), delays(&mut again, 6));
    }
}
