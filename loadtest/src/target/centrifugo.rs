//! The Centrifugo target: Centrifugo v6's bidirectional JSON protocol over
//! `ws://HOST:PORT/connection/websocket`, with each room a channel `room:<n>`.
//!
//! A client sends `{"id":1,"connect":{"token":JWT}}`, then
//! `{"id":2,"subscribe":{"channel":"room:<n>"}}`, then one
//! `{"id":N,"publish":{"channel":"room:<n>","data":FRAME}}` per presence or chat, where `FRAME`
//! is exactly the Wagu client frame (`{"type":"presence","viewport":…}`), so the marker and the
//! payload size are the same as on the Wagu target. Publications arrive as
//! `{"push":{"channel":…,"pub":{"data":FRAME,"info":…}}}`; every command with an id gets a
//! reply `{"id":N,"<method>":{…}}` or `{"id":N,"error":{"code":…,"message":…}}`. Several
//! messages may share one WebSocket frame, separated by `\n`. The server pings with an empty
//! message `{}` and expects `{}` back before its pong timeout.
//!
//! The token is an HS256 JWT with `sub` (the participant's name) and `exp`, signed with the
//! secret of Centrifugo's `client.token.hmac_secret_key` (see `deploy/baseline/centrifugo.json`).
//! The namespace `room` must allow subscribe and publish for clients; presence, join/leave and
//! history stay off, so the server does the same job as Wagu's presence path: fan out.
//!
//! What it does not do: reconnect, recover, history, or protobuf. Centrifugo delivers a
//! publication to the publisher too; the scenario skips a client's own markers as it does on
//! Wagu.

use super::Incoming;
use super::wagu::MarkerViewport;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::Deserialize;

pub const WS_PATH: &str = "/connection/websocket";
pub const CONNECT_ID: u64 = 1;
pub const SUBSCRIBE_ID: u64 = 2;
/// Publish ids start here.
pub const FIRST_FREE_ID: u64 = 3;
/// Both the server's ping and the client's pong are an empty message.
pub const PONG: &str = "{}";

pub fn channel(room: usize) -> String {
    format!("room:{room}")
}

/// HMAC-SHA256 of `input` under `secret`.
fn hs256(secret: &[u8], input: &[u8]) -> [u8; 32] {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
        .expect("HMAC accepts keys of any length");
    mac.update(input);
    mac.finalize().into_bytes().into()
}

/// A JWS compact token over the given header and claims JSON.
fn sign(secret: &[u8], header_json: &str, claims_json: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_json),
        URL_SAFE_NO_PAD.encode(claims_json)
    );
    let sig = URL_SAFE_NO_PAD.encode(hs256(secret, input.as_bytes()));
    format!("{input}.{sig}")
}

/// A connection token for user `sub`, valid until `exp` (Unix seconds).
pub fn connection_token(secret: &[u8], sub: &str, exp: u64) -> String {
    let claims = serde_json::json!({ "sub": sub, "exp": exp }).to_string();
    sign(secret, r#"{"alg":"HS256","typ":"JWT"}"#, &claims)
}

pub fn connect(id: u64, token: &str) -> String {
    serde_json::json!({ "id": id, "connect": { "token": token, "name": "wagu-loadtest" } })
        .to_string()
}

pub fn subscribe(id: u64, channel: &str) -> String {
    serde_json::json!({ "id": id, "subscribe": { "channel": channel } }).to_string()
}

/// `data` must be a JSON object; it is embedded as is (no re-encoding on the hot path).
pub fn publish(id: u64, channel: &str, data: &str) -> String {
    // Channel names are `room:<n>`: nothing to escape.
    debug_assert!(!channel.contains(['"', '\\']));
    format!(r#"{{"id":{id},"publish":{{"channel":"{channel}","data":{data}}}}}"#)
}

#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(default)]
    id: u64,
    error: Option<ReplyError>,
    #[serde(borrow)]
    push: Option<Push<'a>>,
    // The results (`connect`, `subscribe`, `publish`) are not needed: a reply with an id and
    // no error is a success.
}

#[derive(Deserialize)]
struct ReplyError {
    code: u32,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Push<'a> {
    #[serde(rename = "pub", borrow)]
    publication: Option<Publication<'a>>,
}

#[derive(Deserialize)]
struct Publication<'a> {
    #[serde(borrow)]
    data: Marked<'a>,
}

/// The fields of a harness frame that carry its marker; everything else is ignored. The bare
/// relay target parses its frames with it too.
/// Only the viewport's centre and the text are read (borrowed when it has no escapes).
#[derive(Deserialize)]
pub struct Marked<'a> {
    viewport: Option<MarkerViewport>,
    #[serde(borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

impl Marked<'_> {
    pub fn incoming(self) -> Incoming {
        if let Some((from, counter)) = self.viewport.as_ref().and_then(MarkerViewport::marker) {
            Incoming::Presence {
                at_ms: None,
                updates: vec![(from, counter)],
            }
        } else if let Some((from, counter)) =
            self.text.as_deref().and_then(super::wagu::read_chat_marker)
        {
            Incoming::Chat { from, counter }
        } else {
            Incoming::Other
        }
    }
}

fn one(line: &str) -> Incoming {
    let Ok(r) = serde_json::from_str::<Reply>(line) else {
        return Incoming::Undecodable;
    };
    if let Some(e) = r.error {
        return Incoming::Error(format!("centrifugo {} {}", e.code, e.message).into());
    }
    match r.push {
        Some(Push {
            publication: Some(p),
        }) => p.data.incoming(),
        // join/leave, disconnect, unsubscribe… (join/leave are off in the baseline config).
        Some(_) => Incoming::Other,
        None if r.id != 0 => Incoming::Ack(r.id),
        None => Incoming::Ping,
    }
}

/// Calls `f` with each message of one frame.
pub fn classify(frame: &str, mut f: impl FnMut(Incoming)) {
    for line in frame.split('\n').filter(|l| !l.trim().is_empty()) {
        f(one(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::wagu;

    fn all(frame: &str) -> Vec<Incoming> {
        let mut v = Vec::new();
        classify(frame, |i| v.push(i));
        v
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = hs256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn token_is_a_verifiable_hs256_jwt() {
        let t = connection_token(b"s3cret", "lt4-2", 1_900_000_000);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "lt4-2");
        assert_eq!(claims["exp"], 1_900_000_000u64);
        let sig = hs256(b"s3cret", format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap(), sig);
    }

    #[test]
    fn commands_have_the_protocol_shapes() {
        let c: serde_json::Value = serde_json::from_str(&connect(1, "T")).unwrap();
        assert_eq!(c["id"], 1);
        assert_eq!(c["connect"]["token"], "T");
        let s: serde_json::Value = serde_json::from_str(&subscribe(2, "room:7")).unwrap();
        assert_eq!(s["subscribe"]["channel"], "room:7");
        let frame = wagu::presence(3, 41);
        let p: serde_json::Value = serde_json::from_str(&publish(9, &channel(7), &frame)).unwrap();
        assert_eq!(p["id"], 9);
        assert_eq!(p["publish"]["channel"], "room:7");
        assert_eq!(p["publish"]["data"]["type"], "presence");
    }

    #[test]
    fn reads_pushes_replies_pings_and_batches() {
        let presence = wagu::presence(3, 41);
        let chat = wagu::chat(5, 2, 8);
        let frame = format!(
            "{{\"id\":1,\"connect\":{{\"client\":\"c\",\"version\":\"6.9.1\",\"ping\":25,\"pong\":true}}}}\n\
             {{\"push\":{{\"channel\":\"room:7\",\"pub\":{{\"data\":{presence},\"info\":{{\"user\":\"u\",\"client\":\"c\"}}}}}}}}\n\
             {{\"push\":{{\"channel\":\"room:7\",\"pub\":{{\"data\":{chat}}}}}}}\n\
             {{}}\n\
             {{\"id\":2,\"error\":{{\"code\":103,\"message\":\"permission denied\"}}}}\n\
             {{\"push\":{{\"channel\":\"room:7\",\"join\":{{\"info\":{{}}}}}}}}\n\
             not json"
        );
        assert_eq!(
            all(&frame),
            vec![
                Incoming::Ack(1),
                Incoming::Presence {
                    at_ms: None,
                    updates: vec![(3, 41)]
                },
                Incoming::Chat {
                    from: 2,
                    counter: 8
                },
                Incoming::Ping,
                Incoming::Error("centrifugo 103 permission denied".into()),
                Incoming::Other,
                Incoming::Undecodable,
            ]
        );
    }
}
