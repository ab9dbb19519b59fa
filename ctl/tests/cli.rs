//! The swimlbctl binary as an operator runs it.

use std::path::Path;
use std::process::{Command, Output};

fn swimlbctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swimlbctl"))
        .args(args)
        .output()
        .expect("swimlbctl runs")
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn migrated_output_validates_and_untranslated_parts_are_listed() {
    let out = swimlbctl(&["migrate-metallb", &fixture("metallb-legacy.yaml")]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(stdout.contains("kind: IPAddressPool"), "{stdout}");
    assert!(stdout.contains("192.0.2.240-192.0.2.250"), "{stdout}");
    assert!(
        !stdout.contains("203.0.113.0/24"),
        "the BGP pool is not written"
    );
    assert!(stderr.contains("gateway, protocol bgp"), "{stderr}");

    let dir = tempfile::tempdir().expect("temp dir");
    let migrated = dir.path().join("swimlb.yaml");
    std::fs::write(&migrated, &stdout).expect("write");
    let check = swimlbctl(&["validate", &migrated.display().to_string()]);
    assert!(check.status.success(), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout).starts_with("ok       default"));

    let strict = swimlbctl(&[
        "migrate-metallb",
        "--strict",
        &fixture("metallb-legacy.yaml"),
    ]);
    assert_eq!(strict.status.code(), Some(2));
}

#[test]
fn validate_fails_on_a_bad_pool_and_names_the_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pools.yaml");
    std::fs::write(
        &file,
        "apiVersion: swimlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: swimlb-system}\nspec:\n  addresses: [192.0.2.20-192.0.2.10]\n",
    )
    .expect("write");
    let out = swimlbctl(&["validate", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("invalid  lan"), "{stdout}");
    assert!(stdout.contains("192.0.2.20-192.0.2.10"), "{stdout}");

    let missing = swimlbctl(&["validate", "/nonexistent/pools.yaml"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

/// The shipped examples are what an operator applies first: they must pass (the legacy
/// ConfigMap example is the alternative form of the same pools, so it is not read with them).
#[test]
fn the_shipped_pool_and_advertisement_examples_validate() {
    let example = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/examples")
            .join(name)
            .display()
            .to_string()
    };
    let out = swimlbctl(&[
        "validate",
        &example("ipaddresspool.yaml"),
        &example("l2advertisement.yaml"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok       L2Advertisement team-a-edge"),
        "{stdout}"
    );
}

/// kubectl finds `kubectl-swimlb` on PATH and runs it as `kubectl swimlb`.
#[test]
fn runs_as_a_kubectl_plugin() {
    let Some(kubectl) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    }) else {
        assert!(std::env::var("CI").is_err(), "kubectl is missing in CI");
        eprintln!("kubectl not found: skipping the plugin check");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_swimlbctl"),
        dir.path().join("kubectl-swimlb"),
    )
    .expect("symlink");
    let path = std::env::join_paths(std::iter::once(dir.path().to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/l2advertisement.yaml");
    let out = Command::new(kubectl)
        .args(["swimlb", "validate"])
        .arg(&example)
        .env("PATH", path)
        .output()
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("ok       L2Advertisement default"),
        "{stdout}"
    );
}
