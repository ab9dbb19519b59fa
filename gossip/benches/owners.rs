//! Owner of every VIP at once, for a membership view: 10,000 VIPs over 100 and 1,000 nodes.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use swimlb_gossip::owner;

fn vips(count: u32) -> Vec<IpAddr> {
    (0..count)
        .map(|i| {
            if i % 4 == 3 {
                IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(i)))
            } else {
                IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + i))
            }
        })
        .collect()
}

fn all_owners(c: &mut Criterion) {
    let vips = vips(10_000);
    let mut group = c.benchmark_group("owners_10000_vips");
    group.sample_size(10);
    for nodes in [100usize, 1_000] {
        let names: Vec<String> = (0..nodes).map(|i| format!("worker-{i:04}")).collect();
        group.bench_with_input(BenchmarkId::from_parameter(nodes), &names, |b, names| {
            b.iter(|| owner::owners(black_box(&vips), black_box(names)))
        });
    }
    group.finish();
}

criterion_group!(benches, all_owners);
criterion_main!(benches);
