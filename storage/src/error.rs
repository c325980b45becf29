//! The storage failure domain: one error type for every backend, so callers handle "the store
//! failed" once and still see which backend and why.

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The CQL driver failed (connect, prepare, run, read a result); `context` says what it
    /// was doing (empty: nothing to add), `source` is the driver's error.
    #[error("cql: {}{source}", context_prefix(.context))]
    Cql {
        context: String,
        #[source]
        source: BoxError,
    },
    /// A CQL row that cannot be read as a record (a null, negative or unknown value), or an
    /// answer the protocol promised but did not give (an LWT without its row).
    #[error("cql: {0}")]
    CqlRow(String),
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

impl StorageError {
    /// A CQL driver error, kept as the source.
    pub fn cql(source: impl Into<BoxError>) -> Self {
        Self::cql_in(String::new(), source)
    }

    /// A CQL driver error met while doing `context` ("preparing …").
    pub fn cql_in(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StorageError::Cql {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// `context: ` before the source's message, or nothing.
fn context_prefix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    }
}
