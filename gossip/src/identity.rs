//! Who a speaker is on the wire.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A speaker's identity: its stable node name (the key for owner selection), where it listens,
/// and a generation that grows every time it (re)joins.
///
/// Two identities with the same name are the same node; the one with the higher generation is
/// the newer incarnation of the process and replaces the other at once, so a restarted speaker
/// does not wait for its old self to be declared down.
///
/// foca compares members through [`foca::Identity::addr`] on every update it applies, so that
/// address is a 64-bit digest of the name computed once here rather than the name itself
/// (a clone and a string comparison each time). Build identities with [`NodeId::new`] and do
/// not change `name` afterwards.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "WireNodeId", into = "WireNodeId")]
pub struct NodeId {
    pub name: String,
    pub addr: SocketAddr,
    pub generation: u64,
    name_digest: u64,
}

/// What goes on the wire: the digest is derived again on arrival, never trusted from a peer.
#[derive(Serialize, Deserialize)]
struct WireNodeId {
    name: String,
    addr: SocketAddr,
    generation: u64,
}

impl From<WireNodeId> for NodeId {
    fn from(wire: WireNodeId) -> Self {
        NodeId::new(wire.name, wire.addr, wire.generation)
    }
}

impl From<NodeId> for WireNodeId {
    fn from(id: NodeId) -> Self {
        WireNodeId {
            name: id.name,
            addr: id.addr,
            generation: id.generation,
        }
    }
}

impl NodeId {
    pub fn new(name: impl Into<String>, addr: SocketAddr, generation: u64) -> Self {
        let name = name.into();
        let name_digest = crate::owner::name_digest(&name);
        Self {
            name,
            addr,
            generation,
            name_digest,
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
    /// A digest of the node name (see the type's docs).
    type Addr = u64;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> u64 {
        self.name_digest
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
        assert_ne!(old.addr(), NodeId::new("node-b", addr, 7).addr());
    }

    #[test]
    fn the_wire_form_carries_no_digest_and_arrives_whole() {
        let id = NodeId::new("node-a", "192.0.2.1:7946".parse().expect("literal"), 3);
        let bytes = postcard::to_allocvec(&id).expect("encodes");
        let plain = postcard::to_allocvec(&WireNodeId {
            name: "node-a".into(),
            addr: id.addr,
            generation: 3,
        })
        .expect("encodes");
        assert_eq!(bytes, plain);
        let back: NodeId = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back, id);
        assert_eq!(foca::Identity::addr(&back), foca::Identity::addr(&id));
    }
}
