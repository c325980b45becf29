//! Rooms outlive a restart of the server on the default, embedded room store (a redb file under
//! `data_dir`), over real WebSockets: after a graceful stop (in process, as SIGTERM does) and
//! after `kill -9` of the real `wagu` binary, a friend who dropped resumes with its token and
//! last seq and receives exactly the events it missed; a new friend opens the same share link
//! and finds the room with its candidates, votes and chat; the host is still the host. A room
//! whose time to live ran out while the server was down stays gone.

mod common;

use common::process::Wagu;
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use wagu_gateway::config::EphemeralBackend;
use wagu_proto::{ErrorCode, ServerMessage};

fn embedded_config(data_dir: &Path) -> wagu_gateway::Config {
    let mut c = test_config();
    c.ephemeral.backend = EphemeralBackend::Embedded;
    c.data_dir = data_dir.to_path_buf();
    c
}

/// What a room went through before the restart, as its clients saw it.
struct Before {
    room: Room,
    host: Client,
    /// The friend that dropped before the last events: its id, token and last seq.
    friend: (u32, String, u64),
    /// Every reliable event the host saw, by seq (kind, chat text if any).
    events: BTreeMap<u64, (String, Option<String>)>,
}

fn record(events: &mut BTreeMap<u64, (String, Option<String>)>, seen: &[ServerMessage]) {
    for m in seen {
        if let Some(s) = m.seq() {
            let text = match m {
                ServerMessage::Chat { message, .. } => Some(message.text.clone()),
                _ => None,
            };
            events.insert(s.0, (m.kind().to_string(), text));
        }
    }
}

/// A room with two candidates, votes and chat; a friend who dropped and then missed two chats,
/// a candidate and a vote, every one of them acknowledged to the host.
async fn room_with_history(addr: SocketAddr) -> Before {
    let room = create_room(addr, r#"{"title":"Before the restart"}"#).await;
    let mut host = Client::new(addr).await;
    host.join(&room.share, "Host", Some(&room.host_key)).await;
    let mut friend = Client::new(addr).await;
    friend.join(&room.share, "Jun", None).await;
    let mut events = BTreeMap::new();
    for cmd in [
        json!({"type":"add_candidate","place_id":"p1","name":"Gukbap House","lat":37.5,"lng":127.0}),
        json!({"type":"vote","choices":["p1"]}),
        json!({"type":"chat","text":"국밥 어때요?"}),
    ] {
        let r = host.call(cmd).await;
        assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    }
    let r = friend.call(json!({"type":"vote","choices":["p1"]})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    // The friend has seen everything so far; it drops without a close frame.
    let friend_id = (friend.me, friend.token.clone(), friend.last_seq);
    drop(friend);
    let away = host
        .wait_for(
            |m| matches!(m, ServerMessage::ParticipantAway { participant, .. } if participant.0 == friend_id.0),
        )
        .await;
    host.seen.push(away);
    // What the friend misses.
    for cmd in [
        json!({"type":"chat","text":"missed one"}),
        json!({"type":"add_candidate","place_id":"p2","name":"Naengmyeon","lat":37.51,"lng":127.02}),
        json!({"type":"vote","choices":["p2"]}),
        json!({"type":"chat","text":"missed two"}),
    ] {
        let r = host.call(cmd).await;
        assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    }
    record(&mut events, &host.seen);
    Before {
        room,
        host,
        friend: friend_id,
        events,
    }
}

/// The friend resumes on the restarted server: `resumed`, then every event after its last seq
/// exactly once and in order; the events the host saw before the restart come back the same.
async fn friend_resumes_exactly(addr: SocketAddr, b: &Before) {
    let (me, token, last) = (b.friend.0, b.friend.1.clone(), b.friend.2);
    let mut again = Client::new(addr).await;
    let id = again
        .send(json!({"type":"join","share":b.room.share,"name":"Jun","resume":{"participant":me,"token":token,"last_seq":last}}))
        .await;
    let r = again.reply(id).await;
    assert!(
        matches!(r, ServerMessage::Ack { .. }),
        "resume refused: {r:?}"
    );
    let ServerMessage::Resumed {
        from_seq, to_seq, ..
    } = &again.seen[0]
    else {
        panic!("expected resumed, got {:?}", again.seen[0]);
    };
    assert_eq!(from_seq.0, last);
    assert!(to_seq.0 <= again.last_seq, "{to_seq:?} {}", again.last_seq);
    // Everything after `last`: what it missed, then its own return; nothing twice, no gap.
    let seqs: Vec<u64> = again
        .seen
        .iter()
        .filter_map(|m| m.seq())
        .map(|s| s.0)
        .collect();
    let expected: Vec<u64> = ((last + 1)..=again.last_seq).collect();
    assert_eq!(seqs, expected, "exactly the missed events, in order, once");
    let mut replayed = BTreeMap::new();
    record(&mut replayed, &again.seen);
    let missed: Vec<_> = b.events.range(last + 1..).collect();
    assert!(
        missed.len() >= 5,
        "the friend missed its away and four commands: {missed:?}"
    );
    for (seq, event) in missed {
        assert_eq!(
            replayed.get(seq),
            Some(event),
            "event {seq} after the restart"
        );
    }
    let chats: Vec<_> = replayed.values().filter_map(|(_, t)| t.clone()).collect();
    assert_eq!(chats, ["missed one", "missed two"]);
}

/// A newcomer opens the same share link and sees the whole room; the host keeps its seat.
async fn room_is_whole(addr: SocketAddr, b: &mut Before) {
    let mut newcomer = Client::new(addr).await;
    let ServerMessage::Welcome { room: snap, .. } = newcomer.join(&b.room.share, "Seo", None).await
    else {
        unreachable!()
    };
    assert_eq!(snap.title, "Before the restart");
    let places: Vec<_> = snap
        .candidates
        .iter()
        .map(|c| c.place_id.0.as_str())
        .collect();
    assert_eq!(places, ["p1", "p2"]);
    assert_eq!(snap.ballots.len(), 2, "both ballots kept");
    let chat: Vec<_> = snap.chat.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(chat, ["국밥 어때요?", "missed one", "missed two"]);
    let (status, body) = http(addr, "GET", &format!("/api/rooms/{}", b.room.share), "").await;
    assert_eq!(status, 200, "{body}");

    // The host resumes too and may still act as host.
    let mut host = Client::new(addr).await;
    let id = host
        .send(json!({"type":"join","share":b.room.share,"name":"Host","resume":{"participant":b.host.me,"token":b.host.token,"last_seq":b.host.last_seq}}))
        .await;
    let r = host.reply(id).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "host resume: {r:?}");
    let r = host.call(json!({"type":"rename","title":"After"})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
}

#[tokio::test]
async fn a_room_outlives_a_graceful_restart_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(embedded_config(dir.path())).await;
    let mut b = room_with_history(node.addr).await;
    // As SIGTERM: connections are told to resume, rooms write their snapshots.
    node.stop().await;
    assert_eq!(b.host.close_code().await, Some(wagu_proto::close::RESUME));

    let node = start(embedded_config(dir.path())).await;
    friend_resumes_exactly(node.addr, &b).await;
    room_is_whole(node.addr, &mut b).await;
    node.stop().await;
}

#[tokio::test]
async fn a_room_outlives_kill_9_of_the_real_server() {
    let root = tempfile::tempdir().unwrap();
    // No durable commit of the store's file after it opens: every acknowledged write is only
    // in its log, so the restart must replay it.
    let only_the_log = [("WAGU_EPHEMERAL__CHECKPOINT_MS", "600000")];
    let server = Wagu::spawn(root.path(), &only_the_log).await;
    let mut b = room_with_history(server.addr).await;
    // Killed right after the last acknowledgement: what was acknowledged was on disk.
    server.kill_9();
    assert_eq!(
        b.host.close_code().await,
        None,
        "the socket dies with the process, no close frame"
    );

    let server = Wagu::spawn(root.path(), &[]).await;
    assert!(
        server
            .log()
            .contains("ephemeral store: replayed the log after an unclean stop"),
        "the restart replayed nothing: {}",
        server.log()
    );
    friend_resumes_exactly(server.addr, &b).await;
    room_is_whole(server.addr, &mut b).await;
    server.kill_9();
}

#[tokio::test]
async fn a_room_that_expired_while_the_server_was_down_stays_gone() {
    let root = tempfile::tempdir().unwrap();
    let ttl = [("WAGU_EPHEMERAL__ROOM_TTL_SECS", "2")];
    let server = Wagu::spawn(root.path(), &ttl).await;
    let room = create_room(server.addr, "{}").await;
    let mut host = Client::new(server.addr).await;
    host.join(&room.share, "Host", Some(&room.host_key)).await;
    host.call(json!({"type":"chat","text":"soon gone"})).await;
    server.kill_9();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let server = Wagu::spawn(root.path(), &ttl).await;
    let (status, body) = http(
        server.addr,
        "GET",
        &format!("/api/rooms/{}", room.share),
        "",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let mut late = Client::new(server.addr).await;
    late.call(json!({"type":"hello","protocol":1})).await;
    let r = late
        .call(json!({"type":"join","share":room.share,"name":"Late"}))
        .await;
    assert!(
        matches!(
            r,
            ServerMessage::Error {
                code: ErrorCode::UnknownRoom,
                ..
            }
        ),
        "{r:?}"
    );
    let mut resume = Client::new(server.addr).await;
    resume.call(json!({"type":"hello","protocol":1})).await;
    let r = resume
        .call(json!({"type":"join","share":room.share,"name":"Host","resume":{"participant":host.me,"token":host.token,"last_seq":host.last_seq}}))
        .await;
    assert!(
        matches!(
            r,
            ServerMessage::Error {
                code: ErrorCode::UnknownRoom,
                ..
            }
        ),
        "{r:?}"
    );
    server.kill_9();
}
