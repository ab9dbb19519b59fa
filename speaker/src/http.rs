//! `/metrics`, `/healthz`, `/readyz` and `/vips` over HTTP: `/metrics` and `/vips` on the
//! metrics address, the probes there too or on the health address when one is configured.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;
use tokio::net::TcpListener;
use tracing::warn;

/// Why and since when this node announces a VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub since: SystemTime,
    pub reason: String,
}

/// What the HTTP endpoints report besides metrics.
#[derive(Debug, Default)]
pub struct Status {
    /// Joined the cluster, holding the interfaces, and not draining.
    pub ready: Arc<AtomicBool>,
    pub owned: Mutex<BTreeMap<IpAddr, Holding>>,
}

impl Status {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn update(&self, f: impl FnOnce(&mut BTreeMap<IpAddr, Holding>)) {
        f(&mut self.owned.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The VIPs held now, with since when and why.
    pub fn holdings(&self) -> BTreeMap<IpAddr, Holding> {
        self.owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The metrics address's routes: `/metrics` and `/vips`, plus `/healthz` and `/readyz` when
/// `with_probes` (no `health_address` of their own).
pub fn metrics_router(registry: Registry, status: Arc<Status>, with_probes: bool) -> Router {
    let mut app = swimlb_telemetry::metrics_router(Arc::new(registry));
    if with_probes {
        app = app.merge(health_router(&status));
    }
    app.merge(Router::new().route("/vips", get(vips)).with_state(status))
}

/// `/healthz` and `/readyz`.
pub fn health_router(status: &Status) -> Router {
    swimlb_telemetry::health_router(Arc::clone(&status.ready))
}

/// Serves `app` until the listener fails.
pub async fn serve(listener: TcpListener, app: Router) {
    if let Err(error) = axum::serve(listener, app).await {
        warn!(%error, "the HTTP server stopped");
    }
}

/// One line per announced VIP: address, seconds since this node took it, and why.
async fn vips(State(status): State<Arc<Status>>) -> String {
    let now = SystemTime::now();
    let owned = status
        .owned
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut body = String::new();
    for (vip, holding) in owned {
        let age = now
            .duration_since(holding.since)
            .unwrap_or_default()
            .as_secs_f64();
        let _ = writeln!(body, "{vip} {age:.3} {}", holding.reason);
    }
    body
}
