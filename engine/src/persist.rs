//! Where rooms survive their actor: a snapshot plus a journal of the inputs applied since, in
//! the ephemeral store (in-process by default, Redis when configured), all with a TTL.
//!
//! Why a journal: writing the whole room (up to 200 chat messages and the replay buffer) on
//! every vote would cost far more than the vote. Instead the actor appends each input that
//! advanced the room's sequence number — before it acknowledges it — and rewrites the snapshot
//! every few hundred inputs. Entries carry a counter so that a journal left behind by a crash
//! between "write snapshot" and "clear journal" is skipped, never applied twice. Inputs replay
//! deterministically because the room takes its time and randomness from its inputs.
//!
//! Keys: `wagu:room:{id}:snap`, `wagu:room:{id}:log`, `wagu:share:{token}` → room id.

use crate::room::{Input, Room};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use wagu_proto::ids::{RoomId, ShareToken};
use wagu_proto::model::UnixMillis;
use wagu_storage::{EphemeralStore, StorageError};

#[derive(Serialize, Deserialize)]
struct Stored {
    /// How many journal entries this snapshot already contains.
    applied: u64,
    room: Room,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    n: u64,
    now: UnixMillis,
    input: Input,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    #[error(transparent)]
    Store(#[from] StorageError),
    #[error("stored room {0} is corrupt: {1}")]
    Corrupt(RoomId, serde_json::Error),
}

#[derive(Clone)]
pub struct RoomStore {
    store: EphemeralStore,
    ttl: Duration,
}

fn snap_key(id: &RoomId) -> String {
    format!("wagu:room:{id}:snap")
}
fn log_key(id: &RoomId) -> String {
    format!("wagu:room:{id}:log")
}
fn share_key(t: &ShareToken) -> String {
    format!("wagu:share:{}", t.0)
}

impl RoomStore {
    /// `ttl` bounds how long a room nobody touches stays in the store; every snapshot renews it.
    pub fn new(store: EphemeralStore, ttl: Duration) -> Self {
        RoomStore { store, ttl }
    }

    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    pub fn inner(&self) -> &EphemeralStore {
        &self.store
    }

    /// Writes the snapshot (which covers journal entries up to `applied`), renews the share
    /// link, then clears the journal.
    pub async fn save(&self, room: &Room, applied: u64) -> Result<(), PersistError> {
        #[derive(Serialize)]
        struct StoredRef<'a> {
            applied: u64,
            room: &'a Room,
        }
        let bytes = serde_json::to_vec(&StoredRef { applied, room })
            .map_err(|e| PersistError::Corrupt(room.id().clone(), e))?;
        let id = room.id();
        self.store
            .put(&snap_key(id), Bytes::from(bytes), self.ttl)
            .await?;
        self.store
            .put(
                &share_key(&room.spec().share),
                Bytes::from(id.0.clone()),
                self.ttl,
            )
            .await?;
        self.store.delete(&[&log_key(id)]).await?;
        Ok(())
    }

    /// Appends the `n`-th journaled input.
    pub async fn append(
        &self,
        id: &RoomId,
        n: u64,
        now: UnixMillis,
        input: &Input,
    ) -> Result<(), PersistError> {
        #[derive(Serialize)]
        struct EntryRef<'a> {
            n: u64,
            now: UnixMillis,
            input: &'a Input,
        }
        let bytes = serde_json::to_vec(&EntryRef { n, now, input })
            .map_err(|e| PersistError::Corrupt(id.clone(), e))?;
        self.store
            .append(&log_key(id), Bytes::from(bytes), self.ttl)
            .await?;
        Ok(())
    }

    /// Rebuilds a room: the snapshot, then every journal entry it does not contain yet.
    /// Returns the room and the journal counter to continue from.
    pub async fn load(&self, id: &RoomId) -> Result<Option<(Room, u64)>, PersistError> {
        let Some(bytes) = self.store.get(&snap_key(id)).await? else {
            return Ok(None);
        };
        let stored: Stored =
            serde_json::from_slice(&bytes).map_err(|e| PersistError::Corrupt(id.clone(), e))?;
        let mut room = stored.room;
        let mut applied = stored.applied;
        for raw in self.store.list(&log_key(id)).await? {
            let e: Entry =
                serde_json::from_slice(&raw).map_err(|e| PersistError::Corrupt(id.clone(), e))?;
            if e.n <= applied {
                continue;
            }
            // Outputs are dropped: the connections they were for died with the old actor.
            let _ = room.handle(e.now, e.input);
            applied = e.n;
        }
        Ok(Some((room, applied)))
    }

    pub async fn delete(&self, room: &Room) -> Result<(), PersistError> {
        let id = room.id();
        self.store
            .delete(&[&snap_key(id), &log_key(id), &share_key(&room.spec().share)])
            .await?;
        Ok(())
    }

    /// The room a share token opens, if the link is known.
    pub async fn resolve_share(&self, token: &ShareToken) -> Result<Option<RoomId>, PersistError> {
        let v = self.store.get(&share_key(token)).await?;
        Ok(v.and_then(|b| String::from_utf8(b.to_vec()).ok())
            .map(RoomId))
    }
}
