//! Address allocation within one pool: a set of free addresses kept as disjoint intervals in a
//! `BTreeMap`, so taking the lowest free address, taking a given address and giving one back are
//! each O(log n) in the number of free intervals, and every outcome is deterministic.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Self {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// An address as a number in its family's space.
fn to_number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_number(family: Family, n: u128) -> IpAddr {
    match family {
        // Numbers in the IPv4 space come from IPv4 addresses, so they fit in 32 bits.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// An inclusive range of addresses of one family, `first <= last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressRange {
    first: IpAddr,
    last: IpAddr,
}

/// Why two addresses do not make a range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{first} and {last} are of different address families")]
    MixedFamilies { first: IpAddr, last: IpAddr },
    #[error("start {first} is after end {last}")]
    StartAfterEnd { first: IpAddr, last: IpAddr },
}

impl AddressRange {
    /// The range `first..=last`; both ends of one family, `first <= last`.
    pub fn new(first: IpAddr, last: IpAddr) -> Result<Self, RangeError> {
        if Family::of(first) != Family::of(last) {
            return Err(RangeError::MixedFamilies { first, last });
        }
        if to_number(first) > to_number(last) {
            return Err(RangeError::StartAfterEnd { first, last });
        }
        Ok(Self { first, last })
    }

    /// The addresses of a network given by any address in it and a prefix length; host bits of
    /// `ip` are ignored. `None` when the prefix is longer than the family's address.
    pub fn from_prefix(ip: IpAddr, prefix_len: u8) -> Option<Self> {
        let bits: u32 = match ip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix_len = u32::from(prefix_len);
        if prefix_len > bits {
            return None;
        }
        let host_bits = bits - prefix_len;
        let host_mask = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let n = to_number(ip);
        let family = Family::of(ip);
        Some(Self {
            first: from_number(family, n & !host_mask),
            last: from_number(family, n | host_mask),
        })
    }

    pub fn first(&self) -> IpAddr {
        self.first
    }

    pub fn last(&self) -> IpAddr {
        self.last
    }

    pub fn family(&self) -> Family {
        Family::of(self.first)
    }

    /// Number of addresses, saturating at `u128::MAX` for the whole IPv6 space.
    pub fn len(&self) -> u128 {
        (to_number(self.last) - to_number(self.first)).saturating_add(1)
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family()
            && (to_number(self.first)..=to_number(self.last)).contains(&to_number(ip))
    }

    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.family() == other.family()
            && to_number(self.first) <= to_number(other.last)
            && to_number(other.first) <= to_number(self.last)
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// A set of numbers kept as disjoint, non-adjacent inclusive intervals `start -> end`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntervalSet {
    intervals: BTreeMap<u128, u128>,
    len: u128,
}

impl IntervalSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many numbers the set holds (saturating).
    pub fn len(&self) -> u128 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Number of stored intervals (what the memory and time costs grow with).
    pub fn interval_count(&self) -> usize {
        self.intervals.len()
    }

    /// The lowest number in the set.
    pub fn lowest(&self) -> Option<u128> {
        self.intervals.keys().next().copied()
    }

    /// The interval that holds `n`, if any.
    fn interval_of(&self, n: u128) -> Option<(u128, u128)> {
        self.intervals
            .range(..=n)
            .next_back()
            .filter(|&(_, &end)| end >= n)
            .map(|(&start, &end)| (start, end))
    }

    pub fn contains(&self, n: u128) -> bool {
        self.interval_of(n).is_some()
    }

    /// Removes `n`; false when it was not in the set.
    pub fn remove(&mut self, n: u128) -> bool {
        let Some((start, end)) = self.interval_of(n) else {
            return false;
        };
        self.intervals.remove(&start);
        if start < n {
            self.intervals.insert(start, n - 1);
        }
        if n < end {
            self.intervals.insert(n + 1, end);
        }
        self.len -= 1;
        true
    }

    /// Adds `n`, merging with adjacent intervals; false when it was already in the set.
    pub fn insert(&mut self, n: u128) -> bool {
        self.insert_range(n, n) == 1
    }

    /// Adds `first..=last` (`first <= last`), merging with overlapping and adjacent intervals.
    /// Returns how many numbers were new (saturating).
    pub fn insert_range(&mut self, first: u128, last: u128) -> u128 {
        debug_assert!(first <= last);
        let mut start = first;
        let mut end = last;
        let mut already_present: u128 = 0;
        // An interval starting before `first` that reaches it (or ends right before it).
        if let Some((&s, &e)) = self.intervals.range(..first).next_back()
            && e.saturating_add(1) >= first
        {
            already_present = already_present.saturating_add(overlap_len(s, e, first, last));
            start = s;
            end = end.max(e);
            self.intervals.remove(&s);
        }
        // Intervals starting inside `first..=last+1`.
        let reach = last.saturating_add(1);
        let absorbed: Vec<(u128, u128)> = self
            .intervals
            .range(first..=reach)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in absorbed {
            already_present = already_present.saturating_add(overlap_len(s, e, first, last));
            end = end.max(e);
            self.intervals.remove(&s);
        }
        self.intervals.insert(start, end);
        let added = (last - first)
            .saturating_add(1)
            .saturating_sub(already_present);
        self.len = self.len.saturating_add(added);
        added
    }

    /// The intervals in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.intervals.iter().map(|(&s, &e)| (s, e))
    }
}

fn overlap_len(s1: u128, e1: u128, s2: u128, e2: u128) -> u128 {
    let start = s1.max(s2);
    let end = e1.min(e2);
    if start > end {
        0
    } else {
        (end - start).saturating_add(1)
    }
}

/// Why a given address cannot be taken from a pool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    #[error("{0} is not in the pool")]
    NotInPool(IpAddr),
    #[error("{0} ends in .0 or .255 and the pool avoids such addresses")]
    Buggy(IpAddr),
    #[error("{0} is already in use")]
    InUse(IpAddr),
}

/// True for IPv4 addresses that old clients mistake for network or broadcast addresses.
pub fn is_buggy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// The most /24 blocks that pools avoiding .0 and .255 may touch in all (a /8's worth): each
/// costs an interval in two sets, so this bounds that memory to a few MiB, where the whole
/// IPv4 space would take over a GiB and seconds to build.
pub const MAX_AVOIDED_BLOCKS: u128 = 1 << 16;

/// The /24 blocks `range` touches when its pool avoids .0 and .255 (none for IPv6).
pub fn avoided_blocks(range: &AddressRange) -> u128 {
    match range.family() {
        Family::V4 => (to_number(range.last()) >> 8) - (to_number(range.first()) >> 8) + 1,
        Family::V6 => 0,
    }
}

/// Free and used addresses of one family within one pool.
#[derive(Clone, Debug, Default)]
struct FamilySpace {
    /// Every address the pool may hand out (its ranges, less avoided addresses).
    allocatable: IntervalSet,
    free: IntervalSet,
}

/// The free addresses of one pool, lowest first.
#[derive(Clone, Debug)]
pub struct PoolAllocator {
    ranges: Vec<AddressRange>,
    avoid_buggy_ips: bool,
    v4: FamilySpace,
    v6: FamilySpace,
}

impl PoolAllocator {
    /// A pool over `ranges` with every address free. With `avoid_buggy_ips`, IPv4 addresses
    /// ending in .0 or .255 are never handed out: this costs one interval per /24 the ranges
    /// touch ([`avoided_blocks`]), which is why pool validation caps those blocks at
    /// [`MAX_AVOIDED_BLOCKS`] over all pools.
    pub fn new(ranges: &[AddressRange], avoid_buggy_ips: bool) -> Self {
        let mut v4 = FamilySpace::default();
        let mut v6 = FamilySpace::default();
        for range in ranges {
            let first = to_number(range.first());
            let last = to_number(range.last());
            match range.family() {
                Family::V6 => {
                    v6.allocatable.insert_range(first, last);
                }
                Family::V4 if !avoid_buggy_ips => {
                    v4.allocatable.insert_range(first, last);
                }
                Family::V4 => {
                    // Walk the /24 blocks the range touches, keeping .1 to .254 of each.
                    let mut block = first & !0xff;
                    while block <= last {
                        let lo = first.max(block + 1);
                        let hi = last.min(block + 254);
                        if lo <= hi {
                            v4.allocatable.insert_range(lo, hi);
                        }
                        block += 256;
                    }
                }
            }
        }
        v4.free = v4.allocatable.clone();
        v6.free = v6.allocatable.clone();
        Self {
            ranges: ranges.to_vec(),
            avoid_buggy_ips,
            v4,
            v6,
        }
    }

    fn space(&self, family: Family) -> &FamilySpace {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    fn space_mut(&mut self, family: Family) -> &mut FamilySpace {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    pub fn ranges(&self) -> &[AddressRange] {
        &self.ranges
    }

    /// Whether `ip` lies in one of the pool's ranges (avoided or not, free or not).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// Whether the pool has addresses of `family` at all.
    pub fn has_family(&self, family: Family) -> bool {
        !self.space(family).allocatable.is_empty()
    }

    pub fn is_free(&self, ip: IpAddr) -> bool {
        self.space(Family::of(ip)).free.contains(to_number(ip))
    }

    /// The lowest free address of `family`, without taking it.
    pub fn peek_lowest(&self, family: Family) -> Option<IpAddr> {
        self.space(family)
            .free
            .lowest()
            .map(|n| from_number(family, n))
    }

    /// Takes the lowest free address of `family`.
    pub fn allocate_lowest(&mut self, family: Family) -> Option<IpAddr> {
        let space = self.space_mut(family);
        let n = space.free.lowest()?;
        space.free.remove(n);
        Some(from_number(family, n))
    }

    /// Takes a given address.
    pub fn take(&mut self, ip: IpAddr) -> Result<(), TakeError> {
        if !self.contains(ip) {
            return Err(TakeError::NotInPool(ip));
        }
        if self.avoid_buggy_ips && is_buggy(ip) {
            return Err(TakeError::Buggy(ip));
        }
        if self.space_mut(Family::of(ip)).free.remove(to_number(ip)) {
            Ok(())
        } else {
            Err(TakeError::InUse(ip))
        }
    }

    /// Marks an address in use whatever the pool thinks of it: used to rebuild state from
    /// addresses Services already hold. Returns false when it was not free.
    pub fn mark_used(&mut self, ip: IpAddr) -> bool {
        self.space_mut(Family::of(ip)).free.remove(to_number(ip))
    }

    /// Gives an address back; false when it was free already or is not allocatable here.
    pub fn release(&mut self, ip: IpAddr) -> bool {
        let n = to_number(ip);
        let space = self.space_mut(Family::of(ip));
        space.allocatable.contains(n) && space.free.insert(n)
    }

    /// Addresses of `family` the pool may hand out in total.
    pub fn size(&self, family: Family) -> u128 {
        self.space(family).allocatable.len()
    }

    /// Addresses of `family` still free.
    pub fn available(&self, family: Family) -> u128 {
        self.space(family).free.len()
    }

    /// Addresses of `family` in use.
    pub fn in_use(&self, family: Family) -> u128 {
        self.size(family) - self.available(family)
    }

    /// Number of free intervals across both families (what the cost grows with).
    pub fn free_interval_count(&self) -> usize {
        self.v4.free.interval_count() + self.v6.free.interval_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn range(a: &str, b: &str) -> AddressRange {
        AddressRange::new(ip(a), ip(b)).expect("test range")
    }

    #[test]
    fn range_rejects_mixed_families_and_reversed_ends() {
        assert_eq!(
            AddressRange::new(ip("192.0.2.1"), ip("2001:db8::1")),
            Err(RangeError::MixedFamilies {
                first: ip("192.0.2.1"),
                last: ip("2001:db8::1")
            })
        );
        assert_eq!(
            AddressRange::new(ip("192.0.2.9"), ip("192.0.2.1")),
            Err(RangeError::StartAfterEnd {
                first: ip("192.0.2.9"),
                last: ip("192.0.2.1")
            })
        );
    }

    #[test]
    fn prefix_masks_host_bits() {
        let r = AddressRange::from_prefix(ip("192.0.2.77"), 24).expect("valid prefix");
        assert_eq!(r, range("192.0.2.0", "192.0.2.255"));
        assert_eq!(r.len(), 256);
        let all = AddressRange::from_prefix(ip("2001:db8::1"), 0).expect("valid prefix");
        assert_eq!(all.len(), u128::MAX);
        assert!(AddressRange::from_prefix(ip("192.0.2.1"), 33).is_none());
        assert!(AddressRange::from_prefix(ip("2001:db8::1"), 129).is_none());
    }

    #[test]
    fn seed_pool_hands_out_30_then_31_and_reuses_released() {
        let mut pool = PoolAllocator::new(&[range("192.0.2.30", "192.0.2.49")], false);
        assert_eq!(pool.allocate_lowest(Family::V4), Some(ip("192.0.2.30")));
        assert_eq!(pool.allocate_lowest(Family::V4), Some(ip("192.0.2.31")));
        assert_eq!(pool.allocate_lowest(Family::V4), Some(ip("192.0.2.32")));
        assert!(pool.release(ip("192.0.2.30")));
        assert!(!pool.release(ip("192.0.2.30")));
        assert_eq!(pool.allocate_lowest(Family::V4), Some(ip("192.0.2.30")));
        assert_eq!(pool.allocate_lowest(Family::V4), Some(ip("192.0.2.33")));
        assert_eq!(pool.allocate_lowest(Family::V6), None);
        assert_eq!(pool.in_use(Family::V4), 4);
        assert_eq!(pool.available(Family::V4), 16);
    }

    #[test]
    fn exhausted_pool_returns_none() {
        let mut pool = PoolAllocator::new(&[range("192.0.2.1", "192.0.2.2")], false);
        assert!(pool.allocate_lowest(Family::V4).is_some());
        assert!(pool.allocate_lowest(Family::V4).is_some());
        assert_eq!(pool.allocate_lowest(Family::V4), None);
    }

    #[test]
    fn avoid_buggy_ips_skips_0_and_255() {
        let mut pool = PoolAllocator::new(&[range("192.0.2.254", "198.51.100.1")], true);
        assert_eq!(pool.allocate_lowest(Family::V4), Some(ip("192.0.2.254")));
        // 192.0.2.255 and 192.0.3.0 are skipped.
        assert_eq!(pool.allocate_lowest(Family::V4), Some(ip("192.0.3.1")));
        assert_eq!(
            pool.take(ip("192.0.4.0")),
            Err(TakeError::Buggy(ip("192.0.4.0")))
        );
        assert_eq!(
            pool.take(ip("203.0.113.1")),
            Err(TakeError::NotInPool(ip("203.0.113.1")))
        );
        assert_eq!(
            pool.take(ip("192.0.3.1")),
            Err(TakeError::InUse(ip("192.0.3.1")))
        );
        // A buggy address someone already holds can be recorded but never comes back free.
        assert!(pool.mark_used(ip("192.0.5.7")));
        assert!(!pool.release(ip("192.0.4.255")));
    }

    #[test]
    fn ipv6_ranges_allocate_lowest_first() {
        let r = AddressRange::from_prefix(ip("2001:db8::"), 120).expect("valid prefix");
        let mut pool = PoolAllocator::new(&[r], true);
        assert_eq!(pool.allocate_lowest(Family::V6), Some(ip("2001:db8::")));
        assert_eq!(pool.allocate_lowest(Family::V6), Some(ip("2001:db8::1")));
        assert_eq!(pool.size(Family::V6), 256);
    }

    #[test]
    fn interval_set_merges_neighbours() {
        let mut set = IntervalSet::new();
        assert_eq!(set.insert_range(10, 20), 11);
        assert_eq!(set.insert_range(30, 40), 11);
        assert_eq!(set.insert_range(21, 29), 9);
        assert_eq!(set.interval_count(), 1);
        assert_eq!(set.insert_range(5, 45), 10);
        assert_eq!(set.len(), 41);
        assert!(set.remove(7));
        assert_eq!(set.interval_count(), 2);
        assert!(!set.remove(7));
        assert!(set.insert(7));
        assert_eq!(set.interval_count(), 1);
        assert_eq!(set.insert_range(u128::MAX - 1, u128::MAX), 2);
        assert!(set.contains(u128::MAX));
    }

    /// A plain model: the set of free numbers.
    #[derive(Debug, Clone)]
    enum Op {
        Lowest,
        Take(u8),
        Release(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Lowest),
            any::<u8>().prop_map(Op::Take),
            any::<u8>().prop_map(Op::Release),
        ]
    }

    proptest! {
        #[test]
        fn pool_agrees_with_a_plain_set(
            first in 0u8..200,
            len in 1u8..56,
            avoid in any::<bool>(),
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            // Addresses 192.0.2.x and 192.0.3.x around the /24 boundary exercise avoidance.
            let base: u32 = u32::from(Ipv4Addr::new(192, 0, 2, 0));
            let lo = base + u32::from(first);
            let hi = lo + u32::from(len) * 3;
            let addr = |n: u32| IpAddr::V4(Ipv4Addr::from(n));
            let r = AddressRange::new(addr(lo), addr(hi)).expect("ordered");
            let mut pool = PoolAllocator::new(&[r], avoid);
            let allocatable: BTreeSet<u32> =
                (lo..=hi).filter(|&n| !(avoid && is_buggy(addr(n)))).collect();
            let mut free = allocatable.clone();
            for op in ops {
                match op {
                    Op::Lowest => {
                        let expected = free.iter().next().copied();
                        if let Some(n) = expected {
                            free.remove(&n);
                        }
                        prop_assert_eq!(pool.allocate_lowest(Family::V4), expected.map(addr));
                    }
                    Op::Take(k) => {
                        let n = base + u32::from(k) + 8;
                        let got = pool.take(addr(n));
                        let expected = if !(lo..=hi).contains(&n) {
                            Err(TakeError::NotInPool(addr(n)))
                        } else if avoid && is_buggy(addr(n)) {
                            Err(TakeError::Buggy(addr(n)))
                        } else if free.remove(&n) {
                            Ok(())
                        } else {
                            Err(TakeError::InUse(addr(n)))
                        };
                        prop_assert_eq!(got, expected);
                    }
                    Op::Release(k) => {
                        let n = base + u32::from(k) + 8;
                        let expected = allocatable.contains(&n) && free.insert(n);
                        prop_assert_eq!(pool.release(addr(n)), expected);
                    }
                }
                prop_assert_eq!(pool.available(Family::V4), free.len() as u128);
                prop_assert_eq!(pool.peek_lowest(Family::V4), free.iter().next().map(|&n| addr(n)));
            }
        }

        #[test]
        fn interval_set_agrees_with_a_plain_set(
            ranges in proptest::collection::vec((0u128..500, 0u128..20), 0..40),
            removals in proptest::collection::vec(0u128..520, 0..60),
        ) {
            let mut set = IntervalSet::new();
            let mut model = BTreeSet::new();
            for (start, len) in ranges {
                let added = set.insert_range(start, start + len);
                let before = model.len();
                model.extend(start..=start + len);
                prop_assert_eq!(added, (model.len() - before) as u128);
            }
            for n in removals {
                prop_assert_eq!(set.remove(n), model.remove(&n));
            }
            prop_assert_eq!(set.len(), model.len() as u128);
            let flattened: Vec<u128> = set.iter().flat_map(|(s, e)| s..=e).collect();
            let expected: Vec<u128> = model.iter().copied().collect();
            prop_assert_eq!(flattened, expected);
            // Stored intervals are disjoint and never adjacent.
            let intervals: Vec<(u128, u128)> = set.iter().collect();
            for pair in intervals.windows(2) {
                prop_assert!(pair[0].1 + 1 < pair[1].0);
            }
        }
    }
}
