//! `[database]`: the records store (embedded redb or CQL) and its schema and sample data.
use super::{ConfigError, bad};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `embedded` or `cql` (ScyllaDB/Cassandra).
    pub backend: DatabaseBackend,
    /// CQL contact points, `host:port`.
    pub cql_nodes: Vec<String>,
    /// CQL keyspace holding accounts, places and posts.
    pub keyspace: String,
    /// Replication factor used when `wagu migrate` creates the keyspace (SimpleStrategy).
    pub replication_factor: u32,
    /// Create the CQL schema at startup if missing (what `wagu migrate` does). Turn off where
    /// schema changes go through a deploy step.
    pub migrate_on_start: bool,
    /// Load the bundled sample places (fictional, marked `sample:`) into an empty store, so a
    /// fresh server has restaurants to show.
    pub seed_sample_places: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseBackend {
    Embedded,
    Cql,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            backend: DatabaseBackend::Embedded,
            cql_nodes: Vec::new(),
            keyspace: "wagu".into(),
            replication_factor: 1,
            migrate_on_start: true,
            seed_sample_places: true,
        }
    }
}

impl DatabaseConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.backend == DatabaseBackend::Cql && self.cql_nodes.is_empty() {
            return bad(
                "database.cql_nodes",
                "required when database.backend = \"cql\"".into(),
            );
        }
        if let Err(e) = wagu_storage::cql::check_keyspace(&self.keyspace) {
            return bad("database.keyspace", e.to_string());
        }
        if self.replication_factor == 0 {
            return bad("database.replication_factor", "must be at least 1".into());
        }
        Ok(())
    }
}
