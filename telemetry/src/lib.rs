//! The telemetry both swimlb binaries serve the same way:
//!
//! - [`exposition`]: the `/metrics` handler, with content negotiation between the Prometheus
//!   text format 0.0.4 and OpenMetrics 1.0.0;
//! - [`health`]: `/healthz` and `/readyz`;
//! - [`build_info`]: the `<prefix>_build_info` gauge (version, commit, compiler);
//! - [`process`]: the `process_*` metrics, read from `/proc/self` on every scrape.
//!
//! [`register`] adds the build-info gauge and the process metrics to a binary's registry.

pub mod build_info;
pub mod exposition;
pub mod health;
pub mod process;

pub use build_info::BuildInfo;
pub use exposition::{Format, metrics_router, render};
pub use health::health_router;

use prometheus_client::registry::Registry;

/// Registers `<prefix>_build_info` and the unprefixed `process_*` metrics in `registry`, which
/// must be the top registry (no prefix of its own), so the process metrics keep their
/// conventional names.
pub fn register(registry: &mut Registry, prefix: &str, build: &BuildInfo) {
    build.register(registry.sub_registry_with_prefix(prefix));
    registry.register_collector(Box::new(process::ProcessCollector));
}
