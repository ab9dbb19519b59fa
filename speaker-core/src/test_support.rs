//! Shorthands the unit tests of this crate share.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// 192.0.2.`last`.
pub fn vip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}
