//! Sessions to ScyllaDB (or Cassandra, which the test bed runs). The posts issue builds its
//! tables on this; today it connects, and the smoke test proves the round trip.
//!
//! Only CQL both databases accept is used here: no `USING TIMEOUT`, no `BYPASS CACHE`.

use crate::StorageError;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use std::time::Duration;

/// Connects to the given contact points (`host:port`, comma-separated or a list).
pub async fn connect(nodes: &[String]) -> Result<Session, StorageError> {
    SessionBuilder::new()
        .known_nodes(nodes)
        .connection_timeout(Duration::from_secs(5))
        .build()
        .await
        .map_err(StorageError::cql)
}

/// Splits `a:1,b:2` into contact points.
pub fn parse_nodes(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// The keyspace name rule (it is interpolated into CQL): 1 to 48 characters of `[a-z0-9_]`,
/// starting with a letter. The configuration and the records store both ask here.
pub fn check_keyspace(ks: &str) -> Result<(), InvalidKeyspace> {
    let b = ks.as_bytes();
    let ok = (1..=48).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if ok { Ok(()) } else { Err(InvalidKeyspace) }
}

/// A keyspace name outside the rule of [`check_keyspace`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 48 characters of [a-z0-9_], starting with a letter")]
pub struct InvalidKeyspace;

/// Readiness check: one round trip.
pub async fn ping(session: &Session) -> Result<(), StorageError> {
    session
        .query_unpaged("SELECT release_version FROM system.local", ())
        .await
        .map_err(StorageError::cql)?;
    Ok(())
}
