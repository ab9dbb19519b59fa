//! Owner selection by rendezvous (highest random weight) hashing.
//!
//! Every speaker computes, for each VIP, a score per candidate node and picks the highest; all
//! speakers with the same inputs pick the same owner without talking to each other. Removing a
//! node moves only the VIPs it owned, adding one moves only VIPs onto it.
//!
//! # The score
//! `score(node, vip) = fmix64(fnv1a64(node_name_utf8 ‖ 0x00 ‖ vip_octets))`, where
//! - `fnv1a64` is 64-bit FNV-1a (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`),
//! - `vip_octets` are the 4 (IPv4) or 16 (IPv6) network-order octets of the address,
//! - `fmix64` is MurmurHash3's 64-bit finaliser, which fixes FNV's weak avalanche so that a
//!   one-bit change in the VIP flips half the score.
//!
//! Only byte arithmetic on fixed-width integers: the same on every platform and every version of
//! Rust. The 0x00 separator keeps `("a1", 0x02…)` and `("a", 0x31 0x02…)` apart. Ties (equal
//! scores, astronomically rare) go to the lexicographically smallest node name.

use std::net::IpAddr;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a64(mut state: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        state ^= u64::from(*byte);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The hash state after `node_name ‖ 0x00`: computed once per node, reused for every VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePrefix(u64);

impl NodePrefix {
    pub fn new(node_name: &str) -> Self {
        Self(fnv1a64(
            fnv1a64(FNV_OFFSET_BASIS, node_name.as_bytes()),
            &[0],
        ))
    }

    pub fn score(self, vip: IpAddr) -> u64 {
        let state = match vip {
            IpAddr::V4(v4) => fnv1a64(self.0, &v4.octets()),
            IpAddr::V6(v6) => fnv1a64(self.0, &v6.octets()),
        };
        fmix64(state)
    }
}

/// A 64-bit digest of a node name, `fmix64(fnv1a64(name))`: how the membership layer tells
/// members apart cheaply (see `NodeId`). Distinct names collide with probability about
/// n²/2⁶⁵ for n nodes.
pub fn name_digest(node_name: &str) -> u64 {
    fmix64(fnv1a64(FNV_OFFSET_BASIS, node_name.as_bytes()))
}

/// The rendezvous score of `node_name` for `vip` (see the module docs for the exact function).
pub fn score(node_name: &str, vip: IpAddr) -> u64 {
    NodePrefix::new(node_name).score(vip)
}

/// The same rendezvous score over arbitrary key bytes instead of a VIP's octets: how members
/// agree, without asking, which few of them check a suspect (key: the suspect's name).
pub fn keyed_score(node_name: &str, key: &[u8]) -> u64 {
    fmix64(fnv1a64(NodePrefix::new(node_name).0, key))
}

/// True when candidate `a` beats `b`: higher score, then smaller name.
fn beats(a: (u64, &str), b: (u64, &str)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// The owner of `vip` among `candidates`, or `None` when there are none. The result does not
/// depend on the order of the candidates; duplicates are harmless.
pub fn owner<'a, I>(vip: IpAddr, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(u64, &'a str)> = None;
    for name in candidates {
        let candidate = (score(name, vip), name);
        if best.is_none_or(|current| beats(candidate, current)) {
            best = Some(candidate);
        }
    }
    best.map(|(_, name)| name)
}

/// The owner of every VIP at once: `result[i]` is the index into `nodes` of the owner of
/// `vips[i]`, or `None` when `nodes` is empty. Hashes each node name once, so the cost is one
/// short FNV run and one finaliser per (VIP, node) pair.
pub fn owners<S: AsRef<str>>(vips: &[IpAddr], nodes: &[S]) -> Vec<Option<usize>> {
    let prefixes: Vec<NodePrefix> = nodes.iter().map(|n| NodePrefix::new(n.as_ref())).collect();
    vips.iter()
        .map(|&vip| {
            let mut best: Option<(u64, usize)> = None;
            for (index, prefix) in prefixes.iter().enumerate() {
                let candidate = (prefix.score(vip), index);
                let wins = match best {
                    None => true,
                    Some((score, current)) => beats(
                        (candidate.0, nodes[index].as_ref()),
                        (score, nodes[current].as_ref()),
                    ),
                };
                if wins {
                    best = Some(candidate);
                }
            }
            best.map(|(_, index)| index)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Pins the documented hash: a change here changes every owner in every cluster, which would
    /// break mixed-version rollouts.
    #[test]
    fn score_matches_documented_function() {
        // FNV-1a 64 of the empty input is the offset basis; of "a" it is the published vector.
        assert_eq!(fnv1a64(FNV_OFFSET_BASIS, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV_OFFSET_BASIS, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(FNV_OFFSET_BASIS, b"foobar"), 0x8594_4171_f739_67e8);
        // fmix64(0) is 0 and the finaliser is a bijection, so distinct states stay distinct.
        assert_eq!(fmix64(0), 0);
        let vip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 30));
        let mut bytes = b"node-a\0".to_vec();
        bytes.extend_from_slice(&[192, 0, 2, 30]);
        assert_eq!(
            score("node-a", vip),
            fmix64(fnv1a64(FNV_OFFSET_BASIS, &bytes))
        );
        assert_ne!(score("node-a", vip), score("node-b", vip));
    }

    #[test]
    fn separator_keeps_name_and_address_apart() {
        let v4 = IpAddr::V4(Ipv4Addr::new(0x31, 2, 3, 4));
        let v4b = IpAddr::V4(Ipv4Addr::new(2, 3, 4, 5));
        assert_ne!(score("a", v4), score("a1", v4b));
    }

    #[test]
    fn owners_agrees_with_owner() {
        let nodes: Vec<String> = (0..17).map(|i| format!("node-{i}")).collect();
        let vips: Vec<IpAddr> = (0..200u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i)))
            .chain((0..50u128).map(|i| IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | i))))
            .collect();
        let all = owners(&vips, &nodes);
        for (vip, index) in vips.iter().zip(all) {
            let one = owner(*vip, nodes.iter().map(String::as_str));
            assert_eq!(one, index.map(|i| nodes[i].as_str()));
        }
        assert_eq!(owners::<&str>(&vips[..1], &[]), vec![None]);
        assert_eq!(owner(vips[0], std::iter::empty()), None);
    }

    fn v4_vips(count: u32) -> Vec<IpAddr> {
        // 198.51.100.0 upwards, wrapping into the next /24s: the addresses only feed the hash.
        (0..count)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i)))
            .collect()
    }

    fn max_over_mean(nodes: usize) -> f64 {
        let names: Vec<String> = (0..nodes).map(|i| format!("worker-{i:04}")).collect();
        let vips = v4_vips(100 * nodes as u32);
        let mut load: BTreeMap<usize, usize> = BTreeMap::new();
        for index in owners(&vips, &names).into_iter().flatten() {
            *load.entry(index).or_default() += 1;
        }
        let max = load.values().copied().max().unwrap_or(0) as f64;
        max / (vips.len() as f64 / nodes as f64)
    }

    #[test]
    fn load_is_spread_over_10_nodes() {
        let ratio = max_over_mean(10);
        assert!(ratio < 1.35, "max/mean load {ratio} at 10 nodes");
    }

    #[test]
    fn load_is_spread_over_100_nodes() {
        let ratio = max_over_mean(100);
        assert!(ratio < 1.35, "max/mean load {ratio} at 100 nodes");
    }

    fn arb_vip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        ]
    }

    fn arb_nodes() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::btree_set("[a-z][a-z0-9-]{0,12}", 1..24)
            .prop_map(|set| set.into_iter().collect())
    }

    proptest! {
        #[test]
        fn owner_ignores_candidate_order(vip in arb_vip(), nodes in arb_nodes(), seed in any::<u64>()) {
            let mut shuffled = nodes.clone();
            // A cheap deterministic permutation driven by the seed.
            let len = shuffled.len();
            for i in 0..len {
                let j = (seed.rotate_left(i as u32) as usize) % len;
                shuffled.swap(i, j);
            }
            prop_assert_eq!(
                owner(vip, nodes.iter().map(String::as_str)),
                owner(vip, shuffled.iter().map(String::as_str))
            );
        }

        #[test]
        fn removing_a_node_moves_only_its_vips(
            vips in proptest::collection::vec(arb_vip(), 1..64),
            nodes in arb_nodes(),
            removed in any::<proptest::sample::Index>(),
        ) {
            prop_assume!(nodes.len() >= 2);
            let removed = removed.get(&nodes);
            let before = owners(&vips, &nodes);
            let rest: Vec<&String> = nodes.iter().filter(|n| *n != removed).collect();
            let after = owners(&vips, &rest);
            for ((b, a), vip) in before.iter().zip(&after).zip(&vips) {
                let b = &nodes[b.expect("non-empty")];
                let a = rest[a.expect("non-empty")];
                if b == removed {
                    prop_assert_ne!(a, removed, "{} stayed on the removed node", vip);
                } else {
                    prop_assert_eq!(a, b, "{} moved although its owner stayed", vip);
                }
            }
        }

        #[test]
        fn adding_a_node_moves_vips_only_onto_it(
            vips in proptest::collection::vec(arb_vip(), 1..64),
            nodes in arb_nodes(),
            added in "[A-Z][a-z0-9]{0,8}",
        ) {
            let before = owners(&vips, &nodes);
            let mut grown = nodes.clone();
            grown.push(added.clone());
            let after = owners(&vips, &grown);
            for (b, a) in before.iter().zip(&after) {
                let b = &nodes[b.expect("non-empty")];
                let a = &grown[a.expect("non-empty")];
                prop_assert!(a == b || *a == added, "moved from {} to {} instead of the new node", b, a);
            }
        }
    }
}
