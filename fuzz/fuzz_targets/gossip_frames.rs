//! swimlb's own gossip frames (gossip/src/frames.rs), decoded from any body: the first byte
//! picks the frame. Whatever decodes encodes again and decodes to the same value, and member
//! lists split into chunks that keep every member in order.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use swimlb_gossip::NodeId;
use swimlb_gossip::frames::{
    Check, CheckAck, JoinRequest, MemberList, StateExchange, SuspicionNotice, chunk_members,
};
use swimlb_gossip::preset::MAX_FOCA_PACKET;

/// The budget the member uses for member-list and state chunks.
const BUDGET: usize = MAX_FOCA_PACKET - 40;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(body: &[u8]) -> Option<T> {
    let value: T = postcard::from_bytes(body).ok()?;
    let bytes = postcard::to_allocvec(&value).expect("a decoded frame encodes");
    let again: T = postcard::from_bytes(&bytes).expect("an encoded frame decodes");
    assert_eq!(again, value);
    Some(value)
}

fn check_chunks(members: Vec<foca::Member<NodeId>>) {
    let chunks = chunk_members(members.clone(), BUDGET);
    for chunk in &chunks {
        assert!(!chunk.is_empty());
        let sizes: usize = chunk
            .iter()
            .map(|m| postcard::experimental::serialized_size(m).expect("sizes"))
            .sum();
        assert!(
            chunk.len() == 1 || sizes <= BUDGET,
            "{} members in {sizes} bytes",
            chunk.len()
        );
    }
    let flat: Vec<_> = chunks.into_iter().flatten().collect();
    assert_eq!(flat, members);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => {
            round_trip::<JoinRequest>(body);
        }
        1 => {
            if let Some(list) = round_trip::<MemberList>(body) {
                check_chunks(list.members);
            }
        }
        2 => {
            round_trip::<Check>(body);
        }
        3 => {
            round_trip::<CheckAck>(body);
        }
        4 => {
            if let Some(state) = round_trip::<StateExchange>(body) {
                check_chunks(state.members);
            }
        }
        _ => {
            round_trip::<SuspicionNotice>(body);
        }
    }
});
