//! What a Service asks of the allocator, read from its Kubernetes object once so the decision
//! itself is a pure function of plain data.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use swimlb_api::annotations;

use crate::allocator::Family;

/// A Service's namespace and name; the order decides who wins ties, so it is total.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec.ipFamilyPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyPolicy {
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

/// The families a Service wants addresses of, primary first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyRequest {
    pub policy: FamilyPolicy,
    /// One or two distinct families, primary first.
    pub families: Vec<Family>,
}

impl FamilyRequest {
    pub fn single(family: Family) -> Self {
        Self {
            policy: FamilyPolicy::SingleStack,
            families: vec![family],
        }
    }

    pub fn primary(&self) -> Family {
        self.families.first().copied().unwrap_or(Family::V4)
    }

    /// Families to try, primary first: both for dual-stack policies.
    pub fn wanted(&self) -> Vec<Family> {
        match self.policy {
            FamilyPolicy::SingleStack => vec![self.primary()],
            FamilyPolicy::PreferDualStack | FamilyPolicy::RequireDualStack => {
                vec![self.primary(), self.primary().other()]
            }
        }
    }

    pub fn allows(&self, family: Family) -> bool {
        match self.policy {
            FamilyPolicy::SingleStack => family == self.primary(),
            _ => true,
        }
    }
}

/// `spec.externalTrafficPolicy` and what it implies for sharing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrafficPolicy {
    Cluster,
    /// Local with the pod selector: sharing Services must reach the same pods.
    Local {
        selector: BTreeMap<String, String>,
    },
}

/// What IP sharing needs to know about a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sharing {
    /// The `allow-shared-ip` key; `None` means no sharing.
    pub key: Option<String>,
    /// (protocol, port) pairs the Service listens on, sorted, without duplicates.
    pub ports: Vec<(String, i32)>,
    pub traffic_policy: TrafficPolicy,
}

/// Why a Service's own spec or annotations cannot be honoured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("annotation {key} has {value:?}, which is not an IP address")]
    BadRequestedIp { key: String, value: String },
    #[error("spec.loadBalancerIP {value:?} is not an IP address")]
    BadLoadBalancerIp { value: String },
    #[error(
        "spec.loadBalancerIP {spec} and annotation {key} {annotation:?} disagree: set only one"
    )]
    ConflictingRequests {
        spec: String,
        key: String,
        annotation: String,
    },
    #[error("requested addresses {0:?}: at most one per family")]
    TooManyRequestedIps(String),
}

/// Everything the allocation decision reads from a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRequest {
    pub key: ServiceKey,
    /// `type: LoadBalancer`.
    pub is_load_balancer: bool,
    pub load_balancer_class: Option<String>,
    /// Requested addresses, or why they could not be read.
    pub requested_ips: Result<Vec<IpAddr>, RequestError>,
    pub requested_pool: Option<String>,
    pub sharing: Sharing,
    pub families: FamilyRequest,
    pub labels: BTreeMap<String, String>,
    pub namespace_labels: BTreeMap<String, String>,
    /// Addresses in `status.loadBalancer.ingress`.
    pub current_ips: Vec<IpAddr>,
    /// The `ip-allocated-from-pool` annotation as found.
    pub current_pool: Option<String>,
}

impl ServiceRequest {
    /// A plain single-stack IPv4 LoadBalancer request; tests and benches build on it.
    pub fn load_balancer(key: ServiceKey) -> Self {
        Self {
            key,
            is_load_balancer: true,
            load_balancer_class: None,
            requested_ips: Ok(Vec::new()),
            requested_pool: None,
            sharing: Sharing {
                key: None,
                ports: vec![("TCP".to_owned(), 80)],
                traffic_policy: TrafficPolicy::Cluster,
            },
            families: FamilyRequest::single(Family::V4),
            labels: BTreeMap::new(),
            namespace_labels: BTreeMap::new(),
            current_ips: Vec::new(),
            current_pool: None,
        }
    }

    /// Reads a Service object; `namespace_labels` are the labels of its namespace.
    pub fn from_service(service: &Service, namespace_labels: &BTreeMap<String, String>) -> Self {
        let metadata = &service.metadata;
        let key = ServiceKey::new(
            metadata.namespace.clone().unwrap_or_default(),
            metadata.name.clone().unwrap_or_default(),
        );
        let empty = BTreeMap::new();
        let annotations_map = metadata.annotations.as_ref().unwrap_or(&empty);
        let spec = service.spec.clone().unwrap_or_default();

        let requested_ips = requested_ips(spec.load_balancer_ip.as_deref(), annotations_map);
        let requested_pool = annotations::lookup(annotations_map, annotations::ADDRESS_POOL)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        let sharing_key = annotations::lookup(annotations_map, annotations::ALLOW_SHARED_IP)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                    p.port,
                )
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let traffic_policy = if spec.external_traffic_policy.as_deref() == Some("Local") {
            TrafficPolicy::Local {
                selector: spec.selector.clone().unwrap_or_default(),
            }
        } else {
            TrafficPolicy::Cluster
        };

        let mut families: Vec<Family> = Vec::new();
        for f in spec.ip_families.iter().flatten() {
            let family = if f == "IPv6" { Family::V6 } else { Family::V4 };
            if !families.contains(&family) {
                families.push(family);
            }
        }
        if families.is_empty() {
            // Servers without the dual-stack fields: the cluster IP tells the family.
            let v6 = spec
                .cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .is_some_and(|ip| ip.is_ipv6());
            families.push(if v6 { Family::V6 } else { Family::V4 });
        }
        let policy = match spec.ip_family_policy.as_deref() {
            Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
            Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
            _ => FamilyPolicy::SingleStack,
        };

        let current_ips = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|ingress| ingress.ip.as_deref()?.parse().ok())
            .collect();
        let current_pool = annotations_map
            .get(annotations::IP_ALLOCATED_FROM_POOL)
            .cloned();

        Self {
            key,
            is_load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
            load_balancer_class: spec.load_balancer_class.clone(),
            requested_ips,
            requested_pool,
            sharing: Sharing {
                key: sharing_key,
                ports,
                traffic_policy,
            },
            families: FamilyRequest { policy, families },
            labels: metadata.labels.clone().unwrap_or_default(),
            namespace_labels: namespace_labels.clone(),
            current_ips,
            current_pool,
        }
    }
}

fn requested_ips(
    spec_ip: Option<&str>,
    annotations_map: &BTreeMap<String, String>,
) -> Result<Vec<IpAddr>, RequestError> {
    let spec_ip = spec_ip.map(str::trim).filter(|s| !s.is_empty());
    let annotation = annotations::lookup(annotations_map, annotations::LOAD_BALANCER_IPS)
        .filter(|(_, v)| !v.trim().is_empty());
    let ips: Vec<IpAddr> = match (spec_ip, annotation) {
        (None, None) => return Ok(Vec::new()),
        (Some(value), None) => {
            vec![value.parse().map_err(|_| RequestError::BadLoadBalancerIp {
                value: value.to_owned(),
            })?]
        }
        (spec, Some((key, value))) => {
            let ips = value
                .split(',')
                .map(|part| {
                    part.trim()
                        .parse::<IpAddr>()
                        .map_err(|_| RequestError::BadRequestedIp {
                            key: key.to_owned(),
                            value: part.trim().to_owned(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(spec) = spec
                && spec.parse::<IpAddr>().ok().as_ref() != ips.first()
            {
                return Err(RequestError::ConflictingRequests {
                    spec: spec.to_owned(),
                    key: key.to_owned(),
                    annotation: value.to_owned(),
                });
            }
            ips
        }
    };
    let families: BTreeSet<Family> = ips.iter().map(|ip| Family::of(*ip)).collect();
    if ips.len() > 2 || families.len() != ips.len() {
        let text = ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        return Err(RequestError::TooManyRequestedIps(text));
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
    };
    use kube::api::ObjectMeta;

    fn service(annotations: &[(&str, &str)], spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("ns".to_owned()),
                name: Some("web".to_owned()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn lb_spec() -> ServiceSpec {
        ServiceSpec {
            type_: Some("LoadBalancer".to_owned()),
            ports: Some(vec![ServicePort {
                port: 80,
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn reads_metallb_annotations() {
        let svc = service(
            &[
                ("metallb.universe.tf/address-pool", "blue"),
                ("metallb.universe.tf/allow-shared-ip", "k1"),
                (
                    "metallb.universe.tf/loadBalancerIPs",
                    "192.0.2.7, 2001:db8::7",
                ),
            ],
            ServiceSpec {
                ip_families: Some(vec!["IPv4".to_owned(), "IPv6".to_owned()]),
                ip_family_policy: Some("RequireDualStack".to_owned()),
                ..lb_spec()
            },
        );
        let request = ServiceRequest::from_service(&svc, &BTreeMap::new());
        assert_eq!(request.key, ServiceKey::new("ns", "web"));
        assert!(request.is_load_balancer);
        assert_eq!(request.requested_pool.as_deref(), Some("blue"));
        assert_eq!(request.sharing.key.as_deref(), Some("k1"));
        assert_eq!(
            request.requested_ips,
            Ok(vec![
                "192.0.2.7".parse().expect("ip"),
                "2001:db8::7".parse().expect("ip")
            ])
        );
        assert_eq!(request.families.policy, FamilyPolicy::RequireDualStack);
        assert_eq!(request.families.wanted(), vec![Family::V4, Family::V6]);
    }

    #[test]
    fn request_errors_name_the_value() {
        let svc = service(&[("swimlb.io/loadBalancerIPs", "192.0.2.x")], lb_spec());
        let err = ServiceRequest::from_service(&svc, &BTreeMap::new())
            .requested_ips
            .expect_err("bad ip");
        assert!(err.to_string().contains("\"192.0.2.x\""), "{err}");

        let svc = service(
            &[("swimlb.io/loadBalancerIPs", "192.0.2.8")],
            ServiceSpec {
                load_balancer_ip: Some("192.0.2.9".to_owned()),
                ..lb_spec()
            },
        );
        let err = ServiceRequest::from_service(&svc, &BTreeMap::new())
            .requested_ips
            .expect_err("conflict");
        assert!(matches!(err, RequestError::ConflictingRequests { .. }));

        let svc = service(
            &[],
            ServiceSpec {
                load_balancer_ip: Some("nope".to_owned()),
                ..lb_spec()
            },
        );
        assert_eq!(
            ServiceRequest::from_service(&svc, &BTreeMap::new()).requested_ips,
            Err(RequestError::BadLoadBalancerIp {
                value: "nope".to_owned()
            })
        );

        let svc = service(
            &[("swimlb.io/loadBalancerIPs", "192.0.2.8,192.0.2.9")],
            lb_spec(),
        );
        assert!(matches!(
            ServiceRequest::from_service(&svc, &BTreeMap::new()).requested_ips,
            Err(RequestError::TooManyRequestedIps(_))
        ));
    }

    #[test]
    fn spec_load_balancer_ip_and_status() {
        let mut svc = service(
            &[("swimlb.io/ip-allocated-from-pool", "default")],
            ServiceSpec {
                load_balancer_ip: Some("192.0.2.40".to_owned()),
                external_traffic_policy: Some("Local".to_owned()),
                selector: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
                cluster_ip: Some("fd00::1".to_owned()),
                ..lb_spec()
            },
        );
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some("192.0.2.40".to_owned()),
                    ..Default::default()
                }]),
            }),
            conditions: None,
        });
        let request = ServiceRequest::from_service(&svc, &BTreeMap::new());
        assert_eq!(
            request.requested_ips,
            Ok(vec!["192.0.2.40".parse().expect("ip")])
        );
        assert_eq!(
            request.current_ips,
            vec!["192.0.2.40".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(request.current_pool.as_deref(), Some("default"));
        assert!(matches!(
            request.sharing.traffic_policy,
            TrafficPolicy::Local { .. }
        ));
        // No ipFamilies: the cluster IP decides.
        assert_eq!(request.families.primary(), Family::V6);
    }

    #[test]
    fn not_a_load_balancer() {
        let svc = service(
            &[],
            ServiceSpec {
                type_: Some("ClusterIP".to_owned()),
                ..Default::default()
            },
        );
        assert!(!ServiceRequest::from_service(&svc, &BTreeMap::new()).is_load_balancer);
    }
}
