//! `GET /ws`: the WebSocket edge. The upgrade handler checks the Origin allow-list and the
//! node's connection limit, sets frame size limits, then hands the socket to
//! [`connection::serve`], which is generic over `Sink + Stream` so tests can drive it with
//! channels.

pub mod connection;
pub mod ratelimit;
pub mod wire;

use crate::error::AppError;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use std::sync::atomic::Ordering;

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(
    State(app): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let allowed = &app.config.limits.allowed_origins;
    if !allowed.is_empty() {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !allowed.iter().any(|a| a == origin) {
            metrics::counter!("wagu_frames_refused_total", "code" => "origin").increment(1);
            return Err(AppError::new(
                StatusCode::FORBIDDEN,
                crate::error::HttpCode::ForbiddenOrigin,
                format!("origin {origin:?} is not allowed"),
            ));
        }
    }
    let max = app.max_connections;
    if app.connections.load(Ordering::Relaxed) >= max {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            wagu_proto::ErrorCode::Capacity,
            format!("this node holds its maximum of {max} connections"),
        ));
    }
    // The transport refuses frames over twice our limit outright (close 1009), which bounds
    // memory; frames between the limit and that get a typed error and the connection lives.
    let hard = app.config.limits.max_frame_bytes * 2;
    Ok(ws
        .max_message_size(hard)
        .max_frame_size(hard)
        // tungstenite's defaults (128 KiB read and write buffers) would cost a quarter of a
        // megabyte per idle connection. Client frames are small (the read buffer grows for a
        // larger one); writes are batched per flush, so the write buffer may grow to a batch.
        .read_buffer_size(512)
        .write_buffer_size(16 * 1024)
        // Only a backstop: a single frame larger than this could never be written, and a room
        // snapshot with 200 long chat messages can approach a megabyte.
        .max_write_buffer_size(16 * 1024 * 1024)
        .on_upgrade(move |socket| {
            // Boxed, so that the task axum spawns holds a pointer: a future awaited inside
            // another is laid out in it more than once (rust-lang/rust#62958), and inline this
            // one took 3.2 kB of every connection's task instead of its own 1.3 kB.
            Box::pin(connection::serve(socket, app))
        }))
}
