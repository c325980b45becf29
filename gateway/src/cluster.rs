//! This node's part in a cluster (`[cluster] enabled`): its node lease in the shared Redis, the
//! fence every session write goes through, the load it reports for placement, and the drain.
//!
//! What it does not do: decide ownership (`wagu_storage::cluster` scripts do, in Redis) or run
//! sessions (the engine does, fenced by [`wagu_engine::persist::Fence`]).

use crate::config::ClusterConfig;
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wagu_engine::persist::Fence;
use wagu_engine::sessions::{Rooms, Streams};
use wagu_storage::EphemeralStore;
use wagu_storage::cluster::{LeaseConfig, NodeLease, NodeLoad};

/// How often the node's load (sessions, CPU, open) is refreshed for its next lease renewal.
const LOAD_EVERY: Duration = Duration::from_secs(1);

/// This node's membership: its fence (lease, ownership) and the bus to the others.
pub struct Member {
    pub fence: Fence,
    pub bus: wagu_storage::bus::Bus,
    /// Live streams of every node (discovery answers the same everywhere).
    pub streams: wagu_storage::cluster::StreamIndex,
}

/// How often a node publishes its live streams into the shared index, and how long an entry
/// outlives its last publication (a dead node's streams drop out after this).
const INDEX_EVERY: Duration = Duration::from_secs(1);
const INDEX_TTL: Duration = Duration::from_secs(5);

/// Keeps this node's live streams in the shared index. A stream this node stopped running
/// (ended, or handed over) is removed at the next publication; one handed over reappears with
/// the next publication of the node that took it (within a second).
pub fn publish_streams(index: wagu_storage::cluster::StreamIndex, streams: Streams) {
    tokio::spawn(async move {
        let mut before: Vec<String> = Vec::new();
        loop {
            tokio::time::sleep(INDEX_EVERY).await;
            let Ok(list) = streams.list().await else {
                continue;
            };
            let live: Vec<wagu_storage::cluster::Listed> = list
                .iter()
                .filter_map(|s| {
                    Some(wagu_storage::cluster::Listed {
                        id: s.stream_id.0.clone(),
                        summary: serde_json::to_vec(s).ok()?.into(),
                        location: s.location.map(|l| (l.lat, l.lng)),
                    })
                })
                .collect();
            let now: Vec<String> = live.iter().map(|l| l.id.clone()).collect();
            let gone: Vec<String> = before.into_iter().filter(|id| !now.contains(id)).collect();
            if let Err(e) = index.publish(&live, &gone, INDEX_TTL).await {
                tracing::warn!(error = %e, "could not publish live streams to the shared index");
            }
            before = now;
        }
    });
}

/// Whether this node is draining: `/readyz` answers 503 and no new session starts here.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) -> bool {
        !self.0.swap(true, Ordering::SeqCst)
    }
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Takes this node's lease (refused while another live process holds the same node id) and
/// builds the fence over the shared Redis `store`.
pub async fn join(
    config: &ClusterConfig,
    store: &EphemeralStore,
    store_ttl: Duration,
) -> anyhow::Result<Fence> {
    let EphemeralStore::Redis(redis) = store else {
        anyhow::bail!("cluster.enabled needs ephemeral.backend = \"redis\"");
    };
    let node = config.node_id()?;
    let conn = redis.connection();
    let lease = NodeLease::acquire(
        conn.clone(),
        node.clone(),
        LeaseConfig::with_ttl(Duration::from_millis(config.lease_ttl_ms)),
        NodeLoad {
            open: true,
            ..NodeLoad::default()
        },
    )
    .await
    .with_context(|| format!("cluster: node lease for {node}"))?;
    tracing::info!(%node, lease_ttl_ms = config.lease_ttl_ms, "joined the cluster");
    Ok(Fence::new(conn, Arc::new(lease), store_ttl))
}

/// Keeps the load in this node's lease current: sessions held, CPU of this process, and
/// whether it takes new sessions (not when draining or at its session limits).
pub fn report_load(
    fence: Fence,
    rooms: Rooms,
    streams: Streams,
    draining: Draining,
    max_sessions: usize,
) {
    tokio::spawn(async move {
        let mut cpu = CpuMeter::default();
        loop {
            tokio::time::sleep(LOAD_EVERY).await;
            let sessions = rooms.count().await.unwrap_or(0) + streams.count().await.unwrap_or(0);
            let load = NodeLoad {
                sessions: sessions as u64,
                cpu_permille: cpu.permille(),
                open: !draining.is_on() && fence.refusal().is_none() && sessions < max_sessions,
            };
            fence.lease().set_load(load);
            if Arc::strong_count(fence.lease()) <= 1 {
                return;
            }
        }
    });
}

/// This process's CPU use since the last reading, per mille of one core (from /proc).
#[derive(Default)]
struct CpuMeter {
    last: Option<(u64, std::time::Instant)>,
}

impl CpuMeter {
    fn permille(&mut self) -> u32 {
        let Some(ticks) = cpu_ticks() else {
            return 0;
        };
        let now = std::time::Instant::now();
        let out = match self.last {
            Some((t0, at)) => {
                // Linux reports in clock ticks of 1/100 s (USER_HZ).
                let used = ticks.saturating_sub(t0) as f64 / 100.0;
                let wall = now.duration_since(at).as_secs_f64().max(1e-3);
                ((used / wall) * 1000.0) as u32
            }
            None => 0,
        };
        self.last = Some((ticks, now));
        out
    }
}

fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_from_proc() {
        assert!(cpu_ticks().is_some());
        let mut m = CpuMeter::default();
        assert_eq!(
            m.permille(),
            0,
            "the first reading has nothing to compare with"
        );
        let start = cpu_ticks().unwrap();
        let t = std::time::Instant::now();
        while cpu_ticks().unwrap() < start + 2 && t.elapsed() < Duration::from_secs(10) {
            std::hint::black_box(t.elapsed());
        }
        assert!(m.permille() > 0, "a busy thread shows");
    }

    #[test]
    fn draining_starts_once() {
        let d = Draining::default();
        assert!(!d.is_on());
        assert!(d.start());
        assert!(!d.start());
        assert!(d.is_on());
    }
}
