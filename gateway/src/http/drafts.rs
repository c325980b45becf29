//! `POST /api/drafts`: a review draft for the signed-in author, as JSON or (with
//! `stream: true`) as Server-Sent Events. Signed in and limited like other writes
//! (`rate.writes_per_minute` per address).
//!
//! What it does not do: draft (the `crate::drafts` service) or store anything.

use crate::auth::Authed;
use crate::drafts::{Draft, DraftError, DraftEvent, DraftRequest};
use crate::error::AppError;
use crate::http::body::ApiJson;
use crate::http::limit::{ClientIp, check_rate};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

impl From<DraftError> for AppError {
    fn from(e: DraftError) -> Self {
        use crate::drafts::openai::ModelError;
        let status = match &e {
            DraftError::Invalid(_) => StatusCode::BAD_REQUEST,
            DraftError::UnknownPhoto(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DraftError::StreamingOff => StatusCode::BAD_REQUEST,
            DraftError::Photos(_) => StatusCode::SERVICE_UNAVAILABLE,
            DraftError::PhotoUnreadable { .. } | DraftError::Task(_) => {
                return AppError::internal(&e);
            }
            DraftError::Model(m) => match m {
                ModelError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                ModelError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            },
        };
        if status.is_server_error() {
            tracing::warn!(error = %e, code = e.code().as_str(), "no draft");
        }
        AppError::new(status, e.code(), e.to_string())
    }
}

#[utoipa::path(post, operation_id = "create_draft", path = "/api/drafts", tag = "drafts", security(("bearer" = [])),
    request_body = DraftRequest,
    responses(
        (status = 200, description = "the draft as JSON (`stream` false); with `stream: true` a `text/event-stream` instead: `event: delta` with `{\"text\": \"…\"}` as the text is written, then `event: done` with the whole draft (the same `Draft` object) or `event: error` with the error body (`model_timeout`, `model_bad_answer`)",
            content((Draft = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "`invalid` (a field breaks its rule), `streaming_off` (`stream: true` while the server does not offer it)", body = crate::http::openapi::ErrorBody),
        (status = 401, body = crate::http::openapi::ErrorBody),
        (status = 413, description = "`too_large`: body over 64 KiB", body = crate::http::openapi::ErrorBody),
        (status = 415, description = "a body not declared `Content-Type: application/json`", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "`unknown_photo`: a photo id that is not one of the author's photos", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "`rate_limited`: too many writes from this address", body = crate::http::openapi::ErrorBody),
        (status = 502, description = "`model_unreachable` (no connection to the model server), `model_rejects_images` (the model takes no image input: ask again without photos or with `drafter: \"template\"`), `model_error` (the model server refused the request), `model_bad_answer` (empty or unreadable answer)", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "`model_unavailable` (the model server answered 429/5xx), `unavailable` (the records or photo store failed)", body = crate::http::openapi::ErrorBody),
        (status = 504, description = "`model_timeout`: the model did not finish within `drafts.timeout_secs`", body = crate::http::openapi::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Authed(who): Authed,
    ApiJson(req): ApiJson<DraftRequest>,
) -> Result<Response, AppError> {
    let req = req.tidy();
    req.validate().map_err(DraftError::from)?;
    if req.stream && !app.drafts.stream_offered() {
        return Err(DraftError::StreamingOff.into());
    }
    let place = crate::http::posts::place_of(&app, &req.place_id).await?;
    check_rate(&app.writes, ip, "writes")?;
    let source = app.drafts.source_for(&req);
    let input = app
        .drafts
        .prepare(&who.account(), &req, place, source)
        .await?;
    if !req.stream {
        return Ok(Json(app.drafts.write(&input, source).await?).into_response());
    }
    let events = app.drafts.stream(input, source).await?.map(|event| {
        Ok::<_, std::convert::Infallible>(match event {
            DraftEvent::Delta(text) => Event::default()
                .event("delta")
                .data(serde_json::json!({ "text": text }).to_string()),
            DraftEvent::Done(draft) => Event::default()
                .event("done")
                .data(serde_json::to_string(&draft).unwrap_or_default()),
            DraftEvent::Failed(e) => {
                tracing::warn!(error = %e, code = e.code().as_str(), "draft stream failed");
                Event::default().event("error").data(
                    serde_json::json!({ "error": { "code": e.code().as_str(), "message": e.to_string() } })
                        .to_string(),
                )
            }
        })
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
