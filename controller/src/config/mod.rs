//! Pool configuration from both sources, the `IPAddressPool` custom resource and the legacy
//! ConfigMap, parsed and merged into one view. Every semantic error names the pool and the
//! offending value; a pool with errors stays in the view (so its status can say why) but serves
//! no new allocation.
//!
//! This module holds the pools, their errors and the merge ([`PoolSet`]); [`parse_configmap`]
//! reads the legacy ConfigMap and [`parse_addresses`] one `addresses` entry.

mod addresses;
mod configmap;

pub use addresses::parse_addresses;
pub use configmap::{CONFIGMAP_KEY, ConfigMapError, LegacyConfig, LegacyPool, parse_configmap};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use swimlb_api::{IPAddressPoolSpec, Selector};

use crate::allocator::{AddressRange, MAX_AVOIDED_BLOCKS, avoided_blocks};

/// Where a pool was declared.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PoolOrigin {
    /// An `IPAddressPool` object.
    Resource { namespace: String, name: String },
    /// An entry of the legacy ConfigMap's `address-pools` list.
    ConfigMap {
        namespace: String,
        name: String,
        index: usize,
    },
}

impl fmt::Display for PoolOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolOrigin::Resource { namespace, name } => {
                write!(f, "IPAddressPool {namespace}/{name}")
            }
            PoolOrigin::ConfigMap {
                namespace,
                name,
                index,
            } => write!(f, "ConfigMap {namespace}/{name} address-pools[{index}]"),
        }
    }
}

/// A semantic error in one pool, naming the offending value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("address {value:?} is neither a CIDR nor a first-last range: {reason}")]
    BadAddress { value: String, reason: String },
    #[error("address range {value:?}: start {first} is after end {last}")]
    StartAfterEnd {
        value: String,
        first: IpAddr,
        last: IpAddr,
    },
    #[error("address range {value:?} mixes IPv4 and IPv6")]
    MixedFamilies { value: String },
    #[error("addresses {value:?} and {other:?} of this pool overlap")]
    OverlapWithinPool { value: String, other: String },
    #[error("addresses {value:?} overlap {other:?} of pool {other_pool:?}")]
    OverlapAcrossPools {
        value: String,
        other_pool: String,
        other: String,
    },
    #[error("protocol {protocol:?} is not supported: swimlb only does layer2")]
    UnknownProtocol { protocol: String },
    #[error("no protocol given: set protocol: layer2")]
    MissingProtocol,
    #[error("the pool has no name")]
    MissingName,
    #[error("pool name {name:?} is already used by {other}")]
    DuplicateName { name: String, other: String },
    #[error("serviceAllocation: {reason}")]
    BadSelector { reason: String },
    #[error(
        "avoidBuggyIPs over {blocks} /24 blocks would bring the pools that avoid .0 and .255 \
         to more than {max} blocks in all"
    )]
    TooManyAvoidedBlocks { blocks: u128, max: u128 },
}

/// Which Services a pool serves, and its rank.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// As given: lower is tried first, 0 after every positive value.
    pub priority: i32,
    pub namespaces: BTreeSet<String>,
    pub namespace_selectors: Vec<Selector>,
    pub service_selectors: Vec<Selector>,
}

impl ServiceAllocation {
    /// Sort key: positive priorities ascending, then 0 and negatives (treated as unset).
    pub fn rank(&self) -> u32 {
        if self.priority > 0 {
            self.priority.unsigned_abs()
        } else {
            u32::MAX
        }
    }

    /// Whether a Service in `namespace` with these labels is one this pool serves.
    pub fn matches(
        &self,
        namespace: &str,
        namespace_labels: &BTreeMap<String, String>,
        service_labels: &BTreeMap<String, String>,
    ) -> bool {
        let namespace_ok = (self.namespaces.is_empty() && self.namespace_selectors.is_empty())
            || self.namespaces.contains(namespace)
            || self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(namespace_labels));
        let service_ok = self.service_selectors.is_empty()
            || self
                .service_selectors
                .iter()
                .any(|s| s.matches(service_labels));
        namespace_ok && service_ok
    }
}

/// A pool as declared, before validation against the other pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDeclaration {
    pub name: String,
    pub origin: PoolOrigin,
    /// Older declarations win overlaps and name clashes: (creation time in seconds, origin).
    pub created: i64,
    pub addresses: Vec<String>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub allocation: Option<ServiceAllocation>,
    /// Errors found while reading the declaration itself.
    pub errors: Vec<PoolError>,
}

impl PoolDeclaration {
    /// Reads an `IPAddressPool` object's spec.
    pub fn from_resource(
        namespace: &str,
        name: &str,
        created: i64,
        spec: &IPAddressPoolSpec,
    ) -> Self {
        let mut errors = Vec::new();
        let allocation = spec.service_allocation.as_ref().map(|a| {
            let mut parse = |selectors: &[LabelSelector]| -> Vec<Selector> {
                selectors
                    .iter()
                    .filter_map(|s| match Selector::parse(s) {
                        Ok(s) => Some(s),
                        Err(reason) => {
                            errors.push(PoolError::BadSelector { reason });
                            None
                        }
                    })
                    .collect()
            };
            let namespace_selectors = parse(&a.namespace_selectors);
            let service_selectors = parse(&a.service_selectors);
            ServiceAllocation {
                priority: a.priority.unwrap_or(0),
                namespaces: a.namespaces.iter().cloned().collect(),
                namespace_selectors,
                service_selectors,
            }
        });
        Self {
            name: name.to_owned(),
            origin: PoolOrigin::Resource {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            },
            created,
            addresses: spec.addresses.clone(),
            auto_assign: spec.auto_assign.unwrap_or(true),
            avoid_buggy_ips: spec.avoid_buggy_ips.unwrap_or(false),
            allocation,
            errors,
        }
    }
}

/// A pool in the merged view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub origin: PoolOrigin,
    /// The ranges that parsed, each with the text it came from.
    pub ranges: Vec<(String, AddressRange)>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub allocation: Option<ServiceAllocation>,
    /// Empty when the pool is valid.
    pub errors: Vec<PoolError>,
}

impl Pool {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|(_, r)| r.contains(ip))
    }

    /// Every error as one line, for Events and status conditions.
    pub fn error_summary(&self) -> String {
        self.errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Every pool by name, validated against each other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolSet {
    pools: BTreeMap<String, Pool>,
    /// Declarations whose name clashed with an older pool's, reported but not usable.
    shadowed: Vec<Pool>,
}

impl PoolSet {
    /// Validates declarations from both sources against each other. Older declarations (by
    /// creation time, then origin) keep contested names and addresses; the newer one is
    /// reported invalid, so adding a bad pool never disturbs a working one.
    pub fn build(mut declarations: Vec<PoolDeclaration>) -> Self {
        declarations.sort_by(|a, b| (a.created, &a.origin).cmp(&(b.created, &b.origin)));
        let mut pools: BTreeMap<String, Pool> = BTreeMap::new();
        let mut shadowed = Vec::new();
        // Ranges of pools accepted so far, for the across-pool overlap check.
        let mut claimed: Vec<(String, String, AddressRange)> = Vec::new();
        // /24 blocks of accepted pools that avoid .0 and .255 (see `MAX_AVOIDED_BLOCKS`).
        let mut avoided: u128 = 0;
        for declaration in declarations {
            let mut errors = declaration.errors;
            let mut ranges: Vec<(String, AddressRange)> = Vec::new();
            for value in &declaration.addresses {
                match parse_addresses(value) {
                    Ok(range) => {
                        if let Some((other, _)) = ranges.iter().find(|(_, r)| r.overlaps(&range)) {
                            errors.push(PoolError::OverlapWithinPool {
                                value: value.clone(),
                                other: other.clone(),
                            });
                        }
                        ranges.push((value.clone(), range));
                    }
                    Err(e) => errors.push(e),
                }
            }
            for (value, range) in &ranges {
                if let Some((other_pool, other, _)) = claimed
                    .iter()
                    .find(|(pool, _, r)| *pool != declaration.name && r.overlaps(range))
                {
                    errors.push(PoolError::OverlapAcrossPools {
                        value: value.clone(),
                        other_pool: other_pool.clone(),
                        other: other.clone(),
                    });
                }
            }
            let pool = Pool {
                name: declaration.name.clone(),
                origin: declaration.origin,
                ranges,
                auto_assign: declaration.auto_assign,
                avoid_buggy_ips: declaration.avoid_buggy_ips,
                allocation: declaration.allocation,
                errors,
            };
            if let Some(existing) = pools.get(&pool.name) {
                let mut pool = pool;
                pool.errors.push(PoolError::DuplicateName {
                    name: pool.name.clone(),
                    other: existing.origin.to_string(),
                });
                shadowed.push(pool);
                continue;
            }
            let mut pool = pool;
            if pool.is_valid() && pool.avoid_buggy_ips {
                let blocks: u128 = pool.ranges.iter().map(|(_, r)| avoided_blocks(r)).sum();
                if avoided + blocks > MAX_AVOIDED_BLOCKS {
                    pool.errors.push(PoolError::TooManyAvoidedBlocks {
                        blocks,
                        max: MAX_AVOIDED_BLOCKS,
                    });
                } else {
                    avoided += blocks;
                }
            }
            if pool.is_valid() {
                claimed.extend(
                    pool.ranges
                        .iter()
                        .map(|(value, r)| (pool.name.clone(), value.clone(), *r)),
                );
            }
            pools.insert(pool.name.clone(), pool);
        }
        Self { pools, shadowed }
    }

    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.pools.get(name)
    }

    /// Pools by name (valid or not); name clashes are in [`PoolSet::shadowed`].
    pub fn iter(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    /// Declarations that lost a name clash.
    pub fn shadowed(&self) -> &[Pool] {
        &self.shadowed
    }

    /// Every pool with errors, including shadowed ones.
    pub fn invalid(&self) -> impl Iterator<Item = &Pool> {
        self.pools
            .values()
            .chain(self.shadowed.iter())
            .filter(|p| !p.is_valid())
    }

    pub fn len(&self) -> usize {
        self.pools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn declaration(name: &str, created: i64, addresses: &[&str]) -> PoolDeclaration {
        PoolDeclaration::from_resource(
            "swimlb-system",
            name,
            created,
            &IPAddressPoolSpec {
                addresses: addresses.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            },
        )
    }

    pub(super) fn configmap(text: &str) -> Result<Vec<PoolDeclaration>, ConfigMapError> {
        let mut data = BTreeMap::new();
        data.insert(CONFIGMAP_KEY.to_owned(), text.to_owned());
        parse_configmap("swimlb-system", "config", 0, &data)
    }

    #[test]
    fn overlap_within_a_pool_is_reported() {
        let set = PoolSet::build(vec![declaration(
            "a",
            0,
            &["192.0.2.0/28", "192.0.2.10-192.0.2.20"],
        )]);
        let pool = set.get("a").expect("pool");
        assert_eq!(
            pool.errors,
            vec![PoolError::OverlapWithinPool {
                value: "192.0.2.10-192.0.2.20".to_owned(),
                other: "192.0.2.0/28".to_owned()
            }]
        );
    }

    #[test]
    fn overlap_across_pools_invalidates_the_newer() {
        let set = PoolSet::build(vec![
            declaration("new", 20, &["192.0.2.40-192.0.2.60"]),
            declaration("old", 10, &["192.0.2.30-192.0.2.49"]),
        ]);
        assert!(set.get("old").expect("old").is_valid());
        let new = set.get("new").expect("new");
        assert_eq!(
            new.errors,
            vec![PoolError::OverlapAcrossPools {
                value: "192.0.2.40-192.0.2.60".to_owned(),
                other_pool: "old".to_owned(),
                other: "192.0.2.30-192.0.2.49".to_owned()
            }]
        );
        // An invalid pool claims nothing, so a third pool overlapping only it is fine.
        let set = PoolSet::build(vec![
            declaration("old", 10, &["192.0.2.30-192.0.2.49"]),
            declaration("bad", 20, &["192.0.2.40-192.0.2.60"]),
            declaration("third", 30, &["192.0.2.55-192.0.2.59"]),
        ]);
        assert!(set.get("third").expect("third").is_valid());
    }

    #[test]
    fn duplicate_names_across_sources_keep_the_older() {
        let mut from_map = configmap(
            "address-pools:\n- name: default\n  protocol: layer2\n  addresses: [198.51.100.0/24]\n",
        )
        .expect("valid");
        from_map[0].created = 50;
        let set = PoolSet::build(vec![
            from_map.remove(0),
            declaration("default", 5, &["192.0.2.0/24"]),
        ]);
        let kept = set.get("default").expect("pool");
        assert!(matches!(kept.origin, PoolOrigin::Resource { .. }));
        assert_eq!(set.shadowed().len(), 1);
        let text = set.shadowed()[0].error_summary();
        assert!(
            text.contains("already used by IPAddressPool swimlb-system/default"),
            "{text}"
        );
        assert_eq!(set.invalid().count(), 1);
    }

    fn avoiding(name: &str, created: i64, addresses: &[&str]) -> PoolDeclaration {
        let mut declaration = declaration(name, created, addresses);
        declaration.avoid_buggy_ips = true;
        declaration
    }

    #[test]
    fn avoided_blocks_are_capped_over_all_pools() {
        // Found by fuzzing: avoidBuggyIPs over most of the IPv4 space (here 11 million /24
        // blocks) made the allocator build one interval per block, for seconds and gigabytes.
        let pools = PoolSet::build(vec![avoiding("huge", 0, &["19.10.2.30-194.20.2.4"])]);
        let huge = pools.get("huge").expect("reported");
        assert_eq!(
            huge.errors,
            vec![PoolError::TooManyAvoidedBlocks {
                blocks: 11_471_361,
                max: MAX_AVOIDED_BLOCKS,
            }]
        );
        assert!(
            huge.error_summary()
                .contains("avoidBuggyIPs over 11471361 /24 blocks")
        );

        // The cap counts every avoiding pool: the older ones keep their addresses, a newer one
        // that would pass it is invalid, and pools that do not avoid are not counted.
        let pools = PoolSet::build(vec![
            avoiding("a", 0, &["10.0.0.0/9", "192.0.2.0/24"]),
            avoiding("b", 1, &["10.128.0.0/9"]),
            declaration("c", 2, &["11.0.0.0/8"]),
            avoiding("d", 3, &["10.128.0.0/10", "2001:db8::/32"]),
        ]);
        let valid: Vec<&str> = pools
            .iter()
            .filter(|p| p.is_valid())
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(valid, vec!["a", "c", "d"]);
        assert!(matches!(
            pools.get("b").expect("b").errors[..],
            [PoolError::TooManyAvoidedBlocks { blocks: 32_768, .. }]
        ));
    }

    #[test]
    fn selectors_and_namespaces_match() {
        let spec = IPAddressPoolSpec {
            addresses: vec!["192.0.2.0/24".to_owned()],
            service_allocation: Some(swimlb_api::ServiceAllocation {
                priority: Some(3),
                namespaces: vec!["team-a".to_owned()],
                namespace_selectors: vec![LabelSelector {
                    match_labels: Some(BTreeMap::from([("env".to_owned(), "prod".to_owned())])),
                    match_expressions: None,
                }],
                service_selectors: vec![LabelSelector {
                    match_labels: None,
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: "tier".to_owned(),
                        operator: "In".to_owned(),
                        values: Some(vec!["web".to_owned(), "api".to_owned()]),
                    }]),
                }],
            }),
            ..Default::default()
        };
        let declaration = PoolDeclaration::from_resource("swimlb-system", "p", 0, &spec);
        assert!(declaration.errors.is_empty());
        let allocation = declaration.allocation.expect("allocation");
        assert_eq!(allocation.rank(), 3);
        let web = BTreeMap::from([("tier".to_owned(), "web".to_owned())]);
        let db = BTreeMap::from([("tier".to_owned(), "db".to_owned())]);
        let prod = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
        let none = BTreeMap::new();
        assert!(allocation.matches("team-a", &none, &web));
        assert!(allocation.matches("other", &prod, &web));
        assert!(!allocation.matches("other", &none, &web));
        assert!(!allocation.matches("team-a", &none, &db));
    }

    #[test]
    fn bad_selectors_are_pool_errors() {
        for (operator, values, needle) in [
            ("Near", None, "unknown operator \"Near\""),
            ("In", None, "needs values"),
            ("Exists", Some(vec!["x".to_owned()]), "takes no values"),
        ] {
            let spec = IPAddressPoolSpec {
                addresses: vec!["192.0.2.0/24".to_owned()],
                service_allocation: Some(swimlb_api::ServiceAllocation {
                    service_selectors: vec![LabelSelector {
                        match_labels: None,
                        match_expressions: Some(vec![LabelSelectorRequirement {
                            key: "tier".to_owned(),
                            operator: operator.to_owned(),
                            values,
                        }]),
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            };
            let d = PoolDeclaration::from_resource("ns", "p", 0, &spec);
            assert_eq!(d.errors.len(), 1);
            assert!(d.errors[0].to_string().contains(needle), "{}", d.errors[0]);
        }
    }

    proptest! {
        #[test]
        fn valid_pools_never_overlap(
            starts in proptest::collection::vec((0u32..200, 1u32..30), 1..8),
        ) {
            let declarations: Vec<PoolDeclaration> = starts
                .iter()
                .enumerate()
                .map(|(i, (start, len))| {
                    let base = u32::from(Ipv4Addr::new(192, 0, 2, 0));
                    let text = format!(
                        "{}-{}",
                        Ipv4Addr::from(base + start),
                        Ipv4Addr::from(base + (start + len).min(255))
                    );
                    declaration(&format!("p{i}"), i as i64, &[text.as_str()])
                })
                .collect();
            let set = PoolSet::build(declarations);
            let valid: Vec<&Pool> = set.iter().filter(|p| p.is_valid()).collect();
            prop_assert!(!valid.is_empty());
            for (i, a) in valid.iter().enumerate() {
                for b in &valid[i + 1..] {
                    for (_, ra) in &a.ranges {
                        for (_, rb) in &b.ranges {
                            prop_assert!(!ra.overlaps(rb));
                        }
                    }
                }
            }
            // Every invalid pool overlaps an older valid one.
            for pool in set.invalid() {
                let is_overlap =
                    matches!(pool.errors[0], PoolError::OverlapAcrossPools { .. });
                prop_assert!(is_overlap);
            }
        }
    }
}
