//! `ApiJson<T>`: a JSON request body whose every failure is an [`AppError`] (`invalid`, 400,
//! naming the field serde stumbled on), not axum's plain-text rejection. The size cap is the
//! router's `DefaultBodyLimit` ([`MAX_JSON_BYTES`] on the records API); over it is `too_large`.

use crate::error::AppError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// Largest JSON body of the records API (a post with 5,000 characters of text and a full menu
/// is well under 64 KiB).
pub const MAX_JSON_BYTES: usize = 64 * 1024;

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the request body must be at most {MAX_JSON_BYTES} bytes"),
                )
            } else {
                AppError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| AppError::bad_request(format!("invalid JSON body: {e}")))
    }
}
