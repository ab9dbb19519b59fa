//! What the fuzz targets share: the gossip harness (a member under test that is fed sealed
//! datagrams built from fuzzer-chosen frames) and the record format of its inputs.
//!
//! The targets themselves live in `fuzz_targets/`; `examples/write_seeds.rs` writes the seed
//! corpus from real traffic and the unit-test fixtures.

pub mod gossip;
pub mod placement;
pub mod pools;

/// The input as text, if it is UTF-8: files are read with `read_to_string` and Kubernetes
/// strings are UTF-8, so nothing else ever reaches the text parsers.
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// One JSON value of type `T`, or a JSON array of them: how the spec targets take several
/// objects at once (pools that may overlap, advertisements that combine).
pub fn one_or_many<T: serde::de::DeserializeOwned>(data: &[u8]) -> Option<Vec<T>> {
    if data.first() == Some(&b'[') {
        serde_json::from_slice(data).ok()
    } else {
        serde_json::from_slice(data).ok().map(|one| vec![one])
    }
}
