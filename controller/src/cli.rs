//! The controller's command line: every flag also reads an environment variable.

use std::net::SocketAddr;

use clap::{ArgAction, Parser, ValueEnum};

/// How log lines are written.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Allocates addresses from IPAddressPools and the legacy ConfigMap to LoadBalancer Services.
/// The API server is found through KUBECONFIG or the in-cluster service account.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Namespace holding the ConfigMap, the IPAddressPools and the leader Lease.
    #[arg(long, env = "SWIMLB_NAMESPACE", default_value = "swimlb-system")]
    pub namespace: String,
    /// Name of the legacy ConfigMap (key `config`, `address-pools:` list).
    #[arg(long, env = "SWIMLB_CONFIGMAP", default_value = "config")]
    pub config_map: String,
    /// spec.loadBalancerClass that swimlb answers to.
    #[arg(long, env = "SWIMLB_LOAD_BALANCER_CLASS", default_value = swimlb_api::annotations::DEFAULT_LOAD_BALANCER_CLASS)]
    pub load_balancer_class: String,
    /// Also serve Services without a loadBalancerClass.
    #[arg(long, env = "SWIMLB_SERVE_UNSET_CLASS", default_value_t = true, action = ArgAction::Set)]
    pub serve_unset_class: bool,
    /// Elect a leader through a Lease so only one replica allocates.
    #[arg(long, env = "SWIMLB_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "SWIMLB_LEASE_NAME", default_value = "swimlb-controller")]
    pub lease_name: String,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "SWIMLB_LEASE_DURATION_S", default_value_t = 15)]
    pub lease_duration_s: u64,
    /// Seconds between renewals by the leader.
    #[arg(long, env = "SWIMLB_RENEW_INTERVAL_S", default_value_t = 5)]
    pub renew_interval_s: u64,
    /// Seconds between acquisition attempts by a standby.
    #[arg(long, env = "SWIMLB_RETRY_INTERVAL_S", default_value_t = 2)]
    pub retry_interval_s: u64,
    /// The Secret holding the speakers' gossip key file (key `key`), created in `--namespace`
    /// with a new random key when absent and never overwritten; empty: never created.
    #[arg(
        long,
        env = "SWIMLB_GOSSIP_KEY_SECRET",
        default_value = "swimlb-gossip-key"
    )]
    pub gossip_key_secret: String,
    /// This replica's identity on the Lease and Events (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "SWIMLB_METRICS_ADDRESS", default_value = "0.0.0.0:7472")]
    pub metrics_address: SocketAddr,
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "SWIMLB_LOG", default_value = "info")]
    pub log: String,
    #[arg(long, env = "SWIMLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Args {
    /// `--identity`, else the host name and process id.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "swimlb-controller".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn an_explicit_identity_is_kept() {
        let args = Args::try_parse_from(["swimlb-controller", "--identity", "pod-0"])
            .expect("valid flags");
        assert_eq!(args.identity(), "pod-0");
    }
}
