//! A fixed cluster for the placement target: three pools, nodes with labels (one excluded),
//! and Services from each pool plus one from a pool that is not an IPAddressPool.

use k8s_openapi::api::core::v1::{Node, Service};
use std::collections::{BTreeMap, BTreeSet};

pub struct Fixture {
    pub nodes: Vec<Node>,
    pub services: Vec<Service>,
}

const POOLS: [(&str, &str); 3] = [("front", "edge"), ("back", "core"), ("spare", "edge")];

impl Fixture {
    pub fn new() -> Self {
        let node = |name: &str, labels: serde_json::Value| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": labels},
            }))
            .expect("node fixture")
        };
        let nodes = vec![
            node(
                "node-a",
                serde_json::json!({"zone": "east", "role": "edge"}),
            ),
            node("node-b", serde_json::json!({"zone": "west"})),
            node(
                "node-c",
                serde_json::json!({
                    "zone": "east",
                    "node.kubernetes.io/exclude-from-external-load-balancers": "",
                }),
            ),
        ];
        let service = |name: &str, pool: &str, ip: &str| -> Service {
            serde_json::from_value(serde_json::json!({
                "metadata": {
                    "namespace": "default",
                    "name": name,
                    "annotations": {"swimlb.io/ip-allocated-from-pool": pool},
                },
                "spec": {"type": "LoadBalancer"},
                "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
            }))
            .expect("service fixture")
        };
        let services = vec![
            service("web", "front", "192.0.2.30"),
            service("api", "back", "2001:db8::30"),
            service("db", "spare", "192.0.2.31"),
            service("old", "from-configmap", "192.0.2.32"),
        ];
        Self { nodes, services }
    }

    /// The pools' labels, by name.
    pub fn pool_labels(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        POOLS
            .iter()
            .map(|(name, tier)| {
                let labels = BTreeMap::from([("tier".to_owned(), (*tier).to_owned())]);
                ((*name).to_owned(), labels)
            })
            .collect()
    }

    /// The nodes that may announce anything (node-c carries the exclusion label).
    pub fn eligible(&self) -> BTreeSet<String> {
        ["node-a", "node-b"]
            .iter()
            .map(|n| (*n).to_owned())
            .collect()
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}
