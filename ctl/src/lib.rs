//! swimlbctl: operator commands.
//!
//! - [`status`]: every VIP, its Services, pool and announcing node, and the pools' usage;
//! - [`validate`]: the controller's own pool checks on files, before they are applied;
//! - [`migrate`]: MetalLB layer-2 configuration translated into swimlb objects, with everything
//!   that has no equivalent listed and explained;
//! - [`cluster`]: MetalLB's objects read from the cluster, swimlb's applied to it;
//! - [`documents`]: the YAML files both read.

pub mod cluster;
pub mod documents;
pub mod migrate;
pub mod status;
pub mod validate;

/// Objects as one multi-document YAML stream.
pub fn to_yaml_stream(
    objects: &[serde_json::Value],
) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(object)?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
