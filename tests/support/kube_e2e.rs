//! Helpers shared by the end-to-end tests against a real kube-apiserver (included with
//! `#[path]` by each crate's e2e test): kubectl, a bounded wait, plain HTTP GET, unique names.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs kubectl and returns its stdout; panics with its stderr on failure.
pub fn kubectl(args: &[&str]) -> String {
    kubectl_with_input(args, None)
}

pub fn kubectl_with_input(args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(text) = input {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(text.as_bytes())
            .expect("writing kubectl's stdin");
    }
    let output = child.wait_with_output().expect("kubectl finishes");
    assert!(
        output.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs kubectl; `None` when it fails (an object that does not exist yet, for instance).
pub fn try_kubectl(args: &[&str]) -> Option<String> {
    let output = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

pub fn apply(namespace: &str, manifest: &str) {
    kubectl_with_input(&["apply", "-n", namespace, "-f", "-"], Some(manifest));
}

/// A plain HTTP/1.0 GET; the body, or `None` on any failure.
pub fn http_get(address: &str, path: &str) -> Option<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_owned())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_owned()))
}

/// Polls `probe` every 200 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub const WAIT: Duration = Duration::from_secs(30);

/// A unique suffix for names in this run.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{:x}{:x}",
        std::process::id() % 0xfff,
        nanos % 0xfffff
    )
}

/// Fresh namespaces for one test: (the controller's configuration, the Services'), with the
/// e2e controller user bound to its configuration role in the first.
pub fn controller_namespaces(name: &str) -> (String, String) {
    let config_namespace = unique("swimlb-cfg");
    let namespace = unique(name);
    kubectl(&["create", "namespace", &config_namespace]);
    kubectl(&["create", "namespace", &namespace]);
    kubectl(&[
        "create",
        "rolebinding",
        "swimlb-controller-config",
        "--clusterrole=swimlb-controller-config",
        "--user=swimlb-e2e-controller",
        "-n",
        &config_namespace,
    ]);
    kubectl(&[
        "create",
        "rolebinding",
        "swimlb-speaker-config",
        "--clusterrole=swimlb-speaker-config",
        "--user=swimlb-e2e-speaker",
        "-n",
        &config_namespace,
    ]);
    (config_namespace, namespace)
}
