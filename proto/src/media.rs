//! Voice and video: what a session (map room, live stream) and its SFU say to each other, and
//! the media state clients see.
//!
//! What it does: the types of the control link between a session's actor (the authority: who
//! may publish, who is still a member, who muted) and the session's SFU (str0m peers, packet
//! forwarding). The link is plain serde data, so the SFU can live in the same process today and
//! on a media node of its own later (the cluster carries the same messages). Also the
//! [`MediaPeer`] entries of the `media_state` frame and the reasons a peer's media ends.
//!
//! What it does not do: SDP or RTP handling (the `media` crate, with str0m), or session rules
//! (each machine's `media_grant` in the engine).

use crate::error::ErrorCode;
use crate::ids::{ParticipantId, RequestId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What one participant may do with media, decided by its session (`Machine::media_grant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaGrant {
    /// May send a microphone track.
    pub publish_audio: bool,
    /// May send a camera track.
    pub publish_video: bool,
    /// How many audio tracks the SFU forwards to this participant at most (the loudest
    /// speakers other than itself fill them).
    pub audio_slots: u8,
    /// How many video tracks the SFU forwards to this participant at most.
    pub video_slots: u8,
}

/// One publishing participant in a `media_state` frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MediaPeer {
    pub participant: ParticipantId,
    /// It sends a microphone track.
    pub audio: bool,
    /// It sends a camera track.
    pub video: bool,
    /// It muted itself: the SFU forwards none of its audio.
    pub muted: bool,
}

/// Why a participant's media ended: the reason the session gives its SFU, and the one a client
/// reads in `media_ended` (which never says `left`: a client's own `media_leave` gets an `ack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaEndReason {
    /// The participant sent `media_leave`.
    Left,
    /// ICE or DTLS failed, or the peer went silent: offer again to reconnect.
    Disconnected,
    /// The participant is no longer in the session (left, kicked, banned, timed out).
    NotMember,
    /// The SFU failed; offer again.
    Internal,
}

/// From a session's actor to its SFU. Requests of one session arrive in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SfuRequest {
    /// A participant's SDP offer, already admitted by the session with this grant. A second
    /// offer from the same participant replaces its peer (that is how a client reconnects its
    /// media after a resume: an ICE restart by a fresh peer).
    Offer {
        participant: ParticipantId,
        request: RequestId,
        sdp: String,
        grant: MediaGrant,
    },
    /// A trickled ICE candidate of the participant's current peer.
    Candidate {
        participant: ParticipantId,
        candidate: String,
    },
    /// The participant muted (or unmuted) its microphone: forward none of its audio.
    Mute {
        participant: ParticipantId,
        muted: bool,
    },
    /// End this participant's media.
    End {
        participant: ParticipantId,
        reason: MediaEndReason,
    },
    /// The session is over: end every peer and stop.
    Close,
}

/// From an SFU back to its session's actor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SfuEvent {
    /// The SDP answer to an offer.
    Answer {
        participant: ParticipantId,
        request: RequestId,
        sdp: String,
    },
    /// The offer was refused; the participant has no peer.
    Refused {
        participant: ParticipantId,
        request: RequestId,
        code: ErrorCode,
        message: String,
    },
    /// A peer ended without being asked to (ICE failure, the SFU failing).
    Ended {
        participant: ParticipantId,
        reason: MediaEndReason,
    },
    /// Who publishes now (sent when it changes).
    Peers(Vec<MediaPeer>),
    /// Who is speaking now, loudest first (sent when it changes).
    Speaking(Vec<ParticipantId>),
}
