use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type on an [`IPAddressPool`]'s status: `True` when the spec is valid and the pool
/// serves new allocations, `False` with the reason and offending value otherwise.
pub const POOL_CONDITION_VALID: &str = "Valid";

/// A range of addresses that swimlb hands out to LoadBalancer Services.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "swimlb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    namespaced,
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "ipp",
    category = "swimlb",
    doc = "A pool of addresses swimlb allocates to LoadBalancer Services.",
    printcolumn = r#"{"name":"Addresses","type":"string","jsonPath":".spec.addresses"}"#,
    printcolumn = r#"{"name":"Auto Assign","type":"boolean","jsonPath":".spec.autoAssign"}"#,
    printcolumn = r#"{"name":"Valid","type":"string","jsonPath":".status.conditions[?(@.type==\"Valid\")].status"}"#,
    printcolumn = r#"{"name":"IPv4 Total","type":"integer","jsonPath":".status.totalIPv4"}"#,
    printcolumn = r#"{"name":"IPv4 In Use","type":"integer","jsonPath":".status.assignedIPv4"}"#,
    printcolumn = r#"{"name":"IPv4 Available","type":"integer","jsonPath":".status.availableIPv4"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// Addresses as CIDRs (`192.0.2.0/24`, `2001:db8::/120`) or inclusive ranges
    /// (`192.0.2.30-192.0.2.49`); IPv4 and IPv6 may be mixed across entries.
    pub addresses: Vec<String>,
    /// Whether Services without a requested pool or address may get addresses from this pool.
    /// Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_assign: Option<bool>,
    /// Skip IPv4 addresses ending in .0 and .255, which some old clients treat as broadcast.
    #[serde(
        rename = "avoidBuggyIPs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub avoid_buggy_ips: Option<bool>,
    /// Restricts this pool to some Services and orders it against other pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

/// Which Services a pool serves first, and how it ranks against other pools.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Lower values are tried first; 0 or unset ranks after every positive priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Namespaces whose Services this pool serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Label selectors on Namespaces whose Services this pool serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Label selectors on the Services this pool serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// Observed state of a pool, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses in this pool's ranges (less avoided ones).
    #[serde(rename = "totalIPv4", default)]
    pub total_ipv4: u64,
    /// IPv6 addresses in this pool's ranges (saturates at the largest 64-bit value).
    #[serde(rename = "totalIPv6", default)]
    pub total_ipv6: u64,
    /// IPv4 addresses of this pool held by at least one Service.
    #[serde(rename = "assignedIPv4", default)]
    pub assigned_ipv4: u64,
    /// IPv4 addresses of this pool still free.
    #[serde(rename = "availableIPv4", default)]
    pub available_ipv4: u64,
    /// IPv6 addresses of this pool held by at least one Service.
    #[serde(rename = "assignedIPv6", default)]
    pub assigned_ipv6: u64,
    /// IPv6 addresses of this pool still free (saturates at the largest 64-bit value).
    #[serde(rename = "availableIPv6", default)]
    pub available_ipv6: u64,
    /// `Valid` condition: why the pool does or does not serve new allocations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn crd_has_status_subresource_and_group() {
        let crd = IPAddressPool::crd();
        assert_eq!(crd.spec.group, crate::GROUP);
        assert_eq!(crd.spec.names.kind, "IPAddressPool");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1beta1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
    }

    #[test]
    fn spec_reads_camel_case_yaml() {
        let yaml = "addresses: [192.0.2.0/28, 198.51.100.1-198.51.100.9]\nautoAssign: false\navoidBuggyIPs: true\nserviceAllocation:\n  priority: 5\n  namespaces: [team-a]\n";
        let spec: IPAddressPoolSpec = serde_saphyr::from_str(yaml).expect("valid spec");
        assert_eq!(spec.addresses.len(), 2);
        assert_eq!(spec.auto_assign, Some(false));
        assert_eq!(spec.avoid_buggy_ips, Some(true));
        let allocation = spec.service_allocation.expect("serviceAllocation");
        assert_eq!(allocation.priority, Some(5));
        assert_eq!(allocation.namespaces, vec!["team-a".to_owned()]);
    }
}
