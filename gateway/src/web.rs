//! The web client (`web/`), embedded at build time by `build.rs`: the client's pages
//! (`/`, `/join/{token}`, `/live`, …) all answer the same `index.html`, which loads the
//! content-hashed bundle from `/assets/…`; `/config.json` tells the client the map tiles to use.
//!
//! - Compression: `build.mjs` writes brotli and gzip copies; the one the browser accepts is
//!   served (`Vary: Accept-Encoding`).
//! - Caching: hashed assets are `immutable` for a year; `index.html` and `/config.json` are
//!   revalidated every time (`ETag`, `304`).
//! - Security headers on every page: a strict Content-Security-Policy (scripts and styles from
//!   this origin only, images from here and the tile server), no framing, no referrer (share
//!   links carry their token in the path), `nosniff`.
//!
//! Built without Node (or with `WAGU_WEB_BUILD=0`), the pages answer a short HTML page that
//! explains how to get the client.

use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file; `path` starts with `/`.
pub struct Asset {
    pub path: &'static str,
    pub body: &'static [u8],
    pub gzip: Option<&'static [u8]>,
    pub br: Option<&'static [u8]>,
    pub etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The client's own routes: each answers `index.html`, and the client picks the page.
pub const CLIENT_ROUTES: [&str; 9] = [
    "/",
    "/join/{token}",
    "/new",
    "/live",
    "/live/{id}",
    "/studio/{id}",
    "/posts",
    "/places/{id}",
    "/login",
];

/// Whether this binary carries the client (false when built without Node).
pub fn client_embedded() -> bool {
    MISSING.is_none()
}

pub fn router() -> Router<AppState> {
    let mut r = Router::new()
        .route("/assets/{*file}", get(asset))
        .route("/config.json", get(client_config));
    for route in CLIENT_ROUTES {
        r = r.route(route, get(page));
    }
    r
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

async fn page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let csp = content_security_policy(&app.config.web.tile_url);
    match find("/index.html") {
        Some(index) => serve(index, &headers, "no-cache", &csp),
        None => {
            let why = MISSING.unwrap_or("index.html missing from the build");
            let mut resp = (StatusCode::OK, missing_page(why)).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // No script at all on this page; its one inline style is allowed.
            security_headers(
                h,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            );
            resp
        }
    }
}

async fn asset(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let csp = content_security_policy(&app.config.web.tile_url);
    match find(uri.path()) {
        Some(a) if a.path != "/index.html" => {
            serve(a, &headers, "public, max-age=31536000, immutable", &csp)
        }
        _ => {
            let mut resp = (StatusCode::NOT_FOUND, "not found").into_response();
            security_headers(resp.headers_mut(), &csp);
            resp
        }
    }
}

/// What the client needs from the server's configuration (public values only).
async fn client_config(State(app): State<AppState>) -> Response {
    let w = &app.config.web;
    let body = serde_json::json!({
        "tile_url": w.tile_url,
        "tile_attribution": w.tile_attribution,
        "tile_attribution_url": w.tile_attribution_url,
    });
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn serve(a: &'static Asset, req: &HeaderMap, cache: &'static str, csp: &str) -> Response {
    let accepts = |enc: &str| {
        req.get_all(header::ACCEPT_ENCODING).iter().any(|v| {
            v.to_str().unwrap_or("").split(',').any(|part| {
                let mut it = part.split(';');
                let name = it.next().unwrap_or("").trim();
                let q_zero = it.any(|p| {
                    let p = p.trim();
                    p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
                });
                name.eq_ignore_ascii_case(enc) && !q_zero
            })
        })
    };
    let not_modified = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag || t.trim() == "*"));
    let (status, body, encoding): (StatusCode, &'static [u8], Option<&'static str>) =
        if not_modified {
            (StatusCode::NOT_MODIFIED, &[], None)
        } else if let Some(br) = a.br.filter(|_| accepts("br")) {
            (StatusCode::OK, br, Some("br"))
        } else if let Some(gz) = a.gzip.filter(|_| accepts("gzip")) {
            (StatusCode::OK, gz, Some("gzip"))
        } else {
            (StatusCode::OK, a.body, None)
        };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(a.path)),
    );
    if let Some(enc) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::ETAG, HeaderValue::from_static(a.etag));
    security_headers(h, csp);
    resp
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `default-src 'none'` and then only what the client uses: its own scripts, styles and
/// WebSocket (`'self'` covers `ws:`/`wss:` to this origin), map tiles from the tile server.
pub fn content_security_policy(tile_url: &str) -> String {
    let tiles = tile_origin(tile_url).unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: {tiles}; \
         connect-src 'self'; font-src 'self'; manifest-src 'self'; media-src 'self' blob:; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// `https://{s}.tile.example.org/{z}/{x}/{y}.png` → `https://*.tile.example.org`.
pub fn tile_origin(tile_url: &str) -> Option<String> {
    let (scheme, rest) = tile_url.split_once("://")?;
    let host = rest.split('/').next()?;
    if host.is_empty() || !matches!(scheme, "http" | "https") {
        return None;
    }
    let host = host.replace("{s}", "*");
    if host
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*' | '[' | ']')))
    {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

fn security_headers(h: &mut HeaderMap, csp: &str) {
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(self), microphone=(self), geolocation=(self)"),
    );
}

fn missing_page(why: &str) -> String {
    let why = why
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Wagu</title><body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5\">\
         <h1>Wagu is running</h1>\
         <p>This <code>wagu</code> was built without its web client ({why}).</p>\
         <p>To get the client, install Node.js 20 or newer with npm and build again: \
         <code>cargo run --release</code> bundles <code>web/</code> into the binary by itself \
         (<code>touch web/package.json</code> first, so cargo notices). \
         (Or run <code>deploy/install.sh</code>, which installs the pinned npm packages.)</p>\
         <p>The server works without it: the REST API is under <code>/api</code> \
         (<a href=\"/api/openapi.json\">OpenAPI</a>) and the WebSocket at <code>/ws</code>.</p>\
         <p lang=\"ko\">웹 클라이언트 없이 빌드되었습니다. Node.js 20 이상과 npm을 설치한 뒤 다시 빌드하세요.</p>\
         </body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_origins() {
        assert_eq!(
            tile_origin("https://tile.openstreetmap.org/{z}/{x}/{y}.png").as_deref(),
            Some("https://tile.openstreetmap.org")
        );
        assert_eq!(
            tile_origin("https://{s}.tile.example.org/{z}/{x}/{y}.png").as_deref(),
            Some("https://*.tile.example.org")
        );
        assert_eq!(
            tile_origin("http://127.0.0.1:9000/t/{z}/{x}/{y}.png").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(tile_origin("javascript:alert(1)"), None);
        assert_eq!(tile_origin("https://a b/{z}"), None);
        assert_eq!(tile_origin("https://x;script-src */"), None);
    }
}
