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
//! the records it held are in the log, and the next open replays them. What it does not do:
//! open or replay the store (`mod.rs`), or know the tables' layout (`tables.rs`).
//!
//! Why later: applying a batch is a redb transaction (its B-tree paths copied, its pages
//! checksummed, about five of them written to the file), and at 150 batches a second that was
//! most of the thread's work; one transaction for a second's batches writes each page once.

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

/// A batch in the log but not yet in the tables: its record's payload and its clock.
struct Logged {
    now: u64,
    payload: Vec<u8>,
}

/// The writer thread's state: one log sync per batch of waiting writes, one transaction per
/// many batches.
pub(super) struct Writer {
    pub(super) db: Arc<Database>,
    pub(super) stats: Arc<CommitStats>,
    pub(super) failed: Arc<OnceLock<String>>,
    pub(super) log: Log,
    pub(super) checkpoint_every: Duration,
    pub(super) last_checkpoint: Instant,
    /// True while an acknowledged write is not in the tables: a read first asks for them.
    pub(super) unapplied: Arc<AtomicBool>,
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
            let (result, full_sweep) = match self.failed.get() {
                Some(why) => (Err(why.clone()), false),
                None => self.commit(&batch),
            };
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            self.stats
                .writes
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if let Err(e) = &result {
                tracing::error!(error = %e, writes = batch.len(), "ephemeral store: commit failed");
            }
            for job in batch.drain(..) {
                if let Some(done) = job.done {
                    let _ = done.send(result.clone());
                }
            }
            sweep_again = full_sweep && result.is_ok();
            if self.log.wal.written() > 0 && self.last_checkpoint.elapsed() >= self.checkpoint_every
            {
                self.checkpoint();
            }
        }
        // Closing: a durable commit covers the log, so the next open replays nothing.
        if self.log.wal.written() > 0 {
            self.checkpoint();
        }
    }

    /// Makes a batch durable (a log record, or a durable commit when the record does not
    /// fit), applies what is logged when the batch asks for it (a read or a sweep), and says
    /// whether a sweep in it was full.
    fn commit(&mut self, batch: &[Job]) -> (Result<(), String>, bool) {
        let now = now_ms();
        let mut durable = false;
        if let Some(record) = tables::encode(batch.iter().map(|j| &j.op)) {
            let seq = self.log.seq + 1;
            if self.log.wal.fits(record.len()) {
                if let Err(e) = self.log.wal.append(seq, now, &record) {
                    return (Err(self.fail(format!("writing the log: {e}"))), false);
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
        if !(durable || sweep || settle) {
            return (Ok(()), false);
        }
        match self.apply(durable, sweep.then_some(now)) {
            Ok(swept) => {
                if durable {
                    self.covered();
                }
                (Ok(()), swept >= SWEEP_BATCH)
            }
            Err(e) => (Err(e), false),
        }
    }

    /// Applies every logged batch to the tables in one transaction (durable for a checkpoint),
    /// with a sweep as of `sweep_at` after them; returns how many keys the sweep removed. A
    /// failure stops the store: acknowledged writes are then only in the log.
    fn apply(&mut self, durable: bool, sweep_at: Option<u64>) -> Result<usize, String> {
        let logged = std::mem::take(&mut self.logged);
        let seq = self.log.seq;
        let done = (|| -> Result<usize, String> {
            let mut w = self.db.begin_write().map_err(|e| e.to_string())?;
            if !durable {
                w.set_durability(Durability::None)
                    .map_err(|e| e.to_string())?;
            }
            for l in &logged {
                if !tables::apply_logged(&w, &l.payload, l.now).map_err(|e| e.to_string())? {
                    return Err("a logged batch does not decode".to_string());
                }
            }
            // Whichever commit a crash leaves, it says which records it holds.
            w.open_table(META)
                .map_err(|e| e.to_string())?
                .insert(LOG_SEQ, seq)
                .map_err(|e| e.to_string())?;
            let swept = match sweep_at {
                Some(now) => tables::sweep(&w, now).map_err(|e| e.to_string())?,
                None => 0,
            };
            w.commit().map_err(|e| e.to_string())?;
            Ok(swept)
        })();
        match done {
            Ok(swept) => {
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

    /// Stops taking writes: what was applied may not be on disk.
    fn fail(&self, why: String) -> String {
        tracing::error!(error = %why, "ephemeral store: stops taking writes");
        let _ = self.failed.set(why.clone());
        why
    }
}
