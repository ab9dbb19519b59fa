//! The speaker's Prometheus metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use swimlb_telemetry::BuildInfo;

use swimlb_gossip::envelope::{DropCounts, DropReason};

use crate::packet::Malformed;

/// The prefix of every speaker metric but the `process_*` ones.
pub const PREFIX: &str = "swimlb_speaker";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IpLabel {
    pub ip: String,
}

/// The labels of the per-VIP series; `protocol` follows from the address family.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VipLabels {
    pub ip: String,
    pub protocol: &'static str,
}

impl VipLabels {
    pub fn new(vip: IpAddr) -> Self {
        Self {
            ip: vip.to_string(),
            protocol: match vip {
                IpAddr::V4(_) => "arp",
                IpAddr::V6(_) => "ndp",
            },
        }
    }
}

/// A Service IP this node announces, by Service, as MetalLB's `announced` series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ServiceIpLabel {
    pub ip: String,
    /// `namespace/name`.
    pub service: String,
    /// `arp` (IPv4) or `ndp` (IPv6).
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabel {
    pub change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    pub event: &'static str,
}

/// The membership event kinds counted by `gossip_events_total`.
pub const GOSSIP_EVENTS: [&str; 9] = [
    "up",
    "suspect",
    "down",
    "rejoined",
    "renewed",
    "connected",
    "isolated",
    "view_untrusted",
    "view_trusted",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// Counters for one protocol (ARP or NDP), shared by every interface thread.
#[derive(Clone, Debug, Default)]
pub struct ProtocolCounters {
    /// Requests for addresses that are not VIPs of this speaker.
    pub other_requests: Counter,
    /// Frames from another MAC claiming a VIP this node announces.
    pub conflicts: Counter,
    /// Probes sent while fenced: ARP probes, or solicitations for IPv6.
    pub probes: Counter,
}

/// One watched VIP's counters.
#[derive(Clone, Debug, Default)]
struct VipCounters {
    requests: Counter,
    responses: Counter,
    gratuitous: Counter,
}

/// The per-VIP series (`requests_received_total`, `responses_sent_total`,
/// `gratuitous_sent_total`, labelled `ip` and `protocol`): present, from zero, for every VIP the
/// speaker watches (the whole placement, owned or not), and removed when it stops watching one,
/// so their number follows the configured VIPs and nothing a frame on the wire says.
///
/// The interface threads count through the handles kept here, never by creating series: a frame
/// counted while its VIP is being removed increments a detached counter, which is harmless.
#[derive(Clone, Debug, Default)]
pub struct VipSeries {
    requests: Family<VipLabels, Counter>,
    responses: Family<VipLabels, Counter>,
    gratuitous: Family<VipLabels, Counter>,
    watched: Arc<RwLock<BTreeMap<IpAddr, VipCounters>>>,
}

impl VipSeries {
    /// Makes the series match `vips`: new VIPs get series at zero, VIPs no longer watched
    /// lose theirs (a VIP watched again starts from zero, as a restarted counter does).
    pub fn watch(&self, vips: &BTreeSet<IpAddr>) {
        let mut watched = self.watched.write().unwrap_or_else(PoisonError::into_inner);
        watched.retain(|vip, _| {
            let keep = vips.contains(vip);
            if !keep {
                let labels = VipLabels::new(*vip);
                self.requests.remove(&labels);
                self.responses.remove(&labels);
                self.gratuitous.remove(&labels);
            }
            keep
        });
        for vip in vips {
            watched.entry(*vip).or_insert_with(|| {
                let labels = VipLabels::new(*vip);
                VipCounters {
                    requests: self.requests.get_or_create_owned(&labels),
                    responses: self.responses.get_or_create_owned(&labels),
                    gratuitous: self.gratuitous.get_or_create_owned(&labels),
                }
            });
        }
    }

    fn count(&self, vip: IpAddr, by: u64, pick: impl Fn(&VipCounters) -> &Counter) -> bool {
        let watched = self.watched.read().unwrap_or_else(PoisonError::into_inner);
        match watched.get(&vip) {
            Some(counters) => {
                pick(counters).inc_by(by);
                true
            }
            None => false,
        }
    }

    /// Counts a request for `vip`; false (nothing counted) when `vip` is not watched.
    pub fn request(&self, vip: IpAddr) -> bool {
        self.count(vip, 1, |c| &c.requests)
    }

    /// Counts a reply or solicited advertisement sent for `vip`.
    pub fn response(&self, vip: IpAddr) -> bool {
        self.count(vip, 1, |c| &c.responses)
    }

    /// Counts `frames` gratuitous frames sent for `vip`.
    pub fn gratuitous(&self, vip: IpAddr, frames: u64) -> bool {
        self.count(vip, frames, |c| &c.gratuitous)
    }

    /// The VIPs with series, in order.
    pub fn watched(&self) -> Vec<IpAddr> {
        self.watched
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }
}

/// Every metric the speaker exports. Cheap to clone: the metrics share their storage.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub arp: ProtocolCounters,
    pub ndp: ProtocolCounters,
    pub vips: VipSeries,
    pub ignored: Family<ReasonLabel, Counter>,
    pub send_errors: Counter,
    pub frames_dropped: Counter,
    pub claims_dropped: Counter,
    pub events_dropped: Counter,
    pub status_writes_dropped: Counter,
    pub fenced: Gauge,
    pub held_down: Counter,
    pub vip_announced: Family<IpLabel, Gauge>,
    pub service_announced: Family<ServiceIpLabel, Gauge>,
    pub vips_announced: Gauge,
    pub members: Family<StateLabel, Gauge>,
    pub ownership_changes: Family<ChangeLabel, Counter>,
    pub gossip_events: Family<EventLabel, Counter>,
    pub reannouncements: Counter,
    pub failover_seconds: Histogram,
    pub config_reloads: Family<ResultLabel, Counter>,
    pub config_last_reload_successful: Gauge,
    pub key_reloads: Family<ResultLabel, Counter>,
    pub gossip_dropped: Family<ReasonLabel, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them, with the build-info gauge and the process
    /// metrics, in a new registry.
    pub fn new() -> (Metrics, Registry) {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix(PREFIX);
        let other_requests: Family<ProtocolLabel, Counter> = Family::default();
        let conflicts: Family<ProtocolLabel, Counter> = Family::default();
        let probes: Family<ProtocolLabel, Counter> = Family::default();
        let counters = |protocol: &'static str| ProtocolCounters {
            other_requests: other_requests.get_or_create_owned(&ProtocolLabel { protocol }),
            conflicts: conflicts.get_or_create_owned(&ProtocolLabel { protocol }),
            probes: probes.get_or_create_owned(&ProtocolLabel { protocol }),
        };
        let metrics = Metrics {
            arp: counters("arp"),
            ndp: counters("ndp"),
            vips: VipSeries::default(),
            ignored: Family::default(),
            send_errors: Counter::default(),
            frames_dropped: Counter::default(),
            claims_dropped: Counter::default(),
            events_dropped: Counter::default(),
            status_writes_dropped: Counter::default(),
            fenced: Gauge::default(),
            held_down: Counter::default(),
            vip_announced: Family::default(),
            service_announced: Family::default(),
            vips_announced: Gauge::default(),
            members: Family::default(),
            ownership_changes: Family::default(),
            gossip_events: Family::default(),
            reannouncements: Counter::default(),
            // 1 ms to about 16 s.
            failover_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            config_reloads: Family::default(),
            config_last_reload_successful: Gauge::default(),
            key_reloads: Family::default(),
            gossip_dropped: Family::default(),
        };
        for reason in DropReason::ALL {
            metrics.gossip_dropped.get_or_create_owned(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        for reason in Malformed::ALL {
            // Present from the start, so a zero is visible before the first bad frame.
            metrics.ignored.get_or_create_owned(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        for result in ["ok", "error"] {
            metrics
                .config_reloads
                .get_or_create_owned(&ResultLabel { result });
            metrics
                .key_reloads
                .get_or_create_owned(&ResultLabel { result });
        }
        for event in GOSSIP_EVENTS {
            metrics
                .gossip_events
                .get_or_create_owned(&EventLabel { event });
        }
        registry.register(
            "requests_received",
            "ARP requests and neighbor solicitations received for a VIP this speaker knows \
             (owned or not), by VIP",
            metrics.vips.requests.clone(),
        );
        registry.register(
            "non_vip_requests_received",
            "ARP requests and neighbor solicitations received for addresses that are not VIPs \
             of this speaker",
            other_requests,
        );
        registry.register(
            "responses_sent",
            "ARP replies and solicited neighbor advertisements sent for owned VIPs, by VIP",
            metrics.vips.responses.clone(),
        );
        registry.register(
            "gratuitous_sent",
            "Gratuitous ARP packets and unsolicited neighbor advertisements sent, by VIP",
            metrics.vips.gratuitous.clone(),
        );
        registry.register(
            "conflicts",
            "ARP replies, announcements and neighbor advertisements from another MAC for a VIP \
             this node announces (a duplicate owner or a foreign host using the address)",
            conflicts,
        );
        registry.register(
            "probes_sent",
            "ARP probes and neighbor solicitations sent while fenced, asking whether another host \
             holds a VIP",
            probes,
        );
        registry.register(
            "frames_malformed",
            "ARP and neighbor discovery frames dropped as malformed, by reason",
            metrics.ignored.clone(),
        );
        registry.register(
            "send_errors",
            "Frames the speaker failed to send",
            metrics.send_errors.clone(),
        );
        registry.register(
            "frames_dropped",
            "Frames dropped because an interface's send queue was full",
            metrics.frames_dropped.clone(),
        );
        registry.register(
            "claims_dropped",
            "Claims of VIPs by other MACs dropped because the event loop's queue was full",
            metrics.claims_dropped.clone(),
        );
        registry.register(
            "events_dropped",
            "Kubernetes Events not recorded because the recorder's queue was full",
            metrics.events_dropped.clone(),
        );
        registry.register(
            "status_writes_dropped",
            "ServiceL2Status writes not made because the writer's queue was full",
            metrics.status_writes_dropped.clone(),
        );
        registry.register(
            "fenced",
            "1 while this node cannot trust its view of the cluster and claims only VIPs nobody \
             else answers for",
            metrics.fenced.clone(),
        );
        registry.register(
            "flap_hold_downs",
            "Times a member (this node included) was put in the flap hold-down",
            metrics.held_down.clone(),
        );
        registry.register(
            "announced",
            "1 for each VIP this node announces",
            metrics.vip_announced.clone(),
        );
        registry.register(
            "service_announced",
            "1 for each Service IP this node announces (Kubernetes mode), by Service and protocol",
            metrics.service_announced.clone(),
        );
        registry.register(
            "announced_vips",
            "Number of VIPs this node announces",
            metrics.vips_announced.clone(),
        );
        registry.register(
            "gossip_members",
            "Gossip members by state as this node sees them (alive includes this node)",
            metrics.members.clone(),
        );
        registry.register(
            "ownership_changes",
            "VIPs this node gained or lost",
            metrics.ownership_changes.clone(),
        );
        registry.register(
            "gossip_events",
            "Membership events this node's gossip member reported: up, suspect, down (of \
             another member), rejoined (another member came back with a new generation), \
             renewed (this node took a new generation), connected, isolated, view_untrusted \
             (this node cannot reach enough of the members it expects), view_trusted (it can again)",
            metrics.gossip_events.clone(),
        );
        registry.register(
            "reannouncements",
            "Restarts of announcement bursts: of every owned VIP after this node's identity was \
             renewed, another member rejoined or this node's isolation ended; of one VIP when \
             another MAC claimed it",
            metrics.reannouncements.clone(),
        );
        registry.register(
            "failover_seconds",
            "From this node first seeing a member suspected or down to this node sending the first \
             gratuitous announcement for a VIP it inherited from that member",
            metrics.failover_seconds.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            metrics.config_reloads.clone(),
        );
        registry.register(
            "config_last_reload_successful",
            "1 when the last configuration load succeeded",
            metrics.config_last_reload_successful.clone(),
        );
        registry.register(
            "key_reloads",
            "Reloads of the gossip key file by result (error: the file did not parse and the \
             key ring in force stays)",
            metrics.key_reloads.clone(),
        );
        registry.register(
            "gossip_dropped",
            "Gossip datagrams dropped by reason: truncated, oversized, unknown_version, \
             unknown_key (sealed with a key id no key of this node's ring has), unauthentic \
             (wrong key or altered), malformed, replayed, stale, refused",
            metrics.gossip_dropped.clone(),
        );
        swimlb_telemetry::register(
            &mut root,
            PREFIX,
            &BuildInfo::current(env!("CARGO_PKG_VERSION")),
        );
        (metrics, root)
    }

    /// Brings `gossip_dropped_total` up to the gossip driver's counts; `seen` holds the counts
    /// already added.
    pub fn gossip_drops(&self, seen: &mut DropCounts, now: &DropCounts) {
        for (reason, count) in now.iter() {
            let added = count.saturating_sub(seen.get(reason));
            if added > 0 {
                self.gossip_dropped
                    .get_or_create(&ReasonLabel {
                        reason: reason.as_str(),
                    })
                    .inc_by(added);
            }
        }
        *seen = now.clone();
    }

    pub fn malformed(&self, reason: Malformed) {
        self.ignored
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swimlb_telemetry::{Format, render};

    fn vips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|v| v.parse().expect("address")).collect()
    }

    fn text(registry: &Registry) -> String {
        render(registry, Format::Text).expect("encodes")
    }

    #[test]
    fn exported_text_names_the_documented_series() {
        let (metrics, registry) = Metrics::new();
        metrics.vips.watch(&vips(&["192.0.2.200", "2001:db8::c8"]));
        let vip: IpAddr = "192.0.2.200".parse().expect("address");
        assert!(metrics.vips.request(vip));
        metrics.arp.other_requests.inc();
        metrics.malformed(Malformed::BadIcmpv6Checksum);
        metrics.failover_seconds.observe(0.25);
        metrics
            .gossip_events
            .get_or_create(&EventLabel { event: "down" })
            .inc();
        metrics
            .vip_announced
            .get_or_create(&IpLabel {
                ip: "192.0.2.200".into(),
            })
            .set(1);
        let text = text(&registry);
        for needle in [
            "swimlb_speaker_requests_received_total{ip=\"192.0.2.200\",protocol=\"arp\"} 1",
            "swimlb_speaker_requests_received_total{ip=\"2001:db8::c8\",protocol=\"ndp\"} 0",
            "swimlb_speaker_responses_sent_total{ip=\"192.0.2.200\",protocol=\"arp\"} 0",
            "swimlb_speaker_gratuitous_sent_total{ip=\"2001:db8::c8\",protocol=\"ndp\"} 0",
            "swimlb_speaker_non_vip_requests_received_total{protocol=\"arp\"} 1",
            "swimlb_speaker_non_vip_requests_received_total{protocol=\"ndp\"} 0",
            "swimlb_speaker_frames_malformed_total{reason=\"bad_icmpv6_checksum\"} 1",
            "swimlb_speaker_frames_malformed_total{reason=\"truncated_arp\"} 0",
            "\nswimlb_speaker_announced{ip=\"192.0.2.200\"} 1\n",
            "swimlb_speaker_failover_seconds_count 1",
            "swimlb_speaker_gossip_events_total{event=\"down\"} 1",
            "swimlb_speaker_gossip_events_total{event=\"renewed\"} 0",
            "swimlb_speaker_reannouncements_total 0",
            "swimlb_speaker_probes_sent_total{protocol=\"arp\"} 0",
            "swimlb_speaker_fenced 0",
            "swimlb_speaker_config_reloads_total{result=\"error\"} 0",
            "swimlb_speaker_key_reloads_total{result=\"ok\"} 0",
            "swimlb_speaker_gossip_dropped_total{reason=\"unauthentic\"} 0",
            "# TYPE swimlb_speaker_build_info gauge\nswimlb_speaker_build_info{version=\"",
            "# TYPE process_cpu_seconds_total counter\n",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn gossip_drops_are_added_once() {
        let (metrics, registry) = Metrics::new();
        let mut seen = DropCounts::default();
        let mut now = DropCounts::default();
        now.record(DropReason::Unauthentic);
        now.record(DropReason::Unauthentic);
        metrics.gossip_drops(&mut seen, &now);
        metrics.gossip_drops(&mut seen, &now);
        now.record(DropReason::UnknownKey);
        metrics.gossip_drops(&mut seen, &now);
        let text = text(&registry);
        for needle in [
            "swimlb_speaker_gossip_dropped_total{reason=\"unauthentic\"} 2\n",
            "swimlb_speaker_gossip_dropped_total{reason=\"unknown_key\"} 1\n",
            "swimlb_speaker_gossip_dropped_total{reason=\"replayed\"} 0\n",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn per_vip_series_follow_the_watched_vips() {
        let (metrics, registry) = Metrics::new();
        let a: IpAddr = "192.0.2.1".parse().expect("address");
        let b: IpAddr = "2001:db8::2".parse().expect("address");
        let stranger: IpAddr = "192.0.2.99".parse().expect("address");
        metrics.vips.watch(&vips(&["192.0.2.1", "2001:db8::2"]));
        assert!(metrics.vips.request(a));
        assert!(metrics.vips.response(a));
        assert!(metrics.vips.gratuitous(a, 2));
        assert!(metrics.vips.gratuitous(b, 1));
        // An address nobody configured creates no series.
        assert!(!metrics.vips.request(stranger));
        assert!(!metrics.vips.gratuitous(stranger, 2));
        let before = text(&registry);
        assert!(
            before.contains(
                "swimlb_speaker_gratuitous_sent_total{ip=\"192.0.2.1\",protocol=\"arp\"} 2"
            ),
            "{before}"
        );
        assert!(!before.contains("192.0.2.99"), "{before}");

        // Watching the same set again keeps the counts.
        metrics.vips.watch(&vips(&["192.0.2.1", "2001:db8::2"]));
        assert!(
            text(&registry).contains(
                "swimlb_speaker_responses_sent_total{ip=\"192.0.2.1\",protocol=\"arp\"} 1"
            )
        );

        // A VIP no longer watched loses all three series; a new one gets them at zero.
        metrics.vips.watch(&vips(&["2001:db8::2", "192.0.2.3"]));
        assert_eq!(
            metrics.vips.watched(),
            vec!["192.0.2.3".parse::<IpAddr>().expect("address"), b]
        );
        assert!(!metrics.vips.request(a));
        let after = text(&registry);
        assert!(!after.contains("ip=\"192.0.2.1\""), "{after}");
        assert!(
            after.contains(
                "swimlb_speaker_requests_received_total{ip=\"192.0.2.3\",protocol=\"arp\"} 0"
            ),
            "{after}"
        );
        assert!(
            after.contains(
                "swimlb_speaker_gratuitous_sent_total{ip=\"2001:db8::2\",protocol=\"ndp\"} 1"
            ),
            "{after}"
        );

        // Watched again, it starts from zero.
        metrics.vips.watch(&vips(&["192.0.2.1"]));
        assert!(
            text(&registry).contains(
                "swimlb_speaker_responses_sent_total{ip=\"192.0.2.1\",protocol=\"arp\"} 0"
            )
        );
        metrics.vips.watch(&BTreeSet::new());
        assert!(!text(&registry).contains("ip=\""));
    }
}
