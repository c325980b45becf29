//! The embedded store's writer thread: one log record per batch of waiting writes, applied to
//! the tables later in one transaction for many batches, and a durable commit at most every
//! `checkpoint_every`.
//!
//! What it does: takes the waiting writes (up to `MAX_BATCH`), appends them to the log as one
//! record and syncs it, and answers each caller: a write is durable once its record is synced.
//! The records wait in memory, and one transaction applies all of them to the tables when a
//! read needs them (`Op::Settle`), before a sweep, and at each checkpoint (a durable commit
//! that covers the log, which then starts again). A batch too large for the log is committed
//! durably with everything before it instead. A failed apply stops the store taking writes:
//! the records it held stay in the log (no checkpoint resets it after a failure), and the
//! next open replays them. What it does not do:
//! open or replay the store (`mod.rs`), or know the tables' layout (`tables.rs`).
//!
//! Why later: applying a batch is a redb transaction (its B-tree paths copied, its pages
//! checksummed and written to the file), and at 150 batches a second that was most of the
//! thread's work; one transaction for many batches writes each page once.

use super::tables::{self, LOG_SEQ, META, Op, SWEEP_BATCH};
use super::{CommitStats, Job, MAX_BATCH, now_ms};
use crate::ephemeral::wal::Wal;
use redb::{Database, Durability};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The log and the number of its last record.
pub(super) struct Log {
    pub(super) wal: Wal,
    pub(super) seq: u64,
}

/// What a batch's callers are told: writers whether their writes are durable, reads and sweeps
/// whether the tables were brought up to date; and whether a sweep in it was full.
struct Done {
    writes: Result<(), String>,
    tables: Result<(), String>,
    full_sweep: bool,
}

impl Done {
    fn refused(why: &str) -> Done {
        Done {
            writes: Err(why.to_string()),
            tables: Err(why.to_string()),
            full_sweep: false,
        }
    }
}

/// A batch in the log but not yet in the tables: its record's payload and its clock.
struct Logged {
    now: u64,
    payload: Vec<u8>,
}

/// The writer thread's state: one log sync per batch of waiting writes, one transaction per
/// many batches.
pub(super) struct Writer {
    db: Arc<Database>,
    stats: Arc<CommitStats>,
    failed: Arc<OnceLock<String>>,
    log: Log,
    checkpoint_every: Duration,
    last_checkpoint: Instant,
    /// True while an acknowledged write is not in the tables: a read first asks for them.
    unapplied: Arc<AtomicBool>,
    logged: Vec<Logged>,
}

impl Writer {
    pub(super) fn new(
        db: Arc<Database>,
        stats: Arc<CommitStats>,
        failed: Arc<OnceLock<String>>,
        log: Log,
        checkpoint_every: Duration,
        unapplied: Arc<AtomicBool>,
    ) -> Self {
        Writer {
            db,
            stats,
            failed,
            log,
            checkpoint_every,
            last_checkpoint: Instant::now(),
            unapplied,
            logged: Vec::new(),
        }
    }

    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Job>) {
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
                    None => break,
                }
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            let done = match self.failed.get() {
                Some(why) => Done::refused(why),
                None => self.commit(&batch),
            };
            // A read's request to apply (`Settle`) is not a write: it counts in neither.
            let writes = batch.iter().filter(|j| !matches!(j.op, Op::Settle)).count();
            if writes > 0 {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .writes
                    .fetch_add(writes as u64, Ordering::Relaxed);
            }
            for job in batch.drain(..) {
                let result = match job.op {
                    Op::Sweep | Op::Settle => &done.tables,
                    _ => &done.writes,
                };
                if let Some(tx) = job.done {
                    let _ = tx.send(result.clone());
                }
            }
            sweep_again = done.full_sweep;
            if self.checkpoint_due() && self.last_checkpoint.elapsed() >= self.checkpoint_every {
                self.checkpoint();
            }
        }
        // Closing: a durable commit covers the log, so the next open replays nothing.
        if self.checkpoint_due() {
            self.checkpoint();
        }
    }

    /// Whether a checkpoint has something to cover. Never after a failure: the log then keeps
    /// what the tables may lack, for the next start to replay.
    fn checkpoint_due(&self) -> bool {
        self.log.wal.written() > 0 && self.failed.get().is_none()
    }

    /// Makes a batch's writes durable (a log record, or a durable commit when the record does
    /// not fit), then applies what is logged when the batch asks for it (a read or a sweep).
    fn commit(&mut self, batch: &[Job]) -> Done {
        let now = now_ms();
        let mut durable = false;
        if let Some(record) = tables::encode(batch.iter().map(|j| &j.op)) {
            let seq = self.log.seq + 1;
            if self.log.wal.fits(record.len()) {
                if let Err(e) = self.log.wal.append(seq, now, &record) {
                    let why = self.fail(format!("writing the log: {e}"));
                    return Done::refused(&why);
                }
                self.unapplied.store(true, Ordering::Release);
            } else {
                durable = true;
            }
            self.log.seq = seq;
            self.logged.push(Logged {
                now,
                payload: record,
            });
        }
        let sweep = batch.iter().any(|j| matches!(j.op, Op::Sweep));
        let settle = batch.iter().any(|j| matches!(j.op, Op::Settle));
        let mut done = Done {
            writes: Ok(()),
            tables: Ok(()),
            full_sweep: false,
        };
        if durable {
            // The writes are durable only with this commit.
            done.writes = self.apply(true, sweep.then_some(now)).map(|swept| {
                done.full_sweep = swept >= SWEEP_BATCH;
                self.covered();
            });
            done.tables = done.writes.clone();
        } else if sweep || (settle && !self.logged.is_empty()) {
            // The writes are durable in the log whatever becomes of this.
            done.tables = self
                .apply(false, sweep.then_some(now))
                .map(|swept| done.full_sweep = swept >= SWEEP_BATCH);
        }
        done
    }

    /// Applies every logged batch to the tables in one transaction (durable for a checkpoint),
    /// with a sweep as of `sweep_at` after them; returns how many keys the sweep removed. The
    /// batches stay in memory until the commit holds them. A failure stops the store: the
    /// tables may then lack acknowledged writes, which the log keeps for the next start.
    fn apply(&mut self, durable: bool, sweep_at: Option<u64>) -> Result<usize, String> {
        let seq = self.log.seq;
        let done = (|| -> Result<usize, redb::Error> {
            let mut w = self.db.begin_write()?;
            if !durable {
                w.set_durability(Durability::None)
                    .map_err(redb::Error::from)?;
            }
            for l in &self.logged {
                if !tables::apply_logged(&w, &l.payload, l.now)? {
                    return Err(redb::Error::Corrupted(
                        "a logged batch does not decode".to_string(),
                    ));
                }
            }
            // Whichever commit a crash leaves, it says which records it holds.
            w.open_table(META)?.insert(LOG_SEQ, seq)?;
            let swept = match sweep_at {
                Some(now) => tables::sweep(&w, now)?,
                None => 0,
            };
            w.commit()?;
            Ok(swept)
        })();
        match done {
            Ok(swept) => {
                self.logged.clear();
                self.unapplied.store(false, Ordering::Release);
                self.stats.applies.fetch_add(1, Ordering::Relaxed);
                self.stats.swept.fetch_add(swept as u64, Ordering::Relaxed);
                Ok(swept)
            }
            Err(e) => Err(self.fail(format!("applying the log to the tables: {e}"))),
        }
    }

    /// A durable commit that covers every record in the log; then the log starts again.
    fn checkpoint(&mut self) {
        if self.apply(true, None).is_ok() {
            self.covered();
        }
    }

    /// A durable commit now holds every record written: the log starts again.
    fn covered(&mut self) {
        self.stats.durable_commits.fetch_add(1, Ordering::Relaxed);
        self.log.wal.reset();
        self.last_checkpoint = Instant::now();
    }

    /// Stops taking writes, and reads while the tables may lack an acknowledged write: what
    /// was acknowledged is then only sure to be in the log, and no checkpoint resets it.
    fn fail(&self, why: String) -> String {
        tracing::error!(error = %why, "ephemeral store: stops taking writes");
        let _ = self.failed.set(why.clone());
        why
    }
}
