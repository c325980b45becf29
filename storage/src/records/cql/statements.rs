//! Every statement the backend runs, prepared once against the keyspace ([`Stmts::prepare`]).
//!
//! What it does not do: bind values (`rows.rs`) or decide which statements go together
//! (`writes.rs`).

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, Statement};

use super::schema::{FEEDS, PLACE_COLS, POST_COLS};
use crate::records::{IDEMPOTENCY_TTL_SECS, RecordError, Result};

/// Rows per page when listing a feed's buckets: a scope has about twelve a year.
const BUCKET_PAGE: i32 = 64;

/// One feed table's statements.
pub(super) struct FeedStmts {
    pub(super) insert: PreparedStatement,
    pub(super) delete: PreparedStatement,
    pub(super) newest: PreparedStatement,
    pub(super) before: PreparedStatement,
}

/// Every statement, prepared once.
pub(super) struct Stmts {
    pub(super) claim_email: PreparedStatement,
    pub(super) release_email: PreparedStatement,
    pub(super) insert_account: PreparedStatement,
    pub(super) account: PreparedStatement,
    pub(super) email: PreparedStatement,
    pub(super) claim_identity: PreparedStatement,
    pub(super) identity: PreparedStatement,
    pub(super) insert_refresh: PreparedStatement,
    pub(super) refresh: PreparedStatement,
    pub(super) spend_refresh: PreparedStatement,
    pub(super) refresh_used_at: PreparedStatement,
    pub(super) revoke: PreparedStatement,
    pub(super) revoked: PreparedStatement,

    pub(super) insert_place: PreparedStatement,
    pub(super) place: PreparedStatement,
    pub(super) any_place: PreparedStatement,
    pub(super) insert_name: PreparedStatement,
    pub(super) delete_name: PreparedStatement,
    pub(super) names_from: PreparedStatement,
    pub(super) names_after: PreparedStatement,
    pub(super) insert_cell: PreparedStatement,
    pub(super) delete_cell: PreparedStatement,
    pub(super) cell_from: PreparedStatement,
    pub(super) cell_after: PreparedStatement,

    pub(super) insert_post: PreparedStatement,
    pub(super) cas_post: PreparedStatement,
    pub(super) post: PreparedStatement,
    pub(super) delete_post: PreparedStatement,
    pub(super) claim_idem: PreparedStatement,
    pub(super) insert_bucket: PreparedStatement,
    pub(super) buckets_all: PreparedStatement,
    pub(super) buckets_upto: PreparedStatement,
    pub(super) feeds: [FeedStmts; 3],
}

/// `?, ?, …`, one per column of a comma-separated list.
fn marks(cols: &str) -> String {
    vec!["?"; cols.split(',').count()].join(", ")
}

async fn prep(s: &Session, q: String) -> Result<PreparedStatement> {
    s.prepare(q.as_str())
        .await
        .map_err(|e| RecordError::cql_in(format!("preparing {q}"), e))
}

async fn prep_paged(s: &Session, q: String, page: i32) -> Result<PreparedStatement> {
    let st = Statement::new(q.as_str()).with_page_size(page);
    s.prepare(st)
        .await
        .map_err(|e| RecordError::cql_in(format!("preparing {q}"), e))
}

impl Stmts {
    pub(super) async fn prepare(s: &Session, ks: &str) -> Result<Self> {
        let place_insert = |table: &str, keys: &str| {
            let cols = format!("{keys}, {PLACE_COLS}");
            format!(
                "INSERT INTO {ks}.{table} ({cols}) VALUES ({})",
                marks(&cols)
            )
        };
        let mut feeds = Vec::with_capacity(FEEDS.len());
        for f in &FEEDS {
            let cols = if f.key_is_post_column {
                format!("bucket, {POST_COLS}")
            } else {
                format!("{}, bucket, {POST_COLS}", f.key)
            };
            let (t, k) = (f.table, f.key);
            feeds.push(FeedStmts {
                insert: prep(
                    s,
                    format!("INSERT INTO {ks}.{t} ({cols}) VALUES ({})", marks(&cols)),
                )
                .await?,
                delete: prep(
                    s,
                    format!(
                        "DELETE FROM {ks}.{t} WHERE {k} = ? AND bucket = ? \
                         AND created_at = ? AND id = ?"
                    ),
                )
                .await?,
                newest: prep(
                    s,
                    format!(
                        "SELECT {POST_COLS} FROM {ks}.{t} WHERE {k} = ? AND bucket = ? LIMIT ?"
                    ),
                )
                .await?,
                before: prep(
                    s,
                    format!(
                        "SELECT {POST_COLS} FROM {ks}.{t} WHERE {k} = ? AND bucket = ? \
                         AND (created_at, id) < (?, ?) LIMIT ?"
                    ),
                )
                .await?,
            });
        }
        let feeds: [FeedStmts; 3] = feeds
            .try_into()
            .unwrap_or_else(|_| unreachable!("one per feed table"));
        Ok(Stmts {
            claim_email: prep(
                s,
                format!(
                    "INSERT INTO {ks}.accounts_by_email (email, id) VALUES (?, ?) IF NOT EXISTS"
                ),
            )
            .await?,
            release_email: prep(
                s,
                format!("DELETE FROM {ks}.accounts_by_email WHERE email = ? IF id = ?"),
            )
            .await?,
            insert_account: prep(
                s,
                format!(
                    "INSERT INTO {ks}.accounts (id, email, display_name, password_hash, \
                     created_at) VALUES (?, ?, ?, ?, ?)"
                ),
            )
            .await?,
            account: prep(
                s,
                format!(
                    "SELECT id, email, display_name, password_hash, created_at \
                     FROM {ks}.accounts WHERE id = ?"
                ),
            )
            .await?,
            email: prep(
                s,
                format!("SELECT id FROM {ks}.accounts_by_email WHERE email = ?"),
            )
            .await?,
            // Not applied: the answer carries the existing row, so the linked account's id.
            claim_identity: prep(
                s,
                format!(
                    "INSERT INTO {ks}.identities (provider, subject, account) VALUES (?, ?, ?) \
                     IF NOT EXISTS"
                ),
            )
            .await?,
            identity: prep(
                s,
                format!("SELECT account FROM {ks}.identities WHERE provider = ? AND subject = ?"),
            )
            .await?,
            insert_refresh: prep(
                s,
                format!(
                    "INSERT INTO {ks}.refresh_tokens (hash, account, family, expires_at, used) \
                     VALUES (?, ?, ?, ?, false) USING TTL ?"
                ),
            )
            .await?,
            refresh: prep(
                s,
                format!(
                    "SELECT hash, account, family, expires_at, used, used_at \
                     FROM {ks}.refresh_tokens WHERE hash = ?"
                ),
            )
            .await?,
            // The TTL again: an UPDATE's cells would otherwise outlive the row they belong to.
            spend_refresh: prep(
                s,
                format!(
                    "UPDATE {ks}.refresh_tokens USING TTL ? SET used = true, used_at = ? \
                     WHERE hash = ? IF used = false"
                ),
            )
            .await?,
            // After a spend that did not apply: when the winner spent it. A serial read, so
            // it sees the winning compare-and-set (committed by then: a Paxos round completes
            // any round in progress before answering).
            refresh_used_at: {
                let mut st = prep(
                    s,
                    format!("SELECT used_at FROM {ks}.refresh_tokens WHERE hash = ?"),
                )
                .await?;
                st.set_consistency(Consistency::LocalSerial);
                st
            },
            revoke: prep(
                s,
                format!(
                    "INSERT INTO {ks}.refresh_families_revoked (family) VALUES (?) USING TTL ?"
                ),
            )
            .await?,
            revoked: prep(
                s,
                format!("SELECT family FROM {ks}.refresh_families_revoked WHERE family = ?"),
            )
            .await?,

            insert_place: prep(s, place_insert("places", "id")).await?,
            place: prep(
                s,
                format!("SELECT id, {PLACE_COLS} FROM {ks}.places WHERE id = ?"),
            )
            .await?,
            any_place: prep(s, format!("SELECT id FROM {ks}.places LIMIT 1")).await?,
            insert_name: prep(
                s,
                place_insert("places_by_name", "prefix, name_token, place_id"),
            )
            .await?,
            delete_name: prep(
                s,
                format!(
                    "DELETE FROM {ks}.places_by_name WHERE prefix = ? AND name_token = ? \
                     AND place_id = ?"
                ),
            )
            .await?,
            names_from: prep(
                s,
                format!(
                    "SELECT name_token, place_id, {PLACE_COLS} FROM {ks}.places_by_name \
                     WHERE prefix = ? AND name_token >= ? AND name_token < ? LIMIT ?"
                ),
            )
            .await?,
            // Both bounds multi-column: Cassandra 5 also takes `AND name_token < ?` here, but
            // mixing single- and multi-column relations is what older engines refuse.
            names_after: prep(
                s,
                format!(
                    "SELECT name_token, place_id, {PLACE_COLS} FROM {ks}.places_by_name \
                     WHERE prefix = ? AND (name_token, place_id) > (?, ?) \
                     AND (name_token) < (?) LIMIT ?"
                ),
            )
            .await?,
            insert_cell: prep(s, place_insert("places_by_cell", "cell, place_id")).await?,
            delete_cell: prep(
                s,
                format!("DELETE FROM {ks}.places_by_cell WHERE cell = ? AND place_id = ?"),
            )
            .await?,
            cell_from: prep(
                s,
                format!(
                    "SELECT place_id, {PLACE_COLS} FROM {ks}.places_by_cell WHERE cell = ? \
                     LIMIT ?"
                ),
            )
            .await?,
            cell_after: prep(
                s,
                format!(
                    "SELECT place_id, {PLACE_COLS} FROM {ks}.places_by_cell WHERE cell = ? \
                     AND place_id > ? LIMIT ?"
                ),
            )
            .await?,

            insert_post: prep(
                s,
                format!(
                    "INSERT INTO {ks}.posts ({POST_COLS}) VALUES ({})",
                    marks(POST_COLS)
                ),
            )
            .await?,
            // An edit: the whole row, if it is still the version the editor read. Named
            // markers, so the expected `updated_at` is told apart from the new one by name.
            cas_post: prep(
                s,
                format!(
                    "UPDATE {ks}.posts SET {} WHERE id = :id \
                     IF updated_at = :expected_updated_at",
                    POST_COLS
                        .split(',')
                        .map(str::trim)
                        .filter(|c| *c != "id")
                        .map(|c| format!("{c} = :{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .await?,
            post: prep(
                s,
                format!("SELECT {POST_COLS} FROM {ks}.posts WHERE id = ?"),
            )
            .await?,
            delete_post: prep(s, format!("DELETE FROM {ks}.posts WHERE id = ?")).await?,
            claim_idem: prep(
                s,
                format!(
                    "INSERT INTO {ks}.post_idempotency (author, key, post_id, fingerprint, \
                     created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS \
                     USING TTL {IDEMPOTENCY_TTL_SECS}"
                ),
            )
            .await?,
            insert_bucket: prep(
                s,
                format!("INSERT INTO {ks}.post_buckets (scope, bucket) VALUES (?, ?)"),
            )
            .await?,
            buckets_all: prep_paged(
                s,
                format!("SELECT bucket FROM {ks}.post_buckets WHERE scope = ?"),
                BUCKET_PAGE,
            )
            .await?,
            buckets_upto: prep_paged(
                s,
                format!("SELECT bucket FROM {ks}.post_buckets WHERE scope = ? AND bucket <= ?"),
                BUCKET_PAGE,
            )
            .await?,
            feeds,
        })
    }
}
