//! Media signalling over real WebSockets: offers answered by the SFU, the session's rules
//! (who may publish), bad input answered with typed errors, and media state following
//! membership. The offers are made by a str0m peer in the test; no media flows here (that is
//! `media_aiortc.rs` and the SFU's own simulation tests).

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use str0m::Rtc;
use str0m::media::{Direction, MediaKind};
use wagu_proto::media::MediaEndReason;
use wagu_proto::{ErrorCode, ServerMessage};

/// An SDP offer sending `send` and receiving `recv_audio` + `recv_video` tracks.
fn offer(send: &[MediaKind], recv_audio: usize, recv_video: usize) -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    for k in send {
        change.add_media(*k, Direction::SendOnly, None, None, None);
    }
    for _ in 0..recv_audio {
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    for _ in 0..recv_video {
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    }
    change.apply().unwrap().0.to_sdp_string()
}

/// Sends a media offer and waits for its answer or error.
async fn media_offer(c: &mut Client, sdp: &str) -> ServerMessage {
    let id = c.send(json!({"type": "media_offer", "sdp": sdp})).await;
    loop {
        let m = c.recv().await;
        match &m {
            ServerMessage::MediaAnswer { id: r, .. } | ServerMessage::Error { id: Some(r), .. }
                if r.0 == id =>
            {
                return m;
            }
            _ => c.seen.push(m),
        }
    }
}

fn error_code(m: &ServerMessage) -> ErrorCode {
    match m {
        ServerMessage::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_room_offer_is_answered_and_everyone_sees_who_publishes() {
    let srv = start(test_config()).await;
    let room = create_room(srv.addr, "{}").await;
    let mut a = Client::new(srv.addr).await;
    a.join(&room.share, "A", Some(&room.host_key)).await;
    let mut b = Client::new(srv.addr).await;
    b.join(&room.share, "B", None).await;

    let answer = media_offer(&mut a, &offer(&[MediaKind::Audio], 4, 0)).await;
    let ServerMessage::MediaAnswer { sdp, .. } = &answer else {
        panic!("{answer:?}")
    };
    assert!(sdp.starts_with("v=0"), "{sdp}");
    assert!(
        sdp.contains("a=ice-lite"),
        "the SFU is an ICE-lite agent: {sdp}"
    );
    assert!(
        sdp.contains("typ host"),
        "the answer carries the SFU's candidate: {sdp}"
    );
    // Everyone hears who publishes now (B too, without doing anything).
    let state = b
        .wait_for(|m| matches!(m, ServerMessage::MediaState { .. }))
        .await;
    let ServerMessage::MediaState { peers, .. } = state else {
        unreachable!()
    };
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].participant.0, a.me);
    assert!(peers[0].audio && !peers[0].video && !peers[0].muted);

    // Mute shows in the state; a newcomer gets the state on joining.
    let r = a.call(json!({"type": "media_mute", "muted": true})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    let muted = b
        .wait_for(|m| matches!(m, ServerMessage::MediaState { peers, .. } if peers.iter().any(|p| p.muted)))
        .await;
    assert!(matches!(muted, ServerMessage::MediaState { .. }));
    let mut c = Client::new(srv.addr).await;
    c.call(json!({"type": "hello", "protocol": 1})).await;
    let id = c
        .send(json!({"type": "join", "share": room.share, "name": "C"}))
        .await;
    c.reply(id).await;
    let st = c
        .wait_for(|m| matches!(m, ServerMessage::MediaState { .. }))
        .await;
    assert!(
        matches!(st, ServerMessage::MediaState { peers, .. } if peers.len() == 1 && peers[0].muted)
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_kicked_participants_media_ends_and_leaves_the_state() {
    let srv = start(test_config()).await;
    let room = create_room(srv.addr, "{}").await;
    let mut a = Client::new(srv.addr).await;
    a.join(&room.share, "A", Some(&room.host_key)).await;
    let mut b = Client::new(srv.addr).await;
    b.join(&room.share, "B", None).await;
    let b_id = b.me;
    for c in [&mut a, &mut b] {
        let r = media_offer(c, &offer(&[MediaKind::Audio], 4, 0)).await;
        assert!(matches!(r, ServerMessage::MediaAnswer { .. }), "{r:?}");
    }
    a.wait_for(|m| matches!(m, ServerMessage::MediaState { peers, .. } if peers.len() == 2))
        .await;
    let r = a.call(json!({"type": "kick", "participant": b_id})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    let st = a
        .wait_for(|m| matches!(m, ServerMessage::MediaState { peers, .. } if peers.len() == 1))
        .await;
    assert!(
        matches!(st, ServerMessage::MediaState { peers, .. } if peers[0].participant.0 == a.me)
    );
    // media_leave ends A's own media: the list empties; A is told nothing more than its ack.
    let r = a.call(json!({"type": "media_leave"})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    a.wait_for(|m| matches!(m, ServerMessage::MediaState { peers, .. } if peers.is_empty()))
        .await;
    srv.stop().await;
}

#[tokio::test]
async fn bad_media_input_gets_typed_errors_and_breaks_nothing() {
    let srv = start(test_config()).await;
    let room = create_room(srv.addr, "{}").await;

    // Before joining.
    let mut early = Client::new(srv.addr).await;
    early.call(json!({"type": "hello", "protocol": 1})).await;
    let r = early
        .call(json!({"type": "media_offer", "sdp": offer(&[MediaKind::Audio], 1, 0)}))
        .await;
    assert_eq!(error_code(&r), ErrorCode::NotJoined);

    let mut a = Client::new(srv.addr).await;
    a.join(&room.share, "A", Some(&room.host_key)).await;
    // Not SDP at all: refused at the edge.
    let r = a.call(json!({"type": "media_offer", "sdp": "hello"})).await;
    assert_eq!(error_code(&r), ErrorCode::Invalid);
    // Looks like SDP, is not: refused by the SFU.
    let r = media_offer(&mut a, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ngarbage\r\n").await;
    assert_eq!(error_code(&r), ErrorCode::Invalid, "{r:?}");
    // Over the SDP limit but within the frame limit: invalid.
    let big = format!("v=0\r\n{}", "a=x".repeat(4500));
    let r = a.call(json!({"type": "media_offer", "sdp": big})).await;
    assert_eq!(error_code(&r), ErrorCode::Invalid, "{r:?}");
    // Over the frame limit: refused before it is even parsed (no id to answer).
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(3000));
    a.send(json!({"type": "media_offer", "sdp": huge})).await;
    let r = a
        .wait_for(|m| matches!(m, ServerMessage::Error { id: None, .. }))
        .await;
    assert_eq!(error_code(&r), ErrorCode::FrameTooLarge, "{r:?}");
    // A candidate before any offer, and a malformed one.
    let mut b = Client::new(srv.addr).await;
    b.join(&room.share, "B", None).await;
    let r = b
        .call(json!({"type": "media_candidate", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}))
        .await;
    assert_eq!(error_code(&r), ErrorCode::Invalid);
    let r = b
        .call(json!({"type": "media_candidate", "candidate": "<script>"}))
        .await;
    assert_eq!(error_code(&r), ErrorCode::Invalid);

    // Too many candidates for one offer.
    let r = media_offer(&mut b, &offer(&[MediaKind::Audio], 1, 0)).await;
    assert!(matches!(r, ServerMessage::MediaAnswer { .. }), "{r:?}");
    let mut refused = 0;
    for i in 0..25 {
        let r = b
            .call(json!({"type": "media_candidate", "candidate": format!("candidate:{i} 1 udp 2130706431 127.0.0.1 {} typ host", 10000 + i)}))
            .await;
        if let ServerMessage::Error { code, .. } = r {
            assert_eq!(code, ErrorCode::Invalid);
            refused += 1;
        }
    }
    assert_eq!(refused, 5, "20 candidates per offer, the rest refused");

    // A flood of offers is rate-limited (1 a second, burst 2).
    let sdp = offer(&[MediaKind::Audio], 1, 0);
    let mut limited = 0;
    for _ in 0..6 {
        let r = media_offer(&mut a, &sdp).await;
        if let ServerMessage::Error { code, .. } = &r {
            assert_eq!(*code, ErrorCode::RateLimited, "{r:?}");
            limited += 1;
        }
    }
    assert!(limited >= 3, "{limited} of 6 offers limited");

    // The room still works.
    let r = a.call(json!({"type": "chat", "text": "still here"})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    srv.stop().await;
}

#[tokio::test]
async fn in_a_stream_only_the_streamer_publishes() {
    let srv = start(test_config()).await;
    let body = json!({"title": "live", "place_id": "p1", "location": {"lat": 37.5, "lng": 127.0}});
    let (status, text) = http(srv.addr, "POST", "/api/streams", &body.to_string()).await;
    assert_eq!(status, 201, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let (sid, key) = (
        v["stream_id"].as_str().unwrap(),
        v["streamer_key"].as_str().unwrap(),
    );

    let mut streamer = Client::new(srv.addr).await;
    streamer.call(json!({"type": "hello", "protocol": 1})).await;
    let r = streamer
        .call(json!({"type": "join_stream", "stream": sid, "name": "chef", "streamer_key": key}))
        .await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    let r = media_offer(
        &mut streamer,
        &offer(&[MediaKind::Audio, MediaKind::Video], 0, 0),
    )
    .await;
    assert!(matches!(r, ServerMessage::MediaAnswer { .. }), "{r:?}");

    let mut viewer = Client::new(srv.addr).await;
    viewer.call(json!({"type": "hello", "protocol": 1})).await;
    let r = viewer
        .call(json!({"type": "join_stream", "stream": sid, "name": "v"}))
        .await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    // The viewer learns the streamer publishes audio and video.
    let st = viewer
        .wait_for(|m| matches!(m, ServerMessage::MediaState { .. }))
        .await;
    assert!(
        matches!(st, ServerMessage::MediaState { peers, .. } if peers.len() == 1 && peers[0].audio && peers[0].video)
    );
    // A viewer that tries to publish is refused; one that only receives is answered.
    let r = media_offer(&mut viewer, &offer(&[MediaKind::Video], 0, 1)).await;
    assert_eq!(error_code(&r), ErrorCode::Forbidden, "{r:?}");
    let r = viewer
        .call(json!({"type": "media_mute", "muted": true}))
        .await;
    assert_eq!(error_code(&r), ErrorCode::Forbidden, "{r:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = media_offer(&mut viewer, &offer(&[], 1, 1)).await;
    assert!(matches!(r, ServerMessage::MediaAnswer { .. }), "{r:?}");

    // The streamer bans the viewer: its media ends with its session.
    let vid = viewer
        .seen
        .iter()
        .find_map(|m| match m {
            ServerMessage::StreamWelcome { you, .. } => Some(*you),
            _ => None,
        })
        .expect("the stream_welcome was read before the join's ack");
    let r = streamer
        .call(json!({"type": "ban", "participant": vid.0}))
        .await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    let ended = viewer
        .wait_for(|m| matches!(m, ServerMessage::MediaEnded { .. }))
        .await;
    assert_eq!(
        ended,
        ServerMessage::MediaEnded {
            reason: MediaEndReason::NotMember
        }
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_node_without_media_says_so() {
    let mut config = test_config();
    config.media = wagu_media::MediaConfig::off();
    let srv = start(config).await;
    let room = create_room(srv.addr, "{}").await;
    let mut a = Client::new(srv.addr).await;
    a.join(&room.share, "A", None).await;
    let r = media_offer(&mut a, &offer(&[MediaKind::Audio], 1, 0)).await;
    assert_eq!(error_code(&r), ErrorCode::MediaUnavailable, "{r:?}");
    srv.stop().await;
}
