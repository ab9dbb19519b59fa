//! The real controller binary with a kubeconfig naming an API server that is not there (a
//! closed port on loopback): it serves `/metrics` from the start and keeps campaigning for
//! its Lease, so its exposition can be checked without a cluster. The text format passes
//! `promtool check metrics`; OpenMetrics is served on request.

use std::process::Command;

#[path = "../../tests/support/metrics_check.rs"]
mod check;
#[path = "../../tests/support/kube_e2e.rs"]
mod support;
use check::Running;
use support::{WAIT, wait_for};

#[test]
fn metrics_pass_promtool_without_an_api_server() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // A port that was free a moment ago: nothing answers there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: absent\n  cluster:\n    server: https://{closed}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: nobody\n  user:\n    token: none\n\
             contexts:\n- name: absent\n  context:\n    cluster: absent\n    user: nobody\n\
             current-context: absent\n"
        ),
    )
    .expect("kubeconfig");
    let mut command = Command::new(env!("CARGO_BIN_EXE_swimlb-controller"));
    command
        .args([
            "--metrics-address",
            "127.0.0.1:0",
            "--identity",
            "lint",
            "--retry-interval-s",
            "1",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("SWIMLB_LOG", "info,kube=warn")
        .env_remove("KUBERNETES_SERVICE_HOST");
    let mut controller = Running::start(command, dir.path().join("controller.log"));
    let address = wait_for("the controller's HTTP address in its log", WAIT, || {
        controller.logged("serving /metrics", "address")
    });
    let healthz = check::get(&address, "/healthz", "*/*").expect("GET /healthz");
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok\n"));
    let text = check::check_metrics(&address);
    check::assert_series(
        &text,
        "swimlb_controller",
        &[
            "swimlb_controller_is_leader 0",
            "swimlb_controller_allocations_total 0",
            "swimlb_controller_services_pending 0",
        ],
        &[],
    );
    // Still running: the missing API server is retried, not fatal.
    assert!(
        controller.child.try_wait().expect("status").is_none(),
        "the controller exited"
    );
}
