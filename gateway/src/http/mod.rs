//! The HTTP API: rooms (`/api/rooms`), health (`/healthz`, `/readyz`) and `/metrics`.

mod health;
pub mod limit;
mod rooms;
mod streams;

use crate::app::AppState;
use axum::Router;
use axum::routing::{get, post};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/rooms", post(rooms::create))
        .route("/api/rooms/{share}", get(rooms::summary))
        .route("/api/streams", post(streams::create).get(streams::list))
        .route("/api/streams/{id}", get(streams::summary))
        .route(
            "/api/places/{place_id}/streams",
            get(streams::ended_at_place),
        )
}
