use super::*;
use crate::config::{PoolDeclaration, parse_configmap};
use crate::service::{FamilyPolicy, FamilyRequest};
use proptest::prelude::*;
use swimlb_api::IPAddressPoolSpec;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn pool(name: &str, created: i64, addresses: &[&str]) -> PoolDeclaration {
    pool_with(name, created, addresses, |_| {})
}

fn pool_with(
    name: &str,
    created: i64,
    addresses: &[&str],
    edit: impl FnOnce(&mut IPAddressPoolSpec),
) -> PoolDeclaration {
    let mut spec = IPAddressPoolSpec {
        addresses: addresses.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    edit(&mut spec);
    PoolDeclaration::from_resource("swimlb-system", name, created, &spec)
}

fn seed_state() -> AllocationState {
    let mut state = AllocationState::new(ClassFilter::default());
    state.set_pools(PoolSet::build(vec![pool(
        "default",
        0,
        &["192.0.2.30-192.0.2.49"],
    )]));
    state
}

fn svc(name: &str) -> ServiceRequest {
    ServiceRequest::load_balancer(ServiceKey::new("ns", name))
}

fn assigned(decision: &Decision) -> Vec<IpAddr> {
    match decision {
        Decision::Assigned { ips, .. } => ips.clone(),
        other => panic!("expected an assignment, got {other:?}"),
    }
}

fn pending(decision: &Decision) -> &AllocationError {
    match decision {
        Decision::Pending(e) => e,
        other => panic!("expected pending, got {other:?}"),
    }
}

#[test]
fn seed_first_30_then_31_and_reuse_after_delete() {
    let mut state = seed_state();
    let first = state.reconcile(&svc("a"));
    assert_eq!(
        first,
        Decision::Assigned {
            ips: vec![ip("192.0.2.30")],
            pool: Some("default".to_owned())
        }
    );
    assert_eq!(
        assigned(&state.reconcile(&svc("b"))),
        vec![ip("192.0.2.31")]
    );
    // A second reconcile of the same Service changes nothing.
    assert_eq!(
        assigned(&state.reconcile(&svc("a"))),
        vec![ip("192.0.2.30")]
    );
    assert!(state.remove(&ServiceKey::new("ns", "a")));
    assert!(!state.remove(&ServiceKey::new("ns", "a")));
    assert_eq!(
        assigned(&state.reconcile(&svc("c"))),
        vec![ip("192.0.2.30")]
    );
    assert_eq!(
        assigned(&state.reconcile(&svc("d"))),
        vec![ip("192.0.2.32")]
    );
}

#[test]
fn pending_without_pools_then_served_when_a_pool_appears() {
    let mut state = AllocationState::new(ClassFilter::default());
    assert_eq!(
        pending(&state.reconcile(&svc("early"))),
        &AllocationError::NoPools
    );
    state.set_pools(PoolSet::build(vec![pool("p", 0, &["198.51.100.8/30"])]));
    assert_eq!(
        assigned(&state.reconcile(&svc("early"))),
        vec![ip("198.51.100.8")]
    );
}

#[test]
fn exhausted_pool_names_itself_and_recovers() {
    let mut state = AllocationState::new(ClassFilter::default());
    state.set_pools(PoolSet::build(vec![pool(
        "tiny",
        0,
        &["192.0.2.1-192.0.2.2"],
    )]));
    state.reconcile(&svc("a"));
    state.reconcile(&svc("b"));
    let err = pending(&state.reconcile(&svc("c"))).clone();
    assert_eq!(
        err.to_string(),
        "no free IPv4 address in pool(s) tiny",
        "{err:?}"
    );
    assert_eq!(err.kind(), "PoolExhausted");
    // The pool grows: the pending Service is served.
    state.set_pools(PoolSet::build(vec![pool(
        "tiny",
        0,
        &["192.0.2.1-192.0.2.3"],
    )]));
    assert_eq!(assigned(&state.reconcile(&svc("c"))), vec![ip("192.0.2.3")]);
    assert_eq!(assigned(&state.reconcile(&svc("a"))), vec![ip("192.0.2.1")]);
}

#[test]
fn restart_rebuilds_from_status_before_allocating() {
    let mut before = seed_state();
    let mut requests = Vec::new();
    for name in ["a", "b", "c"] {
        let mut request = svc(name);
        let ips = assigned(&before.reconcile(&request));
        request.current_ips = ips;
        requests.push(request);
    }
    before.remove(&ServiceKey::new("ns", "a"));
    requests.remove(0);
    // A new Service created while the controller was down sorts before the others.
    let mut requests: Vec<ServiceRequest> = std::iter::once(svc("0-new")).chain(requests).collect();

    let mut after = seed_state();
    AllocationState::startup_order(&mut requests);
    let decisions: BTreeMap<String, Vec<IpAddr>> = requests
        .iter()
        .map(|r| (r.key.name.clone(), assigned(&after.reconcile(r))))
        .collect();
    assert_eq!(decisions["b"], vec![ip("192.0.2.31")]);
    assert_eq!(decisions["c"], vec![ip("192.0.2.32")]);
    assert_eq!(decisions["0-new"], vec![ip("192.0.2.30")]);
}

#[test]
fn duplicate_status_addresses_keep_the_first_holder() {
    let mut state = seed_state();
    let mut a = svc("a");
    a.current_ips = vec![ip("192.0.2.40")];
    let mut b = svc("b");
    b.current_ips = vec![ip("192.0.2.40")];
    assert_eq!(assigned(&state.reconcile(&a)), vec![ip("192.0.2.40")]);
    assert_eq!(assigned(&state.reconcile(&b)), vec![ip("192.0.2.30")]);
}

#[test]
fn requested_addresses() {
    let mut state = AllocationState::new(ClassFilter::default());
    state.set_pools(PoolSet::build(vec![
        pool("a", 0, &["192.0.2.0/24"]),
        pool_with("buggy", 1, &["198.51.100.0/24"], |s| {
            s.avoid_buggy_ips = Some(true);
        }),
        pool("bad", 2, &["192.0.2.100-192.0.2.110"]),
    ]));
    let mut wants = svc("wants");
    wants.requested_ips = Ok(vec![ip("192.0.2.77")]);
    assert_eq!(assigned(&state.reconcile(&wants)), vec![ip("192.0.2.77")]);

    let mut thief = svc("thief");
    thief.requested_ips = Ok(vec![ip("192.0.2.77")]);
    let err = pending(&state.reconcile(&thief)).clone();
    assert_eq!(
        err,
        AllocationError::InUse {
            ip: ip("192.0.2.77"),
            holder: ServiceKey::new("ns", "wants"),
            conflict: SharingConflict::NotShared
        }
    );
    assert!(err.to_string().contains("192.0.2.77 is in use by ns/wants"));

    thief.requested_ips = Ok(vec![ip("203.0.113.5")]);
    assert_eq!(
        pending(&state.reconcile(&thief)),
        &AllocationError::NotInAnyPool(ip("203.0.113.5"))
    );

    thief.requested_ips = Ok(vec![ip("198.51.100.255")]);
    assert_eq!(
        pending(&state.reconcile(&thief)),
        &AllocationError::Buggy {
            ip: ip("198.51.100.255"),
            pool: "buggy".to_owned()
        }
    );

    // Only in a pool that lost an overlap: the error names that pool and why.
    let mut state_bad = AllocationState::new(ClassFilter::default());
    state_bad.set_pools(PoolSet::build(vec![
        pool("good", 0, &["192.0.2.0/25"]),
        pool("bad", 1, &["192.0.2.100-192.0.2.200"]),
    ]));
    thief.requested_ips = Ok(vec![ip("192.0.2.150")]);
    let err = pending(&state_bad.reconcile(&thief)).clone();
    assert!(
        matches!(&err, AllocationError::InvalidPool { pool, errors } if pool == "bad" && errors.contains("192.0.2.0/25")),
        "{err}"
    );

    thief.requested_ips = Ok(vec![ip("192.0.2.9")]);
    thief.requested_pool = Some("buggy".to_owned());
    assert_eq!(
        pending(&state.reconcile(&thief)),
        &AllocationError::NotInRequestedPool {
            ip: ip("192.0.2.9"),
            pool: "buggy".to_owned()
        }
    );

    thief.requested_pool = None;
    thief.requested_ips = Ok(vec![ip("2001:db8::1")]);
    assert!(matches!(
        pending(&state.reconcile(&thief)),
        AllocationError::FamilyNotAllowed { .. }
    ));

    // Changing the request moves the Service and frees the old address.
    wants.requested_ips = Ok(vec![ip("192.0.2.78")]);
    assert_eq!(assigned(&state.reconcile(&wants)), vec![ip("192.0.2.78")]);
    assert_eq!(state.holders_of(ip("192.0.2.77")).count(), 0);
}

#[test]
fn request_errors_leave_the_service_pending() {
    let mut state = seed_state();
    let mut request = svc("a");
    assert_eq!(assigned(&state.reconcile(&request)), vec![ip("192.0.2.30")]);
    request.requested_ips = Err(RequestError::BadLoadBalancerIp {
        value: "x".to_owned(),
    });
    assert!(matches!(
        pending(&state.reconcile(&request)),
        AllocationError::Request(_)
    ));
    assert_eq!(state.addresses_of(&request.key), None);
}

fn sharing(key: &str, ports: &[i32]) -> Sharing {
    Sharing {
        key: Some(key.to_owned()),
        ports: ports
            .iter()
            .map(|p| ("TCP".to_owned(), *p))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        traffic_policy: TrafficPolicy::Cluster,
    }
}

#[test]
fn sharing_needs_same_key_disjoint_ports_same_policy() {
    let mut state = seed_state();
    let mut http = svc("http");
    http.sharing = sharing("k", &[80]);
    let mut https = svc("https");
    https.sharing = sharing("k", &[443]);
    let mut clash = svc("clash");
    clash.sharing = sharing("k", &[80]);
    let mut other_key = svc("other-key");
    other_key.sharing = sharing("j", &[8080]);

    assert_eq!(assigned(&state.reconcile(&http)), vec![ip("192.0.2.30")]);
    assert_eq!(assigned(&state.reconcile(&https)), vec![ip("192.0.2.30")]);
    assert_eq!(assigned(&state.reconcile(&clash)), vec![ip("192.0.2.31")]);
    assert_eq!(
        assigned(&state.reconcile(&other_key)),
        vec![ip("192.0.2.32")]
    );
    assert_eq!(state.holders_of(ip("192.0.2.30")).count(), 2);

    // Asking for the shared address with an overlapping port names the port.
    let mut requested = svc("requested");
    requested.sharing = sharing("k", &[443]);
    requested.requested_ips = Ok(vec![ip("192.0.2.30")]);
    let err = pending(&state.reconcile(&requested)).clone();
    assert!(
        err.to_string().contains("port TCP/443 is used by both"),
        "{err}"
    );

    let mut local = svc("local");
    local.sharing = sharing("k", &[22]);
    local.sharing.traffic_policy = TrafficPolicy::Local {
        selector: BTreeMap::new(),
    };
    local.requested_ips = Ok(vec![ip("192.0.2.30")]);
    assert!(matches!(
        pending(&state.reconcile(&local)),
        AllocationError::InUse {
            conflict: SharingConflict::TrafficPolicy,
            ..
        }
    ));

    // The address stays in use until its last holder goes.
    state.remove(&http.key);
    assert_eq!(
        assigned(&state.reconcile(&svc("next"))),
        vec![ip("192.0.2.33")]
    );
    state.remove(&https.key);
    assert_eq!(
        assigned(&state.reconcile(&svc("reuse"))),
        vec![ip("192.0.2.30")]
    );
}

#[test]
fn sharing_service_losing_compatibility_moves() {
    let mut state = seed_state();
    let mut a = svc("a");
    a.sharing = sharing("k", &[80]);
    let mut b = svc("b");
    b.sharing = sharing("k", &[443]);
    state.reconcile(&a);
    assert_eq!(assigned(&state.reconcile(&b)), vec![ip("192.0.2.30")]);
    // b now also listens on 80: it cannot stay on a's address.
    b.sharing = sharing("k", &[80, 443]);
    assert_eq!(assigned(&state.reconcile(&b)), vec![ip("192.0.2.31")]);
}

#[test]
fn pool_choice_by_annotation_and_service_allocation() {
    let mut state = AllocationState::new(ClassFilter::default());
    state.set_pools(PoolSet::build(vec![
        pool("open", 0, &["192.0.2.0/28"]),
        pool_with("manual", 1, &["198.51.100.0/28"], |s| {
            s.auto_assign = Some(false);
        }),
        pool_with("team-a-first", 2, &["203.0.113.0/28"], |s| {
            s.service_allocation = Some(swimlb_api::ServiceAllocation {
                priority: Some(2),
                namespaces: vec!["team-a".to_owned()],
                ..Default::default()
            });
        }),
        pool_with("team-a-top", 3, &["203.0.113.16/28"], |s| {
            s.service_allocation = Some(swimlb_api::ServiceAllocation {
                priority: Some(1),
                namespaces: vec!["team-a".to_owned()],
                ..Default::default()
            });
        }),
    ]));
    // Other namespaces skip the team pools and the manual one.
    assert_eq!(
        assigned(&state.reconcile(&svc("plain"))),
        vec![ip("192.0.2.0")]
    );
    let team = ServiceRequest::load_balancer(ServiceKey::new("team-a", "web"));
    assert_eq!(assigned(&state.reconcile(&team)), vec![ip("203.0.113.16")]);

    let mut manual = svc("manual");
    manual.requested_pool = Some("manual".to_owned());
    assert_eq!(
        state.reconcile(&manual),
        Decision::Assigned {
            ips: vec![ip("198.51.100.0")],
            pool: Some("manual".to_owned())
        }
    );
    manual.requested_pool = Some("missing".to_owned());
    assert_eq!(
        pending(&state.reconcile(&manual)),
        &AllocationError::UnknownPool("missing".to_owned())
    );

    // Only a manual pool: nothing auto-assigns.
    let mut only_manual = AllocationState::new(ClassFilter::default());
    only_manual.set_pools(PoolSet::build(vec![pool_with(
        "manual",
        0,
        &["198.51.100.0/28"],
        |s| s.auto_assign = Some(false),
    )]));
    assert_eq!(
        pending(&only_manual.reconcile(&svc("x"))),
        &AllocationError::NoMatchingPool
    );
}

#[test]
fn dual_stack() {
    let mut state = AllocationState::new(ClassFilter::default());
    state.set_pools(PoolSet::build(vec![
        pool("v4only", 0, &["192.0.2.0/28"]),
        pool("dual", 1, &["198.51.100.0/28", "2001:db8::/120"]),
    ]));
    let mut required = svc("required");
    required.families = FamilyRequest {
        policy: FamilyPolicy::RequireDualStack,
        families: vec![Family::V6, Family::V4],
    };
    assert_eq!(
        state.reconcile(&required),
        Decision::Assigned {
            ips: vec![ip("2001:db8::"), ip("198.51.100.0")],
            pool: Some("dual".to_owned())
        }
    );
    let mut preferred = svc("preferred");
    preferred.families = FamilyRequest {
        policy: FamilyPolicy::PreferDualStack,
        families: vec![Family::V4],
    };
    assert_eq!(
        assigned(&state.reconcile(&preferred)),
        vec![ip("198.51.100.1"), ip("2001:db8::1")]
    );
    let mut v6 = svc("v6");
    v6.families = FamilyRequest::single(Family::V6);
    assert_eq!(assigned(&state.reconcile(&v6)), vec![ip("2001:db8::2")]);

    let mut only_v4 = AllocationState::new(ClassFilter::default());
    only_v4.set_pools(PoolSet::build(vec![pool("v4", 0, &["192.0.2.0/28"])]));
    let err = pending(&only_v4.reconcile(&required)).clone();
    assert_eq!(err.to_string(), "no free IPv6+IPv4 address in pool(s) v4");
    assert_eq!(
        assigned(&only_v4.reconcile(&preferred)),
        vec![ip("192.0.2.0")]
    );

    // Requested dual-stack addresses.
    let mut both = svc("both");
    both.families = FamilyRequest {
        policy: FamilyPolicy::RequireDualStack,
        families: vec![Family::V4, Family::V6],
    };
    both.requested_ips = Ok(vec![ip("198.51.100.9"), ip("2001:db8::9")]);
    assert_eq!(
        assigned(&state.reconcile(&both)),
        vec![ip("198.51.100.9"), ip("2001:db8::9")]
    );
    both.requested_ips = Ok(vec![ip("192.0.2.9"), ip("2001:db8::10")]);
    assert!(matches!(
        pending(&state.reconcile(&both)),
        AllocationError::DifferentPools(_)
    ));
}

#[test]
fn invalid_or_removed_pool_takes_nothing_away() {
    let mut state = seed_state();
    let a = svc("a");
    assert_eq!(assigned(&state.reconcile(&a)), vec![ip("192.0.2.30")]);
    // The pool turns invalid (a range that overlaps itself): a keeps its address,
    // a newcomer gets nothing.
    state.set_pools(PoolSet::build(vec![pool(
        "default",
        0,
        &["192.0.2.30-192.0.2.49", "192.0.2.40/29"],
    )]));
    assert_eq!(
        state.reconcile(&a),
        Decision::Assigned {
            ips: vec![ip("192.0.2.30")],
            pool: Some("default".to_owned())
        }
    );
    let err = pending(&state.reconcile(&svc("new"))).clone();
    assert_eq!(err, AllocationError::NoMatchingPool);
    let usage = state.usage(state.pools().get("default").expect("pool"));
    assert_eq!(usage.in_use_v4, 1);
    assert_eq!(usage.available_v4, 0);
    assert_eq!(usage.total_v4, 28);
    // The pool goes away entirely: still kept.
    state.set_pools(PoolSet::default());
    assert_eq!(assigned(&state.reconcile(&a)), vec![ip("192.0.2.30")]);
    // It comes back valid: the held address is not handed out twice.
    state.set_pools(PoolSet::build(vec![pool(
        "default",
        0,
        &["192.0.2.30-192.0.2.49"],
    )]));
    assert_eq!(
        assigned(&state.reconcile(&svc("new"))),
        vec![ip("192.0.2.31")]
    );
}

#[test]
fn class_and_type_decide_ownership() {
    let mut state = seed_state();
    let mut request = svc("a");
    assert_eq!(assigned(&state.reconcile(&request)), vec![ip("192.0.2.30")]);
    request.is_load_balancer = false;
    assert_eq!(state.reconcile(&request), Decision::NotOurs);
    assert_eq!(
        assigned(&state.reconcile(&svc("b"))),
        vec![ip("192.0.2.30")]
    );

    let mut other = svc("other");
    other.load_balancer_class = Some("example.com/other".to_owned());
    assert_eq!(state.reconcile(&other), Decision::NotOurs);
    let mut ours = svc("ours");
    ours.load_balancer_class = Some("swimlb.io/layer2".to_owned());
    assert_eq!(assigned(&state.reconcile(&ours)), vec![ip("192.0.2.31")]);

    let mut strict = AllocationState::new(ClassFilter {
        class: "swimlb.io/layer2".to_owned(),
        include_unset: false,
    });
    strict.set_pools(PoolSet::build(vec![pool("p", 0, &["192.0.2.0/28"])]));
    assert_eq!(strict.reconcile(&svc("unset")), Decision::NotOurs);
}

#[test]
fn configmap_and_resource_pools_merge() {
    let data = BTreeMap::from([(
        "config".to_owned(),
        "address-pools:\n- name: legacy\n  protocol: layer2\n  addresses: [192.0.2.30-192.0.2.49]\n"
            .to_owned(),
    )]);
    let mut declarations =
        parse_configmap("swimlb-system", "config", 0, &data).expect("valid document");
    declarations.push(pool("crd", 1, &["198.51.100.0/30"]));
    let mut state = AllocationState::new(ClassFilter::default());
    state.set_pools(PoolSet::build(declarations));
    // Same rank: by name, "crd" sorts first.
    assert_eq!(
        assigned(&state.reconcile(&svc("a"))),
        vec![ip("198.51.100.0")]
    );
    let mut legacy = svc("b");
    legacy.requested_pool = Some("legacy".to_owned());
    assert_eq!(assigned(&state.reconcile(&legacy)), vec![ip("192.0.2.30")]);
}

#[derive(Clone, Debug)]
enum Op {
    Create(u8),
    Delete(u8),
    Share(u8, u8),
    Request(u8, u8),
    Resize(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..24).prop_map(Op::Create),
        2 => (0u8..24).prop_map(Op::Delete),
        1 => (0u8..24, 0u8..3).prop_map(|(s, k)| Op::Share(s, k)),
        1 => (0u8..24, 0u8..20).prop_map(|(s, a)| Op::Request(s, a)),
        1 => (4u8..20).prop_map(Op::Resize),
    ]
}

fn run(ops: &[Op]) -> (AllocationState, Vec<(ServiceKey, Decision)>) {
    let mut state = AllocationState::new(ClassFilter::default());
    let pools = |size: u8| {
        let last = format!("192.0.2.{}", 30 + u32::from(size) - 1);
        PoolSet::build(vec![pool("p", 0, &[&format!("192.0.2.30-{last}")])])
    };
    state.set_pools(pools(10));
    let mut log = Vec::new();
    for op in ops {
        match op {
            Op::Create(s) => {
                let request = svc(&format!("s{s:02}"));
                log.push((request.key.clone(), state.reconcile(&request)));
            }
            Op::Delete(s) => {
                state.remove(&ServiceKey::new("ns", format!("s{s:02}")));
            }
            Op::Share(s, k) => {
                let mut request = svc(&format!("s{s:02}"));
                request.sharing = sharing(&format!("k{k}"), &[i32::from(*s)]);
                log.push((request.key.clone(), state.reconcile(&request)));
            }
            Op::Request(s, a) => {
                let mut request = svc(&format!("s{s:02}"));
                request.requested_ips = Ok(vec![ip(&format!("192.0.2.{}", 30 + a))]);
                log.push((request.key.clone(), state.reconcile(&request)));
            }
            Op::Resize(size) => state.set_pools(pools(*size)),
        }
    }
    (state, log)
}

proptest! {
    #[test]
    fn allocation_invariants(ops in proptest::collection::vec(op(), 0..80)) {
        let (state, log) = run(&ops);
        // Same inputs, same outcome.
        let (_, replay) = run(&ops);
        prop_assert_eq!(&log, &replay);

        // Every holder of an address is recorded with it, and co-holders may share.
        for (address, keys) in &state.holders {
            for key in keys {
                let holding = &state.services[key];
                prop_assert!(holding.ips.contains(address));
                for other in keys.iter().filter(|k| *k != key) {
                    let conflict = sharing_conflict(&holding.sharing, &state.services[other].sharing);
                    prop_assert_eq!(conflict, None);
                }
            }
        }
        for (key, holding) in &state.services {
            for address in &holding.ips {
                prop_assert!(state.holders[address].contains(key));
            }
        }
        // The allocator's free set is exactly the pool minus held addresses.
        if let Some(allocator) = state.allocators.get("p") {
            for range in allocator.ranges() {
                let first = match range.first() { IpAddr::V4(v4) => u32::from(v4), IpAddr::V6(_) => unreachable!() };
                let last = match range.last() { IpAddr::V4(v4) => u32::from(v4), IpAddr::V6(_) => unreachable!() };
                for n in first..=last {
                    let address = IpAddr::V4(std::net::Ipv4Addr::from(n));
                    prop_assert_eq!(allocator.is_free(address), !state.holders.contains_key(&address));
                }
            }
        }
    }

    #[test]
    fn fresh_allocations_take_the_lowest_free(ops in proptest::collection::vec(op(), 0..60)) {
        let (mut state, _) = run(&ops);
        let expected = state
            .allocators
            .get("p")
            .and_then(|a| a.peek_lowest(Family::V4));
        let decision = state.reconcile(&svc("fresh"));
        match expected {
            Some(address) => prop_assert_eq!(assigned(&decision), vec![address]),
            None => {
                let exhausted = matches!(decision, Decision::Pending(AllocationError::Exhausted { .. }));
                prop_assert!(exhausted);
            }
        }
    }
}
