//! `/metrics`, `/healthz`, `/readyz` and `/vips` over HTTP.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
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
    pub ready: AtomicBool,
    pub owned: Mutex<BTreeMap<IpAddr, Holding>>,
}

impl Status {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn update(&self, f: impl FnOnce(&mut BTreeMap<IpAddr, Holding>)) {
        f(&mut self.owned.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    status: Arc<Status>,
}

/// Serves until the listener fails.
pub async fn serve(listener: TcpListener, registry: Registry, status: Arc<Status>) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/vips", get(vips))
        .with_state(AppState {
            registry: Arc::new(registry),
            status,
        });
    if let Err(error) = axum::serve(listener, app).await {
        warn!(%error, "the HTTP server stopped");
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            "cannot encode metrics\n".to_owned(),
        ),
    }
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.status.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// One line per announced VIP: address, seconds since this node took it, and why.
async fn vips(State(state): State<AppState>) -> String {
    let now = SystemTime::now();
    let owned = state
        .status
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
