//! Records in one `redb` file, `<data_dir>/records.redb`: the default backend, needing nothing
//! installed.
//!
//! Why redb: it is pure Rust (no C toolchain beyond the one we already build with), its file
//! format is stable since 1.0, a commit is ACID over copy-on-write B-trees (a crash at any
//! point leaves the last committed state, nothing half-written), and its tables scan ordered
//! key ranges in both directions — which is all the query-first layout needs.
//!
//! Layout: every CQL table of the other backend is a redb table here, keyed the same way, so a
//! primitive is the same range scan in both and the contract suite cannot tell them apart.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | `schema` version |
//! | `accounts` | account id | JSON [`AccountRecord`] |
//! | `accounts_by_email` | email | account id |
//! | `identities` | (OpenID Connect provider, subject) | account id |
//! | `refresh_tokens` | token hash | JSON `{record, used, used_at}` |
//! | `refresh_by_expiry` | (expires_at, hash) | — (for pruning) |
//! | `revoked_families` | family | revoked until |
//! | `revoked_by_until` | (until, family) | — (for pruning) |
//! | `places` | place id | JSON [`Place`] (and its exact coordinates, see `ExactOut`) |
//! | `places_by_name` | (token, place id) | — |
//! | `places_by_cell` | (geohash, place id) | — (precisions 6, 5 and 4) |
//! | `posts` | post id | JSON [`Post`] (and its exact coordinates) |
//! | `posts_by_author`, `posts_by_place`, `posts_by_cell` | (scope, created_at, post id) | — |
//! | `idempotency` | (author, key) | JSON `{post_id, fingerprint, expires_at, created_at, updated_at}` |
//! | `idempotency_by_expiry` | (expires_at, author, key) | — (for pruning) |
//!
//! Every write is one write transaction, so index entries never disagree with the rows they
//! point at, and it is on disk (redb's default durability: fsync'd) when the call returns.
//! redb runs one write transaction at a time (reads run alongside, on snapshots); that
//! serialisation is what makes spending a refresh token, an idempotency key or an edit's
//! compare-and-set (`replace_post` applies only over the `updated_at` the caller read) atomic.
//! Because writes queue, a call that may find it has nothing to write decides that first on a
//! read snapshot: `use_refresh` of an unknown, expired, revoked or already spent token never
//! opens a write transaction, so a flood of made-up tokens costs reads, not fsyncs; a token
//! that looks live is checked again inside the write transaction before it is spent.
//! Expiring rows (tokens, revocations, idempotency keys) have no TTL as in CQL: they are
//! pruned a small batch at a time by writes that happen anyway (spending a live token,
//! creating a post).
//!
//! Compatibility: `used_at` and the idempotency timestamps were added to schema version 1
//! as optional JSON fields, so older files still read. A token spent before `used_at` was
//! recorded reports it as 0 (long ago: the caller treats the reuse as a replay); an older
//! idempotency entry without timestamps lets a replay after deletion keep its own.
//! `identities` was added to version 1 as a new table: opening an older file creates it
//! (empty), as it creates every missing table.
//!
//! What it does not do: multi-process access. redb locks the file, so one server owns a data
//! directory; a second one on the same directory fails at start-up instead of corrupting it.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use wagu_proto::PlaceId;
use wagu_proto::model::{LatLng, UnixMillis};
use wagu_proto::records::{AccountId, Place, Post, PostId};

use super::{
    AccountRecord, AccountStore, Created, IDEMPOTENCY_TTL_SECS, Idempotency, NameCursor,
    PlaceStore, PostCursor, PostStore, RecordError, RefreshRecord, RefreshUse, Result, Scope, geo,
    now_millis, text,
};

/// The file, under the data directory.
const FILE_NAME: &str = "records.redb";
/// Bumped when a table's key or value changes shape; a file of another version is refused
/// rather than misread.
const SCHEMA_VERSION: u64 = 1;
const SCHEMA_KEY: &str = "schema";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const ACCOUNTS_BY_EMAIL: TableDefinition<&str, &str> = TableDefinition::new("accounts_by_email");
/// (provider, subject) → account id: accounts created through an OpenID Connect log-in.
const IDENTITIES: TableDefinition<(&str, &str), &str> = TableDefinition::new("identities");
const REFRESH: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_tokens");
const REFRESH_BY_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("refresh_by_expiry");
const REVOKED: TableDefinition<&str, u64> = TableDefinition::new("revoked_families");
const REVOKED_BY_UNTIL: TableDefinition<(u64, &str), ()> = TableDefinition::new("revoked_by_until");
const PLACES: TableDefinition<&str, &[u8]> = TableDefinition::new("places");
const PLACES_BY_NAME: TableDefinition<(&str, &str), ()> = TableDefinition::new("places_by_name");
const PLACES_BY_CELL: TableDefinition<(&str, &str), ()> = TableDefinition::new("places_by_cell");
const POSTS: TableDefinition<&str, &[u8]> = TableDefinition::new("posts");
// Feeds are keyed (scope, created_at, post id) with no time bucket: the CQL backend buckets
// by 30 days because a Cassandra partition must stay small, but a B-tree range has no
// partition to outgrow, and one reverse scan of the scope's prefix reads newest first.
const POSTS_BY_AUTHOR: FeedTable = TableDefinition::new("posts_by_author");
const POSTS_BY_PLACE: FeedTable = TableDefinition::new("posts_by_place");
const POSTS_BY_CELL: FeedTable = TableDefinition::new("posts_by_cell");
const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");
const IDEMPOTENCY_BY_EXPIRY: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("idempotency_by_expiry");

type FeedTable = TableDefinition<'static, (&'static str, u64, &'static str), ()>;

/// Most expired rows one write removes from a table: enough to outpace how fast they are
/// created, small enough that no request pays for a backlog.
const PRUNE_BATCH: usize = 32;
/// Refresh tokens and revocations are pruned only this long after they stopped mattering,
/// so a clock stepped back a little does not find them gone early.
const PRUNE_GRACE_MS: u64 = 3600 * 1000;

/// The redb backend. Cloning shares the database.
#[derive(Clone)]
pub struct EmbeddedRecords {
    db: Arc<Database>,
}

impl EmbeddedRecords {
    /// Opens (creating if needed) `dir/records.redb` and its tables.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self, RecordError> {
        let dir = dir.as_ref().to_path_buf();
        let db = blocking(move || open_blocking(&dir)).await?;
        Ok(EmbeddedRecords { db: Arc::new(db) })
    }

    /// Reads the schema version: the file is open and readable.
    pub async fn ping(&self) -> Result<(), RecordError> {
        self.read(|r| {
            r.open_table(META)
                .redb()?
                .get(SCHEMA_KEY)
                .redb()?
                .map(|_| ())
                .ok_or_else(|| RecordError::embedded("the schema version is missing"))
        })
        .await
    }

    /// Runs `f` on a read transaction (a snapshot), on the blocking pool: redb is synchronous.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        blocking(move || f(&db.begin_read().redb()?)).await
    }

    /// Runs `f` in a write transaction, committed when `f` returns `Ok` and aborted (dropped)
    /// when it returns `Err`. A caller that stops waiting does not cancel it: the blocking
    /// task runs to its commit, so an operation happens wholly or not at all.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        blocking(move || {
            let w = db.begin_write().redb()?;
            let out = f(&w)?;
            w.commit().redb()?;
            Ok(out)
        })
        .await
    }
}

fn open_blocking(dir: &Path) -> Result<Database> {
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

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.redb()?
}

/// redb's many error types (and a panicked blocking task) as the records error.
trait OrEmbedded<T> {
    fn redb(self) -> Result<T>;
}

impl<T, E: std::fmt::Display> OrEmbedded<T> for std::result::Result<T, E> {
    fn redb(self) -> Result<T> {
        self.map_err(RecordError::embedded)
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).redb()
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| RecordError::embedded(format!("corrupt row: {e}")))
}

fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    table
        .get(key)
        .redb()?
        .map(|v| from_json(v.value()))
        .transpose()
}

/// Places and posts as stored: JSON, plus the coordinates again as their exact bits.
/// serde_json's default float parser is not correctly rounded (about one random coordinate in
/// sixteen comes back one ulp off), and the CQL backend's `double` columns are exact: read
/// back from here, a location must be the very value written, or its geohash could differ.
#[derive(Serialize)]
struct ExactOut<'a, T> {
    v: &'a T,
    at: [u64; 2],
}

#[derive(Deserialize)]
struct ExactIn<T> {
    v: T,
    at: [u64; 2],
}

trait Located: Serialize + DeserializeOwned {
    fn location_mut(&mut self) -> &mut LatLng;
}

impl Located for Place {
    fn location_mut(&mut self) -> &mut LatLng {
        &mut self.location
    }
}

impl Located for Post {
    fn location_mut(&mut self) -> &mut LatLng {
        &mut self.location
    }
}

fn to_exact<T: Located>(v: &T, at: LatLng) -> Result<Vec<u8>> {
    to_json(&ExactOut {
        v,
        at: [at.lat.to_bits(), at.lng.to_bits()],
    })
}

fn get_exact<T: Located>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    let Some(stored) = get_json::<ExactIn<T>>(table, key)? else {
        return Ok(None);
    };
    let mut v = stored.v;
    *v.location_mut() = LatLng {
        lat: f64::from_bits(stored.at[0]),
        lng: f64::from_bits(stored.at[1]),
    };
    Ok(Some(v))
}

/// The least string above `s` and above every (`s`, …) tuple key: `s` followed by NUL. Used
/// as the exclusive end of one scope's key range.
fn past(s: &str) -> String {
    format!("{s}\0")
}

// ---------------------------------------------------------------------------------------------
// Accounts and refresh tokens

#[derive(Serialize, Deserialize)]
struct StoredRefresh {
    record: RefreshRecord,
    used: bool,
    /// The `now` of the use that spent it (absent in files written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    used_at: Option<UnixMillis>,
}

impl StoredRefresh {
    /// What a use finds when the token is already spent: when, or 0 (long ago) if unrecorded.
    fn reused(self) -> RefreshUse {
        let at = self.used_at.unwrap_or(0);
        RefreshUse::Reused(self.record, at)
    }
}

/// The token under `hash` if a use at `now` can find it: stored, unexpired, its family not
/// revoked. Spent or not: the caller looks at `used`.
fn live_token(
    tokens: &impl ReadableTable<&'static str, &'static [u8]>,
    revoked: &impl ReadableTable<&'static str, u64>,
    hash: &str,
    now: UnixMillis,
) -> Result<Option<StoredRefresh>> {
    let Some(t) = get_json::<StoredRefresh>(tokens, hash)? else {
        return Ok(None);
    };
    if t.record.expires_at <= now {
        return Ok(None);
    }
    let revoked_until = revoked
        .get(t.record.family.as_str())
        .redb()?
        .map(|v| v.value());
    if revoked_until.is_some_and(|until| until > now) {
        return Ok(None);
    }
    Ok(Some(t))
}

impl AccountStore for EmbeddedRecords {
    async fn create_account(&self, a: &AccountRecord) -> Result<()> {
        let json = to_json(a)?;
        let (id, email) = (a.id.0.clone(), a.email.clone());
        self.write(move |w| {
            let mut by_email = w.open_table(ACCOUNTS_BY_EMAIL).redb()?;
            if by_email.get(email.as_str()).redb()?.is_some() {
                return Err(RecordError::Taken("email"));
            }
            let mut accounts = w.open_table(ACCOUNTS).redb()?;
            // 128 random bits do not collide; if they ever did, the older account keeps its id.
            if accounts.get(id.as_str()).redb()?.is_some() {
                return Err(RecordError::Taken("account id"));
            }
            by_email.insert(email.as_str(), id.as_str()).redb()?;
            accounts.insert(id.as_str(), json.as_slice()).redb()?;
            Ok(())
        })
        .await
    }

    async fn account(&self, id: &AccountId) -> Result<Option<AccountRecord>> {
        let id = id.0.clone();
        self.read(move |r| get_json(&r.open_table(ACCOUNTS).redb()?, &id))
            .await
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>> {
        let email = email.to_string();
        self.read(move |r| {
            let id = r
                .open_table(ACCOUNTS_BY_EMAIL)
                .redb()?
                .get(email.as_str())
                .redb()?
                .map(|v| v.value().to_string());
            match id {
                Some(id) => get_json(&r.open_table(ACCOUNTS).redb()?, &id),
                None => Ok(None),
            }
        })
        .await
    }

    async fn account_by_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<AccountRecord>> {
        let (provider, subject) = (provider.to_string(), subject.to_string());
        self.read(move |r| {
            let id = r
                .open_table(IDENTITIES)
                .redb()?
                .get((provider.as_str(), subject.as_str()))
                .redb()?
                .map(|v| v.value().to_string());
            match id {
                Some(id) => get_json(&r.open_table(ACCOUNTS).redb()?, &id),
                None => Ok(None),
            }
        })
        .await
    }

    async fn create_account_for_identity(
        &self,
        a: &AccountRecord,
        provider: &str,
        subject: &str,
    ) -> Result<AccountRecord> {
        let json = to_json(a)?;
        let account = a.clone();
        let (provider, subject) = (provider.to_string(), subject.to_string());
        // One write transaction: of two concurrent first log-ins the second finds the first's
        // link (write transactions run one at a time) and creates nothing.
        self.write(move |w| {
            let mut identities = w.open_table(IDENTITIES).redb()?;
            let key = (provider.as_str(), subject.as_str());
            let linked = identities.get(key).redb()?.map(|v| v.value().to_string());
            let mut accounts = w.open_table(ACCOUNTS).redb()?;
            if let Some(id) = linked {
                // Both rows are written in one transaction, so the account is there.
                return get_json(&accounts, &id)?.ok_or_else(|| {
                    RecordError::embedded(format!(
                        "identity ({provider}, {subject}) links to missing account {id}"
                    ))
                });
            }
            if accounts.get(account.id.as_str()).redb()?.is_some() {
                return Err(RecordError::Taken("account id"));
            }
            // No `accounts_by_email` entry: the email of an external identity is not a login.
            accounts
                .insert(account.id.as_str(), json.as_slice())
                .redb()?;
            identities.insert(key, account.id.as_str()).redb()?;
            Ok(account)
        })
        .await
    }

    async fn put_refresh(&self, rec: &RefreshRecord) -> Result<()> {
        let (hash, expires_at) = (rec.hash.clone(), rec.expires_at);
        let json = to_json(&StoredRefresh {
            record: rec.clone(),
            used: false,
            used_at: None,
        })?;
        self.write(move |w| {
            let mut tokens = w.open_table(REFRESH).redb()?;
            let mut by_expiry = w.open_table(REFRESH_BY_EXPIRY).redb()?;
            let old: Option<StoredRefresh> = tokens
                .insert(hash.as_str(), json.as_slice())
                .redb()?
                .map(|v| from_json(v.value()))
                .transpose()?;
            if let Some(old) = old {
                by_expiry
                    .remove((old.record.expires_at, hash.as_str()))
                    .redb()?;
            }
            by_expiry.insert((expires_at, hash.as_str()), ()).redb()?;
            Ok(())
        })
        .await
    }

    async fn use_refresh(&self, hash: &str, now: UnixMillis) -> Result<RefreshUse> {
        // First on a read snapshot, which waits for no writer: a token that is unknown,
        // expired, revoked or already spent is answered without a write transaction (a
        // spent token never becomes unspent, so the snapshot's "spent" is final).
        let key = hash.to_string();
        let seen = self
            .read(move |r| {
                let tokens = r.open_table(REFRESH).redb()?;
                let revoked = r.open_table(REVOKED).redb()?;
                live_token(&tokens, &revoked, &key, now)
            })
            .await?;
        match seen {
            None => return Ok(RefreshUse::Unknown),
            Some(t) if t.used => return Ok(t.reused()),
            Some(_) => {}
        }
        // Live and unspent on the snapshot: spend it in one write transaction, checking again
        // inside it. redb runs write transactions one at a time, so of two concurrent uses
        // the second sees the first one's `used = true` (and its `used_at`).
        let hash = hash.to_string();
        self.write(move |w| {
            prune_refresh(w, now)?;
            let mut tokens = w.open_table(REFRESH).redb()?;
            let revoked = w.open_table(REVOKED).redb()?;
            let Some(mut t) = live_token(&tokens, &revoked, &hash, now)? else {
                // Revoked since the snapshot.
                return Ok(RefreshUse::Unknown);
            };
            if t.used {
                return Ok(t.reused());
            }
            t.used = true;
            t.used_at = Some(now);
            tokens
                .insert(hash.as_str(), to_json(&t)?.as_slice())
                .redb()?;
            Ok(RefreshUse::Fresh(t.record))
        })
        .await
    }

    async fn revoke_family(&self, family: &str, until: UnixMillis) -> Result<()> {
        let family = family.to_string();
        self.write(move |w| {
            let mut revoked = w.open_table(REVOKED).redb()?;
            let mut by_until = w.open_table(REVOKED_BY_UNTIL).redb()?;
            let old = revoked.get(family.as_str()).redb()?.map(|v| v.value());
            // A second revocation can lengthen one, never cut it short.
            let until = old.map_or(until, |o| o.max(until));
            if let Some(old) = old {
                by_until.remove((old, family.as_str())).redb()?;
            }
            revoked.insert(family.as_str(), until).redb()?;
            by_until.insert((until, family.as_str()), ()).redb()?;
            Ok(())
        })
        .await
    }
}

/// Removes a batch of tokens expired, and of revocations ended, more than
/// [`PRUNE_GRACE_MS`] before `now`: rows that can only ever answer `Unknown` (or revoke
/// nothing). The CQL backend gets the same from TTLs.
fn prune_refresh(w: &WriteTransaction, now: UnixMillis) -> Result<()> {
    let cutoff = now.saturating_sub(PRUNE_GRACE_MS);
    {
        let mut by_expiry = w.open_table(REFRESH_BY_EXPIRY).redb()?;
        let expired = by_expiry
            .range(..(cutoff, ""))
            .redb()?
            .take(PRUNE_BATCH)
            .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_string())))
            .collect::<Result<Vec<_>, _>>()
            .redb()?;
        if !expired.is_empty() {
            let mut tokens = w.open_table(REFRESH).redb()?;
            for (at, hash) in &expired {
                by_expiry.remove((*at, hash.as_str())).redb()?;
                tokens.remove(hash.as_str()).redb()?;
            }
        }
    }
    let mut by_until = w.open_table(REVOKED_BY_UNTIL).redb()?;
    let ended = by_until
        .range(..(cutoff, ""))
        .redb()?
        .take(PRUNE_BATCH)
        .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_string())))
        .collect::<Result<Vec<_>, _>>()
        .redb()?;
    if !ended.is_empty() {
        let mut revoked = w.open_table(REVOKED).redb()?;
        for (at, family) in &ended {
            by_until.remove((*at, family.as_str())).redb()?;
            revoked.remove(family.as_str()).redb()?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Places

/// The cells a place is indexed under, one per precision.
fn place_cells(at: LatLng) -> impl Iterator<Item = String> {
    geo::PLACE_PRECISIONS
        .into_iter()
        .map(move |p| geo::encode(at, p))
}

impl PlaceStore for EmbeddedRecords {
    async fn put_place(&self, p: &Place) -> Result<()> {
        let json = to_exact(p, p.location)?;
        let p = p.clone();
        self.write(move |w| {
            let id = p.id.0.as_str();
            let old: Option<Place> = {
                let mut places = w.open_table(PLACES).redb()?;
                let old = get_exact(&places, id)?;
                places.insert(id, json.as_slice()).redb()?;
                old
            };
            let mut by_name = w.open_table(PLACES_BY_NAME).redb()?;
            let mut by_cell = w.open_table(PLACES_BY_CELL).redb()?;
            // Replacing: the old name and location stop finding it, in the same transaction.
            if let Some(old) = &old {
                for t in text::tokens(&old.name) {
                    by_name.remove((t.as_str(), id)).redb()?;
                }
                for c in place_cells(old.location) {
                    by_cell.remove((c.as_str(), id)).redb()?;
                }
            }
            for t in text::tokens(&p.name) {
                by_name.insert((t.as_str(), id), ()).redb()?;
            }
            for c in place_cells(p.location) {
                by_cell.insert((c.as_str(), id), ()).redb()?;
            }
            Ok(())
        })
        .await
    }

    async fn place(&self, id: &PlaceId) -> Result<Option<Place>> {
        let id = id.0.clone();
        self.read(move |r| get_exact(&r.open_table(PLACES).redb()?, &id))
            .await
    }

    async fn has_places(&self) -> Result<bool> {
        self.read(|r| Ok(r.open_table(PLACES).redb()?.first().redb()?.is_some()))
            .await
    }

    async fn places_by_token(
        &self,
        prefix: &str,
        after: Option<&NameCursor>,
        limit: usize,
    ) -> Result<Vec<(String, Place)>> {
        let prefix = prefix.to_string();
        let after = after.cloned();
        self.read(move |r| {
            let end = text::prefix_end(&prefix);
            let first = (prefix.as_str(), "");
            // A cursor before the prefix's range (not one this query issued) starts it over.
            let lower = match &after {
                Some(c) if (c.token.as_str(), c.id.0.as_str()) >= first => {
                    Bound::Excluded((c.token.as_str(), c.id.0.as_str()))
                }
                _ => Bound::Included(first),
            };
            let upper = Bound::Excluded((end.as_str(), ""));
            let keys = r
                .open_table(PLACES_BY_NAME)
                .redb()?
                .range((lower, upper))
                .redb()?
                .take(limit)
                .map(|e| {
                    e.map(|(k, _)| {
                        let (token, id) = k.value();
                        (token.to_string(), id.to_string())
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .redb()?;
            read_places(r, keys, |(token, id)| (id, token))
        })
        .await
    }

    async fn places_in_cell(
        &self,
        cell: &str,
        after: Option<&PlaceId>,
        limit: usize,
    ) -> Result<Vec<Place>> {
        let cell = cell.to_string();
        let after = after.cloned();
        self.read(move |r| {
            let end = past(&cell);
            let lower = match &after {
                Some(id) => Bound::Excluded((cell.as_str(), id.0.as_str())),
                None => Bound::Included((cell.as_str(), "")),
            };
            let ids = r
                .open_table(PLACES_BY_CELL)
                .redb()?
                .range((lower, Bound::Excluded((end.as_str(), ""))))
                .redb()?
                .take(limit)
                .map(|e| e.map(|(k, _)| k.value().1.to_string()))
                .collect::<Result<Vec<_>, _>>()
                .redb()?;
            Ok(read_places(r, ids, |id| (id, ()))?
                .into_iter()
                .map(|((), p)| p)
                .collect())
        })
        .await
    }
}

/// Looks up the places an index scan found, in scan order, each with what `split` keeps of
/// its index key. Index and rows are written in one transaction, so none is missing.
fn read_places<K, X>(
    r: &ReadTransaction,
    keys: Vec<K>,
    split: impl Fn(K) -> (String, X),
) -> Result<Vec<(X, Place)>> {
    let places = r.open_table(PLACES).redb()?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let (id, x) = split(k);
        if let Some(p) = get_exact(&places, &id)? {
            out.push((x, p));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Posts

#[derive(Serialize, Deserialize)]
struct StoredIdempotency {
    post_id: PostId,
    fingerprint: String,
    /// Unix milliseconds; an entry at or past it counts as absent.
    expires_at: UnixMillis,
    /// The post's timestamps when the key was claimed: a replay that writes the post again
    /// (it was deleted since) writes it as it was, same feed keys (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_at: Option<UnixMillis>,
}

/// The feeds a post is listed in: the table and the scope key within it.
fn feeds_of(p: &Post) -> [(FeedTable, String); 3] {
    [
        (POSTS_BY_AUTHOR, p.author.0.clone()),
        (POSTS_BY_PLACE, p.draft.place_id.0.clone()),
        (POSTS_BY_CELL, geo::encode(p.location, geo::POST_PRECISION)),
    ]
}

fn scope_of(scope: &Scope) -> (FeedTable, String) {
    match scope {
        Scope::Author(a) => (POSTS_BY_AUTHOR, a.0.clone()),
        Scope::Place(p) => (POSTS_BY_PLACE, p.0.clone()),
        Scope::Cell(c) => (POSTS_BY_CELL, c.clone()),
    }
}

fn put_feeds(w: &WriteTransaction, p: &Post) -> Result<()> {
    for (table, scope) in feeds_of(p) {
        w.open_table(table)
            .redb()?
            .insert((scope.as_str(), p.created_at, p.id.0.as_str()), ())
            .redb()?;
    }
    Ok(())
}

fn remove_feeds(w: &WriteTransaction, p: &Post) -> Result<()> {
    for (table, scope) in feeds_of(p) {
        w.open_table(table)
            .redb()?
            .remove((scope.as_str(), p.created_at, p.id.0.as_str()))
            .redb()?;
    }
    Ok(())
}

/// Removes a batch of idempotency keys expired by `now` (the CQL backend's TTL).
fn prune_idempotency(w: &WriteTransaction, now: UnixMillis) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;
    use wagu_proto::records::{MenuItem, PostDraft, TextOrigin};

    // Coordinates that serde_json's default parser reads back one ulp off (both of Seoul's,
    // Busan's longitude): what the exact-bits envelope is for.
    const SEOUL: LatLng = LatLng {
        lat: 37.565_054_875_432_324,
        lng: 126.999_169_842_204_45,
    };
    const BUSAN: LatLng = LatLng {
        lat: 35.179_553_845_186_36,
        lng: 129.044_555_907_985_63,
    };

    fn account(id: &str, email: &str) -> AccountRecord {
        AccountRecord {
            id: AccountId(id.into()),
            email: email.into(),
            display_name: "민지".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            created_at: 1_700_000_000_000,
        }
    }

    fn place(id: &str, name: &str, at: LatLng) -> Place {
        Place {
            id: PlaceId(id.into()),
            name: name.into(),
            category: "korean".into(),
            address: "을지로 1".into(),
            location: at,
            phone: Some("+82 2 000 0000".into()),
            hours: None,
        }
    }

    fn post(id: &str, author: &str, place: &str, created_at: UnixMillis, at: LatLng) -> Post {
        Post {
            id: PostId(id.into()),
            author: AccountId(author.into()),
            author_name: "민지".into(),
            place_name: "을지면옥".into(),
            location: at,
            created_at,
            updated_at: created_at,
            draft: PostDraft {
                place_id: PlaceId(place.into()),
                visit_date: "2026-11-20".into(),
                menu: vec![MenuItem {
                    name: "냉면".into(),
                    price: Some(14_000),
                }],
                rating: 5,
                text: "좋아요".into(),
                photos: vec![],
                text_origin: TextOrigin::Author,
            },
        }
    }

    fn refresh(hash: &str, family: &str, expires_at: UnixMillis) -> RefreshRecord {
        RefreshRecord {
            hash: hash.into(),
            account: AccountId("a1".into()),
            family: family.into(),
            expires_at,
        }
    }

    fn ids(posts: &[Post]) -> Vec<&str> {
        posts.iter().map(|p| p.id.as_str()).collect()
    }

    fn table_len<K: redb::Key + 'static, V: redb::Value + 'static>(
        s: &EmbeddedRecords,
        t: TableDefinition<K, V>,
    ) -> u64 {
        let r = s.db.begin_read().unwrap();
        r.open_table(t).unwrap().len().unwrap()
    }

    #[tokio::test]
    async fn everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = account("a1", "minji@example.com");
        let pl = place("osm:node/1", "을지면옥", SEOUL);
        let p = post("p1", "a1", "osm:node/1", 1_000, SEOUL);
        {
            let s = EmbeddedRecords::open(dir.path()).await.unwrap();
            assert!(!s.has_places().await.unwrap());
            s.create_account(&a).await.unwrap();
            s.put_refresh(&refresh("h1", "f1", u64::MAX)).await.unwrap();
            s.put_place(&pl).await.unwrap();
            assert_eq!(
                s.create_post(&p, None).await.unwrap(),
                Created::Created(p.clone())
            );
        }
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        s.ping().await.unwrap();
        assert_eq!(s.account(&a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(
            s.account_by_email("minji@example.com").await.unwrap(),
            Some(a)
        );
        assert_eq!(
            s.account_by_email("nobody@example.com").await.unwrap(),
            None
        );
        assert!(matches!(
            s.use_refresh("h1", 5).await.unwrap(),
            RefreshUse::Fresh(_)
        ));
        assert!(s.has_places().await.unwrap());
        // Bit for bit, not one ulp off.
        let back = s.place(&pl.id).await.unwrap().unwrap();
        assert_eq!(back.location.lat.to_bits(), SEOUL.lat.to_bits());
        assert_eq!(back.location.lng.to_bits(), SEOUL.lng.to_bits());
        assert_eq!(back, pl);
        assert_eq!(s.post(&p.id).await.unwrap(), Some(p.clone()));
        let near = s
            .places_in_cell(&geo::encode(SEOUL, 6), None, 10)
            .await
            .unwrap();
        assert_eq!(near, vec![pl.clone()]);
        let found = s.places_by_token("을지", None, 10).await.unwrap();
        assert_eq!(found, vec![("을지면옥".to_string(), pl)]);
        for scope in [
            Scope::Author(p.author.clone()),
            Scope::Place(p.draft.place_id.clone()),
            Scope::Cell(geo::encode(SEOUL, geo::POST_PRECISION)),
        ] {
            assert_eq!(
                s.posts_in_scope(&scope, None, 10).await.unwrap(),
                vec![p.clone()]
            );
        }
    }

    /// A file written before `identities` existed (schema 1, without that table) opens, and
    /// gains the table: identity log-ins work on it.
    #[tokio::test]
    async fn older_files_gain_the_identities_table() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let w = db.begin_write().unwrap();
            w.open_table(META)
                .unwrap()
                .insert(SCHEMA_KEY, SCHEMA_VERSION)
                .unwrap();
            w.open_table(ACCOUNTS).unwrap();
            w.open_table(ACCOUNTS_BY_EMAIL).unwrap();
            w.commit().unwrap();
        }
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        assert_eq!(s.account_by_identity("kakao", "1").await.unwrap(), None);
        let a = account("a1", "minji@example.com");
        assert_eq!(
            s.create_account_for_identity(&a, "kakao", "1")
                .await
                .unwrap(),
            a
        );
        assert_eq!(s.account_by_identity("kakao", "1").await.unwrap(), Some(a));
        assert_eq!(table_len(&s, ACCOUNTS_BY_EMAIL), 0);
    }

    #[tokio::test]
    async fn one_server_per_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        let Err(e) = EmbeddedRecords::open(dir.path()).await else {
            panic!("a second open of the same file must fail");
        };
        assert!(e.to_string().contains("in use"), "{e}");
        drop(s);
        EmbeddedRecords::open(dir.path()).await.unwrap();
    }

    #[tokio::test]
    async fn emails_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        s.create_account(&account("a1", "x@example.com"))
            .await
            .unwrap();
        let e = s
            .create_account(&account("a2", "x@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(e, RecordError::Taken("email")), "{e}");
        assert_eq!(s.account(&AccountId("a2".into())).await.unwrap(), None);
    }

    #[tokio::test]
    async fn refresh_tokens_are_spent_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        let r1 = refresh("h1", "f1", 10_000);
        s.put_refresh(&r1).await.unwrap();
        assert_eq!(
            s.use_refresh("h1", 1_000).await.unwrap(),
            RefreshUse::Fresh(r1.clone())
        );
        // Reused, with the time of the use that spent it.
        assert_eq!(
            s.use_refresh("h1", 1_001).await.unwrap(),
            RefreshUse::Reused(r1.clone(), 1_000)
        );
        assert_eq!(
            s.use_refresh("h1", 2_000).await.unwrap(),
            RefreshUse::Reused(r1.clone(), 1_000)
        );
        assert_eq!(
            s.use_refresh("nope", 1_000).await.unwrap(),
            RefreshUse::Unknown
        );

        // The caller revokes the family: its unspent tokens stop working until `until`.
        let r2 = refresh("h2", "f1", 10_000);
        s.put_refresh(&r2).await.unwrap();
        s.revoke_family("f1", 5_000).await.unwrap();
        // A shorter second revocation does not cut the first one short.
        s.revoke_family("f1", 2_000).await.unwrap();
        assert_eq!(
            s.use_refresh("h2", 4_999).await.unwrap(),
            RefreshUse::Unknown
        );
        assert_eq!(
            s.use_refresh("h1", 4_999).await.unwrap(),
            RefreshUse::Unknown
        );
        assert_eq!(
            s.use_refresh("h2", 5_000).await.unwrap(),
            RefreshUse::Fresh(r2)
        );

        // Expired at `expires_at` exactly.
        s.put_refresh(&refresh("h3", "f3", 3_000)).await.unwrap();
        assert_eq!(
            s.use_refresh("h3", 3_000).await.unwrap(),
            RefreshUse::Unknown
        );
        assert!(matches!(
            s.use_refresh("h3", 2_999).await.unwrap(),
            RefreshUse::Fresh(_)
        ));
    }

    #[tokio::test]
    async fn expired_tokens_and_revocations_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        for i in 0..(PRUNE_BATCH as u64 + 3) {
            s.put_refresh(&refresh(&format!("old{i}"), "f", 1_000 + i))
                .await
                .unwrap();
        }
        for i in 0..4 {
            s.put_refresh(&refresh(&format!("live{i}"), "g", u64::MAX))
                .await
                .unwrap();
        }
        s.revoke_family("f", 2_000).await.unwrap();
        let later = 10_000 + PRUNE_GRACE_MS;
        let all = PRUNE_BATCH as u64 + 3 + 4;
        // Pruning rides on writes that happen anyway (spending a live token); a use that
        // writes nothing (an unknown or expired token) prunes nothing.
        s.use_refresh("x", later).await.unwrap();
        s.use_refresh("old0", later).await.unwrap();
        assert_eq!(table_len(&s, REFRESH), all);
        // Within the grace period nothing goes.
        s.use_refresh("live0", 1_000 + PRUNE_GRACE_MS)
            .await
            .unwrap();
        assert_eq!(table_len(&s, REFRESH), all);
        s.use_refresh("live1", later).await.unwrap();
        assert_eq!(
            table_len(&s, REFRESH),
            all - PRUNE_BATCH as u64,
            "one batch per write"
        );
        assert_eq!(table_len(&s, REVOKED), 0);
        s.use_refresh("live2", later).await.unwrap();
        assert_eq!(table_len(&s, REFRESH), 4);
        assert_eq!(table_len(&s, REFRESH_BY_EXPIRY), 4);
        assert_eq!(table_len(&s, REVOKED_BY_UNTIL), 0);
        assert!(matches!(
            s.use_refresh("live3", later).await.unwrap(),
            RefreshUse::Fresh(_)
        ));
    }

    /// A use that finds nothing to spend (unknown, expired, revoked, already spent) does not
    /// open a write transaction: it answers while another writer holds redb's write lock,
    /// where anything calling `begin_write` would wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uses_that_spend_nothing_do_not_wait_for_writers() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        let now = 5_000;
        s.put_refresh(&refresh("spent", "f1", 10_000))
            .await
            .unwrap();
        s.put_refresh(&refresh("expired", "f1", now)).await.unwrap();
        s.put_refresh(&refresh("revoked", "f2", 10_000))
            .await
            .unwrap();
        s.put_refresh(&refresh("live", "f1", 10_000)).await.unwrap();
        s.revoke_family("f2", 10_000).await.unwrap();
        assert!(matches!(
            s.use_refresh("spent", 1_000).await.unwrap(),
            RefreshUse::Fresh(_)
        ));

        let writer = s.db.begin_write().unwrap();
        let quick = std::time::Duration::from_secs(5);
        for (hash, want) in [
            ("made-up", RefreshUse::Unknown),
            ("expired", RefreshUse::Unknown),
            ("revoked", RefreshUse::Unknown),
            (
                "spent",
                RefreshUse::Reused(refresh("spent", "f1", 10_000), 1_000),
            ),
        ] {
            let got = tokio::time::timeout(quick, s.use_refresh(hash, now))
                .await
                .unwrap_or_else(|_| panic!("{hash}: waited for the write lock"));
            assert_eq!(got.unwrap(), want, "{hash}");
        }
        // The check can tell: spending a live token does wait for the writer.
        let spend = tokio::spawn({
            let s = s.clone();
            async move { s.use_refresh("live", now).await.unwrap() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!spend.is_finished(), "spending must take the write lock");
        drop(writer);
        assert!(matches!(spend.await.unwrap(), RefreshUse::Fresh(_)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_uses_spend_a_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        s.put_refresh(&refresh("h", "f", u64::MAX)).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.use_refresh("h", 1).await.unwrap() })
            })
            .collect();
        let mut fresh = 0;
        for t in tasks {
            match t.await.unwrap() {
                RefreshUse::Fresh(_) => fresh += 1,
                RefreshUse::Reused(_, at) => assert_eq!(at, 1),
                RefreshUse::Unknown => panic!("the token exists"),
            }
        }
        assert_eq!(fresh, 1);
    }

    #[tokio::test]
    async fn feeds_are_newest_first_with_ties_broken_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        for (id, at) in [("a", 5), ("c", 5), ("b", 5), ("d", 7), ("e", 3)] {
            s.create_post(&post(id, "u", "pl", at, SEOUL), None)
                .await
                .unwrap();
        }
        // Scopes whose key is a prefix of another's do not leak into each other.
        s.create_post(&post("z", "uu", "pl2", 6, BUSAN), None)
            .await
            .unwrap();
        let author = Scope::Author(AccountId("u".into()));
        let all = s.posts_in_scope(&author, None, 10).await.unwrap();
        assert_eq!(ids(&all), ["d", "c", "b", "a", "e"]);
        let place = Scope::Place(PlaceId("pl".into()));
        assert_eq!(
            ids(&s.posts_in_scope(&place, None, 10).await.unwrap()),
            ["d", "c", "b", "a", "e"]
        );
        let cell = Scope::Cell(geo::encode(SEOUL, geo::POST_PRECISION));
        assert_eq!(
            ids(&s.posts_in_scope(&cell, None, 2).await.unwrap()),
            ["d", "c"]
        );

        // Strictly below the cursor, within a tie.
        let after_c = PostCursor {
            created_at: 5,
            id: PostId("c".into()),
        };
        let rest = s.posts_in_scope(&author, Some(&after_c), 10).await.unwrap();
        assert_eq!(ids(&rest), ["b", "a", "e"]);
        let bottom = PostCursor {
            created_at: 0,
            id: PostId(String::new()),
        };
        assert!(
            s.posts_in_scope(&author, Some(&bottom), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.posts_in_scope(&Scope::Author(AccountId("nobody".into())), None, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // The provided pager walks the same order, two at a time.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = s.feed(&author, cursor.as_deref(), 2).await.unwrap();
            seen.extend(page.items.iter().map(|p| p.id.0.clone()));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, ["d", "c", "b", "a", "e"]);
    }

    #[tokio::test]
    async fn put_place_moves_its_index_entries() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        let mut pl = place("p1", "Bistro Paul", SEOUL);
        s.put_place(&pl).await.unwrap();
        assert_eq!(s.places_by_token("pau", None, 10).await.unwrap().len(), 1);
        pl.name = "Cafe Luna".into();
        pl.location = BUSAN;
        s.put_place(&pl).await.unwrap();

        assert!(
            s.places_by_token("bistro", None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.places_by_token("paul", None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.places_by_token("lu", None, 10).await.unwrap(),
            vec![("luna".to_string(), pl.clone())]
        );
        for p in geo::PLACE_PRECISIONS {
            assert!(
                s.places_in_cell(&geo::encode(SEOUL, p), None, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                s.places_in_cell(&geo::encode(BUSAN, p), None, 10)
                    .await
                    .unwrap(),
                vec![pl.clone()]
            );
        }
        assert_eq!(table_len(&s, PLACES_BY_NAME), 2, "cafe luna, luna");
        assert_eq!(
            table_len(&s, PLACES_BY_CELL),
            geo::PLACE_PRECISIONS.len() as u64
        );
        assert_eq!(s.place(&pl.id).await.unwrap(), Some(pl));
    }

    #[tokio::test]
    async fn name_and_cell_ranges_page_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        for (id, name) in [
            ("p3", "Paul"),
            ("p2", "Papa Paul"),
            ("p1", "Pa"),
            ("p4", "Pub"),
        ] {
            s.put_place(&place(id, name, SEOUL)).await.unwrap();
        }
        let keys = |rows: Vec<(String, Place)>| {
            rows.into_iter()
                .map(|(t, p)| format!("{t}/{}", p.id.0))
                .collect::<Vec<_>>()
        };
        let all = keys(s.places_by_token("pa", None, 10).await.unwrap());
        assert_eq!(all, ["pa/p1", "papa paul/p2", "paul/p2", "paul/p3"]);
        let after = NameCursor {
            token: "paul".into(),
            id: PlaceId("p2".into()),
        };
        assert_eq!(
            keys(s.places_by_token("pa", Some(&after), 10).await.unwrap()),
            ["paul/p3"]
        );
        assert_eq!(
            keys(s.places_by_token("pa", None, 2).await.unwrap()),
            ["pa/p1", "papa paul/p2"]
        );
        // A cursor from another query's range starts this one over or ends it.
        let early = NameCursor {
            token: "a".into(),
            id: PlaceId("p9".into()),
        };
        assert_eq!(
            s.places_by_token("pa", Some(&early), 10)
                .await
                .unwrap()
                .len(),
            4
        );
        let late = NameCursor {
            token: "zz".into(),
            id: PlaceId("p9".into()),
        };
        assert!(
            s.places_by_token("pa", Some(&late), 10)
                .await
                .unwrap()
                .is_empty()
        );

        let cell = geo::encode(SEOUL, 6);
        let in_cell = |v: Vec<Place>| v.into_iter().map(|p| p.id.0).collect::<Vec<_>>();
        assert_eq!(
            in_cell(s.places_in_cell(&cell, None, 10).await.unwrap()),
            ["p1", "p2", "p3", "p4"]
        );
        assert_eq!(
            in_cell(
                s.places_in_cell(&cell, Some(&PlaceId("p2".into())), 10)
                    .await
                    .unwrap()
            ),
            ["p3", "p4"]
        );
        // Coarser cells are prefixes of the 6-character one, and different keys.
        assert_eq!(
            s.places_in_cell(&cell[..4], None, 10).await.unwrap().len(),
            4
        );
        assert!(
            s.places_in_cell(&cell[..3], None, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn idempotent_creates_replay_or_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        let key = |fp: &str| Idempotency {
            key: "k1".into(),
            fingerprint: fp.into(),
        };
        let first = post("p1", "u", "pl", 1, SEOUL);
        assert_eq!(
            s.create_post(&first, Some(&key("f"))).await.unwrap(),
            Created::Created(first.clone())
        );
        // The retry carries a new server-chosen id: the first post comes back, nothing new.
        let retry = post("p2", "u", "pl", 2, SEOUL);
        assert_eq!(
            s.create_post(&retry, Some(&key("f"))).await.unwrap(),
            Created::Replayed(first.clone())
        );
        let e = s
            .create_post(&retry, Some(&key("other")))
            .await
            .unwrap_err();
        assert!(matches!(e, RecordError::IdempotencyMismatch), "{e}");
        assert_eq!(s.post(&retry.id).await.unwrap(), None);
        let author = Scope::Author(AccountId("u".into()));
        assert_eq!(
            ids(&s.posts_in_scope(&author, None, 10).await.unwrap()),
            ["p1"]
        );

        // Keys are per author.
        let other = post("p3", "v", "pl", 3, SEOUL);
        assert_eq!(
            s.create_post(&other, Some(&key("f"))).await.unwrap(),
            Created::Created(other)
        );

        // An expired key counts as absent (and the next write prunes it).
        {
            let w = s.db.begin_write().unwrap();
            let old = to_json(&StoredIdempotency {
                post_id: PostId("p1".into()),
                fingerprint: "f".into(),
                expires_at: 10,
                created_at: Some(1),
                updated_at: Some(1),
            })
            .unwrap();
            let mut keys = w.open_table(IDEMPOTENCY).unwrap();
            let mut by_expiry = w.open_table(IDEMPOTENCY_BY_EXPIRY).unwrap();
            let now = keys.get(("u", "k1")).unwrap().unwrap();
            let at = from_json::<StoredIdempotency>(now.value())
                .unwrap()
                .expires_at;
            drop(now);
            by_expiry.remove((at, "u", "k1")).unwrap();
            by_expiry.insert((10, "u", "k1"), ()).unwrap();
            keys.insert(("u", "k1"), old.as_slice()).unwrap();
            drop((keys, by_expiry));
            w.commit().unwrap();
        }
        let fresh = post("p4", "u", "pl", 4, SEOUL);
        assert_eq!(
            s.create_post(&fresh, Some(&key("other"))).await.unwrap(),
            Created::Created(fresh.clone())
        );
        assert_eq!(table_len(&s, IDEMPOTENCY), 2);
        assert_eq!(table_len(&s, IDEMPOTENCY_BY_EXPIRY), 2);
        // A deleted post has nothing to replay: a retry writes it again under the key's id
        // and timestamps, so retries still converge on one post with one `created_at`.
        s.delete_post(&fresh).await.unwrap();
        let retry = post("p5", "u", "pl", 5, SEOUL);
        let mut expected = retry.clone();
        expected.id = fresh.id.clone();
        expected.created_at = fresh.created_at;
        expected.updated_at = fresh.updated_at;
        assert_eq!(
            s.create_post(&retry, Some(&key("other"))).await.unwrap(),
            Created::Created(expected.clone())
        );
        assert_eq!(s.post(&retry.id).await.unwrap(), None);
        assert_eq!(
            s.create_post(&retry, Some(&key("other"))).await.unwrap(),
            Created::Replayed(expected)
        );
    }

    #[tokio::test]
    async fn replace_and_delete_keep_every_table_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        let old = post("p1", "u", "pl1", 1, SEOUL);
        s.create_post(&old, None).await.unwrap();
        let mut new = old.clone();
        new.draft.place_id = PlaceId("pl2".into());
        new.location = BUSAN;
        new.draft.text = "다시 가고 싶어요".into();
        new.updated_at = 2;
        s.replace_post(&old, &new).await.unwrap();
        assert_eq!(s.post(&old.id).await.unwrap(), Some(new.clone()));
        let one = |scope: Scope| {
            let s = s.clone();
            async move { ids(&s.posts_in_scope(&scope, None, 10).await.unwrap()).len() }
        };
        assert_eq!(one(Scope::Place(PlaceId("pl1".into()))).await, 0);
        assert_eq!(one(Scope::Place(PlaceId("pl2".into()))).await, 1);
        assert_eq!(
            one(Scope::Cell(geo::encode(SEOUL, geo::POST_PRECISION))).await,
            0
        );
        assert_eq!(
            one(Scope::Cell(geo::encode(BUSAN, geo::POST_PRECISION))).await,
            1
        );
        assert_eq!(one(Scope::Author(AccountId("u".into()))).await, 1);

        // An edit from a stale copy (the first version) is refused, and writes nothing.
        let mut late = old.clone();
        late.draft.text = "늦은 수정".into();
        late.updated_at = 3;
        let e = s.replace_post(&old, &late).await.unwrap_err();
        assert!(matches!(e, RecordError::Conflict("post")), "{e}");
        assert_eq!(s.post(&old.id).await.unwrap(), Some(new.clone()));
        assert_eq!(one(Scope::Place(PlaceId("pl1".into()))).await, 0);
        assert_eq!(one(Scope::Place(PlaceId("pl2".into()))).await, 1);

        s.delete_post(&new).await.unwrap();
        assert_eq!(s.post(&old.id).await.unwrap(), None);
        for t in [POSTS_BY_AUTHOR, POSTS_BY_PLACE, POSTS_BY_CELL] {
            assert_eq!(table_len(&s, t), 0);
        }
        assert_eq!(table_len(&s, POSTS), 0);
        // An edit racing the delete is a conflict and does not bring the post back.
        let e = s.replace_post(&new, &new).await.unwrap_err();
        assert!(matches!(e, RecordError::Conflict("post")), "{e}");
        assert_eq!(s.post(&old.id).await.unwrap(), None);
        for t in [POSTS_BY_AUTHOR, POSTS_BY_PLACE, POSTS_BY_CELL] {
            assert_eq!(table_len(&s, t), 0);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_edits_from_one_version_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        let old = post("p1", "u", "pl1", 1, SEOUL);
        s.create_post(&old, None).await.unwrap();
        let edits: Vec<Post> = (0..8u64)
            .map(|i| {
                let mut e = old.clone();
                e.draft.text = format!("edit {i}");
                e.draft.place_id = PlaceId(format!("pl{}", i + 2));
                e.updated_at = 2 + i;
                e
            })
            .collect();
        let tasks: Vec<_> = edits
            .iter()
            .map(|e| {
                let (s, old, e) = (s.clone(), old.clone(), e.clone());
                tokio::spawn(async move { s.replace_post(&old, &e).await })
            })
            .collect();
        let mut won = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(()) => won.push(i),
                Err(RecordError::Conflict("post")) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(won.len(), 1, "{won:?}");
        let winner = &edits[won[0]];
        assert_eq!(s.post(&old.id).await.unwrap().as_ref(), Some(winner));
        // Only the winner's feed rows.
        for t in [POSTS_BY_AUTHOR, POSTS_BY_PLACE, POSTS_BY_CELL] {
            assert_eq!(table_len(&s, t), 1);
        }
        let at = Scope::Place(winner.draft.place_id.clone());
        assert_eq!(ids(&s.posts_in_scope(&at, None, 10).await.unwrap()), ["p1"]);
    }
}
