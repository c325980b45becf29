//! `AppError`: the one error type of the HTTP edge. Every error leaves as JSON
//! `{"error": {"code": "...", "message": "..."}}` with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use wagu_engine::error::EngineError;
use wagu_proto::ErrorCode;
use wagu_storage::records::RecordError;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::auth::TokenError> for AppError {
    fn from(e: crate::auth::TokenError) -> Self {
        let code = match e {
            crate::auth::TokenError::Expired => "token_expired",
            _ => "invalid_token",
        };
        AppError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
    }
}

impl From<RecordError> for AppError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Taken(what) => AppError::new(
                StatusCode::CONFLICT,
                "taken",
                format!("this {what} is already registered"),
            ),
            RecordError::Conflict(_) => {
                AppError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            RecordError::IdempotencyMismatch => AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_mismatch",
                e.to_string(),
            ),
            RecordError::Invalid(m) => AppError::bad_request(m),
            other => {
                tracing::error!(error = %other, "records store failed");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the records store is unavailable; retry shortly",
                )
            }
        }
    }
}

impl From<wagu_proto::records::InvalidRecord> for AppError {
    fn from(e: wagu_proto::records::InvalidRecord) -> Self {
        AppError::bad_request(e.0)
    }
}

impl AppError {
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        let code = e.code();
        let status = match code {
            ErrorCode::UnknownRoom => StatusCode::NOT_FOUND,
            ErrorCode::ShareExpired | ErrorCode::RoomClosed => StatusCode::GONE,
            ErrorCode::Capacity | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "internal error");
        }
        AppError::new(status, code.as_str(), e.to_string())
    }
}
