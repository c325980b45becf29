//! [`PhotoStore`] on ScyllaDB / Cassandra: the tables [`schema`] adds to the records keyspace
//! (created by the same `migrate`), and the statements, prepared once with the others.
//!
//! | table | primary key | serves | partition bounded by |
//! |---|---|---|---|
//! | `photos` | `id` | photo by id; attachments (`posts map<text, bigint>`) | one row |
//! | `photos_by_content` | `((content_hash), id)` | "does another photo share these blobs" | the uploads of one identical photo |
//! | `photo_sweep` | `((day), at, id)` | sweep queue: uploads and detachments, by time | one day's uploads and detachments |
//! | `photo_sweep_days` | `((shard), day)` | which days hold queue entries | one row per day with entries not yet swept |
//!
//! A new photo's rows are one logged batch (queue entry first in meaning, all or nothing in
//! effect). `put_photo` reads before it inserts (no LWT): two concurrent uploads of the same
//! photo by the same owner write the same id and the same content, so either wins harmlessly;
//! the insert names no attachment column, so it never erases a concurrent attachment.
//! Attachments are map cells: concurrent attaches and detaches of different posts commute.
//!
//! What it does not do: anything beyond storing (see [`super::photos`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::batch::BatchValues;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::statement::prepared::PreparedStatement;
use wagu_proto::model::UnixMillis;
use wagu_proto::records::{AccountId, PhotoId, PostId};

use super::cql::CqlRecords;
use super::photos::{PhotoRecord, PhotoStore, PhotoVariant, SweepEntry};
use super::{RecordError, Result};

/// The only partition of `photo_sweep_days` (one row per day: small for ever).
const SHARD: &str = "q";
const DAY_MILLIS: u64 = 24 * 3600 * 1000;

/// Statements the records `migrate` runs for photos (keyspace checked by the caller).
pub(super) fn schema(ks: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.photos (id text, owner text, created_at bigint, \
             content_hash text, variants text, posts map<text, bigint>, detached_at bigint, \
             PRIMARY KEY (id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.photos_by_content (content_hash text, id text, \
             PRIMARY KEY ((content_hash), id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.photo_sweep (day int, at bigint, id text, \
             PRIMARY KEY ((day), at, id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.photo_sweep_days (shard text, day int, \
             PRIMARY KEY ((shard), day))"
        ),
    ]
}

/// The photo statements.
pub(super) struct PhotoStmts {
    insert: PreparedStatement,
    get: PreparedStatement,
    attach: PreparedStatement,
    detach: PreparedStatement,
    detached_at: PreparedStatement,
    delete: PreparedStatement,
    insert_content: PreparedStatement,
    delete_content: PreparedStatement,
    any_content: PreparedStatement,
    queue: PreparedStatement,
    queue_day: PreparedStatement,
    days: PreparedStatement,
    due: PreparedStatement,
    unqueue: PreparedStatement,
    forget_day: PreparedStatement,
}

impl PhotoStmts {
    pub(super) async fn prepare(s: &Session, ks: &str) -> Result<Arc<Self>> {
        // Names and queries pair by position: keep the two lists in the same order.
        let [
            insert,
            get,
            attach,
            detach,
            detached_at,
            delete,
            insert_content,
            delete_content,
            any_content,
            queue,
            queue_day,
            days,
            due,
            unqueue,
            forget_day,
        ] = prepare_all(
            s,
            [
                format!(
                    "INSERT INTO {ks}.photos (id, owner, created_at, content_hash, variants) \
                     VALUES (?, ?, ?, ?, ?)"
                ),
                format!(
                    "SELECT id, owner, created_at, content_hash, variants, posts, detached_at \
                     FROM {ks}.photos WHERE id = ?"
                ),
                format!("UPDATE {ks}.photos SET posts[?] = ? WHERE id = ?"),
                format!("DELETE posts[?] FROM {ks}.photos WHERE id = ?"),
                format!("UPDATE {ks}.photos SET detached_at = ? WHERE id = ?"),
                format!("DELETE FROM {ks}.photos WHERE id = ?"),
                format!("INSERT INTO {ks}.photos_by_content (content_hash, id) VALUES (?, ?)"),
                format!("DELETE FROM {ks}.photos_by_content WHERE content_hash = ? AND id = ?"),
                format!("SELECT id FROM {ks}.photos_by_content WHERE content_hash = ? LIMIT 1"),
                format!("INSERT INTO {ks}.photo_sweep (day, at, id) VALUES (?, ?, ?)"),
                format!("INSERT INTO {ks}.photo_sweep_days (shard, day) VALUES (?, ?)"),
                format!("SELECT day FROM {ks}.photo_sweep_days WHERE shard = ? AND day <= ?"),
                format!("SELECT at, id FROM {ks}.photo_sweep WHERE day = ? AND at < ? LIMIT ?"),
                format!("DELETE FROM {ks}.photo_sweep WHERE day = ? AND at = ? AND id = ?"),
                format!("DELETE FROM {ks}.photo_sweep_days WHERE shard = ? AND day = ?"),
            ],
        )
        .await?;
        Ok(Arc::new(PhotoStmts {
            insert,
            get,
            attach,
            detach,
            detached_at,
            delete,
            insert_content,
            delete_content,
            any_content,
            queue,
            queue_day,
            days,
            due,
            unqueue,
            forget_day,
        }))
    }
}

/// Prepares `queries` one after the other, in order; the first failure names its query.
async fn prepare_all<const N: usize>(
    s: &Session,
    queries: [String; N],
) -> Result<[PreparedStatement; N]> {
    let mut out = Vec::with_capacity(N);
    for q in queries {
        out.push(
            s.prepare(q.as_str())
                .await
                .map_err(|e| RecordError::cql(format!("preparing {q}: {e}")))?,
        );
    }
    out.try_into()
        .map_err(|_| RecordError::cql("prepared statement count"))
}

/// A logged batch of `stmts`, in order (all or nothing).
fn logged(stmts: &[&PreparedStatement]) -> Batch {
    Batch::new_with_statements(
        BatchType::Logged,
        stmts
            .iter()
            .map(|s| BatchStatement::PreparedStatement((*s).clone()))
            .collect(),
    )
}

fn day_of(at: UnixMillis) -> i32 {
    (at / DAY_MILLIS) as i32
}

fn big(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

fn millis(v: i64, what: &str) -> Result<UnixMillis> {
    u64::try_from(v).map_err(|_| RecordError::cql(format!("{what} is negative: {v}")))
}

type PhotoRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<BTreeMap<String, i64>>,
    Option<i64>,
);

impl CqlRecords {
    fn photo_stmts(&self) -> &PhotoStmts {
        &self.photos
    }

    async fn photo_rows<T>(
        &self,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<T>>
    where
        T: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let res = self
            .session
            .execute_unpaged(st, values)
            .await
            .map_err(RecordError::cql)?;
        let rows = res.into_rows_result().map_err(RecordError::cql)?;
        rows.rows::<T>()
            .map_err(RecordError::cql)?
            .collect::<std::result::Result<Vec<T>, _>>()
            .map_err(RecordError::cql)
    }

    async fn photo_exec(&self, st: &PreparedStatement, values: impl SerializeRow) -> Result<()> {
        self.session
            .execute_unpaged(st, values)
            .await
            .map_err(RecordError::cql)?;
        Ok(())
    }

    /// Runs `stmts` as one logged batch, `values` one row of bound values each.
    async fn photo_batch(
        &self,
        stmts: &[&PreparedStatement],
        values: impl BatchValues,
    ) -> Result<()> {
        self.session
            .batch(&logged(stmts), values)
            .await
            .map_err(RecordError::cql)?;
        Ok(())
    }
}

fn record_of(row: PhotoRow) -> Result<Option<PhotoRecord>> {
    let (id, owner, created_at, content_hash, variants, posts, detached_at) = row;
    // A row without an owner is what a late attachment to a deleted photo leaves: no photo.
    let (Some(owner), Some(created_at), Some(content_hash), Some(variants)) =
        (owner, created_at, content_hash, variants)
    else {
        return Ok(None);
    };
    let variants: Vec<PhotoVariant> = serde_json::from_str(&variants)
        .map_err(|e| RecordError::cql(format!("photo {id}: corrupt variants: {e}")))?;
    let posts = posts
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| Ok((PostId(k), millis(v, "posts[]")?)))
        .collect::<Result<_>>()?;
    Ok(Some(PhotoRecord {
        id: PhotoId(id),
        owner: AccountId(owner),
        created_at: millis(created_at, "created_at")?,
        content_hash,
        variants,
        posts,
        detached_at: detached_at.map(|v| millis(v, "detached_at")).transpose()?,
    }))
}

impl PhotoStore for CqlRecords {
    async fn put_photo(&self, p: &PhotoRecord) -> Result<PhotoRecord> {
        if let Some(old) = self.photo(&p.id).await? {
            return Ok(old);
        }
        let st = self.photo_stmts();
        let variants = serde_json::to_string(&p.variants).map_err(RecordError::cql)?;
        let at = big(p.created_at);
        self.photo_batch(
            &[&st.queue_day, &st.queue, &st.insert_content, &st.insert],
            (
                (SHARD, day_of(p.created_at)),
                (day_of(p.created_at), at, p.id.as_str()),
                (p.content_hash.as_str(), p.id.as_str()),
                (
                    p.id.as_str(),
                    p.owner.as_str(),
                    at,
                    p.content_hash.as_str(),
                    variants.as_str(),
                ),
            ),
        )
        .await?;
        let mut stored = p.clone();
        stored.posts.clear();
        stored.detached_at = None;
        Ok(stored)
    }

    async fn photo(&self, id: &PhotoId) -> Result<Option<PhotoRecord>> {
        let rows: Vec<PhotoRow> = self
            .photo_rows(&self.photo_stmts().get, (id.as_str(),))
            .await?;
        match rows.into_iter().next() {
            Some(row) => record_of(row),
            None => Ok(None),
        }
    }

    async fn attach_photo(&self, id: &PhotoId, post: &PostId, at: UnixMillis) -> Result<()> {
        // An UPDATE of a missing row would create one: attach only to a photo that exists.
        if self.photo(id).await?.is_none() {
            return Ok(());
        }
        self.photo_exec(
            &self.photo_stmts().attach,
            (post.as_str(), big(at), id.as_str()),
        )
        .await
    }

    async fn detach_photo(&self, id: &PhotoId, post: &PostId, at: UnixMillis) -> Result<()> {
        if self.photo(id).await?.is_none() {
            return Ok(());
        }
        let st = self.photo_stmts();
        self.photo_batch(
            &[&st.queue_day, &st.queue, &st.detach, &st.detached_at],
            (
                (SHARD, day_of(at)),
                (day_of(at), big(at), id.as_str()),
                (post.as_str(), id.as_str()),
                (big(at), id.as_str()),
            ),
        )
        .await
    }

    async fn sweep_due(&self, before: UnixMillis, limit: usize) -> Result<Vec<SweepEntry>> {
        let st = self.photo_stmts();
        let last_day = day_of(before);
        let days: Vec<(i32,)> = self.photo_rows(&st.days, (SHARD, last_day)).await?;
        let mut out = Vec::new();
        for (day,) in days {
            if out.len() >= limit {
                break;
            }
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let rows: Vec<(i64, String)> =
                self.photo_rows(&st.due, (day, big(before), want)).await?;
            if rows.is_empty() && day < last_day {
                // Every entry of a past day was looked at; new entries land on today or later.
                self.photo_exec(&st.forget_day, (SHARD, day)).await?;
            }
            for (at, id) in rows {
                out.push(SweepEntry {
                    at: millis(at, "photo_sweep.at")?,
                    id: PhotoId(id),
                });
            }
        }
        Ok(out)
    }

    async fn unqueue(&self, e: &SweepEntry) -> Result<()> {
        self.photo_exec(
            &self.photo_stmts().unqueue,
            (day_of(e.at), big(e.at), e.id.as_str()),
        )
        .await
    }

    async fn delete_photo(&self, p: &PhotoRecord) -> Result<bool> {
        let st = self.photo_stmts();
        self.photo_batch(
            &[&st.delete, &st.delete_content],
            ((p.id.as_str(),), (p.content_hash.as_str(), p.id.as_str())),
        )
        .await?;
        let rest: Vec<(String,)> = self
            .photo_rows(&st.any_content, (p.content_hash.as_str(),))
            .await?;
        Ok(!rest.is_empty())
    }
}
