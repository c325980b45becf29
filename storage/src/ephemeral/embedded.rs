//! The embedded ephemeral store: one redb file, `<dir>/ephemeral.redb`, the default backend.
//! Rooms, streams and share links outlive the process — a graceful stop, a deploy or `kill -9`
//! — with nothing else installed.
//!
//! The contract is the Redis backend's: single values (`put`/`get`/`delete`) and append-only
//! lists (`append`/`list`), each with a time to live measured on the wall clock (so it keeps
//! counting while the server is down). Expired keys are invisible at once and removed from the
//! file by a background sweep.
//!
//! | table | key | value |
//! |---|---|---|
//! | `values` | key | (expires at, unix ms; bytes) |
//! | `lists` | key | (expires at; length) |
//! | `items` | (key, index) | bytes |
//! | `expiry` | (expires at, key) | — the sweep's index, one row per live key |
//!
//! **Durability: group commit.** Every write goes to one writer thread, which takes whatever
//! writes are waiting (up to [`MAX_BATCH`]), applies them in one write transaction and commits
//! it with redb's default durability (fsync before `commit` returns), then answers every caller
//! of the batch. A write's future resolves only after the fsync that covers it, so the engine's
//! journal-before-ack rule keeps its meaning; concurrent writers (many rooms, many connections)
//! share one fsync instead of queueing for one each. A failed commit fails the whole batch.
//!
//! **Bounded disk.** What is stored is bounded by the engine's limits (rooms, streams, each
//! journal cleared by its next snapshot); expired keys are swept every `sweep_every`, at most
//! [`SWEEP_BATCH`] a transaction (a full sweep asks for another at once). redb reuses freed
//! pages, so the file stays at the high-water mark of live data; opening it compacts it.
//!
//! What it does not do: share a file between processes (redb locks it: a second server on the
//! same data directory fails at start-up), or serve several nodes (that is Redis's job).

use crate::StorageError;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// The file, under the directory given to [`EmbeddedStore::open`].
pub const FILE_NAME: &str = "ephemeral.redb";

const VALUES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("values");
const LISTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("lists");
const ITEMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("items");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");

/// Most writes one commit covers: enough that a burst shares an fsync, few enough that one
/// transaction stays short.
pub const MAX_BATCH: usize = 1024;
/// Most expired keys one sweep transaction removes.
pub const SWEEP_BATCH: usize = 1024;
/// Writes waiting for the writer before callers wait for room (back-pressure).
const QUEUE: usize = 8192;
/// How long opening waits for a previous owner of the file to let go.
const LOCK_WAIT: Duration = Duration::from_secs(3);
/// redb's page cache: the store is small (snapshots, journals, links), so a modest cap.
const CACHE_BYTES: usize = 32 << 20;

/// Commits and writes so far: `writes / commits` is the mean group-commit batch.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    pub swept: AtomicU64,
}

/// The redb backend. Cloning shares the file and its writer (one pointer: every connection's
/// task holds a copy of the app state, which holds this).
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    tx: mpsc::Sender<Job>,
    stats: Arc<CommitStats>,
}

enum Op {
    Put {
        key: String,
        value: Bytes,
        expires: u64,
    },
    Delete(Vec<String>),
    Append {
        key: String,
        values: Vec<Bytes>,
        expires: u64,
    },
    Sweep,
}

struct Job {
    op: Op,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn expires(ttl: Duration) -> u64 {
    // Like Redis, the shortest meaningful expiry is one millisecond.
    now_ms().saturating_add((ttl.as_millis() as u64).max(1))
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Embedded(format!("ephemeral store: {e}"))
}

impl EmbeddedStore {
    /// Opens (creating if needed) `dir/ephemeral.redb`, compacts it, and starts its writer and
    /// its sweep (every `sweep_every`). Both stop when the last clone is dropped.
    pub async fn open(dir: impl AsRef<Path>, sweep_every: Duration) -> Result<Self, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let db = tokio::task::spawn_blocking(move || open_blocking(&dir))
            .await
            .map_err(err)??;
        let db = Arc::new(db);
        let stats = Arc::new(CommitStats::default());
        let (tx, rx) = mpsc::channel(QUEUE);
        {
            let (db, stats) = (db.clone(), stats.clone());
            std::thread::Builder::new()
                .name("wagu-ephemeral-writer".into())
                .spawn(move || writer(db, rx, stats))
                .map_err(err)?;
        }
        // The sweeper holds only a weak sender, so it never keeps the writer alive.
        let weak = tx.downgrade();
        std::thread::Builder::new()
            .name("wagu-ephemeral-sweep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(sweep_every);
                    let Some(tx) = weak.upgrade() else { return };
                    if tx
                        .blocking_send(Job {
                            op: Op::Sweep,
                            done: None,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            })
            .map_err(err)?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner { db, tx, stats }),
        })
    }

    /// Commit counters, for the performance notes and tests.
    pub fn stats(&self) -> &CommitStats {
        &self.inner.stats
    }

    async fn write(&self, op: Op) -> Result<(), StorageError> {
        let (done, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Job {
                op,
                done: Some(done),
            })
            .await
            .map_err(|_| err("the writer has stopped"))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(err(e)),
            Err(_) => Err(err("the writer has stopped")),
        }
    }

    pub async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StorageError> {
        self.write(Op::Put {
            key: key.to_string(),
            value,
            expires: expires(ttl),
        })
        .await
    }

    pub async fn delete(&self, keys: &[&str]) -> Result<(), StorageError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(Op::Delete(keys.iter().map(|k| k.to_string()).collect()))
            .await
    }

    pub async fn append(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StorageError> {
        self.append_many(key, vec![value], ttl).await
    }

    /// Appends the values in order, in one write.
    pub async fn append_many(
        &self,
        key: &str,
        values: Vec<Bytes>,
        ttl: Duration,
    ) -> Result<(), StorageError> {
        self.write(Op::Append {
            key: key.to_string(),
            values,
            expires: expires(ttl),
        })
        .await
    }

    /// Asks for a sweep now and waits for it (tests; the background sweep does this itself).
    pub async fn sweep(&self) -> Result<(), StorageError> {
        self.write(Op::Sweep).await
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let (db, key) = (self.inner.db.clone(), key.to_string());
        tokio::task::spawn_blocking(move || -> Result<Option<Bytes>, StorageError> {
            let r = db.begin_read().map_err(err)?;
            let t = r.open_table(VALUES).map_err(err)?;
            let now = now_ms();
            Ok(t.get(key.as_str()).map_err(err)?.and_then(|v| {
                let (exp, bytes) = v.value();
                (exp > now).then(|| Bytes::copy_from_slice(bytes))
            }))
        })
        .await
        .map_err(err)?
    }

    pub async fn list(&self, key: &str) -> Result<Vec<Bytes>, StorageError> {
        let (db, key) = (self.inner.db.clone(), key.to_string());
        tokio::task::spawn_blocking(move || -> Result<Vec<Bytes>, StorageError> {
            let r = db.begin_read().map_err(err)?;
            let lists = r.open_table(LISTS).map_err(err)?;
            let Some((exp, len)) = lists.get(key.as_str()).map_err(err)?.map(|v| v.value()) else {
                return Ok(Vec::new());
            };
            if exp <= now_ms() {
                return Ok(Vec::new());
            }
            let items = r.open_table(ITEMS).map_err(err)?;
            let mut out = Vec::with_capacity(len as usize);
            for row in items
                .range((key.as_str(), 0)..(key.as_str(), len))
                .map_err(err)?
            {
                let (_, v) = row.map_err(err)?;
                out.push(Bytes::copy_from_slice(v.value()));
            }
            Ok(out)
        })
        .await
        .map_err(err)?
    }

    /// Readiness: the file answers a read.
    pub async fn ping(&self) -> Result<(), StorageError> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            db.begin_read()
                .map_err(err)?
                .open_table(VALUES)
                .map_err(err)?;
            Ok(())
        })
        .await
        .map_err(err)?
    }

    /// Size of the file on disk, bytes.
    pub fn file_bytes(dir: impl AsRef<Path>) -> std::io::Result<u64> {
        Ok(std::fs::metadata(dir.as_ref().join(FILE_NAME))?.len())
    }
}

fn open_blocking(dir: &Path) -> Result<Database, StorageError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(FILE_NAME);
    // The previous owner may still be letting go (a server restarting in the same process
    // drops its writer thread a moment after its last handle): wait a little for the lock.
    let started = std::time::Instant::now();
    let mut db = loop {
        match Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
        {
            Ok(db) => break db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StorageError::Embedded(format!(
                    "{} is in use by another server: one server per data directory",
                    path.display()
                )));
            }
            Err(e) => return Err(StorageError::Embedded(format!("{}: {e}", path.display()))),
        }
    };
    let w = db.begin_write().map_err(err)?;
    w.open_table(VALUES).map_err(err)?;
    w.open_table(LISTS).map_err(err)?;
    w.open_table(ITEMS).map_err(err)?;
    w.open_table(EXPIRY).map_err(err)?;
    w.commit().map_err(err)?;
    // Drop what expired while the server was down, then give the freed pages back.
    let now = now_ms();
    while sweep_once(&db, now)? >= SWEEP_BATCH {}
    db.compact().map_err(err)?;
    Ok(db)
}

/// Removes up to [`SWEEP_BATCH`] expired keys in one commit; returns how many.
fn sweep_once(db: &Database, now: u64) -> Result<usize, StorageError> {
    let w = db.begin_write().map_err(err)?;
    let n = sweep(&w, now).map_err(err)?;
    w.commit().map_err(err)?;
    Ok(n)
}

/// The writer thread: one transaction and one fsync per batch of waiting writes.
fn writer(db: Arc<Database>, mut rx: mpsc::Receiver<Job>, stats: Arc<CommitStats>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut sweep_again = false;
    loop {
        if sweep_again {
            // The last sweep was full: more expired keys wait; go on after the queued writes.
            batch.push(Job {
                op: Op::Sweep,
                done: None,
            });
        } else {
            match rx.blocking_recv() {
                Some(j) => batch.push(j),
                None => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let now = now_ms();
        let mut full_sweep = false;
        let result = (|| -> Result<(), redb::Error> {
            let w = db.begin_write()?;
            for job in &batch {
                match &job.op {
                    Op::Put {
                        key,
                        value,
                        expires,
                    } => put(&w, key, value, *expires)?,
                    Op::Delete(keys) => {
                        for k in keys {
                            remove(&w, k)?;
                        }
                    }
                    Op::Append {
                        key,
                        values,
                        expires,
                    } => append(&w, key, values, *expires, now)?,
                    Op::Sweep => {
                        let n = sweep(&w, now)?;
                        stats.swept.fetch_add(n as u64, Ordering::Relaxed);
                        full_sweep |= n >= SWEEP_BATCH;
                    }
                }
            }
            w.commit()?;
            Ok(())
        })();
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Err(e) = &result {
            tracing::error!(error = %e, writes = batch.len(), "ephemeral store: commit failed");
        }
        let result = result.map_err(|e| e.to_string());
        for job in batch.drain(..) {
            if let Some(done) = job.done {
                let _ = done.send(result.clone());
            }
        }
        sweep_again = full_sweep && result.is_ok();
    }
}

fn put(w: &WriteTransaction, key: &str, value: &[u8], exp: u64) -> Result<(), redb::Error> {
    remove(w, key)?;
    w.open_table(VALUES)?.insert(key, (exp, value))?;
    w.open_table(EXPIRY)?.insert((exp, key), ())?;
    Ok(())
}

fn append(
    w: &WriteTransaction,
    key: &str,
    values: &[Bytes],
    exp: u64,
    now: u64,
) -> Result<(), redb::Error> {
    // A single value under the key is replaced by the list, as the memory backend does.
    let had_value = w.open_table(VALUES)?.get(key)?.is_some();
    if had_value {
        remove(w, key)?;
    }
    let meta = w.open_table(LISTS)?.get(key)?.map(|v| v.value());
    let len = match meta {
        Some((old, len)) if old > now => {
            w.open_table(EXPIRY)?.remove((old, key))?;
            len
        }
        Some(_) => {
            // Expired but not swept yet: it is gone, start a new list.
            remove(w, key)?;
            0
        }
        None => 0,
    };
    {
        let mut items = w.open_table(ITEMS)?;
        for (i, v) in values.iter().enumerate() {
            items.insert((key, len + i as u64), v.as_ref())?;
        }
    }
    w.open_table(LISTS)?
        .insert(key, (exp, len + values.len() as u64))?;
    w.open_table(EXPIRY)?.insert((exp, key), ())?;
    Ok(())
}

/// Removes whatever is stored under `key`, value or list, and its expiry row.
fn remove(w: &WriteTransaction, key: &str) -> Result<(), redb::Error> {
    let mut expiry = w.open_table(EXPIRY)?;
    if let Some(exp) = w.open_table(VALUES)?.remove(key)?.map(|v| v.value().0) {
        expiry.remove((exp, key))?;
    }
    let meta = w.open_table(LISTS)?.remove(key)?.map(|v| v.value());
    if let Some((exp, len)) = meta {
        expiry.remove((exp, key))?;
        let mut items = w.open_table(ITEMS)?;
        for i in 0..len {
            items.remove((key, i))?;
        }
    }
    Ok(())
}

/// Removes up to [`SWEEP_BATCH`] keys whose expiry has passed; returns how many.
fn sweep(w: &WriteTransaction, now: u64) -> Result<usize, redb::Error> {
    let due: Vec<String> = {
        let expiry = w.open_table(EXPIRY)?;
        let mut keys = Vec::new();
        for row in expiry.range(..(now + 1, ""))?.take(SWEEP_BATCH) {
            let (k, _) = row?;
            keys.push(k.value().1.to_string());
        }
        keys
    };
    for k in &due {
        remove(w, k)?;
    }
    Ok(due.len())
}
