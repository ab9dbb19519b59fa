//! Prints the CustomResourceDefinitions generated from swimlb's Rust types, as YAML.

use std::io::Write;

fn main() -> anyhow::Result<()> {
    let yaml = swimlb_controller::crd::crd_yaml()?;
    std::io::stdout().write_all(yaml.as_bytes())?;
    Ok(())
}
