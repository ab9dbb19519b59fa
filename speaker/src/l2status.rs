//! The `ServiceL2Status` objects this node writes: one per Service and IP it takes over, owned
//! by the Service, written once per ownership change (never on a timer) through a bounded
//! queue that a single task drains, so the watch loop never waits on the API server.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::SystemTime;
use swimlb_api::{
    STATUS_NODE_LABEL, STATUS_SERVICE_LABEL, ServiceL2Status, ServiceL2StatusSpec, status_name,
};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// How many status writes may wait for the API server; beyond this they are dropped and
/// counted (the next ownership change writes again).
pub const STATUS_QUEUE: usize = 1024;

/// One VIP this node owns: since when, why, and the interfaces it answers on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedVip {
    pub since: SystemTime,
    pub reason: String,
    pub interfaces: BTreeSet<String>,
}

/// A write for the status task.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusWrite {
    Apply(Box<ServiceL2Status>),
    Delete { namespace: String, name: String },
}

/// The status of `vip` of `service` as announced from `node`; `None` for a Service without a
/// name, namespace or uid (not one the API server returned).
pub fn status_object(
    service: &Service,
    vip: IpAddr,
    node: &str,
    owned: &OwnedVip,
) -> Option<ServiceL2Status> {
    let name = service.metadata.name.as_deref()?;
    let namespace = service.metadata.namespace.as_deref()?;
    let uid = service.metadata.uid.as_deref()?;
    let since = jiff::Timestamp::try_from(owned.since)
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default();
    let mut status = ServiceL2Status::new(
        &status_name(name, vip),
        ServiceL2StatusSpec {
            service: name.to_owned(),
            ip: vip.to_string(),
            node: node.to_owned(),
            interfaces: owned.interfaces.iter().cloned().collect(),
            since,
            reason: owned.reason.clone(),
        },
    );
    status.metadata.namespace = Some(namespace.to_owned());
    status.metadata.labels = Some(BTreeMap::from([
        (STATUS_SERVICE_LABEL.to_owned(), name.to_owned()),
        (STATUS_NODE_LABEL.to_owned(), node.to_owned()),
    ]));
    status.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Service".to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        ..OwnerReference::default()
    }]);
    Some(status)
}

/// Performs queued writes one at a time until the watcher is gone. A failed write is logged;
/// the next ownership change writes again.
pub async fn write_statuses(client: Client, mut queue: mpsc::Receiver<StatusWrite>) {
    let apply = crate::AGENT.apply_params();
    while let Some(write) = queue.recv().await {
        match write {
            StatusWrite::Apply(status) => {
                let namespace = status.namespace().unwrap_or_default();
                let name = status.name_any();
                let api: Api<ServiceL2Status> = Api::namespaced(client.clone(), &namespace);
                let status = clear_managed_fields(*status);
                match api.patch(&name, &apply, &Patch::Apply(&status)).await {
                    Ok(_) => {
                        debug!(%namespace, %name, node = %status.spec.node, "ServiceL2Status written")
                    }
                    Err(error) => {
                        warn!(%namespace, %name, %error, "cannot write a ServiceL2Status")
                    }
                }
            }
            StatusWrite::Delete { namespace, name } => {
                let api: Api<ServiceL2Status> = Api::namespaced(client.clone(), &namespace);
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => debug!(%namespace, %name, "ServiceL2Status deleted"),
                    Err(error) if swimlb_api::discovery::is_not_found(&error) => {}
                    Err(error) => {
                        warn!(%namespace, %name, %error, "cannot delete a ServiceL2Status")
                    }
                }
            }
        }
    }
}

/// Server-side apply rejects objects that carry managed fields.
fn clear_managed_fields(mut status: ServiceL2Status) -> ServiceL2Status {
    status.meta_mut().managed_fields = None;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn service() -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "shop", "name": "web", "uid": "1234"},
            "spec": {"type": "LoadBalancer"},
        }))
        .expect("service fixture")
    }

    #[test]
    fn the_status_names_the_owner_and_is_owned_by_the_service() {
        let owned = OwnedVip {
            since: SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_236_870_600),
            reason: "owner (previous owner node-b)".to_owned(),
            interfaces: ["eth1".to_owned()].into(),
        };
        let vip: IpAddr = "192.0.2.30".parse().expect("address");
        let status = status_object(&service(), vip, "node-a", &owned).expect("a status");
        assert_eq!(status.name_any(), "web-192-0-2-30");
        assert_eq!(status.namespace().as_deref(), Some("shop"));
        assert_eq!(status.spec.node, "node-a");
        assert_eq!(status.spec.ip, "192.0.2.30");
        assert_eq!(status.spec.interfaces, ["eth1"]);
        assert_eq!(status.spec.since, "2026-12-02T18:41:11Z");
        let owner = &status.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Service", "1234")
        );
        assert_eq!(status.labels()[STATUS_NODE_LABEL], "node-a");
    }

    #[test]
    fn a_service_the_api_server_did_not_return_gets_no_status() {
        let mut unsaved = service();
        unsaved.metadata.uid = None;
        let owned = OwnedVip {
            since: SystemTime::UNIX_EPOCH,
            reason: "owner".to_owned(),
            interfaces: BTreeSet::new(),
        };
        let vip: IpAddr = "192.0.2.30".parse().expect("address");
        assert!(status_object(&unsaved, vip, "node-a", &owned).is_none());
    }
}
