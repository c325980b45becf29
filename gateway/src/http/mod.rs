//! The HTTP API: rooms (`/api/rooms`), health (`/healthz`, `/readyz`) and `/metrics`.

mod health;
mod rooms;

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
}
