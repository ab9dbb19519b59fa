//! The edge between the pure packet code and one network interface: a raw packet socket
//! (pnet datalink channel) with a receive thread that answers requests for owned VIPs and
//! reports claims of watched VIPs from other MACs, a send thread fed by a bounded queue (so
//! neither the event loop nor the receive thread ever waits on the socket), and the IPv6
//! solicited-node groups of owned VIPs.

use crate::interfaces::SelectedInterface;
use crate::metrics::Metrics;
use crate::packet::{self, Mac, Request, Skip};
use pnet::datalink::{self, Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{debug, info_span, trace, warn};

/// How often a receive thread wakes without traffic to check whether it should stop.
const RECEIVE_POLL: Duration = Duration::from_millis(200);
/// Frames waiting for the send thread of one interface; beyond this they are dropped and
/// counted (a burst for 4,000 VIPs fits).
const SEND_QUEUE: usize = 8192;

/// The VIPs this node answers for, shared by every interface thread. Replaced as a whole by the
/// owner computation; a VIP removed here is not answered from the next frame on.
#[derive(Debug, Default)]
pub struct OwnedSet {
    vips: RwLock<BTreeSet<IpAddr>>,
    /// Every VIP of the placement: claims of these from other MACs go to the speaker core.
    watched: RwLock<BTreeSet<IpAddr>>,
    /// The interfaces some VIPs may be answered and announced on (their L2Advertisements name
    /// interfaces); a VIP not listed uses every interface.
    interfaces: RwLock<BTreeMap<IpAddr, BTreeSet<String>>>,
    /// Set while draining: the successors' announcements are expected, not conflicts.
    draining: AtomicBool,
}

impl OwnedSet {
    pub fn contains(&self, vip: IpAddr) -> bool {
        self.vips
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&vip)
    }

    pub fn insert(&self, vip: IpAddr) {
        self.vips
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(vip);
    }

    pub fn remove(&self, vip: IpAddr) {
        self.vips
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&vip);
    }

    pub fn replace(&self, vips: BTreeSet<IpAddr>) {
        *self.vips.write().unwrap_or_else(PoisonError::into_inner) = vips;
    }

    pub fn watch(&self, vips: BTreeSet<IpAddr>) {
        *self.watched.write().unwrap_or_else(PoisonError::into_inner) = vips;
    }

    fn watches(&self, vip: IpAddr) -> bool {
        self.watched
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&vip)
    }

    /// Replaces the interface restrictions.
    pub fn restrict(&self, interfaces: BTreeMap<IpAddr, BTreeSet<String>>) {
        *self
            .interfaces
            .write()
            .unwrap_or_else(PoisonError::into_inner) = interfaces;
    }

    /// Whether `vip` may be answered and announced on the interface `name`.
    pub fn allowed_on(&self, vip: IpAddr, name: &str) -> bool {
        self.interfaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&vip)
            .is_none_or(|names| names.contains(name))
    }

    /// Whether `vip` may use only the interfaces its advertisements name.
    pub fn is_restricted(&self, vip: IpAddr) -> bool {
        self.interfaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&vip)
    }

    /// Whether a request for `vip` arriving on the interface `name` is answered.
    fn answers_on(&self, vip: IpAddr, name: &str) -> bool {
        self.contains(vip) && self.allowed_on(vip, name)
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// At most one conflict warning per interface in this period; the counter counts them all.
const CONFLICT_WARN_PERIOD: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DatalinkError {
    #[error("interface {0} no longer exists")]
    Gone(String),
    #[error("cannot open a packet socket on {interface} (needs CAP_NET_RAW): {source}")]
    Open {
        interface: String,
        source: io::Error,
    },
    #[error("{0}: the packet socket is not an Ethernet channel")]
    NotEthernet(String),
    #[error("cannot start the threads for {interface}: {source}")]
    Thread {
        interface: String,
        source: io::Error,
    },
}

/// One interface the speaker answers and announces on.
pub struct InterfaceChannel {
    pub interface: SelectedInterface,
    frames: SyncSender<Vec<u8>>,
    groups: Mutex<MulticastGroups>,
    metrics: Metrics,
}

/// Where a receive thread reports a watched VIP claimed by another MAC. Full: the claim is
/// dropped (another one follows within the burst).
pub type ClaimSink = tokio::sync::mpsc::Sender<IpAddr>;

impl std::fmt::Debug for InterfaceChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterfaceChannel")
            .field("interface", &self.interface)
            .finish_non_exhaustive()
    }
}

impl InterfaceChannel {
    /// Opens the packet socket on `interface` and starts its receive thread, which runs until
    /// `stop` is set, and its send thread, which ends with the last handle to the channel.
    pub fn open(
        interface: SelectedInterface,
        owned: Arc<OwnedSet>,
        claims: ClaimSink,
        metrics: Metrics,
        stop: Arc<AtomicBool>,
    ) -> Result<(Arc<InterfaceChannel>, JoinHandle<()>), DatalinkError> {
        let network_interface = datalink::interfaces()
            .into_iter()
            .find(|i: &NetworkInterface| i.name == interface.name)
            .ok_or_else(|| DatalinkError::Gone(interface.name.clone()))?;
        let config = datalink::Config {
            read_timeout: Some(RECEIVE_POLL),
            write_timeout: Some(Duration::from_millis(100)),
            // Requests arrive broadcast, to our MAC, or to groups we join: no promiscuous mode.
            promiscuous: false,
            read_buffer_size: 65536,
            ..datalink::Config::default()
        };
        let (sender, receiver) = match datalink::channel(&network_interface, config) {
            Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
            Ok(_) => return Err(DatalinkError::NotEthernet(interface.name.clone())),
            Err(source) => {
                return Err(DatalinkError::Open {
                    interface: interface.name.clone(),
                    source,
                });
            }
        };
        let (frames, queue) = mpsc::sync_channel(SEND_QUEUE);
        let thread_error = |source| DatalinkError::Thread {
            interface: interface.name.clone(),
            source,
        };
        let send_metrics = metrics.clone();
        let send_name = interface.name.clone();
        std::thread::Builder::new()
            .name(format!("tx-{}", interface.name))
            .spawn(move || send_loop(sender, &queue, &send_metrics, &send_name))
            .map_err(thread_error)?;
        let channel = Arc::new(InterfaceChannel {
            groups: Mutex::new(MulticastGroups::new(interface.index)),
            interface: interface.clone(),
            frames,
            metrics,
        });
        let thread_channel = Arc::clone(&channel);
        let thread = std::thread::Builder::new()
            .name(format!("rx-{}", interface.name))
            .spawn(move || thread_channel.receive_loop(receiver, &owned, &claims, &stop))
            .map_err(thread_error)?;
        Ok((channel, thread))
    }

    fn receive_loop(
        &self,
        mut receiver: Box<dyn DataLinkReceiver>,
        owned: &OwnedSet,
        claims: &ClaimSink,
        stop: &AtomicBool,
    ) {
        let span = info_span!("responder", interface = %self.interface.name);
        let _entered = span.enter();
        let local_mac = self.interface.mac;
        let mut last_conflict_warning: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let frame = match receiver.next() {
                Ok(frame) => frame,
                Err(error) if error.kind() == io::ErrorKind::TimedOut => continue,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    // Typically the link went down: the socket keeps reporting the error and
                    // never delivers again. Stop; the next interface scan opens a fresh one.
                    warn!(%error, "the packet socket failed; stopping this responder");
                    break;
                }
            };
            // A packet socket also sees what this host sends: never answer ourselves.
            if frame.get(6..12) == Some(&local_mac.0[..]) {
                continue;
            }
            match packet::parse_frame(frame, local_mac) {
                Ok(request) => self.answer(request, owned),
                Err(Skip::Irrelevant) => {
                    let Some((vip, mac)) = packet::claimed_address(frame) else {
                        continue;
                    };
                    if mac == local_mac || owned.draining() {
                        continue;
                    }
                    if owned.watches(vip) && claims.try_send(vip).is_err() {
                        self.metrics.claims_dropped.inc();
                    }
                    if !owned.contains(vip) {
                        continue;
                    }
                    let counter = match vip {
                        IpAddr::V4(_) => &self.metrics.arp.conflicts,
                        IpAddr::V6(_) => &self.metrics.ndp.conflicts,
                    };
                    counter.inc();
                    let now = Instant::now();
                    if last_conflict_warning
                        .is_none_or(|at| now.duration_since(at) >= CONFLICT_WARN_PERIOD)
                    {
                        last_conflict_warning = Some(now);
                        warn!(%vip, other_mac = %mac, "another host claims a VIP this node announces");
                    }
                }
                Err(Skip::Malformed(reason)) => {
                    trace!(reason = reason.as_str(), "malformed frame");
                    self.metrics.malformed(reason);
                }
            }
        }
    }

    fn answer(&self, request: Request, owned: &OwnedSet) {
        let local_mac = self.interface.mac;
        let (vip, other) = match &request {
            Request::Arp(arp) => (IpAddr::V4(arp.target_ip), &self.metrics.arp.other_requests),
            Request::Ndp(ns) => (IpAddr::V6(ns.target), &self.metrics.ndp.other_requests),
        };
        if !self.metrics.vips.request(vip) {
            other.inc();
        }
        if !owned.answers_on(vip, &self.interface.name) {
            return;
        }
        self.metrics.vips.response(vip);
        let reply = match request {
            Request::Arp(arp) => packet::arp_reply(&arp, arp.target_ip, local_mac),
            Request::Ndp(ns) => packet::solicited_advertisement(&ns, ns.target, local_mac),
        };
        self.send(reply);
    }

    /// Queues `frame` for the send thread; never waits.
    fn send(&self, frame: Vec<u8>) {
        match self.frames.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.frames_dropped.inc();
            }
            Err(TrySendError::Disconnected(_)) => {
                self.metrics.send_errors.inc();
            }
        }
    }

    /// Asks the link whether another host holds `vip`: an ARP probe (RFC 5227: sender IP
    /// 0.0.0.0, so no neighbour cache learns from it) or, for IPv6, a solicitation from this
    /// interface's link-local address. Answers come back as claims.
    pub fn probe(&self, vip: IpAddr) {
        let mac = self.interface.mac;
        match vip {
            IpAddr::V4(v4) => {
                self.send(packet::arp_probe(v4, mac));
                self.metrics.arp.probes.inc();
            }
            IpAddr::V6(v6) => {
                let Some(source) = self.interface.link_local else {
                    return;
                };
                self.send(packet::neighbor_solicitation(v6, source, mac));
                self.metrics.ndp.probes.inc();
            }
        }
    }

    /// Sends one announcement round for `vip`: a gratuitous ARP request and reply (IPv4) or an
    /// unsolicited neighbor advertisement (IPv6).
    pub fn announce(&self, vip: IpAddr) {
        let mac = self.interface.mac;
        match vip {
            IpAddr::V4(v4) => {
                self.send(packet::gratuitous_arp_request(v4, mac));
                self.send(packet::gratuitous_arp_reply(v4, mac));
                self.metrics.vips.gratuitous(vip, 2);
            }
            IpAddr::V6(v6) => {
                self.send(packet::unsolicited_advertisement(v6, v6, mac));
                self.metrics.vips.gratuitous(vip, 1);
            }
        }
    }

    /// Receives the solicited-node group of `vip` on this interface.
    pub fn join(&self, vip: Ipv6Addr) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = groups.join(packet::solicited_node_group(vip)) {
            warn!(interface = %self.interface.name, %vip, %error,
                "cannot join the solicited-node group; solicitations for this VIP may not arrive");
        }
    }

    /// Stops receiving the solicited-node group of `vip` (unless another owned VIP shares it).
    pub fn leave(&self, vip: Ipv6Addr) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups.leave(packet::solicited_node_group(vip));
    }

    pub fn mac(&self) -> Mac {
        self.interface.mac
    }
}

/// Sends queued frames until every handle to the queue is gone.
fn send_loop(
    mut sender: Box<dyn DataLinkSender>,
    queue: &mpsc::Receiver<Vec<u8>>,
    metrics: &Metrics,
    interface: &str,
) {
    let span = info_span!("sender", interface);
    let _entered = span.enter();
    for frame in queue {
        match sender.send_to(&frame, None) {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                metrics.send_errors.inc();
                debug!(%error, "sending a frame failed");
            }
            None => {
                metrics.send_errors.inc();
            }
        }
    }
}

/// Memberships in IPv6 multicast groups on one interface, through UDP sockets bound to the
/// loopback address (they never receive anything; the membership makes the kernel accept the
/// group's frames on the interface and send MLD reports for switches that snoop).
/// A socket holds a limited number of memberships, so more sockets are opened as needed.
#[derive(Debug)]
struct MulticastGroups {
    index: u32,
    sockets: Vec<UdpSocket>,
    /// Group → (socket index, number of owned VIPs mapping to the group).
    members: BTreeMap<Ipv6Addr, (usize, usize)>,
}

/// ENOBUFS: the per-socket membership limit (optmem) is reached.
const ENOBUFS: i32 = 105;

impl MulticastGroups {
    fn new(index: u32) -> Self {
        Self {
            index,
            sockets: Vec::new(),
            members: BTreeMap::new(),
        }
    }

    fn join(&mut self, group: Ipv6Addr) -> io::Result<()> {
        if let Some((_, users)) = self.members.get_mut(&group) {
            *users += 1;
            return Ok(());
        }
        for (at, socket) in self.sockets.iter().enumerate() {
            match socket.join_multicast_v6(&group, self.index) {
                Ok(()) => {
                    self.members.insert(group, (at, 1));
                    return Ok(());
                }
                Err(error) if error.raw_os_error() == Some(ENOBUFS) => continue,
                Err(error) => return Err(error),
            }
        }
        let socket = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0))?;
        socket.join_multicast_v6(&group, self.index)?;
        self.sockets.push(socket);
        self.members.insert(group, (self.sockets.len() - 1, 1));
        Ok(())
    }

    fn leave(&mut self, group: Ipv6Addr) {
        let Some((at, users)) = self.members.get_mut(&group) else {
            return;
        };
        *users -= 1;
        if *users > 0 {
            return;
        }
        let at = *at;
        self.members.remove(&group);
        if let Some(socket) = self.sockets.get(at)
            && let Err(error) = socket.leave_multicast_v6(&group, self.index)
        {
            debug!(%group, %error, "leaving a multicast group failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restricted_vip_is_answered_only_on_its_interfaces() {
        let owned = OwnedSet::default();
        let restricted: IpAddr = "192.0.2.30".parse().expect("address");
        let free: IpAddr = "192.0.2.31".parse().expect("address");
        owned.replace([restricted, free].into());
        owned.restrict([(restricted, ["eth1".to_owned()].into())].into());
        assert!(owned.answers_on(restricted, "eth1"));
        assert!(!owned.answers_on(restricted, "eth0"));
        assert!(owned.answers_on(free, "eth0"));
        assert!(owned.is_restricted(restricted) && !owned.is_restricted(free));
        owned.remove(free);
        assert!(!owned.answers_on(free, "eth0"));
        owned.restrict(BTreeMap::new());
        assert!(owned.answers_on(restricted, "eth0"));
    }
}
