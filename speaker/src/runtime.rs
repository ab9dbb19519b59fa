//! The running speaker in static mode: gossip membership in, owned VIPs out to the interfaces.
//!
//! One task owns all state and reacts to: live-member changes, membership events, the
//! announcement timer, SIGHUP (reload) and SIGTERM/SIGINT (drain). Interface threads only read
//! the shared owned set.
//!
//! A starting speaker announces nothing during the start-up hold ([`crate::startup`]).
//!
//! Drain (SIGTERM): leave the gossip cluster first, so successors learn at once and announce;
//! keep answering requests, but send no more gratuitous rounds, for `drain_grace`; then stop.

use crate::config::{Config, ConfigError};
use crate::datalink::{ClaimSink, DatalinkError, InterfaceChannel, OwnedSet};
use crate::http::{self, Holding, Status};
use crate::interfaces::{self, Selection, SelectionError};
use crate::kubernetes::{self, Announcing, ClusterView, KubernetesError};
use crate::l2status::OwnedVip;
use crate::metrics::{ChangeLabel, EventLabel, IpLabel, Metrics, ResultLabel, StateLabel};
use crate::startup::{HoldTimes, StartupHold};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};
use swimlb_gossip::driver::{self, DriverConfig, DriverError, GossipHandle};
use swimlb_gossip::envelope::{DropCounts, KeyError};
use swimlb_gossip::{KeyRing, MembershipEvent};
use swimlb_speaker_core::{CoreConfig, Effect, Notice, Reason, SpeakerCore};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

/// How long the gossip layer gets to tell the others that this node leaves.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(1);
/// A suspicion older than this is not the start of the failure that moves a VIP now.
const TROUBLE_MEMORY: Duration = Duration::from_secs(10);
/// Claims of VIPs by other MACs waiting for the event loop; more are dropped and counted.
const CLAIM_QUEUE: usize = 1024;
/// Kubernetes mode does not know the cluster's size when it starts: the settle time is sized
/// for this many members (fast: 300 ms, memberlist: 2 s).
const KUBERNETES_SETTLE_SIZE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read the gossip key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gossip key file {path}: {source}")]
    Key { path: PathBuf, source: KeyError },
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error("no suitable interface to announce on (configure `interfaces`)")]
    NoInterface,
    #[error(transparent)]
    Datalink(#[from] DatalinkError),
    #[error(transparent)]
    Gossip(#[from] DriverError),
    #[error("cannot listen on {addr} for {purpose}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        purpose: &'static str,
        source: std::io::Error,
    },
    #[error("cannot install a signal handler: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Kubernetes(#[from] KubernetesError),
    #[error("the gossip member stopped unexpectedly")]
    GossipStopped,
}

/// Reads the key file at start: the ring, and the file as watched from then on.
fn load_keyring(path: &Path) -> Result<(KeyRing, WatchedFile), RunError> {
    let bytes = std::fs::read(path).map_err(|source| RunError::KeyFile {
        path: path.to_owned(),
        source,
    })?;
    let ring = key_reload(&bytes).map_err(|source| RunError::Key {
        path: path.to_owned(),
        source,
    })?;
    let file = WatchedFile {
        path: path.to_owned(),
        bytes,
    };
    Ok((ring, file))
}

async fn listen(
    addr: SocketAddr,
    purpose: &'static str,
) -> Result<tokio::net::TcpListener, RunError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Listen {
            addr,
            purpose,
            source,
        })
}

/// Binds the metrics address (and the health address, when set) and serves them.
async fn serve_http(
    config: &Config,
    registry: prometheus_client::registry::Registry,
    status: &Arc<Status>,
) -> Result<(), RunError> {
    let metrics = listen(config.metrics_address, "metrics").await?;
    let health = match config.health_address {
        Some(addr) => Some((listen(addr, "health probes").await?, addr)),
        None => None,
    };
    let local = |l: &tokio::net::TcpListener, configured| l.local_addr().unwrap_or(configured);
    let metrics_at = local(&metrics, config.metrics_address);
    let app = http::metrics_router(registry, Arc::clone(status), health.is_none());
    match health {
        None => info!(address = %metrics_at, "serving /metrics, /vips, /healthz and /readyz"),
        Some((health, configured)) => {
            let health_at = local(&health, configured);
            info!(address = %metrics_at, health = %health_at,
                "serving /metrics and /vips; /healthz and /readyz on the health address");
            tokio::spawn(
                http::serve(health, http::health_router(status))
                    .instrument(info_span!("http", addr = %health_at)),
            );
        }
    }
    tokio::spawn(http::serve(metrics, app).instrument(info_span!("http", addr = %metrics_at)));
    Ok(())
}

/// Runs the speaker until SIGTERM or SIGINT has been handled (drain included).
pub async fn run(config_path: PathBuf) -> Result<(), RunError> {
    let config = Config::load(&config_path)?;
    let (keyring, key_file) = load_keyring(&config.gossip.key_file)?;
    let (metrics, registry) = Metrics::new();
    metrics.config_last_reload_successful.set(1);
    let status = Arc::new(Status::default());
    serve_http(&config, registry, &status).await?;

    let selection = Selection::new(config.interfaces.clone(), &config.exclude_interfaces)?;
    let owned = Arc::new(OwnedSet::default());
    let (claims_tx, claims) = mpsc::channel(CLAIM_QUEUE);
    let mut responders = Responders::new(selection, Arc::clone(&owned), claims_tx, metrics.clone());
    responders.rescan(true);
    if responders.is_empty() {
        if config.interfaces.is_empty() {
            return Err(RunError::NoInterface);
        }
        warn!(interfaces = ?config.interfaces,
            "none of the configured interfaces is usable yet; looking again every 5 s");
    }

    let advertise = match &config.kubernetes {
        Some(_) => config
            .gossip
            .advertise
            .or_else(|| kubernetes::advertise_from_env(config.gossip.bind)),
        None => config.gossip.advertise,
    };
    let gossip = driver::spawn(DriverConfig {
        node_name: config.node_name.clone(),
        bind: config.gossip.bind,
        advertise,
        peers: config.gossip.peers.clone(),
        timing: config.gossip.timing.clone(),
        keyring,
        generation: None,
    })
    .await?;
    // Static mode: the configured peers and this node are the members to expect. Kubernetes
    // mode expects none: the DaemonSet may run on a subset of the Nodes, so only a speaker that
    // gets no answer at all counts as isolated there.
    let own = gossip.identity().addr;
    let static_peers: BTreeSet<_> = config.gossip.peers.iter().filter(|p| **p != own).collect();
    if config.kubernetes.is_none()
        && !static_peers.is_empty()
        && let Err(error) = gossip.set_expected_members(static_peers.len() + 1).await
    {
        warn!(%error, "cannot tell the gossip task how many members to expect");
    }
    let timing = config.gossip.timing.clone();
    let hold = match config.kubernetes {
        None => StartupHold::known_at(
            HoldTimes::for_timing(&timing, static_peers.len() + 1),
            std_now(),
            !static_peers.is_empty(),
        ),
        Some(_) => StartupHold::new(HoldTimes::for_timing(&timing, KUBERNETES_SETTLE_SIZE)),
    };
    let mut core = SpeakerCore::new(
        CoreConfig {
            node: config.node_name.clone(),
            schedule: config.schedule.clone(),
            fencing: config.claims.fencing,
            flap: config.claims.flap,
        },
        hold,
    );
    let watched: BTreeSet<IpAddr> = config.vips.keys().copied().collect();
    metrics.vips.watch(&watched);
    owned.watch(watched);
    core.set_placement(std_now(), config.vips.clone());
    info!(node = %config.node_name, preset = config.gossip.preset.name(), vips = config.vips.len(),
        kubernetes = config.kubernetes.is_some(), "speaker started");
    let (owned_tx, owned_rx) = watch::channel(Announcing::default());
    let cluster = match &config.kubernetes {
        Some(settings) => Some(
            kubernetes::start(
                settings.clone(),
                config.node_name.clone(),
                config.gossip.bind.port(),
                owned_rx,
                metrics.clone(),
            )
            .await?,
        ),
        None => None,
    };

    let mut speaker = Speaker {
        core,
        claims,
        config,
        cluster,
        cluster_view: ClusterView::default(),
        joined: BTreeSet::new(),
        owned_tx,
        key_file,
        config_file: WatchedFile::new(config_path),
        metrics,
        status,
        owned,
        responders,
        live: BTreeSet::new(),
        trouble_since: BTreeMap::new(),
        failovers: BTreeMap::new(),
        report_due: false,
        gossip_drops_seen: DropCounts::default(),
    };
    let span = info_span!("speaker", node = %speaker.config.node_name);
    let result = speaker.event_loop(gossip).instrument(span).await;

    for thread in speaker.responders.stop_all() {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    result
}

/// How often the configuration and key files are read to see whether they changed (SIGHUP
/// reloads at once): the kubelet rewrites a mounted ConfigMap or Secret within about a minute
/// of an edit.
const CONFIG_POLL_PERIOD: Duration = Duration::from_secs(5);

/// How often the interfaces are looked at again (MetalLB: 10 s): an interface that appears, or
/// comes back with another index or MAC, gets a responder; one that goes away loses it, and a
/// responder whose socket failed (a link that went down) is replaced.
const RESCAN_PERIOD: Duration = Duration::from_secs(5);

/// A file whose content is compared with the one last loaded (a ConfigMap or Secret volume is
/// updated by swapping a symlink, so the content, not the mtime, is compared).
struct WatchedFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl WatchedFile {
    fn new(path: PathBuf) -> Self {
        let bytes = std::fs::read(&path).unwrap_or_default();
        Self { path, bytes }
    }

    /// Reads the file; true when its content differs from the one last seen.
    fn changed(&mut self) -> bool {
        let read = std::fs::read(&self.path);
        if let Err(error) = &read {
            debug!(%error, path = %self.path.display(), "cannot read the file; looking again later");
        }
        self.take(read)
    }

    /// Takes what reading the file gave; true when the content changed. An unreadable file
    /// counts as unchanged: the swap may be under way.
    fn take(&mut self, read: std::io::Result<Vec<u8>>) -> bool {
        match read {
            Ok(bytes) if bytes != self.bytes => {
                self.bytes = bytes;
                true
            }
            Ok(_) | Err(_) => false,
        }
    }

    /// Remembers the file's current content as loaded (a reload that reads it itself).
    fn mark_loaded(&mut self) {
        if let Ok(bytes) = std::fs::read(&self.path) {
            self.bytes = bytes;
        }
    }
}

/// The key ring a key file's new content gives, or why the ring in force stays.
fn key_reload(content: &[u8]) -> Result<KeyRing, KeyError> {
    match std::str::from_utf8(content) {
        Ok(text) => KeyRing::parse(text),
        Err(_) => Err(KeyError::NotText),
    }
}

struct Responder {
    channel: Arc<InterfaceChannel>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The interfaces this node answers on.
struct Responders {
    selection: Selection,
    owned: Arc<OwnedSet>,
    claims: ClaimSink,
    metrics: Metrics,
    active: BTreeMap<String, Responder>,
}

impl Responders {
    fn new(
        selection: Selection,
        owned: Arc<OwnedSet>,
        claims: ClaimSink,
        metrics: Metrics,
    ) -> Self {
        Self {
            selection,
            owned,
            claims,
            metrics,
            active: BTreeMap::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The interfaces `vip` may be announced on.
    fn channels_for(&self, vip: IpAddr) -> impl Iterator<Item = &Arc<InterfaceChannel>> {
        self.channels()
            .filter(move |c| self.owned.allowed_on(vip, &c.interface.name))
    }

    fn channels(&self) -> impl Iterator<Item = &Arc<InterfaceChannel>> {
        self.active.values().map(|r| &r.channel)
    }

    /// Brings the responders in line with the interfaces now present; returns the new ones.
    fn rescan(&mut self, first: bool) -> Vec<Arc<InterfaceChannel>> {
        let (chosen, rejected) = self.selection.select(&interfaces::discover());
        if first {
            for (name, reason) in &rejected {
                info!(interface = %name, ?reason, "not answering on interface");
            }
        }
        let stale: Vec<String> = self
            .active
            .iter()
            .filter(|(name, r)| {
                r.thread.is_finished()
                    || !chosen
                        .iter()
                        .any(|c| &c.name == *name && *c == r.channel.interface)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(responder) = self.active.remove(&name) {
                // The thread notices within one receive poll and exits on its own.
                responder.stop.store(true, Ordering::Relaxed);
                drop(responder.thread);
                info!(interface = %name, "interface gone, changed or failed: stopped answering on it");
            }
        }
        let mut opened = Vec::new();
        for interface in chosen {
            if self.active.contains_key(&interface.name) {
                continue;
            }
            let name = interface.name.clone();
            let stop = Arc::new(AtomicBool::new(false));
            info!(interface = %name, mac = %interface.mac, link_local = ?interface.link_local,
                "answering on interface");
            match InterfaceChannel::open(
                interface,
                Arc::clone(&self.owned),
                self.claims.clone(),
                self.metrics.clone(),
                Arc::clone(&stop),
            ) {
                Ok((channel, thread)) => {
                    opened.push(Arc::clone(&channel));
                    self.active.insert(
                        name,
                        Responder {
                            channel,
                            stop,
                            thread,
                        },
                    );
                }
                Err(error) => warn!(%error, "cannot answer on interface; trying again later"),
            }
        }
        opened
    }

    /// Stops every responder; the caller joins the returned threads.
    fn stop_all(&mut self) -> Vec<JoinHandle<()>> {
        let active = std::mem::take(&mut self.active);
        active
            .into_values()
            .map(|r| {
                r.stop.store(true, Ordering::Relaxed);
                r.thread
            })
            .collect()
    }
}

struct Speaker {
    config: Config,
    /// The configuration file.
    config_file: WatchedFile,
    /// The gossip key file (the path given at start).
    key_file: WatchedFile,
    metrics: Metrics,
    status: Arc<Status>,
    owned: Arc<OwnedSet>,
    responders: Responders,
    /// Every claim rule; this loop only executes its effects.
    core: SpeakerCore,
    /// Claims of watched VIPs by other MACs, from the receive threads.
    claims: mpsc::Receiver<IpAddr>,
    /// Kubernetes mode: the cluster view, taken by the event loop.
    cluster: Option<watch::Receiver<ClusterView>>,
    cluster_view: ClusterView,
    /// Peers already joined through.
    joined: BTreeSet<SocketAddr>,
    /// The VIPs this node owns, for the Kubernetes edge's Events.
    owned_tx: watch::Sender<Announcing>,
    /// The live members as the gossip layer last reported them.
    live: BTreeSet<String>,
    /// When this node first saw each member suspected or down: the start of a failover.
    trouble_since: BTreeMap<String, Instant>,
    /// VIPs just inherited from a failed member, with the start of that failure: observed
    /// into `failover_seconds` when their first announcement goes out.
    failovers: BTreeMap<IpAddr, Instant>,
    /// Set when the owned VIPs must be reported at the next execute although no claim
    /// changed (interface restrictions or interfaces changed).
    report_due: bool,
    /// The gossip drop counts already added to `gossip_dropped_total`.
    gossip_drops_seen: DropCounts,
}

fn std_now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Speaker {
    async fn event_loop(&mut self, mut gossip: GossipHandle) -> Result<(), RunError> {
        let mut live_rx = gossip.live_members();
        let mut events = gossip.subscribe();
        let mut stats = gossip.stats();
        let mut hangup = signal(SignalKind::hangup()).map_err(RunError::Signal)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
        let mut config_poll =
            tokio::time::interval_at(Instant::now() + CONFIG_POLL_PERIOD, CONFIG_POLL_PERIOD);
        config_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rescan = tokio::time::interval_at(Instant::now() + RESCAN_PERIOD, RESCAN_PERIOD);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cluster = self.cluster.take();
        let mut rejoin = tokio::time::interval_at(
            Instant::now() + kubernetes::REJOIN_PERIOD,
            kubernetes::REJOIN_PERIOD,
        );
        self.take_live(live_rx.borrow_and_update().clone());
        self.core.tick(std_now());
        self.execute();
        loop {
            let wake = self.core.next_deadline(std_now()).map(Instant::from_std);
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => {
                    self.reload();
                    self.key_file.mark_loaded();
                    self.reload_keys(&gossip).await;
                }
                _ = config_poll.tick() => {
                    if self.config_file.changed() {
                        info!(path = %self.config_file.path.display(), "configuration file changed");
                        self.reload();
                    }
                    if self.key_file.changed() {
                        info!(path = %self.key_file.path.display(), "gossip key file changed");
                        self.reload_keys(&gossip).await;
                    }
                }
                _ = rescan.tick() => self.rescan_interfaces(),
                _ = rejoin.tick(), if cluster.is_some() => {
                    let absent = kubernetes::absent_peers(&self.cluster_view.peers, &self.live);
                    if !absent.is_empty() {
                        debug!(peers = ?absent, "joining Nodes' speakers that are not live members");
                        if let Err(error) = gossip.join(absent).await {
                            warn!(%error, "cannot join the peers found in Nodes");
                        }
                    }
                }
                changed = changed_or_forever(&mut cluster) => {
                    let Some(receiver) = cluster.as_mut().filter(|_| changed) else {
                        warn!("the Kubernetes watcher stopped; keeping the last known VIPs");
                        cluster = None;
                        continue;
                    };
                    let view = receiver.borrow_and_update().clone();
                    self.apply_cluster_view(&gossip, view).await;
                }
                changed = live_rx.changed() => {
                    if changed.is_err() {
                        return Err(RunError::GossipStopped);
                    }
                    self.take_live(live_rx.borrow_and_update().clone());
                }
                event = events.recv() => match event {
                    Ok(event) => {
                        self.note_event(&event);
                        self.core.membership_event(std_now(), &event);
                    }
                    Err(RecvError::Lagged(missed)) => warn!(missed, "missed membership events"),
                    Err(RecvError::Closed) => return Err(RunError::GossipStopped),
                },
                Some(vip) = self.claims.recv() => self.core.foreign_claim(std_now(), vip),
                changed = stats.changed() => {
                    if changed.is_err() {
                        return Err(RunError::GossipStopped);
                    }
                    let (states, drops) = {
                        let now = stats.borrow_and_update();
                        (now.member_states.clone(), now.drops.clone())
                    };
                    self.metrics.gossip_drops(&mut self.gossip_drops_seen, &drops);
                    for (state, count) in states {
                        if state != "alive" {
                            self.metrics.members.get_or_create(&StateLabel { state: state.into() })
                                .set(count as i64);
                        }
                    }
                }
                () = sleep_until_or_forever(wake) => self.core.tick(std_now()),
            }
            self.execute();
        }
        self.drain(gossip, &mut terminate, &mut interrupt).await;
        Ok(())
    }

    /// Takes the live members the gossip layer reports.
    fn take_live(&mut self, live: BTreeSet<String>) {
        self.live = live;
        self.metrics
            .members
            .get_or_create(&StateLabel {
                state: "alive".into(),
            })
            .set(self.live.len() as i64);
        self.core.set_live(std_now(), &self.live);
    }

    /// Logs and counts a membership event, and remembers when each member's trouble began.
    fn note_event(&mut self, event: &MembershipEvent) {
        let now = Instant::now();
        self.metrics
            .gossip_events
            .get_or_create(&EventLabel {
                event: event_name(event),
            })
            .inc();
        match event {
            MembershipEvent::Suspect(id) | MembershipEvent::Down(id) => {
                self.trouble_since.entry(id.name.clone()).or_insert(now);
            }
            MembershipEvent::Up(id) => {
                self.trouble_since.remove(&id.name);
            }
            MembershipEvent::Rejoined { old, new } => {
                info!(member = %new.name, old = old.generation, new = new.generation,
                    "member rejoined with a new generation");
                self.trouble_since.remove(&new.name);
            }
            MembershipEvent::Isolated => warn!("isolated: no other live member is reachable"),
            MembershipEvent::Reachability(swimlb_gossip::Reachability::Isolated(reason)) => {
                warn!(%reason, "this node cannot trust its view of the cluster")
            }
            MembershipEvent::Reachability(swimlb_gossip::Reachability::Reachable) => {
                info!("members answer again")
            }
            MembershipEvent::Connected => info!("connected to the cluster"),
            MembershipEvent::Renewed(id) => {
                warn!(
                    generation = id.generation,
                    "declared down by the others; rejoined"
                )
            }
        }
    }

    /// Executes the core's effects: the owned store first (answering starts or stops with
    /// it), then the frames, which the interfaces' send threads take from their queues.
    fn execute(&mut self) {
        let mut changed = false;
        while let Some(effect) = self.core.poll_effect() {
            match effect {
                Effect::Claim {
                    vip,
                    previous_owner,
                    reason,
                } => {
                    changed = true;
                    self.claimed(vip, previous_owner, reason);
                }
                Effect::Release {
                    vip,
                    new_owner,
                    reason,
                } => {
                    changed = true;
                    self.released(vip, new_owner, reason);
                }
                Effect::Announce(vip) => {
                    for channel in self.responders.channels_for(vip) {
                        channel.announce(vip);
                    }
                    if let Some(start) = self.failovers.remove(&vip) {
                        self.metrics
                            .failover_seconds
                            .observe(start.elapsed().as_secs_f64());
                    }
                }
                Effect::Probe(vip) => {
                    for channel in self.responders.channels_for(vip) {
                        channel.probe(vip);
                    }
                }
                Effect::Notice(notice) => self.notice(notice),
            }
        }
        if changed || std::mem::take(&mut self.report_due) {
            self.report_owned();
        }
    }

    /// Tells the Kubernetes edge what this node owns, and which owned VIPs none of its
    /// interfaces may carry because their advertisements name other interfaces.
    fn report_owned(&mut self) {
        let vips = self.core.owned();
        self.metrics.vips_announced.set(vips.len() as i64);
        let holdings = self.status.holdings();
        let owned: BTreeMap<IpAddr, OwnedVip> = vips
            .iter()
            .map(|vip| {
                let holding = holdings.get(vip);
                let owned = OwnedVip {
                    since: holding.map_or(SystemTime::UNIX_EPOCH, |h| h.since),
                    reason: holding.map(|h| h.reason.clone()).unwrap_or_default(),
                    interfaces: self
                        .responders
                        .channels_for(*vip)
                        .map(|c| c.interface.name.clone())
                        .collect(),
                };
                (*vip, owned)
            })
            .collect();
        let without_interface: BTreeSet<IpAddr> = vips
            .iter()
            .filter(|vip| {
                self.owned.is_restricted(**vip)
                    && self.responders.channels_for(**vip).next().is_none()
            })
            .copied()
            .collect();
        let report = Announcing {
            owned,
            without_interface,
        };
        self.owned_tx.send_if_modified(|sent| {
            let newly_failed: Vec<&IpAddr> = report
                .without_interface
                .difference(&sent.without_interface)
                .collect();
            if !newly_failed.is_empty() {
                warn!(vips = ?newly_failed,
                    "owned VIPs cannot be announced: none of this node's interfaces is one their L2Advertisements name");
            }
            let differs = *sent != report;
            *sent = report;
            differs
        });
    }

    fn claimed(&mut self, vip: IpAddr, previous_owner: Option<String>, reason: Reason) {
        info!(%vip, previous_owner = previous_owner.as_deref().unwrap_or("-"),
            reason = reason.as_str(), "announcing VIP");
        self.owned.insert(vip);
        if let IpAddr::V6(v6) = vip {
            self.responders.channels().for_each(|c| c.join(v6));
        }
        self.metrics
            .vip_announced
            .get_or_create(&IpLabel {
                ip: vip.to_string(),
            })
            .set(1);
        self.metrics
            .ownership_changes
            .get_or_create(&ChangeLabel { change: "gained" })
            .inc();
        if let Some(previous) = previous_owner.as_ref().filter(|p| !self.live.contains(*p)) {
            let now = Instant::now();
            let start = self
                .trouble_since
                .get(previous)
                .copied()
                .filter(|t| now.duration_since(*t) < TROUBLE_MEMORY)
                .unwrap_or(now);
            self.failovers.insert(vip, start);
        }
        let reason = match previous_owner {
            Some(previous) => format!("{} (previous owner {previous})", reason.as_str()),
            None => reason.as_str().to_owned(),
        };
        let since = SystemTime::now();
        self.status.update(|held| {
            held.insert(vip, Holding { since, reason });
        });
    }

    fn released(&mut self, vip: IpAddr, new_owner: Option<String>, reason: Reason) {
        info!(%vip, new_owner = new_owner.as_deref().unwrap_or("-"), reason = reason.as_str(),
            "stopped announcing VIP");
        self.owned.remove(vip);
        self.failovers.remove(&vip);
        if let IpAddr::V6(v6) = vip {
            self.responders.channels().for_each(|c| c.leave(v6));
        }
        self.metrics.vip_announced.remove(&IpLabel {
            ip: vip.to_string(),
        });
        self.metrics
            .ownership_changes
            .get_or_create(&ChangeLabel { change: "lost" })
            .inc();
        self.status.update(|held| {
            held.remove(&vip);
        });
    }

    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::StartupOver { members } => {
                info!(members, "start-up hold over");
                self.status.set_ready(true);
            }
            Notice::Fenced(reason) => {
                warn!(%reason, "fenced: claiming only VIPs that no other host answers for");
                self.metrics.fenced.set(1);
            }
            Notice::FenceLifted => {
                info!("fence lifted: claiming by the membership view again");
                self.metrics.fenced.set(0);
            }
            Notice::HeldDown { member } => {
                warn!(%member, "member keeps going down and coming back: held down, it owns no VIP for now");
                self.metrics.held_down.inc();
            }
            Notice::HoldDownOver { member } => info!(%member, "flap hold-down over"),
            Notice::Reasserted { vips, cause } => {
                info!(vips, cause = cause.as_str(), "re-announcing owned VIPs");
                self.metrics.reannouncements.inc();
            }
        }
    }

    /// Takes a new Kubernetes view: its VIPs, and joins peers not joined before.
    async fn apply_cluster_view(&mut self, gossip: &GossipHandle, view: ClusterView) {
        if !view.synced {
            return;
        }
        let new_peers: Vec<SocketAddr> = view
            .peers
            .values()
            .filter(|address| !self.joined.contains(*address))
            .copied()
            .collect();
        if !new_peers.is_empty() {
            info!(peers = ?new_peers, "joining peers found in Nodes");
            match gossip.join(new_peers.clone()).await {
                Ok(()) => self.joined.extend(new_peers),
                Err(error) => warn!(%error, "cannot join the peers found in Nodes"),
            }
        }
        let has_peers = !view.peers.is_empty();
        self.cluster_view = view;
        self.merge_placement();
        // The first full list is in and the join was attempted: the hold's clock starts.
        self.core.placement_known(std_now(), has_peers);
    }

    /// Gives the core the static VIPs merged with the Kubernetes ones (a static entry wins).
    fn merge_placement(&mut self) {
        let mut placement = self.cluster_view.placement.clone();
        placement.extend(self.config.vips.clone());
        let mut interfaces = self.cluster_view.interfaces.clone();
        interfaces.retain(|vip, _| !self.config.vips.contains_key(vip));
        self.owned.restrict(interfaces);
        let watched: BTreeSet<IpAddr> = placement.keys().copied().collect();
        self.metrics.vips.watch(&watched);
        self.owned.watch(watched);
        self.core.set_placement(std_now(), placement);
        // The interface restrictions may have changed with no claim: report at the next execute.
        self.report_due = true;
    }

    /// Picks up interfaces that appeared; a new one gets the owned IPv6 groups and one
    /// announcement round for every owned VIP, so the hosts behind it learn where they are.
    fn rescan_interfaces(&mut self) {
        let owned = self.core.owned();
        for channel in self.responders.rescan(false) {
            for vip in &owned {
                if let IpAddr::V6(v6) = vip {
                    channel.join(*v6);
                }
                if self.owned.allowed_on(*vip, &channel.interface.name) {
                    channel.announce(*vip);
                }
            }
        }
        // Interfaces came or went: which VIPs no interface may carry can change.
        self.report_due = true;
    }

    /// Hands the key file's content, when it parses, to the gossip member; otherwise the
    /// ring in force stays.
    async fn reload_keys(&mut self, gossip: &GossipHandle) {
        let path = self.key_file.path.display().to_string();
        let result = match key_reload(&self.key_file.bytes) {
            Err(error) => {
                error!(%path, %error, "gossip key reload failed; keeping the key ring in force");
                "error"
            }
            Ok(ring) => {
                let (sealing, ids) = (ring.sealing_id(), ring.ids());
                match gossip.set_keyring(ring).await {
                    Ok(()) => {
                        info!(%path, sealing, ?ids, "gossip keys reloaded");
                        "ok"
                    }
                    Err(error) => {
                        error!(%error, "cannot hand the new key ring to the gossip member");
                        "error"
                    }
                }
            }
        };
        self.metrics
            .key_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    fn reload(&mut self) {
        self.config_file.mark_loaded();
        match Config::load(&self.config_file.path) {
            Err(error) => {
                error!(%error, "configuration reload failed; keeping the last good configuration");
                self.metrics
                    .config_reloads
                    .get_or_create(&ResultLabel { result: "error" })
                    .inc();
                self.metrics.config_last_reload_successful.set(0);
            }
            Ok(newer) => {
                let restart_only = self.config.restart_only_changes(&newer);
                if !restart_only.is_empty() {
                    warn!(settings = ?restart_only, "these settings take effect only after a restart");
                }
                info!(vips = newer.vips.len(), "configuration reloaded");
                self.metrics
                    .config_reloads
                    .get_or_create(&ResultLabel { result: "ok" })
                    .inc();
                self.metrics.config_last_reload_successful.set(1);
                self.core.set_schedule(newer.schedule.clone());
                self.config.vips = newer.vips;
                self.config.schedule = newer.schedule;
                self.config.drain_grace = newer.drain_grace;
                self.merge_placement();
            }
        }
    }

    async fn drain(
        &mut self,
        gossip: GossipHandle,
        terminate: &mut tokio::signal::unix::Signal,
        interrupt: &mut tokio::signal::unix::Signal,
    ) {
        self.status.set_ready(false);
        self.owned.set_draining();
        self.core.drain();
        info!(grace = ?self.config.drain_grace, vips = self.core.owned().len(),
            "draining: leaving the cluster, still answering during the grace period");
        match tokio::time::timeout(LEAVE_TIMEOUT, gossip.leave()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, "leaving the cluster failed"),
            Err(_) => warn!("leaving the cluster timed out"),
        }
        tokio::select! {
            () = tokio::time::sleep(self.config.drain_grace) => {}
            _ = terminate.recv() => warn!("second signal: stopping without the rest of the grace period"),
            _ = interrupt.recv() => warn!("second signal: stopping without the rest of the grace period"),
        }
        self.core.stop(std_now());
        self.execute();
        self.owned.replace(BTreeSet::new());
        info!("drained");
    }
}

/// The `event` label of `gossip_events_total`.
fn event_name(event: &MembershipEvent) -> &'static str {
    match event {
        MembershipEvent::Up(_) => "up",
        MembershipEvent::Suspect(_) => "suspect",
        MembershipEvent::Down(_) => "down",
        MembershipEvent::Rejoined { .. } => "rejoined",
        MembershipEvent::Renewed(_) => "renewed",
        MembershipEvent::Connected => "connected",
        MembershipEvent::Isolated => "isolated",
        MembershipEvent::Reachability(swimlb_gossip::Reachability::Isolated(_)) => "view_untrusted",
        MembershipEvent::Reachability(swimlb_gossip::Reachability::Reachable) => "view_trusted",
    }
}

/// Waits for a change of the cluster view; false when its sender is gone. Never returns
/// outside Kubernetes mode.
async fn changed_or_forever(cluster: &mut Option<watch::Receiver<ClusterView>>) -> bool {
    match cluster {
        Some(receiver) => receiver.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until_or_forever(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_line(id: u8, byte: &str) -> String {
        format!("{id} {}\n", byte.repeat(32))
    }

    #[test]
    fn a_watched_file_changes_only_when_its_content_does() {
        let mut file = WatchedFile {
            path: PathBuf::from("/nonexistent/swimlb-test"),
            bytes: b"one".to_vec(),
        };
        assert!(!file.take(Ok(b"one".to_vec())));
        assert!(file.take(Ok(b"two".to_vec())));
        assert!(!file.take(Ok(b"two".to_vec())));
        // Unreadable while a volume swaps its symlink: unchanged, and the last content stays.
        assert!(!file.take(Err(std::io::Error::from(std::io::ErrorKind::NotFound))));
        assert_eq!(file.bytes, b"two");
        // Emptied: a change, which the key reload then refuses.
        assert!(file.take(Ok(Vec::new())));
    }

    #[test]
    fn the_key_reload_takes_a_valid_file_and_refuses_the_rest() {
        let rotating = format!("{}{}", key_line(2, "22"), key_line(1, "11"));
        let ring = key_reload(rotating.as_bytes()).expect("two keys");
        assert_eq!(ring.sealing_id(), 2);
        assert_eq!(ring.ids(), vec![1, 2]);
        assert_eq!(key_reload(b"").err(), Some(KeyError::Empty));
        assert_eq!(key_reload(b"# no key yet\n").err(), Some(KeyError::Empty));
        assert_eq!(
            key_reload(b"1 abc\n").err(),
            Some(KeyError::BadKey { line: 1, id: 1 })
        );
        assert_eq!(key_reload(&[0xff, 0xfe]).err(), Some(KeyError::NotText));
    }
}
