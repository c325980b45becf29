//! Assembles the server from a [`Config`]: opens every backend (embedded or real), starts the
//! room supervisor, and builds the router. Tests call [`App::build`] with in-memory defaults and
//! serve it on an ephemeral port, exactly as `main` does.

use crate::config::{BlobBackend, Config, DatabaseBackend, EphemeralBackend};
use crate::{http, ws};
use anyhow::Context;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tokio::sync::watch;
use wagu_engine::actor::EngineConfig;
use wagu_engine::directory::{Rooms, Streams};
use wagu_engine::persist::RoomStore;
use wagu_engine::room::RoomConfig;
use wagu_engine::stream::StreamConfig;
use wagu_storage::blob::{FsBlobs, S3Blobs};
use wagu_storage::{BlobStore, EphemeralStore, cql};

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub rooms: Rooms,
    pub streams: Streams,
    pub ephemeral: EphemeralStore,
    pub blobs: BlobStore,
    pub cql: Option<Arc<scylla::client::session::Session>>,
    pub metrics: PrometheusHandle,
    pub connections: Arc<AtomicUsize>,
    /// Per-address limit on creating rooms and streams.
    pub creates: Arc<crate::http::limit::CreateLimiter>,
    /// Flips to `true` on shutdown: connections close with "resume" so clients move on.
    pub shutdown: watch::Receiver<bool>,
}

pub struct App {
    pub router: Router,
    pub state: AppState,
    shutdown_tx: watch::Sender<bool>,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let metrics = crate::telemetry::metrics();
        tokio::fs::create_dir_all(&config.data_dir)
            .await
            .with_context(|| format!("data_dir {}", config.data_dir.display()))?;

        let ephemeral = match config.ephemeral.backend {
            EphemeralBackend::Memory => EphemeralStore::memory(),
            EphemeralBackend::Redis => {
                let url = config.ephemeral.redis_url.as_deref().unwrap_or_default();
                EphemeralStore::redis(url)
                    .await
                    .with_context(|| format!("ephemeral.redis_url {}", redact_url(url)))?
            }
        };
        let blobs = match (&config.blobs.backend, &config.blobs.s3) {
            (BlobBackend::S3, Some(s3)) => {
                let b = BlobStore::S3(S3Blobs::new(s3));
                b.ping().await.context("blobs.s3")?;
                b
            }
            _ => BlobStore::Fs(FsBlobs::open(config.data_dir.join("blobs")).await?),
        };
        let cql = match config.database.backend {
            DatabaseBackend::Cql => {
                let s = cql::connect(&config.database.cql_nodes)
                    .await
                    .context("database.cql_nodes")?;
                Some(Arc::new(s))
            }
            DatabaseBackend::Embedded => None,
        };

        let l = &config.limits;
        let engine = EngineConfig {
            room: RoomConfig {
                max_participants: l.max_participants,
                away_grace_ms: l.away_grace_secs * 1000,
                empty_ttl_ms: l.room_empty_ttl_secs * 1000,
                replay_capacity: l.replay_events,
                presence_interval_ms: 50,
            },
            stream: StreamConfig {
                max_viewers: l.max_viewers,
                away_grace_ms: l.away_grace_secs * 1000,
                streamer_grace_ms: l.streamer_grace_secs * 1000,
                replay_capacity: l.replay_events,
                ..StreamConfig::default()
            },
            max_rooms: l.max_rooms,
            max_streams: l.max_streams,
            share_ttl: Duration::from_secs(l.share_ttl_secs),
            store_ttl: Duration::from_secs(config.ephemeral.room_ttl_secs),
            outbound_queue: l.outbound_queue,
            ..EngineConfig::default()
        };
        let store = RoomStore::new(ephemeral.clone(), engine.store_ttl);
        let rooms = Rooms::start(store.clone(), engine.clone()).await?;
        let streams = Streams::start(store, engine, Some(blobs.clone())).await?;

        tracing::info!(
            rooms = ephemeral.backend(),
            blobs = blobs.backend(),
            database = match config.database.backend {
                DatabaseBackend::Embedded => "embedded (posts arrive with the posts issue)",
                DatabaseBackend::Cql => "cql",
            },
            media = "not yet served (SFU arrives with the media issue)",
            data_dir = %config.data_dir.display(),
            "backends"
        );

        let creates = Arc::new(crate::http::limit::CreateLimiter::new(
            config.rate.creates_per_minute,
        ));
        let (shutdown_tx, shutdown) = watch::channel(false);
        let state = AppState {
            config: Arc::new(config),
            rooms,
            streams,
            ephemeral,
            blobs,
            cql,
            metrics,
            connections: Arc::new(AtomicUsize::new(0)),
            creates,
            shutdown,
        };
        let router = Router::new()
            .merge(http::router())
            .merge(ws::router())
            .with_state(state.clone());
        Ok(App {
            router,
            state,
            shutdown_tx,
        })
    }

    /// Tells every connection to close with "resume" and stops the rooms (their state stays
    /// in the store).
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
    }

    pub async fn stop_rooms(&self) {
        self.state.rooms.shutdown().await;
        self.state.streams.shutdown().await;
    }
}

/// `redis://user:secret@host/` → `redis://***@host/`: credentials never reach the logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redis_credentials_are_redacted() {
        assert_eq!(super::redact_url("redis://:pw@h:1/"), "redis://***@h:1/");
        assert_eq!(super::redact_url("redis://h:1/"), "redis://h:1/");
    }
}
