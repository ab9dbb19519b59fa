//! The speakers' gossip key Secret, created on first install when it is absent and never
//! overwritten: an operator's own key, or one rotated by hand, stays as it is. Both
//! controller replicas may try at once; the API server lets one create win.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta};
use rand::Rng;
use tracing::{info, warn};

/// The key in the Secret holding the key file (the speaker mounts it as `key`).
pub const SECRET_KEY: &str = "key";

/// A key file with one fresh key, id 0, from `rng` (the operating system's in production).
pub fn key_file(rng: &mut impl Rng) -> String {
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    let mut text = String::from("0 ");
    for byte in key {
        let _ = write!(text, "{byte:02x}");
    }
    text.push('\n');
    text
}

/// The Secret `name` in `namespace` holding `key_file`.
pub fn secret(namespace: &str, name: &str, key_file: String) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/name".to_owned(), "swimlb".to_owned()),
                (
                    "app.kubernetes.io/component".to_owned(),
                    "speaker".to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([(SECRET_KEY.to_owned(), key_file)])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    }
}

/// Creates the Secret unless it exists. Failures are logged, not fatal: the speakers wait
/// for the Secret, and allocation does not need it.
pub async fn ensure(client: kube::Client, namespace: &str, name: &str) {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    match api.get_opt(name).await {
        Ok(Some(_)) => return,
        Ok(None) => {}
        Err(error) => {
            warn!(%namespace, %name, %error, "cannot read the gossip key Secret; not creating it");
            return;
        }
    }
    let mut rng = rand::make_rng::<rand::rngs::ChaCha20Rng>();
    let secret = secret(namespace, name, key_file(&mut rng));
    match api.create(&crate::AGENT.post_params(), &secret).await {
        Ok(_) => info!(%namespace, %name, "created the gossip key Secret with a new key"),
        Err(kube::Error::Api(status)) if status.is_already_exists() => {}
        Err(error) => warn!(%namespace, %name, %error, "cannot create the gossip key Secret"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha20Rng;

    #[test]
    fn the_key_file_is_one_key_the_speakers_can_read() {
        let text = key_file(&mut ChaCha20Rng::seed_from_u64(7));
        swimlb_gossip::KeyRing::parse(&text).expect("a key file the speakers read");
        assert!(text.starts_with("0 ") && text.ends_with('\n') && text.len() == 67);
        let other = key_file(&mut ChaCha20Rng::seed_from_u64(8));
        assert_ne!(text, other, "each install gets its own key");
    }

    #[test]
    fn the_secret_holds_the_file_under_key() {
        let secret = secret("swimlb-system", "swimlb-gossip-key", "0 ab\n".to_owned());
        assert_eq!(secret.metadata.name.as_deref(), Some("swimlb-gossip-key"));
        let data = secret.string_data.expect("string data");
        assert_eq!(data.get(SECRET_KEY).map(String::as_str), Some("0 ab\n"));
    }
}
