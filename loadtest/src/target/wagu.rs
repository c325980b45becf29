//! The Wagu target: room and stream creation over HTTP, the frames a harness client sends, the
//! marker that makes every presence and chat traceable to its send, and cheap classifiers for
//! what the server sends back (one for rooms, one for live streams). The other targets reuse the marker and the client frames, so every
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
//! A chat carries `lt <slot> <counter>` as its text (in a stream, `slot` is the chatter's
//! index among the stream's chatters).

use crate::http::HttpClient;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use wagu_proto::client::ClientMessage;
use wagu_proto::codec::{decode_server, encode_client};
use wagu_proto::ids::{HostKey, RequestId, RoomId, ShareToken, StreamId};
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

/// `POST /api/streams` answer (the gateway's `CreatedStreamBody`).
#[derive(Debug, Deserialize)]
pub struct CreatedStream {
    pub stream_id: StreamId,
    pub streamer_key: HostKey,
    pub ws_url: String,
}

/// Creates one room with default settings. The error is a short reason, used as the key of
/// the room-creation error book (so similar failures add up).
pub async fn create_room(http: &mut HttpClient) -> Result<CreatedRoom, String> {
    post_created(http, "/api/rooms", b"{}").await
}

/// Starts live stream `index`: a title, a place id of its own and a location in Seoul (spread
/// over a few km, so discovery by distance has something to sort).
pub async fn create_stream(http: &mut HttpClient, index: usize) -> Result<CreatedStream, String> {
    post_created(http, "/api/streams", stream_body(index).as_bytes()).await
}

fn stream_body(index: usize) -> String {
    let spread = |salt: u64| crate::stats::unit_jitter(index as u64 ^ salt) - 0.5;
    serde_json::json!({
        "title": format!("wagu-loadtest stream {index}"),
        "place_id": format!("loadtest:{index}"),
        "location": {
            "lat": 37.55 + 0.05 * spread(0x1A7),
            "lng": 126.98 + 0.05 * spread(0x1C6),
        },
    })
    .to_string()
}

/// POSTs `body` and reads the `201 Created` answer; otherwise a reason like
/// `status 503 capacity`.
async fn post_created<T: DeserializeOwned>(
    http: &mut HttpClient,
    path: &str,
    body: &[u8],
) -> Result<T, String> {
    let (status, body) = http
        .post_json(path, body)
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
/// A stream session opens with `join_stream` alone (no `hello`); its chat ids follow.
pub const STREAM_JOIN_ID: u64 = 1;
pub const STREAM_FIRST_FREE_ID: u64 = 2;

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
        token: None,
    })
}

/// Joins a live stream: as its streamer with `streamer_key`, else as a viewer.
pub fn join_stream(
    stream: &StreamId,
    name: String,
    streamer_key: Option<HostKey>,
    client_key: Option<String>,
) -> String {
    encode_client(&ClientMessage::JoinStream {
        id: RequestId(STREAM_JOIN_ID),
        stream: stream.clone(),
        name,
        streamer_key,
        resume: None,
        client_key,
        token: None,
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
    marker_of(v.center)
}

fn marker_of(center: LatLng) -> Option<(usize, u64)> {
    let c = ((center.lat - LAT_BASE) * COUNTER_STEPS_PER_DEG).round();
    let s = ((center.lng - LNG_BASE) * SLOT_STEPS_PER_DEG).round();
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
        // A welcome carries the whole room (or stream) snapshot; the harness only needs to
        // know it came.
        Some("welcome" | "stream_welcome") => Incoming::Welcome,
        Some("presence" | "chat" | "ack" | "error") | None => match decode_server(frame.as_bytes())
        {
            Ok(m) => from_message(m),
            Err(_) => Incoming::Undecodable,
        },
        Some(_) => Incoming::Other,
    }
}

/// Just the centre of a viewport: where the marker is (bounds, zoom and the rest are skipped
/// by the parser without being built).
#[derive(Deserialize)]
pub struct MarkerViewport {
    center: LatLng,
}

impl MarkerViewport {
    /// `(slot, counter)` of a marked viewport (see [`read_marker`]).
    pub fn marker(&self) -> Option<(usize, u64)> {
        marker_of(self.center)
    }
}

/// Just what the harness reads of a `presence` batch: the stamp and each entry's marker.
#[derive(Deserialize)]
struct PresenceFrame {
    at: u64,
    updates: Vec<PresenceMarker>,
}

#[derive(Deserialize)]
struct PresenceMarker {
    viewport: Option<MarkerViewport>,
}

/// [`classify`] in the terms every target shares: presence entries become the markers they
/// carry (entries the harness did not make are dropped). Presence batches and chats — nearly
/// every frame a room client reads — are parsed straight into the few fields the harness needs
/// (the type is peeked first); anything else goes through the protocol's own decoder.
pub fn classify_generic(frame: &str) -> super::Incoming {
    use super::Incoming as G;
    match peek_type(frame) {
        Some("presence") => {
            return match serde_json::from_str::<PresenceFrame>(frame) {
                Ok(p) => G::Presence {
                    at_ms: Some(p.at),
                    updates: p
                        .updates
                        .iter()
                        .filter_map(|e| e.viewport.as_ref().and_then(MarkerViewport::marker))
                        .collect(),
                },
                Err(_) => G::Undecodable,
            };
        }
        Some("chat") => {
            return match serde_json::from_str::<ChatFrame>(frame) {
                Ok(c) => match read_chat_marker(&c.message.text) {
                    Some((from, counter)) => G::Chat { from, counter },
                    None => G::Other,
                },
                Err(_) => G::Undecodable,
            };
        }
        _ => {}
    }
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

/// What a stream client reads, classified with as little parsing as the harness can get
/// away with: every frame's type is peeked; only chat frames are parsed (into the two fields
/// the harness needs), `viewers` frames are only counted, and replies are rare.
#[derive(Debug, PartialEq)]
pub enum StreamFrame {
    /// A harness chat: `(chatter, counter)` from its text and the server's stamp (Unix ms).
    Chat {
        from: usize,
        counter: u64,
        at_ms: u64,
    },
    /// A chat the harness did not send (its text is no marker).
    ForeignChat,
    /// The coalesced viewer count (see [`viewers_count`] for its value).
    Viewers,
    Ack(u64),
    Error(&'static str),
    Welcome,
    Other,
    Undecodable,
}

/// Just what the harness reads of a `chat` frame. Serde skips the other fields without
/// building them, and the marker text borrows from the frame (it has no escapes).
#[derive(Deserialize)]
struct ChatFrame<'a> {
    #[serde(borrow)]
    message: ChatFields<'a>,
}

#[derive(Deserialize)]
struct ChatFields<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    at: u64,
}

pub fn classify_stream(frame: &str) -> StreamFrame {
    match peek_type(frame) {
        Some("chat") => match serde_json::from_str::<ChatFrame>(frame) {
            Ok(c) => match read_chat_marker(&c.message.text) {
                Some((from, counter)) => StreamFrame::Chat {
                    from,
                    counter,
                    at_ms: c.message.at,
                },
                None => StreamFrame::ForeignChat,
            },
            Err(_) => StreamFrame::Undecodable,
        },
        Some("viewers") => StreamFrame::Viewers,
        Some("stream_welcome") => StreamFrame::Welcome,
        _ => match classify(frame) {
            Incoming::Ack(id) => StreamFrame::Ack(id),
            Incoming::Error(code) => StreamFrame::Error(code),
            Incoming::Welcome => StreamFrame::Welcome,
            Incoming::Undecodable => StreamFrame::Undecodable,
            Incoming::Presence(..) | Incoming::Chat(_) | Incoming::Other => StreamFrame::Other,
        },
    }
}

/// The count of a `viewers` frame (only the streamer reads it).
pub fn viewers_count(frame: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Viewers {
        count: u64,
    }
    serde_json::from_str::<Viewers>(frame).ok().map(|v| v.count)
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

    #[test]
    fn classifies_stream_frames() {
        let chat = r#"{"type":"chat","seq":7,"message":{"seq":7,"from":12,"name":"lt0-v3","text":"lt 4 19","at":1767225700123}}"#;
        assert_eq!(
            classify_stream(chat),
            StreamFrame::Chat {
                from: 4,
                counter: 19,
                at_ms: 1767225700123
            }
        );
        let foreign = r#"{"type":"chat","seq":8,"message":{"seq":8,"from":1,"name":"Chef","text":"hi \"all\"","at":5}}"#;
        assert_eq!(classify_stream(foreign), StreamFrame::ForeignChat);
        assert_eq!(
            classify_stream(r#"{"type":"chat","seq":9}"#),
            StreamFrame::Undecodable
        );
        let viewers = r#"{"type":"viewers","seq":4,"at":1767225720000,"count":9999}"#;
        assert_eq!(classify_stream(viewers), StreamFrame::Viewers);
        assert_eq!(viewers_count(viewers), Some(9999));
        assert_eq!(
            classify_stream(r#"{"type":"ack","id":5,"seq":9}"#),
            StreamFrame::Ack(5)
        );
        assert_eq!(
            classify_stream(r#"{"type":"error","id":6,"code":"rate_limited","message":"x"}"#),
            StreamFrame::Error("rate_limited")
        );
        assert_eq!(
            classify_stream(r#"{"type":"stream_welcome","protocol":1,"you":2}"#),
            StreamFrame::Welcome
        );
        assert_eq!(
            classify_stream(r#"{"type":"streamer_back","seq":1}"#),
            StreamFrame::Other
        );
        assert_eq!(classify_stream("nonsense"), StreamFrame::Undecodable);
    }

    #[test]
    fn stream_frames_are_what_the_server_accepts() {
        let id = StreamId("s4d2c9a0b7e1f3a5c6d8e".into());
        let frame = join_stream(&id, "lt0-v1".into(), None, Some("lt-0-1".into()));
        let Ok(ClientMessage::JoinStream {
            id: RequestId(STREAM_JOIN_ID),
            stream,
            streamer_key: None,
            client_key: Some(k),
            ..
        }) = decode_client(frame.as_bytes())
        else {
            panic!("the server refuses {frame}");
        };
        assert_eq!((stream, k.as_str()), (id, "lt-0-1"));
        // The creation body is what the gateway's CreateStreamBody takes.
        let body: serde_json::Value = serde_json::from_str(&stream_body(3)).unwrap();
        assert_eq!(body["place_id"], "loadtest:3");
        let lat = body["location"]["lat"].as_f64().unwrap();
        assert!((37.5..37.6).contains(&lat), "{lat}");
        // A `stream_welcome` opens a stream session as a `welcome` opens a room's.
        assert!(matches!(
            classify(r#"{"type":"stream_welcome","protocol":1}"#),
            Incoming::Welcome
        ));
    }
}
