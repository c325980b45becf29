//! Blobs as files. Writes go to a temporary file renamed into place, so a crash never leaves a
//! half-written photo under its real name.

use crate::StorageError;
use bytes::Bytes;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct FsBlobs {
    root: PathBuf,
}

impl FsBlobs {
    /// Creates the directory if needed.
    pub async fn open(root: PathBuf) -> Result<Self, StorageError> {
        tokio::fs::create_dir_all(&root).await?;
        Ok(FsBlobs { root })
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub(super) async fn put(&self, key: &str, body: Bytes) -> Result<(), StorageError> {
        let path = self.root.join(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        tokio::fs::write(&tmp, &body).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(())
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        match tokio::fs::read(self.root.join(key)).await {
            Ok(v) => Ok(Some(Bytes::from(v))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.root.join(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    pub(super) async fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        // Objects are files directly under the prefix's directory (one level: the key layout
        // this store is used with never nests deeper below a listed prefix).
        let dir = self.root.join(prefix.trim_end_matches('/'));
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        while let Some(entry) = rd.next_entry().await? {
            let name = entry.file_name().to_string_lossy().to_string();
            // Skip half-written temporaries.
            if entry.file_type().await?.is_file() && !name.contains(".tmp-") {
                out.push(format!("{prefix}{name}"));
            }
        }
        out.sort();
        out.truncate(limit);
        Ok(out)
    }

    pub(super) async fn ping(&self) -> Result<(), StorageError> {
        tokio::fs::metadata(&self.root).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::BlobStore;
    use super::*;

    #[tokio::test]
    async fn put_get_delete_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("wagu-blob-{}", rand::random::<u64>()));
        let store = BlobStore::Fs(FsBlobs::open(dir.clone()).await.unwrap());
        store
            .put("photos/a.jpg", Bytes::from_static(b"jpeg"), "image/jpeg")
            .await
            .unwrap();
        let reopened = BlobStore::Fs(FsBlobs::open(dir.clone()).await.unwrap());
        assert_eq!(
            reopened.get("photos/a.jpg").await.unwrap().as_deref(),
            Some(&b"jpeg"[..])
        );
        reopened
            .put("photos/b.jpg", Bytes::from_static(b"b"), "image/jpeg")
            .await
            .unwrap();
        assert_eq!(
            reopened.list("photos/", 10).await.unwrap(),
            vec!["photos/a.jpg".to_string(), "photos/b.jpg".to_string()]
        );
        assert!(reopened.list("nothing/", 10).await.unwrap().is_empty());
        reopened.delete("photos/b.jpg").await.unwrap();
        reopened.delete("photos/a.jpg").await.unwrap();
        assert_eq!(reopened.get("photos/a.jpg").await.unwrap(), None);
        assert!(reopened.get("../escape").await.is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
