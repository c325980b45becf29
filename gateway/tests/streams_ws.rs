//! Live streams end to end over real sockets: a streamer and several viewers, coalesced viewer
//! counts, chat with pin/delete/mute/ban (bans hold for reconnecting viewers), discovery, the
//! streamer-drop grace period, and the durable "was streamed here" record.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use wagu_proto::model::StreamEndReason;
use wagu_proto::{ErrorCode, ServerMessage, close};

struct Stream {
    id: String,
    key: String,
}

async fn create_stream(addr: std::net::SocketAddr, title: &str, place: &str, lat: f64) -> Stream {
    let body = json!({"title": title, "place_id": place, "location": {"lat": lat, "lng": 127.0}, "menu": ["gukbap"]});
    let (status, text) = http(addr, "POST", "/api/streams", &body.to_string()).await;
    assert_eq!(status, 201, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    Stream {
        id: v["stream_id"].as_str().unwrap().into(),
        key: v["streamer_key"].as_str().unwrap().into(),
    }
}

async fn watch(
    c: &mut Client,
    s: &Stream,
    name: &str,
    key: Option<&str>,
    client_key: Option<&str>,
) -> ServerMessage {
    let mut j = json!({"type":"join_stream","stream": s.id, "name": name});
    if let Some(k) = key {
        j["streamer_key"] = k.into();
    }
    if let Some(k) = client_key {
        j["client_key"] = k.into();
    }
    let r = c.call(j).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    let w = c.seen.remove(0);
    match &w {
        ServerMessage::StreamWelcome {
            you,
            resume_token,
            stream,
            ..
        } => {
            c.me = you.0;
            c.token = resume_token.0.clone();
            c.last_seq = stream.seq.0;
        }
        other => panic!("expected stream_welcome, got {other:?}"),
    }
    c.seen.clear();
    w
}

fn code(m: &ServerMessage) -> Option<ErrorCode> {
    match m {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn streamer_viewers_chat_moderation_discovery_and_record() {
    let srv = start(test_config()).await;
    let s = create_stream(srv.addr, "Late-night gukbap", "kakao:77", 37.5).await;
    let _far = create_stream(srv.addr, "Busan seafood", "kakao:88", 35.1).await;

    let mut streamer = Client::new(srv.addr).await;
    watch(&mut streamer, &s, "Chef Kim", Some(&s.key), None).await;
    let mut viewers = Vec::new();
    for i in 0..3 {
        let mut v = Client::new(srv.addr).await;
        watch(
            &mut v,
            &s,
            &format!("viewer{i}"),
            None,
            Some(&format!("device-{i}")),
        )
        .await;
        viewers.push(v);
    }
    // One coalesced count, not an event per join.
    let m = streamer
        .wait_for(|m| matches!(m, ServerMessage::Viewers { count: 3, .. }))
        .await;
    assert!(matches!(m, ServerMessage::Viewers { .. }));

    // Discovery: most watched first; near Seoul only finds this one; by place.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, body) = http(srv.addr, "GET", "/api/streams?sort=viewers", "").await;
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["stream_id"], s.id.as_str(), "{body}");
    assert_eq!(list[0]["viewers"], 3, "{body}");
    let (_, body) = http(
        srv.addr,
        "GET",
        "/api/streams?near=37.51,127.0&radius_km=10",
        "",
    )
    .await;
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 1, "{body}");
    let (_, body) = http(srv.addr, "GET", "/api/streams?place_id=kakao:88", "").await;
    assert!(body.contains("Busan"), "{body}");
    let (status, _) = http(srv.addr, "GET", "/api/streams?sort=sideways", "").await;
    assert_eq!(status, 400);

    // Chat reaches everyone; a viewer may not moderate; the streamer pins and deletes.
    let r = viewers[0]
        .call(json!({"type":"chat","text":"what are you eating?"}))
        .await;
    let ServerMessage::Ack {
        seq: Some(msg_seq), ..
    } = r
    else {
        panic!("{r:?}")
    };
    streamer.wait_for(|m| matches!(m, ServerMessage::Chat { message, .. } if message.text == "what are you eating?")).await;
    for cmd in [
        json!({"type":"pin","message":msg_seq.0}),
        json!({"type":"ban","participant":viewers[1].me}),
        json!({"type":"end_stream"}),
    ] {
        let r = viewers[1].call(cmd).await;
        assert_eq!(code(&r), Some(ErrorCode::Forbidden));
    }
    streamer
        .call(json!({"type":"pin","message":msg_seq.0}))
        .await;
    viewers[2]
        .wait_for(|m| {
            matches!(
                m,
                ServerMessage::PinChanged {
                    message: Some(_),
                    ..
                }
            )
        })
        .await;
    streamer
        .call(json!({"type":"delete_message","message":msg_seq.0}))
        .await;
    viewers[2]
        .wait_for(|m| matches!(m, ServerMessage::MessageDeleted { .. }))
        .await;

    // Mute: the muted viewer's chat is refused.
    let troll = viewers[1].me;
    streamer
        .call(json!({"type":"mute","participant":troll,"minutes":5}))
        .await;
    let r = viewers[1].call(json!({"type":"chat","text":"spam"})).await;
    assert_eq!(code(&r), Some(ErrorCode::Muted));

    // Ban: closed with 4005; neither resuming nor rejoining from the same device works.
    let (token, last) = (viewers[1].token.clone(), viewers[1].last_seq);
    streamer
        .call(json!({"type":"ban","participant":troll}))
        .await;
    assert_eq!(viewers[1].close_code().await, Some(close::BANNED));
    let mut back = Client::new(srv.addr).await;
    let r = back.call(json!({"type":"join_stream","stream":s.id,"name":"troll","resume":{"participant":troll,"token":token,"last_seq":last}})).await;
    assert_eq!(code(&r), Some(ErrorCode::Banned));
    let r = back
        .call(json!({"type":"join_stream","stream":s.id,"name":"troll2","client_key":"device-1"}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Banned));

    // The streamer ends the stream: everyone is told why, sockets close with 4002.
    let r = streamer.call(json!({"type":"end_stream"})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }));
    viewers[0]
        .wait_for(|m| {
            matches!(
                m,
                ServerMessage::StreamEnded {
                    reason: StreamEndReason::StreamerEnded,
                    ..
                }
            )
        })
        .await;
    assert_eq!(viewers[0].close_code().await, Some(close::ROOM_CLOSED));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = http(srv.addr, "GET", &format!("/api/streams/{}", s.id), "").await;
    assert_eq!(status, 404);
    // "Was streamed here": the ended record, with its peak audience, from the durable store.
    let (status, body) = http(srv.addr, "GET", "/api/places/kakao:77/streams", "").await;
    assert_eq!(status, 200, "{body}");
    let recs: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(recs.len(), 1, "{body}");
    assert_eq!(recs[0]["peak_viewers"], 3);
    assert_eq!(recs[0]["title"], "Late-night gukbap");
}

#[tokio::test]
async fn streamer_drop_keeps_viewers_for_the_grace_then_ends() {
    let mut cfg = test_config();
    cfg.limits.streamer_grace_secs = 1;
    let srv = start(cfg).await;
    let s = create_stream(srv.addr, "Short grace", "kakao:1", 37.5).await;
    let mut streamer = Client::new(srv.addr).await;
    watch(&mut streamer, &s, "Chef", Some(&s.key), None).await;
    let mut viewer = Client::new(srv.addr).await;
    watch(&mut viewer, &s, "Fan", None, None).await;
    drop(streamer);
    viewer
        .wait_for(|m| matches!(m, ServerMessage::StreamerAway { .. }))
        .await;
    let m = viewer
        .wait_for(|m| matches!(m, ServerMessage::StreamEnded { .. }))
        .await;
    assert!(matches!(
        m,
        ServerMessage::StreamEnded {
            reason: StreamEndReason::StreamerLeft,
            ..
        }
    ));
    assert_eq!(viewer.close_code().await, Some(close::ROOM_CLOSED));
}

#[tokio::test]
async fn bad_stream_requests_are_refused() {
    let srv = start(test_config()).await;
    for body in [
        r#"{"title":"","place_id":"p"}"#,
        r#"{"title":"x","place_id":""}"#,
        r#"{"title":"x","place_id":"p","location":{"lat":100,"lng":0}}"#,
        r#"{"title":"x"}"#,
    ] {
        let (status, text) = http(srv.addr, "POST", "/api/streams", body).await;
        assert_eq!(status, 400, "{body} -> {text}");
    }
    let mut c = Client::new(srv.addr).await;
    let r = c
        .call(json!({"type":"join_stream","stream":"s-nope","name":"x"}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::UnknownRoom));
    let (status, body) = http(srv.addr, "GET", "/api/streams?near=north", "").await;
    assert_eq!(status, 400);
    assert!(body.contains(r#""code":"invalid""#), "{body}");
    let (status, body) = http(srv.addr, "GET", "/api/streams?limit=lots", "").await;
    assert_eq!(status, 400);
    assert!(body.contains(r#""code":"invalid""#), "{body}");
}

async fn signup_token(addr: std::net::SocketAddr, email: &str) -> String {
    signup(addr, email, "Viewer").await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_ban_follows_a_signed_in_viewer_to_every_device() {
    let srv = start(test_config()).await;
    let s = create_stream(srv.addr, "Late-night ramen", "kakao:91", 37.5).await;
    let mut streamer = Client::new(srv.addr).await;
    watch(&mut streamer, &s, "Chef", Some(&s.key), None).await;
    let token = signup_token(srv.addr, "troll@example.com").await;
    let other = signup_token(srv.addr, "fan@example.com").await;

    // Signed in on a phone: the device key is replaced by the account.
    let mut phone = Client::new(srv.addr).await;
    let r = phone
        .call(json!({"type":"join_stream","stream":s.id,"name":"troll","client_key":"phone-1","token":token}))
        .await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    let troll = match phone.seen.remove(0) {
        ServerMessage::StreamWelcome { you, .. } => you,
        other => panic!("expected stream_welcome, got {other:?}"),
    };
    streamer
        .call(json!({"type":"ban","participant":troll}))
        .await;
    assert_eq!(phone.close_code().await, Some(close::BANNED));

    // Another device, another device key, same account: banned.
    let mut laptop = Client::new(srv.addr).await;
    let r = laptop
        .call(json!({"type":"join_stream","stream":s.id,"name":"t","client_key":"laptop-9","token":token}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Banned), "{r:?}");
    // A client may not claim an account key by itself.
    let r = laptop
        .call(json!({"type":"join_stream","stream":s.id,"name":"t","client_key":"acct:someone"}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Invalid), "{r:?}");
    // The banned phone stays banned signed out, and under another account.
    let mut phone2 = Client::new(srv.addr).await;
    let r = phone2
        .call(json!({"type":"join_stream","stream":s.id,"name":"anon","client_key":"phone-1"}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Banned), "{r:?}");
    let r = phone2
        .call(json!({"type":"join_stream","stream":s.id,"name":"fan","client_key":"phone-1","token":other}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Banned), "{r:?}");
    // The other account on its own device is welcome.
    let mut fan = Client::new(srv.addr).await;
    let r = fan
        .call(json!({"type":"join_stream","stream":s.id,"name":"fan","client_key":"tablet-3","token":other}))
        .await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    // Spaces cannot smuggle a second key in.
    let r = laptop
        .call(json!({"type":"join_stream","stream":s.id,"name":"t","client_key":"x acct:y"}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Invalid), "{r:?}");
    // An expired or forged token is refused before the stream sees the join.
    let r = laptop
        .call(json!({"type":"join_stream","stream":s.id,"name":"t","token":"x.y.z"}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::InvalidToken), "{r:?}");
    srv.stop().await;
}
