//! The static-mode configuration file (YAML), parsed and validated.
//!
//! Syntax and type errors come from the YAML parser with their line and column; semantic
//! errors (duplicate VIPs, unknown preset, bad patterns) name the line and the field too.
//! The format is documented in the README ("Speaker (static mode)").

use crate::announce::BurstSchedule;
use crate::fence::ProbePolicy;
use crate::flap::FlapPolicy;
use crate::interfaces::DEFAULT_EXCLUDES;
pub use crate::kubernetes::KubernetesConfig;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use swimlb_gossip::preset::Suspicion;
use swimlb_gossip::{Preset, Timing};

/// Where the node name comes from when the file has none.
pub const NODE_NAME_ENV: &str = "NODE_NAME";
pub const DEFAULT_METRICS_ADDRESS: &str = "0.0.0.0:7472";
pub const DEFAULT_DRAIN_GRACE_MS: u64 = 2000;
/// Burst offsets beyond this are a typo, not a plan.
const MAX_BURST_OFFSET_MS: u64 = 60_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Absent: taken from the `NODE_NAME` environment variable (the DaemonSet's downward API).
    #[serde(default)]
    node_name: Option<Spanned<String>>,
    gossip: RawGossip,
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default)]
    exclude_interfaces: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    metrics_address: Option<SocketAddr>,
    #[serde(default)]
    health_address: Option<Spanned<SocketAddr>>,
    #[serde(default)]
    announce: RawAnnounce,
    #[serde(default)]
    drain_grace_ms: Option<u64>,
    #[serde(default)]
    vips: Vec<RawVip>,
    #[serde(default)]
    kubernetes: Option<KubernetesConfig>,
    #[serde(default)]
    claims: RawClaims,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaims {
    #[serde(default = "yes")]
    fencing: bool,
    /// 0 switches the flap hold-down off.
    #[serde(default = "default_flap_returns")]
    flap_max_returns: usize,
    #[serde(default)]
    flap_window_ms: Option<Spanned<u64>>,
    #[serde(default)]
    flap_hold_down_ms: Option<Spanned<u64>>,
}

impl Default for RawClaims {
    fn default() -> Self {
        Self {
            fencing: true,
            flap_max_returns: default_flap_returns(),
            flap_window_ms: None,
            flap_hold_down_ms: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_flap_returns() -> usize {
    FlapPolicy::default().max_returns
}

/// How the speaker core decides its claims; changing them needs a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRules {
    /// `None`: fencing off.
    pub fencing: Option<ProbePolicy>,
    /// `None`: flap hold-down off.
    pub flap: Option<FlapPolicy>,
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            fencing: Some(ProbePolicy::default()),
            flap: Some(FlapPolicy::default()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGossip {
    bind: SocketAddr,
    #[serde(default)]
    advertise: Option<SocketAddr>,
    #[serde(default)]
    peers: Vec<SocketAddr>,
    key_file: PathBuf,
    #[serde(default)]
    preset: Option<Spanned<String>>,
    #[serde(default)]
    timing: Option<Spanned<RawTiming>>,
}

/// Overrides of the preset's timings; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiming {
    #[serde(default)]
    probe_period_ms: Option<u64>,
    #[serde(default)]
    probe_timeout_ms: Option<u64>,
    #[serde(default)]
    indirect_probes: Option<usize>,
    /// The shortest suspicion (confirmed by others); fixed, whatever the cluster size.
    #[serde(default)]
    suspicion_ms: Option<u64>,
    #[serde(default)]
    gossip_interval_ms: Option<u64>,
}

/// Custom timings beyond this are a typo, not a plan.
const MAX_TIMING_MS: u64 = 600_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnnounce {
    #[serde(default)]
    burst_ms: Option<Spanned<Vec<u64>>>,
    #[serde(default)]
    refresh_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVip {
    address: Spanned<IpAddr>,
    #[serde(default)]
    nodes: Option<Spanned<Vec<String>>>,
}

/// Gossip settings; changing them needs a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipConfig {
    pub bind: SocketAddr,
    pub advertise: Option<SocketAddr>,
    pub peers: Vec<SocketAddr>,
    pub key_file: PathBuf,
    pub preset: Preset,
    /// The preset's timings with the file's overrides applied.
    pub timing: Timing,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub node_name: String,
    pub gossip: GossipConfig,
    /// Explicit interface names; empty means every suitable interface.
    pub interfaces: Vec<String>,
    pub exclude_interfaces: Vec<String>,
    /// `/metrics` and `/vips`, and the probes unless `health_address` is set.
    pub metrics_address: SocketAddr,
    /// `/healthz` and `/readyz` on an address of their own; `None`: on `metrics_address`.
    pub health_address: Option<SocketAddr>,
    pub schedule: BurstSchedule,
    pub drain_grace: Duration,
    /// Every VIP, with the nodes allowed to own it (`None`: any node).
    pub vips: BTreeMap<IpAddr, Option<BTreeSet<String>>>,
    /// Kubernetes mode: VIPs from Services too, peers from Nodes.
    pub kubernetes: Option<KubernetesConfig>,
    pub claims: ClaimRules,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Syntax {
        path: PathBuf,
        source: Box<serde_saphyr::Error>,
    },
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        line: u64,
        field: String,
        message: String,
    },
}

fn invalid(
    path: &Path,
    line: u64,
    field: impl Into<String>,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        field: field.into(),
        message: message.into(),
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            serde_saphyr::from_str(text).map_err(|source| ConfigError::Syntax {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        let (node_name, node_name_line) = match &raw.node_name {
            Some(spanned) => (spanned.value.trim().to_owned(), spanned.referenced.line()),
            None => (
                std::env::var(NODE_NAME_ENV)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                1,
            ),
        };
        if node_name.is_empty() {
            return Err(invalid(
                path,
                node_name_line,
                "node_name",
                format!("must not be empty (set it here or in {NODE_NAME_ENV})"),
            ));
        }
        let preset = match &raw.gossip.preset {
            None => Preset::default(),
            Some(spanned) => spanned.value.parse::<Preset>().map_err(|_| {
                invalid(
                    path,
                    spanned.referenced.line(),
                    "gossip.preset",
                    format!(
                        "unknown preset {:?}; expected one of fast, memberlist, wan",
                        spanned.value
                    ),
                )
            })?,
        };
        let timing = match &raw.gossip.timing {
            None => preset.timing(),
            Some(spanned) => custom_timing(
                preset.timing(),
                &spanned.value,
                spanned.referenced.line(),
                path,
            )?,
        };
        let exclude_interfaces = match raw.exclude_interfaces {
            None => DEFAULT_EXCLUDES.iter().map(|s| (*s).to_owned()).collect(),
            Some(patterns) => {
                for (i, pattern) in patterns.iter().enumerate() {
                    if let Err(error) = regex::Regex::new(&pattern.value) {
                        return Err(invalid(
                            path,
                            pattern.referenced.line(),
                            format!("exclude_interfaces[{i}]"),
                            format!("not a valid regex: {error}"),
                        ));
                    }
                }
                patterns.into_iter().map(|p| p.value).collect()
            }
        };
        let offsets = match &raw.announce.burst_ms {
            None => BurstSchedule::default().offsets,
            Some(spanned) => {
                if spanned.value.is_empty() {
                    return Err(invalid(
                        path,
                        spanned.referenced.line(),
                        "announce.burst_ms",
                        "needs at least one offset (0 announces at once)",
                    ));
                }
                if let Some(big) = spanned.value.iter().find(|ms| **ms > MAX_BURST_OFFSET_MS) {
                    return Err(invalid(
                        path,
                        spanned.referenced.line(),
                        "announce.burst_ms",
                        format!("offset {big} ms is beyond the {MAX_BURST_OFFSET_MS} ms limit"),
                    ));
                }
                spanned
                    .value
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect()
            }
        };
        let refresh = Some(Duration::from_millis(raw.announce.refresh_ms));
        let mut vips = BTreeMap::new();
        let mut first_line: BTreeMap<IpAddr, u64> = BTreeMap::new();
        for (i, vip) in raw.vips.iter().enumerate() {
            let address = vip.address.value;
            let line = vip.address.referenced.line();
            let field = format!("vips[{i}].address");
            if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
                return Err(invalid(
                    path,
                    line,
                    field,
                    format!("{address} is not a unicast address"),
                ));
            }
            if let IpAddr::V4(v4) = address
                && v4.is_broadcast()
            {
                return Err(invalid(
                    path,
                    line,
                    field,
                    "the broadcast address cannot be a VIP",
                ));
            }
            if let Some(previous) = first_line.insert(address, line) {
                return Err(invalid(
                    path,
                    line,
                    field,
                    format!("{address} is already listed on line {previous}"),
                ));
            }
            let nodes = match &vip.nodes {
                None => None,
                Some(spanned) => {
                    let names: BTreeSet<String> =
                        spanned.value.iter().map(|n| n.trim().to_owned()).collect();
                    if names.is_empty() || names.contains("") {
                        return Err(invalid(
                            path,
                            spanned.referenced.line(),
                            format!("vips[{i}].nodes"),
                            "must list at least one node name, none empty (omit it to allow every node)",
                        ));
                    }
                    Some(names)
                }
            };
            vips.insert(address, nodes);
        }
        let claims = claim_rules(&raw.claims, path)?;
        let default_metrics: SocketAddr = DEFAULT_METRICS_ADDRESS
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 7472)));
        let metrics_address = raw.metrics_address.unwrap_or(default_metrics);
        if let Some(health) = &raw.health_address
            && health.value.port() != 0
            && health.value.port() == metrics_address.port()
            && (health.value.ip() == metrics_address.ip()
                || health.value.ip().is_unspecified()
                || metrics_address.ip().is_unspecified())
        {
            return Err(invalid(
                path,
                health.referenced.line(),
                "health_address",
                format!(
                    "{} overlaps metrics_address {metrics_address}; use another port, or omit \
                     health_address to serve the probes with the metrics",
                    health.value
                ),
            ));
        }
        Ok(Config {
            node_name,
            gossip: GossipConfig {
                bind: raw.gossip.bind,
                advertise: raw.gossip.advertise,
                peers: raw.gossip.peers,
                key_file: raw.gossip.key_file,
                preset,
                timing,
            },
            interfaces: raw.interfaces,
            exclude_interfaces,
            metrics_address,
            health_address: raw.health_address.map(|h| h.value),
            schedule: BurstSchedule::new(offsets, refresh),
            drain_grace: Duration::from_millis(
                raw.drain_grace_ms.unwrap_or(DEFAULT_DRAIN_GRACE_MS),
            ),
            vips,
            kubernetes: raw.kubernetes,
            claims,
        })
    }

    /// Settings that differ from `self` but only take effect after a restart.
    pub fn restart_only_changes(&self, newer: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.node_name != newer.node_name {
            changed.push("node_name");
        }
        if self.gossip != newer.gossip {
            changed.push("gossip");
        }
        if self.interfaces != newer.interfaces {
            changed.push("interfaces");
        }
        if self.exclude_interfaces != newer.exclude_interfaces {
            changed.push("exclude_interfaces");
        }
        if self.metrics_address != newer.metrics_address {
            changed.push("metrics_address");
        }
        if self.health_address != newer.health_address {
            changed.push("health_address");
        }
        if self.kubernetes != newer.kubernetes {
            changed.push("kubernetes");
        }
        if self.claims != newer.claims {
            changed.push("claims");
        }
        changed
    }
}

/// Applies `raw`'s overrides to `base` (the preset's timings) and checks the result hangs
/// together: a probe must time out within its period, a suspicion must leave a suspect at least
/// a probe period to refute, and updates must spread at least once a probe period.
fn custom_timing(
    mut base: Timing,
    raw: &RawTiming,
    line: u64,
    path: &Path,
) -> Result<Timing, ConfigError> {
    let bad = |field: &str, message: String| {
        invalid(path, line, format!("gossip.timing.{field}"), message)
    };
    let ms = |field: &str, value: Option<u64>| -> Result<Option<Duration>, ConfigError> {
        match value {
            None => Ok(None),
            Some(0) => Err(bad(field, "must be above 0".to_owned())),
            Some(big) if big > MAX_TIMING_MS => Err(bad(
                field,
                format!("{big} ms is beyond the {MAX_TIMING_MS} ms limit"),
            )),
            Some(value) => Ok(Some(Duration::from_millis(value))),
        }
    };
    if let Some(period) = ms("probe_period_ms", raw.probe_period_ms)? {
        base.probe_period = period;
    }
    if let Some(timeout) = ms("probe_timeout_ms", raw.probe_timeout_ms)? {
        base.probe_timeout = timeout;
    }
    if let Some(suspicion) = ms("suspicion_ms", raw.suspicion_ms)? {
        base.suspicion = Suspicion::Fixed(suspicion);
    }
    if let Some(interval) = ms("gossip_interval_ms", raw.gossip_interval_ms)? {
        base.gossip_interval = interval;
    }
    if let Some(probes) = raw.indirect_probes {
        if !(1..=16).contains(&probes) {
            return Err(bad(
                "indirect_probes",
                format!("{probes} is outside 1 to 16"),
            ));
        }
        base.indirect_probes = probes;
    }
    let millis = |d: Duration| d.as_millis();
    if base.probe_timeout >= base.probe_period {
        return Err(bad(
            "probe_timeout_ms",
            format!(
                "{} ms must be below the probe period ({} ms)",
                millis(base.probe_timeout),
                millis(base.probe_period)
            ),
        ));
    }
    if let Suspicion::Fixed(suspicion) = base.suspicion
        && suspicion < base.probe_period
    {
        return Err(bad(
            "suspicion_ms",
            format!(
                "{} ms must be at least the probe period ({} ms): a suspect needs a period to refute",
                millis(suspicion),
                millis(base.probe_period)
            ),
        ));
    }
    if base.gossip_interval > base.probe_period {
        return Err(bad(
            "gossip_interval_ms",
            format!(
                "{} ms must not exceed the probe period ({} ms)",
                millis(base.gossip_interval),
                millis(base.probe_period)
            ),
        ));
    }
    Ok(base)
}

/// A positive duration in ms from an optional field, `default` when absent.
fn positive_ms(
    field: &Option<Spanned<u64>>,
    name: &str,
    default: Duration,
    path: &Path,
) -> Result<Duration, ConfigError> {
    match field {
        None => Ok(default),
        Some(spanned) if spanned.value == 0 => Err(invalid(
            path,
            spanned.referenced.line(),
            name,
            "must be above 0 (set flap_max_returns: 0 to switch the hold-down off)",
        )),
        Some(spanned) => Ok(Duration::from_millis(spanned.value)),
    }
}

fn claim_rules(raw: &RawClaims, path: &Path) -> Result<ClaimRules, ConfigError> {
    let defaults = FlapPolicy::default();
    let window = positive_ms(
        &raw.flap_window_ms,
        "claims.flap_window_ms",
        defaults.window,
        path,
    )?;
    let hold_down = positive_ms(
        &raw.flap_hold_down_ms,
        "claims.flap_hold_down_ms",
        defaults.hold_down,
        path,
    )?;
    Ok(ClaimRules {
        fencing: raw.fencing.then(ProbePolicy::default),
        flap: (raw.flap_max_returns > 0).then_some(FlapPolicy {
            max_returns: raw.flap_max_returns,
            window,
            hold_down,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "\
node_name: node-1
gossip:
  bind: 192.0.2.1:7946
  advertise: 192.0.2.1:7946
  peers: [192.0.2.2:7946, 192.0.2.3:7946]
  key_file: /etc/swimlb/gossip.key
  preset: memberlist
interfaces: [eth0]
exclude_interfaces: ['^docker.*']
metrics_address: 192.0.2.1:9100
announce:
  burst_ms: [0, 300, 1200]
  refresh_ms: 60000
drain_grace_ms: 1500
vips:
  - address: 192.0.2.200
  - address: 2001:db8::c8
    nodes: [node-1, node-2]
";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("speaker.yaml"))
    }

    fn error_text(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn the_kubernetes_section_is_optional_and_parsed() {
        assert_eq!(parse(FULL).expect("valid").kubernetes, None);
        let text =
            format!("{FULL}kubernetes:\n  node_selector: {{zone: a}}\n  gossip_port: 7000\n");
        let kubernetes = parse(&text).expect("valid").kubernetes.expect("section");
        assert_eq!(kubernetes.gossip_port, Some(7000));
        assert_eq!(kubernetes.node_selector.len(), 1);
        let unknown = format!("{FULL}kubernetes:\n  nodeSelector: {{}}\n");
        assert!(error_text(&unknown).contains("nodeSelector"));
    }

    #[test]
    fn full_file_parses() {
        let config = parse(FULL).expect("valid");
        assert_eq!(config.node_name, "node-1");
        assert_eq!(config.gossip.preset, Preset::Memberlist);
        assert_eq!(config.gossip.peers.len(), 2);
        assert_eq!(config.interfaces, vec!["eth0"]);
        assert_eq!(config.exclude_interfaces, vec!["^docker.*"]);
        assert_eq!(config.metrics_address.port(), 9100);
        assert_eq!(
            config.schedule,
            BurstSchedule::new(
                vec![
                    Duration::ZERO,
                    Duration::from_millis(300),
                    Duration::from_millis(1200)
                ],
                Some(Duration::from_secs(60))
            )
        );
        assert_eq!(config.drain_grace, Duration::from_millis(1500));
        let v6: IpAddr = "2001:db8::c8".parse().expect("addr");
        assert_eq!(config.vips.len(), 2);
        assert_eq!(
            config.vips[&v6],
            Some(
                ["node-1".to_owned(), "node-2".to_owned()]
                    .into_iter()
                    .collect()
            )
        );
        assert_eq!(
            config.vips[&"192.0.2.200".parse::<IpAddr>().expect("addr")],
            None
        );
    }

    #[test]
    fn the_health_address_is_optional_and_must_not_overlap_the_metrics() {
        assert_eq!(parse(FULL).expect("valid").health_address, None);
        let separate = FULL.replace(
            "metrics_address: 192.0.2.1:9100\n",
            "metrics_address: 192.0.2.1:9100\nhealth_address: 0.0.0.0:9101\n",
        );
        let config = parse(&separate).expect("valid");
        assert_eq!(
            config.health_address,
            Some("0.0.0.0:9101".parse().expect("address"))
        );
        assert_eq!(
            parse(FULL).expect("valid").restart_only_changes(&config),
            vec!["health_address"]
        );
        // Another address on the same port is fine: both can be bound.
        let other_ip = separate.replace("0.0.0.0:9101", "127.0.0.1:9100");
        assert!(parse(&other_ip).is_ok());
        for clash in ["192.0.2.1:9100", "0.0.0.0:9100"] {
            let message = error_text(&separate.replace("0.0.0.0:9101", clash));
            assert!(
                message.contains("speaker.yaml:11: health_address") && message.contains("overlaps"),
                "{message}"
            );
        }
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let config =
            parse("node_name: a\ngossip:\n  bind: 0.0.0.0:7946\n  key_file: k\n").expect("valid");
        assert_eq!(config.gossip.preset, Preset::Fast);
        assert_eq!(config.exclude_interfaces.len(), DEFAULT_EXCLUDES.len());
        assert_eq!(config.schedule, BurstSchedule::default());
        assert_eq!(
            config.drain_grace,
            Duration::from_millis(DEFAULT_DRAIN_GRACE_MS)
        );
        assert!(config.vips.is_empty());
    }

    #[test]
    fn duplicate_vip_names_both_lines() {
        let text = format!("{FULL}  - address: 192.0.2.200\n");
        let message = error_text(&text);
        assert!(message.contains("speaker.yaml:19"), "{message}");
        assert!(message.contains("vips[2].address"), "{message}");
        assert!(message.contains("line 16"), "{message}");
    }

    #[test]
    fn unknown_preset_names_line_and_field() {
        let text = FULL.replace("preset: memberlist", "preset: turbo");
        let message = error_text(&text);
        assert!(message.contains(":7: gossip.preset"), "{message}");
        assert!(message.contains("turbo"), "{message}");
    }

    #[test]
    fn bad_address_reports_its_line() {
        let text = FULL.replace("address: 192.0.2.200", "address: 192.0.2.300");
        let message = error_text(&text);
        assert!(message.contains("line 16 column 14"), "{message}");
        assert!(message.contains("address: 192.0.2.300"), "{message}");
    }

    #[test]
    fn unknown_field_is_rejected_with_its_name() {
        let text = FULL.replace("drain_grace_ms: 1500", "drain_grace: 1500");
        let message = error_text(&text);
        assert!(message.contains("drain_grace"), "{message}");
        assert!(message.contains("line 14 column 1"), "{message}");
    }

    #[test]
    fn semantic_errors() {
        let multicast = FULL.replace("address: 192.0.2.200", "address: 224.0.0.1");
        assert!(error_text(&multicast).contains("not a unicast"));
        let empty_nodes = FULL.replace("nodes: [node-1, node-2]", "nodes: []");
        assert!(error_text(&empty_nodes).contains("vips[1].nodes"));
        let regex = FULL.replace("'^docker.*'", "'(('");
        assert!(error_text(&regex).contains(":9: exclude_interfaces[0]"));
        let burst = FULL.replace("[0, 300, 1200]", "[0, 3000000]");
        assert!(error_text(&burst).contains(":12: announce.burst_ms"));
        let name = FULL.replace("node_name: node-1", "node_name: ' '");
        assert!(error_text(&name).contains(":1: node_name"));
    }

    #[test]
    fn custom_timings_override_the_preset_and_are_checked() {
        let config = parse(FULL).expect("valid");
        assert_eq!(config.gossip.timing, Preset::Memberlist.timing());
        let tuned = parse(&FULL.replace(
            "  preset: memberlist\n",
            "  preset: fast\n  timing:\n    probe_period_ms: 200\n    probe_timeout_ms: 60\n    suspicion_ms: 400\n",
        ))
        .expect("valid");
        let timing = &tuned.gossip.timing;
        assert_eq!(timing.probe_period, Duration::from_millis(200));
        assert_eq!(timing.probe_timeout, Duration::from_millis(60));
        assert_eq!(
            timing.suspicion,
            Suspicion::Fixed(Duration::from_millis(400))
        );
        assert_eq!(
            timing.gossip_interval,
            Preset::Fast.timing().gossip_interval
        );
        for (overrides, field) in [
            (
                "probe_period_ms: 0",
                "gossip.timing.probe_period_ms: must be above 0",
            ),
            (
                "probe_timeout_ms: 1500",
                "gossip.timing.probe_timeout_ms: 1500 ms must be below",
            ),
            (
                "suspicion_ms: 10",
                "gossip.timing.suspicion_ms: 10 ms must be at least",
            ),
            (
                "gossip_interval_ms: 5000",
                "gossip.timing.gossip_interval_ms",
            ),
            (
                "indirect_probes: 0",
                "gossip.timing.indirect_probes: 0 is outside",
            ),
            ("probe_period_ms: 9999999", "beyond the 600000 ms limit"),
        ] {
            let text = FULL.replace(
                "  preset: memberlist\n",
                &format!("  preset: memberlist\n  timing:\n    {overrides}\n"),
            );
            let error = error_text(&text);
            assert!(error.contains(field), "{overrides}: {error}");
            assert!(error.starts_with("speaker.yaml:9:"), "{overrides}: {error}");
        }
    }

    #[test]
    fn claim_rules_default_on_and_switch_off() {
        let config = parse(FULL).expect("valid");
        assert_eq!(config.claims, ClaimRules::default());
        let off = parse(&format!(
            "{FULL}claims:\n  fencing: false\n  flap_max_returns: 0\n"
        ))
        .expect("valid");
        assert_eq!(off.claims.fencing, None);
        assert_eq!(off.claims.flap, None);
        let tuned = parse(&format!(
            "{FULL}claims:\n  flap_max_returns: 5\n  flap_window_ms: 120000\n  flap_hold_down_ms: 10000\n"
        ))
        .expect("valid");
        assert_eq!(
            tuned.claims.flap,
            Some(FlapPolicy {
                max_returns: 5,
                window: Duration::from_secs(120),
                hold_down: Duration::from_secs(10),
            })
        );
        let error =
            parse(&format!("{FULL}claims:\n  flap_hold_down_ms: 0\n")).expect_err("zero hold-down");
        assert!(
            error.to_string().contains("claims.flap_hold_down_ms"),
            "{error}"
        );
        assert_eq!(
            parse(FULL).expect("valid").restart_only_changes(&tuned),
            vec!["claims"]
        );
    }

    #[test]
    fn restart_only_changes_are_listed() {
        let old = parse(FULL).expect("valid");
        let vips_only = parse(&FULL.replace("192.0.2.200", "192.0.2.201")).expect("valid");
        assert!(old.restart_only_changes(&vips_only).is_empty());
        let moved =
            parse(&FULL.replace("bind: 192.0.2.1:7946", "bind: 192.0.2.1:7947")).expect("valid");
        assert_eq!(old.restart_only_changes(&moved), vec!["gossip"]);
    }
}
