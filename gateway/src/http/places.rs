//! Places (restaurants) over HTTP: search by name prefix or by map viewport
//! (`GET /api/places`), one place (`GET /api/places/{id}`), and adding a missing one
//! (`POST /api/places`, signed in).
//!
//! Place ids may contain `/` (`osm:node/123`): clients percent-encode them in paths.

use crate::auth::{Authed, token};
use crate::error::AppError;
use crate::http::body::ApiJson;
use crate::http::limit::{ClientIp, check_rate};
use crate::http::query;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use wagu_proto::PlaceId;
use wagu_proto::model::LatLng;
use wagu_proto::records::{Page, Place};
use wagu_storage::records::PlaceStore;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Name prefix (any word of the name), case-insensitive, Korean or Latin.
    pub q: Option<String>,
    /// Map viewport `swlat,swlng,nelat,nelng`.
    pub bbox: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
}

#[utoipa::path(get, operation_id = "list_places", path = "/api/places", tag = "places", params(SearchQuery),
    responses((status = 200, body = Page<Place>), (status = 400, body = crate::http::openapi::ErrorBody)))]
pub async fn search(
    State(app): State<AppState>,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Page<Place>>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let limit = query::page_limit(q.limit)?;
    let cursor = q.cursor.as_deref();
    let page = match (&q.q, &q.bbox) {
        (Some(text), None) => {
            if text.chars().count() > 100 {
                return Err(AppError::bad_request("q must be at most 100 characters"));
            }
            app.records.search_places(text, cursor, limit).await?
        }
        (None, Some(b)) => {
            let b = query::bounds("bbox", b)?;
            app.records.places_in_bounds(&b, cursor, limit).await?
        }
        _ => {
            return Err(AppError::bad_request(
                "give exactly one of q (name prefix) or bbox (viewport)",
            ));
        }
    };
    Ok(Json(page))
}

pub(crate) fn check_place_path(id: &str) -> Result<PlaceId, AppError> {
    let id = PlaceId(id.to_string());
    wagu_proto::client::check_place_id(&id)
        .map_err(|_| AppError::not_found(crate::error::HttpCode::UnknownPlace, "no such place"))?;
    Ok(id)
}

#[utoipa::path(get, operation_id = "get_place", path = "/api/places/{id}", tag = "places",
    params(("id" = String, Path, description = "place id (percent-encode `/`)")),
    responses((status = 200, body = Place), (status = 404, body = crate::http::openapi::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Place>, AppError> {
    let id = check_place_path(&id)?;
    app.records
        .place(&id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::not_found(crate::error::HttpCode::UnknownPlace, "no such place"))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlaceBody {
    pub name: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub address: String,
    pub location: LatLng,
    pub phone: Option<String>,
    pub hours: Option<String>,
}

fn trimmed(s: Option<String>) -> Option<String> {
    s.map(|x| x.trim().to_string()).filter(|x| !x.is_empty())
}

#[utoipa::path(post, operation_id = "create_place", path = "/api/places", tag = "places", security(("bearer" = [])),
    request_body = NewPlaceBody,
    responses((status = 415, description = "a body not declared `Content-Type: application/json`", body = crate::http::openapi::ErrorBody), (status = 201, body = Place), (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 401, body = crate::http::openapi::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Authed(_who): Authed,
    ApiJson(req): ApiJson<NewPlaceBody>,
) -> Result<(StatusCode, Json<Place>), AppError> {
    let place = Place {
        id: PlaceId(format!("u:{}", token::random_id())),
        name: req.name.trim().to_string(),
        category: req.category.trim().to_lowercase(),
        address: req.address.trim().to_string(),
        location: req.location,
        phone: trimmed(req.phone),
        hours: trimmed(req.hours),
    };
    place.validate()?;
    check_rate(&app.writes, ip, "writes")?;
    app.records.put_place(&place).await?;
    Ok((StatusCode::CREATED, Json(place)))
}
