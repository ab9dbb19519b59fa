//! The `L2Advertisement` custom resource (field-compatible with MetalLB's) and its parsed form.
//!
//! An advertisement says which pools are announced, from which nodes and on which interfaces:
//! - pools: those named in `ipAddressPools`, plus those whose labels match any of
//!   `ipAddressPoolSelectors`; with neither field, every pool;
//! - nodes: those matching any of `nodeSelectors`; without it, every node;
//! - interfaces: those listed; without the field, every interface the speaker uses.
//!
//! A pool is announced from the union of the nodes of the advertisements that select it; a
//! pool that no advertisement selects is not announced (pools of the legacy ConfigMap are not
//! `IPAddressPool` objects and are announced from every node, as before advertisements).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Selector;

/// Which pools are announced with layer 2 (ARP and NDP), from which nodes, on which interfaces.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "swimlb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    shortname = "l2adv",
    category = "swimlb",
    doc = "Which address pools swimlb announces with ARP and NDP, from which nodes and on which interfaces.",
    printcolumn = r#"{"name":"IPAddressPools","type":"string","jsonPath":".spec.ipAddressPools"}"#,
    printcolumn = r#"{"name":"IPAddressPool Selectors","type":"string","jsonPath":".spec.ipAddressPoolSelectors"}"#,
    printcolumn = r#"{"name":"Interfaces","type":"string","jsonPath":".spec.interfaces"}"#,
    printcolumn = r#"{"name":"Node Selectors","type":"string","jsonPath":".spec.nodeSelectors","priority":10}"#
)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    /// Names of IPAddressPools (in this namespace) announced by this advertisement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Label selectors on IPAddressPools announced by this advertisement. With neither this
    /// field nor ipAddressPools, every pool is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Label selectors on the Nodes that may announce; empty: every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to answer and announce on; empty: every interface the speaker uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}

/// Why an advertisement cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdvertisementError {
    #[error("ipAddressPoolSelectors[{index}]: {reason}")]
    PoolSelector { index: usize, reason: String },
    #[error("nodeSelectors[{index}]: {reason}")]
    NodeSelector { index: usize, reason: String },
    #[error("ipAddressPools[{index}] is empty")]
    EmptyPoolName { index: usize },
    #[error("interfaces[{index}] {name:?} is not an interface name")]
    BadInterface { index: usize, name: String },
}

/// An advertisement whose selectors parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advertisement {
    pools: BTreeSet<String>,
    pool_selectors: Vec<Selector>,
    node_selectors: Vec<Selector>,
    /// Empty: every interface.
    pub interfaces: BTreeSet<String>,
}

/// Longest interface name Linux accepts (IFNAMSIZ less the terminating NUL).
const MAX_INTERFACE_NAME: usize = 15;

impl Advertisement {
    /// Checks `spec`; every error is reported, with the field it is in.
    pub fn parse(spec: &L2AdvertisementSpec) -> Result<Self, Vec<AdvertisementError>> {
        let mut errors = Vec::new();
        for (index, name) in spec.ip_address_pools.iter().enumerate() {
            if name.trim().is_empty() {
                errors.push(AdvertisementError::EmptyPoolName { index });
            }
        }
        let pool_selectors = parse_selectors(
            &spec.ip_address_pool_selectors,
            |index, reason| AdvertisementError::PoolSelector { index, reason },
            &mut errors,
        );
        let node_selectors = parse_selectors(
            &spec.node_selectors,
            |index, reason| AdvertisementError::NodeSelector { index, reason },
            &mut errors,
        );
        for (index, name) in spec.interfaces.iter().enumerate() {
            let valid = !name.is_empty()
                && name.len() <= MAX_INTERFACE_NAME
                && !name.contains(['/', ' ', '\t', '\n', '\0', ':']);
            if !valid {
                errors.push(AdvertisementError::BadInterface {
                    index,
                    name: name.clone(),
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            pools: spec.ip_address_pools.iter().cloned().collect(),
            pool_selectors,
            node_selectors,
            interfaces: spec.interfaces.iter().cloned().collect(),
        })
    }

    /// Whether this advertisement announces the pool `name` with these labels.
    pub fn selects_pool(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.pools.is_empty() && self.pool_selectors.is_empty())
            || self.pools.contains(name)
            || self.pool_selectors.iter().any(|s| s.matches(labels))
    }

    /// Whether a node with these labels may announce for this advertisement.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        self.node_selectors.is_empty() || self.node_selectors.iter().any(|s| s.matches(labels))
    }
}

/// The selectors that parse; an error, made by `error` from the index and the reason, for
/// each one that does not.
fn parse_selectors(
    selectors: &[LabelSelector],
    error: impl Fn(usize, String) -> AdvertisementError,
    errors: &mut Vec<AdvertisementError>,
) -> Vec<Selector> {
    selectors
        .iter()
        .enumerate()
        .filter_map(|(index, s)| {
            Selector::parse(s)
                .map_err(|reason| errors.push(error(index, reason)))
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn spec(yaml: &str) -> L2AdvertisementSpec {
        serde_saphyr::from_str(yaml).expect("advertisement fixture")
    }

    #[test]
    fn an_empty_advertisement_selects_every_pool_and_node() {
        let ad = Advertisement::parse(&spec("{}")).expect("valid");
        assert!(ad.selects_pool("any", &labels(&[])));
        assert!(ad.selects_node(&labels(&[])));
        assert!(ad.interfaces.is_empty());
    }

    #[test]
    fn pools_are_selected_by_name_or_by_label() {
        let ad = Advertisement::parse(&spec(
            "ipAddressPools: [front]\nipAddressPoolSelectors:\n- matchLabels: {tier: edge}\n",
        ))
        .expect("valid");
        assert!(ad.selects_pool("front", &labels(&[])));
        assert!(ad.selects_pool("other", &labels(&[("tier", "edge")])));
        assert!(!ad.selects_pool("other", &labels(&[("tier", "core")])));
        let named_only = Advertisement::parse(&spec("ipAddressPools: [front]\n")).expect("valid");
        assert!(!named_only.selects_pool("back", &labels(&[])));
    }

    #[test]
    fn node_selectors_are_alternatives_with_match_expressions() {
        let ad = Advertisement::parse(&spec(
            "nodeSelectors:\n- matchLabels: {zone: a}\n\
             - matchExpressions:\n  - {key: role, operator: In, values: [edge, lb]}\n",
        ))
        .expect("valid");
        assert!(ad.selects_node(&labels(&[("zone", "a")])));
        assert!(ad.selects_node(&labels(&[("role", "lb")])));
        assert!(!ad.selects_node(&labels(&[("zone", "b"), ("role", "web")])));
    }

    #[test]
    fn every_bad_field_is_reported_with_its_place() {
        let bad = L2AdvertisementSpec {
            ip_address_pools: vec![" ".to_owned()],
            node_selectors: vec![LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "zone".to_owned(),
                    operator: "Near".to_owned(),
                    values: None,
                }]),
            }],
            interfaces: vec!["eth0".to_owned(), "a/b".to_owned(), "x".repeat(16)],
            ..L2AdvertisementSpec::default()
        };
        let errors = Advertisement::parse(&bad).expect_err("invalid");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{text:?}");
        assert!(text[0].contains("ipAddressPools[0]"));
        assert!(text[1].contains("nodeSelectors[0]") && text[1].contains("Near"));
        assert!(text[2].contains("interfaces[1]"));
        assert!(text[3].contains("interfaces[2]"));
    }

    #[test]
    fn metallb_field_names_are_read() {
        let parsed = spec(
            "ipAddressPools: [a]\nipAddressPoolSelectors: [{matchLabels: {x: y}}]\n\
             nodeSelectors: [{matchLabels: {kubernetes.io/hostname: n1}}]\ninterfaces: [eth1]\n",
        );
        assert_eq!(parsed.ip_address_pools, ["a"]);
        assert_eq!(parsed.ip_address_pool_selectors.len(), 1);
        assert_eq!(parsed.node_selectors.len(), 1);
        assert_eq!(parsed.interfaces, ["eth1"]);
    }
}
