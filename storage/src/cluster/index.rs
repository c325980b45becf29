//! The shared index of live streams, so that discovery (`GET /api/streams`) answers the same on
//! every node: each node publishes the summaries of the streams it runs every second with a short
//! expiry, and readers list them all or search them by distance (Redis geo search).
//!
//! Keys share the hash tag `{streams}` (one slot, so the scripts run on Redis Cluster):
//! `wagu:{streams}:summary` (id → summary JSON), `:expiry` (id by expiry, Redis's clock) and
//! `:geo`. A node that dies stops publishing and its streams drop out after the expiry.
//!
//! What it does not do: know what a summary holds (callers pass JSON bytes) or sort by anything
//! but distance.

use super::ClusterError;
use bytes::Bytes;
use redis::Script;
use redis::aio::ConnectionManager;
use std::sync::LazyLock;
use std::time::Duration;

static PUBLISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_publish.lua")));
static LIST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/index_list.lua")));

const SUMMARY: &str = "wagu:{streams}:summary";
const EXPIRY: &str = "wagu:{streams}:expiry";
const GEO: &str = "wagu:{streams}:geo";

/// One live stream as a node publishes it.
pub struct Listed {
    pub id: String,
    pub summary: Bytes,
    /// `(lat, lng)`, when the stream has a place on the map.
    pub location: Option<(f64, f64)>,
}

/// The index, over the shared Redis.
#[derive(Clone)]
pub struct StreamIndex {
    conn: ConnectionManager,
}

impl StreamIndex {
    pub fn new(conn: ConnectionManager) -> Self {
        StreamIndex { conn }
    }

    /// Publishes what this node runs now (each entry lives `ttl` unless published again), and
    /// removes `gone`: streams it published before and runs no more.
    pub async fn publish(
        &self,
        live: &[Listed],
        gone: &[String],
        ttl: Duration,
    ) -> Result<(), ClusterError> {
        let mut inv = PUBLISH.key(SUMMARY);
        inv.key(EXPIRY).key(GEO);
        inv.arg((ttl.as_millis() as u64).max(1)).arg(live.len());
        for l in live {
            inv.arg(&l.id).arg(l.summary.as_ref());
            match l.location {
                Some((lat, lng)) => inv.arg(lng).arg(lat),
                None => inv.arg("").arg(""),
            };
        }
        for g in gone {
            inv.arg(g);
        }
        let mut c = self.conn.clone();
        let _: i64 = inv.invoke_async(&mut c).await?;
        Ok(())
    }

    /// Every live stream of every node, or (with `near = (lat, lng, radius_km)`) those within
    /// the radius, nearest first. Summaries as they were published.
    pub async fn list(&self, near: Option<(f64, f64, f64)>) -> Result<Vec<Bytes>, ClusterError> {
        let mut inv = LIST.key(SUMMARY);
        inv.key(EXPIRY).key(GEO);
        match near {
            Some((lat, lng, km)) => inv.arg(lng).arg(lat).arg(km),
            None => inv.arg("").arg("").arg(""),
        };
        let mut c = self.conn.clone();
        let out: Vec<Vec<u8>> = inv.invoke_async(&mut c).await?;
        Ok(out.into_iter().map(Bytes::from).collect())
    }
}
