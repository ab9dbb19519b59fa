//! Which VIPs this node announces, and when each is due for a gratuitous announcement.
//!
//! Pure state: the caller passes the current time in, so the schedule is tested without clocks.
//!
//! # The burst
//! On taking a VIP the speaker sends a round (IPv4: a gratuitous ARP request and a gratuitous ARP
//! reply; IPv6: an unsolicited Neighbor Advertisement with O=1) at these offsets:
//! 0, 200 ms, 1.1 s, 2.2 s and 4.4 s.
//! - The first round goes out at once: it is what moves clients.
//! - 200 ms repairs a single lost frame quickly, well before a client's neighbor entry would
//!   go stale.
//! - Linux ignores a non-gratuitous change of a neighbor entry within its lock time (1 s) of the
//!   previous change. Rounds at 1.1 s and later fall outside the lock time of any update the
//!   first rounds may have caused or raced with, so some rounds always count.
//! - 4.4 s covers a client or switch that was briefly unreachable.
//!
//! After the burst an optional refresh repeats a round every `refresh` (off by default), for
//! switches that age out MAC table entries of hosts that only answer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use swimlb_gossip::MembershipEvent;

/// A VIP's burst is restarted for a rejoin at most this often (the events of one heal arrive
/// within a few probe periods of each other).
pub const REANNOUNCE_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How long after the event the bursts restart: the membership changes of the same heal (the
/// returning member taking back its VIPs) reach the owned set first, so no round goes out for a
/// VIP that is about to be handed back.
pub const REANNOUNCE_DELAY: Duration = Duration::from_millis(100);

/// Whether `event`, seen by the node named `own_name`, calls for re-announcing every VIP the
/// node owns: its own identity was renewed (it was declared down and came back), or another
/// member that this node had seen down came back with a new generation (while cut off it may
/// have claimed VIPs). `seen_down` tells whether this node saw the rejoining member down; a
/// member restarted and replaced at once claims nothing during its start-up hold.
pub fn calls_for_reannouncement(event: &MembershipEvent, own_name: &str, seen_down: bool) -> bool {
    match event {
        MembershipEvent::Renewed(id) => id.name == own_name,
        MembershipEvent::Rejoined { new, .. } => new.name != own_name && seen_down,
        // Up, Suspect, Down, Connected, Isolated and any event added later.
        _ => false,
    }
}

/// When announcement rounds go out after a VIP is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurstSchedule {
    /// Offsets of the burst rounds from the moment of taking the VIP, ascending.
    pub offsets: Vec<Duration>,
    /// Period of the slow refresh after the burst; `None` turns it off.
    pub refresh: Option<Duration>,
}

impl BurstSchedule {
    pub const DEFAULT_OFFSETS_MS: [u64; 5] = [0, 200, 1100, 2200, 4400];

    /// Builds a schedule, sorting the offsets so any order in the configuration works.
    pub fn new(mut offsets: Vec<Duration>, refresh: Option<Duration>) -> Self {
        offsets.sort();
        offsets.dedup();
        let refresh = refresh.filter(|period| !period.is_zero());
        Self { offsets, refresh }
    }

    /// The due time of round `round` (0-based) of a burst started at `start`, `None` when the
    /// burst is over and there is no refresh.
    fn due(&self, start: Instant, round: usize) -> Option<Instant> {
        if let Some(offset) = self.offsets.get(round) {
            return start.checked_add(*offset);
        }
        let refresh = self.refresh?;
        let last = self.offsets.last().copied().unwrap_or_default();
        let extra = u32::try_from(round - self.offsets.len() + 1).ok()?;
        start.checked_add(last.checked_add(refresh.checked_mul(extra)?)?)
    }
}

impl Default for BurstSchedule {
    fn default() -> Self {
        Self::new(
            Self::DEFAULT_OFFSETS_MS
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            None,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Announced {
    taken: Instant,
    /// When the current burst started: `taken`, or the last restart.
    burst_start: Instant,
    /// Rounds of the current burst already sent.
    rounds: usize,
    next_due: Option<Instant>,
}

/// What changed when the owned set was replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnershipChange {
    pub gained: Vec<IpAddr>,
    pub lost: Vec<IpAddr>,
}

impl OwnershipChange {
    pub fn is_empty(&self) -> bool {
        self.gained.is_empty() && self.lost.is_empty()
    }
}

/// The VIPs this node owns and their announcement schedule.
#[derive(Debug, Clone)]
pub struct Announcements {
    schedule: BurstSchedule,
    vips: BTreeMap<IpAddr, Announced>,
}

impl Announcements {
    pub fn new(schedule: BurstSchedule) -> Self {
        Self {
            schedule,
            vips: BTreeMap::new(),
        }
    }

    /// Replaces the schedule. VIPs already owned keep their progress: a shorter burst simply
    /// ends earlier, a new refresh period applies from the next round on.
    pub fn set_schedule(&mut self, schedule: BurstSchedule) {
        self.schedule = schedule;
        for state in self.vips.values_mut() {
            state.next_due = self.schedule.due(state.burst_start, state.rounds);
        }
    }

    /// Makes `owned` the owned set at `now`. Newly owned VIPs are due at once.
    pub fn set_owned(&mut self, now: Instant, owned: &BTreeSet<IpAddr>) -> OwnershipChange {
        let lost: Vec<IpAddr> = self
            .vips
            .keys()
            .filter(|vip| !owned.contains(vip))
            .copied()
            .collect();
        for vip in &lost {
            self.vips.remove(vip);
        }
        let mut gained = Vec::new();
        for vip in owned {
            if !self.vips.contains_key(vip) {
                let next_due = self.schedule.due(now, 0);
                self.vips.insert(
                    *vip,
                    Announced {
                        taken: now,
                        burst_start: now,
                        rounds: 0,
                        next_due,
                    },
                );
                gained.push(*vip);
            }
        }
        OwnershipChange { gained, lost }
    }

    /// The VIPs due for a round at `now`, in address order; each is advanced to its next round.
    /// A round that is overdue by more than one period is sent once, not repeated to catch up.
    pub fn take_due(&mut self, now: Instant) -> Vec<IpAddr> {
        let mut due = Vec::new();
        for (vip, state) in &mut self.vips {
            let Some(at) = state.next_due else { continue };
            if at > now {
                continue;
            }
            due.push(*vip);
            state.rounds += 1;
            // Skip rounds that are already in the past: a stalled process sends one round,
            // not a flood.
            loop {
                state.next_due = self.schedule.due(state.burst_start, state.rounds);
                match state.next_due {
                    Some(next) if next <= now => state.rounds += 1,
                    _ => break,
                }
            }
        }
        due
    }

    /// Restarts the burst of every owned VIP whose burst started at least `min_interval`
    /// before `now`; returns those VIPs, whose first round is due at once.
    pub fn restart_bursts(&mut self, now: Instant, min_interval: Duration) -> Vec<IpAddr> {
        let owned: Vec<IpAddr> = self.vips.keys().copied().collect();
        owned
            .into_iter()
            .filter(|vip| self.restart_burst(now, *vip, min_interval))
            .collect()
    }

    /// Restarts the burst of `vip` if it is owned and its burst started at least `min_interval`
    /// before `now`; true when restarted (its first round is then due at once).
    pub fn restart_burst(&mut self, now: Instant, vip: IpAddr, min_interval: Duration) -> bool {
        let Some(state) = self.vips.get_mut(&vip) else {
            return false;
        };
        if now.saturating_duration_since(state.burst_start) < min_interval {
            return false;
        }
        state.burst_start = now;
        state.rounds = 0;
        state.next_due = self.schedule.due(now, 0);
        true
    }

    /// The earliest time any VIP is due, for the caller's timer.
    pub fn next_due(&self) -> Option<Instant> {
        self.vips.values().filter_map(|s| s.next_due).min()
    }

    pub fn owns(&self, vip: IpAddr) -> bool {
        self.vips.contains_key(&vip)
    }

    pub fn owned(&self) -> BTreeSet<IpAddr> {
        self.vips.keys().copied().collect()
    }

    /// When this node took `vip`, if it owns it.
    pub fn taken_at(&self, vip: IpAddr) -> Option<Instant> {
        self.vips.get(&vip).map(|s| s.taken)
    }

    pub fn len(&self) -> usize {
        self.vips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vips.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ms, vip};
    use std::net::Ipv6Addr;

    fn set(vips: &[IpAddr]) -> BTreeSet<IpAddr> {
        vips.iter().copied().collect()
    }

    /// Steps a virtual clock in 10 ms ticks and records the offset of every round of `target`.
    fn rounds_of(a: &mut Announcements, start: Instant, target: IpAddr, until: u64) -> Vec<u64> {
        let mut seen = Vec::new();
        for tick in 0..=until / 10 {
            let now = start + ms(tick * 10);
            if a.take_due(now).contains(&target) {
                seen.push(tick * 10);
            }
        }
        seen
    }

    #[test]
    fn default_burst_goes_out_at_documented_offsets() {
        let start = Instant::now();
        let mut a = Announcements::new(BurstSchedule::default());
        let change = a.set_owned(start, &set(&[vip(200)]));
        assert_eq!(change.gained, vec![vip(200)]);
        assert_eq!(a.next_due(), Some(start));
        assert_eq!(
            rounds_of(&mut a, start, vip(200), 20_000),
            vec![0, 200, 1100, 2200, 4400]
        );
        assert_eq!(a.next_due(), None, "no refresh by default");
    }

    #[test]
    fn rounds_after_the_first_escape_linux_lock_time() {
        let offsets = BurstSchedule::default().offsets;
        assert_eq!(offsets[0], Duration::ZERO, "first round at once");
        let late = offsets
            .iter()
            .filter(|o| **o > Duration::from_secs(1))
            .count();
        assert!(late >= 2, "at least two rounds beyond a 1 s lock time");
    }

    #[test]
    fn refresh_follows_the_burst() {
        let start = Instant::now();
        let schedule = BurstSchedule::new(vec![ms(0), ms(500)], Some(ms(3000)));
        let mut a = Announcements::new(schedule);
        a.set_owned(start, &set(&[vip(1)]));
        assert_eq!(
            rounds_of(&mut a, start, vip(1), 10_000),
            vec![0, 500, 3500, 6500, 9500]
        );
    }

    #[test]
    fn zero_refresh_means_off_and_offsets_are_sorted() {
        let schedule = BurstSchedule::new(vec![ms(300), ms(0), ms(300)], Some(Duration::ZERO));
        assert_eq!(schedule.offsets, vec![ms(0), ms(300)]);
        assert_eq!(schedule.refresh, None);
    }

    #[test]
    fn losing_a_vip_stops_its_rounds_at_once() {
        let start = Instant::now();
        let mut a = Announcements::new(BurstSchedule::default());
        a.set_owned(start, &set(&[vip(1), vip(2)]));
        assert_eq!(a.take_due(start), vec![vip(1), vip(2)]);
        let change = a.set_owned(start + ms(50), &set(&[vip(2)]));
        assert_eq!(change.lost, vec![vip(1)]);
        assert!(change.gained.is_empty());
        assert!(!a.owns(vip(1)));
        assert_eq!(a.take_due(start + ms(250)), vec![vip(2)]);
    }

    #[test]
    fn regaining_restarts_the_burst() {
        let start = Instant::now();
        let mut a = Announcements::new(BurstSchedule::default());
        a.set_owned(start, &set(&[vip(1)]));
        a.take_due(start);
        a.set_owned(start + ms(100), &BTreeSet::new());
        let change = a.set_owned(start + ms(150), &set(&[vip(1)]));
        assert_eq!(change.gained, vec![vip(1)]);
        assert_eq!(a.taken_at(vip(1)), Some(start + ms(150)));
        assert_eq!(a.next_due(), Some(start + ms(150)));
    }

    #[test]
    fn keeping_a_vip_does_not_restart_its_burst() {
        let start = Instant::now();
        let mut a = Announcements::new(BurstSchedule::default());
        a.set_owned(start, &set(&[vip(1)]));
        a.take_due(start);
        let change = a.set_owned(start + ms(100), &set(&[vip(1), vip(2)]));
        assert_eq!(change.gained, vec![vip(2)]);
        assert_eq!(a.take_due(start + ms(100)), vec![vip(2)]);
        assert_eq!(a.taken_at(vip(1)), Some(start));
    }

    #[test]
    fn a_stall_sends_one_round_not_a_flood() {
        let start = Instant::now();
        let mut a = Announcements::new(BurstSchedule::default());
        a.set_owned(start, &set(&[vip(1)]));
        a.take_due(start);
        // The process wakes up 3 s late: rounds at 200 ms, 1.1 s and 2.2 s collapse into one.
        assert_eq!(a.take_due(start + ms(3000)), vec![vip(1)]);
        assert_eq!(a.take_due(start + ms(3000)), Vec::<IpAddr>::new());
        assert_eq!(a.next_due(), Some(start + ms(4400)));
    }

    #[test]
    fn ipv6_vips_are_scheduled_the_same_way() {
        let start = Instant::now();
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xc8));
        let mut a = Announcements::new(BurstSchedule::default());
        a.set_owned(start, &set(&[v6, vip(1)]));
        assert_eq!(a.take_due(start), vec![vip(1), v6]);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn a_restarted_burst_repeats_every_round_and_keeps_the_holding_time() {
        let start = Instant::now();
        let mut a = Announcements::new(BurstSchedule::default());
        a.set_owned(start, &set(&[vip(1)]));
        assert_eq!(
            rounds_of(&mut a, start, vip(1), 10_000),
            vec![0, 200, 1100, 2200, 4400]
        );
        assert_eq!(a.next_due(), None);
        let heal = start + ms(20_000);
        assert_eq!(
            a.restart_bursts(heal, REANNOUNCE_MIN_INTERVAL),
            vec![vip(1)]
        );
        assert_eq!(
            rounds_of(&mut a, heal, vip(1), 10_000),
            vec![0, 200, 1100, 2200, 4400]
        );
        assert_eq!(
            a.taken_at(vip(1)),
            Some(start),
            "still held since it was taken"
        );
    }

    #[test]
    fn the_events_of_one_heal_restart_a_burst_once() {
        let start = Instant::now();
        let mut a = Announcements::new(BurstSchedule::default());
        a.set_owned(start, &set(&[vip(1), vip(2)]));
        a.take_due(start);
        let heal = start + ms(30_000);
        assert_eq!(a.restart_bursts(heal, REANNOUNCE_MIN_INTERVAL).len(), 2);
        assert_eq!(a.take_due(heal), vec![vip(1), vip(2)]);
        // Further rejoins within the interval leave the burst running.
        assert!(
            a.restart_bursts(heal + ms(300), REANNOUNCE_MIN_INTERVAL)
                .is_empty()
        );
        assert_eq!(
            a.take_due(heal + ms(300)),
            vec![vip(1), vip(2)],
            "the 200 ms round"
        );
        assert_eq!(a.next_due(), Some(heal + ms(1100)));
        // A VIP gained just now is inside its own burst and is not restarted either.
        a.set_owned(heal + ms(1500), &set(&[vip(1), vip(2), vip(3)]));
        assert_eq!(
            a.restart_bursts(heal + ms(1600), REANNOUNCE_MIN_INTERVAL),
            vec![vip(1), vip(2)]
        );
    }

    #[test]
    fn renewal_of_this_node_and_rejoins_of_others_call_for_reannouncement() {
        use swimlb_gossip::NodeId;
        let addr = "192.0.2.1:7946".parse().expect("literal");
        let me = NodeId::new("n1", addr, 2);
        let other_old = NodeId::new("n2", addr, 1);
        let other_new = NodeId::new("n2", addr, 5);
        let rejoined = MembershipEvent::Rejoined {
            old: other_old.clone(),
            new: other_new.clone(),
        };
        assert!(calls_for_reannouncement(
            &MembershipEvent::Renewed(me.clone()),
            "n1",
            false
        ));
        assert!(calls_for_reannouncement(&rejoined, "n1", true));
        // A member replaced at once by its restarted self was never down here.
        assert!(!calls_for_reannouncement(&rejoined, "n1", false));
        // Another member's renewal is its own to act on; our own old identity being replaced
        // is the renewal already handled.
        assert!(!calls_for_reannouncement(
            &MembershipEvent::Renewed(other_new.clone()),
            "n1",
            true
        ));
        assert!(!calls_for_reannouncement(
            &MembershipEvent::Rejoined {
                old: NodeId::new("n1", addr, 1),
                new: me.clone()
            },
            "n1",
            true
        ));
        for event in [
            MembershipEvent::Up(other_new.clone()),
            MembershipEvent::Suspect(other_new.clone()),
            MembershipEvent::Down(other_old),
            MembershipEvent::Connected,
            MembershipEvent::Isolated,
        ] {
            assert!(!calls_for_reannouncement(&event, "n1", true), "{event:?}");
        }
    }

    #[test]
    fn shortening_the_schedule_keeps_progress() {
        let start = Instant::now();
        let mut a = Announcements::new(BurstSchedule::default());
        a.set_owned(start, &set(&[vip(1)]));
        a.take_due(start);
        a.set_schedule(BurstSchedule::new(vec![ms(0)], None));
        assert_eq!(a.next_due(), None);
        a.set_schedule(BurstSchedule::new(vec![ms(0)], Some(ms(1000))));
        assert_eq!(a.next_due(), Some(start + ms(1000)));
    }
}
