//! Map rooms end to end over real sockets: several clients in one room see presence,
//! candidates, votes, the decision and chat; the host kicks and renames; a dropped client
//! resumes and receives exactly what it missed.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use wagu_proto::ServerMessage;
use wagu_proto::model::{LeaveReason, VoteState};

#[tokio::test]
async fn friends_decide_together() {
    let srv = start(test_config()).await;
    let room = create_room(
        srv.addr,
        r#"{"title":"Friday dinner","center":{"lat":37.56,"lng":126.97}}"#,
    )
    .await;
    let (status, body) = http(srv.addr, "GET", &format!("/api/rooms/{}", room.share), "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Friday dinner"));

    let mut host = Client::new(srv.addr).await;
    let w = host.join(&room.share, "Mina", Some(&room.host_key)).await;
    let ServerMessage::Welcome { room: snap, .. } = w else {
        unreachable!()
    };
    assert_eq!(snap.title, "Friday dinner");
    assert!(snap.participants[0].host);

    let mut a = Client::new(srv.addr).await;
    a.join(&room.share, "Jun", None).await;
    let mut b = Client::new(srv.addr).await;
    let w = b.join(&room.share, "Seo", None).await;
    let ServerMessage::Welcome { room: snap, .. } = w else {
        unreachable!()
    };
    assert_eq!(snap.participants.len(), 3, "snapshot lists everyone");
    assert!(snap.participants.iter().all(|p| !p.color.is_empty()));

    // Presence: a's viewport reaches b, batched.
    a.send(json!({"type":"presence","viewport":{"center":{"lat":37.5,"lng":127.01},"zoom":15}}))
        .await;
    let p = b.wait_for(|m| matches!(m, ServerMessage::Presence { updates, .. } if updates.iter().any(|u| u.participant.0 == a.me))).await;
    let ServerMessage::Presence { updates, .. } = p else {
        unreachable!()
    };
    assert_eq!(updates[0].viewport.unwrap().zoom, 15.0);
    // ... and not back to a: a batch holding only a's own update skips its author.
    while let Some(m) = a.try_recv(Duration::from_millis(300)).await {
        assert!(
            !matches!(m, ServerMessage::Presence { .. }),
            "a got its own presence back: {m:?}"
        );
    }

    // Candidates: add two, a duplicate is refused.
    let r = a.call(json!({"type":"add_candidate","place_id":"kakao:1","name":"Gukbap House","lat":37.5,"lng":127.0})).await;
    assert!(matches!(r, ServerMessage::Ack { seq: Some(_), .. }));
    host.call(json!({"type":"add_candidate","place_id":"kakao:2","name":"Naengmyeon","lat":37.51,"lng":127.02,"note":"cold noodles"})).await;
    let r = b.call(json!({"type":"add_candidate","place_id":"kakao:1","name":"Again","lat":37.5,"lng":127.0})).await;
    assert!(
        matches!(
            r,
            ServerMessage::Error {
                code: wagu_proto::ErrorCode::DuplicateCandidate,
                ..
            }
        ),
        "{r:?}"
    );

    // Votes and a live tally.
    a.call(json!({"type":"vote","choices":["kakao:2"]})).await;
    b.call(json!({"type":"vote","choices":["kakao:2"]})).await;
    host.call(json!({"type":"vote","choices":["kakao:1"]}))
        .await;
    let t = host.wait_for(|m| matches!(m, ServerMessage::BallotChanged { participant, .. } if participant.0 == b.me)).await;
    let ServerMessage::BallotChanged { tally, .. } = t else {
        unreachable!()
    };
    assert_eq!(
        tally
            .iter()
            .find(|e| e.place_id.0 == "kakao:2")
            .unwrap()
            .votes,
        2
    );
    // b changes its mind, then withdraws.
    b.call(json!({"type":"vote","choices":["kakao:1"]})).await;
    b.call(json!({"type":"vote","choices":[]})).await;

    // Only the host closes; everyone hears the decision.
    let r = a.call(json!({"type":"close_vote"})).await;
    assert!(matches!(
        r,
        ServerMessage::Error {
            code: wagu_proto::ErrorCode::Forbidden,
            ..
        }
    ));
    host.call(json!({"type":"close_vote"})).await;
    for c in [&mut a, &mut b] {
        let d = c
            .wait_for(|m| matches!(m, ServerMessage::VoteClosed { .. }))
            .await;
        let ServerMessage::VoteClosed { decision, .. } = d else {
            unreachable!()
        };
        // 1 vote each: a tie, broken by the earliest added candidate (kakao:1).
        assert_eq!(decision.winner.unwrap().0, "kakao:1");
    }

    // Chat, then a late joiner's snapshot keeps the decision and the chat tail.
    a.call(json!({"type":"chat","text":"국밥 좋아요!"})).await;
    let mut late = Client::new(srv.addr).await;
    let ServerMessage::Welcome { room: snap, .. } = late.join(&room.share, "Late", None).await
    else {
        unreachable!()
    };
    assert!(matches!(snap.vote, VoteState::Closed { .. }));
    assert_eq!(snap.chat.last().unwrap().text, "국밥 좋아요!");
    assert_eq!(snap.candidates.len(), 2);

    // Host controls: rename, kick.
    host.call(json!({"type":"rename","title":"Saturday dinner"}))
        .await;
    late.wait_for(
        |m| matches!(m, ServerMessage::RoomRenamed { title, .. } if title == "Saturday dinner"),
    )
    .await;
    let late_id = late.me;
    host.call(json!({"type":"kick","participant":late_id}))
        .await;
    assert_eq!(late.close_code().await, Some(wagu_proto::close::KICKED));
    a.wait_for(|m| matches!(m, ServerMessage::ParticipantLeft { participant, reason: LeaveReason::Kicked, .. } if participant.0 == late_id)).await;

    // Leave explicitly.
    let r = b.call(json!({"type":"leave"})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }));
    assert_eq!(b.close_code().await, Some(wagu_proto::close::LEFT));

    // Close the room: everyone is told, the link dies.
    let r = host.call(json!({"type":"close_room"})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }));
    a.wait_for(|m| matches!(m, ServerMessage::RoomClosed { .. }))
        .await;
    assert_eq!(a.close_code().await, Some(wagu_proto::close::ROOM_CLOSED));
    assert_eq!(
        host.close_code().await,
        Some(wagu_proto::close::ROOM_CLOSED)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = http(srv.addr, "GET", &format!("/api/rooms/{}", room.share), "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn dropped_client_resumes_without_loss_or_duplicates() {
    let srv = start(test_config()).await;
    let room = create_room(srv.addr, "{}").await;
    let mut host = Client::new(srv.addr).await;
    host.join(&room.share, "Host", Some(&room.host_key)).await;
    let mut b = Client::new(srv.addr).await;
    b.join(&room.share, "B", None).await;
    let (me, token, seen) = (b.me, b.token.clone(), b.last_seq);
    // Drop B's TCP connection without a close frame.
    drop(b);
    host.wait_for(
        |m| matches!(m, ServerMessage::ParticipantAway { participant, .. } if participant.0 == me),
    )
    .await;
    for i in 0..3 {
        host.call(json!({"type":"chat","text":format!("missed {i}")}))
            .await;
    }
    let mut b2 = Client::new(srv.addr).await;
    let id = b2.send(json!({"type":"join","share":room.share,"name":"B","resume":{"participant":me,"token":token,"last_seq":seen}})).await;
    let r = b2.reply(id).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    assert!(
        matches!(b2.seen[0], ServerMessage::Resumed { .. }),
        "{:?}",
        b2.seen[0]
    );
    let seqs: Vec<u64> = b2
        .seen
        .iter()
        .filter_map(|m| m.seq())
        .map(|s| s.0)
        .collect();
    let expected: Vec<u64> = ((seen + 1)..=b2.last_seq).collect();
    assert_eq!(seqs, expected, "exactly the missed events, in order, once");
    let chats = b2
        .seen
        .iter()
        .filter(|m| matches!(m, ServerMessage::Chat { .. }))
        .count();
    assert_eq!(chats, 3);
    host.wait_for(
        |m| matches!(m, ServerMessage::ParticipantBack { participant, .. } if participant.0 == me),
    )
    .await;
    // And the session works after resuming.
    let r = b2.call(json!({"type":"chat","text":"back"})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }));

    // A wrong token is refused with a typed error.
    let mut evil = Client::new(srv.addr).await;
    let id = evil.send(json!({"type":"join","share":room.share,"name":"B","resume":{"participant":me,"token":"forged","last_seq":0}})).await;
    let r = evil.reply(id).await;
    assert!(
        matches!(
            r,
            ServerMessage::Error {
                code: wagu_proto::ErrorCode::ResumeFailed,
                ..
            }
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn resuming_on_a_new_socket_replaces_the_old_one() {
    let srv = start(test_config()).await;
    let room = create_room(srv.addr, "{}").await;
    let mut a = Client::new(srv.addr).await;
    a.join(&room.share, "A", Some(&room.host_key)).await;
    // The old socket is still open (e.g. a phone switched networks).
    let mut a2 = Client::new(srv.addr).await;
    let id = a2.send(json!({"type":"join","share":room.share,"name":"A","resume":{"participant":a.me,"token":a.token,"last_seq":a.last_seq}})).await;
    assert!(matches!(a2.reply(id).await, ServerMessage::Ack { .. }));
    assert_eq!(a.close_code().await, Some(wagu_proto::close::RESUME));
    assert!(matches!(
        a2.call(json!({"type":"ping"})).await,
        ServerMessage::Ack { .. }
    ));
}
