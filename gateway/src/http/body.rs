//! `ApiJson<T>`: a JSON request body whose every failure is an [`AppError`] (`invalid`, 400,
//! naming the field serde stumbled on), not axum's plain-text rejection. The size cap is the
//! router's `DefaultBodyLimit` ([`MAX_JSON_BYTES`] on the records API); over it is `too_large`.
//!
//! One rule for every JSON body ([`require_json`]): a non-empty body must be declared
//! `Content-Type: application/json` (parameters such as `charset=utf-8` and `+json` types are
//! fine); anything else, a missing header included, is 415 `unsupported_media_type`. A body
//! sent as a form (curl's default for `-d`) or as `text/plain` (which browsers send cross-site
//! without a CORS preflight) is a client bug to report, not to guess around.

use crate::error::AppError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

/// Largest JSON body of the records API (a post with 5,000 characters of text and a full menu
/// is well under 64 KiB).
pub const MAX_JSON_BYTES: usize = 64 * 1024;

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let headers = req.headers().clone();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    crate::error::HttpCode::TooLarge,
                    format!("the request body must be at most {MAX_JSON_BYTES} bytes"),
                )
            } else {
                AppError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
        require_json(&headers, &bytes)?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| AppError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Refuses a non-empty body not declared as JSON (415 `unsupported_media_type`). An empty (or
/// blank) body needs no type: it is read as "no body" where that is allowed (`POST /api/rooms`)
/// and refused as unreadable JSON elsewhere.
pub fn require_json(headers: &HeaderMap, body: &[u8]) -> Result<(), AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match declared {
        Some(t)
            if t == "application/json"
                || (t.starts_with("application/") && t.ends_with("+json")) =>
        {
            Ok(())
        }
        other => Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            crate::error::HttpCode::UnsupportedMediaType,
            format!(
                "send the body as JSON with `Content-Type: application/json` (got {})",
                other.map_or_else(|| "no Content-Type".to_string(), |t| format!("`{t}`"))
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(t: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = t {
            h.insert(header::CONTENT_TYPE, t.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_body_must_be_declared_json_and_an_empty_one_need_not() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(require_json(&typed(Some(ok)), b"{}").is_ok(), "{ok}");
        }
        for bad in [
            None,
            Some("application/x-www-form-urlencoded"),
            Some("text/plain"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
        ] {
            let e = require_json(&typed(bad), b"{}").unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad:?}");
            assert_eq!(e.code, "unsupported_media_type");
        }
        assert!(require_json(&typed(None), b"").is_ok());
        assert!(require_json(&typed(Some("text/plain")), b" \n").is_ok());
    }
}
