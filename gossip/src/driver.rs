//! The tokio shell around [`Membership`]: one UDP socket, the real clock, and channels out.
//!
//! All protocol decisions stay in the sans-io core; this task only moves bytes between the
//! socket and the core, sleeps until the core's next deadline, and publishes what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::envelope::{DropCounts, KeyRing, MAX_DATAGRAM};
use crate::identity::NodeId;
use crate::membership::{Membership, MembershipEvent, Seeds, TrafficCounts};
use crate::preset::Timing;

#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The stable node name: the key for owner selection.
    pub node_name: String,
    /// Where to listen; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Where other members reach this one; `None` means the bound address.
    pub advertise: Option<SocketAddr>,
    /// Members to join through, by address.
    pub peers: Vec<SocketAddr>,
    pub timing: Timing,
    pub keyring: KeyRing,
    /// The generation to start with; `None` takes the wall clock in milliseconds, so a restarted
    /// process always starts newer than the one it replaces.
    pub generation: Option<u64>,
}

/// Counters published by a running driver, refreshed at least once a second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverStats {
    pub drops: DropCounts,
    pub traffic: TrafficCounts,
    /// Known members other than this one, by state (alive, suspect, down).
    pub member_states: BTreeMap<&'static str, usize>,
    /// Datagrams the socket failed to send.
    pub send_errors: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot bind gossip socket {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the gossip socket's address: {0}")]
    LocalAddr(std::io::Error),
    #[error("the gossip task has stopped")]
    Stopped,
}

enum Command {
    Join(Vec<SocketAddr>),
    Leave(oneshot::Sender<()>),
}

/// A running member. Dropping the handle without [`GossipHandle::leave`] stops the task
/// abruptly, as a crash would.
pub struct GossipHandle {
    identity: NodeId,
    live: watch::Receiver<BTreeSet<String>>,
    stats: watch::Receiver<DriverStats>,
    events: broadcast::Sender<MembershipEvent>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

impl GossipHandle {
    pub fn identity(&self) -> &NodeId {
        &self.identity
    }

    /// Names of the live members, this one included.
    pub fn live_members(&self) -> watch::Receiver<BTreeSet<String>> {
        self.live.clone()
    }

    pub fn stats(&self) -> watch::Receiver<DriverStats> {
        self.stats.clone()
    }

    /// Membership events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        self.events.subscribe()
    }

    /// Joins through more peers (for example when the peer list is rediscovered).
    pub async fn join(&self, peers: Vec<SocketAddr>) -> Result<(), DriverError> {
        self.commands
            .send(Command::Join(peers))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// Leaves the cluster gracefully: the other members learn at once that this one is gone,
    /// then the task stops.
    pub async fn leave(mut self) -> Result<(), DriverError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Leave(done))
            .await
            .map_err(|_| DriverError::Stopped)?;
        wait.await.map_err(|_| DriverError::Stopped)?;
        let _ = (&mut self.task).await;
        Ok(())
    }
}

impl Drop for GossipHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds the socket and starts the member in a task of its own.
pub async fn spawn(config: DriverConfig) -> Result<GossipHandle, DriverError> {
    let socket = UdpSocket::bind(config.bind)
        .await
        .map_err(|source| DriverError::Bind {
            addr: config.bind,
            source,
        })?;
    let local = socket.local_addr().map_err(DriverError::LocalAddr)?;
    let generation = config.generation.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1)
    });
    let identity = NodeId::new(
        config.node_name.clone(),
        config.advertise.unwrap_or(local),
        generation,
    );
    let mut member = Membership::new(
        identity.clone(),
        config.timing.clone(),
        config.keyring.clone(),
        Seeds::from_entropy(),
    );
    let origin = Instant::now();
    member.join(origin.elapsed(), &config.peers);

    let (live_tx, live) = watch::channel(member.live_names());
    let (stats_tx, stats) = watch::channel(DriverStats::default());
    let (events, _) = broadcast::channel(1024);
    let (commands, command_rx) = mpsc::channel(16);
    let span = info_span!("gossip", node = %identity.name, addr = %identity.addr);
    info!(parent: &span, generation, peers = ?config.peers, "gossip member starting");
    let task = tokio::spawn(
        run(
            member,
            socket,
            origin,
            command_rx,
            Outputs {
                live: live_tx,
                stats: stats_tx,
                events: events.clone(),
            },
        )
        .instrument(span),
    );
    Ok(GossipHandle {
        identity,
        live,
        stats,
        events,
        commands,
        task,
    })
}

struct Outputs {
    live: watch::Sender<BTreeSet<String>>,
    stats: watch::Sender<DriverStats>,
    events: broadcast::Sender<MembershipEvent>,
}

const STATS_INTERVAL: Duration = Duration::from_secs(1);

async fn run(
    mut member: Membership,
    socket: UdpSocket,
    origin: Instant,
    mut commands: mpsc::Receiver<Command>,
    outputs: Outputs,
) {
    // One byte more than the largest valid datagram, so oversized ones are seen as such.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut send_errors = 0u64;
    let mut stats_due = Instant::now();
    let mut leaving: Option<oneshot::Sender<()>> = None;
    loop {
        flush(&mut member, &socket, &outputs, &mut send_errors).await;
        if stats_due <= Instant::now() {
            stats_due = Instant::now() + STATS_INTERVAL;
            outputs.stats.send_replace(DriverStats {
                drops: member.drops().clone(),
                traffic: member.traffic(),
                member_states: member.member_states(),
                send_errors,
            });
        }
        if let Some(done) = leaving.take() {
            let _ = done.send(());
            info!("left the gossip cluster");
            return;
        }
        let deadline = member
            .next_deadline()
            .map(|d| origin + d)
            .unwrap_or_else(|| Instant::now() + STATS_INTERVAL)
            .min(stats_due);
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    if let Err(reason) = member.handle_datagram(origin.elapsed(), &buf[..len]) {
                        debug!(%from, %reason, len, "dropped gossip datagram");
                    }
                }
                Err(error) => debug!(%error, "gossip receive failed"),
            },
            () = tokio::time::sleep_until(deadline) => member.advance(origin.elapsed()),
            command = commands.recv() => match command {
                Some(Command::Join(peers)) => member.join(origin.elapsed(), &peers),
                Some(Command::Leave(done)) => {
                    if let Err(error) = member.leave(origin.elapsed()) {
                        warn!(%error, "leaving the cluster failed");
                    }
                    leaving = Some(done);
                }
                // Every handle is gone: stop as a crash would.
                None => return,
            },
        }
    }
}

async fn flush(member: &mut Membership, socket: &UdpSocket, outputs: &Outputs, errors: &mut u64) {
    while let Some(datagram) = member.poll_datagram() {
        if let Err(error) = socket.send_to(&datagram.bytes, datagram.to).await {
            *errors += 1;
            debug!(%error, to = %datagram.to, "gossip send failed");
        }
    }
    let mut changed = false;
    while let Some(event) = member.poll_event() {
        match &event {
            MembershipEvent::Down(id) => info!(member = %id, "member down"),
            MembershipEvent::Up(id) => info!(member = %id, "member up"),
            other => debug!(event = ?other, "membership event"),
        }
        changed = true;
        // Nobody listening is fine.
        let _ = outputs.events.send(event);
    }
    if changed {
        let live = member.live_names();
        outputs.live.send_if_modified(|current| {
            if *current == live {
                false
            } else {
                *current = live;
                true
            }
        });
    }
}
