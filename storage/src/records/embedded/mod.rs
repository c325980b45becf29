//! Records in one `redb` file, `<data_dir>/records.redb`: the default backend, needing nothing
//! installed.
//!
//! Why redb, and the tables (every CQL table of the other backend is a redb table here, keyed
//! the same way, so a primitive is the same range scan in both and the contract suite cannot
//! tell them apart): `docs/RECORDS.md` ("Why redb", "Embedded tables (redb)"). The files here:
//!
//! | file | concern |
//! |---|---|
//! | `schema.rs` | the table definitions, the schema version, opening (and creating) the file |
//! | `rows.rs` | values as stored: JSON, exact coordinates, key ranges |
//! | `accounts.rs`, `places.rs`, `posts.rs` | the three traits' primitives, and pruning |
//!
//! Every write is one write transaction, so index entries never disagree with the rows they
//! point at, and it is on disk (redb's default durability: fsync'd) when the call returns.
//! redb runs one write transaction at a time (reads run alongside, on snapshots); that
//! serialisation is what makes spending a refresh token, an idempotency key or an edit's
//! compare-and-set (`replace_post` applies only over the `updated_at` the caller read) atomic.
//! Because writes queue, a call that may find it has nothing to write decides that first on a
//! read snapshot: `use_refresh` of an unknown, expired, revoked or already spent token never
//! opens a write transaction, so a flood of made-up tokens costs reads, not fsyncs; a token
//! that looks live is checked again inside the write transaction before it is spent.
//! Expiring rows (tokens, revocations, idempotency keys) have no TTL as in CQL: they are
//! pruned a small batch at a time by writes that happen anyway (spending a live token,
//! creating a post).
//!
//! What it does not do: multi-process access. redb locks the file, so one server owns a data
//! directory; a second one on the same directory fails at start-up instead of corrupting it.

mod accounts;
mod places;
mod posts;
mod rows;
mod schema;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

use super::{RecordError, Result};
use schema::{META, SCHEMA_KEY, open_blocking};

/// Most expired rows one write removes from a table: enough to outpace how fast they are
/// created, small enough that no request pays for a backlog.
const PRUNE_BATCH: usize = 32;
/// Refresh tokens and revocations are pruned only this long after they stopped mattering,
/// so a clock stepped back a little does not find them gone early.
const PRUNE_GRACE_MS: u64 = 3600 * 1000;

/// The redb backend. Cloning shares the database.
#[derive(Clone)]
pub struct EmbeddedRecords {
    pub(in crate::records) db: Arc<Database>,
}

impl EmbeddedRecords {
    /// Opens (creating if needed) `dir/records.redb` and its tables.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self, RecordError> {
        let dir = dir.as_ref().to_path_buf();
        let db = blocking(move || open_blocking(&dir)).await?;
        Ok(EmbeddedRecords { db: Arc::new(db) })
    }

    /// Reads the schema version: the file is open and readable.
    pub async fn ping(&self) -> Result<(), RecordError> {
        self.read(|r| {
            r.open_table(META)
                .redb()?
                .get(SCHEMA_KEY)
                .redb()?
                .map(|_| ())
                .ok_or_else(|| RecordError::embedded("the schema version is missing"))
        })
        .await
    }

    /// Runs `f` on a read transaction (a snapshot), on the blocking pool: redb is synchronous.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        blocking(move || f(&db.begin_read().redb()?)).await
    }

    /// Runs `f` in a write transaction, committed when `f` returns `Ok` and aborted (dropped)
    /// when it returns `Err`. A caller that stops waiting does not cancel it: the blocking
    /// task runs to its commit, so an operation happens wholly or not at all.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        blocking(move || {
            let w = db.begin_write().redb()?;
            let out = f(&w)?;
            w.commit().redb()?;
            Ok(out)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.redb()?
}

/// redb's many error types (and a panicked blocking task) as the records error.
trait OrEmbedded<T> {
    fn redb(self) -> Result<T>;
}

impl<T, E: std::fmt::Display> OrEmbedded<T> for std::result::Result<T, E> {
    fn redb(self) -> Result<T> {
        self.map_err(RecordError::embedded)
    }
}
