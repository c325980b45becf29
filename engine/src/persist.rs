//! Where sessions survive their actor: a snapshot plus a journal of the inputs applied since, in
//! the ephemeral store (a redb file under the data directory by default, Redis or in-process
//! memory when configured), all with a TTL.
//!
//! Why a journal: writing the whole room (up to 200 chat messages and the replay buffer) on
//! every vote would cost far more than the vote. Instead the actor appends each input that
//! advanced the session's sequence number — before it acknowledges it — and rewrites the
//! snapshot every few hundred inputs. Entries carry a counter so that a journal left behind by a
//! crash between "write snapshot" and "clear journal" is skipped, never applied twice. Inputs
//! replay deterministically because machines take their time and randomness from their inputs.
//!
//! Entries also carry the *epoch* of the actor that wrote them, a random number each actor
//! picks when it starts and writes into its first snapshot. Only entries of the snapshot's epoch
//! are replayed: an actor that died with journal writes still on their way (its journal is
//! pipelined, see `actor/session_actor.rs`) cannot slip an entry into the history of the actor that
//! revived it — such an entry was never acknowledged (its outputs wait for it), so dropping it
//! loses nothing a client saw. Stored data without epochs (written before they existed) reads
//! as epoch 0 throughout.
//!
//! Time: snapshots record the session's clock and entries their `now`. A revived session's
//! clock starts at the latest of them (`load_to_revive`), and its actor never reads its clock
//! below that, so a session moved to a node whose clock is behind does not go back in time.
//!
//! Keys: `wagu:{kind}:{id}:snap`, `wagu:{kind}:{id}:log`, and for each alias of a session (a
//! room's share token) `wagu:{alias}` → id.
//!
//! **Fenced (cluster) mode** ([`SessionStore::fenced`]): several nodes share one Redis. Then a
//! session's epoch *is* its fencing token, taken by a claim ([`wagu_storage::cluster`]) before
//! anything of the session is read, and every write of the session (journal append, snapshot
//! with its journal trim, retire, release) is a script that refuses a stale token. Keys carry the
//! session's hash tag (`wagu:{room:ID}:snap|log|owner`). Entries are never filtered by epoch
//! there: every entry in the journal was written under the token current at the time, so a
//! revived session replays all of them past its snapshot. A snapshot trims the journal entries
//! its writer knows are durable (a count from the head: appends land in order and whole).
//! Aliases map a share token to an id for good, so they are written unfenced.

use crate::machine::{Input, Machine};
use bytes::Bytes;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wagu_proto::model::UnixMillis;
use wagu_storage::cluster::{Claim, ClusterError, NodeId, NodeLease, Ownership, SessionKey, Token};
use wagu_storage::{EphemeralStore, StorageError};

#[derive(Serialize, Deserialize)]
struct Stored<M> {
    /// How many journal entries this snapshot already contains.
    applied: u64,
    /// The writing actor's epoch: only journal entries of the same epoch follow it.
    #[serde(default)]
    epoch: u64,
    /// The session's clock when written (0 in snapshots from before it was kept): an actor
    /// that revives the session never runs its clock below this or any journaled `now`.
    #[serde(default)]
    now: UnixMillis,
    /// The session (a room or a stream); stored under its old name, `room`.
    #[serde(rename = "room")]
    session: M,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    n: u64,
    #[serde(default)]
    epoch: u64,
    now: UnixMillis,
    input: Input,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    #[error(transparent)]
    Store(#[from] StorageError),
    #[error("stored session {0} is corrupt: {1}")]
    Corrupt(String, serde_json::Error),
    /// A fenced write or claim failed (Redis unreachable, or this node's token is stale).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Another node owns the session and its lease is live: the session runs there.
    #[error("the session runs on node {0}")]
    OwnedElsewhere(NodeId),
    /// This node may not own sessions now: its lease may have lapsed (Redis unreachable, a
    /// long pause) or it is draining.
    #[error("this node takes no sessions now ({0})")]
    NotOwning(&'static str),
}

impl PersistError {
    /// The write was refused because another node took the session over: drop this copy.
    pub fn is_fenced_off(&self) -> bool {
        matches!(self, PersistError::Cluster(ClusterError::Stale { .. }))
    }
}

/// This node's membership of a cluster: fenced ownership over the shared Redis, valid while
/// its node lease is and until it starts draining.
#[derive(Clone)]
pub struct Fence {
    ownership: Ownership,
    conn: ConnectionManager,
    lease: Arc<NodeLease>,
    draining: Arc<AtomicBool>,
}

impl Fence {
    /// `ttl`: how long owner records (and what fenced writes touch) live untouched.
    pub fn new(conn: ConnectionManager, lease: Arc<NodeLease>, ttl: Duration) -> Self {
        Fence {
            ownership: Ownership::new(conn.clone(), lease.node().clone(), ttl),
            conn,
            lease,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn node(&self) -> &NodeId {
        self.lease.node()
    }

    pub fn lease(&self) -> &Arc<NodeLease> {
        &self.lease
    }

    pub fn connection(&self) -> &ConnectionManager {
        &self.conn
    }

    /// From now on this node claims no session (a drain); sessions it holds are handed over.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Why this node may not claim sessions now, if it may not.
    pub fn refusal(&self) -> Option<&'static str> {
        if self.is_draining() {
            Some("draining")
        } else if !self.lease.is_valid() {
            Some("node lease lapsed")
        } else {
            None
        }
    }

    /// The node that owns session `id` of kind `M` now, if any.
    pub async fn owner_of<M: Machine>(&self, id: &str) -> Result<Option<NodeId>, PersistError> {
        Ok(self.ownership.owner(&SessionKey::new(M::KIND, id)).await?.0)
    }

    async fn has_snapshot(&self, key: &SessionKey) -> Result<bool, PersistError> {
        let mut c = self.conn.clone();
        let n: i64 = redis::cmd("EXISTS")
            .arg(key.snapshot())
            .query_async(&mut c)
            .await
            .map_err(ClusterError::from)?;
        Ok(n == 1)
    }

    /// Claims `key` for this node: its token, or who owns it. A claim that raced a release
    /// is tried again (a released session has no owner; the next take wins).
    async fn claim(&self, key: &SessionKey) -> Result<Token, PersistError> {
        if let Some(why) = self.refusal() {
            return Err(PersistError::NotOwning(why));
        }
        let mut tries = 0;
        loop {
            let conn = self.conn.clone();
            let live = async move |n: &NodeId| wagu_storage::cluster::is_live(&conn, n).await;
            match self.ownership.claim(key, live).await {
                Ok(Claim::Owned(token)) => return Ok(token),
                Ok(Claim::OwnedBy(node, _)) => return Err(PersistError::OwnedElsewhere(node)),
                Err(ClusterError::Stale { .. }) if tries < 3 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A session rebuilt from the store, ready to run on this node.
pub struct Revived<M> {
    pub machine: M,
    /// Journal counter to continue from.
    pub applied: u64,
    /// The floor of the session's clock.
    pub not_before: UnixMillis,
    /// The epoch of the actor that runs it (its fencing token in a cluster).
    pub epoch: u64,
    /// Entries the journal held when read (fenced mode: the first snapshot trims them).
    pub journal_len: u64,
}

#[derive(Clone)]
pub struct SessionStore {
    store: EphemeralStore,
    ttl: Duration,
    /// Behind a pointer: every session and connection holds a copy of the store.
    fence: Option<Arc<Fence>>,
}

fn snap_key<M: Machine>(id: &str) -> String {
    format!("wagu:{}:{id}:snap", M::KIND)
}
fn log_key<M: Machine>(id: &str) -> String {
    format!("wagu:{}:{id}:log", M::KIND)
}
fn alias_key(alias: &str) -> String {
    format!("wagu:{alias}")
}

impl SessionStore {
    /// `ttl` bounds how long a session nobody touches stays in the store; every snapshot
    /// renews it.
    pub fn new(store: EphemeralStore, ttl: Duration) -> Self {
        SessionStore {
            store,
            ttl,
            fence: None,
        }
    }

    /// A store shared by the nodes of a cluster: every session write is fenced (see the module
    /// head). `store` must be the Redis the fence talks to (aliases live there too).
    pub fn fenced(store: EphemeralStore, ttl: Duration, fence: Fence) -> Self {
        SessionStore {
            store,
            ttl,
            fence: Some(Arc::new(fence)),
        }
    }

    /// This node's cluster membership, when the store is fenced.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_deref()
    }

    /// The epoch for a session created on this node: a fresh fencing token in a cluster (the
    /// claim), else a random number.
    pub async fn claim_new<M: Machine>(&self, id: &str) -> Result<u64, PersistError> {
        match &self.fence {
            Some(f) => Ok(f.claim(&SessionKey::new(M::KIND, id)).await?.0),
            None => Ok(rand::random::<u64>()),
        }
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    pub fn inner(&self) -> &EphemeralStore {
        &self.store
    }

    /// Writes the snapshot (which covers journal entries up to `applied`) of the actor of
    /// `epoch`, renews the aliases, then clears the journal. Fenced, the snapshot and the trim
    /// of the first `trim` journal entries (those its writer knows are durable) are one step.
    pub async fn save<M: Machine>(
        &self,
        m: &M,
        applied: u64,
        epoch: u64,
        now: UnixMillis,
        trim: u64,
    ) -> Result<(), PersistError> {
        #[derive(Serialize)]
        struct StoredRef<'a, M> {
            applied: u64,
            epoch: u64,
            now: UnixMillis,
            #[serde(rename = "room")]
            session: &'a M,
        }
        let id = m.key();
        let bytes = serde_json::to_vec(&StoredRef {
            applied,
            epoch,
            now,
            session: m,
        })
        .map_err(|e| PersistError::Corrupt(id.to_string(), e))?;
        if let Some(f) = &self.fence {
            f.ownership
                .snapshot(&SessionKey::new(M::KIND, id), Token(epoch), &bytes, trim)
                .await?;
            for alias in m.aliases() {
                self.store
                    .put(&alias_key(&alias), Bytes::from(id.to_string()), self.ttl)
                    .await?;
            }
            return Ok(());
        }
        self.store
            .put(&snap_key::<M>(id), Bytes::from(bytes), self.ttl)
            .await?;
        for alias in m.aliases() {
            self.store
                .put(&alias_key(&alias), Bytes::from(id.to_string()), self.ttl)
                .await?;
        }
        self.store.delete(&[&log_key::<M>(id)]).await?;
        Ok(())
    }

    /// Encodes the `n`-th journaled input of the actor of `epoch`, for
    /// [`SessionStore::append_entries`].
    pub fn encode_entry(
        id: &str,
        epoch: u64,
        n: u64,
        now: UnixMillis,
        input: &Input,
    ) -> Result<Bytes, PersistError> {
        #[derive(Serialize)]
        struct EntryRef<'a> {
            n: u64,
            epoch: u64,
            now: UnixMillis,
            input: &'a Input,
        }
        serde_json::to_vec(&EntryRef {
            n,
            epoch,
            now,
            input,
        })
        .map(Bytes::from)
        .map_err(|e| PersistError::Corrupt(id.to_string(), e))
    }

    /// Appends the `n`-th journaled input of the actor of `epoch`.
    pub async fn append<M: Machine>(
        &self,
        id: &str,
        epoch: u64,
        n: u64,
        now: UnixMillis,
        input: &Input,
    ) -> Result<(), PersistError> {
        let entry = Self::encode_entry(id, epoch, n, now, input)?;
        self.append_entries::<M>(id, epoch, vec![entry]).await
    }

    /// Appends encoded entries of the actor of `epoch`, in order, in one write: when the call
    /// returns they are durable as far as the backend makes anything durable (the embedded
    /// file: fsync'd; fenced: refused unless `epoch` is still the session's token).
    pub async fn append_entries<M: Machine>(
        &self,
        id: &str,
        epoch: u64,
        entries: Vec<Bytes>,
    ) -> Result<(), PersistError> {
        if let Some(f) = &self.fence {
            f.ownership
                .append(&SessionKey::new(M::KIND, id), Token(epoch), &entries)
                .await?;
            return Ok(());
        }
        self.store
            .append_many(&log_key::<M>(id), entries, self.ttl)
            .await?;
        Ok(())
    }

    /// Rebuilds a session: the snapshot, then every journal entry it does not contain yet.
    /// Returns the session, the journal counter to continue from, and the latest `now` the
    /// session was handled at (the floor of its clock wherever it runs next).
    pub async fn load<M: Machine>(
        &self,
        id: &str,
    ) -> Result<Option<(M, u64, UnixMillis)>, PersistError> {
        if let Some(f) = &self.fence {
            let (snap, log) = f.ownership.load(&SessionKey::new(M::KIND, id)).await?;
            return match snap {
                Some(bytes) => Ok(Some(rebuild(id, &bytes, &log, false)?)),
                None => Ok(None),
            };
        }
        let Some(bytes) = self.store.get(&snap_key::<M>(id)).await? else {
            return Ok(None);
        };
        let log = self.store.list(&log_key::<M>(id)).await?;
        Ok(Some(rebuild(id, &bytes, &log, true)?))
    }

    /// Loads a session to run it again on this node: `None` when it is unknown or has ended.
    /// Every participant comes back away, since their sockets died with the old actor.
    ///
    /// This node's clock may run behind the one that wrote the session: `now` is clamped to
    /// the latest time the session was handled at, and that clamped time is returned as the
    /// floor of the revived actor's clock, so the session's time never runs backwards.
    ///
    /// Fenced, the session is claimed first (its token is the returned epoch) and read after,
    /// so no write of a previous owner can land unseen; a session another live node owns is
    /// [`PersistError::OwnedElsewhere`].
    pub async fn load_to_revive<M: Machine>(
        &self,
        id: &str,
        now: UnixMillis,
    ) -> Result<Option<Revived<M>>, PersistError> {
        let (found, epoch) = match &self.fence {
            Some(f) => {
                // Before any round trip: a node that may not own sessions does not wait on a
                // Redis it may not reach.
                if let Some(why) = f.refusal() {
                    return Err(PersistError::NotOwning(why));
                }
                let key = SessionKey::new(M::KIND, id);
                // Nothing stored: unknown, and no owner record is made for a made-up id.
                if !f.has_snapshot(&key).await? {
                    return Ok(None);
                }
                let token = f.claim(&key).await?;
                let (snap, log) = f.ownership.load(&key).await?;
                let Some(bytes) = snap else {
                    // Retired between the check and the claim.
                    let _ = f.ownership.release(&key, token).await;
                    return Ok(None);
                };
                let len = log.len() as u64;
                (Some((rebuild::<M>(id, &bytes, &log, false)?, len)), token.0)
            }
            None => {
                let found = self.load::<M>(id).await?;
                let len = 0;
                (found.map(|f| (f, len)), rand::random::<u64>())
            }
        };
        let Some(((mut m, applied, latest), journal_len)) = found else {
            return Ok(None);
        };
        if m.is_closed() {
            return Ok(None);
        }
        let now = now.max(latest);
        let _ = m.detach_all(now);
        Ok(Some(Revived {
            machine: m,
            applied,
            not_before: now,
            epoch,
            journal_len,
        }))
    }

    /// Gives a session up (a drain hands it over): fenced, its owner record is released so
    /// another node claims it at once; unfenced, nothing to do.
    pub async fn release<M: Machine>(&self, id: &str, epoch: u64) -> Result<(), PersistError> {
        if let Some(f) = &self.fence {
            f.ownership
                .release(&SessionKey::new(M::KIND, id), Token(epoch))
                .await?;
        }
        Ok(())
    }

    /// The session is over: its stored state goes. Fenced, the retire is refused to a stale
    /// owner (and then the aliases stay: they are the new owner's).
    pub async fn delete<M: Machine>(&self, m: &M, epoch: u64) -> Result<(), PersistError> {
        let id = m.key();
        if let Some(f) = &self.fence {
            f.ownership
                .retire(&SessionKey::new(M::KIND, id), Token(epoch))
                .await?;
            let keys: Vec<String> = m.aliases().iter().map(|a| alias_key(a)).collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            self.store.delete(&refs).await?;
            return Ok(());
        }
        let mut keys = vec![snap_key::<M>(id), log_key::<M>(id)];
        keys.extend(m.aliases().iter().map(|a| alias_key(a)));
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.store.delete(&refs).await?;
        Ok(())
    }

    /// The session an alias (e.g. `share:<token>`) leads to, if known.
    pub async fn resolve_alias(&self, alias: &str) -> Result<Option<String>, PersistError> {
        let v = self.store.get(&alias_key(alias)).await?;
        Ok(v.and_then(|b| String::from_utf8(b.to_vec()).ok()))
    }
}

/// A session from its snapshot and the journal entries it does not contain yet. Returns the
/// session, the journal counter to continue from, and the latest `now` it was handled at.
/// `by_epoch`: skip entries of other epochs (unfenced stores; see the module head).
fn rebuild<M: Machine>(
    id: &str,
    snapshot: &[u8],
    log: &[Bytes],
    by_epoch: bool,
) -> Result<(M, u64, UnixMillis), PersistError> {
    let stored: Stored<M> =
        serde_json::from_slice(snapshot).map_err(|e| PersistError::Corrupt(id.to_string(), e))?;
    let mut m = stored.session;
    let mut applied = stored.applied;
    let mut latest = stored.now;
    for raw in log {
        let e: Entry =
            serde_json::from_slice(raw).map_err(|e| PersistError::Corrupt(id.to_string(), e))?;
        if e.n <= applied || (by_epoch && e.epoch != stored.epoch) {
            continue;
        }
        // Outputs are dropped: the connections they were for died with the old actor.
        let _ = m.handle(e.now, e.input);
        applied = e.n;
        latest = latest.max(e.now);
    }
    Ok((m, applied, latest))
}
