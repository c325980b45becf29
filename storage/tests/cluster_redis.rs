//! Node leases and fenced session ownership against the real Redis of the test bed
//! (`WAGU_TEST_REDIS_URL`): concurrent takeovers, stale owners, lapsed and released leases,
//! and a node cut off from Redis.

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use tokio::time::Instant;
use wagu_storage::cluster::{
    Claim, ClusterError, LeaseConfig, NodeId, NodeLease, NodeLoad, Ownership, SessionKey, Token,
    is_live, least_loaded, live_nodes,
};
use wagu_storage::testbed;

async fn conn(url: &str) -> ConnectionManager {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(0);
    ConnectionManager::new_with_config(redis::Client::open(url).unwrap(), config)
        .await
        .expect("the test bed's Redis answers")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

fn session() -> SessionKey {
    SessionKey::new("room", &unique("r"))
}

fn node(name: &str) -> NodeId {
    NodeId::new(unique(name)).unwrap()
}

const TTL: Duration = Duration::from_secs(60);

async fn alive(_: &NodeId) -> Result<bool, ClusterError> {
    Ok(true)
}

fn owned(c: Claim) -> Token {
    match c {
        Claim::Owned(t) => t,
        other => panic!("expected to own the session, got {other:?}"),
    }
}

/// The write was refused as coming from a stale owner.
#[track_caller]
fn fenced_off<T: std::fmt::Debug>(r: Result<T, ClusterError>) {
    assert!(
        matches!(r, Err(ClusterError::Stale { .. })),
        "a stale write was not refused: {r:?}"
    );
}

fn entry(s: &str) -> Bytes {
    Bytes::from(s.to_owned())
}

#[tokio::test]
async fn many_concurrent_claims_of_a_free_session_have_exactly_one_winner() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "cluster_redis") else {
        return;
    };
    let key = session();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let o = Ownership::new(conn(&url).await, node(&format!("n{i}")), TTL);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            (o.node().clone(), o.claim(&key, alive).await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    let mut saw = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (n, Claim::Owned(token)) => winners.push((n, token)),
            (_, Claim::OwnedBy(n, token)) => saw.push((n, token)),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    assert!(
        saw.iter().all(|s| *s == winners[0]),
        "every loser saw the winner and its token"
    );
}

#[tokio::test]
async fn when_an_owner_dies_one_node_takes_over_and_the_old_owners_writes_are_refused() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "cluster_redis") else {
        return;
    };
    let key = session();
    let old = Ownership::new(conn(&url).await, node("old"), TTL);
    let t_old = owned(old.claim(&key, alive).await.unwrap());
    assert_eq!(
        old.append(&key, t_old, &[entry("vote 1")]).await.unwrap(),
        1
    );

    // Its lease lapsed (the others' are live): twenty nodes race for the session.
    let old_id = old.node().clone();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let o = Ownership::new(conn(&url).await, node(&format!("n{i}")), TTL);
        let key = key.clone();
        let old_id = old_id.clone();
        tasks.push(tokio::spawn(async move {
            let c = o.claim(&key, async |n| Ok(*n != old_id)).await;
            (o, c)
        }));
    }
    let mut winner = None;
    for t in tasks {
        let (o, c) = t.await.unwrap();
        // A racer that read the old owner loses the compare-and-set to the winner; one that
        // read the winner sees a live owner.
        match c {
            Ok(Claim::Owned(t)) => {
                assert!(winner.is_none(), "a second winner");
                winner = Some((o, t));
            }
            Ok(Claim::OwnedBy(..)) | Err(ClusterError::Stale { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let (new, t_new) = winner.expect("one node took over");
    assert!(t_new > t_old, "the token went up: {t_old} -> {t_new}");

    // The zombie wakes up: every kind of write it tries is refused, and changes nothing.
    for r in [
        old.append(&key, t_old, &[entry("vote 2")]).await.map(drop),
        old.snapshot(&key, t_old, b"stale", 1).await.map(drop),
        old.release(&key, t_old).await,
        old.retire(&key, t_old).await,
    ] {
        match r {
            Err(ClusterError::Stale { held, current }) => {
                assert_eq!((held, current), (t_old, t_new));
            }
            other => panic!("a stale write was not refused: {other:?}"),
        }
    }
    let (snap, log) = new.load(&key).await.unwrap();
    assert_eq!(snap, None);
    assert_eq!(
        log,
        vec![entry("vote 1")],
        "the acknowledged entry survived, the stale one never landed"
    );
    assert_eq!(
        new.append(&key, t_new, &[entry("vote 2")]).await.unwrap(),
        2
    );
}

#[tokio::test]
async fn a_snapshot_trims_what_it_contains_and_a_released_session_is_claimed_at_once() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "cluster_redis") else {
        return;
    };
    let key = session();
    let a = Ownership::new(conn(&url).await, node("a"), TTL);
    let b = Ownership::new(conn(&url).await, node("b"), TTL);
    let ta = owned(a.claim(&key, alive).await.unwrap());
    a.append(&key, ta, &[entry("1"), entry("2"), entry("3")])
        .await
        .unwrap();
    assert_eq!(a.snapshot(&key, ta, b"state after 2", 2).await.unwrap(), 1);
    // B sees a live owner and leaves it alone.
    assert_eq!(
        b.claim(&key, alive).await.unwrap(),
        Claim::OwnedBy(a.node().clone(), ta)
    );
    // A drains: releases, and B claims at once although A's lease is still live.
    a.release(&key, ta).await.unwrap();
    let tb = owned(b.claim(&key, alive).await.unwrap());
    assert!(tb > ta);
    let (snap, log) = b.load(&key).await.unwrap();
    assert_eq!(snap.as_deref(), Some(&b"state after 2"[..]));
    assert_eq!(log, vec![entry("3")]);
    fenced_off(a.append(&key, ta, &[entry("late")]).await);
}

#[tokio::test]
async fn a_retired_session_leaves_no_data_and_its_next_owner_gets_a_higher_token() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "cluster_redis") else {
        return;
    };
    let key = session();
    let a = Ownership::new(conn(&url).await, node("a"), TTL);
    let t1 = owned(a.claim(&key, alive).await.unwrap());
    a.append(&key, t1, &[entry("x")]).await.unwrap();
    a.snapshot(&key, t1, b"s", 0).await.unwrap();
    a.retire(&key, t1).await.unwrap();
    assert_eq!(a.load(&key).await.unwrap(), (None, vec![]));
    assert_eq!(a.owner(&key).await.unwrap(), (None, t1));
    let t2 = owned(a.claim(&key, alive).await.unwrap());
    assert!(t2 > t1, "{t1} -> {t2}");
    fenced_off(a.append(&key, t1, &[entry("y")]).await);
}

#[tokio::test]
async fn a_session_is_taken_over_only_after_its_owners_lease_lapses() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "cluster_redis") else {
        return;
    };
    let c = conn(&url).await;
    let key = session();
    let a_id = node("a");
    let lease = NodeLease::acquire(
        c.clone(),
        a_id.clone(),
        LeaseConfig::with_ttl(Duration::from_millis(900)),
        NodeLoad::default(),
    )
    .await
    .unwrap();
    let a = Ownership::new(c.clone(), a_id.clone(), TTL);
    let ta = owned(a.claim(&key, alive).await.unwrap());
    let b = Ownership::new(conn(&url).await, node("b"), TTL);
    let live = |n: &NodeId| {
        let c = c.clone();
        let n = n.clone();
        async move { is_live(&c, &n).await }
    };
    // Renewed, the lease outlives its TTL several times over.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(lease.is_valid());
    assert_eq!(
        b.claim(&key, async |n| live(n).await).await.unwrap(),
        Claim::OwnedBy(a_id.clone(), ta)
    );
    // A dies (its renewals stop): within a TTL, B takes over.
    let died = Instant::now();
    drop(lease);
    let tb = loop {
        match b.claim(&key, async |n| live(n).await).await.unwrap() {
            Claim::Owned(t) => break t,
            Claim::OwnedBy(..) => {
                assert!(died.elapsed() < Duration::from_secs(3), "no takeover");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(
        died.elapsed() <= Duration::from_millis(1500),
        "{:?}",
        died.elapsed()
    );
    assert!(tb > ta);
}

#[tokio::test]
async fn a_node_id_is_held_by_one_live_process_at_a_time() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "cluster_redis") else {
        return;
    };
    let id = node("n");
    let cfg = LeaseConfig::with_ttl(Duration::from_secs(5));
    let first = NodeLease::acquire(conn(&url).await, id.clone(), cfg, NodeLoad::default())
        .await
        .unwrap();
    match NodeLease::acquire(conn(&url).await, id.clone(), cfg, NodeLoad::default()).await {
        Err(ClusterError::NodeIdTaken(n)) => assert_eq!(n, id),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("two live processes hold one node id"),
    }
    // A clean shutdown ends the lease at once.
    first.end().await.unwrap();
    let again = NodeLease::acquire(conn(&url).await, id.clone(), cfg, NodeLoad::default())
        .await
        .unwrap();
    again.end().await.unwrap();
}

#[tokio::test]
async fn live_nodes_report_their_load_and_placement_skips_a_closed_node() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "cluster_redis") else {
        return;
    };
    let c = conn(&url).await;
    let cfg = LeaseConfig::with_ttl(Duration::from_secs(5));
    let prefix = unique("place");
    let busy = NodeId::new(format!("{prefix}-busy")).unwrap();
    let idle = NodeId::new(format!("{prefix}-idle")).unwrap();
    let closed = NodeId::new(format!("{prefix}-closed")).unwrap();
    let load = |sessions, open| NodeLoad {
        sessions,
        cpu_permille: 100,
        open,
    };
    let l1 = NodeLease::acquire(c.clone(), busy.clone(), cfg, load(50, true))
        .await
        .unwrap();
    let l2 = NodeLease::acquire(c.clone(), idle.clone(), cfg, load(3, true))
        .await
        .unwrap();
    let l3 = NodeLease::acquire(c.clone(), closed.clone(), cfg, load(0, false))
        .await
        .unwrap();
    let ours: Vec<_> = live_nodes(&c)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.node.as_str().starts_with(&prefix))
        .collect();
    assert_eq!(ours.len(), 3, "{ours:?}");
    assert_eq!(least_loaded(&ours), Some(&idle));
    // The idle node fills up and says so at its next renewal.
    l2.set_load(load(80, true));
    tokio::time::sleep(cfg.renew_every + Duration::from_millis(300)).await;
    let ours: Vec<_> = live_nodes(&c)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.node.as_str().starts_with(&prefix))
        .collect();
    assert_eq!(least_loaded(&ours), Some(&busy));
    for l in [l1, l2, l3] {
        l.end().await.unwrap();
    }
}

#[tokio::test]
async fn a_node_cut_off_from_redis_stops_counting_on_its_lease_before_the_lease_lapses() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "cluster_redis") else {
        return;
    };
    let proxy = testbed::CuttableProxy::to(&url).await;
    let direct = conn(&url).await;
    let id = node("cut");
    let cfg = LeaseConfig::with_ttl(Duration::from_millis(1500));
    let lease = NodeLease::acquire(
        conn(&proxy.url()).await,
        id.clone(),
        cfg,
        NodeLoad::default(),
    )
    .await
    .unwrap();
    let mut validity = lease.validity();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(lease.is_valid());
    proxy.cut();
    // The node gives up its claim while Redis still shows the lease: nobody can have taken its
    // sessions yet.
    tokio::time::timeout(Duration::from_secs(3), validity.wait_for(|v| !*v))
        .await
        .expect("the node noticed within a TTL")
        .unwrap();
    assert!(!lease.is_valid());
    assert!(
        is_live(&direct, &id).await.unwrap(),
        "the lease is still live in Redis when the node stops counting on it"
    );
    // And then it lapses for everyone else.
    let deadline = Instant::now() + Duration::from_secs(3);
    while is_live(&direct, &id).await.unwrap() {
        assert!(Instant::now() < deadline, "the lease never lapsed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `redis-server` of the test's own, configured from `deploy/redis/wagu.conf` (what ops run),
/// over `dir`, so the test may `kill -9` it; killed when dropped, even by a failing test.
struct OwnRedis(std::process::Child);

impl OwnRedis {
    /// SIGKILL: Redis gets no chance to flush anything.
    fn kill_9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn own_redis(dir: &std::path::Path, port: u16) -> OwnRedis {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/redis/wagu.conf");
    let child = std::process::Command::new("redis-server")
        .arg(conf)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--daemonize", "no", "--logfile", ""])
        .arg("--dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server runs (deploy/install.sh installs it)");
    OwnRedis(child)
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            && redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "redis-server not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_redis_killed_with_sigkill_keeps_every_acknowledged_fenced_write() {
    if testbed::service(testbed::REDIS_URL, "cluster_redis").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut redis = own_redis(dir.path(), port);
    wait_ready(&url).await;
    let key = session();
    let a = Ownership::new(conn(&url).await, node("a"), TTL);
    let t = owned(a.claim(&key, alive).await.unwrap());
    let mut acked = Vec::new();
    for i in 0..300 {
        let e = entry(&format!("e{i}"));
        a.append(&key, t, std::slice::from_ref(&e)).await.unwrap();
        acked.push(e);
        if i == 99 {
            a.snapshot(&key, t, b"after 100", 100).await.unwrap();
            acked.clear();
        }
    }
    // The moment the last append was acknowledged, Redis dies without a chance to flush.
    redis.kill_9();
    let redis = own_redis(dir.path(), port);
    wait_ready(&url).await;
    let b = Ownership::new(conn(&url).await, node("b"), TTL);
    assert_eq!(b.owner(&key).await.unwrap(), (Some(a.node().clone()), t));
    let (snap, log) = b.load(&key).await.unwrap();
    assert_eq!(snap.as_deref(), Some(&b"after 100"[..]));
    assert_eq!(
        log, acked,
        "every acknowledged entry after the snapshot, in order"
    );
    // The old owner's lease is gone with it: the next owner gets a higher token.
    let t2 = owned(b.claim(&key, async |_| Ok(false)).await.unwrap());
    assert!(t2 > t);
    drop(redis);
}
