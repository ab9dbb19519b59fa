//! swimlb's Kubernetes API surface shared by the controller and the speaker: the custom resources
//! and the annotation names (ours and MetalLB's, accepted with the same meaning so Services can
//! move over unchanged).

mod advertisement;
pub mod annotations;
pub mod backoff;
mod class;
pub mod client;
pub mod discovery;
mod pool;
mod selector;
mod status;
pub mod store;

pub use advertisement::{Advertisement, AdvertisementError, L2Advertisement, L2AdvertisementSpec};
pub use backoff::ReconnectBackoff;
pub use class::ClassFilter;
pub use client::Agent;
pub use selector::Selector;
pub use status::{
    STATUS_NODE_LABEL, STATUS_SERVICE_LABEL, ServiceL2Status, ServiceL2StatusSpec, status_name,
};
pub use store::{Applied, ObjectKey, Relist, Store};

pub use pool::{
    IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, POOL_CONDITION_VALID, ServiceAllocation,
};

/// The API group of swimlb's custom resources.
pub const GROUP: &str = "swimlb.io";
