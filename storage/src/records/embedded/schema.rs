//! The redb tables (described in `docs/RECORDS.md`), the schema version, and opening the file:
//! every table is created at open, so a read never meets "table does not exist".
//!
//! Compatibility: `used_at` and the idempotency timestamps were added to schema version 1
//! as optional JSON fields, so older files still read. A token spent before `used_at` was
//! recorded reports it as 0 (long ago: the caller treats the reuse as a replay); an older
//! idempotency entry without timestamps lets a replay after deletion keep its own.
//! `identities` was added to version 1 as a new table: opening an older file creates it
//! (empty), as it creates every missing table.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

use super::OrEmbedded;
use crate::records::{RecordError, Result};

/// The file, under the data directory.
pub(super) const FILE_NAME: &str = "records.redb";
/// Bumped when a table's key or value changes shape; a file of another version is refused
/// rather than misread.
pub(super) const SCHEMA_VERSION: u64 = 1;
pub(super) const SCHEMA_KEY: &str = "schema";

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
pub(super) const ACCOUNTS_BY_EMAIL: TableDefinition<&str, &str> =
    TableDefinition::new("accounts_by_email");
/// (provider, subject) → account id: accounts created through an OpenID Connect log-in.
pub(super) const IDENTITIES: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("identities");
pub(super) const REFRESH: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_tokens");
pub(super) const REFRESH_BY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("refresh_by_expiry");
pub(super) const REVOKED: TableDefinition<&str, u64> = TableDefinition::new("revoked_families");
pub(super) const REVOKED_BY_UNTIL: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("revoked_by_until");
pub(super) const PLACES: TableDefinition<&str, &[u8]> = TableDefinition::new("places");
pub(super) const PLACES_BY_NAME: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("places_by_name");
pub(super) const PLACES_BY_CELL: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("places_by_cell");
pub(super) const POSTS: TableDefinition<&str, &[u8]> = TableDefinition::new("posts");
// Feeds are keyed (scope, created_at, post id) with no time bucket: the CQL backend buckets
// by 30 days because a Cassandra partition must stay small, but a B-tree range has no
// partition to outgrow, and one reverse scan of the scope's prefix reads newest first.
pub(super) const POSTS_BY_AUTHOR: FeedTable = TableDefinition::new("posts_by_author");
pub(super) const POSTS_BY_PLACE: FeedTable = TableDefinition::new("posts_by_place");
pub(super) const POSTS_BY_CELL: FeedTable = TableDefinition::new("posts_by_cell");
pub(super) const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("idempotency");
pub(super) const IDEMPOTENCY_BY_EXPIRY: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("idempotency_by_expiry");

pub(super) type FeedTable = TableDefinition<'static, (&'static str, u64, &'static str), ()>;

pub(super) fn open_blocking(dir: &Path) -> Result<Database> {
    std::fs::create_dir_all(dir).map_err(|e| RecordError::Storage(e.into()))?;
    let path = dir.join(FILE_NAME);
    let db = Database::create(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => RecordError::embedded(format!(
            "{} is in use by another server: one server per data directory",
            path.display()
        )),
        e => RecordError::embedded(format!("{}: {e}", path.display())),
    })?;
    // Create every table now, so a read never meets "table does not exist".
    let w = db.begin_write().redb()?;
    {
        let mut meta = w.open_table(META).redb()?;
        let found = meta.get(SCHEMA_KEY).redb()?.map(|v| v.value());
        match found {
            None => {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION).redb()?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(RecordError::embedded(format!(
                    "{} has schema version {v}; this server reads version {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
    }
    w.open_table(ACCOUNTS).redb()?;
    w.open_table(ACCOUNTS_BY_EMAIL).redb()?;
    w.open_table(IDENTITIES).redb()?;
    w.open_table(REFRESH).redb()?;
    w.open_table(REFRESH_BY_EXPIRY).redb()?;
    w.open_table(REVOKED).redb()?;
    w.open_table(REVOKED_BY_UNTIL).redb()?;
    w.open_table(PLACES).redb()?;
    w.open_table(PLACES_BY_NAME).redb()?;
    w.open_table(PLACES_BY_CELL).redb()?;
    w.open_table(POSTS).redb()?;
    w.open_table(POSTS_BY_AUTHOR).redb()?;
    w.open_table(POSTS_BY_PLACE).redb()?;
    w.open_table(POSTS_BY_CELL).redb()?;
    w.open_table(IDEMPOTENCY).redb()?;
    w.open_table(IDEMPOTENCY_BY_EXPIRY).redb()?;
    w.commit().redb()?;
    Ok(db)
}
