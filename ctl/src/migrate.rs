//! `swimlbctl migrate-metallb`: MetalLB layer-2 configuration as swimlb objects.
//!
//! Reads the legacy ConfigMap (`address-pools:`) and `metallb.io` IPAddressPool and
//! L2Advertisement objects; writes `swimlb.io` IPAddressPools. Whatever has no swimlb
//! equivalent (BGP peers and advertisements, BFD profiles, communities, L2Advertisements that
//! restrict nodes or interfaces) is listed with the reason, never dropped silently.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use swimlb_controller::config::{LegacyConfig, Selector};

use crate::documents::Document;

/// What the migration produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Migration {
    /// swimlb objects to apply.
    pub objects: Vec<Value>,
    /// What could not be carried over, each with the reason.
    pub untranslated: Vec<Untranslated>,
    /// Differences worth knowing that need no action.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslated {
    pub source: String,
    pub what: String,
    pub reason: String,
}

const LAYER2_ONLY: &str = "swimlb announces in layer 2 only (ARP/NDP); it has no BGP";

/// A pool read from MetalLB configuration, before it is written out.
struct MetalPool {
    source: String,
    name: String,
    labels: BTreeMap<String, String>,
    spec: Map<String, Value>,
    /// Legacy ConfigMap pools are layer 2 by their `protocol`; CRD pools only when an
    /// L2Advertisement selects them.
    layer2_by_declaration: bool,
}

/// Translates `documents` into objects in `namespace`.
pub fn migrate(documents: &[Document], namespace: &str) -> Migration {
    let mut migration = Migration::default();
    let mut pools: Vec<MetalPool> = Vec::new();
    let mut advertisements: Vec<&Document> = Vec::new();
    for doc in documents {
        match (doc.group(), doc.kind.as_str()) {
            ("", "ConfigMap") => read_legacy(doc, &mut pools, &mut migration),
            ("metallb.io", "IPAddressPool") => read_pool(doc, &mut pools, &mut migration),
            ("metallb.io", "L2Advertisement") => advertisements.push(doc),
            ("metallb.io", "BGPPeer" | "BGPAdvertisement" | "BFDProfile" | "Community") => {
                migration.untranslated.push(Untranslated {
                    source: doc.source.clone(),
                    what: doc.describe(),
                    reason: LAYER2_ONLY.into(),
                });
            }
            _ => migration.untranslated.push(Untranslated {
                source: doc.source.clone(),
                what: format!("{} ({})", doc.describe(), doc.api_version),
                reason: "not MetalLB configuration".into(),
            }),
        }
    }
    let mut announced = vec![false; pools.len()];
    for doc in &advertisements {
        read_advertisement(doc, &pools, &mut announced, &mut migration);
    }
    for (pool, announced) in pools.iter().zip(announced) {
        if !pool.layer2_by_declaration && !announced {
            migration.notes.push(format!(
                "{}: pool {:?} is selected by no L2Advertisement, so MetalLB does not announce it \
                 in layer 2; swimlb will",
                pool.source, pool.name
            ));
        }
        migration.objects.push(json!({
            "apiVersion": format!("{}/v1beta1", swimlb_api::GROUP),
            "kind": "IPAddressPool",
            "metadata": {"name": pool.name, "namespace": namespace},
            "spec": Value::Object(pool.spec.clone()),
        }));
    }
    migration
}

fn read_legacy(doc: &Document, pools: &mut Vec<MetalPool>, migration: &mut Migration) {
    let Some(text) = doc.value.pointer("/data/config").and_then(Value::as_str) else {
        migration.untranslated.push(Untranslated {
            source: doc.source.clone(),
            what: doc.describe(),
            reason: "a ConfigMap without a `config` key is not MetalLB's legacy configuration"
                .into(),
        });
        return;
    };
    let config: LegacyConfig = match serde_saphyr::from_str(text) {
        Ok(config) => config,
        Err(error) => {
            migration.untranslated.push(Untranslated {
                source: doc.source.clone(),
                what: format!("{} key config", doc.describe()),
                reason: format!("not valid YAML: {error}"),
            });
            return;
        }
    };
    for (key, _) in config.rest {
        migration.untranslated.push(Untranslated {
            source: doc.source.clone(),
            what: format!("{} config {key}", doc.describe()),
            reason: LAYER2_ONLY.into(),
        });
    }
    for (index, pool) in config.address_pools.into_iter().enumerate() {
        let what = format!("{} address-pools[{index}]", doc.describe());
        let Some(name) = pool.name.filter(|n| !n.trim().is_empty()) else {
            migration.untranslated.push(Untranslated {
                source: doc.source.clone(),
                what,
                reason: "a pool without a name".into(),
            });
            continue;
        };
        match pool.protocol.as_deref().map(str::trim) {
            Some("layer2") => {}
            Some("bgp") => {
                migration.untranslated.push(Untranslated {
                    source: doc.source.clone(),
                    what: format!("{what} ({name}, protocol bgp)"),
                    reason: LAYER2_ONLY.into(),
                });
                continue;
            }
            other => {
                migration.untranslated.push(Untranslated {
                    source: doc.source.clone(),
                    what: format!("{what} ({name})"),
                    reason: format!("protocol {other:?}: only layer2 is translated"),
                });
                continue;
            }
        }
        for (key, _) in pool.rest {
            migration.untranslated.push(Untranslated {
                source: doc.source.clone(),
                what: format!("{what} ({name}) field {key}"),
                reason: LAYER2_ONLY.into(),
            });
        }
        let mut spec = Map::new();
        spec.insert("addresses".into(), json!(pool.addresses));
        if let Some(auto) = pool.auto_assign {
            spec.insert("autoAssign".into(), json!(auto));
        }
        if let Some(avoid) = pool.avoid_buggy_ips {
            spec.insert("avoidBuggyIPs".into(), json!(avoid));
        }
        pools.push(MetalPool {
            source: doc.source.clone(),
            name,
            labels: BTreeMap::new(),
            spec,
            layer2_by_declaration: true,
        });
    }
}

/// Fields of a metallb.io IPAddressPool spec that mean the same in swimlb's.
const POOL_FIELDS: [&str; 4] = [
    "addresses",
    "autoAssign",
    "avoidBuggyIPs",
    "serviceAllocation",
];

fn read_pool(doc: &Document, pools: &mut Vec<MetalPool>, migration: &mut Migration) {
    let spec = doc
        .value
        .get("spec")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut kept = Map::new();
    for (key, value) in spec {
        if POOL_FIELDS.contains(&key.as_str()) {
            kept.insert(key, value);
        } else {
            migration.untranslated.push(Untranslated {
                source: doc.source.clone(),
                what: format!("{} spec.{key}", doc.describe()),
                reason: "no such field in swimlb's IPAddressPool".into(),
            });
        }
    }
    let labels = doc
        .value
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    pools.push(MetalPool {
        source: doc.source.clone(),
        name: doc.name.clone(),
        labels,
        spec: kept,
        layer2_by_declaration: false,
    });
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct L2AdvertisementSpec {
    #[serde(default)]
    ip_address_pools: Vec<String>,
    #[serde(default)]
    ip_address_pool_selectors: Vec<LabelSelector>,
    #[serde(default)]
    node_selectors: Vec<LabelSelector>,
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

fn read_advertisement(
    doc: &Document,
    pools: &[MetalPool],
    announced: &mut [bool],
    migration: &mut Migration,
) {
    let spec: L2AdvertisementSpec = match doc.value.get("spec") {
        None => L2AdvertisementSpec::default(),
        Some(spec) => match serde_json::from_value(spec.clone()) {
            Ok(spec) => spec,
            Err(error) => {
                migration.untranslated.push(Untranslated {
                    source: doc.source.clone(),
                    what: doc.describe(),
                    reason: format!("spec does not read as an L2Advertisement: {error}"),
                });
                return;
            }
        },
    };
    let selectors: Vec<Selector> = spec
        .ip_address_pool_selectors
        .iter()
        .filter_map(|s| Selector::parse(s).ok())
        .collect();
    let all_pools = spec.ip_address_pools.is_empty() && spec.ip_address_pool_selectors.is_empty();
    let mut selected = Vec::new();
    for (index, pool) in pools.iter().enumerate() {
        let chosen = all_pools
            || spec.ip_address_pools.contains(&pool.name)
            || selectors.iter().any(|s| s.matches(&pool.labels));
        if chosen {
            announced[index] = true;
            selected.push(pool.name.clone());
        }
    }
    let mut restrictions = Vec::new();
    if !spec.node_selectors.is_empty() {
        restrictions.push("nodeSelectors");
    }
    if !spec.interfaces.is_empty() {
        restrictions.push("interfaces");
    }
    for key in spec.rest.keys() {
        migration.untranslated.push(Untranslated {
            source: doc.source.clone(),
            what: format!("{} spec.{key}", doc.describe()),
            reason: "not translated: swimlb announces every pool from every eligible node".into(),
        });
    }
    if restrictions.is_empty() {
        migration.notes.push(format!(
            "{}: {} announces {} from every node: swimlb does so by default, nothing to write",
            doc.source,
            doc.describe(),
            if all_pools {
                "every pool".to_owned()
            } else {
                format!("{selected:?}")
            }
        ));
        return;
    }
    migration.untranslated.push(Untranslated {
        source: doc.source.clone(),
        what: format!("{} {}", doc.describe(), restrictions.join(" and ")),
        reason: format!(
            "swimlb does not restrict announcements per pool yet: the pools {selected:?} will be \
             announced from every eligible node and suitable interface; the speaker's \
             `kubernetes.node_selector` and `interfaces` settings restrict all pools at once"
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::read_documents;

    fn run(text: &str) -> Migration {
        migrate(
            &read_documents("metallb.yaml", text).expect("valid yaml"),
            "swimlb-system",
        )
    }

    /// MetalLB's legacy layer-2 example, as its documentation gives the format.
    const LEGACY: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 192.0.2.240-192.0.2.250
    - name: reserved
      protocol: layer2
      auto-assign: false
      avoid-buggy-ips: true
      addresses:
      - 198.51.100.0/28
    - name: uplink
      protocol: bgp
      addresses:
      - 203.0.113.0/24
    peers:
    - peer-address: 203.0.113.1
      peer-asn: 64501
      my-asn: 64500
";

    #[test]
    fn legacy_layer2_pools_become_pools_and_bgp_is_listed() {
        let m = run(LEGACY);
        assert_eq!(m.objects.len(), 2);
        assert_eq!(m.objects[0]["metadata"]["name"], "default");
        assert_eq!(m.objects[0]["metadata"]["namespace"], "swimlb-system");
        assert_eq!(m.objects[0]["apiVersion"], "swimlb.io/v1beta1");
        assert_eq!(
            m.objects[0]["spec"]["addresses"][0],
            "192.0.2.240-192.0.2.250"
        );
        assert_eq!(m.objects[1]["spec"]["autoAssign"], false);
        assert_eq!(m.objects[1]["spec"]["avoidBuggyIPs"], true);
        let what: Vec<&str> = m.untranslated.iter().map(|u| u.what.as_str()).collect();
        assert!(
            what.iter().any(|w| w.contains("uplink, protocol bgp")),
            "{what:?}"
        );
        assert!(what.iter().any(|w| w.ends_with("config peers")), "{what:?}");
        assert!(m.untranslated.iter().all(|u| !u.reason.is_empty()));
    }

    /// MetalLB ≥ 0.13's CRD form: pools, advertisements and BGP objects.
    const CRDS: &str = "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: first-pool, namespace: metallb-system, labels: {zone: east}}
spec:
  addresses: [192.0.2.10-192.0.2.20, 2001:db8::10-2001:db8::20]
  serviceAllocation:
    priority: 50
    namespaces: [team-a]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp-only, namespace: metallb-system}
spec:
  addresses: [198.51.100.0/24]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: east, namespace: metallb-system}
spec:
  ipAddressPoolSelectors:
  - matchLabels: {zone: east}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: pinned, namespace: metallb-system}
spec:
  ipAddressPools: [first-pool]
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: node-a}
  interfaces: [eth1]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 203.0.113.1}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: metallb-system}
spec: {ipAddressPools: [bgp-only]}
";

    #[test]
    fn crd_pools_carry_over_and_every_difference_is_said() {
        let m = run(CRDS);
        assert_eq!(m.objects.len(), 2);
        assert_eq!(m.objects[0]["spec"]["serviceAllocation"]["priority"], 50);
        assert_eq!(m.objects[1]["spec"]["autoAssign"], false);
        // The pinned advertisement cannot be expressed: listed, with the pools it concerns.
        let pinned = m
            .untranslated
            .iter()
            .find(|u| u.what.contains("pinned"))
            .expect("pinned listed");
        assert!(pinned.what.contains("nodeSelectors and interfaces"));
        assert!(pinned.reason.contains("first-pool"));
        // BGP objects are listed, not dropped.
        assert!(m.untranslated.iter().any(|u| u.what.contains("BGPPeer")));
        assert!(
            m.untranslated
                .iter()
                .any(|u| u.what.contains("BGPAdvertisement"))
        );
        // The plain advertisement needs nothing; the BGP-only pool will now be announced.
        assert!(
            m.notes
                .iter()
                .any(|n| n.contains("L2Advertisement metallb-system/east"))
        );
        assert!(
            m.notes
                .iter()
                .any(|n| n.contains("\"bgp-only\" is selected by no L2Advertisement"))
        );
    }

    #[test]
    fn unknown_objects_and_fields_are_listed() {
        let m = run(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.0/24], futureField: 1}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
        );
        assert_eq!(m.objects.len(), 1);
        assert!(m.objects[0]["spec"].get("futureField").is_none());
        assert_eq!(m.untranslated.len(), 2, "{:#?}", m.untranslated);
    }
}
