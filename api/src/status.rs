//! `ServiceL2Status`: which node announces a Service's IP, on which interfaces, since when and
//! why, written by that node's speaker each time the IP moves (and only then), in the
//! Service's namespace, owned by the Service (deleted with it).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label naming the Service a [`ServiceL2Status`] is about.
pub const STATUS_SERVICE_LABEL: &str = "swimlb.io/service-name";
/// Label naming the node that wrote a [`ServiceL2Status`].
pub const STATUS_NODE_LABEL: &str = "swimlb.io/node";

/// Where one IP of a Service is announced, as the announcing speaker last wrote it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "swimlb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    shortname = "l2status",
    category = "swimlb",
    doc = "Which node announces an IP of a Service with ARP and NDP, written by that node's speaker when the IP moves.",
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#,
    printcolumn = r#"{"name":"IP","type":"string","jsonPath":".spec.ip"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"Interfaces","type":"string","jsonPath":".spec.interfaces"}"#,
    printcolumn = r#"{"name":"Since","type":"date","jsonPath":".spec.since"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".spec.reason","priority":10}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusSpec {
    /// The Service's name (in this object's namespace).
    pub service: String,
    /// The announced IP.
    pub ip: String,
    /// The node announcing it.
    pub node: String,
    /// The interfaces it answers and announces on; empty: none (see the announceFailed Event).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// When this node took the IP (RFC 3339).
    pub since: String,
    /// Why it took it: the claim rule, and the previous owner when there was one.
    pub reason: String,
}

/// The object name for `ip` of Service `service`: the Service's name and the address with
/// `.` and `:` as `-` (always a valid name: Service names are DNS labels, at most 63 bytes).
pub fn status_name(service: &str, ip: std::net::IpAddr) -> String {
    let address: String = ip
        .to_string()
        .chars()
        .map(|c| if c == '.' || c == ':' { '-' } else { c })
        .collect();
    format!("{service}-{address}")
        .trim_end_matches('-')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_object_names_for_both_families() {
        let v4 = status_name("web", "192.0.2.30".parse().expect("address"));
        assert_eq!(v4, "web-192-0-2-30");
        let v6 = status_name("web", "2001:db8::".parse().expect("address"));
        assert_eq!(v6, "web-2001-db8");
        let v6_inner = status_name("web", "2001:db8::30".parse().expect("address"));
        assert_eq!(v6_inner, "web-2001-db8--30");
        for name in [v4, v6, v6_inner] {
            assert!(name.len() <= 253);
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            );
        }
    }
}
