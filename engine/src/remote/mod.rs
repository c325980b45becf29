//! Sessions on other nodes, behind the same calls as local ones (`Sessions::join`, a handle's
//! `send` and `disconnect`), over the bus ([`wagu_storage::bus`]).
//!
//! A node plays two parts:
//! - **gateway** for its own sockets: a join of a session another node owns goes to that node
//!   as a request (no responder: it fails at once); commands and disconnects follow as
//!   messages; the session's frames come back in batches on this node's subject
//!   `wagu.gw.<node>` — a broadcast once per gateway node, not once per client — and go into
//!   each socket's own outbound queue. Batches are numbered per relay: a gap, a full queue or an
//!   owner whose lease lapsed closes the affected sockets with "resume" (4000), and seq +
//!   replay repair what they missed when they resume.
//! - **owner** for its sessions: it answers requests on `wagu.node.<node>.<kind>.rpc` and takes
//!   commands on `wagu.node.<node>.<kind>.cmd` ([`owner`]), and relays the frames of remote
//!   connections to their gateway node, one relay task per gateway node.
//!
//! Placement: a new session goes to the open node with the fewest sessions (from the node
//! leases); a node at its limits or draining takes none.
//!
//! What it does not do: decide ownership (the fence does, in Redis) or persist anything.

mod link;
pub mod owner;
pub mod wire;

use crate::actor::outbound::{Frame, Outbound, Relayed};
use bytes::Bytes;
use futures_util::StreamExt;
use metrics::counter;
use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use wagu_storage::bus::{Bus, BusError};
use wagu_storage::cluster::{NodeId, least_loaded, live_nodes};

pub use self::link::RemoteLink;
use self::wire::{Batch, Item};

/// How long a request to another node may take before the caller is told `unavailable`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames one relay (owner → one gateway node) holds before connections count as too slow.
const RELAY_QUEUE: usize = 8192;
/// Items one batch carries at most.
const MAX_BATCH: usize = 512;

/// This node's side of the sessions that cross nodes.
pub struct Remote {
    bus: Bus,
    node: NodeId,
    conn: ConnectionManager,
    /// Gateway part: this node's sockets in sessions owned elsewhere, by connection id.
    sinks: Mutex<HashMap<u64, Sink>>,
    /// Owner part: one relay per gateway node.
    relays: Mutex<HashMap<String, Relay>>,
    /// Ordered publishes of commands and disconnects.
    out: mpsc::UnboundedSender<(String, Bytes)>,
    /// How often the liveness of the other side of remote connections is checked.
    check_every: Duration,
}

struct Sink {
    owner: String,
    outbound: Outbound,
}

#[derive(Clone)]
struct Relay {
    tx: mpsc::Sender<Relayed>,
    ended: mpsc::UnboundedSender<(u64, Option<u16>)>,
}

pub(crate) fn rpc_subject(node: &str, kind: &str) -> String {
    format!("wagu.node.{node}.{kind}.rpc")
}
pub(crate) fn cmd_subject(node: &str, kind: &str) -> String {
    format!("wagu.node.{node}.{kind}.cmd")
}
fn gateway_subject(node: &str) -> String {
    format!("wagu.gw.{node}")
}

impl Remote {
    /// Starts this node's gateway part: the subscription to its frame batches, the ordered
    /// publisher, and the watch on the owners it has sockets with (every `check_every`).
    pub async fn start(
        bus: Bus,
        node: NodeId,
        conn: ConnectionManager,
        check_every: Duration,
    ) -> Result<Arc<Remote>, BusError> {
        let (out, mut out_rx) = mpsc::unbounded_channel::<(String, Bytes)>();
        let mut batches = bus.subscribe(&gateway_subject(node.as_str())).await?;
        let remote = Arc::new(Remote {
            bus: bus.clone(),
            node,
            conn,
            sinks: Mutex::new(HashMap::new()),
            relays: Mutex::new(HashMap::new()),
            out,
            check_every,
        });
        tokio::spawn(async move {
            while let Some((subject, payload)) = out_rx.recv().await {
                if let Err(e) = bus.publish(&subject, payload).await {
                    counter!("wagu_bus_errors_total", "op" => "publish").increment(1);
                    tracing::warn!(subject, error = %e, "bus publish failed");
                }
            }
        });
        let weak = Arc::downgrade(&remote);
        tokio::spawn(async move {
            // Per owner node: its relay and the next batch number expected.
            let mut next: HashMap<String, (u64, u64)> = HashMap::new();
            while let Some(msg) = batches.next().await {
                let Some(remote) = weak.upgrade() else { return };
                match Batch::decode(msg.payload) {
                    Ok(b) => remote.deliver(b, &mut next),
                    Err(e) => tracing::warn!(error = %e, "dropped a malformed frame batch"),
                }
            }
        });
        let weak = Arc::downgrade(&remote);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(check_every).await;
                let Some(remote) = weak.upgrade() else { return };
                remote.drop_sinks_of_dead_owners().await;
            }
        });
        Ok(remote)
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The nodes whose lease is live now (`None` when Redis cannot be read).
    pub(crate) async fn live(&self) -> Option<Vec<String>> {
        let nodes = live_nodes(&self.conn).await.ok()?;
        Some(
            nodes
                .into_iter()
                .map(|n| n.node.as_str().to_string())
                .collect(),
        )
    }

    pub(crate) fn check_every(&self) -> Duration {
        self.check_every
    }

    /// Where a new session goes: the open live node with the fewest sessions, `None` when the
    /// leases cannot be read or no node is open (then the caller keeps it here).
    pub async fn place(&self) -> Option<NodeId> {
        let nodes = live_nodes(&self.conn).await.ok()?;
        least_loaded(&nodes).cloned()
    }

    /// Registers socket `conn` of this node as joined (or joining) a session owned by `owner`.
    pub(crate) fn add_sink(&self, conn: u64, owner: &NodeId, outbound: Outbound) {
        self.sinks.lock().expect("sinks").insert(
            conn,
            Sink {
                owner: owner.as_str().to_string(),
                outbound,
            },
        );
    }

    /// Forgets socket `conn`: its queue ends, the connection closes with "resume" (or the code
    /// its session asked for).
    pub(crate) fn remove_sink(&self, conn: u64) {
        self.sinks.lock().expect("sinks").remove(&conn);
    }

    fn publish(&self, subject: String, payload: Bytes) {
        let _ = self.out.send((subject, payload));
    }

    /// Applies one batch from an owner: frames into sockets' queues, in order.
    fn deliver(&self, b: Batch, next: &mut HashMap<String, (u64, u64)>) {
        let mut sinks = self.sinks.lock().expect("sinks");
        let expected = next.get(&b.node).copied();
        let gap = matches!(expected, Some((relay, n)) if relay == b.relay && n != b.batch);
        next.insert(b.node.clone(), (b.relay, b.batch + 1));
        if gap {
            // Frames were lost on the bus: every socket fed by that owner resumes.
            counter!("wagu_bus_gaps_total").increment(1);
            tracing::warn!(owner = b.node, "a frame batch went missing: sockets resume");
            sinks.retain(|_, s| s.owner != b.node);
        }
        for item in b.items {
            match item {
                Item::Text(conns, bytes) => {
                    let bytes = std::sync::Arc::new(bytes);
                    for c in conns {
                        let full = sinks.get(&c).is_some_and(|s| {
                            matches!(
                                s.outbound.push(Frame::Text(bytes.clone())),
                                crate::actor::outbound::Pushed::Full
                            )
                        });
                        if full {
                            counter!("wagu_queue_drops_total", "kind" => "relayed").increment(1);
                            sinks.remove(&c);
                        }
                    }
                }
                Item::Close(c, code) => {
                    if let Some(s) = sinks.get(&c) {
                        s.outbound.close(code);
                    }
                }
                Item::End(c, code) => {
                    if let Some(s) = sinks.remove(&c)
                        && let Some(code) = code
                    {
                        s.outbound.close(code);
                    }
                }
            }
        }
    }

    /// Sockets whose owner's lease lapsed resume (through this or another node), at once
    /// rather than after their requests time out.
    async fn drop_sinks_of_dead_owners(&self) {
        let owners: Vec<String> = {
            let sinks = self.sinks.lock().expect("sinks");
            let mut o: Vec<String> = sinks.values().map(|s| s.owner.clone()).collect();
            o.sort();
            o.dedup();
            o
        };
        if owners.is_empty() {
            return;
        }
        let Some(live) = self.live().await else {
            return;
        };
        let dead: Vec<String> = owners.into_iter().filter(|o| !live.contains(o)).collect();
        if !dead.is_empty() {
            tracing::warn!(?dead, "owners' leases lapsed: their sockets resume");
            self.sinks
                .lock()
                .expect("sinks")
                .retain(|_, s| !dead.contains(&s.owner));
        }
    }

    /// The relay to gateway node `gateway`, started on first use.
    fn relay(&self, gateway: &str) -> Relay {
        let mut relays = self.relays.lock().expect("relays");
        if let Some(r) = relays.get(gateway)
            && !r.tx.is_closed()
        {
            return r.clone();
        }
        let (tx, rx) = mpsc::channel(RELAY_QUEUE);
        let (ended, ended_rx) = mpsc::unbounded_channel();
        let relay = Relay { tx, ended };
        relays.insert(gateway.to_string(), relay.clone());
        tokio::spawn(run_relay(
            self.bus.clone(),
            self.node.as_str().to_string(),
            gateway_subject(gateway),
            rx,
            ended_rx,
        ));
        relay
    }

    /// The outbound of socket `conn` of gateway node `gateway`, for a session here.
    pub(crate) fn relayed_outbound(&self, gateway: &str, conn: u64) -> Outbound {
        let r = self.relay(gateway);
        Outbound::relayed(conn, r.tx, r.ended)
    }
}

/// Sends what the sessions here queued for one gateway node's sockets, in batches.
async fn run_relay(
    bus: Bus,
    node: String,
    subject: String,
    mut rx: mpsc::Receiver<Relayed>,
    mut ended: mpsc::UnboundedReceiver<(u64, Option<u16>)>,
) {
    let relay = rand::random::<u64>();
    let mut batch = 0u64;
    loop {
        let mut items = Vec::new();
        tokio::select! {
            first = rx.recv() => match first {
                Some(r) => add(&mut items, r),
                None => return,
            },
            Some((c, code)) = ended.recv() => items.push(Item::End(c, code)),
        }
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => add(&mut items, r),
                Err(_) => break,
            }
        }
        while let Ok((c, code)) = ended.try_recv() {
            items.push(Item::End(c, code));
        }
        let b = Batch {
            relay,
            batch,
            node: node.clone(),
            items,
        };
        batch += 1;
        if let Err(e) = bus.publish(&subject, b.encode()).await {
            // The gateway sees the gap in batch numbers and lets the sockets resume.
            counter!("wagu_bus_errors_total", "op" => "relay").increment(1);
            tracing::warn!(subject, error = %e, "relay publish failed");
        }
    }
}

fn add(items: &mut Vec<Item>, r: Relayed) {
    match r {
        Relayed::Frame(conn, frame) => wire::push_frame(items, conn, frame),
        Relayed::End(conn, code) => items.push(Item::End(conn, code)),
    }
}
