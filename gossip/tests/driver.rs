//! Real UDP sockets on 127.0.0.1.

use std::collections::BTreeSet;
use std::time::Duration;

use swimlb_gossip::driver::{self, DriverConfig, GossipHandle};
use swimlb_gossip::{DropReason, KeyRing, Preset};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

const KEY: [u8; 32] = [0x42; 32];

fn config(name: &str, peers: Vec<std::net::SocketAddr>, keyring: KeyRing) -> DriverConfig {
    DriverConfig {
        node_name: name.to_owned(),
        bind: "127.0.0.1:0".parse().expect("literal"),
        advertise: None,
        peers,
        timing: Preset::Fast.timing(),
        keyring,
        generation: None,
    }
}

async fn wait_for(
    live: &mut watch::Receiver<BTreeSet<String>>,
    limit: Duration,
    want: impl Fn(&BTreeSet<String>) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    timeout(limit, live.wait_for(|set| want(set)))
        .await
        .ok()?
        .ok()?;
    Some(start.elapsed())
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn three_members() -> Vec<GossipHandle> {
    let first = driver::spawn(config("a", vec![], KeyRing::new(1, KEY)))
        .await
        .expect("bind");
    let seed = vec![first.identity().addr];
    let second = driver::spawn(config("b", seed.clone(), KeyRing::new(1, KEY)))
        .await
        .expect("bind");
    let third = driver::spawn(config("c", seed, KeyRing::new(1, KEY)))
        .await
        .expect("bind");
    let all = vec![first, second, third];
    for member in &all {
        let mut live = member.live_members();
        let took = wait_for(&mut live, Duration::from_secs(10), |s| {
            *s == names(&["a", "b", "c"])
        })
        .await;
        assert!(
            took.is_some(),
            "{} never saw all three: {:?}",
            member.identity(),
            *live.borrow()
        );
    }
    all
}

#[tokio::test]
async fn three_drivers_form_a_cluster_and_see_a_crashed_one_down() {
    let mut members = three_members().await;
    let crashed = members.pop().expect("three");
    drop(crashed);
    let bound = Preset::Fast.timing().detection_bound(3);
    for member in &members {
        let mut live = member.live_members();
        let took = wait_for(&mut live, Duration::from_secs(10), |s| {
            *s == names(&["a", "b"])
        })
        .await
        .expect("crash never detected");
        println!(
            "{} saw c down after {took:?} (bound {bound:?})",
            member.identity().name
        );
        // Generous slack over the preset's bound: a shared machine can stall the runtime.
        assert!(took <= bound + Duration::from_secs(1), "took {took:?}");
    }
}

#[tokio::test]
async fn a_graceful_leave_is_seen_at_once() {
    let mut members = three_members().await;
    let leaving = members.pop().expect("three");
    let start = Instant::now();
    leaving.leave().await.expect("leave");
    for member in &members {
        let mut live = member.live_members();
        wait_for(&mut live, Duration::from_secs(5), |s| {
            *s == names(&["a", "b"])
        })
        .await
        .expect("leave never seen");
    }
    println!("leave seen everywhere after {:?}", start.elapsed());
}

#[tokio::test]
async fn a_driver_with_another_key_never_joins_and_is_counted_as_dropped() {
    let members = three_members().await;
    let seed = vec![members[0].identity().addr];
    let outsider = driver::spawn(config("mallory", seed, KeyRing::new(1, [0x13; 32])))
        .await
        .expect("bind");
    // It knocks every rejoin interval; give it a few tries.
    let mut stats = members[0].stats();
    let counted = timeout(
        Duration::from_secs(10),
        stats.wait_for(|s| s.drops.get(DropReason::Unauthentic) >= 2),
    )
    .await
    .is_ok();
    assert!(
        counted,
        "outsider's datagrams not counted: {:?}",
        *stats.borrow()
    );
    for member in &members {
        assert_eq!(*member.live_members().borrow(), names(&["a", "b", "c"]));
    }
    assert_eq!(*outsider.live_members().borrow(), names(&["mallory"]));
}

#[tokio::test]
async fn a_wildcard_address_is_never_advertised() {
    let mut wildcard = config("w", vec![], KeyRing::new(1, KEY));
    wildcard.bind = "0.0.0.0:0".parse().expect("literal");
    match driver::spawn(wildcard).await {
        Err(driver::DriverError::UnspecifiedAdvertise(addr)) => {
            assert!(addr.ip().is_unspecified());
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a wildcard bind without an advertise address must be refused"),
    }
}

#[tokio::test]
async fn a_quick_join_reports_connected_to_a_subscriber_that_came_after_it() {
    let members = three_members().await;
    let peers = members.iter().map(|m| m.identity().addr).collect();
    let mut joiner = driver::spawn(config("d", peers, KeyRing::new(1, KEY)))
        .await
        .expect("bind");
    let mut live = joiner.live_members();
    let took = wait_for(&mut live, Duration::from_secs(10), |s| {
        *s == names(&["a", "b", "c", "d"])
    })
    .await;
    assert!(took.is_some(), "d never saw all four: {:?}", *live.borrow());
    // The joiner has its member list by now, and reported Connected before anyone listened.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut events = joiner.subscribe();
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(
        seen.iter()
            .any(|e| matches!(e, swimlb_gossip::MembershipEvent::Connected)),
        "the first subscriber missed Connected: {seen:?}"
    );
    drop(members);
}
