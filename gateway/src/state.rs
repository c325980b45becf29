//! `AppState`: what every HTTP handler and WebSocket connection shares (the backends, the
//! session supervisors, the limiters). Only the struct: `App::build` (`app.rs`) fills it, the
//! handlers in `http/` and `ws/` read it, and neither imports the other for it.

use crate::auth::Tokens;
use crate::config::Config;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use tokio::sync::watch;
use wagu_engine::sessions::{Rooms, Streams};
use wagu_storage::records::Records;
use wagu_storage::{BlobStore, EphemeralStore};

/// Shared by every handler and connection: one pointer (each WebSocket holds a copy for its
/// whole life, so its size is per-connection memory), fields reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] points to.
pub struct Shared {
    pub config: Arc<Config>,
    pub rooms: Rooms,
    pub streams: Streams,
    pub ephemeral: EphemeralStore,
    pub blobs: BlobStore,
    /// Accounts, places and posts: embedded (redb) or CQL.
    pub records: Records,
    /// Photo uploads, variants and the orphan sweep (records + blobs).
    pub photos: crate::photos::Photos,
    /// Signs and verifies access tokens.
    pub tokens: Arc<Tokens>,
    /// Social log-in providers.
    pub social: Arc<crate::auth::social::Social>,
    pub metrics: PrometheusHandle,
    pub connections: Arc<AtomicUsize>,
    /// WebSockets this node accepts: `limits.max_connections`, lowered to what the open-file
    /// limit leaves (see [`crate::fdlimit`]).
    pub max_connections: usize,
    /// Proxies whose `X-Forwarded-For` names the client (`limits.trusted_proxies`).
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Per-address limit on creating rooms and streams.
    pub creates: Arc<crate::http::limit::CreateLimiter>,
    /// Per-address limit on sign-ups and log-ins.
    pub logins: Arc<crate::http::limit::CreateLimiter>,
    /// Per-address limit on writing posts and places (and asking for review drafts).
    pub writes: Arc<crate::http::limit::CreateLimiter>,
    /// Review drafts (`POST /api/drafts`).
    pub drafts: Arc<crate::drafts::Drafts>,
    /// Flips to `true` on shutdown: connections close with "resume" so clients move on.
    pub shutdown: watch::Receiver<bool>,
    /// On from the first moment of a drain: `/readyz` answers 503, no session starts here.
    pub draining: crate::cluster::Draining,
    /// Asks the server to drain and stop (`POST /admin/drain`, `wagu drain`).
    pub drain_requested: Arc<tokio::sync::Notify>,
    /// This node's part in a cluster, if it is in one (behind one pointer: every connection
    /// holds a copy of this state).
    pub cluster: Option<Arc<crate::cluster::Member>>,
}
