//! One `addresses` entry of a pool (CIDR or first-last range), `parse_addresses`, and the
//! allocator the controller builds over it. The first byte is the pool's `avoidBuggyIPs`;
//! as pool validation does, ranges that touch more /24 blocks than an avoiding pool may get no
//! avoiding allocator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swimlb_controller::allocator::{MAX_AVOIDED_BLOCKS, PoolAllocator, avoided_blocks, is_buggy};
use swimlb_controller::config::parse_addresses;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some(text) = swimlb_fuzz::text(rest) else {
        return;
    };
    let Ok(range) = parse_addresses(text) else {
        return;
    };
    assert!(range.contains(range.first()) && range.contains(range.last()));
    // The canonical first-last form names the same range.
    assert_eq!(parse_addresses(&range.to_string()), Ok(range));
    let avoid = flags & 1 != 0 && avoided_blocks(&range) <= MAX_AVOIDED_BLOCKS;
    let mut allocator = PoolAllocator::new(&[range], avoid);
    assert!(allocator.size(range.family()) <= range.len());
    if let Some(ip) = allocator.allocate_lowest(range.family()) {
        assert!(range.contains(ip));
        assert!(!(avoid && is_buggy(ip)));
        if !avoid {
            assert_eq!(ip, range.first());
        }
    }
});
