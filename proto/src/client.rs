//! Frames a client sends. Every command carries a client request id (`id`) and is answered by
//! exactly one `ack` or `error` with that id. The one exception is a `presence` update sent
//! without an `id`: presence is lossy by nature, so a client may stream it fire-and-forget; with
//! an `id` it is acknowledged like any command.

use crate::error::ErrorCode;
use crate::ids::{
    HostKey, ParticipantId, PlaceId, RequestId, ResumeToken, Seq, ShareToken, StreamId,
};
use crate::limits::*;
use crate::model::{LatLng, Viewport};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Presented on `join` to take back a place in the room after a dropped connection.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ResumeRequest {
    pub participant: ParticipantId,
    pub token: ResumeToken,
    /// The last sequence number the client saw; the server replays what came after it. `0`
    /// (no state kept) always gets a fresh snapshot.
    pub last_seq: Seq,
}

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First frame of a connection: the protocol version the client speaks.
    Hello {
        id: RequestId,
        protocol: u32,
    },
    /// Enter the room behind a share link, or resume a place in it.
    Join {
        id: RequestId,
        share: ShareToken,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_key: Option<HostKey>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<ResumeRequest>,
        /// An account's access token (from `/api/auth/login`): the participant is shown as
        /// that account. Absent: a guest admitted by the share link alone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Where this participant is looking and pointing. Latest wins; the server batches.
    Presence {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        viewport: Option<Viewport>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pointer: Option<LatLng>,
    },
    AddCandidate {
        id: RequestId,
        place_id: PlaceId,
        name: String,
        lat: f64,
        lng: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Allowed to the participant who added the candidate and to the host.
    RemoveCandidate {
        id: RequestId,
        place_id: PlaceId,
    },
    /// Replace this participant's ballot. An empty list withdraws the vote.
    Vote {
        id: RequestId,
        choices: Vec<PlaceId>,
    },
    /// Host only: close the vote and announce the decision.
    CloseVote {
        id: RequestId,
    },
    /// Host only: reopen a closed vote; ballots are kept.
    ReopenVote {
        id: RequestId,
    },
    Chat {
        id: RequestId,
        text: String,
    },
    /// Host only.
    Kick {
        id: RequestId,
        participant: ParticipantId,
    },
    /// Host only.
    Rename {
        id: RequestId,
        title: String,
    },
    /// Host only: end the room for everyone; the share link dies with it.
    CloseRoom {
        id: RequestId,
    },
    /// Leave for good (a dropped connection instead leaves the participant away, resumable).
    Leave {
        id: RequestId,
    },
    /// Answered by an `ack`; lets a client measure its round trip.
    Ping {
        id: RequestId,
    },
    /// Watch a live stream (or, with the streamer key, host it), or resume a place in it.
    JoinStream {
        id: RequestId,
        stream: StreamId,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        streamer_key: Option<HostKey>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<ResumeRequest>,
        /// The client's own stable device key, kept by the app across sessions: a ban applies
        /// to it, so a banned viewer cannot simply join again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_key: Option<String>,
        /// An account's access token: bans then follow the account on every device.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Streamer only: pin a chat message (by its `seq`) above the chat.
    Pin {
        id: RequestId,
        message: Seq,
    },
    /// Streamer only.
    Unpin {
        id: RequestId,
    },
    /// Streamer only: remove a chat message for everyone.
    DeleteMessage {
        id: RequestId,
        message: Seq,
    },
    /// Streamer only: no chat from this viewer for `minutes` (1 to 1440).
    Mute {
        id: RequestId,
        participant: ParticipantId,
        minutes: u32,
    },
    /// Streamer only: remove this viewer for the rest of the stream.
    Ban {
        id: RequestId,
        participant: ParticipantId,
    },
    /// Streamer only: end the stream for everyone.
    EndStream {
        id: RequestId,
    },
    /// Start (or restart) this participant's voice/video: an SDP offer. Answered by
    /// `media_answer` (or `error`) instead of `ack`.
    MediaOffer {
        id: RequestId,
        sdp: String,
    },
    /// A trickled ICE candidate (`candidate:…`) of the current media offer.
    MediaCandidate {
        id: RequestId,
        candidate: String,
    },
    /// Mute or unmute this participant's microphone; the SFU forwards no audio while muted.
    MediaMute {
        id: RequestId,
        muted: bool,
    },
    /// End this participant's voice/video (it stays in the session).
    MediaLeave {
        id: RequestId,
    },
}

pub use crate::identity::ACCOUNT_KEY_PREFIX;

/// Where a client message belongs ([`ClientMessage::scope`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Entering a session (`hello`, `join`, `join_stream`): before joining only.
    Entry,
    /// A command of any joined session (`chat`, `leave`, `ping`).
    AnySession,
    /// Voice and video, routed to the SFU before the session sees it.
    Media,
    /// A map room's command.
    Room,
    /// A live stream's command.
    Stream,
}

/// The per-connection rate limit a client message counts against
/// ([`ClientMessage::rate_class`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateClass {
    Presence,
    Chat,
    /// `media_offer`, `media_mute`: each renegotiates with the SFU.
    Media,
    /// Everything else.
    Command,
}

/// Largest access token accepted in a join.
pub const MAX_TOKEN_BYTES: usize = 2048;

fn check_token(t: &Option<String>) -> Result<(), Invalid> {
    if t.as_ref()
        .is_some_and(|t| t.is_empty() || t.len() > MAX_TOKEN_BYTES)
    {
        return Err(Invalid {
            code: ErrorCode::InvalidToken,
            message: format!("token must be 1 to {MAX_TOKEN_BYTES} bytes"),
        });
    }
    Ok(())
}

/// A command failed validation at the edge: the error code and a message for humans.
#[derive(Clone, PartialEq, Debug)]
pub struct Invalid {
    pub code: ErrorCode,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid {
        code: ErrorCode::Invalid,
        message: message.into(),
    }
}

/// Counts characters (not bytes), after trimming, against an inclusive range.
fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), Invalid> {
    let n = value.trim().chars().count();
    if n < min || n > max {
        return Err(invalid(format!(
            "{field} must be {min} to {max} characters (got {n})"
        )));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

pub fn check_place_id(p: &PlaceId) -> Result<(), Invalid> {
    let ok = !p.0.is_empty()
        && p.0.len() <= MAX_PLACE_ID_BYTES
        && p.0.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "place_id must be 1 to {MAX_PLACE_ID_BYTES} printable ASCII characters"
        )))
    }
}

impl ClientMessage {
    /// The request id, where the command has one.
    pub fn id(&self) -> Option<RequestId> {
        use ClientMessage::*;
        match self {
            Presence { id, .. } => *id,
            Hello { id, .. }
            | Join { id, .. }
            | AddCandidate { id, .. }
            | RemoveCandidate { id, .. }
            | Vote { id, .. }
            | CloseVote { id }
            | ReopenVote { id }
            | Chat { id, .. }
            | Kick { id, .. }
            | Rename { id, .. }
            | CloseRoom { id }
            | Leave { id }
            | Ping { id }
            | JoinStream { id, .. }
            | Pin { id, .. }
            | Unpin { id }
            | DeleteMessage { id, .. }
            | Mute { id, .. }
            | Ban { id, .. }
            | EndStream { id }
            | MediaOffer { id, .. }
            | MediaCandidate { id, .. }
            | MediaMute { id, .. }
            | MediaLeave { id } => Some(*id),
        }
    }

    /// A short stable name for metrics and rate limits.
    pub fn kind(&self) -> &'static str {
        use ClientMessage::*;
        match self {
            Hello { .. } => "hello",
            Join { .. } => "join",
            Presence { .. } => "presence",
            AddCandidate { .. } => "add_candidate",
            RemoveCandidate { .. } => "remove_candidate",
            Vote { .. } => "vote",
            CloseVote { .. } => "close_vote",
            ReopenVote { .. } => "reopen_vote",
            Chat { .. } => "chat",
            Kick { .. } => "kick",
            Rename { .. } => "rename",
            CloseRoom { .. } => "close_room",
            Leave { .. } => "leave",
            Ping { .. } => "ping",
            JoinStream { .. } => "join_stream",
            Pin { .. } => "pin",
            Unpin { .. } => "unpin",
            DeleteMessage { .. } => "delete_message",
            Mute { .. } => "mute",
            Ban { .. } => "ban",
            EndStream { .. } => "end_stream",
            MediaOffer { .. } => "media_offer",
            MediaCandidate { .. } => "media_candidate",
            MediaMute { .. } => "media_mute",
            MediaLeave { .. } => "media_leave",
        }
    }

    /// Where this message belongs: adding a message kind means saying it here, not in every
    /// session's list of the other kind's commands.
    pub fn scope(&self) -> Scope {
        use ClientMessage::*;
        match self {
            Hello { .. } | Join { .. } | JoinStream { .. } => Scope::Entry,
            Chat { .. } | Leave { .. } | Ping { .. } => Scope::AnySession,
            MediaOffer { .. } | MediaCandidate { .. } | MediaMute { .. } | MediaLeave { .. } => {
                Scope::Media
            }
            Presence { .. }
            | AddCandidate { .. }
            | RemoveCandidate { .. }
            | Vote { .. }
            | CloseVote { .. }
            | ReopenVote { .. }
            | Kick { .. }
            | Rename { .. }
            | CloseRoom { .. } => Scope::Room,
            Pin { .. }
            | Unpin { .. }
            | DeleteMessage { .. }
            | Mute { .. }
            | Ban { .. }
            | EndStream { .. } => Scope::Stream,
        }
    }

    /// Which per-connection rate limit this message counts against.
    pub fn rate_class(&self) -> RateClass {
        use ClientMessage::*;
        match self {
            Presence { .. } => RateClass::Presence,
            Chat { .. } => RateClass::Chat,
            MediaOffer { .. } | MediaMute { .. } => RateClass::Media,
            _ => RateClass::Command,
        }
    }

    /// Checks lengths, ranges and shapes that need no room state. The engine re-checks nothing
    /// of this; it checks the rules (who may do what, duplicates, vote state).
    pub fn validate(&self) -> Result<(), Invalid> {
        use ClientMessage::*;
        match self {
            Hello { .. } | CloseVote { .. } | ReopenVote { .. } | CloseRoom { .. } => Ok(()),
            Leave { .. } | Ping { .. } | Kick { .. } => Ok(()),
            Pin { .. } | Unpin { .. } | DeleteMessage { .. } | Ban { .. } | EndStream { .. } => {
                Ok(())
            }
            Mute { minutes, .. } => {
                if (1..=1440).contains(minutes) {
                    Ok(())
                } else {
                    Err(invalid("minutes must be 1 to 1440"))
                }
            }
            JoinStream {
                stream,
                name,
                client_key,
                token,
                ..
            } => {
                if stream.0.is_empty() || stream.0.len() > 64 {
                    return Err(invalid("stream id has the wrong length"));
                }
                // `acct:` keys are the gateway's, for signed-in viewers: a client cannot claim one.
                if client_key.as_ref().is_some_and(|k| {
                    k.is_empty()
                        || k.len() > 128
                        || k.starts_with(ACCOUNT_KEY_PREFIX)
                        || !k.bytes().all(|b| b.is_ascii_graphic())
                }) {
                    return Err(invalid(
                        "client_key must be 1 to 128 printable ASCII characters (no spaces), \
                         not starting with `acct:`",
                    ));
                }
                check_token(token)?;
                check_text("name", name, 1, MAX_NAME_CHARS)
            }
            Join {
                share, name, token, ..
            } => {
                if share.0.is_empty() || share.0.len() > 128 {
                    return Err(invalid("share token has the wrong length"));
                }
                check_token(token)?;
                check_text("name", name, 1, MAX_NAME_CHARS)
            }
            Presence {
                viewport, pointer, ..
            } => {
                if viewport.is_some_and(|v| !v.is_valid()) {
                    return Err(invalid(
                        "viewport out of range (lat ±90, lng ±180, zoom 0..24, sw below ne)",
                    ));
                }
                if pointer.is_some_and(|p| !p.is_valid()) {
                    return Err(invalid("pointer out of range (lat ±90, lng ±180)"));
                }
                Ok(())
            }
            AddCandidate {
                place_id,
                name,
                lat,
                lng,
                note,
                ..
            } => {
                check_place_id(place_id)?;
                check_text("name", name, 1, MAX_PLACE_NAME_CHARS)?;
                if !(LatLng {
                    lat: *lat,
                    lng: *lng,
                })
                .is_valid()
                {
                    return Err(invalid("lat must be within ±90 and lng within ±180"));
                }
                if let Some(n) = note {
                    check_text("note", n, 0, MAX_NOTE_CHARS)?;
                }
                Ok(())
            }
            RemoveCandidate { place_id, .. } => check_place_id(place_id),
            Vote { choices, .. } => {
                if choices.len() > MAX_CHOICES {
                    return Err(Invalid {
                        code: ErrorCode::TooManyChoices,
                        message: format!("a ballot holds at most {MAX_CHOICES} choices"),
                    });
                }
                choices.iter().try_for_each(check_place_id)
            }
            Chat { text, .. } => check_text("text", text, 1, MAX_CHAT_CHARS),
            Rename { title, .. } => check_text("title", title, 1, MAX_TITLE_CHARS),
            MediaMute { .. } | MediaLeave { .. } => Ok(()),
            MediaOffer { sdp, .. } => {
                if sdp.len() > MAX_SDP_BYTES || !sdp.starts_with("v=0") {
                    return Err(invalid(format!(
                        "sdp must be an SDP offer (starting `v=0`) of at most {MAX_SDP_BYTES} bytes"
                    )));
                }
                if sdp.bytes().any(|b| b == 0) {
                    return Err(invalid("sdp must not contain NUL bytes"));
                }
                Ok(())
            }
            MediaCandidate { candidate, .. } => {
                let c = candidate.strip_prefix("a=").unwrap_or(candidate);
                if c.len() > MAX_ICE_CANDIDATE_BYTES
                    || !c.starts_with("candidate:")
                    || c.chars().any(|ch| ch.is_control())
                {
                    return Err(invalid(format!(
                        "candidate must be one `candidate:…` line of at most \
                         {MAX_ICE_CANDIDATE_BYTES} bytes"
                    )));
                }
                Ok(())
            }
        }
    }
}
