//! The gossip key file, `KeyRing::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use swimlb_gossip::KeyRing;
use swimlb_gossip::envelope::KeyError;

fuzz_target!(|data: &[u8]| {
    let Some(text) = swimlb_fuzz::text(data) else {
        return;
    };
    let key_lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    match KeyRing::parse(text) {
        Ok(ring) => {
            // The first key seals.
            let (_, first) = key_lines.first().expect("a ring comes from a key line");
            let mut fields = first.split_whitespace();
            let id: u8 = fields.next().and_then(|f| f.parse().ok()).expect("an id");
            assert_eq!(ring.sealing_id(), id);
            let hex = fields.next().expect("a key");
            assert!(
                !format!("{ring:?}").contains(hex),
                "debug output shows a key"
            );
            let mut nonces = Xoshiro256PlusPlus::seed_from_u64(1);
            let sealed = ring.seal(b"payload", &mut nonces).expect("seals");
            assert_eq!(ring.open(&sealed).as_deref(), Ok(&b"payload"[..]));
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            match error {
                KeyError::Syntax { line }
                | KeyError::BadId { line, .. }
                | KeyError::BadKey { line, .. }
                | KeyError::DuplicateId { line, .. } => {
                    assert!(
                        key_lines.iter().any(|(l, _)| *l == line),
                        "error on line {line}, which holds no key"
                    );
                }
                KeyError::Empty => assert!(key_lines.is_empty()),
                KeyError::PayloadTooLarge { .. } => panic!("parsing reported a sealing error"),
                KeyError::NotText => panic!("parsing text reported bytes that are not text"),
            }
        }
    }
});
