//! Which VIPs this node owns, given the live members: the pure rule every speaker applies.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use swimlb_gossip::owner::owner;

/// Every VIP with the nodes allowed to own it (`None`: any node).
pub type VipPlacement = BTreeMap<IpAddr, Option<BTreeSet<String>>>;

/// The owner of `vip` among the live members allowed to hold it.
pub fn owner_of<'a>(
    vip: IpAddr,
    allowed: Option<&'a BTreeSet<String>>,
    live: &'a BTreeSet<String>,
) -> Option<&'a str> {
    match allowed {
        None => owner(vip, live.iter().map(String::as_str)),
        Some(allowed) => owner(vip, live.intersection(allowed).map(String::as_str)),
    }
}

/// The VIPs whose rendezvous owner among (live members ∩ nodes allowed for the VIP) is `node`.
pub fn owned_vips(node: &str, vips: &VipPlacement, live: &BTreeSet<String>) -> BTreeSet<IpAddr> {
    vips.iter()
        .filter(|(vip, allowed)| owner_of(**vip, allowed.as_ref(), live) == Some(node))
        .map(|(vip, _)| *vip)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn placement(count: u8) -> VipPlacement {
        (0..count)
            .map(|i| (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i)), None))
            .collect()
    }

    #[test]
    fn every_vip_has_exactly_one_owner_among_live_members() {
        let vips = placement(50);
        let live = names(&["a", "b", "c", "d", "e"]);
        let mut seen = BTreeMap::new();
        for node in &live {
            let owned = owned_vips(node, &vips, &live);
            assert!(!owned.is_empty(), "{node} owns nothing out of 50 VIPs");
            for vip in owned {
                assert!(
                    seen.insert(vip, node.clone()).is_none(),
                    "{vip} owned twice"
                );
            }
        }
        assert_eq!(seen.len(), vips.len());
    }

    #[test]
    fn a_lone_node_owns_everything_and_a_dead_node_owns_nothing() {
        let vips = placement(10);
        assert_eq!(owned_vips("a", &vips, &names(&["a"])).len(), 10);
        assert!(owned_vips("z", &vips, &names(&["a", "b"])).is_empty());
    }

    #[test]
    fn restrictions_are_respected() {
        let vip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let mut vips = VipPlacement::new();
        vips.insert(vip, Some(names(&["b"])));
        let live = names(&["a", "b", "c"]);
        assert!(owned_vips("a", &vips, &live).is_empty());
        assert!(owned_vips("c", &vips, &live).is_empty());
        assert!(owned_vips("b", &vips, &live).contains(&vip));
        // Its only allowed node is down: nobody announces it.
        let without_b = names(&["a", "c"]);
        assert!(owned_vips("a", &vips, &without_b).is_empty());
        assert!(owned_vips("c", &vips, &without_b).is_empty());
        assert_eq!(owner_of(vip, vips[&vip].as_ref(), &without_b), None);
    }

    #[test]
    fn a_departure_moves_only_the_departed_nodes_vips() {
        let vips = placement(60);
        let all = names(&["a", "b", "c", "d"]);
        let rest = names(&["a", "b", "c"]);
        for node in &rest {
            let before = owned_vips(node, &vips, &all);
            let after = owned_vips(node, &vips, &rest);
            assert!(before.is_subset(&after), "{node} lost a VIP when d left");
        }
    }
}
