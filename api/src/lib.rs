//! swimlb's Kubernetes API surface shared by the controller and the speaker: the custom resources
//! and the annotation names (ours and MetalLB's, accepted with the same meaning so Services can
//! move over unchanged).

pub mod annotations;
mod class;
mod pool;

pub use class::ClassFilter;

pub use pool::{
    IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, POOL_CONDITION_VALID, ServiceAllocation,
};

/// The API group of swimlb's custom resources.
pub const GROUP: &str = "swimlb.io";
