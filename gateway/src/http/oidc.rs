//! Social log-in over HTTP: `GET /api/auth/oidc` lists the providers, `…/{name}/start`
//! redirects the browser to the provider, `…/{name}/callback` finishes the log-in and answers
//! the same session as `/api/auth/login`. The state travels in the provider's URL and in an
//! HttpOnly cookie set at the start; a callback without the matching cookie is refused. A provider's subject maps to one Wagu account: the
//! first log-in creates it, later ones find it.

use crate::app::AppState;
use crate::auth::oidc::{Identity, OidcError};
use crate::auth::token;
use crate::error::AppError;
use crate::http::accounts::{SessionBody, session};
use crate::http::limit::{ClientIp, check_rate};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagu_proto::records::{AccountId, MAX_DISPLAY_NAME_CHARS};
use wagu_storage::records::{AccountRecord, AccountStore};

impl From<OidcError> for AppError {
    fn from(e: OidcError) -> Self {
        match &e {
            OidcError::UnknownProvider(_) => AppError::new(
                StatusCode::NOT_FOUND,
                crate::error::HttpCode::UnknownProvider,
                e.to_string(),
            ),
            OidcError::InvalidState => AppError::new(
                StatusCode::BAD_REQUEST,
                crate::error::HttpCode::InvalidState,
                e.to_string(),
            ),
            OidcError::Denied(_) => AppError::new(
                StatusCode::UNAUTHORIZED,
                crate::error::HttpCode::OidcDenied,
                e.to_string(),
            ),
            OidcError::Failed(detail) => {
                // The detail may name the provider's endpoints and answers: logs only.
                tracing::warn!(%detail, "OIDC log-in failed");
                AppError::new(
                    StatusCode::UNAUTHORIZED,
                    crate::error::HttpCode::OidcFailed,
                    e.to_string(),
                )
            }
            _ => {
                tracing::error!(error = %e, "OIDC store failed");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    wagu_proto::ErrorCode::Unavailable,
                    "log-in is unavailable; retry shortly",
                )
            }
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProvidersBody {
    pub providers: Vec<String>,
}

#[utoipa::path(get, operation_id = "list_oidc_providers", path = "/api/auth/oidc", tag = "accounts",
    responses((status = 200, body = ProvidersBody)))]
pub async fn providers(State(app): State<AppState>) -> Json<ProvidersBody> {
    Json(ProvidersBody {
        providers: app.oidc.names(),
    })
}

#[utoipa::path(get, operation_id = "start_oidc_login", path = "/api/auth/oidc/{name}/start", tag = "accounts",
    params(("name" = String, Path, description = "a configured provider")),
    responses((status = 302, description = "to the provider's log-in page"),
        (status = 404, body = crate::http::openapi::ErrorBody)))]
pub async fn start(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    // Each start stores a pending log-in for ten minutes: limited like log-ins.
    check_rate(&app.logins, ip, "sign-ups and log-ins")?;
    let (url, state) = app.oidc.start(&name, &app.ephemeral).await?;
    // The state is bound to this browser: the callback must come with this cookie, so a
    // callback link made by someone else (login CSRF) or leaked from elsewhere is refused.
    let cookie = format!(
        "{STATE_COOKIE}={state}; Path=/api/auth/oidc/; Max-Age=600; HttpOnly; SameSite=Lax{}",
        if app.config.public_url().starts_with("https://") {
            "; Secure"
        } else {
            ""
        }
    );
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, url), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

/// The cookie that binds a started log-in to the browser that started it.
const STATE_COOKIE: &str = "wagu_oidc_state";

/// The value of the state cookie, if the request carries it.
fn state_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == STATE_COOKIE).then_some(v)
        })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider instead of `code` when the log-in did not happen.
    pub error: Option<String>,
    /// The issuer, when the provider says who answers (RFC 9207): checked against the
    /// configured one, against mix-up attacks between providers.
    pub iss: Option<String>,
}

#[utoipa::path(get, operation_id = "finish_oidc_login", path = "/api/auth/oidc/{name}/callback", tag = "accounts",
    params(("name" = String, Path), CallbackQuery),
    responses((status = 200, body = SessionBody),
        (status = 400, description = "unknown, expired or used state", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "denied by the provider, or its answer failed verification", body = crate::http::openapi::ErrorBody)))]
pub async fn callback(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(name): Path<String>,
    headers: HeaderMap,
    q: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<Json<SessionBody>, AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    check_rate(&app.logins, ip, "sign-ups and log-ins")?;
    let state = q.state.unwrap_or_default();
    // Checked before the state is spent: a foreign callback does not burn the real one.
    if state_cookie(&headers) != Some(state.as_str()) {
        return Err(OidcError::InvalidState.into());
    }
    if let Some(error) = q.error {
        return Err(app
            .oidc
            .denied(&name, &state, &error, &app.ephemeral)
            .await?
            .into());
    }
    let code = q.code.unwrap_or_default();
    let who = app
        .oidc
        .finish(&name, &code, &state, q.iss.as_deref(), &app.ephemeral)
        .await?;
    let account = match app.records.account_by_identity(&name, &who.subject).await? {
        Some(a) => a,
        None => {
            let record = new_account(&who);
            let a = app
                .records
                .create_account_for_identity(&record, &name, &who.subject)
                .await?;
            if a.id == record.id {
                metrics::counter!("wagu_accounts_created_total").increment(1);
            }
            a
        }
    };
    Ok(Json(session(&app, &account, token::random_id()).await?))
}

/// A first log-in's account: the provider's name for the person (or the email's local part),
/// no password.
fn new_account(who: &Identity) -> AccountRecord {
    let from_email = who
        .email
        .as_deref()
        .and_then(|e| e.split('@').next())
        .filter(|s| !s.is_empty());
    let name: String = who
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .or(from_email)
        .unwrap_or("Wagu friend")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_DISPLAY_NAME_CHARS)
        .collect();
    AccountRecord {
        id: AccountId(token::random_id()),
        email: who.email.clone().unwrap_or_default().to_lowercase(),
        display_name: name,
        password_hash: String::new(),
        created_at: wagu_storage::records::now_millis(),
    }
}
