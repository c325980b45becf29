//! The Wagu gateway: the `wagu` server binary's library half.
//!
//! - [`config`]: settings from defaults, a TOML file, `WAGU_*` variables and flags.
//! - [`app`]: opens the backends, starts the room engine, builds the router.
//! - [`state`]: `AppState`, what every handler and connection shares.
//! - [`engine_config`]: the room engine's configuration from the settings.
//! - [`auth`]: password hashing, access/refresh tokens, the `Authed` extractor.
//! - [`drafts`]: review drafts from a language model or the built-in template.
//! - [`http`]: the REST API, health and metrics.
//! - [`photos`]: photo uploads (decode, orient, strip metadata, resize), serving, the orphan sweep.
//! - [`ws`]: the WebSocket edge, one task per connection, no room state.
//! - [`error`]: `AppError`, the JSON error of the HTTP edge.
//! - [`fdlimit`]: the open-file budget that bounds the WebSockets a node holds.
//! - [`telemetry`]: logs and the Prometheus recorder.
//! - [`web`]: the embedded web client and its security headers.

pub mod app;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod drafts;
pub mod engine_config;
pub mod error;
pub mod fdlimit;
pub mod http;
pub mod photos;
pub mod state;
pub mod telemetry;
pub mod web;
pub mod ws;

pub use app::{App, AppState};
pub use config::Config;

/// Serves `app` on `listener` until `shutdown` resolves; then closes every WebSocket with
/// "resume" and stops the rooms.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app.router.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // Small realtime frames must not wait for Nagle's algorithm to coalesce them with the
    // next write (with delayed ACKs that adds up to tens of milliseconds per hop).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    // Connection info gives handlers the peer address (per-address creation limits).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        let _ = rx.await;
    });
    let handle = tokio::spawn(async move { server.await });
    // A signal (SIGTERM, Ctrl-C) or `POST /admin/drain` (`wagu drain`) starts the same stop.
    let requested = app.state.drain_requested.clone();
    tokio::select! {
        _ = shutdown => {}
        _ = requested.notified() => {}
    }
    // Drain first: not ready any more, then (in a cluster) sessions handed over in batches
    // while the server still answers, so clients resume on other nodes.
    app.drain().await;
    tracing::info!("shutting down: closing connections with 'resume'");
    app.begin_shutdown();
    let _ = tx.send(());
    // Upgraded WebSockets are not tracked by the HTTP server; give them a moment to close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while app
        .state
        .connections
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.stop_rooms().await;
    app.leave_cluster().await;
    handle.await.map_err(std::io::Error::other)?
}
