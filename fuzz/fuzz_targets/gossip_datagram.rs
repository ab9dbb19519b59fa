//! The whole receive path of a gossip member, `Membership::handle_datagram`, with frames the
//! fuzzer chooses sealed by the harness with the cluster key (see `swimlb_fuzz::gossip`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimlb_fuzz::gossip::Harness;

fuzz_target!(|data: &[u8]| {
    Harness::new().run(data);
});
