//! The HTTP API: rooms and streams (`/api/rooms`, `/api/streams`), the records API —
//! accounts, places and posts (`/api/auth`, `/api/me`, `/api/accounts`, `/api/places`,
//! `/api/posts`, `/api/photos`, review drafts at `/api/drafts`) with its OpenAPI document (`/api/openapi.json`) — health (`/healthz`,
//! `/readyz`) and `/metrics`.

pub(crate) mod accounts;
pub mod body;
mod drafts;
mod health;
pub mod limit;
pub mod openapi;
pub mod photos;
mod places;
mod posts;
pub mod query;
mod rooms;
mod social;
mod streams;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use accounts::SessionBody;

pub fn router() -> Router<AppState> {
    let records = Router::new()
        .route("/api/auth/signup", post(accounts::signup))
        .route("/api/auth/login", post(accounts::login))
        .route("/api/auth/refresh", post(accounts::refresh))
        .route("/api/auth/logout", post(accounts::logout))
        .route("/api/auth/providers", get(social::provider_list))
        .route("/api/auth/oidc", get(social::providers))
        .route("/api/auth/oidc/exchange", post(social::exchange))
        .route("/api/auth/oidc/{name}/start", get(social::start))
        .route("/api/auth/oidc/{name}/callback", get(social::callback))
        .route("/api/me", get(accounts::me))
        .route("/api/accounts/{id}", get(accounts::get))
        .route("/api/accounts/{id}/posts", get(posts::by_author))
        .route("/api/places", get(places::search).post(places::create))
        .route("/api/places/{place_id}", get(places::get))
        .route("/api/places/{place_id}/posts", get(posts::by_place))
        .route("/api/posts", post(posts::create).get(posts::near))
        .route(
            "/api/posts/{id}",
            get(posts::get).patch(posts::edit).delete(posts::delete),
        )
        .route("/api/drafts", post(drafts::create))
        .route("/api/openapi.json", get(openapi::document))
        .layer(DefaultBodyLimit::max(body::MAX_JSON_BYTES));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/admin/drain", post(health::drain))
        .route("/metrics", get(health::metrics))
        .route("/api/rooms", post(rooms::create))
        .route("/api/rooms/{share}", get(rooms::summary))
        .route("/api/streams", post(streams::create).get(streams::list))
        .route("/api/streams/{id}", get(streams::summary))
        .route(
            "/api/places/{place_id}/streams",
            get(streams::ended_at_place),
        )
        .merge(records)
}
