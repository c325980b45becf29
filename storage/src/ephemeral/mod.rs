//! Short-lived keyed data with a time to live: room snapshots and their journals, share links.
//!
//! Two operations shapes: single values (`put`/`get`/`delete`) and append-only lists
//! (`append`/`list`), both expiring. The in-process backend is the default; Redis lets any node
//! of a cluster see the same rooms and survives a restart of ours. Values are opaque bytes.

mod memory;
mod redis;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

use crate::StorageError;
use bytes::Bytes;
use std::time::Duration;

#[derive(Clone)]
pub enum EphemeralStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl EphemeralStore {
    pub fn memory() -> Self {
        EphemeralStore::Memory(MemoryStore::default())
    }

    /// Connects to Redis and checks it answers.
    pub async fn redis(url: &str) -> Result<Self, StorageError> {
        Ok(EphemeralStore::Redis(RedisStore::connect(url).await?))
    }

    /// Which backend, for logs and `/readyz`.
    pub fn backend(&self) -> &'static str {
        match self {
            EphemeralStore::Memory(_) => "memory",
            EphemeralStore::Redis(_) => "redis",
        }
    }

    pub async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StorageError> {
        match self {
            EphemeralStore::Memory(m) => {
                m.put(key, value, ttl);
                Ok(())
            }
            EphemeralStore::Redis(r) => r.put(key, value, ttl).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        match self {
            EphemeralStore::Memory(m) => Ok(m.get(key)),
            EphemeralStore::Redis(r) => r.get(key).await,
        }
    }

    pub async fn delete(&self, keys: &[&str]) -> Result<(), StorageError> {
        match self {
            EphemeralStore::Memory(m) => {
                m.delete(keys);
                Ok(())
            }
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
            EphemeralStore::Redis(r) => r.append(key, value, ttl).await,
        }
    }

    /// The whole list at `key`, oldest first (empty when absent or expired).
    pub async fn list(&self, key: &str) -> Result<Vec<Bytes>, StorageError> {
        match self {
            EphemeralStore::Memory(m) => Ok(m.list(key)),
            EphemeralStore::Redis(r) => r.list(key).await,
        }
    }

    /// Readiness check.
    pub async fn ping(&self) -> Result<(), StorageError> {
        match self {
            EphemeralStore::Memory(_) => Ok(()),
            EphemeralStore::Redis(r) => r.ping().await,
        }
    }
}
