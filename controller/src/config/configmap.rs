//! The legacy ConfigMap: MetalLB's `address-pools:` document under the key `config`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{PoolDeclaration, PoolError, PoolOrigin};

/// Why a whole ConfigMap could not be read (its pools are then unknown).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigMapError {
    #[error("ConfigMap has no {key:?} key")]
    MissingKey { key: String },
    #[error("ConfigMap key {key:?} is not valid YAML for address-pools: {reason}")]
    Yaml { key: String, reason: String },
}

/// The legacy ConfigMap document (`config` key), as MetalLB defined it.
#[derive(Debug, Deserialize)]
pub struct LegacyConfig {
    #[serde(default, rename = "address-pools")]
    pub address_pools: Vec<LegacyPool>,
    /// Every other key (MetalLB's `peers`, `bgp-communities`, ...): swimlb ignores them, and
    /// `swimlbctl migrate-metallb` lists them.
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct LegacyPool {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default, rename = "auto-assign")]
    pub auto_assign: Option<bool>,
    #[serde(default, rename = "avoid-buggy-ips")]
    pub avoid_buggy_ips: Option<bool>,
    /// Fields swimlb does not know (MetalLB's `bgp-advertisements`, ...).
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_json::Value>,
}

/// The ConfigMap key holding the legacy document.
pub const CONFIGMAP_KEY: &str = "config";

/// Reads the pools of a legacy ConfigMap from its `data`.
pub fn parse_configmap(
    namespace: &str,
    name: &str,
    created: i64,
    data: &BTreeMap<String, String>,
) -> Result<Vec<PoolDeclaration>, ConfigMapError> {
    let text = data
        .get(CONFIGMAP_KEY)
        .ok_or_else(|| ConfigMapError::MissingKey {
            key: CONFIGMAP_KEY.to_owned(),
        })?;
    // An empty document means no pools.
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let config: LegacyConfig = serde_saphyr::from_str(text).map_err(|e| ConfigMapError::Yaml {
        key: CONFIGMAP_KEY.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(config
        .address_pools
        .into_iter()
        .enumerate()
        .map(|(index, pool)| {
            let mut errors = Vec::new();
            match pool.protocol.as_deref().map(str::trim) {
                Some("layer2") => {}
                Some(other) => errors.push(PoolError::UnknownProtocol {
                    protocol: other.to_owned(),
                }),
                None => errors.push(PoolError::MissingProtocol),
            }
            let pool_name = pool.name.unwrap_or_default();
            if pool_name.trim().is_empty() {
                errors.push(PoolError::MissingName);
            }
            PoolDeclaration {
                name: if pool_name.trim().is_empty() {
                    format!("{name}[{index}]")
                } else {
                    pool_name
                },
                origin: PoolOrigin::ConfigMap {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    index,
                },
                created,
                addresses: pool.addresses,
                auto_assign: pool.auto_assign.unwrap_or(true),
                avoid_buggy_ips: pool.avoid_buggy_ips.unwrap_or(false),
                allocation: None,
                errors,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PoolSet;
    use crate::config::tests::configmap;

    #[test]
    fn legacy_configmap_seed_format() {
        let pools = configmap(
            "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 192.0.2.30-192.0.2.49\n",
        )
        .expect("valid document");
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].name, "default");
        assert!(pools[0].errors.is_empty());
        assert!(pools[0].auto_assign);
        let set = PoolSet::build(pools);
        let pool = set.get("default").expect("pool");
        assert!(pool.is_valid());
        assert!(pool.contains("192.0.2.49".parse().expect("ip")));
    }

    #[test]
    fn legacy_configmap_flags_and_protocol_errors() {
        let pools = configmap(
            "address-pools:\n- name: a\n  protocol: layer2\n  auto-assign: false\n  avoid-buggy-ips: true\n  addresses: [192.0.2.0/28]\n- name: b\n  protocol: bgp\n  addresses: [198.51.100.0/28]\n- name: c\n  protocol: layer3\n  addresses: [203.0.113.0/28]\n- name: d\n  addresses: [203.0.113.16/28]\n- protocol: layer2\n  addresses: [203.0.113.32/28]\n",
        )
        .expect("valid document");
        assert!(!pools[0].auto_assign);
        assert!(pools[0].avoid_buggy_ips);
        assert_eq!(
            pools[1].errors,
            vec![PoolError::UnknownProtocol {
                protocol: "bgp".to_owned()
            }]
        );
        assert!(pools[2].errors[0].to_string().contains("\"layer3\""));
        assert_eq!(pools[3].errors, vec![PoolError::MissingProtocol]);
        assert_eq!(pools[4].errors, vec![PoolError::MissingName]);
    }

    #[test]
    fn configmap_document_errors() {
        assert_eq!(
            parse_configmap("ns", "cm", 0, &BTreeMap::new()),
            Err(ConfigMapError::MissingKey {
                key: "config".to_owned()
            })
        );
        let err = configmap("address-pools: {not: a list").expect_err("bad yaml");
        assert!(matches!(err, ConfigMapError::Yaml { .. }), "{err}");
        assert_eq!(configmap("  \n").expect("empty"), Vec::new());
        assert_eq!(configmap("peers: []\n").expect("no pools"), Vec::new());
    }
}
