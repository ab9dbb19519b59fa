//! ARP and neighbor discovery frames off an interface (speaker/src/packet.rs). Every request
//! the speaker accepts gets an answer that parses back to what was asked, and every frame the
//! speaker builds from any addresses parses back to them.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use swimlb_speaker::packet::{
    ALL_NODES, Mac, Malformed, Request, Skip, arp_fields, arp_reply, claimed_address,
    gratuitous_arp_reply, gratuitous_arp_request, neighbor_solicitation, parse_advertisement,
    parse_frame, solicited_advertisement, unsolicited_advertisement,
};

const LOCAL_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);

fn take<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at + N)?.try_into().ok()
}

fn answers(frame: &[u8]) {
    match parse_frame(frame, LOCAL_MAC) {
        Ok(Request::Arp(request)) => {
            assert_ne!(
                request.sender_ip, request.target_ip,
                "announcements ask nothing"
            );
            let vip = request.target_ip;
            let reply = arp_reply(&request, vip, LOCAL_MAC);
            assert_eq!(reply.len(), 60);
            assert_eq!(
                arp_fields(&reply),
                Some((2, LOCAL_MAC, vip, request.sender_mac, request.sender_ip))
            );
            let claim = (!vip.is_unspecified()).then_some((IpAddr::V4(vip), LOCAL_MAC));
            assert_eq!(claimed_address(&reply), claim);
        }
        Ok(Request::Ndp(solicitation)) => {
            assert!(!solicitation.target.is_multicast());
            assert!(!solicitation.source_ip.is_unspecified());
            let reply = solicited_advertisement(&solicitation, solicitation.target, LOCAL_MAC);
            let parsed = parse_advertisement(&reply).expect("our advertisement parses");
            assert_eq!(parsed.frame_destination, solicitation.reply_mac());
            assert_eq!(parsed.source_ip, solicitation.target);
            assert_eq!(parsed.destination_ip, solicitation.source_ip);
            assert_eq!(parsed.target, solicitation.target);
            assert!(parsed.solicited && !parsed.override_flag);
            assert_eq!(parsed.target_link_layer, Some(LOCAL_MAC));
        }
        Err(_) => {}
    }
    let _ = parse_advertisement(frame);
    let _ = claimed_address(frame);
    let _ = arp_fields(frame);
}

/// Frames built from addresses taken from the input.
fn built(data: &[u8]) {
    let (Some(a), Some(b), Some(mac), Some(v4)) = (
        take::<16>(data, 0),
        take::<16>(data, 16),
        take::<6>(data, 32),
        take::<4>(data, 38),
    ) else {
        return;
    };
    let (target, source, mac, v4) = (
        Ipv6Addr::from(a),
        Ipv6Addr::from(b),
        Mac(mac),
        Ipv4Addr::from(v4),
    );

    let solicitation = neighbor_solicitation(target, source, mac);
    match parse_frame(&solicitation, LOCAL_MAC) {
        Ok(Request::Ndp(parsed)) => {
            assert!(!target.is_multicast() && !source.is_unspecified());
            assert_eq!(parsed.frame_source, mac);
            assert_eq!(parsed.source_ip, source);
            assert_eq!(parsed.target, target);
            assert_eq!(parsed.source_link_layer, Some(mac));
        }
        Err(Skip::Malformed(Malformed::MulticastTarget)) => assert!(target.is_multicast()),
        Err(Skip::Irrelevant) => assert!(source.is_unspecified()),
        other => panic!("our own solicitation for {target} from {source}: {other:?}"),
    }

    let advertisement = unsolicited_advertisement(target, source, mac);
    let parsed = parse_advertisement(&advertisement).expect("our advertisement parses");
    assert_eq!(parsed.destination_ip, ALL_NODES);
    assert_eq!(parsed.source_ip, source);
    assert_eq!(parsed.target, target);
    assert!(parsed.override_flag && !parsed.solicited);
    assert_eq!(parsed.target_link_layer, Some(mac));
    assert_eq!(
        claimed_address(&advertisement),
        Some((IpAddr::V6(target), mac))
    );

    let claim = (!v4.is_unspecified()).then_some((IpAddr::V4(v4), mac));
    for announcement in [
        gratuitous_arp_request(v4, mac),
        gratuitous_arp_reply(v4, mac),
    ] {
        assert_eq!(parse_frame(&announcement, LOCAL_MAC), Err(Skip::Irrelevant));
        assert_eq!(claimed_address(&announcement), claim);
    }
}

fuzz_target!(|data: &[u8]| {
    answers(data);
    built(data);
});
