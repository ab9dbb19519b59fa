//! The simulated cluster: N real membership cores, each feeding a real speaker core
//! ([`SpeakerCore`]), one event queue ordered by (virtual time, sequence), the modelled network,
//! the modelled link and one modelled client.
//!
//! Who claims a VIP is what the nodes' speaker cores say: the world executes their `Claim` and
//! `Release` effects and counts claimants from them alone. Each core is fed its node's
//! membership events and live set, the world's VIPs with their eligible nodes, and the time;
//! its `next_deadline` is an event in the queue. A crashed or stopped node's core is dropped
//! (its claims vanish with it), a restarted node gets a fresh one. The virtual time is mapped
//! onto one fixed base [`Instant`]: the cores only compare instants, so runs stay
//! deterministic. Every node's membership view of each VIP's owner (rendezvous over its live
//! members, without hold-downs or fencing) is kept too, to tell when the views agree.
//!
//! # The link (layer 2)
//! Every node and the client share one segment. A gossip partition ([`Network::groups`]) or
//! gossip loss leaves it alone: the worst case, a partition of the gossip only (a firewall on
//! UDP 7946) while every speaker still reaches the clients and the other speakers. A node in
//! [`Network::link_cut`] (cable cut) reaches nobody on the link and hears nobody. Link frames
//! between nodes take [`LINK_LATENCY`] and are never lost; the client hears them at once.
//! - `Announce(vip)` from node j, one gratuitous round: it reaches the client, and, as
//!   `foreign_claim(vip)`, every other node on the link that claims the VIP or is fenced (the
//!   others would ignore it).
//! - `Probe(vip)` from node i: answered (as `foreign_claim(vip)` at i) when another running
//!   node on the link claims the VIP at the moment of the probe.
//! - A frozen (paused) node answers nothing; frames sent to it wait until it resumes.
//!
//! # The client
//! One client holds one neighbour entry per VIP: the node whose frame it heard last. A
//! gratuitous round sets or refreshes the entry; an entry not refreshed for
//! [`CLIENT_ENTRY_TTL`] expires, and an expired or absent entry is resolved by a request that
//! every running claimant on the link answers. The answers arrive in node order and the last
//! one wins (the highest-numbered claimant); an unanswered request is retried after
//! [`CLIENT_RETRY`]. No lock time, no packets. **Wrong-MAC time**: summed over VIPs, the time
//! the client's entry points at a node other than the VIP's true owner while it has one.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use swimlb_gossip::owner::NodePrefix;
use swimlb_gossip::{KeyRing, Membership, MembershipEvent, NodeId, Seeds, Timing};
use swimlb_speaker_core::announce::BurstSchedule;
use swimlb_speaker_core::fence::ProbePolicy;
use swimlb_speaker_core::flap::FlapPolicy;
use swimlb_speaker_core::ownership::VipPlacement;
use swimlb_speaker_core::startup::{HoldTimes, StartupHold};
use swimlb_speaker_core::{CoreConfig, Effect, Notice, SpeakerCore};

use crate::network::Network;
use crate::{SimError, mix};

/// The cluster sizes every part of the simulator accepts.
pub const NODE_LIMIT: std::ops::RangeInclusive<usize> = 3..=2_000;
/// The first byte of an opened member-list frame (the reply to a join).
const MEMBERS_FRAME: u8 = 2;

/// "No owner" in a view.
const NONE: u32 = u32::MAX;
const CLUSTER_KEY: [u8; 32] = [0x5a; 32];
const GOSSIP_PORT: u16 = 7946;
/// Nodes live in 198.18.0.0/16 and VIPs in 198.19.0.0/16 (RFC 2544 benchmarking range).
const NODE_BASE: u32 = 0xc612_0000;
const VIP_BASE: u32 = 0xc613_0000;
pub const MAX_VIPS: usize = 65_536;
/// How long a frame takes from one node to another on the link.
pub const LINK_LATENCY: Duration = Duration::from_millis(1);
/// A client's neighbour entry not refreshed by a gratuitous frame for this long expires.
pub const CLIENT_ENTRY_TTL: Duration = Duration::from_secs(30);
/// How long the client waits before asking again when nobody answered its request.
pub const CLIENT_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub nodes: usize,
    pub vips: usize,
    pub timing: Timing,
    pub network: Network,
    pub seed: u64,
    /// How many nodes (the last ones) may not own VIPs, like nodes labelled
    /// `node.kubernetes.io/exclude-from-external-load-balancers`.
    pub ineligible: usize,
    /// Generation of every node's first start (later starts count up from it), like a
    /// generation taken from the wall clock.
    pub first_generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Running,
    /// A frozen process: its timers and incoming datagrams wait until it resumes.
    Paused,
    Crashed,
    Left,
}

impl NodeState {
    /// The process exists (running or frozen) and has not left.
    pub fn is_up(self) -> bool {
        matches!(self, NodeState::Running | NodeState::Paused)
    }
}

struct Node {
    name: String,
    addr: SocketAddr,
    generation: u64,
    state: NodeState,
    member: Option<Membership>,
    /// Draws for the datagrams this node sends (loss, latency).
    rng: Xoshiro256PlusPlus,
    /// Bumped on crash, restart and leave, so queued timers of an old process are ignored.
    incarnation: u32,
    timer_at: Option<Duration>,
    held: Vec<Vec<u8>>,
    /// The node's speaker core while its process exists.
    core: Option<SpeakerCore>,
    core_timer_at: Option<Duration>,
    /// VIPs (by index) this node claims, as its core's effects said.
    claimed: BTreeSet<usize>,
    /// Link frames (VIP indexes claimed by another MAC) that reached a frozen process.
    held_link: Vec<usize>,
    live: Vec<bool>,
    view_owner: Vec<u32>,
    /// When this node's process last stopped (crash or leave).
    stopped_at: Duration,
    datagrams_sent: u64,
    bytes_sent: u64,
    up_since: Duration,
    up_total: Duration,
    /// Datagrams waiting in the bounded receive queue, and when the one being read is done.
    queued: usize,
    busy_until: Duration,
    queue_drops: u64,
    /// Bytes of member-list frames received, by sender (only for a node being watched).
    member_list_bytes: BTreeMap<usize, u64>,
}

enum Event {
    /// A datagram arrives at `to`'s socket.
    Deliver {
        from: u32,
        to: u32,
        bytes: Vec<u8>,
    },
    /// `to` reads a datagram out of its bounded receive queue.
    Receive {
        to: u32,
        incarnation: u32,
        bytes: Vec<u8>,
    },
    Timer {
        node: u32,
        incarnation: u32,
    },
    Resume {
        node: u32,
        incarnation: u32,
    },
    /// `node`'s speaker core has something due.
    CoreTimer {
        node: u32,
        incarnation: u32,
    },
    /// A frame from another MAC claiming VIP `vip` reaches node `to` on the link.
    LinkFrame {
        to: u32,
        incarnation: u32,
        vip: u32,
    },
    /// The client looks at its entry for VIP `vip`: if it has expired, it asks.
    ClientCheck {
        vip: u32,
    },
}

struct Queued {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A running node declared down while its process was alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FalseDown {
    pub node: usize,
    pub generation: u64,
    pub at: Duration,
}

/// Something one node's core reported or did, kept while [`World::record`] is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// `observer` declared `node` (at `generation`) down; `alive`: that process was running.
    Down {
        observer: usize,
        node: usize,
        generation: u64,
        alive: bool,
    },
    /// `observer` suspected `node`.
    Suspect { observer: usize, node: usize },
    /// `observer` was declared down by others and renewed its identity.
    Renewed { observer: usize, generation: u64 },
    /// `observer` saw `node` become live although that node's process is gone.
    Revived {
        observer: usize,
        node: usize,
        generation: u64,
    },
    /// `by` started announcing `vip` while `owner`, another running node, really owns it.
    Takeover { vip: usize, by: usize, owner: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub at: Duration,
    pub what: Observation,
}

/// A datagram seen on the wire while [`World::capture`] is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub from: usize,
    pub to: usize,
    pub bytes: Vec<u8>,
}

/// The client's neighbour entry for one VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClientEntry {
    node: u32,
    /// When a frame last set or refreshed it.
    heard: Duration,
}

/// The modelled client (see the module documentation).
#[derive(Debug, Default)]
struct Client {
    entries: Vec<Option<ClientEntry>>,
    /// Since when each VIP's entry points at a node that is not its true owner.
    wrong_since: Vec<Option<Duration>>,
    /// Wrong-MAC time of the stretches that ended.
    wrong_closed: Duration,
    /// The (start, end) of every stretch that ended since [`World::forget_wrong_mac_stretches`].
    stretches: Vec<(Duration, Duration)>,
}

/// Claims of one VIP from different partition groups, watched during a partition.
#[derive(Debug)]
struct SplitWatch {
    groups: Vec<u32>,
    /// VIPs claimed in two groups or more now.
    split: BTreeSet<usize>,
    /// When the last split ended (the watch's start if none began), and the dual-claim
    /// total at that moment.
    last_end: Duration,
    multi_at_end: Duration,
}

/// What [`World::split_report`] found since [`World::watch_split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitReport {
    /// Watch start → the last moment a VIP was claimed in two groups; `None`: it still is.
    pub fence_delay: Option<Duration>,
    /// Dual-claim time (summed over VIPs) since that moment.
    pub dual_claim_after: Option<Duration>,
}

pub struct World {
    pub network: Network,
    timing: Timing,
    /// Virtual time zero, as the speaker cores see it.
    base: Instant,
    /// Every VIP with the nodes allowed to own it, as every core is given it.
    placement: VipPlacement,
    hold_times: HoldTimes,
    seed: u64,
    now: Duration,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    nodes: Vec<Node>,
    index_by_name: BTreeMap<String, usize>,
    eligible: Vec<bool>,
    vips: Vec<IpAddr>,
    /// `scores[v * n + j]`: node j's rendezvous score for VIP v.
    scores: Vec<u64>,
    /// The owner among nodes that are really up: what every view should converge to.
    truth: Vec<u32>,
    /// (up node, VIP) pairs whose view differs from `truth`.
    disagreements: usize,
    claimants: Vec<u16>,
    /// VIPs nobody claims.
    unclaimed: usize,
    /// Claims made per VIP: each is a move of the VIP to a node.
    claims_made: Vec<u64>,
    claim_since: Vec<Duration>,
    client: Client,
    split: Option<SplitWatch>,
    /// When each observer first reported each member in flap hold-down, by (member, observer).
    held_down: BTreeMap<(usize, usize), Duration>,
    multi_claim_total: Duration,
    no_owner_total: Duration,
    /// VIPs whose owner went away, with when; cleared when the new owner claims them.
    awaiting: BTreeMap<usize, Duration>,
    failovers: Vec<(usize, Duration)>,
    first_down: BTreeMap<(usize, u64), Duration>,
    false_downs: Vec<FalseDown>,
    events_handled: u64,
    recording: bool,
    observations: Vec<Observed>,
    capture: Option<Vec<Captured>>,
    /// The node whose member-list frames are counted (the cluster key opens them).
    watched: Option<usize>,
    keyring: KeyRing,
}

impl World {
    pub fn new(config: WorldConfig) -> Result<Self, SimError> {
        let n = config.nodes;
        if !NODE_LIMIT.contains(&n) {
            return Err(SimError::Parameter(format!(
                "nodes must be {}..={}, got {n}",
                NODE_LIMIT.start(),
                NODE_LIMIT.end()
            )));
        }
        if config.vips > MAX_VIPS {
            return Err(SimError::Parameter(format!(
                "vips must be at most {MAX_VIPS}, got {}",
                config.vips
            )));
        }
        if config.ineligible >= n {
            return Err(SimError::Parameter(
                "at least one node must be eligible".into(),
            ));
        }
        // Zero-padded names sort like their indexes, so owner ties break the same way.
        let width = n.saturating_sub(1).to_string().len().max(4);
        let names: Vec<String> = (0..n).map(|i| format!("node-{i:0width$}")).collect();
        let vips: Vec<IpAddr> = (0..config.vips)
            .map(|v| IpAddr::V4(Ipv4Addr::from(VIP_BASE + v as u32)))
            .collect();
        let prefixes: Vec<NodePrefix> = names.iter().map(|s| NodePrefix::new(s)).collect();
        let mut scores = Vec::with_capacity(config.vips * n);
        for vip in &vips {
            scores.extend(prefixes.iter().map(|p| p.score(*vip)));
        }
        let eligible: Vec<bool> = (0..n).map(|i| i < n - config.ineligible).collect();
        let allowed: Option<BTreeSet<String>> = (config.ineligible > 0).then(|| {
            names
                .iter()
                .zip(&eligible)
                .filter(|(_, ok)| **ok)
                .map(|(name, _)| name.clone())
                .collect()
        });
        let placement: VipPlacement = vips.iter().map(|vip| (*vip, allowed.clone())).collect();
        let hold_times = HoldTimes::for_timing(&config.timing, n);
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| Node {
                name: name.clone(),
                addr: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(NODE_BASE + i as u32)),
                    GOSSIP_PORT,
                ),
                generation: config.first_generation.saturating_sub(1),
                state: NodeState::Crashed,
                member: None,
                rng: Xoshiro256PlusPlus::seed_from_u64(mix(config.seed, i as u64, 0x6e65_7477)),
                incarnation: 0,
                timer_at: None,
                held: Vec::new(),
                core: None,
                core_timer_at: None,
                claimed: BTreeSet::new(),
                held_link: Vec::new(),
                live: Vec::new(),
                view_owner: Vec::new(),
                stopped_at: Duration::ZERO,
                datagrams_sent: 0,
                bytes_sent: 0,
                up_since: Duration::ZERO,
                up_total: Duration::ZERO,
                queued: 0,
                busy_until: Duration::ZERO,
                queue_drops: 0,
                member_list_bytes: BTreeMap::new(),
            })
            .collect();
        let vip_count = vips.len();
        let mut world = Self {
            network: config.network,
            timing: config.timing,
            base: Instant::now(),
            placement,
            hold_times,
            seed: config.seed,
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes,
            index_by_name: names.into_iter().enumerate().map(|(i, s)| (s, i)).collect(),
            eligible,
            truth: vec![NONE; vips.len()],
            claimants: vec![0; vips.len()],
            unclaimed: vips.len(),
            claims_made: vec![0; vips.len()],
            claim_since: vec![Duration::ZERO; vips.len()],
            client: Client {
                entries: vec![None; vips.len()],
                wrong_since: vec![None; vips.len()],
                ..Client::default()
            },
            split: None,
            held_down: BTreeMap::new(),
            vips,
            scores,
            disagreements: 0,
            multi_claim_total: Duration::ZERO,
            no_owner_total: Duration::ZERO,
            awaiting: BTreeMap::new(),
            failovers: Vec::new(),
            first_down: BTreeMap::new(),
            false_downs: Vec::new(),
            events_handled: 0,
            recording: false,
            observations: Vec::new(),
            capture: None,
            watched: None,
            keyring: KeyRing::new(1, CLUSTER_KEY),
        };
        for v in 0..vip_count {
            world.push(Duration::ZERO, Event::ClientCheck { vip: v as u32 });
        }
        Ok(world)
    }

    // ----- accessors -------------------------------------------------------------------------

    pub fn now(&self) -> Duration {
        self.now
    }
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    pub fn vip_count(&self) -> usize {
        self.vips.len()
    }
    pub fn vip(&self, v: usize) -> IpAddr {
        self.vips[v]
    }
    pub fn timing(&self) -> &Timing {
        &self.timing
    }
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }
    pub fn state(&self, i: usize) -> NodeState {
        self.nodes[i].state
    }
    pub fn generation(&self, i: usize) -> u64 {
        self.nodes[i].generation
    }
    pub fn is_eligible(&self, i: usize) -> bool {
        self.eligible[i]
    }
    pub fn member(&self, i: usize) -> Option<&Membership> {
        self.nodes[i].member.as_ref()
    }
    pub fn up_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].state.is_up())
            .collect()
    }
    /// The owner every view should agree on: the best eligible node that is really up.
    pub fn true_owner(&self, v: usize) -> Option<usize> {
        (self.truth[v] != NONE).then_some(self.truth[v] as usize)
    }
    /// Node `i`'s membership view of who owns VIP `v` (rendezvous over its live members;
    /// its speaker core may differ: hold-downs, fencing, the start-up hold).
    pub fn view_owner(&self, i: usize, v: usize) -> Option<usize> {
        self.nodes[i]
            .view_owner
            .get(v)
            .filter(|o| **o != NONE)
            .map(|o| *o as usize)
    }
    /// Nodes claiming VIP `v` right now (by their cores' effects).
    pub fn claimants(&self, v: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].claimed.contains(&v))
            .collect()
    }
    /// Every VIP has at least one claimant.
    pub fn every_vip_claimed(&self) -> bool {
        self.unclaimed == 0
    }
    /// Claims made of VIP `v` so far (each one a move of the VIP to a node).
    pub fn claims_made(&self, v: usize) -> u64 {
        self.claims_made[v]
    }
    /// Node `i`'s speaker core, while its process exists.
    pub fn core(&self, i: usize) -> Option<&SpeakerCore> {
        self.nodes[i].core.as_ref()
    }
    /// When `observer` first reported `member` in flap hold-down.
    pub fn held_down_since(&self, member: usize, observer: usize) -> Option<Duration> {
        self.held_down.get(&(member, observer)).copied()
    }
    /// Forgets the hold-down reports (a new trial starts).
    pub fn forget_hold_downs(&mut self) {
        self.held_down.clear();
    }
    /// The node the client's entry for VIP `v` points at.
    pub fn client_entry(&self, v: usize) -> Option<usize> {
        self.client.entries[v].map(|e| e.node as usize)
    }
    /// Wrong-MAC time so far, summed over VIPs.
    pub fn wrong_mac_total(&self) -> Duration {
        let open: Duration = self
            .client
            .wrong_since
            .iter()
            .flatten()
            .map(|since| self.now - *since)
            .sum();
        self.client.wrong_closed + open
    }
    /// The longest single stretch of one VIP's wrong-MAC time after `from` (a stretch counts
    /// from `from` at the earliest), among the stretches still open or ended since the last
    /// [`World::forget_wrong_mac_stretches`].
    pub fn wrong_mac_longest_since(&self, from: Duration) -> Duration {
        let open = self
            .client
            .wrong_since
            .iter()
            .flatten()
            .map(|since| (*since, self.now));
        self.client
            .stretches
            .iter()
            .copied()
            .chain(open)
            .filter(|(_, end)| *end > from)
            .map(|(start, end)| end - start.max(from))
            .max()
            .unwrap_or_default()
    }
    /// Forgets the ended wrong-MAC stretches (a new trial starts).
    pub fn forget_wrong_mac_stretches(&mut self) {
        self.client.stretches.clear();
    }
    /// Starts watching for VIPs claimed from two partition groups at once (`groups[i]`: node
    /// i's group), see [`World::split_report`].
    pub fn watch_split(&mut self, groups: Vec<u32>) {
        let (multi, _) = self.claim_totals();
        let mut watch = SplitWatch {
            groups,
            split: BTreeSet::new(),
            last_end: self.now,
            multi_at_end: multi,
        };
        for v in 0..self.vips.len() {
            if self.split_now(&watch.groups, v) {
                watch.split.insert(v);
            }
        }
        self.split = Some(watch);
    }
    /// The fence delay and the dual-claim time after it, since [`World::watch_split`] (which
    /// it stops).
    pub fn split_report(&mut self) -> Option<SplitReport> {
        let (multi, _) = self.claim_totals();
        let watch = self.split.take()?;
        let fenced = watch.split.is_empty();
        Some(SplitReport {
            fence_delay: fenced.then_some(watch.last_end),
            dual_claim_after: fenced.then(|| multi - watch.multi_at_end),
        })
    }
    pub fn claimant_count(&self, v: usize) -> usize {
        usize::from(self.claimants[v])
    }
    /// Every node that is up sees node `j` as live.
    pub fn seen_by_all(&self, j: usize) -> bool {
        self.nodes
            .iter()
            .all(|n| !n.state.is_up() || n.live.get(j).copied().unwrap_or(false))
    }
    /// Node `i` sees every node that is up as live.
    pub fn knows_all_up(&self, i: usize) -> bool {
        (0..self.nodes.len()).all(|j| !self.nodes[j].state.is_up() || self.sees_live(i, j))
    }
    /// Every up node's view gives the true owner for every VIP.
    pub fn agreed(&self) -> bool {
        self.disagreements == 0
    }
    /// Every VIP is claimed by exactly its true owner and every view agrees.
    pub fn single_ownership(&self) -> bool {
        self.agreed()
            && (0..self.vips.len()).all(|v| {
                self.claimants[v] == 1 && self.truth[v] != NONE && {
                    let owner = self.truth[v] as usize;
                    self.eligible[owner]
                        && self.nodes[owner].state.is_up()
                        && self.nodes[owner].claimed.contains(&v)
                }
            })
    }
    /// Every up node's start-up hold is over and every view agrees.
    pub fn converged(&self) -> bool {
        self.agreed()
            && self
                .nodes
                .iter()
                .filter(|n| n.state.is_up())
                .all(|n| n.core.as_ref().is_some_and(|c| !c.holding()))
    }
    pub fn awaiting_failover(&self) -> usize {
        self.awaiting.len()
    }
    /// Forgets VIPs still waiting for a new owner (a new trial starts).
    pub fn clear_awaiting(&mut self) {
        self.awaiting.clear();
        self.failovers.clear();
    }
    /// The owner of VIP `v` when every eligible node is up.
    pub fn owner_all_up(&self, v: usize) -> Option<usize> {
        self.best_of(v, |j| self.eligible[j])
    }
    pub fn take_failovers(&mut self) -> Vec<(usize, Duration)> {
        std::mem::take(&mut self.failovers)
    }
    /// When node `i` at `generation` was first reported down by anyone.
    pub fn first_down(&self, i: usize, generation: u64) -> Option<Duration> {
        self.first_down.get(&(i, generation)).copied()
    }
    pub fn false_downs(&self) -> &[FalseDown] {
        &self.false_downs
    }
    pub fn events_handled(&self) -> u64 {
        self.events_handled
    }
    /// Total (datagrams, bytes) sent by every node so far.
    pub fn traffic_sent(&self) -> (u64, u64) {
        self.nodes
            .iter()
            .fold((0, 0), |(d, b), n| (d + n.datagrams_sent, b + n.bytes_sent))
    }
    /// Node-time spent up (running or paused) so far.
    pub fn up_time(&self) -> Duration {
        self.nodes
            .iter()
            .map(|n| {
                n.up_total
                    + if n.state.is_up() {
                        self.now - n.up_since
                    } else {
                        Duration::ZERO
                    }
            })
            .sum()
    }
    /// Accumulated time, summed over VIPs, with ≥ 2 claimants and with none.
    pub fn claim_totals(&mut self) -> (Duration, Duration) {
        for v in 0..self.vips.len() {
            self.account(v);
        }
        (self.multi_claim_total, self.no_owner_total)
    }
    /// How many VIPs each node owns when every node is up (rendezvous over all eligible).
    pub fn vips_per_node_all_up(&self) -> Vec<usize> {
        let n = self.nodes.len();
        let mut load = vec![0; n];
        for v in 0..self.vips.len() {
            if let Some(best) = self.best_of(v, |j| self.eligible[j]) {
                load[best] += 1;
            }
        }
        load
    }

    /// Starts or stops keeping [`Observation`]s (off by default: long runs would pile them up).
    pub fn record(&mut self, on: bool) {
        self.recording = on;
    }
    /// Everything observed since the last call.
    pub fn take_observations(&mut self) -> Vec<Observed> {
        std::mem::take(&mut self.observations)
    }
    /// Starts keeping a copy of every datagram sent (before loss), as an on-path listener would.
    pub fn start_capture(&mut self) {
        self.capture = Some(Vec::new());
    }
    /// Stops capturing and returns what was captured.
    pub fn take_capture(&mut self) -> Vec<Captured> {
        self.capture.take().unwrap_or_default()
    }
    /// Sends `bytes` to node `to` now, as if from `from`, past every loss and partition:
    /// an attacker's datagram.
    pub fn inject(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        self.push(
            self.now,
            Event::Deliver {
                from: from as u32,
                to: to as u32,
                bytes,
            },
        );
    }
    /// Counts member-list frames node `i` receives, by sender (see [`World::member_list_bytes`]).
    pub fn watch(&mut self, i: usize) {
        self.watched = Some(i);
    }
    /// Bytes of member-list frames that reached the watched node `i`'s socket, by sender.
    pub fn member_list_bytes(&self, i: usize) -> &BTreeMap<usize, u64> {
        &self.nodes[i].member_list_bytes
    }
    /// Datagrams node `i`'s full receive queue dropped.
    pub fn queue_drops(&self, i: usize) -> u64 {
        self.nodes[i].queue_drops
    }
    /// Node `i`'s view: is `j` live?
    pub fn sees_live(&self, i: usize, j: usize) -> bool {
        self.nodes[i].live.get(j).copied().unwrap_or(false)
    }

    // ----- lifecycle -------------------------------------------------------------------------

    /// Starts node `i` (first start or restart with a new generation), joining through `peers`.
    pub fn start(&mut self, i: usize, peers: &[usize]) {
        let generation = self.nodes[i].generation + 1;
        self.start_with_generation(i, peers, generation);
    }

    /// Starts node `i` with the given generation, which may be lower than its last one (a
    /// wall clock stepped back between two runs).
    pub fn start_with_generation(&mut self, i: usize, peers: &[usize], generation: u64) {
        if self.nodes[i].state.is_up() {
            return;
        }
        let now = self.now;
        let n = self.nodes.len();
        let node = &mut self.nodes[i];
        node.generation = generation;
        node.incarnation = node.incarnation.wrapping_add(1);
        let id = NodeId::new(node.name.clone(), node.addr, node.generation);
        let seeds = Seeds::from_u64(mix(self.seed, i as u64, node.generation));
        let mut member =
            Membership::new(id, self.timing.clone(), KeyRing::new(1, CLUSTER_KEY), seeds);
        // The whole cluster is expected: a member seeing fewer than a majority live is
        // isolated (NoQuorum) and its speaker fences.
        member.set_expected_members(now, n);
        let peer_addrs: Vec<SocketAddr> = peers.iter().map(|&p| self.addr_of(p)).collect();
        member.join(now, &peer_addrs);
        let has_peers = peers.iter().any(|&p| p != i);
        let at = self.instant(now);
        let mut core = SpeakerCore::new(
            CoreConfig {
                node: self.nodes[i].name.clone(),
                schedule: BurstSchedule::default(),
                fencing: Some(ProbePolicy::default()),
                flap: Some(FlapPolicy::default()),
            },
            StartupHold::known_at(self.hold_times, at, has_peers),
        );
        core.set_placement(at, self.placement.clone());
        core.set_live(at, &member.live_names());
        let node = &mut self.nodes[i];
        node.member = Some(member);
        node.core = Some(core);
        node.core_timer_at = None;
        node.held_link.clear();
        node.state = NodeState::Running;
        node.timer_at = None;
        node.held.clear();
        node.live = vec![false; n];
        node.live[i] = true;
        let own = if self.eligible[i] { i as u32 } else { NONE };
        node.view_owner = vec![own; self.vips.len()];
        node.up_since = now;
        for v in 0..self.vips.len() {
            if self.nodes[i].view_owner[v] != self.truth[v] {
                self.disagreements += 1;
            }
        }
        self.truth_node_up(i);
        self.collect(i);
    }

    /// Kills node `i`'s process: no goodbye, its queued timers and datagrams are lost.
    pub fn crash(&mut self, i: usize) {
        if !self.nodes[i].state.is_up() {
            return;
        }
        self.stop(i, NodeState::Crashed);
    }

    /// Node `i` leaves the cluster gracefully, then its process stops.
    pub fn leave(&mut self, i: usize) {
        if self.nodes[i].state != NodeState::Running {
            return;
        }
        let now = self.now;
        let at = self.instant(now);
        // The speaker releases its VIPs, then leaves the membership.
        if let Some(core) = self.nodes[i].core.as_mut() {
            core.stop(at);
        }
        self.drive_core(i);
        if let Some(member) = self.nodes[i].member.as_mut() {
            // An error here only means foca had nobody to tell.
            let _ = member.leave(now);
        }
        self.collect(i);
        self.stop(i, NodeState::Left);
    }

    /// Freezes node `i` for `duration`: timers and datagrams wait until it resumes.
    pub fn pause(&mut self, i: usize, duration: Duration) {
        if self.nodes[i].state != NodeState::Running {
            return;
        }
        let node = &mut self.nodes[i];
        node.state = NodeState::Paused;
        node.timer_at = None;
        node.core_timer_at = None;
        let incarnation = node.incarnation;
        self.push(
            self.now + duration,
            Event::Resume {
                node: i as u32,
                incarnation,
            },
        );
    }

    fn stop(&mut self, i: usize, state: NodeState) {
        let now = self.now;
        let node = &mut self.nodes[i];
        node.state = state;
        node.member = None;
        // The process is gone, and its claims with it.
        node.core = None;
        node.core_timer_at = None;
        node.held_link.clear();
        let claimed = std::mem::take(&mut node.claimed);
        node.stopped_at = now;
        node.incarnation = node.incarnation.wrapping_add(1);
        node.timer_at = None;
        node.held.clear();
        node.queued = 0;
        node.up_total += now - node.up_since;
        for v in 0..self.vips.len() {
            if self.nodes[i].view_owner[v] != self.truth[v] {
                self.disagreements -= 1;
            }
        }
        for v in claimed {
            self.add_claim(v, -1);
        }
        self.truth_node_down(i);
    }

    // ----- running ---------------------------------------------------------------------------

    pub fn run_until(&mut self, end: Duration) {
        self.run_while(end, |_| false);
    }

    /// Runs events up to `end`, stopping early (and returning true) as soon as `done` holds.
    pub fn run_while(&mut self, end: Duration, done: impl Fn(&World) -> bool) -> bool {
        if done(self) {
            return true;
        }
        while let Some(Reverse(top)) = self.queue.peek() {
            if top.at > end {
                break;
            }
            let Some(Reverse(Queued { at, event, .. })) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.events_handled += 1;
            self.dispatch(at, event);
            if done(self) {
                return true;
            }
        }
        self.now = self.now.max(end);
        false
    }

    fn dispatch(&mut self, at: Duration, event: Event) {
        match event {
            Event::Deliver { from, to, bytes } => self.arrive(at, from, to as usize, bytes),
            Event::Receive {
                to,
                incarnation,
                bytes,
            } => {
                let to = to as usize;
                let node = &mut self.nodes[to];
                if node.incarnation != incarnation {
                    return;
                }
                node.queued = node.queued.saturating_sub(1);
                self.receive(at, to, bytes);
            }
            Event::Timer { node, incarnation } => {
                let i = node as usize;
                let n = &mut self.nodes[i];
                if n.incarnation != incarnation
                    || n.state != NodeState::Running
                    || n.timer_at != Some(at)
                {
                    return;
                }
                n.timer_at = None;
                if let Some(member) = n.member.as_mut() {
                    member.advance(at);
                }
                self.collect(i);
            }
            Event::Resume { node, incarnation } => {
                let i = node as usize;
                let n = &mut self.nodes[i];
                if n.incarnation != incarnation || n.state != NodeState::Paused {
                    return;
                }
                n.state = NodeState::Running;
                let held = std::mem::take(&mut n.held);
                let held_link = std::mem::take(&mut n.held_link);
                if let Some(member) = n.member.as_mut() {
                    // The socket buffer is read first, then overdue timers fire.
                    for bytes in &held {
                        let _ = member.handle_datagram(at, bytes);
                    }
                    member.advance(at);
                }
                let instant = self.instant(at);
                if let Some(core) = self.nodes[i].core.as_mut() {
                    for v in held_link {
                        core.foreign_claim(instant, self.vips[v]);
                    }
                    core.tick(instant);
                }
                self.collect(i);
            }
            Event::CoreTimer { node, incarnation } => {
                let i = node as usize;
                let n = &mut self.nodes[i];
                if n.incarnation != incarnation
                    || n.state != NodeState::Running
                    || n.core_timer_at != Some(at)
                {
                    return;
                }
                n.core_timer_at = None;
                let instant = self.instant(at);
                if let Some(core) = self.nodes[i].core.as_mut() {
                    core.tick(instant);
                }
                self.drive_core(i);
            }
            Event::LinkFrame {
                to,
                incarnation,
                vip,
            } => {
                let (i, v) = (to as usize, vip as usize);
                let instant = self.instant(at);
                let n = &mut self.nodes[i];
                if n.incarnation != incarnation || !self.network.on_link(i) {
                    return;
                }
                match n.state {
                    NodeState::Running => {
                        if let Some(core) = n.core.as_mut() {
                            core.foreign_claim(instant, self.vips[v]);
                        }
                        self.drive_core(i);
                    }
                    NodeState::Paused => n.held_link.push(v),
                    NodeState::Crashed | NodeState::Left => {}
                }
            }
            Event::ClientCheck { vip } => self.client_check(vip as usize),
        }
    }

    /// A datagram reaches node `to`'s socket: read at once, or through the bounded receive
    /// queue when the network has one (a full queue drops it, like a full socket buffer).
    fn arrive(&mut self, at: Duration, from: u32, to: usize, bytes: Vec<u8>) {
        if self.watched == Some(to) && self.nodes[to].state.is_up() {
            self.count_member_list(from as usize, to, &bytes);
        }
        let Some(queue) = self.network.receive_queue else {
            self.receive(at, to, bytes);
            return;
        };
        let node = &mut self.nodes[to];
        match node.state {
            NodeState::Running => {}
            // A frozen process reads nothing: what arrives waits in the same bounded buffer.
            NodeState::Paused => {
                if node.held.len() + node.queued >= queue.capacity {
                    node.queue_drops += 1;
                } else {
                    node.held.push(bytes);
                }
                return;
            }
            NodeState::Crashed | NodeState::Left => return,
        }
        if node.queued == 0 && node.busy_until <= at {
            node.busy_until = at + queue.per_datagram;
            self.receive(at, to, bytes);
            return;
        }
        if node.queued >= queue.capacity {
            node.queue_drops += 1;
            return;
        }
        node.queued += 1;
        let start = node.busy_until.max(at);
        node.busy_until = start + queue.per_datagram;
        let incarnation = node.incarnation;
        self.push(
            start,
            Event::Receive {
                to: to as u32,
                incarnation,
                bytes,
            },
        );
    }

    /// Node `to`'s process reads one datagram (a frozen one keeps it for when it resumes).
    fn receive(&mut self, at: Duration, to: usize, bytes: Vec<u8>) {
        match self.nodes[to].state {
            NodeState::Running => {
                if let Some(member) = self.nodes[to].member.as_mut() {
                    // Drops are counted by the core itself; nothing else to do.
                    let _ = member.handle_datagram(at, &bytes);
                }
                self.collect(to);
            }
            NodeState::Paused => self.nodes[to].held.push(bytes),
            NodeState::Crashed | NodeState::Left => {}
        }
    }

    /// Adds a member-list frame's bytes to the watched node's count, by sender.
    fn count_member_list(&mut self, from: usize, to: usize, bytes: &[u8]) {
        let Ok(payload) = self.keyring.open(bytes) else {
            return;
        };
        if payload.first() != Some(&MEMBERS_FRAME) {
            return;
        }
        *self.nodes[to].member_list_bytes.entry(from).or_default() += bytes.len() as u64;
    }

    /// Virtual time `at` as the speaker cores see it.
    fn instant(&self, at: Duration) -> Instant {
        self.base + at
    }

    fn vip_index(&self, vip: IpAddr) -> Option<usize> {
        let IpAddr::V4(v4) = vip else {
            return None;
        };
        let index = u32::from(v4).checked_sub(VIP_BASE)? as usize;
        (index < self.vips.len()).then_some(index)
    }

    /// Executes every effect node `i`'s speaker core has queued, and schedules its next
    /// deadline.
    fn drive_core(&mut self, i: usize) {
        while let Some(effect) = self.nodes[i]
            .core
            .as_mut()
            .and_then(SpeakerCore::poll_effect)
        {
            self.execute(i, effect);
        }
        let now = self.now;
        let node = &mut self.nodes[i];
        if node.state != NodeState::Running {
            return;
        }
        let Some(deadline) = node
            .core
            .as_ref()
            .and_then(|core| core.next_deadline(self.base + now))
        else {
            return;
        };
        // A deadline already past runs at once (but never twice at the same instant).
        let at = deadline
            .saturating_duration_since(self.base)
            .max(now + Duration::from_micros(1));
        if node.core_timer_at.is_none_or(|pending| at < pending) {
            node.core_timer_at = Some(at);
            let incarnation = node.incarnation;
            self.push(
                at,
                Event::CoreTimer {
                    node: i as u32,
                    incarnation,
                },
            );
        }
    }

    fn execute(&mut self, i: usize, effect: Effect) {
        match effect {
            Effect::Claim { vip, .. } => {
                let Some(v) = self.vip_index(vip) else { return };
                if self.nodes[i].claimed.insert(v) {
                    self.claims_made[v] += 1;
                    self.add_claim(v, 1);
                    self.note_claim(i, v);
                    self.check_failover(i, v);
                }
            }
            Effect::Release { vip, .. } => {
                let Some(v) = self.vip_index(vip) else { return };
                if self.nodes[i].claimed.remove(&v) {
                    self.add_claim(v, -1);
                }
            }
            Effect::Announce(vip) => {
                let Some(v) = self.vip_index(vip) else { return };
                if self.network.on_link(i) {
                    self.announce(i, v);
                }
            }
            Effect::Probe(vip) => {
                let Some(v) = self.vip_index(vip) else { return };
                if !self.network.on_link(i) {
                    return;
                }
                let answered = self.nodes.iter().enumerate().any(|(j, node)| {
                    j != i
                        && node.state == NodeState::Running
                        && self.network.on_link(j)
                        && node.claimed.contains(&v)
                });
                if answered {
                    let incarnation = self.nodes[i].incarnation;
                    self.push(
                        self.now + LINK_LATENCY,
                        Event::LinkFrame {
                            to: i as u32,
                            incarnation,
                            vip: v as u32,
                        },
                    );
                }
            }
            Effect::Notice(Notice::HeldDown { member }) => {
                if let Some(j) = self.index_by_name.get(&member).copied() {
                    self.held_down.entry((j, i)).or_insert(self.now);
                }
            }
            Effect::Notice(_) => {}
        }
    }

    /// Node `i`'s gratuitous round for VIP `v` reaches the client and the other nodes on the
    /// link that care: those claiming it and those fenced.
    fn announce(&mut self, i: usize, v: usize) {
        self.client.entries[v] = Some(ClientEntry {
            node: i as u32,
            heard: self.now,
        });
        self.update_wrong(v);
        let listeners: Vec<(usize, u32)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, node)| {
                *j != i
                    && node.state.is_up()
                    && self.network.on_link(*j)
                    && (node.claimed.contains(&v)
                        || node.core.as_ref().is_some_and(|c| c.fenced().is_some()))
            })
            .map(|(j, node)| (j, node.incarnation))
            .collect();
        for (j, incarnation) in listeners {
            self.push(
                self.now + LINK_LATENCY,
                Event::LinkFrame {
                    to: j as u32,
                    incarnation,
                    vip: v as u32,
                },
            );
        }
    }

    /// The client looks at its entry for VIP `v`: an expired or absent one is resolved by a
    /// request the running claimants on the link answer, in node order, the last answer winning.
    fn client_check(&mut self, v: usize) {
        let now = self.now;
        if let Some(entry) = self.client.entries[v]
            && entry.heard + CLIENT_ENTRY_TTL > now
        {
            self.push(
                entry.heard + CLIENT_ENTRY_TTL,
                Event::ClientCheck { vip: v as u32 },
            );
            return;
        }
        let answer = (0..self.nodes.len()).rev().find(|&j| {
            self.nodes[j].state == NodeState::Running
                && self.network.on_link(j)
                && self.nodes[j].claimed.contains(&v)
        });
        self.client.entries[v] = answer.map(|j| ClientEntry {
            node: j as u32,
            heard: now,
        });
        self.update_wrong(v);
        let next = if answer.is_some() {
            now + CLIENT_ENTRY_TTL
        } else {
            now + CLIENT_RETRY
        };
        self.push(next, Event::ClientCheck { vip: v as u32 });
    }

    /// Opens or closes VIP `v`'s wrong-MAC stretch after its entry or true owner changed.
    fn update_wrong(&mut self, v: usize) {
        let truth = self.truth[v];
        let wrong = truth != NONE && self.client.entries[v].is_some_and(|e| e.node != truth);
        let now = self.now;
        let client = &mut self.client;
        match (client.wrong_since[v], wrong) {
            (None, true) => client.wrong_since[v] = Some(now),
            (Some(since), false) => {
                client.wrong_since[v] = None;
                client.wrong_closed += now - since;
                client.stretches.push((since, now));
            }
            _ => {}
        }
    }

    fn push(&mut self, at: Duration, event: Event) {
        debug_assert!(
            at >= self.now,
            "pushed into the past: {at:?} < {:?}",
            self.now
        );
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn addr_of(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }

    fn index_of_addr(&self, addr: SocketAddr) -> Option<usize> {
        let IpAddr::V4(v4) = addr.ip() else {
            return None;
        };
        let index = u32::from(v4).checked_sub(NODE_BASE)? as usize;
        (index < self.nodes.len() && addr.port() == GOSSIP_PORT).then_some(index)
    }

    /// Takes everything node `i`'s core produced: datagrams onto the network, membership
    /// events into its view, and its next timer into the queue.
    fn collect(&mut self, i: usize) {
        let now = self.now;
        let mut outgoing = Vec::new();
        let mut events = Vec::new();
        if let Some(member) = self.nodes[i].member.as_mut() {
            while let Some(datagram) = member.poll_datagram() {
                outgoing.push(datagram);
            }
            while let Some(event) = member.poll_event() {
                events.push(event);
            }
        }
        for datagram in outgoing {
            let node = &mut self.nodes[i];
            node.datagrams_sent += 1;
            node.bytes_sent += datagram.bytes.len() as u64;
            let Some(to) = self.index_of_addr(datagram.to) else {
                continue;
            };
            if let Some(capture) = self.capture.as_mut() {
                capture.push(Captured {
                    from: i,
                    to,
                    bytes: datagram.bytes.clone(),
                });
            }
            if let Some(delay) = self.network.transit(i, to, &mut self.nodes[i].rng) {
                self.push(
                    now + delay,
                    Event::Deliver {
                        from: i as u32,
                        to: to as u32,
                        bytes: datagram.bytes,
                    },
                );
            }
        }
        let live_changed = events.iter().any(|event| {
            matches!(
                event,
                MembershipEvent::Up(_)
                    | MembershipEvent::Down(_)
                    | MembershipEvent::Rejoined { .. }
                    | MembershipEvent::Renewed(_)
            )
        });
        let at = self.instant(now);
        for event in events {
            // The core sees each event before the new live set, as the daemon feeds it: a
            // returning member's hold-down is known before it could take its VIPs back.
            if let Some(core) = self.nodes[i].core.as_mut() {
                core.membership_event(at, &event);
            }
            self.apply_event(i, event);
        }
        if live_changed {
            let node = &mut self.nodes[i];
            if let (Some(core), Some(member)) = (node.core.as_mut(), node.member.as_ref()) {
                core.set_live(at, &member.live_names());
            }
        }
        self.drive_core(i);
        let node = &mut self.nodes[i];
        if node.state == NodeState::Running
            && let Some(deadline) = node.member.as_ref().and_then(|m| m.next_deadline())
            // An overdue deadline runs now: the queue never goes back in time.
            && let deadline = deadline.max(now)
            && node.timer_at.is_none_or(|at| deadline < at)
        {
            node.timer_at = Some(deadline);
            let incarnation = node.incarnation;
            self.push(
                deadline,
                Event::Timer {
                    node: i as u32,
                    incarnation,
                },
            );
        }
    }

    fn apply_event(&mut self, i: usize, event: MembershipEvent) {
        match event {
            MembershipEvent::Up(id) | MembershipEvent::Rejoined { new: id, .. } => {
                // Dead: stopped for longer than any member takes to declare it down. A member
                // that joins just after a crash and hears from a peer that has not noticed it
                // yet learns stale news, not a revival.
                let dead_after = self.timing.probe_period * 4
                    + self.timing.suspicion_timeouts(self.nodes.len()).max;
                if let Some(j) = self.index_by_name.get(&id.name).copied()
                    && !self.nodes[j].state.is_up()
                    && self.now >= self.nodes[j].stopped_at + dead_after
                {
                    self.observe(Observation::Revived {
                        observer: i,
                        node: j,
                        generation: id.generation,
                    });
                }
                self.sync_live(i, &id.name);
            }
            MembershipEvent::Down(id) => {
                if let Some(j) = self.index_by_name.get(&id.name).copied() {
                    let target = &self.nodes[j];
                    let alive = target.state.is_up() && target.generation == id.generation;
                    self.observe(Observation::Down {
                        observer: i,
                        node: j,
                        generation: id.generation,
                        alive,
                    });
                    let key = (j, id.generation);
                    if !self.first_down.contains_key(&key) {
                        self.first_down.insert(key, self.now);
                        let target = &self.nodes[j];
                        // Downs across a partition are expected, not false.
                        if target.state.is_up()
                            && target.generation == id.generation
                            && self.network.groups.is_empty()
                        {
                            self.false_downs.push(FalseDown {
                                node: j,
                                generation: id.generation,
                                at: self.now,
                            });
                        }
                    }
                }
                self.sync_live(i, &id.name);
            }
            // Declared down while alive, foca renewed the identity: track the new generation.
            MembershipEvent::Renewed(id) => {
                self.nodes[i].generation = self.nodes[i].generation.max(id.generation);
                self.observe(Observation::Renewed {
                    observer: i,
                    generation: id.generation,
                });
            }
            MembershipEvent::Suspect(id) => {
                if let Some(j) = self.index_by_name.get(&id.name).copied() {
                    self.observe(Observation::Suspect {
                        observer: i,
                        node: j,
                    });
                }
            }
            MembershipEvent::Connected
            | MembershipEvent::Isolated
            | MembershipEvent::Reachability(_) => {}
        }
    }

    /// Brings node `i`'s view of `name` in line with its membership core.
    fn sync_live(&mut self, i: usize, name: &str) {
        let Some(j) = self.index_by_name.get(name).copied() else {
            return;
        };
        let Some(live) = self.nodes[i].member.as_ref().map(|m| m.is_live(name)) else {
            return;
        };
        if live == self.nodes[i].live[j] {
            return;
        }
        self.nodes[i].live[j] = live;
        let n = self.nodes.len();
        if live {
            if !self.eligible[j] {
                return;
            }
            for v in 0..self.vips.len() {
                let current = self.nodes[i].view_owner[v];
                if current == NONE || self.beats(v, j, current as usize) {
                    self.set_view(i, v, j as u32);
                }
            }
        } else {
            for v in 0..self.vips.len() {
                if self.nodes[i].view_owner[v] == j as u32 {
                    let row = &self.scores[v * n..(v + 1) * n];
                    let live = &self.nodes[i].live;
                    let best = best_in_row(row, |k| live[k] && self.eligible[k]);
                    self.set_view(i, v, best.map_or(NONE, |b| b as u32));
                }
            }
        }
    }

    fn set_view(&mut self, i: usize, v: usize, owner: u32) {
        let old = self.nodes[i].view_owner[v];
        if old == owner {
            return;
        }
        let truth = self.truth[v];
        if old != truth {
            self.disagreements -= 1;
        }
        if owner != truth {
            self.disagreements += 1;
        }
        self.nodes[i].view_owner[v] = owner;
    }

    /// Records a claim of a VIP that another running node really owns.
    fn note_claim(&mut self, i: usize, v: usize) {
        let owner = self.truth[v];
        if owner != NONE && owner != i as u32 && self.nodes[owner as usize].state.is_up() {
            self.observe(Observation::Takeover {
                vip: v,
                by: i,
                owner: owner as usize,
            });
        }
    }

    fn observe(&mut self, what: Observation) {
        if self.recording {
            self.observations.push(Observed { at: self.now, what });
        }
    }

    fn check_failover(&mut self, i: usize, v: usize) {
        if self.truth[v] == i as u32
            && let Some(since) = self.awaiting.remove(&v)
        {
            self.failovers.push((v, self.now - since));
        }
    }

    fn add_claim(&mut self, v: usize, delta: i32) {
        self.account(v);
        let before = self.claimants[v];
        let count = i32::from(before) + delta;
        self.claimants[v] = u16::try_from(count.max(0)).unwrap_or(u16::MAX);
        match (before, self.claimants[v]) {
            (0, 1..) => self.unclaimed -= 1,
            (1.., 0) => self.unclaimed += 1,
            _ => {}
        }
        self.update_split(v);
    }

    /// Whether VIP `v` is claimed from two partition groups or more.
    fn split_now(&self, groups: &[u32], v: usize) -> bool {
        let mut seen = None;
        for (i, node) in self.nodes.iter().enumerate() {
            if node.claimed.contains(&v) {
                let group = groups.get(i).copied().unwrap_or(0);
                match seen {
                    None => seen = Some(group),
                    Some(g) if g != group => return true,
                    Some(_) => {}
                }
            }
        }
        false
    }

    fn update_split(&mut self, v: usize) {
        let Some(watch) = self.split.as_ref() else {
            return;
        };
        let split = self.split_now(&watch.groups, v);
        let was_empty = watch.split.is_empty();
        let Some(watch) = self.split.as_mut() else {
            return;
        };
        if split {
            watch.split.insert(v);
            return;
        }
        if watch.split.remove(&v) && !was_empty && watch.split.is_empty() {
            watch.last_end = self.now;
            // The dual-claim total up to now, without disturbing the per-VIP accounting.
            let open: Duration = (0..self.vips.len())
                .filter(|&u| self.claimants[u] >= 2)
                .map(|u| self.now - self.claim_since[u])
                .sum();
            if let Some(watch) = self.split.as_mut() {
                watch.multi_at_end = self.multi_claim_total + open;
            }
        }
    }

    fn account(&mut self, v: usize) {
        let spent = self.now - self.claim_since[v];
        match self.claimants[v] {
            0 => self.no_owner_total += spent,
            1 => {}
            _ => self.multi_claim_total += spent,
        }
        self.claim_since[v] = self.now;
    }

    /// True when node `a` outranks node `b` for VIP `v`: higher score, then smaller name.
    fn beats(&self, v: usize, a: usize, b: usize) -> bool {
        let n = self.nodes.len();
        (self.scores[v * n + a], Reverse(a)) > (self.scores[v * n + b], Reverse(b))
    }

    fn best_of(&self, v: usize, candidate: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.nodes.len();
        best_in_row(&self.scores[v * n..(v + 1) * n], candidate)
    }

    fn truth_node_up(&mut self, j: usize) {
        if !self.eligible[j] {
            return;
        }
        for v in 0..self.vips.len() {
            let current = self.truth[v];
            if current == NONE || self.beats(v, j, current as usize) {
                self.set_truth(v, j as u32);
            }
        }
    }

    fn truth_node_down(&mut self, j: usize) {
        for v in 0..self.vips.len() {
            if self.truth[v] == j as u32 {
                let best = self.best_of(v, |k| self.eligible[k] && self.nodes[k].state.is_up());
                self.set_truth(v, best.map_or(NONE, |b| b as u32));
                self.awaiting.insert(v, self.now);
                // The successor may already be announcing it (its view was ahead).
                if let Some(b) = best
                    && self.nodes[b].claimed.contains(&v)
                {
                    self.check_failover(b, v);
                }
            }
        }
    }

    fn set_truth(&mut self, v: usize, owner: u32) {
        let old = self.truth[v];
        if old == owner {
            return;
        }
        self.truth[v] = owner;
        self.update_wrong(v);
        for node in self.nodes.iter().filter(|n| n.state.is_up()) {
            let view = node.view_owner[v];
            if view != old {
                self.disagreements -= 1;
            }
            if view != owner {
                self.disagreements += 1;
            }
        }
    }
}

/// The index of the highest score in `row` among candidates (ties: smallest index).
fn best_in_row(row: &[u64], candidate: impl Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (k, &score) in row.iter().enumerate() {
        if candidate(k) && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, k));
        }
    }
    best.map(|(_, k)| k)
}
