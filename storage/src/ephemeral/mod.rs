//! Short-lived keyed data with a time to live: room snapshots and their journals, share links.
//!
//! Two operations shapes: single values (`put`/`get`/`delete`) and append-only lists
//! (`append`/`list`), both expiring. Three backends keep that one contract (the contract suite,
//! `storage/tests/ephemeral_contract.rs`, runs against each): `embedded` (a redb file under the
//! data directory, the default: survives restarts of a single node), `memory` (in-process, gone
//! with the process: tests) and Redis (any node of a cluster sees the same rooms). Values are
//! opaque bytes.

pub mod embedded;
mod memory;
mod redis;
pub mod wal;

pub use self::embedded::EmbeddedStore;
pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

use crate::StorageError;
use bytes::Bytes;
use std::time::Duration;

#[derive(Clone)]
pub enum EphemeralStore {
    Memory(MemoryStore),
    Embedded(EmbeddedStore),
    Redis(RedisStore),
}

impl EphemeralStore {
    pub fn memory() -> Self {
        EphemeralStore::Memory(MemoryStore::default())
    }

    /// Opens (creating if needed) the redb file under `dir`; expired keys are swept from it
    /// every `sweep_every`.
    pub async fn embedded(
        dir: impl AsRef<std::path::Path>,
        sweep_every: Duration,
    ) -> Result<Self, StorageError> {
        Ok(EphemeralStore::Embedded(
            EmbeddedStore::open(dir, sweep_every).await?,
        ))
    }

    /// [`EphemeralStore::embedded`] with every setting of the embedded store given.
    pub async fn embedded_with(
        dir: impl AsRef<std::path::Path>,
        options: embedded::Options,
    ) -> Result<Self, StorageError> {
        Ok(EphemeralStore::Embedded(
            EmbeddedStore::open_with(dir, options).await?,
        ))
    }

    /// Connects to Redis and checks it answers.
    pub async fn redis(url: &str) -> Result<Self, StorageError> {
        Ok(EphemeralStore::Redis(RedisStore::connect(url).await?))
    }

    /// Which backend, for logs and `/readyz`.
    pub fn backend(&self) -> &'static str {
        match self {
            EphemeralStore::Memory(_) => "memory",
            EphemeralStore::Embedded(_) => "embedded",
            EphemeralStore::Redis(_) => "redis",
        }
    }

    pub async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StorageError> {
        match self {
            EphemeralStore::Memory(m) => {
                m.put(key, value, ttl);
                Ok(())
            }
            EphemeralStore::Embedded(e) => e.put(key, value, ttl).await,
            EphemeralStore::Redis(r) => r.put(key, value, ttl).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        match self {
            EphemeralStore::Memory(m) => Ok(m.get(key)),
            EphemeralStore::Embedded(e) => e.get(key).await,
            EphemeralStore::Redis(r) => r.get(key).await,
        }
    }

    pub async fn delete(&self, keys: &[&str]) -> Result<(), StorageError> {
        match self {
            EphemeralStore::Memory(m) => {
                m.delete(keys);
                Ok(())
            }
            EphemeralStore::Embedded(e) => e.delete(keys).await,
            EphemeralStore::Redis(r) => r.delete(keys).await,
        }
    }

    /// Appends to the list at `key` and (re)sets the list's time to live.
    pub async fn append(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StorageError> {
        match self {
            EphemeralStore::Memory(m) => {
                m.append(key, value, ttl);
                Ok(())
            }
            EphemeralStore::Embedded(e) => e.append(key, value, ttl).await,
            EphemeralStore::Redis(r) => r.append(key, value, ttl).await,
        }
    }

    /// Appends several values at once, in order, and (re)sets the list's time to live: one
    /// write for the lot (one commit for the embedded file, one MULTI for Redis). A journal
    /// that fell behind catches up with one of these.
    pub async fn append_many(
        &self,
        key: &str,
        values: Vec<Bytes>,
        ttl: Duration,
    ) -> Result<(), StorageError> {
        if values.is_empty() {
            return Ok(());
        }
        match self {
            EphemeralStore::Memory(m) => {
                for v in values {
                    m.append(key, v, ttl);
                }
                Ok(())
            }
            EphemeralStore::Embedded(e) => e.append_many(key, values, ttl).await,
            EphemeralStore::Redis(r) => r.append_many(key, values, ttl).await,
        }
    }

    /// The whole list at `key`, oldest first (empty when absent or expired).
    pub async fn list(&self, key: &str) -> Result<Vec<Bytes>, StorageError> {
        match self {
            EphemeralStore::Memory(m) => Ok(m.list(key)),
            EphemeralStore::Embedded(e) => e.list(key).await,
            EphemeralStore::Redis(r) => r.list(key).await,
        }
    }

    /// Readiness check.
    pub async fn ping(&self) -> Result<(), StorageError> {
        match self {
            EphemeralStore::Memory(_) => Ok(()),
            EphemeralStore::Embedded(e) => e.ping().await,
            EphemeralStore::Redis(r) => r.ping().await,
        }
    }
}
