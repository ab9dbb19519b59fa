//! Whether this member can trust its own view of the cluster.
//!
//! A member that gets no answer from anyone cannot tell "everyone else died" from "I am cut
//! off", and the second is far more likely. It reports that state, with the reason, so the
//! speaker can stop claiming VIPs it cannot justify; and the membership core holds back the
//! downs it would otherwise declare, so a sick member never turns healthy ones against the
//! cluster.

use std::time::Duration;

/// Why a member considers itself cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationReason {
    /// It knows other members but its last probes all went unanswered, and nothing else
    /// (indirect probe, check, reply) answered it either, for `silent_for`.
    NoRoundTrip { silent_for: Duration },
    /// It knows no live member although the caller expects `expected` in all.
    NoMembers { expected: usize },
    /// Fewer members are live (this one included) than a majority of those the caller expects.
    NoQuorum { live: usize, expected: usize },
}

impl IsolationReason {
    /// Whether this member's own suspicions are untrustworthy: it cannot reach anyone. Too few
    /// live members alone is not such a reason: after a real mass failure the survivors must
    /// still be able to declare the dead down.
    pub fn holds_back_downs(&self) -> bool {
        matches!(
            self,
            IsolationReason::NoRoundTrip { .. } | IsolationReason::NoMembers { .. }
        )
    }
}

impl std::fmt::Display for IsolationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IsolationReason::NoRoundTrip { silent_for } => {
                write!(f, "no member answered for {} ms", silent_for.as_millis())
            }
            IsolationReason::NoMembers { expected } => {
                write!(f, "no other live member, {expected} expected")
            }
            IsolationReason::NoQuorum { live, expected } => {
                write!(f, "{live} live of {expected} expected, below a majority")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reachability {
    #[default]
    Reachable,
    Isolated(IsolationReason),
}

impl Reachability {
    pub fn is_isolated(&self) -> bool {
        matches!(self, Reachability::Isolated(_))
    }

    pub fn holds_back_downs(&self) -> bool {
        matches!(self, Reachability::Isolated(reason) if reason.holds_back_downs())
    }
}

/// What the verdict is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReachabilityInputs {
    pub now: Duration,
    /// Live members other than this one.
    pub live_peers: usize,
    /// Members the caller expects in all (this one included); 0 when it did not say.
    pub expected: usize,
    /// When another member last answered this one, if ever.
    pub last_answer: Option<Duration>,
    /// This member's own probes that failed since the last answer of any kind. Counted in
    /// probes, not time: a sick member's probe period stretches, and it must still see itself
    /// cut off before its stretched suspicions fall due.
    pub failed_probes: u32,
    /// Failed probes in a row after which a member with peers counts as cut off.
    pub failed_probes_limit: u32,
}

pub fn assess(inputs: &ReachabilityInputs) -> Reachability {
    if inputs.live_peers == 0 {
        if inputs.expected > 1 {
            return Reachability::Isolated(IsolationReason::NoMembers {
                expected: inputs.expected,
            });
        }
        return Reachability::Reachable;
    }
    if inputs.failed_probes >= inputs.failed_probes_limit {
        let silent_for = inputs
            .last_answer
            .map_or(Duration::ZERO, |at| inputs.now.saturating_sub(at));
        return Reachability::Isolated(IsolationReason::NoRoundTrip { silent_for });
    }
    let live = inputs.live_peers + 1;
    if inputs.expected > 0 && live < inputs.expected / 2 + 1 {
        return Reachability::Isolated(IsolationReason::NoQuorum {
            live,
            expected: inputs.expected,
        });
    }
    Reachability::Reachable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> ReachabilityInputs {
        ReachabilityInputs {
            now: Duration::from_secs(10),
            live_peers: 4,
            expected: 5,
            last_answer: Some(Duration::from_millis(9_900)),
            failed_probes: 1,
            failed_probes_limit: 3,
        }
    }

    #[test]
    fn answered_recently_with_a_majority_is_reachable() {
        assert_eq!(assess(&inputs()), Reachability::Reachable);
    }

    #[test]
    fn unanswered_probes_isolate_and_hold_back_downs() {
        let silent = ReachabilityInputs {
            last_answer: Some(Duration::from_secs(9)),
            failed_probes: 3,
            ..inputs()
        };
        let verdict = assess(&silent);
        assert_eq!(
            verdict,
            Reachability::Isolated(IsolationReason::NoRoundTrip {
                silent_for: Duration::from_secs(1)
            })
        );
        assert!(verdict.holds_back_downs());
        // However long the silence, a probe or two lost is not isolation.
        let quiet = ReachabilityInputs {
            last_answer: Some(Duration::from_secs(1)),
            failed_probes: 2,
            ..inputs()
        };
        assert_eq!(assess(&quiet), Reachability::Reachable);
    }

    #[test]
    fn too_few_live_members_is_isolation_that_still_lets_downs_through() {
        let minority = ReachabilityInputs {
            live_peers: 1,
            ..inputs()
        };
        let verdict = assess(&minority);
        assert_eq!(
            verdict,
            Reachability::Isolated(IsolationReason::NoQuorum {
                live: 2,
                expected: 5
            })
        );
        assert!(!verdict.holds_back_downs());
        let majority = ReachabilityInputs {
            live_peers: 2,
            ..inputs()
        };
        assert_eq!(assess(&majority), Reachability::Reachable);
    }

    #[test]
    fn alone_is_isolated_only_when_others_are_expected() {
        let alone = ReachabilityInputs {
            live_peers: 0,
            ..inputs()
        };
        assert_eq!(
            assess(&alone),
            Reachability::Isolated(IsolationReason::NoMembers { expected: 5 })
        );
        let single = ReachabilityInputs {
            live_peers: 0,
            expected: 0,
            ..inputs()
        };
        assert_eq!(assess(&single), Reachability::Reachable);
        assert!(
            IsolationReason::NoMembers { expected: 3 }
                .to_string()
                .contains("3 expected")
        );
    }
}
