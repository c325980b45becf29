//! Bad input and limits over real sockets: malformed and oversized frames, unknown rooms,
//! expired links, wrong protocol versions, rate limits and abuse, the Origin allow-list, room
//! capacity, slow clients and idle connections. Every refusal is a typed error or close code.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use wagu_proto::{ErrorCode, ServerMessage, close};

fn code(m: &ServerMessage) -> Option<ErrorCode> {
    match m {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn malformed_and_oversized_frames_get_typed_errors() {
    let srv = start(test_config()).await;
    let room = create_room(srv.addr, "{}").await;
    let mut c = Client::new(srv.addr).await;
    c.send_raw("this is not json".into()).await;
    assert_eq!(code(&c.recv().await), Some(ErrorCode::BadFrame));
    c.send_raw(r#"{"type":"teleport","id":41}"#.into()).await;
    let m = c.recv().await;
    assert!(
        matches!(m, ServerMessage::Error { id: Some(id), code: ErrorCode::BadFrame, .. } if id.0 == 41),
        "{m:?}"
    );
    c.ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(code(&c.recv().await), Some(ErrorCode::BadFrame));
    let r = c.call(json!({"type":"chat","text":"before join"})).await;
    assert_eq!(code(&r), Some(ErrorCode::NotJoined));
    // Over the limit but under the transport's hard cap: an error, and the socket lives on.
    let big = format!(
        r#"{{"type":"chat","id":5,"text":"{}"}}"#,
        "x".repeat(20_000)
    );
    c.send_raw(big).await;
    assert_eq!(code(&c.recv().await), Some(ErrorCode::FrameTooLarge));
    c.join(&room.share, "Still here", None).await;
    let r = c.call(json!({"type":"chat","text":"x".repeat(1001)})).await;
    assert_eq!(code(&r), Some(ErrorCode::Invalid));
    let r = c
        .call(json!({"type":"add_candidate","place_id":"p","name":"n","lat":123.0,"lng":0}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::Invalid));
    // Far over the hard cap: the transport refuses it and the socket closes with 1009.
    let huge = format!(
        r#"{{"type":"chat","id":6,"text":"{}"}}"#,
        "x".repeat(100_000)
    );
    let _ = c.ws.send(Message::Text(huge.into())).await;
    assert_eq!(c.close_code().await, Some(close::TOO_BIG));
}

#[tokio::test]
async fn unknown_room_expired_link_and_bad_version() {
    let mut cfg = test_config();
    cfg.limits.share_ttl_secs = 0;
    let srv = start(cfg).await;
    let mut c = Client::new(srv.addr).await;
    let r = c
        .call(json!({"type":"join","share":"no-such-room-token","name":"X"}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::UnknownRoom));
    let room = create_room(srv.addr, "{}").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = c
        .call(json!({"type":"join","share":room.share,"name":"X"}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::ShareExpired));
    let (status, body) = http(srv.addr, "GET", "/api/rooms/nope", "").await;
    assert_eq!(status, 404);
    assert!(body.contains("unknown_room"), "{body}");
    let r = c.call(json!({"type":"hello","protocol":99})).await;
    assert_eq!(code(&r), Some(ErrorCode::UnsupportedVersion));
    assert_eq!(c.close_code().await, Some(close::UNSUPPORTED_VERSION));
}

#[tokio::test]
async fn http_api_refuses_bad_bodies() {
    let srv = start(test_config()).await;
    for body in [
        r#"{"title":"#,
        r#"{"center":{"lat":99,"lng":0}}"#,
        r#"{"vote_mode":{"kind":"approval","max":0}}"#,
        r#"{"colour":"red"}"#,
    ] {
        let (status, text) = http(srv.addr, "POST", "/api/rooms", body).await;
        assert_eq!(status, 400, "{body} -> {text}");
        assert!(text.contains(r#""code":"invalid""#), "{text}");
    }
}

#[tokio::test]
async fn rate_limits_then_disconnect_on_sustained_abuse() {
    let mut cfg = test_config();
    cfg.rate.chat_per_sec = 2;
    cfg.rate.abuse_threshold = 10;
    let srv = start(cfg).await;
    let room = create_room(srv.addr, "{}").await;
    let mut c = Client::new(srv.addr).await;
    c.join(&room.share, "Spammer", None).await;
    let mut limited = 0;
    for i in 0..8 {
        let r = c
            .call(json!({"type":"chat","text":format!("spam {i}")}))
            .await;
        if code(&r) == Some(ErrorCode::RateLimited) {
            limited += 1;
        }
    }
    assert!(
        limited >= 3,
        "burst of 4 then refusals (got {limited} refusals)"
    );
    for i in 0..30 {
        c.send(json!({"type":"chat","text":format!("more {i}")}))
            .await;
    }
    assert_eq!(c.close_code().await, Some(close::POLICY));
}

#[tokio::test]
async fn origin_allow_list() {
    let mut cfg = test_config();
    cfg.limits.allowed_origins = vec!["https://wagu.example".into()];
    let srv = start(cfg).await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/ws", srv.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let mut req = format!("ws://{}/ws", srv.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "https://wagu.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}

/// A node whose open-file limit is 256 (soft and hard, so it cannot raise it) keeps 64 back and
/// holds 192 WebSockets: the next upgrade is a 503 `capacity` the client can act on, not an
/// accept loop failing with EMFILE; plain HTTP still answers, and a freed slot is reused.
#[tokio::test]
async fn a_node_at_its_open_file_limit_refuses_websockets_with_capacity_and_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    let node = process::Wagu::spawn_with_nofile(root.path(), &[], Some(256)).await;
    let mut held = Vec::new();
    for _ in 0..192 {
        held.push(connect(node.addr).await);
    }
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws", node.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
            assert!(body.contains("\"capacity\""), "{body}");
        }
        other => panic!("expected a 503 capacity refusal, got {other:?}"),
    }
    let (status, _) = http(node.addr, "GET", "/healthz", "").await;
    assert_eq!(status, 200);
    assert!(
        node.log().contains("holds 192 WebSockets"),
        "the budget is logged: {}",
        node.log()
    );
    assert!(
        !node.log().contains("Too many open files"),
        "{}",
        node.log()
    );
    drop(held.pop());
    // The server notices the close and frees the slot.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio_tungstenite::connect_async(format!("ws://{}/ws", node.addr)).await {
            Ok((ws, _)) => {
                held.push(ws);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no slot freed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn room_full_and_node_room_limit() {
    let mut cfg = test_config();
    cfg.limits.max_participants = 2;
    cfg.limits.max_rooms = 1;
    let srv = start(cfg).await;
    let room = create_room(srv.addr, "{}").await;
    let (status, body) = http(srv.addr, "POST", "/api/rooms", "{}").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("capacity"));
    let mut a = Client::new(srv.addr).await;
    a.join(&room.share, "A", None).await;
    let mut b = Client::new(srv.addr).await;
    b.join(&room.share, "B", None).await;
    let mut c = Client::new(srv.addr).await;
    let r = c
        .call(json!({"type":"join","share":room.share,"name":"C"}))
        .await;
    assert_eq!(code(&r), Some(ErrorCode::RoomFull));
}

#[tokio::test]
async fn idle_connection_is_closed() {
    let mut cfg = test_config();
    cfg.limits.ping_interval_secs = 1;
    cfg.limits.idle_timeout_secs = 2;
    let srv = start(cfg).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", srv.addr))
        .await
        .unwrap();
    // A client that never reads never answers pings either (tungstenite answers on read).
    let (_sink, mut stream) = ws.split();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut code = None;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(3), stream.next()).await {
        if let Message::Close(Some(f)) = m {
            code = Some(u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(close::IDLE_TIMEOUT));
}

#[tokio::test]
async fn slow_client_is_dropped_and_never_slows_the_room() {
    let mut cfg = test_config();
    cfg.limits.outbound_queue = 16;
    cfg.rate.chat_per_sec = 1000;
    let srv = start(cfg).await;
    let room = create_room(srv.addr, "{}").await;
    let mut fast = Client::new(srv.addr).await;
    fast.join(&room.share, "Fast", Some(&room.host_key)).await;
    // The slow client joins, then never reads again.
    let mut slow = Client::new(srv.addr).await;
    slow.join(&room.share, "Slow", None).await;
    let slow_id = slow.me;
    let text = "가".repeat(1000);
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut away = false;
    for _ in 0..4000 {
        let t = Instant::now();
        let r = fast.call(json!({"type":"chat","text":text})).await;
        assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
        worst = worst.max(t.elapsed());
        away |= fast.seen.drain(..).any(|m| matches!(m, ServerMessage::ParticipantAway { participant, .. } if participant.0 == slow_id));
        if away {
            break;
        }
    }
    assert!(
        away,
        "the room dropped the client that stopped reading (after {:?})",
        started.elapsed()
    );
    assert!(
        worst < Duration::from_secs(2),
        "a command took {worst:?} while a client was slow"
    );
    let metrics = http(srv.addr, "GET", "/metrics", "").await.1;
    assert!(
        metrics.contains(r#"wagu_queue_drops_total{kind="lagged"}"#),
        "{metrics}"
    );
    drop(slow);
}

#[tokio::test]
async fn room_and_stream_creation_is_limited_per_address() {
    let mut cfg = test_config();
    cfg.rate.creates_per_minute = 3;
    let srv = start(cfg).await;
    for _ in 0..2 {
        create_room(srv.addr, "{}").await;
    }
    let (status, body) = http(
        srv.addr,
        "POST",
        "/api/streams",
        r#"{"title":"t","place_id":"p"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(srv.addr, "POST", "/api/rooms", "{}").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("rate_limited"), "{body}");
}
