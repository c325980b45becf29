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
        .map_err(|e| StorageError::Cql(e.to_string()))
}

/// Splits `a:1,b:2` into contact points.
pub fn parse_nodes(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// Readiness check: one round trip.
pub async fn ping(session: &Session) -> Result<(), StorageError> {
    session
        .query_unpaged("SELECT release_version FROM system.local", ())
        .await
        .map_err(|e| StorageError::Cql(e.to_string()))?;
    Ok(())
}
