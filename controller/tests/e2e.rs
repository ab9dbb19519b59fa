//! End-to-end tests against a real kube-apiserver, driven with kubectl the way a user would.
//! `scripts/e2e-controller.sh` starts etcd and the API server, sets KUBECONFIG and runs these
//! one at a time. Each test uses fresh namespaces (an API-server-only control plane never
//! finishes deleting one) and deletes its Services when done.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/support/metrics_check.rs"]
mod check;
#[path = "../../tests/support/kube_e2e.rs"]
mod support;
use support::{
    WAIT, apply, controller_namespaces, http_get, kubectl, try_kubectl, unique, wait_for,
};

fn lease_holder(namespace: &str) -> Option<String> {
    try_kubectl(&[
        "get",
        "lease",
        "swimlb-controller",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
}

/// A running controller process.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    fn start(config_namespace: &str, lease: &str, log_dir: &tempfile::TempDir, tag: &str) -> Self {
        let log = log_dir.path().join(format!("controller-{tag}.log"));
        let file = File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_swimlb-controller"));
        // Run as the RBAC-limited user of deploy/controller/rbac.yaml when the script set one up.
        if let Ok(kubeconfig) = std::env::var("SWIMLB_E2E_CONTROLLER_KUBECONFIG") {
            command.env("KUBECONFIG", kubeconfig);
        }
        let child = command
            .args([
                "--namespace",
                config_namespace,
                "--lease-name",
                lease,
                "--lease-duration-s",
                "6",
                "--renew-interval-s",
                "2",
                "--retry-interval-s",
                "1",
                "--metrics-address",
                "127.0.0.1:0",
                "--identity",
                tag,
            ])
            .env("SWIMLB_LOG", "info,kube=warn")
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("the controller starts");
        Self { child, log }
    }

    /// Stops the process with SIGTERM, as Kubernetes does, within a bounded time.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The address of /metrics, /healthz and /readyz, from the start-up log line.
    fn http_address(&self) -> String {
        wait_for("the controller's HTTP address in its log", WAIT, || {
            let text = std::fs::read_to_string(&self.log).ok()?;
            let line = text.lines().find(|l| l.contains("serving /metrics"))?;
            let (_, address) = line.split_once("address=")?;
            Some(address.trim().to_owned())
        })
    }

    /// Kills the process with SIGKILL: no chance to release the Lease.
    fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- controller log ({}):\n{}",
                self.log.display(),
                self.log_tail()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fresh namespaces for one test: one for the controller's configuration, one for Services.
struct Fixture {
    name: &'static str,
    config_namespace: String,
    namespace: String,
    logs: tempfile::TempDir,
    started: Instant,
}

impl Fixture {
    fn new(name: &'static str) -> Self {
        let (config_namespace, namespace) = controller_namespaces(name);
        Self {
            name,
            config_namespace,
            namespace,
            logs: tempfile::tempdir().expect("temp dir"),
            started: Instant::now(),
        }
    }

    fn controller(&self, tag: &str) -> Controller {
        Controller::start(&self.config_namespace, "swimlb-controller", &self.logs, tag)
    }

    /// `kubectl create deploy` + `kubectl expose --type LoadBalancer`.
    fn expose(&self, name: &str) {
        kubectl(&[
            "create",
            "deployment",
            name,
            "-n",
            &self.namespace,
            "--image=registry.k8s.io/pause:3.9",
        ]);
        kubectl(&[
            "expose",
            "deployment",
            name,
            "-n",
            &self.namespace,
            "--type=LoadBalancer",
            "--port=80",
        ]);
    }

    /// The addresses in the Service's status, comma separated ("" while pending).
    fn ingress(&self, service: &str) -> String {
        kubectl(&[
            "get",
            "svc",
            service,
            "-n",
            &self.namespace,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ])
        .trim()
        .replace(' ', ",")
    }

    fn wait_ingress(&self, service: &str) -> String {
        wait_for(&format!("an address on {service}"), WAIT, || {
            Some(self.ingress(service)).filter(|ip| !ip.is_empty())
        })
    }

    /// The EXTERNAL-IP column of `kubectl get svc`.
    fn external_ip_column(&self, service: &str) -> String {
        let table = kubectl(&["get", "svc", service, "-n", &self.namespace]);
        let mut lines = table.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let row: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let column = header
            .iter()
            .position(|h| *h == "EXTERNAL-IP")
            .expect("an EXTERNAL-IP column");
        row.get(column).copied().unwrap_or_default().to_owned()
    }

    fn annotation(&self, service: &str, key: &str) -> String {
        let escaped = key.replace('.', "\\.").replace('/', "\\/");
        kubectl(&[
            "get",
            "svc",
            service,
            "-n",
            &self.namespace,
            "-o",
            &format!("jsonpath={{.metadata.annotations.{escaped}}}"),
        ])
    }

    /// Notes of Events with `reason` on an object in `namespace`.
    fn events(&self, namespace: &str, object: &str, reason: &str) -> Vec<String> {
        let out = kubectl(&[
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            &format!("involvedObject.name={object},reason={reason}"),
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ]);
        out.lines().map(str::to_owned).collect()
    }

    fn wait_event(&self, namespace: &str, object: &str, reason: &str, needle: &str) -> String {
        wait_for(
            &format!("a {reason} event on {object} mentioning {needle:?}"),
            WAIT,
            || {
                self.events(namespace, object, reason)
                    .into_iter()
                    .find(|m| m.contains(needle))
            },
        )
    }

    fn legacy_config(&self, addresses: &[&str]) {
        let list = addresses
            .iter()
            .map(|a| format!("      - {a}\n"))
            .collect::<String>();
        self.raw_legacy_config(&format!(
            "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n{list}"
        ));
    }

    /// Applies the ConfigMap with `document` as its `config` key.
    fn raw_legacy_config(&self, document: &str) {
        let indented: String = document.lines().map(|l| format!("    {l}\n")).collect();
        apply(
            &self.config_namespace,
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\ndata:\n  config: |\n{indented}"
            ),
        );
    }

    fn pool(&self, name: &str, addresses: &[&str]) {
        let list = addresses
            .iter()
            .map(|a| format!("  - {a}\n"))
            .collect::<String>();
        apply(
            &self.config_namespace,
            &format!(
                "apiVersion: swimlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\nspec:\n  addresses:\n{list}"
            ),
        );
    }

    fn delete_service(&self, service: &str) {
        kubectl(&["delete", "svc", service, "-n", &self.namespace]);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Leave no Service holding addresses for the next test's controller.
        let _ = Command::new("kubectl")
            .args([
                "delete",
                "svc",
                "--all",
                "-n",
                &self.namespace,
                "--wait=false",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        eprintln!(
            "e2e {}: {:.1} s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }
}

#[test]
#[ignore = "needs a kube-apiserver: scripts/e2e-controller.sh"]
fn legacy_configmap_pool_serves_30_then_31_survives_restart_and_reuses() {
    let f = Fixture::new("legacy");
    f.legacy_config(&["192.0.2.30-192.0.2.49"]);
    let controller = f.controller("first");

    f.expose("web1");
    f.expose("web2");
    assert_eq!(f.wait_ingress("web1"), "192.0.2.30");
    assert_eq!(f.wait_ingress("web2"), "192.0.2.31");
    assert_eq!(f.external_ip_column("web1"), "192.0.2.30");
    assert_eq!(f.external_ip_column("web2"), "192.0.2.31");
    assert_eq!(
        f.annotation("web1", "swimlb.io/ip-allocated-from-pool"),
        "default"
    );
    f.wait_event(&f.namespace, "web2", "IPAllocated", "192.0.2.31");
    let http = controller.http_address();
    assert_eq!(http_get(&http, "/healthz").as_deref(), Some("ok\n"));
    assert_eq!(http_get(&http, "/readyz").as_deref(), Some("ok\n"));
    // With pools and Services in place, the exposition still passes promtool.
    let metrics = check::check_metrics(&http);
    for line in [
        "swimlb_controller_pool_addresses{pool=\"default\",family=\"IPv4\"} 20.0",
        "swimlb_controller_pool_addresses_in_use{pool=\"default\",family=\"IPv4\"} 2.0",
        "swimlb_controller_services_assigned 2",
        "swimlb_controller_is_leader 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }

    // Restart mid-way; a Service created while no controller runs sorts after the held ones.
    controller.stop();
    f.expose("web3");
    let controller = f.controller("second");
    assert_eq!(f.wait_ingress("web3"), "192.0.2.32");
    assert_eq!(f.ingress("web1"), "192.0.2.30");
    assert_eq!(f.ingress("web2"), "192.0.2.31");

    // Delete: the address is reused by the next Service.
    f.delete_service("web1");
    f.expose("web4");
    assert_eq!(f.wait_ingress("web4"), "192.0.2.30");
    assert_eq!(f.external_ip_column("web4"), "192.0.2.30");

    // A pool with an unsupported protocol is reported on the ConfigMap, naming the protocol;
    // the valid pool keeps serving.
    f.raw_legacy_config(
        "address-pools:\n- name: default\n  protocol: layer2\n  addresses: [192.0.2.30-192.0.2.49]\n- name: routed\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n",
    );
    f.wait_event(&f.config_namespace, "config", "InvalidPool", "\"bgp\"");
    // A document that no longer parses keeps the pools it last had.
    f.raw_legacy_config("address-pools: [broken\n");
    f.wait_event(
        &f.config_namespace,
        "config",
        "InvalidConfig",
        "not valid YAML",
    );
    f.expose("web5");
    assert_eq!(f.wait_ingress("web5"), "192.0.2.33");
    controller.stop();
}

#[test]
#[ignore = "needs a kube-apiserver: scripts/e2e-controller.sh"]
fn pending_service_is_served_when_the_cause_goes_away() {
    let f = Fixture::new("pending");
    let _controller = f.controller("only");

    f.expose("early");
    let note = f.wait_event(&f.namespace, "early", "AllocationFailed", "no address pool");
    assert!(note.contains("early"), "{note}");
    assert_eq!(f.external_ip_column("early"), "<pending>");
    let warning = kubectl(&[
        "get",
        "events",
        "-n",
        &f.namespace,
        "--field-selector",
        "reason=AllocationFailed",
        "-o",
        "jsonpath={.items[0].type}",
    ]);
    assert_eq!(warning, "Warning");

    // The pool appears: the pending Service is served.
    f.legacy_config(&["198.51.100.10-198.51.100.11"]);
    assert_eq!(f.wait_ingress("early"), "198.51.100.10");

    // Exhausted, then a Service goes away.
    f.expose("second");
    assert_eq!(f.wait_ingress("second"), "198.51.100.11");
    f.expose("third");
    f.wait_event(
        &f.namespace,
        "third",
        "AllocationFailed",
        "no free IPv4 address in pool(s) default",
    );
    assert_eq!(f.ingress("third"), "");
    f.delete_service("second");
    assert_eq!(f.wait_ingress("third"), "198.51.100.11");

    // The pool grows: a new pending Service is served without any other change.
    f.expose("fourth");
    f.wait_event(&f.namespace, "fourth", "AllocationFailed", "no free IPv4");
    f.legacy_config(&["198.51.100.10-198.51.100.12"]);
    assert_eq!(f.wait_ingress("fourth"), "198.51.100.12");

    // A Service that stops being a LoadBalancer gives its address back.
    kubectl(&[
        "patch",
        "svc",
        "early",
        "-n",
        &f.namespace,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/type","value":"ClusterIP"},
            {"op":"remove","path":"/spec/ports/0/nodePort"},
            {"op":"remove","path":"/spec/externalTrafficPolicy"}]"#,
    ]);
    wait_for("early's address to be cleared", WAIT, || {
        f.ingress("early").is_empty().then_some(())
    });
    f.wait_event(
        &f.namespace,
        "early",
        "ClearAssignment",
        "no longer of type LoadBalancer",
    );
    f.expose("fifth");
    assert_eq!(f.wait_ingress("fifth"), "198.51.100.10");
}

fn pool_status(f: &Fixture, pool: &str, path: &str) -> String {
    kubectl(&[
        "get",
        "ipaddresspool",
        pool,
        "-n",
        &f.config_namespace,
        "-o",
        &format!("jsonpath={path}"),
    ])
}

#[test]
#[ignore = "needs a kube-apiserver: scripts/e2e-controller.sh"]
fn crd_pool_serves_survives_restart_reports_errors_and_reuses() {
    let f = Fixture::new("crd");
    f.pool("main", &["203.0.113.30-203.0.113.49"]);
    let controller = f.controller("first");

    f.expose("web1");
    f.expose("web2");
    assert_eq!(f.wait_ingress("web1"), "203.0.113.30");
    assert_eq!(f.wait_ingress("web2"), "203.0.113.31");
    assert_eq!(f.external_ip_column("web2"), "203.0.113.31");
    assert_eq!(
        f.annotation("web2", "swimlb.io/ip-allocated-from-pool"),
        "main"
    );
    wait_for("pool status counts two in use", WAIT, || {
        (pool_status(
            &f,
            "main",
            "{.status.totalIPv4}/{.status.assignedIPv4}/{.status.availableIPv4}",
        ) == "20/2/18")
            .then_some(())
    });
    assert_eq!(
        pool_status(
            &f,
            "main",
            "{.status.conditions[?(@.type==\"Valid\")].status}"
        ),
        "True"
    );

    controller.stop();
    let controller = f.controller("second");
    f.expose("web3");
    assert_eq!(f.wait_ingress("web3"), "203.0.113.32");
    assert_eq!(f.ingress("web1"), "203.0.113.30");
    assert_eq!(f.ingress("web2"), "203.0.113.31");

    // An overlapping pool is reported on its status and in an Event, naming the values.
    f.pool("clash", &["203.0.113.40-203.0.113.60"]);
    let message = wait_for("the clash pool reported invalid", WAIT, || {
        let status = pool_status(
            &f,
            "clash",
            "{.status.conditions[?(@.type==\"Valid\")].status}:{.status.conditions[?(@.type==\"Valid\")].message}",
        );
        status.strip_prefix("False:").map(str::to_owned)
    });
    assert!(
        message.contains("\"203.0.113.40-203.0.113.60\"")
            && message.contains("\"203.0.113.30-203.0.113.49\"")
            && message.contains("\"main\""),
        "{message}"
    );
    f.wait_event(
        &f.config_namespace,
        "clash",
        "InvalidPool",
        "203.0.113.40-203.0.113.60",
    );
    kubectl(&[
        "delete",
        "ipaddresspool",
        "clash",
        "-n",
        &f.config_namespace,
    ]);
    // A bad range in the main pool: Services keep their addresses, new ones wait.
    f.pool(
        "main",
        &["203.0.113.30-203.0.113.49", "203.0.113.49-203.0.113.20"],
    );
    wait_for("the main pool reported invalid", WAIT, || {
        pool_status(
            &f,
            "main",
            "{.status.conditions[?(@.type==\"Valid\")].message}",
        )
        .contains("start 203.0.113.49 is after end 203.0.113.20")
        .then_some(())
    });
    f.expose("web4");
    f.wait_event(&f.namespace, "web4", "AllocationFailed", "no pool");
    assert_eq!(f.ingress("web1"), "203.0.113.30");
    // Fixed again: the waiting Service is served, deleted addresses are reused.
    f.pool("main", &["203.0.113.30-203.0.113.49"]);
    assert_eq!(f.wait_ingress("web4"), "203.0.113.33");
    f.delete_service("web2");
    f.expose("web5");
    assert_eq!(f.wait_ingress("web5"), "203.0.113.31");
    controller.stop();
}

#[test]
#[ignore = "needs a kube-apiserver: scripts/e2e-controller.sh"]
fn sharing_and_requested_addresses() {
    let f = Fixture::new("sharing");
    f.pool("shared", &["192.0.2.100-192.0.2.120"]);
    f.pool("manual", &["198.51.100.200/29"]);
    kubectl(&[
        "patch",
        "ipaddresspool",
        "manual",
        "-n",
        &f.config_namespace,
        "--type=merge",
        "-p",
        r#"{"spec":{"autoAssign":false}}"#,
    ]);
    let _controller = f.controller("only");

    let service = |name: &str, annotations: &str, port: u16, extra_spec: &str| {
        apply(
            &f.namespace,
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  annotations:\n{annotations}spec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n  ports:\n  - port: {port}\n{extra_spec}"
            ),
        );
    };
    let shared = "    swimlb.io/allow-shared-ip: front\n";
    service("http", shared, 80, "");
    assert_eq!(f.wait_ingress("http"), "192.0.2.100");
    service("https", shared, 443, "");
    assert_eq!(f.wait_ingress("https"), "192.0.2.100");
    // Same key but the same port: it cannot share, so it gets its own address.
    service("http-again", shared, 80, "");
    assert_eq!(f.wait_ingress("http-again"), "192.0.2.101");

    // Requested through spec.loadBalancerIP and through MetalLB's annotation.
    service(
        "fixed",
        "    example.com/note: fixed\n",
        80,
        "  loadBalancerIP: 192.0.2.110\n",
    );
    assert_eq!(f.wait_ingress("fixed"), "192.0.2.110");
    service(
        "thief",
        "    metallb.universe.tf/loadBalancerIPs: 192.0.2.110\n",
        80,
        "",
    );
    f.wait_event(
        &f.namespace,
        "thief",
        "AllocationFailed",
        "192.0.2.110 is in use by",
    );
    service(
        "outside",
        "    swimlb.io/loadBalancerIPs: 203.0.113.250\n",
        80,
        "",
    );
    f.wait_event(
        &f.namespace,
        "outside",
        "AllocationFailed",
        "203.0.113.250 is not in any pool",
    );
    // A pool chosen by annotation, even one without auto-assign.
    service(
        "chosen",
        "    metallb.universe.tf/address-pool: manual\n",
        80,
        "",
    );
    assert_eq!(f.wait_ingress("chosen"), "198.51.100.200");
    assert_eq!(
        f.annotation("chosen", "swimlb.io/ip-allocated-from-pool"),
        "manual"
    );
    // The holder goes: the thief gets what it asked for.
    f.delete_service("fixed");
    assert_eq!(f.wait_ingress("thief"), "192.0.2.110");
    // Shared address stays until its last user goes.
    f.delete_service("http");
    service("next", "    example.com/note: next\n", 80, "");
    assert_eq!(f.wait_ingress("next"), "192.0.2.102");
    f.delete_service("https");
    service("reuse", "    example.com/note: reuse\n", 80, "");
    assert_eq!(f.wait_ingress("reuse"), "192.0.2.100");
}

#[test]
#[ignore = "needs a kube-apiserver: scripts/e2e-controller.sh"]
fn two_replicas_elect_one_leader_and_hand_over() {
    let f = Fixture::new("replicas");
    f.legacy_config(&["192.0.2.200-192.0.2.210"]);
    let a = f.controller("replica-a");
    wait_for("replica-a to lead", WAIT, || {
        (lease_holder(&f.config_namespace)? == "replica-a").then_some(())
    });
    let b = f.controller("replica-b");
    f.expose("one");
    f.expose("two");
    assert_eq!(f.wait_ingress("one"), "192.0.2.200");
    assert_eq!(f.wait_ingress("two"), "192.0.2.201");
    // The standby did not take the Lease while replica-a renewed it.
    assert_eq!(
        lease_holder(&f.config_namespace).as_deref(),
        Some("replica-a")
    );
    assert!(
        !std::fs::read_to_string(&b.log)
            .unwrap_or_default()
            .contains("became leader"),
        "the standby must not lead while the leader renews"
    );
    a.stop();
    wait_for("replica-b to take over", WAIT, || {
        (lease_holder(&f.config_namespace)? == "replica-b").then_some(())
    });
    f.expose("three");
    assert_eq!(f.wait_ingress("three"), "192.0.2.202");
    assert_eq!(f.ingress("one"), "192.0.2.200");
    assert_eq!(f.ingress("two"), "192.0.2.201");

    // A leader that crashes cannot release the Lease: the standby waits for it to expire
    // (6 s here), then takes over.
    let c = f.controller("replica-c");
    std::thread::sleep(Duration::from_secs(1));
    b.crash();
    let crashed = Instant::now();
    wait_for("replica-c to take over an expired Lease", WAIT, || {
        (lease_holder(&f.config_namespace)? == "replica-c").then_some(())
    });
    assert!(
        crashed.elapsed() >= Duration::from_secs(3),
        "the Lease must not move long before it expires ({:?})",
        crashed.elapsed()
    );
    f.expose("four");
    assert_eq!(f.wait_ingress("four"), "192.0.2.203");
    assert_eq!(f.ingress("three"), "192.0.2.202");
    c.stop();
}

#[test]
#[ignore = "needs a kube-apiserver: scripts/e2e-controller.sh"]
fn dual_stack_services_get_one_address_per_family() {
    let f = Fixture::new("dualstack");
    f.pool("dual", &["203.0.113.200-203.0.113.210", "2001:db8:1::/120"]);
    let _controller = f.controller("only");
    let service = |name: &str, policy: &str, families: &str| {
        apply(
            &f.namespace,
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: LoadBalancer\n  ipFamilyPolicy: {policy}\n  ipFamilies: [{families}]\n  selector: {{app: {name}}}\n  ports:\n  - port: 80\n"
            ),
        );
    };
    service("both", "RequireDualStack", "IPv6, IPv4");
    assert_eq!(f.wait_ingress("both"), "2001:db8:1::,203.0.113.200");
    assert_eq!(f.external_ip_column("both"), "2001:db8:1::,203.0.113.200");
    service("v6", "SingleStack", "IPv6");
    assert_eq!(f.wait_ingress("v6"), "2001:db8:1::1");
    service("prefer", "PreferDualStack", "IPv4");
    assert_eq!(f.wait_ingress("prefer"), "203.0.113.201,2001:db8:1::2");
    wait_for("pool status counts both families", WAIT, || {
        (pool_status(
            &f,
            "dual",
            "{.status.assignedIPv4}/{.status.assignedIPv6}/{.status.availableIPv6}",
        ) == "2/3/253")
            .then_some(())
    });
}

#[test]
#[ignore = "needs a kube-apiserver: scripts/e2e-controller.sh"]
fn service_allocation_prefers_matching_pools_by_namespace_labels() {
    let f = Fixture::new("selectors");
    f.pool("open", &["198.51.100.100-198.51.100.109"]);
    apply(
        &f.config_namespace,
        "apiVersion: swimlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: team-a\nspec:\n  addresses: [198.51.100.120-198.51.100.121]\n  serviceAllocation:\n    priority: 1\n    namespaceSelectors:\n    - matchLabels: {team: a}\n",
    );
    let _controller = f.controller("only");
    // The namespace does not match yet: the open pool serves.
    f.expose("before");
    assert_eq!(f.wait_ingress("before"), "198.51.100.100");
    kubectl(&["label", "namespace", &f.namespace, "team=a"]);
    // Labels arrive through the Namespace watch; new Services now get the team's pool first.
    let after = wait_for("a Service served from the team pool", WAIT, || {
        let name = unique("after");
        f.expose(&name);
        let ip = f.wait_ingress(&name);
        (ip.starts_with("198.51.100.12")).then_some(ip)
    });
    assert_eq!(after, "198.51.100.120");
    assert_eq!(f.ingress("before"), "198.51.100.100");
}

/// The gossip key file in the Secret `swimlb-gossip-key` of `namespace`, once it exists.
fn gossip_key(namespace: &str) -> String {
    wait_for("the gossip key Secret", WAIT, || {
        let out = support::try_kubectl(&[
            "get",
            "secret",
            "swimlb-gossip-key",
            "-n",
            namespace,
            "-o",
            "jsonpath={.data.key}",
        ])?;
        let out = out.trim();
        (!out.is_empty()).then(|| out.to_owned())
    })
}

#[test]
#[ignore = "needs a kube-apiserver: scripts/e2e-controller.sh"]
fn the_gossip_key_secret_is_created_once_and_never_overwritten() {
    let f = Fixture::new("gossip-key");
    let controller = f.controller("first");
    let created = gossip_key(&f.config_namespace);
    let decoded = Command::new("base64")
        .args(["-d"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(created.as_bytes())?;
            child.wait_with_output()
        })
        .expect("base64 runs");
    let text = String::from_utf8(decoded.stdout).expect("utf-8");
    swimlb_gossip::KeyRing::parse(&text).expect("a key file the speakers read");
    controller.stop();

    // A restart keeps the key; so does an operator's own key put in its place.
    let controller = f.controller("second");
    // It holds the Lease only after it looked at the Secret.
    wait_for("the second controller to lead", WAIT, || {
        (lease_holder(&f.config_namespace).as_deref() == Some("second")).then_some(())
    });
    assert_eq!(gossip_key(&f.config_namespace), created);
    controller.stop();
    kubectl(&[
        "delete",
        "secret",
        "swimlb-gossip-key",
        "-n",
        &f.config_namespace,
    ]);
    let own = format!("7 {}\n", "cd".repeat(32));
    kubectl(&[
        "create",
        "secret",
        "generic",
        "swimlb-gossip-key",
        "-n",
        &f.config_namespace,
        &format!("--from-literal=key={own}"),
    ]);
    let before = gossip_key(&f.config_namespace);
    let controller = f.controller("third");
    wait_for("the third controller to lead", WAIT, || {
        (lease_holder(&f.config_namespace).as_deref() == Some("third")).then_some(())
    });
    assert_eq!(
        gossip_key(&f.config_namespace),
        before,
        "an existing key was overwritten"
    );
    controller.stop();
}
