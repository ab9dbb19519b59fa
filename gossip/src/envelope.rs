//! The sealed wire envelope every gossip datagram travels in.
//!
//! ```text
//! offset  size  field
//! 0       1     version (2)
//! 1       1     key id
//! 2       24    nonce (random)
//! 26      n     ciphertext of the payload (XChaCha20-Poly1305, AAD = bytes 0..2)
//! 26+n    16    authentication tag
//! ```
//!
//! XChaCha20-Poly1305's 192-bit nonces can be drawn at random for every datagram with no
//! practical risk of reuse, so nodes need no shared counter. A [`KeyRing`] seals with one key
//! and opens with any it holds: to rotate, add the new key everywhere, then make it the sealing
//! key everywhere, then remove the old one.
//!
//! # Replays
//! The envelope proves a datagram was sealed by a holder of a cluster key; freshness comes from
//! inside it (see [`crate::replay`]): every payload carries the sender's name digest,
//! generation, a counter and its clock in seconds, and a receiver accepts each (sender,
//! generation, counter) once and only within `replay_max_age` of its own clock. Member lists
//! are accepted only in answer to this member's own outstanding join, anti-entropy replies only
//! to its own push.
//!
//! What an on-path attacker without the key can still do:
//! - drop, delay (within `replay_max_age`) or reorder datagrams, as any lossy network does: a
//!   delayed datagram is still accepted once if it beats the original; delaying everything a
//!   member sends is indistinguishable from cutting its cable;
//! - deliver a captured datagram to a member that did not receive the original, within
//!   `replay_max_age` (for example to a member that restarted and forgot its windows within
//!   that time): what it carries is old news, and SWIM keeps only the newest state, so an old
//!   "alive" cannot revive a member declared down and an old "down" cannot remove a member that
//!   has since rejoined with a newer generation;
//! - see sizes and timing of datagrams, and who talks to whom.
//!
//! What it cannot do: forge or alter anything, learn anything from the ciphertext, replay a
//! datagram to a member that already accepted it, replay anything older than `replay_max_age`,
//! keep a crashed member from being suspected with captured acks, or change which node owns a
//! VIP. The tests in `membership` replay every captured datagram of a run into a restarted
//! member, at once and an hour later, and check nothing comes back.

use std::collections::BTreeMap;
use std::fmt;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::Rng;

pub const VERSION: u8 = 2;
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + NONCE_LEN;
/// Bytes the envelope adds to its payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Why an incoming datagram was dropped before (or by) the membership protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Shorter than an envelope with an empty payload.
    Truncated,
    /// Longer than any datagram a member sends.
    Oversized,
    UnknownVersion,
    /// Sealed with a key id this ring does not hold.
    UnknownKey,
    /// The tag did not verify: wrong key material, or the bytes were changed on the way.
    Unauthentic,
    /// Authentic, but the payload did not decode.
    Malformed,
    /// Authentic, but its sender counter was already seen: a replay or a duplicate.
    Replayed,
    /// Authentic, but its timestamp is too far from this member's clock.
    Stale,
    /// Authentic and well-formed, but the membership protocol refused it.
    Refused,
}

impl DropReason {
    pub const ALL: [DropReason; 9] = [
        DropReason::Truncated,
        DropReason::Oversized,
        DropReason::UnknownVersion,
        DropReason::UnknownKey,
        DropReason::Unauthentic,
        DropReason::Malformed,
        DropReason::Replayed,
        DropReason::Stale,
        DropReason::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Oversized => "oversized",
            DropReason::UnknownVersion => "unknown_version",
            DropReason::UnknownKey => "unknown_key",
            DropReason::Unauthentic => "unauthentic",
            DropReason::Malformed => "malformed",
            DropReason::Replayed => "replayed",
            DropReason::Stale => "stale",
            DropReason::Refused => "refused",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Dropped datagrams, counted by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounts(BTreeMap<DropReason, u64>);

impl DropCounts {
    pub fn record(&mut self, reason: DropReason) {
        *self.0.entry(reason).or_default() += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(&reason).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        self.0.iter().map(|(r, n)| (*r, *n))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("line {line}: expected `<key id 0-255> <64 hex digits>`")]
    Syntax { line: usize },
    #[error("line {line}: key id {id:?} is not a number from 0 to 255")]
    BadId { line: usize, id: String },
    #[error("line {line}: key {id} must be 32 bytes written as 64 hex digits")]
    BadKey { line: usize, id: u8 },
    #[error("line {line}: key id {id} appears twice")]
    DuplicateId { line: usize, id: u8 },
    #[error("the key file holds no key")]
    Empty,
    #[error("the key file is not text")]
    NotText,
    #[error("payload of {len} bytes is larger than the {max}-byte limit")]
    PayloadTooLarge { len: usize, max: usize },
}

/// The keys a member seals and opens with.
#[derive(Clone)]
pub struct KeyRing {
    sealing: u8,
    keys: BTreeMap<u8, XChaCha20Poly1305>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("KeyRing")
            .field("sealing", &self.sealing)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// A ring that seals and opens with one key.
    pub fn new(id: u8, key: [u8; KEY_LEN]) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(id, XChaCha20Poly1305::new(&key.into()));
        Self { sealing: id, keys }
    }

    /// Also accept datagrams sealed with `key` (for rotation).
    pub fn with_opening_key(mut self, id: u8, key: [u8; KEY_LEN]) -> Self {
        self.keys.insert(id, XChaCha20Poly1305::new(&key.into()));
        self
    }

    pub fn sealing_id(&self) -> u8 {
        self.sealing
    }

    /// The ids of every key that opens, in ascending order.
    pub fn ids(&self) -> Vec<u8> {
        self.keys.keys().copied().collect()
    }

    /// Parses a key file: one key a line, `<key id> <64 hex digits>`; blank lines and lines
    /// starting with `#` are ignored. The first key seals; all of them open.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut ring: Option<KeyRing> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let mut fields = content.split_whitespace();
            let (Some(id), Some(hex), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(KeyError::Syntax { line });
            };
            let id: u8 = id.parse().map_err(|_| KeyError::BadId {
                line,
                id: id.to_owned(),
            })?;
            let key = decode_hex_key(hex).ok_or(KeyError::BadKey { line, id })?;
            ring = Some(match ring {
                None => KeyRing::new(id, key),
                Some(r) if r.keys.contains_key(&id) => {
                    return Err(KeyError::DuplicateId { line, id });
                }
                Some(r) => r.with_opening_key(id, key),
            });
        }
        ring.ok_or(KeyError::Empty)
    }

    /// Seals `payload` with the sealing key and a nonce drawn from `nonces`.
    pub fn seal(&self, payload: &[u8], nonces: &mut impl Rng) -> Result<Vec<u8>, KeyError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(KeyError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        let cipher = &self.keys[&self.sealing];
        let mut nonce = [0u8; NONCE_LEN];
        nonces.fill_bytes(&mut nonce);
        let mut datagram = Vec::with_capacity(payload.len() + OVERHEAD);
        datagram.extend_from_slice(&[VERSION, self.sealing]);
        datagram.extend_from_slice(&nonce);
        datagram.extend_from_slice(payload);
        let (header, body) = datagram.split_at_mut(HEADER_LEN);
        let tag = cipher
            .encrypt_inout_detached(&XNonce::from(nonce), &header[..2], body.into())
            .map_err(|_| KeyError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            })?;
        datagram.extend_from_slice(&tag);
        Ok(datagram)
    }

    /// Opens a datagram, returning its payload, or why it must be dropped.
    pub fn open(&self, datagram: &[u8]) -> Result<Vec<u8>, DropReason> {
        if datagram.len() < OVERHEAD {
            return Err(DropReason::Truncated);
        }
        if datagram.len() > MAX_DATAGRAM {
            return Err(DropReason::Oversized);
        }
        if datagram[0] != VERSION {
            return Err(DropReason::UnknownVersion);
        }
        let cipher = self.keys.get(&datagram[1]).ok_or(DropReason::UnknownKey)?;
        let (header, rest) = datagram.split_at(HEADER_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[2..]);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        let mut payload = ciphertext.to_vec();
        cipher
            .decrypt_inout_detached(
                &XNonce::from(nonce),
                &header[..2],
                payload.as_mut_slice().into(),
                &tag_bytes.into(),
            )
            .map_err(|_| DropReason::Unauthentic)?;
        Ok(payload)
    }
}

/// The largest payload a member seals: a foca packet plus the freshness header.
pub const MAX_PAYLOAD: usize = crate::preset::MAX_FOCA_PACKET + crate::replay::HEADER_LEN;
/// The largest datagram a member sends or accepts.
pub const MAX_DATAGRAM: usize = MAX_PAYLOAD + OVERHEAD;

fn decode_hex_key(hex: &str) -> Option<[u8; KEY_LEN]> {
    let bytes = hex.as_bytes();
    if bytes.len() != KEY_LEN * 2 {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (out, pair) in key.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *out = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn rng() -> Xoshiro256PlusPlus {
        Xoshiro256PlusPlus::seed_from_u64(7)
    }

    const KEY_A: [u8; KEY_LEN] = [0x11; KEY_LEN];
    const KEY_B: [u8; KEY_LEN] = [0x22; KEY_LEN];

    #[test]
    fn round_trip_and_layout() {
        let ring = KeyRing::new(3, KEY_A);
        let sealed = ring.seal(b"hello swim", &mut rng()).expect("small payload");
        assert_eq!(sealed.len(), 10 + OVERHEAD);
        assert_eq!(sealed[0], VERSION);
        assert_eq!(sealed[1], 3);
        assert!(
            !sealed.windows(10).any(|w| w == b"hello swim"),
            "payload is encrypted"
        );
        assert_eq!(ring.open(&sealed).as_deref(), Ok(&b"hello swim"[..]));
    }

    #[test]
    fn nonces_differ_between_datagrams() {
        let ring = KeyRing::new(0, KEY_A);
        let mut nonces = rng();
        let a = ring.seal(b"same", &mut nonces).expect("small");
        let b = ring.seal(b"same", &mut nonces).expect("small");
        assert_ne!(a, b);
    }

    #[test]
    fn every_bad_datagram_is_dropped_with_its_reason() {
        let ring = KeyRing::new(1, KEY_A);
        let sealed = ring.seal(b"payload", &mut rng()).expect("small");

        assert_eq!(
            ring.open(&sealed[..OVERHEAD - 1]),
            Err(DropReason::Truncated)
        );
        assert_eq!(ring.open(&[]), Err(DropReason::Truncated));
        assert_eq!(
            ring.open(&vec![VERSION; MAX_DATAGRAM + 1]),
            Err(DropReason::Oversized)
        );

        let mut wrong_version = sealed.clone();
        wrong_version[0] = 9;
        assert_eq!(ring.open(&wrong_version), Err(DropReason::UnknownVersion));

        let other_id = KeyRing::new(2, KEY_A)
            .seal(b"payload", &mut rng())
            .expect("small");
        assert_eq!(ring.open(&other_id), Err(DropReason::UnknownKey));

        let wrong_key = KeyRing::new(1, KEY_B)
            .seal(b"payload", &mut rng())
            .expect("small");
        assert_eq!(ring.open(&wrong_key), Err(DropReason::Unauthentic));

        // The key id is authenticated too: relabelling a datagram for another key fails.
        let two_keys = KeyRing::new(1, KEY_A).with_opening_key(2, KEY_B);
        let mut relabelled = sealed.clone();
        relabelled[1] = 2;
        assert_eq!(two_keys.open(&relabelled), Err(DropReason::Unauthentic));

        assert!(ring.seal(&vec![0; MAX_PAYLOAD + 1], &mut rng()).is_err());
    }

    #[test]
    fn rotation_opens_old_and_new_keys() {
        let old = KeyRing::new(1, KEY_A);
        let during = KeyRing::new(2, KEY_B).with_opening_key(1, KEY_A);
        let from_old = old.seal(b"x", &mut rng()).expect("small");
        let from_new = during.seal(b"y", &mut rng()).expect("small");
        assert_eq!(during.open(&from_old).as_deref(), Ok(&b"x"[..]));
        assert_eq!(old.open(&from_new), Err(DropReason::UnknownKey));
    }

    #[test]
    fn key_file_parsing() {
        let a = "11".repeat(32);
        let b = "22".repeat(32);
        let ring = KeyRing::parse(&format!("# cluster keys\n\n2 {b}\n1 {a}\n")).expect("valid");
        assert_eq!(ring.sealing_id(), 2);
        let old = KeyRing::new(1, KEY_A)
            .seal(b"z", &mut rng())
            .expect("small");
        assert!(ring.open(&old).is_ok());

        assert_eq!(KeyRing::parse("").err(), Some(KeyError::Empty));
        assert_eq!(
            KeyRing::parse("1").err(),
            Some(KeyError::Syntax { line: 1 })
        );
        assert_eq!(
            KeyRing::parse(&format!("256 {a}")).err(),
            Some(KeyError::BadId {
                line: 1,
                id: "256".into()
            })
        );
        assert_eq!(
            KeyRing::parse("1 abcd").err(),
            Some(KeyError::BadKey { line: 1, id: 1 })
        );
        assert_eq!(
            KeyRing::parse(&format!("1 {}", "zz".repeat(32))).err(),
            Some(KeyError::BadKey { line: 1, id: 1 })
        );
        assert_eq!(
            KeyRing::parse(&format!("1 {a}\n1 {b}")).err(),
            Some(KeyError::DuplicateId { line: 2, id: 1 })
        );
        assert!(
            !format!("{ring:?}").contains("1111"),
            "debug output hides keys"
        );
    }

    proptest! {
        #[test]
        fn garbage_never_opens(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let ring = KeyRing::new(bytes.get(1).copied().unwrap_or(0), KEY_A);
            prop_assert!(ring.open(&bytes).is_err());
        }

        #[test]
        fn any_bit_flip_is_detected(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            bit in any::<proptest::sample::Index>(),
        ) {
            let ring = KeyRing::new(0, KEY_A);
            let mut sealed = ring.seal(&payload, &mut rng()).expect("small");
            let bit = bit.index(sealed.len() * 8);
            sealed[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(ring.open(&sealed).is_err());
        }
    }
}
