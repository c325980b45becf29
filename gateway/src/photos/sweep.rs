//! The orphan sweep: deletes photos no post uses once `photos.orphan_grace_secs` have passed
//! since their upload or their last removal from a post.
//!
//! It reads the records store's sweep queue (an entry per upload and per detachment), so each
//! run costs what happened one grace period ago, not a scan of every photo. For each due photo:
//! - an attachment older than the grace period is checked against its post: a post that is
//!   gone or no longer lists the photo (its detach failed) is detached now, which queues the
//!   photo again — deleted one grace period later, never at once;
//! - a photo still used by a post is left alone (its next detachment queues it again);
//! - an unused photo whose grace period is over is deleted: its record, then its blobs unless
//!   another upload shares the same content.
//!
//! What it does not do: find a photo whose detachment failed after its last queue entry was
//! looked at (it stays until the post it names is gone and someone detaches it); run on more
//! than one node at a time safely beyond "deleting twice is harmless" (every step is
//! idempotent).

use std::time::Duration;

use wagu_storage::records::PostStore;
use wagu_storage::records::now_millis;
use wagu_storage::records::photos::{PhotoStore, SweepEntry};

use super::{PhotoError, Photos};

/// Entries looked at per store read.
const BATCH: usize = 200;

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Queue entries looked at.
    pub looked: usize,
    /// Photos deleted.
    pub deleted: usize,
}

impl Photos {
    /// One sweep over every entry due at `now`.
    pub async fn sweep(&self, now: u64) -> Result<SweepReport, PhotoError> {
        let grace = self.config().orphan_grace_secs * 1000;
        let due_before = now.saturating_sub(grace);
        let records = self.records();
        let mut report = SweepReport::default();
        loop {
            let entries = records
                .sweep_due(due_before.saturating_add(1), BATCH)
                .await?;
            if entries.is_empty() {
                return Ok(report);
            }
            for e in entries {
                report.looked += 1;
                if self.sweep_one(&e, now, due_before).await? {
                    report.deleted += 1;
                }
                records.unqueue(&e).await?;
            }
        }
    }

    async fn sweep_one(
        &self,
        e: &SweepEntry,
        now: u64,
        due_before: u64,
    ) -> Result<bool, PhotoError> {
        let records = self.records();
        let Some(mut photo) = records.photo(&e.id).await? else {
            return Ok(false);
        };
        for (post_id, attached_at) in photo.posts.clone() {
            if attached_at > due_before {
                continue; // a post being written right now may not be readable yet
            }
            let uses = records
                .post(&post_id)
                .await?
                .is_some_and(|p| p.draft.photos.contains(&photo.id));
            if !uses {
                records.detach_photo(&photo.id, &post_id, now).await?;
                photo.posts.remove(&post_id);
                photo.detached_at = Some(now);
            }
        }
        match photo.unused_since() {
            Some(since) if since <= due_before => {}
            _ => return Ok(false),
        }
        let shared = records.delete_photo(&photo).await?;
        if !shared {
            for v in &photo.variants {
                self.blobs().delete(&v.key).await?;
            }
        }
        metrics::counter!("wagu_photos_swept_total").increment(1);
        tracing::info!(photo = %photo.id, shared, "deleted a photo no post uses");
        Ok(true)
    }

    /// Runs [`Photos::sweep`] every `photos.sweep_every_secs` until `shutdown` turns `true`
    /// (the task then lets go of the stores, so a restart in the same process can open them).
    pub fn spawn_sweeper(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let every = self.config().sweep_every_secs;
        if every == 0 {
            return;
        }
        // Between runs the task holds no strong reference: dropping the app closes the stores.
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(every));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate: start one period from now
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            return;
                        }
                        continue;
                    }
                }
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let photos = Photos { inner };
                match photos.sweep(now_millis()).await {
                    Ok(r) if r.deleted > 0 => tracing::info!(?r, "photo sweep"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "photo sweep failed; retrying next time"),
                }
            }
        });
    }
}
