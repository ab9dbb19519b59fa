//! The table on stdout and the JSON file.

use std::fmt::Write as _;
use std::path::Path;

use crate::SimError;
use crate::metrics::Summary;
use crate::scenario::{ConfigReport, Report, ScenarioKind};

/// The JSON report: the same seed and parameters give the same bytes.
pub fn to_json(report: &Report) -> Result<String, SimError> {
    let mut json = serde_json::to_string_pretty(report)?;
    json.push('\n');
    Ok(json)
}

pub fn write_json(report: &Report, path: &Path) -> Result<(), SimError> {
    let json = to_json(report)?;
    std::fs::write(path, json).map_err(|source| SimError::Write {
        path: path.display().to_string(),
        source,
    })
}

fn ms(seconds: f64) -> String {
    if seconds >= 10.0 {
        format!("{seconds:.1}s")
    } else if seconds >= 1.0 {
        format!("{seconds:.2}s")
    } else {
        format!("{:.0}ms", seconds * 1000.0)
    }
}

fn quartet(s: &Summary) -> [String; 4] {
    if s.count == 0 {
        return ["-".into(), "-".into(), "-".into(), "-".into()];
    }
    [ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max)]
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// A plain-text table, one row per configuration.
pub fn table(report: &Report) -> String {
    let p = &report.params;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {}  nodes {}  vips {}  trials {}  loss {}%  seed {}",
        p.scenario.name(),
        p.nodes,
        p.vips,
        p.trials,
        p.loss * 100.0,
        p.seed
    );
    let (first, second) = match p.scenario {
        ScenarioKind::Partition => ("heal→single owner", "detection"),
        ScenarioKind::RollingRestart => ("leave→new owner", "restart→agreement"),
        ScenarioKind::Drain => ("leave→new owner", "agreement"),
        _ => ("failover", "agreement"),
    };
    let _ = writeln!(
        out,
        "{:<14} {:>5} | {:^31} | {:^31} | {:>9} | {:>9} {:>9} | {:>10} | {:>8} {:>7} | {:>4}",
        "config",
        "loss",
        format!("{first} p50 p90 p99 max"),
        format!("{second} p50 p90 p99 max"),
        "detect99",
        "≥2 own/tr",
        "0 own/tr",
        "falseDn/kh",
        "B/s/node",
        "msg/s",
        "t/o"
    );
    for c in &report.configs {
        let _ = writeln!(out, "{}", row(c, p.scenario));
    }
    out
}

fn row(c: &ConfigReport, scenario: ScenarioKind) -> String {
    let (a, b) = match scenario {
        ScenarioKind::Partition => (&c.agreement, &c.detection),
        ScenarioKind::RollingRestart => (&c.failover, &c.agreement),
        _ => (&c.failover, &c.agreement),
    };
    let a = quartet(a);
    let b = quartet(b);
    format!(
        "{:<14} {:>4}% | {:>7} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} {:>7} | {:>9} | {:>9} {:>9} | {:>10} | {:>8} {:>7} | {:>4}",
        c.name,
        format!("{:.0}", c.loss * 100.0),
        a[0],
        a[1],
        a[2],
        a[3],
        b[0],
        b[1],
        b[2],
        b[3],
        if c.detection.count == 0 {
            "-".into()
        } else {
            ms(c.detection.p99)
        },
        ms(c.multi_claim_per_trial.mean),
        ms(c.no_owner_per_trial.mean),
        if c.node_hours > 0.0 {
            format!("{:.2}", c.false_downs_per_1000_node_hours)
        } else {
            "-".into()
        },
        opt(c.bytes_per_node_per_s, 0),
        opt(c.messages_per_node_per_s, 1),
        c.timeouts
    )
}
