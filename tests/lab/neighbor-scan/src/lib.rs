//! Which MACs answer each address: the bookkeeping of a neighbor scan, apart from the socket.
//!
//! A scan sends one request per unresolved address per round. An answer belongs to the latest
//! round that asked for its address before it arrived, and an address is resolved by the first
//! round that drew any answer: its MACs are the ones that answered that round's request. So a
//! VIP that moves between two rounds shows one MAC, and a VIP two hosts answer for at once
//! shows both.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;
use swimlb_speaker::packet::Mac;

#[derive(Debug, Default)]
struct Target {
    /// When each round asked, oldest first.
    asked: Vec<Instant>,
    /// The MACs that answered, by the round they answered.
    answers: BTreeMap<usize, BTreeSet<Mac>>,
}

/// The state of one scan over a fixed set of addresses.
#[derive(Debug)]
pub struct Scan {
    targets: BTreeMap<IpAddr, Target>,
}

impl Scan {
    pub fn new(addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        Scan {
            targets: addresses
                .into_iter()
                .map(|a| (a, Target::default()))
                .collect(),
        }
    }

    /// The addresses no round has drawn an answer for yet: the next round asks these.
    pub fn unresolved(&self) -> Vec<IpAddr> {
        self.targets
            .iter()
            .filter(|(_, t)| t.answers.is_empty())
            .map(|(a, _)| *a)
            .collect()
    }

    /// A request for `address` went out at `at`.
    pub fn asked(&mut self, address: IpAddr, at: Instant) {
        if let Some(target) = self.targets.get_mut(&address) {
            target.asked.push(at);
        }
    }

    /// `mac` answered for `address` at `at`. Answers for addresses not scanned, or not asked
    /// yet, are ignored.
    pub fn answered(&mut self, address: IpAddr, mac: Mac, at: Instant) {
        let Some(target) = self.targets.get_mut(&address) else {
            return;
        };
        let Some(round) = target.asked.iter().rposition(|asked| *asked <= at) else {
            return;
        };
        target.answers.entry(round).or_default().insert(mac);
    }

    /// Every address with its first answered round, if any.
    pub fn results(&self) -> BTreeMap<IpAddr, Option<Answer>> {
        self.targets
            .iter()
            .map(|(address, target)| {
                let answer = target.answers.iter().next().map(|(round, macs)| Answer {
                    round: *round,
                    macs: macs.clone(),
                });
                (*address, answer)
            })
            .collect()
    }
}

/// The first round that drew an answer for an address, and the MACs that answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 0 for the first round.
    pub round: usize,
    pub macs: BTreeSet<Mac>,
}

/// One result line: the address, its MACs joined by commas and the round (from 1) that drew
/// them; or the address and `-` when none answered.
pub fn result_line(address: IpAddr, answer: Option<&Answer>) -> String {
    let Some(answer) = answer else {
        return format!("{address} -");
    };
    let macs: Vec<String> = answer.macs.iter().map(ToString::to_string).collect();
    format!("{address} {} {}", macs.join(","), answer.round + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: Mac = Mac([2, 0, 0, 0, 1, 1]);
    const B: Mac = Mac([2, 0, 0, 0, 1, 2]);

    fn addr(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn an_address_is_resolved_by_its_first_answered_round() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let (v4, v6, silent) = (addr("192.0.2.1"), addr("2001:db8::1"), addr("192.0.2.2"));
        let mut scan = Scan::new([v4, v6, silent]);
        assert_eq!(scan.unresolved(), vec![v4, silent, v6]);
        for a in scan.unresolved() {
            scan.asked(a, ms(0));
        }
        scan.answered(v4, A, ms(1));
        assert_eq!(scan.unresolved(), vec![silent, v6]);
        for a in scan.unresolved() {
            scan.asked(a, ms(300));
        }
        // Round 1's late answer for v6, then round 2's answer from another MAC: a move between
        // the rounds, not two owners.
        scan.answered(v6, A, ms(299));
        scan.answered(v6, B, ms(301));
        let results = scan.results();
        let first = |mac| {
            Some(Answer {
                round: 0,
                macs: BTreeSet::from([mac]),
            })
        };
        assert_eq!(results[&v4], first(A));
        assert_eq!(results[&v6], first(A));
        assert_eq!(results[&silent], None);
        assert_eq!(
            result_line(silent, results[&silent].as_ref()),
            "192.0.2.2 -"
        );
        assert_eq!(
            result_line(v4, results[&v4].as_ref()),
            "192.0.2.1 02:00:00:00:01:01 1"
        );
    }

    #[test]
    fn a_retry_that_draws_the_answer_is_its_round() {
        let start = Instant::now();
        let v4 = addr("192.0.2.1");
        let mut scan = Scan::new([v4]);
        scan.asked(v4, start);
        scan.asked(v4, start + Duration::from_millis(250));
        scan.answered(v4, A, start + Duration::from_millis(251));
        let results = scan.results();
        assert_eq!(results[&v4].as_ref().map(|a| a.round), Some(1));
        assert_eq!(
            result_line(v4, results[&v4].as_ref()),
            "192.0.2.1 02:00:00:00:01:01 2"
        );
    }

    #[test]
    fn two_macs_answering_one_request_are_both_reported() {
        let start = Instant::now();
        let v4 = addr("192.0.2.1");
        let mut scan = Scan::new([v4]);
        scan.asked(v4, start);
        scan.answered(v4, B, start + Duration::from_millis(2));
        scan.answered(v4, A, start + Duration::from_millis(1));
        let results = scan.results();
        assert_eq!(
            results[&v4].as_ref().map(|a| a.macs.clone()),
            Some(BTreeSet::from([A, B]))
        );
        assert_eq!(
            result_line(v4, results[&v4].as_ref()),
            "192.0.2.1 02:00:00:00:01:01,02:00:00:00:01:02 1"
        );
    }

    #[test]
    fn answers_nobody_asked_for_are_ignored() {
        let start = Instant::now();
        let (asked, other) = (addr("192.0.2.1"), addr("192.0.2.9"));
        let mut scan = Scan::new([asked]);
        scan.answered(asked, A, start);
        scan.answered(other, A, start);
        assert_eq!(
            scan.unresolved(),
            vec![asked],
            "answered before it was asked"
        );
        assert_eq!(scan.results().len(), 1);
    }
}
