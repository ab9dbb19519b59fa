//! Freshness of sealed datagrams: a sender counter and a coarse timestamp inside every envelope.
//!
//! ```text
//! offset  size  field (inside the ciphertext, little endian)
//! 0       1     frame kind
//! 1       8     sender: digest of its node name
//! 9       8     sender generation
//! 17      8     sender counter (one more for every datagram it seals)
//! 25      4     sender clock, whole seconds
//! 29      n     frame body
//! ```
//!
//! A receiver accepts a datagram only if its timestamp is within `max_age` of its own clock and
//! its counter was not seen before from that (sender, generation): a [`ReplayWindow`] keeps the
//! highest counter and a 64-wide bitmap below it, so datagrams reordered by the network still
//! pass. A window is kept for `max_age` after its last datagram; any replay of a datagram older
//! than that fails the timestamp check, so a forgotten window admits nothing old.
//!
//! Clocks of members must agree within `max_age` (NTP is ample); a member whose clock is further
//! off has its datagrams dropped as stale, counted by reason.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::envelope::DropReason;

pub const HEADER_LEN: usize = 1 + 8 + 8 + 8 + 4;
const WINDOW_BITS: u64 = 64;

/// Who sealed a datagram, its place in the sender's sequence, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireHeader {
    pub kind: u8,
    pub sender: u64,
    pub generation: u64,
    pub counter: u64,
    pub sent_secs: u32,
}

impl WireHeader {
    pub fn encode(&self, body: &[u8]) -> Vec<u8> {
        let mut payload = Vec::with_capacity(HEADER_LEN + body.len());
        payload.push(self.kind);
        payload.extend_from_slice(&self.sender.to_le_bytes());
        payload.extend_from_slice(&self.generation.to_le_bytes());
        payload.extend_from_slice(&self.counter.to_le_bytes());
        payload.extend_from_slice(&self.sent_secs.to_le_bytes());
        payload.extend_from_slice(body);
        payload
    }

    /// Splits a payload into its header and body.
    pub fn decode(payload: &[u8]) -> Result<(WireHeader, &[u8]), DropReason> {
        if payload.len() < HEADER_LEN {
            return Err(DropReason::Malformed);
        }
        let (header, body) = payload.split_at(HEADER_LEN);
        let u64_at = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        let mut secs = [0u8; 4];
        secs.copy_from_slice(&header[25..29]);
        Ok((
            WireHeader {
                kind: header[0],
                sender: u64_at(1),
                generation: u64_at(9),
                counter: u64_at(17),
                sent_secs: u32::from_le_bytes(secs),
            },
            body,
        ))
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    highest: u64,
    /// Bit i set: counter `highest - i` was seen.
    seen: u64,
    last: Duration,
}

/// Per-sender record of the counters already accepted.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    max_age: Duration,
    windows: BTreeMap<(u64, u64), Window>,
    checks_since_prune: u32,
}

impl ReplayWindow {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            windows: BTreeMap::new(),
            checks_since_prune: 0,
        }
    }

    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Senders currently remembered.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Accepts `header` at local clock `clock` (seconds as the sender counts them) and core time
    /// `now`, or says why not. An accepted counter is never accepted again.
    pub fn check(
        &mut self,
        header: &WireHeader,
        clock: Duration,
        now: Duration,
    ) -> Result<(), DropReason> {
        let sent = Duration::from_secs(u64::from(header.sent_secs));
        let skew = sent.abs_diff(clock);
        // Whole seconds on the wire: allow the second being rounded away.
        if skew > self.max_age + Duration::from_secs(1) {
            return Err(DropReason::Stale);
        }
        self.checks_since_prune += 1;
        if self.checks_since_prune >= 1024 {
            self.prune(now);
        }
        let key = (header.sender, header.generation);
        let counter = header.counter;
        match self.windows.get_mut(&key) {
            None => {
                self.windows.insert(
                    key,
                    Window {
                        highest: counter,
                        seen: 1,
                        last: now,
                    },
                );
                Ok(())
            }
            Some(window) => {
                if counter > window.highest {
                    let shift = counter - window.highest;
                    window.seen = if shift >= WINDOW_BITS {
                        1
                    } else {
                        (window.seen << shift) | 1
                    };
                    window.highest = counter;
                } else {
                    let back = window.highest - counter;
                    if back >= WINDOW_BITS || window.seen & (1 << back) != 0 {
                        return Err(DropReason::Replayed);
                    }
                    window.seen |= 1 << back;
                }
                window.last = now;
                Ok(())
            }
        }
    }

    /// Forgets senders not heard from for `max_age`.
    pub fn prune(&mut self, now: Duration) {
        self.checks_since_prune = 0;
        let max_age = self.max_age + Duration::from_secs(2);
        self.windows.retain(|_, w| w.last + max_age > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(counter: u64, sent_secs: u32) -> WireHeader {
        WireHeader {
            kind: 0,
            sender: 42,
            generation: 7,
            counter,
            sent_secs,
        }
    }

    const MAX_AGE: Duration = Duration::from_secs(120);

    #[test]
    fn header_round_trips_and_short_payloads_are_malformed() {
        let h = WireHeader {
            kind: 2,
            sender: u64::MAX - 1,
            generation: 1 << 40,
            counter: 99,
            sent_secs: 1_700_000_000,
        };
        let payload = h.encode(b"body");
        assert_eq!(payload.len(), HEADER_LEN + 4);
        assert_eq!(WireHeader::decode(&payload), Ok((h, &b"body"[..])));
        assert_eq!(
            WireHeader::decode(&payload[..HEADER_LEN - 1]),
            Err(DropReason::Malformed)
        );
    }

    #[test]
    fn each_counter_is_accepted_once_even_out_of_order() {
        let mut w = ReplayWindow::new(MAX_AGE);
        let clock = Duration::from_secs(1000);
        for counter in [5, 3, 4, 10, 6] {
            assert_eq!(w.check(&header(counter, 1000), clock, clock), Ok(()));
        }
        for counter in [5, 3, 4, 10, 6] {
            assert_eq!(
                w.check(&header(counter, 1000), clock, clock),
                Err(DropReason::Replayed)
            );
        }
        assert_eq!(w.check(&header(200, 1000), clock, clock), Ok(()));
        assert_eq!(
            w.check(&header(100, 1000), clock, clock),
            Err(DropReason::Replayed),
            "older than the window"
        );
        // Another generation of the same sender has its own window.
        let mut other = header(5, 1000);
        other.generation = 8;
        assert_eq!(w.check(&other, clock, clock), Ok(()));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let mut w = ReplayWindow::new(MAX_AGE);
        let clock = Duration::from_secs(10_000);
        assert_eq!(
            w.check(&header(1, 10_000 - 3601), clock, clock),
            Err(DropReason::Stale)
        );
        assert_eq!(
            w.check(&header(1, 10_000 + 500), clock, clock),
            Err(DropReason::Stale)
        );
        assert_eq!(w.check(&header(1, 10_000 - 100), clock, clock), Ok(()));
    }

    #[test]
    fn a_forgotten_window_admits_nothing_old() {
        let mut w = ReplayWindow::new(MAX_AGE);
        let start = Duration::from_secs(1000);
        assert_eq!(w.check(&header(1, 1000), start, start), Ok(()));
        let later = start + Duration::from_secs(400);
        w.prune(later);
        assert!(w.is_empty());
        assert_eq!(
            w.check(&header(1, 1000), later, later),
            Err(DropReason::Stale)
        );
    }

    proptest! {
        #[test]
        fn no_counter_passes_twice(counters in proptest::collection::vec(0u64..300, 1..200)) {
            let mut w = ReplayWindow::new(MAX_AGE);
            let clock = Duration::from_secs(50);
            let mut accepted = std::collections::BTreeSet::new();
            for c in counters {
                if w.check(&header(c, 50), clock, clock).is_ok() {
                    prop_assert!(accepted.insert(c), "counter {} accepted twice", c);
                }
            }
        }
    }
}
