//! swimlb's controller: allocates addresses from pools to LoadBalancer Services.
//!
//! The allocation logic ([`allocator`], [`config`], [`service`], [`state`]) is pure and does no
//! I/O; [`kubernetes`] is the thin edge that watches the API server and writes the answers;
//! [`cli`] and [`run`] are the process around it: flags, metrics server, signals, leader loop.

pub mod allocator;
pub mod cli;
pub mod config;
pub mod crd;
pub mod gossip_key;
pub mod http;
pub mod kubernetes;
pub mod metrics;
pub mod run;
pub mod service;
pub mod state;

/// The controller as the API server sees it: field manager `swimlb-controller`.
pub const AGENT: swimlb_api::Agent =
    swimlb_api::Agent::new("swimlb-controller", env!("CARGO_PKG_VERSION"));
