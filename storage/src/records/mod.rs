//! Durable records: accounts, places and posts, behind three traits with two backends each
//! (and photo records, [`photos::PhotoStore`], in files of their own).
//!
//! | backend | where | chosen by |
//! |---|---|---|
//! | [`embedded::EmbeddedRecords`] | one `redb` file in the data directory | `database.backend = "embedded"` (default) |
//! | [`cql::CqlRecords`] | ScyllaDB (or Cassandra 5) | `database.backend = "cql"` |
//!
//! The traits are split in two layers. Backends implement *primitives* that map one-to-one
//! onto a query-first table (a place cell, a name-token range, one feed scope). The listings
//! users see — name search, viewport search, "near me" — are provided methods written once
//! here on top of those primitives, so both backends page, order and filter identically and
//! one contract suite (`storage/tests/records/`) holds them to it.
//!
//! What this module does not do: authorisation (the gateway checks "author only"), password
//! hashing or tokens (the gateway's `auth`), input validation (`wagu_proto::records`).
//!
//! Ordering rules every backend keeps:
//! - feeds are newest first by `(created_at, post id)`, both descending;
//! - name search is ordered by `(token, place id)` ascending;
//! - a viewport is read cell by cell in [`geo::place_cover`] order, each cell by place id.

pub mod cql;
pub mod embedded;
pub mod geo;
pub mod import;
pub mod photos;
mod photos_cql;
mod photos_embedded;
pub mod text;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use wagu_proto::PlaceId;
use wagu_proto::model::{Bounds, LatLng, UnixMillis};
use wagu_proto::records::{AccountId, Page, Place, Post, PostId};

use crate::StorageError;

/// The records failure domain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A unique value (an email) is taken.
    #[error("{0} is already taken")]
    Taken(&'static str),
    /// The record changed (or was deleted) since the caller read it: read again and retry.
    #[error("the {0} changed since it was read; read it again")]
    Conflict(&'static str),
    /// The idempotency key was used before with a different request body.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyMismatch,
    /// A request that is well-formed but cannot be answered as asked (bad cursor, a viewport
    /// too large to read cell by cell).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl RecordError {
    /// A CQL driver error, kept as the source.
    pub(crate) fn cql(e: impl Into<crate::error::BoxError>) -> Self {
        RecordError::Storage(StorageError::cql(e))
    }
    /// A CQL driver error met while doing `context`.
    pub(crate) fn cql_in(context: impl Into<String>, e: impl Into<crate::error::BoxError>) -> Self {
        RecordError::Storage(StorageError::cql_in(context, e))
    }
    /// A CQL row or answer that cannot be read as a record.
    pub(crate) fn cql_row(message: impl Into<String>) -> Self {
        RecordError::Storage(StorageError::CqlRow(message.into()))
    }
    pub(crate) fn embedded(e: impl std::fmt::Display) -> Self {
        RecordError::Storage(StorageError::Embedded(e.to_string()))
    }
}

pub type Result<T, E = RecordError> = std::result::Result<T, E>;

/// An account as stored: the public fields plus the login secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: AccountId,
    /// Normalised (trimmed, lower-case): the unique login name.
    pub email: String,
    pub display_name: String,
    /// PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    pub created_at: UnixMillis,
}

/// A refresh token as stored: only its SHA-256, never the token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// Hex SHA-256 of the token.
    pub hash: String,
    pub account: AccountId,
    /// Every token rotated from one login shares a family; reuse of a spent token revokes it.
    pub family: String,
    pub expires_at: UnixMillis,
}

/// What spending a refresh token found.
#[derive(Clone, Debug, PartialEq)]
pub enum RefreshUse {
    /// Unspent and unexpired: now spent. The caller issues the next one in the family.
    Fresh(RefreshRecord),
    /// Spent before, at the given time: someone replayed it. The caller revokes the family
    /// (unless it was spent a moment ago: a client's own concurrent refreshes).
    Reused(RefreshRecord, UnixMillis),
    /// Never issued, expired, or its family was revoked.
    Unknown,
}

/// A client's idempotency key on post creation, with a fingerprint of the request body so a
/// reused key with a different body is refused instead of silently answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_SECS: u32 = 24 * 3600;

/// What creating a post did.
#[derive(Clone, Debug, PartialEq)]
pub enum Created {
    Created(Post),
    /// The same author sent the same key and body before: that post, unchanged.
    Replayed(Post),
}

/// The feeds a post appears in. Each is one query-first table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Author(AccountId),
    Place(PlaceId),
    /// A precision-[`geo::POST_PRECISION`] geohash cell.
    Cell(String),
}

/// Position in a feed: the last post shown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PostCursor {
    pub created_at: UnixMillis,
    pub id: PostId,
}

impl PostCursor {
    pub fn of(p: &Post) -> Self {
        PostCursor {
            created_at: p.created_at,
            id: p.id.clone(),
        }
    }
}

/// Position in a name search: the last (token, place) shown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NameCursor {
    pub token: String,
    pub id: PlaceId,
}

/// Position in a viewport listing: index into the cell cover, last place id in that cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CellCursor {
    cell: usize,
    /// Last place read in that cell; `None`: the cell from its start.
    id: Option<PlaceId>,
}

/// Most index rows one listing request reads. A viewport that is a thin sliver of a large
/// cell, or a "near me" circle far smaller than its cells, may filter away almost everything
/// it reads: past this budget the request answers with what it found (perhaps nothing) and a
/// `next` cursor that resumes the scan, so no single request does unbounded work.
pub const SCAN_BUDGET: usize = 2_000;
/// Rows asked per read of a viewport cell: a filtered scan should not pay one round trip per
/// kept row.
const CELL_BATCH: usize = 200;

/// Opaque cursors: URL-safe base64 of JSON, so a client cannot mistake them for ids.
pub fn encode_cursor<T: Serialize>(c: &T) -> String {
    let json = serde_json::to_vec(c).expect("cursors serialise");
    URL_SAFE_NO_PAD.encode(json)
}

pub fn decode_cursor<T: DeserializeOwned>(s: &str) -> Result<T> {
    let bad = || RecordError::Invalid("cursor is not one this server issued".into());
    if s.len() > 1024 {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

fn page_size(limit: usize) -> usize {
    limit.clamp(1, wagu_proto::records::MAX_PAGE)
}

/// Accounts and refresh tokens.
#[allow(async_fn_in_trait)] // callers use the concrete backends, whose futures are `Send`
pub trait AccountStore {
    /// Stores a new account; [`RecordError::Taken`] when the email is in use.
    async fn create_account(&self, a: &AccountRecord) -> Result<()>;
    async fn account(&self, id: &AccountId) -> Result<Option<AccountRecord>>;
    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>>;
    /// The account linked to an external identity: an OpenID Connect provider's name (as
    /// configured, e.g. `kakao`) and the subject (`sub`) it gave.
    async fn account_by_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<AccountRecord>>;
    /// Creates `a` linked to the identity, atomically: when the identity is already linked
    /// (a concurrent first log-in through the same provider), nothing is created and the
    /// linked account is returned. The account's email is informational only: it is not
    /// claimed in the email index (a password sign-up with that address stays possible, and
    /// nobody can log in with a password to an account whose `password_hash` is empty).
    async fn create_account_for_identity(
        &self,
        a: &AccountRecord,
        provider: &str,
        subject: &str,
    ) -> Result<AccountRecord>;
    /// Stores a refresh token until its expiry.
    async fn put_refresh(&self, r: &RefreshRecord) -> Result<()>;
    /// Spends a refresh token, atomically: of two concurrent uses exactly one is `Fresh`, the
    /// other `Reused` with the time of the first use. A token that is unknown, expired or
    /// revoked is `Unknown`, and finding that out writes nothing (a flood of made-up tokens
    /// must not queue behind the store's writes).
    async fn use_refresh(&self, hash: &str, now: UnixMillis) -> Result<RefreshUse>;
    /// Revokes every token of a family (logout, or reuse detected), until `until`.
    async fn revoke_family(&self, family: &str, until: UnixMillis) -> Result<()>;
}

/// Places (restaurants).
#[allow(async_fn_in_trait)]
pub trait PlaceStore {
    /// Inserts or replaces a place, moving its name and cell index entries if they changed.
    async fn put_place(&self, p: &Place) -> Result<()>;
    async fn place(&self, id: &PlaceId) -> Result<Option<Place>>;
    /// Whether any place is stored (the sample data set is loaded into an empty store).
    async fn has_places(&self) -> Result<bool>;

    /// Primitive: up to `limit` entries of the name index whose token starts with `prefix`
    /// (already normalised) and that come after `after`, ordered by (token, place id).
    async fn places_by_token(
        &self,
        prefix: &str,
        after: Option<&NameCursor>,
        limit: usize,
    ) -> Result<Vec<(String, Place)>>;

    /// Primitive: up to `limit` places of one geohash cell (precision 4 or 6) with an id
    /// after `after`, ordered by place id.
    async fn places_in_cell(
        &self,
        cell: &str,
        after: Option<&PlaceId>,
        limit: usize,
    ) -> Result<Vec<Place>>;

    /// Places whose name (or a later word of it) starts with `query`, case-insensitively.
    async fn search_places(
        &self,
        query: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Place>> {
        let limit = page_size(limit);
        let q = text::normalize(query);
        if q.is_empty() {
            return Err(RecordError::Invalid(
                "q must contain a letter or a digit".into(),
            ));
        }
        let mut after: Option<NameCursor> = cursor.map(decode_cursor).transpose()?;
        let mut items: Vec<Place> = Vec::with_capacity(limit);
        // One place can match through two of its tokens ("papa paul" and "paul" for "pa"):
        // skip repeats within the page, reading on until the page is full.
        loop {
            let rows = self.places_by_token(&q, after.as_ref(), limit + 1).await?;
            let exhausted = rows.len() <= limit;
            for (token, place) in rows {
                if items.len() == limit {
                    return Ok(Page {
                        items,
                        next: after.as_ref().map(encode_cursor),
                    });
                }
                after = Some(NameCursor {
                    token,
                    id: place.id.clone(),
                });
                if !items.iter().any(|p| p.id == place.id) {
                    items.push(place);
                }
            }
            if exhausted {
                return Ok(Page { items, next: None });
            }
        }
    }

    /// Places inside a map viewport, cell by cell. Reads at most [`SCAN_BUDGET`] index rows
    /// (or `limit + 1`, if larger):
    /// a page may then hold fewer than `limit` places (even none) with a `next` to go on.
    async fn places_in_bounds(
        &self,
        bounds: &Bounds,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Place>> {
        let limit = page_size(limit);
        let cells = geo::place_cover(bounds).ok_or_else(|| {
            RecordError::Invalid(format!(
                "the area is too large to list: zoom in (at most {} cells of ≈39 × 20 km)",
                geo::MAX_CELLS
            ))
        })?;
        let start: Option<CellCursor> = cursor.map(decode_cursor).transpose()?;
        if start.as_ref().is_some_and(|c| c.cell >= cells.len()) {
            return Err(RecordError::Invalid(
                "cursor does not belong to this area".into(),
            ));
        }
        let (mut cell, mut after) = match start {
            Some(c) => (c.cell, c.id),
            None => (0, None),
        };
        let resume = |cell: usize, after: &Option<PlaceId>| {
            Some(encode_cursor(&CellCursor {
                cell,
                id: after.clone(),
            }))
        };
        let mut items = Vec::with_capacity(limit);
        let mut scanned = 0;
        while cell < cells.len() {
            if scanned >= SCAN_BUDGET {
                return Ok(Page {
                    items,
                    next: resume(cell, &after),
                });
            }
            let batch = CELL_BATCH.max(limit + 1).min(SCAN_BUDGET - scanned);
            let rows = self
                .places_in_cell(&cells[cell], after.as_ref(), batch)
                .await?;
            let more_here = rows.len() == batch;
            scanned += rows.len();
            for p in rows {
                after = Some(p.id.clone());
                // The cell is larger than the viewport: keep what is actually inside.
                if geo::contains(bounds, p.location) {
                    items.push(p);
                    if items.len() == limit {
                        return Ok(Page {
                            items,
                            next: resume(cell, &after),
                        });
                    }
                }
            }
            if !more_here {
                cell += 1;
                after = None;
            }
        }
        Ok(Page { items, next: None })
    }
}

/// Posts and their feeds.
#[allow(async_fn_in_trait)]
pub trait PostStore {
    /// Stores a new post in every table. With an idempotency key, a second call by the same
    /// author with the same key returns the first post ([`Created::Replayed`]); the same key
    /// with a different fingerprint is [`RecordError::IdempotencyMismatch`]. Whatever the
    /// interleaving of retries, one key yields one post with one `created_at`, so its feed
    /// rows exist once (a retry that completes a stalled first write reuses the id and
    /// timestamps the key recorded).
    async fn create_post(&self, post: &Post, idem: Option<&Idempotency>) -> Result<Created>;
    async fn post(&self, id: &PostId) -> Result<Option<Post>>;
    /// Replaces `old` by `new` (same id, author and `created_at`) in every table, if the stored
    /// post is still `old` (compared by `updated_at`, which every edit advances): a concurrent
    /// edit is [`RecordError::Conflict`], never silently overwritten, and a post deleted
    /// meanwhile is `Conflict` too (it is not brought back).
    async fn replace_post(&self, old: &Post, new: &Post) -> Result<()>;
    /// Removes a post from every table.
    async fn delete_post(&self, post: &Post) -> Result<()>;

    /// Primitive: up to `limit` posts of one feed older than `before`, newest first.
    async fn posts_in_scope(
        &self,
        scope: &Scope,
        before: Option<&PostCursor>,
        limit: usize,
    ) -> Result<Vec<Post>>;

    /// One feed (an author's, a place's), newest first.
    async fn feed(&self, scope: &Scope, cursor: Option<&str>, limit: usize) -> Result<Page<Post>> {
        let limit = page_size(limit);
        let before: Option<PostCursor> = cursor.map(decode_cursor).transpose()?;
        let mut items = self
            .posts_in_scope(scope, before.as_ref(), limit + 1)
            .await?;
        Ok(finish_feed(&mut items, limit))
    }

    /// Recent posts about places within `radius_km` (at most [`geo::MAX_NEAR_KM`]) of `center`,
    /// newest first. Reads at most [`SCAN_BUDGET`] rows, plus one per cell on the last round:
    /// a page may then hold fewer than `limit` posts (even none) with a `next` that resumes
    /// where the scan stopped.
    async fn posts_near(
        &self,
        center: LatLng,
        radius_km: f64,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Post>> {
        let limit = page_size(limit);
        if !(radius_km > 0.0 && radius_km <= geo::MAX_NEAR_KM) {
            return Err(RecordError::Invalid(format!(
                "radius_km must be more than 0 and at most {}",
                geo::MAX_NEAR_KM
            )));
        }
        let mut cells = geo::cover(
            &geo::circle_bounds(center, radius_km),
            geo::POST_PRECISION,
            geo::MAX_CELLS * 2,
        )
        .ok_or_else(|| RecordError::Invalid("radius too large this close to a pole".into()))?;
        let mut before: Option<PostCursor> = cursor.map(decode_cursor).transpose()?;
        let mut items: Vec<Post> = Vec::with_capacity(limit + 1);
        let mut scanned = 0;
        // Rows asked per cell: `limit + 1` first; doubled (up to a batch) while the circle
        // filters rows away, so a sparse circle costs few round trips.
        let mut grow = limit + 1;
        loop {
            let take = grow;
            // The newest `take` of the union are among each cell's newest `take`.
            let mut merged = Vec::new();
            // Per cell: did it return everything it has below the cursor, and its oldest row.
            let mut seen = Vec::with_capacity(cells.len());
            // What is left of the budget, shared by the cells (at least one row each, so the
            // scan always advances).
            let take = take.min((SCAN_BUDGET.saturating_sub(scanned) / cells.len()).max(1));
            for cell in &cells {
                let rows = self
                    .posts_in_scope(&Scope::Cell(cell.clone()), before.as_ref(), take)
                    .await?;
                scanned += rows.len();
                seen.push((rows.len() < take, rows.last().map(PostCursor::of)));
                merged.extend(rows);
            }
            merged.sort_by(|a, b| PostCursor::of(b).cmp(&PostCursor::of(a)));
            merged.truncate(take);
            let complete = merged.len() < take;
            let Some(last) = merged.last().map(PostCursor::of) else {
                return Ok(finish_feed(&mut items, limit));
            };
            // Cells are squares; the circle is what was asked for.
            items.extend(
                merged
                    .into_iter()
                    .filter(|p| geo::distance_km(center, p.location) <= radius_km),
            );
            if items.len() > limit || complete {
                return Ok(finish_feed(&mut items, limit));
            }
            // A cell that returned all it has, none of it cut by the merge (its oldest row is
            // not older than the new cursor), has nothing left below the cursor: stop asking.
            let mut flags = seen.iter();
            cells.retain(|_| {
                let (exhausted, oldest) = flags.next().expect("one flag per cell");
                !exhausted || oldest.as_ref().is_some_and(|o| *o < last)
            });
            before = Some(last);
            if cells.is_empty() {
                return Ok(finish_feed(&mut items, limit));
            }
            if scanned >= SCAN_BUDGET {
                let next = before.as_ref().map(encode_cursor);
                return Ok(Page { items, next });
            }
            grow = (grow * 2).min(CELL_BATCH.max(limit + 1));
        }
    }
}

/// `items` holds up to `limit + 1` posts, newest first: keep `limit`, point past the last.
fn finish_feed(items: &mut Vec<Post>, limit: usize) -> Page<Post> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more {
        items.last().map(|p| encode_cursor(&PostCursor::of(p)))
    } else {
        None
    };
    Page {
        items: std::mem::take(items),
        next,
    }
}

/// The records' clock: wall-clock Unix milliseconds, what `created_at`, `updated_at` and every
/// expiry (refresh tokens, revocations, idempotency keys) are measured in.
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The 30-day time bucket of a timestamp: feed partitions are (scope, bucket), so none grows
/// without limit however long an author writes or a place is reviewed.
pub fn bucket_of(created_at: UnixMillis) -> i32 {
    (created_at / BUCKET_MILLIS) as i32
}

/// Width of a feed bucket.
pub const BUCKET_MILLIS: u64 = 30 * 24 * 3600 * 1000;

macro_rules! delegate {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Records::Embedded($b) => $e,
            Records::Cql($b) => $e,
        }
    };
}

/// Every backend, chosen by configuration. An enum, like the other stores: the match is free
/// and the futures stay concrete (and so `Send`) for the HTTP handlers.
#[derive(Clone)]
pub enum Records {
    Embedded(embedded::EmbeddedRecords),
    Cql(cql::CqlRecords),
}

impl Records {
    pub fn backend(&self) -> &'static str {
        match self {
            Records::Embedded(_) => "embedded",
            Records::Cql(_) => "cql",
        }
    }

    /// Readiness: one round trip to the store.
    pub async fn ping(&self) -> Result<()> {
        delegate!(self, b => b.ping().await)
    }
}

/// The bundled sample places (fictional; generated by `deploy/sample/gen_places.py`), loaded
/// into an empty store so a fresh server has restaurants to show.
pub const SAMPLE_PLACES_CSV: &[u8] = include_bytes!("../../sample/places-sample.csv");

impl AccountStore for Records {
    async fn create_account(&self, a: &AccountRecord) -> Result<()> {
        delegate!(self, b => b.create_account(a).await)
    }
    async fn account(&self, id: &AccountId) -> Result<Option<AccountRecord>> {
        delegate!(self, b => b.account(id).await)
    }
    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>> {
        delegate!(self, b => b.account_by_email(email).await)
    }
    async fn account_by_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<AccountRecord>> {
        delegate!(self, b => b.account_by_identity(provider, subject).await)
    }
    async fn create_account_for_identity(
        &self,
        a: &AccountRecord,
        provider: &str,
        subject: &str,
    ) -> Result<AccountRecord> {
        delegate!(self, b => b.create_account_for_identity(a, provider, subject).await)
    }
    async fn put_refresh(&self, r: &RefreshRecord) -> Result<()> {
        delegate!(self, b => b.put_refresh(r).await)
    }
    async fn use_refresh(&self, hash: &str, now: UnixMillis) -> Result<RefreshUse> {
        delegate!(self, b => b.use_refresh(hash, now).await)
    }
    async fn revoke_family(&self, family: &str, until: UnixMillis) -> Result<()> {
        delegate!(self, b => b.revoke_family(family, until).await)
    }
}

impl PlaceStore for Records {
    async fn put_place(&self, p: &Place) -> Result<()> {
        delegate!(self, b => b.put_place(p).await)
    }
    async fn place(&self, id: &PlaceId) -> Result<Option<Place>> {
        delegate!(self, b => b.place(id).await)
    }
    async fn has_places(&self) -> Result<bool> {
        delegate!(self, b => b.has_places().await)
    }
    async fn places_by_token(
        &self,
        prefix: &str,
        after: Option<&NameCursor>,
        limit: usize,
    ) -> Result<Vec<(String, Place)>> {
        delegate!(self, b => b.places_by_token(prefix, after, limit).await)
    }
    async fn places_in_cell(
        &self,
        cell: &str,
        after: Option<&PlaceId>,
        limit: usize,
    ) -> Result<Vec<Place>> {
        delegate!(self, b => b.places_in_cell(cell, after, limit).await)
    }
}

impl PostStore for Records {
    async fn create_post(&self, post: &Post, idem: Option<&Idempotency>) -> Result<Created> {
        delegate!(self, b => b.create_post(post, idem).await)
    }
    async fn post(&self, id: &PostId) -> Result<Option<Post>> {
        delegate!(self, b => b.post(id).await)
    }
    async fn replace_post(&self, old: &Post, new: &Post) -> Result<()> {
        delegate!(self, b => b.replace_post(old, new).await)
    }
    async fn delete_post(&self, post: &Post) -> Result<()> {
        delegate!(self, b => b.delete_post(post).await)
    }
    async fn posts_in_scope(
        &self,
        scope: &Scope,
        before: Option<&PostCursor>,
        limit: usize,
    ) -> Result<Vec<Post>> {
        delegate!(self, b => b.posts_in_scope(scope, before, limit).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagu_proto::records::{Place, PostId};

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = NameCursor {
            token: "맛집 a".into(),
            id: PlaceId("osm:node/1".into()),
        };
        let s = encode_cursor(&c);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode_cursor::<NameCursor>(&s).unwrap(), c);
        for bad in ["", "a", "!!!!", "eyJ4Ijox", &"A".repeat(2000)] {
            assert!(decode_cursor::<NameCursor>(bad).is_err(), "{bad}");
        }
    }

    fn place(id: String, lat: f64, lng: f64) -> Place {
        Place {
            id: PlaceId(id),
            name: "Sliver Diner".into(),
            category: String::new(),
            address: String::new(),
            location: LatLng { lat, lng },
            phone: None,
            hours: None,
        }
    }

    /// A viewport that is a thin sliver of a city-sized cell must not read the whole cell for
    /// one page: past the budget it answers short, with a `next` that resumes the scan.
    #[tokio::test]
    async fn filtered_listings_stop_at_the_scan_budget() {
        let dir = tempfile::tempdir().unwrap();
        let s = embedded::EmbeddedRecords::open(dir.path()).await.unwrap();
        let crowd = SCAN_BUDGET + 500;
        for i in 0..crowd {
            let p = place(format!("a{i:05}"), 37.60, 126.97 + i as f64 * 1e-5);
            s.put_place(&p).await.unwrap();
        }
        // The one place inside the sliver sorts after the crowd in its cell.
        s.put_place(&place("zz-inside".into(), 37.5500_5, 126.97))
            .await
            .unwrap();
        let sliver = Bounds {
            sw: LatLng {
                lat: 37.55,
                lng: 126.0,
            },
            ne: LatLng {
                lat: 37.5501,
                lng: 127.5,
            },
        };
        assert!(
            geo::place_cover(&sliver)
                .unwrap()
                .iter()
                .all(|c| c.len() == 4)
        );
        let first = s.places_in_bounds(&sliver, None, 1).await.unwrap();
        assert!(
            first.items.is_empty(),
            "the budget ends the first page early"
        );
        let mut next = first.next.expect("a cursor to go on");
        let mut found = Vec::new();
        for _ in 0..10 {
            let page = s.places_in_bounds(&sliver, Some(&next), 1).await.unwrap();
            found.extend(page.items.into_iter().map(|p| p.id.0));
            match page.next {
                Some(n) => next = n,
                None => break,
            }
        }
        assert_eq!(found, vec!["zz-inside".to_string()]);

        // "Near me" with a tiny radius over a cell full of posts elsewhere: bounded too.
        for i in 0..crowd as u64 {
            let post = Post {
                id: PostId(format!("p{i:06}")),
                author: AccountId("a".into()),
                author_name: "A".into(),
                place_name: "Crowd".into(),
                location: LatLng {
                    lat: 37.5660,
                    lng: 126.9800,
                },
                created_at: 1_000_000 + i,
                updated_at: 1_000_000 + i,
                draft: wagu_proto::records::PostDraft {
                    place_id: PlaceId("a00001".into()),
                    visit_date: "2026-11-20".into(),
                    menu: vec![],
                    rating: 3,
                    text: String::new(),
                    photos: vec![],
                    text_origin: Default::default(),
                },
            };
            s.create_post(&post, None).await.unwrap();
        }
        let here = LatLng {
            lat: 37.5660,
            lng: 126.9810,
        };
        let page = s.posts_near(here, 0.01, None, 1).await.unwrap();
        assert!(page.items.is_empty());
        let mut next = page.next.expect("the budget stops the scan with a cursor");
        let mut pages = 1;
        while let Some(n) = s.posts_near(here, 0.01, Some(&next), 1).await.unwrap().next {
            next = n;
            pages += 1;
            assert!(pages < 10, "every page reads about {SCAN_BUDGET} rows");
        }
    }
}
