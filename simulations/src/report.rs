//! The table on stdout and the JSON file.

use std::fmt::Write as _;
use std::path::Path;

use crate::SimError;
use crate::metrics::Summary;
use crate::scenario::{Columns, ConfigReport, Report};

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
    let (first, second, agreement_first) = match p.scenario.spec().columns {
        Columns::Timing {
            first,
            second,
            agreement_first,
        } => (first, second, agreement_first),
        Columns::Fault { heal } => {
            fault_table(&mut out, report, heal);
            return out;
        }
        Columns::Replay => {
            replay_table(&mut out, report);
            return out;
        }
        Columns::JoinStorm => {
            join_table(&mut out, report);
            return out;
        }
        Columns::Claims { heal } => {
            claims_table(&mut out, report, heal);
            return out;
        }
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
        let _ = writeln!(out, "{}", row(c, agreement_first));
    }
    if report.configs.iter().any(|c| c.claims.is_some()) {
        claims_table(
            &mut out,
            report,
            if agreement_first { first } else { second },
        );
    }
    out
}

/// What the claims cost the client: claim time, moves, wrong-MAC time and the scenario's own
/// figure (fence delay, hold-down, every VIP owned again), worst trial.
fn claims_table(out: &mut String, report: &Report, heal: &str) {
    let _ = writeln!(
        out,
        "{:<14} | {:>9} {:>9} | {:>8} {:>8} | {:>9} {:>9} {:>9} {:>9} | {:>8} {:>9} {:>8} {:>8} {:>8} | {:>8} {:>8} | {:^31} | {:>4}",
        "config",
        "≥2 own/tr",
        "0 own/tr",
        "moves/m",
        "held m/m",
        "wrongMAC",
        "after",
        "longest",
        "longAfter",
        "fence",
        "dual→heal",
        "unfenced",
        "merged",
        "mrgLong",
        "holdDown",
        "allOwned",
        format!("{heal} p50 p90 p99 max"),
        "t/o"
    );
    for c in &report.configs {
        let s = c.claims.clone().unwrap_or_default();
        let a = quartet(&c.agreement);
        let time = |v: Option<f64>| v.map_or("-".into(), ms);
        let _ = writeln!(
            out,
            "{:<14} | {:>9} {:>9} | {:>8.2} {:>8} | {:>9} {:>9} {:>9} {:>9} | {:>8} {:>9} {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>7} {:>7} {:>7} {:>7} | {:>4}",
            c.name,
            ms(c.multi_claim_per_trial.max),
            ms(c.no_owner_per_trial.max),
            s.moves_per_min_max,
            opt(s.moves_per_min_held, 2),
            ms(s.wrong_mac),
            ms(s.wrong_mac_after),
            ms(s.wrong_mac_longest),
            ms(s.wrong_mac_longest_after),
            time(s.fence_delay),
            time(s.dual_after_fence),
            s.unfenced,
            time(s.merged),
            time(s.wrong_mac_longest_after_merge),
            time(s.hold_down_engaged),
            time(s.all_owned),
            a[0],
            a[1],
            a[2],
            a[3],
            c.timeouts
        );
    }
}

/// Healthy members' Down and Renewed events, spurious takeovers, claim time, heal time.
fn fault_table(out: &mut String, report: &Report, heal: &str) {
    let _ = writeln!(
        out,
        "{:<14} {:>5} | {:>7} {:>7} {:>7} {:>8} {:>9} {:>7} | {:>9} {:>9} | {:^31} | {:>4}",
        "config",
        "loss",
        "downs",
        "renewed",
        "takeovr",
        "sickDown",
        "sickRenew",
        "suspect",
        "≥2 own/tr",
        "0 own/tr",
        format!("{heal} p50 p90 p99 max"),
        "t/o"
    );
    for c in &report.configs {
        let f = c.faults.clone().unwrap_or_default();
        let a = quartet(&c.agreement);
        let _ = writeln!(
            out,
            "{:<14} {:>4}% | {:>7} {:>7} {:>7} {:>8} {:>9} {:>7} | {:>9} {:>9} | {:>7} {:>7} {:>7} {:>7} | {:>4}",
            c.name,
            format!("{:.0}", c.loss * 100.0),
            f.healthy_downs,
            f.healthy_renewed,
            f.spurious_takeovers,
            f.downs_by_faulty,
            f.faulty_renewed,
            f.suspicions_of_healthy,
            ms(c.multi_claim_per_trial.mean),
            ms(c.no_owner_per_trial.mean),
            a[0],
            a[1],
            a[2],
            a[3],
            c.timeouts
        );
    }
    let _ = writeln!(
        out,
        "downs/renewed: healthy members declared down in healthy views / forced to renew; \
         takeovr: VIPs announced by a non-owner while their healthy owner held them; \
         sickDown: healthy members down in the faulty node's view; sickRenew: renewals of the \
         faulty node (all totals over trials)"
    );
}

/// Per replay round: dead members back, crashes missed, healthy downs.
fn replay_table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "{:<14} {:>5} | {:<16} | {:>6} {:>10} | {:>7} {:>7} {:>7} | {:>9}",
        "config", "loss", "replay", "dead↑", "undetected", "downs", "renewed", "takeovr", "detect"
    );
    for c in &report.configs {
        let mut rounds: Vec<String> = Vec::new();
        for label in c
            .trials
            .iter()
            .filter_map(|t| t.faults.as_ref()?.label.clone())
        {
            if !rounds.contains(&label) {
                rounds.push(label);
            }
        }
        for label in rounds {
            let trials: Vec<_> = c
                .trials
                .iter()
                .filter(|t| t.faults.as_ref().and_then(|f| f.label.as_ref()) == Some(&label))
                .collect();
            let faults: Vec<_> = trials.iter().filter_map(|t| t.faults.as_ref()).collect();
            let sum = |f: &dyn Fn(&crate::faults::FaultTrial) -> usize| {
                faults.iter().map(|t| f(t)).sum::<usize>()
            };
            let detect = Summary::of(
                &trials
                    .iter()
                    .filter_map(|t| t.detection)
                    .collect::<Vec<_>>(),
            );
            let _ = writeln!(
                out,
                "{:<14} {:>4}% | {:<16} | {:>6} {:>10} | {:>7} {:>7} {:>7} | {:>9}",
                c.name,
                format!("{:.0}", c.loss * 100.0),
                label,
                sum(&|t| t.dead_revived),
                format!(
                    "{}/{}",
                    sum(&|t| t.crashes_undetected.unwrap_or(0)),
                    faults.len()
                ),
                sum(&|t| t.healthy_downs),
                sum(&|t| t.healthy_renewed),
                sum(&|t| t.spurious_takeovers),
                if detect.count == 0 {
                    "-".into()
                } else {
                    ms(detect.max)
                }
            );
        }
    }
    let _ = writeln!(
        out,
        "dead↑: members whose process is gone seen live again; undetected: crashes still live \
         in some view at the end of the window; detect: worst crash → first down"
    );
}

/// The joiner: time to know everyone, member-list bytes and drops at its receive queue.
fn join_table(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "{:<14} {:>5} | {:>9} {:>9} | {:>10} {:>7} {:>7} | {:>8} {:>9} | {:>7} {:>7} | {:>4}",
        "config",
        "loss",
        "knows p50",
        "knows max",
        "list bytes",
        "lists",
        "senders",
        "qDrops",
        "clusterQD",
        "downs",
        "renewed",
        "t/o"
    );
    for c in &report.configs {
        let joins: Vec<_> = c
            .trials
            .iter()
            .filter_map(|t| t.faults.as_ref()?.join.as_ref())
            .collect();
        let f = c.faults.clone().unwrap_or_default();
        let k = &f.knows_all;
        // Joins take about a round trip: show tenths of a millisecond.
        let fine = |seconds: f64| {
            if seconds < 1.0 {
                format!("{:.1}ms", seconds * 1000.0)
            } else {
                ms(seconds)
            }
        };
        let (p50, max) = if k.count == 0 {
            ("-".into(), "-".into())
        } else {
            (fine(k.p50), fine(k.max))
        };
        let _ = writeln!(
            out,
            "{:<14} {:>4}% | {:>9} {:>9} | {:>10} {:>7.1} {:>7} | {:>8} {:>9} | {:>7} {:>7} | {:>4}",
            c.name,
            format!("{:.0}", c.loss * 100.0),
            p50,
            max,
            f.member_list_bytes,
            f.member_lists,
            joins.iter().map(|j| j.senders).max().unwrap_or(0),
            f.queue_drops,
            joins.iter().map(|j| j.cluster_queue_drops).sum::<u64>(),
            f.healthy_downs,
            f.healthy_renewed,
            c.timeouts
        );
    }
    let _ = writeln!(
        out,
        "knows: join → the joiner sees every member live; list bytes / lists: member lists that \
         reached its socket (worst trial; one list = the median sender's bytes); qDrops: \
         datagrams its full receive queue dropped"
    );
}

fn row(c: &ConfigReport, agreement_first: bool) -> String {
    let (a, b) = if agreement_first {
        (&c.agreement, &c.detection)
    } else {
        (&c.failover, &c.agreement)
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
