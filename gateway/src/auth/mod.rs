//! Accounts' credentials at the edge: password hashing ([`password`]), access and refresh
//! tokens ([`token`]), social log-in through OpenID Connect or OAuth 2.0 ([`social`]), and the [`Authed`] extractor that turns an `Authorization: Bearer`
//! header into verified [`Claims`] without touching any store.
//!
//! What it does not do: store accounts (the records store does), or decide what an account
//! may do (each handler does: "author only" lives with the posts).

pub mod password;
pub mod social;
pub mod token;

pub use token::{Claims, TokenError, Tokens};

use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

/// A request signed in with a valid access token.
pub struct Authed(pub Claims);

/// The bearer token of a request: `None` without an `Authorization` header, an error when the
/// header is there but is not `Bearer <token>`.
fn bearer(parts: &Parts) -> Result<Option<&str>, AppError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::from(TokenError::Invalid))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            wagu_proto::ErrorCode::InvalidToken,
            "Authorization must be `Bearer <access token>`",
        )),
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        match bearer(parts)? {
            Some(t) => Ok(Authed(app.tokens.verify(t)?)),
            None => Err(AppError::new(
                StatusCode::UNAUTHORIZED,
                crate::error::HttpCode::Unauthenticated,
                "sign in: this needs `Authorization: Bearer <access token>`",
            )),
        }
    }
}

/// `Option<Authed>`: anonymous when there is no header, refused when there is a bad one (a
/// client that meant to sign in must hear that its token failed).
impl OptionalFromRequestParts<AppState> for Authed {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Option<Self>, AppError> {
        match bearer(parts)? {
            Some(t) => Ok(Some(Authed(app.tokens.verify(t)?))),
            None => Ok(None),
        }
    }
}
