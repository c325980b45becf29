//! The actors that run sessions (map rooms and live streams).
//!
//! - [`session_actor::SessionActor`]: one per room or stream; owns its state machine, feeds it
//!   inputs, journals what changed it, and fans its outputs out to connection queues.
//! - [`supervisor::Supervisor`]: one per kind; spawns sessions on demand, restarts one that
//!   panicked from its last snapshot plus journal, and forgets those that retired.
//!
//! - [`outbound`], [`frame_queue`], [`direct`]: what a session's frames go through to a
//!   connection: its bounded queue, or (during a session's turn) straight into its socket.
//!
//! Settings shared by both live in [`EngineConfig`].

pub mod direct;
pub mod frame_queue;
pub mod media;
pub mod outbound;
pub mod session_actor;
pub mod supervisor;

use crate::room::RoomConfig;
use crate::stream::StreamConfig;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub room: RoomConfig,
    pub stream: StreamConfig,
    /// Rooms this node may hold at once.
    pub max_rooms: usize,
    /// Live streams this node may hold at once.
    pub max_streams: usize,
    /// How long a share link admits new participants.
    pub share_ttl: Duration,
    /// How long a stored room outlives its last snapshot (renewed at every snapshot).
    pub store_ttl: Duration,
    /// Journal entries after which the room writes a fresh snapshot.
    pub snapshot_every: u64,
    /// Time after which a session with any new journal entry writes a fresh snapshot at its
    /// next input, however few the entries (they bound what a revive replays; this bounds how
    /// old the snapshot gets). Each snapshot writes the whole session, so a short period makes
    /// every quietly chatting room rewrite itself often.
    pub snapshot_after: Duration,
    /// Frames one connection may have queued before it counts as too slow. At least twice the
    /// replay capacity: a resume queues every missed event at once.
    pub outbound_queue: usize,
    /// Restarts of one room within a minute after which it is given up.
    pub max_restarts_per_minute: u32,
    /// The SFU sessions open for voice and video; `None`: this node serves no media.
    pub media: Option<std::sync::Arc<dyn media::MediaPlane>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            room: RoomConfig::default(),
            stream: StreamConfig::default(),
            max_rooms: 10_000,
            max_streams: 1_000,
            share_ttl: Duration::from_secs(24 * 3600),
            store_ttl: Duration::from_secs(48 * 3600),
            snapshot_every: 256,
            snapshot_after: Duration::from_secs(60),
            outbound_queue: 1024,
            max_restarts_per_minute: 5,
            media: None,
        }
    }
}

/// Unix milliseconds: the only place the engine reads a clock. The wall clock is read once;
/// after that time advances with the monotonic clock, so an NTP step or a VM pause cannot make
/// deadlines fire all at once (clock forward) or stall batching (clock backward).
pub fn unix_now() -> u64 {
    use std::sync::OnceLock;
    use std::time::{Instant, SystemTime, UNIX_EPOCH};
    static START: OnceLock<(u64, Instant)> = OnceLock::new();
    let (wall, mono) = START.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        (wall, Instant::now())
    });
    wall + mono.elapsed().as_millis() as u64
}
