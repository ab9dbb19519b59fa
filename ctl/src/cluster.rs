//! The cluster edge of `migrate-metallb`: MetalLB's objects read from the API server (the
//! legacy ConfigMap and every `metallb.io` kind a layer-2 or BGP setup uses), and the
//! translated swimlb objects applied with server-side apply.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::documents::{Document, DocumentError, read_documents};

/// The `metallb.io` kinds read, with the version MetalLB serves them at and their plural.
const METALLB_KINDS: [(&str, &str, &str); 6] = [
    ("v1beta1", "IPAddressPool", "ipaddresspools"),
    ("v1beta1", "L2Advertisement", "l2advertisements"),
    ("v1beta1", "BGPAdvertisement", "bgpadvertisements"),
    ("v1beta2", "BGPPeer", "bgppeers"),
    ("v1beta1", "BFDProfile", "bfdprofiles"),
    ("v1beta1", "Community", "communities"),
];

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read {what} from the cluster: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot apply {what}: {source}")]
    Apply {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0} has no apiVersion, kind or name")]
    Incomplete(String),
    #[error(transparent)]
    Documents(#[from] DocumentError),
}

/// Lists a namespaced resource; one that is not served (MetalLB's CRDs not installed, or a
/// kind of another MetalLB version) reads as none.
async fn list(api: Api<DynamicObject>, what: &str) -> Result<Vec<Value>, ClusterError> {
    match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .map(|object| {
                serde_json::to_value(object).map_err(|e| ClusterError::Incomplete(e.to_string()))
            })
            .collect(),
        Err(error) if swimlb_api::discovery::is_not_found(&error) => Ok(Vec::new()),
        Err(source) => Err(ClusterError::Read {
            what: what.to_owned(),
            source,
        }),
    }
}

/// MetalLB's configuration in `namespace`: the ConfigMap `config_map` (when present) and every
/// `metallb.io` object, as the documents `migrate` reads.
pub async fn read_metallb(
    client: &Client,
    namespace: &str,
    config_map: &str,
) -> Result<Vec<Document>, ClusterError> {
    let mut items = Vec::new();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match maps.get_opt(config_map).await {
        Ok(Some(map)) => {
            let mut value =
                serde_json::to_value(map).map_err(|e| ClusterError::Incomplete(e.to_string()))?;
            value["apiVersion"] = json!("v1");
            value["kind"] = json!("ConfigMap");
            items.push(value);
        }
        Ok(None) => {}
        Err(source) => {
            return Err(ClusterError::Read {
                what: format!("ConfigMap {namespace}/{config_map}"),
                source,
            });
        }
    }
    for (version, kind, plural) in METALLB_KINDS {
        let resource = ApiResource {
            group: "metallb.io".to_owned(),
            version: version.to_owned(),
            api_version: format!("metallb.io/{version}"),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        };
        let api = Api::namespaced_with(client.clone(), namespace, &resource);
        items.extend(list(api, &format!("{plural}.metallb.io")).await?);
    }
    let text = serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": items}))
        .map_err(|e| ClusterError::Incomplete(e.to_string()))?;
    Ok(read_documents(&format!("cluster:{namespace}"), &text)?)
}

/// Applies `objects` (swimlb IPAddressPools and L2Advertisements) with server-side apply as
/// `params` says; returns `Kind namespace/name` of each.
pub async fn apply(
    client: &Client,
    objects: &[Value],
    params: &PatchParams,
) -> Result<Vec<String>, ClusterError> {
    let mut applied = Vec::new();
    for object in objects {
        let object: DynamicObject = serde_json::from_value(object.clone())
            .map_err(|e| ClusterError::Incomplete(e.to_string()))?;
        let types = object
            .types
            .clone()
            .ok_or_else(|| ClusterError::Incomplete(object.name_any()))?;
        let (group, version) = types
            .api_version
            .split_once('/')
            .ok_or_else(|| ClusterError::Incomplete(object.name_any()))?;
        let resource = ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: types.api_version.clone(),
            kind: types.kind.clone(),
            plural: format!("{}s", types.kind.to_lowercase()),
        };
        let namespace = object.namespace().unwrap_or_default();
        let what = format!("{} {namespace}/{}", types.kind, object.name_any());
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
        api.patch(&object.name_any(), params, &Patch::Apply(&object))
            .await
            .map_err(|source| ClusterError::Apply {
                what: what.clone(),
                source,
            })?;
        applied.push(what);
    }
    Ok(applied)
}
