//! The membership core over a tiny deterministic in-memory network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use swimlb_gossip::{DropReason, KeyRing, Membership, MembershipEvent, NodeId, Preset, Seeds};

const KEY: [u8; 32] = [0x5a; 32];
const LATENCY: Duration = Duration::from_micros(300);

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10 + i as u8], 7946))
}

struct Net {
    nodes: BTreeMap<SocketAddr, Membership>,
    crashed: BTreeSet<SocketAddr>,
    /// Nodes that drop every datagram sent to them (the process keeps running).
    deaf: BTreeSet<SocketAddr>,
    /// Nodes whose datagrams never leave.
    mute: BTreeSet<SocketAddr>,
    /// Stalled nodes: until when, and what arrived meanwhile.
    paused: BTreeMap<SocketAddr, (Duration, Vec<Vec<u8>>)>,
    in_flight: BTreeMap<(Duration, u64), (SocketAddr, Vec<u8>)>,
    seq: u64,
    now: Duration,
    log: Vec<String>,
    captured: Vec<(SocketAddr, Vec<u8>)>,
    seed: u64,
}

impl Net {
    fn new(seed: u64) -> Self {
        Self {
            nodes: BTreeMap::new(),
            crashed: BTreeSet::new(),
            deaf: BTreeSet::new(),
            mute: BTreeSet::new(),
            paused: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            now: Duration::ZERO,
            log: Vec::new(),
            captured: Vec::new(),
            seed,
        }
    }

    fn start(&mut self, i: usize, generation: u64, keyring: KeyRing, peers: &[SocketAddr]) {
        let id = NodeId::new(format!("node-{i}"), addr(i), generation);
        let seeds = Seeds::from_u64(self.seed ^ ((i as u64) << 32) ^ generation);
        let mut member = Membership::new(id, Preset::Fast.timing(), keyring, seeds);
        member.join(self.now, peers);
        self.crashed.remove(&addr(i));
        self.nodes.insert(addr(i), member);
        self.collect(addr(i));
    }

    fn cluster(seed: u64, size: usize) -> Self {
        let mut net = Net::new(seed);
        for i in 0..size {
            net.start(i, 1, KeyRing::new(1, KEY), &[addr(0)]);
        }
        net
    }

    fn crash(&mut self, i: usize) {
        self.crashed.insert(addr(i));
    }

    fn member(&self, i: usize) -> &Membership {
        &self.nodes[&addr(i)]
    }

    fn collect(&mut self, at: SocketAddr) {
        let Some(member) = self.nodes.get_mut(&at) else {
            return;
        };
        let name = member.identity().name.clone();
        let mute = self.mute.contains(&at);
        while let Some(datagram) = member.poll_datagram() {
            if mute {
                continue;
            }
            self.seq += 1;
            self.captured.push((datagram.to, datagram.bytes.clone()));
            self.in_flight.insert(
                (self.now + LATENCY, self.seq),
                (datagram.to, datagram.bytes),
            );
        }
        while let Some(event) = member.poll_event() {
            let mut line = format!("{:?} {name} {event:?}", self.now);
            if event == MembershipEvent::Connected {
                line.push_str(&format!(" knowing {}", member.live_names().len()));
            }
            self.log.push(line);
        }
    }

    /// The next timer or end of a stall; a stalled node's timers wait for its resumption.
    fn next_timer(&self) -> Option<(Duration, SocketAddr)> {
        self.nodes
            .iter()
            .filter(|(a, _)| !self.crashed.contains(a))
            .filter_map(|(a, m)| match self.paused.get(a) {
                Some((until, _)) => Some((*until, *a)),
                None => m.next_deadline().map(|d| (d, *a)),
            })
            .min()
    }

    fn pause(&mut self, i: usize, length: Duration) {
        self.paused.insert(addr(i), (self.now + length, Vec::new()));
    }

    /// A stalled node resumes: what queued in its socket is read before its due timers, as
    /// the driver does.
    fn resume(&mut self, at: SocketAddr) {
        let Some((_, queued)) = self.paused.remove(&at) else {
            return;
        };
        if let Some(member) = self.nodes.get_mut(&at) {
            for bytes in queued {
                let _ = member.handle_datagram(self.now, &bytes);
            }
            member.advance(self.now);
        }
        self.collect(at);
    }

    fn run_until(&mut self, end: Duration) {
        loop {
            let delivery = self.in_flight.keys().next().map(|(t, _)| *t);
            let timer = self.next_timer();
            let next = match (delivery, timer) {
                (Some(d), Some((t, _))) => d.min(t),
                (Some(d), None) => d,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = next;
            if delivery == Some(next) {
                let (_, (to, bytes)) = self.in_flight.pop_first().expect("peeked");
                if let Some((_, queue)) = self.paused.get_mut(&to) {
                    queue.push(bytes);
                } else if !self.crashed.contains(&to)
                    && !self.deaf.contains(&to)
                    && let Some(member) = self.nodes.get_mut(&to)
                {
                    let _ = member.handle_datagram(self.now, &bytes);
                    self.collect(to);
                }
            } else if let Some((_, at)) = timer {
                if self.paused.contains_key(&at) {
                    self.resume(at);
                    continue;
                }
                if let Some(member) = self.nodes.get_mut(&at) {
                    member.advance(next);
                }
                self.collect(at);
            }
        }
        self.now = end;
    }

    fn live_everywhere(&self, expected: &BTreeSet<String>) -> bool {
        self.nodes
            .iter()
            .filter(|(a, _)| !self.crashed.contains(a))
            .all(|(_, m)| &m.live_names() == expected)
    }

    fn names(range: impl IntoIterator<Item = usize>) -> BTreeSet<String> {
        range.into_iter().map(|i| format!("node-{i}")).collect()
    }

    /// Runs in 10 ms steps until `done` holds, returning when (virtual time), or None.
    fn run_until_true(&mut self, limit: Duration, done: impl Fn(&Net) -> bool) -> Option<Duration> {
        let start = self.now;
        while self.now - start <= limit {
            if done(self) {
                return Some(self.now - start);
            }
            let step = self.now + Duration::from_millis(10);
            self.run_until(step);
        }
        None
    }
}

#[test]
fn five_members_converge() {
    let mut net = Net::cluster(1, 5);
    let took = net.run_until_true(Duration::from_secs(5), |n| {
        n.live_everywhere(&Net::names(0..5))
    });
    assert!(took.is_some(), "no convergence: {:#?}", net.log);
}

#[test]
fn a_crashed_member_is_reported_down_by_every_other() {
    let mut net = Net::cluster(2, 5);
    net.run_until(Duration::from_secs(3));
    assert!(net.live_everywhere(&Net::names(0..5)));
    net.crash(3);
    let bound = Preset::Fast.timing().detection_bound(5) + Duration::from_millis(500);
    let took = net.run_until_true(Duration::from_secs(10), |n| {
        n.live_everywhere(&Net::names([0, 1, 2, 4]))
    });
    let took = took.expect("crash never detected everywhere");
    assert!(
        took <= bound,
        "detected everywhere after {took:?}, bound {bound:?}"
    );
    for i in [0, 1, 2, 4] {
        let name = net.member(i).identity().name.clone();
        assert!(
            net.log
                .iter()
                .any(|l| l.contains(&format!(" {name} Down(node-3@"))),
            "{name} never reported node-3 down"
        );
    }
}

#[test]
fn a_restarted_member_with_a_new_generation_replaces_its_old_self_at_once() {
    let mut net = Net::cluster(3, 5);
    net.run_until(Duration::from_secs(3));
    net.crash(2);
    net.run_until(net.now + Duration::from_millis(20));
    net.start(2, 2, KeyRing::new(1, KEY), &[addr(0)]);
    let took = net.run_until_true(Duration::from_secs(2), |n| {
        (0..5).all(|i| {
            n.member(i)
                .live_peers()
                .chain(std::iter::once(n.member(i).identity()))
                .any(|id| id.name == "node-2" && id.generation == 2)
        })
    });
    let took = took.expect("new generation never accepted");
    // Well before the old identity could have been declared down by failure detection.
    assert!(
        took < Preset::Fast.timing().detection_bound(5),
        "took {took:?}"
    );
    assert!(net.log.iter().any(|l| {
        l.contains("Rejoined { old: node-2@192.0.2.12:7946#1, new: node-2@192.0.2.12:7946#2 }")
    }));
    let took = net.run_until_true(Duration::from_secs(2), |n| {
        n.live_everywhere(&Net::names(0..5))
    });
    assert!(took.is_some(), "{:#?}", net.log);
}

fn scripted_run(seed: u64) -> Vec<String> {
    let mut net = Net::cluster(seed, 5);
    net.run_until(Duration::from_secs(2));
    net.crash(4);
    net.run_until(Duration::from_secs(4));
    net.log
}

#[test]
fn the_same_seed_gives_the_same_event_log() {
    let a = scripted_run(42);
    let b = scripted_run(42);
    assert!(!a.is_empty());
    assert_eq!(a, b);
    // And the seed matters: another one orders things differently.
    assert_ne!(a, scripted_run(43));
}

#[test]
fn a_member_with_another_key_never_joins_and_its_datagrams_are_dropped() {
    let mut net = Net::cluster(5, 3);
    net.start(3, 1, KeyRing::new(1, [0x77; 32]), &[addr(0)]);
    net.start(4, 1, KeyRing::new(9, [0x77; 32]), &[addr(0)]);
    net.run_until(Duration::from_secs(5));
    // The insiders see only each other; the outsiders only themselves.
    for i in 0..3 {
        assert_eq!(net.member(i).live_names(), Net::names(0..3));
    }
    assert_eq!(net.member(3).live_names(), Net::names([3]));
    let drops = net.member(0).drops();
    assert!(drops.get(DropReason::Unauthentic) > 0, "{drops:?}");
    assert!(drops.get(DropReason::UnknownKey) > 0, "{drops:?}");
}

#[test]
fn replayed_datagrams_change_no_membership() {
    let mut net = Net::cluster(6, 5);
    net.run_until(Duration::from_secs(2));
    net.crash(4);
    net.crash(1);
    net.run_until(Duration::from_secs(4));
    net.start(1, 2, KeyRing::new(1, KEY), &[addr(0)]);
    net.run_until(Duration::from_secs(6));
    let expected = Net::names([0, 1, 2, 3]);
    assert!(net.live_everywhere(&expected), "{:#?}", net.log);
    let generations: Vec<u64> = net.member(0).live_peers().map(|p| p.generation).collect();

    // Everything ever sent, including node-4's and node-1's first generation, sent again to
    // every live member.
    let captured = std::mem::take(&mut net.captured);
    for (_, bytes) in &captured {
        for i in [0, 1, 2, 3] {
            let _ = net
                .nodes
                .get_mut(&addr(i))
                .expect("started")
                .handle_datagram(net.now, bytes);
            net.collect(addr(i));
        }
    }
    net.run_until(net.now + Duration::from_secs(2));
    assert!(
        net.live_everywhere(&expected),
        "replay changed membership: {:#?}",
        net.log
    );
    let after: Vec<u64> = net.member(0).live_peers().map(|p| p.generation).collect();
    assert_eq!(generations, after);
}

#[test]
fn garbage_is_dropped_and_counted_without_disturbing_membership() {
    let mut net = Net::cluster(7, 3);
    net.run_until(Duration::from_secs(2));
    let member = net.nodes.get_mut(&addr(0)).expect("started");
    let before = member.drops().total();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(member.handle_datagram(net.now, &bytes).is_err());
    }
    assert_eq!(member.drops().total() - before, 300);
    net.collect(addr(0));
    net.run_until(Duration::from_secs(3));
    assert!(net.live_everywhere(&Net::names(0..3)));
}

#[test]
fn a_leaving_member_is_seen_down_sooner_than_a_crash() {
    let mut net = Net::cluster(8, 5);
    net.run_until(Duration::from_secs(2));
    let now = net.now;
    net.nodes
        .get_mut(&addr(2))
        .expect("started")
        .leave(now)
        .expect("leave");
    net.collect(addr(2));
    let took = net
        .run_until_true(Duration::from_secs(5), |n| {
            [0, 1, 3, 4].iter().all(|&i| !n.member(i).is_live("node-2"))
        })
        .expect("leave never seen");
    assert!(took < Duration::from_millis(200), "leave took {took:?}");
    assert!(!net.member(2).is_live("node-2"));
    assert!(
        !net.log.iter().any(|l| l.contains(" Suspect(node-2@")),
        "a graceful leave must not go through suspicion"
    );
}

#[test]
fn a_member_joining_a_large_cluster_learns_every_member_at_once() {
    let mut net = Net::cluster(9, 120);
    let all = Net::names(0..120);
    let formed = net.run_until_true(Duration::from_secs(30), |n| n.live_everywhere(&all));
    assert!(formed.is_some(), "120 members never converged");
    net.start(120, 1, KeyRing::new(1, KEY), &[addr(7)]);
    // One join round trip plus the member list: far less than a probe period of 100 members.
    net.run_until(net.now + Duration::from_millis(20));
    let late = net.member(120).live_names();
    assert_eq!(
        late.len(),
        121,
        "the joiner knows only {} members",
        late.len()
    );
    // And it says it is connected only once it knows them all (the list came in parts).
    let connected: Vec<&String> = net
        .log
        .iter()
        .filter(|l| l.contains(" node-120 Connected"))
        .collect();
    assert!(!connected.is_empty());
    assert!(
        connected.iter().all(|l| l.ends_with("knowing 121")),
        "{connected:#?}"
    );
}

impl Net {
    /// Log lines in which one of `healthy` reported another of them down, or renewed itself.
    fn harm_to(&self, healthy: &[usize]) -> Vec<String> {
        let names: Vec<String> = healthy.iter().map(|i| format!("node-{i}")).collect();
        self.log
            .iter()
            .filter(|line| {
                let mut words = line.split_whitespace();
                let (_, Some(reporter), Some(event)) = (words.next(), words.next(), words.next())
                else {
                    return false;
                };
                if !names.iter().any(|n| n == reporter) {
                    return false;
                }
                names
                    .iter()
                    .any(|n| event.starts_with(&format!("Down({n}@")))
                    || event.starts_with("Renewed(")
            })
            .cloned()
            .collect()
    }
}

/// A 5-member cluster where node-2 loses `deaf`/`mute` connectivity for 10 s and heals.
fn sick_member_run(seed: u64, deaf: bool, mute: bool) -> Net {
    let mut net = Net::cluster(seed, 5);
    net.run_until(Duration::from_secs(3));
    assert!(net.live_everywhere(&Net::names(0..5)));
    net.log.clear();
    if deaf {
        net.deaf.insert(addr(2));
    }
    if mute {
        net.mute.insert(addr(2));
    }
    net.run_until(net.now + Duration::from_secs(10));
    net.deaf.clear();
    net.mute.clear();
    let healed = net.run_until_true(Duration::from_secs(5), |n| {
        n.live_everywhere(&Net::names(0..5))
    });
    assert!(healed.is_some(), "never merged again: {:#?}", net.log);
    net
}

#[test]
fn a_deaf_member_turns_no_healthy_member_down() {
    let net = sick_member_run(21, true, false);
    let harm = net.harm_to(&[0, 1, 3, 4]);
    assert!(harm.is_empty(), "healthy members harmed: {harm:#?}");
    // The deaf member knew it was cut off.
    assert!(
        net.log
            .iter()
            .any(|l| l.contains(" node-2 Reachability(Isolated(NoRoundTrip")),
        "{:#?}",
        net.log
    );
}

#[test]
fn a_mute_member_turns_no_healthy_member_down() {
    let net = sick_member_run(22, false, true);
    let harm = net.harm_to(&[0, 1, 3, 4]);
    assert!(harm.is_empty(), "healthy members harmed: {harm:#?}");
}

#[test]
fn a_cut_member_turns_no_healthy_member_down_and_is_itself_declared_down() {
    let net = sick_member_run(23, true, true);
    let harm = net.harm_to(&[0, 1, 3, 4]);
    assert!(harm.is_empty(), "healthy members harmed: {harm:#?}");
    assert!(
        net.log.iter().any(|l| l.contains(" node-0 Down(node-2@")),
        "the cut member was never declared down"
    );
    assert!(net.log.iter().any(|l| l.contains(" node-2 Renewed(")));
}

#[test]
fn a_stall_of_200_ms_declares_nobody_down() {
    for seed in 30..36 {
        let mut net = Net::cluster(seed, 5);
        net.run_until(Duration::from_secs(3));
        net.log.clear();
        net.pause(1, Duration::from_millis(200));
        net.run_until(net.now + Duration::from_secs(3));
        assert!(
            !net.log
                .iter()
                .any(|l| l.contains(" Down(") || l.contains("Renewed")),
            "seed {seed}: {:#?}",
            net.log
        );
        assert!(net.live_everywhere(&Net::names(0..5)));
    }
}

#[test]
fn confirmed_suspicions_end_early() {
    // Without confirmations the suspicion would run to its longest (900 ms).
    let timing = Preset::Fast.timing();
    let longest = timing.suspicion_timeouts(5).max;
    for seed in 40..46 {
        let mut net = Net::cluster(seed, 5);
        net.run_until(Duration::from_secs(3));
        net.crash(3);
        let took = net
            .run_until_true(Duration::from_secs(5), |n| {
                n.live_everywhere(&Net::names([0, 1, 2, 4]))
            })
            .expect("crash never detected");
        assert!(
            took < timing.probe_period * 4 + longest,
            "seed {seed}: detected after {took:?}"
        );
    }
}

#[test]
fn a_restart_with_a_clock_stepped_back_takes_a_generation_above_the_old_one() {
    let old = 1_000_000;
    let mut net = Net::new(51);
    for i in 0..5 {
        net.start(i, old, KeyRing::new(1, KEY), &[addr(0)]);
    }
    net.run_until(Duration::from_secs(3));
    assert!(net.live_everywhere(&Net::names(0..5)));
    net.crash(2);
    net.run_until(net.now + Duration::from_millis(20));
    // Its clock stepped back: the new process starts 10^6 generations lower.
    net.start(2, old - 1_000_000 + 1, KeyRing::new(1, KEY), &[addr(0)]);
    let took = net.run_until_true(Duration::from_secs(3), |n| {
        (0..5).all(|i| {
            n.member(i)
                .live_peers()
                .chain(std::iter::once(n.member(i).identity()))
                .any(|id| id.name == "node-2" && id.generation > old)
        }) && n.live_everywhere(&Net::names(0..5))
    });
    assert!(took.is_some(), "{:#?}", net.log);
}

#[test]
fn replays_into_a_restarted_member_bring_nobody_back_and_stale_ones_are_dropped() {
    let mut net = Net::cluster(60, 5);
    net.run_until(Duration::from_secs(3));
    net.crash(4);
    net.run_until(Duration::from_secs(6));
    assert!(net.live_everywhere(&Net::names(0..4)));
    // node-1 restarts with a new generation and knows nothing yet.
    net.nodes.remove(&addr(1));
    net.start(1, 2, KeyRing::new(1, KEY), &[addr(0)]);
    let captured = std::mem::take(&mut net.captured);
    let replay = |net: &mut Net| {
        for (_, bytes) in &captured {
            let now = net.now;
            let _ = net
                .nodes
                .get_mut(&addr(1))
                .expect("started")
                .handle_datagram(now, bytes);
            net.collect(addr(1));
        }
    };
    replay(&mut net);
    net.run_until(net.now + Duration::from_secs(2));
    assert!(
        !net.member(1).is_live("node-4"),
        "a replay brought the dead back: {:#?}",
        net.log
    );
    assert!(net.live_everywhere(&Net::names(0..4)), "{:#?}", net.log);
    let replayed = net.member(1).drops().get(DropReason::Replayed)
        + net.member(1).drops().get(DropReason::Refused);
    assert!(replayed > 0);
    // An hour later (the others stopped, to keep the test quick) every captured datagram is
    // dropped, those of other members as too old to be looked at.
    for i in [0, 2, 3] {
        net.crash(i);
    }
    net.run_until(net.now + Duration::from_secs(3601));
    let (drops, stale) = (
        net.member(1).drops().total(),
        net.member(1).drops().get(DropReason::Stale),
    );
    replay(&mut net);
    assert_eq!(net.member(1).drops().total() - drops, captured.len() as u64);
    assert!(net.member(1).drops().get(DropReason::Stale) - stale > captured.len() as u64 / 2);
    assert!(!net.member(1).is_live("node-4"));
}

#[test]
fn a_joiner_given_every_peer_asks_a_few_and_gets_one_member_list() {
    let mut net = Net::cluster(61, 60);
    let all = Net::names(0..60);
    assert!(
        net.run_until_true(Duration::from_secs(30), |n| n.live_everywhere(&all))
            .is_some()
    );
    let peers: Vec<SocketAddr> = (0..60).map(addr).collect();
    net.captured.clear();
    net.start(60, 1, KeyRing::new(1, KEY), &peers);
    net.run_until(net.now + Duration::from_millis(50));
    assert_eq!(net.member(60).live_names().len(), 61);
    let joins = net
        .captured
        .iter()
        .filter(|(to, _)| *to != addr(60))
        .filter(|(_, bytes)| KeyRing::new(1, KEY).open(bytes).is_ok_and(|p| p[0] == 1))
        .count();
    assert!(joins <= 3, "{joins} join requests");
    let lists: Vec<usize> = net
        .captured
        .iter()
        .filter(|(to, bytes)| {
            *to == addr(60) && KeyRing::new(1, KEY).open(bytes).is_ok_and(|p| p[0] == 2)
        })
        .map(|(_, bytes)| bytes.len())
        .collect();
    let one_list: usize = lists.iter().sum();
    assert!(one_list > 0);
    assert_eq!(
        net.member(60).traffic().member_list_bytes_received as usize,
        one_list - lists.len() * (42 + 29),
        "exactly one member list accepted"
    );
}

#[test]
fn a_live_key_rotation_keeps_every_member_and_every_replay_window() {
    const NEW: [u8; 32] = [0x3c; 32];
    let old = || KeyRing::new(1, KEY);
    let both_old_first = || KeyRing::new(1, KEY).with_opening_key(2, NEW);
    let both_new_first = || KeyRing::new(2, NEW).with_opening_key(1, KEY);
    let new = || KeyRing::new(2, NEW);
    let mut net = Net::cluster(11, 5);
    net.run_until(Duration::from_secs(3));
    let everyone = Net::names(0..5);
    assert!(net.live_everywhere(&everyone), "{:#?}", net.log);
    let log_before = net.log.len();
    let drops_before: Vec<u64> = (0..5).map(|i| net.member(i).drops().total()).collect();
    let sealed_with_old: Vec<Vec<u8>> = net.captured.iter().map(|(_, b)| b.clone()).collect();
    assert!(sealed_with_old.iter().all(|b| b[1] == old().sealing_id()));

    // Step 1: the new key opens everywhere; step 2, one member at a time: it seals;
    // step 3: the old key goes.
    for ring in [both_old_first, both_new_first, new] {
        for i in 0..5 {
            net.nodes
                .get_mut(&addr(i))
                .expect("started")
                .set_keyring(ring());
            net.run_until(net.now + Duration::from_millis(300));
        }
        net.run_until(net.now + Duration::from_secs(1));
    }
    assert!(net.live_everywhere(&everyone), "{:#?}", net.log);
    let changes: Vec<&String> = net.log[log_before..]
        .iter()
        .filter(|l| l.contains("Suspect(") || l.contains("Down(") || l.contains("Renewed"))
        .collect();
    assert!(changes.is_empty(), "{changes:#?}");
    // Nothing in flight was lost to the rotation: every datagram opened.
    for (i, before) in drops_before.iter().enumerate() {
        let drops = net.member(i).drops();
        assert_eq!(drops.total(), *before, "node-{i}: {drops:?}");
    }

    // What was sealed with the old key no longer opens; what the new key sealed and was
    // accepted is still a replay: the windows survived the ring changes.
    let member = net.nodes.get_mut(&addr(0)).expect("started");
    let unknown = member.drops().get(DropReason::UnknownKey);
    for bytes in &sealed_with_old {
        assert!(member.handle_datagram(net.now, bytes).is_err());
    }
    assert_eq!(
        member.drops().get(DropReason::UnknownKey) - unknown,
        sealed_with_old.len() as u64
    );
    let delivered_to_0: Vec<Vec<u8>> = net
        .captured
        .iter()
        .filter(|(to, b)| *to == addr(0) && b[1] == new().sealing_id())
        .map(|(_, b)| b.clone())
        .collect();
    assert!(!delivered_to_0.is_empty());
    let member = net.nodes.get_mut(&addr(0)).expect("started");
    let replayed = member.drops().get(DropReason::Replayed);
    for bytes in &delivered_to_0 {
        assert!(member.handle_datagram(net.now, bytes).is_err());
    }
    assert!(member.drops().get(DropReason::Replayed) > replayed);
}
