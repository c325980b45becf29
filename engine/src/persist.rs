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

use crate::machine::{Input, Machine};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use wagu_proto::model::UnixMillis;
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
}

#[derive(Clone)]
pub struct SessionStore {
    store: EphemeralStore,
    ttl: Duration,
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
        SessionStore { store, ttl }
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    pub fn inner(&self) -> &EphemeralStore {
        &self.store
    }

    /// Writes the snapshot (which covers journal entries up to `applied`) of the actor of
    /// `epoch`, renews the aliases, then clears the journal.
    pub async fn save<M: Machine>(
        &self,
        m: &M,
        applied: u64,
        epoch: u64,
        now: UnixMillis,
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
        self.append_entries::<M>(id, vec![entry]).await
    }

    /// Appends encoded entries, in order, in one write: when the call returns they are
    /// durable as far as the backend makes anything durable (the embedded file: fsync'd).
    pub async fn append_entries<M: Machine>(
        &self,
        id: &str,
        entries: Vec<Bytes>,
    ) -> Result<(), PersistError> {
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
        let Some(bytes) = self.store.get(&snap_key::<M>(id)).await? else {
            return Ok(None);
        };
        let stored: Stored<M> =
            serde_json::from_slice(&bytes).map_err(|e| PersistError::Corrupt(id.to_string(), e))?;
        let mut m = stored.session;
        let mut applied = stored.applied;
        let mut latest = stored.now;
        for raw in self.store.list(&log_key::<M>(id)).await? {
            let e: Entry = serde_json::from_slice(&raw)
                .map_err(|e| PersistError::Corrupt(id.to_string(), e))?;
            if e.n <= applied || e.epoch != stored.epoch {
                continue;
            }
            // Outputs are dropped: the connections they were for died with the old actor.
            let _ = m.handle(e.now, e.input);
            applied = e.n;
            latest = latest.max(e.now);
        }
        Ok(Some((m, applied, latest)))
    }

    /// Loads a session to run it again on this node: `None` when it is unknown or has ended.
    /// Every participant comes back away, since their sockets died with the old actor.
    ///
    /// This node's clock may run behind the one that wrote the session: `now` is clamped to
    /// the latest time the session was handled at, and that clamped time is returned as the
    /// floor of the revived actor's clock, so the session's time never runs backwards.
    pub async fn load_to_revive<M: Machine>(
        &self,
        id: &str,
        now: UnixMillis,
    ) -> Result<Option<(M, u64, UnixMillis)>, PersistError> {
        let Some((mut m, applied, latest)) = self.load::<M>(id).await? else {
            return Ok(None);
        };
        if m.is_closed() {
            return Ok(None);
        }
        let now = now.max(latest);
        let _ = m.detach_all(now);
        Ok(Some((m, applied, now)))
    }

    pub async fn delete<M: Machine>(&self, m: &M) -> Result<(), PersistError> {
        let id = m.key();
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
