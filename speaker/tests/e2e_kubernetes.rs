//! End-to-end test of Kubernetes mode against a real kube-apiserver: three speakers and the
//! controller, a Service exposed with kubectl, the VIP checked through the speakers' /metrics;
//! L2Advertisements decide whether and from which node it is announced.
//! `scripts/e2e-speaker.sh` starts etcd and the API server, sets KUBECONFIG and runs it.
//!
//! The three "nodes" are Node objects with InternalIPs 127.0.0.11-13; each speaker gossips on
//! its node's loopback address (one port for all, as on real nodes) and serves /metrics there.
//! The speakers answer on no interface (`interfaces` names one that does not exist): this test
//! is about placement, ownership and the Kubernetes edge; the network-namespace lab covers
//! ARP/NDP on the wire.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[path = "../../tests/support/kube_e2e.rs"]
mod support;
use support::{WAIT, apply, controller_namespaces, http_get, kubectl, wait_for};

const NODES: [(&str, &str); 3] = [
    ("node-a", "127.0.0.11"),
    ("node-b", "127.0.0.12"),
    ("node-c", "127.0.0.13"),
];
const POOL: &str = "203.0.113.16/28";
const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// A free port on `ip` (TCP or UDP), found by binding to port 0.
fn free_port(ip: &str, udp: bool) -> u16 {
    if udp {
        let socket = std::net::UdpSocket::bind((ip, 0)).expect("bind a UDP port");
        socket.local_addr().expect("local address").port()
    } else {
        let socket = std::net::TcpListener::bind((ip, 0)).expect("bind a TCP port");
        socket.local_addr().expect("local address").port()
    }
}

/// A running process with its log file; killed when dropped, its log shown on failure.
struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    fn start(name: &str, mut command: Command, logs: &Path) -> Self {
        let log = logs.join(format!("{name}.log"));
        let file = File::create(&log).expect("log file");
        let child = command
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("the process starts");
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    /// SIGKILL: no leave, no drain, as a crashed node.
    fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "--- {} log:\n{}",
                self.name,
                lines[lines.len().saturating_sub(25)..].join("\n")
            );
        }
        self.crash();
    }
}

struct Speaker {
    node: &'static str,
    metrics: String,
    process: Process,
}

impl Speaker {
    /// The VIPs whose `swimlb_speaker_announced` gauge is 1; `None` when /metrics is down.
    fn announced(&self) -> Option<BTreeSet<IpAddr>> {
        let text = http_get(&self.metrics, "/metrics")?;
        Some(
            text.lines()
                .filter_map(|line| line.strip_prefix("swimlb_speaker_announced{ip=\""))
                .filter_map(|rest| rest.split_once("\"} "))
                .filter(|(_, value)| value.trim() == "1")
                .filter_map(|(ip, _)| ip.parse().ok())
                .collect(),
        )
    }
}

/// The nodes whose speaker announces `vip` now (a dead speaker announces nothing).
fn announcers(speakers: &[Speaker], vip: IpAddr) -> BTreeSet<&'static str> {
    speakers
        .iter()
        .filter(|s| s.announced().is_some_and(|set| set.contains(&vip)))
        .map(|s| s.node)
        .collect()
}

/// Waits until exactly `expected` announces `vip`; returns how long it took.
fn wait_for_owner(speakers: &[Speaker], vip: IpAddr, expected: &str, what: &str) -> Duration {
    let start = Instant::now();
    wait_for(what, WAIT, || {
        let now = announcers(speakers, vip);
        (now.len() == 1 && now.contains(expected)).then_some(())
    });
    start.elapsed()
}

fn rendezvous_owner(vip: IpAddr, candidates: &[&'static str]) -> &'static str {
    let owner = swimlb_gossip::owner::owner(vip, candidates.iter().copied())
        .expect("a non-empty candidate set has an owner");
    candidates
        .iter()
        .copied()
        .find(|c| *c == owner)
        .expect("the owner is a candidate")
}

#[test]
#[ignore = "needs a kube-apiserver: run scripts/e2e-speaker.sh"]
fn an_advertised_service_ip_moves_on_exclusion_crash_and_node_selection() {
    let logs = tempfile::tempdir().expect("temp dir");
    let (config_namespace, namespace) = controller_namespaces("speaker");
    apply(&config_namespace, &pool());
    let started = Instant::now();
    let (speakers, _controller) = start_cluster(logs.path(), &config_namespace);
    eprintln!("speakers ready after {:?}", started.elapsed());

    let exposed = Instant::now();
    let vip = expose(&namespace, "web");
    // A pool that no L2Advertisement selects is allocated from but not announced.
    let unannounced_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < unannounced_until {
        let now = announcers(&speakers, vip);
        assert!(
            now.is_empty(),
            "{vip} announced by {now:?} without an L2Advertisement"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let advertised = Instant::now();
    apply(&config_namespace, &advertisement(""));
    let all: Vec<&'static str> = NODES.iter().map(|(n, _)| *n).collect();
    let first = rendezvous_owner(vip, &all);
    wait_for_owner(&speakers, vip, first, "the rendezvous owner to announce");
    eprintln!(
        "{vip} announced by {first} {:?} after kubectl expose, {:?} after the L2Advertisement",
        exposed.elapsed(),
        advertised.elapsed()
    );

    wait_for_status(&namespace, vip, first);
    wait_for_event(&namespace, "Normal nodeAssigned", first);

    kubectl(&["label", "node", first, &format!("{EXCLUDE_LABEL}=true")]);
    let rest: Vec<&'static str> = all.iter().copied().filter(|n| *n != first).collect();
    let second = rendezvous_owner(vip, &rest);
    let moved = wait_for_owner(&speakers, vip, second, "the VIP to leave the excluded node");
    eprintln!("exclusion of {first}: {vip} moved to {second} in {moved:?}");
    wait_for_status(&namespace, vip, second);

    let mut speakers = speakers;
    let victim = speakers
        .iter_mut()
        .find(|s| s.node == second)
        .expect("the second owner's speaker");
    // The API server stops answering (SIGSTOP): announcing and gossip failover go on without it.
    let apiserver = std::env::var("SWIMLB_E2E_APISERVER_PID").ok();
    let _resume = apiserver.as_deref().map(ApiServerPause::new);
    let killed = Instant::now();
    victim.process.crash();
    let third = rest
        .iter()
        .copied()
        .find(|n| *n != second)
        .expect("a third node");
    wait_for_owner(
        &speakers,
        vip,
        third,
        "the VIP to move off the killed speaker",
    );
    eprintln!(
        "kill -9 of {second}: {vip} moved to {third} in {:?}{}",
        killed.elapsed(),
        if apiserver.is_some() {
            " with the API server stopped"
        } else {
            ""
        }
    );
    drop(_resume);
    wait_for_status(&namespace, vip, third);

    // The advertisement's node selector picks the owner among the live eligible nodes.
    kubectl(&["label", "node", first, &format!("{EXCLUDE_LABEL}-")]);
    let selecting_first =
        format!("  nodeSelectors:\n  - matchLabels: {{kubernetes.io/hostname: {first}}}\n");
    apply(&config_namespace, &advertisement(&selecting_first));
    let moved = wait_for_owner(
        &speakers,
        vip,
        first,
        "the VIP to move to the node the L2Advertisement selects",
    );
    eprintln!("nodeSelectors [{first}]: {vip} moved to {first} in {moved:?}");
    // One status write per ownership change, none with time.
    let (_, generation, version) = wait_for_status(&namespace, vip, first);
    let claims = claims_logged(&speakers, vip);
    std::thread::sleep(Duration::from_secs(2));
    let (_, _, later) = l2_status(&namespace, vip).expect("the status still exists");
    assert_eq!(
        version, later,
        "the ServiceL2Status was written with no ownership change"
    );
    assert_eq!(
        generation, claims,
        "one ServiceL2Status write per claim of {vip} ({claims} claims logged)"
    );
    eprintln!("ServiceL2Status of {vip}: generation {generation} after {claims} claims");
    check_swimlbctl_status(&config_namespace, &namespace, vip, first, &speakers);
    let series = format!(
        "swimlb_speaker_service_announced{{ip=\"{vip}\",service=\"{namespace}/web\",protocol=\"arp\"}} 1"
    );
    for speaker in speakers.iter().filter(|s| s.announced().is_some()) {
        let text = http_get(&speaker.metrics, "/metrics").unwrap_or_default();
        assert_eq!(
            text.contains(&series),
            speaker.node == first,
            "{}: {series}",
            speaker.node
        );
    }

    // Interfaces the owner does not have: it still owns the VIP and says it cannot announce it.
    apply(
        &config_namespace,
        &advertisement(&format!("{selecting_first}  interfaces: [e2e-absent0]\n")),
    );
    wait_for_event(&namespace, "Warning announceFailed", first);

    // An edit that does not parse keeps the last valid advertisement in force.
    apply(
        &config_namespace,
        &advertisement("  nodeSelectors:\n  - matchExpressions: [{key: zone, operator: Near}]\n"),
    );
    let first_log = speakers
        .iter()
        .find(|s| s.node == first)
        .map(|s| s.process.log.clone())
        .expect("the first owner's speaker");
    wait_for(
        "the speaker to reject the invalid L2Advertisement",
        WAIT,
        || {
            std::fs::read_to_string(&first_log)
                .ok()
                .filter(|text| text.contains("L2Advertisement is not valid"))
        },
    );
    assert_eq!(
        announcers(&speakers, vip),
        BTreeSet::from([first]),
        "an invalid L2Advertisement edit moved {vip}"
    );

    // Without any advertisement the VIP is withdrawn everywhere.
    kubectl(&["delete", "l2advertisement", "e2e", "-n", &config_namespace]);
    wait_for("every speaker to withdraw the VIP", WAIT, || {
        announcers(&speakers, vip).is_empty().then_some(())
    });
    wait_for(
        "the withdrawn VIP's ServiceL2Status to be deleted",
        WAIT,
        || l2_status(&namespace, vip).is_none().then_some(()),
    );

    for (node, _) in NODES {
        kubectl(&["delete", "node", node, "--wait=false"]);
    }
    kubectl(&["delete", "service", "web", "-n", &namespace, "--wait=false"]);
}

/// The three Node objects, their speakers (ready: start-up hold over) and the controller,
/// with the pools and advertisements read from `config_namespace`.
fn start_cluster(logs: &Path, config_namespace: &str) -> (Vec<Speaker>, Process) {
    for (node, ip) in NODES {
        kubectl_apply_node(node);
        kubectl(&[
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!(r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"{ip}"}}]}}}}"#),
        ]);
    }

    let key = logs.join("gossip.key");
    let key_hex: String = (0..32).map(|i| format!("{:02x}", i * 7 + 3)).collect();
    std::fs::write(&key, format!("0 {key_hex}\n")).expect("key file");
    let speaker_kubeconfig = std::env::var("SWIMLB_E2E_SPEAKER_KUBECONFIG")
        .expect("SWIMLB_E2E_SPEAKER_KUBECONFIG (set by scripts/e2e-speaker.sh)");
    let gossip_port = free_port(NODES[0].1, true);
    let speakers: Vec<Speaker> = NODES
        .iter()
        .map(|(node, ip)| {
            let metrics = format!("{ip}:{}", free_port(ip, false));
            let config = logs.join(format!("{node}.yaml"));
            std::fs::write(
                &config,
                format!(
                    "node_name: {node}\n\
                     gossip:\n  bind: {ip}:{gossip_port}\n  key_file: {}\n\
                     interfaces: [swimlb-e2e-none]\n\
                     metrics_address: {metrics}\n\
                     drain_grace_ms: 0\n\
                     kubernetes:\n  kubeconfig: {speaker_kubeconfig}\n  namespace: {config_namespace}\n",
                    key.display()
                ),
            )
            .expect("speaker config");
            let mut command = Command::new(env!("CARGO_BIN_EXE_swimlb-speaker"));
            command
                .args(["--config", &config.display().to_string()])
                .env("SWIMLB_LOG", "info,kube=warn");
            Speaker {
                node,
                metrics,
                process: Process::start(node, command, logs),
            }
        })
        .collect();

    let controller_bin = std::env::var("SWIMLB_E2E_CONTROLLER_BIN")
        .expect("SWIMLB_E2E_CONTROLLER_BIN (set by scripts/e2e-speaker.sh)");
    let mut command = Command::new(controller_bin);
    if let Ok(kubeconfig) = std::env::var("SWIMLB_E2E_CONTROLLER_KUBECONFIG") {
        command.env("KUBECONFIG", kubeconfig);
    }
    command
        .args([
            "--namespace",
            config_namespace,
            "--leader-elect",
            "false",
            "--metrics-address",
            "127.0.0.1:0",
        ])
        .env("SWIMLB_LOG", "info,kube=warn");
    let _controller = Process::start("controller", command, logs);

    // Every speaker ready (start-up hold over) before the Service exists.
    for speaker in &speakers {
        wait_for(&format!("{} ready", speaker.node), WAIT, || {
            http_get(&speaker.metrics, "/readyz")
        });
    }
    (speakers, _controller)
}

/// `kubectl create deployment` + `kubectl expose --type LoadBalancer`; the assigned IP.
fn expose(namespace: &str, name: &str) -> IpAddr {
    kubectl(&[
        "create",
        "deployment",
        name,
        "-n",
        namespace,
        "--image=registry.k8s.io/pause:3.9",
    ]);
    kubectl(&[
        "expose",
        "deployment",
        name,
        "-n",
        namespace,
        "--type=LoadBalancer",
        "--port=80",
    ]);
    wait_for("the controller to assign an IP", WAIT, || {
        let out = kubectl(&[
            "get",
            "service",
            name,
            "-n",
            namespace,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ]);
        out.trim().parse().ok()
    })
}

/// The IP in a Service's status, as kubectl shows it now.
fn ingress(namespace: &str, name: &str) -> String {
    kubectl(&[
        "get",
        "service",
        name,
        "-n",
        namespace,
        "-o",
        "jsonpath={.status.loadBalancer.ingress[*].ip}",
    ])
}

#[test]
#[ignore = "needs a kube-apiserver: run scripts/e2e-speaker.sh"]
fn an_api_server_outage_withdraws_nothing_and_failover_goes_on() {
    let logs = tempfile::tempdir().expect("temp dir");
    let (config_namespace, namespace) = controller_namespaces("outage");
    apply(
        &config_namespace,
        &format!("{}---\n{}", pool(), advertisement("")),
    );
    let (mut speakers, _controller) = start_cluster(logs.path(), &config_namespace);
    let all: Vec<&'static str> = NODES.iter().map(|(n, _)| *n).collect();
    let services = ["web", "api", "db"];
    let vips: Vec<IpAddr> = services.iter().map(|s| expose(&namespace, s)).collect();
    for vip in &vips {
        wait_for_owner(
            &speakers,
            *vip,
            rendezvous_owner(*vip, &all),
            "the rendezvous owner",
        );
    }
    let victim = rendezvous_owner(vips[0], &all);
    let before: Vec<String> = services.iter().map(|s| ingress(&namespace, s)).collect();

    let pid = std::env::var("SWIMLB_E2E_APISERVER_PID")
        .expect("SWIMLB_E2E_APISERVER_PID (set by scripts/e2e-speaker.sh)");
    let outage = ApiServerPause::new(&pid);
    let stopped = Instant::now();
    // Every VIP stays announced while the API server is away ...
    let until = stopped + OUTAGE / 3;
    while Instant::now() < until {
        for vip in &vips {
            let now = announcers(&speakers, *vip);
            assert_eq!(now.len(), 1, "{vip} announced by {now:?} during the outage");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // ... and a node failure in the outage still fails over.
    let killed = Instant::now();
    speakers
        .iter_mut()
        .find(|s| s.node == victim)
        .expect("the victim's speaker")
        .process
        .crash();
    let rest: Vec<&'static str> = all.iter().copied().filter(|n| *n != victim).collect();
    for vip in &vips {
        let owner = rendezvous_owner(*vip, &rest);
        wait_for_owner(
            &speakers,
            *vip,
            owner,
            "failover during the API server outage",
        );
    }
    eprintln!(
        "outage: kill -9 of {victim} failed over in {:?}",
        killed.elapsed()
    );
    while stopped.elapsed() < OUTAGE {
        for vip in &vips {
            let now = announcers(&speakers, *vip);
            assert_eq!(now.len(), 1, "{vip} announced by {now:?} during the outage");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(outage);
    eprintln!("API server stopped for {:?}", stopped.elapsed());

    // Back: the controller changed no address, and the watches resync (a new Service is
    // assigned and announced).
    let after: Vec<String> = services.iter().map(|s| ingress(&namespace, s)).collect();
    assert_eq!(before, after, "an address changed across the outage");
    let resumed = Instant::now();
    let late = expose(&namespace, "late");
    wait_for_owner(
        &speakers,
        late,
        rendezvous_owner(late, &rest),
        "a Service created after the outage",
    );
    eprintln!(
        "after the outage: a new Service announced {:?} after the API server resumed",
        resumed.elapsed()
    );
    for vip in &vips {
        let now = announcers(&speakers, *vip);
        assert_eq!(now.len(), 1, "{vip} announced by {now:?} after the outage");
    }
    for (node, _) in NODES {
        kubectl(&["delete", "node", node, "--wait=false"]);
    }
}

/// A stand-in for one of MetalLB's CRDs (`metallb.io`, v1beta1, any fields): enough for the
/// API server to hold MetalLB objects for `migrate-metallb --from-cluster` to read.
fn metallb_crd(kind: &str, plural: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
         metadata:\n  name: {plural}.metallb.io\n\
         spec:\n  group: metallb.io\n  scope: Namespaced\n\
         \x20 names: {{kind: {kind}, plural: {plural}, singular: {singular}}}\n\
         \x20 versions:\n  - name: v1beta1\n    served: true\n    storage: true\n\
         \x20   schema:\n      openAPIV3Schema:\n        type: object\n\
         \x20       x-kubernetes-preserve-unknown-fields: true\n",
        singular = kind.to_lowercase()
    )
}

#[test]
#[ignore = "needs a kube-apiserver: run scripts/e2e-speaker.sh"]
fn migrate_metallb_reads_the_cluster_and_applies_swimlb_objects() {
    let (target, metallb) = controller_namespaces("metallb");
    for (kind, plural) in [
        ("IPAddressPool", "ipaddresspools"),
        ("L2Advertisement", "l2advertisements"),
    ] {
        support::kubectl_with_input(&["apply", "-f", "-"], Some(&metallb_crd(kind, plural)));
        kubectl(&[
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            &format!("crd/{plural}.metallb.io"),
        ]);
    }
    apply(
        &metallb,
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, labels: {zone: east}}\n\
         spec: {addresses: [198.51.100.200-198.51.100.210], autoAssign: false}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: east}\n\
         spec:\n  ipAddressPoolSelectors: [{matchLabels: {zone: east}}]\n  \
         nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node-b}}]\n  interfaces: [eth1]\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: |\n    \
         address-pools:\n    - {name: legacy, protocol: layer2, addresses: [203.0.113.200-203.0.113.210]}\n    \
         - {name: uplink, protocol: bgp, addresses: [203.0.113.224/28]}\n",
    );
    let ctl = std::env::var("SWIMLB_E2E_CTL_BIN")
        .expect("SWIMLB_E2E_CTL_BIN (set by scripts/e2e-speaker.sh)");
    let out = Command::new(&ctl)
        .args([
            "migrate-metallb",
            "--from-cluster",
            "--metallb-namespace",
            &metallb,
            "--namespace",
            &target,
            "--apply",
        ])
        .output()
        .expect("swimlbctl runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    for applied in [
        format!("applied: IPAddressPool {target}/lan"),
        format!("applied: IPAddressPool {target}/legacy"),
        format!("applied: L2Advertisement {target}/east"),
        format!("applied: L2Advertisement {target}/layer2-from-configmap"),
    ] {
        assert!(stderr.contains(&applied), "{applied} missing: {stderr}");
    }
    assert!(
        stderr.contains("uplink, protocol bgp"),
        "the BGP pool is listed: {stderr}"
    );
    let pool = kubectl(&[
        "get",
        "ipaddresspool.swimlb.io",
        "lan",
        "-n",
        &target,
        "-o",
        "jsonpath={.spec.addresses[0]} {.spec.autoAssign} {.metadata.labels.zone}",
    ]);
    assert_eq!(pool, "198.51.100.200-198.51.100.210 false east");
    let advertisement = kubectl(&[
        "get",
        "l2advertisement.swimlb.io",
        "east",
        "-n",
        &target,
        "-o",
        "jsonpath={.spec.interfaces[0]} {.spec.nodeSelectors[0].matchLabels.kubernetes\\.io/hostname}",
    ]);
    assert_eq!(advertisement, "eth1 node-b");
    eprintln!("migrate-metallb --from-cluster --apply: 2 pools and 2 advertisements applied");
}

/// How long the outage test stops the API server.
const OUTAGE: Duration = Duration::from_secs(60);

/// The ServiceL2Status of `vip` of Service `web`: (node, generation, resourceVersion), or
/// `None` while it does not exist.
fn l2_status(namespace: &str, vip: IpAddr) -> Option<(String, i64, String)> {
    let name = swimlb_api::status_name("web", vip);
    let out = support::try_kubectl(&[
        "get",
        "servicel2status",
        &name,
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.node} {.metadata.generation} {.metadata.resourceVersion}",
    ])?;
    let mut fields = out.split_whitespace();
    let node = fields.next()?.to_owned();
    let generation = fields.next()?.parse().ok()?;
    Some((node, generation, fields.next()?.to_owned()))
}

/// Waits until the ServiceL2Status of `vip` names `node`.
fn wait_for_status(namespace: &str, vip: IpAddr, node: &str) -> (String, i64, String) {
    wait_for(&format!("the ServiceL2Status to name {node}"), WAIT, || {
        l2_status(namespace, vip).filter(|(n, _, _)| n == node)
    })
}

/// `swimlbctl status` as an operator runs it: from the cluster (kubeconfig as kubectl's,
/// JSON and the table) and, as in static mode, from the live speakers' /vips.
fn check_swimlbctl_status(
    config_namespace: &str,
    namespace: &str,
    vip: IpAddr,
    owner: &str,
    speakers: &[Speaker],
) {
    let ctl = std::env::var("SWIMLB_E2E_CTL_BIN")
        .expect("SWIMLB_E2E_CTL_BIN (set by scripts/e2e-speaker.sh)");
    let run = |args: &[&str]| {
        let out = Command::new(&ctl)
            .args(args)
            .output()
            .expect("swimlbctl runs");
        assert!(out.status.success(), "swimlbctl {args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let json: serde_json::Value = serde_json::from_str(&run(&[
        "status",
        "--namespace",
        config_namespace,
        "-o",
        "json",
    ]))
    .expect("swimlbctl status -o json");
    let row = json["vips"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["ip"] == vip.to_string()))
        .unwrap_or_else(|| panic!("{vip} in swimlbctl status: {json}"));
    assert_eq!(row["node"], owner, "{row}");
    assert_eq!(row["pool"], "e2e", "{row}");
    assert_eq!(row["services"][0], format!("{namespace}/web"), "{row}");
    let pool = json["pools"]
        .as_array()
        .and_then(|pools| pools.iter().find(|p| p["name"] == "e2e"))
        .unwrap_or_else(|| panic!("pool e2e in swimlbctl status: {json}"));
    assert!(pool["ipv4_in_use"].as_u64() >= Some(1), "{pool}");
    let table = run(&["status", "--namespace", config_namespace]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&vip.to_string()) && l.contains(owner)),
        "{table}"
    );
    let live: Vec<&str> = speakers
        .iter()
        .filter(|s| s.announced().is_some())
        .map(|s| s.metrics.as_str())
        .collect();
    let from_speakers = run(&["status", "--speakers", &live.join(","), "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&from_speakers).expect("json");
    let holders: Vec<&str> = json["vips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["ip"] == vip.to_string())
        .filter_map(|r| r["node"].as_str())
        .collect();
    let owner_metrics = speakers
        .iter()
        .find(|s| s.node == owner)
        .map(|s| s.metrics.as_str());
    assert_eq!(
        holders,
        owner_metrics.into_iter().collect::<Vec<_>>(),
        "{json}"
    );
    eprintln!("swimlbctl status: {vip} on {owner}, from the cluster and from the speakers");
}

/// Waits for an Event in `namespace` whose type and reason are `kind` (`Normal nodeAssigned`)
/// and whose message names `node`.
fn wait_for_event(namespace: &str, kind: &str, node: &str) {
    wait_for(&format!("a {kind} Event naming {node}"), WAIT, || {
        let out = kubectl(&[
            "get",
            "events",
            "-n",
            namespace,
            "-o",
            "jsonpath={range .items[*]}{.type} {.reason} {.message}{\"\\n\"}{end}",
        ]);
        out.lines()
            .any(|l| l.starts_with(kind) && l.contains(node))
            .then_some(())
    });
}

/// How many times the speakers took `vip`, from their logs.
fn claims_logged(speakers: &[Speaker], vip: IpAddr) -> i64 {
    // The claim line, not "stopped announcing VIP".
    let needle = format!(": announcing VIP vip={vip} ");
    speakers
        .iter()
        .map(|s| {
            let text = std::fs::read_to_string(&s.process.log).unwrap_or_default();
            text.lines().filter(|l| l.contains(&needle)).count() as i64
        })
        .sum()
}

/// The IPAddressPool `e2e` of [`POOL`].
fn pool() -> String {
    format!(
        "apiVersion: swimlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: e2e\nspec:\n  addresses: [{POOL}]\n"
    )
}

/// The L2Advertisement `e2e` with `spec` (indented lines under `spec:`); empty: no spec at
/// all, as MetalLB's plain example (every pool from every node).
fn advertisement(spec: &str) -> String {
    let spec = if spec.is_empty() {
        String::new()
    } else {
        format!("spec:\n{spec}")
    };
    format!("apiVersion: swimlb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: e2e\n{spec}")
}

fn kubectl_apply_node(node: &str) {
    support::kubectl_with_input(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n  labels:\n    kubernetes.io/hostname: {node}\n"
        )),
    );
}

/// Stops the API server process while it lives; resumes it when dropped.
struct ApiServerPause(String);

impl ApiServerPause {
    fn new(pid: &str) -> Self {
        let status = Command::new("kill")
            .args(["-STOP", pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "cannot stop the API server");
        Self(pid.to_owned())
    }
}

impl Drop for ApiServerPause {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}
