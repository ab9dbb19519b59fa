//! A member under test, fed datagrams sealed with the cluster key, so the fuzzer's bytes get
//! past the envelope and the freshness check into the frame decoders and the protocol.
//!
//! An input is a sequence of records:
//!
//! ```text
//! offset  size  field
//! 0       1     op: bit 7 set: `body` is a whole datagram, fed as is (not sealed);
//!               otherwise bits 0-2: frame kind, bits 3-4: sender (see `SENDERS`)
//! 1       1     flags (see `PATCH_TOKEN`, `STALE`, `TWICE`, `LEAVE`)
//! 2       1     time to advance before delivering, in 4 ms steps
//! 3       2     body length, little endian (cut to what is left)
//! 5       n     body
//! ```
//!
//! The harness seals each frame with a correct freshness header (one counter per sender, the
//! member's clock) and, with `PATCH_TOKEN`, puts the token of the member's own outstanding join
//! or state push into a member list or state reply that decodes, so replies get past the
//! "only in answer to a request of its own" rule too.

use std::net::SocketAddr;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use swimlb_gossip::envelope::MAX_DATAGRAM;
use swimlb_gossip::frames::{
    self, Check, CheckAck, JoinRequest, MemberList, StateExchange, SuspicionNotice,
};
use swimlb_gossip::owner::name_digest;
use swimlb_gossip::preset::MAX_FOCA_PACKET;
use swimlb_gossip::replay::WireHeader;
use swimlb_gossip::{DropReason, KeyRing, Membership, NodeId, Preset, Seeds};

pub const KEY: [u8; 32] = [0x5a; 32];
pub const KEY_ID: u8 = 1;
/// Wall-clock time at core time zero (January 2027), so timestamps look like real ones.
pub const EPOCH: Duration = Duration::from_secs(1_800_000_000);
/// Core time advances by this much per unit of a record's `advance` byte.
pub const ADVANCE_STEP: Duration = Duration::from_millis(4);

/// Replace the token of a member list or state reply with one the member is waiting for.
pub const PATCH_TOKEN: u8 = 0x01;
/// Seal with a timestamp far from the member's clock: must be dropped as stale.
pub const STALE: u8 = 0x02;
/// Deliver the same datagram twice: the second copy must be dropped as a replay.
pub const TWICE: u8 = 0x04;
/// All flags at once: the member leaves the cluster before the delivery.
pub const LEAVE: u8 = 0xff;

pub const HEADER_LEN: usize = 5;
const RAW: u8 = 0x80;

pub fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10 + i], 7946))
}

pub fn node(i: u8, generation: u64) -> NodeId {
    NodeId::new(format!("node-{i}"), addr(i), generation)
}

/// Who seals a frame, by the op's bits 3-4: two peers, the member itself (whose own frames it
/// refuses), and the first peer restarted with a newer generation.
pub const SENDERS: [(u8, u64); 4] = [(1, 1), (2, 1), (0, 1), (1, 2)];

/// The member under test, exactly as the seed generator builds it.
pub fn member_under_test() -> Membership {
    Membership::new(
        node(0, 1),
        Preset::Fast.timing(),
        KeyRing::new(KEY_ID, KEY),
        Seeds::from_u64(7),
    )
    .with_clock_epoch(EPOCH)
}

/// One record of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub op: u8,
    pub flags: u8,
    pub advance: u8,
    pub body: &'a [u8],
}

impl Record<'_> {
    /// A sealed frame of `kind` from `SENDERS[sender]`.
    pub fn frame(kind: u8, sender: u8, flags: u8, advance: u8, body: &[u8]) -> Record<'_> {
        Record {
            op: (kind & 0x07) | ((sender & 0x03) << 3),
            flags,
            advance,
            body,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let len = u16::try_from(self.body.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&[self.op, self.flags, self.advance]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.body[..usize::from(len)]);
    }
}

/// The records of an input; a last record cut short takes what is left.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        if data.len() < HEADER_LEN {
            return None;
        }
        let len = usize::from(u16::from_le_bytes([data[3], data[4]]));
        let end = (HEADER_LEN + len).min(data.len());
        let record = Record {
            op: data[0],
            flags: data[1],
            advance: data[2],
            body: &data[HEADER_LEN..end],
        };
        data = &data[end..];
        Some(record)
    })
}

/// The member under test and what the harness knows about it.
pub struct Harness {
    pub member: Membership,
    now: Duration,
    sealer: KeyRing,
    nonces: Xoshiro256PlusPlus,
    /// Next counter of each sender in [`SENDERS`].
    counters: [u64; 4],
    /// Tokens of the member's outstanding joins and state pushes, newest last.
    join_tokens: Vec<u64>,
    state_tokens: Vec<u64>,
    /// Suspicion notices the member sent (checked like every outgoing frame).
    pub notices_sent: usize,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// The member, joining through the two peers (so it waits for a member list).
    pub fn new() -> Self {
        let mut member = member_under_test();
        member.join(Duration::ZERO, &[addr(1), addr(2)]);
        let mut harness = Self {
            member,
            now: Duration::ZERO,
            sealer: KeyRing::new(KEY_ID, KEY),
            nonces: Xoshiro256PlusPlus::seed_from_u64(1),
            counters: [1; 4],
            join_tokens: Vec::new(),
            state_tokens: Vec::new(),
            notices_sent: 0,
        };
        harness.collect();
        harness
    }

    pub fn run(&mut self, data: &[u8]) {
        for record in records(data) {
            self.step(record);
        }
    }

    pub fn step(&mut self, record: Record<'_>) {
        self.now += ADVANCE_STEP * u32::from(record.advance);
        self.member.advance(self.now);
        self.collect();
        if record.flags == LEAVE {
            let _ = self.member.leave(self.now);
            self.collect();
        }
        let sealed = record.op & RAW == 0;
        let datagram = if sealed {
            self.seal(record)
        } else {
            Some(record.body.to_vec())
        };
        // A body too long to seal reaches the member as an oversized datagram.
        let datagram = datagram.unwrap_or_else(|| vec![0; MAX_DATAGRAM + 1]);
        let first = self.member.handle_datagram(self.now, &datagram);
        self.collect();
        let left = self.member.has_left();
        if left {
            assert_eq!(
                first,
                Err(DropReason::Refused),
                "a member that left accepts nothing"
            );
        } else if sealed && datagram.len() <= MAX_DATAGRAM {
            let (sender, _) = SENDERS[usize::from((record.op >> 3) & 0x03)];
            if sender == 0 {
                assert_eq!(first, Err(DropReason::Refused), "own frames are refused");
            } else if record.flags & STALE != 0 {
                assert_eq!(first, Err(DropReason::Stale), "stale frames are dropped");
            }
        }
        if record.flags & TWICE != 0 {
            let second = self.member.handle_datagram(self.now, &datagram);
            self.collect();
            if first.is_ok() {
                assert_eq!(second, Err(DropReason::Replayed), "a replay got in");
            }
        }
    }

    fn seal(&mut self, record: Record<'_>) -> Option<Vec<u8>> {
        let kind = record.op & 0x07;
        let index = usize::from((record.op >> 3) & 0x03);
        let (sender, generation) = SENDERS[index];
        let counter = self.counters[index];
        self.counters[index] += 1;
        let clock = EPOCH + self.now;
        let sent_secs = if record.flags & STALE != 0 {
            clock.as_secs() - 3600
        } else {
            clock.as_secs()
        };
        let header = WireHeader {
            kind,
            sender: name_digest(&format!("node-{sender}")),
            generation,
            counter,
            sent_secs: u32::try_from(sent_secs).unwrap_or(u32::MAX),
        };
        let body = if record.flags & PATCH_TOKEN != 0 {
            self.patch_token(kind, record.body)
        } else {
            record.body.to_vec()
        };
        self.sealer
            .seal(&header.encode(&body), &mut self.nonces)
            .ok()
    }

    fn patch_token(&self, kind: u8, body: &[u8]) -> Vec<u8> {
        let patched = match kind {
            frames::MEMBERS => postcard::take_from_bytes::<MemberList>(body)
                .ok()
                .zip(self.join_tokens.last())
                .and_then(|((mut list, rest), token)| {
                    list.token = *token;
                    Some((postcard::to_allocvec(&list).ok()?, rest))
                }),
            frames::STATE => postcard::take_from_bytes::<StateExchange>(body)
                .ok()
                .zip(self.state_tokens.last())
                .and_then(|((mut state, rest), token)| {
                    state.token = *token;
                    state.reply_wanted = false;
                    Some((postcard::to_allocvec(&state).ok()?, rest))
                }),
            _ => None,
        };
        match patched {
            Some((mut bytes, rest)) => {
                bytes.extend_from_slice(rest);
                bytes
            }
            None => body.to_vec(),
        }
    }

    /// Drains the member's output, checking every datagram it would send.
    fn collect(&mut self) {
        while let Some(datagram) = self.member.poll_datagram() {
            self.check_outgoing(&datagram.bytes);
        }
        while self.member.poll_event().is_some() {}
    }

    fn check_outgoing(&mut self, datagram: &[u8]) {
        assert!(
            datagram.len() <= MAX_DATAGRAM,
            "{} bytes sent",
            datagram.len()
        );
        let payload = self
            .sealer
            .open(datagram)
            .expect("the member seals what it sends with the cluster key");
        let (header, body) = WireHeader::decode(&payload).expect("a whole freshness header");
        let own = self.member.identity();
        assert_eq!(header.sender, name_digest(&own.name));
        match header.kind {
            frames::SWIM => assert!(body.len() <= MAX_FOCA_PACKET),
            frames::JOIN => {
                let request: JoinRequest = postcard::from_bytes(body).expect("join decodes");
                if request.want_list {
                    push_bounded(&mut self.join_tokens, request.token);
                }
            }
            frames::MEMBERS => {
                postcard::from_bytes::<MemberList>(body).expect("member list decodes");
            }
            frames::CHECK => {
                postcard::from_bytes::<Check>(body).expect("check decodes");
            }
            frames::CHECK_ACK => {
                postcard::from_bytes::<CheckAck>(body).expect("check ack decodes");
            }
            frames::STATE => {
                let state: StateExchange = postcard::from_bytes(body).expect("state decodes");
                if state.reply_wanted {
                    push_bounded(&mut self.state_tokens, state.token);
                }
            }
            frames::NOTICE => {
                let notice: SuspicionNotice =
                    postcard::from_bytes(body).expect("suspicion notice decodes");
                assert_eq!(notice.by, own.name, "a notice names its author");
                self.notices_sent += 1;
            }
            other => panic!("the member sent a frame of unknown kind {other}"),
        }
    }
}

fn push_bounded(tokens: &mut Vec<u64>, token: u64) {
    if tokens.len() >= 8 {
        tokens.remove(0);
    }
    tokens.push(token);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/seeds/gossip_datagram/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_join_seed_gets_the_member_list_past_every_check() {
        let mut harness = Harness::new();
        harness.run(&seed("join"));
        let member = &harness.member;
        assert!(member.traffic().member_list_bytes_received > 0);
        assert!(member.is_live("node-1") && member.is_live("node-2"));
        assert_eq!(member.drops().total(), 0, "{:?}", member.drops());
    }

    #[test]
    fn a_suspicion_notice_the_member_sends_passes_the_outgoing_check() {
        // Found by a long run: the member confirms a suspicion straight to its first suspecter,
        // in a frame kind the harness did not know yet.
        let mut harness = Harness::new();
        harness.run(&seed("suspicion-notice"));
        assert!(harness.notices_sent > 0, "the input makes the member send a notice");
    }

    #[test]
    fn records_round_trip_and_a_cut_record_takes_the_rest() {
        let mut bytes = Vec::new();
        Record::frame(frames::STATE, 1, PATCH_TOKEN, 9, b"body").encode(&mut bytes);
        Record::frame(frames::JOIN, 3, 0, 0, b"cut short").encode(&mut bytes);
        bytes.truncate(bytes.len() - 3);
        let parsed: Vec<_> = records(&bytes).collect();
        assert_eq!(
            parsed[0],
            Record::frame(frames::STATE, 1, PATCH_TOKEN, 9, b"body")
        );
        assert_eq!(parsed[1].body, b"cut sh");
        assert_eq!(parsed.len(), 2);
    }
}
