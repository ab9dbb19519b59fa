//! `swimlbctl migrate-metallb`: MetalLB layer-2 configuration as swimlb objects.
//!
//! Reads the legacy ConfigMap (`address-pools:`) and `metallb.io` IPAddressPool and
//! L2Advertisement objects; writes `swimlb.io` IPAddressPools and L2Advertisements with the
//! same meaning. The legacy ConfigMap's layer 2 pools become IPAddressPools and get one
//! L2Advertisement, so they stay announced from every node. Whatever has no swimlb equivalent
//! (BGP peers and advertisements, BFD profiles, communities, unknown fields) is listed with the
//! reason, never dropped silently.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use swimlb_api::{Advertisement, L2AdvertisementSpec};
use swimlb_controller::config::LegacyConfig;

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
    let mut translated = Vec::new();
    for doc in &advertisements {
        if let Some(object) =
            read_advertisement(doc, &pools, &mut announced, namespace, &mut migration)
        {
            translated.push(object);
        }
    }
    for (pool, announced) in pools.iter().zip(&announced) {
        if !pool.layer2_by_declaration && !announced {
            migration.notes.push(format!(
                "{}: pool {:?} is selected by no L2Advertisement: MetalLB does not announce it \
                 in layer 2, and neither will swimlb until one selects it",
                pool.source, pool.name
            ));
        }
        let mut metadata = json!({"name": pool.name, "namespace": namespace});
        // Labels carry over: advertisements may select pools by them.
        if !pool.labels.is_empty() {
            metadata["labels"] = json!(pool.labels);
        }
        migration.objects.push(json!({
            "apiVersion": format!("{}/v1beta1", swimlb_api::GROUP),
            "kind": "IPAddressPool",
            "metadata": metadata,
            "spec": Value::Object(pool.spec.clone()),
        }));
    }
    migration.objects.extend(translated);
    // The legacy ConfigMap's layer 2 pools were announced from every node by declaration; as
    // IPAddressPools they need an advertisement to stay so.
    let legacy: Vec<&str> = pools
        .iter()
        .zip(&announced)
        .filter(|(pool, announced)| pool.layer2_by_declaration && !**announced)
        .map(|(pool, _)| pool.name.as_str())
        .collect();
    if !legacy.is_empty() {
        migration.objects.push(json!({
            "apiVersion": format!("{}/v1beta1", swimlb_api::GROUP),
            "kind": "L2Advertisement",
            "metadata": {"name": LEGACY_ADVERTISEMENT, "namespace": namespace},
            "spec": {"ipAddressPools": legacy},
        }));
    }
    migration
}

/// The L2Advertisement written for the legacy ConfigMap's layer 2 pools.
pub const LEGACY_ADVERTISEMENT: &str = "layer2-from-configmap";

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

/// A MetalLB L2Advertisement's spec: swimlb's fields, and whatever else it carries.
#[derive(Debug, Default, Deserialize)]
struct MetalAdvertisementSpec {
    #[serde(flatten)]
    known: L2AdvertisementSpec,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// The swimlb L2Advertisement for a MetalLB one; marks the pools it selects as announced.
fn read_advertisement(
    doc: &Document,
    pools: &[MetalPool],
    announced: &mut [bool],
    namespace: &str,
    migration: &mut Migration,
) -> Option<Value> {
    let spec: MetalAdvertisementSpec = match doc.value.get("spec") {
        None => MetalAdvertisementSpec::default(),
        Some(spec) => match serde_json::from_value(spec.clone()) {
            Ok(spec) => spec,
            Err(error) => {
                migration.untranslated.push(Untranslated {
                    source: doc.source.clone(),
                    what: doc.describe(),
                    reason: format!("spec does not read as an L2Advertisement: {error}"),
                });
                return None;
            }
        },
    };
    for key in spec.rest.keys() {
        migration.untranslated.push(Untranslated {
            source: doc.source.clone(),
            what: format!("{} spec.{key}", doc.describe()),
            reason: "no such field in swimlb's L2Advertisement".into(),
        });
    }
    let advertisement = match Advertisement::parse(&spec.known) {
        Ok(advertisement) => advertisement,
        Err(errors) => {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            migration.untranslated.push(Untranslated {
                source: doc.source.clone(),
                what: doc.describe(),
                reason: format!("not a valid L2Advertisement: {}", errors.join("; ")),
            });
            return None;
        }
    };
    for (index, pool) in pools.iter().enumerate() {
        if advertisement.selects_pool(&pool.name, &pool.labels) {
            announced[index] = true;
        }
    }
    Some(json!({
        "apiVersion": format!("{}/v1beta1", swimlb_api::GROUP),
        "kind": "L2Advertisement",
        "metadata": {"name": doc.name, "namespace": namespace},
        "spec": spec.known,
    }))
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
        assert_eq!(m.objects.len(), 3);
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
    fn crd_pools_and_advertisements_carry_over_and_every_difference_is_said() {
        let m = run(CRDS);
        let kinds: Vec<(&str, &str)> = m
            .objects
            .iter()
            .map(|o| {
                let kind = o["kind"].as_str().unwrap_or_default();
                (kind, o["metadata"]["name"].as_str().unwrap_or_default())
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("IPAddressPool", "first-pool"),
                ("IPAddressPool", "bgp-only"),
                ("L2Advertisement", "east"),
                ("L2Advertisement", "pinned"),
            ]
        );
        assert_eq!(m.objects[0]["spec"]["serviceAllocation"]["priority"], 50);
        // The label the `east` advertisement selects by is kept.
        assert_eq!(m.objects[0]["metadata"]["labels"]["zone"], "east");
        assert!(m.objects[1]["metadata"].get("labels").is_none());
        assert_eq!(m.objects[1]["spec"]["autoAssign"], false);
        // Node and interface restrictions carry over as they are.
        let pinned = &m.objects[3];
        assert_eq!(pinned["metadata"]["namespace"], "swimlb-system");
        assert_eq!(pinned["spec"]["ipAddressPools"][0], "first-pool");
        assert_eq!(
            pinned["spec"]["nodeSelectors"][0]["matchLabels"]["kubernetes.io/hostname"],
            "node-a"
        );
        assert_eq!(pinned["spec"]["interfaces"][0], "eth1");
        assert_eq!(
            m.objects[2]["spec"]["ipAddressPoolSelectors"][0]["matchLabels"]["zone"],
            "east"
        );
        // BGP objects are listed, not dropped.
        assert!(m.untranslated.iter().any(|u| u.what.contains("BGPPeer")));
        assert!(
            m.untranslated
                .iter()
                .any(|u| u.what.contains("BGPAdvertisement"))
        );
        assert_eq!(m.untranslated.len(), 2, "{:#?}", m.untranslated);
        // The BGP-only pool stays unannounced, as in MetalLB, and that is said.
        assert!(
            m.notes
                .iter()
                .any(|n| n.contains("\"bgp-only\" is selected by no L2Advertisement"))
        );
    }

    #[test]
    fn legacy_pools_get_an_advertisement_that_keeps_them_announced() {
        let m = run(LEGACY);
        let advertisement = m
            .objects
            .iter()
            .find(|o| o["kind"] == "L2Advertisement")
            .expect("an advertisement for the legacy pools");
        assert_eq!(advertisement["metadata"]["name"], LEGACY_ADVERTISEMENT);
        assert_eq!(
            advertisement["spec"]["ipAddressPools"],
            json!(["default", "reserved"])
        );
    }

    #[test]
    fn an_invalid_advertisement_is_listed_not_written() {
        let m = run(
            "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: bad}\n\
             spec:\n  nodeSelectors: [{matchExpressions: [{key: a, operator: Near}]}]\n  \
             interfaces: [eth1]\n  extra: 1\n",
        );
        assert!(m.objects.is_empty());
        let reasons: Vec<&str> = m.untranslated.iter().map(|u| u.reason.as_str()).collect();
        assert!(reasons.iter().any(|r| r.contains("Near")), "{reasons:?}");
        assert!(
            m.untranslated
                .iter()
                .any(|u| u.what.ends_with("spec.extra")),
            "{:#?}",
            m.untranslated
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
