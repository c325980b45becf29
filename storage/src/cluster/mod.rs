//! Who owns a session when several nodes share one Redis: node leases and fenced ownership.
//!
//! What it does:
//! - [`NodeLease`]: each node holds a lease (`PX` a few seconds, renewed well within it) that
//!   also carries its load (sessions held, CPU, whether it takes new sessions), listed in an
//!   index for placement. A node that cannot renew knows when its lease may have lapsed
//!   ([`NodeLease::is_valid`]) and must stop acting as an owner before another node can take
//!   over.
//! - [`Ownership`]: each session has an owner record `{node, token}`. Taking ownership is a
//!   compare-and-set on the token that raises it (the **fencing token**); every durable write of
//!   the session — journal append, snapshot with its journal trim, retire, release — is one Lua
//!   script that refuses the write unless the caller holds the current token. Safety rests on
//!   the token, not on clocks: a paused owner that wakes after a takeover has its writes
//!   refused.
//!
//! Keys carry a hash tag per session (`wagu:{room:ID}:owner|snap|log`), so every script touches
//! one hash slot and runs unchanged on Redis Cluster; node leases share the tag `{nodes}`.
//! Because the owner's lease lives in another slot, a takeover reads the lease first and then
//! compares-and-sets the token it saw: a race with an owner that renewed meanwhile can at worst
//! move a live session (whose old owner is then fenced off), never give it two owners.
//!
//! What it does not do: decide when to take over or whom to forward to (the engine does), or
//! run consensus of its own — Redis's single-threaded scripts are the arbiter. With Redis
//! persistence off, a Redis restart forgets owners and tokens (tokens are also floored at
//! Redis's clock in ms, so a new token is still above any old one unless that clock went back).

mod index;
mod lease;
mod owner;

pub use self::index::{Listed, StreamIndex};
pub use self::lease::{LeaseConfig, NodeLease, NodeLoad, NodeStatus, is_live, live_nodes};
pub use self::owner::{Claim, Ownership, SessionKey};

use crate::StorageError;

/// A node's name in the cluster: 1–64 bytes of `[A-Za-z0-9._-]`, built once at the edge.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    pub fn new(s: impl Into<String>) -> Result<Self, ClusterError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(NodeId(s))
        } else {
            Err(ClusterError::InvalidNodeId(s.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fencing token: strictly increasing per session, never handed out twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub u64);

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error(transparent)]
    Store(#[from] StorageError),
    /// The write's token is not the session's current one: another node owns it now (or the
    /// session was released). The caller must drop its copy of the session.
    #[error("fenced off: this node's token {held} is stale (current {current})")]
    Stale { held: Token, current: Token },
    /// Another process already holds a live lease under this node id.
    #[error("node id {0} is held by another live process")]
    NodeIdTaken(NodeId),
    #[error("invalid node id {0:?}: 1-64 bytes of [A-Za-z0-9._-]")]
    InvalidNodeId(String),
    #[error("redis answered something unexpected: {0}")]
    Protocol(String),
}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        ClusterError::Store(StorageError::Redis(e))
    }
}

/// Placement: the open node with the fewest sessions (then the least CPU, then the name, so
/// every node picks the same one from the same list). `None` when no node takes new sessions.
pub fn least_loaded(nodes: &[NodeStatus]) -> Option<&NodeId> {
    nodes
        .iter()
        .filter(|n| n.load.open)
        .min_by(|a, b| {
            (a.load.sessions, a.load.cpu_permille, &a.node).cmp(&(
                b.load.sessions,
                b.load.cpu_permille,
                &b.node,
            ))
        })
        .map(|n| &n.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, sessions: u64, cpu: u32, open: bool) -> NodeStatus {
        NodeStatus {
            node: NodeId::new(name).unwrap(),
            load: NodeLoad {
                sessions,
                cpu_permille: cpu,
                open,
            },
        }
    }

    #[test]
    fn placement_picks_the_open_node_with_fewest_sessions_then_least_cpu() {
        let nodes = [
            status("a", 10, 100, true),
            status("b", 3, 900, true),
            status("c", 3, 200, true),
            status("d", 0, 0, false),
        ];
        assert_eq!(least_loaded(&nodes).unwrap().as_str(), "c");
        assert_eq!(
            least_loaded(&nodes[3..]),
            None,
            "a node at its limits takes none"
        );
    }

    #[test]
    fn node_ids_are_checked_once_at_the_edge() {
        assert!(NodeId::new("wagu-1.eu_west").is_ok());
        for bad in ["", "a b", "x{y}", &"n".repeat(65)] {
            assert!(
                matches!(NodeId::new(bad), Err(ClusterError::InvalidNodeId(_))),
                "{bad}"
            );
        }
    }
}
