//! Live streams over HTTP: `POST /api/streams` starts one (the answer carries the streamer
//! key), `GET /api/streams` lists live streams (newest, most watched, near a point, at a
//! place), `GET /api/streams/{id}` describes one, and `GET /api/places/{place_id}/streams`
//! lists the ended streams a place keeps ("was streamed here").

use crate::error::AppError;
use crate::http::limit::{ClientIp, check_create};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use wagu_engine::sessions::CreateStream;
use wagu_engine::stream::{EndedStream, StreamSummary, ended_prefix};
use wagu_proto::ids::{HostKey, PlaceId, StreamId};
use wagu_proto::limits::{MAX_PLACE_NAME_CHARS, MAX_TITLE_CHARS};
use wagu_proto::model::LatLng;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStreamBody {
    pub title: String,
    pub place_id: PlaceId,
    pub location: Option<LatLng>,
    #[serde(default)]
    pub menu: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedStreamBody {
    pub stream_id: StreamId,
    /// Join with this (`join_stream` with `streamer_key`) to be the streamer.
    pub streamer_key: HostKey,
    pub ws_url: String,
}

fn chars(s: &str) -> usize {
    s.trim().chars().count()
}

#[utoipa::path(post, operation_id = "create_stream", path = "/api/streams", tag = "streams", request_body = CreateStreamBody,
    responses((status = 415, description = "a body not declared `Content-Type: application/json`", body = crate::http::openapi::ErrorBody), (status = 201, body = CreatedStreamBody), (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 429, body = crate::http::openapi::ErrorBody), (status = 503, body = crate::http::openapi::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedStreamBody>), AppError> {
    crate::http::body::require_json(&headers, &body)?;
    let req: CreateStreamBody = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad_request(format!("cannot read the request body: {e}")))?;
    if !(1..=MAX_TITLE_CHARS).contains(&chars(&req.title)) {
        return Err(AppError::bad_request(format!(
            "title must be 1 to {MAX_TITLE_CHARS} characters"
        )));
    }
    wagu_proto::client::check_place_id(&req.place_id)
        .map_err(|e| AppError::bad_request(e.message))?;
    if req.location.is_some_and(|l| !l.is_valid()) {
        return Err(AppError::bad_request(
            "location must have lat within ±90 and lng within ±180",
        ));
    }
    if req.menu.len() > 20
        || req
            .menu
            .iter()
            .any(|m| !(1..=MAX_PLACE_NAME_CHARS).contains(&chars(m)))
    {
        return Err(AppError::bad_request(format!(
            "menu holds at most 20 items of 1 to {MAX_PLACE_NAME_CHARS} characters"
        )));
    }
    check_create(&app.creates, ip)?;
    let created = app
        .streams
        .create(CreateStream {
            title: req.title.trim().to_string(),
            place_id: req.place_id,
            location: req.location,
            menu: req.menu.iter().map(|m| m.trim().to_string()).collect(),
        })
        .await?;
    let ws = app.config.public_url().replacen("http", "ws", 1);
    Ok((
        StatusCode::CREATED,
        Json(CreatedStreamBody {
            stream_id: created.stream_id,
            streamer_key: created.streamer_key,
            ws_url: format!("{ws}/ws"),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `newest` (default) or `viewers` (most watched first).
    pub sort: Option<String>,
    /// `lat,lng`: only streams within `radius_km` of this point, nearest first unless `sort`.
    pub near: Option<String>,
    pub radius_km: Option<f64>,
    pub place_id: Option<String>,
    pub limit: Option<usize>,
}

#[utoipa::path(get, operation_id = "list_streams", path = "/api/streams", tag = "streams", params(ListQuery),
    responses((status = 200, body = Vec<StreamSummary>), (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 503, body = crate::http::openapi::ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<StreamSummary>>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let near = q
        .near
        .as_deref()
        .map(|s| crate::http::query::latlng("near", s))
        .transpose()?;
    let radius = q.radius_km.unwrap_or(5.0);
    if !(radius.is_finite() && radius > 0.0 && radius <= 20_000.0) {
        return Err(AppError::bad_request(
            "radius_km must be above 0 and at most 20000",
        ));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::bad_request("limit must be 1 to 200"));
    }
    let mut all = match &app.cluster {
        // Every node's streams, from the shared index (geo search when `near` is given).
        Some(c) => {
            let found = c
                .streams
                .list(near.map(|l| (l.lat, l.lng, radius)))
                .await
                .map_err(|e| {
                    AppError::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        wagu_proto::ErrorCode::Unavailable,
                        format!("stream index: {e}"),
                    )
                })?;
            found
                .iter()
                .filter_map(|b| serde_json::from_slice::<StreamSummary>(b).ok())
                .collect()
        }
        None => app.streams.list().await?,
    };
    if let Some(p) = &q.place_id {
        all.retain(|s| &s.place_id.0 == p);
    }
    if let Some(c) = near {
        all.retain(|s| {
            s.location
                .is_some_and(|l| wagu_storage::records::geo::distance_km(c, l) <= radius)
        });
    }
    match (q.sort.as_deref(), near) {
        (None | Some("newest"), None) | (Some("newest"), Some(_)) => {
            all.sort_by_key(|s| std::cmp::Reverse(s.started_at))
        }
        (None, Some(c)) => all.sort_by(|a, b| {
            let d = |s: &StreamSummary| {
                s.location
                    .map(|l| wagu_storage::records::geo::distance_km(c, l))
                    .unwrap_or(f64::MAX)
            };
            d(a).total_cmp(&d(b))
        }),
        (Some("viewers"), _) => all.sort_by(|a, b| {
            b.viewers
                .cmp(&a.viewers)
                .then(b.started_at.cmp(&a.started_at))
        }),
        (Some(other), _) => {
            return Err(AppError::bad_request(format!(
                "sort must be `newest` or `viewers`, not {other:?}"
            )));
        }
    }
    all.truncate(limit);
    Ok(Json(all))
}

#[utoipa::path(get, operation_id = "get_stream", path = "/api/streams/{id}", tag = "streams", params(("id" = String, Path)),
    responses((status = 200, body = StreamSummary), (status = 404, body = crate::http::openapi::ErrorBody)))]
pub async fn summary(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StreamSummary>, AppError> {
    if id.is_empty() || id.len() > 64 {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            wagu_proto::ErrorCode::UnknownRoom,
            "no live stream with this id",
        ));
    }
    Ok(Json(app.streams.summary(&StreamId(id)).await?))
}

#[utoipa::path(get, operation_id = "list_place_ended_streams", path = "/api/places/{id}/streams", tag = "streams", params(("id" = String, Path)),
    responses((status = 200, body = Vec<EndedStream>, description = "ended streams, newest first"), (status = 400, body = crate::http::openapi::ErrorBody)))]
pub async fn ended_at_place(
    State(app): State<AppState>,
    Path(place_id): Path<String>,
) -> Result<Json<Vec<EndedStream>>, AppError> {
    let place = PlaceId(place_id);
    wagu_proto::client::check_place_id(&place).map_err(|e| AppError::bad_request(e.message))?;
    let storage = |e: wagu_storage::StorageError| {
        tracing::error!(error = %e, "listing ended streams");
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            wagu_proto::ErrorCode::Unavailable,
            "the record store is not reachable",
        )
    };
    let keys = app
        .blobs
        .list(&ended_prefix(&place), 200)
        .await
        .map_err(storage)?;
    let mut out = Vec::new();
    for k in keys {
        if let Some(body) = app.blobs.get(&k).await.map_err(storage)?
            && let Ok(rec) = serde_json::from_slice::<EndedStream>(&body)
        {
            out.push(rec);
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.ended_at));
    Ok(Json(out))
}
