//! Records in ScyllaDB (or Cassandra 5, which the test bed runs): the backend chosen by
//! `database.backend = "cql"`.
//!
//! What it does: implements the primitives of [`AccountStore`](super::AccountStore),
//! [`PlaceStore`](super::PlaceStore) and [`PostStore`](super::PostStore) over query-first
//! tables (one table per query, rows copied into every table that serves them), and creates
//! those tables ([`migrate`]). Every statement is prepared once in [`CqlRecords::new`]; reads
//! that could grow are either bounded by a bound `LIMIT` or paged.
//!
//! The tables, the query each serves and why none of its partitions grows without bound are
//! listed in `docs/RECORDS.md` ("Query-first tables (CQL)"). The files here, in the order a
//! request meets them:
//!
//! | file | concern |
//! |---|---|
//! | `schema.rs` | the keyspace name rule, the column lists, `CREATE … IF NOT EXISTS`, [`migrate`] |
//! | `statements.rs` | every statement, prepared once |
//! | `rows.rs` | rows ⇄ records, by column name |
//! | `writes.rs` | statements that belong together (one logged batch, or one by one), TTLs, feed keys |
//! | `accounts.rs`, `places.rs`, `posts.rs` | the three traits' primitives |
//!
//! What it does not do: Scylla-only CQL (`USING TIMEOUT`, `BYPASS CACHE`, …), so Cassandra 5
//! runs it too; moving a place's index rows atomically with a concurrent `put_place` of the
//! same id (the last writer wins the `places` row; a stale index row can remain until the next
//! put); cleaning `post_buckets` (an emptied bucket costs one read); schema changes beyond
//! `IF NOT EXISTS` creation.

mod accounts;
mod places;
mod posts;
mod rows;
mod schema;
mod statements;
mod writes;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use wagu_proto::records::Post;

use super::{RecordError, Result, bucket_of};
use rows::{Cols, PostRow, decode};
use schema::check_keyspace;
pub use schema::migrate;
use statements::Stmts;
use writes::{KEY_BYTES, Writes, feed_keys, key_if_cell, post_bytes, scope_key};

/// The CQL backend. Cloning shares the session and the prepared statements.
#[derive(Clone)]
pub struct CqlRecords {
    pub(in crate::records) session: Arc<Session>,
    st: Arc<Stmts>,
    pub(in crate::records) photos: Arc<super::photos_cql::PhotoStmts>,
}

impl CqlRecords {
    /// Prepares every statement against an existing schema (run [`migrate`] first).
    pub async fn new(session: Arc<Session>, keyspace: &str) -> Result<Self, RecordError> {
        check_keyspace(keyspace)?;
        let st = Stmts::prepare(&session, keyspace).await?;
        let photos = super::photos_cql::PhotoStmts::prepare(&session, keyspace).await?;
        Ok(CqlRecords {
            session,
            st: Arc::new(st),
            photos,
        })
    }

    /// Readiness: one round trip to the cluster.
    pub async fn ping(&self) -> Result<(), RecordError> {
        crate::cql::ping(&self.session).await?;
        Ok(())
    }

    async fn exec(&self, st: &PreparedStatement, values: impl SerializeRow) -> Result<QueryResult> {
        self.session
            .execute_unpaged(st, values)
            .await
            .map_err(RecordError::cql)
    }

    /// Runs a statement that returns at most one row (a key lookup, an LWT's outcome).
    async fn one<T>(
        &self,
        st: &PreparedStatement,
        values: impl SerializeRow,
        f: impl FnMut(&Cols<'_, '_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let res = self.exec(st, values).await?;
        Ok(decode(res, f)?.into_iter().next())
    }

    /// Writes a post (and its feed rows and buckets) as a whole.
    async fn write_post(&self, p: &Post) -> Result<()> {
        let mut w = Writes::default();
        let bytes = post_bytes(p);
        for (feed, key) in feed_keys(p) {
            w.add(
                &self.st.feeds[feed].insert,
                bytes,
                PostRow::new(p, key_if_cell(feed, &key)),
            );
            w.add(
                &self.st.insert_bucket,
                KEY_BYTES,
                (scope_key(feed, &key), bucket_of(p.created_at)),
            );
        }
        w.add(&self.st.insert_post, bytes, PostRow::new(p, String::new()));
        w.run(&self.session).await
    }
}
