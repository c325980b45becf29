//! Frames the server sends. Replies (`ack`, `error`) answer one command of this connection;
//! `welcome` and `resumed` open a session; everything else is a room event and carries the
//! room's sequence number `seq`.
//!
//! Reliable events number the room's history 1, 2, 3… without gaps and are kept in a bounded
//! replay buffer for resuming clients. `presence` is lossy: it carries the current `seq` (the
//! last reliable event before it) but does not advance it and is never replayed.

use crate::error::ErrorCode;
use crate::ids::{ParticipantId, PlaceId, RequestId, ResumeToken, Seq};
use crate::media::{MediaEndReason, MediaPeer};
use crate::model::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The command with this id took effect. `seq` is the last reliable event it produced
    /// (a join's or resume's own event included); absent when it produced none.
    Ack {
        id: RequestId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<Seq>,
    },
    /// The command with this id (or, without an id, the frame) was refused; nothing changed.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        code: ErrorCode,
        message: String,
    },
    /// The session starts from this snapshot (a fresh join, or a resume too old to replay).
    Welcome {
        protocol: u32,
        you: ParticipantId,
        resume_token: ResumeToken,
        room: Box<RoomSnapshot>,
    },
    /// A resume succeeded by replay: the events after `from_seq` follow, up to `to_seq`.
    Resumed {
        you: ParticipantId,
        resume_token: ResumeToken,
        from_seq: Seq,
        to_seq: Seq,
    },
    ParticipantJoined {
        seq: Seq,
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        seq: Seq,
        participant: ParticipantId,
        reason: LeaveReason,
    },
    ParticipantAway {
        seq: Seq,
        participant: ParticipantId,
    },
    ParticipantBack {
        seq: Seq,
        participant: ParticipantId,
    },
    HostChanged {
        seq: Seq,
        participant: ParticipantId,
    },
    /// Batched, coalesced presence (latest per participant). Lossy; does not advance `seq`.
    /// `at` is when the server sent the batch (Unix ms), for smoothing and staleness.
    /// A batch whose only entry is your own is not sent to you.
    Presence {
        seq: Seq,
        at: UnixMillis,
        updates: Vec<PresenceEntry>,
    },
    CandidateAdded {
        seq: Seq,
        candidate: Candidate,
    },
    CandidateRemoved {
        seq: Seq,
        place_id: PlaceId,
        by: ParticipantId,
        /// The tally after the candidate's votes were dropped.
        tally: Vec<TallyEntry>,
    },
    BallotChanged {
        seq: Seq,
        participant: ParticipantId,
        choices: Vec<PlaceId>,
        tally: Vec<TallyEntry>,
    },
    VoteClosed {
        seq: Seq,
        decision: Decision,
    },
    VoteReopened {
        seq: Seq,
        by: ParticipantId,
    },
    Chat {
        seq: Seq,
        message: ChatMessage,
    },
    RoomRenamed {
        seq: Seq,
        title: String,
        by: ParticipantId,
    },
    RoomClosed {
        seq: Seq,
        reason: RoomCloseReason,
    },
    /// A stream session starts from this snapshot (a fresh join, or a resume too old to replay).
    StreamWelcome {
        protocol: u32,
        you: ParticipantId,
        resume_token: ResumeToken,
        stream: Box<StreamSnapshot>,
    },
    /// The live viewer count, coalesced to about once a second. Lossy; does not advance `seq`.
    Viewers {
        seq: Seq,
        at: UnixMillis,
        count: u32,
    },
    PinChanged {
        seq: Seq,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<ChatMessage>,
    },
    MessageDeleted {
        seq: Seq,
        message: Seq,
        by: ParticipantId,
    },
    Muted {
        seq: Seq,
        participant: ParticipantId,
        until: UnixMillis,
    },
    Banned {
        seq: Seq,
        participant: ParticipantId,
    },
    StreamerAway {
        seq: Seq,
    },
    StreamerBack {
        seq: Seq,
    },
    StreamEnded {
        seq: Seq,
        reason: StreamEndReason,
    },
    /// The reply to `media_offer`: the SFU's SDP answer.
    MediaAnswer {
        id: RequestId,
        sdp: String,
    },
    /// This connection's voice/video ended (not a session event: no `seq`).
    MediaEnded {
        reason: MediaEndReason,
    },
    /// Lossy: who publishes voice/video now, the whole list.
    MediaState {
        seq: Seq,
        at: UnixMillis,
        peers: Vec<MediaPeer>,
    },
    /// Lossy: who is speaking now, loudest first (from RFC 6464 audio levels).
    Speaking {
        seq: Seq,
        at: UnixMillis,
        participants: Vec<ParticipantId>,
    },
}

impl ServerMessage {
    /// The room sequence number this frame carries, if it is a room event.
    pub fn seq(&self) -> Option<Seq> {
        use ServerMessage::*;
        match self {
            Ack { .. }
            | Error { .. }
            | Welcome { .. }
            | Resumed { .. }
            | StreamWelcome { .. }
            | MediaAnswer { .. }
            | MediaEnded { .. } => None,
            MediaState { seq, .. } | Speaking { seq, .. } => Some(*seq),
            Viewers { seq, .. }
            | PinChanged { seq, .. }
            | MessageDeleted { seq, .. }
            | Muted { seq, .. }
            | Banned { seq, .. }
            | StreamerAway { seq }
            | StreamerBack { seq }
            | StreamEnded { seq, .. } => Some(*seq),
            ParticipantJoined { seq, .. }
            | ParticipantLeft { seq, .. }
            | ParticipantAway { seq, .. }
            | ParticipantBack { seq, .. }
            | HostChanged { seq, .. }
            | Presence { seq, .. }
            | CandidateAdded { seq, .. }
            | CandidateRemoved { seq, .. }
            | BallotChanged { seq, .. }
            | VoteClosed { seq, .. }
            | VoteReopened { seq, .. }
            | Chat { seq, .. }
            | RoomRenamed { seq, .. }
            | RoomClosed { seq, .. } => Some(*seq),
        }
    }

    /// A short stable name for metrics.
    pub fn kind(&self) -> &'static str {
        use ServerMessage::*;
        match self {
            Ack { .. } => "ack",
            Error { .. } => "error",
            Welcome { .. } => "welcome",
            Resumed { .. } => "resumed",
            ParticipantJoined { .. } => "participant_joined",
            ParticipantLeft { .. } => "participant_left",
            ParticipantAway { .. } => "participant_away",
            ParticipantBack { .. } => "participant_back",
            HostChanged { .. } => "host_changed",
            Presence { .. } => "presence",
            CandidateAdded { .. } => "candidate_added",
            CandidateRemoved { .. } => "candidate_removed",
            BallotChanged { .. } => "ballot_changed",
            VoteClosed { .. } => "vote_closed",
            VoteReopened { .. } => "vote_reopened",
            Chat { .. } => "chat",
            RoomRenamed { .. } => "room_renamed",
            RoomClosed { .. } => "room_closed",
            StreamWelcome { .. } => "stream_welcome",
            Viewers { .. } => "viewers",
            PinChanged { .. } => "pin_changed",
            MessageDeleted { .. } => "message_deleted",
            Muted { .. } => "muted",
            Banned { .. } => "banned",
            StreamerAway { .. } => "streamer_away",
            StreamerBack { .. } => "streamer_back",
            StreamEnded { .. } => "stream_ended",
            MediaAnswer { .. } => "media_answer",
            MediaEnded { .. } => "media_ended",
            MediaState { .. } => "media_state",
            Speaking { .. } => "speaking",
        }
    }

    pub fn error(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            id,
            code,
            message: message.into(),
        }
    }
}
