//! Social log-in end to end against a real OpenID Connect provider: panva's `oidc-provider`
//! (deploy/oidc/provider.mjs, installed by deploy/install.sh) run locally, doing the real
//! protocol — discovery, the authorization endpoint with PKCE, the token endpoint with
//! client_secret_basic, RS256 ID tokens checked against its JWKS. Its one shortcut is the
//! interaction: /interaction/:uid logs its one account in and consents at once, so the
//! "browser" here is a loop that follows redirects with a cookie jar.
//!
//! The same server plays a plain OAuth 2.0 provider (no `openid` scope, so no ID token) with
//! a Naver-shaped profile API for the `oauth2` kind, and the Kakao preset's scopes and claims;
//! the failure tests (denied consent, replayed state, wrong issuer, forged, reused and expired
//! codes) check in the records store that no account was created. The browser hand-off
//! (`/login#social_code=…` and `POST /api/auth/oidc/exchange`) is tested here at the HTTP
//! level, and in Chromium by `web/test/social.test.mjs`.
//!
//! Needs `WAGU_TEST_OIDC_NODE_MODULES` (the node_modules that deploy/install.sh made; the env
//! file of deploy/services.sh names it): unset, the tests say SKIPPED; set, a provider that
//! does not start fails them.

mod common;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wagu_gateway::config::{Preset, SocialProviderConfig};
use wagu_gateway::{App, Config};

const NODE_MODULES: &str = "WAGU_TEST_OIDC_NODE_MODULES";
/// The provider's name in Wagu's configuration (and so in its URLs).
const NAME: &str = "testop";
const CLIENT_ID: &str = "wagu-test-client";
const CLIENT_SECRET: &str = "wagu-test-client-secret-0123456789";
const DISPLAY_NAME: &str = "OIDC Tester";
/// How long the provider may take to print `ready`.
const PROVIDER_START: Duration = Duration::from_secs(20);
/// Starts of provider.mjs tried before a test gives up (see [`OidcProvider::start_with`]).
const PROVIDER_ATTEMPTS: usize = 3;
/// Every HTTP exchange of the test gives up after this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------------------ provider --

/// A running `node provider.mjs`; killed (and reaped) on drop, with its temporary dir.
struct OidcProvider {
    child: Child,
    issuer: String,
    /// Its stderr so far, for failure messages.
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcProvider {
    /// Starts provider.mjs on a free port for one client whose redirect URI is
    /// `redirect_uri`, and waits for its `ready`. Panics if it does not come up.
    fn start(node_modules: &str, redirect_uri: &str, subject: &str, email: &str) -> OidcProvider {
        Self::start_with(node_modules, redirect_uri, subject, email, &[])
    }

    /// [`OidcProvider::start`] with more of provider.mjs's flags (`--token-auth post`…).
    ///
    /// A provider that does not say `ready` in time is killed and started again, up to
    /// [`PROVIDER_ATTEMPTS`] times: Node now and then stops at start-up between loading
    /// oidc-provider and listening (blocked on a futex, seen in CI), which is the provider's
    /// problem, not the log-in's under test.
    fn start_with(
        node_modules: &str,
        redirect_uri: &str,
        subject: &str,
        email: &str,
        extra: &[&str],
    ) -> OidcProvider {
        let mut failures = Vec::new();
        for _ in 0..PROVIDER_ATTEMPTS {
            match Self::try_start(node_modules, redirect_uri, subject, email, extra) {
                Ok(provider) => return provider,
                Err(why) => {
                    eprintln!("[provider.mjs] did not start: {why}");
                    failures.push(why);
                }
            }
        }
        panic!(
            "{NODE_MODULES} is set but the OIDC provider did not start in {PROVIDER_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// One start of provider.mjs; on failure the child is killed (by `Drop`) and the reason
    /// comes back with its stderr.
    fn try_start(
        node_modules: &str,
        redirect_uri: &str,
        subject: &str,
        email: &str,
        extra: &[&str],
    ) -> Result<OidcProvider, String> {
        let node_modules = PathBuf::from(node_modules);
        assert!(
            node_modules
                .join("oidc-provider")
                .join("package.json")
                .is_file(),
            "{NODE_MODULES}={} has no oidc-provider: run deploy/install.sh",
            node_modules.display()
        );
        // ESM imports resolve from the importing file's directory and ignore NODE_PATH, so
        // the script runs from a directory of its own next to a link to the node_modules.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/oidc/provider.mjs");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&script, dir.path().join("provider.mjs"))
            .unwrap_or_else(|e| panic!("copy {}: {e}", script.display()));
        std::os::unix::fs::symlink(&node_modules, dir.path().join("node_modules")).unwrap();

        let port = free_port();
        let mut child = Command::new("node")
            .current_dir(dir.path())
            .arg("provider.mjs")
            .args(["--port", &port.to_string()])
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            .args(["--redirect-uri", redirect_uri])
            .args(["--subject", subject, "--email", email])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{NODE_MODULES} is set but node does not run: {e}"));

        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[provider.mjs] {line}");
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "ready" {
                    let _ = ready_tx.send(());
                }
            }
        });

        let mut provider = OidcProvider {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        if let Err(e) = ready_rx.recv_timeout(PROVIDER_START) {
            std::thread::sleep(Duration::from_millis(200)); // let stderr drain
            let why = match (e, provider.child.try_wait().ok().flatten()) {
                (_, Some(status)) => format!("exited ({status})"),
                (mpsc::RecvTimeoutError::Timeout, None) => {
                    format!("no ready within {PROVIDER_START:?}")
                }
                (mpsc::RecvTimeoutError::Disconnected, None) => "closed its stdout".to_string(),
            };
            let stderr = provider.log.lock().unwrap().clone();
            return Err(format!("{why}; stderr:\n{stderr}"));
        }
        Ok(provider)
    }
}

/// A port that was free a moment ago (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// --------------------------------------------------------------------------------- wagu --

/// Wagu on a port chosen before its configuration is built, so that `public_url` (and with
/// it the redirect URI registered with the provider) is known in advance.
struct Wagu {
    addr: SocketAddr,
    /// The server's state: the tests look into its records store.
    state: wagu_gateway::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Wagu {
    async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    async fn start(listener: tokio::net::TcpListener, config: Config) -> Wagu {
        let addr = listener.local_addr().unwrap();
        let app = App::build(config).await.expect("app builds");
        let state = app.state.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = wagu_gateway::serve(listener, app, async move {
                let _ = rx.await;
            })
            .await;
        });
        Wagu {
            addr,
            state,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn callback_url(&self) -> String {
        self.callback_of(NAME)
    }

    fn start_of(&self, name: &str) -> String {
        self.url(&format!("/api/auth/oidc/{name}/start"))
    }

    fn callback_of(&self, name: &str) -> String {
        self.url(&format!("/api/auth/oidc/{name}/callback"))
    }

    /// The account the records store holds for `subject` at provider `name`, if any.
    async fn account_of(&self, name: &str, subject: &str) -> Option<String> {
        use wagu_storage::records::AccountStore;
        self.state
            .records
            .account_by_identity(name, subject)
            .await
            .expect("the records store answers")
            .map(|a| a.id.0)
    }
}

impl Drop for Wagu {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

// ------------------------------------------------------------------------------ browser --

/// The parts of an absolute `http://host:port/path?query` URL.
struct Url {
    authority: String,
    /// Path and query.
    target: String,
}

fn parse_url(url: &str) -> Url {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// URL: {url}"));
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    Url {
        authority: authority.to_string(),
        target: target.split('#').next().unwrap().to_string(),
    }
}

fn path_of(target: &str) -> &str {
    target.split('?').next().unwrap()
}

/// The decoded query parameters of a URL.
fn query(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let q = q.split('#').next().unwrap();
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad %: {s}")));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.body))
    }

    /// `error.code` of a Wagu error body.
    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

struct Cookie {
    authority: String,
    name: String,
    value: String,
    path: String,
}

/// Enough of a browser for the code flow: GET requests over HTTP/1.0 with a cookie jar
/// (per host:port, honouring Path and deletion), redirects followed by hand.
#[derive(Default)]
struct Browser {
    jar: Vec<Cookie>,
    /// Every URL requested, in order.
    visited: Vec<String>,
    /// Whether it says `Accept: text/html` as a browser's navigation does (Wagu's callback
    /// then answers a redirect to the web client) or `application/json` (an API client).
    navigates: bool,
}

impl Browser {
    /// One that accepts HTML, as a real browser's navigation does.
    fn navigating() -> Browser {
        Browser {
            navigates: true,
            ..Browser::default()
        }
    }

    async fn get(&mut self, url: &str) -> Response {
        self.request("GET", url, None).await
    }

    /// A JSON `POST` with the jar's cookies (as the web client's `fetch` sends them).
    async fn post_json(&mut self, url: &str, body: &Value) -> Response {
        self.request("POST", url, Some(("application/json", &body.to_string())))
            .await
    }

    /// A form `POST` (what a client sends a token endpoint).
    async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Response {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        self.request(
            "POST",
            url,
            Some(("application/x-www-form-urlencoded", &body.join("&"))),
        )
        .await
    }

    async fn request(&mut self, method: &str, url: &str, body: Option<(&str, &str)>) -> Response {
        self.visited.push(url.to_string());
        let u = parse_url(url);
        let path = path_of(&u.target);
        let cookies: Vec<String> = self
            .jar
            .iter()
            .filter(|c| c.authority == u.authority && path_matches(path, &c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        let accept = if self.navigates {
            "text/html,application/xhtml+xml,*/*;q=0.8"
        } else {
            "application/json"
        };
        let mut req = format!(
            "{method} {} HTTP/1.0\r\nHost: {}\r\nAccept: {accept}\r\nUser-Agent: wagu-oidc-test\r\n",
            u.target, u.authority
        );
        if !cookies.is_empty() {
            req.push_str(&format!("Cookie: {}\r\n", cookies.join("; ")));
        }
        if let Some((ctype, b)) = body {
            req.push_str(&format!(
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body.map(|(_, b)| b).unwrap_or(""));
        let raw = tokio::time::timeout(HTTP_TIMEOUT, async {
            let mut s = TcpStream::connect(&u.authority)
                .await
                .unwrap_or_else(|e| panic!("connect {}: {e}", u.authority));
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            buf
        })
        .await
        .unwrap_or_else(|_| panic!("no answer within {HTTP_TIMEOUT:?} from {method} {url}"));
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP head from GET {url}: {text:?}"));
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line from GET {url}: {head}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        assert!(
            !headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding")
                    && v.eq_ignore_ascii_case("chunked")),
            "chunked answer to an HTTP/1.0 request from GET {url}"
        );
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                self.set_cookie(&u.authority, path, v);
            }
        }
        Response {
            status,
            headers,
            body: body.to_string(),
        }
    }

    fn set_cookie(&mut self, authority: &str, request_path: &str, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        let mut path = match request_path.rfind('/') {
            Some(0) | None => "/".to_string(),
            Some(i) => request_path[..i].to_string(),
        };
        let mut expired = value.is_empty();
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "path" if v.trim().starts_with('/') => path = v.trim().to_string(),
                "max-age" => expired |= v.trim().parse::<i64>().is_ok_and(|s| s <= 0),
                // Deletions are dated 1970; nothing here lives across a year boundary.
                "expires" => expired |= v.contains("1970"),
                _ => {}
            }
        }
        self.jar
            .retain(|c| !(c.authority == authority && c.name == name && c.path == path));
        if !expired {
            self.jar.push(Cookie {
                authority: authority.to_string(),
                name,
                value,
                path,
            });
        }
    }

    /// Follows redirects from `url` until one points at a URL starting with `stop_at`, which
    /// it returns without requesting it.
    async fn follow_until(&mut self, url: &str, stop_at: &str) -> String {
        let mut url = url.to_string();
        for _ in 0..20 {
            if url.starts_with(stop_at) {
                return url;
            }
            let r = self.get(&url).await;
            assert!(
                matches!(r.status, 301 | 302 | 303 | 307 | 308),
                "expected a redirect towards {stop_at} from GET {url}, got {}: {}",
                r.status,
                r.body
            );
            let location = r
                .header("location")
                .unwrap_or_else(|| panic!("redirect without Location from GET {url}"));
            url = absolute(&url, location);
        }
        panic!(
            "more than 20 redirects, never reached {stop_at}: {:#?}",
            self.visited
        );
    }
}

fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// `location` resolved against `base` (absolute URLs and absolute paths; nothing else is
/// sent by either server).
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("http://{}{location}", parse_url(base).authority)
    } else {
        let b = parse_url(base);
        let dir = &path_of(&b.target)[..=path_of(&b.target).rfind('/').unwrap()];
        format!("http://{}{dir}{location}", b.authority)
    }
}

// ---------------------------------------------------------------------------- the flows --

/// `GET /api/auth/oidc/{NAME}/start` in `browser`; returns the provider's authorize URL after
/// checking it asks for the code flow with PKCE S256 and Wagu's redirect URI.
async fn start_flow(browser: &mut Browser, wagu: &Wagu, issuer: &str) -> String {
    let r = browser.get(&wagu.start_of(NAME)).await;
    assert_eq!(r.status, 302, "start: {}", r.body);
    let location = r
        .header("location")
        .expect("start sets Location")
        .to_string();
    assert!(
        location.starts_with(&format!("{issuer}/")),
        "the authorize URL is the provider's (discovered) endpoint: {location}"
    );
    let q = query(&location);
    assert_eq!(
        q.get("response_type").map(String::as_str),
        Some("code"),
        "{location}"
    );
    assert_eq!(
        q.get("client_id").map(String::as_str),
        Some(CLIENT_ID),
        "{location}"
    );
    assert_eq!(
        q.get("redirect_uri"),
        Some(&wagu.callback_url()),
        "{location}"
    );
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for s in ["openid", "email", "profile"] {
        assert!(scopes.contains(&s), "scope {s} missing: {location}");
    }
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256"),
        "{location}"
    );
    for p in ["state", "nonce", "code_challenge"] {
        assert!(
            q.get(p).is_some_and(|v| v.len() >= 16),
            "{p} missing or short: {location}"
        );
    }
    // S256: base64url (no padding) of a SHA-256, 43 characters.
    assert_eq!(q["code_challenge"].len(), 43, "{location}");
    location
}

/// The browser's whole trip: Wagu's start, the provider's authorize endpoint and
/// interaction, back to Wagu's callback, whose URL (with code and state) it returns
/// without requesting it.
async fn through_provider(browser: &mut Browser, wagu: &Wagu, issuer: &str) -> String {
    let authorize = start_flow(browser, wagu, issuer).await;
    let state = state_of(&authorize);
    let callback = browser.follow_until(&authorize, &wagu.callback_url()).await;
    let q = query(&callback);
    assert!(
        !q.contains_key("error"),
        "the provider answered an error: {callback}"
    );
    assert!(
        q.get("code").is_some_and(|c| !c.is_empty()),
        "no code: {callback}"
    );
    assert_eq!(
        q.get("state"),
        Some(&state),
        "the state comes back: {callback}"
    );
    callback
}

/// A full log-in: through the provider, then the callback; returns the session.
async fn login(browser: &mut Browser, wagu: &Wagu, issuer: &str) -> (String, Value) {
    let callback = through_provider(browser, wagu, issuer).await;
    let r = browser.get(&callback).await;
    assert_eq!(r.status, 200, "callback: {}", r.body);
    let v = r.json();
    for k in ["access_token", "refresh_token"] {
        assert!(
            v[k].as_str().is_some_and(|t| !t.is_empty()),
            "{k} missing: {v}"
        );
    }
    assert!(
        v["account"]["id"].as_str().is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    assert!(v["account"]["created_at"].is_u64(), "{v}");
    (callback, v)
}

async fn call(
    wagu: &Wagu,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    tokio::time::timeout(
        HTTP_TIMEOUT,
        common::api(wagu.addr, method, path, token, body),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer to {method} {path}"))
}

fn code_of(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// `GET` Wagu's callback `cb` with `params` as its query, each value percent-encoded: what
/// a provider's redirect (or a forger's link) brings a browser to.
async fn get_callback(b: &mut Browser, cb: &str, params: &[(&str, &str)]) -> Response {
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    b.get(&format!("{cb}?{}", q.join("&"))).await
}

/// Wagu's callback `cb` with the code and state of the `real` callback URL, but an `iss`
/// naming another issuer (the RFC 9207 mix-up attack).
async fn callback_from_elsewhere(b: &mut Browser, cb: &str, real: &str) -> Response {
    let (code, state) = (code_in(real), state_of(real));
    let params = [
        ("code", code.as_str()),
        ("state", state.as_str()),
        ("iss", "http://evil.example"),
    ];
    get_callback(b, cb, &params).await
}

/// The `state` a URL's query carries (an authorize URL's, or a callback's).
fn state_of(url: &str) -> String {
    query(url)["state"].clone()
}

/// The `code` a callback URL's query carries.
fn code_in(url: &str) -> String {
    query(url)["code"].clone()
}

/// That Wagu answered `r` with `status` and the typed error `code`.
#[track_caller]
fn assert_refused(r: &Response, status: u16, code: &str) {
    assert_eq!(
        (r.status, r.code()),
        (status, code.to_string()),
        "{}",
        r.body
    );
}

/// That `GET /api/me` with `access` is the account `id`.
async fn assert_me(wagu: &Wagu, access: Option<&str>, id: &str) {
    let (s, me) = call(wagu, "GET", "/api/me", access, "").await;
    assert_eq!((s, me["id"].as_str()), (200, Some(id)), "{me}");
}

/// The walkthrough, on whatever storage `config` names.
async fn social_login(test: &str, node_modules: &str, mut config: Config) {
    let (listener, addr) = Wagu::bind().await;
    let public_url = format!("http://{addr}");
    let redirect_uri = format!("{public_url}/api/auth/oidc/{NAME}/callback");
    let n = common::rand_u64() % 1_000_000_000;
    let subject = format!("oidc-sub-{n}");
    let email = format!("oidc-{n}@example.test");
    let provider = OidcProvider::start(node_modules, &redirect_uri, &subject, &email);
    let issuer = provider.issuer.clone();
    eprintln!("{test}: provider {issuer}, wagu {public_url}");

    config.listen = addr;
    config.public_url = Some(public_url);
    // Every start and callback counts as a log-in attempt; this test makes a few dozen.
    config.rate.logins_per_minute = 1_000;
    config.auth.oidc = vec![SocialProviderConfig {
        name: NAME.into(),
        issuer: Some(issuer.clone()),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        scopes: Some(vec!["openid".into(), "email".into(), "profile".into()]),
        ..Default::default()
    }];
    let wagu = Wagu::start(listener, config).await;

    // The providers a client can offer.
    let (s, v) = call(&wagu, "GET", "/api/auth/oidc", None, "").await;
    assert_eq!((s, v.clone()), (200, json!({"providers": [NAME]})), "{v}");

    // First log-in: the provider asks for log-in and consent (done by its interaction
    // route), Wagu redeems the code and creates the account.
    let mut alice = Browser::default();
    let (first_callback, first) = login(&mut alice, &wagu, &issuer).await;
    assert!(
        alice.visited.iter().any(|u| u.contains("/interaction/")),
        "a new browser goes through the provider's interaction: {:#?}",
        alice.visited
    );
    let id = first["account"]["id"].as_str().unwrap().to_string();
    assert_eq!(first["account"]["display_name"], DISPLAY_NAME, "{first}");
    let access = first["access_token"].as_str().unwrap();
    assert_me(&wagu, Some(access), &id).await;

    // 1. The same subject again, through the whole flow in a new browser: the same account.
    let mut bob = Browser::default();
    let (_, second) = login(&mut bob, &wagu, &issuer).await;
    assert_eq!(second["account"]["id"], id.as_str(), "{second}");
    let access2 = second["access_token"].as_str().unwrap();
    assert_ne!(
        second["refresh_token"], first["refresh_token"],
        "a new session"
    );
    assert_me(&wagu, Some(access2), &id).await;
    // ... and in the first browser, whose provider session lets it straight through.
    let visited_before = alice.visited.len();
    let (_, third) = login(&mut alice, &wagu, &issuer).await;
    assert_eq!(third["account"]["id"], id.as_str(), "{third}");
    assert!(
        !alice.visited[visited_before..]
            .iter()
            .any(|u| u.contains("/interaction/")),
        "the provider's session skips the interaction: {:#?}",
        &alice.visited[visited_before..]
    );

    // 2. Replaying a used callback (same state and code): the state is single-use.
    let r = alice.get(&first_callback).await;
    assert_refused(&r, 400, "invalid_state");

    // 3. A state Wagu never issued, or none at all.
    let cb = wagu.callback_url();
    let r = get_callback(
        &mut alice,
        &cb,
        &[("code", "whatever"), ("state", "bogus-state-0123456789")],
    )
    .await;
    assert_refused(&r, 400, "invalid_state");
    let r = get_callback(&mut alice, &cb, &[("code", "whatever")]).await;
    assert_refused(&r, 400, "invalid_state");
    //    A valid state with a code the provider never issued: its token endpoint refuses.
    let state = state_of(&start_flow(&mut alice, &wagu, &issuer).await);
    let r = get_callback(
        &mut alice,
        &cb,
        &[("code", "bogus-code"), ("state", &state)],
    )
    .await;
    assert_refused(&r, 401, "oidc_failed");
    //    A real code presented with another flow's state: its PKCE verifier does not match
    //    the code's challenge, so the provider refuses it.
    let stolen = through_provider(&mut bob, &wagu, &issuer).await;
    let other_state = state_of(&start_flow(&mut alice, &wagu, &issuer).await);
    let r = get_callback(
        &mut alice,
        &cb,
        &[("code", &code_in(&stolen)), ("state", &other_state)],
    )
    .await;
    assert_refused(&r, 401, "oidc_failed");

    //    A real code whose callback names another issuer (RFC 9207 mix-up defence).
    let real = through_provider(&mut bob, &wagu, &issuer).await;
    let r = callback_from_elsewhere(&mut bob, &cb, &real).await;
    assert_refused(&r, 401, "oidc_failed");

    //    Login CSRF: a callback link made in one browser, opened in another, is refused
    //    (the state is bound to the starting browser by a cookie) and does not burn the
    //    state: the browser that started the log-in still completes it.
    let links = through_provider(&mut bob, &wagu, &issuer).await;
    let mut mallory_victim = Browser::default();
    let r = mallory_victim.get(&links).await;
    assert_refused(&r, 400, "invalid_state");
    let r = bob.get(&links).await;
    assert_eq!(r.status, 200, "the starting browser finishes: {}", r.body);

    // 4. A provider that is not configured.
    let r = alice.get(&wagu.start_of("nope")).await;
    assert_refused(&r, 404, "unknown_provider");

    // 5. The provider sends the user back with an error instead of a code.
    let state = state_of(&start_flow(&mut alice, &wagu, &issuer).await);
    let r = get_callback(
        &mut alice,
        &cb,
        &[
            ("error", "access_denied"),
            ("error_description", "End-User aborted interaction"),
            ("state", &state),
        ],
    )
    .await;
    assert_refused(&r, 401, "oidc_denied");

    // 6. The account has no password: logging in with its email and any password fails.
    for password in ["correct horse battery", "a different password"] {
        let (s, v) = call(
            &wagu,
            "POST",
            "/api/auth/login",
            None,
            &json!({"email": email, "password": password}).to_string(),
        )
        .await;
        assert_eq!((s, code_of(&v)), (401, "invalid_credentials"), "{v}");
    }

    // Still the same single account after all of the above.
    let (_, fourth) = login(&mut bob, &wagu, &issuer).await;
    assert_eq!(fourth["account"]["id"], id.as_str(), "{fourth}");

    wagu.stop().await;
    drop(provider);
}

#[tokio::test]
async fn oidc_social_login_embedded() {
    let test = "oidc_social_login_embedded";
    let Some(node_modules) = wagu_storage::testbed::service(NODE_MODULES, test) else {
        return;
    };
    social_login(test, &node_modules, common::test_config()).await;
}

/// The same on Cassandra, where the provider identity → account mapping lives in CQL.
#[tokio::test]
async fn oidc_social_login_cql() {
    let test = "oidc_social_login_cql";
    let Some(node_modules) = wagu_storage::testbed::service(NODE_MODULES, test) else {
        return;
    };
    let Some(config) = common::on_fresh_cql(common::test_config(), test, "wagu_oidc") else {
        return;
    };
    social_login(test, &node_modules, config.clone()).await;
    common::drop_keyspace(&config).await;
}

// ------------------------------------------------------- OAuth 2.0 and the browser finish --

/// A subject and email no other run uses.
fn fresh_person(tag: &str) -> (String, String) {
    let n = common::rand_u64() % 1_000_000_000;
    (format!("{tag}-sub-{n}"), format!("{tag}-{n}@example.test"))
}

/// A port for Wagu and the callback URL it will have for `name`, before Wagu starts.
async fn reserve(name: &str) -> (tokio::net::TcpListener, SocketAddr, String) {
    let (listener, addr) = Wagu::bind().await;
    let cb = format!("http://{addr}/api/auth/oidc/{name}/callback");
    (listener, addr, cb)
}

async fn wagu_on(
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    providers: Vec<SocialProviderConfig>,
) -> Wagu {
    let mut config = common::test_config();
    config.listen = addr;
    config.public_url = Some(format!("http://{addr}"));
    config.rate.logins_per_minute = 1_000;
    config.auth.oidc = providers;
    Wagu::start(listener, config).await
}

/// The Naver preset, its endpoints moved to `issuer` (provider.mjs's OAuth 2.0 face).
fn naver_at(name: &str, issuer: &str) -> SocialProviderConfig {
    SocialProviderConfig {
        name: name.into(),
        preset: Some(Preset::Naver),
        authorization_endpoint: Some(format!("{issuer}/auth")),
        token_endpoint: Some(format!("{issuer}/token")),
        profile_endpoint: Some(format!("{issuer}/v1/nid/me")),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        ..Default::default()
    }
}

/// Starts an OAuth 2.0 log-in of `name`: the provider's authorize URL, checked to carry a
/// state and neither an OIDC nonce, nor a scope, nor PKCE (the Naver preset has none).
async fn start_plain(browser: &mut Browser, wagu: &Wagu, name: &str, issuer: &str) -> String {
    let r = browser.get(&wagu.start_of(name)).await;
    assert_eq!(r.status, 302, "start: {}", r.body);
    let location = r.header("location").expect("Location").to_string();
    assert!(
        location.starts_with(&format!("{issuer}/auth?")),
        "{location}"
    );
    let q = query(&location);
    assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
    assert_eq!(q.get("redirect_uri"), Some(&wagu.callback_of(name)));
    assert!(q.get("state").is_some_and(|s| s.len() >= 16), "{location}");
    for absent in ["nonce", "scope", "code_challenge"] {
        assert!(!q.contains_key(absent), "{absent} in {location}");
    }
    location
}

/// Through the provider to Wagu's callback URL (not requested).
async fn to_callback(browser: &mut Browser, authorize: &str, callback: &str) -> String {
    let cb = browser.follow_until(authorize, callback).await;
    let q = query(&cb);
    assert!(
        q.get("code").is_some_and(|c| !c.is_empty()),
        "no code: {cb}"
    );
    cb
}

/// A whole trip of the OAuth 2.0 provider [`NAME`] up to Wagu's callback URL (not requested).
async fn plain_callback(b: &mut Browser, wagu: &Wagu, issuer: &str, cb: &str) -> String {
    let authorize = start_plain(b, wagu, NAME, issuer).await;
    to_callback(b, &authorize, cb).await
}

#[tokio::test]
async fn a_naver_style_oauth2_provider_logs_in_through_its_profile_api() {
    let test = "a_naver_style_oauth2_provider_logs_in_through_its_profile_api";
    let Some(node_modules) = wagu_storage::testbed::service(NODE_MODULES, test) else {
        return;
    };
    const SLOW: &str = "testop-slow"; // sorts after NAME
    let (subject, email) = fresh_person("naver");
    let (listener, addr, cb) = reserve(NAME).await;
    let slow_cb = format!("http://{addr}/api/auth/oidc/{SLOW}/callback");
    let naver_args = ["--token-auth", "post", "--pkce", "optional"];
    let provider = OidcProvider::start_with(
        &node_modules,
        &cb,
        &subject,
        &email,
        &[&naver_args[..], &["--nickname", "네이버 테스터"]].concat(),
    );
    // A second provider whose codes expire after a second.
    let slow = OidcProvider::start_with(
        &node_modules,
        &slow_cb,
        &subject,
        &email,
        &[&naver_args[..], &["--code-ttl", "1"]].concat(),
    );
    let issuer = provider.issuer.clone();
    let wagu = wagu_on(
        listener,
        addr,
        vec![naver_at(NAME, &issuer), naver_at(SLOW, &slow.issuer)],
    )
    .await;

    // The web client's list: label and kind from the preset.
    let (s, v) = call(&wagu, "GET", "/api/auth/providers", None, "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["providers"][0],
        json!({"name": NAME, "label": "Naver", "kind": "oauth2",
            "start_url": format!("/api/auth/oidc/{NAME}/start")}),
        "{v}"
    );
    assert_eq!(v["providers"][1]["name"], SLOW, "{v}");

    let mut b = Browser::default();
    // 1. The person refuses consent: the provider sends error=access_denied.
    let state = state_of(&start_plain(&mut b, &wagu, NAME, &issuer).await);
    let r = get_callback(
        &mut b,
        &cb,
        &[
            ("error", "access_denied"),
            ("error_description", "Canceled By User"),
            ("state", &state),
        ],
    )
    .await;
    assert_refused(&r, 401, "oidc_denied");
    //    ... and that state is spent: a real code with it is refused.
    let real = plain_callback(&mut b, &wagu, &issuer, &cb).await;
    let r = get_callback(&mut b, &cb, &[("code", &code_in(&real)), ("state", &state)]).await;
    assert_refused(&r, 400, "invalid_state");

    // 2. A code already redeemed (here by someone holding the client secret, at the
    //    provider's token endpoint directly): the provider refuses it the second time.
    let real = plain_callback(&mut b, &wagu, &issuer, &cb).await;
    let first = b
        .post_form(
            &format!("{issuer}/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code_in(&real)),
                ("redirect_uri", &cb),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(
        first.status, 200,
        "the first redemption works: {}",
        first.body
    );
    let r = b.get(&real).await;
    assert_refused(&r, 401, "oidc_failed");

    // 3. An expired code.
    let mut c = Browser::default();
    let authorize = start_plain(&mut c, &wagu, SLOW, &slow.issuer).await;
    let late = to_callback(&mut c, &authorize, &slow_cb).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = c.get(&late).await;
    assert_refused(&r, 401, "oidc_failed");

    // 4. A state Wagu never issued.
    let r = get_callback(
        &mut b,
        &cb,
        &[("code", "x"), ("state", "never-issued-state-0123")],
    )
    .await;
    assert_refused(&r, 400, "invalid_state");

    // None of that created an account.
    assert_eq!(wagu.account_of(NAME, &subject).await, None);
    assert_eq!(wagu.account_of(SLOW, &subject).await, None);

    // The real thing: token (client secret in the form), then the profile API.
    let callback = plain_callback(&mut b, &wagu, &issuer, &cb).await;
    let r = b.get(&callback).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v["account"]["display_name"], "네이버 테스터",
        "the profile's nickname: {v}"
    );
    let id = v["account"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        wagu.account_of(NAME, &subject).await.as_deref(),
        Some(id.as_str())
    );
    assert_me(&wagu, v["access_token"].as_str(), &id).await;

    // Replaying the callback that worked: the state is single-use.
    let r = b.get(&callback).await;
    assert_refused(&r, 400, "invalid_state");

    // Logging in again finds the same account.
    let again = plain_callback(&mut b, &wagu, &issuer, &cb).await;
    let r = b.get(&again).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["account"]["id"], id.as_str());

    wagu.stop().await;
    drop((provider, slow));
}

/// The fragment Wagu's callback sends a browser to: `/login#<key>=<value>`.
fn login_fragment(r: &Response) -> (String, String) {
    assert_eq!(
        r.status, 303,
        "a browser is sent to the web client: {}",
        r.body
    );
    let location = r.header("location").expect("Location");
    let fragment = location
        .strip_prefix("/login#")
        .unwrap_or_else(|| panic!("not the log-in page: {location}"));
    assert!(
        !fragment.contains("access_token") && !fragment.contains("wr_"),
        "no token in a URL: {location}"
    );
    let (k, v) = fragment.split_once('=').expect("key=value");
    (k.to_string(), v.to_string())
}

#[tokio::test]
async fn a_browser_finishes_a_kakao_style_log_in_in_the_web_client() {
    let test = "a_browser_finishes_a_kakao_style_log_in_in_the_web_client";
    let Some(node_modules) = wagu_storage::testbed::service(NODE_MODULES, test) else {
        return;
    };
    let (subject, email) = fresh_person("kakao");
    let (listener, addr, cb) = reserve(NAME).await;
    let provider = OidcProvider::start_with(
        &node_modules,
        &cb,
        &subject,
        &email,
        &["--token-auth", "post", "--nickname", "카카오 친구"],
    );
    let issuer = provider.issuer.clone();
    // The Kakao preset (scopes profile_nickname and profile_image, the secret in the form,
    // the nickname claim) with the issuer moved to the local provider.
    let kakao = SocialProviderConfig {
        name: NAME.into(),
        preset: Some(Preset::Kakao),
        issuer: Some(issuer.clone()),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        ..Default::default()
    };
    let wagu = wagu_on(listener, addr, vec![kakao]).await;

    let mut b = Browser::navigating();
    let r = b.get(&wagu.start_of(NAME)).await;
    assert_eq!(r.status, 302, "{}", r.body);
    let authorize = r.header("location").unwrap().to_string();
    let scopes = query(&authorize)["scope"].clone();
    assert_eq!(
        scopes, "openid profile_nickname profile_image",
        "{authorize}"
    );
    let callback = b.follow_until(&authorize, &cb).await;

    // Errors come back to the web client as a code it can show.
    let mut other = Browser::navigating();
    let r = other.get(&callback).await;
    assert_eq!(
        login_fragment(&r),
        ("social_error".into(), "invalid_state".into()),
        "another browser's callback"
    );
    assert_eq!(
        wagu.account_of(NAME, &subject).await,
        None,
        "no account yet"
    );

    // The callback: a one-time code in the fragment, nothing else.
    let r = b.get(&callback).await;
    let (k, code) = login_fragment(&r);
    assert_eq!(k, "social_code");
    let exchange = wagu.url("/api/auth/oidc/exchange");
    // Another browser (without the state cookie) cannot use it, nor burn it.
    let r = other.post_json(&exchange, &json!({ "code": code })).await;
    assert_refused(&r, 400, "invalid_code");
    let r = b.post_json(&exchange, &json!({ "code": code })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v["account"]["display_name"], "카카오 친구",
        "Kakao's nickname: {v}"
    );
    assert!(
        r.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0")),
        "the state cookie is cleared"
    );
    let id = v["account"]["id"].as_str().unwrap();
    assert_eq!(wagu.account_of(NAME, &subject).await.as_deref(), Some(id));
    assert_me(&wagu, v["access_token"].as_str(), id).await;
    // Single use.
    let r = b.post_json(&exchange, &json!({ "code": code })).await;
    assert_refused(&r, 400, "invalid_code");
    // Bad bodies are typed errors.
    let r = b
        .post_json(&exchange, &json!({ "code": code, "extra": 1 }))
        .await;
    assert_refused(&r, 400, "invalid");

    // A start that fails is shown on the log-in page too.
    let r = b.get(&wagu.start_of("nope")).await;
    assert_eq!(
        login_fragment(&r),
        ("social_error".into(), "unknown_provider".into())
    );

    // A denial comes back as oidc_denied.
    let r = b.get(&wagu.start_of(NAME)).await;
    let state = state_of(r.header("location").unwrap());
    let r = get_callback(
        &mut b,
        &cb,
        &[("error", "access_denied"), ("state", &state)],
    )
    .await;
    assert_eq!(
        login_fragment(&r),
        ("social_error".into(), "oidc_denied".into())
    );

    wagu.stop().await;
    drop(provider);
}

#[tokio::test]
async fn failed_oidc_log_ins_create_no_account() {
    let test = "failed_oidc_log_ins_create_no_account";
    let Some(node_modules) = wagu_storage::testbed::service(NODE_MODULES, test) else {
        return;
    };
    let (subject, email) = fresh_person("fail");
    let (listener, addr, cb) = reserve(NAME).await;
    let provider = OidcProvider::start(&node_modules, &cb, &subject, &email);
    let issuer = provider.issuer.clone();
    let provider_at = |name: &str, issuer: String| SocialProviderConfig {
        name: name.into(),
        issuer: Some(issuer),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        ..Default::default()
    };
    // The same server under another name: its discovery document names 127.0.0.1, not
    // localhost, so it is not this issuer's (OIDC Discovery 4.3).
    let wrong = issuer.replace("127.0.0.1", "localhost");
    let wagu = wagu_on(
        listener,
        addr,
        vec![
            provider_at(NAME, issuer.clone()),
            provider_at("wrongiss", wrong),
        ],
    )
    .await;
    let mut b = Browser::default();

    // A configured issuer that the discovery document does not confirm.
    let r = b.get(&wagu.start_of("wrongiss")).await;
    assert_refused(&r, 401, "oidc_failed");

    // Denied consent.
    let state = state_of(&start_flow(&mut b, &wagu, &issuer).await);
    let r = get_callback(
        &mut b,
        &cb,
        &[("error", "access_denied"), ("state", &state)],
    )
    .await;
    assert_refused(&r, 401, "oidc_denied");
    // A real code under the spent state (a replayed state).
    let real = through_provider(&mut b, &wagu, &issuer).await;
    let r = get_callback(&mut b, &cb, &[("code", &code_in(&real)), ("state", &state)]).await;
    assert_refused(&r, 400, "invalid_state");
    // A real code whose callback names another issuer.
    let real = through_provider(&mut b, &wagu, &issuer).await;
    let r = callback_from_elsewhere(&mut b, &cb, &real).await;
    assert_refused(&r, 401, "oidc_failed");
    // A code the provider never issued.
    let state = state_of(&start_flow(&mut b, &wagu, &issuer).await);
    let r = get_callback(&mut b, &cb, &[("code", "forged-code"), ("state", &state)]).await;
    assert_refused(&r, 401, "oidc_failed");

    assert_eq!(wagu.account_of(NAME, &subject).await, None);
    use wagu_storage::records::AccountStore;
    assert!(
        wagu.state
            .records
            .account_by_email(&email)
            .await
            .unwrap()
            .is_none(),
        "no account under the provider's email either"
    );
    wagu.stop().await;
    drop(provider);
}
