//! The Redis ephemeral store, over a `ConnectionManager` (reconnects by itself; a command sent
//! while it reconnects fails and the caller sees the error).
//!
//! Values are plain strings with `PX` expiry; lists are `RPUSH` + `PEXPIRE` in one pipeline
//! (atomic with MULTI, so a list never exists without its expiry).

use crate::StorageError;
use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
}

fn ttl_ms(ttl: Duration) -> u64 {
    // Redis refuses a zero expiry; one millisecond is the shortest meaningful one.
    (ttl.as_millis() as u64).max(1)
}

impl RedisStore {
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let store = RedisStore { conn };
        store.ping().await?;
        Ok(store)
    }

    /// The shared connection (cheap to clone), for the cluster's scripts on the same Redis.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    pub async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StorageError> {
        let mut c = self.conn.clone();
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value.as_ref())
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let mut c = self.conn.clone();
        let v: Option<Vec<u8>> = c.get(key).await?;
        Ok(v.map(Bytes::from))
    }

    pub async fn delete(&self, keys: &[&str]) -> Result<(), StorageError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let _: () = c.del(keys).await?;
        Ok(())
    }

    pub async fn append(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StorageError> {
        let mut c = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .rpush(key, value.as_ref())
            .ignore()
            .pexpire(key, ttl_ms(ttl) as i64)
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    pub async fn append_many(
        &self,
        key: &str,
        values: Vec<Bytes>,
        ttl: Duration,
    ) -> Result<(), StorageError> {
        let mut c = self.conn.clone();
        let items: Vec<&[u8]> = values.iter().map(|v| v.as_ref()).collect();
        let _: () = redis::pipe()
            .atomic()
            .rpush(key, items)
            .ignore()
            .pexpire(key, ttl_ms(ttl) as i64)
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    pub async fn list(&self, key: &str) -> Result<Vec<Bytes>, StorageError> {
        let mut c = self.conn.clone();
        let v: Vec<Vec<u8>> = c.lrange(key, 0, -1).await?;
        Ok(v.into_iter().map(Bytes::from).collect())
    }
}
