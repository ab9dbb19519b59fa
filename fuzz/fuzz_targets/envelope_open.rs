//! The sealed envelope: any datagram off the wire through `KeyRing::open`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use swimlb_fuzz::gossip::{KEY, KEY_ID};
use swimlb_gossip::envelope::{MAX_DATAGRAM, MAX_PAYLOAD, OVERHEAD};
use swimlb_gossip::{DropReason, KeyRing};

const OTHER_KEY: [u8; 32] = [0x22; 32];

fuzz_target!(|data: &[u8]| {
    let ring = KeyRing::new(KEY_ID, KEY).with_opening_key(2, OTHER_KEY);
    match ring.open(data) {
        Ok(payload) => {
            assert_eq!(payload.len() + OVERHEAD, data.len());
            // Authentic means exactly these bytes: any change is caught.
            let mut altered = data.to_vec();
            let last = altered.len() - 1;
            altered[last] ^= 0x01;
            assert_eq!(ring.open(&altered), Err(DropReason::Unauthentic));
        }
        Err(reason) => {
            let expected_first = if data.len() < OVERHEAD {
                Some(DropReason::Truncated)
            } else if data.len() > MAX_DATAGRAM {
                Some(DropReason::Oversized)
            } else {
                None
            };
            if let Some(expected) = expected_first {
                assert_eq!(reason, expected);
            }
        }
    }
    // Any payload that fits comes back out of its envelope unchanged.
    if data.len() <= MAX_PAYLOAD {
        let sealed = ring
            .seal(
                data,
                &mut Xoshiro256PlusPlus::seed_from_u64(data.len() as u64),
            )
            .expect("a payload within the limit seals");
        assert_eq!(sealed.len(), data.len() + OVERHEAD);
        assert_eq!(ring.open(&sealed).as_deref(), Ok(data));
    }
});
