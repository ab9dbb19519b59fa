//! `L2Advertisement` specs as the API server hands them over (JSON): an input is one spec or
//! a JSON array of specs, parsed by `Advertisement::parse` and, when valid, applied by the
//! speaker's placement to a fixed set of pools, nodes and Services. Whatever the specs say, a
//! VIP is placed only on eligible nodes and restricted only to interfaces some advertisement
//! names, and only for VIPs this node may own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use swimlb_api::{Advertisement, L2AdvertisementSpec};
use swimlb_speaker::placement::{Advertising, PlacementRules, placement};

fuzz_target!(|data: &[u8]| {
    let Some(specs) = swimlb_fuzz::one_or_many::<L2AdvertisementSpec>(data) else {
        return;
    };
    let advertisements: Vec<Advertisement> = specs
        .iter()
        .filter_map(|spec| Advertisement::parse(spec).ok())
        .collect();
    let named: BTreeSet<String> = advertisements
        .iter()
        .flat_map(|a| a.interfaces.iter().cloned())
        .collect();
    let fixture = swimlb_fuzz::placement::Fixture::new();
    let rules = PlacementRules {
        endpoints_known: true,
        advertising: Advertising::Known {
            pools: fixture.pool_labels(),
            advertisements,
        },
        local_node: "node-a".to_owned(),
        ..PlacementRules::default()
    };
    let got = placement(&fixture.services, &fixture.nodes, &[], &rules);
    let eligible = fixture.eligible();
    for (vip, nodes) in &got.vips {
        let nodes = nodes.as_ref().expect("Kubernetes placement names nodes");
        assert!(!nodes.is_empty(), "{vip} placed on no node");
        assert!(nodes.is_subset(&eligible), "{vip} placed on {nodes:?}");
    }
    for (vip, names) in &got.interfaces {
        let allowed = got.vips.get(vip).and_then(Option::as_ref);
        assert!(allowed.is_some_and(|n| n.contains("node-a")), "{vip}");
        assert!(names.is_subset(&named), "{vip} restricted to {names:?}");
    }
});
