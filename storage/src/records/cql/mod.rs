//! Records in ScyllaDB (or Cassandra 5, which the test bed runs): the backend chosen by
//! `database.backend = "cql"`.
//!
//! What it does: implements the primitives of [`AccountStore`], [`PlaceStore`] and
//! [`PostStore`] over query-first tables (one table per query, rows copied into every table
//! that serves them), and creates those tables ([`migrate`]). Every statement is prepared once
//! in [`CqlRecords::new`]; reads that could grow are either bounded by a bound `LIMIT` or paged.
//!
//! Tables, the query each serves, and why none of its partitions grows without bound:
//!
//! | table | primary key | serves | partition bounded by |
//! |---|---|---|---|
//! | `accounts` | `id` | account by id | one row |
//! | `accounts_by_email` | `email` | login; unique emails (LWT `IF NOT EXISTS`) | one row |
//! | `identities` | `((provider, subject))` | OpenID Connect log-in: the account linked to a provider's subject; one account per identity (LWT `IF NOT EXISTS`) | one row |
//! | `refresh_tokens` | `hash` | spending a refresh token (LWT `IF used = false`, recording `used_at`), TTL until expiry | one row |
//! | `refresh_families_revoked` | `family` | "is this family revoked", TTL until the revocation ends | one row |
//! | `places` | `id` | place by id; "any place at all" | one row |
//! | `places_by_name` | `((prefix), name_token, place_id)` | name search: a token range in the partition of its first character | the names of the data set starting with one character (text.rs: ≈ 4 % of a Latin-named set, far less for Hangul) |
//! | `places_by_cell` | `((cell), place_id)` | map viewport, one geohash cell (precision 6, 5 and 4) at a time | the places of one cell (≈ 1.2 × 0.6 km, ≈ 4.9 × 4.9 km or ≈ 39 × 20 km) |
//! | `posts` | `id` | post by id; edits (LWT `IF updated_at = ?`) | one row |
//! | `posts_by_author` | `((author, bucket), created_at, id)` | an author's feed, newest first | one author's posts of one 30-day bucket |
//! | `posts_by_place` | `((place_id, bucket), created_at, id)` | a place's feed | one place's posts of one bucket |
//! | `posts_by_cell` | `((cell, bucket), created_at, id)` | "near me": precision-5 cells | the posts of ≈ 5 × 5 km in one bucket |
//! | `post_buckets` | `((scope), bucket)` | which buckets of a feed hold posts, so a feed never walks empty months | one row per 30-day bucket with posts (12 a year) |
//! | `post_idempotency` | `((author, key))` | replaying a post creation (LWT `IF NOT EXISTS`; the post's id, `created_at`, `updated_at`), TTL 24 h | one row |
//!
//! The name-token column is `name_token`, not `token`: `token` is reserved in CQL. Feed rows
//! carry the whole post, so a feed page is one read per partition; `post_buckets.scope` is
//! `a:{author}`, `p:{place}` or `c:{cell}`.
//!
//! Writes touching several tables go in one logged batch, so they all happen or none does.
//! Cassandra refuses a batch above its `batch_size_fail_threshold` (50 KiB by default), and
//! four copies of a long post exceed it; such writes are sent one statement at a time
//! instead, the row of the base table (`posts`, `places`) last, so "the row exists" still
//! implies "its index rows were written" and a retry (with the same idempotency key) repairs.
//!
//! Idempotent creation: the LWT that claims a key stores the post's id, `created_at` and
//! `updated_at`. A retry that finds the key claimed polls for the post; if it does not appear
//! (the first request failed, is stalled, or the post was deleted since), the retry writes it
//! under the stored id *and* timestamps. Should the first request still be writing, both
//! write the same rows (feed rows are keyed by `(created_at, id)`), so the post is listed
//! once and one deletion removes it everywhere.
//!
//! Accounts of an external identity: `create_account_for_identity` claims the identity first
//! (an LWT storing the new account's id), then writes the `accounts` row. A concurrent first
//! log-in that loses the claim reads the winner's id from the LWT's answer and returns that
//! account, polling briefly while the winner's row is not written yet. If it still is not (the
//! winner failed between its claim and its row), the loser writes its own record under the
//! claimed id, so a failed first log-in never leaves an identity linked to nothing. The
//! account's email is not claimed in `accounts_by_email`.
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
//!
//! Schema changes: `migrate` only creates what does not exist. `refresh_tokens.used_at` and
//! `post_idempotency.created_at` / `updated_at` are part of `CREATE TABLE IF NOT EXISTS`, so a
//! keyspace created before them needs `ALTER TABLE … ADD` by hand (statements preparing
//! against it fail with "undefined column"). A new table (`identities`) needs nothing: the
//! next `migrate` (start-up runs one) creates it in an existing keyspace.
//!
//! What it does not do: Scylla-only CQL (`USING TIMEOUT`, `BYPASS CACHE`, …), so Cassandra 5
//! runs it too; moving a place's index rows atomically with a concurrent `put_place` of the
//! same id (the last writer wins the `places` row; a stale index row can remain until the next
//! put); cleaning `post_buckets` (an emptied bucket costs one read); schema changes beyond
//! `IF NOT EXISTS` creation.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::deserialize::row::{ColumnIterator, RawColumn};
use scylla::deserialize::value::DeserializeValue;
use scylla::frame::response::result::ColumnSpec;
use scylla::response::PagingState;
use scylla::response::query_result::QueryResult;
use scylla::serialize::SerializationError;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::RowWriter;
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, Statement};
use wagu_proto::PlaceId;
use wagu_proto::model::{LatLng, UnixMillis};
use wagu_proto::records::{
    AccountId, MenuItem, PhotoId, Place, Post, PostDraft, PostId, TextOrigin,
};

use super::{
    AccountRecord, AccountStore, Created, IDEMPOTENCY_TTL_SECS, Idempotency, NameCursor,
    PlaceStore, PostCursor, PostStore, RecordError, RefreshRecord, RefreshUse, Result, Scope,
    bucket_of, geo, now_millis, text,
};

/// Largest estimated batch sent as one logged batch. Cassandra fails batches above 50 KiB by
/// default (ScyllaDB above 1 MiB); the estimate counts payload bytes only, hence the margin.
const BATCH_BYTES: usize = 32 * 1024;
/// Largest TTL Cassandra accepts (20 years).
const MAX_TTL_SECS: u64 = 630_720_000;
/// How long a replayed creation waits for the first request (same key, still writing) to
/// store its post before writing it itself.
const IDEM_POLLS: u32 = 5;
const IDEM_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a first log-in that lost the claim of an identity waits for the winner to write
/// its account row before writing it itself.
const IDENTITY_POLLS: u32 = 5;
const IDENTITY_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Rows per page when listing a feed's buckets: a scope has about twelve a year.
const BUCKET_PAGE: i32 = 64;

const PLACE_COLS: &str = "name, category, address, lat, lng, phone, hours";
const PLACE_DEFS: &str =
    "name text, category text, address text, lat double, lng double, phone text, hours text";
const POST_COLS: &str = "id, author, author_name, place_id, place_name, lat, lng, created_at, \
     updated_at, visit_date, rating, body, text_origin, photos, menu";
const POST_DEFS: &str = "id text, author text, author_name text, place_id text, \
     place_name text, lat double, lng double, created_at bigint, updated_at bigint, \
     visit_date text, rating int, body text, text_origin text, photos frozen<list<text>>, \
     menu frozen<list<frozen<menu_item>>>";

/// The three feed tables, indexed by [`Feed`].
struct FeedDef {
    table: &'static str,
    /// The partition key column besides `bucket`.
    key: &'static str,
    /// Whether `key` is one of the post's own columns (`author`, `place_id`) or extra (`cell`).
    key_is_post_column: bool,
    /// Prefix of the feed's `post_buckets.scope`.
    scope: &'static str,
}

const FEEDS: [FeedDef; 3] = [
    FeedDef {
        table: "posts_by_author",
        key: "author",
        key_is_post_column: true,
        scope: "a",
    },
    FeedDef {
        table: "posts_by_place",
        key: "place_id",
        key_is_post_column: true,
        scope: "p",
    },
    FeedDef {
        table: "posts_by_cell",
        key: "cell",
        key_is_post_column: false,
        scope: "c",
    },
];

/// Index into [`FEEDS`].
type Feed = usize;

/// Checks a keyspace name: it is interpolated into CQL, so only `[a-z][a-z0-9_]{0,47}`.
fn check_keyspace(ks: &str) -> Result<()> {
    let b = ks.as_bytes();
    let ok = (1..=48).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(RecordError::Invalid(format!(
            "keyspace {ks:?} must be 1 to 48 characters of [a-z0-9_], starting with a letter"
        )))
    }
}

/// Every statement [`migrate`] runs, in order.
fn schema(ks: &str, replication_factor: u32) -> Vec<String> {
    let mut s = vec![
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
        ),
        format!("CREATE TYPE IF NOT EXISTS {ks}.menu_item (name text, price bigint)"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.accounts (id text, email text, display_name text, \
             password_hash text, created_at bigint, PRIMARY KEY (id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.accounts_by_email (email text, id text, \
             PRIMARY KEY (email))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.identities (provider text, subject text, \
             account text, PRIMARY KEY ((provider, subject)))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.refresh_tokens (hash text, account text, \
             family text, expires_at bigint, used boolean, used_at bigint, PRIMARY KEY (hash))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.refresh_families_revoked (family text, \
             PRIMARY KEY (family))"
        ),
        format!("CREATE TABLE IF NOT EXISTS {ks}.places (id text, {PLACE_DEFS}, PRIMARY KEY (id))"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.places_by_name (prefix text, name_token text, \
             place_id text, {PLACE_DEFS}, PRIMARY KEY ((prefix), name_token, place_id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.places_by_cell (cell text, place_id text, \
             {PLACE_DEFS}, PRIMARY KEY ((cell), place_id))"
        ),
        format!("CREATE TABLE IF NOT EXISTS {ks}.posts ({POST_DEFS}, PRIMARY KEY (id))"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.post_buckets (scope text, bucket int, \
             PRIMARY KEY ((scope), bucket)) WITH CLUSTERING ORDER BY (bucket DESC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.post_idempotency (author text, key text, \
             post_id text, fingerprint text, created_at bigint, updated_at bigint, \
             PRIMARY KEY ((author, key)))"
        ),
    ];
    for f in &FEEDS {
        let extra = if f.key_is_post_column {
            String::new()
        } else {
            format!("{} text, ", f.key)
        };
        s.push(format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{} ({extra}{POST_DEFS}, bucket int, \
             PRIMARY KEY (({}, bucket), created_at, id)) \
             WITH CLUSTERING ORDER BY (created_at DESC, id DESC)",
            f.table, f.key
        ));
    }
    s
}

/// Creates the keyspace (SimpleStrategy, `replication_factor` copies) and every table, each
/// `IF NOT EXISTS`: running it again is harmless. Used by `wagu migrate` and at start-up.
pub async fn migrate(session: &Session, keyspace: &str, replication_factor: u32) -> Result<()> {
    check_keyspace(keyspace)?;
    if replication_factor == 0 {
        return Err(RecordError::Invalid(
            "replication_factor must be at least 1".into(),
        ));
    }
    for q in schema(keyspace, replication_factor) {
        // No bound values: sent as a plain QUERY, not prepared.
        session
            .query_unpaged(q.as_str(), ())
            .await
            .map_err(|e| RecordError::cql(format!("{q}: {e}")))?;
    }
    // Prepared statements on another node must find the tables too.
    session
        .await_schema_agreement()
        .await
        .map_err(RecordError::cql)?;
    Ok(())
}

/// One feed table's statements.
struct FeedStmts {
    insert: PreparedStatement,
    delete: PreparedStatement,
    newest: PreparedStatement,
    before: PreparedStatement,
}

/// Every statement, prepared once.
struct Stmts {
    claim_email: PreparedStatement,
    release_email: PreparedStatement,
    insert_account: PreparedStatement,
    account: PreparedStatement,
    email: PreparedStatement,
    claim_identity: PreparedStatement,
    identity: PreparedStatement,
    insert_refresh: PreparedStatement,
    refresh: PreparedStatement,
    spend_refresh: PreparedStatement,
    refresh_used_at: PreparedStatement,
    revoke: PreparedStatement,
    revoked: PreparedStatement,

    insert_place: PreparedStatement,
    place: PreparedStatement,
    any_place: PreparedStatement,
    insert_name: PreparedStatement,
    delete_name: PreparedStatement,
    names_from: PreparedStatement,
    names_after: PreparedStatement,
    insert_cell: PreparedStatement,
    delete_cell: PreparedStatement,
    cell_from: PreparedStatement,
    cell_after: PreparedStatement,

    insert_post: PreparedStatement,
    cas_post: PreparedStatement,
    post: PreparedStatement,
    delete_post: PreparedStatement,
    claim_idem: PreparedStatement,
    insert_bucket: PreparedStatement,
    buckets_all: PreparedStatement,
    buckets_upto: PreparedStatement,
    feeds: [FeedStmts; 3],
}

/// `?, ?, …`, one per column of a comma-separated list.
fn marks(cols: &str) -> String {
    vec!["?"; cols.split(',').count()].join(", ")
}

async fn prep(s: &Session, q: String) -> Result<PreparedStatement> {
    s.prepare(q.as_str())
        .await
        .map_err(|e| RecordError::cql(format!("preparing {q}: {e}")))
}

async fn prep_paged(s: &Session, q: String, page: i32) -> Result<PreparedStatement> {
    let st = Statement::new(q.as_str()).with_page_size(page);
    s.prepare(st)
        .await
        .map_err(|e| RecordError::cql(format!("preparing {q}: {e}")))
}

impl Stmts {
    async fn prepare(s: &Session, ks: &str) -> Result<Self> {
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

/// The CQL backend. Cloning shares the session and the prepared statements.
#[derive(Clone)]
pub struct CqlRecords {
    session: Arc<Session>,
    st: Arc<Stmts>,
}

impl CqlRecords {
    /// Prepares every statement against an existing schema (run [`migrate`] first).
    pub async fn new(session: Arc<Session>, keyspace: &str) -> Result<Self, RecordError> {
        check_keyspace(keyspace)?;
        let st = Stmts::prepare(&session, keyspace).await?;
        Ok(CqlRecords {
            session,
            st: Arc::new(st),
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

// ---------------------------------------------------------------------------------------------
// Rows ⇄ records, by column name: one mapping per record serves every table it is copied into,
// whatever key columns that table adds.

#[derive(Debug, thiserror::Error)]
#[error("no value for bind marker {0:?}")]
struct NoValue(String);

fn put<V: SerializeValue + ?Sized>(
    v: &V,
    col: &ColumnSpec<'_>,
    w: &mut RowWriter<'_>,
) -> std::result::Result<(), SerializationError> {
    v.serialize(col.typ(), w.make_cell_writer()).map(|_| ())
}

/// Millisecond timestamps and prices as `bigint`: far below `i64::MAX` in practice.
fn big(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

#[derive(scylla::SerializeValue)]
struct MenuOut<'a> {
    name: &'a str,
    price: Option<i64>,
}

#[derive(scylla::DeserializeValue)]
struct MenuIn {
    name: String,
    price: Option<i64>,
}

/// A post's values for any post table; `cell` for `posts_by_cell`; `expected_updated_at`
/// for the compare-and-set of an edit.
struct PostRow<'a> {
    post: &'a Post,
    cell: String,
    expected_updated_at: Option<UnixMillis>,
}

impl<'a> PostRow<'a> {
    fn new(post: &'a Post, cell: String) -> Self {
        PostRow {
            post,
            cell,
            expected_updated_at: None,
        }
    }

    /// For `cas_post`: `post`'s columns, if the stored row's `updated_at` is `expected`.
    fn replacing(post: &'a Post, expected: UnixMillis) -> Self {
        PostRow {
            post,
            cell: String::new(),
            expected_updated_at: Some(expected),
        }
    }
}

impl SerializeRow for PostRow<'_> {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        w: &mut RowWriter,
    ) -> std::result::Result<(), SerializationError> {
        let p = self.post;
        let d = &p.draft;
        for col in ctx.columns() {
            match col.name() {
                "id" => put(p.id.as_str(), col, w)?,
                "author" => put(p.author.as_str(), col, w)?,
                "author_name" => put(p.author_name.as_str(), col, w)?,
                "place_id" => put(d.place_id.as_str(), col, w)?,
                "place_name" => put(p.place_name.as_str(), col, w)?,
                "lat" => put(&p.location.lat, col, w)?,
                "lng" => put(&p.location.lng, col, w)?,
                "created_at" => put(&big(p.created_at), col, w)?,
                "updated_at" => put(&big(p.updated_at), col, w)?,
                "visit_date" => put(d.visit_date.as_str(), col, w)?,
                "rating" => put(&i32::from(d.rating), col, w)?,
                "body" => put(d.text.as_str(), col, w)?,
                "text_origin" => put(d.text_origin.as_str(), col, w)?,
                "photos" => put(
                    &d.photos.iter().map(PhotoId::as_str).collect::<Vec<_>>(),
                    col,
                    w,
                )?,
                "menu" => put(
                    &d.menu
                        .iter()
                        .map(|m| MenuOut {
                            name: &m.name,
                            price: m.price.map(big),
                        })
                        .collect::<Vec<_>>(),
                    col,
                    w,
                )?,
                "bucket" => put(&bucket_of(p.created_at), col, w)?,
                "cell" => put(self.cell.as_str(), col, w)?,
                "expected_updated_at" if self.expected_updated_at.is_some() => {
                    put(&self.expected_updated_at.map(big), col, w)?
                }
                other => return Err(SerializationError::new(NoValue(other.into()))),
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// A place's values for any place table, with the index keys of that table.
struct PlaceRow<'a> {
    place: &'a Place,
    prefix: &'a str,
    token: &'a str,
    cell: &'a str,
}

impl SerializeRow for PlaceRow<'_> {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        w: &mut RowWriter,
    ) -> std::result::Result<(), SerializationError> {
        let p = self.place;
        for col in ctx.columns() {
            match col.name() {
                "id" | "place_id" => put(p.id.as_str(), col, w)?,
                "name" => put(p.name.as_str(), col, w)?,
                "category" => put(p.category.as_str(), col, w)?,
                "address" => put(p.address.as_str(), col, w)?,
                "lat" => put(&p.location.lat, col, w)?,
                "lng" => put(&p.location.lng, col, w)?,
                "phone" => put(&p.phone.as_deref(), col, w)?,
                "hours" => put(&p.hours.as_deref(), col, w)?,
                "prefix" => put(self.prefix, col, w)?,
                "name_token" => put(self.token, col, w)?,
                "cell" => put(self.cell, col, w)?,
                other => return Err(SerializationError::new(NoValue(other.into()))),
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// One result row, its columns looked up by name.
struct Cols<'f, 'm>(Vec<RawColumn<'f, 'm>>);

impl<'f, 'm> Cols<'f, 'm> {
    /// The column's value; `None` when it is null or not selected (an LWT that applied
    /// returns only `[applied]`).
    fn opt<T: DeserializeValue<'f, 'm>>(&self, name: &str) -> Result<Option<T>> {
        let Some(c) = self.0.iter().find(|c| c.spec.name() == name) else {
            return Ok(None);
        };
        if c.slice.is_none() {
            return Ok(None);
        }
        let spec: &'m ColumnSpec<'m> = c.spec;
        T::type_check(spec.typ()).map_err(|e| RecordError::cql(format!("column {name}: {e}")))?;
        T::deserialize(spec.typ(), c.slice)
            .map(Some)
            .map_err(|e| RecordError::cql(format!("column {name}: {e}")))
    }

    fn get<T: DeserializeValue<'f, 'm>>(&self, name: &str) -> Result<T> {
        self.opt(name)?
            .ok_or_else(|| RecordError::cql(format!("column {name} is null")))
    }

    /// Text that may be empty: a row written without the column (by hand, say) reads as `""`.
    fn text(&self, name: &str) -> Result<String> {
        Ok(self.opt(name)?.unwrap_or_default())
    }

    fn millis(&self, name: &str) -> Result<UnixMillis> {
        let v: i64 = self.get(name)?;
        u64::try_from(v).map_err(|_| RecordError::cql(format!("column {name} is negative: {v}")))
    }
}

/// Maps every row of a result.
fn decode<T>(res: QueryResult, mut f: impl FnMut(&Cols<'_, '_>) -> Result<T>) -> Result<Vec<T>> {
    let rows = res.into_rows_result().map_err(RecordError::cql)?;
    let mut out = Vec::with_capacity(rows.rows_num());
    for row in rows.rows::<ColumnIterator>().map_err(RecordError::cql)? {
        let cols = row
            .map_err(RecordError::cql)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(RecordError::cql)?;
        out.push(f(&Cols(cols))?);
    }
    Ok(out)
}

fn post_of(c: &Cols<'_, '_>) -> Result<Post> {
    let origin: String = c.get("text_origin")?;
    let rating: i32 = c.get("rating")?;
    Ok(Post {
        id: PostId(c.get("id")?),
        author: AccountId(c.get("author")?),
        author_name: c.text("author_name")?,
        place_name: c.text("place_name")?,
        location: LatLng {
            lat: c.get("lat")?,
            lng: c.get("lng")?,
        },
        created_at: c.millis("created_at")?,
        updated_at: c.millis("updated_at")?,
        draft: PostDraft {
            place_id: PlaceId(c.get("place_id")?),
            visit_date: c.get("visit_date")?,
            menu: c
                .opt::<Vec<MenuIn>>("menu")?
                .unwrap_or_default()
                .into_iter()
                .map(|m| MenuItem {
                    name: m.name,
                    price: m.price.and_then(|p| u64::try_from(p).ok()),
                })
                .collect(),
            rating: u8::try_from(rating)
                .map_err(|_| RecordError::cql(format!("rating {rating} out of range")))?,
            text: c.text("body")?,
            photos: c
                .opt::<Vec<String>>("photos")?
                .unwrap_or_default()
                .into_iter()
                .map(PhotoId)
                .collect(),
            text_origin: TextOrigin::parse(&origin)
                .ok_or_else(|| RecordError::cql(format!("unknown text_origin {origin:?}")))?,
        },
    })
}

fn place_of(c: &Cols<'_, '_>, id_column: &str) -> Result<Place> {
    Ok(Place {
        id: PlaceId(c.get(id_column)?),
        name: c.get("name")?,
        category: c.text("category")?,
        address: c.text("address")?,
        location: LatLng {
            lat: c.get("lat")?,
            lng: c.get("lng")?,
        },
        phone: c.opt("phone")?,
        hours: c.opt("hours")?,
    })
}

fn account_of(c: &Cols<'_, '_>) -> Result<AccountRecord> {
    Ok(AccountRecord {
        id: AccountId(c.get("id")?),
        email: c.get("email")?,
        display_name: c.text("display_name")?,
        password_hash: c.get("password_hash")?,
        created_at: c.millis("created_at")?,
    })
}

// ---------------------------------------------------------------------------------------------
// Writes

/// Estimated bytes of a key-only statement (a delete, a bucket row).
const KEY_BYTES: usize = 128;

fn post_bytes(p: &Post) -> usize {
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

fn place_bytes(p: &Place) -> usize {
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
struct Writes<'a> {
    stmts: Vec<PreparedStatement>,
    values: Vec<Box<dyn SerializeRow + Send + Sync + 'a>>,
    bytes: usize,
}

impl<'a> Writes<'a> {
    fn add(
        &mut self,
        st: &PreparedStatement,
        bytes: usize,
        values: impl SerializeRow + Send + Sync + 'a,
    ) {
        self.stmts.push(st.clone());
        self.values.push(Box::new(values));
        self.bytes += bytes;
    }

    async fn run(self, session: &Session) -> Result<()> {
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
fn feed_keys(p: &Post) -> [(Feed, String); 3] {
    [
        (0, p.author.0.clone()),
        (1, p.draft.place_id.0.clone()),
        (2, geo::encode(p.location, geo::POST_PRECISION)),
    ]
}

/// The `cell` value of a feed row: only the cell feed has that column.
fn key_if_cell(feed: Feed, key: &str) -> String {
    if FEEDS[feed].key_is_post_column {
        String::new()
    } else {
        key.to_string()
    }
}

fn scope_key(feed: Feed, key: &str) -> String {
    format!("{}:{key}", FEEDS[feed].scope)
}

/// A feed row's full primary key: (feed, key, bucket, created_at, id).
type FeedRowKey = (Feed, String, i32, i64, String);

fn feed_row_keys(p: &Post) -> Vec<FeedRowKey> {
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
fn ttl_secs(until: UnixMillis, now: UnixMillis) -> i32 {
    let secs = until
        .saturating_sub(now)
        .div_ceil(1000)
        .clamp(1, MAX_TTL_SECS);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// A spent token's `used_at`; 0 (long ago: the caller treats the reuse as a replay) if
/// absent, which only a row spent without recording it can be.
fn spent_at(used_at: Option<i64>) -> UnixMillis {
    used_at.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

/// A page size as a bound `LIMIT`.
fn limit_of(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

// ---------------------------------------------------------------------------------------------
// Accounts

impl AccountStore for CqlRecords {
    async fn create_account(&self, a: &AccountRecord) -> Result<()> {
        let owner = self
            .one(&self.st.claim_email, (&a.email, a.id.as_str()), |c| {
                Ok((c.get::<bool>("[applied]")?, c.opt::<String>("id")?))
            })
            .await?
            .ok_or_else(|| RecordError::cql("an LWT returned no row"))?;
        match owner {
            (true, _) => {}
            // Our own earlier attempt (a retry after a timeout) claimed it: carry on.
            (false, Some(id)) if id == a.id.0 => {}
            (false, _) => return Err(RecordError::Taken("email")),
        }
        let written = self
            .exec(
                &self.st.insert_account,
                (
                    a.id.as_str(),
                    &a.email,
                    &a.display_name,
                    &a.password_hash,
                    big(a.created_at),
                ),
            )
            .await;
        if let Err(e) = written {
            // Give the email back, so the user can sign up again; only if it is still ours.
            let _ = self
                .exec(&self.st.release_email, (&a.email, a.id.as_str()))
                .await;
            return Err(e);
        }
        Ok(())
    }

    async fn account(&self, id: &AccountId) -> Result<Option<AccountRecord>> {
        self.one(&self.st.account, (id.as_str(),), account_of).await
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>> {
        let id = self
            .one(&self.st.email, (email,), |c| c.get::<String>("id"))
            .await?;
        match id {
            // A claimed email whose account row is missing (its creation failed) has no account.
            Some(id) => self.account(&AccountId(id)).await,
            None => Ok(None),
        }
    }

    async fn account_by_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<AccountRecord>> {
        let id = self
            .one(&self.st.identity, (provider, subject), |c| {
                c.get::<String>("account")
            })
            .await?;
        match id {
            // Claimed, its account row not written yet (a first log-in in progress): none.
            Some(id) => self.account(&AccountId(id)).await,
            None => Ok(None),
        }
    }

    async fn create_account_for_identity(
        &self,
        a: &AccountRecord,
        provider: &str,
        subject: &str,
    ) -> Result<AccountRecord> {
        // The claim decides between concurrent first log-ins: one LWT applies, the others
        // are told the winner's account id.
        let (applied, linked) = self
            .one(
                &self.st.claim_identity,
                (provider, subject, a.id.as_str()),
                |c| Ok((c.get::<bool>("[applied]")?, c.opt::<String>("account")?)),
            )
            .await?
            .ok_or_else(|| RecordError::cql("an LWT returned no row"))?;
        let account = match (applied, linked) {
            (true, _) => a.clone(),
            // Our own earlier attempt (a retry after a timeout) claimed it: carry on.
            (false, Some(id)) if id == a.id.0 => a.clone(),
            (false, Some(id)) => {
                let id = AccountId(id);
                for attempt in 0..=IDENTITY_POLLS {
                    if let Some(linked) = self.account(&id).await? {
                        return Ok(linked);
                    }
                    if attempt < IDENTITY_POLLS {
                        tokio::time::sleep(IDENTITY_POLL_INTERVAL).await;
                    }
                }
                // The winner has not written its row: it failed after its claim (or is
                // stalled). Write this log-in's record under the claimed id; should the winner
                // still write, its row replaces this one, either being the identity's account.
                AccountRecord { id, ..a.clone() }
            }
            (false, None) => {
                return Err(RecordError::cql(
                    "a claim of an identity that did not apply returned no account",
                ));
            }
        };
        // No `accounts_by_email` claim: the email of an external identity is not a login.
        self.exec(
            &self.st.insert_account,
            (
                account.id.as_str(),
                &account.email,
                &account.display_name,
                &account.password_hash,
                big(account.created_at),
            ),
        )
        .await?;
        Ok(account)
    }

    async fn put_refresh(&self, r: &RefreshRecord) -> Result<()> {
        self.exec(
            &self.st.insert_refresh,
            (
                &r.hash,
                r.account.as_str(),
                &r.family,
                big(r.expires_at),
                ttl_secs(r.expires_at, now_millis()),
            ),
        )
        .await?;
        Ok(())
    }

    async fn use_refresh(&self, hash: &str, now: UnixMillis) -> Result<RefreshUse> {
        // Reads first: a token that is unknown, expired, revoked or already spent is answered
        // without a write (and without a Paxos round).
        let found = self
            .one(&self.st.refresh, (hash,), |c| {
                let rec = RefreshRecord {
                    hash: c.get("hash")?,
                    account: AccountId(c.get("account")?),
                    family: c.get("family")?,
                    expires_at: c.millis("expires_at")?,
                };
                let used = c.opt::<bool>("used")?.unwrap_or(false);
                Ok((rec, used, c.opt::<i64>("used_at")?))
            })
            .await?;
        let Some((rec, used, used_at)) = found else {
            return Ok(RefreshUse::Unknown);
        };
        if rec.expires_at <= now {
            return Ok(RefreshUse::Unknown);
        }
        let revoked = self
            .one(&self.st.revoked, (&rec.family,), |_| Ok(()))
            .await?;
        if revoked.is_some() {
            return Ok(RefreshUse::Unknown);
        }
        // `used` only ever goes from false to true, through the compare-and-set below, and a
        // read sees only committed compare-and-sets: "spent" here is final.
        if used {
            return Ok(RefreshUse::Reused(rec, spent_at(used_at)));
        }
        // The compare-and-set decides between concurrent uses: exactly one sees `used = false`
        // and records its `now` as `used_at`.
        let outcome = self
            .one(
                &self.st.spend_refresh,
                (ttl_secs(rec.expires_at, now), big(now), hash),
                |c| Ok((c.get::<bool>("[applied]")?, c.opt::<bool>("used")?)),
            )
            .await?
            .ok_or_else(|| RecordError::cql("an LWT returned no row"))?;
        match outcome {
            (true, _) => Ok(RefreshUse::Fresh(rec)),
            // An LWT that did not apply returns only the column of its condition: read when
            // the winner spent it.
            (false, Some(true)) => {
                let row = self
                    .one(&self.st.refresh_used_at, (hash,), |c| {
                        c.opt::<i64>("used_at")
                    })
                    .await?;
                Ok(match row {
                    Some(at) => RefreshUse::Reused(rec, spent_at(at)),
                    // Expired in between.
                    None => RefreshUse::Unknown,
                })
            }
            // The row expired between the read and the update.
            (false, _) => Ok(RefreshUse::Unknown),
        }
    }

    async fn revoke_family(&self, family: &str, until: UnixMillis) -> Result<()> {
        // A revocation that has already ended revokes nothing (a TTL cannot be zero, so
        // writing it would revoke for a second).
        let now = now_millis();
        if until <= now {
            return Ok(());
        }
        self.exec(&self.st.revoke, (family, ttl_secs(until, now)))
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Places

/// A place's name-index keys: (partition, token).
fn name_keys(p: &Place) -> Vec<(String, String)> {
    text::tokens(&p.name)
        .into_iter()
        .map(|t| (text::partition(&t).to_string(), t))
        .collect()
}

fn cell_keys(p: &Place) -> Vec<String> {
    geo::PLACE_PRECISIONS
        .iter()
        .map(|&n| geo::encode(p.location, n))
        .collect()
}

impl PlaceStore for CqlRecords {
    async fn put_place(&self, p: &Place) -> Result<()> {
        let old = self.place(&p.id).await?;
        let (names, cells) = (name_keys(p), cell_keys(p));
        let bytes = place_bytes(p);
        let mut w = Writes::default();
        for (prefix, token) in &names {
            let row = PlaceRow {
                place: p,
                prefix,
                token,
                cell: "",
            };
            w.add(&self.st.insert_name, bytes + token.len(), row);
        }
        for cell in &cells {
            let row = PlaceRow {
                place: p,
                prefix: "",
                token: "",
                cell,
            };
            w.add(&self.st.insert_cell, bytes, row);
        }
        // Only keys the new place no longer has: a delete and an insert of one row in one
        // batch share a timestamp, and then the delete wins.
        if let Some(old) = &old {
            for (prefix, token) in name_keys(old) {
                if !names.iter().any(|(_, t)| *t == token) {
                    w.add(
                        &self.st.delete_name,
                        KEY_BYTES,
                        (prefix, token, p.id.0.clone()),
                    );
                }
            }
            for cell in cell_keys(old) {
                if !cells.contains(&cell) {
                    w.add(&self.st.delete_cell, KEY_BYTES, (cell, p.id.0.clone()));
                }
            }
        }
        let row = PlaceRow {
            place: p,
            prefix: "",
            token: "",
            cell: "",
        };
        w.add(&self.st.insert_place, bytes, row);
        w.run(&self.session).await
    }

    async fn place(&self, id: &PlaceId) -> Result<Option<Place>> {
        self.one(&self.st.place, (id.as_str(),), |c| place_of(c, "id"))
            .await
    }

    async fn has_places(&self) -> Result<bool> {
        let res = self.exec(&self.st.any_place, ()).await?;
        Ok(res.into_rows_result().map_err(RecordError::cql)?.rows_num() > 0)
    }

    async fn places_by_token(
        &self,
        prefix: &str,
        after: Option<&NameCursor>,
        limit: usize,
    ) -> Result<Vec<(String, Place)>> {
        if limit == 0 || prefix.is_empty() {
            return Ok(Vec::new());
        }
        let partition = text::partition(prefix);
        let end = text::prefix_end(prefix);
        let row = |c: &Cols<'_, '_>| Ok((c.get::<String>("name_token")?, place_of(c, "place_id")?));
        let res = match after {
            Some(a) if a.token.as_str() >= end.as_str() => return Ok(Vec::new()),
            // A cursor before the range (from another query) starts it from the top.
            Some(a) if a.token.as_str() >= prefix => {
                self.exec(
                    &self.st.names_after,
                    (partition, &a.token, a.id.as_str(), &end, limit_of(limit)),
                )
                .await?
            }
            _ => {
                self.exec(
                    &self.st.names_from,
                    (partition, prefix, &end, limit_of(limit)),
                )
                .await?
            }
        };
        decode(res, row)
    }

    async fn places_in_cell(
        &self,
        cell: &str,
        after: Option<&PlaceId>,
        limit: usize,
    ) -> Result<Vec<Place>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let res = match after {
            Some(a) => {
                self.exec(&self.st.cell_after, (cell, a.as_str(), limit_of(limit)))
                    .await?
            }
            None => {
                self.exec(&self.st.cell_from, (cell, limit_of(limit)))
                    .await?
            }
        };
        decode(res, |c| place_of(c, "place_id"))
    }
}

// ---------------------------------------------------------------------------------------------
// Posts

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
            .ok_or_else(|| RecordError::cql("an LWT returned no row"))?;
        if applied {
            self.write_post(post).await?;
            return Ok(Created::Created(post.clone()));
        }
        if stored_fp.as_deref() != Some(idem.fingerprint.as_str()) {
            return Err(RecordError::IdempotencyMismatch);
        }
        let stored =
            PostId(stored_id.ok_or_else(|| RecordError::cql("idempotency row without a post id"))?);
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
            .ok_or_else(|| RecordError::cql("an LWT returned no row"))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BUCKET_MILLIS, PostCursor};
    use wagu_proto::model::Bounds;

    #[test]
    fn keyspace_names_are_checked() {
        for ok in ["wagu", "w", "wagu_test_1", &"a".repeat(48)] {
            assert!(check_keyspace(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Wagu",
            "1wagu",
            "_w",
            "wagu-x",
            "w; DROP",
            "wagu.x",
            &"a".repeat(49),
        ] {
            assert!(
                matches!(check_keyspace(bad), Err(RecordError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ttls_are_positive_and_capped() {
        assert_eq!(ttl_secs(1_000, 2_000), 1);
        assert_eq!(ttl_secs(2_001, 1_000), 2);
        assert_eq!(ttl_secs(u64::MAX, 0), MAX_TTL_SECS as i32);
    }

    fn ll(lat: f64, lng: f64) -> LatLng {
        LatLng { lat, lng }
    }

    fn place(id: &str, name: &str, at: LatLng) -> Place {
        Place {
            id: PlaceId(id.into()),
            name: name.into(),
            category: "korean".into(),
            address: "을지로 1".into(),
            location: at,
            phone: None,
            hours: Some("Mo-Su 10:00-22:00".into()),
        }
    }

    fn post(id: &str, author: &str, place: &Place, created_at: u64) -> Post {
        Post {
            id: PostId(id.into()),
            author: AccountId(author.into()),
            author_name: "Kim".into(),
            place_name: place.name.clone(),
            location: place.location,
            created_at,
            updated_at: created_at,
            draft: PostDraft {
                place_id: place.id.clone(),
                visit_date: "2026-11-20".into(),
                menu: vec![
                    MenuItem {
                        name: "냉면".into(),
                        price: Some(14_000),
                    },
                    MenuItem {
                        name: "만두".into(),
                        price: None,
                    },
                ],
                rating: 4,
                text: "맛있어요".into(),
                photos: vec![PhotoId("ph_1".into())],
                text_origin: TextOrigin::AiEdited,
            },
        }
    }

    fn idem(key: &str, fp: &str) -> Idempotency {
        Idempotency {
            key: key.into(),
            fingerprint: fp.into(),
        }
    }

    fn ids(posts: &[Post]) -> Vec<&str> {
        posts.iter().map(|p| p.id.as_str()).collect()
    }

    /// Every primitive against the test bed's Cassandra, in a keyspace of its own that is
    /// dropped afterwards (also when an assertion fails).
    #[tokio::test(flavor = "multi_thread")]
    async fn cql_records_against_the_test_bed() {
        let test = "cql_records_against_the_test_bed";
        let Some(nodes) = crate::testbed::service(crate::testbed::CQL_NODES, test) else {
            return;
        };
        let session = crate::cql::connect(&crate::cql::parse_nodes(&nodes))
            .await
            .unwrap_or_else(|e| panic!("CQL promised at {nodes} but unreachable: {e}"));
        let session = Arc::new(session);
        let ks = format!("wagu_records_{}", rand::random::<u32>());
        migrate(&session, &ks, 1).await.unwrap();
        // Idempotent.
        migrate(&session, &ks, 1).await.unwrap();
        assert!(matches!(
            migrate(&session, "Bad-Name", 1).await,
            Err(RecordError::Invalid(_))
        ));
        let r = CqlRecords::new(session.clone(), &ks).await.unwrap();
        r.ping().await.unwrap();
        // Spawned: the futures must be `Send` for the HTTP handlers, and a panic inside still
        // lets the keyspace be dropped below.
        let outcome = tokio::spawn(async move {
            accounts(&r).await;
            places(&r).await;
            posts(&r).await;
        })
        .await;
        session
            .query_unpaged(format!("DROP KEYSPACE {ks}"), ())
            .await
            .unwrap();
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    async fn accounts(r: &CqlRecords) {
        let a = AccountRecord {
            id: AccountId("acc1".into()),
            email: "kim@example.com".into(),
            display_name: "Kim".into(),
            password_hash: "$argon2id$v=19$x".into(),
            created_at: 1_700_000_000_000,
        };
        r.create_account(&a).await.unwrap();
        // A retry of the same creation is fine; another account with the email is not.
        r.create_account(&a).await.unwrap();
        let other = AccountRecord {
            id: AccountId("acc2".into()),
            ..a.clone()
        };
        assert!(matches!(
            r.create_account(&other).await,
            Err(RecordError::Taken("email"))
        ));
        assert_eq!(r.account(&a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(r.account(&other.id).await.unwrap(), None);
        assert_eq!(
            r.account_by_email("kim@example.com").await.unwrap(),
            Some(a.clone())
        );
        assert_eq!(r.account_by_email("lee@example.com").await.unwrap(), None);

        let now = now_millis();
        let tok = |hash: &str, family: &str, expires_at| RefreshRecord {
            hash: hash.into(),
            account: a.id.clone(),
            family: family.into(),
            expires_at,
        };
        let t1 = tok("h1", "f1", now + 3_600_000);
        r.put_refresh(&t1).await.unwrap();
        assert_eq!(
            r.use_refresh("h1", now).await.unwrap(),
            RefreshUse::Fresh(t1.clone())
        );
        // Reused, with the time of the use that spent it (answered from the read).
        assert_eq!(
            r.use_refresh("h1", now + 5).await.unwrap(),
            RefreshUse::Reused(t1.clone(), now)
        );
        assert_eq!(
            r.use_refresh("nope", now).await.unwrap(),
            RefreshUse::Unknown
        );
        // Expired by the caller's clock, though its TTL has not run out.
        r.put_refresh(&tok("h2", "f2", now + 1_000)).await.unwrap();
        assert_eq!(
            r.use_refresh("h2", now + 1_000).await.unwrap(),
            RefreshUse::Unknown
        );
        // A revoked family's tokens are unknown.
        r.put_refresh(&tok("h3", "f3", now + 3_600_000))
            .await
            .unwrap();
        r.revoke_family("f3", now + 3_600_000).await.unwrap();
        assert_eq!(r.use_refresh("h3", now).await.unwrap(), RefreshUse::Unknown);
        // Two concurrent uses: exactly one is fresh, the other reused at the winner's time
        // (usually through the compare-and-set that did not apply and the serial read).
        for i in 0..5 {
            let t = tok(&format!("c{i}"), "f4", now + 3_600_000);
            r.put_refresh(&t).await.unwrap();
            let (x, y) = tokio::join!(r.use_refresh(&t.hash, now), r.use_refresh(&t.hash, now + 1));
            let got = [x.unwrap(), y.unwrap()];
            let want = match &got[0] {
                RefreshUse::Fresh(_) => [RefreshUse::Fresh(t.clone()), RefreshUse::Reused(t, now)],
                _ => [RefreshUse::Reused(t.clone(), now + 1), RefreshUse::Fresh(t)],
            };
            assert_eq!(got, want);
        }
        // The statements of that path: a spend that does not apply returns `used` only, and
        // the serial read finds the winner's `used_at`.
        let t = tok("lwt", "f5", now + 3_600_000);
        r.put_refresh(&t).await.unwrap();
        let spend = |at: u64| {
            r.one(&r.st.spend_refresh, (60, big(at), t.hash.as_str()), |c| {
                Ok((c.get::<bool>("[applied]")?, c.opt::<bool>("used")?))
            })
        };
        assert_eq!(spend(now + 7).await.unwrap(), Some((true, None)));
        assert_eq!(spend(now + 8).await.unwrap(), Some((false, Some(true))));
        let at = r
            .one(&r.st.refresh_used_at, (t.hash.as_str(),), |c| {
                c.opt::<i64>("used_at")
            })
            .await
            .unwrap();
        assert_eq!(at, Some(Some(big(now + 7))));
        assert_eq!(
            r.use_refresh(&t.hash, now + 9).await.unwrap(),
            RefreshUse::Reused(t.clone(), now + 7)
        );

        // External identities. A retry of the same creation (same id) writes the row again.
        let oidc = AccountRecord {
            id: AccountId("oidc1".into()),
            email: "kim@example.com".into(),
            password_hash: String::new(),
            ..a.clone()
        };
        assert_eq!(
            r.create_account_for_identity(&oidc, "kakao", "42")
                .await
                .unwrap(),
            oidc
        );
        assert_eq!(
            r.create_account_for_identity(&oidc, "kakao", "42")
                .await
                .unwrap(),
            oidc
        );
        assert_eq!(
            r.account_by_identity("kakao", "42").await.unwrap(),
            Some(oidc.clone())
        );
        // The email stays with the password account.
        assert_eq!(
            r.account_by_email("kim@example.com").await.unwrap(),
            Some(a.clone())
        );
        // A claim whose account row was never written (the first log-in failed right after
        // its claim): nothing to find, and the next log-in writes its record under the
        // claimed id.
        let claim = r
            .one(&r.st.claim_identity, ("kakao", "43", "stray"), |c| {
                c.get::<bool>("[applied]")
            })
            .await
            .unwrap();
        assert_eq!(claim, Some(true));
        assert_eq!(r.account_by_identity("kakao", "43").await.unwrap(), None);
        let late = AccountRecord {
            id: AccountId("oidc2".into()),
            ..oidc.clone()
        };
        let repaired = AccountRecord {
            id: AccountId("stray".into()),
            ..oidc.clone()
        };
        assert_eq!(
            r.create_account_for_identity(&late, "kakao", "43")
                .await
                .unwrap(),
            repaired
        );
        assert_eq!(r.account(&late.id).await.unwrap(), None);
        assert_eq!(
            r.account_by_identity("kakao", "43").await.unwrap(),
            Some(repaired)
        );
    }

    async fn places(r: &CqlRecords) {
        assert!(!r.has_places().await.unwrap());
        let seoul = ll(37.5665, 126.978);
        let paul = place("p:bistro", "Bistro Paul", seoul);
        let papa = place("p:papa", "Papa Paul", ll(37.5670, 126.9785));
        let mut golbaengi = place("p:gol", "을지로 골뱅이", ll(37.566, 126.991));
        golbaengi.phone = Some("+82-2-0000-0000".into());
        for p in [&paul, &papa, &golbaengi] {
            r.put_place(p).await.unwrap();
        }
        assert!(r.has_places().await.unwrap());
        assert_eq!(
            r.place(&golbaengi.id).await.unwrap(),
            Some(golbaengi.clone())
        );
        assert_eq!(r.place(&PlaceId("p:none".into())).await.unwrap(), None);

        // "pa" matches "papa paul" and "paul" twice; ordered by (token, id).
        let rows = r.places_by_token("pa", None, 10).await.unwrap();
        let keys: Vec<(&str, &str)> = rows
            .iter()
            .map(|(t, p)| (t.as_str(), p.id.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("papa paul", "p:papa"),
                ("paul", "p:bistro"),
                ("paul", "p:papa")
            ]
        );
        assert_eq!(rows[1].1, paul);
        // Paging with the multi-column cursor, one row at a time.
        let mut after: Option<NameCursor> = None;
        let mut walked = Vec::new();
        loop {
            let page = r.places_by_token("pa", after.as_ref(), 1).await.unwrap();
            let Some((token, p)) = page.into_iter().next() else {
                break;
            };
            walked.push((token.clone(), p.id.0.clone()));
            after = Some(NameCursor { token, id: p.id });
        }
        let walked: Vec<(&str, &str)> = walked
            .iter()
            .map(|(t, i)| (t.as_str(), i.as_str()))
            .collect();
        assert_eq!(walked, keys);
        // A cursor from another query, before the range, starts at the top.
        let early = NameCursor {
            token: "a".into(),
            id: PlaceId("x".into()),
        };
        assert_eq!(
            r.places_by_token("pa", Some(&early), 10)
                .await
                .unwrap()
                .len(),
            3
        );
        let page = r.search_places("PA", None, 1).await.unwrap();
        assert_eq!(ids_of(&page.items), ["p:papa"]);
        let page = r
            .search_places("pa", page.next.as_deref(), 5)
            .await
            .unwrap();
        // Dedup is per page: "paul" of Papa Paul is a new row on this one.
        assert_eq!(ids_of(&page.items), ["p:bistro", "p:papa"]);
        assert_eq!(
            ids_of(&r.search_places("골뱅", None, 5).await.unwrap().items),
            ["p:gol"]
        );

        // Renaming and moving replace the index rows.
        let moved = Place {
            name: "Chez Marie".into(),
            location: ll(35.1796, 129.0756),
            ..paul.clone()
        };
        r.put_place(&moved).await.unwrap();
        let rows = r.places_by_token("pa", None, 10).await.unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(rows.iter().all(|(_, p)| p.id == papa.id));
        assert_eq!(
            r.places_by_token("marie", None, 10).await.unwrap()[0].1,
            moved
        );
        for cell in cell_keys(&paul) {
            let here = r.places_in_cell(&cell, None, 10).await.unwrap();
            assert!(here.iter().all(|p| p.id != paul.id), "{cell}: {here:?}");
        }
        for cell in cell_keys(&moved) {
            assert_eq!(
                r.places_in_cell(&cell, None, 10).await.unwrap(),
                vec![moved.clone()]
            );
        }
        // A change of details only rewrites the copies.
        let renamed = Place {
            category: "bistro".into(),
            ..moved.clone()
        };
        r.put_place(&renamed).await.unwrap();
        assert_eq!(
            r.places_by_token("chez", None, 10).await.unwrap()[0].1,
            renamed
        );
        let cell = geo::encode(seoul, 4);
        let all = r.places_in_cell(&cell, None, 10).await.unwrap();
        assert_eq!(ids_of(&all), ["p:gol", "p:papa"]);
        let rest = r
            .places_in_cell(&cell, Some(&golbaengi.id), 10)
            .await
            .unwrap();
        assert_eq!(ids_of(&rest), ["p:papa"]);
        let b = Bounds {
            sw: ll(37.56, 126.97),
            ne: ll(37.57, 126.995),
        };
        let page = r.places_in_bounds(&b, None, 10).await.unwrap();
        let mut got = ids_of(&page.items);
        got.sort();
        assert_eq!(got, ["p:gol", "p:papa"]);
    }

    fn ids_of(places: &[Place]) -> Vec<&str> {
        places.iter().map(|p| p.id.as_str()).collect()
    }

    async fn posts(r: &CqlRecords) {
        let here = place("p:here", "Here", ll(37.5665, 126.978));
        let there = place("p:there", "There", ll(35.1796, 129.0756));
        let t0 = 1_790_000_000_000;
        // Three buckets, two posts in the middle one, same millisecond for two of them.
        let times = [
            t0,
            t0 + BUCKET_MILLIS,
            t0 + BUCKET_MILLIS,
            t0 + BUCKET_MILLIS + 5,
            t0 + 3 * BUCKET_MILLIS,
        ];
        let mut all = Vec::new();
        for (i, t) in times.iter().enumerate() {
            let p = post(&format!("post{i}"), "acc1", &here, *t);
            assert_eq!(
                r.create_post(&p, None).await.unwrap(),
                Created::Created(p.clone())
            );
            all.push(p);
        }
        assert_eq!(r.post(&all[0].id).await.unwrap(), Some(all[0].clone()));
        assert_eq!(r.post(&PostId("none".into())).await.unwrap(), None);
        let mut newest_first = all.clone();
        newest_first.sort_by(|a, b| PostCursor::of(b).cmp(&PostCursor::of(a)));
        let author = Scope::Author(AccountId("acc1".into()));
        let got = r.posts_in_scope(&author, None, 10).await.unwrap();
        assert_eq!(got, newest_first);
        // Paged two at a time through the buckets.
        let mut cursor: Option<String> = None;
        let mut walked = Vec::new();
        loop {
            let page = r.feed(&author, cursor.as_deref(), 2).await.unwrap();
            walked.extend(page.items);
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(ids(&walked), ids(&newest_first));
        let before = PostCursor::of(&newest_first[1]);
        let got = r.posts_in_scope(&author, Some(&before), 2).await.unwrap();
        assert_eq!(ids(&got), ids(&newest_first[2..4]));
        assert_eq!(
            r.posts_in_scope(&Scope::Place(here.id.clone()), None, 10)
                .await
                .unwrap()
                .len(),
            5
        );
        let near = r.posts_near(here.location, 1.0, None, 3).await.unwrap();
        assert_eq!(ids(&near.items), ids(&newest_first[..3]));

        // Editing moves it to another place and cell.
        let old = all[0].clone();
        let mut new = post("post0", "acc1", &there, old.created_at);
        new.updated_at = old.created_at + 1;
        new.draft.menu.clear();
        new.draft.photos.clear();
        new.draft.text_origin = TextOrigin::Author;
        r.replace_post(&old, &new).await.unwrap();
        assert_eq!(r.post(&old.id).await.unwrap(), Some(new.clone()));
        let at_here = r
            .posts_in_scope(&Scope::Place(here.id.clone()), None, 10)
            .await
            .unwrap();
        assert!(at_here.iter().all(|p| p.id != old.id));
        let at_there = r
            .posts_in_scope(&Scope::Place(there.id.clone()), None, 10)
            .await
            .unwrap();
        assert_eq!(at_there, [new.clone()]);
        let cell = geo::encode(there.location, geo::POST_PRECISION);
        assert_eq!(
            r.posts_in_scope(&Scope::Cell(cell), None, 10)
                .await
                .unwrap(),
            [new.clone()]
        );
        let old_cell = geo::encode(here.location, geo::POST_PRECISION);
        assert_eq!(
            r.posts_in_scope(&Scope::Cell(old_cell.clone()), None, 10)
                .await
                .unwrap()
                .len(),
            4
        );
        assert!(
            r.posts_in_scope(&author, None, 10)
                .await
                .unwrap()
                .contains(&new)
        );
        // An edit from a stale copy (the version before) is a conflict and writes nothing.
        let mut stale = new.clone();
        stale.draft.text = "stale".into();
        stale.updated_at = new.updated_at + 1;
        assert!(matches!(
            r.replace_post(&old, &stale).await,
            Err(RecordError::Conflict("post"))
        ));
        assert_eq!(r.post(&old.id).await.unwrap(), Some(new.clone()));
        assert_eq!(
            r.posts_in_scope(&Scope::Place(there.id.clone()), None, 10)
                .await
                .unwrap(),
            [new.clone()]
        );
        // Deleting removes it everywhere; editing it afterwards is a conflict and does not
        // bring it back.
        r.delete_post(&new).await.unwrap();
        assert_eq!(r.post(&new.id).await.unwrap(), None);
        assert!(matches!(
            r.replace_post(&new, &new).await,
            Err(RecordError::Conflict("post"))
        ));
        assert_eq!(r.post(&new.id).await.unwrap(), None);
        for s in [
            author.clone(),
            Scope::Place(there.id.clone()),
            Scope::Cell(old_cell),
        ] {
            let left = r.posts_in_scope(&s, None, 10).await.unwrap();
            assert!(left.iter().all(|p| p.id != new.id), "{s:?}");
        }

        // Idempotency keys.
        let first = post("idem1", "acc2", &here, t0 + 10);
        let k = idem("key-1", "fp-1");
        assert_eq!(
            r.create_post(&first, Some(&k)).await.unwrap(),
            Created::Created(first.clone())
        );
        let again = post("idem1-retry", "acc2", &here, t0 + 20);
        assert_eq!(
            r.create_post(&again, Some(&k)).await.unwrap(),
            Created::Replayed(first.clone())
        );
        assert!(matches!(
            r.create_post(&again, Some(&idem("key-1", "fp-2"))).await,
            Err(RecordError::IdempotencyMismatch)
        ));
        // Keys are per author.
        let other_author = post("idem2", "acc3", &here, t0 + 10);
        assert_eq!(
            r.create_post(&other_author, Some(&k)).await.unwrap(),
            Created::Created(other_author.clone())
        );
        // The key's post is gone: the replay writes it again, under the key's id.
        r.delete_post(&first).await.unwrap();
        let replay = post("idem1-late", "acc2", &here, t0 + 10);
        match r.create_post(&replay, Some(&k)).await.unwrap() {
            Created::Created(p) => {
                assert_eq!(p.id, first.id);
                assert_eq!(
                    (p.created_at, p.updated_at),
                    (first.created_at, first.updated_at)
                );
                assert_eq!(r.post(&first.id).await.unwrap(), Some(p));
            }
            other => panic!("{other:?}"),
        }
        // A first request that claimed its key but is slow to write its post: the retry
        // writes it after polling, under the key's id and timestamps; when the first request
        // finally writes, both wrote the same rows, and the post is listed once.
        let slow = post("slow", "acc5", &here, t0 + 50);
        let k3 = idem("key-3", "fp");
        let claimed = r
            .one(
                &r.st.claim_idem,
                (
                    slow.author.as_str(),
                    &k3.key,
                    slow.id.as_str(),
                    &k3.fingerprint,
                    big(slow.created_at),
                    big(slow.updated_at),
                ),
                |c| c.get::<bool>("[applied]"),
            )
            .await
            .unwrap();
        assert_eq!(claimed, Some(true));
        let retry = post("slow-retry", "acc5", &here, t0 + 60);
        assert_eq!(
            r.create_post(&retry, Some(&k3)).await.unwrap(),
            Created::Created(slow.clone())
        );
        r.write_post(&slow).await.unwrap();
        let theirs = Scope::Author(AccountId("acc5".into()));
        assert_eq!(
            r.posts_in_scope(&theirs, None, 10).await.unwrap(),
            std::slice::from_ref(&slow)
        );
        assert_eq!(r.post(&slow.id).await.unwrap(), Some(slow.clone()));
        r.delete_post(&slow).await.unwrap();
        assert!(
            r.posts_in_scope(&theirs, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Concurrent requests with one key end with one post.
        let k2 = idem("key-2", "fp");
        let (a, b) = (
            post("race-a", "acc2", &here, t0 + 30),
            post("race-b", "acc2", &here, t0 + 30),
        );
        let (x, y) = tokio::join!(r.create_post(&a, Some(&k2)), r.create_post(&b, Some(&k2)));
        let id_of = |c: Created| match c {
            Created::Created(p) | Created::Replayed(p) => p.id,
        };
        let (x, y) = (id_of(x.unwrap()), id_of(y.unwrap()));
        assert_eq!(x, y);

        // A post too large for one batch (Cassandra refuses 50 KiB) is written one by one.
        let mut big_post = post("big", "acc4", &here, t0 + 40);
        big_post.draft.text = "맛".repeat(5_000);
        big_post.draft.menu = (0..30)
            .map(|i| MenuItem {
                name: format!("{i}{}", "국".repeat(98)),
                price: Some(wagu_proto::records::MAX_PRICE),
            })
            .collect();
        assert!(post_bytes(&big_post) * 4 > BATCH_BYTES);
        r.create_post(&big_post, None).await.unwrap();
        assert_eq!(r.post(&big_post.id).await.unwrap(), Some(big_post.clone()));
        let mine = Scope::Author(AccountId("acc4".into()));
        assert_eq!(
            r.posts_in_scope(&mine, None, 5).await.unwrap(),
            [big_post.clone()]
        );
        let mut moved = big_post.clone();
        moved.draft.place_id = there.id.clone();
        moved.location = there.location;
        r.replace_post(&big_post, &moved).await.unwrap();
        assert_eq!(
            r.posts_in_scope(&mine, None, 5).await.unwrap(),
            [moved.clone()]
        );
        r.delete_post(&moved).await.unwrap();
        assert!(r.posts_in_scope(&mine, None, 5).await.unwrap().is_empty());
    }
}
