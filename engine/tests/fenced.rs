//! Sessions of two nodes sharing the test bed's Redis (`WAGU_TEST_REDIS_URL`), each with its
//! own node lease and fenced store, in one process: who may revive a room, a takeover after a
//! lease lapses (the old copy is fenced off and drops itself), and a hand-over (drain) that lets
//! the other node take the room at once with everything acknowledged.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wagu_engine::actor::EngineConfig;
use wagu_engine::actor::outbound::Frame;
use wagu_engine::error::EngineError;
use wagu_engine::persist::{Fence, PersistError, SessionStore};
use wagu_engine::sessions::{CreateRoom, Rooms};
use wagu_proto::ids::*;
use wagu_proto::{ClientMessage, ErrorCode, ServerMessage};
use wagu_storage::cluster::{LeaseConfig, NodeId, NodeLease, NodeLoad};
use wagu_storage::{EphemeralStore, testbed};

mod common;
use common::*;

struct Node {
    rooms: Rooms,
    conn: ConnectionManager,
    id: NodeId,
}

async fn node(url: &str, name: &str) -> Node {
    node_with_lease(url, name, Duration::from_secs(3)).await
}

async fn node_with_lease(url: &str, name: &str, lease_ttl: Duration) -> Node {
    let conn = ConnectionManager::new_with_config(
        redis::Client::open(url).unwrap(),
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500))),
    )
    .await
    .expect("the test bed's Redis answers");
    let id = NodeId::new(format!("{name}-{:08x}", rand::random::<u32>())).unwrap();
    let lease = NodeLease::acquire(
        conn.clone(),
        id.clone(),
        LeaseConfig::with_ttl(lease_ttl),
        NodeLoad {
            open: true,
            ..NodeLoad::default()
        },
    )
    .await
    .unwrap();
    let ttl = Duration::from_secs(600);
    let store = SessionStore::fenced(
        EphemeralStore::redis(url).await.unwrap(),
        ttl,
        Fence::new(conn.clone(), Arc::new(lease), ttl),
    );
    let rooms = Rooms::start(store, EngineConfig::default()).await.unwrap();
    Node { rooms, conn, id }
}

/// Makes `node`'s lease disappear from Redis as if it had lapsed (the node itself does not know
/// yet: a paused or cut-off node).
async fn lapse(node: &Node) {
    let mut c = node.conn.clone();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("wagu:{{nodes}}:lease:{}", node.id))
        .query_async(&mut c)
        .await
        .unwrap();
}

fn chat(id: u64, text: &str) -> ClientMessage {
    ClientMessage::Chat {
        id: RequestId(id),
        text: text.into(),
    }
}

fn acked(frames: &[ServerMessage], id: u64) -> bool {
    frames
        .iter()
        .any(|f| matches!(f, ServerMessage::Ack { id: r, .. } if r.0 == id))
}

/// Waits until the connection's queue ends (the session dropped it), failing on a close frame.
async fn queue_ends(c: &mut Client) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(f) = c.rx.recv().await {
            if let Frame::Close(code) = f {
                panic!("expected the queue to end (resume), got close {code}");
            }
        }
    })
    .await
    .expect("the old copy let its connections go");
}

#[tokio::test]
async fn a_room_owned_by_a_live_node_is_not_revived_by_another() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "fenced") else {
        return;
    };
    let (a, b) = (node(&url, "a").await, node(&url, "b").await);
    let created = a.rooms.create(CreateRoom::default()).await.unwrap();
    let _host = join(&a.rooms, &created.share, "Host", Some(created.host_key)).await;
    let refused = b
        .rooms
        .join(
            newcomer(&created.share, "Guest"),
            wagu_engine::actor::outbound::Outbound::channel(16).0,
        )
        .await
        .expect_err("b must not run a's room");
    assert!(
        matches!(
            &refused,
            EngineError::Store(PersistError::OwnedElsewhere(n)) if *n == a.id
        ),
        "{refused:?}"
    );
    assert_eq!(refused.code(), ErrorCode::Unavailable);
    assert_eq!(b.rooms.count().await.unwrap(), 0);
    a.rooms.shutdown().await;
    b.rooms.shutdown().await;
}

#[tokio::test]
async fn after_a_lease_lapses_another_node_takes_over_and_the_old_copy_is_fenced_off() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "fenced") else {
        return;
    };
    let (a, b) = (node(&url, "a").await, node(&url, "b").await);
    let created = a.rooms.create(CreateRoom::default()).await.unwrap();
    let mut host = join(&a.rooms, &created.share, "Host", Some(created.host_key)).await;
    for i in 0..5 {
        let id = 10 + i;
        assert!(acked(
            &command(&mut host, chat(id, &format!("on a {i}"))).await,
            id
        ));
    }

    // a is paused past its lease: b may take the room, and has every acknowledged message.
    lapse(&a).await;
    let mut guest = join(&b.rooms, &created.share, "Guest", None).await;
    assert!(acked(&command(&mut guest, chat(2, "on b")).await, 2));
    assert_eq!(b.rooms.count().await.unwrap(), 1);

    // a wakes and writes: its append is refused, it drops its copy and its client resumes.
    host.session
        .send(chat(20, "from the zombie"), Instant::now())
        .unwrap();
    let mut zombie_acked = false;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(f) = host.rx.recv().await {
            if let Frame::Text(b) = f
                && let Ok(ServerMessage::Ack { id, .. }) = wagu_proto::codec::decode_server(&b)
                && id.0 == 20
            {
                zombie_acked = true;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the fenced-off copy let its connection go");
    assert!(!zombie_acked, "a fenced-off owner acknowledged a write");
    assert_eq!(
        a.rooms.count().await.unwrap(),
        0,
        "the zombie dropped its copy"
    );

    // The room on b: the five chats acknowledged on a, then b's, and nothing of the zombie.
    let room = welcome_room(&b.rooms, &created.share, "Viewer").await;
    let texts: Vec<&str> = room.chat.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        ["on a 0", "on a 1", "on a 2", "on a 3", "on a 4", "on b"],
        "nothing acknowledged lost, nothing of the zombie kept"
    );
    drop(guest.rx);
    a.rooms.shutdown().await;
    b.rooms.shutdown().await;
}

#[tokio::test]
async fn a_handed_over_room_is_taken_by_another_node_at_once_with_everything_acknowledged() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "fenced") else {
        return;
    };
    let (a, b) = (node(&url, "a").await, node(&url, "b").await);
    // More chats than a snapshot holds back, so both the snapshot and the journal count.
    let config_every = EngineConfig::default().snapshot_every;
    let created = a.rooms.create(CreateRoom::default()).await.unwrap();
    let mut host = join(&a.rooms, &created.share, "Host", Some(created.host_key)).await;
    let n = (config_every + 20).min(300);
    for i in 0..n {
        let frames = command(&mut host, chat(100 + i, &format!("m{i}"))).await;
        assert!(acked(&frames, 100 + i));
    }

    // The drain: a hands everything over; its clients are let go to resume.
    a.rooms.store().fence().unwrap().start_draining();
    let left = a.rooms.hand_over_all(10, Duration::from_secs(10)).await;
    assert_eq!(left, 0);
    queue_ends(&mut host).await;

    // b takes it at once (a's lease is still live: the release made that safe).
    let t = Instant::now();
    let resumed = b
        .rooms
        .join(
            wagu_engine::sessions::JoinRequest {
                id: RequestId(7),
                resume: Some(wagu_proto::ResumeRequest {
                    participant: host.session.participant,
                    token: host.token.clone(),
                    last_seq: host.last_seq,
                }),
                ..newcomer(&created.share, "Host")
            },
            wagu_engine::actor::outbound::Outbound::channel(2048).0,
        )
        .await
        .expect("b takes a released room without waiting for a's lease");
    assert!(resumed.resumed);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // And a, draining, claims nothing: a join there is told to go elsewhere.
    let refused = a.rooms.create(CreateRoom::default()).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Unavailable, "{refused:?}");

    let room = welcome_room(&b.rooms, &created.share, "V").await;
    assert_eq!(
        room.chat.last().map(|m| m.text.clone()),
        Some(format!("m{}", n - 1)),
        "the last acknowledged chat survived the hand-over"
    );
    a.rooms.shutdown().await;
    b.rooms.shutdown().await;
}

#[tokio::test]
async fn a_node_cut_off_from_redis_hands_its_rooms_over_before_its_lease_lapses() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "fenced") else {
        return;
    };
    let proxy = testbed::CuttableProxy::to(&url).await;
    let a = node_with_lease(&proxy.url(), "a", Duration::from_millis(1500)).await;
    let b = node(&url, "b").await;
    let created = a.rooms.create(CreateRoom::default()).await.unwrap();
    let mut host = join(&a.rooms, &created.share, "Host", Some(created.host_key)).await;
    assert!(acked(
        &command(&mut host, chat(2, "before the cut")).await,
        2
    ));

    // The partition: a cannot renew its lease; it stops acting as the owner before the lease
    // can lapse in Redis, letting its clients go to resume elsewhere.
    proxy.cut();
    let t = Instant::now();
    queue_ends(&mut host).await;
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    // Its copy goes once its last snapshot attempt gives up (Redis is unreachable).
    while a.rooms.count().await.unwrap() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the cut-off copy lingers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Once the lease has lapsed, b takes the room with everything acknowledged on a.
    let t = Instant::now();
    let mut guest = loop {
        let (out, rx) = wagu_engine::actor::outbound::Outbound::channel(256);
        match b.rooms.join(newcomer(&created.share, "Guest"), out).await {
            Ok(_) => break rx,
            Err(e)
                if e.code() == ErrorCode::Unavailable && t.elapsed() < Duration::from_secs(5) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("b could not take the room: {e}"),
        }
    };
    let ServerMessage::Welcome { room, .. } = next(&mut guest).await else {
        panic!("welcome")
    };
    assert_eq!(
        room.chat.last().map(|m| m.text.as_str()),
        Some("before the cut")
    );
    b.rooms.shutdown().await;
}
