//! The CQL schema: the keyspace name rule, the column lists every table shares, the feed
//! tables' definitions and the `CREATE … IF NOT EXISTS` statements [`migrate`] runs. The
//! tables themselves are described in `docs/RECORDS.md`.
//!
//! The name-token column is `name_token`, not `token`: `token` is reserved in CQL. Feed rows
//! carry the whole post, so a feed page is one read per partition; `post_buckets.scope` is
//! `a:{author}`, `p:{place}` or `c:{cell}`.
//!
//! Schema changes: `migrate` only creates what does not exist. `refresh_tokens.used_at` and
//! `post_idempotency.created_at` / `updated_at` are part of `CREATE TABLE IF NOT EXISTS`, so a
//! keyspace created before them needs `ALTER TABLE … ADD` by hand (statements preparing
//! against it fail with "undefined column"). A new table (`identities`) needs nothing: the
//! next `migrate` (start-up runs one) creates it in an existing keyspace.
//!
//! What it does not do: prepare statements (`statements.rs`) or run them.

use scylla::client::session::Session;

use crate::records::{RecordError, Result};

pub(super) const PLACE_COLS: &str = "name, category, address, lat, lng, phone, hours";
pub(super) const PLACE_DEFS: &str =
    "name text, category text, address text, lat double, lng double, phone text, hours text";
pub(super) const POST_COLS: &str = "id, author, author_name, place_id, place_name, lat, lng, created_at, \
     updated_at, visit_date, rating, body, text_origin, photos, menu";
pub(super) const POST_DEFS: &str = "id text, author text, author_name text, place_id text, \
     place_name text, lat double, lng double, created_at bigint, updated_at bigint, \
     visit_date text, rating int, body text, text_origin text, photos frozen<list<text>>, \
     menu frozen<list<frozen<menu_item>>>";

/// The three feed tables, indexed by [`Feed`].
pub(super) struct FeedDef {
    pub(super) table: &'static str,
    /// The partition key column besides `bucket`.
    pub(super) key: &'static str,
    /// Whether `key` is one of the post's own columns (`author`, `place_id`) or extra (`cell`).
    pub(super) key_is_post_column: bool,
    /// Prefix of the feed's `post_buckets.scope`.
    pub(super) scope: &'static str,
}

pub(super) const FEEDS: [FeedDef; 3] = [
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
pub(super) type Feed = usize;

/// Checks a keyspace name against the one rule, [`crate::cql::check_keyspace`].
pub(super) fn check_keyspace(ks: &str) -> Result<()> {
    crate::cql::check_keyspace(ks).map_err(|e| RecordError::Invalid(format!("keyspace {ks:?} {e}")))
}

/// Every statement [`migrate`] runs, in order.
pub(super) fn schema(ks: &str, replication_factor: u32) -> Vec<String> {
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
    s.extend(crate::records::photos_cql::schema(ks));
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
            .map_err(|e| RecordError::cql_in(q.as_str(), e))?;
    }
    // Prepared statements on another node must find the tables too.
    session
        .await_schema_agreement()
        .await
        .map_err(RecordError::cql)?;
    Ok(())
}
