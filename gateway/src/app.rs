//! Assembles the server from a [`Config`]: opens every backend (embedded or real), starts the
//! room supervisor, and builds the router. Tests call [`App::build`] (most with the in-memory
//! room store, chosen explicitly) and serve it on an ephemeral port, exactly as `main` does.

use crate::auth::Tokens;
use crate::config::{BlobBackend, Config, DatabaseBackend, EphemeralBackend};
pub use crate::state::AppState;
use crate::{http, ws};
use anyhow::Context;
use axum::Router;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tokio::sync::watch;
use wagu_engine::actor::EngineConfig;
use wagu_engine::persist::SessionStore;
use wagu_engine::sessions::{Rooms, Streams};
use wagu_storage::blob::{FsBlobs, S3Blobs};
use wagu_storage::records::cql::CqlRecords;
use wagu_storage::records::embedded::EmbeddedRecords;
use wagu_storage::records::{PlaceStore, Records, import};
use wagu_storage::{BlobStore, EphemeralStore, cql};

/// How often the embedded ephemeral store removes expired rooms, streams and links from its
/// file (they are invisible from the moment they expire).
const EPHEMERAL_SWEEP_EVERY: Duration = Duration::from_secs(60);

pub struct App {
    pub router: Router,
    pub state: AppState,
    shutdown_tx: watch::Sender<bool>,
}

impl App {
    /// The node: drafts read the author's photos from the photo service.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        Self::build_inner(config, None).await
    }

    /// [`App::build`] with another photo source for review drafts (tests pass a fake).
    pub async fn build_with_photos(
        config: Config,
        draft_photos: Arc<dyn crate::drafts::photos::DraftPhotos>,
    ) -> anyhow::Result<App> {
        Self::build_inner(config, Some(draft_photos)).await
    }

    async fn build_inner(
        config: Config,
        draft_photos: Option<Arc<dyn crate::drafts::photos::DraftPhotos>>,
    ) -> anyhow::Result<App> {
        let metrics = crate::telemetry::metrics();
        tokio::fs::create_dir_all(&config.data_dir)
            .await
            .with_context(|| format!("data_dir {}", config.data_dir.display()))?;

        let ephemeral = match config.ephemeral.backend {
            EphemeralBackend::Memory => EphemeralStore::memory(),
            EphemeralBackend::Embedded => {
                let dir = config.data_dir.join("ephemeral");
                let options = wagu_storage::ephemeral::embedded::Options {
                    sweep_every: EPHEMERAL_SWEEP_EVERY,
                    checkpoint_every: Duration::from_millis(config.ephemeral.checkpoint_ms),
                    ..Default::default()
                };
                EphemeralStore::embedded_with(&dir, options)
                    .await
                    .with_context(|| format!("ephemeral store in {}", dir.display()))?
            }
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
        let records = open_records(&config, config.database.migrate_on_start).await?;
        if config.database.seed_sample_places {
            seed_sample_places(&records).await?;
        }
        if config.auth.token_secret.is_none() && config.database.backend == DatabaseBackend::Cql {
            // A shared database suggests several nodes; each would make its own key and refuse
            // the others' tokens.
            tracing::warn!(
                "auth.token_secret is unset: this node signs tokens with its own key in \
                 data_dir/auth.key; set the same auth.token_secret on every node of a cluster"
            );
        }
        let secret =
            crate::auth::token::load_secret(config.auth.token_secret.as_deref(), &config.data_dir)
                .await
                .context("auth.token_secret")?;
        let tokens = Arc::new(Tokens::new(
            &secret,
            config.auth.access_ttl_secs,
            config.auth.refresh_ttl_secs,
        ));

        let engine = crate::engine_config::engine_config(&config);
        let media = wagu_media::MediaNode::start(&config.media)
            .await
            .context("media")?;
        let media_addrs = media
            .as_ref()
            .map(|m| format!("{:?}", m.advertised()))
            .unwrap_or_else(|| "off".into());
        let engine = EngineConfig {
            media: media.map(|m| Arc::new(m) as Arc<dyn wagu_engine::actor::media::MediaPlane>),
            ..engine
        };
        let fence = if config.cluster.enabled {
            Some(crate::cluster::join(&config.cluster, &ephemeral, engine.store_ttl).await?)
        } else {
            None
        };
        let store = match &fence {
            Some(f) => SessionStore::fenced(ephemeral.clone(), engine.store_ttl, f.clone()),
            None => SessionStore::new(ephemeral.clone(), engine.store_ttl),
        };
        let max_sessions = engine.max_rooms + engine.max_streams;
        let mut rooms = Rooms::start(store.clone(), engine.clone()).await?;
        let mut streams = Streams::start(store, engine, Some(blobs.clone())).await?;
        let mut cluster = None;
        if let Some(f) = &fence {
            // The bus: joins and commands for sessions other nodes own, and their frames back.
            let url = config.cluster.bus_url.as_deref().unwrap_or_default();
            let b = wagu_storage::bus::Bus::connect(url, f.node().as_str())
                .await
                .with_context(|| format!("cluster.bus_url {}", redact_url(url)))?;
            let remote = wagu_engine::remote::Remote::start(
                b.clone(),
                f.node().clone(),
                f.connection().clone(),
                std::time::Duration::from_millis(config.cluster.lease_ttl_ms / 3),
            )
            .await
            .context("cluster bus")?;
            rooms = rooms.with_remote(remote.clone()).await?;
            streams = streams.with_remote(remote).await?;
            let index = wagu_storage::cluster::StreamIndex::new(f.connection().clone());
            crate::cluster::publish_streams(index.clone(), streams.clone());
            cluster = Some(Arc::new(crate::cluster::Member {
                fence: f.clone(),
                bus: b,
                streams: index,
            }));
        }

        tracing::info!(
            rooms = ephemeral.backend(),
            blobs = blobs.backend(),
            database = records.backend(),
            media = %media_addrs,
            data_dir = %config.data_dir.display(),
            "backends"
        );

        let creates = Arc::new(crate::http::limit::CreateLimiter::new(
            config.rate.creates_per_minute,
        ));
        let social = Arc::new(
            crate::auth::social::Social::new(&config.auth.oidc, config.public_url())
                .context("auth.oidc")?,
        );
        let logins = Arc::new(crate::http::limit::CreateLimiter::new(
            config.rate.logins_per_minute,
        ));
        let writes = Arc::new(crate::http::limit::CreateLimiter::new(
            config.rate.writes_per_minute,
        ));
        let soft = crate::fdlimit::soft_limit();
        let max_connections =
            crate::fdlimit::connection_budget(config.limits.max_connections, soft);
        if max_connections < config.limits.max_connections {
            tracing::warn!(
                "the open-file limit ({}) holds {max_connections} WebSockets, fewer than \
                 limits.max_connections ({}); raise the hard RLIMIT_NOFILE (ulimit -Hn, \
                 LimitNOFILE= in systemd) for more",
                soft.unwrap_or(0),
                config.limits.max_connections
            );
        } else {
            tracing::info!("this node accepts up to {max_connections} WebSockets");
        }
        let photos =
            crate::photos::Photos::new(records.clone(), blobs.clone(), config.photos.clone());
        let draft_photos = draft_photos.unwrap_or_else(|| Arc::new(photos.clone()));
        let drafts = Arc::new(
            crate::drafts::Drafts::new(&config.drafts, draft_photos)
                .context("drafts (HTTP client)")?,
        );
        match (&config.drafts.base_url, &config.drafts.model) {
            (Some(url), Some(model)) => {
                tracing::info!(url = %redact_url(url), %model, "review drafts from a model")
            }
            _ => tracing::info!("review drafts from the built-in template (no drafts.base_url)"),
        }
        let draining = crate::cluster::Draining::default();
        if let Some(f) = &fence {
            crate::cluster::report_load(
                f.clone(),
                rooms.clone(),
                streams.clone(),
                draining.clone(),
                max_sessions,
            );
        }
        let (shutdown_tx, shutdown) = watch::channel(false);
        photos.spawn_sweeper(shutdown.clone());
        let trusted_proxies: Arc<[ipnet::IpNet]> = config
            .limits
            .trusted_proxies()
            .map_err(|e| anyhow::anyhow!("limits.trusted_proxies: {e}"))?
            .into();
        let state = AppState::new(crate::state::Shared {
            trusted_proxies,
            config: Arc::new(config),
            rooms,
            streams,
            ephemeral,
            blobs,
            records,
            photos,
            tokens,
            social,
            metrics,
            connections: Arc::new(AtomicUsize::new(0)),
            max_connections,
            creates,
            logins,
            writes,
            drafts,
            shutdown,
            draining,
            drain_requested: Arc::new(tokio::sync::Notify::new()),
            cluster,
        });
        let router = Router::new()
            .merge(http::router())
            .merge(http::photos::router(&state.config.photos))
            .merge(ws::router())
            .merge(crate::web::router())
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

    /// The first step of a stop: `/readyz` turns 503 at once and no new session starts here;
    /// in a cluster, every session is then handed over in batches (fenced snapshot, release,
    /// clients closed with "resume" so they resume on another node). Returns the sessions
    /// still here when `cluster.drain_timeout_s` ran out (0 in a clean drain).
    pub async fn drain(&self) -> usize {
        if !self.state.draining.start() {
            return 0;
        }
        let Some(fence) = self.state.cluster.as_ref().map(|c| &c.fence) else {
            tracing::info!("draining: not ready any more");
            return 0;
        };
        fence.start_draining();
        fence.lease().set_load(wagu_storage::cluster::NodeLoad {
            open: false,
            ..Default::default()
        });
        let c = &self.state.config.cluster;
        let within = std::time::Duration::from_secs(c.drain_timeout_s);
        let t = std::time::Instant::now();
        tracing::info!(batch = c.drain_batch, "draining: handing sessions over");
        let (rooms, streams) = tokio::join!(
            self.state.rooms.hand_over_all(c.drain_batch, within),
            self.state.streams.hand_over_all(c.drain_batch, within),
        );
        let left = rooms + streams;
        tracing::info!(left, took_ms = t.elapsed().as_millis() as u64, "drained");
        left
    }

    /// Leaves the cluster at once (a clean stop): others need not wait for the lease to lapse.
    pub async fn leave_cluster(&self) {
        if let Some(f) = self.state.cluster.as_ref().map(|c| &c.fence)
            && let Err(e) = f.lease().end_shared().await
        {
            tracing::warn!(error = %e, "could not end the node lease");
        }
    }

    pub async fn stop_rooms(&self) {
        self.state.rooms.shutdown().await;
        self.state.streams.shutdown().await;
    }
}

/// Opens the records store the configuration names. With `migrate`, the CQL schema is
/// created first (what `wagu migrate` does); the embedded store creates its tables itself.
pub async fn open_records(config: &Config, migrate: bool) -> anyhow::Result<Records> {
    Ok(match config.database.backend {
        DatabaseBackend::Embedded => {
            let dir = config.data_dir.join("records");
            tokio::fs::create_dir_all(&dir)
                .await
                .with_context(|| format!("data_dir {}", dir.display()))?;
            Records::Embedded(
                EmbeddedRecords::open(&dir)
                    .await
                    .with_context(|| format!("embedded database in {}", dir.display()))?,
            )
        }
        DatabaseBackend::Cql => {
            let db = &config.database;
            let session = Arc::new(
                cql::connect(&db.cql_nodes)
                    .await
                    .context("database.cql_nodes")?,
            );
            if migrate {
                wagu_storage::records::cql::migrate(&session, &db.keyspace, db.replication_factor)
                    .await
                    .context("creating the CQL schema (database.migrate_on_start)")?;
            }
            Records::Cql(
                CqlRecords::new(session, &db.keyspace)
                    .await
                    .with_context(|| {
                        format!(
                            "CQL keyspace {} (run `wagu migrate` to create the schema)",
                            db.keyspace
                        )
                    })?,
            )
        }
    })
}

/// Loads the bundled sample places (fictional, ids `sample:…`) into an empty store.
async fn seed_sample_places(records: &Records) -> anyhow::Result<()> {
    if records.has_places().await? {
        return Ok(());
    }
    let parsed = import::parse(
        import::Format::Csv,
        wagu_storage::records::SAMPLE_PLACES_CSV,
    )
    .context("the bundled sample places")?;
    let report = import::import(records, parsed).await?;
    tracing::info!(
        places = report.accepted,
        "loaded the sample places (fictional; set database.seed_sample_places = false to skip)"
    );
    Ok(())
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
