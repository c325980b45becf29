//! Voice and video commands, as a session decides them: which `media_*` command becomes which
//! request to the session's SFU, and what the client hears back at once. No IO: the actor
//! calls [`route`] and carries the request to the SFU.
//!
//! The rules themselves belong to each kind of session (`Machine::media_grant`: anyone in a
//! room may talk; in a stream only the streamer publishes, viewers watch); this file only
//! applies them the same way for every kind. It does not touch SDP or packets (the `media`
//! crate does), and media never changes a session's durable state: nothing here is journaled.

use crate::machine::{ConnId, Machine, Refusal};
use wagu_proto::ids::ParticipantId;
use wagu_proto::media::{MediaEndReason, SfuRequest};
use wagu_proto::{ClientMessage, ErrorCode, ServerMessage};

/// What to do with one `media_*` command.
#[derive(Debug, PartialEq)]
pub struct Routed {
    /// For the SFU, if anything.
    pub request: Option<SfuRequest>,
    /// For the client now: `ack`, or `error` (a `media_offer` is answered later, by the SFU's
    /// `media_answer`).
    pub reply: Option<ServerMessage>,
}

/// Whether this client message is a media command (routed by [`route`], not `Machine::handle`).
pub fn is_media(msg: &ClientMessage) -> bool {
    matches!(
        msg,
        ClientMessage::MediaOffer { .. }
            | ClientMessage::MediaCandidate { .. }
            | ClientMessage::MediaMute { .. }
            | ClientMessage::MediaLeave { .. }
    )
}

/// Applies the session's media rules to one command of `participant` on `conn`. `has_peer`
/// says whether the participant has an offer with the SFU (candidates need one); `candidates`
/// how many it trickled so far.
pub fn route<M: Machine>(
    machine: &M,
    conn: ConnId,
    participant: ParticipantId,
    msg: ClientMessage,
    has_peer: bool,
    candidates: usize,
) -> Routed {
    let id = msg.id();
    let refuse = |Refusal { code, message }: Refusal| Routed {
        request: None,
        reply: Some(ServerMessage::Error { id, code, message }),
    };
    if machine.is_closed() {
        return refuse(Refusal::ended(M::KIND));
    }
    let grant = match machine.media_grant(participant, conn) {
        Ok(g) => g,
        Err(r) => return refuse(r),
    };
    let ack = id.map(|id| ServerMessage::Ack { id, seq: None });
    match msg {
        ClientMessage::MediaOffer { id, sdp } => Routed {
            request: Some(SfuRequest::Offer {
                participant,
                request: id,
                sdp,
                grant,
            }),
            reply: None,
        },
        ClientMessage::MediaCandidate { candidate, .. } => {
            if !has_peer {
                return refuse(Refusal::new(
                    ErrorCode::Invalid,
                    "send media_offer first".into(),
                ));
            }
            if candidates >= wagu_proto::limits::MAX_ICE_CANDIDATES {
                return refuse(Refusal::new(
                    ErrorCode::Invalid,
                    format!(
                        "at most {} candidates per offer",
                        wagu_proto::limits::MAX_ICE_CANDIDATES
                    ),
                ));
            }
            Routed {
                request: Some(SfuRequest::Candidate {
                    participant,
                    candidate,
                }),
                reply: ack,
            }
        }
        ClientMessage::MediaMute { muted, .. } => {
            if !grant.publish_audio {
                return refuse(Refusal::new(
                    ErrorCode::Forbidden,
                    format!(
                        "only a publisher has a microphone to mute in this {}",
                        M::KIND
                    ),
                ));
            }
            Routed {
                request: has_peer.then_some(SfuRequest::Mute { participant, muted }),
                reply: ack,
            }
        }
        ClientMessage::MediaLeave { .. } => Routed {
            request: has_peer.then_some(SfuRequest::End {
                participant,
                reason: MediaEndReason::Left,
            }),
            reply: ack,
        },
        other => refuse(Refusal::new(
            ErrorCode::Internal,
            format!("{} is not a media command", other.kind()),
        )),
    }
}
