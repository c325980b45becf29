//! [`PostStore`] in redb: posts, their feed entries, idempotent creation (and pruning its
//! expired keys) and compare-and-set edits.

use std::ops::Bound;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use wagu_proto::model::UnixMillis;
use wagu_proto::records::{Post, PostId};

use super::rows::{from_json, get_exact, past, to_exact, to_json};
use super::schema::{
    FeedTable, IDEMPOTENCY, IDEMPOTENCY_BY_EXPIRY, POSTS, POSTS_BY_AUTHOR, POSTS_BY_CELL,
    POSTS_BY_PLACE,
};
use super::{EmbeddedRecords, OrEmbedded, PRUNE_BATCH};
use crate::records::{
    Created, IDEMPOTENCY_TTL_SECS, Idempotency, PostCursor, PostStore, RecordError, Result, Scope,
    geo, now_millis,
};

#[derive(Serialize, Deserialize)]
pub(super) struct StoredIdempotency {
    pub(super) post_id: PostId,
    pub(super) fingerprint: String,
    /// Unix milliseconds; an entry at or past it counts as absent.
    pub(super) expires_at: UnixMillis,
    /// The post's timestamps when the key was claimed: a replay that writes the post again
    /// (it was deleted since) writes it as it was, same feed keys (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) created_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) updated_at: Option<UnixMillis>,
}

/// The feeds a post is listed in: the table and the scope key within it.
pub(super) fn feeds_of(p: &Post) -> [(FeedTable, String); 3] {
    [
        (POSTS_BY_AUTHOR, p.author.0.clone()),
        (POSTS_BY_PLACE, p.draft.place_id.0.clone()),
        (POSTS_BY_CELL, geo::encode(p.location, geo::POST_PRECISION)),
    ]
}

pub(super) fn scope_of(scope: &Scope) -> (FeedTable, String) {
    match scope {
        Scope::Author(a) => (POSTS_BY_AUTHOR, a.0.clone()),
        Scope::Place(p) => (POSTS_BY_PLACE, p.0.clone()),
        Scope::Cell(c) => (POSTS_BY_CELL, c.clone()),
    }
}

pub(super) fn put_feeds(w: &WriteTransaction, p: &Post) -> Result<()> {
    for (table, scope) in feeds_of(p) {
        w.open_table(table)
            .redb()?
            .insert((scope.as_str(), p.created_at, p.id.0.as_str()), ())
            .redb()?;
    }
    Ok(())
}

pub(super) fn remove_feeds(w: &WriteTransaction, p: &Post) -> Result<()> {
    for (table, scope) in feeds_of(p) {
        w.open_table(table)
            .redb()?
            .remove((scope.as_str(), p.created_at, p.id.0.as_str()))
            .redb()?;
    }
    Ok(())
}

/// Removes a batch of idempotency keys expired by `now` (the CQL backend's TTL).
pub(super) fn prune_idempotency(w: &WriteTransaction, now: UnixMillis) -> Result<()> {
    let mut by_expiry = w.open_table(IDEMPOTENCY_BY_EXPIRY).redb()?;
    let expired = by_expiry
        .range(..(now.saturating_add(1), "", ""))
        .redb()?
        .take(PRUNE_BATCH)
        .map(|e| {
            e.map(|(k, _)| {
                let (at, author, key) = k.value();
                (at, author.to_string(), key.to_string())
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .redb()?;
    if !expired.is_empty() {
        let mut keys = w.open_table(IDEMPOTENCY).redb()?;
        for (at, author, key) in &expired {
            by_expiry
                .remove((*at, author.as_str(), key.as_str()))
                .redb()?;
            keys.remove((author.as_str(), key.as_str())).redb()?;
        }
    }
    Ok(())
}

impl PostStore for EmbeddedRecords {
    async fn create_post(&self, post: &Post, idem: Option<&Idempotency>) -> Result<Created> {
        let mut post = post.clone();
        let idem = idem.cloned();
        let now = now_millis();
        self.write(move |w| {
            prune_idempotency(w, now)?;
            if let Some(i) = &idem {
                let mut keys = w.open_table(IDEMPOTENCY).redb()?;
                let key = (post.author.as_str(), i.key.as_str());
                let found: Option<StoredIdempotency> = keys
                    .get(key)
                    .redb()?
                    .map(|v| from_json(v.value()))
                    .transpose()?;
                match found {
                    Some(f) if f.expires_at > now => {
                        if f.fingerprint != i.fingerprint {
                            return Err(RecordError::IdempotencyMismatch);
                        }
                        let posts = w.open_table(POSTS).redb()?;
                        if let Some(p) = get_exact(&posts, f.post_id.as_str())? {
                            return Ok(Created::Replayed(p));
                        }
                        // The post was deleted since. The fingerprint matched, so this
                        // request's content is that post's: write it again under the id and
                        // timestamps the key recorded (as the CQL backend does), so every
                        // retry still converges on one post with one `created_at`. The key
                        // keeps its expiry.
                        post.id = f.post_id;
                        post.created_at = f.created_at.unwrap_or(post.created_at);
                        post.updated_at = f.updated_at.unwrap_or(post.updated_at);
                    }
                    found => {
                        // Absent or expired (not pruned yet): the key is this post's now.
                        let mut by_expiry = w.open_table(IDEMPOTENCY_BY_EXPIRY).redb()?;
                        if let Some(f) = found {
                            by_expiry.remove((f.expires_at, key.0, key.1)).redb()?;
                        }
                        let expires_at = now + u64::from(IDEMPOTENCY_TTL_SECS) * 1000;
                        let stored = to_json(&StoredIdempotency {
                            post_id: post.id.clone(),
                            fingerprint: i.fingerprint.clone(),
                            expires_at,
                            created_at: Some(post.created_at),
                            updated_at: Some(post.updated_at),
                        })?;
                        keys.insert(key, stored.as_slice()).redb()?;
                        by_expiry.insert((expires_at, key.0, key.1), ()).redb()?;
                    }
                }
            }
            let json = to_exact(&post, post.location)?;
            w.open_table(POSTS)
                .redb()?
                .insert(post.id.as_str(), json.as_slice())
                .redb()?;
            put_feeds(w, &post)?;
            Ok(Created::Created(post))
        })
        .await
    }

    async fn post(&self, id: &PostId) -> Result<Option<Post>> {
        let id = id.0.clone();
        self.read(move |r| get_exact(&r.open_table(POSTS).redb()?, &id))
            .await
    }

    async fn replace_post(&self, old: &Post, new: &Post) -> Result<()> {
        if old.id != new.id {
            return Err(RecordError::Invalid("a replaced post keeps its id".into()));
        }
        let json = to_exact(new, new.location)?;
        let (expected, new) = (old.updated_at, new.clone());
        // Compare-and-set inside the write transaction: no other write runs between the check
        // and the replacement. A failed check returns `Err`, which aborts: nothing is written.
        self.write(move |w| {
            let mut posts = w.open_table(POSTS).redb()?;
            let Some(stored) = get_exact::<Post>(&posts, new.id.as_str())? else {
                // Deleted since the caller read it: an edit does not bring it back.
                return Err(RecordError::Conflict("post"));
            };
            if stored.updated_at != expected {
                // Edited since the caller read it: not overwritten.
                return Err(RecordError::Conflict("post"));
            }
            // The stored post is what the feeds list.
            remove_feeds(w, &stored)?;
            posts.insert(new.id.as_str(), json.as_slice()).redb()?;
            put_feeds(w, &new)?;
            Ok(())
        })
        .await
    }

    async fn delete_post(&self, post: &Post) -> Result<()> {
        let post = post.clone();
        self.write(move |w| {
            let mut posts = w.open_table(POSTS).redb()?;
            let stored = get_exact::<Post>(&posts, post.id.as_str())?;
            posts.remove(post.id.as_str()).redb()?;
            remove_feeds(w, &post)?;
            if let Some(stored) = stored
                && stored != post
            {
                remove_feeds(w, &stored)?;
            }
            // Its idempotency key, if any, expires on its own; a replay before then writes the
            // post again under this id (see create_post).
            Ok(())
        })
        .await
    }

    async fn posts_in_scope(
        &self,
        scope: &Scope,
        before: Option<&PostCursor>,
        limit: usize,
    ) -> Result<Vec<Post>> {
        let (table, key) = scope_of(scope);
        let before = before.cloned();
        self.read(move |r| {
            let end = past(&key);
            let lower = Bound::Included((key.as_str(), 0u64, ""));
            let upper = match &before {
                Some(b) => Bound::Excluded((key.as_str(), b.created_at, b.id.0.as_str())),
                None => Bound::Excluded((end.as_str(), 0, "")),
            };
            // Keys sort by (created_at, id) within the scope: read backwards for newest first.
            let ids = r
                .open_table(table)
                .redb()?
                .range((lower, upper))
                .redb()?
                .rev()
                .take(limit)
                .map(|e| e.map(|(k, _)| k.value().2.to_string()))
                .collect::<Result<Vec<_>, _>>()
                .redb()?;
            let posts = r.open_table(POSTS).redb()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(p) = get_exact(&posts, &id)? {
                    out.push(p);
                }
            }
            Ok(out)
        })
        .await
    }
}
