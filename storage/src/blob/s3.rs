//! Blobs on S3 or an S3-compatible server. Configured explicitly (endpoint, region, static
//! keys, path-style) rather than through the AWS default chain, which would probe instance
//! metadata endpoints that do not exist outside AWS.

use crate::StorageError;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct S3Config {
    /// For S3-compatible servers (`http://127.0.0.1:9000`); `None` means AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
}

#[derive(Clone, Debug)]
pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
}

fn s3_err(e: impl std::error::Error) -> StorageError {
    // The SDK's Display is terse ("service error"); the source chain says what happened.
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    StorageError::S3(msg)
}

impl S3Blobs {
    pub fn new(cfg: &S3Config) -> Self {
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .force_path_style(cfg.path_style)
            // Checksums only where the API requires them: S3-compatible servers differ here.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(ep) = &cfg.endpoint {
            b = b.endpoint_url(ep);
        }
        if let (Some(a), Some(s)) = (&cfg.access_key, &cfg.secret_key) {
            b = b.credentials_provider(Credentials::new(a, s, None, None, "wagu-config"));
        }
        S3Blobs {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket: cfg.bucket.clone(),
        }
    }

    pub(super) async fn put(&self, key: &str, body: Bytes, ct: &str) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(ct)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(s3_err)?;
        Ok(())
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let data = out.body.collect().await.map_err(s3_err)?;
                Ok(Some(data.into_bytes()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(s3_err(e)),
        }
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(s3_err)?;
        Ok(())
    }

    pub(super) async fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(limit.min(1000) as i32)
            .send()
            .await
            .map_err(s3_err)?;
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect();
        keys.sort();
        keys.truncate(limit);
        Ok(keys)
    }

    pub(super) async fn ping(&self) -> Result<(), StorageError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(s3_err)?;
        Ok(())
    }
}
