//! One `addresses` entry of a pool: a CIDR or an inclusive range.

use std::net::IpAddr;

use super::PoolError;
use crate::allocator::{AddressRange, RangeError};

/// Parses one `addresses` entry: a CIDR (host bits ignored) or an inclusive `first-last` range,
/// whitespace allowed around the parts.
pub fn parse_addresses(value: &str) -> Result<AddressRange, PoolError> {
    let bad = |reason: String| PoolError::BadAddress {
        value: value.to_owned(),
        reason,
    };
    let text = value.trim();
    if let Some((ip, prefix)) = text.split_once('/') {
        let ip: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| bad(format!("{:?} is not an IP address", ip.trim())))?;
        let prefix: u8 = prefix
            .trim()
            .parse()
            .map_err(|_| bad(format!("{:?} is not a prefix length", prefix.trim())))?;
        return AddressRange::from_prefix(ip, prefix)
            .ok_or_else(|| bad(format!("prefix length /{prefix} is too long for {ip}")));
    }
    if let Some((first, last)) = text.split_once('-') {
        let first: IpAddr = first
            .trim()
            .parse()
            .map_err(|_| bad(format!("{:?} is not an IP address", first.trim())))?;
        let last: IpAddr = last
            .trim()
            .parse()
            .map_err(|_| bad(format!("{:?} is not an IP address", last.trim())))?;
        return AddressRange::new(first, last).map_err(|e| match e {
            RangeError::MixedFamilies { .. } => PoolError::MixedFamilies {
                value: value.to_owned(),
            },
            RangeError::StartAfterEnd { first, last } => PoolError::StartAfterEnd {
                value: value.to_owned(),
                first,
                last,
            },
        });
    }
    if text.parse::<IpAddr>().is_ok() {
        return Err(bad(format!(
            "a single address needs a prefix length, such as {text}/32 or {text}/128"
        )));
    }
    Err(bad(
        "expected a CIDR such as 192.0.2.0/24 or a range such as 192.0.2.10-192.0.2.20".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn parses_cidrs_and_ranges_with_whitespace() {
        let r = parse_addresses(" 192.0.2.30 - 192.0.2.49 ").expect("range");
        assert_eq!(r.len(), 20);
        let r = parse_addresses("198.51.100.0 / 24").expect("cidr");
        assert_eq!(r.len(), 256);
        let r = parse_addresses("2001:db8::/126").expect("v6 cidr");
        assert_eq!(r.len(), 4);
        let r = parse_addresses("2001:db8::10-2001:db8::1f").expect("v6 range");
        assert_eq!(r.len(), 16);
    }

    #[test]
    fn every_address_error_names_the_value() {
        let cases = [
            ("192.0.2.300/24", "\"192.0.2.300\" is not an IP address"),
            ("192.0.2.0/33", "prefix length /33 is too long"),
            ("192.0.2.0/x", "\"x\" is not a prefix length"),
            ("192.0.2.1-nope", "\"nope\" is not an IP address"),
            ("192.0.2.5", "needs a prefix length"),
            ("garbage", "expected a CIDR"),
        ];
        for (value, reason) in cases {
            let err = parse_addresses(value).expect_err(value);
            let text = err.to_string();
            assert!(text.contains(&format!("{value:?}")), "{text}");
            assert!(text.contains(reason), "{text}");
        }
        let err = parse_addresses("192.0.2.9-192.0.2.1").expect_err("reversed");
        assert!(matches!(err, PoolError::StartAfterEnd { .. }), "{err}");
        assert!(err.to_string().contains("192.0.2.9-192.0.2.1"));
        let err = parse_addresses("192.0.2.1-2001:db8::1").expect_err("mixed");
        assert_eq!(
            err,
            PoolError::MixedFamilies {
                value: "192.0.2.1-2001:db8::1".to_owned()
            }
        );
    }

    proptest! {
        #[test]
        fn ranges_round_trip(a in any::<u32>(), b in any::<u32>()) {
            let (lo, hi) = (a.min(b), a.max(b));
            let text = format!("{}-{}", Ipv4Addr::from(lo), Ipv4Addr::from(hi));
            let range = parse_addresses(&text).expect("ordered range parses");
            prop_assert_eq!(range.len(), u128::from(hi - lo) + 1);
            if lo != hi {
                let reversed = format!("{}-{}", Ipv4Addr::from(hi), Ipv4Addr::from(lo));
                let is_start_after_end =
                    matches!(parse_addresses(&reversed), Err(PoolError::StartAfterEnd { .. }));
                prop_assert!(is_start_after_end);
            }
        }

        #[test]
        fn cidr_contains_its_address(a in any::<u32>(), len in 0u8..=32) {
            let ip = Ipv4Addr::from(a);
            let range = parse_addresses(&format!("{ip}/{len}")).expect("cidr parses");
            prop_assert!(range.contains(IpAddr::V4(ip)));
            prop_assert_eq!(range.len(), 1u128 << (32 - len));
        }

    }
}
