//! The Wagu target: room creation over HTTP, the frames a harness client sends, the marker
//! that makes every presence and chat traceable to its send, and a cheap classifier for what
//! the server sends back. The other targets reuse the marker and the client frames, so every
//! target carries byte-for-byte the same presence and chat payloads.
//!
//! # The marker
//!
//! A presence carries its sender and a per-sender counter inside an ordinary viewport, so the
//! server handles exactly what a real client would send:
//!
//! * `center.lat = 37 + counter / 2^24` (one step ≈ 6.6 mm): counters up to ~888 million, about
//!   three years at 10 Hz;
//! * `center.lng = 126 + slot / 2^16`, where `slot` is the participant's index in its room
//!   (0 is the host);
//! * `zoom = 15`, `bounds` a ~2 km box around the center, `pointer` the center.
//!
//! Powers of two keep the numbers exact in binary floating point. The server's JSON parser
//! may still be a unit in the last place off (serde_json without `float_roundtrip`), so
//! [`read_marker`] rounds to the nearest step, which absorbs any such error: a step is 2^23
//! times larger than the last place of a latitude near 37.
//!
//! A chat carries `lt <slot> <counter>` as its text.

use crate::http::HttpClient;
use serde::Deserialize;
use wagu_proto::client::ClientMessage;
use wagu_proto::codec::{decode_server, encode_client};
use wagu_proto::ids::{HostKey, RequestId, RoomId, ShareToken};
use wagu_proto::model::{Bounds, ChatMessage, LatLng, PresenceEntry, Viewport};
use wagu_proto::{PROTOCOL_VERSION, ServerMessage};

/// `POST /api/rooms` answer; only the fields the harness uses (the server's own type lives in
/// the gateway, which a client should not depend on).
#[derive(Debug, Deserialize)]
pub struct CreatedRoom {
    pub room_id: RoomId,
    pub share_token: ShareToken,
    pub host_key: HostKey,
    /// Where to open the WebSocket, e.g. `ws://127.0.0.1:8080/ws`.
    pub ws_url: String,
}

/// Creates one room with default settings. The error is a short reason, used as the key of
/// the room-creation error book (so similar failures add up).
pub async fn create_room(http: &mut HttpClient) -> Result<CreatedRoom, String> {
    let (status, body) = http
        .post_json("/api/rooms", b"{}")
        .await
        .map_err(|e| format!("http: {}", crate::net::short_io(&e)))?;
    if status != 201 {
        #[derive(Deserialize)]
        struct Body {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            code: String,
        }
        let code = serde_json::from_slice::<Body>(&body)
            .map(|b| b.error.code)
            .unwrap_or_else(|_| "no error code".into());
        return Err(format!("status {status} {code}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("bad body: {e}"))
}

pub const HELLO_ID: u64 = 1;
pub const JOIN_ID: u64 = 2;
/// Request ids after the handshake start here (chat needs one per message).
pub const FIRST_FREE_ID: u64 = 3;

pub fn hello() -> String {
    encode_client(&ClientMessage::Hello {
        id: RequestId(HELLO_ID),
        protocol: PROTOCOL_VERSION,
    })
}

pub fn join(share: &ShareToken, name: String, host_key: Option<HostKey>) -> String {
    encode_client(&ClientMessage::Join {
        id: RequestId(JOIN_ID),
        share: share.clone(),
        name,
        host_key,
        resume: None,
    })
}

const LAT_BASE: f64 = 37.0;
const LNG_BASE: f64 = 126.0;
const COUNTER_STEPS_PER_DEG: f64 = (1u64 << 24) as f64;
const SLOT_STEPS_PER_DEG: f64 = (1u64 << 16) as f64;
const HALF_BOX_LAT: f64 = 0.01;
const HALF_BOX_LNG: f64 = 0.0125;

/// The largest counter whose viewport is still valid (box top ≤ 90°).
pub const MAX_COUNTER: u64 = ((90.0 - HALF_BOX_LAT - LAT_BASE) * COUNTER_STEPS_PER_DEG) as u64;
/// The largest slot whose viewport is still valid (box right ≤ 180°).
pub const MAX_SLOT: usize = ((180.0 - HALF_BOX_LNG - LNG_BASE) * SLOT_STEPS_PER_DEG) as usize;

/// The marked viewport of `slot`'s `counter`th presence (see the module head).
pub fn marker_viewport(slot: usize, counter: u64) -> Viewport {
    let center = LatLng {
        lat: LAT_BASE + counter.min(MAX_COUNTER) as f64 / COUNTER_STEPS_PER_DEG,
        lng: LNG_BASE + slot.min(MAX_SLOT) as f64 / SLOT_STEPS_PER_DEG,
    };
    Viewport {
        center,
        zoom: 15.0,
        bounds: Some(Bounds {
            sw: LatLng {
                lat: center.lat - HALF_BOX_LAT,
                lng: center.lng - HALF_BOX_LNG,
            },
            ne: LatLng {
                lat: center.lat + HALF_BOX_LAT,
                lng: center.lng + HALF_BOX_LNG,
            },
        }),
    }
}

/// `(slot, counter)` of a marked viewport; `None` for a viewport the harness did not make.
pub fn read_marker(v: &Viewport) -> Option<(usize, u64)> {
    let c = ((v.center.lat - LAT_BASE) * COUNTER_STEPS_PER_DEG).round();
    let s = ((v.center.lng - LNG_BASE) * SLOT_STEPS_PER_DEG).round();
    let ok = |x: f64, max: f64| x.is_finite() && (0.0..=max).contains(&x);
    (ok(c, MAX_COUNTER as f64) && ok(s, MAX_SLOT as f64)).then_some((s as usize, c as u64))
}

/// A fire-and-forget presence (no `id`, so the server sends no `ack`).
pub fn presence(slot: usize, counter: u64) -> String {
    let viewport = marker_viewport(slot, counter);
    encode_client(&ClientMessage::Presence {
        id: None,
        viewport: Some(viewport),
        pointer: Some(viewport.center),
    })
}

pub fn chat(id: u64, slot: usize, counter: u64) -> String {
    encode_client(&ClientMessage::Chat {
        id: RequestId(id),
        text: format!("lt {slot} {counter}"),
    })
}

/// `(slot, counter)` of a harness chat text.
pub fn read_chat_marker(text: &str) -> Option<(usize, u64)> {
    let mut it = text.strip_prefix("lt ")?.split(' ');
    let slot = it.next()?.parse().ok()?;
    let counter = it.next()?.parse().ok()?;
    it.next().is_none().then_some((slot, counter))
}

/// What a server frame means to a harness client.
#[derive(Debug)]
pub enum Incoming {
    /// The batch's server stamp (Unix ms) and its entries.
    Presence(u64, Vec<PresenceEntry>),
    Chat(ChatMessage),
    Ack(u64),
    Error(&'static str),
    Welcome,
    /// Any other room event (joined, left, host changed…): counted, not parsed.
    Other,
    /// Not a server frame this protocol knows.
    Undecodable,
}

/// The `type` of a frame, read from its first bytes: the server's encoder (serde's internally
/// tagged enums) always writes the tag first, so most frames need no parse at all.
fn peek_type(frame: &str) -> Option<&str> {
    let rest = frame.strip_prefix(r#"{"type":""#)?;
    rest.split_once('"').map(|(t, _)| t)
}

pub fn classify(frame: &str) -> Incoming {
    match peek_type(frame) {
        // A welcome carries the whole room snapshot; the harness only needs to know it came.
        Some("welcome") => Incoming::Welcome,
        Some("presence" | "chat" | "ack" | "error") | None => match decode_server(frame.as_bytes())
        {
            Ok(m) => from_message(m),
            Err(_) => Incoming::Undecodable,
        },
        Some(_) => Incoming::Other,
    }
}

/// [`classify`] in the terms every target shares: presence entries become the markers they
/// carry (entries the harness did not make are dropped).
pub fn classify_generic(frame: &str) -> super::Incoming {
    use super::Incoming as G;
    match classify(frame) {
        Incoming::Presence(at, updates) => G::Presence {
            at_ms: Some(at),
            updates: updates
                .iter()
                .filter_map(|e| e.viewport.as_ref().and_then(read_marker))
                .collect(),
        },
        Incoming::Chat(m) => match read_chat_marker(&m.text) {
            Some((from, counter)) => G::Chat { from, counter },
            None => G::Other,
        },
        Incoming::Ack(id) => G::Ack(id),
        Incoming::Error(code) => G::Error(code.into()),
        Incoming::Welcome => G::Welcome,
        Incoming::Other => G::Other,
        Incoming::Undecodable => G::Undecodable,
    }
}

fn from_message(m: ServerMessage) -> Incoming {
    match m {
        ServerMessage::Presence { at, updates, .. } => Incoming::Presence(at, updates),
        ServerMessage::Chat { message, .. } => Incoming::Chat(message),
        ServerMessage::Ack { id, .. } => Incoming::Ack(id.0),
        ServerMessage::Error { code, .. } => Incoming::Error(code.as_str()),
        ServerMessage::Welcome { .. } => Incoming::Welcome,
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagu_proto::codec::decode_client;

    #[test]
    fn marker_round_trips_through_the_server_codec() {
        for (slot, counter) in [(0, 1), (7, 123_456), (49, MAX_COUNTER), (MAX_SLOT, 2)] {
            let frame = presence(slot, counter);
            let Ok(ClientMessage::Presence {
                viewport: Some(v), ..
            }) = decode_client(frame.as_bytes())
            else {
                panic!("the server refuses {frame}");
            };
            // What the server would send back, parsed as a client parses it.
            let echoed: Viewport =
                serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
            assert_eq!(read_marker(&echoed), Some((slot, counter)));
        }
    }

    #[test]
    fn chat_marker_round_trips() {
        assert_eq!(read_chat_marker("lt 3 99"), Some((3, 99)));
        assert_eq!(read_chat_marker("hello"), None);
        assert!(decode_client(chat(5, 3, 99).as_bytes()).is_ok());
    }

    #[test]
    fn generic_classification_reads_the_markers() {
        let v = serde_json::to_string(&marker_viewport(4, 77)).unwrap();
        let batch = format!(
            r#"{{"type":"presence","seq":1,"at":5,"updates":[{{"participant":1,"viewport":{v}}},{{"participant":2,"pointer":{{"lat":1.0,"lng":2.0}}}}]}}"#
        );
        assert_eq!(
            classify_generic(&batch),
            crate::target::Incoming::Presence {
                at_ms: Some(5),
                updates: vec![(4, 77)]
            }
        );
        let chat = r#"{"type":"chat","seq":2,"message":{"seq":2,"from":2,"name":"x","text":"lt 1 9","at":3}}"#;
        assert_eq!(
            classify_generic(chat),
            crate::target::Incoming::Chat {
                from: 1,
                counter: 9
            }
        );
    }

    #[test]
    fn classifies_by_peeking() {
        assert!(matches!(
            classify(r#"{"type":"ack","id":2}"#),
            Incoming::Ack(2)
        ));
        assert!(matches!(
            classify(r#"{"type":"error","id":2,"code":"room_full","message":"x"}"#),
            Incoming::Error("room_full")
        ));
        assert!(matches!(
            classify(r#"{"type":"host_changed","seq":3,"participant":1}"#),
            Incoming::Other
        ));
        assert!(matches!(classify("nonsense"), Incoming::Undecodable));
        let batch = r#"{"type":"presence","seq":1,"at":5,"updates":[{"participant":1,"viewport":{"center":{"lat":37.0,"lng":126.0},"zoom":15.0}}]}"#;
        assert!(matches!(classify(batch), Incoming::Presence(_, u) if u.len() == 1));
    }
}
