//! Writes the CustomResourceDefinitions generated from swimlb's Rust types, one YAML file per
//! kind, into the directory given (`deploy/crds`), or prints them all when none is given.

use std::io::Write;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let crds = swimlb_controller::crd::crds()?;
    match std::env::args_os().nth(1).map(PathBuf::from) {
        Some(dir) => {
            for (file, yaml) in crds {
                std::fs::write(dir.join(file), yaml)?;
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            for (_, yaml) in crds {
                out.write_all(yaml.as_bytes())?;
            }
        }
    }
    Ok(())
}
