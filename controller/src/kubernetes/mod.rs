//! The Kubernetes edge: watches Services, Namespaces, the legacy ConfigMap and IPAddressPools,
//! feeds them to the pure [`AllocationState`], and writes Service status, pool status and Events.
//!
//! One task owns all state and handles one watch event at a time, so decisions happen in a
//! single, deterministic order.

pub mod leader;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::Patch;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use swimlb_api::discovery::serves_kind;
use swimlb_api::{
    IPAddressPool, IPAddressPoolStatus, POOL_CONDITION_VALID, ReconnectBackoff, Relist, Store,
    annotations,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::allocator::Family;
use crate::config::{ConfigMapError, PoolDeclaration, PoolOrigin, PoolSet, parse_configmap};
use crate::metrics::{Metrics, PoolLabels, PoolNameLabels, ReasonLabels, ResourceLabels};
use crate::service::{ServiceKey, ServiceRequest};
use crate::state::{AllocationState, ClassFilter, Decision};

/// Settings of the reconcile loop.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the ConfigMap, the IPAddressPools and the Lease.
    pub config_namespace: String,
    /// Name of the legacy ConfigMap.
    pub config_map: String,
    pub class_filter: ClassFilter,
    /// Name reported on Events.
    pub controller_name: String,
    /// This replica's identity (pod name).
    pub identity: String,
}

/// Errors that stop the reconcile loop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("a watch stream ended")]
    WatchEnded,
}

enum Input {
    Service(Box<WatchEvent<Service>>),
    Namespace(WatchEvent<Namespace>),
    ConfigMap(WatchEvent<ConfigMap>),
    Pool(WatchEvent<IPAddressPool>),
    WatchError(&'static str, watcher::Error),
}

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    wrap: fn(WatchEvent<K>) -> Input,
    resource: &'static str,
) -> BoxStream<'static, Input>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    watcher::watcher(api, config)
        .backoff(ReconnectBackoff::from_entropy())
        .map(move |item| match item {
            Ok(event) => wrap(event),
            Err(e) => Input::WatchError(resource, e),
        })
        .boxed()
}

fn created_seconds(meta: &kube::api::ObjectMeta) -> i64 {
    meta.creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(i64::MAX)
}

/// The reconcile loop's state.
pub struct Reconciler {
    client: Client,
    settings: Settings,
    recorder: Recorder,
    metrics: Metrics,
    state: AllocationState,
    services: Store<Service>,
    namespaces: Store<Namespace>,
    config_maps: Store<ConfigMap>,
    pools: Store<IPAddressPool>,
    /// Whether the IPAddressPool resource is installed.
    pools_installed: bool,
    /// Pools last read from the ConfigMap; kept when the ConfigMap stops parsing.
    config_map_pools: Vec<PoolDeclaration>,
    started: bool,
    pending: BTreeSet<ServiceKey>,
    /// Last failure reported per pending Service, so repeated reconciles do not spam Events.
    reported_failures: BTreeMap<ServiceKey, String>,
    /// Last error text reported per pool origin.
    reported_pool_errors: BTreeMap<PoolOrigin, String>,
    reported_config_map_error: Option<String>,
    /// Pool status last written, by pool object key.
    written_pool_status: BTreeMap<(String, String), IPAddressPoolStatus>,
}

impl Reconciler {
    pub fn new(client: Client, settings: Settings, metrics: Metrics) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: settings.controller_name.clone(),
                instance: Some(settings.identity.clone()),
            },
        );
        Self {
            client,
            state: AllocationState::new(settings.class_filter.clone()),
            settings,
            recorder,
            metrics,
            services: Store::new(Relist::AsListed),
            namespaces: Store::new(Relist::AsListed),
            config_maps: Store::new(Relist::AsListed),
            pools: Store::new(Relist::AsListed),
            pools_installed: true,
            config_map_pools: Vec::new(),
            started: false,
            pending: BTreeSet::new(),
            reported_failures: BTreeMap::new(),
            reported_pool_errors: BTreeMap::new(),
            reported_config_map_error: None,
            written_pool_status: BTreeMap::new(),
        }
    }

    /// Watches and reconciles until cancelled. `ready` is set once the first full pass is done.
    #[tracing::instrument(name = "reconcile_loop", skip_all, fields(identity = %self.settings.identity))]
    pub async fn run(
        mut self,
        cancel: CancellationToken,
        ready: Arc<AtomicBool>,
    ) -> Result<(), RunError> {
        let namespace = self.settings.config_namespace.clone();
        let pool_api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), &namespace);
        // Whether the CRD is installed decides which watches to run; retry until the API answers.
        loop {
            match serves_kind::<IPAddressPool>(&self.client).await {
                Ok(true) => break,
                Ok(false) => {
                    warn!("the IPAddressPool resource is not installed; using the ConfigMap only");
                    self.pools_installed = false;
                    self.pools.mark_synced();
                    break;
                }
                Err(e) => {
                    warn!(error = %e, "probing for the IPAddressPool resource failed; retrying")
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            }
        }

        let mut inputs: SelectAll<BoxStream<'static, Input>> = SelectAll::new();
        inputs.push(watch(
            Api::<Service>::all(self.client.clone()),
            watcher::Config::default(),
            |event| Input::Service(Box::new(event)),
            "services",
        ));
        inputs.push(watch(
            Api::<Namespace>::all(self.client.clone()),
            watcher::Config::default(),
            Input::Namespace,
            "namespaces",
        ));
        inputs.push(watch(
            Api::<ConfigMap>::namespaced(self.client.clone(), &namespace),
            watcher::Config::default()
                .fields(&format!("metadata.name={}", self.settings.config_map)),
            Input::ConfigMap,
            "configmaps",
        ));
        if self.pools_installed {
            inputs.push(watch(
                pool_api,
                watcher::Config::default(),
                Input::Pool,
                "ipaddresspools",
            ));
        }

        loop {
            let input = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                input = inputs.next() => input,
            };
            let Some(input) = input else {
                return Err(RunError::WatchEnded);
            };
            self.handle(input).await;
            if !self.started && self.all_synced() {
                self.start().await;
                ready.store(true, Ordering::Relaxed);
            }
            if self.started {
                self.sync_pool_statuses().await;
                self.update_gauges();
            }
        }
    }

    fn all_synced(&self) -> bool {
        self.services.synced()
            && self.namespaces.synced()
            && self.config_maps.synced()
            && self.pools.synced()
    }

    async fn handle(&mut self, input: Input) {
        match input {
            Input::WatchError(resource, e) => {
                warn!(resource, error = %e, "watch failed; retrying");
                self.metrics
                    .watch_errors
                    .get_or_create(&ResourceLabels {
                        resource: resource.to_owned(),
                    })
                    .inc();
            }
            Input::Service(event) => {
                let changed = self.services.apply(*event).changed;
                if !self.started {
                    return;
                }
                let mut released = false;
                for (namespace, name) in changed {
                    let key = ServiceKey::new(namespace.clone(), name.clone());
                    if self.services.objects().contains_key(&(namespace, name)) {
                        released |= self.reconcile_service(&key).await;
                    } else {
                        released |= self.forget_service(&key);
                    }
                }
                if released {
                    self.retry_pending().await;
                }
            }
            Input::Namespace(event) => {
                let changed = self.namespaces.apply(event).changed;
                if self.started && !changed.is_empty() {
                    self.retry_pending().await;
                }
            }
            Input::ConfigMap(event) => {
                let changed = self.config_maps.apply(event).changed;
                if !changed.is_empty() {
                    self.read_config_map().await;
                    if self.started {
                        self.apply_pools().await;
                    }
                }
            }
            Input::Pool(event) => {
                let changed = self.pools.apply(event).changed;
                if self.started && !changed.is_empty() {
                    self.apply_pools().await;
                }
            }
        }
    }

    /// The first full pass: pools, then Services that already hold addresses, then the rest,
    /// each group in creation order.
    async fn start(&mut self) {
        self.read_config_map().await;
        self.apply_pools_quietly().await;
        let mut requests: Vec<(i64, ServiceRequest)> = self
            .services
            .objects()
            .values()
            .map(|s| (created_seconds(&s.metadata), self.request_for(s)))
            .collect();
        requests.sort_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)));
        let mut requests: Vec<ServiceRequest> = requests.into_iter().map(|(_, r)| r).collect();
        AllocationState::startup_order(&mut requests);
        info!(
            services = requests.len(),
            pools = self.state.pools().len(),
            "initial state loaded; rebuilding allocations from Service status"
        );
        self.started = true;
        for request in requests {
            self.reconcile_request(request).await;
        }
        info!(
            assigned = self.state.assigned_count(),
            pending = self.pending.len(),
            "initial pass done"
        );
    }

    fn request_for(&self, service: &Service) -> ServiceRequest {
        let empty = BTreeMap::new();
        let namespace = service.namespace().unwrap_or_default();
        let labels = self
            .namespaces
            .objects()
            .get(&(String::new(), namespace))
            .and_then(|n| n.metadata.labels.as_ref())
            .unwrap_or(&empty);
        ServiceRequest::from_service(service, labels)
    }

    /// Reconciles one stored Service. Returns true when it released addresses.
    async fn reconcile_service(&mut self, key: &ServiceKey) -> bool {
        let Some(service) = self
            .services
            .objects()
            .get(&(key.namespace.clone(), key.name.clone()))
        else {
            return false;
        };
        let request = self.request_for(service);
        self.reconcile_request(request).await
    }

    /// Drops a deleted Service. Returns true when it released addresses.
    fn forget_service(&mut self, key: &ServiceKey) -> bool {
        self.pending.remove(key);
        self.reported_failures.remove(key);
        let released = self.state.remove(key);
        if released {
            info!(service = %key, "service deleted; its addresses are free again");
        }
        released
    }

    async fn retry_pending(&mut self) {
        let mut keys: Vec<(i64, ServiceKey)> = self
            .pending
            .iter()
            .filter_map(|k| {
                self.services
                    .objects()
                    .get(&(k.namespace.clone(), k.name.clone()))
                    .map(|s| (created_seconds(&s.metadata), k.clone()))
            })
            .collect();
        keys.sort();
        for (_, key) in keys {
            self.reconcile_service(&key).await;
        }
    }

    /// Decides and writes one Service. Returns true when it released addresses.
    #[tracing::instrument(skip_all, fields(service = %request.key))]
    async fn reconcile_request(&mut self, request: ServiceRequest) -> bool {
        let Some(service) = self
            .services
            .objects()
            .get(&(request.key.namespace.clone(), request.key.name.clone()))
            .cloned()
        else {
            return false;
        };
        let held_before: Option<Vec<IpAddr>> = self
            .state
            .addresses_of(&request.key)
            .map(<[IpAddr]>::to_vec);
        let decision = self.state.reconcile(&request);
        let key = request.key.clone();
        match decision {
            Decision::Assigned { ips, pool } => {
                self.pending.remove(&key);
                self.reported_failures.remove(&key);
                let released = held_before.as_ref().is_some_and(|before| before != &ips);
                if (request.current_ips != ips || request.current_pool != pool)
                    && self.write_status(&service, &ips, pool.as_deref()).await
                {
                    let text = ips
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ");
                    let from = pool
                        .as_deref()
                        .map(|p| format!(" from pool {p}"))
                        .unwrap_or_default();
                    info!(ips = %text, pool = pool.as_deref().unwrap_or(""), "assigned");
                    if request.current_ips != ips {
                        self.metrics.allocations.inc();
                        self.publish(
                            &service,
                            EventType::Normal,
                            "IPAllocated",
                            format!("Assigned IP [{text}]{from}"),
                        )
                        .await;
                    }
                }
                released
            }
            Decision::Pending(error) => {
                self.pending.insert(key.clone());
                let reason = error.to_string();
                if !request.current_ips.is_empty() {
                    self.clear_status(&service, &reason).await;
                }
                if self.reported_failures.get(&key) != Some(&reason) {
                    warn!(reason = %reason, "no address");
                    self.metrics
                        .allocation_failures
                        .get_or_create(&ReasonLabels {
                            reason: error.kind().to_owned(),
                        })
                        .inc();
                    self.publish(
                        &service,
                        EventType::Warning,
                        "AllocationFailed",
                        format!("Failed to allocate IP for {key}: {reason}"),
                    )
                    .await;
                    self.reported_failures.insert(key, reason);
                }
                held_before.is_some()
            }
            Decision::NotOurs => {
                self.pending.remove(&key);
                self.reported_failures.remove(&key);
                if held_before.is_some() && !request.is_load_balancer {
                    if !request.current_ips.is_empty() {
                        self.clear_status(
                            &service,
                            "the Service is no longer of type LoadBalancer",
                        )
                        .await;
                    }
                    return true;
                }
                held_before.is_some()
            }
        }
    }

    async fn write_status(&self, service: &Service, ips: &[IpAddr], pool: Option<&str>) -> bool {
        let ingress: Vec<_> = ips
            .iter()
            .map(|ip| json!({ "ip": ip.to_string() }))
            .collect();
        let patch = json!({
            "metadata": { "annotations": { annotations::IP_ALLOCATED_FROM_POOL: pool } },
            "status": { "loadBalancer": { "ingress": ingress } },
        });
        self.patch_service_status(service, &patch).await
    }

    async fn clear_status(&self, service: &Service, reason: &str) {
        let patch = json!({
            "metadata": { "annotations": { annotations::IP_ALLOCATED_FROM_POOL: null } },
            "status": { "loadBalancer": { "ingress": null } },
        });
        if self.patch_service_status(service, &patch).await {
            info!(reason, "cleared the Service's addresses");
            self.publish(
                service,
                EventType::Normal,
                "ClearAssignment",
                format!("Cleared the assigned addresses: {reason}"),
            )
            .await;
        }
    }

    async fn patch_service_status(&self, service: &Service, patch: &serde_json::Value) -> bool {
        let api: Api<Service> = Api::namespaced(
            self.client.clone(),
            &service.namespace().unwrap_or_default(),
        );
        match api
            .patch_status(
                &service.name_any(),
                &crate::AGENT.patch_params(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => true,
            Err(e) => {
                // The watch brings the Service back; the next event retries.
                warn!(error = %e, "writing the Service status failed");
                self.metrics.api_errors.inc();
                false
            }
        }
    }

    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = KubeEvent {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &object.object_ref(&())).await {
            debug!(error = %e, reason, "publishing an event failed");
            self.metrics.api_errors.inc();
        }
    }

    /// Reads the legacy ConfigMap; on a document error keeps the last pools that parsed.
    async fn read_config_map(&mut self) {
        let key = (
            self.settings.config_namespace.clone(),
            self.settings.config_map.clone(),
        );
        let Some(config_map) = self.config_maps.objects().get(&key).cloned() else {
            self.config_map_pools.clear();
            self.reported_config_map_error = None;
            return;
        };
        let data = config_map.data.clone().unwrap_or_default();
        match parse_configmap(&key.0, &key.1, created_seconds(&config_map.metadata), &data) {
            Ok(pools) => {
                self.config_map_pools = pools;
                self.reported_config_map_error = None;
            }
            Err(e) => self.report_config_map_error(&config_map, e).await,
        }
    }

    async fn report_config_map_error(&mut self, config_map: &ConfigMap, error: ConfigMapError) {
        let text = error.to_string();
        if self.reported_config_map_error.as_ref() == Some(&text) {
            return;
        }
        warn!(error = %text, "the ConfigMap is invalid; keeping the pools it last had");
        self.publish(
            config_map,
            EventType::Warning,
            "InvalidConfig",
            format!("{text}; keeping the previous pools"),
        )
        .await;
        self.reported_config_map_error = Some(text);
    }

    fn declarations(&self) -> Vec<PoolDeclaration> {
        let resources = self.pools.objects().values().map(|pool| {
            PoolDeclaration::from_resource(
                &pool.namespace().unwrap_or_default(),
                &pool.name_any(),
                created_seconds(&pool.metadata),
                &pool.spec,
            )
        });
        resources
            .chain(self.config_map_pools.iter().cloned())
            .collect()
    }

    async fn apply_pools_quietly(&mut self) {
        let pools = PoolSet::build(self.declarations());
        self.report_pool_errors(&pools).await;
        self.state.set_pools(pools);
    }

    /// Rebuilds the pool view and gives pending Services another chance.
    async fn apply_pools(&mut self) {
        let pools = PoolSet::build(self.declarations());
        if &pools == self.state.pools() {
            return;
        }
        info!(pools = pools.len(), "pool configuration changed");
        self.report_pool_errors(&pools).await;
        self.state.set_pools(pools);
        self.retry_pending().await;
    }

    async fn report_pool_errors(&mut self, pools: &PoolSet) {
        let mut current: BTreeMap<PoolOrigin, String> = BTreeMap::new();
        for pool in pools.invalid() {
            current.insert(pool.origin.clone(), pool.error_summary());
        }
        for (origin, text) in &current {
            if self.reported_pool_errors.get(origin) == Some(text) {
                continue;
            }
            let name = pools
                .iter()
                .chain(pools.shadowed())
                .find(|p| &p.origin == origin)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            warn!(pool = %name, origin = %origin, errors = %text, "invalid pool");
            let note = format!("pool {name:?} is invalid and serves no new Service: {text}");
            match origin {
                PoolOrigin::Resource { namespace, name } => {
                    if let Some(object) = self
                        .pools
                        .objects()
                        .get(&(namespace.clone(), name.clone()))
                        .cloned()
                    {
                        self.publish(&object, EventType::Warning, "InvalidPool", note)
                            .await;
                    }
                }
                PoolOrigin::ConfigMap {
                    namespace, name, ..
                } => {
                    if let Some(object) = self
                        .config_maps
                        .objects()
                        .get(&(namespace.clone(), name.clone()))
                        .cloned()
                    {
                        self.publish(&object, EventType::Warning, "InvalidPool", note)
                            .await;
                    }
                }
            }
        }
        self.reported_pool_errors = current;
    }

    /// Writes each IPAddressPool's status when it differs from what was last written.
    async fn sync_pool_statuses(&mut self) {
        if !self.pools_installed {
            return;
        }
        let pools = self.state.pools().clone();
        let objects: Vec<IPAddressPool> = self.pools.objects().values().cloned().collect();
        for object in objects {
            let key = (object.namespace().unwrap_or_default(), object.name_any());
            let Some(pool) = pools.iter().chain(pools.shadowed()).find(|p| {
                p.origin
                    == PoolOrigin::Resource {
                        namespace: key.0.clone(),
                        name: key.1.clone(),
                    }
            }) else {
                continue;
            };
            let usage = self.state.usage(pool);
            let saturate = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
            let (status, reason, message) = if pool.is_valid() {
                (
                    "True",
                    "Valid",
                    "the pool serves new allocations".to_owned(),
                )
            } else {
                ("False", "Invalid", pool.error_summary())
            };
            let previous = object.status.clone().unwrap_or_default();
            let previous_condition = previous
                .conditions
                .iter()
                .find(|c| c.type_ == POOL_CONDITION_VALID);
            let transition = match previous_condition {
                Some(c) if c.status == status => c.last_transition_time.clone(),
                _ => Time(Timestamp::now()),
            };
            let desired = IPAddressPoolStatus {
                total_ipv4: saturate(usage.total_v4),
                total_ipv6: saturate(usage.total_v6),
                assigned_ipv4: saturate(usage.in_use_v4),
                available_ipv4: saturate(usage.available_v4),
                assigned_ipv6: saturate(usage.in_use_v6),
                available_ipv6: saturate(usage.available_v6),
                conditions: vec![Condition {
                    type_: POOL_CONDITION_VALID.to_owned(),
                    status: status.to_owned(),
                    reason: reason.to_owned(),
                    message,
                    last_transition_time: transition,
                    observed_generation: object.metadata.generation,
                }],
            };
            let already = self.written_pool_status.get(&key).unwrap_or(&previous);
            if *already == desired {
                continue;
            }
            let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), &key.0);
            let patch = json!({ "status": desired });
            match api
                .patch_status(&key.1, &crate::AGENT.patch_params(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.written_pool_status.insert(key, desired);
                }
                Err(e) => {
                    warn!(pool = %key.1, error = %e, "writing the pool status failed");
                    self.metrics.api_errors.inc();
                }
            }
        }
        let live: BTreeSet<_> = self.pools.objects().keys().cloned().collect();
        self.written_pool_status.retain(|k, _| live.contains(k));
    }

    fn update_gauges(&self) {
        let metrics = &self.metrics;
        metrics.pool_addresses.clear();
        metrics.pool_addresses_in_use.clear();
        metrics.pool_valid.clear();
        for pool in self.state.pools().iter() {
            let usage = self.state.usage(pool);
            for (family, total, in_use) in [
                (Family::V4, usage.total_v4, usage.in_use_v4),
                (Family::V6, usage.total_v6, usage.in_use_v6),
            ] {
                let labels = PoolLabels {
                    pool: pool.name.clone(),
                    family: family.to_string(),
                };
                // Gauges are floating point: precision loss on huge IPv6 pools is fine.
                metrics
                    .pool_addresses
                    .get_or_create(&labels)
                    .set(total as f64);
                metrics
                    .pool_addresses_in_use
                    .get_or_create(&labels)
                    .set(in_use as f64);
            }
            metrics
                .pool_valid
                .get_or_create(&PoolNameLabels {
                    pool: pool.name.clone(),
                })
                .set(i64::from(pool.is_valid()));
        }
        metrics
            .services_assigned
            .set(i64::try_from(self.state.assigned_count()).unwrap_or(i64::MAX));
        metrics
            .services_pending
            .set(i64::try_from(self.pending.len()).unwrap_or(i64::MAX));
    }
}
