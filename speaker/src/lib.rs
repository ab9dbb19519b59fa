//! swimlb speaker: answers ARP and NDP for the VIPs its node owns.
//!
//! - [`packet`]: ARP and neighbor discovery frames as pure byte functions;
//! - [`announce`]: the owned set and the gratuitous announcement schedule (pure state);
//! - [`interfaces`]: which interfaces to answer on;
//! - [`config`]: the static-mode YAML file.

pub mod announce;
pub mod config;
pub mod interfaces;
pub mod packet;
