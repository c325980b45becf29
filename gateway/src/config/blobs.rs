//! `[blobs]`: where photos and other blobs go (the filesystem or S3).
use super::{ConfigError, bad};
use serde::{Deserialize, Serialize};
use wagu_storage::blob::S3Config;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BlobConfig {
    /// `filesystem` (under `data_dir/blobs`) or `s3`.
    pub backend: BlobBackend,
    pub s3: Option<S3Config>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    Filesystem,
    S3,
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            backend: BlobBackend::Filesystem,
            s3: None,
        }
    }
}

impl BlobConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.backend == BlobBackend::S3 && self.s3.is_none() {
            return bad("blobs.s3", "required when blobs.backend = \"s3\"".into());
        }
        Ok(())
    }
}
