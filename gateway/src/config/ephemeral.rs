//! `[ephemeral]`: where rooms and streams are kept between events (embedded redb, memory, Redis).
use super::{ConfigError, bad};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EphemeralConfig {
    /// `embedded` (a redb file under `data_dir/ephemeral`, the default), `memory`
    /// (in-process, lost on restart: tests) or `redis`.
    pub backend: EphemeralBackend,
    pub redis_url: Option<String>,
    /// How long a stored room outlives its last snapshot, seconds.
    pub room_ttl_secs: u64,
    /// The embedded store: at most this long between durable commits of its file, ms; writes
    /// in between are durable in its log, which a restart after a crash replays.
    pub checkpoint_ms: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EphemeralBackend {
    Embedded,
    Memory,
    Redis,
}

impl Default for EphemeralConfig {
    fn default() -> Self {
        EphemeralConfig {
            backend: EphemeralBackend::Embedded,
            redis_url: None,
            room_ttl_secs: 48 * 3600,
            checkpoint_ms: 1000,
        }
    }
}

impl EphemeralConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.backend == EphemeralBackend::Redis && self.redis_url.is_none() {
            return bad(
                "ephemeral.redis_url",
                "required when ephemeral.backend = \"redis\"".into(),
            );
        }
        if !(10..=600_000).contains(&self.checkpoint_ms) {
            return bad(
                "ephemeral.checkpoint_ms",
                format!("{} is outside 10..=600000", self.checkpoint_ms),
            );
        }
        Ok(())
    }
}
