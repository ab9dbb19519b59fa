//! `swimlbctl validate`: the controller's and the speaker's own checks on pool and
//! advertisement files, before they are applied.
//!
//! Pools come from `swimlb.io` IPAddressPools and legacy ConfigMaps (any ConfigMap with a
//! `config` key), merged and checked against each other exactly as the controller does
//! (`swimlb_controller::config`), in file order as the order of creation: where two pools clash,
//! the one read first keeps working, as the older object would in a cluster.

use std::collections::BTreeMap;

use swimlb_api::{Advertisement, IPAddressPoolSpec, L2AdvertisementSpec};
use swimlb_controller::config::{CONFIGMAP_KEY, PoolDeclaration, PoolSet, parse_configmap};

use crate::documents::Document;

/// What validation found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One line per pool: its origin, then `ok` or its errors.
    pub pools: Vec<PoolVerdict>,
    /// One line per L2Advertisement: its errors, if any.
    pub advertisements: Vec<AdvertisementVerdict>,
    /// Objects that could not be read at all, or are not swimlb pool configuration.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisementVerdict {
    pub name: String,
    pub source: String,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolVerdict {
    pub name: String,
    pub origin: String,
    pub addresses: Vec<String>,
    pub errors: Vec<String>,
}

impl Report {
    /// True when every pool is valid and every object was understood.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
            && self.pools.iter().all(|p| p.errors.is_empty())
            && self.advertisements.iter().all(|a| a.errors.is_empty())
    }
}

/// Validates the pools declared in `documents`.
pub fn validate(documents: &[Document]) -> Report {
    let mut report = Report::default();
    let mut declarations = Vec::new();
    for (order, doc) in documents.iter().enumerate() {
        let created = order as i64;
        let namespace = doc.namespace.clone().unwrap_or_else(|| "default".into());
        match (doc.group(), doc.kind.as_str()) {
            (swimlb_api::GROUP, "IPAddressPool") => {
                let spec = doc.value.get("spec").cloned().unwrap_or_default();
                match serde_json::from_value::<IPAddressPoolSpec>(spec) {
                    Ok(spec) => declarations.push(PoolDeclaration::from_resource(
                        &namespace, &doc.name, created, &spec,
                    )),
                    Err(error) => report.problems.push(format!(
                        "{}: {}: spec: {error}",
                        doc.source,
                        doc.describe()
                    )),
                }
            }
            (swimlb_api::GROUP, "L2Advertisement") => {
                // No spec is a valid advertisement of every pool (the CRD defaults it to {}).
                let spec = doc
                    .value
                    .get("spec")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({}));
                let errors = match serde_json::from_value::<L2AdvertisementSpec>(spec) {
                    Ok(spec) => match Advertisement::parse(&spec) {
                        Ok(_) => Vec::new(),
                        Err(errors) => errors.iter().map(ToString::to_string).collect(),
                    },
                    Err(error) => vec![format!("spec: {error}")],
                };
                report.advertisements.push(AdvertisementVerdict {
                    name: doc.name.clone(),
                    source: doc.source.clone(),
                    errors,
                });
            }
            ("", "ConfigMap") => {
                let data: BTreeMap<String, String> = doc
                    .value
                    .get("data")
                    .and_then(|d| serde_json::from_value(d.clone()).ok())
                    .unwrap_or_default();
                if !data.contains_key(CONFIGMAP_KEY) {
                    report.problems.push(format!(
                        "{}: {}: no {CONFIGMAP_KEY:?} key, so no pools",
                        doc.source,
                        doc.describe()
                    ));
                    continue;
                }
                match parse_configmap(&namespace, &doc.name, created, &data) {
                    Ok(pools) => declarations.extend(pools),
                    Err(error) => {
                        report
                            .problems
                            .push(format!("{}: {}: {error}", doc.source, doc.describe()))
                    }
                }
            }
            ("metallb.io", _) => report.problems.push(format!(
                "{}: {} is MetalLB configuration: translate it with `swimlbctl migrate-metallb`",
                doc.source,
                doc.describe()
            )),
            _ => report.problems.push(format!(
                "{}: {} ({}) is not swimlb pool or advertisement configuration",
                doc.source,
                doc.describe(),
                doc.api_version
            )),
        }
    }
    let set = PoolSet::build(declarations);
    for pool in set.iter().chain(set.shadowed()) {
        report.pools.push(PoolVerdict {
            name: pool.name.clone(),
            origin: pool.origin.to_string(),
            addresses: pool.ranges.iter().map(|(text, _)| text.clone()).collect(),
            errors: pool.errors.iter().map(ToString::to_string).collect(),
        });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::read_documents;

    fn run(text: &str) -> Report {
        validate(&read_documents("pools.yaml", text).expect("valid yaml"))
    }

    #[test]
    fn good_pools_from_both_forms_pass() {
        let report = run(
            "apiVersion: swimlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: swimlb-system}\nspec:\n  addresses: [192.0.2.0/28]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: swimlb-system}\ndata:\n  config: |\n    address-pools:\n    - name: legacy\n      protocol: layer2\n      addresses: [198.51.100.10-198.51.100.20]\n",
        );
        assert!(report.is_clean(), "{report:#?}");
        assert_eq!(report.pools.len(), 2);
    }

    #[test]
    fn the_same_errors_as_the_controller_name_the_offending_value() {
        let report = run(
            "apiVersion: swimlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: first}\nspec:\n  addresses: [192.0.2.0/24]\n---\napiVersion: swimlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: second}\nspec:\n  addresses: [192.0.2.128/25, 192.0.2.9-192.0.2.1, not-an-ip]\n",
        );
        assert!(!report.is_clean());
        let second = report
            .pools
            .iter()
            .find(|p| p.name == "second")
            .expect("reported");
        let errors = second.errors.join("\n");
        assert!(errors.contains("overlap"), "{errors}");
        assert!(errors.contains("is after end"), "{errors}");
        assert!(errors.contains("\"not-an-ip\""), "{errors}");
        let first = report
            .pools
            .iter()
            .find(|p| p.name == "first")
            .expect("reported");
        assert!(first.errors.is_empty(), "the older pool keeps working");
    }

    #[test]
    fn other_objects_are_reported_not_ignored() {
        let report = run(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: m}\nspec: {addresses: [192.0.2.0/24]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {x: y}\n",
        );
        assert_eq!(report.problems.len(), 3, "{report:#?}");
        assert!(report.problems[0].contains("migrate-metallb"));
        assert!(report.pools.is_empty());
    }

    #[test]
    fn advertisements_get_the_speakers_checks() {
        let report = run(
            "apiVersion: swimlb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: good}\n---\n\
             apiVersion: swimlb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: bad}\n\
             spec:\n  nodeSelectors: [{matchExpressions: [{key: zone, operator: Near}]}]\n",
        );
        assert!(!report.is_clean());
        assert_eq!(report.advertisements.len(), 2);
        assert!(report.advertisements[0].errors.is_empty());
        let errors = report.advertisements[1].errors.join("\n");
        assert!(
            errors.contains("nodeSelectors[0]") && errors.contains("Near"),
            "{errors}"
        );
    }
}
