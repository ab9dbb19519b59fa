//! The sans-io membership core: foca's SWIM behind the sealed envelope, with its own timer queue.
//!
//! Bytes and the current time go in ([`Membership::handle_datagram`], [`Membership::advance`]);
//! datagrams to send ([`Membership::poll_datagram`]) and membership events
//! ([`Membership::poll_event`]) come out, and [`Membership::next_deadline`] says when to call
//! `advance` again. Time is a [`Duration`] since any origin the caller picks, so the tokio driver
//! and the simulator's virtual clock drive the very same code.
//!
//! Timers fire in (deadline, submission order) order, foca's runtime is drained after every
//! call, and whenever a member is learned to be down the news is gossiped at once instead of
//! waiting for the next periodic round.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, Timer};
use rand::SeedableRng;
use rand::rngs::{ChaCha20Rng, Xoshiro256PlusPlus};
use tracing::{debug, trace};

use crate::envelope::{DropCounts, DropReason, KeyRing};
use crate::identity::NodeId;
use crate::preset::Timing;

/// What the membership layer tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A member became live.
    Up(NodeId),
    /// This member's probe of `NodeId` went unanswered, directly and indirectly: it is now
    /// suspected and will be declared down unless it refutes in time.
    Suspect(NodeId),
    /// A member was declared down (crashed, partitioned away, or left).
    Down(NodeId),
    /// A member came back with a newer generation, replacing its old identity at once.
    Rejoined { old: NodeId, new: NodeId },
    /// This member was declared down by the others and rejoined with a new generation.
    Renewed(NodeId),
    /// This member is known to at least one other live member.
    Connected,
    /// This member knows no other live member.
    Isolated,
}

/// A datagram for the transport to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Traffic counters, for metrics and the simulator's bandwidth report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub datagrams_received: u64,
    pub bytes_received: u64,
}

/// Where the two random streams of a member come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    /// Drives foca's choices (probe order, gossip targets): fixed in tests and simulations.
    pub membership: u64,
    /// Drives envelope nonces (ChaCha20): must differ between members sharing a key.
    pub nonce: [u8; 32],
}

impl Seeds {
    /// Seeds from the operating system's entropy, for real deployments.
    pub fn from_entropy() -> Self {
        let mut os = rand::make_rng::<ChaCha20Rng>();
        Self {
            membership: rand::Rng::next_u64(&mut os),
            nonce: {
                let mut nonce = [0u8; 32];
                rand::Rng::fill_bytes(&mut os, &mut nonce);
                nonce
            },
        }
    }

    /// Deterministic seeds derived from one number, for tests and simulations.
    pub fn from_u64(seed: u64) -> Self {
        let mut expand = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut nonce = [0u8; 32];
        rand::Rng::fill_bytes(&mut expand, &mut nonce);
        Self {
            membership: seed,
            nonce,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("membership protocol error: {0}")]
    Protocol(#[from] foca::Error),
}

/// First byte of every sealed payload.
const FRAME_SWIM: u8 = 0;
/// "Here I am, announce yourself to me": how a member joins through peers it knows only by
/// address (foca's own announce needs the peer's name).
const FRAME_JOIN: u8 = 1;
/// Part of the member list, sent in answer to a join. foca's own reply to an announce carries
/// only as many members as fit one datagram (about forty), so without this a member joining a
/// large cluster would learn the rest over minutes of probes, and meanwhile believe itself the
/// owner of VIPs that belong to members it has not heard of.
const FRAME_MEMBERS: u8 = 2;
/// Room kept for the frame byte and postcard's length prefix in a member-list datagram.
const MEMBERS_FRAME_SLACK: usize = 8;

/// A sealed payload: the frame kind, then its body.
fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(body.len() + 1);
    payload.push(kind);
    payload.extend_from_slice(body);
    payload
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CoreTimer {
    Swim(Timer<NodeId>),
    Rejoin,
}

type Swim = Foca<NodeId, PostcardCodec, Xoshiro256PlusPlus, NoCustomBroadcast>;

pub struct Membership {
    swim: Swim,
    runtime: AccumulatingRuntime<NodeId>,
    timing: Timing,
    keyring: KeyRing,
    nonces: ChaCha20Rng,
    now: Duration,
    timers: BTreeMap<(Duration, u64), CoreTimer>,
    timer_seq: u64,
    /// Live members other than this one, by node name.
    live: BTreeMap<String, NodeId>,
    /// Cluster size foca's scaled timings were last computed for.
    sized_for: usize,
    join_peers: Vec<SocketAddr>,
    /// When each joiner was last sent the member list, so replayed or repeated joins cannot
    /// make this member send it more than once per `rejoin_interval`.
    member_list_sent: BTreeMap<String, Duration>,
    rejoin_scheduled: bool,
    left: bool,
    outbox: VecDeque<Datagram>,
    events: VecDeque<MembershipEvent>,
    drops: DropCounts,
    traffic: TrafficCounts,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("identity", self.swim.identity())
            .field("live", &self.live.len())
            .finish_non_exhaustive()
    }
}

impl Membership {
    pub fn new(identity: NodeId, timing: Timing, keyring: KeyRing, seeds: Seeds) -> Self {
        let swim = Foca::new(
            identity,
            timing.foca_config(1),
            Xoshiro256PlusPlus::seed_from_u64(seeds.membership),
            PostcardCodec,
        );
        Self {
            swim,
            runtime: AccumulatingRuntime::new(),
            timing,
            keyring,
            nonces: ChaCha20Rng::from_seed(seeds.nonce),
            now: Duration::ZERO,
            timers: BTreeMap::new(),
            timer_seq: 0,
            live: BTreeMap::new(),
            sized_for: 1,
            join_peers: Vec::new(),
            member_list_sent: BTreeMap::new(),
            rejoin_scheduled: false,
            left: false,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            drops: DropCounts::default(),
            traffic: TrafficCounts::default(),
        }
    }

    pub fn identity(&self) -> &NodeId {
        self.swim.identity()
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Asks `peers` to let this member in, and keeps asking every `rejoin_interval` while it
    /// knows no live member.
    pub fn join(&mut self, now: Duration, peers: &[SocketAddr]) {
        self.set_now(now);
        let own = self.identity().addr;
        self.join_peers = peers.iter().copied().filter(|p| *p != own).collect();
        self.send_joins();
        if !self.rejoin_scheduled {
            self.rejoin_scheduled = true;
            self.schedule(self.timing.rejoin_interval, CoreTimer::Rejoin);
        }
    }

    /// Leaves the cluster: tells other members this one is down, then stays silent.
    pub fn leave(&mut self, now: Duration) -> Result<(), MembershipError> {
        self.set_now(now);
        self.left = true;
        let result = self.swim.leave_cluster(&mut self.runtime);
        self.drain();
        result?;
        Ok(())
    }

    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Feeds one received datagram. A datagram that is not authentic, not well-formed or not
    /// acceptable is dropped, counted and reported; it never reaches the protocol state.
    pub fn handle_datagram(&mut self, now: Duration, bytes: &[u8]) -> Result<(), DropReason> {
        self.set_now(now);
        self.traffic.datagrams_received += 1;
        self.traffic.bytes_received += bytes.len() as u64;
        let result = self.accept(bytes);
        if let Err(reason) = result {
            trace!(%reason, len = bytes.len(), "dropped datagram");
            self.drops.record(reason);
        }
        self.drain();
        result
    }

    fn accept(&mut self, bytes: &[u8]) -> Result<(), DropReason> {
        if self.left {
            return Err(DropReason::Refused);
        }
        let payload = self.keyring.open(bytes)?;
        match payload.split_first() {
            Some((&FRAME_SWIM, swim)) => {
                self.swim
                    .handle_data(swim, &mut self.runtime)
                    .map_err(|error| match error {
                        foca::Error::MalformedPacket | foca::Error::Decode(_) => {
                            DropReason::Malformed
                        }
                        _ => DropReason::Refused,
                    })
            }
            Some((&FRAME_JOIN, body)) => {
                let joiner: NodeId =
                    postcard::from_bytes(body).map_err(|_| DropReason::Malformed)?;
                if joiner.name == self.identity().name {
                    return Err(DropReason::Refused);
                }
                self.send_member_list(&joiner);
                self.swim
                    .announce(joiner, &mut self.runtime)
                    .map_err(|_| DropReason::Refused)
            }
            Some((&FRAME_MEMBERS, body)) => {
                let members: Vec<foca::Member<NodeId>> =
                    postcard::from_bytes(body).map_err(|_| DropReason::Malformed)?;
                // Not re-broadcast: the sender's cluster already knows all of them.
                self.swim
                    .apply_many(members.into_iter(), false, &mut self.runtime)
                    .map_err(|_| DropReason::Refused)
            }
            _ => Err(DropReason::Malformed),
        }
    }

    /// When [`Membership::advance`] next has work to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.keys().next().map(|(deadline, _)| *deadline)
    }

    /// Moves time forward to `now`, firing every timer due by then in order.
    pub fn advance(&mut self, now: Duration) {
        self.set_now(now);
        while let Some(entry) = self.timers.first_entry() {
            let (deadline, _) = *entry.key();
            if deadline > self.now {
                break;
            }
            let timer = entry.remove();
            match timer {
                CoreTimer::Swim(timer) => {
                    if let Err(error) = self.swim.handle_timer(timer, &mut self.runtime) {
                        debug!(%error, "timer handling failed");
                    }
                }
                CoreTimer::Rejoin => {
                    self.rejoin_scheduled = false;
                    if !self.left {
                        if self.live.is_empty() {
                            self.send_joins();
                        }
                        self.rejoin_scheduled = true;
                        self.schedule(self.timing.rejoin_interval, CoreTimer::Rejoin);
                    }
                }
            }
            self.drain();
        }
    }

    pub fn poll_datagram(&mut self) -> Option<Datagram> {
        self.outbox.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MembershipEvent> {
        self.events.pop_front()
    }

    /// Names of the live members, this one included (unless it has left).
    pub fn live_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.live.keys().cloned().collect();
        if !self.left {
            names.insert(self.identity().name.clone());
        }
        names
    }

    /// The live members other than this one.
    pub fn live_peers(&self) -> impl Iterator<Item = &NodeId> {
        self.live.values()
    }

    pub fn is_live(&self, name: &str) -> bool {
        self.live.contains_key(name) || (!self.left && self.identity().name == name)
    }

    /// Members foca knows, counted by state (alive, suspect, down), this one excluded.
    pub fn member_states(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::from([("alive", 0), ("suspect", 0), ("down", 0)]);
        for member in self.swim.iter_membership_state() {
            let key = match member.state() {
                foca::State::Alive => "alive",
                foca::State::Suspect => "suspect",
                foca::State::Down => "down",
            };
            *counts.entry(key).or_default() += 1;
        }
        counts
    }

    pub fn drops(&self) -> &DropCounts {
        &self.drops
    }

    pub fn traffic(&self) -> TrafficCounts {
        self.traffic
    }

    fn set_now(&mut self, now: Duration) {
        // Time never runs backwards inside the core, whatever the caller's clock does.
        self.now = self.now.max(now);
    }

    fn schedule(&mut self, after: Duration, timer: CoreTimer) {
        self.timer_seq += 1;
        self.timers
            .insert((self.now + after, self.timer_seq), timer);
    }

    fn send_joins(&mut self) {
        let Ok(body) = postcard::to_allocvec(self.swim.identity()) else {
            return;
        };
        let payload = framed(FRAME_JOIN, &body);
        for peer in self.join_peers.clone() {
            self.seal_and_queue(peer, &payload);
        }
    }

    /// Sends `joiner` every member this one believes active, itself included, in as many
    /// datagrams as it takes.
    fn send_member_list(&mut self, joiner: &NodeId) {
        let interval = self.timing.rejoin_interval;
        if let Some(last) = self.member_list_sent.get(&joiner.name)
            && self.now < *last + interval
        {
            return;
        }
        self.member_list_sent.insert(joiner.name.clone(), self.now);
        let members: Vec<foca::Member<NodeId>> =
            std::iter::once(foca::Member::alive(self.identity().clone()))
                .chain(
                    self.swim
                        .iter_membership_state()
                        .filter(|m| m.state() != foca::State::Down && m.id().name != joiner.name)
                        .cloned(),
                )
                .collect();
        let budget = crate::preset::MAX_FOCA_PACKET - MEMBERS_FRAME_SLACK;
        let mut chunk: Vec<foca::Member<NodeId>> = Vec::new();
        let mut chunk_bytes = 0;
        for member in members {
            let size = postcard::experimental::serialized_size(&member).unwrap_or(budget);
            if chunk_bytes + size > budget && !chunk.is_empty() {
                self.send_members_frame(joiner.addr, &std::mem::take(&mut chunk));
                chunk_bytes = 0;
            }
            chunk_bytes += size;
            chunk.push(member);
        }
        if !chunk.is_empty() {
            self.send_members_frame(joiner.addr, &chunk);
        }
    }

    fn send_members_frame(&mut self, to: SocketAddr, members: &[foca::Member<NodeId>]) {
        let Ok(body) = postcard::to_allocvec(members) else {
            return;
        };
        let payload = framed(FRAME_MEMBERS, &body);
        self.seal_and_queue(to, &payload);
    }

    fn seal_and_queue(&mut self, to: SocketAddr, payload: &[u8]) {
        match self.keyring.seal(payload, &mut self.nonces) {
            Ok(bytes) => {
                self.traffic.datagrams_sent += 1;
                self.traffic.bytes_sent += bytes.len() as u64;
                self.outbox.push_back(Datagram { to, bytes });
            }
            Err(error) => debug!(%error, "cannot seal datagram"),
        }
    }

    /// Empties foca's runtime into the outbox, the timer queue and the event queue.
    fn drain(&mut self) {
        loop {
            let mut gossip_now = false;
            while let Some((to, data)) = self.runtime.to_send() {
                let payload = framed(FRAME_SWIM, &data);
                self.seal_and_queue(to.addr, &payload);
            }
            while let Some((after, timer)) = self.runtime.to_schedule() {
                self.schedule(after, CoreTimer::Swim(timer));
            }
            while let Some(notification) = self.runtime.to_notify() {
                gossip_now |= self.apply_notification(notification);
            }
            self.resize_if_needed();
            if gossip_now
                && !self.left
                && let Err(error) = self.swim.gossip(&mut self.runtime)
            {
                debug!(%error, "gossip after member down failed");
            }
            if self.runtime.backlog() == 0 {
                break;
            }
        }
    }

    /// Records a notification; true when it is news worth gossiping at once.
    fn apply_notification(&mut self, notification: OwnedNotification<NodeId>) -> bool {
        match notification {
            OwnedNotification::MemberUp(id) => {
                self.live.insert(id.name.clone(), id.clone());
                self.events.push_back(MembershipEvent::Up(id));
                false
            }
            OwnedNotification::MemberDown(id) => {
                if self.live.get(&id.name) == Some(&id) {
                    self.live.remove(&id.name);
                }
                self.events.push_back(MembershipEvent::Down(id));
                true
            }
            OwnedNotification::Rename(old, new) => {
                if let Some(entry) = self.live.get_mut(&new.name) {
                    *entry = new.clone();
                }
                self.events
                    .push_back(MembershipEvent::Rejoined { old, new });
                false
            }
            OwnedNotification::Rejoin(new) => {
                self.events.push_back(MembershipEvent::Renewed(new));
                false
            }
            OwnedNotification::Active => {
                self.events.push_back(MembershipEvent::Connected);
                false
            }
            OwnedNotification::Idle => {
                self.events.push_back(MembershipEvent::Isolated);
                false
            }
            // foca renews the identity itself (NodeId::renew never refuses), so Defunct is
            // followed by Rejoin; nothing to do here.
            OwnedNotification::Defunct => false,
            OwnedNotification::ProbeFailed(_, id) => {
                self.events.push_back(MembershipEvent::Suspect(id));
                false
            }
            OwnedNotification::DataSent(_) | OwnedNotification::DataReceived(_) => false,
        }
    }

    /// Keeps size-scaled timings (memberlist's log10 suspicion and retransmissions) in step with
    /// the cluster as it grows and shrinks.
    fn resize_if_needed(&mut self) {
        let size = self.live.len() + 1;
        if size == self.sized_for {
            return;
        }
        let old = (
            self.timing.suspicion_for(self.sized_for),
            self.timing.retransmissions_for(self.sized_for),
        );
        let new = (
            self.timing.suspicion_for(size),
            self.timing.retransmissions_for(size),
        );
        self.sized_for = size;
        if old != new
            && let Err(error) = self.swim.set_config(self.timing.foca_config(size))
        {
            debug!(%error, "cannot resize membership timings");
        }
    }
}
