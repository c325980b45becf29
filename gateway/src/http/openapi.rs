//! The OpenAPI 3.1 document of the REST API (accounts, places, posts, rooms, streams), derived
//! by utoipa from the handlers' annotations and the request/response types, served at
//! `GET /api/openapi.json`. A test checks that every route is in it.
//!
//! What it does not cover: the WebSocket protocol (JSON Schemas in `docs/schema/`, prose in
//! `docs/PROTOCOL.md`).

use crate::http::{accounts, drafts, photos, places, posts, rooms, social, streams};
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid`, `unauthenticated`, `token_expired`,
    /// `invalid_token`, `invalid_credentials`, `invalid_refresh`, `taken`, `forbidden`, `conflict`,
    /// `unknown_provider`, `invalid_state`, `invalid_code`, `oidc_denied`, `oidc_failed`,
    /// `unknown_post`, `unknown_place`, `unknown_account`, `idempotency_mismatch`,
    /// `unknown_photo`, `foreign_photo`, `not_an_image`, `unsupported_format`,
    /// `image_too_large`, `corrupt_image`, `undecodable`, `too_many_files`,
    /// `rate_limited`, `too_large`, `unsupported_media_type`, `unknown_room`, `room_closed`,
    /// `capacity`, `unavailable`, `internal`; review drafts: `unknown_photo`, `streaming_off`,
    /// `model_unreachable`, `model_unavailable`, `model_timeout`, `model_rejects_images`,
    /// `model_error`, `model_bad_answer`.
    pub code: String,
    /// For humans.
    pub message: String,
}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every response object must have a `description` (OpenAPI 3.1, 4.8.17); utoipa leaves it
/// out unless the annotation gives one. The ones without get the status's reason phrase
/// (`OK`, `Bad Request`…), so the document validates and generators accept it.
struct DescribeResponses;

impl Modify for DescribeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for op in ops.into_iter().flatten() {
                for (status, response) in op.responses.responses.iter_mut() {
                    if let RefOr::T(r) = response
                        && r.description.is_empty()
                    {
                        r.description = status
                            .parse::<u16>()
                            .ok()
                            .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("Response")
                            .to_string();
                    }
                }
            }
        }
    }
}

/// utoipa inlines a generic argument's whole schema into the specialised component (utoipa
/// issue #1586): `Page_Place.items` would repeat `Place` instead of pointing at it, and a
/// generated client would get a second, anonymous place type. Each `Page_X` whose `X` is a
/// component gets `items: {"$ref": X}` instead.
struct PageItemsByReference;

impl Modify for PageItemsByReference {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ArrayItems, Schema};
        use utoipa::openapi::{Ref, RefOr};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let names: Vec<String> = components.schemas.keys().cloned().collect();
        for name in names {
            let Some(item) = name.strip_prefix("Page_") else {
                continue;
            };
            if !components.schemas.contains_key(item) {
                continue;
            }
            if let Some(RefOr::T(Schema::Object(page))) = components.schemas.get_mut(&name)
                && let Some(RefOr::T(Schema::Array(items))) = page.properties.get_mut("items")
            {
                items.items =
                    ArrayItems::RefOrSchema(Box::new(RefOr::Ref(Ref::from_schema_name(item))));
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Wagu API", description = "Accounts, places (restaurants), posts (visit reviews) and their drafts, map rooms and live streams. Rooms and streams are then joined over the WebSocket at /ws (docs/PROTOCOL.md). Every error is JSON `{\"error\": {\"code\", \"message\"}}`. Every time is Unix milliseconds. A request body must be sent as `Content-Type: application/json` (415 `unsupported_media_type` otherwise)."),
    paths(
        accounts::signup, accounts::login, accounts::refresh, accounts::logout, accounts::me,
        accounts::get, social::provider_list, social::providers, social::start, social::callback,
        social::exchange,
        places::search, places::get, places::create,
        posts::create, posts::get, posts::edit, posts::delete, posts::near, posts::by_author,
        posts::by_place, photos::upload, photos::variant,
        drafts::create,
        rooms::create, rooms::summary,
        streams::create, streams::list, streams::summary, streams::ended_at_place,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Bearer, &DescribeResponses, &PageItemsByReference),
    tags((name = "accounts"), (name = "places"), (name = "posts"),
        (name = "photos", description = "photo uploads (JPEG, PNG, WebP, GIF; stored as JPEG without metadata, in two sizes) and their variants"),
        (name = "drafts", description = "review drafts: a language model (or the built-in template) drafts the text of a post for the author to keep, edit or skip"),
        (name = "rooms", description = "map rooms: create and preview; the room itself is the WebSocket protocol (docs/PROTOCOL.md)"),
        (name = "streams", description = "live streams: create, discover, ended records")),
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_records_route_is_documented() {
        let doc = serde_json::to_value(<super::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/api/auth/signup", "post"),
            ("/api/auth/login", "post"),
            ("/api/auth/refresh", "post"),
            ("/api/auth/logout", "post"),
            ("/api/auth/providers", "get"),
            ("/api/auth/oidc", "get"),
            ("/api/auth/oidc/exchange", "post"),
            ("/api/auth/oidc/{name}/start", "get"),
            ("/api/auth/oidc/{name}/callback", "get"),
            ("/api/me", "get"),
            ("/api/accounts/{id}", "get"),
            ("/api/accounts/{id}/posts", "get"),
            ("/api/places", "get"),
            ("/api/places", "post"),
            ("/api/places/{id}", "get"),
            ("/api/places/{id}/posts", "get"),
            ("/api/posts", "post"),
            ("/api/posts", "get"),
            ("/api/posts/{id}", "get"),
            ("/api/posts/{id}", "patch"),
            ("/api/posts/{id}", "delete"),
            ("/api/rooms", "post"),
            ("/api/rooms/{share}", "get"),
            ("/api/streams", "post"),
            ("/api/streams", "get"),
            ("/api/streams/{id}", "get"),
            ("/api/places/{id}/streams", "get"),
            ("/api/photos", "post"),
            ("/api/photos/{id}/{variant}", "get"),
            ("/api/drafts", "post"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for s in [
            "Post",
            "PostDraft",
            "Place",
            "Account",
            "ErrorBody",
            "SessionBody",
            "DraftRequest",
            "Draft",
        ] {
            assert!(schemas.contains_key(s), "schema {s} missing");
        }
    }

    #[test]
    fn path_parameters_are_the_placeholders_of_their_path_and_the_rest_are_query() {
        let doc = serde_json::to_value(<super::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
        let mut query = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            let placeholders: std::collections::BTreeSet<&str> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, op) in ops.as_object().unwrap() {
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                let in_path: std::collections::BTreeSet<String> = params
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect();
                let expected: std::collections::BTreeSet<String> =
                    placeholders.iter().map(|s| s.to_string()).collect();
                assert_eq!(
                    in_path, expected,
                    "{method} {path}: path parameters must be exactly its placeholders"
                );
                for p in params.iter().filter(|p| p["in"] == "query") {
                    query += 1;
                    // Only `near` of "posts near me" must be given.
                    let required = p["required"] == true;
                    assert_eq!(
                        required,
                        path == "/api/posts" && p["name"] == "near",
                        "{method} {path}: query parameter {} required: {required}",
                        p["name"]
                    );
                }
            }
        }
        // places (4), posts near (4, `near` required), two feeds (2 each), streams (5), the
        // OIDC callback (4).
        assert!(query >= 21, "only {query} query parameters declared");
    }

    #[test]
    fn a_page_refers_to_its_item_schema_instead_of_repeating_it() {
        let doc = serde_json::to_value(<super::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for (page, item) in [("Page_Place", "Place"), ("Page_Post", "Post")] {
            assert_eq!(
                schemas[page]["properties"]["items"]["items"]["$ref"],
                format!("#/components/schemas/{item}"),
                "{page}: {}",
                schemas[page]
            );
            assert!(schemas[item].is_object(), "{item} is a component");
        }
    }
}
