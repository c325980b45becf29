//! Node leases: "this node is alive, holds N sessions at C% CPU, and takes new ones", with a
//! TTL that lapses when the node dies or loses Redis.
//!
//! A lease renewed by a request sent at `t0` lasts until at least `t0 + ttl` in Redis (the TTL
//! starts when Redis runs the script, after `t0`). So the node counts itself the holder only
//! until `t0 + ttl - margin` on its own monotonic clock: when renewals fail (Redis down, a
//! partition, a long pause), [`NodeLease::is_valid`] turns false *before* anyone else can see
//! the lease lapse and take the node's sessions.

use super::{ClusterError, NodeId};
use redis::Script;
use redis::aio::ConnectionManager;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/lease_renew.lua")));
static DROP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/lease_drop.lua")));

const INDEX: &str = "wagu:{nodes}:index";

fn lease_key(node: &NodeId) -> String {
    format!("wagu:{{nodes}}:lease:{node}")
}

/// How long a lease lasts and how often it is renewed.
#[derive(Clone, Copy, Debug)]
pub struct LeaseConfig {
    pub ttl: Duration,
    pub renew_every: Duration,
    /// Taken off the end of the lease on this node's clock, for clock rate differences.
    pub margin: Duration,
}

impl LeaseConfig {
    /// Renewed three times per TTL, with a tenth of it as margin.
    pub fn with_ttl(ttl: Duration) -> Self {
        LeaseConfig {
            ttl,
            renew_every: ttl / 3,
            margin: ttl / 10,
        }
    }
}

/// What a node says about its load in its lease (placement reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NodeLoad {
    pub sessions: u64,
    /// CPU use of the node's process, per mille of one core.
    pub cpu_permille: u32,
    /// Whether it takes new sessions (false when draining or at its limits).
    pub open: bool,
}

/// A live node as the index lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub node: NodeId,
    pub load: NodeLoad,
}

struct Shared {
    load: NodeLoad,
    /// Until when this node may act as the holder (`None`: never again, its id was taken).
    valid_until: Option<Instant>,
}

/// This node's lease, renewed by a background task until dropped or [`NodeLease::end`]ed.
pub struct NodeLease {
    node: NodeId,
    nonce: String,
    conn: ConnectionManager,
    shared: Arc<Mutex<Shared>>,
    valid_rx: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl NodeLease {
    /// Takes the lease for `node` (refused with [`ClusterError::NodeIdTaken`] while another
    /// live process holds it) and starts renewing it.
    pub async fn acquire(
        conn: ConnectionManager,
        node: NodeId,
        config: LeaseConfig,
        load: NodeLoad,
    ) -> Result<NodeLease, ClusterError> {
        let nonce = format!("{:016x}", rand::random::<u64>());
        let t0 = Instant::now();
        renew(&conn, &node, &nonce, config, load).await?;
        let shared = Arc::new(Mutex::new(Shared {
            load,
            valid_until: Some(t0 + config.ttl - config.margin),
        }));
        let (valid_tx, valid_rx) = watch::channel(true);
        let task = tokio::spawn(renew_loop(
            conn.clone(),
            node.clone(),
            nonce.clone(),
            config,
            shared.clone(),
            valid_tx,
        ));
        Ok(NodeLease {
            node,
            nonce,
            conn,
            shared,
            valid_rx,
            task,
        })
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Whether this node may still act as the holder of its lease right now.
    pub fn is_valid(&self) -> bool {
        let s = self.shared.lock().unwrap();
        s.valid_until.is_some_and(|t| Instant::now() < t)
    }

    /// Turns false the moment the lease may have lapsed (and true again after a renewal).
    pub fn validity(&self) -> watch::Receiver<bool> {
        self.valid_rx.clone()
    }

    /// The load the next renewal reports.
    pub fn set_load(&self, load: NodeLoad) {
        self.shared.lock().unwrap().load = load;
    }

    /// Ends the lease at once (clean shutdown), so others need not wait for it to lapse.
    pub async fn end(self) -> Result<(), ClusterError> {
        self.end_shared().await
    }

    /// [`NodeLease::end`] through a shared reference: renewals stop, this node no longer
    /// counts itself the holder, and the lease is dropped from Redis.
    pub async fn end_shared(&self) -> Result<(), ClusterError> {
        self.task.abort();
        self.shared.lock().unwrap().valid_until = None;
        let mut c = self.conn.clone();
        let _: i64 = DROP
            .key(lease_key(&self.node))
            .key(INDEX)
            .arg(self.node.as_str())
            .arg(&self.nonce)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }
}

impl Drop for NodeLease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn renew(
    conn: &ConnectionManager,
    node: &NodeId,
    nonce: &str,
    config: LeaseConfig,
    load: NodeLoad,
) -> Result<(), ClusterError> {
    let mut c = conn.clone();
    let r: Result<i64, redis::RedisError> = RENEW
        .key(lease_key(node))
        .key(INDEX)
        .arg(node.as_str())
        .arg(nonce)
        .arg((config.ttl.as_millis() as u64).max(1))
        .arg(load.sessions)
        .arg(load.cpu_permille)
        .arg(if load.open { "1" } else { "0" })
        .invoke_async(&mut c)
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("TAKEN") => Err(ClusterError::NodeIdTaken(node.clone())),
        Err(e) => Err(e.into()),
    }
}

async fn renew_loop(
    conn: ConnectionManager,
    node: NodeId,
    nonce: String,
    config: LeaseConfig,
    shared: Arc<Mutex<Shared>>,
    valid_tx: watch::Sender<bool>,
) {
    let mut next = Instant::now() + config.renew_every;
    loop {
        // Wake at the next renewal or when the lease runs out, whichever comes first.
        let until = shared.lock().unwrap().valid_until;
        let wake = until.map_or(next, |u| u.min(next));
        tokio::time::sleep_until(wake).await;
        let now = Instant::now();
        if until.is_some_and(|u| now >= u) {
            valid_tx.send_if_modified(|v| std::mem::replace(v, false));
        }
        if now < next {
            continue;
        }
        next = now + config.renew_every;
        let load = shared.lock().unwrap().load;
        let t0 = Instant::now();
        let renewal = tokio::time::timeout(
            config.renew_every,
            renew(&conn, &node, &nonce, config, load),
        );
        tokio::pin!(renewal);
        // A renewal that hangs (Redis cut off) may outlast the lease: stop counting on the
        // lease the moment it may lapse, not when the renewal gives up.
        let until = shared.lock().unwrap().valid_until;
        let outcome = match until {
            Some(until) => tokio::select! {
                r = &mut renewal => r,
                () = tokio::time::sleep_until(until) => {
                    valid_tx.send_if_modified(|v| std::mem::replace(v, false));
                    renewal.await
                }
            },
            None => renewal.await,
        };
        match outcome {
            Ok(Ok(())) => {
                let until = t0 + config.ttl - config.margin;
                shared.lock().unwrap().valid_until = Some(until);
                if Instant::now() < until {
                    valid_tx.send_if_modified(|v| !std::mem::replace(v, true));
                }
            }
            Ok(Err(ClusterError::NodeIdTaken(_))) => {
                tracing::error!(%node, "this node's lease was taken by another process: it no longer owns anything");
                shared.lock().unwrap().valid_until = None;
                valid_tx.send_if_modified(|v| std::mem::replace(v, false));
                return;
            }
            Ok(Err(e)) => tracing::warn!(%node, error = %e, "node lease renewal failed"),
            Err(_) => tracing::warn!(%node, "node lease renewal timed out"),
        }
    }
}

/// Whether `node` holds a live lease now (Redis expires lapsed ones).
pub async fn is_live(conn: &ConnectionManager, node: &NodeId) -> Result<bool, ClusterError> {
    let mut c = conn.clone();
    let n: i64 = redis::cmd("EXISTS")
        .arg(lease_key(node))
        .query_async(&mut c)
        .await?;
    Ok(n == 1)
}

/// Every node with a live lease, and the load it last reported.
pub async fn live_nodes(conn: &ConnectionManager) -> Result<Vec<NodeStatus>, ClusterError> {
    let mut c = conn.clone();
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(INDEX)
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await?;
    let mut nodes = Vec::with_capacity(members.len());
    for m in members {
        nodes.push(NodeId::new(m)?);
    }
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for n in &nodes {
        pipe.cmd("HMGET")
            .arg(lease_key(n))
            .arg("nonce")
            .arg("sessions")
            .arg("cpu")
            .arg("open");
    }
    type Row = (Option<String>, Option<u64>, Option<u32>, Option<String>);
    let rows: Vec<Row> = pipe.query_async(&mut c).await?;
    Ok(nodes
        .into_iter()
        .zip(rows)
        .filter_map(|(node, (nonce, sessions, cpu, open))| {
            nonce.map(|_| NodeStatus {
                node,
                load: NodeLoad {
                    sessions: sessions.unwrap_or(0),
                    cpu_permille: cpu.unwrap_or(0),
                    open: open.as_deref() == Some("1"),
                },
            })
        })
        .collect())
}
