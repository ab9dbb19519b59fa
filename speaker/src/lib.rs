//! swimlb speaker: answers ARP and NDP for the VIPs its node owns.
//!
//! - [`packet`]: ARP and neighbor discovery frames as pure byte functions;
//! - [`announce`]: the owned set and the gratuitous announcement schedule (pure state);
//! - [`ownership`]: which VIPs this node owns given the live members (pure);
//! - [`interfaces`]: which interfaces to answer on;
//! - [`config`]: the static-mode YAML file;
//! - [`kubernetes`]: Kubernetes mode, the watches feeding [`placement`] and gossip peers;
//! - [`datalink`]: packet sockets, one receive thread per interface;
//! - [`placement`]: Kubernetes mode, which nodes may own each VIP (pure);
//! - [`startup`]: when a starting speaker may begin to announce (pure);
//! - [`runtime`]: the event loop tying gossip, configuration and interfaces together;
//! - [`http`] and [`metrics`]: `/metrics`, `/healthz`, `/readyz`, `/vips`.

pub mod config;
pub mod datalink;
pub mod http;
pub mod interfaces;
pub mod kubernetes;
pub mod l2status;
pub mod metrics;
pub mod packet;
pub mod placement;
pub mod runtime;

/// The speaker as the API server sees it: field manager `swimlb-speaker`.
pub const AGENT: swimlb_api::Agent =
    swimlb_api::Agent::new("swimlb-speaker", env!("CARGO_PKG_VERSION"));

pub use swimlb_speaker_core::{announce, fence, flap, ownership, startup};
