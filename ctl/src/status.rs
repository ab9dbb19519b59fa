//! `swimlbctl status`: every VIP with its Services, pool, owner node, interfaces, since when
//! and why it moved there last, and the pools' usage. In a cluster it reads Services, the
//! speakers' ServiceL2Status objects and the IPAddressPools; in static mode it asks each
//! speaker's `/vips`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use serde::Serialize;
use swimlb_api::annotations::IP_ALLOCATED_FROM_POOL;
use swimlb_api::{IPAddressPool, ServiceL2Status};

/// What `status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    pub vips: Vec<VipRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolRow>,
}

/// One VIP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VipRow {
    pub ip: String,
    /// `namespace/name` of every Service with this IP.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The announcing node (or, in static mode, the speaker asked); `None`: nobody.
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// RFC 3339 time, or in static mode how long ago (`12.5s ago`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One pool's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PoolRow {
    pub name: String,
    pub valid: Option<String>,
    pub ipv4_total: u64,
    pub ipv4_in_use: u64,
    pub ipv6_total: u64,
    pub ipv6_in_use: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("speaker {speaker}: {reason}")]
    Speaker { speaker: String, reason: String },
}

/// The report for a cluster's objects. A Service counts when the controller allocated it an
/// address (the pool annotation) or a speaker announces one of its IPs.
pub fn from_cluster(
    services: &[Service],
    statuses: &[ServiceL2Status],
    pools: &[IPAddressPool],
) -> StatusReport {
    let mut by_key: BTreeMap<(String, String), &ServiceL2Status> = BTreeMap::new();
    for status in statuses {
        let namespace = status.metadata.namespace.clone().unwrap_or_default();
        by_key.insert((namespace, status.spec.ip.clone()), status);
    }
    let mut rows: BTreeMap<IpAddr, VipRow> = BTreeMap::new();
    for service in services {
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        let pool = service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IP_ALLOCATED_FROM_POOL))
            .cloned();
        for ip in ingress_ips(service) {
            let status = by_key.get(&(namespace.clone(), ip.to_string())).copied();
            let status = status.filter(|s| s.spec.service == name);
            if pool.is_none() && status.is_none() {
                continue;
            }
            let row = rows.entry(ip).or_insert_with(|| VipRow {
                ip: ip.to_string(),
                ..VipRow::default()
            });
            row.services.push(format!("{namespace}/{name}"));
            if row.pool.is_none() {
                row.pool.clone_from(&pool);
            }
            if let (None, Some(status)) = (&row.node, status) {
                row.node = Some(status.spec.node.clone());
                row.interfaces.clone_from(&status.spec.interfaces);
                row.since = Some(status.spec.since.clone());
                row.reason = Some(status.spec.reason.clone());
            }
        }
    }
    StatusReport {
        vips: rows.into_values().collect(),
        pools: pools.iter().map(pool_row).collect(),
    }
}

fn ingress_ips(service: &Service) -> Vec<IpAddr> {
    if service.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
        return Vec::new();
    }
    service
        .status
        .iter()
        .filter_map(|s| s.load_balancer.as_ref())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|ingress| ingress.ip.as_deref()?.trim().parse().ok())
        .collect()
}

fn pool_row(pool: &IPAddressPool) -> PoolRow {
    let status = pool.status.clone().unwrap_or_default();
    PoolRow {
        name: pool.metadata.name.clone().unwrap_or_default(),
        valid: status
            .conditions
            .iter()
            .find(|c| c.type_ == swimlb_api::POOL_CONDITION_VALID)
            .map(|c| c.status.clone()),
        ipv4_total: status.total_ipv4,
        ipv4_in_use: status.assigned_ipv4,
        ipv6_total: status.total_ipv6,
        ipv6_in_use: status.assigned_ipv6,
    }
}

/// Reads the cluster's Services (all namespaces), ServiceL2Status objects (all namespaces)
/// and the IPAddressPools of `namespace`; a kind the API server does not serve (CRDs not
/// installed) reads as none.
pub async fn read_cluster(
    client: &kube::Client,
    namespace: &str,
) -> Result<StatusReport, kube::Error> {
    use kube::Api;
    use kube::api::ListParams;
    async fn list<K>(api: Api<K>) -> Result<Vec<K>, kube::Error>
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    {
        match api.list(&ListParams::default()).await {
            Ok(list) => Ok(list.items),
            Err(error) if swimlb_api::discovery::is_not_found(&error) => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }
    let services = list(Api::<Service>::all(client.clone())).await?;
    let statuses = list(Api::<ServiceL2Status>::all(client.clone())).await?;
    let pools = list(Api::<IPAddressPool>::namespaced(client.clone(), namespace)).await?;
    Ok(from_cluster(&services, &statuses, &pools))
}

/// The rows of one static-mode speaker's `/vips` body (`<ip> <seconds held> <reason>` a line).
pub fn parse_vips(speaker: &str, body: &str) -> Result<Vec<VipRow>, StatusError> {
    let bad = |line: &str| StatusError::Speaker {
        speaker: speaker.to_owned(),
        reason: format!("unexpected /vips line {line:?}"),
    };
    body.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.splitn(3, ' ');
            let ip: IpAddr = fields
                .next()
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| bad(line))?;
            let held: f64 = fields
                .next()
                .and_then(|f| f.parse().ok())
                .filter(|s: &f64| s.is_finite())
                .ok_or_else(|| bad(line))?;
            Ok(VipRow {
                ip: ip.to_string(),
                node: Some(speaker.to_owned()),
                since: Some(format!("{held:.1}s ago")),
                reason: fields.next().map(str::to_owned),
                ..VipRow::default()
            })
        })
        .collect()
}

/// Merges the speakers' rows: a VIP two speakers both hold is shown once per holder.
pub fn from_speakers(answers: Vec<Vec<VipRow>>) -> StatusReport {
    let mut vips: Vec<VipRow> = answers.into_iter().flatten().collect();
    vips.sort_by(|a, b| {
        let key = |r: &VipRow| (r.ip.parse::<IpAddr>().ok(), r.node.clone());
        key(a).cmp(&key(b))
    });
    StatusReport {
        vips,
        pools: Vec::new(),
    }
}

/// Longest a speaker may take to answer.
const SPEAKER_TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `/vips` from a speaker's metrics address (`host:port`).
pub fn ask_speaker(address: &str) -> Result<String, StatusError> {
    let fail = |reason: String| StatusError::Speaker {
        speaker: address.to_owned(),
        reason,
    };
    let socket = address
        .parse()
        .map_err(|_| fail("not a host:port address".into()))?;
    let mut stream = TcpStream::connect_timeout(&socket, SPEAKER_TIMEOUT)
        .map_err(|e| fail(format!("cannot connect: {e}")))?;
    stream
        .set_read_timeout(Some(SPEAKER_TIMEOUT))
        .map_err(|e| fail(e.to_string()))?;
    write!(stream, "GET /vips HTTP/1.0\r\nHost: {address}\r\n\r\n")
        .map_err(|e| fail(format!("cannot send: {e}")))?;
    let mut response = String::new();
    stream
        .take(16 << 20)
        .read_to_string(&mut response)
        .map_err(|e| fail(format!("cannot read the answer: {e}")))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("not an HTTP answer".into()))?;
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(fail(format!("answered {status_line:?}")));
    }
    Ok(body.to_owned())
}

/// The report as the table `status` prints.
pub fn render_table(report: &StatusReport) -> String {
    let dash = |v: Option<&String>| v.cloned().unwrap_or_else(|| "-".to_owned());
    let mut rows = vec![[
        "VIP".to_owned(),
        "SERVICES".to_owned(),
        "POOL".to_owned(),
        "NODE".to_owned(),
        "INTERFACES".to_owned(),
        "SINCE".to_owned(),
        "REASON".to_owned(),
    ]];
    for vip in &report.vips {
        let list = |items: &[String]| {
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.join(",")
            }
        };
        rows.push([
            vip.ip.clone(),
            list(&vip.services),
            dash(vip.pool.as_ref()),
            vip.node.clone().unwrap_or_else(|| "<none>".to_owned()),
            list(&vip.interfaces),
            dash(vip.since.as_ref()),
            dash(vip.reason.as_ref()),
        ]);
    }
    let mut out = columns(&rows);
    if !report.pools.is_empty() {
        let mut pools = vec![[
            "POOL".to_owned(),
            "VALID".to_owned(),
            "IPV4 IN USE".to_owned(),
            "IPV6 IN USE".to_owned(),
        ]];
        for pool in &report.pools {
            pools.push([
                pool.name.clone(),
                dash(pool.valid.as_ref()),
                format!("{}/{}", pool.ipv4_in_use, pool.ipv4_total),
                format!("{}/{}", pool.ipv6_in_use, pool.ipv6_total),
            ]);
        }
        out.push('\n');
        out.push_str(&columns(&pools));
    }
    out
}

/// Left-aligned columns two spaces apart, as kubectl prints them.
fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(namespace: &str, name: &str, pool: Option<&str>, ips: &[&str]) -> Service {
        let ingress: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
        let annotations = pool
            .map(|p| json!({IP_ALLOCATED_FROM_POOL: p}))
            .unwrap_or(json!({}));
        serde_json::from_value(json!({
            "metadata": {"namespace": namespace, "name": name, "annotations": annotations},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": ingress}},
        }))
        .expect("service fixture")
    }

    fn l2_status(namespace: &str, service: &str, ip: &str, node: &str) -> ServiceL2Status {
        serde_json::from_value(json!({
            "apiVersion": "swimlb.io/v1beta1",
            "kind": "ServiceL2Status",
            "metadata": {"namespace": namespace, "name": format!("{service}-x")},
            "spec": {"service": service, "ip": ip, "node": node, "interfaces": ["eth1"],
                     "since": "2026-12-02T18:00:00Z", "reason": "owner (previous owner b)"},
        }))
        .expect("status fixture")
    }

    #[test]
    fn rows_join_services_statuses_and_pools() {
        let services = [
            service(
                "shop",
                "web",
                Some("front"),
                &["192.0.2.30", "2001:db8::30"],
            ),
            service("shop", "web-udp", Some("front"), &["192.0.2.30"]),
            service("other", "theirs", None, &["198.51.100.1"]),
        ];
        let statuses = [l2_status("shop", "web", "192.0.2.30", "node-a")];
        let pool: IPAddressPool = serde_json::from_value(json!({
            "apiVersion": "swimlb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "front"},
            "spec": {"addresses": ["192.0.2.30-192.0.2.49"]},
            "status": {"totalIPv4": 20, "assignedIPv4": 1,
                       "conditions": [{"type": "Valid", "status": "True", "reason": "Valid",
                                       "message": "", "lastTransitionTime": "2026-12-02T18:00:00Z"}]},
        }))
        .expect("pool fixture");
        let report = from_cluster(&services, &statuses, &[pool]);
        let ips: Vec<&str> = report.vips.iter().map(|v| v.ip.as_str()).collect();
        assert_eq!(ips, ["192.0.2.30", "2001:db8::30"]);
        let shared = &report.vips[0];
        assert_eq!(shared.services, ["shop/web", "shop/web-udp"]);
        assert_eq!(shared.node.as_deref(), Some("node-a"));
        assert_eq!(shared.interfaces, ["eth1"]);
        assert_eq!(
            report.vips[1].node, None,
            "nobody announces the IPv6 address"
        );
        assert_eq!(report.pools[0].ipv4_in_use, 1);
        assert_eq!(report.pools[0].valid.as_deref(), Some("True"));
        let table = render_table(&report);
        assert!(table.starts_with("VIP "), "{table}");
        assert!(table.contains("<none>"), "{table}");
        assert!(table.contains("1/20"), "{table}");
    }

    #[test]
    fn static_speakers_answers_are_parsed_and_bad_lines_named() {
        let rows = parse_vips(
            "192.0.2.1:7472",
            "192.0.2.30 12.345 owner\n2001:db8::1 0.5 fenced, nobody else holds it\n",
        )
        .expect("valid body");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].since.as_deref(), Some("12.3s ago"));
        assert_eq!(
            rows[1].reason.as_deref(),
            Some("fenced, nobody else holds it")
        );
        let error = parse_vips("s", "192.0.2.30 NaN owner\n").expect_err("not a duration");
        assert!(
            error.to_string().contains("unexpected /vips line"),
            "{error}"
        );
        assert!(parse_vips("s", "not-an-ip 1 owner\n").is_err());
        let report = from_speakers(vec![
            rows,
            parse_vips("b", "192.0.2.30 1 owner\n").expect("valid"),
        ]);
        assert_eq!(
            report.vips.len(),
            3,
            "a VIP held by two speakers shows twice"
        );
        assert_eq!(report.vips[0].ip, "192.0.2.30");
    }
}
