//! Posts (visit reviews) over HTTP: create (idempotent with `Idempotency-Key`), read, edit and
//! delete (author only), and the feeds — by author, by place, and near a point — newest first
//! with cursor paging. A post's `photos` must be its author's uploads (422 `unknown_photo` /
//! `foreign_photo`); the photo service records which posts use which photo.
//!
//! The post copies its place's name and location when written, so feeds need no second read
//! and "near me" finds it by where the place is.

use crate::auth::{Authed, token};
use crate::error::AppError;
use crate::http::body::ApiJson;
use crate::http::limit::{ClientIp, check_rate};
use crate::http::places::check_place_path;
use crate::http::query;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use wagu_proto::PlaceId;
use wagu_proto::records::{
    AccountId, MenuItem, Page, PhotoId, Post, PostDraft, PostId, TextOrigin, check_idempotency_key,
};
use wagu_storage::records::{Created, Idempotency, PlaceStore, PostStore, RecordError, Scope};

use wagu_storage::records::now_millis as now_ms;

fn today() -> i64 {
    (now_ms() / 86_400_000) as i64
}

fn unknown_post() -> AppError {
    AppError::not_found(crate::error::HttpCode::UnknownPost, "no such post")
}

/// Post ids are 22 URL-safe characters; anything else cannot exist.
fn check_post_path(id: &str) -> Result<PostId, AppError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| PostId(id.to_string())).ok_or_else(unknown_post)
}

/// Trims what the author typed; the stored post never carries stray whitespace.
fn tidy(mut d: PostDraft) -> PostDraft {
    d.text = d.text.trim().to_string();
    d.visit_date = d.visit_date.trim().to_string();
    for m in &mut d.menu {
        m.name = m.name.trim().to_string();
    }
    d
}

pub(crate) async fn place_of(
    app: &AppState,
    id: &PlaceId,
) -> Result<wagu_proto::records::Place, AppError> {
    app.records.place(id).await?.ok_or_else(|| {
        AppError::bad_request(format!(
            "place_id {} names no known place (search /api/places or add it with POST /api/places)",
            id.0
        ))
    })
}

#[utoipa::path(post, operation_id = "create_post", path = "/api/posts", tag = "posts", security(("bearer" = [])),
    request_body = PostDraft,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1-64 printable ASCII; a retry with the same key and body returns the first post")),
    responses((status = 415, description = "a body not declared `Content-Type: application/json`", body = crate::http::openapi::ErrorBody), (status = 201, body = Post, description = "created, or the replay of an earlier create with the same key (header `Idempotent-Replayed: true`)"),
        (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 413, description = "`too_large`: body over 64 KiB", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "`idempotency_mismatch`: key reused with another body; `unknown_photo` / `foreign_photo`: `photos` names a photo that does not exist or that someone else uploaded", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "`rate_limited`: too many writes from this address", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "`unavailable`: the records store failed; retry", body = crate::http::openapi::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Authed(who): Authed,
    headers: HeaderMap,
    ApiJson(draft): ApiJson<PostDraft>,
) -> Result<Response, AppError> {
    let draft = tidy(draft);
    draft.validate(today())?;
    let idem = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .map_err(|_| AppError::bad_request("Idempotency-Key must be printable ASCII"))?;
            check_idempotency_key(key)?;
            let body = serde_json::to_vec(&draft).map_err(AppError::internal)?;
            Some(Idempotency {
                key: key.to_string(),
                fingerprint: token::sha256_hex(&body),
            })
        }
    };
    let place = place_of(&app, &draft.place_id).await?;
    check_rate(&app.writes, ip, "writes")?;
    app.photos
        .check_owned(&who.account(), &draft.photos)
        .await?;
    let now = now_ms();
    let post = Post {
        id: PostId(token::random_id()),
        author: who.account(),
        author_name: who.name.clone(),
        place_name: place.name,
        location: place.location,
        created_at: now,
        updated_at: now,
        draft,
    };
    // Attached before the post exists, so the sweep never sees a used photo unattached.
    let photos = post.draft.photos.clone();
    app.photos.attach(&post.id, &photos).await?;
    // On an error the post may or may not exist (a timed-out write): the attachments stay,
    // and the sweep detaches them if the post never appears.
    let created = app.records.create_post(&post, idem.as_ref()).await?;
    let (post, replayed) = match created {
        Created::Created(p) => {
            metrics::counter!("wagu_posts_created_total").increment(1);
            (p, false)
        }
        Created::Replayed(p) => {
            // The earlier post holds the photos; the id made for this request is unused.
            app.photos.detach(&post.id, &photos).await;
            (p, true)
        }
    };
    let mut resp = (StatusCode::CREATED, Json(post)).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

#[utoipa::path(get, operation_id = "get_post", path = "/api/posts/{id}", tag = "posts",
    params(("id" = String, Path)),
    responses((status = 200, body = Post), (status = 404, body = crate::http::openapi::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Post>, AppError> {
    let id = check_post_path(&id)?;
    app.records
        .post(&id)
        .await?
        .map(Json)
        .ok_or_else(unknown_post)
}

/// An edit: only the fields given change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostPatch {
    pub place_id: Option<PlaceId>,
    pub visit_date: Option<String>,
    pub menu: Option<Vec<MenuItem>>,
    pub rating: Option<u8>,
    pub text: Option<String>,
    pub photos: Option<Vec<PhotoId>>,
    pub text_origin: Option<TextOrigin>,
}

/// The post, if `who` wrote it: 404 when there is none, 403 when someone else wrote it.
async fn own_post(app: &AppState, id: &str, who: &AccountId) -> Result<Post, AppError> {
    let id = check_post_path(id)?;
    let post = app.records.post(&id).await?.ok_or_else(unknown_post)?;
    if &post.author != who {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            wagu_proto::ErrorCode::Forbidden,
            "only the author may change this post",
        ));
    }
    Ok(post)
}

#[utoipa::path(patch, operation_id = "edit_post", path = "/api/posts/{id}", tag = "posts", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = PostPatch,
    responses((status = 415, description = "a body not declared `Content-Type: application/json`", body = crate::http::openapi::ErrorBody), (status = 200, body = Post), (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 403, body = crate::http::openapi::ErrorBody), (status = 404, body = crate::http::openapi::ErrorBody),
        (status = 409, description = "edited concurrently: read it again", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "`unknown_photo` / `foreign_photo`: `photos` adds a photo that does not exist or that someone else uploaded", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "`too_large`: body over 64 KiB", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "`rate_limited`: too many writes from this address", body = crate::http::openapi::ErrorBody)))]
pub async fn edit(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Authed(who): Authed,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<PostPatch>,
) -> Result<Json<Post>, AppError> {
    let old = own_post(&app, &id, &who.account()).await?;
    let mut new = old.clone();
    let d = &mut new.draft;
    if let Some(v) = patch.place_id {
        d.place_id = v;
    }
    if let Some(v) = patch.visit_date {
        d.visit_date = v;
    }
    if let Some(v) = patch.menu {
        d.menu = v;
    }
    if let Some(v) = patch.rating {
        d.rating = v;
    }
    if let Some(v) = patch.text {
        d.text = v;
    }
    if let Some(v) = patch.photos {
        d.photos = v;
    }
    if let Some(v) = patch.text_origin {
        d.text_origin = v;
    }
    new.draft = tidy(new.draft);
    new.draft.validate(today())?;
    if new.draft.place_id != old.draft.place_id {
        let place = place_of(&app, &new.draft.place_id).await?;
        new.place_name = place.name;
        new.location = place.location;
    }
    check_rate(&app.writes, ip, "writes")?;
    let added: Vec<PhotoId> = new
        .draft
        .photos
        .iter()
        .filter(|p| !old.draft.photos.contains(p))
        .cloned()
        .collect();
    let removed: Vec<PhotoId> = old
        .draft
        .photos
        .iter()
        .filter(|p| !new.draft.photos.contains(p))
        .cloned()
        .collect();
    app.photos.check_owned(&who.account(), &added).await?;
    app.photos.attach(&new.id, &added).await?;
    new.author_name = who.name.clone();
    // Strictly later than the version it replaces, whatever this node's clock says: the
    // store's compare-and-set tells versions apart by this value.
    new.updated_at = now_ms().max(old.updated_at + 1);
    let replaced = app.records.replace_post(&old, &new).await;
    // The photos the post no longer uses become sweep candidates: the removed ones if the
    // edit applied, the added ones if it surely did not (a conflict). After another error
    // the edit may have applied: the sweep sorts those attachments out.
    match &replaced {
        Ok(()) => app.photos.detach(&new.id, &removed).await,
        Err(RecordError::Conflict(_)) => app.photos.detach(&new.id, &added).await,
        Err(_) => {}
    }
    match replaced {
        Ok(()) => Ok(Json(new)),
        // Edited or deleted since we read it: a deleted post is gone (404), an edited one is
        // the client's to re-read and merge (409), never silently overwritten.
        Err(RecordError::Conflict(_)) if app.records.post(&old.id).await?.is_none() => {
            Err(unknown_post())
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(delete, operation_id = "delete_post", path = "/api/posts/{id}", tag = "posts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::http::openapi::ErrorBody),
        (status = 404, body = crate::http::openapi::ErrorBody)))]
pub async fn delete(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let post = own_post(&app, &id, &who.account()).await?;
    check_rate(&app.writes, ip, "writes")?;
    app.records.delete_post(&post).await?;
    app.photos.detach(&post.id, &post.draft.photos).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NearQuery {
    /// `lat,lng`.
    pub near: String,
    /// Up to 5 km, default 3.
    pub radius_km: Option<f64>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

#[utoipa::path(get, operation_id = "list_posts_near", path = "/api/posts", tag = "posts", params(NearQuery),
    responses((status = 200, body = Page<Post>), (status = 400, body = crate::http::openapi::ErrorBody)))]
pub async fn near(
    State(app): State<AppState>,
    q: Result<Query<NearQuery>, QueryRejection>,
) -> Result<Json<Page<Post>>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let center = query::latlng("near", &q.near)?;
    let limit = query::page_limit(q.limit)?;
    let radius = q.radius_km.unwrap_or(3.0);
    Ok(Json(
        app.records
            .posts_near(center, radius, q.cursor.as_deref(), limit)
            .await?,
    ))
}

#[utoipa::path(get, operation_id = "list_account_posts", path = "/api/accounts/{id}/posts", tag = "posts",
    params(("id" = String, Path), FeedQuery),
    responses((status = 200, body = Page<Post>), (status = 400, body = crate::http::openapi::ErrorBody)))]
pub async fn by_author(
    State(app): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Json<Page<Post>>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let limit = query::page_limit(q.limit)?;
    let scope = Scope::Author(crate::http::accounts::check_account_path(id)?);
    Ok(Json(
        app.records.feed(&scope, q.cursor.as_deref(), limit).await?,
    ))
}

#[utoipa::path(get, operation_id = "list_place_posts", path = "/api/places/{id}/posts", tag = "posts",
    params(("id" = String, Path), FeedQuery),
    responses((status = 200, body = Page<Post>), (status = 400, body = crate::http::openapi::ErrorBody)))]
pub async fn by_place(
    State(app): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Json<Page<Post>>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    let limit = query::page_limit(q.limit)?;
    let scope = Scope::Place(check_place_path(&id)?);
    Ok(Json(
        app.records.feed(&scope, q.cursor.as_deref(), limit).await?,
    ))
}
