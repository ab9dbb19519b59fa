//! Kubernetes mode, the edge: watches Services, Nodes and EndpointSlices, hands the runtime a
//! [`ClusterView`] (the VIP placement from [`crate::placement`] and the gossip peers derived
//! from the Nodes' InternalIP addresses), and records a `nodeAssigned` Event on a Service when
//! this node starts announcing its IP.
//!
//! A watch error never empties the view: the last state that was fully listed stays in force
//! (an API server outage must not stop announcements; gossip failover keeps working), and the
//! watchers retry with backoff. A re-list replaces a kind's objects only once it is complete.
//!
//! EndpointSlices are read from `discovery.k8s.io/v1` (Kubernetes 1.21 and later) or, when the
//! API server does not serve it, from `discovery.k8s.io/v1beta1` (1.17 to 1.24), so
//! `externalTrafficPolicy: Local` works on 1.20 too. With neither, the speaker logs this once and
//! treats Local Services as eligible on every eligible node, as it does Cluster Services.

use crate::ownership::VipPlacement;
use crate::placement::{self, ClassFilter, EndpointSliceV1beta1, PlacementRules};
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use swimlb_api::annotations::DEFAULT_LOAD_BALANCER_CLASS;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info, info_span, warn};

/// The API versions EndpointSlices are read from, preferred first.
const ENDPOINT_SLICE_V1: &str = "discovery.k8s.io/v1";
const ENDPOINT_SLICE_V1BETA1: &str = "discovery.k8s.io/v1beta1";
/// How long to wait before asking again whether EndpointSlices are served, after an error.
const PROBE_RETRY: Duration = Duration::from_secs(2);
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
    /// Labels a node must carry to announce; empty: every node.
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

/// What the runtime takes from the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// VIP → nodes allowed to own it (always `Some`: a node needs a Node object).
    pub placement: VipPlacement,
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
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
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
    Ok(Client::try_from(client_config)?)
}

/// Starts watching the cluster. `owned` carries the VIPs this node announces (for Events).
pub async fn start(
    config: KubernetesConfig,
    node_name: String,
    gossip_port: u16,
    owned: watch::Receiver<BTreeSet<IpAddr>>,
    events_dropped: Counter,
) -> Result<watch::Receiver<ClusterView>, KubernetesError> {
    let client = client(&config).await?;
    let (view_tx, view_rx) = watch::channel(ClusterView::default());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "swimlb-speaker".to_owned(),
            instance: Some(node_name.clone()),
        },
    );
    let (events, queue) = mpsc::channel(EVENT_QUEUE);
    tokio::spawn(
        record_events(recorder, queue).instrument(info_span!("events", node = %node_name)),
    );
    let watcher = ClusterWatcher {
        rules: PlacementRules {
            class: ClassFilter {
                class: config.load_balancer_class.clone(),
                include_unset: config.serve_unset_class,
            },
            node_selector: config.node_selector.clone(),
            endpoints_known: false,
        },
        gossip_port: config.gossip_port.unwrap_or(gossip_port),
        node_name: node_name.clone(),
        services: Store::default(),
        nodes: Store::default(),
        slices: Store::default(),
        beta_slices: Store::default(),
        slice_api: None,
        announced: BTreeSet::new(),
        events,
        events_dropped,
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
        .default_backoff()
        .map(move |item| match item {
            Ok(event) => wrap(event),
            Err(error) => Input::WatchError(kind, error),
        })
        .boxed()
}

/// The objects of one kind, as last fully listed and then updated by watch events.
struct Store<K> {
    objects: BTreeMap<(String, String), K>,
    /// Objects of a re-list in progress; they replace `objects` when it completes.
    relist: Option<BTreeMap<(String, String), K>>,
    synced: bool,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            relist: None,
            synced: false,
        }
    }
}

impl<K: ResourceExt> Store<K> {
    fn key(object: &K) -> (String, String) {
        (object.namespace().unwrap_or_default(), object.name_any())
    }

    /// Applies a watch event; true when `objects` changed.
    fn apply(&mut self, event: WatchEvent<K>) -> bool {
        match event {
            WatchEvent::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            WatchEvent::InitApply(object) => {
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(Self::key(&object), object);
                false
            }
            WatchEvent::InitDone => {
                if let Some(listed) = self.relist.take() {
                    self.objects = listed;
                }
                self.synced = true;
                true
            }
            WatchEvent::Apply(object) => {
                self.objects.insert(Self::key(&object), object);
                true
            }
            WatchEvent::Delete(object) => self.objects.remove(&Self::key(&object)).is_some(),
        }
    }
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
    /// The VIPs this node announced when last told, for `nodeAssigned` Events.
    announced: BTreeSet<IpAddr>,
    /// Events for the recorder task: the watch loop never waits for an API write.
    events: mpsc::Sender<(Event, ObjectReference)>,
    events_dropped: Counter,
    view: watch::Sender<ClusterView>,
}

impl ClusterWatcher {
    async fn run(mut self, client: Client, mut owned: watch::Receiver<BTreeSet<IpAddr>>) {
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
        let mut owned_open = true;
        loop {
            tokio::select! {
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
                        Input::Service(event) => self.services.apply(*event),
                        Input::Node(event) => self.nodes.apply(*event),
                        Input::Slice(event) => self.slices.apply(*event),
                        Input::BetaSlice(event) => self.beta_slices.apply(*event),
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
            Some(SliceApi::V1) => self.slices.synced,
            Some(SliceApi::V1beta1) => self.beta_slices.synced,
            Some(SliceApi::Neither) => true,
        };
        self.services.synced && self.nodes.synced && slices_synced
    }

    fn publish(&self) {
        if !self.synced() {
            return;
        }
        let converted: Vec<EndpointSlice> = self
            .beta_slices
            .objects
            .values()
            .map(placement::slice_from_v1beta1)
            .collect();
        let placement = placement::placement(
            self.services.objects.values(),
            self.nodes.objects.values(),
            self.slices.objects.values().chain(&converted),
            &self.rules,
        );
        let peers = placement::internal_ips(self.nodes.objects.values())
            .into_iter()
            .filter(|(name, _)| *name != self.node_name)
            .map(|(name, ip)| (name, SocketAddr::new(ip, self.gossip_port)))
            .collect();
        let view = ClusterView {
            placement,
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

    /// Queues `nodeAssigned` for the Services of every VIP this node just started announcing;
    /// when the queue is full (a large failover against a slow API server) the Event is
    /// dropped and counted, never waited for.
    fn record_assignments(&mut self, owned: BTreeSet<IpAddr>) {
        let gained: Vec<IpAddr> = owned.difference(&self.announced).copied().collect();
        self.announced = owned;
        for vip in gained {
            for service in
                placement::services_with_vip(self.services.objects.values(), vip, &self.rules.class)
            {
                let event = Event {
                    type_: EventType::Normal,
                    reason: "nodeAssigned".to_owned(),
                    note: Some(format!("announcing {vip} from node {}", self.node_name)),
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
            let v1 = serves_endpoint_slices(&client, ENDPOINT_SLICE_V1).await?;
            let v1beta1 = !v1 && serves_endpoint_slices(&client, ENDPOINT_SLICE_V1BETA1).await?;
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

/// Whether `group_version` lists `endpointslices`; a version that is not served is `false`.
async fn serves_endpoint_slices(client: &Client, group_version: &str) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "endpointslices")),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        let mut node = Node::default();
        node.metadata.name = Some(name.to_owned());
        node
    }

    fn names(store: &Store<Node>) -> Vec<String> {
        store.objects.keys().map(|(_, name)| name.clone()).collect()
    }

    #[test]
    fn a_relist_replaces_the_objects_only_when_complete() {
        let mut store = Store::default();
        store.apply(WatchEvent::Init);
        store.apply(WatchEvent::InitApply(node("a")));
        store.apply(WatchEvent::InitApply(node("b")));
        assert!(!store.synced);
        assert!(store.apply(WatchEvent::InitDone));
        assert_eq!(names(&store), ["a", "b"]);
        // A watch error restarts the list: until it completes, the old objects stay.
        store.apply(WatchEvent::Init);
        store.apply(WatchEvent::InitApply(node("b")));
        assert_eq!(names(&store), ["a", "b"]);
        store.apply(WatchEvent::InitDone);
        assert_eq!(names(&store), ["b"]);
        assert!(store.apply(WatchEvent::Delete(node("b"))));
        assert!(!store.apply(WatchEvent::Delete(node("b"))));
        assert!(store.apply(WatchEvent::Apply(node("c"))));
        assert_eq!(names(&store), ["c"]);
    }

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
