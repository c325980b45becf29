//! The room engine's configuration from the gateway's settings: the one place `limits.*` and
//! `ephemeral.room_ttl_secs` become an [`EngineConfig`]. What the settings do not name (the
//! presence batching interval, a stream's chat tail…) keeps the engine's own defaults.
//!
//! What it does not do: validate the settings (`config.rs`) or start anything (`app.rs`).

use std::time::Duration;

use wagu_engine::actor::EngineConfig;
use wagu_engine::room::RoomConfig;
use wagu_engine::stream::StreamConfig;

use crate::config::Config;

/// The engine configuration these settings amount to (media is wired in by the caller).
pub fn engine_config(config: &Config) -> EngineConfig {
    let l = &config.limits;
    EngineConfig {
        room: RoomConfig {
            max_participants: l.max_participants,
            away_grace_ms: l.away_grace_secs * 1000,
            empty_ttl_ms: l.room_empty_ttl_secs * 1000,
            replay_capacity: l.replay_events,
            ..RoomConfig::default()
        },
        stream: StreamConfig {
            max_viewers: l.max_viewers,
            away_grace_ms: l.away_grace_secs * 1000,
            streamer_grace_ms: l.streamer_grace_secs * 1000,
            replay_capacity: l.replay_events,
            ..StreamConfig::default()
        },
        max_rooms: l.max_rooms,
        max_streams: l.max_streams,
        share_ttl: Duration::from_secs(l.share_ttl_secs),
        store_ttl: Duration::from_secs(config.ephemeral.room_ttl_secs),
        outbound_queue: l.outbound_queue,
        ..EngineConfig::default()
    }
}
