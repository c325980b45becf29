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
    // The fast path is tried only on frames that begin as encoders write a presence frame, so
    // other frames pay nothing for it (a failed attempt costs an error message).
    let fast = if frame.starts_with(PRESENCE_PREFIX) {
        serde_json::from_slice::<PresenceFrame>(frame).ok()
    } else {
        None
    };
    let msg = match fast {
        Some(p) => p.into_message(),
        // Any other frame, or a presence frame that does not parse: the general path decides,
        // and words the error.
        None => serde_json::from_slice(frame).map_err(|e| DecodeError {
            id: salvage_id(frame),
            code: ErrorCode::BadFrame,
            message: format!("cannot decode frame: {e}"),
        })?,
    };
    msg.validate().map_err(|inv| DecodeError {
        id: msg.id(),
        code: inv.code,
        message: inv.message,
    })?;
    Ok(msg)
}

/// How a presence frame begins when `type` comes first, as every encoder here writes it (the
/// fields of `ClientMessage` in declaration order) and as `docs/PROTOCOL.md`'s examples do.
const PRESENCE_PREFIX: &[u8] = br#"{"type":"presence""#;

/// The frame clients send most, `presence` (every participant, up to 10 a second), decoded
/// straight into its fields. `ClientMessage`'s derive (internally tagged by `type`) first copies
/// every field of a frame into serde's intermediate `Content` tree to find the tag, then reads
/// the variant from that: an allocation and a second pass per frame (0.5 % of the server's
/// profile on the quiet workload, plus its allocations). This reads the same fields in one
/// pass (0.72 → 0.38 µs a frame, validation included: `cargo bench -p wagu-engine --bench room
/// -- decode`); it accepts exactly what the general path accepts as a `presence` and yields the
/// same message (`the_presence_fast_path_agrees_with_the_general_path`), and anything it
/// refuses goes to the general path.
#[derive(Deserialize)]
struct PresenceFrame {
    #[serde(rename = "type")]
    _type: PresenceTag,
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default)]
    viewport: Option<crate::model::Viewport>,
    #[serde(default)]
    pointer: Option<crate::model::LatLng>,
}

impl PresenceFrame {
    fn into_message(self) -> ClientMessage {
        ClientMessage::Presence {
            id: self.id,
            viewport: self.viewport,
            pointer: self.pointer,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum PresenceTag {
    Presence,
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

    /// One JSON value of the kinds a presence frame's fields might hold, right or wrong.
    fn any_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            Just("\"presence\"".to_string()),
            Just("\"chat\"".to_string()),
            Just("{}".to_string()),
            Just("[1,2]".to_string()),
            (0u64..u64::MAX).prop_map(|n| n.to_string()),
            (-1e3f64..1e3).prop_map(|f| format!("{f}")),
            (-91f64..91.0, -181f64..181.0).prop_map(|(a, b)| format!(r#"{{"lat":{a},"lng":{b}}}"#)),
            (-91f64..91.0, -181f64..181.0, -1f64..25.0).prop_map(|(a, b, z)| format!(
                r#"{{"center":{{"lat":{a},"lng":{b}}},"zoom":{z}}}"#
            )),
            (-91f64..91.0, -181f64..181.0, 0f64..22.0).prop_map(|(a, b, z)| format!(
                r#"{{"zoom":{z},"bounds":{{"sw":{{"lat":{a},"lng":{b}}},"ne":{{"lat":{a},"lng":{b}}}}},"center":{{"lng":{b},"lat":{a}}},"x":1}}"#
            )),
        ]
    }

    proptest! {
        #[test]
        fn the_presence_fast_path_agrees_with_the_general_path(
            tag in prop_oneof![3 => Just(Some("\"presence\"".to_string())), 1 => Just(None), 1 => any_value().prop_map(Some)],
            id in prop::option::of(prop_oneof![3 => (0u64..u64::MAX).prop_map(|n| n.to_string()), 1 => any_value()]),
            viewport in prop::option::of(any_value()),
            pointer in prop::option::of(any_value()),
            extra in prop::option::of(any_value()),
            duplicate in prop::option::of((prop::sample::select(vec!["type", "id", "pointer"]), any_value())),
            order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
            type_first in any::<bool>(),
        ) {
            let mut order = order;
            if type_first {
                // As encoders write it: the fast path is tried only on such frames.
                order.retain(|&i| i != 0);
                order.insert(0, 0);
            }
            let named = [("type", tag), ("id", id), ("viewport", viewport), ("pointer", pointer), ("extra", extra)];
            let mut parts: Vec<String> = Vec::new();
            for i in order {
                match (named.get(i), &duplicate) {
                    (Some((k, Some(v))), _) => parts.push(format!("\"{k}\":{v}")),
                    (None, Some((k, v))) => parts.push(format!("\"{k}\":{v}")),
                    _ => {}
                }
            }
            let frame = format!("{{{}}}", parts.join(","));
            let general = serde_json::from_slice::<ClientMessage>(frame.as_bytes());
            if let Ok(p) = serde_json::from_slice::<PresenceFrame>(frame.as_bytes()) {
                prop_assert_eq!(general.as_ref().ok(), Some(&p.into_message()), "{}", frame);
            }
            // And what decoding returns is the general path's answer, error or message.
            match (decode_client(frame.as_bytes()), general) {
                (Ok(m), Ok(g)) => prop_assert_eq!(m, g),
                (Err(e), Ok(g)) => prop_assert!(g.validate().is_err(), "{} refused: {}", frame, e),
                (Ok(m), Err(e)) => prop_assert!(false, "{} decoded as {:?}; the general path: {}", frame, m, e),
                (Err(_), Err(_)) => {}
            }
        }
    }

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
