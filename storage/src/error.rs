//! The storage failure domain: one error type for every backend, so callers handle "the store
//! failed" once and still see which backend and why.

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cql: {0}")]
    Cql(String),
    #[error("embedded database: {0}")]
    Embedded(String),
    #[error("s3: {0}")]
    S3(String),
    #[error("filesystem: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid key {0:?}: keys are 1-512 bytes of [A-Za-z0-9/._-], no '..' segment")]
    InvalidKey(String),
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}
