//! Statements that belong together, and the keys and TTLs they are written with.
//!
//! Writes touching several tables go in one logged batch, so they all happen or none does.
//! Cassandra refuses a batch above its `batch_size_fail_threshold` (50 KiB by default), and
//! four copies of a long post exceed it; such writes are sent one statement at a time
//! instead, the row of the base table (`posts`, `places`) last, so "the row exists" still
//! implies "its index rows were written" and a retry (with the same idempotency key) repairs.
//!
//! What it does not do: prepare statements or map rows (`statements.rs`, `rows.rs`).

use scylla::client::session::Session;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::statement::prepared::PreparedStatement;
use wagu_proto::model::UnixMillis;
use wagu_proto::records::{Place, Post};

use super::rows::big;
use super::schema::{FEEDS, Feed};
use crate::records::{RecordError, Result, bucket_of, geo};

/// Largest estimated batch sent as one logged batch. Cassandra fails batches above 50 KiB by
/// default (ScyllaDB above 1 MiB); the estimate counts payload bytes only, hence the margin.
pub(super) const BATCH_BYTES: usize = 32 * 1024;
/// Largest TTL Cassandra accepts (20 years).
pub(super) const MAX_TTL_SECS: u64 = 630_720_000;

/// Estimated bytes of a key-only statement (a delete, a bucket row).
pub(super) const KEY_BYTES: usize = 128;

pub(super) fn post_bytes(p: &Post) -> usize {
    let d = &p.draft;
    256 + p.id.0.len()
        + p.author.0.len()
        + p.author_name.len()
        + p.place_name.len()
        + d.place_id.0.len()
        + d.visit_date.len()
        + d.text.len()
        + d.photos.iter().map(|x| x.0.len() + 8).sum::<usize>()
        + d.menu.iter().map(|m| m.name.len() + 24).sum::<usize>()
}

pub(super) fn place_bytes(p: &Place) -> usize {
    128 + p.id.0.len()
        + p.name.len()
        + p.category.len()
        + p.address.len()
        + p.phone.as_ref().map_or(0, String::len)
        + p.hours.as_ref().map_or(0, String::len)
}

/// Statements that belong together: one logged batch when small enough, else one by one in
/// the order added (callers add the base-table row last).
#[derive(Default)]
pub(super) struct Writes<'a> {
    stmts: Vec<PreparedStatement>,
    values: Vec<Box<dyn SerializeRow + Send + Sync + 'a>>,
    bytes: usize,
}

impl<'a> Writes<'a> {
    pub(super) fn add(
        &mut self,
        st: &PreparedStatement,
        bytes: usize,
        values: impl SerializeRow + Send + Sync + 'a,
    ) {
        self.stmts.push(st.clone());
        self.values.push(Box::new(values));
        self.bytes += bytes;
    }

    pub(super) async fn run(self, session: &Session) -> Result<()> {
        if self.stmts.is_empty() {
            return Ok(());
        }
        if self.bytes <= BATCH_BYTES {
            let batch = Batch::new_with_statements(
                BatchType::Logged,
                self.stmts
                    .into_iter()
                    .map(BatchStatement::PreparedStatement)
                    .collect(),
            );
            session
                .batch(&batch, &self.values)
                .await
                .map_err(RecordError::cql)?;
        } else {
            for (st, v) in self.stmts.iter().zip(&self.values) {
                session
                    .execute_unpaged(st, v)
                    .await
                    .map_err(RecordError::cql)?;
            }
        }
        Ok(())
    }
}

/// The feeds a post is listed in, with each partition's key (bucket aside).
pub(super) fn feed_keys(p: &Post) -> [(Feed, String); 3] {
    [
        (0, p.author.0.clone()),
        (1, p.draft.place_id.0.clone()),
        (2, geo::encode(p.location, geo::POST_PRECISION)),
    ]
}

/// The `cell` value of a feed row: only the cell feed has that column.
pub(super) fn key_if_cell(feed: Feed, key: &str) -> String {
    if FEEDS[feed].key_is_post_column {
        String::new()
    } else {
        key.to_string()
    }
}

pub(super) fn scope_key(feed: Feed, key: &str) -> String {
    format!("{}:{key}", FEEDS[feed].scope)
}

/// A feed row's full primary key: (feed, key, bucket, created_at, id).
pub(super) type FeedRowKey = (Feed, String, i32, i64, String);

pub(super) fn feed_row_keys(p: &Post) -> Vec<FeedRowKey> {
    feed_keys(p)
        .into_iter()
        .map(|(feed, key)| {
            (
                feed,
                key,
                bucket_of(p.created_at),
                big(p.created_at),
                p.id.0.clone(),
            )
        })
        .collect()
}

/// Seconds from `now` until `until`, as a CQL TTL: at least 1 (0 would mean "forever").
pub(super) fn ttl_secs(until: UnixMillis, now: UnixMillis) -> i32 {
    let secs = until
        .saturating_sub(now)
        .div_ceil(1000)
        .clamp(1, MAX_TTL_SECS);
    i32::try_from(secs).unwrap_or(i32::MAX)
}
