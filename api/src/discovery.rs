//! Whether the API server serves a resource: the probe that decides which optional kinds
//! (EndpointSlice versions, swimlb's custom resources) are watched at all.

use kube::{Client, Resource};

/// Whether `error` is the API server's 404. A path it does not serve at all (a group version,
/// or a custom resource whose CRD is not installed) answers with a plain-text body, not a
/// `Status`, so only the code tells; kube's own `is_not_found` looks at the reason first.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Whether `group_version` (`discovery.k8s.io/v1`, `swimlb.io/v1beta1`) lists `resource` (the
/// plural, `endpointslices`); a version that is not served is `false`.
pub async fn serves(
    client: &Client,
    group_version: &str,
    resource: &str,
) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == resource)),
        Err(error) if is_not_found(&error) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Whether the API server serves `K`, at the version it is compiled for.
pub async fn serves_kind<K: Resource<DynamicType = ()>>(
    client: &Client,
) -> Result<bool, kube::Error> {
    serves(client, &K::api_version(&()), &K::plural(&())).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IPAddressPool, L2Advertisement};
    use http::{Request, Response, StatusCode};
    use kube::client::Body;

    /// An API server that serves `swimlb.io/v1beta1` with IPAddressPools only, does not serve
    /// `discovery.k8s.io/v1beta1`, and fails on anything else.
    fn api_server() -> Client {
        let service = tower::service_fn(|request: Request<Body>| async move {
            let (status, body) = match request.uri().path() {
                "/apis/swimlb.io/v1beta1" => (
                    StatusCode::OK,
                    r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"swimlb.io/v1beta1",
                        "resources":[{"name":"ipaddresspools","singularName":"ipaddresspool",
                        "namespaced":true,"kind":"IPAddressPool","verbs":["list"]}]}"#,
                ),
                // As the API server answers for a group version it does not serve.
                "/apis/discovery.k8s.io/v1beta1" => (StatusCode::NOT_FOUND, "404 page not found"),
                _ => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"kind":"Status","apiVersion":"v1","status":"Failure",
                        "reason":"ServiceUnavailable","code":503}"#,
                ),
            };
            Response::builder()
                .status(status)
                .body(Body::from(body.as_bytes().to_vec()))
        });
        Client::new(service, "default")
    }

    #[tokio::test]
    async fn a_listed_resource_is_served_and_an_unlisted_one_is_not() {
        let client = api_server();
        assert!(
            serves_kind::<IPAddressPool>(&client)
                .await
                .expect("an answer")
        );
        assert!(
            !serves_kind::<L2Advertisement>(&client)
                .await
                .expect("an answer")
        );
    }

    #[tokio::test]
    async fn a_version_not_served_is_false_and_other_errors_are_errors() {
        let client = api_server();
        let beta = serves(&client, "discovery.k8s.io/v1beta1", "endpointslices").await;
        assert!(!beta.expect("an answer"));
        assert!(
            serves(&client, "discovery.k8s.io/v1", "endpointslices")
                .await
                .is_err()
        );
    }
}
