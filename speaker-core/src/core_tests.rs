use super::*;
use crate::startup::{HoldTimes, JOIN_TIMEOUT};
use crate::test_support::ms;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;
use swimlb_gossip::NodeId;

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn id(name: &str, generation: u64) -> NodeId {
    NodeId::new(name, "192.0.2.1:7946".parse().expect("literal"), generation)
}

fn placement(count: u8) -> VipPlacement {
    (0..count)
        .map(|i| (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i)), None))
        .collect::<BTreeMap<_, _>>()
}

const TIMES: HoldTimes = HoldTimes {
    settle: Duration::from_millis(300),
    join_timeout: JOIN_TIMEOUT,
};

fn config(node: &str) -> CoreConfig {
    CoreConfig {
        node: node.to_owned(),
        schedule: BurstSchedule::default(),
        fencing: Some(ProbePolicy::default()),
        flap: Some(FlapPolicy::default()),
    }
}

/// A core for node `a` of members a..e past its start-up hold, owning its share of 40 VIPs.
fn running(start: Instant) -> SpeakerCore {
    let mut core = SpeakerCore::new(config("a"), StartupHold::known_at(TIMES, start, true));
    core.set_placement(start, placement(40));
    core.set_live(start, &names(&["a", "b", "c", "d", "e"]));
    core.membership_event(start, &MembershipEvent::Connected);
    core.tick(start + ms(300));
    drain(&mut core);
    core
}

/// The VIPs `running`'s node a takes over when b leaves.
fn inherited_from_b(core: &SpeakerCore) -> BTreeSet<IpAddr> {
    owned_vips("a", &placement(40), &names(&["a", "c", "d", "e"]))
        .difference(&core.owned())
        .copied()
        .collect()
}

fn drain(core: &mut SpeakerCore) -> Vec<Effect> {
    std::iter::from_fn(|| core.poll_effect()).collect()
}

/// The VIPs of the effects that `pick` recognises.
fn picked(effects: &[Effect], pick: impl Fn(&Effect) -> Option<IpAddr>) -> BTreeSet<IpAddr> {
    effects.iter().filter_map(pick).collect()
}

fn claims(effects: &[Effect]) -> BTreeSet<IpAddr> {
    picked(effects, |e| match e {
        Effect::Claim { vip, .. } => Some(*vip),
        _ => None,
    })
}

fn releases(effects: &[Effect]) -> BTreeSet<IpAddr> {
    picked(effects, |e| match e {
        Effect::Release { vip, .. } => Some(*vip),
        _ => None,
    })
}

fn announced(effects: &[Effect]) -> BTreeSet<IpAddr> {
    picked(effects, |e| match e {
        Effect::Announce(vip) => Some(*vip),
        _ => None,
    })
}

fn probed(effects: &[Effect]) -> BTreeSet<IpAddr> {
    picked(effects, |e| match e {
        Effect::Probe(vip) => Some(*vip),
        _ => None,
    })
}

/// Runs the core's timers from `from` to `until`, collecting every effect.
fn run(core: &mut SpeakerCore, from: Instant, until: Instant) -> Vec<Effect> {
    let mut effects = Vec::new();
    let mut now = from;
    loop {
        core.tick(now);
        effects.extend(drain(core));
        match core.next_deadline(now) {
            Some(next) if next <= until => now = next.max(now + ms(1)),
            _ => return effects,
        }
    }
}

fn isolated() -> MembershipEvent {
    MembershipEvent::Reachability(Reachability::Isolated(IsolationReason::NoQuorum {
        live: 2,
        expected: 5,
    }))
}

#[test]
fn nothing_is_claimed_before_the_member_list_and_the_settle_time() {
    let start = Instant::now();
    let mut core = SpeakerCore::new(config("a"), StartupHold::known_at(TIMES, start, true));
    core.set_placement(start, placement(40));
    core.set_live(start, &names(&["a"]));
    assert!(
        drain(&mut core).is_empty(),
        "alone at start: claims nothing"
    );
    core.set_live(start + ms(50), &names(&["a", "b", "c", "d", "e"]));
    core.membership_event(start + ms(60), &MembershipEvent::Connected);
    assert!(run(&mut core, start + ms(60), start + ms(359)).is_empty());
    let effects = run(&mut core, start + ms(360), start + ms(360));
    let expected = owned_vips("a", &placement(40), &names(&["a", "b", "c", "d", "e"]));
    assert!(!expected.is_empty());
    assert_eq!(claims(&effects), expected);
    assert_eq!(
        announced(&effects),
        expected,
        "each claim's first round at once"
    );
    assert!(effects.contains(&Effect::Notice(Notice::StartupOver { members: 5 })));
}

#[test]
fn a_departed_members_vips_are_claimed_and_handed_back_when_it_returns() {
    let start = Instant::now();
    let mut core = running(start);
    let all = names(&["a", "b", "c", "d", "e"]);
    let without_b = names(&["a", "c", "d", "e"]);
    let gained = inherited_from_b(&core);
    assert!(!gained.is_empty(), "a is b's successor for some VIP");
    core.set_live(start + ms(1000), &without_b);
    let effects = drain(&mut core);
    assert_eq!(claims(&effects), gained);
    for effect in &effects {
        if let Effect::Claim { previous_owner, .. } = effect {
            assert_eq!(previous_owner.as_deref(), Some("b"));
        }
    }
    core.set_live(start + ms(2000), &all);
    let effects = drain(&mut core);
    assert_eq!(releases(&effects), gained);
    assert!(
        announced(&effects).is_disjoint(&gained),
        "a released VIP is not announced"
    );
}

#[test]
fn another_mac_claiming_an_owned_vip_is_answered_at_once_and_at_most_once_a_second() {
    let start = Instant::now();
    let mut core = running(start);
    let vip = *core.owned().first().expect("a owns a VIP");
    let later = start + ms(10_000);
    run(&mut core, start + ms(300), later);
    core.foreign_claim(later, vip);
    let effects = drain(&mut core);
    assert_eq!(announced(&effects), BTreeSet::from([vip]));
    core.foreign_claim(later + ms(500), vip);
    assert!(announced(&drain(&mut core)).is_empty(), "rate-limited");
    // The restarted burst goes on by itself; a claim after a second restarts it again.
    core.foreign_claim(later + ms(1000), vip);
    assert_eq!(announced(&drain(&mut core)), BTreeSet::from([vip]));
    // A VIP this node does not own is none of its business.
    let other = placement(40)
        .into_keys()
        .find(|v| !core.owned().contains(v))
        .expect("some VIP is someone else's");
    core.foreign_claim(later + ms(2000), other);
    assert!(drain(&mut core).is_empty());
}

#[test]
fn own_renewal_and_a_returning_member_restart_every_burst_after_the_delay() {
    let start = Instant::now();
    let mut core = running(start);
    let later = start + ms(10_000);
    run(&mut core, start + ms(300), later);
    core.membership_event(later, &MembershipEvent::Renewed(id("a", 2)));
    assert!(announced(&drain(&mut core)).is_empty());
    let effects = run(&mut core, later, later + REANNOUNCE_DELAY);
    assert_eq!(announced(&effects), core.owned());
    assert!(effects.contains(&Effect::Notice(Notice::Reasserted {
        vips: core.owned().len(),
        cause: ReassertCause::OwnRenewal
    })));
    // b is declared down, then back with a new generation.
    let later = later + ms(5000);
    core.membership_event(later, &MembershipEvent::Down(id("b", 1)));
    core.membership_event(
        later + ms(400),
        &MembershipEvent::Rejoined {
            old: id("b", 1),
            new: id("b", 2),
        },
    );
    let effects = run(&mut core, later + ms(400), later + ms(500));
    assert_eq!(announced(&effects), core.owned());
}

#[test]
fn an_isolated_speaker_yields_to_any_other_mac_and_probes_before_claiming() {
    let start = Instant::now();
    let mut core = running(start);
    let held = core.owned();
    let t = start + ms(10_000);
    run(&mut core, start + ms(300), t);
    core.membership_event(t, &isolated());
    let effects = drain(&mut core);
    assert!(
        effects.contains(&Effect::Notice(Notice::Fenced(IsolationReason::NoQuorum {
            live: 2,
            expected: 5
        })))
    );
    assert!(
        releases(&effects).is_empty(),
        "held VIPs stay until someone answers"
    );
    assert_eq!(probed(&effects), held, "and are probed at once");
    let yielded = *held.first().expect("a owns a VIP");
    core.foreign_claim(t + ms(2), yielded);
    let effects = drain(&mut core);
    assert_eq!(releases(&effects), BTreeSet::from([yielded]));
    assert!(!core.owned().contains(&yielded));

    // The others are declared down: the VIPs a would take are probed first.
    let view = names(&["a", "b"]);
    let wanted = owned_vips("a", &placement(40), &view);
    core.set_live(t + ms(100), &view);
    let effects = drain(&mut core);
    assert!(claims(&effects).is_empty(), "nothing claimed unprobed");
    let fresh: BTreeSet<IpAddr> = wanted.difference(&held).copied().collect();
    assert!(!fresh.is_empty());
    assert_eq!(probed(&effects), fresh);
    // Nobody answers: claimed one interval after the third probe.
    let effects = run(&mut core, t + ms(100), t + ms(399));
    assert!(claims(&effects).is_empty());
    let effects = run(&mut core, t + ms(400), t + ms(400));
    assert_eq!(claims(&effects), fresh);
    for effect in &effects {
        if let Effect::Claim { reason, .. } = effect {
            assert_eq!(*reason, Reason::Unheld);
        }
    }
    // The yielded VIP is probed again after the recheck period (and its spread, up to half a
    // period) and claimed if unanswered.
    let effects = run(&mut core, t + ms(401), t + ms(2000));
    assert!(claims(&effects).contains(&yielded));

    // The isolation ends: claims follow the view again, and every burst restarts.
    core.membership_event(
        t + ms(3000),
        &MembershipEvent::Reachability(Reachability::Reachable),
    );
    let effects = run(&mut core, t + ms(3000), t + ms(3100));
    assert!(effects.contains(&Effect::Notice(Notice::FenceLifted)));
    assert_eq!(core.owned(), wanted);
    assert_eq!(announced(&effects), wanted);
    assert!(core.fenced().is_none());
}

#[test]
fn without_fencing_an_isolated_speaker_claims_by_its_own_view() {
    let start = Instant::now();
    let mut core = SpeakerCore::new(
        CoreConfig {
            fencing: None,
            ..config("a")
        },
        StartupHold::known_at(TIMES, start, false),
    );
    core.set_placement(start, placement(40));
    core.tick(start);
    core.membership_event(start, &isolated());
    drain(&mut core);
    core.foreign_claim(start + ms(10), *core.owned().first().expect("owns all"));
    assert!(releases(&drain(&mut core)).is_empty());
    assert_eq!(core.owned().len(), 40);
}

#[test]
fn a_flapping_member_takes_its_vips_back_only_after_the_hold_down() {
    let start = Instant::now();
    let mut core = running(start);
    let all = names(&["a", "b", "c", "d", "e"]);
    let without_b = names(&["a", "c", "d", "e"]);
    let successor = inherited_from_b(&core);
    let mut t = start + ms(1000);
    for (flap, generation) in (0..4).zip(1u64..) {
        core.membership_event(t, &MembershipEvent::Down(id("b", generation)));
        core.set_live(t, &without_b);
        t += ms(1000);
        core.membership_event(
            t,
            &MembershipEvent::Rejoined {
                old: id("b", generation),
                new: id("b", generation + 1),
            },
        );
        core.set_live(t, &all);
        let effects = drain(&mut core);
        if flap < 3 {
            assert_eq!(releases(&effects), successor, "return {flap} hands back");
        } else {
            assert!(
                releases(&effects).is_empty(),
                "the fourth return is held down"
            );
            assert!(effects.contains(&Effect::Notice(Notice::HeldDown { member: "b".into() })));
        }
        t += ms(1000);
    }
    let returned = t - ms(1000);
    let effects = run(&mut core, t, returned + Duration::from_secs(30) - ms(1));
    assert!(releases(&effects).is_empty());
    let effects = run(
        &mut core,
        returned + Duration::from_secs(30),
        returned + Duration::from_secs(30),
    );
    assert_eq!(releases(&effects), successor);
    assert!(effects.contains(&Effect::Notice(Notice::HoldDownOver { member: "b".into() })));
}

#[test]
fn a_speaker_that_keeps_being_declared_down_holds_itself_down() {
    let start = Instant::now();
    let mut core = running(start);
    let mut t = start + ms(1000);
    for generation in 2..6 {
        core.membership_event(t, &MembershipEvent::Renewed(id("a", generation)));
        t += ms(2000);
    }
    assert!(
        core.owned().is_empty(),
        "a flapping speaker gives up its VIPs"
    );
}

#[test]
fn draining_keeps_answering_but_stops_announcing_and_stop_releases_everything() {
    let start = Instant::now();
    let mut core = running(start);
    let owned = core.owned();
    core.drain();
    core.membership_event(start + ms(400), &MembershipEvent::Renewed(id("a", 2)));
    let effects = run(&mut core, start + ms(400), start + ms(10_000));
    assert!(announced(&effects).is_empty());
    assert_eq!(core.owned(), owned);
    core.stop(start + ms(10_000));
    assert_eq!(releases(&drain(&mut core)), owned);
    assert!(core.owned().is_empty());
}

#[test]
fn repeated_partitions_hold_nobody_down() {
    let start = Instant::now();
    let mut core = running(start);
    let owned = core.owned();
    let all = names(&["a", "b", "c", "d", "e"]);
    let mut t = start + ms(1000);
    // a and b on one side, c..e on the other: at every heal a renews and sees c..e return.
    for generation in 1..6 {
        for other in ["c", "d", "e"] {
            core.membership_event(t, &MembershipEvent::Down(id(other, generation)));
        }
        core.set_live(t, &names(&["a", "b"]));
        t += ms(2000);
        core.membership_event(t, &MembershipEvent::Renewed(id("a", generation + 1)));
        for other in ["c", "d", "e"] {
            core.membership_event(
                t,
                &MembershipEvent::Rejoined {
                    old: id(other, generation),
                    new: id(other, generation + 1),
                },
            );
        }
        core.set_live(t, &all);
        t += ms(2000);
    }
    drain(&mut core);
    assert_eq!(
        core.owned(),
        owned,
        "the cluster's trouble is no member's flap"
    );
    assert_eq!(
        core.view_owner(*owned.first().expect("owns a VIP")),
        Some("a")
    );
}
