//! What a run measured, as the JSON of `--out`: the run's own fields, each scenario's
//! detail, latencies, throughput, errors and server samples, and how they are built from the
//! harness's counters.
//!
//! What it does not do: judge (`slo.rs`) or print (`print.rs`).

use super::Slo;
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
    /// Messages receivers never saw, found as gaps in each sender's counters between two
    /// messages they did see (window only). Unlike `delivery_ratio` it has no edge effects at
    /// the window's ends: what it misses is only a sender's last messages before a receiver's
    /// end.
    pub lost: u64,
    /// `received / (received + lost)`: the share of messages that reached their receivers.
    pub delivered_share: f64,
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
    pub lost: C,
    pub hist: H,
}

pub const PRESENCE: FlowSpec = FlowSpec {
    sent: C::PresenceSent,
    received: C::PresenceUpdatesIn,
    frames: C::PresenceFramesIn,
    late: C::PresenceLate,
    lost: C::PresenceGaps,
    hist: H::Presence,
};

/// A chat is its own frame: `frames` and `received` count the same thing.
pub const CHAT: FlowSpec = FlowSpec {
    sent: C::ChatSent,
    received: C::ChatIn,
    frames: C::ChatIn,
    late: C::ChatLate,
    lost: C::ChatGaps,
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
        lost: s.window(spec.lost),
        delivered_share: {
            let lost = s.window(spec.lost);
            if received + lost > 0 {
                (received as f64 / (received + lost) as f64 * 1e5).round() / 1e5
            } else {
                0.0
            }
        },
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
