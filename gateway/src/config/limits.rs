//! `[limits]` and `[rate]`: what one node, room, stream and connection may hold and send.
use super::{ConfigError, bad};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest client frame accepted, bytes (at most the protocol's 16 KiB).
    pub max_frame_bytes: usize,
    pub max_participants: usize,
    pub max_rooms: usize,
    pub max_connections: usize,
    /// Frames queued per connection before it counts as too slow.
    pub outbound_queue: usize,
    /// Close a connection that sent nothing (not even a pong) for this long, seconds.
    pub idle_timeout_secs: u64,
    /// Send a WebSocket ping this often, seconds.
    pub ping_interval_secs: u64,
    /// Allowed `Origin` headers for `/ws`; empty allows any origin.
    pub allowed_origins: Vec<String>,
    /// How long a dropped participant may resume, seconds.
    pub away_grace_secs: u64,
    /// How long a room with nobody online lives, seconds.
    pub room_empty_ttl_secs: u64,
    /// How long a share link admits newcomers, seconds.
    pub share_ttl_secs: u64,
    /// Reliable events kept per room for resuming clients.
    pub replay_events: usize,
    /// Live streams per node.
    pub max_streams: usize,
    /// Viewers per stream.
    pub max_viewers: usize,
    /// How long viewers wait for a dropped streamer before the stream ends, seconds.
    pub streamer_grace_secs: u64,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed: behind
    /// them, per-address limits apply to the client's address, not the proxy's. Empty: the TCP
    /// peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: wagu_proto::limits::MAX_CLIENT_FRAME_BYTES,
            max_participants: 50,
            max_rooms: 10_000,
            max_connections: 100_000,
            outbound_queue: 1024,
            idle_timeout_secs: 60,
            ping_interval_secs: 20,
            allowed_origins: Vec::new(),
            away_grace_secs: 60,
            room_empty_ttl_secs: 600,
            share_ttl_secs: 24 * 3600,
            replay_events: 512,
            max_streams: 1_000,
            max_viewers: 20_000,
            streamer_grace_secs: 120,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Limits {
    /// `trusted_proxies` parsed (a bare address is a one-address range).
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|t| {
                t.parse::<ipnet::IpNet>()
                    .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{t:?} is neither an address nor a CIDR range"))
            })
            .collect()
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let l = self;
        if let Err(e) = l.trusted_proxies() {
            return bad("limits.trusted_proxies", e);
        }
        if l.max_frame_bytes < 256 || l.max_frame_bytes > wagu_proto::limits::MAX_CLIENT_FRAME_BYTES
        {
            return bad(
                "limits.max_frame_bytes",
                format!(
                    "must be 256 to {}",
                    wagu_proto::limits::MAX_CLIENT_FRAME_BYTES
                ),
            );
        }
        if l.max_participants == 0 || l.max_participants > 10_000 {
            return bad("limits.max_participants", "must be 1 to 10000".into());
        }
        if l.max_rooms == 0 {
            return bad("limits.max_rooms", "must be at least 1".into());
        }
        if l.outbound_queue < 8 {
            return bad("limits.outbound_queue", "must be at least 8".into());
        }
        // A resume queues every missed event at once into a fresh queue: it must fit with
        // room to spare, or the resuming client would be dropped as too slow.
        if l.replay_events * 2 > l.outbound_queue {
            return bad(
                "limits.replay_events",
                format!(
                    "must be at most half of limits.outbound_queue ({})",
                    l.outbound_queue
                ),
            );
        }
        if l.ping_interval_secs == 0 || l.idle_timeout_secs <= l.ping_interval_secs {
            return bad(
                "limits.idle_timeout_secs",
                "must exceed limits.ping_interval_secs (> 0)".into(),
            );
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Presence updates per second per connection (burst: twice this).
    pub presence_per_sec: u32,
    /// Chat messages per second per connection (burst: twice this).
    pub chat_per_sec: u32,
    /// Other commands per second per connection (burst: twice this).
    pub commands_per_sec: u32,
    /// Refused frames within 10 seconds after which the connection is closed (1008).
    pub abuse_threshold: u32,
    /// Rooms and streams one client address may create per minute (burst: a minute's worth).
    pub creates_per_minute: u32,
    /// Sign-ups and log-in attempts one client address may make per minute.
    pub logins_per_minute: u32,
    /// Posts and places one client address may write (create, edit, delete) per minute.
    pub writes_per_minute: u32,
    /// `media_offer` and `media_mute` per second per connection (burst: twice this).
    pub media_per_sec: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            presence_per_sec: 30,
            chat_per_sec: 5,
            commands_per_sec: 20,
            abuse_threshold: 50,
            creates_per_minute: 30,
            logins_per_minute: 10,
            writes_per_minute: 60,
            media_per_sec: 1,
        }
    }
}

impl RateLimits {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.presence_per_sec == 0
            || self.chat_per_sec == 0
            || self.commands_per_sec == 0
            || self.creates_per_minute == 0
            || self.logins_per_minute == 0
            || self.writes_per_minute == 0
            || self.media_per_sec == 0
        {
            return bad("rate", "every rate must be at least 1".into());
        }
        Ok(())
    }
}
