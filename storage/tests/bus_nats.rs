//! The bus between nodes on a real NATS server: the test bed's (`WAGU_TEST_NATS_URL`) for
//! messaging between several clients ("nodes"), and a nats-server of the test's own
//! (`WAGU_TEST_NATS_SERVER`, the binary) that it kills with SIGKILL and starts again to check
//! that clients reconnect and their subscriptions come back.

use bytes::Bytes;
use futures_util::StreamExt;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wagu_storage::bus::{Bus, BusError, Message, Subscription, subject_token};
use wagu_storage::testbed;

const NATS_URL: &str = "WAGU_TEST_NATS_URL";
const NATS_SERVER: &str = "WAGU_TEST_NATS_SERVER";
const WAIT: Duration = Duration::from_secs(3);

/// A subject prefix no other test run shares (the test bed's server is shared).
fn unique() -> String {
    format!("t{:012x}", rand::random::<u64>() >> 16)
}

async fn node(url: &str, name: &str) -> Bus {
    let bus = Bus::connect(url, name)
        .await
        .expect("the NATS server answers");
    assert_eq!(bus.backend(), "nats");
    bus
}

async fn next(s: &mut Subscription) -> Message {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("a message arrives in time")
        .expect("the subscription is open")
}

async fn nothing(s: &mut Subscription) {
    let got = tokio::time::timeout(Duration::from_millis(100), s.next()).await;
    assert!(got.is_err(), "unexpected message {got:?}");
}

/// Subscriptions reach the server asynchronously: a flush on the subscriber's client plus a
/// ping round trip make sure the server knows them before anyone publishes.
async fn settled(bus: &Bus) {
    bus.flush().await.unwrap();
    bus.ping().await.unwrap();
}

#[tokio::test]
async fn a_message_published_on_one_node_reaches_subscribers_on_two_others() {
    let Some(url) = testbed::service(NATS_URL, "bus_nats") else {
        return;
    };
    let p = unique();
    let (a, b, c) = (
        node(&url, "a").await,
        node(&url, "b").await,
        node(&url, "c").await,
    );
    let subject = format!("{p}.room.r1.events");
    let mut sb = b.subscribe(&subject).await.unwrap();
    let mut sc = c.subscribe(&subject).await.unwrap();
    let mut other = c.subscribe(&format!("{p}.room.r2.events")).await.unwrap();
    settled(&b).await;
    settled(&c).await;
    for i in 0..100u32 {
        a.publish(&subject, Bytes::from(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
    }
    a.flush().await.unwrap();
    for s in [&mut sb, &mut sc] {
        for i in 0..100u32 {
            let m = next(s).await;
            assert_eq!(m.subject, subject);
            assert_eq!(&m.payload[..], &i.to_be_bytes(), "in order, none lost");
            assert_eq!(m.reply, None);
        }
    }
    nothing(&mut other).await;
}

#[tokio::test]
async fn wildcards_match_one_token_or_the_rest() {
    let Some(url) = testbed::service(NATS_URL, "bus_nats") else {
        return;
    };
    let p = unique();
    let (a, b) = (node(&url, "a").await, node(&url, "b").await);
    let mut star = b.subscribe(&format!("{p}.*.events")).await.unwrap();
    let mut rest = b.subscribe(&format!("{p}.>")).await.unwrap();
    settled(&b).await;
    a.publish(&format!("{p}.r1.events"), Bytes::new())
        .await
        .unwrap();
    a.publish(&format!("{p}.r1.events.x"), Bytes::new())
        .await
        .unwrap();
    a.flush().await.unwrap();
    assert_eq!(next(&mut star).await.subject, format!("{p}.r1.events"));
    nothing(&mut star).await;
    assert_eq!(next(&mut rest).await.subject, format!("{p}.r1.events"));
    assert_eq!(next(&mut rest).await.subject, format!("{p}.r1.events.x"));
}

#[tokio::test]
async fn a_queue_group_delivers_each_message_to_one_member_only() {
    let Some(url) = testbed::service(NATS_URL, "bus_nats") else {
        return;
    };
    let p = unique();
    let subject = format!("{p}.work");
    let publisher = node(&url, "pub").await;
    let mut nodes = Vec::new();
    let mut members = Vec::new();
    for i in 0..3 {
        let n = node(&url, &format!("m{i}")).await;
        members.push(n.queue_subscribe(&subject, "owners").await.unwrap());
        settled(&n).await;
        nodes.push(n);
    }
    let mut plain = nodes[0].subscribe(&subject).await.unwrap();
    settled(&nodes[0]).await;
    for i in 0..60u8 {
        publisher
            .publish(&subject, Bytes::from(vec![i]))
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    for i in 0..60u8 {
        assert_eq!(
            next(&mut plain).await.payload[0],
            i,
            "a plain subscriber sees all"
        );
    }
    let mut got = Vec::new();
    for m in &mut members {
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(200), m.next()).await {
            got.push(msg.payload[0]);
        }
    }
    got.sort();
    assert_eq!(
        got,
        (0..60).collect::<Vec<u8>>(),
        "each message exactly once in the group"
    );
}

#[tokio::test]
async fn a_request_gets_its_reply_from_another_node() {
    let Some(url) = testbed::service(NATS_URL, "bus_nats") else {
        return;
    };
    let p = unique();
    let (a, owner) = (node(&url, "a").await, node(&url, "owner").await);
    let subject = format!("{p}.owner.join");
    let mut service = owner.subscribe(&subject).await.unwrap();
    settled(&owner).await;
    let responder = owner.clone();
    let task = tokio::spawn(async move {
        for _ in 0..2 {
            let m = next(&mut service).await;
            let mut answer = b"re:".to_vec();
            answer.extend_from_slice(&m.payload);
            let reply = m.reply.expect("a request carries its reply subject");
            responder
                .respond(&reply, Bytes::from(answer))
                .await
                .unwrap();
        }
    });
    for x in [&b"x"[..], b"y"] {
        let reply = a
            .request(&subject, Bytes::copy_from_slice(x), WAIT)
            .await
            .unwrap();
        assert_eq!(&reply[3..], x);
        assert_eq!(&reply[..3], b"re:");
    }
    task.await.unwrap();
}

#[tokio::test]
async fn a_request_to_a_subject_nobody_subscribes_to_fails_with_no_responders_in_under_100_ms() {
    let Some(url) = testbed::service(NATS_URL, "bus_nats") else {
        return;
    };
    let p = unique();
    let (a, owner) = (node(&url, "a").await, node(&url, "owner").await);
    let subject = format!("{p}.owner.join");
    // Warm the client's reply inbox so the figure is the round trip, not the first subscribe.
    let _ = a.request(&format!("{p}.warm"), Bytes::new(), WAIT).await;
    let started = Instant::now();
    let r = a
        .request(&subject, Bytes::new(), Duration::from_secs(10))
        .await;
    let took = started.elapsed();
    assert!(matches!(r, Err(BusError::NoResponders)), "{r:?}");
    assert!(took < Duration::from_millis(100), "took {took:?}");

    // An owner that goes away (its subscription dropped, as when its node dies) is no longer
    // interest: requests fail fast again instead of waiting for the timeout.
    let service = owner.subscribe(&subject).await.unwrap();
    settled(&owner).await;
    drop(service);
    owner.flush().await.unwrap();
    owner.ping().await.unwrap();
    let started = Instant::now();
    let r = a
        .request(&subject, Bytes::new(), Duration::from_secs(10))
        .await;
    let took = started.elapsed();
    assert!(matches!(r, Err(BusError::NoResponders)), "{r:?}");
    assert!(took < Duration::from_millis(100), "took {took:?}");
}

#[tokio::test]
async fn a_request_nobody_answers_times_out_with_a_typed_error() {
    let Some(url) = testbed::service(NATS_URL, "bus_nats") else {
        return;
    };
    let p = unique();
    let (a, silent) = (node(&url, "a").await, node(&url, "silent").await);
    let subject = format!("{p}.silent");
    let _sub = silent.subscribe(&subject).await.unwrap();
    settled(&silent).await;
    let started = Instant::now();
    let r = a
        .request(&subject, Bytes::new(), Duration::from_millis(200))
        .await;
    assert!(matches!(r, Err(BusError::TimedOut)), "{r:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "took {took:?}"
    );
}

#[tokio::test]
async fn bad_subjects_tokens_and_groups_are_refused_with_a_typed_error() {
    let Some(url) = testbed::service(NATS_URL, "bus_nats") else {
        return;
    };
    let a = node(&url, "a").await;
    let invalid = |r: Result<(), BusError>| matches!(r, Err(BusError::InvalidSubject(_)));
    assert!(invalid(a.publish("wagu.*", Bytes::new()).await));
    assert!(invalid(a.publish("wagu.>", Bytes::new()).await));
    assert!(invalid(a.publish("wagu..x", Bytes::new()).await));
    assert!(invalid(a.publish("wagu.a b", Bytes::new()).await));
    assert!(invalid(a.publish("", Bytes::new()).await));
    assert!(invalid(a.subscribe("wagu.>.x").await.map(drop)));
    assert!(invalid(a.subscribe("wagu.x*").await.map(drop)));
    assert!(invalid(
        a.queue_subscribe("wagu.x", "a group").await.map(drop)
    ));
    assert!(invalid(a.respond("wagu.*", Bytes::new()).await));
    assert!(matches!(
        a.request("wagu.\n", Bytes::new(), WAIT).await,
        Err(BusError::InvalidSubject(_))
    ));
    for bad in ["r.1", "*", ">", "a b", ""] {
        assert!(
            matches!(subject_token(bad), Err(BusError::InvalidSubject(_))),
            "{bad:?}"
        );
    }
    assert_eq!(subject_token("room-1_x").unwrap(), "room-1_x");
    // The client still works after refusing them.
    a.ping().await.unwrap();
}

#[tokio::test]
async fn connecting_to_a_port_with_no_server_fails_with_a_typed_error() {
    let Some(_) = testbed::service(NATS_URL, "bus_nats") else {
        return;
    };
    let port = free_port();
    let started = Instant::now();
    let r = Bus::connect(&format!("nats://127.0.0.1:{port}"), "lonely").await;
    assert!(matches!(r, Err(BusError::Connect { .. })), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_comma_separated_url_list_connects_to_the_server_that_answers() {
    let Some(url) = testbed::service(NATS_URL, "bus_nats") else {
        return;
    };
    let dead = format!("nats://127.0.0.1:{}", free_port());
    let bus = node(&format!("{dead}, {url}"), "listed").await;
    bus.ping().await.unwrap();
}

// ------------------------------------------------------------ own server --

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A nats-server child of this test, killed (by its pid) when dropped.
struct Server {
    child: Child,
}

impl Server {
    fn start(bin: &str, port: u16) -> Server {
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let server = Server { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// SIGKILL, as `kill -9`.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn after_nats_server_is_killed_and_started_again_clients_resume_and_subscriptions_come_back()
{
    let Some(_) = testbed::service(NATS_URL, "bus_nats") else {
        return;
    };
    let bin = testbed::required(NATS_SERVER);
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let server = Server::start(&bin, port);
    let (a, b) = (node(&url, "a").await, node(&url, "b").await);
    let mut sub = b.subscribe("wagu.room.r1.events").await.unwrap();
    let mut group = b.queue_subscribe("wagu.owner.>", "owners").await.unwrap();
    settled(&b).await;
    a.publish("wagu.room.r1.events", Bytes::from_static(b"before"))
        .await
        .unwrap();
    assert_eq!(&next(&mut sub).await.payload[..], b"before");

    server.kill();
    until(
        "the publisher notices the outage",
        Duration::from_secs(5),
        || !a.is_connected(),
    )
    .await;
    let started = Instant::now();
    let r = a
        .publish("wagu.room.r1.events", Bytes::from_static(b"during"))
        .await;
    assert!(matches!(r, Err(BusError::Disconnected)), "{r:?}");
    let r = a.request("wagu.owner.x", Bytes::new(), WAIT).await;
    assert!(matches!(r, Err(BusError::Disconnected)), "{r:?}");
    assert!(matches!(a.ping().await, Err(BusError::Disconnected)));
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "errors come at once"
    );

    let _server = Server::start(&bin, port);
    let restarted = Instant::now();
    until("both clients reconnect", Duration::from_secs(10), || {
        a.is_connected() && b.is_connected()
    })
    .await;
    eprintln!("reconnected {:?} after the restart", restarted.elapsed());
    a.ping().await.unwrap();
    settled(&b).await;
    a.publish("wagu.room.r1.events", Bytes::from_static(b"after"))
        .await
        .unwrap();
    a.flush().await.unwrap();
    assert_eq!(
        &next(&mut sub).await.payload[..],
        b"after",
        "the subscription came back, and nothing from the outage arrives late"
    );
    // The queue-group subscription came back too and answers requests.
    let responder = b.clone();
    let task = tokio::spawn(async move {
        let m = next(&mut group).await;
        responder
            .respond(&m.reply.unwrap(), Bytes::from_static(b"ok"))
            .await
            .unwrap();
    });
    let reply = a.request("wagu.owner.x", Bytes::new(), WAIT).await.unwrap();
    assert_eq!(&reply[..], b"ok");
    task.await.unwrap();
}
