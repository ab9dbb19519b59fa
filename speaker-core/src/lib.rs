//! swimlb's speaker core, sans-io: which VIPs a speaker claims and when it announces them.
//! The speaker daemon executes its effects on real interfaces; the simulator runs it for every
//! node it models.
//!
//! - [`core`]: [`SpeakerCore`], the state machine tying the rules together;
//! - [`ownership`]: which VIPs a node owns given the live members;
//! - [`announce`]: the owned set and the gratuitous announcement schedule;
//! - [`startup`]: when a starting speaker may begin to announce;
//! - [`fence`]: what an isolated speaker may still claim;
//! - [`flap`]: the hold-down of members that keep going down and coming back.

pub mod announce;
pub mod core;
pub mod fence;
pub mod flap;
pub mod ownership;
pub mod startup;

#[cfg(test)]
mod test_support;

pub use crate::core::{CoreConfig, Effect, Notice, Reason, ReassertCause, SpeakerCore};
