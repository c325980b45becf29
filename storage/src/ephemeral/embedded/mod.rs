//! The embedded ephemeral store: one redb file, `<dir>/ephemeral.redb`, and its write-ahead
//! log, `<dir>/ephemeral.wal`; the default backend.
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
//! | `meta` | `"log_seq"` | the last log record the data holds (written in the same commit) |
//!
//! **Durability: group commit and a write-ahead log.** Every write goes to one writer thread,
//! which takes whatever writes are waiting (up to [`MAX_BATCH`]), appends them as one record to
//! the log ([`super::wal`], `ephemeral.wal`) and syncs that, then answers every caller of the
//! batch. A write's future resolves only after the sync that covers it, so the engine's
//! journal-before-ack rule keeps its meaning; concurrent writers (many rooms, many connections)
//! share one sync. The tables get the logged batches later, many in one redb transaction
//! committed without an fsync: when a read comes (a read waits for them, so it always sees
//! every acknowledged write), before a sweep, and at each checkpoint. At most every
//! `checkpoint_every` ([`CHECKPOINT_EVERY`] by default), when the log is full, and when the
//! store closes, a durable redb commit covers the batches so far and the log starts again.
//! Opening the store replays the records the file does not hold (the `meta` row says which it
//! holds), each with the clock it was written at, so a crash (`kill -9`, a power cut) loses no
//! acknowledged write. Why a log: a durable redb commit is about 14 separate page writes, and
//! on a virtual disk each is a request to the host; a log record is one. Why the tables later:
//! a transaction per batch was most of the writer's CPU (both measured in
//! `docs/PERFORMANCE.md`). A failed log write or apply stops the store taking writes (like
//! redb after an I/O error), since what it acknowledged is then only sure to be in the log,
//! and `/readyz` says so.
//!
//! **Bounded disk.** What is stored is bounded by the engine's limits (rooms, streams, each
//! journal cleared by its next snapshot); expired keys are swept every `sweep_every`, at most
//! [`SWEEP_BATCH`] a transaction (a full sweep asks for another at once). redb reuses freed
//! pages, so the file stays at the high-water mark of live data; opening it compacts it.
//!
//! Files: this one opens the store, replays the log and serves reads; `writer.rs` is the writer
//! thread; `tables.rs` applies each write to the tables and encodes it for the log.
//!
//! What it does not do: share a file between processes (redb locks it: a second server on the
//! same data directory fails at start-up), or serve several nodes (that is Redis's job).

mod tables;
mod writer;

pub use self::tables::SWEEP_BATCH;
use self::tables::{EXPIRY, ITEMS, LISTS, LOG_SEQ, META, Op, VALUES};
use self::writer::{Log, Writer};
use super::wal::{self, Wal};
use crate::StorageError;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// The file, under the directory given to [`EmbeddedStore::open`].
pub const FILE_NAME: &str = "ephemeral.redb";

/// Most writes one commit covers: enough that a burst shares an fsync, few enough that one
/// transaction stays short.
pub const MAX_BATCH: usize = 1024;
/// Writes waiting for the writer before callers wait for room (back-pressure).
const QUEUE: usize = 8192;
/// How long opening waits for a previous owner of the file to let go.
const LOCK_WAIT: Duration = Duration::from_secs(3);
/// redb's page cache: the store is small (snapshots, journals, links), so a modest cap.
const CACHE_BYTES: usize = 32 << 20;
/// How often a durable redb commit covers the log, at most (only when something was logged):
/// what a crash leaves to replay, and how long freed pages wait to be reused.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The log's size cap: a batch that does not fit is committed durably instead.
pub const LOG_CAP_BYTES: u64 = 8 << 20;

/// Commits and writes so far: `writes / commits` is the mean group-commit batch.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    pub swept: AtomicU64,
    /// Durable redb commits (checkpoints and batches too large for the log).
    pub durable_commits: AtomicU64,
    /// Transactions that applied logged batches to the tables (durable ones included).
    pub applies: AtomicU64,
    /// Log records replayed when the store was opened.
    pub replayed: AtomicU64,
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
    /// Set when a log write or an apply to the tables failed: the store takes no more writes,
    /// answers no reads that would need the tables brought up to date, and is not ready.
    failed: Arc<OnceLock<String>>,
    /// An acknowledged write is in the log but not yet in the tables (the writer's flag).
    unapplied: Arc<AtomicBool>,
}

/// How the store makes writes durable; [`Options::default`] is what the server uses.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub sweep_every: Duration,
    pub checkpoint_every: Duration,
    pub log_cap_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sweep_every: Duration::from_secs(60),
            checkpoint_every: CHECKPOINT_EVERY,
            log_cap_bytes: LOG_CAP_BYTES,
        }
    }
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
        Self::open_with(
            dir,
            Options {
                sweep_every,
                ..Options::default()
            },
        )
        .await
    }

    /// [`EmbeddedStore::open`] with every setting given (tests stretch the checkpoint interval
    /// to leave writes only in the log).
    pub async fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Self, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        let stats = Arc::new(CommitStats::default());
        let (db, log) = {
            let stats = stats.clone();
            tokio::task::spawn_blocking(move || open_blocking(&dir, &options, &stats))
                .await
                .map_err(err)??
        };
        let db = Arc::new(db);
        let failed = Arc::new(OnceLock::new());
        let sweep_every = options.sweep_every;
        let (tx, rx) = mpsc::channel(QUEUE);
        let unapplied = Arc::new(AtomicBool::new(false));
        {
            let writer = Writer::new(
                db.clone(),
                stats.clone(),
                failed.clone(),
                log,
                options.checkpoint_every,
                unapplied.clone(),
            );
            std::thread::Builder::new()
                .name("wagu-ephemeral-writer".into())
                .spawn(move || writer.run(rx))
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
            inner: Arc::new(Inner {
                db,
                tx,
                stats,
                failed,
                unapplied,
            }),
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

    /// Waits until every acknowledged write is in the tables, so a read that follows a write
    /// sees it (the writer applies logged batches lazily: see `writer.rs`).
    async fn settled(&self) -> Result<(), StorageError> {
        if self.inner.unapplied.load(Ordering::Acquire) {
            self.write(Op::Settle).await?;
        }
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        self.settled().await?;
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
        self.settled().await?;
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

    /// Readiness: the writer takes writes and the file answers a read.
    pub async fn ping(&self) -> Result<(), StorageError> {
        if let Some(why) = self.inner.failed.get() {
            return Err(err(why));
        }
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

/// Opens the file, replays the log records it does not hold (a crash), commits them durably,
/// then sweeps and compacts.
fn open_blocking(
    dir: &Path,
    options: &Options,
    stats: &CommitStats,
) -> Result<(Database, Log), StorageError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(FILE_NAME);
    // The previous owner may still be letting go (a server restarting in the same process
    // drops its writer thread a moment after its last handle): wait a little for the lock.
    let started = Instant::now();
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
    let covered = w
        .open_table(META)
        .map_err(err)?
        .get(LOG_SEQ)
        .map_err(err)?
        .map(|v| v.value())
        .unwrap_or(0);
    // The log is read under the database's lock: no other server writes it.
    let log_path = dir.join(wal::FILE_NAME);
    let (mut wal, records) = Wal::open(dir, covered, options.log_cap_bytes)
        .map_err(|e| StorageError::Embedded(format!("{}: {e}", log_path.display())))?;
    for record in &records {
        if !tables::apply_logged(&w, &record.payload, record.now).map_err(err)? {
            return Err(StorageError::Embedded(format!(
                "{}: record {} is corrupt",
                log_path.display(),
                record.seq
            )));
        }
    }
    let seq = records.last().map_or(covered, |r| r.seq);
    w.open_table(META)
        .map_err(err)?
        .insert(LOG_SEQ, seq)
        .map_err(err)?;
    w.commit().map_err(err)?;
    wal.reset();
    stats
        .replayed
        .store(records.len() as u64, Ordering::Relaxed);
    if !records.is_empty() {
        // A warning: the server was stopped without closing the store (a crash, `kill -9`).
        tracing::warn!(
            records = records.len(),
            "ephemeral store: replayed the log after an unclean stop"
        );
    }
    // Drop what expired while the server was down, then give the freed pages back.
    let now = now_ms();
    while sweep_once(&db, now)? >= SWEEP_BATCH {}
    db.compact().map_err(err)?;
    Ok((db, Log { wal, seq }))
}

/// Removes up to [`SWEEP_BATCH`] expired keys in one commit; returns how many.
fn sweep_once(db: &Database, now: u64) -> Result<usize, StorageError> {
    let w = db.begin_write().map_err(err)?;
    let n = tables::sweep(&w, now).map_err(err)?;
    w.commit().map_err(err)?;
    Ok(n)
}
