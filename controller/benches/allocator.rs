//! Allocating 10,000 Services from one /16-sized pool: swimlb's interval-set allocator (alone and
//! behind the full per-Service decision) against a linear first-fit scan over the pool, the
//! approach that costs O(pool) per allocation. Also prints the heap each approach holds
//! afterwards. The pool is 2001:db8::/112 (65,536 addresses, as many as an IPv4 /16) so that
//! even a benchmark names documentation addresses only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group};
use swimlb_controller::allocator::{AddressRange, Family, PoolAllocator};
use swimlb_controller::config::{PoolDeclaration, PoolSet};
use swimlb_controller::service::{FamilyRequest, ServiceKey, ServiceRequest};
use swimlb_controller::state::{AllocationState, ClassFilter, Decision};

/// Counts live heap bytes so the bench can report what each structure holds.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const SERVICES: usize = 10_000;
const POOL: &str = "2001:db8::/112";
const BASE: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0000;

fn pool_range() -> AddressRange {
    AddressRange::from_prefix(IpAddr::V6(Ipv6Addr::from(BASE)), 112).expect("valid /112")
}

fn nth(n: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(BASE + n))
}

/// The baseline: scan the pool from its start for the first address not in use.
struct LinearFirstFit {
    first: u128,
    last: u128,
    used: HashSet<IpAddr>,
}

impl LinearFirstFit {
    fn new(range: AddressRange) -> Self {
        let number = |ip: IpAddr| match ip {
            IpAddr::V6(v6) => u128::from(v6),
            IpAddr::V4(_) => unreachable!("the bench pool is IPv6"),
        };
        Self {
            first: number(range.first()),
            last: number(range.last()),
            used: HashSet::new(),
        }
    }

    fn allocate(&mut self) -> Option<IpAddr> {
        (self.first..=self.last)
            .map(|n| IpAddr::V6(Ipv6Addr::from(n)))
            .find(|ip| !self.used.contains(ip))
            .inspect(|ip| {
                self.used.insert(*ip);
            })
    }
}

fn fill_interval_allocator() -> PoolAllocator {
    let mut pool = PoolAllocator::new(&[pool_range()], false);
    for _ in 0..SERVICES {
        black_box(pool.allocate_lowest(Family::V6));
    }
    pool
}

fn fill_linear() -> LinearFirstFit {
    let mut pool = LinearFirstFit::new(pool_range());
    for _ in 0..SERVICES {
        black_box(pool.allocate());
    }
    pool
}

fn requests() -> Vec<ServiceRequest> {
    (0..SERVICES)
        .map(|i| {
            let mut request =
                ServiceRequest::load_balancer(ServiceKey::new("bench", format!("svc-{i:05}")));
            request.families = FamilyRequest::single(Family::V6);
            request
        })
        .collect()
}

fn fresh_state() -> AllocationState {
    let mut state = AllocationState::new(ClassFilter::default());
    let spec = swimlb_api::IPAddressPoolSpec {
        addresses: vec![POOL.to_owned()],
        ..Default::default()
    };
    state.set_pools(PoolSet::build(vec![PoolDeclaration::from_resource(
        "bench", "big", 0, &spec,
    )]));
    state
}

fn fill_state(requests: &[ServiceRequest]) -> AllocationState {
    let mut state = fresh_state();
    for request in requests {
        black_box(state.reconcile(request));
    }
    state
}

/// Heap bytes `build`'s result holds.
fn retained_bytes<T>(build: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let value = build();
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    (value, after.saturating_sub(before))
}

/// Checks that all three hand out the same addresses, and prints what each keeps in memory.
fn report_memory() {
    let requests = requests();
    let (interval, interval_bytes) = retained_bytes(fill_interval_allocator);
    let (linear, linear_bytes) = retained_bytes(fill_linear);
    let (state, state_bytes) = retained_bytes(|| fill_state(&requests));
    let last = nth(SERVICES as u128 - 1);
    assert!(!interval.is_free(last) && interval.is_free(nth(SERVICES as u128)));
    assert!(linear.used.contains(&last) && linear.used.len() == SERVICES);
    assert_eq!(
        state.addresses_of(&ServiceKey::new("bench", "svc-09999")),
        Some(&[last][..])
    );
    println!(
        "memory after {SERVICES} allocations from {POOL}: interval-set allocator {interval_bytes} B \
         ({} free interval(s)); full allocation state incl. Service records {state_bytes} B; \
         linear first-fit used-set {linear_bytes} B",
        interval.free_interval_count()
    );
}

fn bench(c: &mut Criterion) {
    let requests = requests();
    let mut group = c.benchmark_group("allocate_10000_from_65536_addresses");
    group.sample_size(10);
    group.bench_function("interval_set_allocator", |b| {
        b.iter(fill_interval_allocator)
    });
    group.bench_function("allocation_state_per_service", |b| {
        b.iter(|| {
            let state = fill_state(&requests);
            assert!(
                state
                    .addresses_of(&ServiceKey::new("bench", "svc-00000"))
                    .is_some()
            );
            state
        })
    });
    group.bench_function("linear_first_fit_baseline", |b| b.iter(fill_linear));
    group.finish();

    // Churn: release one address low in the pool and allocate again, with 10,000 in use.
    let mut state = fill_state(&requests);
    let victim = ServiceKey::new("bench", "svc-00042");
    let mut again = ServiceRequest::load_balancer(victim.clone());
    again.families = FamilyRequest::single(Family::V6);
    c.bench_function("release_and_reallocate_at_10000", |b| {
        b.iter(|| {
            state.remove(&victim);
            let decision = state.reconcile(&again);
            assert!(matches!(decision, Decision::Assigned { .. }));
        })
    });
}

criterion_group!(benches, bench);

fn main() {
    report_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
