//! The `records` scenario (Wagu only): the REST API of accounts, places and posts
//! (`docs/RECORDS.md`) under a closed-loop mix, with latency per operation.
//!
//! **Setup** (the ramp of the other scenarios; nothing of it is in the per-operation figures):
//!
//! 1. find the places of the sample area, `GET /api/places?bbox=37.50,126.92,37.58,127.06`
//!    page by page (the server seeds 320 sample places into an empty store, 230 of them in
//!    Seoul inside that box), and take the search prefixes from their names;
//! 2. sign up `--users` accounts (`POST /api/auth/signup`, emails unique to the run),
//!    `--signup-concurrency` at a time; the sign-up latency is the result's `join_latency_ms`;
//! 3. let each user write one post, so reads, feeds and edits have data from the first second.
//!
//! **Mix**: `--concurrency` workers, each sending one request at a time and the next as soon
//! as the answer is read (a closed loop, so the offered load is whatever the server sustains),
//! draw each operation from [`mix::Mix`]. Worker `w` acts as users `w, w + C, w + 2C…` (with
//! fewer users than workers, user `w mod N`) and edits only posts it wrote itself, so two
//! workers never edit one post at once (which the server would answer with `409 conflict`).
//! Reads pick among every user, the places found and the 4,096 most recent posts.
//!
//! **Measured** from the end of the warmup to the end of the window, per operation: requests,
//! failures by status and code, latency from send to the last byte of the answer (hdrhistogram,
//! µs, failures included), all of it booked when the answer arrives. Requests and answers also
//! feed the run's counters (the per-second timeline and progress) and every failure of the
//! whole run goes into the `requests` error book, which the `--slo-max-errors` gate reads.
//!
//! Access tokens last 15 minutes by default: a worker refreshes its user's session a minute
//! before it expires (`POST /api/auth/refresh`), outside the per-operation figures.
//!
//! The server limits sign-ups and writes per client address, and every request here comes from
//! one: run it with `WAGU_RATE__LOGINS_PER_MINUTE` and `WAGU_RATE__WRITES_PER_MINUTE` raised.
//!
//! Why ~1,050 lines: the setup, the operation mix and the result of one scenario; about 90
//! lines of it are its tests, and the generated content already lives in `content.rs`.

mod content;
mod mix;

use crate::cli::RecordsArgs;
use crate::report::{self, Detail, Latency, OpReport, RecordsDetail, RunResult};
use crate::scenario::{Shared, validate_timing};
use crate::stats::{C, H, Stats, TaskGuard, new_hist, record};
use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use mix::{Mix, Op, Rng};
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wagu_proto::model::LatLng;

/// The sample places' area in Seoul: `swlat,swlng,nelat,nelng`.
pub const SAMPLE_BBOX: &str = "37.50,126.92,37.58,127.06";
/// Longest a request may take, connect included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pages of the sample area read at most while finding places.
const MAX_DISCOVERY_PAGES: usize = 50;
/// Recent post ids `read_post` draws from.
const RECENT_POSTS: usize = 4096;
/// Own posts an edit draws from, per user of a worker.
const OWN_POSTS: usize = 16;
/// A session is refreshed this long before its access token expires.
const REFRESH_MARGIN_SECS: u64 = 60;
/// After a failed refresh, the next try waits this long.
const REFRESH_RETRY_SECS: u64 = 30;
/// Half the height and width of a viewport, degrees (≈ 1.3 × 1.3 km: a phone at zoom 15).
const VIEWPORT_HALF: (f64, f64) = (0.006, 0.0075);
/// How far from a place "near me" asks from, degrees.
const NEAR_JITTER: f64 = 0.01;

pub fn validate(a: &RecordsArgs) -> anyhow::Result<()> {
    if !a.url.starts_with("http://") {
        bail!("--url must be a plain http:// URL (got {:?})", a.url);
    }
    if a.users == 0 {
        bail!("--users must be at least 1");
    }
    if !(1..=10_000).contains(&a.concurrency) {
        bail!("--concurrency must be 1 to 10000");
    }
    if a.signup_concurrency == 0 {
        bail!("--signup-concurrency must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.write_ratio) {
        bail!("--write-ratio must be 0 to 1");
    }
    validate_timing(&a.common())
}

pub async fn run(args: RecordsArgs) -> anyhow::Result<RunResult> {
    validate(&args)?;
    let c = args.common();
    let seed = args.seed.unwrap_or_else(clock_seed);
    // Emails are unique to the run whatever the seed: a repeated --seed must not collide.
    let run_id = format!("{:08x}", Rng::new(clock_seed()).next_u64() as u32);
    let (mut run, shared) = crate::scenario::start(&c, args.concurrency).await?;
    let stats = shared.stats.clone();
    let api = Arc::new(Api::new(&args, stats.clone())?);

    let places = discover_places(&api).await?;
    let prefixes = content::prefixes(places.iter().map(|p| p.name.as_str()));
    tracing::info!(
        "{} places in the sample area, {} search prefixes; signing up {} users (run {run_id}, seed {seed})",
        places.len(),
        prefixes.len(),
        args.users
    );
    let places: Arc<[PlaceRow]> = places.into();
    let slot = Arc::new(Mutex::new(None));
    let setup = tokio::spawn(set_up(
        api.clone(),
        args.clone(),
        run_id.clone(),
        seed,
        places.clone(),
        shared.shutdown.clone(),
        slot.clone(),
    ));
    run.ramp(vec![setup], args.users as u64).await;
    let Some(setup) = slot.lock().expect("setup slot").take() else {
        bail!("interrupted during the setup: nothing was measured");
    };
    if setup.users.is_empty() {
        bail!(
            "no user could sign up ({}){}",
            error_summary(&stats),
            rate_hint(&stats)
        );
    }
    if setup.users.len() < args.users {
        tracing::warn!(
            "{} of {} users signed up; going on with them ({}){}",
            setup.users.len(),
            args.users,
            error_summary(&stats),
            rate_hint(&stats)
        );
    }
    let posts_seeded = setup.seeded.iter().flatten().count() as u64;
    tracing::info!(
        "setup done: {} users, {posts_seeded} posts; the mix runs on {} workers",
        setup.users.len(),
        args.concurrency
    );

    let mut recent = Recent::default();
    for id in setup.seeded.iter().flatten() {
        recent.push(id.clone());
    }
    let ctx = Arc::new(Ctx {
        api,
        run_id,
        mix: Mix::new(args.write_ratio),
        users: setup.users,
        places,
        prefixes,
        recent: Mutex::new(recent),
        book: std::array::from_fn(|_| Mutex::new(OpBook::default())),
        refreshes: AtomicU64::new(0),
        today: content::today(),
    });
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut done = run
        .finish(|| workers = spawn_workers(&ctx, &shared, args.concurrency, &setup.seeded, seed))
        .await;
    // They stop at the shutdown; one stuck past the close timeout is not waited for.
    for w in &workers {
        w.abort();
    }
    let hint = rate_hint(&stats);
    if !hint.is_empty() {
        tracing::warn!("requests were refused with 429 rate_limited{hint}");
    }
    if let Some(s) = done.server.as_mut() {
        // Per open connection means nothing for a pool of HTTP workers.
        s.rss_kb_per_connection = None;
    }
    let detail = ctx.detail(&args, seed, done.window, posts_seeded);
    let ok = detail.requests - detail.errors_in_window;
    Ok(done.result(&c, &stats, args.concurrency, Detail::Records(detail), ok))
}

fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What to do about `429 rate_limited` answers, if there were any.
fn rate_hint(stats: &Stats) -> &'static str {
    let limited = stats
        .errors
        .requests
        .lock()
        .expect("book")
        .keys()
        .any(|k| k.ends_with("429 rate_limited"));
    if limited {
        "; the server limits sign-ups and writes per client address, and all of this \
         harness's requests come from one: start it with WAGU_RATE__LOGINS_PER_MINUTE=100000 \
         WAGU_RATE__WRITES_PER_MINUTE=1000000"
    } else {
        ""
    }
}

/// The first few failures, for an error message.
fn error_summary(stats: &Stats) -> String {
    let book = stats.errors.requests.lock().expect("book");
    if book.is_empty() {
        return "no failed request".to_string();
    }
    book.iter()
        .take(5)
        .map(|(k, n)| format!("{k} × {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How one request ended: the answer's body, or a short reason (`429 rate_limited`,
/// `transport timeout`) that books group by.
type Answer = Result<Bytes, String>;

/// The server's REST API as the harness calls it: one pooled client, every request counted.
struct Api {
    http: reqwest::Client,
    /// The base URL without a trailing slash.
    base: String,
    stats: Arc<Stats>,
}

impl Api {
    fn new(args: &RecordsArgs, stats: Arc<Stats>) -> anyhow::Result<Api> {
        let base = args.url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&format!("{base}/api"))
            .with_context(|| format!("--url {:?}", args.url))?;
        let http = reqwest::Client::builder()
            // A load test must reach the server itself, whatever HTTP_PROXY says.
            .no_proxy()
            .pool_max_idle_per_host(args.concurrency + args.signup_concurrency)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("wagu-loadtest/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("HTTP client")?;
        Ok(Api { http, base, stats })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET of `path` with `query` percent-encoded (Korean prefixes, cursors).
    fn get(&self, path: &str, query: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut url = reqwest::Url::parse(&self.url(path)).expect("the base URL was checked");
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.http.get(url)
    }

    /// A JSON request of `method` to `path`, with its body and the body's length.
    fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &impl serde::Serialize,
    ) -> (reqwest::RequestBuilder, usize) {
        let body = serde_json::to_vec(body).expect("JSON of plain data");
        let len = body.len();
        let req = self
            .http
            .request(method, self.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        (req, len)
    }

    /// Sends `req` (with a body of `body_len` bytes), reads the whole answer and times it.
    /// Counts the request and the answer and feeds the per-second latency of the timeline.
    async fn exchange(&self, req: reqwest::RequestBuilder, body_len: usize) -> (Duration, Answer) {
        let stats = &*self.stats;
        stats.add(C::MsgsOut, 1);
        stats.add(C::BytesOut, body_len as u64);
        let started = Instant::now();
        let res = async {
            let resp = req.send().await.map_err(transport)?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(transport)?;
            Ok::<_, String>((status, body))
        }
        .await;
        let took = started.elapsed();
        stats.with_hist(H::Recent, |h| record(h, took.as_micros() as u64));
        let answer = res.and_then(|(status, body)| {
            stats.add(C::MsgsIn, 1);
            stats.add(C::BytesIn, body.len() as u64);
            if status.is_success() {
                Ok(body)
            } else {
                Err(failure(status.as_u16(), &body))
            }
        });
        (took, answer)
    }
}

fn transport(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("transport {kind}")
}

/// `429 rate_limited` from an error answer (`{"error": {"code": …}}`), or the bare status.
fn failure(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Code,
    }
    #[derive(Deserialize)]
    struct Code {
        code: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e)
            if !e.error.code.is_empty()
                && e.error.code.len() <= 40
                && e.error
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            format!("{status} {}", e.error.code)
        }
        _ => status.to_string(),
    }
}

/// The fields of a place the mix uses.
#[derive(Debug, Deserialize)]
struct PlaceRow {
    id: String,
    name: String,
    location: LatLng,
}

#[derive(Deserialize)]
struct PlacePage {
    items: Vec<PlaceRow>,
    next: Option<String>,
}

/// Every place of the sample area, following `next` to the last page.
async fn discover_places(api: &Api) -> anyhow::Result<Vec<PlaceRow>> {
    let mut out: Vec<PlaceRow> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_DISCOVERY_PAGES {
        let mut query = vec![("bbox", SAMPLE_BBOX), ("limit", "100")];
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let req = api.get("/api/places", &query);
        let body = match api.exchange(req, 0).await.1 {
            Ok(b) => b,
            Err(why) => bail!("GET /api/places?bbox={SAMPLE_BBOX} failed: {why}"),
        };
        let page: PlacePage = serde_json::from_slice(&body)
            .with_context(|| format!("GET /api/places?bbox={SAMPLE_BBOX}: not a page of places"))?;
        for p in page.items {
            if !out.iter().any(|q| q.id == p.id) {
                out.push(p);
            }
        }
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    if out.is_empty() {
        bail!(
            "no place in the sample area ({SAMPLE_BBOX}): the server loads 320 sample places \
             into an empty store unless database.seed_sample_places = false; start it on a \
             fresh --data-dir, or import places there with `wagu places import`"
        );
    }
    Ok(out)
}

/// A signed-in user.
struct User {
    account: String,
    session: tokio::sync::Mutex<Session>,
}

struct Session {
    access: String,
    access_expires_at: u64,
    refresh: String,
}

/// What sign-up, log-in and refresh answer (the fields the harness uses).
#[derive(Deserialize)]
struct SessionBody {
    account: AccountBody,
    access_token: String,
    access_expires_at: u64,
    refresh_token: String,
}

#[derive(Deserialize)]
struct AccountBody {
    id: String,
}

impl SessionBody {
    fn parse(body: &[u8]) -> Result<SessionBody, String> {
        serde_json::from_slice(body).map_err(|_| "bad answer".to_string())
    }

    fn session(self) -> Session {
        Session {
            access: self.access_token,
            // The server sends Unix milliseconds; the harness counts in seconds.
            access_expires_at: self.access_expires_at / 1000,
            refresh: self.refresh_token,
        }
    }
}

/// Only the id of a created post.
#[derive(Deserialize)]
struct CreatedPost {
    id: String,
}

/// `POST /api/posts` with an idempotency key: the new post's id.
async fn create_post(
    api: &Api,
    token: &str,
    draft: &wagu_proto::records::PostDraft,
    key: &str,
) -> (Duration, Result<String, String>) {
    let (req, len) = api.json(reqwest::Method::POST, "/api/posts", draft);
    let req = req.bearer_auth(token).header("idempotency-key", key);
    let (took, answer) = api.exchange(req, len).await;
    let id = answer.and_then(|body| {
        serde_json::from_slice::<CreatedPost>(&body)
            .map(|p| p.id)
            .map_err(|_| "bad answer".to_string())
    });
    (took, id)
}

/// The setup's outcome: the users, and the post each wrote (by user index).
#[derive(Default)]
struct Setup {
    users: Vec<User>,
    seeded: Vec<Option<String>>,
}

/// Signs the users up, then lets each write one post; leaves the outcome in `slot`. Every
/// user settles (signed up or failed) for the ramp's count.
async fn set_up(
    api: Arc<Api>,
    args: RecordsArgs,
    run_id: String,
    seed: u64,
    places: Arc<[PlaceRow]>,
    shutdown: watch::Receiver<bool>,
    slot: Arc<Mutex<Option<Setup>>>,
) {
    let n = args.users;
    let stats = api.stats.clone();
    let next = Arc::new(AtomicUsize::new(0));
    let password = format!("lt-pass-{run_id}");
    let signups: Vec<_> = (0..args.signup_concurrency.min(n))
        .map(|_| {
            let (api, next, run_id, password, shutdown) = (
                api.clone(),
                next.clone(),
                run_id.clone(),
                password.clone(),
                shutdown.clone(),
            );
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || *shutdown.borrow() {
                        return out;
                    }
                    let body = serde_json::json!({
                        "email": content::email(&run_id, i),
                        "password": password,
                        "display_name": content::display_name(i),
                    });
                    let (req, len) = api.json(reqwest::Method::POST, "/api/auth/signup", &body);
                    let (took, answer) = api.exchange(req, len).await;
                    match answer.and_then(|b| SessionBody::parse(&b)) {
                        Ok(s) => {
                            api.stats
                                .with_hist(H::Join, |h| record(h, took.as_micros() as u64));
                            api.stats.created.fetch_add(1, Ordering::Relaxed);
                            out.push((
                                i,
                                User {
                                    account: s.account.id.clone(),
                                    session: tokio::sync::Mutex::new(s.session()),
                                },
                            ));
                        }
                        Err(why) => api.stats.errors.request(format!("signup: {why}")),
                    }
                    api.stats.settled.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut users = Vec::new();
    for s in signups {
        if let Ok(mut u) = s.await {
            users.append(&mut u);
        }
    }
    // Whatever stopped early still settles, so the ramp does not wait for it.
    let settled = stats.settled.load(Ordering::Relaxed);
    if settled < n as u64 {
        stats
            .settled
            .fetch_add(n as u64 - settled, Ordering::Relaxed);
    }
    users.sort_by_key(|(i, _)| *i);
    let users: Arc<Vec<User>> = Arc::new(users.into_iter().map(|(_, u)| u).collect());

    // One post per user, as many at once as the sign-ups.
    let today = content::today();
    let next = Arc::new(AtomicUsize::new(0));
    let seeders: Vec<_> = (0..args.signup_concurrency.min(users.len()))
        .map(|_| {
            let (api, next, users, places, run_id) = (
                api.clone(),
                next.clone(),
                users.clone(),
                places.clone(),
                run_id.clone(),
            );
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= users.len() {
                        return out;
                    }
                    let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
                    let place = &places[rng.below(places.len())];
                    let draft = content::draft(&mut rng, &place.id, today);
                    let token = users[i].session.lock().await.access.clone();
                    let key = format!("lt-{run_id}-seed-{i}");
                    match create_post(&api, &token, &draft, &key).await.1 {
                        Ok(id) => out.push((i, id)),
                        Err(why) => api.stats.errors.request(format!("seed create_post: {why}")),
                    }
                }
            })
        })
        .collect();
    let mut seeded = vec![None; users.len()];
    for s in seeders {
        if let Ok(posts) = s.await {
            for (i, id) in posts {
                seeded[i] = Some(id);
            }
        }
    }
    let users = Arc::try_unwrap(users).unwrap_or_else(|_| unreachable!("the seeders are done"));
    *slot.lock().expect("setup slot") = Some(Setup { users, seeded });
}

/// The most recent post ids, for `read_post`.
#[derive(Default)]
struct Recent {
    ids: Vec<String>,
    next: usize,
}

impl Recent {
    fn push(&mut self, id: String) {
        if self.ids.len() < RECENT_POSTS {
            self.ids.push(id);
        } else {
            self.ids[self.next] = id;
            self.next = (self.next + 1) % RECENT_POSTS;
        }
    }
}

/// One operation's window figures, shared by the workers (a lock per answer is nothing next
/// to an HTTP request, and one histogram per operation keeps memory flat in the workers).
struct OpBook {
    count: u64,
    errors: BTreeMap<String, u64>,
    hist: Histogram<u64>,
}

impl Default for OpBook {
    fn default() -> Self {
        OpBook {
            count: 0,
            errors: BTreeMap::new(),
            hist: new_hist(),
        }
    }
}

/// What the workers share.
struct Ctx {
    api: Arc<Api>,
    run_id: String,
    mix: Mix,
    users: Vec<User>,
    places: Arc<[PlaceRow]>,
    prefixes: Vec<String>,
    recent: Mutex<Recent>,
    /// Per operation, in [`Op::ALL`] order.
    book: [Mutex<OpBook>; 8],
    refreshes: AtomicU64,
    /// Days since 1970 when the mix started: visit dates are at most 60 days before.
    today: i64,
}

impl Ctx {
    fn stats(&self) -> &Stats {
        &self.api.stats
    }

    /// Books one operation's outcome: a failure in the run's error book; during the window,
    /// the count, failure and latency in the operation's own book.
    fn book(&self, op: Op, took: Duration, outcome: &Result<(), String>) {
        let stats = self.stats();
        if let Err(why) = outcome {
            stats.errors.request(format!("{}: {why}", op.name()));
        }
        if stats.measuring() {
            let mut b = self.book[op as usize].lock().expect("op book");
            b.count += 1;
            record(&mut b.hist, took.as_micros() as u64);
            if let Err(why) = outcome {
                *b.errors.entry(why.clone()).or_insert(0) += 1;
            }
        }
    }

    /// User `u`'s access token, refreshed first when it is about to expire.
    async fn token(&self, u: usize) -> String {
        let mut s = self.users[u].session.lock().await;
        let now = now_secs();
        if now + REFRESH_MARGIN_SECS >= s.access_expires_at {
            let body = serde_json::json!({ "refresh_token": s.refresh });
            let (req, len) = self
                .api
                .json(reqwest::Method::POST, "/api/auth/refresh", &body);
            match self
                .api
                .exchange(req, len)
                .await
                .1
                .and_then(|b| SessionBody::parse(&b))
            {
                Ok(new) => {
                    *s = new.session();
                    self.refreshes.fetch_add(1, Ordering::Relaxed);
                }
                Err(why) => {
                    self.stats().errors.request(format!("refresh: {why}"));
                    s.access_expires_at = now + REFRESH_MARGIN_SECS + REFRESH_RETRY_SECS;
                }
            }
        }
        s.access.clone()
    }

    /// The figures of the window.
    fn detail(
        &self,
        args: &RecordsArgs,
        seed: u64,
        window: f64,
        posts_seeded: u64,
    ) -> RecordsDetail {
        let mut all = new_hist();
        let mut ops = BTreeMap::new();
        let (mut requests, mut errors) = (0, 0);
        for op in Op::ALL {
            let b = self.book[op as usize].lock().expect("op book");
            all.add(&b.hist).expect("same bounds");
            let failed: u64 = b.errors.values().sum();
            requests += b.count;
            errors += failed;
            ops.insert(
                op.name().to_string(),
                OpReport {
                    share: (self.mix.share(op) * 1e4).round() / 1e4,
                    count: b.count,
                    per_sec: report::rate(b.count, window),
                    errors: failed,
                    errors_by: b.errors.clone(),
                    latency_ms: Latency::from_hist(&b.hist),
                },
            );
        }
        RecordsDetail {
            users: args.users,
            users_signed_up: self.users.len() as u64,
            concurrency: args.concurrency,
            write_ratio: args.write_ratio,
            seed,
            places_found: self.places.len(),
            search_prefixes: self.prefixes.len(),
            posts_seeded,
            token_refreshes: self.refreshes.load(Ordering::Relaxed),
            requests,
            requests_per_sec: report::rate(requests, window),
            errors_in_window: errors,
            latency_ms: Latency::from_hist(&all),
            ops,
        }
    }
}

/// The users worker `worker` of `workers` acts as, among `users`: every `workers`-th from its
/// own index, or with fewer users than workers, one shared user.
fn users_of(worker: usize, workers: usize, users: usize) -> Vec<usize> {
    if users == 0 {
        Vec::new()
    } else if users >= workers {
        (worker..users).step_by(workers.max(1)).collect()
    } else {
        vec![worker % users]
    }
}

fn spawn_workers(
    ctx: &Arc<Ctx>,
    shared: &Shared,
    workers: usize,
    seeded: &[Option<String>],
    seed: u64,
) -> Vec<JoinHandle<()>> {
    let n = ctx.users.len();
    (0..workers)
        .map(|w| {
            let mine = users_of(w, workers, n)
                .into_iter()
                .map(|u| {
                    let mut own = VecDeque::new();
                    // The setup's post goes to the worker that acts as its author first.
                    if u % workers == w
                        && let Some(id) = &seeded[u]
                    {
                        own.push_back(id.clone());
                    }
                    (u, own)
                })
                .collect();
            let worker = Worker {
                index: w,
                ctx: ctx.clone(),
                rng: Rng::new(seed.wrapping_add((w as u64 + 1).wrapping_mul(0x9E37_79B9))),
                mine,
                written: 0,
            };
            let guard = shared.tasks.enter();
            tokio::spawn(work(worker, shared.shutdown.clone(), guard))
        })
        .collect()
}

/// One closed-loop worker.
struct Worker {
    index: usize,
    ctx: Arc<Ctx>,
    rng: Rng,
    /// The users it acts as, each with the posts it wrote as them (newest last).
    mine: Vec<(usize, VecDeque<String>)>,
    /// Posts created, for idempotency keys unique to the run.
    written: u64,
}

async fn work(mut w: Worker, mut shutdown: watch::Receiver<bool>, _guard: TaskGuard) {
    let stats = w.ctx.api.stats.clone();
    stats.joined.fetch_add(1, Ordering::Relaxed);
    stats.open.fetch_add(1, Ordering::Relaxed);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let op = w.ctx.mix.pick(w.rng.unit());
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            _ = w.step(op) => {}
        }
    }
    stats.open.fetch_sub(1, Ordering::Relaxed);
}

impl Worker {
    /// Runs `op` (or what stands in for it when it has nothing to act on yet) and books it.
    async fn step(&mut self, op: Op) {
        let (ran, took, outcome) = match op {
            Op::CreatePost => self.create().await,
            Op::EditPost => self.edit().await,
            Op::ReadPost => self.read_post().await,
            read => self.read(read).await,
        };
        self.ctx.book(ran, took, &outcome);
    }

    async fn create(&mut self) -> (Op, Duration, Result<(), String>) {
        let ctx = self.ctx.clone();
        let k = self.rng.below(self.mine.len());
        let user = self.mine[k].0;
        let place = &ctx.places[self.rng.below(ctx.places.len())];
        let draft = content::draft(&mut self.rng, &place.id, ctx.today);
        self.written += 1;
        let key = format!("lt-{}-{}-{}", ctx.run_id, self.index, self.written);
        let token = ctx.token(user).await;
        let (took, id) = create_post(&ctx.api, &token, &draft, &key).await;
        let outcome = id.map(|id| {
            let own = &mut self.mine[k].1;
            if own.len() == OWN_POSTS {
                own.pop_front();
            }
            own.push_back(id.clone());
            ctx.recent.lock().expect("recent posts").push(id);
        });
        (Op::CreatePost, took, outcome)
    }

    /// Edits one of its own posts; with none yet (the user's first post failed), creates one.
    async fn edit(&mut self) -> (Op, Duration, Result<(), String>) {
        let k = self.rng.below(self.mine.len());
        if self.mine[k].1.is_empty() {
            return self.create().await;
        }
        let ctx = self.ctx.clone();
        let (user, own) = &self.mine[k];
        let id = own[self.rng.below(own.len())].clone();
        let user = *user;
        let patch = content::edit(&mut self.rng);
        let token = ctx.token(user).await;
        let (req, len) = ctx
            .api
            .json(reqwest::Method::PATCH, &format!("/api/posts/{id}"), &patch);
        let (took, answer) = ctx.api.exchange(req.bearer_auth(token), len).await;
        (Op::EditPost, took, answer.map(drop))
    }

    /// Reads a recent post; with none known yet, a place feed instead.
    async fn read_post(&mut self) -> (Op, Duration, Result<(), String>) {
        let id = {
            let recent = self.ctx.recent.lock().expect("recent posts");
            if recent.ids.is_empty() {
                None
            } else {
                Some(recent.ids[self.rng.below(recent.ids.len())].clone())
            }
        };
        match id {
            Some(id) => {
                let ctx = self.ctx.clone();
                let req = ctx.api.get(&format!("/api/posts/{id}"), &[]);
                let (took, answer) = ctx.api.exchange(req, 0).await;
                (Op::ReadPost, took, answer.map(drop))
            }
            None => self.read(Op::PlaceFeed).await,
        }
    }

    /// The feeds and place searches: one GET each.
    async fn read(&mut self, op: Op) -> (Op, Duration, Result<(), String>) {
        let ctx = self.ctx.clone();
        let api = &ctx.api;
        let rng = &mut self.rng;
        let req = match op {
            Op::AuthorFeed => {
                let author = &ctx.users[rng.below(ctx.users.len())].account;
                api.get(&format!("/api/accounts/{author}/posts"), &[("limit", "20")])
            }
            Op::PlaceFeed => {
                let place = rng.pick(&ctx.places);
                let path = format!("/api/places/{}/posts", place.id.replace('/', "%2F"));
                api.get(&path, &[("limit", "20")])
            }
            Op::NearFeed => {
                let at = rng.pick(&ctx.places).location;
                let near = format!(
                    "{:.5},{:.5}",
                    at.lat + rng.between(-NEAR_JITTER, NEAR_JITTER),
                    at.lng + rng.between(-NEAR_JITTER, NEAR_JITTER)
                );
                api.get(
                    "/api/posts",
                    &[("near", &near), ("radius_km", "3"), ("limit", "20")],
                )
            }
            Op::NameSearch => {
                let q = rng.pick(&ctx.prefixes);
                api.get("/api/places", &[("q", q), ("limit", "20")])
            }
            Op::Viewport => {
                let at = rng.pick(&ctx.places).location;
                let bbox = viewport(
                    at.lat + rng.between(-VIEWPORT_HALF.0, VIEWPORT_HALF.0),
                    at.lng + rng.between(-VIEWPORT_HALF.1, VIEWPORT_HALF.1),
                );
                api.get("/api/places", &[("bbox", &bbox), ("limit", "50")])
            }
            Op::CreatePost | Op::EditPost | Op::ReadPost => {
                unreachable!("{} is not a plain read", op.name())
            }
        };
        let (took, answer) = api.exchange(req, 0).await;
        (op, took, answer.map(drop))
    }
}

/// A phone-sized viewport centred on (lat, lng): `swlat,swlng,nelat,nelng`.
fn viewport(lat: f64, lng: f64) -> String {
    let (dh, dw) = VIEWPORT_HALF;
    format!(
        "{:.6},{:.6},{:.6},{:.6}",
        lat - dh,
        lng - dw,
        lat + dh,
        lng + dw
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn workers_split_the_users() {
        // More users than workers: each user belongs to exactly one worker.
        let mut seen = vec![0; 10];
        for w in 0..3 {
            for u in users_of(w, 3, 10) {
                seen[u] += 1;
            }
        }
        assert_eq!(seen, vec![1; 10]);
        assert_eq!(users_of(1, 3, 10), vec![1, 4, 7]);
        // Fewer: workers share them round-robin, each acting as one.
        assert_eq!(users_of(4, 8, 3), vec![1]);
        assert!(users_of(0, 4, 0).is_empty());
    }

    #[test]
    fn failures_read_as_status_and_code() {
        let body = br#"{"error":{"code":"rate_limited","message":"slow down"}}"#;
        assert_eq!(failure(429, body), "429 rate_limited");
        assert_eq!(failure(502, b"<html>bad gateway</html>"), "502");
        assert_eq!(
            failure(400, br#"{"error":{"code":"no spaces, please"}}"#),
            "400"
        );
    }

    #[test]
    fn viewports_are_phone_sized_boxes() {
        assert_eq!(
            viewport(37.566, 126.991),
            "37.560000,126.983500,37.572000,126.998500"
        );
    }

    fn parse(args: &[&str]) -> RecordsArgs {
        let mut argv = vec!["wagu-loadtest", "records"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Records(a) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_and_validates_the_flags() {
        let a = parse(&[
            "--url",
            "http://127.0.0.1:18500",
            "--users",
            "200",
            "--concurrency",
            "32",
            "--duration-secs",
            "30",
            "--warmup-secs",
            "5",
            "--write-ratio",
            "0.3",
            "--slo-p99-ms",
            "50",
            "--slo-max-errors",
            "0",
        ]);
        assert_eq!((a.users, a.concurrency, a.write_ratio), (200, 32, 0.3));
        assert!(validate(&a).is_ok());
        let c = a.common();
        assert_eq!(c.url, vec!["http://127.0.0.1:18500".to_string()]);
        assert_eq!(
            (c.ramp_secs, c.window.warmup_secs, c.window.duration_secs),
            (0.0, 5.0, 30.0)
        );
        assert_eq!(
            (c.slo.slo_p99_ms, c.slo.slo_max_errors),
            (Some(50.0), Some(0))
        );
        let d = parse(&[]);
        assert_eq!((d.users, d.concurrency, d.write_ratio), (100, 16, 0.2));

        let refused = |args: &[&str]| validate(&parse(args)).unwrap_err().to_string();
        assert!(refused(&["--url", "https://x"]).contains("http://"));
        assert!(refused(&["--users", "0"]).contains("--users"));
        assert!(refused(&["--concurrency", "0"]).contains("--concurrency"));
        assert!(refused(&["--write-ratio", "1.5"]).contains("--write-ratio"));
        assert!(refused(&["--write-ratio=-0.1"]).contains("--write-ratio"));
        assert!(refused(&["--duration-secs", "0"]).contains("--duration-secs"));
    }
}
