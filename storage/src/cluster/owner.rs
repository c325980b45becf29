//! Fenced ownership of one session: take it, write it (journal, snapshot, retire), release it.
//!
//! Every write here is one Lua script whose first lines (`lua/fence.lua`) refuse it unless the
//! caller's token is the session's current one, so a write either lands under the current
//! owner or not at all. Nothing should be acknowledged to a client before its fenced append
//! returned `Ok`.

use super::{ClusterError, NodeId, Token};
use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{RedisError, Script};
use std::sync::LazyLock;
use std::time::Duration;

static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/take.lua")));
static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/fence.lua"),
        include_str!("lua/append.lua")
    ))
});
static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/fence.lua"),
        include_str!("lua/snapshot.lua")
    ))
});
static RETIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/fence.lua"),
        include_str!("lua/retire.lua")
    ))
});
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/fence.lua"),
        include_str!("lua/release.lua")
    ))
});

/// A session's keys: `wagu:{<kind>:<id>}:owner|snap|log`. The braces are the Redis Cluster hash
/// tag, so one script's keys always share a slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey {
    tag: String,
}

impl SessionKey {
    /// `kind` is the session kind (`room`, `stream`); `id` its id, already validated by the
    /// caller's own id type.
    pub fn new(kind: &str, id: &str) -> Self {
        SessionKey {
            tag: format!("{{{kind}:{id}}}"),
        }
    }
    pub fn owner(&self) -> String {
        format!("wagu:{}:owner", self.tag)
    }
    pub fn snapshot(&self) -> String {
        format!("wagu:{}:snap", self.tag)
    }
    pub fn journal(&self) -> String {
        format!("wagu:{}:log", self.tag)
    }
}

/// What [`Ownership::claim`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This node owns the session now, under this token. Read the snapshot and journal after
    /// this, never before: a write of the old owner that raced the claim was either fenced
    /// off or is already there.
    Owned(Token),
    /// Another node owns it and its lease is live: forward to it.
    OwnedBy(NodeId, Token),
}

/// Ownership operations for one node, over one Redis connection manager (shared, cheap to
/// clone).
#[derive(Clone)]
pub struct Ownership {
    conn: ConnectionManager,
    node: NodeId,
    /// TTL of the owner record and of what the fenced writes touch.
    ttl: Duration,
}

fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

fn parse_token(s: &str) -> Result<Token, ClusterError> {
    s.parse::<u64>()
        .map(Token)
        .map_err(|_| ClusterError::Protocol(format!("token {s:?}")))
}

impl Ownership {
    pub fn new(conn: ConnectionManager, node: NodeId, ttl: Duration) -> Self {
        Ownership { conn, node, ttl }
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The owner record as it stands: `(node, token)`; `node` is `None` when nobody owns the
    /// session (never claimed, released or retired).
    pub async fn owner(&self, key: &SessionKey) -> Result<(Option<NodeId>, Token), ClusterError> {
        let mut c = self.conn.clone();
        let (node, token): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(key.owner())
            .arg("node")
            .arg("token")
            .query_async(&mut c)
            .await?;
        let token = match token {
            Some(t) => parse_token(&t)?,
            None => Token(0),
        };
        let node = match node {
            Some(n) => Some(NodeId::new(n)?),
            None => None,
        };
        Ok((node, token))
    }

    /// Claims the session for this node unless another node owns it with a live lease (as
    /// `lease_live` says, normally [`super::NodeLease`]'s index). Exactly one of any number of
    /// concurrent claims on a free session wins; the others see [`Claim::OwnedBy`] the winner.
    pub async fn claim(
        &self,
        key: &SessionKey,
        lease_live: impl AsyncFnOnce(&NodeId) -> Result<bool, ClusterError>,
    ) -> Result<Claim, ClusterError> {
        let (node, token) = self.owner(key).await?;
        if let Some(owner) = node {
            if owner == self.node {
                // Ours already (a claim after a restart under the same id takes a new token
                // below: the old process's writes must not mix with ours).
            } else if lease_live(&owner).await? {
                return Ok(Claim::OwnedBy(owner, token));
            }
        }
        self.take(key, token).await
    }

    /// Compare-and-set: takes the session if its token is still `seen`.
    pub async fn take(&self, key: &SessionKey, seen: Token) -> Result<Claim, ClusterError> {
        let mut c = self.conn.clone();
        let (won, node, token): (i64, String, String) = TAKE
            .key(key.owner())
            .arg(self.node.as_str())
            .arg(seen.0)
            .arg(ms(self.ttl))
            .invoke_async(&mut c)
            .await?;
        let token = parse_token(&token)?;
        if won == 1 {
            Ok(Claim::Owned(token))
        } else if node.is_empty() {
            // Released between our read and our write: the caller may simply try again.
            Err(ClusterError::Stale {
                held: seen,
                current: token,
            })
        } else {
            Ok(Claim::OwnedBy(NodeId::new(node)?, token))
        }
    }

    /// Appends journal entries in order, fenced. Returns the journal's length.
    pub async fn append(
        &self,
        key: &SessionKey,
        token: Token,
        entries: &[Bytes],
    ) -> Result<u64, ClusterError> {
        if entries.is_empty() {
            return Err(ClusterError::Protocol("an empty append".into()));
        }
        let mut c = self.conn.clone();
        let mut inv = APPEND.key(key.owner());
        inv.key(key.journal()).arg(token.0).arg(ms(self.ttl));
        for e in entries {
            inv.arg(e.as_ref());
        }
        inv.invoke_async(&mut c).await.map_err(|e| fenced(e, token))
    }

    /// Writes the snapshot and trims the `applied` journal entries it contains, in one fenced
    /// step. Returns the journal entries left.
    pub async fn snapshot(
        &self,
        key: &SessionKey,
        token: Token,
        snapshot: &[u8],
        applied: u64,
    ) -> Result<u64, ClusterError> {
        let mut c = self.conn.clone();
        SNAPSHOT
            .key(key.owner())
            .key(key.snapshot())
            .key(key.journal())
            .arg(token.0)
            .arg(ms(self.ttl))
            .arg(snapshot)
            .arg(applied)
            .invoke_async(&mut c)
            .await
            .map_err(|e| fenced(e, token))
    }

    /// The session is over: deletes its snapshot and journal and releases it, fenced.
    pub async fn retire(&self, key: &SessionKey, token: Token) -> Result<(), ClusterError> {
        let mut c = self.conn.clone();
        let _: i64 = RETIRE
            .key(key.owner())
            .key(key.snapshot())
            .key(key.journal())
            .arg(token.0)
            .arg(ms(self.ttl))
            .invoke_async(&mut c)
            .await
            .map_err(|e| fenced(e, token))?;
        Ok(())
    }

    /// Gives the session up (drain): the data stays for whoever claims it next, at once.
    pub async fn release(&self, key: &SessionKey, token: Token) -> Result<(), ClusterError> {
        let mut c = self.conn.clone();
        let _: i64 = RELEASE
            .key(key.owner())
            .arg(token.0)
            .invoke_async(&mut c)
            .await
            .map_err(|e| fenced(e, token))?;
        Ok(())
    }

    /// The snapshot and the journal, read together (one `MULTI`): call after a claim.
    pub async fn load(
        &self,
        key: &SessionKey,
    ) -> Result<(Option<Bytes>, Vec<Bytes>), ClusterError> {
        let mut c = self.conn.clone();
        let (snap, log): (Option<Vec<u8>>, Vec<Vec<u8>>) = redis::pipe()
            .atomic()
            .get(key.snapshot())
            .lrange(key.journal(), 0, -1)
            .query_async(&mut c)
            .await?;
        Ok((
            snap.map(Bytes::from),
            log.into_iter().map(Bytes::from).collect(),
        ))
    }
}

/// A script's `STALE <current>` refusal as [`ClusterError::Stale`]; anything else as is.
fn fenced(e: RedisError, held: Token) -> ClusterError {
    if e.code() == Some("STALE") {
        let current = e
            .detail()
            .and_then(|d| d.trim().parse::<u64>().ok())
            .map(Token)
            .unwrap_or(Token(0));
        ClusterError::Stale { held, current }
    } else {
        e.into()
    }
}
