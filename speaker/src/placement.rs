//! Kubernetes mode, the pure part: from Services, Nodes and EndpointSlices to the
//! [`VipPlacement`] the runtime consumes (every VIP with the nodes allowed to own it). No I/O.
//!
//! Rules, as MetalLB's `ShouldAnnounce` applies them (Data flow step 3 in docs/design.md):
//! - a Service counts when it is `type: LoadBalancer`, its `spec.loadBalancerClass` is accepted
//!   by the [`ClassFilter`], and it has `status.loadBalancer.ingress[].ip`;
//! - a node is eligible when a Node object exists for it, it does not carry the label
//!   `node.kubernetes.io/exclude-from-external-load-balancers`, its `NetworkUnavailable`
//!   condition is not `True`, and it matches the configured node selector;
//! - of those, the nodes that announce a Service's addresses are the ones the L2Advertisements
//!   selecting its pool (the `swimlb.io/ip-allocated-from-pool` annotation) allow, and the
//!   owner answers on the interfaces they name ([`Advertising`]); a pool no advertisement
//!   selects is not announced;
//! - with `externalTrafficPolicy: Local`, only eligible nodes with a ready endpoint of the
//!   Service remain; a Local Service with no ready endpoint anywhere is not announced. Slices
//!   come from `discovery.k8s.io/v1` or, on API servers before 1.21, from `v1beta1`
//!   ([`EndpointSliceV1beta1`], turned into the v1 form by [`slice_from_v1beta1`]);
//! - Services sharing an IP: the VIP's allowed set is the **intersection** of the Services'
//!   sets, so the owner never sits on a node where kube-proxy would drop one of them (a Local
//!   Service without a local endpoint). The controller only lets Services with compatible
//!   traffic policies share an IP, so the intersection is normally each Service's own set. A
//!   shared VIP whose intersection is empty is not announced.

use crate::ownership::VipPlacement;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use swimlb_api::Advertisement;
pub use swimlb_api::ClassFilter;
use swimlb_api::annotations::IP_ALLOCATED_FROM_POOL;

/// Nodes with this label never announce (the upstream well-known label).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// The EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The topology key that names an endpoint's node in `discovery.k8s.io/v1beta1`.
pub const HOSTNAME_TOPOLOGY_KEY: &str = "kubernetes.io/hostname";

/// An EndpointSlice as `discovery.k8s.io/v1beta1` serves it (Kubernetes 1.17 to 1.24; the only
/// version before 1.21): the fields placement reads. k8s-openapi no longer has this version.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSliceV1beta1 {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub address_type: String,
    /// `null` when the slice has no endpoints (the Service's pods are gone).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub endpoints: Vec<EndpointV1beta1>,
}

/// One endpoint of an [`EndpointSliceV1beta1`]. Its node is `nodeName` (1.20 behind the
/// `EndpointSliceNodeName` gate, default from 1.21) or else the `kubernetes.io/hostname`
/// topology entry, which the 1.20 EndpointSlice controller always fills in.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointV1beta1 {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub conditions: Option<EndpointConditions>,
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default)]
    pub topology: Option<BTreeMap<String, String>>,
}

/// An absent or `null` list as an empty one: the API server writes `null` for empty lists.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

impl kube::Resource for EndpointSliceV1beta1 {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "EndpointSlice".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "discovery.k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1beta1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "endpointslices".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The v1 form of a v1beta1 slice, for [`placement`]: same labels, endpoints with their node.
pub fn slice_from_v1beta1(slice: &EndpointSliceV1beta1) -> EndpointSlice {
    EndpointSlice {
        metadata: slice.metadata.clone(),
        address_type: slice.address_type.clone(),
        endpoints: slice
            .endpoints
            .iter()
            .map(|endpoint| Endpoint {
                addresses: endpoint.addresses.clone(),
                conditions: endpoint.conditions.clone(),
                node_name: endpoint.node_name.clone().or_else(|| {
                    endpoint
                        .topology
                        .as_ref()
                        .and_then(|t| t.get(HOSTNAME_TOPOLOGY_KEY).cloned())
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: None,
    }
}

/// What decides eligibility besides the objects themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementRules {
    pub class: ClassFilter,
    /// Labels a node must carry (all of them, with these values); empty: every node.
    pub node_selector: BTreeMap<String, String>,
    /// False when EndpointSlices cannot be watched: Local Services are then eligible on every
    /// eligible node, as if they were Cluster Services.
    pub endpoints_known: bool,
    /// Which pools are announced from which nodes.
    pub advertising: Advertising,
    /// This node: the interface restrictions of [`Placement::interfaces`] are its own.
    pub local_node: String,
}

/// `(namespace, name)` of a Service.
pub type ServiceKey = (String, String);

/// The nodes with a ready endpoint, per Service, from EndpointSlices.
pub fn ready_nodes<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> BTreeMap<ServiceKey, BTreeSet<String>> {
    let mut ready: BTreeMap<ServiceKey, BTreeSet<String>> = BTreeMap::new();
    for slice in slices {
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let key = (
            slice.metadata.namespace.clone().unwrap_or_default(),
            service.clone(),
        );
        let nodes = ready.entry(key).or_default();
        for endpoint in &slice.endpoints {
            // An absent `ready` means ready (API convention for this condition).
            let is_ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if let (true, Some(node)) = (is_ready, &endpoint.node_name) {
                nodes.insert(node.clone());
            }
        }
    }
    ready
}

fn node_is_eligible(node: &Node, rules: &PlacementRules) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if labels.contains_key(EXCLUDE_LABEL) {
        return false;
    }
    if !rules
        .node_selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
    {
        return false;
    }
    let network_unavailable = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True")
        });
    !network_unavailable
}

/// The ingress IPs of a Service this speaker announces for; empty when it is not ours.
pub fn service_vips(service: &Service, class: &ClassFilter) -> BTreeSet<IpAddr> {
    let Some(spec) = &service.spec else {
        return BTreeSet::new();
    };
    if spec.type_.as_deref() != Some("LoadBalancer")
        || !class.accepts(spec.load_balancer_class.as_deref())
    {
        return BTreeSet::new();
    }
    service
        .status
        .iter()
        .filter_map(|s| s.load_balancer.as_ref())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|ingress| ingress.ip.as_deref())
        .filter_map(|ip| ip.trim().parse().ok())
        .collect()
}

fn is_local(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
        == Some("Local")
}

/// What the speaker announces, computed from the cluster's objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Every announced VIP with the nodes allowed to own it.
    pub vips: VipPlacement,
    /// The interfaces this node may answer and announce a VIP on, for the VIPs whose
    /// advertisements name interfaces; a VIP not listed may use every interface.
    pub interfaces: BTreeMap<IpAddr, BTreeSet<String>>,
}

/// The L2Advertisements in force and the IPAddressPools they choose from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Advertising {
    /// The API server serves no L2Advertisements (the CRD is not installed): every pool is
    /// announced from every eligible node, on every interface.
    #[default]
    Unrestricted,
    Known {
        /// The labels of every IPAddressPool, by name.
        pools: BTreeMap<String, BTreeMap<String, String>>,
        advertisements: Vec<Advertisement>,
    },
}

/// Where one Service's addresses are announced.
struct Reach {
    nodes: BTreeSet<String>,
    /// `None`: every interface.
    local_interfaces: Option<BTreeSet<String>>,
}

impl Advertising {
    /// The nodes among `eligible` (name → labels) that announce addresses of `pool`, and the
    /// interfaces `local_node` uses for them. A pool that is not an IPAddressPool (one of the
    /// legacy ConfigMap, or a Service the controller has not annotated) is announced from
    /// every eligible node: advertisements only select IPAddressPools.
    fn reach(
        &self,
        pool: Option<&str>,
        eligible: &BTreeMap<String, BTreeMap<String, String>>,
        local_node: &str,
    ) -> Reach {
        let everywhere = || Reach {
            nodes: eligible.keys().cloned().collect(),
            local_interfaces: None,
        };
        let Self::Known {
            pools,
            advertisements,
        } = self
        else {
            return everywhere();
        };
        let Some((name, labels)) = pool.and_then(|p| pools.get_key_value(p)) else {
            return everywhere();
        };
        let mut nodes = BTreeSet::new();
        let mut interfaces = Some(BTreeSet::new());
        for ad in advertisements
            .iter()
            .filter(|a| a.selects_pool(name, labels))
        {
            for (node, node_labels) in eligible {
                if !ad.selects_node(node_labels) {
                    continue;
                }
                nodes.insert(node.clone());
                if node == local_node {
                    interfaces = match interfaces {
                        Some(mut names) if !ad.interfaces.is_empty() => {
                            names.extend(ad.interfaces.iter().cloned());
                            Some(names)
                        }
                        _ => None,
                    };
                }
            }
        }
        Reach {
            local_interfaces: interfaces.filter(|_| nodes.contains(local_node)),
            nodes,
        }
    }
}

/// The pool a Service's addresses came from, as the controller annotated it.
fn service_pool(service: &Service) -> Option<&str> {
    service
        .metadata
        .annotations
        .as_ref()?
        .get(IP_ALLOCATED_FROM_POOL)
        .map(String::as_str)
}

/// The placement for these objects under `rules`.
pub fn placement<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    nodes: impl IntoIterator<Item = &'a Node>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    rules: &PlacementRules,
) -> Placement {
    let empty = BTreeMap::new();
    let eligible: BTreeMap<String, BTreeMap<String, String>> = nodes
        .into_iter()
        .filter(|node| node_is_eligible(node, rules))
        .filter_map(|node| {
            let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
            Some((node.metadata.name.clone()?, labels.clone()))
        })
        .collect();
    let ready = ready_nodes(slices);
    let no_nodes = BTreeSet::new();
    let mut allowed: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
    let mut interfaces: BTreeMap<IpAddr, Option<BTreeSet<String>>> = BTreeMap::new();
    for service in services {
        let vips = service_vips(service, &rules.class);
        if vips.is_empty() {
            continue;
        }
        let reach = rules
            .advertising
            .reach(service_pool(service), &eligible, &rules.local_node);
        let nodes: BTreeSet<String> = if is_local(service) && rules.endpoints_known {
            let key = (
                service.metadata.namespace.clone().unwrap_or_default(),
                service.metadata.name.clone().unwrap_or_default(),
            );
            let with_endpoint = ready.get(&key).unwrap_or(&no_nodes);
            reach.nodes.intersection(with_endpoint).cloned().collect()
        } else {
            reach.nodes
        };
        for vip in vips {
            allowed
                .entry(vip)
                .and_modify(|set| set.retain(|n| nodes.contains(n)))
                .or_insert_with(|| nodes.clone());
            // Services sharing an address: only interfaces every one of them may use.
            let restriction = interfaces.entry(vip).or_insert(None);
            *restriction = match (restriction.take(), &reach.local_interfaces) {
                (None, theirs) => theirs.clone(),
                (Some(ours), None) => Some(ours),
                (Some(ours), Some(theirs)) => Some(ours.intersection(theirs).cloned().collect()),
            };
        }
    }
    let vips: VipPlacement = allowed
        .into_iter()
        .filter(|(_, nodes)| !nodes.is_empty())
        .map(|(vip, nodes)| (vip, Some(nodes)))
        .collect();
    let interfaces = interfaces
        .into_iter()
        .filter(|(vip, _)| {
            vips.get(vip)
                .and_then(Option::as_ref)
                .is_some_and(|nodes| nodes.contains(&rules.local_node))
        })
        .filter_map(|(vip, names)| Some((vip, names?)))
        .collect();
    Placement { vips, interfaces }
}

/// The Services (namespace, name) whose ingress IPs include `vip`, for Events.
pub fn services_with_vip<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    vip: IpAddr,
    class: &ClassFilter,
) -> Vec<&'a Service> {
    services
        .into_iter()
        .filter(|s| service_vips(s, class).contains(&vip))
        .collect()
}

/// The InternalIP addresses of the Nodes, by node name.
pub fn internal_ips<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> BTreeMap<String, IpAddr> {
    nodes
        .into_iter()
        .filter_map(|node| {
            let name = node.metadata.name.clone()?;
            let ip = node
                .status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .filter(|a| a.type_ == "InternalIP")
                .find_map(|a| a.address.trim().parse::<IpAddr>().ok())?;
            Some((name, ip))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use swimlb_api::annotations::DEFAULT_LOAD_BALANCER_CLASS;

    fn node(name: &str, labels: serde_json::Value, network_unavailable: Option<&str>) -> Node {
        let conditions: Vec<serde_json::Value> = network_unavailable
            .map(|status| json!({"type": "NetworkUnavailable", "status": status}))
            .into_iter()
            .chain([json!({"type": "Ready", "status": "True"})])
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {
                "conditions": conditions,
                "addresses": [
                    {"type": "Hostname", "address": name},
                    {"type": "InternalIP", "address": format!("192.0.2.{}", name.len())},
                ],
            },
        }))
        .expect("node fixture")
    }

    fn plain_nodes() -> Vec<Node> {
        ["a", "b", "c"]
            .iter()
            .map(|n| node(n, json!({}), None))
            .collect()
    }

    fn service(name: &str, spec: serde_json::Value, ips: &[&str]) -> Service {
        let ingress: Vec<serde_json::Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
        let mut spec_value = json!({"type": "LoadBalancer"});
        if let (Some(base), Some(extra)) = (spec_value.as_object_mut(), spec.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name},
            "spec": spec_value,
            "status": {"loadBalancer": {"ingress": ingress}},
        }))
        .expect("service fixture")
    }

    fn slice(service: &str, endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {
                "namespace": "default",
                "name": format!("{service}-abc"),
                "labels": {SERVICE_NAME_LABEL: service},
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
        }))
        .expect("slice fixture")
    }

    fn rules() -> PlacementRules {
        PlacementRules {
            endpoints_known: true,
            ..PlacementRules::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn set(names: &[&str]) -> Option<BTreeSet<String>> {
        Some(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn a_cluster_service_is_eligible_on_every_node() {
        let services = [service("web", json!({}), &["192.0.2.30", "2001:db8::30"])];
        let got = placement(&services, &plain_nodes(), &[], &rules()).vips;
        assert_eq!(got.len(), 2);
        assert_eq!(got[&ip("192.0.2.30")], set(&["a", "b", "c"]));
        assert_eq!(got[&ip("2001:db8::30")], set(&["a", "b", "c"]));
    }

    #[test]
    fn services_without_ingress_or_not_load_balancers_are_ignored() {
        let services = [
            service("pending", json!({}), &[]),
            service("cluster-ip", json!({"type": "ClusterIP"}), &["192.0.2.31"]),
            service("hostname-only", json!({}), &["not-an-ip"]),
        ];
        assert!(
            placement(&services, &plain_nodes(), &[], &rules())
                .vips
                .is_empty()
        );
    }

    #[test]
    fn only_our_class_or_no_class_is_announced() {
        let services = [
            service("none", json!({}), &["192.0.2.30"]),
            service(
                "ours",
                json!({"loadBalancerClass": DEFAULT_LOAD_BALANCER_CLASS}),
                &["192.0.2.31"],
            ),
            service(
                "theirs",
                json!({"loadBalancerClass": "example.com/other"}),
                &["192.0.2.32"],
            ),
        ];
        let got = placement(&services, &plain_nodes(), &[], &rules()).vips;
        let vips: Vec<IpAddr> = got.keys().copied().collect();
        assert_eq!(vips, [ip("192.0.2.30"), ip("192.0.2.31")]);

        let strict = PlacementRules {
            class: ClassFilter {
                include_unset: false,
                ..ClassFilter::default()
            },
            ..rules()
        };
        let got = placement(&services, &plain_nodes(), &[], &strict).vips;
        let vips: Vec<IpAddr> = got.keys().copied().collect();
        assert_eq!(vips, [ip("192.0.2.31")]);
    }

    #[test]
    fn excluded_and_network_unavailable_nodes_are_not_eligible() {
        let nodes = [
            node("a", json!({EXCLUDE_LABEL: ""}), None),
            node("b", json!({}), Some("True")),
            node("c", json!({}), Some("False")),
            node("d", json!({}), None),
        ];
        let services = [service("web", json!({}), &["192.0.2.30"])];
        let got = placement(&services, &nodes, &[], &rules()).vips;
        assert_eq!(got[&ip("192.0.2.30")], set(&["c", "d"]));
    }

    #[test]
    fn the_node_selector_must_match_every_label() {
        let nodes = [
            node("a", json!({"zone": "x", "role": "edge"}), None),
            node("b", json!({"zone": "x"}), None),
            node("c", json!({"zone": "y", "role": "edge"}), None),
        ];
        let selective = PlacementRules {
            node_selector: [("zone", "x"), ("role", "edge")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..rules()
        };
        let services = [service("web", json!({}), &["192.0.2.30"])];
        let got = placement(&services, &nodes, &[], &selective).vips;
        assert_eq!(got[&ip("192.0.2.30")], set(&["a"]));
    }

    #[test]
    fn a_vip_with_no_eligible_node_is_not_placed() {
        let nodes = [node("a", json!({EXCLUDE_LABEL: "true"}), None)];
        let services = [service("web", json!({}), &["192.0.2.30"])];
        assert!(placement(&services, &nodes, &[], &rules()).vips.is_empty());
    }

    #[test]
    fn a_local_service_goes_only_to_nodes_with_a_ready_endpoint() {
        let services = [service(
            "web",
            json!({"externalTrafficPolicy": "Local"}),
            &["192.0.2.30"],
        )];
        let slices = [slice(
            "web",
            json!([
                {"addresses": ["10.0.0.1"], "nodeName": "a", "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2"], "nodeName": "b", "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"], "nodeName": "c"},
                {"addresses": ["10.0.0.4"], "nodeName": "gone"},
            ]),
        )];
        let got = placement(&services, &plain_nodes(), &slices, &rules()).vips;
        // b's endpoint is not ready; an absent condition counts as ready; "gone" has no Node.
        assert_eq!(got[&ip("192.0.2.30")], set(&["a", "c"]));
    }

    #[test]
    fn a_local_service_without_ready_endpoints_is_not_announced() {
        let services = [service(
            "web",
            json!({"externalTrafficPolicy": "Local"}),
            &["192.0.2.30"],
        )];
        let not_ready = [slice(
            "web",
            json!([{"addresses": ["10.0.0.1"], "nodeName": "a", "conditions": {"ready": false}}]),
        )];
        assert!(
            placement(&services, &plain_nodes(), &not_ready, &rules())
                .vips
                .is_empty()
        );
        // Another Service's endpoints do not count.
        let other = [slice(
            "other",
            json!([{"addresses": ["10.0.0.1"], "nodeName": "a"}]),
        )];
        assert!(
            placement(&services, &plain_nodes(), &other, &rules())
                .vips
                .is_empty()
        );
    }

    #[test]
    fn without_endpoint_slices_a_local_service_is_eligible_everywhere() {
        let services = [service(
            "web",
            json!({"externalTrafficPolicy": "Local"}),
            &["192.0.2.30"],
        )];
        let blind = PlacementRules {
            endpoints_known: false,
            ..rules()
        };
        let got = placement(&services, &plain_nodes(), &[], &blind).vips;
        assert_eq!(got[&ip("192.0.2.30")], set(&["a", "b", "c"]));
    }

    fn beta_slice(service: &str, endpoints: serde_json::Value) -> EndpointSliceV1beta1 {
        serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1beta1",
            "kind": "EndpointSlice",
            "metadata": {
                "namespace": "default",
                "name": format!("{service}-beta"),
                "labels": {SERVICE_NAME_LABEL: service},
            },
            "addressType": "IPv4",
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .expect("v1beta1 slice fixture")
    }

    #[test]
    fn v1beta1_slices_name_the_node_by_node_name_or_hostname_topology() {
        let services = [service(
            "web",
            json!({"externalTrafficPolicy": "Local"}),
            &["192.0.2.30"],
        )];
        // As a 1.20 kube-controller-manager writes them: the node only in the topology.
        let slices = [beta_slice(
            "web",
            json!([
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                 "topology": {HOSTNAME_TOPOLOGY_KEY: "a", "topology.kubernetes.io/zone": "z"}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false},
                 "topology": {HOSTNAME_TOPOLOGY_KEY: "b"}},
                {"addresses": ["10.0.0.3"], "nodeName": "c",
                 "topology": {HOSTNAME_TOPOLOGY_KEY: "not-c"}},
                {"addresses": ["10.0.0.4"]},
            ]),
        )];
        let converted: Vec<EndpointSlice> = slices.iter().map(slice_from_v1beta1).collect();
        let nodes: Vec<Option<&str>> = converted[0]
            .endpoints
            .iter()
            .map(|e| e.node_name.as_deref())
            .collect();
        assert_eq!(nodes, [Some("a"), Some("b"), Some("c"), None]);
        let got = placement(&services, &plain_nodes(), &converted, &rules()).vips;
        assert_eq!(got[&ip("192.0.2.30")], set(&["a", "c"]));
    }

    #[test]
    fn a_v1beta1_slice_without_endpoints_is_read() {
        // As the API server sends a slice whose pods are all gone, and a watch bookmark.
        let empty: EndpointSliceV1beta1 = serde_json::from_value(json!({
            "kind": "EndpointSlice",
            "apiVersion": "discovery.k8s.io/v1beta1",
            "metadata": {"namespace": "default", "name": "web-x",
                         "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "endpoints": null,
            "ports": null,
        }))
        .expect("a slice with endpoints: null");
        assert!(empty.endpoints.is_empty());
        let null_addresses: EndpointSliceV1beta1 = serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "web-y"},
            "endpoints": [{"addresses": null, "topology": {HOSTNAME_TOPOLOGY_KEY: "a"}}],
        }))
        .expect("an endpoint with addresses: null");
        assert!(null_addresses.endpoints[0].addresses.is_empty());
        let services = [service(
            "web",
            json!({"externalTrafficPolicy": "Local"}),
            &["192.0.2.30"],
        )];
        let converted = [slice_from_v1beta1(&empty)];
        assert!(
            placement(&services, &plain_nodes(), &converted, &rules())
                .vips
                .is_empty()
        );
    }

    #[test]
    fn v1beta1_slices_keep_the_service_label() {
        let slices = [beta_slice(
            "other",
            json!([{"addresses": ["10.0.0.1"], "topology": {HOSTNAME_TOPOLOGY_KEY: "a"}}]),
        )];
        let converted: Vec<EndpointSlice> = slices.iter().map(slice_from_v1beta1).collect();
        let ready = ready_nodes(&converted);
        let key = ("default".to_owned(), "other".to_owned());
        assert_eq!(ready.get(&key), Some(&["a".to_owned()].into()));
        assert_eq!(ready.len(), 1);
    }

    #[test]
    fn services_sharing_an_ip_get_the_intersection() {
        let services = [
            service("http", json!({}), &["192.0.2.30"]),
            service(
                "dns",
                json!({"externalTrafficPolicy": "Local"}),
                &["192.0.2.30"],
            ),
        ];
        let slices = [slice(
            "dns",
            json!([{"addresses": ["10.0.0.1"], "nodeName": "b"}]),
        )];
        let got = placement(&services, &plain_nodes(), &slices, &rules()).vips;
        assert_eq!(got[&ip("192.0.2.30")], set(&["b"]));
        // Without any ready endpoint for one of them the shared VIP is not announced.
        assert!(
            placement(&services, &plain_nodes(), &[], &rules())
                .vips
                .is_empty()
        );
    }

    #[test]
    fn services_are_found_by_vip_and_nodes_by_internal_ip() {
        let services = [
            service("web", json!({}), &["192.0.2.30"]),
            service("other", json!({}), &["192.0.2.31"]),
        ];
        let found = services_with_vip(&services, ip("192.0.2.30"), &ClassFilter::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].metadata.name.as_deref(), Some("web"));
        let ips = internal_ips(&plain_nodes());
        assert_eq!(ips.get("a"), Some(&ip("192.0.2.1")));
        assert_eq!(ips.len(), 3);
    }

    fn pooled(mut service: Service, pool: &str) -> Service {
        service
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(IP_ALLOCATED_FROM_POOL.to_owned(), pool.to_owned());
        service
    }

    fn advertising(pools: &[(&str, serde_json::Value)], ads: &[serde_json::Value]) -> Advertising {
        Advertising::Known {
            pools: pools
                .iter()
                .map(|(name, labels)| {
                    let labels = serde_json::from_value(labels.clone()).expect("pool labels");
                    ((*name).to_owned(), labels)
                })
                .collect(),
            advertisements: ads
                .iter()
                .map(|spec| {
                    let spec = serde_json::from_value(spec.clone()).expect("advertisement spec");
                    Advertisement::parse(&spec).expect("valid advertisement")
                })
                .collect(),
        }
    }

    fn zoned_nodes() -> Vec<Node> {
        vec![
            node("a", json!({"zone": "east"}), None),
            node("b", json!({"zone": "east", "role": "edge"}), None),
            node("c", json!({"zone": "west"}), None),
        ]
    }

    fn advertised(local_node: &str, advertising: Advertising) -> PlacementRules {
        PlacementRules {
            advertising,
            local_node: local_node.to_owned(),
            ..rules()
        }
    }

    #[test]
    fn a_pool_no_advertisement_selects_is_not_announced_but_legacy_pools_are() {
        let services = [
            pooled(service("web", json!({}), &["192.0.2.30"]), "front"),
            pooled(service("old", json!({}), &["192.0.2.31"]), "from-configmap"),
            service("unannotated", json!({}), &["192.0.2.32"]),
        ];
        let known = advertising(
            &[("front", json!({})), ("back", json!({}))],
            &[json!({"ipAddressPools": ["back"]})],
        );
        let got = placement(&services, &zoned_nodes(), &[], &advertised("a", known)).vips;
        let vips: Vec<IpAddr> = got.keys().copied().collect();
        assert_eq!(vips, [ip("192.0.2.31"), ip("192.0.2.32")]);
        assert_eq!(got[&ip("192.0.2.31")], set(&["a", "b", "c"]));
        // Without the L2Advertisement API, every pool is announced everywhere.
        let unrestricted = placement(
            &services,
            &zoned_nodes(),
            &[],
            &advertised("a", Advertising::Unrestricted),
        );
        assert_eq!(unrestricted.vips.len(), 3);
        assert!(unrestricted.interfaces.is_empty());
    }

    #[test]
    fn nodes_are_the_union_of_the_selecting_advertisements_node_selectors() {
        let services = [pooled(service("web", json!({}), &["192.0.2.30"]), "front")];
        let known = advertising(
            &[("front", json!({"tier": "edge"}))],
            &[
                json!({"ipAddressPools": ["front"], "nodeSelectors": [{"matchLabels": {"zone": "west"}}]}),
                json!({"ipAddressPoolSelectors": [{"matchLabels": {"tier": "edge"}}],
                       "nodeSelectors": [{"matchExpressions": [{"key": "role", "operator": "Exists"}]}]}),
                json!({"ipAddressPools": ["other"]}),
            ],
        );
        let got = placement(&services, &zoned_nodes(), &[], &advertised("a", known)).vips;
        assert_eq!(got[&ip("192.0.2.30")], set(&["b", "c"]));
    }

    #[test]
    fn advertisements_still_respect_node_eligibility_and_local_endpoints() {
        let mut nodes = zoned_nodes();
        nodes[1] = node("b", json!({"zone": "east", EXCLUDE_LABEL: ""}), None);
        let services = [pooled(
            service(
                "web",
                json!({"externalTrafficPolicy": "Local"}),
                &["192.0.2.30"],
            ),
            "front",
        )];
        let slices = [slice(
            "web",
            json!([{"addresses": ["10.0.0.1"], "nodeName": "a"},
                   {"addresses": ["10.0.0.2"], "nodeName": "b"}]),
        )];
        let known = advertising(
            &[("front", json!({}))],
            &[json!({"nodeSelectors": [{"matchLabels": {"zone": "east"}}]})],
        );
        let got = placement(&services, &nodes, &slices, &advertised("a", known)).vips;
        assert_eq!(got[&ip("192.0.2.30")], set(&["a"]));
    }

    #[test]
    fn the_local_node_gets_the_interfaces_of_the_advertisements_that_select_it() {
        let services = [
            pooled(service("web", json!({}), &["192.0.2.30"]), "front"),
            pooled(service("api", json!({}), &["192.0.2.31"]), "back"),
        ];
        let known = advertising(
            &[("front", json!({})), ("back", json!({}))],
            &[
                json!({"ipAddressPools": ["front"], "interfaces": ["eth1"]}),
                json!({"ipAddressPools": ["front"], "interfaces": ["eth2"],
                       "nodeSelectors": [{"matchLabels": {"zone": "east"}}]}),
                json!({"ipAddressPools": ["back"], "interfaces": ["eth1"]}),
                json!({"ipAddressPools": ["back"], "nodeSelectors": [{"matchLabels": {"zone": "west"}}]}),
            ],
        );
        let on_a = placement(
            &services,
            &zoned_nodes(),
            &[],
            &advertised("a", known.clone()),
        );
        let names = |list: &[&str]| {
            list.iter()
                .map(|n| (*n).to_owned())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(on_a.interfaces[&ip("192.0.2.30")], names(&["eth1", "eth2"]));
        assert_eq!(on_a.interfaces[&ip("192.0.2.31")], names(&["eth1"]));
        // On c, an advertisement without interfaces selects the node: every interface.
        let on_c = placement(&services, &zoned_nodes(), &[], &advertised("c", known));
        assert_eq!(on_c.interfaces[&ip("192.0.2.30")], names(&["eth1"]));
        assert!(!on_c.interfaces.contains_key(&ip("192.0.2.31")));
    }

    #[test]
    fn a_node_not_allowed_to_own_a_vip_has_no_interfaces_for_it() {
        let services = [pooled(service("web", json!({}), &["192.0.2.30"]), "front")];
        let known = advertising(
            &[("front", json!({}))],
            &[
                json!({"interfaces": ["eth1"], "nodeSelectors": [{"matchLabels": {"zone": "west"}}]}),
            ],
        );
        let on_a = placement(&services, &zoned_nodes(), &[], &advertised("a", known));
        assert_eq!(on_a.vips[&ip("192.0.2.30")], set(&["c"]));
        assert!(on_a.interfaces.is_empty());
    }
}
