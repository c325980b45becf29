//! Photos: upload (decode, orient, strip, resize, encode — [`pipeline`]), store
//! (content-addressed blobs + a [`PhotoRecord`] in the records store), serve, check that a
//! post uses only its author's photos, and sweep the photos no post uses ([`sweep`]).
//!
//! [`Photos`] is the service; `http/photos.rs` is its HTTP edge and `http/posts.rs` calls
//! [`Photos::check_owned`], [`Photos::attach`] and [`Photos::detach`].
//!
//! Blob keys are `photos/<first two hex digits>/<SHA-256 of the bytes>.jpg`: the same bytes
//! are stored once, whoever uploads them. A photo's id derives from its owner and content, so
//! one person uploading the same photo twice gets the same id and one record.
//!
//! What it does not do: HTTP (status codes, multipart), authorisation beyond "the owner's
//! photo" (the handlers authenticate), presigned S3 URLs (photos are always served through
//! the gateway).

mod config;
pub mod pipeline;
pub mod sweep;

pub use config::PhotoConfig;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use tokio::sync::Semaphore;
use wagu_proto::records::{AccountId, PhotoId, PostId};
use wagu_storage::records::photos::{PhotoRecord, PhotoStore, PhotoVariant, VariantKind};
use wagu_storage::records::{RecordError, Records, now_millis};
use wagu_storage::{BlobStore, StorageError};

use pipeline::{DecodeLimits, ImageRejected, Processed};

/// The photo failure domain.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error(transparent)]
    Rejected(#[from] ImageRejected),
    #[error("the file is {size} bytes; at most {limit} bytes per photo")]
    FileTooLarge { size: usize, limit: usize },
    #[error("photo {0} does not exist")]
    Unknown(PhotoId),
    #[error("photo {0} was uploaded by someone else")]
    Foreign(PhotoId),
    #[error(transparent)]
    Records(#[from] RecordError),
    #[error("blob store: {0}")]
    Blobs(#[from] StorageError),
    #[error("the photo worker failed: {0}")]
    Worker(String),
}

/// The display-size JPEG of a photo, for whoever needs the pixels (AI drafts).
#[derive(Clone, Debug)]
pub struct DisplayPhoto {
    pub jpeg: Bytes,
    pub width: u32,
    pub height: u32,
}

/// The photo service. Cheap to clone.
#[derive(Clone)]
pub struct Photos {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    records: Records,
    blobs: BlobStore,
    config: PhotoConfig,
    limits: DecodeLimits,
    decodes: Semaphore,
}

/// The id of `owner`'s upload of content `content_hash`: 22 URL-safe characters.
pub fn photo_id(owner: &AccountId, content_hash: &str) -> PhotoId {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{}\n{content_hash}", owner.0).as_bytes());
    // 16 bytes (128 bits), like every other id: 22 characters.
    PhotoId(URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// Where a variant's bytes live.
pub fn blob_key(hash: &str) -> String {
    format!("photos/{}/{hash}.jpg", &hash[..2])
}

/// A photo id as it may appear in a path: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= wagu_proto::records::MAX_PHOTO_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Runs the pipeline on the blocking pool; a panic inside a decoder becomes an error.
pub async fn process_off_runtime(
    bytes: Bytes,
    limits: DecodeLimits,
) -> Result<Processed, PhotoError> {
    off_runtime(move || pipeline::process(&bytes, &limits, pipeline::RESAMPLER)).await
}

/// Runs `f` on the blocking pool, a panic in it becoming [`ImageRejected::DecoderPanicked`]
/// (the worker thread lives on).
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageRejected> + Send + 'static,
) -> Result<T, PhotoError> {
    let task = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
    });
    match task.await {
        Ok(Ok(result)) => Ok(result?),
        Ok(Err(_panic)) => {
            metrics::counter!("wagu_photo_decoder_panics_total").increment(1);
            Err(ImageRejected::DecoderPanicked.into())
        }
        Err(e) => Err(PhotoError::Worker(e.to_string())),
    }
}

impl Photos {
    pub fn new(records: Records, blobs: BlobStore, config: PhotoConfig) -> Self {
        Photos {
            inner: Arc::new(Inner {
                limits: config.decode_limits(),
                decodes: Semaphore::new(config.max_concurrent_decodes),
                records,
                blobs,
                config,
            }),
        }
    }

    pub fn config(&self) -> &PhotoConfig {
        &self.inner.config
    }

    pub(crate) fn records(&self) -> &Records {
        &self.inner.records
    }

    pub(crate) fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// Processes and stores one uploaded file for `owner`; the stored record.
    pub async fn upload(&self, owner: &AccountId, bytes: Bytes) -> Result<PhotoRecord, PhotoError> {
        let limit = self.inner.config.max_photo_bytes;
        if bytes.len() > limit {
            return Err(PhotoError::FileTooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let processed = {
            let _permit = self
                .inner
                .decodes
                .acquire()
                .await
                .map_err(|e| PhotoError::Worker(e.to_string()))?;
            process_off_runtime(bytes, self.inner.limits).await?
        };
        let variants: Vec<PhotoVariant> = processed
            .variants
            .iter()
            .map(|v| PhotoVariant {
                kind: v.kind,
                key: blob_key(&v.hash),
                hash: v.hash.clone(),
                content_type: "image/jpeg".into(),
                width: v.width,
                height: v.height,
                bytes: v.jpeg.len() as u64,
            })
            .collect();
        let record = PhotoRecord {
            id: photo_id(owner, &processed.content_hash),
            owner: owner.clone(),
            created_at: now_millis(),
            content_hash: processed.content_hash.clone(),
            variants,
            posts: Default::default(),
            detached_at: None,
        };
        // The record first, then the bytes (always, even for a photo seen before: a retry
        // after a failed blob write repairs it). Same content, same keys: no second copy.
        let stored = self.inner.records.put_photo(&record).await?;
        for v in processed.variants {
            self.inner
                .blobs
                .put(&blob_key(&v.hash), Bytes::from(v.jpeg), "image/jpeg")
                .await?;
        }
        metrics::counter!("wagu_photos_uploaded_total").increment(1);
        Ok(stored)
    }

    pub async fn photo(&self, id: &PhotoId) -> Result<Option<PhotoRecord>, PhotoError> {
        Ok(self.inner.records.photo(id).await?)
    }

    /// A variant's bytes, with its record entry.
    pub async fn variant(
        &self,
        id: &PhotoId,
        kind: VariantKind,
    ) -> Result<Option<(PhotoVariant, Bytes)>, PhotoError> {
        let Some(p) = self.photo(id).await? else {
            return Ok(None);
        };
        let Some(v) = p.variant(kind).cloned() else {
            return Ok(None);
        };
        Ok(self.inner.blobs.get(&v.key).await?.map(|b| (v, b)))
    }

    /// The display-size JPEG of `owner`'s photo `id`; `None` when there is no such photo or
    /// someone else uploaded it.
    pub async fn display_jpeg(
        &self,
        owner: &AccountId,
        id: &PhotoId,
    ) -> Result<Option<DisplayPhoto>, PhotoError> {
        match self.photo(id).await? {
            Some(p) if &p.owner == owner => {}
            _ => return Ok(None),
        }
        Ok(self
            .variant(id, VariantKind::Display)
            .await?
            .map(|(v, jpeg)| DisplayPhoto {
                jpeg,
                width: v.width,
                height: v.height,
            }))
    }

    /// Every id names a photo `owner` uploaded: [`PhotoError::Unknown`] or
    /// [`PhotoError::Foreign`] for the first that does not.
    pub async fn check_owned(&self, owner: &AccountId, ids: &[PhotoId]) -> Result<(), PhotoError> {
        for id in ids {
            if !valid_id(&id.0) {
                return Err(PhotoError::Unknown(id.clone()));
            }
            match self.photo(id).await? {
                None => return Err(PhotoError::Unknown(id.clone())),
                Some(p) if &p.owner != owner => return Err(PhotoError::Foreign(id.clone())),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Records that `post` uses `ids` (before the post is written: a photo is never
    /// unattached while a post that uses it exists).
    pub async fn attach(&self, post: &PostId, ids: &[PhotoId]) -> Result<(), PhotoError> {
        let now = now_millis();
        for id in ids {
            self.inner.records.attach_photo(id, post, now).await?;
        }
        Ok(())
    }

    /// Records that `post` no longer uses `ids` (after the post changed): they become sweep
    /// candidates. Failures are logged, not returned: the post has changed already, and a
    /// photo left attached to a post that no longer uses it is found by the sweep.
    pub async fn detach(&self, post: &PostId, ids: &[PhotoId]) {
        let now = now_millis();
        for id in ids {
            if let Err(e) = self.inner.records.detach_photo(id, post, now).await {
                tracing::warn!(photo = %id, post = %post, error = %e, "could not detach a photo");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_decoder_panic_is_a_rejection_and_the_pool_lives_on() {
        let r = off_runtime(|| -> Result<(), ImageRejected> { panic!("decoder bug") }).await;
        assert!(
            matches!(r, Err(PhotoError::Rejected(ImageRejected::DecoderPanicked))),
            "{r:?}"
        );
        let after = off_runtime(|| Ok::<_, ImageRejected>(7)).await.unwrap();
        assert_eq!(after, 7);
    }

    #[test]
    fn photo_ids_are_per_owner_and_content_and_path_safe() {
        let a = photo_id(&AccountId("a".into()), "hash1");
        assert_eq!(a, photo_id(&AccountId("a".into()), "hash1"));
        assert_ne!(a, photo_id(&AccountId("b".into()), "hash1"));
        assert_ne!(a, photo_id(&AccountId("a".into()), "hash2"));
        assert_eq!(a.0.len(), 22);
        assert!(valid_id(&a.0));
        assert!(!valid_id("../x") && !valid_id("") && !valid_id(&"a".repeat(65)));
    }
}
