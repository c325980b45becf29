//! Photo records: who uploaded a photo, when, where its variants are stored, and which posts
//! use it — behind one trait ([`PhotoStore`]) with two backends ([`super::photos_embedded`]
//! on the redb file, [`super::photos_cql`] on ScyllaDB / Cassandra) that one contract suite
//! (`storage/tests/photos_contract.rs`) holds to the same rules.
//!
//! What it does: persists [`PhotoRecord`]s, the attachments of photos to posts, the index from
//! a content hash to the photos sharing it (so blobs stored once for several uploads are
//! deleted only with the last of them), and the sweep queue: every upload and every detachment
//! queues `(time, photo id)`, and the gateway's sweep reads the entries older than its grace
//! period ([`PhotoStore::sweep_due`]) to delete photos no post uses.
//!
//! What it does not do: decode or resize images, store the image bytes (the blob store does),
//! decide what is an orphan (the gateway's sweep, which reads posts too), check ownership.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wagu_proto::model::UnixMillis;
use wagu_proto::records::{AccountId, PhotoId, PostId};

use super::{Records, Result};

/// The sizes a photo is stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantKind {
    /// About 320 px on the long side: feeds and lists.
    Thumb,
    /// About 1280 px on the long side: a post's page.
    Display,
}

impl VariantKind {
    pub const ALL: [VariantKind; 2] = [VariantKind::Thumb, VariantKind::Display];

    pub fn as_str(self) -> &'static str {
        match self {
            VariantKind::Thumb => "thumb",
            VariantKind::Display => "display",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One stored size of a photo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoVariant {
    pub kind: VariantKind,
    /// Blob store key (content-addressed: derived from `hash`).
    pub key: String,
    /// Hex SHA-256 of the stored bytes (the HTTP `ETag`).
    pub hash: String,
    /// MIME type of the stored bytes (`image/jpeg`).
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    /// Size of the stored bytes.
    pub bytes: u64,
}

/// A photo as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoRecord {
    pub id: PhotoId,
    /// The uploader: only they may put the photo in a post.
    pub owner: AccountId,
    pub created_at: UnixMillis,
    /// Hex SHA-256 over the variants' hashes: photos with equal content share their blobs.
    pub content_hash: String,
    pub variants: Vec<PhotoVariant>,
    /// Posts using the photo, with when each attached.
    pub posts: BTreeMap<PostId, UnixMillis>,
    /// When it was last detached from a post (none: never).
    pub detached_at: Option<UnixMillis>,
}

impl PhotoRecord {
    pub fn variant(&self, kind: VariantKind) -> Option<&PhotoVariant> {
        self.variants.iter().find(|v| v.kind == kind)
    }

    /// Since when nothing has used it, if nothing does: its upload or its last detachment.
    pub fn unused_since(&self) -> Option<UnixMillis> {
        self.posts
            .is_empty()
            .then(|| self.created_at.max(self.detached_at.unwrap_or(0)))
    }
}

/// An entry of the sweep queue: look at photo `id` once `at` is older than the grace period.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SweepEntry {
    pub at: UnixMillis,
    pub id: PhotoId,
}

/// Photo records.
#[allow(async_fn_in_trait)] // callers use the concrete backends, whose futures are `Send`
pub trait PhotoStore {
    /// Stores a new photo (and queues it for the sweep at `created_at`), unless a photo with
    /// this id exists: then nothing changes and the stored record is returned. Ids derive
    /// from (owner, content), so this makes uploading the same photo twice store it once.
    async fn put_photo(&self, p: &PhotoRecord) -> Result<PhotoRecord>;
    async fn photo(&self, id: &PhotoId) -> Result<Option<PhotoRecord>>;
    /// Records that `post` uses the photo (no-op for an unknown photo).
    async fn attach_photo(&self, id: &PhotoId, post: &PostId, at: UnixMillis) -> Result<()>;
    /// Records that `post` no longer uses the photo, sets `detached_at` and queues the photo
    /// for the sweep at `at`.
    async fn detach_photo(&self, id: &PhotoId, post: &PostId, at: UnixMillis) -> Result<()>;
    /// Up to `limit` sweep entries queued before `before`, oldest first.
    async fn sweep_due(&self, before: UnixMillis, limit: usize) -> Result<Vec<SweepEntry>>;
    /// Removes a sweep entry (looked at).
    async fn unqueue(&self, entry: &SweepEntry) -> Result<()>;
    /// Deletes the record and its content index entry; answers whether other photos still
    /// share its content hash (then its blobs must stay).
    async fn delete_photo(&self, p: &PhotoRecord) -> Result<bool>;
}

impl PhotoStore for Records {
    async fn put_photo(&self, p: &PhotoRecord) -> Result<PhotoRecord> {
        match self {
            Records::Embedded(b) => b.put_photo(p).await,
            Records::Cql(b) => b.put_photo(p).await,
        }
    }
    async fn photo(&self, id: &PhotoId) -> Result<Option<PhotoRecord>> {
        match self {
            Records::Embedded(b) => b.photo(id).await,
            Records::Cql(b) => b.photo(id).await,
        }
    }
    async fn attach_photo(&self, id: &PhotoId, post: &PostId, at: UnixMillis) -> Result<()> {
        match self {
            Records::Embedded(b) => b.attach_photo(id, post, at).await,
            Records::Cql(b) => b.attach_photo(id, post, at).await,
        }
    }
    async fn detach_photo(&self, id: &PhotoId, post: &PostId, at: UnixMillis) -> Result<()> {
        match self {
            Records::Embedded(b) => b.detach_photo(id, post, at).await,
            Records::Cql(b) => b.detach_photo(id, post, at).await,
        }
    }
    async fn sweep_due(&self, before: UnixMillis, limit: usize) -> Result<Vec<SweepEntry>> {
        match self {
            Records::Embedded(b) => b.sweep_due(before, limit).await,
            Records::Cql(b) => b.sweep_due(before, limit).await,
        }
    }
    async fn unqueue(&self, entry: &SweepEntry) -> Result<()> {
        match self {
            Records::Embedded(b) => b.unqueue(entry).await,
            Records::Cql(b) => b.unqueue(entry).await,
        }
    }
    async fn delete_photo(&self, p: &PhotoRecord) -> Result<bool> {
        match self {
            Records::Embedded(b) => b.delete_photo(p).await,
            Records::Cql(b) => b.delete_photo(p).await,
        }
    }
}
