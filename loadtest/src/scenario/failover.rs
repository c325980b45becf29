//! `failover`: how long a busy room is gone when its owner dies (`kill -9`) or drains
//! (`SIGTERM`), and whether anything acknowledged was lost.
//!
//! The harness owns the cluster: it starts `--nodes` `wagu` processes on free loopback ports
//! (one Redis and one NATS, given), and for each of `--runs` runs it
//! 1. creates a room (through node `run mod N`; placement picks its owner) and joins
//!    `--clients-per-gateway` clients on every gateway, each sending chat (`--chat-hz`) and
//!    presence (`--presence-hz`);
//! 2. after `--before-ms` reads the room's owner from Redis (`HGET wagu:{room:<id>}:owner
//!    node`) and kills it by pid (`kill -9`, or `SIGTERM` with `--mode drain`), at `t0`;
//! 3. every client resumes (through its own gateway if that one lives, else the next one),
//!    retrying every 50 ms while the room is still moving (`unavailable`), and chats on;
//! 4. once every client had a chat acknowledged again (plus `--after-ms`), stops; a fresh
//!    client reads the room's chat and every acknowledged chat must be there exactly once;
//! 5. restarts the dead node (under a new node id) for the next run.
//!
//! Per run: `first_ack_ms` — `t0` → the first chat acknowledged on a resumed connection (the
//! room answers again); `all_ms` — `t0` → every client had one; `gap_ms` — the last ack on an
//! old connection → the first on a new one (for a drain, the room's real pause); `lost`,
//! `duplicated` (acked chats missing from / repeated in the final room), `seq_gaps` (a client
//! saw seq n then n+k, k > 1, without a snapshot between), `seq_acked_twice`.
//! Percentiles are nearest-rank over the runs: with 20 runs p99 is the slowest run.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// How the owner goes away.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `kill -9`: the lease lapses, another node revives the room from Redis.
    Kill,
    /// `SIGTERM`: the node drains (hands its rooms over) and exits.
    Drain,
    /// `kill -9` of a node that does *not* own the room but has clients in it, which do not
    /// come back (their phones died with it): counts `ghosts`, those clients still shown
    /// online a few leases later.
    Gateway,
}

#[derive(Args, Debug, Clone)]
pub struct FailoverArgs {
    /// The `wagu` binary to start as each node.
    #[arg(long)]
    pub wagu: PathBuf,
    /// Nodes of the cluster (at least 2).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// The Redis every node shares (`redis://127.0.0.1:36380/`).
    #[arg(long)]
    pub redis_url: String,
    /// The NATS server every node shares (`nats://127.0.0.1:34222`).
    #[arg(long)]
    pub nats_url: String,
    /// Failovers to measure.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// The nodes' lease, ms (`WAGU_CLUSTER__LEASE_TTL_MS`).
    #[arg(long, default_value_t = 1000)]
    pub lease_ms: u64,
    /// `kill` (`kill -9` of the owner) or `drain` (`SIGTERM`).
    #[arg(long, value_enum, default_value_t = Mode::Kill)]
    pub mode: Mode,
    /// Clients of the room on each gateway.
    #[arg(long, default_value_t = 2)]
    pub clients_per_gateway: usize,
    /// Chat messages each client sends a second.
    #[arg(long, default_value_t = 5.0)]
    pub chat_hz: f64,
    /// Presence updates each client sends a second (0: none).
    #[arg(long, default_value_t = 10.0)]
    pub presence_hz: f64,
    /// Traffic before the owner is killed, ms.
    #[arg(long, default_value_t = 1500)]
    pub before_ms: u64,
    /// Traffic after every client had a chat acked again, ms.
    #[arg(long, default_value_t = 1000)]
    pub after_ms: u64,
    /// A run whose clients have not all resumed after this many seconds fails.
    #[arg(long, default_value_t = 20)]
    pub resume_timeout_secs: u64,
    /// Nodes' data directories and logs go under here (default: a fresh temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Start every node under `taskset -c CPUS` (e.g. `1`), to keep them off the harness's core.
    #[arg(long)]
    pub node_cpus: Option<String>,
    /// Write the result as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Tokio worker threads for the harness (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Redis keeps the last this many chats of a room (`wagu_proto::limits::CHAT_TAIL`): a run
/// sends fewer, so the final room shows every acknowledged one.
const CHAT_BUDGET: usize = wagu_proto::limits::CHAT_TAIL - 10;
/// Between two resume attempts while the room is still moving.
const RETRY: Duration = Duration::from_millis(50);
/// A chat unacknowledged this long means the owner is gone: the client resumes.
const STALL: Duration = Duration::from_secs(5);

#[derive(Serialize, Debug, Clone)]
pub struct RunReport {
    pub run: usize,
    pub room_id: String,
    pub owner: String,
    pub victim: usize,
    pub clients: usize,
    pub first_ack_ms: Option<f64>,
    pub all_ms: Option<f64>,
    pub gap_ms: Option<f64>,
    /// Per client: t0 → its first chat acked on a resumed connection.
    pub client_ms: Vec<f64>,
    pub acked: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub seq_gaps: usize,
    pub seq_acked_twice: usize,
    /// Resume attempts refused with `unavailable` (the room still moving).
    pub unavailable: usize,
    pub resumed_by_replay: usize,
    pub resumed_by_snapshot: usize,
    pub errors: Vec<String>,
    /// `--mode gateway`: clients of the dead gateway the room still shows online, a few leases
    /// after the kill.
    pub ghosts: usize,
    /// Resume attempts that took over a second (client, gateway, when after the kill, how
    /// long, outcome).
    pub slow_resumes: Vec<String>,
    pub loadavg: String,
}

#[derive(Serialize, Debug, Default, Clone, PartialEq)]
pub struct Dist {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Serialize, Debug)]
pub struct FailoverResult {
    pub mode: Mode,
    pub nodes: usize,
    pub lease_ms: u64,
    pub clients_per_gateway: usize,
    pub chat_hz: f64,
    pub presence_hz: f64,
    pub node_cpus: Option<String>,
    pub runs: Vec<RunReport>,
    pub failed_runs: usize,
    pub first_ack_ms: Dist,
    pub all_ms: Dist,
    pub gap_ms: Dist,
    pub acked: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub seq_gaps: usize,
    pub seq_acked_twice: usize,
    pub ghosts: usize,
    pub loadavg_start: String,
    pub loadavg_end: String,
}

/// Nearest-rank percentiles of `v` (empty: all zero).
pub fn dist(v: &[f64]) -> Dist {
    if v.is_empty() {
        return Dist::default();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = |p: f64| s[((p / 100.0 * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    Dist {
        n: s.len(),
        min: s[0],
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: s[s.len() - 1],
        mean: s.iter().sum::<f64>() / s.len() as f64,
    }
}

/// `(lost, duplicated)`: acknowledged texts missing from `room`, and ones in it more than once.
pub fn compare(acked: &[String], room: &[String]) -> (usize, usize) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in room {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let lost = acked
        .iter()
        .filter(|a| !counts.contains_key(a.as_str()))
        .count();
    let dup = acked
        .iter()
        .filter(|a| counts.get(a.as_str()).is_some_and(|n| *n > 1))
        .count();
    (lost, dup)
}

/// Seq continuity as one client sees it: events must follow each other by one, except across
/// a snapshot (a welcome), and a replayed seq must be the same kind of event.
#[derive(Default, Debug)]
pub struct SeqTrack {
    covered: u64,
    kinds: BTreeMap<u64, String>,
    pub gaps: usize,
    pub conflicts: usize,
}

impl SeqTrack {
    pub fn snapshot(&mut self, seq: u64) {
        self.covered = self.covered.max(seq);
    }
    /// A room event (presence batches carry the seq of the last event, not their own: skip
    /// them).
    pub fn event(&mut self, seq: u64, kind: &str) {
        if kind == "presence" {
            return;
        }
        if let Some(prev) = self.kinds.insert(seq, kind.to_string())
            && prev != kind
        {
            self.conflicts += 1;
        }
        if seq > self.covered + 1 && self.covered > 0 {
            self.gaps += 1;
        }
        self.covered = self.covered.max(seq);
    }
    pub fn last(&self) -> u64 {
        self.covered
    }
}

/// `host:port` and db of a `redis://[user:pass@]host:port[/db]` URL.
pub fn redis_addr(url: &str) -> anyhow::Result<(String, u32)> {
    let rest = url
        .strip_prefix("redis://")
        .with_context(|| format!("{url}: not a redis:// URL"))?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (host, db) = match rest.split_once('/') {
        Some((h, d)) if !d.is_empty() => (h, d.parse().context("redis db")?),
        Some((h, _)) => (h, 0),
        None => (rest, 0),
    };
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:6379")
    };
    Ok((host, db))
}

/// One RESP command.
pub fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// A bulk string or nil reply: `Ok(None)` for nil, `Err` for an error or something else;
/// `None` from the outer option when `buf` is not complete yet.
pub fn parse_bulk(buf: &[u8]) -> Option<anyhow::Result<Option<String>>> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    match head.as_bytes().first() {
        Some(b'$') => {
            let n: i64 = head[1..].parse().ok()?;
            if n < 0 {
                return Some(Ok(None));
            }
            let body = buf.get(end + 2..end + 2 + n as usize)?;
            Some(Ok(Some(String::from_utf8_lossy(body).into_owned())))
        }
        Some(b'+') => Some(Ok(Some(head[1..].to_string()))),
        _ => Some(Err(anyhow::anyhow!("redis: {head}"))),
    }
}

/// `HGET key field` on the Redis at `url` (a connection per call: a few per run).
async fn hget(url: &str, key: &str, field: &str) -> anyhow::Result<Option<String>> {
    let (addr, db) = redis_addr(url)?;
    let mut s = TcpStream::connect(&addr)
        .await
        .with_context(|| format!("redis {addr}"))?;
    let mut buf = Vec::new();
    if db != 0 {
        s.write_all(&resp(&["SELECT", &db.to_string()])).await?;
        read_reply(&mut s, &mut buf).await??;
        buf.clear();
    }
    s.write_all(&resp(&["HGET", key, field])).await?;
    read_reply(&mut s, &mut buf).await?
}

async fn read_reply(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> anyhow::Result<anyhow::Result<Option<String>>> {
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(r) = parse_bulk(buf) {
            return Ok(r);
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .context("redis: no reply in 5 s")??;
        if n == 0 {
            bail!("redis closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A plain HTTP/1.1 request (`Connection: close`): status and body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .context("http: no answer in 10 s")??;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("http: no status line")?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

/// The body of a `Transfer-Encoding: chunked` response.
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One `wagu` process of the cluster.
struct Node {
    id: String,
    addr: SocketAddr,
    child: Option<Child>,
}

struct Nodes<'a> {
    args: &'a FailoverArgs,
    root: PathBuf,
    nodes: Vec<Node>,
    started: usize,
}

impl Nodes<'_> {
    async fn spawn(&mut self, index: usize) -> anyhow::Result<Node> {
        self.started += 1;
        let id = format!("n{index}-{}-{}", std::process::id(), self.started);
        let dir = self.root.join(&id);
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut cmd = match &self.args.node_cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(&self.args.wagu);
                c
            }
            None => Command::new(&self.args.wagu),
        };
        let lease = self.args.lease_ms.to_string();
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .envs([
                ("WAGU_LOG", "warn"),
                ("WAGU_DATABASE__SEED_SAMPLE_PLACES", "false"),
                ("WAGU_EPHEMERAL__BACKEND", "redis"),
                ("WAGU_EPHEMERAL__REDIS_URL", self.args.redis_url.as_str()),
                ("WAGU_CLUSTER__ENABLED", "true"),
                ("WAGU_CLUSTER__NODE_ID", id.as_str()),
                ("WAGU_CLUSTER__LEASE_TTL_MS", lease.as_str()),
                ("WAGU_CLUSTER__BUS_URL", self.args.nats_url.as_str()),
                ("WAGU_RATE__CHAT_PER_SEC", "10000"),
                ("WAGU_RATE__PRESENCE_PER_SEC", "10000"),
                ("WAGU_RATE__COMMANDS_PER_SEC", "10000"),
                ("WAGU_RATE__CREATES_PER_MINUTE", "100000"),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", self.args.wagu.display()))?;
        let t = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                bail!("node {id} exited at start ({status}): {log}");
            }
            if matches!(http(addr, "GET", "/readyz", "").await, Ok((200, _))) {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                bail!("node {id} not ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(node = id, %addr, pid = child.id(), "node ready");
        Ok(Node {
            id,
            addr,
            child: Some(child),
        })
    }

    fn stop_all(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                // SIGTERM first (a clean drain), then kill after 10 s.
                let pid = rustix::process::Pid::from_raw(c.id() as i32);
                if let Some(pid) = pid {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(10) {
                    if matches!(c.try_wait(), Ok(Some(_))) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// What one client did in a run.
#[derive(Default, Debug)]
struct ClientLog {
    acked: Vec<String>,
    ack_seqs: Vec<u64>,
    first_new_ack: Option<Instant>,
    last_old_ack: Option<Instant>,
    seq: SeqTrack,
    unavailable: usize,
    by_replay: usize,
    by_snapshot: usize,
    errors: Vec<String>,
    /// Resume attempts that took over a second: which gateway, how long, what came of it.
    slow: Vec<String>,
    /// The message of the last `unavailable` answer.
    last_refusal: String,
}

/// What every client of a run shares.
struct RunShared {
    addrs: Vec<SocketAddr>,
    alive: Vec<AtomicBool>,
    resumed: AtomicUsize,
    killed: AtomicBool,
    killed_at: std::sync::OnceLock<Instant>,
    stop: watch::Receiver<bool>,
    chat_every: Duration,
    presence_every: Option<Duration>,
    max_chats: usize,
    run: usize,
    resume_timeout: Duration,
    /// Clients of a dead gateway do not come back (`--mode gateway`).
    stay_dead: bool,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Identity of a participant, for resuming it.
#[derive(Default, Clone)]
struct Me {
    participant: u64,
    token: String,
}

fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

/// Applies a frame that is not a reply to the client's log (snapshots, events).
fn observe(v: &Value, me: &mut Me, log: &mut ClientLog) {
    match kind(v) {
        "welcome" => {
            me.participant = v["you"].as_u64().unwrap_or(me.participant);
            if let Some(t) = v["resume_token"].as_str() {
                me.token = t.to_string();
            }
            log.seq.snapshot(v["room"]["seq"].as_u64().unwrap_or(0));
        }
        "resumed" => {
            if let Some(t) = v["resume_token"].as_str() {
                me.token = t.to_string();
            }
        }
        k => {
            if let Some(seq) = v["seq"].as_u64()
                && k != "ack"
                && k != "error"
            {
                log.seq.event(seq, k);
            }
        }
    }
}

async fn next_json(ws: &mut Ws, wait: Duration) -> anyhow::Result<Value> {
    loop {
        let m = tokio::time::timeout(wait, ws.next())
            .await
            .context("no frame in time")?
            .context("socket ended")??;
        match m {
            Message::Text(t) => return Ok(serde_json::from_str(t.as_str())?),
            Message::Close(f) => bail!("closed {:?}", f.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
}

/// Opens a socket on `addr` and joins (fresh with `share` + `host_key`, or resuming `me`).
/// `Ok(None)`: refused with `unavailable` (the room is moving).
async fn open(
    addr: SocketAddr,
    join: Value,
    me: &mut Me,
    log: &mut ClientLog,
) -> anyhow::Result<Option<Ws>> {
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .context("connect timed out")??;
    for msg in [json!({"type":"hello","id":1,"protocol":1}), join] {
        let id = msg["id"].as_u64();
        ws.send(Message::Text(msg.to_string().into())).await?;
        loop {
            let v = next_json(&mut ws, Duration::from_secs(10)).await?;
            let is_reply = matches!(kind(&v), "ack" | "error") && v["id"].as_u64() == id;
            if !is_reply {
                if kind(&v) == "welcome" && id == Some(2) && me.participant != 0 {
                    log.by_snapshot += 1;
                }
                if kind(&v) == "resumed" {
                    log.by_replay += 1;
                }
                observe(&v, me, log);
                continue;
            }
            if kind(&v) == "error" {
                if v["code"].as_str() == Some("unavailable") {
                    log.last_refusal = v["message"].as_str().unwrap_or("").to_string();
                    return Ok(None);
                }
                bail!("{} refused: {v}", msg["type"]);
            }
            break;
        }
    }
    Ok(Some(ws))
}

/// One participant of the room: joins on `gateway`, chats and moves, resumes when its socket
/// ends or stalls, until the run stops.
async fn client(
    shared: Arc<RunShared>,
    index: usize,
    gateway: usize,
    share: String,
    host_key: Option<String>,
) -> ClientLog {
    let mut log = ClientLog::default();
    let mut me = Me::default();
    let mut join = json!({"type":"join","id":2,"share":share,"name":format!("c{index}")});
    if let Some(k) = host_key {
        join["host_key"] = k.into();
    }
    let mut ws = match open(shared.addrs[gateway], join, &mut me, &mut log).await {
        Ok(Some(ws)) => ws,
        Ok(None) => {
            log.errors
                .push(format!("c{index}: join refused: unavailable"));
            return log;
        }
        Err(e) => {
            log.errors.push(format!("c{index}: join: {e:#}"));
            return log;
        }
    };
    let mut stop = shared.stop.clone();
    let mut generation = 0u32;
    let mut next_id = 10u64;
    let mut sent = 0usize;
    // id → (text, sent at)
    let mut pending: BTreeMap<u64, (String, Instant)> = BTreeMap::new();
    let mut chat = tokio::time::interval(shared.chat_every);
    // Spread the clients' ticks.
    chat.reset_after(shared.chat_every.mul_f64((index % 7) as f64 / 7.0));
    let mut presence =
        tokio::time::interval(shared.presence_every.unwrap_or(Duration::from_secs(3600)));
    let mut slot_counter = 0u64;
    let mut stopping: Option<Instant> = None;
    loop {
        let mut lost_socket = false;
        tokio::select! {
            _ = stop.changed(), if stopping.is_none() => {
                stopping = Some(Instant::now());
            }
            _ = chat.tick(), if stopping.is_none() && sent < shared.max_chats => {
                next_id += 1;
                let text = format!("r{} c{index} m{sent}", shared.run);
                sent += 1;
                let m = json!({"type":"chat","id":next_id,"text":text});
                if ws.send(Message::Text(m.to_string().into())).await.is_err() {
                    lost_socket = true;
                } else {
                    pending.insert(next_id, (text, Instant::now()));
                }
            }
            _ = presence.tick(), if stopping.is_none() && shared.presence_every.is_some() => {
                slot_counter += 1;
                let lat = 37.5 + (slot_counter % 100) as f64 * 1e-4;
                let m = json!({"type":"presence","pointer":{"lat":lat,"lng":127.0}});
                if ws.send(Message::Text(m.to_string().into())).await.is_err() {
                    lost_socket = true;
                }
            }
            f = ws.next() => match f {
                Some(Ok(Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                    match kind(&v) {
                        "ack" => {
                            if let Some((text, _)) = v["id"].as_u64().and_then(|id| pending.remove(&id)) {
                                let now = Instant::now();
                                log.acked.push(text);
                                if let Some(s) = v["seq"].as_u64() {
                                    log.ack_seqs.push(s);
                                }
                                if generation > 0 {
                                    if log.first_new_ack.is_none() {
                                        log.first_new_ack = Some(now);
                                        shared.resumed.fetch_add(1, Ordering::SeqCst);
                                    }
                                } else if shared.killed.load(Ordering::SeqCst) {
                                    log.last_old_ack = Some(now);
                                }
                            }
                        }
                        "error" => {
                            if let Some((text, _)) = v["id"].as_u64().and_then(|id| pending.remove(&id)) {
                                log.errors.push(format!("c{index}: chat {text:?} refused: {v}"));
                            }
                        }
                        _ => observe(&v, &mut me, &mut log),
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => lost_socket = true,
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if stopping.is_none()
            && !lost_socket
            && pending
                .values()
                .next()
                .is_some_and(|(_, at)| at.elapsed() > STALL)
        {
            log.errors
                .push(format!("c{index}: chat unacked for {STALL:?}: resuming"));
            lost_socket = true;
        }
        if let Some(at) = stopping {
            // Stopping: wait (up to 3 s) for the acks of what was sent, then leave.
            if pending.is_empty() || lost_socket || at.elapsed() > Duration::from_secs(3) {
                let _ = ws.close(None).await;
                return log;
            }
            continue;
        }
        if !lost_socket {
            continue;
        }
        // The socket ended (its node died, or it was told to resume): what was in flight
        // has an unknown fate and counts for nothing.
        pending.clear();
        if shared.stay_dead && !shared.alive[gateway].load(Ordering::SeqCst) {
            return log;
        }
        generation += 1;
        let started = Instant::now();
        let mut g = gateway;
        ws = loop {
            if started.elapsed() > shared.resume_timeout {
                log.errors.push(format!(
                    "c{index}: no resume within {:?}",
                    shared.resume_timeout
                ));
                return log;
            }
            if *stop.borrow() {
                return log;
            }
            // Its own gateway if that one lives, else the next live one.
            let n = shared.addrs.len();
            g = (0..n)
                .map(|k| (g + k) % n)
                .find(|k| shared.alive[*k].load(Ordering::SeqCst))
                .unwrap_or(g % n);
            let join = json!({"type":"join","id":2,"share":share,"name":format!("c{index}"),
                "resume":{"participant":me.participant,"token":me.token,"last_seq":log.seq.last()}});
            let attempt = Instant::now();
            let r = open(shared.addrs[g], join, &mut me, &mut log).await;
            if attempt.elapsed() > Duration::from_secs(1) {
                let what = match &r {
                    Ok(Some(_)) => "joined".to_string(),
                    Ok(None) => format!("unavailable ({})", log.last_refusal),
                    Err(e) => format!("{e:#}"),
                };
                log.slow.push(format!(
                    "c{index} via gateway {g}: attempt at +{:.0} ms took {:.0} ms: {what}",
                    ms(started - *shared.killed_at.get().unwrap_or(&started)),
                    ms(attempt.elapsed())
                ));
            }
            match r {
                Ok(Some(ws)) => break ws,
                Ok(None) => log.unavailable += 1,
                Err(e) => {
                    let e = format!("{e:#}");
                    if !e.contains("Connection refused") {
                        log.errors
                            .push(format!("c{index}: resume via gateway {g}: {e}"));
                    }
                    g += 1;
                }
            }
            tokio::time::sleep(RETRY).await;
        };
        // Chat at once: the first ack again is what is measured.
        chat.reset_immediately();
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub async fn run(args: FailoverArgs) -> anyhow::Result<FailoverResult> {
    if args.nodes < 2 {
        bail!("--nodes must be at least 2: a room needs somewhere to go");
    }
    if !(args.chat_hz > 0.0 && args.chat_hz.is_finite()) {
        bail!("--chat-hz must be above 0 (the first ack again is a chat's)");
    }
    let clients = args.nodes * args.clients_per_gateway;
    if clients == 0 {
        bail!("--clients-per-gateway must be at least 1");
    }
    let root = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("wagu-failover-{}", std::process::id())),
    };
    std::fs::create_dir_all(&root)?;
    let loadavg_start = loadavg();
    let mut cluster = Nodes {
        args: &args,
        root: root.clone(),
        nodes: Vec::new(),
        started: 0,
    };
    let out = run_all(&args, &mut cluster, clients).await;
    cluster.stop_all();
    let runs = out?;
    let ok: Vec<&RunReport> = runs.iter().collect();
    let pick = |f: &dyn Fn(&RunReport) -> Option<f64>| -> Vec<f64> {
        ok.iter().filter_map(|r| f(r)).collect()
    };
    let result = FailoverResult {
        mode: args.mode,
        nodes: args.nodes,
        lease_ms: args.lease_ms,
        clients_per_gateway: args.clients_per_gateway,
        chat_hz: args.chat_hz,
        presence_hz: args.presence_hz,
        node_cpus: args.node_cpus.clone(),
        failed_runs: runs
            .iter()
            .filter(|r| !r.errors.is_empty() || (args.mode != Mode::Gateway && r.all_ms.is_none()))
            .count(),
        first_ack_ms: dist(&pick(&|r| r.first_ack_ms)),
        all_ms: dist(&pick(&|r| r.all_ms)),
        gap_ms: dist(&pick(&|r| r.gap_ms)),
        acked: runs.iter().map(|r| r.acked).sum(),
        lost: runs.iter().map(|r| r.lost).sum(),
        duplicated: runs.iter().map(|r| r.duplicated).sum(),
        seq_gaps: runs.iter().map(|r| r.seq_gaps).sum(),
        seq_acked_twice: runs.iter().map(|r| r.seq_acked_twice).sum(),
        ghosts: runs.iter().map(|r| r.ghosts).sum(),
        runs,
        loadavg_start,
        loadavg_end: loadavg(),
    };
    let d = &result.first_ack_ms;
    println!(
        "failover ({:?}, {} nodes, lease {} ms, {} clients): first ack again p50 {:.0} ms p99 {:.0} ms (min {:.0}, max {:.0}, n {}); every client p50 {:.0} ms p99 {:.0} ms; acked {} lost {} duplicated {} seq gaps {} seq acked twice {} ghosts {}; failed runs {}; load {} → {}",
        result.mode,
        result.nodes,
        result.lease_ms,
        clients,
        d.p50,
        d.p99,
        d.min,
        d.max,
        d.n,
        result.all_ms.p50,
        result.all_ms.p99,
        result.acked,
        result.lost,
        result.duplicated,
        result.seq_gaps,
        result.seq_acked_twice,
        result.ghosts,
        result.failed_runs,
        result.loadavg_start,
        result.loadavg_end
    );
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("result written to {}", path.display());
    }
    Ok(result)
}

async fn run_all(
    args: &FailoverArgs,
    cluster: &mut Nodes<'_>,
    clients: usize,
) -> anyhow::Result<Vec<RunReport>> {
    for i in 0..args.nodes {
        let n = cluster.spawn(i).await?;
        cluster.nodes.push(n);
    }
    let mut reports = Vec::new();
    for run in 0..args.runs {
        let r = one_run(args, cluster, run, clients).await?;
        println!(
            "run {run:>3}: owner {} (node {}) {:?}: first ack again {} ms, every client {} ms, gap {} ms; acked {} lost {} dup {} seq gaps {} acked twice {} ghosts {}; unavailable {} replay/snapshot {}/{}; load {}{}",
            r.owner,
            r.victim,
            args.mode,
            r.first_ack_ms.map_or("-".into(), |v| format!("{v:.0}")),
            r.all_ms.map_or("-".into(), |v| format!("{v:.0}")),
            r.gap_ms.map_or("-".into(), |v| format!("{v:.0}")),
            r.acked,
            r.lost,
            r.duplicated,
            r.seq_gaps,
            r.seq_acked_twice,
            r.ghosts,
            r.unavailable,
            r.resumed_by_replay,
            r.resumed_by_snapshot,
            r.loadavg,
            if !r.slow_resumes.is_empty() {
                format!("; slow resumes: {}", r.slow_resumes.join(" | "))
            } else {
                String::new()
            } + &if r.errors.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} errors: {}",
                    r.errors.len(),
                    r.errors[..r.errors.len().min(3)].join(" | ")
                )
            }
        );
        reports.push(r);
    }
    Ok(reports)
}

async fn one_run(
    args: &FailoverArgs,
    cluster: &mut Nodes<'_>,
    run: usize,
    clients: usize,
) -> anyhow::Result<RunReport> {
    let n = cluster.nodes.len();
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.addr).collect();
    let (status, body) = http(
        addrs[run % n],
        "POST",
        "/api/rooms",
        r#"{"title":"failover"}"#,
    )
    .await?;
    if status != 201 {
        bail!("create room: {status} {body}");
    }
    let created: Value = serde_json::from_str(&body)?;
    let share = created["share_token"]
        .as_str()
        .context("share_token")?
        .to_string();
    let host_key = created["host_key"]
        .as_str()
        .context("host_key")?
        .to_string();
    let room_id = created["room_id"].as_str().context("room_id")?.to_string();

    let (stop_tx, stop_rx) = watch::channel(false);
    let per_client = (CHAT_BUDGET / clients).max(1);
    let shared = Arc::new(RunShared {
        addrs: addrs.clone(),
        alive: (0..n).map(|_| AtomicBool::new(true)).collect(),
        resumed: AtomicUsize::new(0),
        killed: AtomicBool::new(false),
        killed_at: std::sync::OnceLock::new(),
        stop: stop_rx,
        chat_every: Duration::from_secs_f64(1.0 / args.chat_hz),
        presence_every: (args.presence_hz > 0.0)
            .then(|| Duration::from_secs_f64(1.0 / args.presence_hz)),
        max_chats: per_client,
        run,
        resume_timeout: Duration::from_secs(args.resume_timeout_secs),
        stay_dead: args.mode == Mode::Gateway,
    });
    let mut tasks = Vec::new();
    for i in 0..clients {
        let g = i % n;
        let key = (i == 0).then(|| host_key.clone());
        tasks.push(tokio::spawn(client(
            shared.clone(),
            i,
            g,
            share.clone(),
            key,
        )));
        if i == 0 {
            // The host first: the room's creator, as in the app.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(args.before_ms)).await;
    let key = format!("wagu:{{room:{room_id}}}:owner");
    let owner = hget(&args.redis_url, &key, "node")
        .await?
        .with_context(|| format!("no owner record {key}"))?;
    let owner_index = cluster
        .nodes
        .iter()
        .position(|nd| nd.id == owner)
        .with_context(|| format!("owner {owner} is none of this run's nodes"))?;
    let victim = match args.mode {
        Mode::Gateway => (owner_index + 1) % n,
        _ => owner_index,
    };
    let child = cluster.nodes[victim]
        .child
        .as_mut()
        .context("victim not running")?;
    let pid = rustix::process::Pid::from_raw(child.id() as i32).context("pid")?;
    let signal = match args.mode {
        Mode::Kill | Mode::Gateway => rustix::process::Signal::KILL,
        Mode::Drain => rustix::process::Signal::TERM,
    };
    shared.alive[victim].store(false, Ordering::SeqCst);
    shared.killed.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let _ = shared.killed_at.set(t0);
    rustix::process::kill_process(pid, signal).context("signal the owner")?;

    let mut ghosts = 0;
    if args.mode == Mode::Gateway {
        // Nobody needs to resume: the owner lives. Wait a few leases, then look.
        tokio::time::sleep(Duration::from_millis(3 * args.lease_ms + 2000)).await;
        let audit_at = addrs[owner_index];
        let room = audit(audit_at, &share).await.context("audit")?;
        let dead: Vec<String> = (0..clients)
            .filter(|i| i % n == victim)
            .map(|i| format!("c{i}"))
            .collect();
        ghosts = room["participants"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| {
                        p["status"].as_str() == Some("online")
                            && p["name"]
                                .as_str()
                                .is_some_and(|nm| dead.iter().any(|d| d == nm))
                    })
                    .count()
            })
            .unwrap_or(0);
    }
    let deadline = t0 + Duration::from_secs(args.resume_timeout_secs);
    while args.mode != Mode::Gateway
        && shared.resumed.load(Ordering::SeqCst) < clients
        && Instant::now() < deadline
    {
        if tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(args.after_ms)).await;
    let _ = stop_tx.send(true);
    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await.context("client task")?);
    }

    // The dead node: reap it (a drain exits by itself; give it 30 s).
    let mut child = cluster.nodes[victim].child.take().context("victim")?;
    let t = Instant::now();
    let mut errors: Vec<String> = logs.iter().flat_map(|l| l.errors.clone()).collect();
    loop {
        match child.try_wait()? {
            Some(status) => {
                if args.mode == Mode::Drain && !status.success() {
                    errors.push(format!("drained node exited with {status}"));
                }
                break;
            }
            None if t.elapsed() > Duration::from_secs(30) => {
                errors.push("drained node still running after 30 s: killed".into());
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }

    // The room as a fresh client on a live gateway sees it.
    let audit_at = addrs[(victim + 1) % n];
    let room_chat = chat_texts(&audit(audit_at, &share).await.context("audit")?);
    let acked: Vec<String> = logs.iter().flat_map(|l| l.acked.clone()).collect();
    let (lost, duplicated) = compare(&acked, &room_chat);
    let mut seqs: Vec<u64> = logs.iter().flat_map(|l| l.ack_seqs.clone()).collect();
    seqs.sort_unstable();
    let before = seqs.len();
    seqs.dedup();
    let firsts: Vec<Instant> = logs.iter().filter_map(|l| l.first_new_ack).collect();
    let first = firsts.iter().min().copied();
    let last_old = logs.iter().filter_map(|l| l.last_old_ack).max();
    let report = RunReport {
        run,
        room_id,
        owner,
        victim,
        clients,
        first_ack_ms: first.map(|f| ms(f - t0)),
        all_ms: (firsts.len() == clients)
            .then(|| firsts.iter().max().map(|f| ms(*f - t0)))
            .flatten(),
        gap_ms: first.map(|f| ms(f - last_old.unwrap_or(t0).min(f))),
        client_ms: firsts.iter().map(|f| ms(*f - t0)).collect(),
        acked: acked.len(),
        lost,
        duplicated,
        seq_gaps: logs.iter().map(|l| l.seq.gaps).sum(),
        seq_acked_twice: before - seqs.len(),
        unavailable: logs.iter().map(|l| l.unavailable).sum(),
        resumed_by_replay: logs.iter().map(|l| l.by_replay).sum(),
        resumed_by_snapshot: logs.iter().map(|l| l.by_snapshot).sum(),
        errors,
        ghosts,
        slow_resumes: logs.iter().flat_map(|l| l.slow.clone()).collect(),
        loadavg: loadavg(),
    };
    // A fresh node in the dead one's place for the next run.
    let fresh = cluster.spawn(victim).await?;
    cluster.nodes[victim] = fresh;
    Ok(report)
}

fn chat_texts(room: &Value) -> Vec<String> {
    room["chat"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["text"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The room (its snapshot) as a fresh joiner through `addr` sees it (retrying while the room is
/// still moving).
async fn audit(addr: SocketAddr, share: &str) -> anyhow::Result<Value> {
    let t = Instant::now();
    loop {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
        ws.send(Message::Text(
            json!({"type":"hello","id":1,"protocol":1})
                .to_string()
                .into(),
        ))
        .await?;
        ws.send(Message::Text(
            json!({"type":"join","id":2,"share":share,"name":"Auditor"})
                .to_string()
                .into(),
        ))
        .await?;
        let mut welcome = None;
        loop {
            let v = next_json(&mut ws, Duration::from_secs(10)).await?;
            match kind(&v) {
                "welcome" => welcome = Some(v),
                "ack" if v["id"].as_u64() == Some(2) => break,
                "error" if v["id"].as_u64() == Some(2) => {
                    if v["code"].as_str() == Some("unavailable")
                        && t.elapsed() < Duration::from_secs(15)
                    {
                        break;
                    }
                    bail!("auditor refused: {v}");
                }
                _ => {}
            }
        }
        let _ = ws.close(None).await;
        if let Some(mut w) = welcome {
            return Ok(w["room"].take());
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let d = dist(&v);
        assert_eq!(
            (d.n, d.min, d.p50, d.p90, d.p99, d.max),
            (20, 1.0, 10.0, 18.0, 20.0, 20.0)
        );
        assert_eq!(d.mean, 10.5);
        assert_eq!(dist(&[]), Dist::default());
        assert_eq!(dist(&[7.0]).p99, 7.0);
        let d = dist(&[3.0, 1.0, 2.0]);
        assert_eq!((d.p50, d.p99), (2.0, 3.0));
    }

    #[test]
    fn acked_chats_are_compared_with_the_room() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(compare(&s(&["a", "b"]), &s(&["x", "a", "b"])), (0, 0));
        assert_eq!(compare(&s(&["a", "b"]), &s(&["a"])), (1, 0));
        assert_eq!(compare(&s(&["a", "b"]), &s(&["a", "b", "a"])), (0, 1));
        // Unacknowledged chats that made it are fine.
        assert_eq!(compare(&s(&[]), &s(&["a"])), (0, 0));
    }

    #[test]
    fn seq_tracking_finds_gaps_and_conflicts_but_not_presence_or_snapshots() {
        let mut t = SeqTrack::default();
        t.snapshot(5);
        t.event(6, "chat");
        t.event(6, "presence");
        t.event(7, "participant_joined");
        assert_eq!((t.gaps, t.conflicts, t.last()), (0, 0, 7));
        // A replay repeats what was seen: fine if it is the same event.
        t.event(7, "participant_joined");
        assert_eq!(t.conflicts, 0);
        t.event(7, "chat");
        assert_eq!(t.conflicts, 1);
        t.event(9, "chat");
        assert_eq!(t.gaps, 1);
        // A fresh snapshot covers what it summarises.
        t.snapshot(20);
        t.event(21, "chat");
        assert_eq!((t.gaps, t.last()), (1, 21));
    }

    #[test]
    fn redis_urls_and_replies() {
        assert_eq!(
            redis_addr("redis://127.0.0.1:36380/").unwrap(),
            ("127.0.0.1:36380".into(), 0)
        );
        assert_eq!(redis_addr("redis://h:1/3").unwrap(), ("h:1".into(), 3));
        assert_eq!(redis_addr("redis://:pw@h").unwrap(), ("h:6379".into(), 0));
        assert!(redis_addr("http://h").is_err());
        assert_eq!(
            resp(&["HGET", "k", "node"]),
            b"*3\r\n$4\r\nHGET\r\n$1\r\nk\r\n$4\r\nnode\r\n"
        );
        assert_eq!(
            parse_bulk(b"$2\r\nab\r\n").unwrap().unwrap(),
            Some("ab".into())
        );
        assert_eq!(parse_bulk(b"$-1\r\n").unwrap().unwrap(), None);
        assert_eq!(parse_bulk(b"+OK\r\n").unwrap().unwrap(), Some("OK".into()));
        assert!(parse_bulk(b"-ERR x\r\n").unwrap().is_err());
        assert!(parse_bulk(b"$5\r\nab").is_none(), "incomplete");
        assert!(parse_bulk(b"$5").is_none(), "incomplete");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(dechunk("0\r\n\r\n"), "");
    }

    #[test]
    fn the_flags_parse() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "wagu-loadtest",
            "failover",
            "--wagu",
            "/x/wagu",
            "--redis-url",
            "redis://h:1/",
            "--nats-url",
            "nats://h:2",
            "--runs",
            "3",
            "--mode",
            "drain",
        ])
        .unwrap();
        match cli.command {
            crate::cli::Command::Failover(a) => {
                assert_eq!(
                    (a.nodes, a.runs, a.lease_ms, a.mode),
                    (3, 3, 1000, Mode::Drain)
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
