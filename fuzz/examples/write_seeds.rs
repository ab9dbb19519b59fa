//! Writes the seed corpus of every fuzz target into `fuzz/seeds/<target>/`: the unit-test
//! fixtures, the examples in `deploy/examples/`, and real gossip traffic of a three-member
//! cluster recorded on a virtual clock, in the gossip harness's record format.
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example write_seeds
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use swimlb_fuzz::gossip::{
    ADVANCE_STEP, EPOCH, KEY, KEY_ID, PATCH_TOKEN, Record, STALE, TWICE, addr, member_under_test,
    node,
};
use swimlb_gossip::frames::{self, Check, CheckAck, StateExchange, SuspicionNotice};
use swimlb_gossip::owner::name_digest;
use swimlb_gossip::replay::WireHeader;
use swimlb_gossip::{KeyRing, Membership, Preset, Seeds};
use swimlb_speaker::packet::{
    Mac, gratuitous_arp_reply, gratuitous_arp_request, neighbor_solicitation,
    unsolicited_advertisement,
};

const LATENCY: Duration = Duration::from_micros(300);

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    fs::create_dir_all(&dir).expect("create the seed folder");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

/// A datagram the member under test received: when, and its opened payload.
struct Received {
    at: Duration,
    payload: Vec<u8>,
    raw: Vec<u8>,
}

/// Runs the member under test with two peers for `length` of virtual time and returns what
/// it received from them, in order.
fn record_traffic(length: Duration) -> Vec<Received> {
    let ring = KeyRing::new(KEY_ID, KEY);
    let mut members: BTreeMap<SocketAddr, Membership> = BTreeMap::new();
    let mut under_test = member_under_test();
    under_test.join(Duration::ZERO, &[addr(1), addr(2)]);
    members.insert(addr(0), under_test);
    for i in 1..=2u8 {
        let mut peer = Membership::new(
            node(i, 1),
            Preset::Fast.timing(),
            KeyRing::new(KEY_ID, KEY),
            Seeds::from_u64(100 + u64::from(i)),
        )
        .with_clock_epoch(EPOCH);
        peer.join(Duration::from_millis(5 * u64::from(i)), &[addr(0)]);
        members.insert(addr(i), peer);
    }
    let mut in_flight: BTreeMap<(Duration, u64), (SocketAddr, Vec<u8>)> = BTreeMap::new();
    let mut seq = 0u64;
    let mut now = Duration::ZERO;
    let mut received = Vec::new();
    loop {
        for member in members.values_mut() {
            while let Some(datagram) = member.poll_datagram() {
                seq += 1;
                in_flight.insert((now + LATENCY, seq), (datagram.to, datagram.bytes));
            }
            while member.poll_event().is_some() {}
        }
        let next_datagram = in_flight.keys().next().map(|(at, _)| *at);
        let next_timer = members
            .iter()
            .filter_map(|(a, m)| m.next_deadline().map(|d| (d, *a)))
            .min();
        let deliver = match (next_datagram, next_timer) {
            (Some(d), Some((t, _))) => d <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if deliver {
            let (key, (to, bytes)) = in_flight.pop_first().expect("a datagram");
            now = key.0;
            if now > length {
                break;
            }
            if to == addr(0)
                && let Ok(payload) = ring.open(&bytes)
            {
                received.push(Received {
                    at: now,
                    payload,
                    raw: bytes.clone(),
                });
            }
            if let Some(member) = members.get_mut(&to) {
                let _ = member.handle_datagram(now, &bytes);
            }
        } else {
            let (at, who) = next_timer.expect("a timer");
            now = now.max(at);
            if now > length {
                break;
            }
            if let Some(member) = members.get_mut(&who) {
                member.advance(now);
            }
        }
    }
    received
}

/// Turns received datagrams into harness records, each delivered after the same gap.
fn to_records(received: &[Received], since: Duration, flags_for: impl Fn(u8) -> u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut last = since;
    let step = ADVANCE_STEP.as_micros();
    for datagram in received {
        let Ok((header, body)) = WireHeader::decode(&datagram.payload) else {
            continue;
        };
        let sender = if header.sender == name_digest("node-1") {
            0
        } else {
            1
        };
        let gap = (datagram.at.saturating_sub(last).as_micros() / step).min(255) as u8;
        last += ADVANCE_STEP * u32::from(gap);
        Record::frame(header.kind, sender, flags_for(header.kind), gap, body).encode(&mut out);
    }
    out
}

fn gossip_seeds(dir: &Path) {
    let received = record_traffic(Duration::from_secs(20));
    let kind_of = |r: &Received| WireHeader::decode(&r.payload).map(|(h, _)| h.kind).ok();
    let patch = |kind: u8| {
        if kind == frames::MEMBERS || kind == frames::STATE {
            PATCH_TOKEN
        } else {
            0
        }
    };
    // The join: the first datagrams the member gets.
    let start = &received[..received.len().min(16)];
    write(
        dir,
        "gossip_datagram",
        "join",
        &to_records(start, Duration::ZERO, patch),
    );
    // Around the first frame of each kind, and a few probes later on.
    for (kind, name) in [
        (frames::MEMBERS, "member-list"),
        (frames::CHECK, "check"),
        (frames::CHECK_ACK, "check-ack"),
        (frames::STATE, "state"),
        (frames::SWIM, "swim"),
    ] {
        let found = received
            .iter()
            .enumerate()
            .filter(|(_, r)| kind_of(r) == Some(kind))
            .map(|(i, _)| i)
            .nth(if kind == frames::SWIM { 40 } else { 0 });
        if let Some(at) = found {
            let from = at.saturating_sub(6);
            let window = &received[from..(at + 6).min(received.len())];
            let since = window[0].at;
            write(
                dir,
                "gossip_datagram",
                name,
                &to_records(window, since, patch),
            );
        }
    }
    // Stale and repeated deliveries of the first few datagrams.
    let odd = &received[..received.len().min(4)];
    write(
        dir,
        "gossip_datagram",
        "stale-and-twice",
        &to_records(odd, Duration::ZERO, |_| STALE | TWICE),
    );

    // The envelope: real datagrams, and a few made to fail.
    for (i, r) in received.iter().take(3).enumerate() {
        write(dir, "envelope_open", &format!("datagram-{i}"), &r.raw);
    }
    let mut nonces = Xoshiro256PlusPlus::seed_from_u64(3);
    let ring = KeyRing::new(KEY_ID, KEY);
    let empty = ring.seal(&[], &mut nonces).expect("seals");
    write(dir, "envelope_open", "empty-payload", &empty);
    write(dir, "envelope_open", "truncated", &empty[..empty.len() - 1]);
    let other = KeyRing::new(2, [0x22; 32])
        .seal(b"rotated", &mut nonces)
        .expect("seals");
    write(dir, "envelope_open", "second-key", &other);

    // Frame bodies, behind the frame selector of the frames target.
    let selector = |kind: u8| match kind {
        frames::JOIN => Some(0u8),
        frames::MEMBERS => Some(1),
        frames::CHECK => Some(2),
        frames::CHECK_ACK => Some(3),
        frames::STATE => Some(4),
        _ => None,
    };
    let mut written = [false; 5];
    for r in &received {
        let Ok((header, body)) = WireHeader::decode(&r.payload) else {
            continue;
        };
        if let Some(s) = selector(header.kind)
            && !written[usize::from(s)]
        {
            written[usize::from(s)] = true;
            let mut seed = vec![s];
            seed.extend_from_slice(body);
            write(
                dir,
                "gossip_frames",
                &format!("kind-{}", header.kind),
                &seed,
            );
        }
    }
    let notice = SuspicionNotice {
        target: node(2, 1),
        incarnation: 3,
        by: "node-1".to_owned(),
        round: 1,
    };
    let mut seed = vec![5];
    seed.extend(postcard::to_allocvec(&notice).expect("encodes"));
    write(dir, "gossip_frames", "suspicion-notice", &seed);
    let check = Check {
        nonce: 0x0123_4567_89ab_cdef,
        from: addr(1),
    };
    let mut seed = vec![2];
    seed.extend(postcard::to_allocvec(&check).expect("encodes"));
    write(dir, "gossip_frames", "check", &seed);
    let mut seed = vec![3];
    seed.extend(postcard::to_allocvec(&CheckAck { nonce: 7 }).expect("encodes"));
    write(dir, "gossip_frames", "check-ack", &seed);
    let state = StateExchange {
        token: 9,
        reply_wanted: true,
        from: "[2001:db8::1]:7946".parse().expect("literal"),
        members: vec![
            foca::Member::alive(node(1, 1)),
            foca::Member::new(node(2, 4), 7, foca::State::Suspect),
        ],
    };
    let mut seed = vec![4];
    seed.extend(postcard::to_allocvec(&state).expect("encodes"));
    write(dir, "gossip_frames", "state-v6", &seed);
}

fn key_file_seeds(dir: &Path) {
    let a = "11".repeat(32);
    let b = "22".repeat(32);
    write(dir, "key_file", "one", format!("1 {a}\n").as_bytes());
    write(
        dir,
        "key_file",
        "rotation",
        format!("# cluster keys\n\n2 {b}\n1 {a}\n").as_bytes(),
    );
    write(
        dir,
        "key_file",
        "duplicate",
        format!("1 {a}\n1 {b}").as_bytes(),
    );
    write(dir, "key_file", "bad-id", format!("256 {a}").as_bytes());
    write(dir, "key_file", "bad-key", b"1 abcd\r\n");
}

fn packet_seeds(dir: &Path) {
    let client = Mac([0x02, 0, 0, 0, 0, 0x64]);
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&client.0);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&client.0);
    arp.extend_from_slice(&[192, 0, 2, 100, 0, 0, 0, 0, 0, 0, 192, 0, 2, 200]);
    write(dir, "speaker_packet", "arp-request", &arp);
    arp.resize(60, 0);
    write(dir, "speaker_packet", "arp-request-padded", &arp);
    let vip4 = Ipv4Addr::new(192, 0, 2, 200);
    write(
        dir,
        "speaker_packet",
        "gratuitous-request",
        &gratuitous_arp_request(vip4, client),
    );
    write(
        dir,
        "speaker_packet",
        "gratuitous-reply",
        &gratuitous_arp_reply(vip4, client),
    );
    let vip6: Ipv6Addr = "2001:db8::c8:c8".parse().expect("literal");
    let source: Ipv6Addr = "2001:db8::64".parse().expect("literal");
    write(
        dir,
        "speaker_packet",
        "solicitation",
        &neighbor_solicitation(vip6, source, client),
    );
    write(
        dir,
        "speaker_packet",
        "solicitation-dad",
        &neighbor_solicitation(vip6, Ipv6Addr::UNSPECIFIED, client),
    );
    write(
        dir,
        "speaker_packet",
        "advertisement",
        &unsolicited_advertisement(vip6, source, client),
    );
}

const SPEAKER_FULL: &str = "\
node_name: node-1
gossip:
  bind: 192.0.2.1:7946
  advertise: 192.0.2.1:7946
  peers: [192.0.2.2:7946, 192.0.2.3:7946]
  key_file: /etc/swimlb/gossip.key
  preset: memberlist
interfaces: [eth0]
exclude_interfaces: ['^docker.*']
metrics_address: 192.0.2.1:9100
health_address: 0.0.0.0:9101
announce:
  burst_ms: [0, 300, 1200]
  refresh_ms: 60000
drain_grace_ms: 1500
vips:
  - address: 192.0.2.200
  - address: 2001:db8::c8
    nodes: [node-1, node-2]
";

fn config_seeds(dir: &Path) {
    write(dir, "speaker_config", "full", SPEAKER_FULL.as_bytes());
    let kubernetes = format!(
        "{SPEAKER_FULL}kubernetes:\n  node_selector: {{zone: a}}\n  gossip_port: 7000\n  \
         load_balancer_class: swimlb.io/layer2\n  serve_unset_class: true\n"
    );
    write(dir, "speaker_config", "kubernetes", kubernetes.as_bytes());
    write(
        dir,
        "speaker_config",
        "minimal",
        b"node_name: n\ngossip: {bind: '[2001:db8::1]:7946', key_file: k}\n",
    );
    write(
        dir,
        "speaker_config",
        "duplicate-vip",
        b"node_name: n\ngossip:\n  bind: 192.0.2.1:7946\n  key_file: k\nvips:\n  - address: 192.0.2.9\n  - address: 192.0.2.9\n",
    );

    for (name, flags, text) in [
        ("cidr-v4", 0u8, "192.0.2.0/24"),
        ("range-v4-avoid", 1, "192.0.2.30-192.0.2.49"),
        ("cidr-v6", 0, "2001:db8::/120"),
        ("range-v6-spaces", 0, " 2001:db8::1 - 2001:db8::ff "),
        ("single", 0, "192.0.2.7"),
        ("mixed", 0, "192.0.2.1-2001:db8::1"),
    ] {
        let mut seed = vec![flags];
        seed.extend_from_slice(text.as_bytes());
        write(dir, "pool_addresses", name, &seed);
    }

    let legacy = "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  \
                  - 192.0.2.30-192.0.2.49\n- name: manual\n  protocol: layer2\n  \
                  auto-assign: false\n  avoid-buggy-ips: true\n  addresses:\n  - 203.0.113.0/24\n";
    write(dir, "legacy_configmap", "example", legacy.as_bytes());
    let clash = "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [192.0.2.0/28, \
                 192.0.2.8/29]\n- name: a\n  protocol: bgp\n  addresses: ['2001:db8::/64']\n- \
                 addresses: [192.0.2.0/24]\n";
    write(dir, "legacy_configmap", "clashes", clash.as_bytes());

    write(
        dir,
        "ipaddresspool_spec",
        "default",
        br#"{"addresses":["192.0.2.30-192.0.2.49","2001:db8::/120"]}"#,
    );
    write(
        dir,
        "ipaddresspool_spec",
        "team-a",
        br#"{"addresses":["198.51.100.0/28"],"avoidBuggyIPs":true,"serviceAllocation":{"priority":10,"namespaces":["team-a"],"serviceSelectors":[{"matchLabels":{"tier":"edge"}}],"namespaceSelectors":[{"matchExpressions":[{"key":"env","operator":"In","values":["prod"]}]}]}}"#,
    );
    write(
        dir,
        "ipaddresspool_spec",
        "overlapping",
        br#"[{"addresses":["192.0.2.0/24"],"autoAssign":false},{"addresses":["192.0.2.128/25"]},{"addresses":["2001:db8::/64"],"serviceAllocation":{"serviceSelectors":[{"matchExpressions":[{"key":"a","operator":"Exists"}]}]}}]"#,
    );
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    gossip_seeds(&dir);
    key_file_seeds(&dir);
    packet_seeds(&dir);
    config_seeds(&dir);
    println!("seeds written to {}", dir.display());
}
