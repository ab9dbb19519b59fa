//! The controller's process: metrics server, API client, signals, and the leader loop that
//! runs the reconcile loop while this replica holds the Lease.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::Client;
use prometheus_client::registry::Registry;
use swimlb_api::client::ClientError;
use tokio::task::JoinError;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::AGENT;
use crate::cli::Args;
use crate::http::{self, HttpState};
use crate::kubernetes::leader::{LeaderElector, LeaseTimings};
use crate::kubernetes::{self, Reconciler, Settings};
use crate::metrics::Metrics;
use crate::state::ClassFilter;

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to the API server")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("connecting to the API server")]
    Client(#[source] ClientError),
    #[error(transparent)]
    Reconcile(#[from] kubernetes::RunError),
    #[error("the reconcile loop failed")]
    LeaderReconcile(#[source] kubernetes::RunError),
    #[error("the reconcile loop panicked")]
    Panicked(#[source] JoinError),
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> Result<(), Error> {
    let identity = args.identity();

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
    .map_err(|source| Error::Bind {
        address: args.metrics_address,
        source,
    })?;
    info!(address = %bound, "serving /metrics, /healthz and /readyz");
    tokio::spawn(
        async move {
            if let Err(e) = server.await {
                error!(error = %e, "metrics server stopped");
            }
        }
        .instrument(info_span!("http")),
    );

    let kube_config = kube::Config::infer().await.map_err(Error::Infer)?;
    let client = AGENT.client(kube_config).map_err(Error::Client)?;
    if !args.gossip_key_secret.is_empty() {
        crate::gossip_key::ensure(client.clone(), &args.namespace, &args.gossip_key_secret)
            .instrument(info_span!("gossip_key"))
            .await;
    }
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

/// Campaigns for the Lease; while held, runs the reconcile loop. Returns on shutdown.
async fn lead_while_elected(
    elector: &mut LeaderElector,
    client: Client,
    settings: Settings,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
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
                        Ok(Err(e)) => Err(Error::LeaderReconcile(e)),
                        Err(e) => Err(Error::Panicked(e)),
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
