//! The tokio shell around [`Membership`]: one UDP socket, the real clock, and channels out.
//!
//! All protocol decisions stay in the sans-io core; this task only moves bytes between the
//! socket and the core, sleeps until the core's next deadline, and publishes what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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
use crate::reachability::Reachability;

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
    /// Receive calls that failed.
    pub receive_errors: u64,
    pub reachability: Reachability,
    /// The local-health score (0 = healthy).
    pub local_health: u8,
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
    #[error(
        "gossip would advertise {0}, which no other member can reach: set an advertise address \
         (or bind a specific one)"
    )]
    UnspecifiedAdvertise(SocketAddr),
    #[error("the gossip task has stopped")]
    Stopped,
}

enum Command {
    Join(Vec<SocketAddr>),
    Expect(usize),
    SetKeyRing(KeyRing),
    Leave(oneshot::Sender<()>),
}

/// A running member. Dropping the handle without [`GossipHandle::leave`] stops the task
/// abruptly, as a crash would.
pub struct GossipHandle {
    identity: NodeId,
    live: watch::Receiver<BTreeSet<String>>,
    stats: watch::Receiver<DriverStats>,
    events: broadcast::Sender<MembershipEvent>,
    /// Subscribed before the member started, for the first [`GossipHandle::subscribe`].
    first_events: Option<broadcast::Receiver<MembershipEvent>>,
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

    /// Membership events. The first call gets every event since the member started: a quick
    /// join reports `Connected` within milliseconds, before a caller that subscribed only after
    /// [`spawn`] returned would be listening. Later calls get the events from then on.
    pub fn subscribe(&mut self) -> broadcast::Receiver<MembershipEvent> {
        self.first_events
            .take()
            .unwrap_or_else(|| self.events.subscribe())
    }

    /// Joins through more peers (for example when the peer list is rediscovered).
    pub async fn join(&self, peers: Vec<SocketAddr>) -> Result<(), DriverError> {
        self.commands
            .send(Command::Join(peers))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// How many members to expect in all, this one included (for the quorum part of
    /// reachability); 0 when unknown.
    pub async fn set_expected_members(&self, expected: usize) -> Result<(), DriverError> {
        self.commands
            .send(Command::Expect(expected))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// Seals and opens with `keyring` from now on (a key rotation step); membership and
    /// replay protection carry on unchanged.
    pub async fn set_keyring(&self, keyring: KeyRing) -> Result<(), DriverError> {
        self.commands
            .send(Command::SetKeyRing(keyring))
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

/// Binds `address`. The IPv6 wildcard is dual-stack (IPv4 peers reach it as v4-mapped
/// addresses); where the host has no IPv6 at all it falls back to the IPv4 wildcard.
async fn bind(address: SocketAddr) -> Result<UdpSocket, DriverError> {
    match UdpSocket::bind(address).await {
        Ok(socket) => Ok(socket),
        Err(error) if address.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
            let fallback = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), address.port());
            warn!(%address, %error, %fallback, "no IPv6 on this host; gossiping over IPv4 only");
            UdpSocket::bind(fallback)
                .await
                .map_err(|source| DriverError::Bind {
                    addr: fallback,
                    source,
                })
        }
        Err(source) => Err(DriverError::Bind {
            addr: address,
            source,
        }),
    }
}

/// Where to send to `to` from a socket bound to `local`: an IPv6 socket reaches IPv4 peers
/// through their v4-mapped address (the kernel refuses an IPv4 address there).
fn destination(local: SocketAddr, to: SocketAddr) -> SocketAddr {
    match (local, to) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        _ => to,
    }
}

/// Binds the socket and starts the member in a task of its own.
pub async fn spawn(config: DriverConfig) -> Result<GossipHandle, DriverError> {
    let socket = bind(config.bind).await?;
    let local = socket.local_addr().map_err(DriverError::LocalAddr)?;
    let generation = config.generation.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1)
    });
    let advertise = config.advertise.unwrap_or(local);
    if advertise.ip().is_unspecified() {
        return Err(DriverError::UnspecifiedAdvertise(advertise));
    }
    let identity = NodeId::new(config.node_name.clone(), advertise, generation);
    let origin = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut member = Membership::new(
        identity.clone(),
        config.timing.clone(),
        config.keyring.clone(),
        Seeds::from_entropy(),
    )
    .with_clock_epoch(wall);
    member.join(origin.elapsed(), &config.peers);

    let (live_tx, live) = watch::channel(member.live_names());
    let (stats_tx, stats) = watch::channel(DriverStats::default());
    let (events, first_events) = broadcast::channel(1024);
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
        first_events: Some(first_events),
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
/// Backoff after a failed receive, doubling up to [`RECEIVE_BACKOFF_MAX`] while failures last.
const RECEIVE_BACKOFF_MIN: Duration = Duration::from_millis(10);
const RECEIVE_BACKOFF_MAX: Duration = Duration::from_secs(1);

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
    let mut receive_errors = 0u64;
    let mut backoff: Option<Duration> = None;
    let mut stats_due = Instant::now();
    let mut leaving: Option<oneshot::Sender<()>> = None;
    let local = socket.local_addr().ok();
    loop {
        flush(&mut member, &socket, local, &outputs, &mut send_errors).await;
        if stats_due <= Instant::now() {
            stats_due = Instant::now() + STATS_INTERVAL;
            outputs.stats.send_replace(DriverStats {
                drops: member.drops().clone(),
                traffic: member.traffic(),
                member_states: member.member_states(),
                send_errors,
                receive_errors,
                reachability: member.reachability(),
                local_health: member.local_health(),
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
        if let Some(pause) = backoff {
            tokio::time::sleep(pause).await;
        }
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(Command::Join(peers)) => member.join(origin.elapsed(), &peers),
                Some(Command::Expect(expected)) => {
                    member.set_expected_members(origin.elapsed(), expected);
                }
                Some(Command::SetKeyRing(keyring)) => {
                    info!(sealing = keyring.sealing_id(), ids = ?keyring.ids(), "gossip key ring replaced");
                    member.set_keyring(keyring);
                }
                Some(Command::Leave(done)) => {
                    if let Err(error) = member.leave(origin.elapsed()) {
                        warn!(%error, "leaving the cluster failed");
                    }
                    leaving = Some(done);
                }
                // Every handle is gone: stop as a crash would.
                None => return,
            },
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    backoff = None;
                    deliver(&mut member, origin, from, &buf[..len]);
                }
                Err(error) => {
                    receive_errors += 1;
                    let next = backoff.map_or(RECEIVE_BACKOFF_MIN, |b| (b * 2).min(RECEIVE_BACKOFF_MAX));
                    if backoff.is_none() {
                        warn!(%error, "gossip receive failed; backing off");
                    }
                    backoff = Some(next);
                }
            },
            () = tokio::time::sleep_until(deadline) => {
                // Answers that arrived while this task was not running (a stall, a busy
                // runtime) are read before timers fire: otherwise probes that were answered
                // in time would be judged failed.
                while let Ok((len, from)) = socket.try_recv_from(&mut buf) {
                    deliver(&mut member, origin, from, &buf[..len]);
                }
                member.advance(origin.elapsed());
            }
        }
    }
}

fn deliver(member: &mut Membership, origin: Instant, from: SocketAddr, datagram: &[u8]) {
    if let Err(reason) = member.handle_datagram(origin.elapsed(), datagram) {
        debug!(%from, %reason, len = datagram.len(), "dropped gossip datagram");
    }
}

async fn flush(
    member: &mut Membership,
    socket: &UdpSocket,
    local: Option<SocketAddr>,
    outputs: &Outputs,
    errors: &mut u64,
) {
    while let Some(datagram) = member.poll_datagram() {
        let to = local.map_or(datagram.to, |local| destination(local, datagram.to));
        if let Err(error) = socket.send_to(&datagram.bytes, to).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_socket_sends_to_ipv4_peers_by_their_mapped_address() {
        let v6: SocketAddr = "[::]:7946".parse().expect("address");
        let v4: SocketAddr = "0.0.0.0:7946".parse().expect("address");
        let peer: SocketAddr = "192.0.2.7:7946".parse().expect("address");
        let peer6: SocketAddr = "[2001:db8::7]:7946".parse().expect("address");
        assert_eq!(
            destination(v6, peer),
            "[::ffff:192.0.2.7]:7946"
                .parse::<SocketAddr>()
                .expect("address")
        );
        assert_eq!(destination(v6, peer6), peer6);
        assert_eq!(destination(v4, peer), peer);
    }

    /// The dual-stack wildcard reaches an IPv4 peer on loopback (where the host has IPv6).
    #[tokio::test]
    async fn the_ipv6_wildcard_reaches_ipv4_peers() {
        let Ok(sender) = UdpSocket::bind("[::]:0").await else {
            return;
        };
        let receiver = UdpSocket::bind("127.0.0.1:0").await.expect("IPv4 loopback");
        let to = receiver.local_addr().expect("address");
        let local = sender.local_addr().expect("address");
        sender
            .send_to(b"ping", destination(local, to))
            .await
            .expect("a dual-stack socket sends to IPv4");
        let mut buf = [0u8; 8];
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), receiver.recv_from(&mut buf))
            .await
            .expect("the datagram arrives")
            .expect("received");
        assert_eq!(&buf[..len], b"ping");
    }
}
