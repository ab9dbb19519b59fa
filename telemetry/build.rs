//! Records the compiler's version for the `rustc` label of the build-info gauges.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(rustc).arg("--version").output() else {
        return;
    };
    if !output.status.success() {
        return;
    }
    // "rustc 1.89.0 (29483883e 2025-08-04)": the second word.
    let text = String::from_utf8_lossy(&output.stdout);
    if let Some(version) = text.split_whitespace().nth(1) {
        println!("cargo:rustc-env=SWIMLB_RUSTC_VERSION={version}");
    }
}
