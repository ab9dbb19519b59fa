//! Service annotation names. Every input annotation is read under swimlb's own prefix first, then
//! under MetalLB's current and legacy prefixes, so Services written for MetalLB keep working.

use std::collections::BTreeMap;

/// Prefixes read for input annotations, most specific first.
pub const INPUT_PREFIXES: [&str; 3] = ["swimlb.io/", "metallb.io/", "metallb.universe.tf/"];

/// Name (without prefix) of the annotation choosing the pool to allocate from.
pub const ADDRESS_POOL: &str = "address-pool";
/// Name (without prefix) of the annotation requesting addresses (comma separated for dual stack).
pub const LOAD_BALANCER_IPS: &str = "loadBalancerIPs";
/// Name (without prefix) of the annotation carrying the IP sharing key.
pub const ALLOW_SHARED_IP: &str = "allow-shared-ip";

/// Output annotation naming the pool a Service's addresses came from.
pub const IP_ALLOCATED_FROM_POOL: &str = "swimlb.io/ip-allocated-from-pool";

/// The `spec.loadBalancerClass` value swimlb answers to when configured to require one.
pub const DEFAULT_LOAD_BALANCER_CLASS: &str = "swimlb.io/layer2";

/// Looks an input annotation up under every accepted prefix; swimlb's own prefix wins.
/// Returns the full key that matched and its value.
pub fn lookup<'a>(
    annotations: &'a BTreeMap<String, String>,
    name: &str,
) -> Option<(&'a str, &'a str)> {
    INPUT_PREFIXES.iter().find_map(|prefix| {
        annotations
            .get_key_value(&format!("{prefix}{name}"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_prefix_wins_over_metallb() {
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "metallb.universe.tf/address-pool".to_owned(),
            "old".to_owned(),
        );
        assert_eq!(
            lookup(&annotations, ADDRESS_POOL),
            Some(("metallb.universe.tf/address-pool", "old"))
        );
        annotations.insert("swimlb.io/address-pool".to_owned(), "new".to_owned());
        assert_eq!(
            lookup(&annotations, ADDRESS_POOL),
            Some(("swimlb.io/address-pool", "new"))
        );
        assert_eq!(lookup(&annotations, ALLOW_SHARED_IP), None);
    }

    #[test]
    fn metallb_io_prefix_is_read() {
        let mut annotations = BTreeMap::new();
        annotations.insert("metallb.io/allow-shared-ip".to_owned(), "k".to_owned());
        assert_eq!(
            lookup(&annotations, ALLOW_SHARED_IP).map(|(_, v)| v),
            Some("k")
        );
    }
}
