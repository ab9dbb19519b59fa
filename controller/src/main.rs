//! swimlb-controller: allocates addresses to LoadBalancer Services.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{ArgAction, Parser, ValueEnum};
use kube::Client;
use prometheus_client::registry::Registry;
use swimlb_controller::AGENT;
use swimlb_controller::http::{self, HttpState};
use swimlb_controller::kubernetes::leader::{LeaderElector, LeaseTimings};
use swimlb_controller::kubernetes::{Reconciler, Settings};
use swimlb_controller::metrics::Metrics;
use swimlb_controller::state::ClassFilter;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Allocates addresses from IPAddressPools and the legacy ConfigMap to LoadBalancer Services.
/// The API server is found through KUBECONFIG or the in-cluster service account.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Namespace holding the ConfigMap, the IPAddressPools and the leader Lease.
    #[arg(long, env = "SWIMLB_NAMESPACE", default_value = "swimlb-system")]
    namespace: String,
    /// Name of the legacy ConfigMap (key `config`, `address-pools:` list).
    #[arg(long, env = "SWIMLB_CONFIGMAP", default_value = "config")]
    config_map: String,
    /// spec.loadBalancerClass that swimlb answers to.
    #[arg(long, env = "SWIMLB_LOAD_BALANCER_CLASS", default_value = swimlb_api::annotations::DEFAULT_LOAD_BALANCER_CLASS)]
    load_balancer_class: String,
    /// Also serve Services without a loadBalancerClass.
    #[arg(long, env = "SWIMLB_SERVE_UNSET_CLASS", default_value_t = true, action = ArgAction::Set)]
    serve_unset_class: bool,
    /// Elect a leader through a Lease so only one replica allocates.
    #[arg(long, env = "SWIMLB_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "SWIMLB_LEASE_NAME", default_value = "swimlb-controller")]
    lease_name: String,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "SWIMLB_LEASE_DURATION_S", default_value_t = 15)]
    lease_duration_s: u64,
    /// Seconds between renewals by the leader.
    #[arg(long, env = "SWIMLB_RENEW_INTERVAL_S", default_value_t = 5)]
    renew_interval_s: u64,
    /// Seconds between acquisition attempts by a standby.
    #[arg(long, env = "SWIMLB_RETRY_INTERVAL_S", default_value_t = 2)]
    retry_interval_s: u64,
    /// This replica's identity on the Lease and Events (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "SWIMLB_METRICS_ADDRESS", default_value = "0.0.0.0:7472")]
    metrics_address: SocketAddr,
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "SWIMLB_LOG", default_value = "info")]
    log: String,
    #[arg(long, env = "SWIMLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn init_tracing(log: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(log).context("invalid --log filter")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(&args.log, args.log_format)?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "swimlb-controller".to_owned());
        format!("{host}-{}", std::process::id())
    });

    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let (bound, server) = http::bind(
        args.metrics_address,
        HttpState {
            registry: Arc::new(registry),
            ready: ready.clone(),
        },
    )
    .await
    .with_context(|| format!("binding {}", args.metrics_address))?;
    info!(address = %bound, "serving /metrics, /healthz and /readyz");
    tokio::spawn(
        async move {
            if let Err(e) = server.await {
                error!(error = %e, "metrics server stopped");
            }
        }
        .instrument(info_span!("http")),
    );

    let kube_config = kube::Config::infer()
        .await
        .context("connecting to the API server")?;
    let client = AGENT
        .client(kube_config)
        .context("connecting to the API server")?;
    let settings = Settings {
        config_namespace: args.namespace.clone(),
        config_map: args.config_map.clone(),
        class_filter: ClassFilter {
            class: args.load_balancer_class.clone(),
            include_unset: args.serve_unset_class,
        },
        controller_name: AGENT.name().to_owned(),
        identity: identity.clone(),
    };
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(
            async move {
                shutdown_signal().await;
                info!("shutting down");
                shutdown.cancel();
            }
            .instrument(info_span!("signals")),
        );
    }

    if !args.leader_elect {
        ready.store(false, Ordering::Relaxed);
        let reconciler = Reconciler::new(client, settings, metrics.clone());
        metrics.is_leader.set(1);
        reconciler.run(shutdown, ready).await?;
        return Ok(());
    }

    let mut elector = LeaderElector::new(
        client.clone(),
        &args.namespace,
        &args.lease_name,
        &identity,
        LeaseTimings {
            lease_duration: Duration::from_secs(args.lease_duration_s),
            renew_interval: Duration::from_secs(args.renew_interval_s),
            retry_interval: Duration::from_secs(args.retry_interval_s),
        },
    );
    let result = lead_while_elected(&mut elector, client, settings, metrics, ready, &shutdown)
        .instrument(info_span!("leader_election", identity = %identity))
        .await;
    if let Err(e) = elector.release().await {
        warn!(error = %e, "releasing the Lease failed; a standby takes over when it expires");
    }
    result
}

/// Campaigns for the Lease; while held, runs the reconcile loop. Returns on shutdown.
async fn lead_while_elected(
    elector: &mut LeaderElector,
    client: Client,
    settings: Settings,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let timings = elector.timings();
    // A leader that could not renew for this long steps down before its Lease can expire.
    let renew_deadline = timings
        .lease_duration
        .saturating_sub(timings.renew_interval);
    loop {
        // Standby: a follower is ready (it serves nothing but is healthy).
        ready.store(true, Ordering::Relaxed);
        loop {
            match elector.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "campaigning for the Lease failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = sleep(timings.retry_interval) => {}
            }
        }
        info!("became leader");
        metrics.is_leader.set(1);
        ready.store(false, Ordering::Relaxed);
        let term = CancellationToken::new();
        let reconciler = Reconciler::new(client.clone(), settings.clone(), metrics.clone());
        let mut worker = tokio::spawn(reconciler.run(term.clone(), ready.clone()));
        let mut last_renewal = Instant::now();
        let outcome = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(true),
                joined = &mut worker => {
                    break match joined {
                        Ok(Ok(())) => Ok(true),
                        Ok(Err(e)) => Err(anyhow::Error::new(e).context("the reconcile loop failed")),
                        Err(e) => Err(anyhow::Error::new(e).context("the reconcile loop panicked")),
                    };
                }
                () = sleep(timings.renew_interval) => {
                    match elector.try_acquire_or_renew().await {
                        Ok(true) => last_renewal = Instant::now(),
                        Ok(false) => {
                            warn!("lost the Lease to another replica");
                            break Ok(false);
                        }
                        Err(e) => {
                            warn!(error = %e, "renewing the Lease failed");
                            if last_renewal.elapsed() >= renew_deadline {
                                warn!("could not renew the Lease in time; stepping down");
                                break Ok(false);
                            }
                        }
                    }
                }
            }
        };
        term.cancel();
        if !worker.is_finished() {
            let _ = (&mut worker).await;
        }
        metrics.is_leader.set(0);
        match outcome {
            Ok(true) => return Ok(()),
            Ok(false) => info!("standing by"),
            Err(e) => return Err(e),
        }
    }
}
