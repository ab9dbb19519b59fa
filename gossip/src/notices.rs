//! Suspicion notices ride on foca's custom broadcasts: piggybacked on its messages and
//! retransmitted like membership updates, so every member hears who else suspects whom.
//!
//! foca owns the handler and gives no access to it, so the handler hands what it decodes to the
//! membership core through a shared inbox.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use foca::{BroadcastHandler, Invalidates};

use crate::frames::SuspicionNotice;
use crate::identity::NodeId;

/// How many notices are remembered to stop re-disseminating them; old ones have long stopped
/// circulating by the time they are forgotten.
const REMEMBERED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NoticeKey {
    target: u64,
    generation: u64,
    incarnation: u16,
    by: u64,
    round: u32,
}

impl Invalidates for NoticeKey {
    fn invalidates(&self, other: &Self) -> bool {
        self == other
    }
}

#[derive(Debug, thiserror::Error)]
#[error("undecodable suspicion notice")]
pub struct NoticeError;

pub type Inbox = Arc<Mutex<VecDeque<SuspicionNotice>>>;

pub struct NoticeHandler {
    seen: BTreeSet<NoticeKey>,
    order: VecDeque<NoticeKey>,
    inbox: Inbox,
}

impl NoticeHandler {
    pub fn new(inbox: Inbox) -> Self {
        Self {
            seen: BTreeSet::new(),
            order: VecDeque::new(),
            inbox,
        }
    }
}

impl BroadcastHandler<NodeId> for NoticeHandler {
    type Key = NoticeKey;
    type Error = NoticeError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&NodeId>,
    ) -> Result<Option<Self::Key>, Self::Error> {
        let notice: SuspicionNotice = postcard::from_bytes(data).map_err(|_| NoticeError)?;
        let key = NoticeKey {
            target: foca::Identity::addr(&notice.target),
            generation: notice.target.generation,
            incarnation: notice.incarnation,
            by: crate::owner::name_digest(&notice.by),
            round: notice.round,
        };
        if !self.seen.insert(key) {
            return Ok(None);
        }
        self.order.push_back(key);
        if self.order.len() > REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        if let Ok(mut inbox) = self.inbox.lock() {
            inbox.push_back(notice);
        }
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(by: &str) -> Vec<u8> {
        postcard::to_allocvec(&SuspicionNotice {
            target: NodeId::new("x", "192.0.2.9:7946".parse().expect("literal"), 4),
            incarnation: 2,
            by: by.into(),
            round: 1,
        })
        .expect("encodes")
    }

    #[test]
    fn each_notice_is_passed_on_once_and_garbage_is_an_error() {
        let inbox = Inbox::default();
        let mut handler = NoticeHandler::new(inbox.clone());
        assert!(
            handler
                .receive_item(&notice("a"), None)
                .expect("valid")
                .is_some()
        );
        assert!(
            handler
                .receive_item(&notice("a"), None)
                .expect("valid")
                .is_none()
        );
        assert!(
            handler
                .receive_item(&notice("b"), None)
                .expect("valid")
                .is_some()
        );
        assert!(handler.receive_item(&[0xff, 0xff, 0xff], None).is_err());
        let heard: Vec<String> = inbox
            .lock()
            .expect("lock")
            .iter()
            .map(|n| n.by.clone())
            .collect();
        assert_eq!(heard, ["a", "b"]);
    }
}
