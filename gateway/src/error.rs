//! `AppError`: the one error type of the HTTP edge. Every error leaves as JSON
//! `{"error": {"code": "...", "message": "..."}}` with a fitting status.
//!
//! Codes are typed ([`ApiCode`]): a code the WebSocket protocol also uses is its
//! [`ErrorCode`]; the HTTP API's own codes are [`HttpCode`]. One vocabulary, no strings.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use wagu_engine::error::EngineError;
use wagu_proto::ErrorCode;
use wagu_storage::records::RecordError;

/// The HTTP API's own error codes (those the WebSocket protocol has are [`ErrorCode`]s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpCode {
    Conflict,
    ForbiddenOrigin,
    IdempotencyMismatch,
    InvalidCredentials,
    InvalidRefresh,
    InvalidState,
    OidcDenied,
    OidcFailed,
    Taken,
    TooLarge,
    Unauthenticated,
    UnknownAccount,
    UnknownPlace,
    UnknownPost,
    UnknownProvider,
    UnsupportedMediaType,
    NotAnImage,
    UnsupportedFormat,
    ImageTooLarge,
    CorruptImage,
    Undecodable,
    UnknownPhoto,
    ForeignPhoto,
    TooManyFiles,
    InvalidCode,
    StreamingOff,
    ModelUnreachable,
    ModelUnavailable,
    ModelTimeout,
    ModelRejectsImages,
    ModelError,
    ModelBadAnswer,
    NotLoopback,
}

impl HttpCode {
    pub fn as_str(&self) -> &'static str {
        use HttpCode::*;
        match self {
            Conflict => "conflict",
            ForbiddenOrigin => "forbidden_origin",
            IdempotencyMismatch => "idempotency_mismatch",
            InvalidCredentials => "invalid_credentials",
            InvalidRefresh => "invalid_refresh",
            InvalidState => "invalid_state",
            OidcDenied => "oidc_denied",
            OidcFailed => "oidc_failed",
            Taken => "taken",
            TooLarge => "too_large",
            Unauthenticated => "unauthenticated",
            UnknownAccount => "unknown_account",
            UnknownPlace => "unknown_place",
            UnknownPost => "unknown_post",
            UnknownProvider => "unknown_provider",
            UnsupportedMediaType => "unsupported_media_type",
            NotAnImage => "not_an_image",
            UnsupportedFormat => "unsupported_format",
            ImageTooLarge => "image_too_large",
            CorruptImage => "corrupt_image",
            Undecodable => "undecodable",
            UnknownPhoto => "unknown_photo",
            ForeignPhoto => "foreign_photo",
            TooManyFiles => "too_many_files",
            InvalidCode => "invalid_code",
            StreamingOff => "streaming_off",
            ModelUnreachable => "model_unreachable",
            ModelUnavailable => "model_unavailable",
            ModelTimeout => "model_timeout",
            ModelRejectsImages => "model_rejects_images",
            ModelError => "model_error",
            ModelBadAnswer => "model_bad_answer",
            NotLoopback => "not_loopback",
        }
    }
}

/// The `error.code` of an HTTP error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiCode {
    /// A code the WebSocket protocol shares (`invalid`, `forbidden`, `rate_limited`, …).
    Protocol(ErrorCode),
    Http(HttpCode),
}

impl ApiCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ApiCode::Protocol(c) => c.as_str(),
            ApiCode::Http(c) => c.as_str(),
        }
    }
}

impl From<ErrorCode> for ApiCode {
    fn from(c: ErrorCode) -> Self {
        ApiCode::Protocol(c)
    }
}

impl From<HttpCode> for ApiCode {
    fn from(c: HttpCode) -> Self {
        ApiCode::Http(c)
    }
}

impl PartialEq<&str> for ApiCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ApiCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: ApiCode,
    pub message: String,
}

impl AppError {
    pub fn new(status: StatusCode, code: impl Into<ApiCode>, message: impl Into<String>) -> Self {
        AppError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({ "error": { "code": self.code.as_str(), "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::auth::TokenError> for AppError {
    fn from(e: crate::auth::TokenError) -> Self {
        let code = match e {
            crate::auth::TokenError::Expired => ErrorCode::TokenExpired,
            _ => ErrorCode::InvalidToken,
        };
        AppError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
    }
}

impl From<RecordError> for AppError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Taken(what) => AppError::new(
                StatusCode::CONFLICT,
                HttpCode::Taken,
                format!("this {what} is already registered"),
            ),
            RecordError::Conflict(_) => {
                AppError::new(StatusCode::CONFLICT, HttpCode::Conflict, e.to_string())
            }
            RecordError::IdempotencyMismatch => AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                HttpCode::IdempotencyMismatch,
                e.to_string(),
            ),
            RecordError::Invalid(m) => AppError::bad_request(m),
            other => {
                tracing::error!(error = %other, "records store failed");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
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
    pub fn not_found(code: impl Into<ApiCode>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
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
        AppError::new(status, code, e.to_string())
    }
}
