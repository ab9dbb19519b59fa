//! Which `spec.loadBalancerClass` values swimlb answers to: the controller allocates for these
//! Services and the speakers announce them, so both apply this one rule.

use crate::annotations::DEFAULT_LOAD_BALANCER_CLASS;

/// Which `spec.loadBalancerClass` values swimlb answers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassFilter {
    /// Services with this class are ours.
    pub class: String,
    /// Services without a class are ours too.
    pub include_unset: bool,
}

impl ClassFilter {
    pub fn accepts(&self, class: Option<&str>) -> bool {
        match class {
            None => self.include_unset,
            Some(c) => c == self.class,
        }
    }
}

impl Default for ClassFilter {
    fn default() -> Self {
        Self {
            class: DEFAULT_LOAD_BALANCER_CLASS.to_owned(),
            include_unset: true,
        }
    }
}
