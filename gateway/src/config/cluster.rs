//! `[cluster]`: several nodes sharing one Redis (ownership, leases) and one NATS (the bus).
//! Off by default: one node, nothing shared.
use super::{ConfigError, EphemeralBackend, EphemeralConfig, bad};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Whether this node is one of several sharing `ephemeral.redis_url` (which must then be
    /// the store).
    pub enabled: bool,
    /// This node's name: 1–64 of `[A-Za-z0-9._-]`. Default: the host name.
    pub node_id: Option<String>,
    /// The node lease, milliseconds: renewed every third of it; a dead node's sessions move
    /// after it lapses.
    pub lease_ttl_ms: u64,
    /// The NATS server the nodes talk through (`nats://host:4222`).
    pub bus_url: Option<String>,
    /// Sessions handed over per batch when draining.
    pub drain_batch: usize,
    /// A drain gives up waiting after this many seconds (keep it below the orchestrator's
    /// termination grace period).
    pub drain_timeout_s: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            node_id: None,
            lease_ttl_ms: 3000,
            bus_url: None,
            drain_batch: 50,
            drain_timeout_s: 25,
        }
    }
}

impl ClusterConfig {
    pub(super) fn check(&self, ephemeral: &EphemeralConfig) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if ephemeral.backend != EphemeralBackend::Redis {
            return bad(
                "cluster.enabled",
                "a cluster needs ephemeral.backend = \"redis\" (the nodes share it)".into(),
            );
        }
        if !(300..=60_000).contains(&self.lease_ttl_ms) {
            return bad(
                "cluster.lease_ttl_ms",
                format!("{} is outside 300..=60000", self.lease_ttl_ms),
            );
        }
        if let Some(id) = &self.node_id
            && let Err(e) = wagu_storage::cluster::NodeId::new(id.clone())
        {
            return bad("cluster.node_id", e.to_string());
        }
        match &self.bus_url {
            Some(u) if u.starts_with("nats://") || u.starts_with("tls://") => {}
            Some(u) => {
                return bad(
                    "cluster.bus_url",
                    format!("{u:?} is not a nats:// (or tls://) URL"),
                );
            }
            None => {
                return bad(
                    "cluster.bus_url",
                    "required when cluster.enabled (the NATS server the nodes share)".into(),
                );
            }
        }
        if self.drain_batch == 0 {
            return bad("cluster.drain_batch", "must be at least 1".into());
        }
        Ok(())
    }

    /// This node's id: the configured one, else the host name (checked).
    pub fn node_id(&self) -> Result<wagu_storage::cluster::NodeId, ConfigError> {
        let raw = match &self.node_id {
            Some(id) => id.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "wagu".into()),
        };
        wagu_storage::cluster::NodeId::new(raw).map_err(|e| ConfigError::Invalid {
            setting: "cluster.node_id",
            message: e.to_string(),
        })
    }
}
