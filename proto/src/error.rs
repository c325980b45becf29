//! Error codes: the machine-readable half of every `error` frame (the other half is a message
//! for humans). Codes are stable strings; clients switch on them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, not an object, unknown `type`, or a field of the wrong type.
    BadFrame,
    /// The frame is larger than the server accepts.
    FrameTooLarge,
    /// A field is out of range or of the wrong length.
    Invalid,
    /// `hello` named a protocol version this server does not speak.
    UnsupportedVersion,
    /// A room command arrived before a successful `join`.
    NotJoined,
    /// `join` on a connection that is already in a room.
    AlreadyJoined,
    /// No room behind this share token (never existed, or closed and gone).
    UnknownRoom,
    /// The share link has expired.
    ShareExpired,
    /// The room has as many participants as it may hold.
    RoomFull,
    /// The room has been closed or the stream has ended (also a join that meets it ending).
    /// Do not retry.
    RoomClosed,
    /// This node holds as many rooms as it may.
    Capacity,
    /// Resume token or participant did not match; join afresh.
    ResumeFailed,
    /// Only the host (or the candidate's adder) may do this.
    Forbidden,
    DuplicateCandidate,
    UnknownCandidate,
    TooManyCandidates,
    TooManyChoices,
    UnknownParticipant,
    /// The vote is closed: refused `vote`, `add_candidate`, `remove_candidate` and
    /// `close_vote`.
    VoteClosed,
    /// The vote is open: refused `reopen_vote`.
    VoteOpen,
    /// This kind of message is being sent faster than allowed.
    RateLimited,
    /// The streamer banned this viewer.
    Banned,
    /// The streamer muted this viewer for a while; chat is refused until then.
    Muted,
    /// No such chat message (deleted, or older than the kept tail).
    UnknownMessage,
    /// The command belongs to the other kind of session (a room command in a stream…).
    WrongSession,
    /// The account token could not be verified (bad signature, malformed, wrong issuer).
    InvalidToken,
    /// The account token has expired: refresh it and join again.
    TokenExpired,
    /// The room is restarting or busy; retry after resuming.
    Unavailable,
    /// This node serves no voice or video (`media.udp_listen` is off).
    MediaUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(&self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadFrame => "bad_frame",
            FrameTooLarge => "frame_too_large",
            Invalid => "invalid",
            UnsupportedVersion => "unsupported_version",
            NotJoined => "not_joined",
            AlreadyJoined => "already_joined",
            UnknownRoom => "unknown_room",
            ShareExpired => "share_expired",
            RoomFull => "room_full",
            RoomClosed => "room_closed",
            Capacity => "capacity",
            ResumeFailed => "resume_failed",
            Forbidden => "forbidden",
            DuplicateCandidate => "duplicate_candidate",
            UnknownCandidate => "unknown_candidate",
            TooManyCandidates => "too_many_candidates",
            TooManyChoices => "too_many_choices",
            UnknownParticipant => "unknown_participant",
            VoteClosed => "vote_closed",
            VoteOpen => "vote_open",
            RateLimited => "rate_limited",
            Banned => "banned",
            Muted => "muted",
            UnknownMessage => "unknown_message",
            WrongSession => "wrong_session",
            InvalidToken => "invalid_token",
            TokenExpired => "token_expired",
            Unavailable => "unavailable",
            MediaUnavailable => "media_unavailable",
            Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde() {
        for code in [
            ErrorCode::BadFrame,
            ErrorCode::ShareExpired,
            ErrorCode::VoteOpen,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
