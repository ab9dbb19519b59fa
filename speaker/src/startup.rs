//! The start-up hold: when a starting speaker may begin to announce.
//!
//! A speaker that has just started knows no other member yet and would compute itself the
//! owner of every VIP, pulling every client towards it for a moment. It therefore announces
//! nothing until it has met another member and [`SETTLE`] has passed (time to receive the
//! member list), or [`JOIN_TIMEOUT`] has passed (it may be alone), or it has no peers to join.
//! Pure state; the caller passes the time in.

use std::time::{Duration, Instant};

/// After meeting the first other member, how long to wait for the member list.
pub const SETTLE: Duration = Duration::from_millis(300);
/// How long a starting speaker waits to meet another member before it assumes it is alone.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupHold {
    /// `None` once the hold is over.
    until: Option<Instant>,
}

impl StartupHold {
    pub fn new(started: Instant, has_peers: bool) -> Self {
        Self {
            until: has_peers.then(|| started + JOIN_TIMEOUT),
        }
    }

    /// Notes the number of live members (this node included) seen at `now`.
    pub fn members_seen(&mut self, now: Instant, live: usize) {
        if live > 1
            && let Some(until) = self.until
        {
            self.until = Some(until.min(now + SETTLE));
        }
    }

    /// When the hold ends, while it lasts.
    pub fn deadline(&self) -> Option<Instant> {
        self.until
    }

    pub fn holding(&self) -> bool {
        self.until.is_some()
    }

    /// Ends the hold if its time has come; true exactly once, when it ends.
    pub fn expire(&mut self, now: Instant) -> bool {
        match self.until {
            Some(until) if until <= now => {
                self.until = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn no_peers_means_no_hold() {
        let hold = StartupHold::new(Instant::now(), false);
        assert!(!hold.holding());
        assert_eq!(hold.deadline(), None);
    }

    #[test]
    fn meeting_a_member_shortens_the_hold_to_the_settle_time() {
        let start = Instant::now();
        let mut hold = StartupHold::new(start, true);
        assert_eq!(hold.deadline(), Some(start + JOIN_TIMEOUT));
        hold.members_seen(start + ms(10), 1);
        assert_eq!(
            hold.deadline(),
            Some(start + JOIN_TIMEOUT),
            "alone: keep waiting"
        );
        hold.members_seen(start + ms(20), 2);
        assert_eq!(hold.deadline(), Some(start + ms(20) + SETTLE));
        // More members arriving later do not push the end back.
        hold.members_seen(start + ms(200), 5);
        assert_eq!(hold.deadline(), Some(start + ms(20) + SETTLE));
        assert!(!hold.expire(start + ms(319)));
        assert!(hold.expire(start + ms(320)));
        assert!(!hold.holding());
        assert!(!hold.expire(start + ms(400)), "ends only once");
    }

    #[test]
    fn nobody_answering_ends_the_hold_after_the_join_timeout() {
        let start = Instant::now();
        let mut hold = StartupHold::new(start, true);
        assert!(!hold.expire(start + JOIN_TIMEOUT - ms(1)));
        assert!(hold.expire(start + JOIN_TIMEOUT));
    }
}
