//! The room model as clients see it: positions, presence, candidates, ballots, the decision,
//! chat, and the snapshot that bundles them for a joining client.
//!
//! Plain data with serde and schemars derives. The rules that change it live in the engine.

use crate::ids::{ParticipantId, PlaceId, RoomId, Seq, StreamId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. The engine is driven by a clock the caller passes in, and
/// this is the unit of that clock, so snapshots stay meaningful on another node.
pub type UnixMillis = u64;

/// A point on the map (WGS84 degrees).
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct LatLng {
    pub lat: f64,
    pub lng: f64,
}

impl LatLng {
    pub fn is_valid(&self) -> bool {
        self.lat.is_finite()
            && self.lng.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lng)
    }
}

/// The visible rectangle of a map, south-west and north-east corners. A box may cross the
/// antimeridian (`sw.lng > ne.lng`), so no ordering of longitudes is enforced.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct Bounds {
    pub sw: LatLng,
    pub ne: LatLng,
}

/// What a participant is looking at.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Viewport {
    pub center: LatLng,
    pub zoom: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<Bounds>,
}

impl Viewport {
    pub fn is_valid(&self) -> bool {
        self.center.is_valid()
            && self.zoom.is_finite()
            && (0.0..=crate::limits::MAX_ZOOM).contains(&self.zoom)
            && self
                .bounds
                .is_none_or(|b| b.sw.is_valid() && b.ne.is_valid() && b.sw.lat <= b.ne.lat)
    }
}

/// One participant's latest viewport and pointer.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PresenceEntry {
    pub participant: ParticipantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewport: Option<Viewport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<LatLng>,
}

/// Whether a participant's connection is up.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Online,
    /// Disconnected but within the grace period: may come back and resume.
    Away,
}

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub name: String,
    /// `#rrggbb`, chosen by the room so that friends are told apart on the map.
    pub color: String,
    pub host: bool,
    pub status: Status,
    pub joined_at: UnixMillis,
    /// The account this participant signed in with; absent for a share-link guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<crate::records::AccountId>,
}

/// How the room votes.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VoteMode {
    /// One choice per participant.
    Single,
    /// Any number of choices up to `max`.
    Approval { max: u8 },
}

impl VoteMode {
    pub fn max_choices(&self) -> usize {
        match self {
            VoteMode::Single => 1,
            VoteMode::Approval { max } => usize::from(*max),
        }
    }
}

/// A restaurant proposed in the room.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Candidate {
    pub place_id: PlaceId,
    pub name: String,
    pub location: LatLng,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub added_by: ParticipantId,
    pub added_at: UnixMillis,
}

/// One participant's current choices.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Ballot {
    pub participant: ParticipantId,
    pub choices: Vec<PlaceId>,
}

/// Votes for one candidate. A tally lists every candidate, in the order they were added.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TallyEntry {
    pub place_id: PlaceId,
    pub votes: u32,
}

/// How a tie for the most votes is broken.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// No tie: one candidate had the most votes.
    None,
    /// Among the tied candidates, the one added to the room first wins.
    EarliestAdded,
}

/// The outcome of a closed vote.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    /// `None` when nobody voted (or there were no candidates).
    pub winner: Option<PlaceId>,
    pub tally: Vec<TallyEntry>,
    pub tie_break: TieBreak,
    pub closed_by: ParticipantId,
    pub closed_at: UnixMillis,
}

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum VoteState {
    Open,
    Closed { decision: Decision },
}

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ChatMessage {
    /// The sequence number of the event that carried this message; unique in the room.
    pub seq: Seq,
    pub from: ParticipantId,
    pub name: String,
    pub text: String,
    pub at: UnixMillis,
}

/// Why a participant left the room.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    Kicked,
    /// Away for longer than the grace period.
    Timeout,
}

/// Why a room ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomCloseReason {
    HostClosed,
}

/// Everything a joining (or too-far-behind resuming) client needs to draw the room.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RoomSnapshot {
    pub room_id: RoomId,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center: Option<LatLng>,
    pub vote_mode: VoteMode,
    pub created_at: UnixMillis,
    /// When the share link stops admitting new participants.
    pub share_expires_at: UnixMillis,
    pub participants: Vec<ParticipantInfo>,
    pub presence: Vec<PresenceEntry>,
    pub candidates: Vec<Candidate>,
    pub ballots: Vec<Ballot>,
    pub tally: Vec<TallyEntry>,
    pub vote: VoteState,
    /// The last messages, oldest first, at most [`crate::limits::CHAT_TAIL`].
    pub chat: Vec<ChatMessage>,
    /// The sequence number of the last event folded into this snapshot.
    pub seq: Seq,
}

/// Why a live stream ended.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StreamEndReason {
    /// The streamer ended it.
    StreamerEnded,
    /// The streamer dropped and did not come back within the grace period.
    StreamerLeft,
}

/// Everything a joining viewer (or the streamer) needs to show a live stream.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct StreamSnapshot {
    pub stream_id: StreamId,
    pub title: String,
    pub place_id: PlaceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LatLng>,
    pub menu: Vec<String>,
    pub streamer: ParticipantId,
    pub streamer_name: String,
    /// Whether the streamer is connected (else within the grace period).
    pub streamer_online: bool,
    pub started_at: UnixMillis,
    pub viewers: u32,
    pub peak_viewers: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<ChatMessage>,
    /// The last messages, oldest first, at most [`crate::limits::CHAT_TAIL`].
    pub chat: Vec<ChatMessage>,
    pub seq: Seq,
}
