//! The embedded store's writer thread: one redb transaction and one log record per batch of
//! waiting writes, a durable commit at most every `checkpoint_every`.
//!
//! What it does: takes the waiting writes (up to `MAX_BATCH`), applies them in a transaction
//! committed without an fsync, appends them to the log and syncs it, answers each caller, and
//! checkpoints (a durable commit that covers the log, which then starts again). A batch too
//! large for the log is committed durably instead. What it does not do: open or replay the
//! store (`mod.rs`), or know the tables' layout (`tables.rs`).

use super::tables::{self, LOG_SEQ, META, Op, SWEEP_BATCH};
use super::{CommitStats, Job, MAX_BATCH, now_ms};
use crate::ephemeral::wal::Wal;
use redb::{Database, Durability};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The log and the number of its last record.
pub(super) struct Log {
    pub(super) wal: Wal,
    pub(super) seq: u64,
}

/// The writer thread's state: one transaction and one log sync per batch of waiting writes.
pub(super) struct Writer {
    pub(super) db: Arc<Database>,
    pub(super) stats: Arc<CommitStats>,
    pub(super) failed: Arc<OnceLock<String>>,
    pub(super) log: Log,
    pub(super) checkpoint_every: Duration,
    pub(super) last_checkpoint: Instant,
}

impl Writer {
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

    /// Applies a batch, makes it durable (a log record, or a durable commit when the record
    /// does not fit), and says whether a sweep in it was full.
    fn commit(&mut self, batch: &[Job]) -> (Result<(), String>, bool) {
        let now = now_ms();
        let record = tables::encode(batch.iter().map(|j| &j.op));
        let seq = self.log.seq + 1;
        let durable = record.as_ref().is_some_and(|r| !self.log.wal.fits(r.len()));
        let mut full_sweep = false;
        let applied = (|| -> Result<(), redb::Error> {
            let mut w = self.db.begin_write()?;
            if !durable {
                w.set_durability(Durability::None)
                    .map_err(redb::Error::from)?;
            }
            if record.is_some() {
                // Whichever commit a crash leaves, it says which records it holds.
                w.open_table(META)?.insert(LOG_SEQ, seq)?;
            }
            for job in batch {
                if let Op::Sweep = job.op {
                    let n = tables::sweep(&w, now)?;
                    self.stats.swept.fetch_add(n as u64, Ordering::Relaxed);
                    full_sweep |= n >= SWEEP_BATCH;
                } else {
                    tables::apply(&w, &job.op, now)?;
                }
            }
            w.commit()?;
            Ok(())
        })();
        if let Err(e) = applied {
            return (Err(e.to_string()), false);
        }
        let Some(record) = record else {
            // Only sweeps: nothing a crash must keep (expired keys are swept again).
            return (Ok(()), full_sweep);
        };
        if durable {
            self.log.seq = seq;
            self.covered();
            return (Ok(()), full_sweep);
        }
        match self.log.wal.append(seq, now, &record) {
            Ok(()) => {
                self.log.seq = seq;
                (Ok(()), full_sweep)
            }
            Err(e) => (Err(self.fail(format!("writing the log: {e}"))), false),
        }
    }

    /// A durable commit that covers every record in the log; then the log starts again.
    fn checkpoint(&mut self) {
        let seq = self.log.seq;
        let done = (|| -> Result<(), redb::Error> {
            let w = self.db.begin_write()?;
            w.open_table(META)?.insert(LOG_SEQ, seq)?;
            w.commit()?;
            Ok(())
        })();
        match done {
            Ok(()) => self.covered(),
            Err(e) => {
                self.fail(format!("durable commit: {e}"));
            }
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
