//! The sans-io membership core: foca's SWIM behind the sealed envelope, with its own timer queue.
//!
//! Bytes and the current time go in ([`Membership::handle_datagram`], [`Membership::advance`]);
//! datagrams to send ([`Membership::poll_datagram`]) and membership events
//! ([`Membership::poll_event`]) come out, and [`Membership::next_deadline`] says when to call
//! `advance` again. Time is a [`Duration`] since any origin the caller picks, so the tokio driver
//! and the simulator's virtual clock drive the very same code.
//!
//! Around foca the core adds what makes one sick member harmless to the others:
//! - **local health** ([`crate::health`]): failing probes stretch this member's own probe period,
//!   probe timeout and suspicion timeouts;
//! - **dynamic suspicion** ([`crate::suspicion`]): a suspicion starts long and ends early when
//!   other members confirm it. Confirmations come from members asked to probe indirectly that
//!   got no answer either, and from a few members that check the suspect directly on hearing of
//!   the suspicion (each disseminated as a [`SuspicionNotice`]);
//! - **isolation** ([`crate::reachability`]): a member nobody answers holds back the downs it
//!   would declare, and reports the state with its reason;
//! - **freshness** ([`crate::replay`]): every datagram carries a sender counter and a timestamp,
//!   and member lists are accepted only in answer to this member's own request;
//! - **scalable joins**: a joiner contacts a few peers and gets the member list from one, paced;
//!   a joiner whose generation is not above what the cluster remembers restarts above it;
//! - **anti-entropy**: a periodic full-state exchange with one random member repairs any update
//!   piggybacking missed, a down included.
//!
//! Timers fire in (deadline, submission order) order, foca's runtime is drained after every
//! call, and whenever a member is learned to be down the news is gossiped at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, Message, OwnedNotification, PostcardCodec, Timer};
use rand::rngs::{ChaCha20Rng, Xoshiro256PlusPlus};
use rand::{Rng, RngExt, SeedableRng};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, trace, warn};

use crate::envelope::{DropCounts, DropReason, KeyRing};
use crate::frames::{
    self, Check, CheckAck, JoinRequest, MemberList, StateExchange, SuspicionNotice,
};
use crate::health::LocalHealth;
use crate::identity::NodeId;
use crate::notices::{Inbox, NoticeHandler};
use crate::preset::Timing;
use crate::reachability::{self, Reachability, ReachabilityInputs};
use crate::replay::{ReplayWindow, WireHeader};
use crate::suspicion::{Suspicions, Target};

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
    /// This member took a new generation: it was declared down by the others, or the cluster
    /// remembered a generation of its name not below the one it started with.
    Renewed(NodeId),
    /// This member is known to at least one other live member.
    Connected,
    /// This member knows no other live member.
    Isolated,
    /// Whether this member can trust its view changed (see [`Reachability`]).
    Reachability(Reachability),
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
    /// Bytes of member-list frames accepted (joins).
    pub member_list_bytes_received: u64,
}

/// Where the random streams of a member come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    /// Drives foca's choices (probe order, gossip targets) and the core's own (join peers,
    /// anti-entropy partner): fixed in tests and simulations.
    pub membership: u64,
    /// Drives envelope nonces and request tokens (ChaCha20): must differ between members
    /// sharing a key.
    pub nonce: [u8; 32],
}

impl Seeds {
    /// Seeds from the operating system's entropy, for real deployments.
    pub fn from_entropy() -> Self {
        let mut os = rand::make_rng::<ChaCha20Rng>();
        Self {
            membership: os.next_u64(),
            nonce: {
                let mut nonce = [0u8; 32];
                os.fill_bytes(&mut nonce);
                nonce
            },
        }
    }

    /// Deterministic seeds derived from one number, for tests and simulations.
    pub fn from_u64(seed: u64) -> Self {
        let mut expand = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut nonce = [0u8; 32];
        expand.fill_bytes(&mut nonce);
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

/// Room kept in a member-list or state datagram for its other fields and postcard's prefixes.
const MEMBERS_FRAME_SLACK: usize = 40;
/// Peers a joiner contacts at once; one of them is asked for the member list.
const JOIN_FANOUT: usize = 3;
/// Attempts at getting a member list before settling for what foca's announces brought.
const LIST_ATTEMPTS: u32 = 3;
/// Members that check a suspect directly on hearing of a suspicion, besides the indirect
/// probers that already tried.
const CHECKERS: usize = 3;
/// Paced datagrams (member lists, states) sent at once, then again every [`PACE_INTERVAL`]:
/// a burst well inside a default socket receive buffer.
const PACE_BURST: usize = 32;
const PACE_INTERVAL: Duration = Duration::from_millis(5);
/// Datagrams sealed more than this before this member started are replays: nobody could have
/// addressed them to it. Members' clocks may differ by this much before a joiner drops their
/// first datagrams (it accepts them once their clocks pass its start).
const REPLAY_START_SLACK_SECS: u64 = 2;
/// Own probes failing in a row, with no other answer in between, after which a member counts
/// itself cut off. At 1 % loss a probe fails (direct and indirect) about once in 10⁶.
const ISOLATION_AFTER_FAILED_PROBES: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
enum CoreTimer {
    Swim(Timer<NodeId>),
    Rejoin,
    ListRetry,
    AntiEntropy,
    Pace,
    /// While isolated: contact one member held down (see [`Membership::contact_down`]).
    ContactDown,
    /// A check or an indirect probe of this target is due for its verdict.
    Watch(Target),
}

type Swim = Foca<NodeId, PostcardCodec, Xoshiro256PlusPlus, NoticeHandler>;

/// A suspect this member is trying to reach itself.
#[derive(Debug, Clone)]
struct Watch {
    id: NodeId,
    since: Duration,
    /// Members to tell directly if the suspect stays silent.
    report_to: Vec<SocketAddr>,
}

/// An outstanding request for a member list.
#[derive(Debug, Clone)]
struct ListRequest {
    token: u64,
    sent: Duration,
    attempts: u32,
    /// Parts of the list received so far.
    parts_seen: BTreeSet<u16>,
    /// The whole list arrived (or this member gave up waiting for it).
    answered: bool,
}

pub struct Membership {
    swim: Swim,
    runtime: AccumulatingRuntime<NodeId>,
    timing: Timing,
    keyring: KeyRing,
    nonces: ChaCha20Rng,
    choices: Xoshiro256PlusPlus,
    now: Duration,
    /// Wall-clock time (since the Unix epoch) at core time zero: the replay window's clock.
    epoch: Duration,
    timers: BTreeMap<(Duration, u64), CoreTimer>,
    timer_seq: u64,
    /// Live members other than this one, by node name.
    live: BTreeMap<String, NodeId>,
    /// Cluster size foca's scaled timings were last computed for.
    sized_for: usize,
    join_peers: BTreeSet<SocketAddr>,
    list_request: Option<ListRequest>,
    /// When each joiner (name, generation) was last sent the member list, so replayed or
    /// repeated joins cannot make this member send it more than once per `rejoin_interval`,
    /// while a restarted joiner (a new generation) is served at once.
    member_list_sent: BTreeMap<(String, u64), Duration>,
    /// Outstanding anti-entropy pushes, by token.
    state_requests: BTreeMap<u64, Duration>,
    /// When each member (name digest) was last sent this member's state in reply.
    state_replied: BTreeMap<u64, Duration>,
    rejoin_scheduled: bool,
    pace_scheduled: bool,
    contact_down_scheduled: bool,
    /// foca reported this member connected while its member list was still due.
    connected_pending: bool,
    /// The generation this process started with.
    first_generation: u64,
    /// Notices this member sent (see [`SuspicionNotice::round`]).
    notice_round: u32,
    /// Clock (seconds) before which no datagram was sealed for this member: anything older is
    /// a replay into a restarted member that has forgotten its windows.
    started_secs: Option<u64>,
    left: bool,
    outbox: VecDeque<Datagram>,
    paced: VecDeque<Datagram>,
    events: VecDeque<MembershipEvent>,
    drops: DropCounts,
    traffic: TrafficCounts,
    counter: u64,
    replay: ReplayWindow,
    health: LocalHealth,
    suspicions: Suspicions<Timer<NodeId>>,
    notices: Inbox,
    watches: BTreeMap<Target, Watch>,
    /// Check nonces sent and the watch each one answers.
    checks: BTreeMap<u64, Target>,
    /// When each member (by name digest) was last heard from.
    heard: BTreeMap<u64, Duration>,
    /// Whether the probe in flight was answered (counted once for local health).
    probe_answered: bool,
    /// The highest incarnation this member has sent with; a rise means it refuted a suspicion.
    own_incarnation: u16,
    expected_members: usize,
    last_answer: Option<Duration>,
    /// Own probes failed since the last answer of any kind.
    failed_probes: u32,
    reachability: Reachability,
    isolated_since: Option<Duration>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("identity", self.swim.identity())
            .field("live", &self.live.len())
            .field("health", &self.health.score())
            .field("reachability", &self.reachability)
            .finish_non_exhaustive()
    }
}

impl Membership {
    pub fn new(identity: NodeId, timing: Timing, keyring: KeyRing, seeds: Seeds) -> Self {
        let notices = Inbox::default();
        let swim = Foca::with_custom_broadcast(
            identity,
            timing.foca_config(1),
            Xoshiro256PlusPlus::seed_from_u64(seeds.membership),
            PostcardCodec,
            NoticeHandler::new(notices.clone()),
        );
        let mut member = Self {
            swim,
            runtime: AccumulatingRuntime::new(),
            keyring,
            nonces: ChaCha20Rng::from_seed(seeds.nonce),
            // A stream of its own, so the core's choices never shift foca's.
            choices: Xoshiro256PlusPlus::seed_from_u64(seeds.membership ^ 0x5157_4c42_4a4f_494e),
            now: Duration::ZERO,
            epoch: Duration::ZERO,
            timers: BTreeMap::new(),
            timer_seq: 0,
            live: BTreeMap::new(),
            sized_for: 1,
            join_peers: BTreeSet::new(),
            list_request: None,
            member_list_sent: BTreeMap::new(),
            state_requests: BTreeMap::new(),
            state_replied: BTreeMap::new(),
            rejoin_scheduled: false,
            pace_scheduled: false,
            contact_down_scheduled: false,
            connected_pending: false,
            notice_round: 0,
            started_secs: None,
            first_generation: 0,
            left: false,
            outbox: VecDeque::new(),
            paced: VecDeque::new(),
            events: VecDeque::new(),
            drops: DropCounts::default(),
            traffic: TrafficCounts::default(),
            counter: 0,
            replay: ReplayWindow::new(timing.replay_max_age),
            health: LocalHealth::new(timing.local_health_max),
            suspicions: Suspicions::new(timing.suspicion_timeouts(1)),
            notices,
            watches: BTreeMap::new(),
            checks: BTreeMap::new(),
            heard: BTreeMap::new(),
            probe_answered: false,
            own_incarnation: 0,
            expected_members: 0,
            last_answer: None,
            failed_probes: 0,
            reachability: Reachability::Reachable,
            isolated_since: None,
            timing,
        };
        member.first_generation = member.identity().generation;
        let first_exchange = member.jittered(member.timing.anti_entropy_interval);
        member.schedule(first_exchange, CoreTimer::AntiEntropy);
        member
    }

    /// Sets the wall-clock time (since the Unix epoch) that core time zero stands for; the
    /// replay window compares datagram timestamps on that clock. Members of one cluster must
    /// use clocks that agree within [`Timing::replay_max_age`]. Simulations keep the default,
    /// zero: their virtual time is everyone's clock.
    pub fn with_clock_epoch(mut self, epoch: Duration) -> Self {
        self.epoch = epoch;
        self
    }

    pub fn identity(&self) -> &NodeId {
        self.swim.identity()
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// How many members the caller expects in all, this one included (the static peers plus
    /// one, or the Kubernetes Nodes that run a speaker); 0 when it cannot say. Feeds the
    /// quorum part of [`Membership::reachability`].
    pub fn set_expected_members(&mut self, now: Duration, expected: usize) {
        self.set_now(now);
        self.expected_members = expected;
        self.reassess();
    }

    pub fn reachability(&self) -> Reachability {
        self.reachability
    }

    /// This member's local-health score: 0 when its probes are answered, rising as they fail.
    pub fn local_health(&self) -> u8 {
        self.health.score()
    }

    /// Adds `peers` to those this member joins through, and asks a few of them to let it in.
    /// While it knows no live member it keeps asking every `rejoin_interval`; once it does,
    /// new peers that are not live members are asked to announce themselves (a few per call).
    pub fn join(&mut self, now: Duration, peers: &[SocketAddr]) {
        self.set_now(now);
        let own = self.identity().addr;
        let live_addrs: BTreeSet<SocketAddr> = self.live.values().map(|id| id.addr).collect();
        let fresh: Vec<SocketAddr> = peers
            .iter()
            .copied()
            .filter(|p| *p != own && !live_addrs.contains(p))
            .collect();
        self.join_peers.extend(fresh.iter().copied());
        if self.live.is_empty() {
            self.send_joins();
        } else {
            let picked = self.pick(&fresh, JOIN_FANOUT);
            for peer in picked {
                self.send_join(peer, false);
            }
        }
        if !self.rejoin_scheduled {
            self.rejoin_scheduled = true;
            self.schedule(self.timing.rejoin_interval, CoreTimer::Rejoin);
        }
        self.pace();
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

    /// Feeds one received datagram. A datagram that is not authentic, not fresh, not
    /// well-formed or not acceptable is dropped, counted and reported; it never reaches the
    /// protocol state.
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
        self.reassess();
        self.pace();
        result
    }

    fn accept(&mut self, bytes: &[u8]) -> Result<(), DropReason> {
        if self.left {
            return Err(DropReason::Refused);
        }
        let payload = self.keyring.open(bytes)?;
        let (header, body) = WireHeader::decode(&payload)?;
        if header.sender == foca::Identity::addr(self.identity()) {
            return Err(DropReason::Refused);
        }
        let started = self.started_secs.unwrap_or_default();
        if u64::from(header.sent_secs) + REPLAY_START_SLACK_SECS < started {
            return Err(DropReason::Stale);
        }
        self.replay.check(&header, self.clock(), self.now)?;
        self.heard.insert(header.sender, self.now);
        match header.kind {
            frames::SWIM => {
                // foca ignores whom a message is addressed to. A message for another node, or
                // for a generation of this node older than this process (sent before it
                // restarted, or replayed since), carries news this process must not take as
                // current. Messages for an earlier generation of this same process are fine:
                // answering them is how the others learn of its renewal.
                let dst = foca::Codec::<NodeId>::decode_header(&mut PostcardCodec, body)
                    .map_err(|_| DropReason::Malformed)?
                    .dst;
                if dst.name != self.identity().name || dst.generation < self.first_generation {
                    return Err(DropReason::Refused);
                }
                self.swim
                    .handle_data(body, &mut self.runtime)
                    .map_err(|error| match error {
                        foca::Error::MalformedPacket | foca::Error::Decode(_) => {
                            DropReason::Malformed
                        }
                        _ => DropReason::Refused,
                    })
            }
            frames::JOIN => {
                let request: JoinRequest = decode(body)?;
                if request.joiner.name == self.identity().name {
                    return Err(DropReason::Refused);
                }
                if request.want_list {
                    self.send_member_list(&request);
                }
                self.swim
                    .announce(request.joiner, &mut self.runtime)
                    .map_err(|_| DropReason::Refused)
            }
            frames::MEMBERS => {
                let list: MemberList = decode(body)?;
                self.accept_member_list(list, body.len())
            }
            frames::CHECK => {
                let check: Check = decode(body)?;
                self.send_frame(
                    check.from,
                    frames::CHECK_ACK,
                    &CheckAck { nonce: check.nonce },
                );
                Ok(())
            }
            frames::CHECK_ACK => {
                let ack: CheckAck = decode(body)?;
                // A late answer (after the verdict) is still an answer.
                self.checks.remove(&ack.nonce);
                self.heard_answer();
                Ok(())
            }
            frames::STATE => {
                let state: StateExchange = decode(body)?;
                self.accept_state(state, header.sender)
            }
            frames::NOTICE => {
                let notice: SuspicionNotice = decode(body)?;
                self.consider_notice(notice);
                Ok(())
            }
            _ => Err(DropReason::Malformed),
        }
    }

    fn accept_member_list(&mut self, list: MemberList, len: usize) -> Result<(), DropReason> {
        let expected = self.list_request.as_ref().is_some_and(|r| {
            r.token == list.token && self.now < r.sent + self.timing.rejoin_interval * 2
        });
        if !expected {
            return Err(DropReason::Refused);
        }
        if let Some(request) = self.list_request.as_mut() {
            request.parts_seen.insert(list.part);
            request.answered = request.parts_seen.len() >= usize::from(list.parts.max(1));
        }
        self.traffic.member_list_bytes_received += len as u64;
        self.heard_answer();
        if let Some(beat) = list.beat
            && beat >= self.identity().generation
        {
            self.take_generation_above(beat);
        }
        let members = list.members;
        let first = members.first().map(|m| m.id().clone());
        // Not re-broadcast: the sender's cluster already knows all of them.
        self.swim
            .apply_many(members.into_iter(), false, &mut self.runtime)
            .map_err(|_| DropReason::Refused)?;
        if let Some(sender) = first
            && self.live.is_empty()
        {
            // The sender lists itself first; make sure it knows this (possibly new) identity.
            let _ = self.swim.announce(sender, &mut self.runtime);
        }
        // After the members it brought, so "connected" comes with the whole list known.
        if self.list_request.as_ref().is_some_and(|r| r.answered) {
            self.drain();
            self.release_connected();
        }
        Ok(())
    }

    /// Restarts this member's identity above a generation the cluster remembers for its name
    /// (its clock stepped back since the last start), so the old generation cannot win every
    /// name conflict until it is forgotten.
    fn take_generation_above(&mut self, beat: u64) {
        let current = self.identity().clone();
        let renewed = NodeId::new(current.name.clone(), current.addr, beat.saturating_add(1));
        info!(old = %current, new = %renewed, "the cluster remembers a newer generation of this node; taking one above it");
        match self
            .swim
            .change_identity(renewed.clone(), &mut self.runtime)
        {
            Ok(()) => {
                self.own_incarnation = 0;
                self.events.push_back(MembershipEvent::Renewed(renewed));
            }
            Err(error) => warn!(%error, "cannot change identity"),
        }
    }

    fn accept_state(&mut self, state: StateExchange, sender: u64) -> Result<(), DropReason> {
        if !state.reply_wanted {
            let sent = self.state_requests.remove(&state.token);
            // A reply arrives in several parts: keep the token for the rest of them.
            match sent {
                Some(at) if self.now < at + self.timing.anti_entropy_interval => {
                    self.state_requests.insert(state.token, at);
                }
                _ => return Err(DropReason::Refused),
            }
            self.heard_answer();
        }
        self.swim
            .apply_many(state.members.into_iter(), true, &mut self.runtime)
            .map_err(|_| DropReason::Refused)?;
        if state.reply_wanted {
            let half = self.timing.anti_entropy_interval / 2;
            let recently = self
                .state_replied
                .get(&sender)
                .is_some_and(|at| self.now < *at + half);
            if !recently {
                self.state_replied.insert(sender, self.now);
                self.send_state(state.from, state.token, false);
            }
        }
        Ok(())
    }

    /// When [`Membership::advance`] next has work to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        let timer = self.timers.keys().next().map(|(deadline, _)| *deadline);
        match (timer, self.suspicions.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves time forward to `now`, firing every timer due by then in order.
    pub fn advance(&mut self, now: Duration) {
        self.set_now(now);
        loop {
            let timer_due = self
                .timers
                .keys()
                .next()
                .is_some_and(|(deadline, _)| *deadline <= self.now);
            let suspicion_due = self
                .suspicions
                .next_deadline()
                .is_some_and(|deadline| deadline <= self.now);
            if suspicion_due {
                self.reassess();
                self.fire_suspicions();
            } else if timer_due {
                let Some((_, timer)) = self.timers.pop_first() else {
                    break;
                };
                self.fire(timer);
            } else {
                break;
            }
            self.drain();
        }
        self.reassess();
        self.pace();
    }

    fn fire(&mut self, timer: CoreTimer) {
        match timer {
            CoreTimer::Swim(timer) => {
                if matches!(timer, Timer::ProbeRandomMember(_)) {
                    self.probe_answered = false;
                }
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
            CoreTimer::ListRetry => self.retry_member_list(),
            CoreTimer::AntiEntropy => {
                if !self.left {
                    self.exchange_state();
                    let next = self.jittered(self.timing.anti_entropy_interval);
                    self.schedule(next, CoreTimer::AntiEntropy);
                }
            }
            CoreTimer::Pace => {
                self.pace_scheduled = false;
                self.pace();
            }
            CoreTimer::Watch(target) => self.judge_watch(target),
            CoreTimer::ContactDown => {
                self.contact_down_scheduled = false;
                if !self.left && self.reachability.is_isolated() {
                    self.contact_down();
                    self.contact_down_scheduled = true;
                    self.schedule(self.timing.probe_period, CoreTimer::ContactDown);
                }
            }
        }
    }

    /// Announces this member to one member it holds down, chosen at random. foca does so
    /// every `announce_to_down_interval` (seconds); an isolated member does it every probe
    /// period besides, because when its partition heals that is how both sides meet again, and
    /// clients wait for it.
    fn contact_down(&mut self) {
        let down: Vec<NodeId> = self
            .swim
            .iter_membership_state()
            .filter(|member| member.state() == foca::State::Down)
            .map(|member| member.id().clone())
            .collect();
        if down.is_empty() {
            return;
        }
        let target = down[self.choices.random_range(0..down.len())].clone();
        if let Err(error) = self.swim.announce(target, &mut self.runtime) {
            debug!(%error, "cannot contact a member held down");
        }
    }

    /// Hands due suspicions to foca, or holds them while this member cannot reach anyone.
    fn fire_suspicions(&mut self) {
        let holding = self.holds_back_downs();
        let expected = self.expected_confirmations();
        let stretch = self.stretch();
        let held_for_long = self.timing.probe_period;
        let due = self.suspicions.take_due(self.now);
        for (target, timer, was_held) in due {
            if !self.still_suspected(&target) {
                continue;
            }
            if holding {
                trace!(suspect = %target.name, "holding a suspicion while isolated");
                self.suspicions
                    .hold(target, timer, self.now + held_for_long, expected);
            } else if was_held {
                // While this member was cut off, its suspicion never reached the suspect:
                // announce it again, so the suspect hears of it and refutes in time.
                if let Timer::ChangeSuspectToDown { member_id, .. } = &timer {
                    self.announce_suspicion(member_id.clone(), target.incarnation);
                }
                self.suspicions
                    .resume(target, timer, self.now, stretch, expected);
            } else if let Err(error) = self.swim.handle_timer(timer, &mut self.runtime) {
                debug!(%error, "suspicion timer failed");
            }
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

    /// Replaces the key ring (a key rotation step). Membership and the per-sender replay
    /// windows stay as they are: freshness is checked on the opened payload, whatever key
    /// sealed it, so a datagram accepted under the old ring is still a replay under the new
    /// one, and one sealed with a key the new ring no longer holds is dropped as
    /// [`DropReason::UnknownKey`].
    pub fn set_keyring(&mut self, keyring: KeyRing) {
        self.keyring = keyring;
    }

    pub fn keyring(&self) -> &KeyRing {
        &self.keyring
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
        if self.started_secs.is_none() {
            self.started_secs = Some(self.clock().as_secs());
        }
    }

    /// The wall clock the replay window compares timestamps with.
    fn clock(&self) -> Duration {
        self.epoch + self.now
    }

    fn schedule(&mut self, after: Duration, timer: CoreTimer) {
        self.timer_seq += 1;
        self.timers
            .insert((self.now + after, self.timer_seq), timer);
    }

    /// `interval` times a random factor in [0.5, 1.5), so members do not exchange in lockstep.
    fn jittered(&mut self, interval: Duration) -> Duration {
        interval.mul_f64(0.5 + self.choices.random::<f64>())
    }

    fn stretch(&self) -> u32 {
        u32::from(self.health.score()) + 1
    }

    fn expected_confirmations(&self) -> usize {
        self.suspicions.timeouts().expected_in(self.live.len() + 1)
    }

    /// Up to `count` of `from`, chosen at random.
    fn pick(&mut self, from: &[SocketAddr], count: usize) -> Vec<SocketAddr> {
        let mut pool = from.to_vec();
        let mut picked = Vec::new();
        while !pool.is_empty() && picked.len() < count {
            let index = self.choices.random_range(0..pool.len());
            picked.push(pool.swap_remove(index));
        }
        picked
    }

    fn send_joins(&mut self) {
        let peers: Vec<SocketAddr> = self.join_peers.iter().copied().collect();
        let picked = self.pick(&peers, JOIN_FANOUT);
        for (index, peer) in picked.into_iter().enumerate() {
            self.send_join(peer, index == 0);
        }
    }

    fn send_join(&mut self, peer: SocketAddr, want_list: bool) {
        let token = self.nonces.next_u64();
        if want_list {
            let attempts = match &self.list_request {
                Some(r) if !r.answered => r.attempts + 1,
                _ => 1,
            };
            self.list_request = Some(ListRequest {
                token,
                sent: self.now,
                attempts,
                parts_seen: BTreeSet::new(),
                answered: false,
            });
            self.schedule(self.timing.probe_period * 3, CoreTimer::ListRetry);
        }
        let request = JoinRequest {
            joiner: self.identity().clone(),
            token,
            want_list,
        };
        self.send_frame(peer, frames::JOIN, &request);
    }

    /// The peer asked for the member list did not answer: ask another, a live member if there
    /// is one (foca's announce may have let this member in without the full list).
    fn retry_member_list(&mut self) {
        let Some(request) = &self.list_request else {
            return;
        };
        if request.answered || self.left || self.now < request.sent + self.timing.probe_period * 3 {
            return;
        }
        if request.attempts >= LIST_ATTEMPTS {
            // Nobody sent the list: settle for what foca's announces brought.
            if let Some(request) = self.list_request.as_mut() {
                request.answered = true;
            }
            self.release_connected();
            return;
        }
        let candidates: Vec<SocketAddr> = if self.live.is_empty() {
            self.join_peers.iter().copied().collect()
        } else {
            self.live.values().map(|id| id.addr).collect()
        };
        if let Some(peer) = self.pick(&candidates, 1).pop() {
            self.send_join(peer, true);
        }
    }

    fn release_connected(&mut self) {
        if std::mem::take(&mut self.connected_pending) {
            self.events.push_back(MembershipEvent::Connected);
        }
    }

    /// Sends the joiner every member this one knows, itself first, paced; downs included, so a
    /// restarted joiner cannot be told by a replay that a dead member lives.
    fn send_member_list(&mut self, request: &JoinRequest) {
        let joiner = &request.joiner;
        let key = (joiner.name.clone(), joiner.generation);
        if let Some(last) = self.member_list_sent.get(&key)
            && self.now < *last + self.timing.rejoin_interval
        {
            return;
        }
        let interval = self.timing.rejoin_interval;
        let now = self.now;
        self.member_list_sent.retain(|_, at| now < *at + interval);
        self.member_list_sent.insert(key, self.now);
        let beat = self
            .swim
            .iter_membership_state()
            .filter(|m| m.id().name == joiner.name && m.id().generation != joiner.generation)
            .map(|m| m.id().generation)
            .max()
            .filter(|generation| *generation > joiner.generation);
        let members: Vec<foca::Member<NodeId>> = std::iter::once(self.own_member())
            .chain(
                self.swim
                    .iter_membership_state()
                    .filter(|m| m.state() != foca::State::Down && m.id().name != joiner.name)
                    .cloned(),
            )
            .collect();
        let budget = crate::preset::MAX_FOCA_PACKET - MEMBERS_FRAME_SLACK;
        let chunks = frames::chunk_members(members, budget);
        let parts = u16::try_from(chunks.len()).unwrap_or(u16::MAX);
        for (part, chunk) in chunks.into_iter().enumerate() {
            let list = MemberList {
                token: request.token,
                part: u16::try_from(part).unwrap_or(u16::MAX),
                parts,
                beat,
                members: chunk,
            };
            self.queue_paced(joiner.addr, frames::MEMBERS, &list);
        }
    }

    /// Pushes this member's whole state to one random live member, asking for its own back.
    fn exchange_state(&mut self) {
        let peers: Vec<SocketAddr> = self.live.values().map(|id| id.addr).collect();
        let Some(peer) = self.pick(&peers, 1).pop() else {
            return;
        };
        let token = self.nonces.next_u64();
        let interval = self.timing.anti_entropy_interval;
        let now = self.now;
        self.state_requests.retain(|_, at| now < *at + interval);
        self.state_requests.insert(token, self.now);
        self.send_state(peer, token, true);
    }

    fn send_state(&mut self, to: SocketAddr, token: u64, reply_wanted: bool) {
        let members: Vec<foca::Member<NodeId>> = std::iter::once(self.own_member())
            .chain(self.swim.iter_membership_state().cloned())
            .collect();
        let from = self.identity().addr;
        let budget = crate::preset::MAX_FOCA_PACKET - MEMBERS_FRAME_SLACK;
        for chunk in frames::chunk_members(members, budget) {
            let state = StateExchange {
                token,
                reply_wanted,
                from,
                members: chunk,
            };
            self.queue_paced(to, frames::STATE, &state);
        }
    }

    /// This member as others should record it: alive, at the incarnation it last sent with.
    fn own_member(&self) -> foca::Member<NodeId> {
        foca::Member::new(
            self.identity().clone(),
            self.own_incarnation,
            foca::State::Alive,
        )
    }

    fn send_frame(&mut self, to: SocketAddr, kind: u8, body: &impl Serialize) {
        if let Some(datagram) = self.frame(to, kind, body) {
            self.outbox.push_back(datagram);
        }
    }

    fn queue_paced(&mut self, to: SocketAddr, kind: u8, body: &impl Serialize) {
        if let Some(datagram) = self.frame(to, kind, body) {
            self.paced.push_back(datagram);
        }
    }

    /// One of swimlb's own frames, encoded and sealed.
    fn frame(&mut self, to: SocketAddr, kind: u8, body: &impl Serialize) -> Option<Datagram> {
        let body = postcard::to_allocvec(body).ok()?;
        self.seal(to, kind, &body)
    }

    /// Moves a burst of paced datagrams to the outbox, and comes back for the rest.
    fn pace(&mut self) {
        if self.pace_scheduled {
            return;
        }
        for _ in 0..PACE_BURST {
            let Some(datagram) = self.paced.pop_front() else {
                break;
            };
            self.outbox.push_back(datagram);
        }
        if !self.paced.is_empty() {
            self.pace_scheduled = true;
            self.schedule(PACE_INTERVAL, CoreTimer::Pace);
        }
    }

    fn seal(&mut self, to: SocketAddr, kind: u8, body: &[u8]) -> Option<Datagram> {
        self.counter += 1;
        let header = WireHeader {
            kind,
            sender: foca::Identity::addr(self.identity()),
            generation: self.identity().generation,
            counter: self.counter,
            sent_secs: u32::try_from(self.clock().as_secs()).unwrap_or(u32::MAX),
        };
        match self.keyring.seal(&header.encode(body), &mut self.nonces) {
            Ok(bytes) => {
                self.traffic.datagrams_sent += 1;
                self.traffic.bytes_sent += bytes.len() as u64;
                Some(Datagram { to, bytes })
            }
            Err(error) => {
                debug!(%error, "cannot seal datagram");
                None
            }
        }
    }

    /// Empties foca's runtime and the notice inbox into the outbox, the timer queue and the
    /// event queue.
    fn drain(&mut self) {
        loop {
            let mut gossip_now = false;
            while let Some((to, data)) = self.runtime.to_send() {
                if let Some(datagram) = self.seal(to.addr, frames::SWIM, &data) {
                    self.outbox.push_back(datagram);
                }
            }
            while let Some((after, timer)) = self.runtime.to_schedule() {
                self.schedule_swim(after, timer);
            }
            while let Some(notification) = self.runtime.to_notify() {
                gossip_now |= self.apply_notification(notification);
            }
            self.read_notices();
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

    /// Schedules a foca timer, stretched by local health; suspicion timers go to
    /// [`Suspicions`] instead.
    fn schedule_swim(&mut self, after: Duration, timer: Timer<NodeId>) {
        match timer {
            Timer::ProbeRandomMember(_) | Timer::SendIndirectProbe { .. } => {
                let stretched = self.health.scale(after);
                self.schedule(stretched, CoreTimer::Swim(timer));
            }
            Timer::ChangeSuspectToDown {
                ref member_id,
                incarnation,
                ..
            } => {
                let target = target_of(member_id, incarnation);
                if !self.suspicions.is_raised(&target) {
                    self.announce_suspicion(member_id.clone(), incarnation);
                }
                let expected = self.expected_confirmations();
                let stretch = self.stretch();
                self.suspicions
                    .raise(target, self.now, stretch, expected, timer);
            }
            other => self.schedule(after, CoreTimer::Swim(other)),
        }
    }

    /// Tells the cluster this member could not reach `id` at `incarnation`.
    fn announce_suspicion(&mut self, id: NodeId, incarnation: u16) -> SuspicionNotice {
        self.notice_round = self.notice_round.wrapping_add(1);
        let notice = SuspicionNotice {
            target: id,
            incarnation,
            by: self.identity().name.clone(),
            round: self.notice_round,
        };
        match postcard::to_allocvec(&notice) {
            Ok(bytes) => {
                if let Err(error) = self.swim.add_broadcast(&bytes) {
                    debug!(%error, "cannot disseminate a suspicion notice");
                }
            }
            Err(error) => debug!(%error, "cannot encode a suspicion notice"),
        }
        notice
    }

    /// Counts the confirmations others disseminated, and checks a few suspects directly.
    fn read_notices(&mut self) {
        let notices: Vec<SuspicionNotice> = match self.notices.lock() {
            Ok(mut inbox) => inbox.drain(..).collect(),
            Err(_) => return,
        };
        for notice in notices {
            self.consider_notice(notice);
        }
        let keep = self.suspicions.timeouts().max * 10;
        self.suspicions.prune(self.now, keep);
    }

    /// One member's word that it could not reach a suspect, disseminated or sent directly.
    fn consider_notice(&mut self, notice: SuspicionNotice) {
        let own = &self.identity().name;
        if notice.target.name == *own {
            self.refute_to(&notice);
            return;
        }
        if notice.by == *own {
            return;
        }
        let target = target_of(&notice.target, notice.incarnation);
        let news = self
            .suspicions
            .confirm(target.clone(), &notice.by, self.now);
        if news && self.timing.suspicion_checks && self.is_checker(&notice) {
            let author = self.live.get(&notice.by).map(|id| id.addr);
            self.start_check(target, notice.target, author);
        }
    }

    /// `notice` says its author suspects this member. foca refutes a suspicion it has heard of
    /// by raising its incarnation; the notice may come without it (the author could not send
    /// it while isolated), so it is handed to foca here. Then the author is told directly:
    /// gossip would take several rounds to carry the refutation to it in a large cluster, and
    /// a member that stalled for a moment would be declared down meanwhile.
    fn refute_to(&mut self, notice: &SuspicionNotice) {
        if notice.target != *self.identity() {
            return;
        }
        let suspected = foca::Member::new(
            self.identity().clone(),
            notice.incarnation,
            foca::State::Suspect,
        );
        if let Err(error) =
            self.swim
                .apply_many(std::iter::once(suspected), true, &mut self.runtime)
        {
            debug!(%error, "cannot refute a suspicion");
        }
        if let Some(author) = self.live.get(&notice.by).cloned()
            && let Err(error) = self.swim.announce(author, &mut self.runtime)
        {
            debug!(%error, "cannot refute a suspicion directly");
        }
    }

    /// Whether this member is one of the few that check `notice`'s suspect directly: the
    /// highest rendezvous scores for the suspect among live members other than the suspect
    /// and the notice's author, so every member agrees without asking.
    fn is_checker(&self, notice: &SuspicionNotice) -> bool {
        let own = &self.identity().name;
        if !self.live.contains_key(&notice.target.name) {
            return false;
        }
        let key = notice.target.name.as_bytes();
        let own_score = crate::owner::keyed_score(own, key);
        let higher = self
            .live
            .keys()
            .filter(|name| **name != notice.target.name && **name != notice.by)
            .filter(|name| crate::owner::keyed_score(name, key) > own_score)
            .count();
        higher < CHECKERS
    }

    /// Starts watching `id`: if nothing is heard from it before the watch ends, this member
    /// confirms the suspicion.
    fn start_check(&mut self, target: Target, id: NodeId, report_to: Option<SocketAddr>) {
        if self.watches.contains_key(&target) {
            return;
        }
        let nonce = self.nonces.next_u64();
        self.checks.insert(nonce, target.clone());
        let from = self.identity().addr;
        self.send_frame(id.addr, frames::CHECK, &Check { nonce, from });
        self.watch(target, id, report_to);
    }

    fn watch(&mut self, target: Target, id: NodeId, report_to: Option<SocketAddr>) {
        if let Some(watch) = self.watches.get_mut(&target) {
            watch.report_to.extend(report_to);
            return;
        }
        self.watches.insert(
            target.clone(),
            Watch {
                id,
                since: self.now,
                report_to: report_to.into_iter().collect(),
            },
        );
        let wait = self.health.scale(self.timing.probe_timeout * 2);
        self.schedule(wait, CoreTimer::Watch(target));
    }

    fn judge_watch(&mut self, target: Target) {
        let Some(watch) = self.watches.remove(&target) else {
            return;
        };
        let digest = foca::Identity::addr(&watch.id);
        self.checks.retain(|_, t| *t != target);
        let heard = self.heard.get(&digest).is_some_and(|at| *at >= watch.since);
        if !heard && self.still_suspectable(&target) {
            debug!(suspect = %watch.id, "confirming a suspicion: no answer");
            let notice = self.announce_suspicion(watch.id, target.incarnation);
            for to in watch.report_to {
                self.send_frame(to, frames::NOTICE, &notice);
            }
        }
    }

    /// The state foca holds for `target`'s member, if still at that generation and incarnation.
    fn state_of(&self, target: &Target) -> Option<foca::State> {
        self.swim
            .iter_membership_state()
            .find(|m| {
                m.id().name == target.name
                    && m.id().generation == target.generation
                    && m.incarnation() == target.incarnation
            })
            .map(|m| m.state())
    }

    /// Whether `target` can still be confirmed: known at that incarnation and not down.
    fn still_suspectable(&self, target: &Target) -> bool {
        self.state_of(target)
            .is_some_and(|state| state != foca::State::Down)
    }

    fn still_suspected(&self, target: &Target) -> bool {
        self.state_of(target) == Some(foca::State::Suspect)
    }

    fn holds_back_downs(&self) -> bool {
        if !self.reachability.holds_back_downs() {
            return false;
        }
        // In a cluster of two nothing can tell "the other died" from "I am cut off": prefer
        // failing over.
        let known = self
            .expected_members
            .max(self.swim.iter_membership_state().len() + 1);
        if known <= 2 {
            return false;
        }
        // Past the hold limit this member trusts itself again: after a real mass failure the
        // last survivor must take over, if late.
        self.isolated_since
            .is_some_and(|since| self.now < since + self.timing.isolation_hold)
    }

    /// Recomputes [`Reachability`] and reports a change.
    fn reassess(&mut self) {
        if self.left {
            return;
        }
        let verdict = reachability::assess(&ReachabilityInputs {
            now: self.now,
            live_peers: self.live.len(),
            expected: self.expected_members,
            last_answer: self.last_answer,
            failed_probes: self.failed_probes,
            failed_probes_limit: ISOLATION_AFTER_FAILED_PROBES,
        });
        if verdict == self.reachability {
            return;
        }
        let was_isolated = self.reachability.is_isolated();
        self.reachability = verdict;
        if verdict.is_isolated() && !self.contact_down_scheduled {
            self.contact_down_scheduled = true;
            self.schedule(self.timing.probe_period, CoreTimer::ContactDown);
        }
        match verdict {
            Reachability::Isolated(reason) => {
                if !was_isolated {
                    self.isolated_since = Some(self.now);
                }
                // The silent_for figure changes on every call: report only a change of kind.
                if was_isolated {
                    return;
                }
                warn!(%reason, "cannot trust this member's view of the cluster");
            }
            Reachability::Reachable => {
                self.isolated_since = None;
                info!("members answer again");
            }
        }
        self.events
            .push_back(MembershipEvent::Reachability(verdict));
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
                self.own_incarnation = 0;
                self.events.push_back(MembershipEvent::Renewed(new));
                false
            }
            OwnedNotification::Active => {
                // A joiner that asked for the member list is connected once it has it (or gave
                // up on it): before, it knows only the few members foca's announce brought, and
                // would believe itself the owner of VIPs that belong to the others.
                if self.list_request.as_ref().is_some_and(|r| !r.answered) {
                    self.connected_pending = true;
                } else {
                    self.events.push_back(MembershipEvent::Connected);
                }
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
                self.health.probe_failed();
                self.failed_probes += 1;
                self.events.push_back(MembershipEvent::Suspect(id));
                false
            }
            OwnedNotification::DataReceived(header) => {
                self.observe_received(&header);
                false
            }
            OwnedNotification::DataSent(header) => {
                if header.src_incarnation > self.own_incarnation {
                    // foca raises its incarnation only to refute a suspicion of itself.
                    self.health.refuted_suspicion();
                    self.own_incarnation = header.src_incarnation;
                }
                false
            }
        }
    }

    /// What foca's incoming messages say about this member's reach and about suspects.
    fn observe_received(&mut self, header: &foca::Header<NodeId>) {
        let own = self.identity();
        match &header.message {
            Message::Ack(_) if header.dst == *own => self.answered(),
            Message::ForwardedAck { origin, .. } if origin == own => self.answered(),
            Message::IndirectAck { .. } => self.heard_answer(),
            Message::PingReq { target, .. } if self.timing.suspicion_checks => {
                // Asked to probe `target` on someone's behalf: if it does not answer this
                // member either, that is an independent confirmation.
                let incarnation = self
                    .swim
                    .iter_membership_state()
                    .find(|m| m.id() == target && m.state() != foca::State::Down)
                    .map(|m| m.incarnation());
                if let Some(incarnation) = incarnation {
                    let origin = header.src.addr;
                    self.watch(target_of(target, incarnation), target.clone(), Some(origin));
                }
            }
            _ => {}
        }
    }

    /// Another member answered something this member sent: it is not cut off.
    fn heard_answer(&mut self) {
        self.last_answer = Some(self.now);
        self.failed_probes = 0;
    }

    fn answered(&mut self) {
        self.heard_answer();
        if !self.probe_answered {
            self.probe_answered = true;
            self.health.probe_answered();
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
        if old != new {
            self.suspicions
                .set_timeouts(self.timing.suspicion_timeouts(size));
            if let Err(error) = self.swim.set_config(self.timing.foca_config(size)) {
                debug!(%error, "cannot resize membership timings");
            }
        }
    }
}

fn target_of(id: &NodeId, incarnation: u16) -> Target {
    Target {
        name: id.name.clone(),
        generation: id.generation,
        incarnation,
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, DropReason> {
    postcard::from_bytes(body).map_err(|_| DropReason::Malformed)
}
