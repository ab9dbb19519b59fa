//! What must hold of any pool configuration the controller accepts, whichever source it came
//! from, checked the way the controller uses it: merged into one view, then one allocator per
//! valid pool.

use swimlb_controller::allocator::{
    Family, MAX_AVOIDED_BLOCKS, PoolAllocator, avoided_blocks, is_buggy,
};
use swimlb_controller::config::{PoolDeclaration, PoolSet};

pub fn check_pool_set(declarations: Vec<PoolDeclaration>) {
    let declared = declarations.len();
    let set = PoolSet::build(declarations);
    assert_eq!(
        set.len() + set.shadowed().len(),
        declared,
        "every declaration is reported"
    );
    for pool in set.invalid() {
        assert!(!pool.error_summary().is_empty(), "an invalid pool says why");
    }
    let valid: Vec<_> = set.iter().filter(|p| p.is_valid()).collect();
    let avoided: u128 = valid
        .iter()
        .filter(|p| p.avoid_buggy_ips)
        .flat_map(|p| p.ranges.iter().map(|(_, r)| avoided_blocks(r)))
        .sum();
    assert!(
        avoided <= MAX_AVOIDED_BLOCKS,
        "{avoided} avoided /24 blocks"
    );
    for (i, pool) in valid.iter().enumerate() {
        for (j, (value, range)) in pool.ranges.iter().enumerate() {
            for (other, other_range) in &pool.ranges[j + 1..] {
                assert!(
                    !range.overlaps(other_range),
                    "valid pool {} has overlapping {value:?} and {other:?}",
                    pool.name
                );
            }
            for other_pool in &valid[i + 1..] {
                for (other, other_range) in &other_pool.ranges {
                    assert!(
                        !range.overlaps(other_range),
                        "valid pools {} ({value:?}) and {} ({other:?}) overlap",
                        pool.name,
                        other_pool.name
                    );
                }
            }
        }
        let ranges: Vec<_> = pool.ranges.iter().map(|(_, r)| *r).collect();
        let mut allocator = PoolAllocator::new(&ranges, pool.avoid_buggy_ips);
        for family in [Family::V4, Family::V6] {
            let total: u128 = ranges
                .iter()
                .filter(|r| r.family() == family)
                .fold(0, |sum, r| sum.saturating_add(r.len()));
            assert!(allocator.size(family) <= total);
            if let Some(ip) = allocator.allocate_lowest(family) {
                assert!(
                    pool.contains(ip),
                    "{ip} handed out from outside pool {}",
                    pool.name
                );
                assert!(
                    !(pool.avoid_buggy_ips && is_buggy(ip)),
                    "{ip} should be avoided"
                );
                assert!(!allocator.is_free(ip));
                assert!(allocator.release(ip), "{ip} goes back");
            }
        }
    }
}
