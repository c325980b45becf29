//! Photos and other binary objects, by key.
//!
//! The default writes files under `<data_dir>/blobs` (so a restart keeps them); S3 (or any
//! S3-compatible server) when configured. Keys are validated here, once, for both backends, so
//! a hostile key can never walk out of the blob directory.

mod fs;
mod s3;

pub use self::fs::FsBlobs;
pub use self::s3::{S3Blobs, S3Config};

use crate::StorageError;
use bytes::Bytes;

#[derive(Clone)]
pub enum BlobStore {
    Fs(FsBlobs),
    S3(S3Blobs),
}

/// Keys: 1–512 bytes of `[A-Za-z0-9/._-]`, not starting with `/`, no empty or `..` segment.
pub fn check_key(key: &str) -> Result<(), StorageError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidKey(key.chars().take(64).collect()))
    }
}

impl BlobStore {
    pub fn backend(&self) -> &'static str {
        match self {
            BlobStore::Fs(_) => "filesystem",
            BlobStore::S3(_) => "s3",
        }
    }

    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        check_key(key)?;
        match self {
            BlobStore::Fs(f) => f.put(key, body).await,
            BlobStore::S3(s) => s.put(key, body, content_type).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        check_key(key)?;
        match self {
            BlobStore::Fs(f) => f.get(key).await,
            BlobStore::S3(s) => s.get(key).await,
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        check_key(key)?;
        match self {
            BlobStore::Fs(f) => f.delete(key).await,
            BlobStore::S3(s) => s.delete(key).await,
        }
    }

    /// Keys under `prefix` (which must end with `/`), sorted, at most `limit`.
    pub async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StorageError> {
        check_key(prefix.trim_end_matches('/'))?;
        if !prefix.ends_with('/') {
            return Err(StorageError::InvalidKey(prefix.chars().take(64).collect()));
        }
        match self {
            BlobStore::Fs(f) => f.list(prefix, limit).await,
            BlobStore::S3(s) => s.list(prefix, limit).await,
        }
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        match self {
            BlobStore::Fs(f) => f.ping().await,
            BlobStore::S3(s) => s.ping().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_keys_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "a b",
            "a\0b",
            "ü",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["photos/2026/abc.jpg", "a", "x-y_z.webp"] {
            assert!(check_key(good).is_ok(), "{good:?} refused");
        }
    }
}
