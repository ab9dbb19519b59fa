//! Which network interfaces the speaker answers and announces on.
//!
//! [`select`] is pure; [`discover`] reads the host's interfaces (pnet and sysfs).

use crate::packet::Mac;
use regex::Regex;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

/// MetalLB's default exclusions: container, virtual-switch and tunnel devices that never face
/// the LAN clients.
pub const DEFAULT_EXCLUDES: [&str; 14] = [
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^nodelocaldns.*",
    "^lxc.*",
];

/// What the speaker needs to know about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub name: String,
    pub index: u32,
    pub mac: Option<Mac>,
    pub up: bool,
    pub loopback: bool,
    /// IFF_NOARP: the interface does not do ARP (tunnels, some virtual devices).
    pub no_arp: bool,
    /// Enslaved to a bridge or bond: the master interface is the one facing the LAN.
    pub enslaved: bool,
    pub addresses: Vec<IpAddr>,
}

impl InterfaceInfo {
    /// The IPv6 link-local address (reported in logs: NDP needs IPv6 on the interface).
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        self.addresses.iter().find_map(|a| match a {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(*v6),
            _ => None,
        })
    }
}

/// An interface the speaker will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedInterface {
    pub name: String,
    pub index: u32,
    pub mac: Mac,
    pub link_local: Option<Ipv6Addr>,
}

/// Why an interface was left out (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Down,
    Loopback,
    NoMac,
    NoArp,
    Enslaved,
    NoAddress,
    Excluded(String),
    NotListed,
}

/// Interface selection rules from the configuration.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Explicit names; when non-empty only these are used (exclusions do not apply).
    pub names: Vec<String>,
    pub excludes: Vec<Regex>,
}

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("interface exclusion pattern {pattern:?} is not a valid regex: {source}")]
    BadPattern {
        pattern: String,
        source: regex::Error,
    },
}

impl Selection {
    pub fn new(names: Vec<String>, exclude_patterns: &[String]) -> Result<Self, SelectionError> {
        let excludes = exclude_patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|source| SelectionError::BadPattern {
                    pattern: p.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { names, excludes })
    }

    fn judge(&self, info: &InterfaceInfo) -> Result<SelectedInterface, Rejection> {
        let explicit = !self.names.is_empty();
        if explicit && !self.names.contains(&info.name) {
            return Err(Rejection::NotListed);
        }
        if !info.up {
            return Err(Rejection::Down);
        }
        if info.loopback {
            return Err(Rejection::Loopback);
        }
        let Some(mac) = info.mac.filter(|m| *m != Mac::ZERO) else {
            return Err(Rejection::NoMac);
        };
        if !explicit {
            if let Some(pattern) = self.excludes.iter().find(|re| re.is_match(&info.name)) {
                return Err(Rejection::Excluded(pattern.as_str().to_owned()));
            }
            if info.no_arp {
                return Err(Rejection::NoArp);
            }
            if info.enslaved {
                return Err(Rejection::Enslaved);
            }
            if info.addresses.is_empty() {
                return Err(Rejection::NoAddress);
            }
        }
        Ok(SelectedInterface {
            name: info.name.clone(),
            index: info.index,
            mac,
            link_local: info.link_local(),
        })
    }

    /// The interfaces to use, in the order given, and the reasons for the ones left out.
    pub fn select(
        &self,
        interfaces: &[InterfaceInfo],
    ) -> (Vec<SelectedInterface>, Vec<(String, Rejection)>) {
        let mut chosen = Vec::new();
        let mut rejected = Vec::new();
        for info in interfaces {
            match self.judge(info) {
                Ok(selected) => chosen.push(selected),
                Err(Rejection::NotListed) => {}
                Err(reason) => rejected.push((info.name.clone(), reason)),
            }
        }
        (chosen, rejected)
    }
}

const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_NOARP: u32 = 0x80;

/// The host's interfaces as the kernel reports them now.
pub fn discover() -> Vec<InterfaceInfo> {
    pnet::datalink::interfaces()
        .into_iter()
        .map(|i| InterfaceInfo {
            enslaved: Path::new("/sys/class/net")
                .join(&i.name)
                .join("master")
                .exists(),
            mac: i.mac.map(|m| Mac(m.octets())),
            up: i.flags & IFF_UP != 0,
            loopback: i.flags & IFF_LOOPBACK != 0,
            no_arp: i.flags & IFF_NOARP != 0,
            addresses: i.ips.iter().map(|net| net.ip()).collect(),
            index: i.index,
            name: i.name,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(name: &str) -> InterfaceInfo {
        InterfaceInfo {
            name: name.to_owned(),
            index: 2,
            mac: Some(Mac([2, 0, 0, 0, 0, 1])),
            up: true,
            loopback: false,
            no_arp: false,
            enslaved: false,
            addresses: vec![
                "192.0.2.1".parse().expect("addr"),
                "fe80::1".parse().expect("addr"),
            ],
        }
    }

    fn defaults() -> Selection {
        let patterns: Vec<String> = DEFAULT_EXCLUDES.iter().map(|s| (*s).to_owned()).collect();
        Selection::new(Vec::new(), &patterns).expect("default patterns compile")
    }

    #[test]
    fn picks_suitable_interfaces_and_explains_the_rest() {
        let lo = InterfaceInfo {
            loopback: true,
            ..eth("lo")
        };
        let down = InterfaceInfo {
            up: false,
            ..eth("eth1")
        };
        let slave = InterfaceInfo {
            enslaved: true,
            ..eth("eth2")
        };
        let bare = InterfaceInfo {
            addresses: vec![],
            ..eth("eth3")
        };
        let tunnel = InterfaceInfo {
            no_arp: true,
            ..eth("wg0")
        };
        let (chosen, rejected) =
            defaults().select(&[lo, eth("eth0"), down, slave, bare, eth("docker0"), tunnel]);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].name, "eth0");
        assert_eq!(chosen[0].link_local, Some("fe80::1".parse().expect("addr")));
        let reasons: Vec<(&str, &Rejection)> =
            rejected.iter().map(|(n, r)| (n.as_str(), r)).collect();
        assert_eq!(
            reasons,
            vec![
                ("lo", &Rejection::Loopback),
                ("eth1", &Rejection::Down),
                ("eth2", &Rejection::Enslaved),
                ("eth3", &Rejection::NoAddress),
                ("docker0", &Rejection::Excluded("^docker.*".to_owned())),
                ("wg0", &Rejection::NoArp),
            ]
        );
    }

    #[test]
    fn default_excludes_cover_container_devices() {
        let selection = defaults();
        for name in ["veth1234", "cali0", "flannel.1", "kube-ipvs0", "cni0", "lo"] {
            let (chosen, _) = selection.select(&[eth(name)]);
            assert!(chosen.is_empty(), "{name} should be excluded");
        }
        for name in ["eth0", "ens3", "bond0", "br0", "enp0s31f6"] {
            let (chosen, _) = selection.select(&[eth(name)]);
            assert_eq!(chosen.len(), 1, "{name} should be kept");
        }
    }

    #[test]
    fn explicit_list_overrides_exclusions_but_not_link_state() {
        let patterns: Vec<String> = DEFAULT_EXCLUDES.iter().map(|s| (*s).to_owned()).collect();
        let selection =
            Selection::new(vec!["veth0".into(), "eth9".into()], &patterns).expect("compiles");
        let down = InterfaceInfo {
            up: false,
            ..eth("eth9")
        };
        let (chosen, rejected) = selection.select(&[eth("veth0"), eth("eth0"), down]);
        assert_eq!(
            chosen.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["veth0"]
        );
        assert_eq!(rejected, vec![("eth9".to_owned(), Rejection::Down)]);
    }

    #[test]
    fn bad_pattern_is_an_error() {
        assert!(Selection::new(vec![], &["(".to_owned()]).is_err());
    }
}
