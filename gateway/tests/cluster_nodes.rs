//! Real `wagu` processes as nodes of one cluster over the test bed's Redis: a node paused
//! (SIGSTOP) past its lease is replaced and, woken, fenced off; SIGTERM drains a node's rooms to
//! another at once; `kill -9` of an owner loses nothing acknowledged. Clients use real sockets.

mod common;

use common::process::Wagu;
use common::*;
use rustix::process::Signal;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use wagu_proto::ServerMessage;
use wagu_storage::testbed;

/// The lease every test node holds: short, so takeovers happen within the test.
const LEASE_MS: u64 = 1000;

async fn cluster_node(root: &std::path::Path, redis: &str, name: &str) -> Wagu {
    let id = format!("{name}-{:08x}", rand_u64() as u32);
    let lease = LEASE_MS.to_string();
    std::fs::create_dir_all(root).unwrap();
    Wagu::spawn(
        root,
        &[
            ("WAGU_EPHEMERAL__BACKEND", "redis"),
            ("WAGU_EPHEMERAL__REDIS_URL", redis),
            ("WAGU_CLUSTER__ENABLED", "true"),
            ("WAGU_CLUSTER__NODE_ID", &id),
            ("WAGU_CLUSTER__LEASE_TTL_MS", &lease),
            // Pipelined bursts of chat below.
            ("WAGU_RATE__CHAT_PER_SEC", "10000"),
        ],
    )
    .await
}

/// Chat texts of the room as a fresh joiner on `addr` sees them.
async fn chat_texts(addr: SocketAddr, share: &str) -> Vec<String> {
    let mut c = Client::new(addr).await;
    let ServerMessage::Welcome { room, .. } = c.join(share, "Auditor", None).await else {
        unreachable!()
    };
    room.chat.into_iter().map(|m| m.text).collect()
}

/// Resumes `c`'s participant on `addr` (a new socket); retries while the room is still moving
/// (`unavailable`), as a client does. Returns how long until the resume was acknowledged.
async fn resume_on(c: &mut Client, addr: SocketAddr, share: &str) -> Duration {
    let t = Instant::now();
    loop {
        let mut again = Client::new(addr).await;
        let r = again.call(json!({"type": "hello", "protocol": 1})).await;
        assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
        let r = again
            .call(json!({"type":"join","share":share,"name":"Host","resume":{"participant":c.me,"token":c.token,"last_seq":c.last_seq}}))
            .await;
        match r {
            ServerMessage::Ack { .. } => {
                assert!(
                    matches!(again.seen.first(), Some(ServerMessage::Resumed { .. })),
                    "{:?}",
                    again.seen.first()
                );
                again.me = c.me;
                again.token = c.token.clone();
                *c = again;
                return t.elapsed();
            }
            ServerMessage::Error { code, .. }
                if code == wagu_proto::ErrorCode::Unavailable
                    && t.elapsed() < Duration::from_secs(15) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("resume refused: {other:?}"),
        }
    }
}

fn acked(r: &ServerMessage) -> bool {
    matches!(r, ServerMessage::Ack { .. })
}

#[tokio::test]
async fn a_node_paused_past_its_lease_is_replaced_and_fenced_off_when_it_wakes() {
    let Some(redis) = testbed::service(testbed::REDIS_URL, "cluster_nodes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = cluster_node(&dir.path().join("a"), &redis, "a").await;
    let b = cluster_node(&dir.path().join("b"), &redis, "b").await;
    let room = create_room(a.addr, r#"{"title":"Zombie test"}"#).await;
    let mut host = Client::new(a.addr).await;
    host.join(&room.share, "Host", Some(&room.host_key)).await;
    for i in 0..3 {
        assert!(acked(
            &host
                .call(json!({"type":"chat","text":format!("before {i}")}))
                .await
        ));
    }

    // A freezes (a long GC pause, a stuck VM) past its lease: B may take the room over.
    a.signal(Signal::STOP);
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 500)).await;
    let mut friend = Client::new(b.addr).await;
    let t = Instant::now();
    loop {
        let r = friend.call(json!({"type": "hello", "protocol": 1})).await;
        assert!(acked(&r));
        let r = friend
            .call(json!({"type":"join","share":room.share,"name":"Friend"}))
            .await;
        if acked(&r) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "B never took the room: {r:?}"
        );
        friend = Client::new(b.addr).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(acked(
        &friend.call(json!({"type":"chat","text":"on b"})).await
    ));

    // A wakes: whatever it still tries is refused, and it lets its client go to resume.
    a.signal(Signal::CONT);
    let id = host
        .send(json!({"type":"chat","text":"from the zombie"}))
        .await;
    let mut zombie_acked = false;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), host.ws_next()).await {
            Ok(Some(Frame::Msg(ServerMessage::Ack { id: r, .. }))) if r.0 == id => {
                zombie_acked = true
            }
            Ok(Some(Frame::Msg(_))) => {}
            Ok(Some(Frame::Close(code))) => break code,
            Ok(None) => break None,
            Err(_) => panic!("the woken node kept its client: {}", a.log()),
        }
    };
    assert!(!zombie_acked, "a fenced-off node acknowledged a write");
    assert_eq!(code, Some(wagu_proto::close::RESUME));

    // The host resumes on B: everything acknowledged anywhere, nothing of the zombie.
    resume_on(&mut host, b.addr, &room.share).await;
    assert_eq!(
        chat_texts(b.addr, &room.share).await,
        ["before 0", "before 1", "before 2", "on b"]
    );
    assert!(acked(
        &host.call(json!({"type":"chat","text":"back"})).await
    ));
}

#[tokio::test]
async fn sigterm_hands_a_nodes_rooms_to_another_node_at_once() {
    let Some(redis) = testbed::service(testbed::REDIS_URL, "cluster_nodes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut a = cluster_node(&dir.path().join("a"), &redis, "a").await;
    let b = cluster_node(&dir.path().join("b"), &redis, "b").await;
    let room = create_room(a.addr, r#"{"title":"Drain test"}"#).await;
    let mut host = Client::new(a.addr).await;
    host.join(&room.share, "Host", Some(&room.host_key)).await;
    assert!(acked(
        &host
            .call(json!({"type":"add_candidate","place_id":"p1","name":"Sundae","lat":37.0,"lng":127.0}))
            .await
    ));
    assert!(acked(
        &host.call(json!({"type":"vote","choices":["p1"]})).await
    ));
    assert!(acked(
        &host
            .call(json!({"type":"chat","text":"before the deploy"}))
            .await
    ));

    a.signal(Signal::TERM);
    assert_eq!(host.close_code().await, Some(wagu_proto::close::RESUME));
    // B takes the room without waiting for A's lease to lapse: A released it.
    let took = resume_on(&mut host, b.addr, &room.share).await;
    assert!(took < Duration::from_millis(LEASE_MS), "{took:?}");
    let status = a.exited(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}: {}", a.log());
    assert_eq!(chat_texts(b.addr, &room.share).await, ["before the deploy"]);
    assert!(acked(
        &host.call(json!({"type":"chat","text":"after"})).await
    ));
}

#[tokio::test]
async fn kill_9_of_an_owner_loses_no_acknowledged_event() {
    let Some(redis) = testbed::service(testbed::REDIS_URL, "cluster_nodes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = cluster_node(&dir.path().join("a"), &redis, "a").await;
    let b = cluster_node(&dir.path().join("b"), &redis, "b").await;
    let room = create_room(a.addr, r#"{"title":"Kill test"}"#).await;
    let mut host = Client::new(a.addr).await;
    host.join(&room.share, "Host", Some(&room.host_key)).await;
    // Pipelined chats: the acks that came back before the kill are what must survive.
    let mut sent = BTreeMap::new();
    for i in 0..200 {
        let text = format!("m{i}");
        let id = host.send(json!({"type":"chat","text":text})).await;
        sent.insert(id, text);
    }
    let mut acks = Vec::new();
    while acks.len() < 50 {
        if let ServerMessage::Ack { id, .. } = host.recv().await {
            acks.push(sent[&id.0].clone());
        }
    }
    a.kill_9();
    // Acks already on their way still count.
    while let Some(Frame::Msg(m)) = host.ws_next().await {
        if let ServerMessage::Ack { id, .. } = m {
            acks.push(sent[&id.0].clone());
        }
    }
    let took = resume_on(&mut host, b.addr, &room.share).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    let kept = chat_texts(b.addr, &room.share).await;
    for text in &acks {
        assert!(
            kept.contains(text),
            "acknowledged {text} lost; room has {kept:?}"
        );
    }
}

#[tokio::test]
async fn readyz_answers_503_while_draining_and_healthz_stays_200() {
    let Some(redis) = testbed::service(testbed::REDIS_URL, "cluster_nodes") else {
        return;
    };
    let mut config = test_config();
    config.ephemeral.backend = wagu_gateway::config::EphemeralBackend::Redis;
    config.ephemeral.redis_url = Some(redis);
    config.cluster.enabled = true;
    config.cluster.node_id = Some(format!("ready-{:08x}", rand_u64() as u32));
    let server = start(config).await;
    let (status, body) = http(server.addr, "GET", "/readyz", "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"cluster\""),
        "the lease is a readiness check: {body}"
    );

    server.app_state.draining.start();
    let (status, body) = http(server.addr, "GET", "/readyz", "").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    let (status, _) = http(server.addr, "GET", "/healthz", "").await;
    assert_eq!(
        status, 200,
        "liveness never depends on the drain or on Redis"
    );
}

#[test]
fn a_cluster_needs_redis_as_its_store_and_a_valid_node_id() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wagu.toml");
    std::fs::write(&file, "[cluster]\nenabled = true\n").unwrap();
    let e = wagu_gateway::Config::load(Some(&file), Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cluster.enabled") && e.contains("redis"), "{e}");
    std::fs::write(
        &file,
        "[ephemeral]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:1/\"\n[cluster]\nenabled = true\nnode_id = \"a b\"\n",
    )
    .unwrap();
    let e = wagu_gateway::Config::load(Some(&file), Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cluster.node_id"), "{e}");
}
