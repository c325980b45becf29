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

/// The tests of this file share the test bed's node index (placement reads it): one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The lease every test node holds: short, so takeovers happen within the test.
const LEASE_MS: u64 = 1000;

/// The test bed's Redis and NATS: a cluster needs both (a test fails when one is promised
/// without the other).
fn services(test: &str) -> Option<(String, String)> {
    let redis = testbed::service(testbed::REDIS_URL, test)?;
    Some((redis, testbed::required(testbed::NATS_URL)))
}

async fn cluster_node(
    root: &std::path::Path,
    (redis, nats): &(String, String),
    name: &str,
) -> Wagu {
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
            ("WAGU_CLUSTER__BUS_URL", nats),
            // Pipelined bursts of chat below.
            ("WAGU_RATE__CHAT_PER_SEC", "10000"),
        ],
    )
    .await
}

/// What a test with its own nodes holds until it ends: this file's one-at-a-time lock, the
/// nodes' directory, and the test bed's Redis and NATS URLs.
struct Held {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    _dir: tempfile::TempDir,
    bed: (String, String),
}

/// Two fresh nodes of one cluster.
async fn two_nodes() -> Option<(Held, Wagu, Wagu)> {
    let bed = services("cluster_nodes")?;
    let serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let a = cluster_node(&dir.path().join("a"), &bed, "a").await;
    let b = cluster_node(&dir.path().join("b"), &bed, "b").await;
    let held = Held {
        _serial: serial,
        _dir: dir,
        bed,
    };
    Some((held, a, b))
}

/// A room created through node `a`, and its host joined there.
async fn room_with_host_on(a: &Wagu, title: &str) -> (Room, Client) {
    let room = create_room(a.addr, &json!({ "title": title }).to_string()).await;
    let mut host = Client::new(a.addr).await;
    host.join(&room.share, "Host", Some(&room.host_key)).await;
    (room, host)
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
    resume_session_on(c, addr, json!({"type": "join", "share": share})).await
}

/// [`resume_on`] for any session: `join` is the join command without name and resume (a room's
/// `join` with its share, a stream's `join_stream` with its id).
async fn resume_session_on(c: &mut Client, addr: SocketAddr, join: serde_json::Value) -> Duration {
    let t = Instant::now();
    loop {
        let mut again = Client::new(addr).await;
        let r = again.call(json!({"type": "hello", "protocol": 1})).await;
        assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
        let mut j = join.clone();
        j["name"] = "Again".into();
        j["resume"] = json!({"participant":c.me,"token":c.token,"last_seq":c.last_seq});
        let r = again.call(j).await;
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
    let Some((_held, a, b)) = two_nodes().await else {
        return;
    };
    let (room, mut host) = room_with_host_on(&a, "Zombie test").await;
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
    let Some((_held, mut a, b)) = two_nodes().await else {
        return;
    };
    let (room, mut host) = room_with_host_on(&a, "Drain test").await;
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
    let Some((_held, a, b)) = two_nodes().await else {
        return;
    };
    let (room, mut host) = room_with_host_on(&a, "Kill test").await;
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
    let Some(bed) = services("cluster_nodes") else {
        return;
    };
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut config = test_config();
    config.ephemeral.backend = wagu_gateway::config::EphemeralBackend::Redis;
    config.ephemeral.redis_url = Some(bed.0);
    config.cluster.bus_url = Some(bed.1);
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
        "[ephemeral]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:1/\"\n[cluster]\nenabled = true\nbus_url = \"nats://127.0.0.1:1\"\nnode_id = \"a b\"\n",
    )
    .unwrap();
    let e = wagu_gateway::Config::load(Some(&file), Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cluster.node_id"), "{e}");
}

/// The node (by its id) that owns room `room_id` now, from the owner record in Redis.
async fn owner_of(redis: &str, room_id: &str) -> Option<String> {
    owner_of_kind(redis, "room", room_id).await
}

async fn owner_of_kind(redis: &str, kind: &str, id: &str) -> Option<String> {
    let client = redis::Client::open(redis).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HGET")
        .arg(format!("wagu:{{{kind}:{id}}}:owner"))
        .arg("node")
        .query_async(&mut c)
        .await
        .unwrap()
}

/// A session of the scenario: a room or a stream.
enum Session {
    Room(Room),
    Stream(String),
}

impl Session {
    /// The join command (without name and resume).
    fn join(&self) -> serde_json::Value {
        match self {
            Session::Room(r) => json!({"type": "join", "share": r.share}),
            Session::Stream(id) => json!({"type": "join_stream", "stream": id}),
        }
    }

    /// Chat texts as a fresh joiner on `addr` sees them.
    async fn chat_texts(&self, addr: SocketAddr) -> Vec<String> {
        match self {
            Session::Room(r) => chat_texts(addr, &r.share).await,
            Session::Stream(id) => {
                let mut c = Client::new(addr).await;
                assert!(acked(
                    &c.call(json!({"type": "hello", "protocol": 1})).await
                ));
                let r = c
                    .call(json!({"type":"join_stream","stream": id, "name": "Auditor"}))
                    .await;
                assert!(acked(&r), "{r:?}");
                let ServerMessage::StreamWelcome { stream, .. } = c.seen.remove(0) else {
                    panic!("stream_welcome first")
                };
                stream.chat.into_iter().map(|m| m.text).collect()
            }
        }
    }
}

/// One client's view: every event it saw, by seq, and the chats acknowledged to it.
struct Log {
    client: Client,
    gateway: usize,
    events: BTreeMap<u64, String>,
    acked: Vec<String>,
}

impl Log {
    fn record(&mut self, m: &ServerMessage) {
        if let Some(seq) = m.seq() {
            let kind = serde_json::to_value(m).unwrap()["type"]
                .as_str()
                .unwrap_or("")
                .to_string();
            // Lossy frames carry the current seq without advancing it (docs/PROTOCOL.md).
            if matches!(
                kind.as_str(),
                "presence" | "viewers" | "speaking" | "media_state"
            ) {
                return;
            }
            if let Some(prev) = self.events.insert(seq.0, kind.clone()) {
                // A replay may repeat what was seen; the same seq must be the same event.
                assert_eq!(prev, kind, "seq {} seen as two different events", seq.0);
            }
        }
    }
}

#[tokio::test]
async fn three_nodes_serve_shared_rooms_through_any_gateway_and_survive_kill_9_of_an_owner() {
    shared_rooms_survive_losing_an_owner(Stop::Kill9).await;
}

#[tokio::test]
async fn three_nodes_serve_shared_rooms_through_any_gateway_and_survive_draining_an_owner() {
    shared_rooms_survive_losing_an_owner(Stop::Drain).await;
}

#[derive(Clone, Copy, Debug)]
enum Stop {
    Kill9,
    Drain,
}

async fn shared_rooms_survive_losing_an_owner(stop: Stop) {
    let Some(bed) = services("cluster_nodes") else {
        return;
    };
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(Some(cluster_node(&dir.path().join(name), &bed, name).await));
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.as_ref().unwrap().addr).collect();
    let ids: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().node_id())
        .collect();

    // Two rooms, created through different gateways (placement picks their owners); three
    // clients in each, one per gateway.
    let mut rooms = Vec::new();
    for r in 0..2 {
        let room = create_room(addrs[r], r#"{"title":"Shared"}"#).await;
        let mut logs = Vec::new();
        for (g, addr) in addrs.iter().enumerate() {
            let mut client = Client::new(*addr).await;
            let key = (g == 0).then_some(room.host_key.as_str());
            client.join(&room.share, &format!("P{g}"), key).await;
            logs.push(Log {
                client,
                gateway: g,
                events: BTreeMap::new(),
                acked: Vec::new(),
            });
        }
        rooms.push((Session::Room(room), logs));
    }
    // And a live stream, created through the third gateway: the streamer there, a viewer on
    // each of the others.
    let (status, text) = http(
        addrs[2],
        "POST",
        "/api/streams",
        &json!({"title": "Shared stream", "place_id": "kakao:1", "menu": []}).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let stream_id = v["stream_id"].as_str().unwrap().to_string();
    let key = v["streamer_key"].as_str().unwrap().to_string();
    let mut logs = Vec::new();
    for g in [2usize, 0, 1] {
        let mut client = Client::new(addrs[g]).await;
        assert!(acked(
            &client.call(json!({"type": "hello", "protocol": 1})).await
        ));
        let mut j = json!({"type":"join_stream","stream": stream_id, "name": format!("S{g}")});
        if g == 2 {
            j["streamer_key"] = key.as_str().into();
        }
        let r = client.call(j).await;
        assert!(acked(&r), "{r:?}");
        let ServerMessage::StreamWelcome {
            you,
            resume_token,
            stream,
            ..
        } = client.seen.remove(0)
        else {
            panic!("stream_welcome first")
        };
        client.me = you.0;
        client.token = resume_token.0.clone();
        client.last_seq = stream.seq.0;
        client.seen.clear();
        logs.push(Log {
            client,
            gateway: g,
            events: BTreeMap::new(),
            acked: Vec::new(),
        });
    }
    rooms.push((Session::Stream(stream_id), logs));
    // Everyone chats through their own gateway; broadcasts reach every gateway.
    for round in 0..5 {
        for (_, logs) in rooms.iter_mut() {
            for log in logs.iter_mut() {
                let text = format!("g{} r{round}", log.gateway);
                let r = log.client.call(json!({"type":"chat","text":text})).await;
                assert!(acked(&r), "{r:?}");
                log.acked.push(text);
                for m in std::mem::take(&mut log.client.seen) {
                    log.record(&m);
                }
                log.record(&r);
            }
        }
    }

    // Stop the node that owns the first room.
    let Session::Room(first) = &rooms[0].0 else {
        unreachable!()
    };
    let owner = owner_of(&bed.0, &first.room_id).await.expect("an owner");
    let victim = ids
        .iter()
        .position(|i| *i == owner)
        .expect("owner is one of ours");
    let t = Instant::now();
    let mut gone = nodes[victim].take().unwrap();
    match stop {
        Stop::Kill9 => gone.kill_9(),
        Stop::Drain => {
            gone.signal(Signal::TERM);
            let status = gone.exited(Duration::from_secs(30)).await;
            assert!(status.success(), "{status}: {}", gone.log());
        }
    }
    let survivors: Vec<usize> = (0..3).filter(|g| *g != victim).collect();

    // Every client resumes: through its own gateway if that one lives, else another.
    let mut took = Vec::new();
    for (room, logs) in rooms.iter_mut() {
        for log in logs.iter_mut() {
            // Clients of the dead gateway lost their socket; the others are told to resume
            // once their gateway sees the owner's lease lapse (or keep going if it did not own
            // their room).
            let via = if log.gateway == victim {
                addrs[survivors[log.gateway % survivors.len()]]
            } else {
                addrs[log.gateway]
            };
            let r = log
                .client
                .try_call(
                    json!({"type":"chat","text":format!("g{} after", log.gateway)}),
                    Duration::from_secs(10),
                )
                .await;
            if r.as_ref().is_some_and(acked) {
                log.acked.push(format!("g{} after", log.gateway));
                for m in std::mem::take(&mut log.client.seen) {
                    log.record(&m);
                }
                continue;
            }
            // What the old socket delivered before it closed counts (its seq is the resume's).
            for m in std::mem::take(&mut log.client.seen) {
                log.record(&m);
            }
            took.push(resume_session_on(&mut log.client, via, room.join()).await);
            for m in std::mem::take(&mut log.client.seen) {
                log.record(&m);
            }
            let text = format!("g{} after", log.gateway);
            let r = log.client.call(json!({"type":"chat","text":text})).await;
            assert!(acked(&r), "{r:?}");
            log.acked.push(text);
            for m in std::mem::take(&mut log.client.seen) {
                log.record(&m);
            }
        }
    }
    eprintln!(
        "owner {owner} stopped ({stop:?}); first ack again after {:?} (all resumes: {took:?})",
        t.elapsed()
    );

    // Each room as a fresh client sees it: every acknowledged chat once, and each client's
    // events without gaps from its join to its last ack.
    for (room, logs) in rooms.iter_mut() {
        let texts = room.chat_texts(addrs[survivors[0]]).await;
        for log in logs.iter_mut() {
            // Whatever arrived after the last ack (other clients' chats) counts too.
            while let Some(m) = log.client.try_recv(Duration::from_millis(200)).await {
                log.record(&m);
            }
            for a in &log.acked {
                assert_eq!(
                    texts.iter().filter(|t| *t == a).count(),
                    1,
                    "acknowledged {a:?} lost or duplicated: {texts:?}"
                );
            }
            let seqs: Vec<u64> = log.events.keys().copied().collect();
            let (first, last) = (seqs[0], *seqs.last().unwrap());
            assert_eq!(
                seqs.len() as u64,
                last - first + 1,
                "client on gateway {} has gaps: {seqs:?}",
                log.gateway
            );
        }
    }
}

#[tokio::test]
async fn every_node_lists_the_same_live_streams_with_geo_search() {
    let Some((held, a, b)) = two_nodes().await else {
        return;
    };
    let bed = &held.bed;
    let tag = format!("t{:08x}", rand_u64() as u32);
    let mut ids = Vec::new();
    for (node, lat) in [(a.addr, 37.51), (b.addr, 35.10)] {
        let body = json!({"title": tag, "place_id": "kakao:1", "location": {"lat": lat, "lng": 127.0}, "menu": []});
        let (status, text) = http(node, "POST", "/api/streams", &body.to_string()).await;
        assert_eq!(status, 201, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        ids.push(v["stream_id"].as_str().unwrap().to_string());
    }
    let mine = |body: &str| -> Vec<String> {
        let v: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
        let mut out: Vec<String> = v
            .iter()
            .filter(|s| s["title"] == tag.as_str())
            .map(|s| s["stream_id"].as_str().unwrap().to_string())
            .collect();
        out.sort();
        out
    };
    let mut want = ids.clone();
    want.sort();
    // Nodes publish every second: within a few, both list both.
    let t = Instant::now();
    loop {
        let (_, on_a) = http(a.addr, "GET", "/api/streams?limit=200", "").await;
        let (_, on_b) = http(b.addr, "GET", "/api/streams?limit=200", "").await;
        if mine(&on_a) == want && mine(&on_b) == want {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "a: {on_a}\nb: {on_b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Near Seoul: only the first, on either node.
    for node in [a.addr, b.addr] {
        let (status, body) =
            http(node, "GET", "/api/streams?near=37.5,127.0&radius_km=20", "").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(mine(&body), [ids[0].clone()], "{body}");
    }
    // A node that dies: its streams leave every list once their entries expire; the others stay.
    let mut on_a = Vec::new();
    for id in &ids {
        if owner_of_kind(&bed.0, "stream", id).await.as_deref() == Some(a.node_id().as_str()) {
            on_a.push(id.clone());
        }
    }
    let kept: Vec<String> = want.iter().filter(|i| !on_a.contains(i)).cloned().collect();
    a.kill_9();
    let t = Instant::now();
    loop {
        let (_, on_b) = http(b.addr, "GET", "/api/streams?limit=200", "").await;
        if mine(&on_b) == kept {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "want {kept:?}: {on_b}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn wagu_drain_drains_the_local_node_and_returns_once_it_stopped() {
    let Some((_held, mut a, b)) = two_nodes().await else {
        return;
    };
    let (room, mut host) = room_with_host_on(&a, "wagu drain").await;
    // The room may have been placed on b; drain whichever node owns it.
    assert!(acked(
        &host.call(json!({"type":"chat","text":"before"})).await
    ));
    let addr = a.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wagu"))
            .env_clear()
            .args(["--listen", &addr, "drain"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("draining") && stdout.contains("stopped"),
        "{stdout}"
    );
    assert!(a.exited(Duration::from_secs(5)).await.success());
    assert_eq!(host.close_code().await, Some(wagu_proto::close::RESUME));
    resume_on(&mut host, b.addr, &room.share).await;
    assert_eq!(chat_texts(b.addr, &room.share).await, ["before"]);
}

#[tokio::test]
async fn participants_of_a_gateway_node_that_dies_become_away_on_the_owner() {
    let Some((held, a, b)) = two_nodes().await else {
        return;
    };
    let bed = &held.bed;
    let room = create_room(a.addr, r#"{"title":"Ghosts"}"#).await;
    let owner = owner_of(&bed.0, &room.room_id).await.expect("an owner");
    let (owner_node, gateway_node) = if owner == a.node_id() { (a, b) } else { (b, a) };
    // One client on the owner, one through the other node.
    let mut local = Client::new(owner_node.addr).await;
    local.join(&room.share, "Local", Some(&room.host_key)).await;
    let mut remote = Client::new(gateway_node.addr).await;
    remote.join(&room.share, "Remote", None).await;
    let remote_id = remote.me;
    gateway_node.kill_9();
    // The owner hears nothing from the dead gateway; once its lease lapses, the remote
    // participant is away (resumable), as after any dropped socket.
    let t = Instant::now();
    let away = local
        .wait_for(|m| {
            matches!(m, ServerMessage::ParticipantAway { participant, .. } if participant.0 == remote_id)
        })
        .await;
    assert!(matches!(away, ServerMessage::ParticipantAway { .. }));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(remote);
}
