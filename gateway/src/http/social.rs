//! Social log-in over HTTP. `GET /api/auth/providers` lists the providers with their labels
//! (and `GET /api/auth/oidc` their names); `…/oidc/{name}/start` redirects the browser to the
//! provider; `…/oidc/{name}/callback` finishes the log-in. The state travels in the provider's
//! URL and in an HttpOnly cookie set at the start; a callback without the matching cookie is
//! refused. A provider's subject maps to one Wagu account: the first log-in creates it, later
//! ones find it.
//!
//! How the callback answers depends on who calls it: an API client (an `Accept` without
//! `text/html`) gets the session JSON of `/api/auth/login`, or the JSON error; a browser is
//! sent back to the web client, `303 /login#social_code=…` — a one-time code (one minute,
//! bound to the browser's state cookie) it trades at `POST /api/auth/oidc/exchange` for the
//! session — or `303 /login#social_error=<code>`, which the page shows. Tokens never travel in
//! a URL.

use crate::auth::social::{Identity, SocialError, state as handoff};
use crate::auth::token;
use crate::config::ProviderKind;
use crate::error::{AppError, HttpCode};
use crate::http::accounts::{SessionBody, session};
use crate::http::body::ApiJson;
use crate::http::limit::{ClientIp, check_rate};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagu_proto::ErrorCode;
use wagu_proto::records::{AccountId, MAX_DISPLAY_NAME_CHARS};
use wagu_storage::records::{AccountRecord, AccountStore};

impl From<SocialError> for AppError {
    fn from(e: SocialError) -> Self {
        match &e {
            SocialError::UnknownProvider(_) => AppError::new(
                StatusCode::NOT_FOUND,
                HttpCode::UnknownProvider,
                e.to_string(),
            ),
            SocialError::InvalidState => AppError::new(
                StatusCode::BAD_REQUEST,
                HttpCode::InvalidState,
                e.to_string(),
            ),
            SocialError::InvalidHandoff => AppError::new(
                StatusCode::BAD_REQUEST,
                HttpCode::InvalidCode,
                e.to_string(),
            ),
            SocialError::Denied(_) => AppError::new(
                StatusCode::UNAUTHORIZED,
                HttpCode::OidcDenied,
                e.to_string(),
            ),
            SocialError::Failed(detail) => {
                // The detail may name the provider's endpoints and answers: logs only.
                tracing::warn!(%detail, "social log-in failed");
                AppError::new(
                    StatusCode::UNAUTHORIZED,
                    HttpCode::OidcFailed,
                    e.to_string(),
                )
            }
            _ => {
                tracing::error!(error = %e, "social log-in store failed");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
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
    responses((status = 200, description = "the configured providers' names (see also /api/auth/providers)", body = ProvidersBody)))]
pub async fn providers(State(app): State<AppState>) -> Json<ProvidersBody> {
    Json(ProvidersBody {
        providers: app.social.names(),
    })
}

/// How a provider's log-in works: `oidc` (OpenID Connect) or `oauth2` (OAuth 2.0 and a
/// profile API).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKindBody {
    Oidc,
    Oauth2,
}

/// A social log-in provider a client can offer.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProviderBody {
    /// The name in URLs.
    pub name: String,
    /// What the button says ("Google", "Kakao", "Naver" for the presets).
    pub label: String,
    pub kind: ProviderKindBody,
    /// Open this in the browser (a top-level navigation, not `fetch`) to log in.
    pub start_url: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProviderListBody {
    /// Sorted by name.
    pub providers: Vec<ProviderBody>,
}

#[utoipa::path(get, operation_id = "list_social_providers", path = "/api/auth/providers", tag = "accounts",
    responses((status = 200, body = ProviderListBody)))]
pub async fn provider_list(State(app): State<AppState>) -> Json<ProviderListBody> {
    Json(ProviderListBody {
        providers: app
            .social
            .list()
            .into_iter()
            .map(|p| ProviderBody {
                start_url: format!("/api/auth/oidc/{}/start", p.name),
                name: p.name,
                label: p.label,
                kind: match p.kind {
                    ProviderKind::Oidc => ProviderKindBody::Oidc,
                    ProviderKind::Oauth2 => ProviderKindBody::Oauth2,
                },
            })
            .collect(),
    })
}

#[utoipa::path(get, operation_id = "start_oidc_login", path = "/api/auth/oidc/{name}/start", tag = "accounts",
    params(("name" = String, Path, description = "a configured provider")),
    responses((status = 302, description = "to the provider's log-in page; sets the `wagu_oidc_state` cookie"),
        (status = 303, description = "a browser (`Accept` names `text/html`) whose start failed: to `/login#social_error=<error code>`"),
        (status = 401, description = "`oidc_failed`: the provider's discovery document could not be read or names another issuer", body = crate::http::openapi::ErrorBody),
        (status = 404, body = crate::http::openapi::ErrorBody)))]
pub async fn start(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    match begin(&app, ip, &name).await {
        Ok(r) => r,
        // A person who clicked a button reads the error on the log-in page, not as JSON.
        Err(e) if is_browser(&headers) => to_login(&format!("social_error={}", e.code)),
        Err(e) => e.into_response(),
    }
}

async fn begin(
    app: &AppState,
    ip: Option<std::net::IpAddr>,
    name: &str,
) -> Result<Response, AppError> {
    // Each start stores a pending log-in for ten minutes: limited like log-ins.
    check_rate(&app.logins, ip, "sign-ups and log-ins")?;
    let (url, state) = app.social.start(name, &app.ephemeral).await?;
    // The state is bound to this browser: the callback must come with this cookie, so a
    // callback link made by someone else (login CSRF) or leaked from elsewhere is refused.
    let cookie = state_cookie_header(app, &state, handoff::STATE_TTL.as_secs());
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, url), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

/// The cookie that binds a started log-in to the browser that started it.
const STATE_COOKIE: &str = "wagu_oidc_state";

fn state_cookie_header(app: &AppState, value: &str, max_age: u64) -> String {
    format!(
        "{STATE_COOKIE}={value}; Path=/api/auth/oidc/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if app.config.public_url().starts_with("https://") {
            "; Secure"
        } else {
            ""
        }
    )
}

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

/// A browser navigating (its `Accept` names `text/html`) rather than an API client.
fn is_browser(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
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
    responses((status = 200, description = "an API client (no `text/html` in `Accept`): the session", body = SessionBody),
        (status = 303, description = "a browser (`Accept` names `text/html`): to `/login#social_code=<one-time code>` on success (trade it at `POST /api/auth/oidc/exchange`), to `/login#social_error=<error code>` on failure"),
        (status = 400, description = "unknown, expired or used state", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "denied by the provider, or its answer failed verification", body = crate::http::openapi::ErrorBody)))]
pub async fn callback(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(name): Path<String>,
    headers: HeaderMap,
    q: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let browser = is_browser(&headers);
    let done = complete(&app, ip, &name, &headers, q).await;
    match (done, browser) {
        (Ok((account, _)), false) => match session(&app, &account, token::random_id()).await {
            Ok(s) => Json(s).into_response(),
            Err(e) => e.into_response(),
        },
        (Ok((account, state)), true) => {
            match handoff::put_handoff(&account.id, &state, &app.ephemeral).await {
                Ok(code) => to_login(&format!("social_code={code}")),
                Err(e) => to_login(&format!("social_error={}", AppError::from(e).code)),
            }
        }
        (Err(e), false) => e.into_response(),
        (Err(e), true) => to_login(&format!("social_error={}", e.code)),
    }
}

/// 303 to the web client's log-in page with `fragment` (never sent to any server).
fn to_login(fragment: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, format!("/login#{fragment}")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

/// The callback's work: the account that logged in, and the state it used.
async fn complete(
    app: &AppState,
    ip: Option<std::net::IpAddr>,
    name: &str,
    headers: &HeaderMap,
    q: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<(AccountRecord, String), AppError> {
    let Query(q) = q.map_err(|e| AppError::bad_request(e.body_text()))?;
    check_rate(&app.logins, ip, "sign-ups and log-ins")?;
    let state = q.state.unwrap_or_default();
    // Checked before the state is spent: a foreign callback does not burn the real one.
    if state_cookie(headers) != Some(state.as_str()) {
        return Err(SocialError::InvalidState.into());
    }
    if let Some(error) = q.error {
        return Err(app
            .social
            .denied(name, &state, &error, &app.ephemeral)
            .await?
            .into());
    }
    let code = q.code.unwrap_or_default();
    let who = app
        .social
        .finish(name, &code, &state, q.iss.as_deref(), &app.ephemeral)
        .await?;
    let account = match app.records.account_by_identity(name, &who.subject).await? {
        Some(a) => a,
        None => {
            let record = new_account(&who);
            let a = app
                .records
                .create_account_for_identity(&record, name, &who.subject)
                .await?;
            if a.id == record.id {
                metrics::counter!("wagu_accounts_created_total").increment(1);
            }
            a
        }
    };
    Ok((account, state))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeBody {
    /// The `social_code` the callback put in the web client's URL fragment.
    pub code: String,
}

#[utoipa::path(post, operation_id = "exchange_social_code", path = "/api/auth/oidc/exchange", tag = "accounts",
    request_body = ExchangeBody,
    responses((status = 200, description = "the session; the `wagu_oidc_state` cookie is cleared", body = SessionBody),
        (status = 400, description = "`invalid_code`: unknown, expired (one minute), used, or sent without the browser's `wagu_oidc_state` cookie", body = crate::http::openapi::ErrorBody)))]
pub async fn exchange(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ExchangeBody>,
) -> Result<Response, AppError> {
    check_rate(&app.logins, ip, "sign-ups and log-ins")?;
    let id: AccountId =
        handoff::take_handoff(&body.code, state_cookie(&headers), &app.ephemeral).await?;
    let account = app
        .records
        .account(&id)
        .await?
        .ok_or(SocialError::InvalidHandoff)?;
    let s = session(&app, &account, token::random_id()).await?;
    Ok((
        [(header::SET_COOKIE, state_cookie_header(&app, "", 0))],
        Json(s),
    )
        .into_response())
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
