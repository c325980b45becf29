//! The result of a run: the JSON written to `--out`, the human summary on stdout, and the SLO
//! verdict that decides the exit status. The HTML report with charts is [`crate::html`].

use crate::stats::{C, H, Stats};
use crate::target::Target;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize, Debug)]
pub struct RunResult {
    pub scenario: &'static str,
    pub target: Target,
    pub url: String,
    /// Ctrl-C ended the run early: the figures cover a shorter window than asked.
    pub interrupted: bool,
    /// Planned WebSocket connections (rooms × participants; streams × (viewers + 1)). Records:
    /// the concurrent HTTP workers (`--concurrency`).
    pub connections: u64,
    /// Connections that completed `join` (`join_stream`). Records: workers started.
    pub connections_joined: u64,
    /// Connections still open when the steady-state window ended. Records: workers running.
    pub connections_open: i64,
    pub ramp_secs: f64,
    /// From the start of the ramp until every planned connection had joined or failed (or
    /// the settle timeout ran out): the time the server took to take the whole audience in.
    pub ramp_done_secs: f64,
    pub warmup_secs: f64,
    /// Length of the steady-state window actually measured.
    pub duration_secs: f64,
    /// The scenario's own parameters and flows, at the top level of the JSON.
    #[serde(flatten)]
    pub detail: Detail,
    /// Connect to `join` acknowledged, over the whole ramp. Records: the sign-ups of the setup
    /// (the request to its session).
    pub join_latency_ms: Latency,
    /// Traced messages received from others per second during the window. Rooms: friends'
    /// presence updates (first sightings) plus chat messages, the figure that compares across
    /// targets whether the server coalesces (Wagu) or forwards every message (Centrifugo,
    /// bare). Streams: chat messages delivered, summed over receivers. Records: successful
    /// requests (2xx with the expected body).
    pub delivered_per_sec: f64,
    pub throughput: Throughput,
    pub errors: ErrorReport,
    pub server: Option<ServerReport>,
    /// This harness process's CPU over the window, in % of one core. On a machine shared with
    /// the server, what the load generator took is what the server did not have.
    pub harness_cpu_percent: Option<f64>,
    pub slo: Slo,
    /// One sample per second over the whole run.
    pub timeline: Vec<Sample>,
}

/// What only one scenario measures. Untagged and flattened: a rooms result keeps the field
/// names it always had (`rooms`, `presence`, `chat`…), which `compare` reads.
#[derive(Serialize, Debug)]
#[serde(untagged)]
pub enum Detail {
    Rooms(RoomsDetail),
    Streams(StreamsDetail),
    // Boxed: both sections together are twice the size of the other variants.
    Mixed(Box<MixedDetail>),
    Records(RecordsDetail),
}

impl Detail {
    pub fn scenario(&self) -> &'static str {
        match self {
            Detail::Rooms(_) => "rooms",
            Detail::Streams(_) => "streams",
            Detail::Mixed(_) => "mixed",
            Detail::Records(_) => "records",
        }
    }
}

#[derive(Serialize, Debug)]
pub struct RoomsDetail {
    /// Rooms asked for, and created.
    pub rooms: usize,
    pub rooms_created: u64,
    pub participants: usize,
    pub presence_hz: f64,
    pub chat_per_min: f64,
    /// `presence.latency_ms` is end to end: a client's send to each friend reading it, which
    /// includes the server's coalescing window (up to 50 ms at 20 Hz) by design.
    pub presence: Flow,
    /// The fan-out alone: from the server's batch stamp (`at`) to each friend reading it.
    pub presence_fanout_ms: Latency,
    pub chat: Option<Flow>,
}

/// Both workloads of `mixed`, each as its own scenario reports it.
#[derive(Serialize, Debug)]
pub struct MixedDetail {
    pub rooms: RoomsDetail,
    pub streams: StreamsDetail,
}

#[derive(Serialize, Debug)]
pub struct StreamsDetail {
    /// Streams asked for, and created.
    pub streams: usize,
    pub streams_created: u64,
    /// Viewers per stream (each stream also has its streamer).
    pub viewers: usize,
    /// Viewers per stream that chat, spread evenly over the audience.
    pub chatters: usize,
    /// Chat messages per second per stream, all chatters together.
    pub chat_per_sec: f64,
    /// Chat from its send to every other client of the stream reading it (the streamer and
    /// every viewer but the sender: `delivery_ratio` is `received / (sent × viewers)`).
    pub chat: Flow,
    /// The fan-out alone: from the server's stamp of each message (`at`, ms) to a client
    /// reading it.
    pub chat_fanout_ms: Latency,
    /// `viewers` frames (the coalesced viewer count) read by all clients over the whole run,
    /// and per second during the window.
    pub viewers_events: u64,
    pub viewers_events_per_sec: f64,
    /// The last viewer count each streamer read, summed over streams; once the ramp is over it
    /// should be `streams × viewers` (less any viewer that failed to join).
    pub viewer_count_seen: u64,
}

/// The `records` scenario: the setup and, per operation of the mix, what the window measured.
/// The top-level `throughput` counts HTTP requests (`messages_out`) and answers
/// (`messages_in`) with their body bytes.
#[derive(Serialize, Debug)]
pub struct RecordsDetail {
    /// Accounts asked for, and signed up.
    pub users: usize,
    pub users_signed_up: u64,
    /// Workers, each one request at a time.
    pub concurrency: usize,
    /// Share of create + edit asked for.
    pub write_ratio: f64,
    /// Seed of the mix and the generated content.
    pub seed: u64,
    /// Places found in the sample area's viewport (posts and place feeds use them).
    pub places_found: usize,
    /// Name prefixes the name searches draw from (taken from those places' names).
    pub search_prefixes: usize,
    /// Posts written during the setup, one per user, so reads and edits have data at once.
    pub posts_seeded: u64,
    /// Access tokens refreshed during the run (they last 15 minutes by default).
    pub token_refreshes: u64,
    /// Every request of the mix answered during the window (successful or not).
    pub requests: u64,
    pub requests_per_sec: f64,
    /// Failed requests of the mix during the window (the run's `errors` also count the setup
    /// and the warmup).
    pub errors_in_window: u64,
    /// All operations together: send to the last byte of the answer, failures included.
    pub latency_ms: Latency,
    /// Per operation, by name: `create_post`, `edit_post`, `read_post`, `author_feed`,
    /// `place_feed`, `near_feed`, `name_search`, `viewport`.
    pub ops: BTreeMap<String, OpReport>,
}

/// One operation of the `records` mix during the window.
#[derive(Serialize, Debug, Clone, Default)]
pub struct OpReport {
    /// Share of the mix asked for (0 to 1).
    pub share: f64,
    /// Requests answered (or failed) during the window.
    pub count: u64,
    pub per_sec: f64,
    pub errors: u64,
    /// Failures by `status code` (`429 rate_limited`) or transport kind (`transport timeout`).
    pub errors_by: BTreeMap<String, u64>,
    /// Send to the last byte of the answer, failures included.
    pub latency_ms: Latency,
}

/// One kind of traced message during the window.
#[derive(Serialize, Debug)]
pub struct Flow {
    pub sent_per_sec: f64,
    /// What the clients were asked to send; a lower `sent_per_sec` means the harness could not
    /// keep up (its ticks were skipped).
    pub target_sent_per_sec: f64,
    /// Friends' updates seen for the first time, summed over receivers.
    pub received_per_sec: f64,
    /// Frames that carried them (presence batches; for chat, one per message).
    pub frames_per_sec: f64,
    /// `received / (sent × (participants − 1))`: 1.0 when every friend saw every update. The
    /// server coalesces presence (latest wins), so below 1.0 is expected when a sender's
    /// updates come faster than its batching interval; chat is reliable and should be 1.0.
    pub delivery_ratio: f64,
    /// Updates whose send had left the send log (older than `late_after_ms`); each counts in
    /// the latency histogram as `late_after_ms`, a lower bound.
    pub late: u64,
    pub late_after_ms: f64,
    pub latency_ms: Latency,
}

#[derive(Serialize, Debug, Default, Clone)]
pub struct Latency {
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn from_hist(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
        Latency {
            samples: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
        }
    }
}

/// Text payload traffic during the window, both directions, per second.
#[derive(Serialize, Debug)]
pub struct Throughput {
    pub messages_in_per_sec: f64,
    pub messages_out_per_sec: f64,
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
}

/// Every failure of the whole run (ramp and warmup included), each counted once.
#[derive(Serialize, Debug)]
pub struct ErrorReport {
    pub total: u64,
    pub room_create: BTreeMap<String, u64>,
    pub connect: BTreeMap<String, u64>,
    pub join: BTreeMap<String, u64>,
    pub error_frames: BTreeMap<String, u64>,
    /// Closes the harness did not ask for, by close code (1006: no close frame).
    pub unexpected_closes: BTreeMap<u16, u64>,
    /// `records`: failed HTTP requests, by `operation: status code` (absent elsewhere).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, u64>,
}

impl ErrorReport {
    pub fn from_stats(s: &Stats) -> ErrorReport {
        let e = &s.errors;
        let copy = |b: &std::sync::Mutex<BTreeMap<String, u64>>| b.lock().expect("book").clone();
        ErrorReport {
            total: e.total(),
            room_create: copy(&e.room_create),
            connect: copy(&e.connect),
            join: copy(&e.join),
            error_frames: copy(&e.error_frames),
            unexpected_closes: e.closes.lock().expect("book").clone(),
            requests: copy(&e.requests),
        }
    }
}

/// The server process during the window, one reading a second.
#[derive(Serialize, Debug, Default, Clone)]
pub struct ServerReport {
    pub pid: u32,
    pub samples: u64,
    /// Percent of one core (200 = two cores busy).
    pub cpu_percent_avg: f64,
    pub cpu_percent_max: f64,
    pub rss_mb_avg: f64,
    pub rss_mb_max: f64,
    /// RSS when the harness started, before any of its connections.
    pub rss_mb_start: f64,
    /// `(rss_mb_avg − rss_mb_start) / connections open`, in kB (1 kB = 1,000 bytes): what each
    /// connection (with its share of rooms and buffers) costs the server.
    pub rss_kb_per_connection: Option<f64>,
}

impl ServerReport {
    pub fn per_connection(&mut self, open: i64) {
        self.rss_kb_per_connection = (open > 0 && self.samples > 0).then(|| {
            let kb = (self.rss_mb_avg - self.rss_mb_start) * 1000.0 / open as f64;
            (kb * 100.0).round() / 100.0
        });
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct Sample {
    pub t_secs: u64,
    pub phase: &'static str,
    pub open: i64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub presence_sent: u64,
    pub presence_received: u64,
    pub chat_sent: u64,
    /// Chat messages received from others.
    pub chat_received: u64,
    pub errors_total: u64,
    /// End-to-end latency of the scenario's main flow (rooms: presence updates; streams:
    /// chat) received in this second (any phase).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_mb: Option<f64>,
    /// This harness process, % of one core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub harness_cpu_percent: Option<f64>,
}

#[derive(Serialize, Debug, Default)]
pub struct Slo {
    pub p99_ms: Option<f64>,
    pub fanout_p99_ms: Option<f64>,
    pub max_errors: Option<u64>,
    pub passed: bool,
    pub violations: Vec<String>,
}

/// Judges a result against the gate; with no gate given, a run always passes. Rooms gate
/// presence (and chat) end to end and the presence fan-out; streams gate chat end to end and
/// the chat fan-out.
pub fn evaluate(
    r: &RunResult,
    p99_ms: Option<f64>,
    fanout_p99_ms: Option<f64>,
    max_errors: Option<u64>,
) -> Slo {
    let mut v = Vec::new();
    // What each gate reads: (name, latency, whether samples were expected).
    type Gate<'a> = (&'static str, &'a Latency, bool);
    fn rooms(d: &RoomsDetail) -> (Gate<'_>, Gate<'_>, Option<&Latency>) {
        (
            ("presence", &d.presence.latency_ms, d.participants > 1),
            (
                "presence fan-out",
                &d.presence_fanout_ms,
                d.participants > 1,
            ),
            d.chat.as_ref().map(|c| &c.latency_ms),
        )
    }
    fn streams(d: &StreamsDetail) -> (Gate<'_>, Gate<'_>) {
        let expected = d.chat_per_sec > 0.0 && d.viewers > 0;
        (
            ("stream chat", &d.chat.latency_ms, expected),
            ("stream chat fan-out", &d.chat_fanout_ms, expected),
        )
    }
    // Mixed: both workloads' gates.
    let (gates, extra): (Vec<(Gate, Gate)>, Option<&Latency>) = match &r.detail {
        Detail::Rooms(d) => {
            let (e, f, x) = rooms(d);
            (vec![(e, f)], x)
        }
        Detail::Streams(d) => {
            let (e, f) = streams(d);
            (vec![(("chat", e.1, e.2), ("chat fan-out", f.1, f.2))], None)
        }
        Detail::Mixed(m) => {
            let (e, f, x) = rooms(&m.rooms);
            (vec![(e, f), streams(&m.streams)], x)
        }
        // Gated per operation below.
        Detail::Records(_) => (Vec::new(), None),
    };
    let mut gate = |(name, lat, expected): (&str, &Latency, bool), limit: f64| {
        if expected && lat.samples == 0 {
            v.push(format!("no {name} latency was measured"));
        } else if lat.p99 > limit {
            v.push(format!("{name} p99 {:.1} ms exceeds {limit} ms", lat.p99));
        }
    };
    for &(e2e, fanout) in &gates {
        if let Some(limit) = fanout_p99_ms {
            gate(fanout, limit);
        }
        if let Some(limit) = p99_ms {
            gate(e2e, limit);
        }
    }
    if let (Some(limit), Detail::Records(d)) = (p99_ms, &r.detail) {
        if d.latency_ms.samples == 0 {
            v.push("no request latency was measured".to_string());
        }
        for (op, o) in &d.ops {
            if o.latency_ms.samples > 0 && o.latency_ms.p99 > limit {
                v.push(format!(
                    "{op} p99 {:.1} ms exceeds {limit} ms",
                    o.latency_ms.p99
                ));
            }
        }
    }
    if let Some(limit) = p99_ms
        && let Some(chat) = extra
        && chat.samples > 0
        && chat.p99 > limit
    {
        v.push(format!("chat p99 {:.1} ms exceeds {limit} ms", chat.p99));
    }
    if let Some(max) = max_errors
        && r.errors.total > max
    {
        v.push(format!(
            "{} errors exceed the limit of {max}",
            r.errors.total
        ));
    }
    Slo {
        p99_ms,
        fanout_p99_ms,
        max_errors,
        passed: v.is_empty(),
        violations: v,
    }
}

pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (n as f64 / secs * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// Which counters and histogram make up one traced flow.
pub struct FlowSpec {
    pub sent: C,
    pub received: C,
    pub frames: C,
    pub late: C,
    pub hist: H,
}

pub const PRESENCE: FlowSpec = FlowSpec {
    sent: C::PresenceSent,
    received: C::PresenceUpdatesIn,
    frames: C::PresenceFramesIn,
    late: C::PresenceLate,
    hist: H::Presence,
};

/// A chat is its own frame: `frames` and `received` count the same thing.
pub const CHAT: FlowSpec = FlowSpec {
    sent: C::ChatSent,
    received: C::ChatIn,
    frames: C::ChatIn,
    late: C::ChatLate,
    hist: H::Chat,
};

/// Builds a flow from the window counters.
pub fn flow(
    s: &Stats,
    secs: f64,
    spec: &FlowSpec,
    target_sent_per_sec: f64,
    late_after_ms: f64,
    friends: usize,
) -> Flow {
    let (sent, received) = (s.window(spec.sent), s.window(spec.received));
    let expected = sent as f64 * friends as f64;
    Flow {
        delivery_ratio: if expected > 0.0 {
            (received as f64 / expected * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        sent_per_sec: rate(sent, secs),
        target_sent_per_sec: (target_sent_per_sec * 10.0).round() / 10.0,
        received_per_sec: rate(received, secs),
        frames_per_sec: rate(s.window(spec.frames), secs),
        late: s.window(spec.late),
        late_after_ms,
        latency_ms: Latency::from_hist(&s.merged(spec.hist)),
    }
}

pub fn throughput(s: &Stats, secs: f64) -> Throughput {
    Throughput {
        messages_in_per_sec: rate(s.window(C::MsgsIn), secs),
        messages_out_per_sec: rate(s.window(C::MsgsOut), secs),
        bytes_in_per_sec: rate(s.window(C::BytesIn), secs),
        bytes_out_per_sec: rate(s.window(C::BytesOut), secs),
    }
}

fn human_bytes(b: f64) -> String {
    if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

fn lat_line(l: &Latency) -> String {
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms  ({} samples)",
        l.p50, l.p90, l.p99, l.p999, l.max, l.samples
    )
}

/// The human summary, printed to stdout.
pub fn print_summary(r: &RunResult) {
    println!();
    println!(
        "== wagu-loadtest {} against {} ({:?}) ==",
        r.scenario, r.url, r.target
    );
    match &r.detail {
        Detail::Rooms(d) => print_rooms(r, d, true),
        Detail::Streams(d) => print_streams(r, d, true),
        Detail::Mixed(m) => {
            println!(
                "{}/{} connections joined, {} open at the end",
                r.connections_joined, r.connections, r.connections_open
            );
            steady_line(r);
            print_rooms(r, &m.rooms, false);
            print_streams(r, &m.streams, false);
            println!(
                "delivered {:.0} presence updates and chat messages/s",
                r.delivered_per_sec
            );
        }
        Detail::Records(d) => print_records(r, d),
    }
    let t = &r.throughput;
    if let Detail::Records(_) = &r.detail {
        println!(
            "traffic   requests {:.0}/s ({}/s of bodies)  answers {:.0}/s ({}/s of bodies)",
            t.messages_out_per_sec,
            human_bytes(t.bytes_out_per_sec),
            t.messages_in_per_sec,
            human_bytes(t.bytes_in_per_sec)
        );
    } else {
        println!(
            "join      {}  (every connection settled {:.1} s into the ramp)",
            lat_line(&r.join_latency_ms),
            r.ramp_done_secs
        );
        println!(
            "traffic   in {:.0} msg/s ({}/s)  out {:.0} msg/s ({}/s)",
            t.messages_in_per_sec,
            human_bytes(t.bytes_in_per_sec),
            t.messages_out_per_sec,
            human_bytes(t.bytes_out_per_sec)
        );
    }
    if let Some(s) = &r.server {
        println!(
            "server    pid {}: CPU avg {:.1}% max {:.1}% (of one core), RSS avg {:.1} MB max {:.1} MB ({} samples)",
            s.pid, s.cpu_percent_avg, s.cpu_percent_max, s.rss_mb_avg, s.rss_mb_max, s.samples
        );
        if let Some(kb) = s.rss_kb_per_connection {
            println!(
                "          RSS {:.1} MB before the run: {kb:.1} kB per open connection",
                s.rss_mb_start
            );
        }
    }
    if let Some(cpu) = r.harness_cpu_percent {
        println!("harness   CPU avg {cpu:.1}% (of one core), this load generator itself");
    }
    let e = &r.errors;
    println!("errors    {}", e.total);
    let show = |name: &str, b: &BTreeMap<String, u64>| {
        for (k, n) in b {
            println!("  {name}: {k} × {n}");
        }
    };
    show("room create", &e.room_create);
    show("connect", &e.connect);
    show("join", &e.join);
    show("error frame", &e.error_frames);
    show("request", &e.requests);
    for (code, n) in &e.unexpected_closes {
        println!("  unexpected close: code {code} × {n}");
    }
    if r.interrupted {
        println!("(interrupted: the run was cut short)");
    }
    if r.slo.p99_ms.is_some() || r.slo.fanout_p99_ms.is_some() || r.slo.max_errors.is_some() {
        if r.slo.passed {
            println!("SLO       passed");
        } else {
            for v in &r.slo.violations {
                println!("SLO       FAILED: {v}");
            }
        }
    }
}

/// The order of the per-operation table: writes, then reads (as in the mix).
pub const RECORDS_OPS: [&str; 8] = [
    "create_post",
    "edit_post",
    "read_post",
    "author_feed",
    "place_feed",
    "near_feed",
    "name_search",
    "viewport",
];

fn print_records(r: &RunResult, d: &RecordsDetail) {
    println!(
        "setup     {}/{} users signed up, {} places found, {} posts seeded in {:.1} s",
        d.users_signed_up, d.users, d.places_found, d.posts_seeded, r.ramp_done_secs
    );
    println!("sign-up   {}", lat_line(&r.join_latency_ms));
    println!(
        "steady state {:.1} s (after {:.0} s warmup): {} workers, write ratio {}",
        r.duration_secs, r.warmup_secs, d.concurrency, d.write_ratio
    );
    println!(
        "{:<12} {:>6} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "operation",
        "share",
        "requests",
        "req/s",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    let row = |name: &str, share: f64, count: u64, per_sec: f64, errors: u64, l: &Latency| {
        println!(
            "{name:<12} {:>5.1}% {count:>8} {per_sec:>8.1} {errors:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            share * 100.0,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        );
    };
    for name in RECORDS_OPS {
        if let Some(o) = d.ops.get(name) {
            row(name, o.share, o.count, o.per_sec, o.errors, &o.latency_ms);
        }
    }
    row(
        "all",
        1.0,
        d.requests,
        d.requests_per_sec,
        d.errors_in_window,
        &d.latency_ms,
    );
    for name in RECORDS_OPS {
        if let Some(o) = d.ops.get(name) {
            for (why, n) in &o.errors_by {
                println!("  {name}: {why} × {n} (in the window)");
            }
        }
    }
    println!(
        "requests  {:.1}/s, {:.1}/s successful; {} token refreshes",
        d.requests_per_sec, r.delivered_per_sec, d.token_refreshes
    );
}

fn steady_line(r: &RunResult) {
    println!(
        "steady state {:.1} s (after {:.0} s ramp + {:.0} s warmup)",
        r.duration_secs, r.ramp_secs, r.warmup_secs
    );
}

/// `alone`: the whole run is this workload (not one half of `mixed`).
fn print_rooms(r: &RunResult, d: &RoomsDetail, alone: bool) {
    if !alone {
        println!(
            "rooms {}/{} created, {} participants each",
            d.rooms_created, d.rooms, d.participants
        );
    } else {
        println!(
            "rooms {}/{} created, {} participants each: {}/{} connections joined, {} open at the end",
            d.rooms_created,
            d.rooms,
            d.participants,
            r.connections_joined,
            r.connections,
            r.connections_open
        );
        steady_line(r);
    }
    let p = &d.presence;
    println!(
        "presence  sent {:.0}/s (target {:.0}/s)  friends' updates received {:.0}/s in {:.0} frames/s (delivery {:.3})",
        p.sent_per_sec,
        p.target_sent_per_sec,
        p.received_per_sec,
        p.frames_per_sec,
        p.delivery_ratio
    );
    if r.target == crate::target::Target::Wagu {
        println!(
            "  end-to-end (send → friend, incl. ≤50 ms coalescing) {}",
            lat_line(&p.latency_ms)
        );
        println!(
            "  fan-out (server batch → friend)                   {}",
            lat_line(&d.presence_fanout_ms)
        );
    } else {
        println!("  end-to-end (send → friend) {}", lat_line(&p.latency_ms));
    }
    if p.late > 0 {
        println!(
            "  {} updates arrived more than {:.0} ms after their send",
            p.late, p.late_after_ms
        );
    }
    if let Some(c) = &d.chat {
        println!(
            "chat      sent {:.1}/s  received {:.1}/s (delivery {:.3})  latency {}",
            c.sent_per_sec,
            c.received_per_sec,
            c.delivery_ratio,
            lat_line(&c.latency_ms)
        );
    }
    if alone {
        println!("delivered {:.0} friends' messages/s", r.delivered_per_sec);
    }
}

fn print_streams(r: &RunResult, d: &StreamsDetail, alone: bool) {
    if !alone {
        println!(
            "streams {}/{} created, 1 streamer + {} viewers each ({} chatting)",
            d.streams_created, d.streams, d.viewers, d.chatters
        );
    } else {
        println!(
            "streams {}/{} created, 1 streamer + {} viewers each ({} chatting): {}/{} connections joined, {} open at the end",
            d.streams_created,
            d.streams,
            d.viewers,
            d.chatters,
            r.connections_joined,
            r.connections,
            r.connections_open
        );
        steady_line(r);
    }
    let c = &d.chat;
    println!(
        "chat      sent {:.1}/s (target {:.1}/s)  delivered {:.0}/s (delivery {:.4} of sent × {} receivers)",
        c.sent_per_sec, c.target_sent_per_sec, c.received_per_sec, c.delivery_ratio, d.viewers
    );
    println!(
        "  end-to-end (send → every receiver) {}",
        lat_line(&c.latency_ms)
    );
    println!(
        "  fan-out (server stamp → receiver)  {}",
        lat_line(&d.chat_fanout_ms)
    );
    if c.late > 0 {
        println!(
            "  {} messages arrived more than {:.0} ms after their send",
            c.late, c.late_after_ms
        );
    }
    println!(
        "viewers   {} count events over the run ({:.1}/s in the window); the streamers last saw {} viewers in all",
        d.viewers_events, d.viewers_events_per_sec, d.viewer_count_seen
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(p99: f64) -> Flow {
        Flow {
            sent_per_sec: 20.0,
            target_sent_per_sec: 20.0,
            received_per_sec: 200_000.0,
            frames_per_sec: 200_000.0,
            delivery_ratio: 1.0,
            late: 0,
            late_after_ms: 5000.0,
            latency_ms: Latency {
                samples: 100,
                p99,
                ..Default::default()
            },
        }
    }

    fn result(detail: Detail) -> RunResult {
        RunResult {
            scenario: detail.scenario(),
            target: Target::Wagu,
            url: "http://127.0.0.1:1".into(),
            interrupted: false,
            connections: 10,
            connections_joined: 10,
            connections_open: 10,
            ramp_secs: 1.0,
            ramp_done_secs: 1.2,
            warmup_secs: 1.0,
            duration_secs: 1.0,
            detail,
            join_latency_ms: Latency::default(),
            delivered_per_sec: 0.0,
            throughput: Throughput {
                messages_in_per_sec: 0.0,
                messages_out_per_sec: 0.0,
                bytes_in_per_sec: 0.0,
                bytes_out_per_sec: 0.0,
            },
            errors: ErrorReport::from_stats(&Stats::new()),
            server: None,
            harness_cpu_percent: None,
            slo: Slo::default(),
            timeline: Vec::new(),
        }
    }

    fn streams(p99: f64, fanout_p99: f64) -> RunResult {
        result(Detail::Streams(StreamsDetail {
            streams: 1,
            streams_created: 1,
            viewers: 9,
            chatters: 2,
            chat_per_sec: 20.0,
            chat: flow(p99),
            chat_fanout_ms: Latency {
                samples: 100,
                p99: fanout_p99,
                ..Default::default()
            },
            viewers_events: 3,
            viewers_events_per_sec: 0.0,
            viewer_count_seen: 9,
        }))
    }

    #[test]
    fn scenario_fields_sit_at_the_top_level() {
        let rooms = result(Detail::Rooms(RoomsDetail {
            rooms: 2,
            rooms_created: 2,
            participants: 5,
            presence_hz: 10.0,
            chat_per_min: 0.0,
            presence: flow(30.0),
            presence_fanout_ms: Latency::default(),
            chat: None,
        }));
        let v = serde_json::to_value(&rooms).unwrap();
        // The paths `compare` and older results use.
        assert_eq!(v["scenario"], "rooms");
        assert_eq!(v["participants"], 5);
        assert_eq!(v["presence"]["latency_ms"]["p99"], 30.0);
        assert!(v["chat"].is_null() && v.get("Rooms").is_none());
        let v = serde_json::to_value(streams(12.0, 3.0)).unwrap();
        assert_eq!(v["scenario"], "streams");
        assert_eq!(v["viewers"], 9);
        assert_eq!(v["chat"]["latency_ms"]["p99"], 12.0);
        assert_eq!(v["chat_fanout_ms"]["p99"], 3.0);
        assert!(v.get("presence").is_none());
    }

    #[test]
    fn streams_gate_on_chat() {
        let r = streams(250.0, 20.0);
        let slo = evaluate(&r, Some(200.0), Some(50.0), Some(0));
        assert_eq!(slo.violations, vec!["chat p99 250.0 ms exceeds 200 ms"]);
        let slo = evaluate(&streams(150.0, 60.0), Some(200.0), Some(50.0), None);
        assert_eq!(
            slo.violations,
            vec!["chat fan-out p99 60.0 ms exceeds 50 ms"]
        );
        let mut quiet = streams(0.0, 0.0);
        if let Detail::Streams(d) = &mut quiet.detail {
            d.chat.latency_ms.samples = 0;
        }
        let slo = evaluate(&quiet, Some(200.0), None, None);
        assert_eq!(slo.violations, vec!["no chat latency was measured"]);
        assert!(evaluate(&streams(150.0, 20.0), Some(200.0), Some(50.0), Some(0)).passed);
    }

    fn records(ops: &[(&str, f64, u64)]) -> RunResult {
        let lat = |p99: f64, samples: u64| Latency {
            samples,
            p99,
            ..Default::default()
        };
        let ops: BTreeMap<String, OpReport> = ops
            .iter()
            .map(|&(name, p99, samples)| {
                (
                    name.to_string(),
                    OpReport {
                        share: 0.125,
                        count: samples,
                        latency_ms: lat(p99, samples),
                        ..Default::default()
                    },
                )
            })
            .collect();
        let samples = ops.values().map(|o| o.count).sum();
        result(Detail::Records(RecordsDetail {
            users: 10,
            users_signed_up: 10,
            concurrency: 4,
            write_ratio: 0.2,
            seed: 1,
            places_found: 230,
            search_prefixes: 100,
            posts_seeded: 10,
            token_refreshes: 0,
            requests: samples,
            requests_per_sec: samples as f64,
            errors_in_window: 0,
            latency_ms: lat(40.0, samples),
            ops,
        }))
    }

    #[test]
    fn records_gate_every_operation() {
        let r = records(&[
            ("create_post", 80.0, 100),
            ("read_post", 5.0, 100),
            ("edit_post", 0.0, 0),
        ]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["scenario"], "records");
        assert_eq!(v["ops"]["create_post"]["latency_ms"]["p99"], 80.0);
        assert_eq!(v["concurrency"], 4);
        let slo = evaluate(&r, Some(50.0), None, Some(0));
        assert_eq!(
            slo.violations,
            vec!["create_post p99 80.0 ms exceeds 50 ms"]
        );
        assert!(evaluate(&r, Some(100.0), None, Some(0)).passed);
        // An operation with no samples (none drawn) is not a violation; no samples at all is.
        let slo = evaluate(&records(&[]), Some(100.0), None, None);
        assert_eq!(slo.violations, vec!["no request latency was measured"]);
        let mut failed = records(&[("read_post", 5.0, 100)]);
        failed.errors.total = 3;
        let slo = evaluate(&failed, None, None, Some(2));
        assert_eq!(slo.violations, vec!["3 errors exceed the limit of 2"]);
        assert!(evaluate(&failed, None, None, Some(3)).passed);
        let html = crate::html::render(&r).unwrap();
        assert!(html.contains("create_post") && html.contains("sign-up (setup)"));
    }

    #[test]
    fn mixed_nests_both_sections_and_gates_both() {
        let rooms = RoomsDetail {
            rooms: 2,
            rooms_created: 2,
            participants: 5,
            presence_hz: 10.0,
            chat_per_min: 0.0,
            presence: flow(30.0),
            presence_fanout_ms: Latency {
                samples: 100,
                p99: 1.0,
                ..Default::default()
            },
            chat: None,
        };
        let Detail::Streams(stream) = streams(250.0, 20.0).detail else {
            unreachable!()
        };
        let r = result(Detail::Mixed(Box::new(MixedDetail {
            rooms,
            streams: stream,
        })));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["scenario"], "mixed");
        assert_eq!(v["rooms"]["participants"], 5);
        assert_eq!(v["rooms"]["presence"]["latency_ms"]["p99"], 30.0);
        assert_eq!(v["streams"]["viewers"], 9);
        assert_eq!(v["streams"]["chat"]["latency_ms"]["p99"], 250.0);
        let slo = evaluate(&r, Some(200.0), None, None);
        assert_eq!(
            slo.violations,
            vec!["stream chat p99 250.0 ms exceeds 200 ms"]
        );
        assert!(evaluate(&r, Some(300.0), Some(50.0), Some(0)).passed);
        assert!(crate::html::render(&r).is_ok());
    }
}
