//! Who a speaker is on the wire.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A speaker's identity: its stable node name (the key for owner selection and foca's `Addr`),
/// where it listens, and a generation that grows every time it (re)joins.
///
/// Two identities with the same name are the same node; the one with the higher generation is
/// the newer incarnation of the process and replaces the other at once, so a restarted speaker
/// does not wait for its old self to be declared down.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId {
    pub name: String,
    pub addr: SocketAddr,
    pub generation: u64,
}

impl NodeId {
    pub fn new(name: impl Into<String>, addr: SocketAddr, generation: u64) -> Self {
        Self {
            name: name.into(),
            addr,
            generation,
        }
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.generation)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl foca::Identity for NodeId {
    type Addr = String;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            name: self.name.clone(),
            addr: self.addr,
            generation: self.generation.wrapping_add(1),
        })
    }

    fn addr(&self) -> String {
        self.name.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Newest generation wins; the address only breaks exact ties so the answer is total.
        (self.generation, self.addr) > (adversary.generation, adversary.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    #[test]
    fn newer_generation_wins_and_renew_bumps_it() {
        let addr: SocketAddr = "192.0.2.1:7946".parse().expect("literal");
        let old = NodeId::new("node-a", addr, 7);
        let new = old.renew().expect("renewable");
        assert_eq!(new.generation, 8);
        assert_eq!(new.addr(), old.addr());
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
        assert_eq!(format!("{new}"), "node-a@192.0.2.1:7946#8");
    }
}
