//! Photos over HTTP: `POST /api/photos` (multipart upload, signed in, several files, a result
//! per file) and `GET /api/photos/{id}/{variant}` (the stored JPEG, immutable, with `ETag`).
//!
//! Limits are `photos.*` settings ([`crate::photos::PhotoConfig`]): the request body is capped
//! by this router's `DefaultBodyLimit` (`photos.max_request_bytes`), one file by
//! [`Photos::upload`](crate::photos::Photos::upload) (`photos.max_photo_bytes`), the count of
//! files here (`photos.max_files`).
//!
//! What it does not do: decode or store (the [`crate::photos`] service), presigned URLs.

use crate::auth::Authed;
use crate::error::{AppError, HttpCode};
use crate::http::limit::{ClientIp, check_rate};
use crate::http::openapi::{ErrorBody, ErrorDetail};
use crate::photos::pipeline::ImageRejected;
use crate::photos::{PhotoConfig, PhotoError, valid_id};
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use utoipa::ToSchema;
use wagu_proto::ErrorCode;
use wagu_proto::records::PhotoId;
use wagu_storage::records::photos::{PhotoRecord, VariantKind};

/// The multipart field every file goes in (`photo` is accepted too).
pub const FIELD: &str = "photos";
const FIELD_ALIAS: &str = "photo";
/// What every stored variant may be cached as: its URL names its content.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

pub fn router(config: &PhotoConfig) -> Router<AppState> {
    Router::new()
        .route("/api/photos", post(upload))
        .route("/api/photos/{id}/{variant}", get(variant))
        .layer(DefaultBodyLimit::max(config.max_request_bytes))
}

impl From<PhotoError> for AppError {
    fn from(e: PhotoError) -> Self {
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            PhotoError::Rejected(r) => match r {
                ImageRejected::NotAnImage => {
                    AppError::new(S::UNSUPPORTED_MEDIA_TYPE, HttpCode::NotAnImage, msg)
                }
                ImageRejected::Unsupported(_) => {
                    AppError::new(S::UNSUPPORTED_MEDIA_TYPE, HttpCode::UnsupportedFormat, msg)
                }
                ImageRejected::TooLarge(_) => {
                    AppError::new(S::UNPROCESSABLE_ENTITY, HttpCode::ImageTooLarge, msg)
                }
                ImageRejected::Corrupt(_) => {
                    AppError::new(S::UNPROCESSABLE_ENTITY, HttpCode::CorruptImage, msg)
                }
                ImageRejected::DecoderPanicked => {
                    AppError::new(S::UNPROCESSABLE_ENTITY, HttpCode::Undecodable, msg)
                }
                ImageRejected::Encode(_) => AppError::internal(msg),
            },
            PhotoError::FileTooLarge { .. } => {
                AppError::new(S::PAYLOAD_TOO_LARGE, HttpCode::TooLarge, msg)
            }
            PhotoError::Unknown(_) => {
                AppError::new(S::UNPROCESSABLE_ENTITY, HttpCode::UnknownPhoto, msg)
            }
            PhotoError::Foreign(_) => {
                AppError::new(S::UNPROCESSABLE_ENTITY, HttpCode::ForeignPhoto, msg)
            }
            PhotoError::Records(r) => r.into(),
            PhotoError::Blobs(b) => {
                tracing::error!(error = %b, "blob store failed");
                AppError::new(
                    S::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "the photo store is unavailable; retry shortly",
                )
            }
            PhotoError::Worker(w) => AppError::internal(w),
        }
    }
}

/// Where a photo's variants are served.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoUrls {
    /// Path of the thumb JPEG (at most 320 px on the long side), e.g. `/api/photos/{id}/thumb`.
    pub thumb: String,
    /// Path of the display JPEG (at most 1280 px on the long side).
    pub display: String,
}

/// A stored photo: what a post's `photos` may name.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoView {
    #[schema(value_type = String)]
    pub id: PhotoId,
    /// Width of the display variant, pixels (the photo upright).
    pub width: u32,
    /// Height of the display variant.
    pub height: u32,
    pub urls: PhotoUrls,
}

impl PhotoView {
    fn of(p: &PhotoRecord) -> Option<Self> {
        let display = p.variant(VariantKind::Display)?;
        p.variant(VariantKind::Thumb)?;
        let url = |kind: VariantKind| format!("/api/photos/{}/{}", p.id, kind.as_str());
        Some(PhotoView {
            id: p.id.clone(),
            width: display.width,
            height: display.height,
            urls: PhotoUrls {
                thumb: url(VariantKind::Thumb),
                display: url(VariantKind::Display),
            },
        })
    }
}

/// The outcome for one file: `photo` or `error`.
#[derive(Serialize, ToSchema)]
pub struct UploadedFile {
    /// The part's file name, as sent.
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photo: Option<PhotoView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// Per file, in the order sent. When no file could be stored the response is an error
/// (the first file's status and `error`) that still carries `files` (and an empty `photos`).
#[derive(Serialize, ToSchema)]
pub struct UploadResult {
    /// The photos stored, in the order sent (the files that failed left out).
    pub photos: Vec<PhotoView>,
    /// Every file, in the order sent: its `photo` or its `error`.
    pub files: Vec<UploadedFile>,
}

/// The form of `POST /api/photos`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the request; the handler reads the parts one by one
pub struct UploadForm {
    /// One part per file (repeat the field; `photo` is accepted as its name too), JPEG, PNG,
    /// WebP or GIF; the type is read from the bytes, not from the part's `Content-Type`.
    #[schema(value_type = Vec<String>, format = Binary)]
    photos: Vec<Vec<u8>>,
}

fn too_large(limit: usize) -> AppError {
    AppError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        HttpCode::TooLarge,
        format!("the request body must be at most {limit} bytes"),
    )
}

#[utoipa::path(post, operation_id = "upload_photos", path = "/api/photos", tag = "photos", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = UploadResult, description = "at least one file stored: `photos` lists the stored ones; `files` has each file's `photo` or `error` (codes as below)"),
        (status = 400, description = "`invalid`: not multipart/form-data, a part not named `photos` (or `photo`), or no file; `too_many_files`: more than `photos.max_files` (10)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, description = "`too_large`: the body is over `photos.max_request_bytes` (50 MiB), or the only file over `photos.max_photo_bytes` (20 MiB)", body = ErrorBody),
        (status = 415, description = "no file stored, the first was `not_an_image` (its bytes are no image) or `unsupported_format` (HEIC, AVIF, BMP, TIFF…); the body also has `files`", body = ErrorBody),
        (status = 422, description = "no file stored, the first was `image_too_large` (over `photos.max_dimension` or `photos.max_pixels`), `corrupt_image` (truncated or malformed) or `undecodable` (the decoder failed); the body also has `files`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many writes from this address", body = ErrorBody),
        (status = 503, description = "`unavailable`: the records or blob store failed; retry", body = ErrorBody)))]
pub async fn upload(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Authed(who): Authed,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let cfg = app.photos.config().clone();
    let mut form = form.map_err(|e| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Invalid,
            format!("send the photos as multipart/form-data in the field `{FIELD}`: {e}"),
        )
    })?;
    check_rate(&app.writes, ip, "writes")?;
    let owner = who.account();
    // Read every part first (the body is capped), so a request refused as a whole stores
    // nothing.
    let mut parts: Vec<(Option<String>, Result<Bytes, PhotoError>)> = Vec::new();
    loop {
        let field = form.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(cfg.max_request_bytes)
            } else {
                AppError::bad_request(format!("malformed multipart body: {}", e.body_text()))
            }
        })?;
        let Some(mut field) = field else { break };
        if !matches!(field.name(), Some(FIELD | FIELD_ALIAS)) {
            return Err(AppError::bad_request(format!(
                "unknown form field {:?}: send each file in a part named `{FIELD}`",
                field.name().unwrap_or("")
            )));
        }
        if parts.len() == cfg.max_files {
            return Err(AppError::new(
                StatusCode::BAD_REQUEST,
                HttpCode::TooManyFiles,
                format!("at most {} files per request", cfg.max_files),
            ));
        }
        let name = field.file_name().map(str::to_string);
        let mut buf = BytesMut::new();
        let mut size = 0usize;
        loop {
            let chunk = field.chunk().await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large(cfg.max_request_bytes)
                } else {
                    AppError::bad_request(format!("malformed multipart body: {}", e.body_text()))
                }
            })?;
            let Some(chunk) = chunk else { break };
            size += chunk.len();
            // Past the per-file limit the rest is read (the body cap bounds it) but not kept.
            if size <= cfg.max_photo_bytes {
                buf.extend_from_slice(&chunk);
            }
        }
        let file = if size > cfg.max_photo_bytes {
            Err(PhotoError::FileTooLarge {
                size,
                limit: cfg.max_photo_bytes,
            })
        } else {
            Ok(buf.freeze())
        };
        parts.push((name, file));
    }
    if parts.is_empty() {
        return Err(AppError::bad_request(format!(
            "no file: send each photo in a multipart part named `{FIELD}`"
        )));
    }
    let mut files = Vec::with_capacity(parts.len());
    let mut photos = Vec::with_capacity(parts.len());
    let mut first_error: Option<AppError> = None;
    let mut stored = 0;
    for (name, file) in parts {
        let outcome = match file {
            Ok(bytes) => app.photos.upload(&owner, bytes).await,
            Err(e) => Err(e),
        };
        let (photo, error) = match outcome.map(|p| (PhotoView::of(&p), PhotoView::of(&p))) {
            Ok((Some(view), Some(copy))) => {
                stored += 1;
                photos.push(copy);
                (Some(view), None)
            }
            Ok(_) => (
                None,
                Some(AppError::internal("stored photo lacks a variant")),
            ),
            Err(e) => (None, Some(AppError::from(e))),
        };
        let detail = error.as_ref().map(|e| ErrorDetail {
            code: e.code.to_string(),
            message: e.message.clone(),
        });
        if first_error.is_none() {
            first_error = error;
        }
        files.push(UploadedFile {
            name,
            photo,
            error: detail,
        });
    }
    let result = UploadResult { photos, files };
    match first_error {
        Some(e) if stored == 0 => {
            let body = serde_json::json!({
                "error": {"code": e.code.as_str(), "message": e.message},
                "files": result.files,
                "photos": [],
            });
            Ok((e.status, Json(body)).into_response())
        }
        _ => Ok((StatusCode::CREATED, Json(result)).into_response()),
    }
}

fn unknown_photo() -> AppError {
    AppError::not_found(HttpCode::UnknownPhoto, "no such photo")
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak and strong forms compare equal.
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

#[utoipa::path(get, operation_id = "get_photo", path = "/api/photos/{id}/{variant}", tag = "photos",
    params(("id" = String, Path), ("variant" = String, Path, description = "`thumb` (≤ 320 px) or `display` (≤ 1280 px)"),
        ("If-None-Match" = Option<String>, Header, description = "an `ETag` from before: 304 when it still matches")),
    responses(
        (status = 200, description = "the JPEG (`Content-Type: image/jpeg`), with `ETag` (its SHA-256, quoted) and `Cache-Control: public, max-age=31536000, immutable`", content_type = "image/jpeg", body = String),
        (status = 304, description = "`If-None-Match` matched: no body"),
        (status = 404, description = "`unknown_photo`: no such photo or variant", body = ErrorBody),
        (status = 503, description = "`unavailable`: the records or blob store failed; retry", body = ErrorBody)))]
pub async fn variant(
    State(app): State<AppState>,
    Path((id, variant)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let kind = VariantKind::parse(&variant).ok_or_else(unknown_photo)?;
    if !valid_id(&id) {
        return Err(unknown_photo());
    }
    let id = PhotoId(id);
    let photo = app.photos.photo(&id).await?.ok_or_else(unknown_photo)?;
    let v = photo.variant(kind).ok_or_else(unknown_photo)?;
    let etag = format!("\"{}\"", v.hash);
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(AppError::internal)?,
    );
    if matches(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, h).into_response());
    }
    let bytes = app
        .photos
        .blobs()
        .get(&v.key)
        .await
        .map_err(PhotoError::from)?
        .ok_or_else(unknown_photo)?;
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&v.content_type).map_err(AppError::internal)?,
    );
    Ok((StatusCode::OK, h, bytes).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_NONE_MATCH, v.parse().unwrap());
            m
        };
        assert!(matches(&h("\"abc\""), "\"abc\""));
        assert!(matches(&h("\"x\", W/\"abc\""), "\"abc\""));
        assert!(matches(&h("*"), "\"abc\""));
        assert!(!matches(&h("\"abd\""), "\"abc\""));
        assert!(!matches(&HeaderMap::new(), "\"abc\""));
    }
}
