//! The frames swimlb sends beside foca's own messages, inside the sealed envelope.
//!
//! Every sealed payload starts with a [`crate::replay::WireHeader`] whose `kind` is one of the
//! constants below; the body is postcard.

use serde::{Deserialize, Serialize};

use crate::identity::NodeId;

/// A foca message.
pub const SWIM: u8 = 0;
/// "Here I am, announce yourself to me": how a member joins through peers it knows only by
/// address (foca's own announce needs the peer's name).
pub const JOIN: u8 = 1;
/// Part of the member list, in answer to a join that asked for it. foca's own reply to an
/// announce carries only as many members as fit one datagram (about forty), so without this a
/// member joining a large cluster would learn the rest over minutes of probes, and meanwhile
/// believe itself the owner of VIPs that belong to members it has not heard of.
pub const MEMBERS: u8 = 2;
/// "Are you there?": a direct check of a member someone else suspects.
pub const CHECK: u8 = 3;
/// The answer to a check.
pub const CHECK_ACK: u8 = 4;
/// Part of a full membership state, for anti-entropy (push/pull).
pub const STATE: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub joiner: NodeId,
    /// Echoed by the member list, which the joiner accepts only with a token it sent.
    pub token: u64,
    /// Only one of the peers a joiner contacts is asked for the member list.
    pub want_list: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    pub token: u64,
    /// The highest generation the sender knows for the joiner's name, when it is not below the
    /// joiner's own: a joiner whose clock stepped back restarts above it.
    pub beat: Option<u64>,
    pub members: Vec<foca::Member<NodeId>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub nonce: u64,
    pub from: std::net::SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAck {
    pub nonce: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateExchange {
    pub token: u64,
    /// A push that asks for the receiver's state in return; replies set it to false.
    pub reply_wanted: bool,
    /// Where to send the reply.
    pub from: std::net::SocketAddr,
    pub members: Vec<foca::Member<NodeId>>,
}

/// "I could not reach `target` at `incarnation`": a member's independent confirmation of a
/// suspicion, disseminated as a foca custom broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspicionNotice {
    pub target: NodeId,
    pub incarnation: u16,
    pub by: String,
    /// The author's count of notices it sent: a suspicion announced again (after an isolation
    /// ended) is a new broadcast, disseminated afresh.
    pub round: u32,
}

/// Splits `members` into groups whose encoding fits `budget` bytes each.
pub fn chunk_members(
    members: Vec<foca::Member<NodeId>>,
    budget: usize,
) -> Vec<Vec<foca::Member<NodeId>>> {
    let mut chunks = Vec::new();
    let mut chunk: Vec<foca::Member<NodeId>> = Vec::new();
    let mut chunk_bytes = 0;
    for member in members {
        let size = postcard::experimental::serialized_size(&member).unwrap_or(budget);
        if chunk_bytes + size > budget && !chunk.is_empty() {
            chunks.push(std::mem::take(&mut chunk));
            chunk_bytes = 0;
        }
        chunk_bytes += size;
        chunk.push(member);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fit_the_budget_and_keep_every_member() {
        let members: Vec<_> = (0..200)
            .map(|i| {
                foca::Member::alive(NodeId::new(
                    format!("node-{i}"),
                    "192.0.2.1:7946".parse().expect("literal"),
                    u64::from(i as u32) << 20,
                ))
            })
            .collect();
        let chunks = chunk_members(members.clone(), 600);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            let bytes = postcard::to_allocvec(chunk).expect("encodes");
            assert!(bytes.len() <= 600 + 8, "{} bytes", bytes.len());
        }
        let flat: Vec<_> = chunks.into_iter().flatten().collect();
        assert_eq!(flat, members);
    }
}
