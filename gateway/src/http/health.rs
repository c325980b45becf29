//! Liveness (the process answers), readiness (every configured backend answers, rooms accept
//! work) and the Prometheus text.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(2);

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let mut record = |name: &str, backend: &str, r: Result<(), String>| {
        ready &= r.is_ok();
        checks.insert(
            name.into(),
            match r {
                Ok(()) => json!({ "backend": backend, "ok": true }),
                Err(e) => json!({ "backend": backend, "ok": false, "error": e }),
            },
        );
    };
    // A draining node answers 503 from the first moment, so balancers send nobody new.
    if app.draining.is_on() {
        record("drain", "node", Err("draining".into()));
    }
    if let Some(f) = app.cluster.as_ref().map(|c| &c.fence) {
        let lease = match f.refusal() {
            None => Ok(()),
            Some(why) => Err(why.to_string()),
        };
        record("cluster", "redis lease", lease);
    }
    if let Some(bus) = app.cluster.as_ref().map(|c| &c.bus) {
        let r = tokio::time::timeout(LIMIT, bus.ping()).await;
        record("bus", bus.backend(), flatten(r));
    }
    let r = tokio::time::timeout(LIMIT, app.ephemeral.ping()).await;
    record("ephemeral", app.ephemeral.backend(), flatten(r));
    let r = tokio::time::timeout(LIMIT, app.blobs.ping()).await;
    record("blobs", app.blobs.backend(), flatten(r));
    let r = tokio::time::timeout(LIMIT, app.records.ping()).await;
    record("database", app.records.backend(), flatten(r));
    let r = tokio::time::timeout(LIMIT, app.rooms.count()).await;
    record("rooms", "actors", flatten(r.map(|x| x.map(|_| ()))));
    let r = tokio::time::timeout(LIMIT, app.streams.count()).await;
    record("streams", "actors", flatten(r.map(|x| x.map(|_| ()))));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "not_ready" }, "checks": checks });
    (status, Json(body))
}

fn flatten<E: std::fmt::Display>(
    r: Result<Result<(), E>, tokio::time::error::Elapsed>,
) -> Result<(), String> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out after 2s".into()),
    }
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// `POST /admin/drain`: starts this node's drain and stop (what SIGTERM does). Only from the
/// node's own host (loopback); anything else is 403.
pub async fn drain(
    State(app): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
) -> Result<impl IntoResponse, crate::error::AppError> {
    if !peer.ip().is_loopback() {
        return Err(crate::error::AppError::new(
            StatusCode::FORBIDDEN,
            crate::error::HttpCode::NotLoopback,
            "a drain is only taken from the node's own host (loopback)",
        ));
    }
    app.drain_requested.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "draining" }))))
}
