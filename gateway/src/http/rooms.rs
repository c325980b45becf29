//! `POST /api/rooms` creates a map room and returns its share link; `GET /api/rooms/{share}`
//! previews the room behind a link.

use crate::error::AppError;
use crate::http::limit::{ClientIp, check_create};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use wagu_engine::room::RoomSummary;
use wagu_engine::sessions::CreateRoom;
use wagu_proto::ids::{HostKey, RoomId, ShareToken};
use wagu_proto::limits::{MAX_CHOICES, MAX_TITLE_CHARS};
use wagu_proto::model::{LatLng, UnixMillis, VoteMode};

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomBody {
    pub title: Option<String>,
    pub center: Option<LatLng>,
    pub vote_mode: Option<VoteMode>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedRoomBody {
    pub room_id: RoomId,
    /// The secret that admits people: put it in the link you share.
    pub share_token: ShareToken,
    pub share_url: String,
    /// Join with this to be the host. Keep it to yourself.
    pub host_key: HostKey,
    pub share_expires_at: UnixMillis,
    /// Where to open the WebSocket.
    pub ws_url: String,
}

#[utoipa::path(post, operation_id = "create_room", path = "/api/rooms", tag = "rooms", request_body(content = Option<CreateRoomBody>, description = "optional; empty means all defaults"),
    responses((status = 415, description = "a body not declared `Content-Type: application/json`", body = crate::http::openapi::ErrorBody), (status = 201, body = CreatedRoomBody), (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 429, body = crate::http::openapi::ErrorBody), (status = 503, body = crate::http::openapi::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedRoomBody>), AppError> {
    crate::http::body::require_json(&headers, &body)?;
    let req: CreateRoomBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateRoomBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_request(format!("cannot read the request body: {e}")))?
    };
    if let Some(t) = &req.title
        && t.trim().chars().count() > MAX_TITLE_CHARS
    {
        return Err(AppError::bad_request(format!(
            "title must be at most {MAX_TITLE_CHARS} characters"
        )));
    }
    if req.center.is_some_and(|c| !c.is_valid()) {
        return Err(AppError::bad_request(
            "center must have lat within ±90 and lng within ±180",
        ));
    }
    if let Some(VoteMode::Approval { max }) = req.vote_mode
        && (max == 0 || usize::from(max) > MAX_CHOICES)
    {
        return Err(AppError::bad_request(format!(
            "vote_mode.max must be 1 to {MAX_CHOICES}"
        )));
    }
    check_create(&app.creates, ip)?;
    let created = app
        .rooms
        .create(CreateRoom {
            title: req.title,
            center: req.center,
            vote_mode: req.vote_mode,
        })
        .await?;
    let base = app.config.public_url();
    let ws_base = base.replacen("http", "ws", 1);
    Ok((
        StatusCode::CREATED,
        Json(CreatedRoomBody {
            room_id: created.room_id,
            share_url: format!("{base}/join/{}", created.share.0),
            share_token: created.share,
            host_key: created.host_key,
            share_expires_at: created.share_expires_at,
            ws_url: format!("{ws_base}/ws"),
        }),
    ))
}

#[utoipa::path(get, operation_id = "get_room_preview", path = "/api/rooms/{share}", tag = "rooms", params(("share" = String, Path, description = "the share token")),
    responses((status = 200, body = RoomSummary, description = "also for a link past `share_expires_at` (compare it: such a link admits no newcomers)"),
        (status = 404, description = "`unknown_room`: no room behind this link (never existed, closed by its host or closing, ended empty, expired from the store)", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "`unavailable`: the room did not answer in time; retry", body = crate::http::openapi::ErrorBody)))]
pub async fn summary(
    State(app): State<AppState>,
    Path(share): Path<String>,
) -> Result<Json<RoomSummary>, AppError> {
    if share.is_empty() || share.len() > 128 {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            wagu_proto::ErrorCode::UnknownRoom,
            "no room behind this share link",
        ));
    }
    Ok(Json(app.rooms.summary(&ShareToken(share)).await?))
}
