//! Bytes to messages and back.
//!
//! Decoding never panics, whatever the input (a fuzz target in `proto/fuzz` holds it to that):
//! it enforces the frame size limit first, then parses, then validates. A frame that fails still
//! yields the client's request id when one can be read, so the error frame can name the command.

use crate::client::ClientMessage;
use crate::error::ErrorCode;
use crate::ids::RequestId;
use crate::limits::MAX_CLIENT_FRAME_BYTES;
use crate::server::ServerMessage;
use bytes::Bytes;
use serde::Deserialize;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("{code}: {message}")]
pub struct DecodeError {
    /// The request id of the refused command, when the frame was readable enough to have one.
    pub id: Option<RequestId>,
    pub code: ErrorCode,
    pub message: String,
}

impl DecodeError {
    /// The `error` frame that answers this failure.
    pub fn to_message(&self) -> ServerMessage {
        ServerMessage::error(self.id, self.code, self.message.clone())
    }
}

/// Parses and validates one client frame, of at most [`MAX_CLIENT_FRAME_BYTES`].
pub fn decode_client(frame: &[u8]) -> Result<ClientMessage, DecodeError> {
    decode_client_within(frame, MAX_CLIENT_FRAME_BYTES)
}

/// Parses and validates one client frame of at most `max_bytes` (a server's configured limit,
/// itself at most [`MAX_CLIENT_FRAME_BYTES`]). The one place the frame size is checked.
pub fn decode_client_within(frame: &[u8], max_bytes: usize) -> Result<ClientMessage, DecodeError> {
    let max_bytes = max_bytes.min(MAX_CLIENT_FRAME_BYTES);
    if frame.len() > max_bytes {
        return Err(DecodeError {
            id: None,
            code: ErrorCode::FrameTooLarge,
            message: format!(
                "frame of {} bytes exceeds the limit of {max_bytes}",
                frame.len()
            ),
        });
    }
    let msg: ClientMessage = serde_json::from_slice(frame).map_err(|e| DecodeError {
        id: salvage_id(frame),
        code: ErrorCode::BadFrame,
        message: format!("cannot decode frame: {e}"),
    })?;
    msg.validate().map_err(|inv| DecodeError {
        id: msg.id(),
        code: inv.code,
        message: inv.message,
    })?;
    Ok(msg)
}

/// Reads only `id` out of a frame that did not decode as a whole (wrong `type`, a bad field).
/// Only on the error path, so the second parse costs nothing in the common case.
fn salvage_id(frame: &[u8]) -> Option<RequestId> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<u64>,
    }
    serde_json::from_slice::<IdOnly>(frame)
        .ok()
        .and_then(|x| x.id)
        .map(RequestId)
}

/// Encodes a server frame once; the bytes are shared by every connection that gets it.
pub fn encode_server(msg: &ServerMessage) -> Bytes {
    // Serialising our own types to a Vec cannot fail: no maps with non-string keys, no
    // non-finite floats reach here (validated on the way in).
    Bytes::from(serde_json::to_vec(msg).expect("server messages always serialise"))
}

/// Encodes a client frame (for clients written in Rust: tests, the load-test harness).
pub fn encode_client(msg: &ClientMessage) -> String {
    serde_json::to_string(msg).expect("client messages always serialise")
}

/// Decodes a server frame (for clients written in Rust).
pub fn decode_server(frame: &[u8]) -> Result<ServerMessage, serde_json::Error> {
    serde_json::from_slice(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_a_join() {
        let m = decode_client(br#"{"type":"join","id":7,"share":"abc","name":"Mina"}"#).unwrap();
        assert_eq!(m.id(), Some(RequestId(7)));
        assert_eq!(m.kind(), "join");
    }

    #[test]
    fn bad_type_keeps_the_id() {
        let e = decode_client(br#"{"type":"dance","id":9}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadFrame);
        assert_eq!(e.id, Some(RequestId(9)));
    }

    #[test]
    fn not_json_is_bad_frame_without_id() {
        let e = decode_client(b"\xff\x00garbage").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadFrame);
        assert_eq!(e.id, None);
    }

    #[test]
    fn oversized_is_refused_before_parsing() {
        let big = vec![b' '; MAX_CLIENT_FRAME_BYTES + 1];
        assert_eq!(
            decode_client(&big).unwrap_err().code,
            ErrorCode::FrameTooLarge
        );
    }

    #[test]
    fn chat_length_is_counted_in_characters() {
        let ok = "가".repeat(1000);
        let frame = format!(r#"{{"type":"chat","id":1,"text":"{ok}"}}"#);
        assert!(decode_client(frame.as_bytes()).is_ok());
        let long = "가".repeat(1001);
        let frame = format!(r#"{{"type":"chat","id":1,"text":"{long}"}}"#);
        let e = decode_client(frame.as_bytes()).unwrap_err();
        assert_eq!((e.code, e.id), (ErrorCode::Invalid, Some(RequestId(1))));
    }

    #[test]
    fn out_of_range_coordinates_are_invalid() {
        let e = decode_client(
            br#"{"type":"add_candidate","id":2,"place_id":"p1","name":"X","lat":91,"lng":0}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid);
        let e = decode_client(
            br#"{"type":"presence","viewport":{"center":{"lat":0,"lng":0},"zoom":99}}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid);
    }

    #[test]
    fn server_messages_round_trip() {
        let m = ServerMessage::Ack {
            id: RequestId(3),
            seq: Some(Seq(10)),
        };
        let bytes = encode_server(&m);
        assert_eq!(&bytes[..], br#"{"type":"ack","id":3,"seq":10}"#);
        assert_eq!(decode_server(&bytes).unwrap(), m);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_client(&bytes);
        }

        #[test]
        fn decode_never_panics_on_jsonish(s in r#"\{"type":"(join|chat|vote|presence|add_candidate)","id":[0-9]{1,3}(,"[a-z_]{1,8}":("[^"]{0,5}"|[0-9.e-]{1,6}|\[\]|null|\{\}))*\}"#) {
            let _ = decode_client(s.as_bytes());
        }
    }
}
