//! ARP and IPv6 neighbor discovery frames, parsed and built as plain bytes.
//!
//! Everything here is pure: an Ethernet frame in, a typed request (or the reason it was ignored)
//! out; a typed answer in, a ready-to-send Ethernet frame out. No sockets, no clocks.
//!
//! Choices worth knowing:
//! - Solicited Neighbor Advertisements carry S=1, O=0 (as MetalLB does). O=0 means a solicited
//!   answer never overrides a neighbor entry that already names another MAC: during a
//!   make-before-break handover the leaving node may still answer a solicitation, and it must
//!   not undo the successor's unsolicited advertisement. Taking over is done by the unsolicited
//!   advertisement, which carries O=1.
//! - Frames are padded to the 60-byte Ethernet minimum.
//! - Neighbor Solicitations from the unspecified address (duplicate address detection) are not
//!   answered: they come from a host about to configure the address itself, which is a conflict
//!   to report, not a question to answer.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    /// The Ethernet multicast address an IPv6 multicast address maps to (RFC 2464).
    pub fn ipv6_multicast(group: Ipv6Addr) -> Mac {
        let o = group.octets();
        Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    fn is_ipv6_multicast(self) -> bool {
        self.0[0] == 0x33 && self.0[1] == 0x33
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The IPv6 all-nodes multicast group, destination of unsolicited advertisements.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The solicited-node multicast group of `addr` (RFC 4291 2.7.1): ff02::1:ffXX:XXXX.
pub fn solicited_node_group(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERNET_HEADER_LEN: usize = 14;
const MIN_FRAME_LEN: usize = 60;
const ARP_LEN: usize = 28;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Type, code, checksum, reserved/flags, target address.
const ND_FIXED_LEN: usize = 24;
const ND_OPTION_SOURCE_LINK_LAYER: u8 = 1;
const ND_OPTION_TARGET_LINK_LAYER: u8 = 2;
const ND_HOP_LIMIT: u8 = 255;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;

/// An ARP request someone broadcast (or sent to us) asking who has `target_ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRequest {
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

/// An IPv6 Neighbor Solicitation asking for the link-layer address of `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// Ethernet source of the frame: where the answer goes when there is no link-layer option.
    pub frame_source: Mac,
    pub source_ip: Ipv6Addr,
    pub target: Ipv6Addr,
    pub source_link_layer: Option<Mac>,
}

impl NeighborSolicitation {
    /// The MAC the advertisement must be sent to.
    pub fn reply_mac(&self) -> Mac {
        self.source_link_layer.unwrap_or(self.frame_source)
    }
}

/// A request this speaker may have to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Arp(ArpRequest),
    Ndp(NeighborSolicitation),
}

/// Why a frame that looked like ARP or neighbor discovery was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Malformed {
    TruncatedEthernet,
    TruncatedArp,
    UnsupportedArpFormat,
    TruncatedIpv6,
    BadIpv6Version,
    Ipv6LengthMismatch,
    TruncatedIcmpv6,
    BadHopLimit,
    BadIcmpv6Code,
    BadIcmpv6Checksum,
    MulticastTarget,
    BadNdOption,
}

impl Malformed {
    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::TruncatedEthernet => "truncated_ethernet",
            Malformed::TruncatedArp => "truncated_arp",
            Malformed::UnsupportedArpFormat => "unsupported_arp_format",
            Malformed::TruncatedIpv6 => "truncated_ipv6",
            Malformed::BadIpv6Version => "bad_ipv6_version",
            Malformed::Ipv6LengthMismatch => "ipv6_length_mismatch",
            Malformed::TruncatedIcmpv6 => "truncated_icmpv6",
            Malformed::BadHopLimit => "bad_hop_limit",
            Malformed::BadIcmpv6Code => "bad_icmpv6_code",
            Malformed::BadIcmpv6Checksum => "bad_icmpv6_checksum",
            Malformed::MulticastTarget => "multicast_target",
            Malformed::BadNdOption => "bad_nd_option",
        }
    }

    pub const ALL: [Malformed; 12] = [
        Malformed::TruncatedEthernet,
        Malformed::TruncatedArp,
        Malformed::UnsupportedArpFormat,
        Malformed::TruncatedIpv6,
        Malformed::BadIpv6Version,
        Malformed::Ipv6LengthMismatch,
        Malformed::TruncatedIcmpv6,
        Malformed::BadHopLimit,
        Malformed::BadIcmpv6Code,
        Malformed::BadIcmpv6Checksum,
        Malformed::MulticastTarget,
        Malformed::BadNdOption,
    ];
}

/// Why a frame produced no request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Ordinary traffic that is none of our business (other protocols, ARP replies,
    /// announcements, frames addressed to another host, duplicate address detection).
    Irrelevant,
    /// Looked like ARP or neighbor discovery but broke the rules.
    Malformed(Malformed),
}

impl From<Malformed> for Skip {
    fn from(reason: Malformed) -> Self {
        Skip::Malformed(reason)
    }
}

fn take<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    take::<2>(bytes, at).map(u16::from_be_bytes)
}

/// Parses an Ethernet frame received on an interface whose MAC is `local_mac`.
pub fn parse_frame(frame: &[u8], local_mac: Mac) -> Result<Request, Skip> {
    let (Some(destination), Some(source), Some(ethertype)) = (
        take::<6>(frame, 0).map(Mac),
        take::<6>(frame, 6).map(Mac),
        u16_at(frame, 12),
    ) else {
        return Err(Malformed::TruncatedEthernet.into());
    };
    let payload = &frame[ETHERNET_HEADER_LEN..];
    match ethertype {
        ETHERTYPE_ARP => {
            if destination != Mac::BROADCAST && destination != local_mac {
                return Err(Skip::Irrelevant);
            }
            parse_arp(payload).map(Request::Arp)
        }
        ETHERTYPE_IPV6 => {
            if destination != local_mac && !destination.is_ipv6_multicast() {
                return Err(Skip::Irrelevant);
            }
            parse_neighbor_solicitation(payload, source).map(Request::Ndp)
        }
        _ => Err(Skip::Irrelevant),
    }
}

fn parse_arp(arp: &[u8]) -> Result<ArpRequest, Skip> {
    if arp.len() < ARP_LEN {
        return Err(Malformed::TruncatedArp.into());
    }
    let format_ok = arp[0..2] == [0, 1] && arp[2..4] == [0x08, 0x00] && arp[4] == 6 && arp[5] == 4;
    if !format_ok {
        return Err(Malformed::UnsupportedArpFormat.into());
    }
    let operation = u16::from_be_bytes([arp[6], arp[7]]);
    let (Some(sender_mac), Some(sender_ip), Some(target_ip)) =
        (take::<6>(arp, 8), take::<4>(arp, 14), take::<4>(arp, 24))
    else {
        return Err(Malformed::TruncatedArp.into());
    };
    let request = ArpRequest {
        sender_mac: Mac(sender_mac),
        sender_ip: Ipv4Addr::from(sender_ip),
        target_ip: Ipv4Addr::from(target_ip),
    };
    // Replies and announcements (sender = target) ask nothing.
    if operation != ARP_REQUEST || request.sender_ip == request.target_ip {
        return Err(Skip::Irrelevant);
    }
    Ok(request)
}

fn parse_neighbor_solicitation(ip: &[u8], frame_source: Mac) -> Result<NeighborSolicitation, Skip> {
    let Some(header) = take::<IPV6_HEADER_LEN>(ip, 0) else {
        return Err(Malformed::TruncatedIpv6.into());
    };
    if header[0] >> 4 != 6 {
        return Err(Malformed::BadIpv6Version.into());
    }
    // Solicitations carry no extension headers (RFC 4861 7.1.1 leaves none to skip).
    if header[6] != NEXT_HEADER_ICMPV6 {
        return Err(Skip::Irrelevant);
    }
    let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    // Ethernet padding may follow the packet; the packet may not run past the frame.
    let Some(icmp) = ip.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len) else {
        return Err(Malformed::Ipv6LengthMismatch.into());
    };
    let Some(&icmp_type) = icmp.first() else {
        return Err(Malformed::TruncatedIcmpv6.into());
    };
    if icmp_type != ICMPV6_NEIGHBOR_SOLICITATION {
        return Err(Skip::Irrelevant);
    }
    if icmp.len() < ND_FIXED_LEN {
        return Err(Malformed::TruncatedIcmpv6.into());
    }
    if header[7] != ND_HOP_LIMIT {
        return Err(Malformed::BadHopLimit.into());
    }
    if icmp[1] != 0 {
        return Err(Malformed::BadIcmpv6Code.into());
    }
    let source_ip = Ipv6Addr::from(take::<16>(&header, 8).unwrap_or_default());
    let destination_ip = Ipv6Addr::from(take::<16>(&header, 24).unwrap_or_default());
    if icmpv6_checksum(source_ip, destination_ip, icmp) != 0 {
        return Err(Malformed::BadIcmpv6Checksum.into());
    }
    let target = Ipv6Addr::from(take::<16>(icmp, 8).unwrap_or_default());
    if target.is_multicast() {
        return Err(Malformed::MulticastTarget.into());
    }
    let source_link_layer = parse_source_link_layer(&icmp[ND_FIXED_LEN..])?;
    if source_ip.is_unspecified() {
        return Err(Skip::Irrelevant);
    }
    Ok(NeighborSolicitation {
        frame_source,
        source_ip,
        target,
        source_link_layer,
    })
}

/// Walks the options; every option must have a non-zero length that fits (RFC 4861 4.6).
fn parse_source_link_layer(mut options: &[u8]) -> Result<Option<Mac>, Skip> {
    let mut found = None;
    while !options.is_empty() {
        let (Some(&kind), Some(&units)) = (options.first(), options.get(1)) else {
            return Err(Malformed::BadNdOption.into());
        };
        let len = usize::from(units) * 8;
        if len == 0 || len > options.len() {
            return Err(Malformed::BadNdOption.into());
        }
        if kind == ND_OPTION_SOURCE_LINK_LAYER {
            // Ethernet link-layer options are exactly one unit: type, length, 6-byte MAC.
            if len != 8 {
                return Err(Malformed::BadNdOption.into());
            }
            found = take::<6>(options, 2).map(Mac);
        }
        options = &options[len..];
    }
    Ok(found)
}

/// The ones' complement sum over the IPv6 pseudo-header and `message` (RFC 4443 2.3). Over a
/// message whose checksum field is filled in, a correct checksum yields 0.
fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = match pair {
                [high, low] => u16::from_be_bytes([*high, *low]),
                [high] => u16::from_be_bytes([*high, 0]),
                _ => 0,
            };
            sum += u32::from(word);
        }
    };
    add(&source.octets());
    add(&destination.octets());
    // Upper-layer length as 32 bits, then 3 zero bytes and the next header value.
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    add(&len.to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(destination: Mac, source: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity((ETHERNET_HEADER_LEN + payload.len()).max(MIN_FRAME_LEN));
    frame.extend_from_slice(&destination.0);
    frame.extend_from_slice(&source.0);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    if frame.len() < MIN_FRAME_LEN {
        frame.resize(MIN_FRAME_LEN, 0);
    }
    frame
}

struct ArpFields {
    operation: u16,
    sender_mac: Mac,
    sender_ip: Ipv4Addr,
    target_mac: Mac,
    target_ip: Ipv4Addr,
}

fn arp_frame(destination: Mac, fields: ArpFields) -> Vec<u8> {
    let mut arp = [0u8; ARP_LEN];
    arp[0..8].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 0]);
    arp[6..8].copy_from_slice(&fields.operation.to_be_bytes());
    arp[8..14].copy_from_slice(&fields.sender_mac.0);
    arp[14..18].copy_from_slice(&fields.sender_ip.octets());
    arp[18..24].copy_from_slice(&fields.target_mac.0);
    arp[24..28].copy_from_slice(&fields.target_ip.octets());
    ethernet(destination, fields.sender_mac, ETHERTYPE_ARP, &arp)
}

/// The unicast answer to `request`: `vip` is at `local_mac`.
pub fn arp_reply(request: &ArpRequest, vip: Ipv4Addr, local_mac: Mac) -> Vec<u8> {
    arp_frame(
        request.sender_mac,
        ArpFields {
            operation: ARP_REPLY,
            sender_mac: local_mac,
            sender_ip: vip,
            target_mac: request.sender_mac,
            target_ip: request.sender_ip,
        },
    )
}

/// A broadcast gratuitous ARP request (sender IP = target IP). Linux updates an existing
/// neighbor entry from it regardless of its lock time.
pub fn gratuitous_arp_request(vip: Ipv4Addr, local_mac: Mac) -> Vec<u8> {
    arp_frame(
        Mac::BROADCAST,
        ArpFields {
            operation: ARP_REQUEST,
            sender_mac: local_mac,
            sender_ip: vip,
            target_mac: Mac::ZERO,
            target_ip: vip,
        },
    )
}

/// A broadcast ARP request for `target` from `sender_ip` at `sender_mac`, as a client sends
/// one. A host holding `target` answers with a reply to `sender_mac`.
pub fn arp_request(target: Ipv4Addr, sender_ip: Ipv4Addr, sender_mac: Mac) -> Vec<u8> {
    arp_frame(
        Mac::BROADCAST,
        ArpFields {
            operation: ARP_REQUEST,
            sender_mac,
            sender_ip,
            target_mac: Mac::ZERO,
            target_ip: target,
        },
    )
}

/// A broadcast ARP probe for `vip` (RFC 5227: sender IP 0.0.0.0, so no neighbour cache
/// learns from it). A host holding `vip` answers with a reply to `local_mac`.
pub fn arp_probe(vip: Ipv4Addr, local_mac: Mac) -> Vec<u8> {
    arp_request(vip, Ipv4Addr::UNSPECIFIED, local_mac)
}

/// A broadcast gratuitous ARP reply (target MAC = sender MAC, which Linux requires before it
/// treats a reply as gratuitous), for hosts that only listen to replies.
pub fn gratuitous_arp_reply(vip: Ipv4Addr, local_mac: Mac) -> Vec<u8> {
    arp_frame(
        Mac::BROADCAST,
        ArpFields {
            operation: ARP_REPLY,
            sender_mac: local_mac,
            sender_ip: vip,
            target_mac: local_mac,
            target_ip: vip,
        },
    )
}

struct Advertisement {
    frame_destination: Mac,
    source_ip: Ipv6Addr,
    destination_ip: Ipv6Addr,
    flags: u8,
    target: Ipv6Addr,
    local_mac: Mac,
}

fn neighbor_advertisement(ad: Advertisement) -> Vec<u8> {
    let mut icmp = [0u8; ND_FIXED_LEN + 8];
    icmp[0] = ICMPV6_NEIGHBOR_ADVERTISEMENT;
    icmp[4] = ad.flags;
    icmp[8..24].copy_from_slice(&ad.target.octets());
    icmp[24] = ND_OPTION_TARGET_LINK_LAYER;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&ad.local_mac.0);
    let checksum = icmpv6_checksum(ad.source_ip, ad.destination_ip, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    let mut packet = Vec::with_capacity(IPV6_HEADER_LEN + icmp.len());
    packet.extend_from_slice(&[0x60, 0, 0, 0]);
    packet.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[NEXT_HEADER_ICMPV6, ND_HOP_LIMIT]);
    packet.extend_from_slice(&ad.source_ip.octets());
    packet.extend_from_slice(&ad.destination_ip.octets());
    packet.extend_from_slice(&icmp);
    ethernet(ad.frame_destination, ad.local_mac, ETHERTYPE_IPV6, &packet)
}

/// The solicited answer to `solicitation` (S=1, O=0; see the module docs), sent from
/// `source_ip`. The speaker uses the VIP itself, as Linux does when it answers for its own
/// addresses; some tools (ndisc6) ignore answers for a global target from a link-local source.
pub fn solicited_advertisement(
    solicitation: &NeighborSolicitation,
    source_ip: Ipv6Addr,
    local_mac: Mac,
) -> Vec<u8> {
    neighbor_advertisement(Advertisement {
        frame_destination: solicitation.reply_mac(),
        source_ip,
        destination_ip: solicitation.source_ip,
        flags: NA_FLAG_SOLICITED,
        target: solicitation.target,
        local_mac,
    })
}

/// An unsolicited advertisement (S=0, O=1) to all nodes: replaces the MAC in every neighbor
/// entry for `vip` on the link.
pub fn unsolicited_advertisement(vip: Ipv6Addr, source_ip: Ipv6Addr, local_mac: Mac) -> Vec<u8> {
    neighbor_advertisement(Advertisement {
        frame_destination: Mac::ipv6_multicast(ALL_NODES),
        source_ip,
        destination_ip: ALL_NODES,
        flags: NA_FLAG_OVERRIDE,
        target: vip,
        local_mac,
    })
}

/// A Neighbor Solicitation for `target` from `source_ip` with a source link-layer option, sent
/// to the target's solicited-node group. The speaker sends these to probe for IPv6 VIPs while
/// fenced (from its link-local address); tests and tools send them as clients.
pub fn neighbor_solicitation(target: Ipv6Addr, source_ip: Ipv6Addr, source_mac: Mac) -> Vec<u8> {
    let group = solicited_node_group(target);
    let mut icmp = [0u8; ND_FIXED_LEN + 8];
    icmp[0] = ICMPV6_NEIGHBOR_SOLICITATION;
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = ND_OPTION_SOURCE_LINK_LAYER;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&source_mac.0);
    let checksum = icmpv6_checksum(source_ip, group, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    let mut packet = Vec::with_capacity(IPV6_HEADER_LEN + icmp.len());
    packet.extend_from_slice(&[0x60, 0, 0, 0]);
    packet.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[NEXT_HEADER_ICMPV6, ND_HOP_LIMIT]);
    packet.extend_from_slice(&source_ip.octets());
    packet.extend_from_slice(&group.octets());
    packet.extend_from_slice(&icmp);
    ethernet(
        Mac::ipv6_multicast(group),
        source_mac,
        ETHERTYPE_IPV6,
        &packet,
    )
}

/// A parsed Neighbor Advertisement: what a client learns from one. Used by tests to check the
/// frames this module builds; the speaker itself ignores advertisements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedAdvertisement {
    pub frame_destination: Mac,
    pub source_ip: Ipv6Addr,
    pub destination_ip: Ipv6Addr,
    pub solicited: bool,
    pub override_flag: bool,
    pub target: Ipv6Addr,
    pub target_link_layer: Option<Mac>,
}

/// Parses a Neighbor Advertisement frame, checking hop limit and checksum.
pub fn parse_advertisement(frame: &[u8]) -> Option<ParsedAdvertisement> {
    if u16_at(frame, 12)? != ETHERTYPE_IPV6 {
        return None;
    }
    let ip = frame.get(ETHERNET_HEADER_LEN..)?;
    let header = take::<IPV6_HEADER_LEN>(ip, 0)?;
    let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let icmp = ip.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len)?;
    if header[6] != NEXT_HEADER_ICMPV6 || header[7] != ND_HOP_LIMIT || icmp.len() < ND_FIXED_LEN {
        return None;
    }
    let source_ip = Ipv6Addr::from(take::<16>(&header, 8)?);
    let destination_ip = Ipv6Addr::from(take::<16>(&header, 24)?);
    if icmp[0] != ICMPV6_NEIGHBOR_ADVERTISEMENT
        || icmpv6_checksum(source_ip, destination_ip, icmp) != 0
    {
        return None;
    }
    let option = icmp.get(ND_FIXED_LEN..ND_FIXED_LEN + 8);
    let target_link_layer = match option {
        Some(o) if o[0] == ND_OPTION_TARGET_LINK_LAYER && o[1] == 1 => take::<6>(o, 2).map(Mac),
        _ => None,
    };
    Some(ParsedAdvertisement {
        frame_destination: Mac(take::<6>(frame, 0)?),
        source_ip,
        destination_ip,
        solicited: icmp[4] & NA_FLAG_SOLICITED != 0,
        override_flag: icmp[4] & NA_FLAG_OVERRIDE != 0,
        target: Ipv6Addr::from(take::<16>(icmp, 8)?),
        target_link_layer,
    })
}

/// Who a frame says holds an address: ARP replies and announcements (the sender IP is at the
/// sender MAC) and neighbor advertisements (the target is at the target link-layer address).
/// The speaker compares these with its own MAC to spot another host answering for its VIPs.
pub fn claimed_address(frame: &[u8]) -> Option<(IpAddr, Mac)> {
    if let Some((operation, sender_mac, sender_ip, _, target_ip)) = arp_fields(frame) {
        let claims = operation == ARP_REPLY || (operation == ARP_REQUEST && sender_ip == target_ip);
        return (claims && !sender_ip.is_unspecified())
            .then_some((IpAddr::V4(sender_ip), sender_mac));
    }
    let advertisement = parse_advertisement(frame)?;
    Some((
        IpAddr::V6(advertisement.target),
        advertisement.target_link_layer?,
    ))
}

/// The answer a frame gives to a client at `client_mac` (and `client_v6`): an ARP reply sent to
/// that MAC, or a solicited Neighbor Advertisement sent to that address, as (the address asked
/// for, the MAC that answered). Announcements and answers to other hosts are `None`.
pub fn answer_to(frame: &[u8], client_mac: Mac, client_v6: Ipv6Addr) -> Option<(IpAddr, Mac)> {
    if let Some((operation, sender_mac, sender_ip, target_mac, _)) = arp_fields(frame) {
        return (operation == ARP_REPLY && target_mac == client_mac)
            .then_some((IpAddr::V4(sender_ip), sender_mac));
    }
    let advertisement = parse_advertisement(frame)?;
    if !advertisement.solicited || advertisement.destination_ip != client_v6 {
        return None;
    }
    Some((
        IpAddr::V6(advertisement.target),
        advertisement.target_link_layer?,
    ))
}

/// The fields of an ARP frame: (operation, sender MAC, sender IP, target MAC, target IP).
pub type ArpFrameFields = (u16, Mac, Ipv4Addr, Mac, Ipv4Addr);

/// Reads any ARP frame (request or reply) without judging it. Used by tests and diagnostics.
pub fn arp_fields(frame: &[u8]) -> Option<ArpFrameFields> {
    if u16_at(frame, 12)? != ETHERTYPE_ARP {
        return None;
    }
    let arp = frame.get(ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + ARP_LEN)?;
    if arp[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    Some((
        u16_at(arp, 6)?,
        Mac(take::<6>(arp, 8)?),
        Ipv4Addr::from(take::<4>(arp, 14)?),
        Mac(take::<6>(arp, 18)?),
        Ipv4Addr::from(take::<4>(arp, 24)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLIENT_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x64]);
    const LOCAL_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| {
                let s = std::str::from_utf8(pair).expect("ascii");
                u8::from_str_radix(s, 16).expect("hex")
            })
            .collect()
    }

    /// An ARP request as Linux sends it: who has 192.0.2.200? tell 192.0.2.100.
    fn arp_request_fixture() -> Vec<u8> {
        hex("ffffffffffff 020000000064 0806
             0001 0800 06 04 0001 020000000064 c0000264 000000000000 c00002c8")
    }

    fn ns_fixture_with_checksum() -> Vec<u8> {
        // Who has 2001:db8::c8:c8? from 2001:db8::64, to the solicited-node group, as Linux
        // lays it out; the checksum is filled in by the longhand computation below.
        let text = "3333ffc800c8 020000000064 86dd 6000 0000 0020 3aff
             20010db8000000000000000000000064 ff0200000000000000000001ffc800c8
             8700 0000 00000000 20010db8000000000000000000c800c8 0101 020000000064";
        let mut frame = hex(text);
        let sum = independent_checksum(&frame[14..]);
        frame[14 + 40 + 2..14 + 40 + 4].copy_from_slice(&sum.to_be_bytes());
        frame
    }

    /// RFC 1071 checksum written out longhand over an explicit pseudo-header buffer.
    fn independent_checksum(ip: &[u8]) -> u16 {
        let payload_len = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        let mut buf = Vec::new();
        buf.extend_from_slice(&ip[8..40]);
        buf.extend_from_slice(&(payload_len as u32).to_be_bytes());
        buf.extend_from_slice(&[0, 0, 0, 58]);
        buf.extend_from_slice(&ip[40..40 + payload_len]);
        buf[40 + 2] = 0;
        buf[40 + 3] = 0;
        if buf.len() % 2 == 1 {
            buf.push(0);
        }
        let mut sum: u64 = 0;
        for i in (0..buf.len()).step_by(2) {
            sum += u64::from(buf[i]) << 8 | u64::from(buf[i + 1]);
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn parses_linux_arp_request() {
        let request = parse_frame(&arp_request_fixture(), LOCAL_MAC).expect("request");
        assert_eq!(
            request,
            Request::Arp(ArpRequest {
                sender_mac: CLIENT_MAC,
                sender_ip: Ipv4Addr::new(192, 0, 2, 100),
                target_ip: Ipv4Addr::new(192, 0, 2, 200),
            })
        );
    }

    #[test]
    fn a_client_sees_only_the_answers_to_its_own_requests() {
        let client_v4 = Ipv4Addr::new(192, 0, 2, 100);
        let client_v6: Ipv6Addr = "2001:db8::64".parse().expect("addr");
        let other = Mac([0x02, 0, 0, 0, 0, 0x65]);
        let vip = Ipv4Addr::new(192, 0, 2, 200);
        let Ok(Request::Arp(request)) =
            parse_frame(&arp_request(vip, client_v4, CLIENT_MAC), LOCAL_MAC)
        else {
            panic!("a client's request is a request to answer");
        };
        assert_eq!(request.sender_ip, client_v4);
        let answer = arp_reply(&request, vip, LOCAL_MAC);
        assert_eq!(
            answer_to(&answer, CLIENT_MAC, client_v6),
            Some((IpAddr::V4(vip), LOCAL_MAC))
        );
        assert_eq!(answer_to(&answer, other, client_v6), None, "not ours");
        for announcement in [
            gratuitous_arp_request(vip, LOCAL_MAC),
            gratuitous_arp_reply(vip, LOCAL_MAC),
        ] {
            assert_eq!(answer_to(&announcement, CLIENT_MAC, client_v6), None);
        }

        let vip6: Ipv6Addr = "2001:db8::c8".parse().expect("addr");
        let Ok(Request::Ndp(solicitation)) = parse_frame(
            &neighbor_solicitation(vip6, client_v6, CLIENT_MAC),
            LOCAL_MAC,
        ) else {
            panic!("a client's solicitation is a request to answer");
        };
        let advertisement = solicited_advertisement(&solicitation, vip6, LOCAL_MAC);
        assert_eq!(
            answer_to(&advertisement, CLIENT_MAC, client_v6),
            Some((IpAddr::V6(vip6), LOCAL_MAC))
        );
        let elsewhere: Ipv6Addr = "2001:db8::65".parse().expect("addr");
        assert_eq!(answer_to(&advertisement, CLIENT_MAC, elsewhere), None);
        let unsolicited = unsolicited_advertisement(vip6, vip6, LOCAL_MAC);
        assert_eq!(answer_to(&unsolicited, CLIENT_MAC, client_v6), None);
    }

    #[test]
    fn an_arp_probe_is_answered_by_the_holder_and_its_answer_is_a_claim() {
        let vip = Ipv4Addr::new(192, 0, 2, 200);
        let probe = arp_probe(vip, CLIENT_MAC);
        assert_eq!(
            arp_fields(&probe),
            Some((1, CLIENT_MAC, Ipv4Addr::UNSPECIFIED, Mac::ZERO, vip))
        );
        assert_eq!(claimed_address(&probe), None, "a probe claims nothing");
        let Ok(Request::Arp(request)) = parse_frame(&probe, LOCAL_MAC) else {
            panic!("a probe is a request to answer");
        };
        let answer = arp_reply(&request, vip, LOCAL_MAC);
        assert_eq!(&answer[0..6], &CLIENT_MAC.0, "answered to the prober");
        assert_eq!(claimed_address(&answer), Some((IpAddr::V4(vip), LOCAL_MAC)));
    }

    #[test]
    fn arp_request_with_padding_parses() {
        let mut frame = arp_request_fixture();
        frame.resize(60, 0);
        assert!(matches!(
            parse_frame(&frame, LOCAL_MAC),
            Ok(Request::Arp(_))
        ));
    }

    #[test]
    fn arp_reply_bytes() {
        let Ok(Request::Arp(request)) = parse_frame(&arp_request_fixture(), LOCAL_MAC) else {
            panic!("fixture parses");
        };
        let reply = arp_reply(&request, Ipv4Addr::new(192, 0, 2, 200), LOCAL_MAC);
        let mut expected = hex("020000000064 020000000001 0806
             0001 0800 06 04 0002 020000000001 c00002c8 020000000064 c0000264");
        expected.resize(60, 0);
        assert_eq!(reply, expected);
    }

    #[test]
    fn gratuitous_arp_bytes() {
        let vip = Ipv4Addr::new(192, 0, 2, 200);
        let mut request = hex("ffffffffffff 020000000001 0806
             0001 0800 06 04 0001 020000000001 c00002c8 000000000000 c00002c8");
        request.resize(60, 0);
        assert_eq!(gratuitous_arp_request(vip, LOCAL_MAC), request);
        let mut reply = hex("ffffffffffff 020000000001 0806
             0001 0800 06 04 0002 020000000001 c00002c8 020000000001 c00002c8");
        reply.resize(60, 0);
        assert_eq!(gratuitous_arp_reply(vip, LOCAL_MAC), reply);
    }

    #[test]
    fn our_own_announcements_and_replies_are_not_questions() {
        let vip = Ipv4Addr::new(192, 0, 2, 200);
        for frame in [
            gratuitous_arp_request(vip, LOCAL_MAC),
            gratuitous_arp_reply(vip, LOCAL_MAC),
        ] {
            assert_eq!(parse_frame(&frame, LOCAL_MAC), Err(Skip::Irrelevant));
        }
    }

    #[test]
    fn arp_for_another_host_is_irrelevant() {
        let mut frame = arp_request_fixture();
        frame[0..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
        assert_eq!(parse_frame(&frame, LOCAL_MAC), Err(Skip::Irrelevant));
        // Unicast to us is fine (Linux re-validates entries this way).
        frame[0..6].copy_from_slice(&LOCAL_MAC.0);
        assert!(parse_frame(&frame, LOCAL_MAC).is_ok());
    }

    #[test]
    fn malformed_arp_is_counted_by_reason() {
        let frame = arp_request_fixture();
        assert_eq!(
            parse_frame(&frame[..30], LOCAL_MAC),
            Err(Skip::Malformed(Malformed::TruncatedArp))
        );
        assert_eq!(
            parse_frame(&frame[..10], LOCAL_MAC),
            Err(Skip::Malformed(Malformed::TruncatedEthernet))
        );
        let mut bad = frame.clone();
        bad[14 + 4] = 8; // hardware length
        assert_eq!(
            parse_frame(&bad, LOCAL_MAC),
            Err(Skip::Malformed(Malformed::UnsupportedArpFormat))
        );
    }

    #[test]
    fn checksum_matches_independent_computation() {
        let frame = ns_fixture_with_checksum();
        let ip = &frame[14..];
        let ours = icmpv6_checksum(
            Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).expect("16")),
            Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).expect("16")),
            &ip[40..],
        );
        assert_eq!(ours, 0, "a filled-in checksum verifies to zero");
    }

    #[test]
    fn parses_neighbor_solicitation() {
        let frame = ns_fixture_with_checksum();
        let request = parse_frame(&frame, LOCAL_MAC).expect("solicitation");
        let target: Ipv6Addr = "2001:db8::c8:c8".parse().expect("addr");
        assert_eq!(
            request,
            Request::Ndp(NeighborSolicitation {
                frame_source: CLIENT_MAC,
                source_ip: "2001:db8::64".parse().expect("addr"),
                target,
                source_link_layer: Some(CLIENT_MAC),
            })
        );
        assert_eq!(
            neighbor_solicitation(target, "2001:db8::64".parse().expect("addr"), CLIENT_MAC),
            frame
        );
    }

    #[test]
    fn neighbor_solicitation_errors() {
        let good = ns_fixture_with_checksum();
        let mut bad_sum = good.clone();
        bad_sum[14 + 40 + 2] ^= 0x01;
        assert_eq!(
            parse_frame(&bad_sum, LOCAL_MAC),
            Err(Skip::Malformed(Malformed::BadIcmpv6Checksum))
        );
        let mut hop = good.clone();
        hop[14 + 7] = 64;
        assert_eq!(
            parse_frame(&hop, LOCAL_MAC),
            Err(Skip::Malformed(Malformed::BadHopLimit))
        );
        assert_eq!(
            parse_frame(&good[..14 + 30], LOCAL_MAC),
            Err(Skip::Malformed(Malformed::TruncatedIpv6))
        );
        assert_eq!(
            parse_frame(&good[..good.len() - 4], LOCAL_MAC),
            Err(Skip::Malformed(Malformed::Ipv6LengthMismatch))
        );
        let mut version = good.clone();
        version[14] = 0x40;
        assert_eq!(
            parse_frame(&version, LOCAL_MAC),
            Err(Skip::Malformed(Malformed::BadIpv6Version))
        );
        // An option of length zero would loop forever in a careless parser.
        let mut zero_option = good.clone();
        let at = zero_option.len() - 7;
        zero_option[at] = 0;
        let sum = independent_checksum(&zero_option[14..]);
        zero_option[14 + 42..14 + 44].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            parse_frame(&zero_option, LOCAL_MAC),
            Err(Skip::Malformed(Malformed::BadNdOption))
        );
    }

    #[test]
    fn duplicate_address_detection_is_not_answered() {
        let target: Ipv6Addr = "2001:db8::c8".parse().expect("addr");
        let mut frame = neighbor_solicitation(target, Ipv6Addr::UNSPECIFIED, CLIENT_MAC);
        // DAD probes carry no source link-layer option: drop it and fix lengths and checksum.
        frame.truncate(frame.len() - 8);
        frame[14 + 5] = 24;
        frame[14 + 42] = 0;
        frame[14 + 43] = 0;
        let sum = independent_checksum(&frame[14..]);
        frame[14 + 42..14 + 44].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_frame(&frame, LOCAL_MAC), Err(Skip::Irrelevant));
    }

    #[test]
    fn solicited_advertisement_fields() {
        let Ok(Request::Ndp(ns)) = parse_frame(&ns_fixture_with_checksum(), LOCAL_MAC) else {
            panic!("fixture parses");
        };
        let link_local: Ipv6Addr = "fe80::1".parse().expect("addr");
        let frame = solicited_advertisement(&ns, link_local, LOCAL_MAC);
        assert_eq!(
            independent_checksum(&frame[14..]),
            u16::from_be_bytes([frame[56], frame[57]])
        );
        let na = parse_advertisement(&frame).expect("advertisement");
        assert_eq!(na.frame_destination, CLIENT_MAC);
        assert_eq!(na.source_ip, link_local);
        assert_eq!(na.destination_ip, ns.source_ip);
        assert!(na.solicited);
        assert!(!na.override_flag);
        assert_eq!(na.target, ns.target);
        assert_eq!(na.target_link_layer, Some(LOCAL_MAC));
        assert_eq!(&frame[6..12], &LOCAL_MAC.0);
    }

    #[test]
    fn unsolicited_advertisement_bytes() {
        let vip: Ipv6Addr = "2001:db8::c8".parse().expect("addr");
        let link_local: Ipv6Addr = "fe80::1".parse().expect("addr");
        let frame = unsolicited_advertisement(vip, link_local, LOCAL_MAC);
        let mut expected = hex("333300000001 020000000001 86dd
             6000 0000 0020 3aff
             fe800000000000000000000000000001
             ff020000000000000000000000000001
             88 00 0000 20000000 20010db80000000000000000000000c8
             0201 020000000001");
        let sum = independent_checksum(&expected[14..]);
        expected[56..58].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(frame, expected);
    }

    #[test]
    fn solicited_node_group_and_mac() {
        let vip: Ipv6Addr = "2001:db8::1:2345:6789".parse().expect("addr");
        let group = solicited_node_group(vip);
        assert_eq!(
            group,
            "ff02::1:ff45:6789".parse::<Ipv6Addr>().expect("addr")
        );
        assert_eq!(Mac::ipv6_multicast(group).to_string(), "33:33:ff:45:67:89");
    }

    #[test]
    fn claims_are_read_from_replies_announcements_and_advertisements() {
        let v4 = Ipv4Addr::new(192, 0, 2, 200);
        let v6: Ipv6Addr = "2001:db8::c8".parse().expect("addr");
        for frame in [
            gratuitous_arp_request(v4, LOCAL_MAC),
            gratuitous_arp_reply(v4, LOCAL_MAC),
        ] {
            assert_eq!(claimed_address(&frame), Some((IpAddr::V4(v4), LOCAL_MAC)));
        }
        let Ok(Request::Arp(request)) = parse_frame(&arp_request_fixture(), LOCAL_MAC) else {
            panic!("fixture parses");
        };
        assert_eq!(
            claimed_address(&arp_reply(&request, v4, LOCAL_MAC)),
            Some((IpAddr::V4(v4), LOCAL_MAC))
        );
        // A question claims nothing.
        assert_eq!(claimed_address(&arp_request_fixture()), None);
        assert_eq!(
            claimed_address(&unsolicited_advertisement(v6, v6, LOCAL_MAC)),
            Some((IpAddr::V6(v6), LOCAL_MAC))
        );
        assert_eq!(claimed_address(&ns_fixture_with_checksum()), None);
    }

    fn arb_mac() -> impl Strategy<Value = Mac> {
        any::<[u8; 6]>().prop_map(|mut m| {
            m[0] &= 0xfe; // unicast
            Mac(m)
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_frame(&bytes, LOCAL_MAC);
            let _ = parse_advertisement(&bytes);
            let _ = arp_fields(&bytes);
            let _ = claimed_address(&bytes);
        }

        #[test]
        fn mutated_solicitations_never_panic(
            flips in proptest::collection::vec((0usize..86, any::<u8>()), 1..6),
            cut in 0usize..90,
        ) {
            let mut frame = ns_fixture_with_checksum();
            for (at, value) in flips {
                if let Some(byte) = frame.get_mut(at) { *byte = value; }
            }
            frame.truncate(cut.max(1));
            let _ = parse_frame(&frame, LOCAL_MAC);
        }

        #[test]
        fn arp_reply_round_trip(sender in arb_mac(), sender_ip in any::<u32>(), vip in any::<u32>(), local in arb_mac()) {
            let (sender_ip, vip) = (Ipv4Addr::from(sender_ip), Ipv4Addr::from(vip));
            prop_assume!(sender_ip != vip);
            let request = ArpRequest { sender_mac: sender, sender_ip, target_ip: vip };
            let reply = arp_reply(&request, vip, local);
            prop_assert_eq!(arp_fields(&reply), Some((ARP_REPLY, local, vip, sender, sender_ip)));
            prop_assert_eq!(&reply[0..6], &sender.0);
        }

        #[test]
        fn solicitation_round_trip(target in any::<u128>(), source in any::<u128>(), client in arb_mac(), local in arb_mac()) {
            let (target, source) = (Ipv6Addr::from(target), Ipv6Addr::from(source));
            prop_assume!(!target.is_multicast() && !source.is_unspecified());
            let frame = neighbor_solicitation(target, source, client);
            let parsed = parse_frame(&frame, local);
            let expected = NeighborSolicitation { frame_source: client, source_ip: source, target, source_link_layer: Some(client) };
            prop_assert_eq!(parsed, Ok(Request::Ndp(expected)));
            let na = parse_advertisement(&solicited_advertisement(&expected, "fe80::1".parse().expect("addr"), local));
            prop_assert!(na.is_some());
            let na = na.expect("checked");
            prop_assert_eq!(na.target, target);
            prop_assert_eq!(na.destination_ip, source);
            prop_assert_eq!(na.target_link_layer, Some(local));
        }

        #[test]
        fn unsolicited_round_trip(vip in any::<u128>(), local in arb_mac()) {
            let vip = Ipv6Addr::from(vip);
            let na = parse_advertisement(&unsolicited_advertisement(vip, vip, local));
            prop_assert!(na.is_some());
            let na = na.expect("checked");
            prop_assert!(na.override_flag && !na.solicited);
            prop_assert_eq!(na.destination_ip, ALL_NODES);
            prop_assert_eq!(na.frame_destination, Mac([0x33, 0x33, 0, 0, 0, 1]));
        }
    }
}
