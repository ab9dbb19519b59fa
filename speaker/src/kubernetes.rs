//! Kubernetes mode, the edge: watches Services, Nodes and EndpointSlices, hands the runtime a
//! [`ClusterView`] (the VIP placement from [`crate::placement`] and the gossip peers derived
//! from the Nodes' InternalIP addresses), and records a `nodeAssigned` Event on a Service when
//! this node starts announcing its IP.
//!
//! A watch error never empties the view: the last state that was fully listed stays in force
//! (an API server outage must not stop announcements; gossip failover keeps working), and the
//! watchers retry with [`ReconnectBackoff`] (at most 5 s apart). A re-list replaces a kind's objects only once it is complete.
//!
//! EndpointSlices are read from `discovery.k8s.io/v1` (Kubernetes 1.21 and later) or, when the
//! API server does not serve it, from `discovery.k8s.io/v1beta1` (1.17 to 1.24), so
//! `externalTrafficPolicy: Local` works on 1.20 too. With neither, the speaker logs this once and
//! treats Local Services as eligible on every eligible node, as it does Cluster Services.

use crate::l2status::{self, OwnedVip, STATUS_QUEUE, StatusWrite};
use crate::metrics::{Metrics, ServiceIpLabel};
use crate::ownership::VipPlacement;
use crate::placement::{self, Advertising, ClassFilter, EndpointSliceV1beta1, PlacementRules};
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use swimlb_api::annotations::DEFAULT_LOAD_BALANCER_CLASS;
use swimlb_api::discovery::serves;
use swimlb_api::{Advertisement, IPAddressPool, L2Advertisement, ReconnectBackoff, Store};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info, info_span, warn};

/// The API versions EndpointSlices are read from, preferred first.
const ENDPOINT_SLICE_V1: &str = "discovery.k8s.io/v1";
const ENDPOINT_SLICE_V1BETA1: &str = "discovery.k8s.io/v1beta1";
/// How long to wait before asking again whether EndpointSlices are served, after an error.
const PROBE_RETRY: Duration = Duration::from_secs(2);
/// The API version of swimlb's custom resources.
const SWIMLB_V1BETA1: &str = "swimlb.io/v1beta1";
/// Environment variable with the speaker's namespace (downward API `metadata.namespace`).
pub const POD_NAMESPACE_ENV: &str = "POD_NAMESPACE";
/// The namespace of the IPAddressPools and L2Advertisements when neither the file nor
/// `POD_NAMESPACE` names one.
pub const DEFAULT_NAMESPACE: &str = "swimlb-system";
/// Environment variable with this node's IP (downward API `status.hostIP`), used as the gossip
/// advertise address when the file has none.
pub const NODE_IP_ENV: &str = "NODE_IP";

/// The `kubernetes:` section of the speaker configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// A kubeconfig file; absent: in-cluster configuration (or `KUBECONFIG`).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace of the IPAddressPools and L2Advertisements (the controller's); absent:
    /// `POD_NAMESPACE`, else `swimlb-system`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels a node must carry to announce any VIP; empty: every node. The older, global
    /// form of an L2Advertisement's `nodeSelectors`.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// The gossip port of the other speakers; absent: this speaker's own bind port.
    #[serde(default)]
    pub gossip_port: Option<u16>,
    /// The `spec.loadBalancerClass` announced for.
    #[serde(default = "default_class")]
    pub load_balancer_class: String,
    /// Announce Services without a class too.
    #[serde(default = "default_true")]
    pub serve_unset_class: bool,
}

fn default_class() -> String {
    DEFAULT_LOAD_BALANCER_CLASS.to_owned()
}

fn default_true() -> bool {
    true
}

impl KubernetesConfig {
    /// The namespace the pools and advertisements are read from.
    pub fn pool_namespace(&self) -> String {
        self.namespace
            .clone()
            .or_else(|| std::env::var(POD_NAMESPACE_ENV).ok())
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
    }
}

/// What the runtime takes from the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// VIP → nodes allowed to own it (always `Some`: a node needs a Node object).
    pub placement: VipPlacement,
    /// The interfaces this node may use for some VIPs (from their L2Advertisements); a VIP
    /// not listed uses every interface.
    pub interfaces: BTreeMap<IpAddr, BTreeSet<String>>,
    /// The other speakers' gossip addresses, by node name.
    pub peers: BTreeMap<String, SocketAddr>,
    /// False until Services and Nodes (and EndpointSlices, when served) were listed once.
    pub synced: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    #[error("cannot read the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error(transparent)]
    Client(#[from] swimlb_api::client::ClientError),
    #[error("cannot find the Kubernetes configuration: {0}")]
    Infer(#[from] kube::config::InferConfigError),
}

/// The gossip address to advertise in Kubernetes mode when the file names none: `NODE_IP`
/// with the bind port, when the bind address is a wildcard.
pub fn advertise_from_env(bind: SocketAddr) -> Option<SocketAddr> {
    if !bind.ip().is_unspecified() {
        return None;
    }
    let ip: IpAddr = std::env::var(NODE_IP_ENV).ok()?.trim().parse().ok()?;
    Some(SocketAddr::new(ip, bind.port()))
}

/// How often peers that are Nodes but not live members are joined again (MetalLB: every
/// minute), so a partition that healed or a speaker that came back reconnects.
pub const REJOIN_PERIOD: Duration = Duration::from_secs(30);

/// The addresses of the peers with a Node object that are not live members.
pub fn absent_peers(
    peers: &BTreeMap<String, SocketAddr>,
    live: &BTreeSet<String>,
) -> Vec<SocketAddr> {
    peers
        .iter()
        .filter(|(name, _)| !live.contains(*name))
        .map(|(_, address)| *address)
        .collect()
}

async fn client(config: &KubernetesConfig) -> Result<Client, KubernetesError> {
    let client_config = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                KubernetesError::Kubeconfig {
                    path: path.clone(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|source| KubernetesError::Kubeconfig {
                    path: path.clone(),
                    source,
                })?
        }
        None => kube::Config::infer().await?,
    };
    Ok(crate::AGENT.client(client_config)?)
}

/// The VIPs this node owns, as the runtime reports them to the Kubernetes edge for Events
/// and ServiceL2Status objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announcing {
    pub owned: BTreeMap<IpAddr, OwnedVip>,
    /// Owned VIPs this node cannot announce: none of its interfaces is one their
    /// L2Advertisements name.
    pub without_interface: BTreeSet<IpAddr>,
}

/// Starts watching the cluster. `owned` carries the VIPs this node owns (for Events).
pub async fn start(
    config: KubernetesConfig,
    node_name: String,
    gossip_port: u16,
    owned: watch::Receiver<Announcing>,
    metrics: Metrics,
) -> Result<watch::Receiver<ClusterView>, KubernetesError> {
    let client = client(&config).await?;
    let (view_tx, view_rx) = watch::channel(ClusterView::default());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: crate::AGENT.name().to_owned(),
            instance: Some(node_name.clone()),
        },
    );
    let (events, queue) = mpsc::channel(EVENT_QUEUE);
    tokio::spawn(
        record_events(recorder, queue).instrument(info_span!("events", node = %node_name)),
    );
    let (statuses, status_queue) = mpsc::channel(STATUS_QUEUE);
    tokio::spawn(
        l2status::write_statuses(client.clone(), status_queue)
            .instrument(info_span!("l2status", node = %node_name)),
    );
    let watcher = ClusterWatcher {
        rules: PlacementRules {
            class: ClassFilter {
                class: config.load_balancer_class.clone(),
                include_unset: config.serve_unset_class,
            },
            node_selector: config.node_selector.clone(),
            endpoints_known: false,
            advertising: Advertising::Unrestricted,
            local_node: node_name.clone(),
        },
        namespace: config.pool_namespace(),
        gossip_port: config.gossip_port.unwrap_or(gossip_port),
        node_name: node_name.clone(),
        services: Store::default(),
        nodes: Store::default(),
        slices: Store::default(),
        beta_slices: Store::default(),
        slice_api: None,
        pools: Store::default(),
        advertisements: Store::default(),
        valid_advertisements: BTreeMap::new(),
        rejected: BTreeMap::new(),
        advertisements_served: None,
        announced: Announcing::default(),
        interfaces: BTreeMap::new(),
        events,
        events_dropped: metrics.events_dropped.clone(),
        statuses,
        status_writes_dropped: metrics.status_writes_dropped.clone(),
        service_announced: metrics.service_announced.clone(),
        service_series: BTreeSet::new(),
        written: BTreeMap::new(),
        view: view_tx,
    };
    tokio::spawn(
        watcher
            .run(client, owned)
            .instrument(info_span!("kubernetes", node = %node_name)),
    );
    Ok(view_rx)
}

enum Input {
    Service(Box<WatchEvent<Service>>),
    Node(Box<WatchEvent<Node>>),
    Slice(Box<WatchEvent<EndpointSlice>>),
    BetaSlice(Box<WatchEvent<EndpointSliceV1beta1>>),
    Pool(Box<WatchEvent<IPAddressPool>>),
    Advertisement(Box<WatchEvent<L2Advertisement>>),
    WatchError(&'static str, watcher::Error),
}

fn watch_stream<K>(
    api: Api<K>,
    wrap: fn(WatchEvent<K>) -> Input,
    kind: &'static str,
) -> BoxStream<'static, Input>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    watcher::watcher(api, watcher::Config::default())
        .backoff(ReconnectBackoff::from_entropy())
        .map(move |item| match item {
            Ok(event) => wrap(event),
            Err(error) => Input::WatchError(kind, error),
        })
        .boxed()
}

struct ClusterWatcher {
    rules: PlacementRules,
    gossip_port: u16,
    node_name: String,
    services: Store<Service>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    /// EndpointSlices from `discovery.k8s.io/v1beta1`, when v1 is not served.
    beta_slices: Store<EndpointSliceV1beta1>,
    /// Which EndpointSlice version is watched; `None` until the API server has answered.
    slice_api: Option<SliceApi>,
    /// The namespace of the pools and advertisements.
    namespace: String,
    pools: Store<IPAddressPool>,
    advertisements: Store<L2Advertisement>,
    /// Every advertisement in its last valid form: an edit that does not parse keeps the
    /// previous form in force, so a typo never withdraws what was announced.
    valid_advertisements: BTreeMap<(String, String), Advertisement>,
    /// The resourceVersion of each advertisement last rejected, so each version is logged once.
    rejected: BTreeMap<(String, String), String>,
    /// Whether L2Advertisements are served; `None` until the API server has answered.
    advertisements_served: Option<bool>,
    /// What this node owned when last told, for `nodeAssigned` and `announceFailed` Events.
    announced: Announcing,
    /// The interface restrictions last published, for `announceFailed` Events.
    interfaces: BTreeMap<IpAddr, BTreeSet<String>>,
    /// Events for the recorder task: the watch loop never waits for an API write.
    events: mpsc::Sender<(Event, ObjectReference)>,
    events_dropped: Counter,
    /// ServiceL2Status writes for the status task.
    statuses: mpsc::Sender<StatusWrite>,
    status_writes_dropped: Counter,
    service_announced: Family<ServiceIpLabel, Gauge>,
    /// The `service_announced` series set now.
    service_series: BTreeSet<ServiceIpLabel>,
    /// The ServiceL2Status objects (namespace, name) this node wrote, by VIP, so they can be
    /// deleted when the VIP is no longer announced by anyone.
    written: BTreeMap<IpAddr, BTreeSet<(String, String)>>,
    view: watch::Sender<ClusterView>,
}

impl ClusterWatcher {
    async fn run(mut self, client: Client, mut owned: watch::Receiver<Announcing>) {
        let mut streams: SelectAll<BoxStream<'static, Input>> = SelectAll::new();
        streams.push(watch_stream(
            Api::<Service>::all(client.clone()),
            |event| Input::Service(Box::new(event)),
            "Service",
        ));
        streams.push(watch_stream(
            Api::<Node>::all(client.clone()),
            |event| Input::Node(Box::new(event)),
            "Node",
        ));
        let mut probe = Box::pin(endpoint_slices_served(client.clone()).fuse());
        let mut advertisement_probe = Box::pin(advertisements_served(client.clone()).fuse());
        let mut owned_open = true;
        loop {
            tokio::select! {
                served = &mut advertisement_probe, if self.advertisements_served.is_none() => {
                    self.advertisements_served = Some(served);
                    if served {
                        streams.push(watch_stream(
                            Api::<IPAddressPool>::namespaced(client.clone(), &self.namespace),
                            |event| Input::Pool(Box::new(event)),
                            "IPAddressPool",
                        ));
                        streams.push(watch_stream(
                            Api::<L2Advertisement>::namespaced(client.clone(), &self.namespace),
                            |event| Input::Advertisement(Box::new(event)),
                            "L2Advertisement",
                        ));
                    }
                    self.publish();
                }
                api = &mut probe, if self.slice_api.is_none() => {
                    self.slice_api = Some(api);
                    self.rules.endpoints_known = api != SliceApi::Neither;
                    match api {
                        SliceApi::V1 => streams.push(watch_stream(
                            Api::<EndpointSlice>::all(client.clone()),
                            |event| Input::Slice(Box::new(event)),
                            "EndpointSlice",
                        )),
                        SliceApi::V1beta1 => streams.push(watch_stream(
                            Api::<EndpointSliceV1beta1>::all(client.clone()),
                            |event| Input::BetaSlice(Box::new(event)),
                            "EndpointSlice v1beta1",
                        )),
                        SliceApi::Neither => {}
                    }
                    self.publish();
                }
                input = streams.next() => {
                    let Some(input) = input else { break };
                    let changed = match input {
                        Input::Service(event) => self.services.apply(*event).any(),
                        Input::Node(event) => self.nodes.apply(*event).any(),
                        Input::Slice(event) => self.slices.apply(*event).any(),
                        Input::BetaSlice(event) => self.beta_slices.apply(*event).any(),
                        Input::Pool(event) => self.pools.apply(*event).any(),
                        Input::Advertisement(event) => {
                            let changed = self.advertisements.apply(*event).any();
                            if changed {
                                self.refresh_advertisements();
                            }
                            changed
                        }
                        Input::WatchError(kind, error) => {
                            warn!(kind, %error, "watch failed; keeping the last known state and retrying");
                            false
                        }
                    };
                    if changed {
                        self.publish();
                    }
                }
                changed = owned.changed(), if owned_open => {
                    if changed.is_err() {
                        owned_open = false;
                        continue;
                    }
                    let now = owned.borrow_and_update().clone();
                    self.record_assignments(now);
                }
            }
        }
        warn!("every watch ended; keeping the last known state");
    }

    fn synced(&self) -> bool {
        let slices_synced = match self.slice_api {
            None => false,
            Some(SliceApi::V1) => self.slices.synced(),
            Some(SliceApi::V1beta1) => self.beta_slices.synced(),
            Some(SliceApi::Neither) => true,
        };
        let advertisements_synced = match self.advertisements_served {
            None => false,
            Some(true) => self.pools.synced() && self.advertisements.synced(),
            Some(false) => true,
        };
        self.services.synced() && self.nodes.synced() && slices_synced && advertisements_synced
    }

    /// Parses the advertisements again after a change; one that does not parse is logged
    /// (once per version) and keeps its last valid form, or counts for nothing if it never
    /// had one.
    fn refresh_advertisements(&mut self) {
        let mut valid = BTreeMap::new();
        for (key, object) in self.advertisements.objects() {
            match Advertisement::parse(&object.spec) {
                Ok(advertisement) => {
                    self.rejected.remove(key);
                    valid.insert(key.clone(), advertisement);
                }
                Err(errors) => {
                    let version = object.resource_version().unwrap_or_default();
                    let previous = self.valid_advertisements.get(key);
                    if self.rejected.get(key) != Some(&version) {
                        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                        warn!(namespace = %key.0, name = %key.1, ?errors,
                            keeping_previous = previous.is_some(),
                            "L2Advertisement is not valid; ignoring this version");
                        self.rejected.insert(key.clone(), version);
                    }
                    if let Some(previous) = previous {
                        valid.insert(key.clone(), previous.clone());
                    }
                }
            }
        }
        self.rejected
            .retain(|key, _| self.advertisements.objects().contains_key(key));
        self.valid_advertisements = valid;
    }

    /// The advertising rules from the watched pools and advertisements.
    fn advertising(&self) -> Advertising {
        if self.advertisements_served != Some(true) {
            return Advertising::Unrestricted;
        }
        Advertising::Known {
            pools: self
                .pools
                .objects()
                .values()
                .map(|pool| (pool.name_any(), pool.labels().clone()))
                .collect(),
            advertisements: self.valid_advertisements.values().cloned().collect(),
        }
    }

    fn publish(&mut self) {
        if !self.synced() {
            return;
        }
        self.rules.advertising = self.advertising();
        let converted: Vec<EndpointSlice> = self
            .beta_slices
            .objects()
            .values()
            .map(placement::slice_from_v1beta1)
            .collect();
        let placement = placement::placement(
            self.services.objects().values(),
            self.nodes.objects().values(),
            self.slices.objects().values().chain(&converted),
            &self.rules,
        );
        let peers = placement::internal_ips(self.nodes.objects().values())
            .into_iter()
            .filter(|(name, _)| *name != self.node_name)
            .map(|(name, ip)| (name, SocketAddr::new(ip, self.gossip_port)))
            .collect();
        self.interfaces.clone_from(&placement.interfaces);
        let view = ClusterView {
            placement: placement.vips,
            interfaces: placement.interfaces,
            peers,
            synced: true,
        };
        self.view.send_if_modified(|current| {
            if *current == view {
                return false;
            }
            debug!(
                vips = view.placement.len(),
                peers = view.peers.len(),
                "cluster view changed"
            );
            *current = view;
            true
        });
    }

    /// Queues `nodeAssigned` for the Services of every VIP this node just started announcing,
    /// and the Warning `announceFailed` for every VIP it just came to own but cannot announce;
    /// when the queue is full (a large failover against a slow API server) the Event is
    /// dropped and counted, never waited for.
    fn record_assignments(&mut self, now: Announcing) {
        let announced: Vec<IpAddr> = now
            .owned
            .keys()
            .filter(|vip| !now.without_interface.contains(*vip))
            .filter(|vip| {
                !self.announced.owned.contains_key(*vip)
                    || self.announced.without_interface.contains(*vip)
            })
            .copied()
            .collect();
        self.write_statuses(&now);
        let failed: Vec<IpAddr> = now
            .without_interface
            .difference(&self.announced.without_interface)
            .copied()
            .collect();
        self.set_service_series(&now);
        self.announced = now;
        let no_names = BTreeSet::new();
        let notes = announced
            .into_iter()
            .map(|vip| {
                let note = format!("announcing {vip} from node {}", self.node_name);
                (vip, EventType::Normal, "nodeAssigned", note)
            })
            .chain(failed.into_iter().map(|vip| {
                let names = self.interfaces.get(&vip).unwrap_or(&no_names);
                let note = format!(
                    "node {} owns {vip} but has none of the interfaces its L2Advertisements name ({})",
                    self.node_name,
                    names.iter().cloned().collect::<Vec<_>>().join(", ")
                );
                (vip, EventType::Warning, "announceFailed", note)
            }))
            .collect::<Vec<_>>();
        for (vip, type_, reason, note) in notes {
            for service in placement::services_with_vip(
                self.services.objects().values(),
                vip,
                &self.rules.class,
            ) {
                let event = Event {
                    type_,
                    reason: reason.to_owned(),
                    note: Some(note.clone()),
                    action: "Announce".to_owned(),
                    secondary: None,
                };
                if self
                    .events
                    .try_send((event, service.object_ref(&())))
                    .is_err()
                {
                    self.events_dropped.inc();
                }
            }
        }
    }
}

impl ClusterWatcher {
    /// One `service_announced` series per Service of every VIP this node announces.
    fn set_service_series(&mut self, now: &Announcing) {
        let mut series = BTreeSet::new();
        for vip in now
            .owned
            .keys()
            .filter(|v| !now.without_interface.contains(*v))
        {
            let protocol = if vip.is_ipv4() { "arp" } else { "ndp" };
            for service in placement::services_with_vip(
                self.services.objects().values(),
                *vip,
                &self.rules.class,
            ) {
                series.insert(ServiceIpLabel {
                    ip: vip.to_string(),
                    service: format!(
                        "{}/{}",
                        service.namespace().unwrap_or_default(),
                        service.name_any()
                    ),
                    protocol,
                });
            }
        }
        for gone in self.service_series.difference(&series) {
            self.service_announced.remove(gone);
        }
        for label in &series {
            self.service_announced.get_or_create(label).set(1);
        }
        self.service_series = series;
    }

    /// Queues a ServiceL2Status for every Service of every VIP this node just took (or took
    /// again), and deletes the ones it wrote for VIPs it lost that nobody announces any more.
    /// A VIP that moved to another node is left to the new owner, which overwrites it.
    fn write_statuses(&mut self, now: &Announcing) {
        let mut writes = Vec::new();
        for (vip, owned) in &now.owned {
            if self.announced.owned.get(vip) == Some(owned) {
                continue;
            }
            let services = placement::services_with_vip(
                self.services.objects().values(),
                *vip,
                &self.rules.class,
            );
            for service in services {
                if let Some(status) = l2status::status_object(service, *vip, &self.node_name, owned)
                {
                    self.written
                        .entry(*vip)
                        .or_default()
                        .insert((status.namespace().unwrap_or_default(), status.name_any()));
                    writes.push(StatusWrite::Apply(Box::new(status)));
                }
            }
        }
        let placed = &self.view.borrow().placement;
        let gone: Vec<IpAddr> = self
            .written
            .keys()
            .filter(|vip| !now.owned.contains_key(*vip) && !placed.contains_key(*vip))
            .copied()
            .collect();
        for vip in gone {
            for (namespace, name) in self.written.remove(&vip).unwrap_or_default() {
                writes.push(StatusWrite::Delete { namespace, name });
            }
        }
        self.written.retain(|vip, _| now.owned.contains_key(vip));
        for write in writes {
            if self.statuses.try_send(write).is_err() {
                self.status_writes_dropped.inc();
            }
        }
    }
}

/// How many Events may wait for the API server.
const EVENT_QUEUE: usize = 256;

/// Records queued Events one at a time until the watcher is gone.
async fn record_events(recorder: Recorder, mut queue: mpsc::Receiver<(Event, ObjectReference)>) {
    while let Some((event, object)) = queue.recv().await {
        if let Err(error) = recorder.publish(&event, &object).await {
            warn!(%error, object = object.name.as_deref().unwrap_or("-"),
                reason = %event.reason, "cannot record an Event");
        }
    }
}

/// The EndpointSlice API version the API server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SliceApi {
    V1,
    V1beta1,
    Neither,
}

impl SliceApi {
    /// The preferred version among those served.
    fn choose(v1: bool, v1beta1: bool) -> Self {
        match (v1, v1beta1) {
            (true, _) => Self::V1,
            (false, true) => Self::V1beta1,
            (false, false) => Self::Neither,
        }
    }
}

/// Which EndpointSlice version to watch. Retries until the API server answers; logs the answer.
async fn endpoint_slices_served(client: Client) -> SliceApi {
    loop {
        let answer = async {
            let v1 = serves(&client, ENDPOINT_SLICE_V1, "endpointslices").await?;
            let v1beta1 = !v1 && serves(&client, ENDPOINT_SLICE_V1BETA1, "endpointslices").await?;
            Ok::<_, kube::Error>(SliceApi::choose(v1, v1beta1))
        };
        match answer.await {
            Ok(SliceApi::V1) => {
                info!(api = ENDPOINT_SLICE_V1, "watching EndpointSlices");
                return SliceApi::V1;
            }
            Ok(SliceApi::V1beta1) => {
                info!(
                    api = ENDPOINT_SLICE_V1BETA1,
                    "watching EndpointSlices ({ENDPOINT_SLICE_V1} not served)"
                );
                return SliceApi::V1beta1;
            }
            Ok(SliceApi::Neither) => {
                warn!(
                    "EndpointSlices not served: externalTrafficPolicy Local Services are eligible on every node"
                );
                return SliceApi::Neither;
            }
            Err(error) => {
                debug!(%error, "cannot ask whether EndpointSlices are served; asking again");
                tokio::time::sleep(PROBE_RETRY).await;
            }
        }
    }
}

/// Whether the API server serves L2Advertisements. Retries until it answers; without them
/// (the CRD is not installed) every pool is announced from every eligible node.
async fn advertisements_served(client: Client) -> bool {
    loop {
        match serves(&client, SWIMLB_V1BETA1, "l2advertisements").await {
            Ok(true) => {
                info!(
                    api = SWIMLB_V1BETA1,
                    "watching IPAddressPools and L2Advertisements"
                );
                return true;
            }
            Ok(false) => {
                warn!(
                    "L2Advertisements not served (install deploy/crds): every pool is announced from every eligible node"
                );
                return false;
            }
            Err(error) => {
                debug!(%error, "cannot ask whether L2Advertisements are served; asking again");
                tokio::time::sleep(PROBE_RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_has_defaults_and_rejects_unknown_fields() {
        let config: KubernetesConfig =
            serde_saphyr::from_str("node_selector: {zone: x}\n").expect("valid");
        assert_eq!(config.load_balancer_class, DEFAULT_LOAD_BALANCER_CLASS);
        assert!(config.serve_unset_class);
        assert_eq!(config.gossip_port, None);
        assert_eq!(
            config.node_selector.get("zone").map(String::as_str),
            Some("x")
        );
        assert!(serde_saphyr::from_str::<KubernetesConfig>("nodeSelector: {}\n").is_err());
    }

    #[test]
    fn only_peers_that_are_not_live_are_joined_again() {
        let peers: BTreeMap<String, SocketAddr> = [
            ("a".to_owned(), "192.0.2.1:7946".parse().expect("address")),
            ("b".to_owned(), "192.0.2.2:7946".parse().expect("address")),
        ]
        .into();
        let live: BTreeSet<String> = ["a".to_owned(), "self".to_owned()].into();
        assert_eq!(
            absent_peers(&peers, &live),
            ["192.0.2.2:7946".parse::<SocketAddr>().expect("address")]
        );
        assert!(absent_peers(&peers, &["a".to_owned(), "b".to_owned()].into()).is_empty());
    }

    #[test]
    fn v1_is_preferred_and_v1beta1_used_only_without_it() {
        assert_eq!(SliceApi::choose(true, true), SliceApi::V1);
        assert_eq!(SliceApi::choose(true, false), SliceApi::V1);
        assert_eq!(SliceApi::choose(false, true), SliceApi::V1beta1);
        assert_eq!(SliceApi::choose(false, false), SliceApi::Neither);
    }

    #[test]
    fn the_advertise_address_comes_from_the_environment_only_for_a_wildcard_bind() {
        let bound: SocketAddr = "192.0.2.1:7946".parse().expect("address");
        assert_eq!(advertise_from_env(bound), None);
    }
}
