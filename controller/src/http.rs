//! `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    pub registry: Arc<Registry>,
    /// Set once this replica is a synced leader or a standing-by follower.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: HttpState) -> Router {
    swimlb_telemetry::metrics_router(state.registry)
        .merge(swimlb_telemetry::health_router(state.ready))
}

/// Binds `address` and returns the bound address and the serving future.
pub async fn bind(
    address: SocketAddr,
    state: HttpState,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    Ok((
        local,
        async move { axum::serve(listener, router(state)).await },
    ))
}
