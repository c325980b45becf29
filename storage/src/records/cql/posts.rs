//! [`PostStore`] over CQL: posts, their feed copies and buckets, idempotent creation and
//! compare-and-set edits.
//!
//! Idempotent creation: the LWT that claims a key stores the post's id, `created_at` and
//! `updated_at`. A retry that finds the key claimed polls for the post; if it does not appear
//! (the first request failed, is stalled, or the post was deleted since), the retry writes it
//! under the stored id *and* timestamps. Should the first request still be writing, both
//! write the same rows (feed rows are keyed by `(created_at, id)`), so the post is listed
//! once and one deletion removes it everywhere.
//!
//! Edits are a compare-and-set, and the exception to "base table last": `replace_post` writes
//! the whole `posts` row as one LWT, `UPDATE posts SET <every column> WHERE id = ? IF
//! updated_at = ?` (the `updated_at` the editor read; no row fails the condition too, so an
//! edit never brings a deleted post back), and only then moves the feed copies (one batch).
//! Caveats, accepted: (1) if the feed write fails after the LWT applied, the post is the new
//! version and the feeds list the old one until its next edit or deletion, and a retry of the
//! same edit is a conflict; (2) Cassandra advises against mixing LWT and plain writes on one
//! partition: the LWT's cells carry its Paxos ballot timestamp, the plain `INSERT` of
//! `create_post` and `DELETE` of `delete_post` the coordinator's clock, so with clocks skewed
//! between nodes by more than the time between two such writes, the later one can lose (an
//! edit right after creation overwritten by the creation's cells, or a deletion right after an
//! edit leaving the edit's cells alive); (3) a `delete_post` landing between an edit's LWT
//! and its feed write can leave that edit's feed rows behind (the deletion removes the rows it
//! knew of). Making `delete_post` an LWT as well would close the deletion half of (2) and
//! narrow (3).

use std::ops::ControlFlow;
use std::time::Duration;

use scylla::response::PagingState;
use wagu_proto::records::{Post, PostId};

use super::CqlRecords;
use super::rows::{PostRow, big, decode, limit_of, post_of};
use super::schema::Feed;
use super::writes::{
    FeedRowKey, KEY_BYTES, Writes, feed_keys, feed_row_keys, key_if_cell, post_bytes, scope_key,
};
use crate::records::{
    Created, Idempotency, PostCursor, PostStore, RecordError, Result, Scope, bucket_of,
};

/// How long a replayed creation waits for the first request (same key, still writing) to
/// store its post before writing it itself.
const IDEM_POLLS: u32 = 5;
const IDEM_POLL_INTERVAL: Duration = Duration::from_millis(100);

impl PostStore for CqlRecords {
    async fn create_post(&self, post: &Post, idem: Option<&Idempotency>) -> Result<Created> {
        let Some(idem) = idem else {
            self.write_post(post).await?;
            return Ok(Created::Created(post.clone()));
        };
        // The key records the post's id and timestamps, so a retry that ends up writing the
        // post itself (below) writes the very rows the first request writes.
        let (applied, stored_id, stored_fp, stored_times) = self
            .one(
                &self.st.claim_idem,
                (
                    post.author.as_str(),
                    &idem.key,
                    post.id.as_str(),
                    &idem.fingerprint,
                    big(post.created_at),
                    big(post.updated_at),
                ),
                |c| {
                    let times = match (c.opt::<i64>("created_at")?, c.opt::<i64>("updated_at")?) {
                        (Some(_), Some(_)) => {
                            Some((c.millis("created_at")?, c.millis("updated_at")?))
                        }
                        _ => None,
                    };
                    Ok((
                        c.get::<bool>("[applied]")?,
                        c.opt::<String>("post_id")?,
                        c.opt::<String>("fingerprint")?,
                        times,
                    ))
                },
            )
            .await?
            .ok_or_else(|| RecordError::cql_row("an LWT returned no row"))?;
        if applied {
            self.write_post(post).await?;
            return Ok(Created::Created(post.clone()));
        }
        if stored_fp.as_deref() != Some(idem.fingerprint.as_str()) {
            return Err(RecordError::IdempotencyMismatch);
        }
        let stored = PostId(
            stored_id.ok_or_else(|| RecordError::cql_row("idempotency row without a post id"))?,
        );
        for attempt in 0..=IDEM_POLLS {
            if let Some(p) = self.post(&stored).await? {
                return Ok(Created::Replayed(p));
            }
            if attempt < IDEM_POLLS {
                tokio::time::sleep(IDEM_POLL_INTERVAL).await;
            }
        }
        // The first request has not stored its post: it failed, is merely slow, or the post
        // was deleted since. The fingerprint matched, so this request's content is that
        // post's: write it under the id *and timestamps* the key recorded. Should the first
        // request still be writing, both then write the same rows — the feed rows are keyed
        // by (created_at, id) — so one key yields one post, listed once in every feed.
        let mut mine = post.clone();
        mine.id = stored;
        if let Some((created_at, updated_at)) = stored_times {
            mine.created_at = created_at;
            mine.updated_at = updated_at;
        }
        self.write_post(&mine).await?;
        Ok(Created::Created(mine))
    }

    async fn post(&self, id: &PostId) -> Result<Option<Post>> {
        self.one(&self.st.post, (id.as_str(),), post_of).await
    }

    async fn replace_post(&self, old: &Post, new: &Post) -> Result<()> {
        if old.id != new.id {
            return Err(RecordError::Invalid("a replaced post keeps its id".into()));
        }
        // The posts row is written first, as the compare-and-set itself: all of `new`'s
        // columns, if the stored `updated_at` is still `old`'s. A concurrent edit that won, or
        // a deletion (no row: the condition cannot hold), leaves it not applied.
        let applied = self
            .one(
                &self.st.cas_post,
                PostRow::replacing(new, old.updated_at),
                |c| c.get::<bool>("[applied]"),
            )
            .await?
            .ok_or_else(|| RecordError::cql_row("an LWT returned no row"))?;
        if !applied {
            return Err(RecordError::Conflict("post"));
        }
        // The edit is ours: move the feed copies. The stored post was `old` (same
        // `updated_at`), so `old`'s feed rows are the ones to replace.
        let keep = feed_row_keys(new);
        let gone: Vec<FeedRowKey> = feed_row_keys(old)
            .into_iter()
            .filter(|k| !keep.contains(k))
            .collect();
        let mut w = Writes::default();
        let bytes = post_bytes(new);
        for (feed, key) in feed_keys(new) {
            w.add(
                &self.st.feeds[feed].insert,
                bytes,
                PostRow::new(new, key_if_cell(feed, &key)),
            );
            w.add(
                &self.st.insert_bucket,
                KEY_BYTES,
                (scope_key(feed, &key), bucket_of(new.created_at)),
            );
        }
        for (feed, key, bucket, created_at, id) in gone {
            w.add(
                &self.st.feeds[feed].delete,
                KEY_BYTES,
                (key, bucket, created_at, id),
            );
        }
        w.run(&self.session).await
    }

    async fn delete_post(&self, post: &Post) -> Result<()> {
        let stored = self.post(&post.id).await?;
        let mut keys = feed_row_keys(post);
        if let Some(s) = &stored {
            for k in feed_row_keys(s) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        let mut w = Writes::default();
        for (feed, key, bucket, created_at, id) in keys {
            w.add(
                &self.st.feeds[feed].delete,
                KEY_BYTES,
                (key, bucket, created_at, id),
            );
        }
        w.add(&self.st.delete_post, KEY_BYTES, (post.id.as_str(),));
        w.run(&self.session).await
    }

    async fn posts_in_scope(
        &self,
        scope: &Scope,
        before: Option<&PostCursor>,
        limit: usize,
    ) -> Result<Vec<Post>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let (feed, key): (Feed, &str) = match scope {
            Scope::Author(a) => (0, a.as_str()),
            Scope::Place(p) => (1, p.as_str()),
            Scope::Cell(c) => (2, c.as_str()),
        };
        let st = &self.st.feeds[feed];
        let scope = scope_key(feed, key);
        let top = before.map(|c| bucket_of(c.created_at));
        let mut paging = PagingState::start();
        loop {
            // Buckets newest first, a page at a time: most feed pages need only the first.
            let page = match top {
                Some(t) => {
                    self.session
                        .execute_single_page(&self.st.buckets_upto, (&scope, t), paging)
                        .await
                }
                None => {
                    self.session
                        .execute_single_page(&self.st.buckets_all, (&scope,), paging)
                        .await
                }
            };
            let (res, next) = page.map_err(RecordError::cql)?;
            for bucket in decode(res, |c| c.get::<i32>("bucket"))? {
                let want = limit_of(limit - out.len());
                // Only the cursor's own bucket holds posts newer than the cursor.
                let res = match before {
                    Some(c) if Some(bucket) == top => {
                        self.exec(
                            &st.before,
                            (key, bucket, big(c.created_at), c.id.as_str(), want),
                        )
                        .await?
                    }
                    _ => self.exec(&st.newest, (key, bucket, want)).await?,
                };
                out.extend(decode(res, post_of)?);
                if out.len() >= limit {
                    out.truncate(limit);
                    return Ok(out);
                }
            }
            match next.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(out),
                ControlFlow::Continue(p) => paging = p,
            }
        }
    }
}
