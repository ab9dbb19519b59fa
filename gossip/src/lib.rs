//! swimlb's membership layer: which speakers are alive, and which of them owns each VIP.
//!
//! - [`membership`]: a sans-io SWIM core (foca) behind a sealed envelope, with its own timer
//!   queue, so real sockets and a simulator's virtual clock drive the same code;
//! - [`envelope`]: the authenticated, encrypted wire format and its key ring; [`replay`]: the
//!   freshness check inside it; [`frames`]: swimlb's own frames beside foca's;
//! - [`health`], [`suspicion`], [`reachability`]: local health, dynamic suspicion and isolation,
//!   which keep one sick member from turning the cluster against healthy ones;
//! - [`preset`]: typed timing presets (`fast`, `memberlist`, `wan`);
//! - [`owner`]: rendezvous hashing from (live ∩ eligible nodes, VIP) to an owner;
//! - [`driver`]: the thin tokio shell around the core: a UDP socket and real time.

pub mod driver;
pub mod envelope;
pub mod frames;
pub mod health;
pub mod identity;
pub mod membership;
mod notices;
pub mod owner;
pub mod preset;
pub mod reachability;
pub mod replay;
pub mod suspicion;

pub use envelope::{DropCounts, DropReason, KeyRing};
pub use identity::NodeId;
pub use membership::{Datagram, Membership, MembershipEvent, Seeds, TrafficCounts};
pub use preset::{Preset, Timing};
pub use reachability::{IsolationReason, Reachability};
