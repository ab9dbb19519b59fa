//! Prometheus metrics of the controller.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use swimlb_telemetry::BuildInfo;

/// The prefix of every controller metric but the `process_*` ones.
pub const PREFIX: &str = "swimlb_controller";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    pub family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolNameLabels {
    pub pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub resource: String,
}

/// Every metric the controller exports; cheap to clone (shared handles).
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub pool_addresses: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    pub pool_addresses_in_use: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    pub pool_valid: Family<PoolNameLabels, Gauge>,
    pub services_assigned: Gauge,
    pub services_pending: Gauge,
    pub allocations: Counter,
    pub allocation_failures: Family<ReasonLabels, Counter>,
    pub watch_errors: Family<ResourceLabels, Counter>,
    pub api_errors: Counter,
    pub is_leader: Gauge,
}

impl Metrics {
    /// Registers every metric under the `swimlb_controller` prefix, with the build-info gauge
    /// and the process metrics; `root` must have no prefix of its own.
    pub fn register(&self, root: &mut Registry) {
        swimlb_telemetry::register(root, PREFIX, &BuildInfo::current(env!("CARGO_PKG_VERSION")));
        let registry = root.sub_registry_with_prefix(PREFIX);
        registry.register(
            "pool_addresses",
            "Addresses a pool may hand out, by pool and family",
            self.pool_addresses.clone(),
        );
        registry.register(
            "pool_addresses_in_use",
            "Addresses of a pool held by at least one Service, by pool and family",
            self.pool_addresses_in_use.clone(),
        );
        registry.register(
            "pool_valid",
            "1 when the pool's configuration is valid, 0 when it has errors",
            self.pool_valid.clone(),
        );
        registry.register(
            "services_assigned",
            "LoadBalancer Services holding addresses",
            self.services_assigned.clone(),
        );
        registry.register(
            "services_pending",
            "LoadBalancer Services waiting for an address",
            self.services_pending.clone(),
        );
        registry.register(
            "allocations",
            "Addresses newly assigned to Services",
            self.allocations.clone(),
        );
        registry.register(
            "allocation_failures",
            "Reconciles that left a Service without an address, by reason",
            self.allocation_failures.clone(),
        );
        registry.register(
            "watch_errors",
            "Errors of the API watches, by resource",
            self.watch_errors.clone(),
        );
        registry.register(
            "api_errors",
            "Failed writes to the API server (status, events)",
            self.api_errors.clone(),
        );
        registry.register(
            "is_leader",
            "1 while this replica holds the leader Lease",
            self.is_leader.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_registered_metrics() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics
            .pool_addresses
            .get_or_create(&PoolLabels {
                pool: "default".to_owned(),
                family: "IPv4".to_owned(),
            })
            .set(20.0);
        metrics.is_leader.set(1);
        let text =
            swimlb_telemetry::render(&registry, swimlb_telemetry::Format::Text).expect("encodes");
        assert!(
            text.contains(
                "swimlb_controller_pool_addresses{pool=\"default\",family=\"IPv4\"} 20.0"
            ),
            "{text}"
        );
        assert!(text.contains("swimlb_controller_is_leader 1"), "{text}");
        assert!(
            text.contains("# TYPE swimlb_controller_allocations_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("\nswimlb_controller_build_info{version=\""),
            "{text}"
        );
        assert!(text.contains("\nprocess_open_fds "), "{text}");
    }
}
