//! Accounts over HTTP: sign up, log in, refresh, log out (`/api/auth/…`), the signed-in
//! account (`/api/me`) and public profiles (`/api/accounts/{id}`).
//!
//! Passwords are hashed with argon2id on the blocking pool; a log-in with an unknown email
//! verifies against a decoy hash so both failures take as long and read the same. Sign-ups and
//! log-ins are limited per client address (`rate.logins_per_minute`).

use crate::auth::{Authed, password, token};
use crate::error::AppError;
use crate::http::body::ApiJson;
use crate::http::limit::{ClientIp, check_rate};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wagu_proto::records::{
    Account, AccountId, MAX_DISPLAY_NAME_CHARS, MAX_EMAIL_BYTES, MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
};
use wagu_storage::records::{AccountRecord, AccountStore, RefreshRecord, RefreshUse};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    pub email: String,
    /// 8 to 128 characters.
    pub password: String,
    /// 1 to 40 characters; the name rooms and posts show.
    pub display_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

/// A signed-in session: send `access_token` as `Authorization: Bearer …` (and in a room's
/// `join` as `token`); trade `refresh_token` at `/api/auth/refresh` before it expires.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionBody {
    pub account: Account,
    pub access_token: String,
    /// When the access token expires: Unix time in milliseconds, like every time of the API
    /// (the token's own `exp` claim is in seconds, as JWTs have it). Refresh before then.
    pub access_expires_at: u64,
    pub refresh_token: String,
    /// When the refresh token expires: Unix milliseconds. Each refresh issues a new one.
    pub refresh_expires_at: u64,
    /// Always `Bearer`: send `Authorization: Bearer <access_token>`.
    pub token_type: String,
}

use wagu_storage::records::now_millis as now_ms;

/// Trimmed, lower-cased; refuses what cannot be an address. (Deliverability is not checked:
/// there is no mail service yet.)
pub fn normalize_email(raw: &str) -> Result<String, AppError> {
    let e = raw.trim().to_lowercase();
    let ok = e.len() <= MAX_EMAIL_BYTES
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                && !domain.ends_with('.') && !domain.contains('@'));
    if ok {
        Ok(e)
    } else {
        Err(AppError::bad_request(format!(
            "email must look like name@example.com (at most {MAX_EMAIL_BYTES} bytes)"
        )))
    }
}

fn check_password(p: &str) -> Result<(), AppError> {
    let n = p.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(AppError::bad_request(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

pub fn check_display_name(name: &str) -> Result<String, AppError> {
    let n = name.trim();
    if !(1..=MAX_DISPLAY_NAME_CHARS).contains(&n.chars().count()) || n.chars().any(char::is_control)
    {
        return Err(AppError::bad_request(format!(
            "display_name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"
        )));
    }
    Ok(n.to_string())
}

fn unknown_account() -> AppError {
    AppError::not_found(crate::error::HttpCode::UnknownAccount, "no such account")
}

/// An account id from a path: ids are 22 characters, anything far longer cannot exist.
pub(crate) fn check_account_path(id: String) -> Result<AccountId, AppError> {
    if id.is_empty() || id.len() > 64 {
        return Err(unknown_account());
    }
    Ok(AccountId(id))
}

fn public(a: &AccountRecord) -> Account {
    Account {
        id: a.id.clone(),
        display_name: a.display_name.clone(),
        created_at: a.created_at,
    }
}

/// Issues an access token and a refresh token in `family` (a new family at log-in).
pub(crate) async fn session(
    app: &AppState,
    a: &AccountRecord,
    family: String,
) -> Result<SessionBody, AppError> {
    let now = now_ms();
    let (access_token, access_exp_secs) = app.tokens.issue(&a.id, &a.display_name, now / 1000);
    let (refresh_token, hash) = token::new_refresh();
    let expires_at = now + app.tokens.refresh_ttl_secs * 1000;
    app.records
        .put_refresh(&RefreshRecord {
            hash,
            account: a.id.clone(),
            family,
            expires_at,
        })
        .await?;
    Ok(SessionBody {
        account: public(a),
        access_token,
        access_expires_at: access_exp_secs * 1000,
        refresh_token,
        refresh_expires_at: expires_at,
        token_type: "Bearer".into(),
    })
}

#[utoipa::path(post, operation_id = "signup", path = "/api/auth/signup", tag = "accounts", request_body = SignupBody,
    responses((status = 415, description = "a body not declared `Content-Type: application/json`", body = crate::http::openapi::ErrorBody), (status = 201, body = SessionBody), (status = 400, body = crate::http::openapi::ErrorBody),
        (status = 409, description = "email taken", body = crate::http::openapi::ErrorBody),
        (status = 429, body = crate::http::openapi::ErrorBody)))]
pub async fn signup(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<SignupBody>,
) -> Result<(StatusCode, Json<SessionBody>), AppError> {
    let email = normalize_email(&req.email)?;
    check_password(&req.password)?;
    let display_name = check_display_name(&req.display_name)?;
    check_rate(&app.logins, ip, "sign-ups and log-ins")?;
    let record = AccountRecord {
        id: AccountId(token::random_id()),
        email,
        display_name,
        password_hash: password::hash(req.password)
            .await
            .map_err(AppError::internal)?,
        created_at: now_ms(),
    };
    app.records.create_account(&record).await?;
    metrics::counter!("wagu_accounts_created_total").increment(1);
    Ok((
        StatusCode::CREATED,
        Json(session(&app, &record, token::random_id()).await?),
    ))
}

fn bad_credentials() -> AppError {
    AppError::new(
        StatusCode::UNAUTHORIZED,
        crate::error::HttpCode::InvalidCredentials,
        "wrong email or password",
    )
}

#[utoipa::path(post, operation_id = "login", path = "/api/auth/login", tag = "accounts", request_body = LoginBody,
    responses((status = 415, description = "a body not declared `Content-Type: application/json`", body = crate::http::openapi::ErrorBody), (status = 200, body = SessionBody),
        (status = 401, description = "wrong email or password", body = crate::http::openapi::ErrorBody),
        (status = 429, body = crate::http::openapi::ErrorBody)))]
pub async fn login(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginBody>,
) -> Result<Json<SessionBody>, AppError> {
    check_rate(&app.logins, ip, "sign-ups and log-ins")?;
    let Ok(email) = normalize_email(&req.email) else {
        return Err(bad_credentials());
    };
    if req.password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(bad_credentials());
    }
    let found = app.records.account_by_email(&email).await?;
    // An account made by a social log-in has no password: verify against the decoy, and
    // fail, like an unknown email.
    let phc = match &found {
        Some(a) if !a.password_hash.is_empty() => a.password_hash.clone(),
        _ => password::decoy().await,
    };
    let ok = password::verify(req.password, phc)
        .await
        .map_err(AppError::internal)?
        && found.as_ref().is_some_and(|a| !a.password_hash.is_empty());
    match found {
        Some(a) if ok => Ok(Json(session(&app, &a, token::random_id()).await?)),
        _ => {
            metrics::counter!("wagu_login_failures_total").increment(1);
            Err(bad_credentials())
        }
    }
}

fn bad_refresh() -> AppError {
    AppError::new(
        StatusCode::UNAUTHORIZED,
        crate::error::HttpCode::InvalidRefresh,
        "the refresh token is unknown, expired or revoked; log in again",
    )
}

#[utoipa::path(post, operation_id = "refresh_session", path = "/api/auth/refresh", tag = "accounts", request_body = RefreshBody,
    responses((status = 415, description = "a body not declared `Content-Type: application/json`", body = crate::http::openapi::ErrorBody), (status = 200, body = SessionBody),
        (status = 401, description = "unknown, expired, revoked or reused", body = crate::http::openapi::ErrorBody),
        (status = 429, body = crate::http::openapi::ErrorBody)))]
pub async fn refresh(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RefreshBody>,
) -> Result<Json<SessionBody>, AppError> {
    check_rate(&app.writes, ip, "writes")?;
    if req.refresh_token.len() > 128 {
        return Err(bad_refresh());
    }
    let hash = token::hash_refresh(&req.refresh_token);
    match app.records.use_refresh(&hash, now_ms()).await? {
        RefreshUse::Fresh(r) => {
            let Some(account) = app.records.account(&r.account).await? else {
                return Err(bad_refresh());
            };
            Ok(Json(session(&app, &account, r.family).await?))
        }
        RefreshUse::Reused(r, used_at)
            if now_ms().saturating_sub(used_at)
                < app.config.auth.refresh_reuse_grace_secs * 1000 =>
        {
            // Spent a moment ago: most likely this client's own concurrent refresh (two tabs,
            // a retried request). Refuse it, but leave the family to the winner.
            tracing::debug!(account = %r.account, "refresh token reused within the grace");
            Err(bad_refresh())
        }
        RefreshUse::Reused(r, _) => {
            // A spent token came back later: whoever holds the family's newest token may be a
            // thief. End the family; the owner logs in again.
            tracing::warn!(account = %r.account, "refresh token reused; family revoked");
            metrics::counter!("wagu_refresh_reuse_total").increment(1);
            app.records
                .revoke_family(&r.family, now_ms() + app.tokens.refresh_ttl_secs * 1000)
                .await?;
            Err(bad_refresh())
        }
        RefreshUse::Unknown => Err(bad_refresh()),
    }
}

#[utoipa::path(post, operation_id = "logout", path = "/api/auth/logout", tag = "accounts", request_body = RefreshBody,
    responses((status = 415, description = "a body not declared `Content-Type: application/json`", body = crate::http::openapi::ErrorBody), (status = 204, description = "the refresh family is revoked (also for an unknown or spent token: logging out is idempotent)"),
        (status = 400, description = "`invalid`: unreadable body", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "`rate_limited`: refreshes and log-outs count towards the write limit", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "`unavailable`: the records store failed; retry", body = crate::http::openapi::ErrorBody)))]
pub async fn logout(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RefreshBody>,
) -> Result<StatusCode, AppError> {
    check_rate(&app.writes, ip, "writes")?;
    if req.refresh_token.len() <= 128 {
        let hash = token::hash_refresh(&req.refresh_token);
        // Spending it finds the family; whether it was fresh or not, the family ends.
        if let RefreshUse::Fresh(r) | RefreshUse::Reused(r, _) =
            app.records.use_refresh(&hash, now_ms()).await?
        {
            app.records
                .revoke_family(&r.family, now_ms() + app.tokens.refresh_ttl_secs * 1000)
                .await?;
        }
    }
    // Unknown tokens get the same answer: logging out is idempotent.
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in account as its owner sees it: the public profile and the account's own
/// email, which no other endpoint shows.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub id: AccountId,
    pub display_name: String,
    pub created_at: wagu_proto::model::UnixMillis,
    /// The log-in email as stored (trimmed, lower-cased). Omitted for an account made by a
    /// social log-in whose provider gave no (verified) email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[utoipa::path(get, operation_id = "get_me", path = "/api/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = crate::http::openapi::ErrorBody)))]
pub async fn me(State(app): State<AppState>, Authed(c): Authed) -> Result<Json<Me>, AppError> {
    match app.records.account(&c.account()).await? {
        Some(a) => Ok(Json(Me {
            id: a.id,
            display_name: a.display_name,
            created_at: a.created_at,
            email: Some(a.email).filter(|e| !e.is_empty()),
        })),
        None => Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            wagu_proto::ErrorCode::InvalidToken,
            "the account of this token no longer exists",
        )),
    }
}

#[utoipa::path(get, operation_id = "get_account", path = "/api/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "account id")),
    responses((status = 200, body = Account), (status = 404, body = crate::http::openapi::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Account>, AppError> {
    match app.records.account(&check_account_path(id)?).await? {
        Some(a) => Ok(Json(public(&a))),
        None => Err(unknown_account()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalise_or_refuse() {
        assert_eq!(
            normalize_email("  Min@Example.COM ").unwrap(),
            "min@example.com"
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@b.c",
            "a@.c",
            "a@b.",
            "a b@c.d",
            "a@b@c.d",
            &format!("{}@b.c", "x".repeat(260)),
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
