//! The real speaker binary in static mode, alone, answering on no interface (`interfaces`
//! names one that does not exist), on loopback: its `/metrics` passes `promtool check
//! metrics`, OpenMetrics is served on request, and the probes listen on the health address
//! while `/metrics` and `/vips` stay on the metrics address; an edit of its file (as the
//! kubelet makes when a mounted ConfigMap changes) is picked up without a signal.

use std::path::Path;
use std::process::Command;

#[path = "../../tests/support/metrics_check.rs"]
mod check;
#[path = "../../tests/support/kube_e2e.rs"]
mod support;
use check::Running;
use support::{WAIT, wait_for};

fn start(dir: &Path) -> Running {
    let gossip_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let key = dir.join("gossip.key");
    std::fs::write(&key, format!("1 {}\n", "ab".repeat(32))).expect("key file");
    let config = dir.join("speaker.yaml");
    std::fs::write(
        &config,
        format!(
            "node_name: lint-node\n\
             gossip:\n  bind: 127.0.0.1:{gossip_port}\n  key_file: {}\n\
             interfaces: [swimlb-none0]\n\
             metrics_address: 127.0.0.1:0\n\
             health_address: 127.0.0.1:0\n\
             drain_grace_ms: 0\n\
             vips:\n  - address: 192.0.2.200\n  - address: 2001:db8::c8\n",
            key.display()
        ),
    )
    .expect("config file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_swimlb-speaker"));
    command
        .args(["--config".as_ref(), config.as_os_str()])
        .env("SWIMLB_LOG", "info")
        .env_remove("NODE_NAME");
    Running::start(command, dir.join("speaker.log"))
}

#[test]
fn metrics_pass_promtool_and_probes_have_their_own_address() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let speaker = start(dir.path());
    let (metrics, health) = wait_for("the speaker's HTTP addresses in its log", WAIT, || {
        let marker = "serving /metrics";
        Some((
            speaker.logged(marker, "address")?,
            speaker.logged(marker, "health")?,
        ))
    });

    // Alone in its cluster, the speaker owns both VIPs once its start-up hold is over.
    wait_for("the speaker to be ready", WAIT, || {
        (check::get(&health, "/readyz", "*/*")?.status == 200).then_some(())
    });
    let vips = wait_for("both VIPs in /vips", WAIT, || {
        let body = check::get(&metrics, "/vips", "*/*")?.body;
        (body.lines().count() == 2).then_some(body)
    });
    assert!(
        vips.contains("192.0.2.200 ") && vips.contains("2001:db8::c8 "),
        "{vips}"
    );
    let healthz = check::get(&health, "/healthz", "*/*").expect("GET /healthz");
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok\n"));
    for path in ["/healthz", "/readyz"] {
        let answer = check::get(&metrics, path, "*/*").expect("GET on the metrics address");
        assert_eq!(answer.status, 404, "{path} on the metrics address");
    }
    for path in ["/metrics", "/vips"] {
        let answer = check::get(&health, path, "*/*").expect("GET on the health address");
        assert_eq!(answer.status, 404, "{path} on the health address");
    }

    let text = check::check_metrics(&metrics);
    check::assert_series(
        &text,
        "swimlb_speaker",
        &[
            "swimlb_speaker_announced{ip=\"192.0.2.200\"} 1",
            "swimlb_speaker_announced{ip=\"2001:db8::c8\"} 1",
            "swimlb_speaker_announced_vips 2",
            "swimlb_speaker_gossip_members{state=\"alive\"} 1",
            "swimlb_speaker_config_reloads_total{result=\"ok\"} 0",
            "swimlb_speaker_requests_received_total{ip=\"192.0.2.200\",protocol=\"arp\"} 0",
            "swimlb_speaker_gratuitous_sent_total{ip=\"2001:db8::c8\",protocol=\"ndp\"} 0",
        ],
        &[],
    );
}

#[test]
fn an_edited_config_file_is_reloaded_without_a_signal() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let speaker = start(dir.path());
    let metrics = wait_for("the speaker's metrics address in its log", WAIT, || {
        speaker.logged("serving /metrics", "address")
    });
    wait_for("both VIPs in /vips", WAIT, || {
        let body = check::get(&metrics, "/vips", "*/*")?.body;
        (body.lines().count() == 2).then_some(())
    });
    let config = dir.path().join("speaker.yaml");
    let text = std::fs::read_to_string(&config).expect("config file");
    // Replaced as a whole, as the kubelet swaps a ConfigMap volume's files.
    let edited = dir.path().join("speaker.yaml.new");
    std::fs::write(&edited, format!("{text}  - address: 192.0.2.201\n")).expect("edit");
    std::fs::rename(&edited, &config).expect("swap the file");
    let vips = wait_for("the added VIP in /vips", WAIT, || {
        let body = check::get(&metrics, "/vips", "*/*")?.body;
        body.contains("192.0.2.201 ").then_some(body)
    });
    assert_eq!(vips.lines().count(), 3, "{vips}");
    let text = check::get(&metrics, "/metrics", "text/plain")
        .expect("GET /metrics")
        .body;
    assert!(
        text.contains("swimlb_speaker_config_reloads_total{result=\"ok\"} 1"),
        "{text}"
    );
}
