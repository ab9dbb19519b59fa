//! The speaker's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::packet::Malformed;

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
    pub requests: Counter,
    pub replies: Counter,
    pub gratuitous: Counter,
    /// Frames from another MAC claiming a VIP this node announces.
    pub conflicts: Counter,
    /// Probes sent while fenced: ARP probes, or solicitations for IPv6.
    pub probes: Counter,
}

/// Every metric the speaker exports. Cheap to clone: the metrics share their storage.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub arp: ProtocolCounters,
    pub ndp: ProtocolCounters,
    pub ignored: Family<ReasonLabel, Counter>,
    pub send_errors: Counter,
    pub frames_dropped: Counter,
    pub claims_dropped: Counter,
    pub events_dropped: Counter,
    pub fenced: Gauge,
    pub held_down: Counter,
    pub vip_announced: Family<IpLabel, Gauge>,
    pub vips_announced: Gauge,
    pub members: Family<StateLabel, Gauge>,
    pub ownership_changes: Family<ChangeLabel, Counter>,
    pub gossip_events: Family<EventLabel, Counter>,
    pub reannouncements: Counter,
    pub failover_seconds: Histogram,
    pub config_reloads: Family<ResultLabel, Counter>,
    pub config_last_reload_successful: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in a new registry.
    pub fn new() -> (Metrics, Registry) {
        let mut registry = Registry::with_prefix("swimlb_speaker");
        let requests: Family<ProtocolLabel, Counter> = Family::default();
        let replies: Family<ProtocolLabel, Counter> = Family::default();
        let gratuitous: Family<ProtocolLabel, Counter> = Family::default();
        let conflicts: Family<ProtocolLabel, Counter> = Family::default();
        let probes: Family<ProtocolLabel, Counter> = Family::default();
        let counters = |protocol: &'static str| ProtocolCounters {
            requests: requests.get_or_create_owned(&ProtocolLabel { protocol }),
            replies: replies.get_or_create_owned(&ProtocolLabel { protocol }),
            gratuitous: gratuitous.get_or_create_owned(&ProtocolLabel { protocol }),
            conflicts: conflicts.get_or_create_owned(&ProtocolLabel { protocol }),
            probes: probes.get_or_create_owned(&ProtocolLabel { protocol }),
        };
        let metrics = Metrics {
            arp: counters("arp"),
            ndp: counters("ndp"),
            ignored: Family::default(),
            send_errors: Counter::default(),
            frames_dropped: Counter::default(),
            claims_dropped: Counter::default(),
            events_dropped: Counter::default(),
            fenced: Gauge::default(),
            held_down: Counter::default(),
            vip_announced: Family::default(),
            vips_announced: Gauge::default(),
            members: Family::default(),
            ownership_changes: Family::default(),
            gossip_events: Family::default(),
            reannouncements: Counter::default(),
            // 1 ms to about 16 s.
            failover_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            config_reloads: Family::default(),
            config_last_reload_successful: Gauge::default(),
        };
        for reason in Malformed::ALL {
            // Present from the start, so a zero is visible before the first bad frame.
            metrics.ignored.get_or_create_owned(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        for event in GOSSIP_EVENTS {
            metrics
                .gossip_events
                .get_or_create_owned(&EventLabel { event });
        }
        registry.register(
            "requests_received",
            "ARP requests and neighbor solicitations received, for any address",
            requests,
        );
        registry.register(
            "responses_sent",
            "ARP replies and solicited neighbor advertisements sent for owned VIPs",
            replies,
        );
        registry.register(
            "gratuitous_sent",
            "Gratuitous ARP packets and unsolicited neighbor advertisements sent",
            gratuitous,
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
        (metrics, registry)
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
    use prometheus_client::encoding::text::encode;

    #[test]
    fn exported_text_names_the_documented_series() {
        let (metrics, registry) = Metrics::new();
        metrics.arp.requests.inc();
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
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        for needle in [
            "swimlb_speaker_requests_received_total{protocol=\"arp\"} 1",
            "swimlb_speaker_requests_received_total{protocol=\"ndp\"} 0",
            "swimlb_speaker_frames_malformed_total{reason=\"bad_icmpv6_checksum\"} 1",
            "swimlb_speaker_frames_malformed_total{reason=\"truncated_arp\"} 0",
            "swimlb_speaker_announced{ip=\"192.0.2.200\"} 1",
            "swimlb_speaker_failover_seconds_count 1",
            "swimlb_speaker_gossip_events_total{event=\"down\"} 1",
            "swimlb_speaker_gossip_events_total{event=\"renewed\"} 0",
            "swimlb_speaker_reannouncements_total 0",
            "swimlb_speaker_probes_sent_total{protocol=\"arp\"} 0",
            "swimlb_speaker_fenced 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
