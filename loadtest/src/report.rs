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
    /// Rooms asked for, and created.
    pub rooms: usize,
    pub rooms_created: u64,
    pub participants: usize,
    /// Planned WebSocket connections (rooms × participants).
    pub connections: u64,
    /// Connections that completed `join`.
    pub connections_joined: u64,
    /// Connections still open when the steady-state window ended.
    pub connections_open: i64,
    pub presence_hz: f64,
    pub chat_per_min: f64,
    pub ramp_secs: f64,
    pub warmup_secs: f64,
    /// Length of the steady-state window actually measured.
    pub duration_secs: f64,
    /// `presence.latency_ms` is end to end: a client's send to each friend reading it, which
    /// includes the server's coalescing window (up to 50 ms at 20 Hz) by design.
    pub presence: Flow,
    /// The fan-out alone: from the server's batch stamp (`at`) to each friend reading it.
    pub presence_fanout_ms: Latency,
    pub chat: Option<Flow>,
    /// Connect to `join` acknowledged, over the whole ramp.
    pub join_latency_ms: Latency,
    /// Friends' traced messages received per second during the window: presence updates
    /// (first sightings) plus chat messages. The figure that compares across targets, whether
    /// the server coalesces (Wagu) or forwards every message (Centrifugo, bare).
    pub delivered_per_sec: f64,
    pub throughput: Throughput,
    pub errors: ErrorReport,
    pub server: Option<ServerReport>,
    pub slo: Slo,
    /// One sample per second over the whole run.
    pub timeline: Vec<Sample>,
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

#[derive(Serialize, Debug, Default)]
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
    pub errors_total: u64,
    /// End-to-end presence latency of the updates received in this second (any phase).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_mb: Option<f64>,
}

#[derive(Serialize, Debug, Default)]
pub struct Slo {
    pub p99_ms: Option<f64>,
    pub fanout_p99_ms: Option<f64>,
    pub max_errors: Option<u64>,
    pub passed: bool,
    pub violations: Vec<String>,
}

/// Judges a result against the gate; with no gate given, a run always passes.
pub fn evaluate(
    r: &RunResult,
    p99_ms: Option<f64>,
    fanout_p99_ms: Option<f64>,
    max_errors: Option<u64>,
) -> Slo {
    let mut v = Vec::new();
    if let Some(limit) = fanout_p99_ms {
        let lat = &r.presence_fanout_ms;
        if r.participants > 1 && lat.samples == 0 {
            v.push("no presence fan-out latency was measured".to_string());
        } else if lat.p99 > limit {
            v.push(format!(
                "presence fan-out p99 {:.1} ms exceeds {limit} ms",
                lat.p99
            ));
        }
    }
    if let Some(limit) = p99_ms {
        let lat = &r.presence.latency_ms;
        if r.participants > 1 && lat.samples == 0 {
            v.push("no presence latency was measured".to_string());
        } else if lat.p99 > limit {
            v.push(format!("presence p99 {:.1} ms exceeds {limit} ms", lat.p99));
        }
        if let Some(chat) = &r.chat
            && chat.latency_ms.samples > 0
            && chat.latency_ms.p99 > limit
        {
            v.push(format!(
                "chat p99 {:.1} ms exceeds {limit} ms",
                chat.latency_ms.p99
            ));
        }
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
    println!(
        "rooms {}/{} created, {} participants each: {}/{} connections joined, {} open at the end",
        r.rooms_created,
        r.rooms,
        r.participants,
        r.connections_joined,
        r.connections,
        r.connections_open
    );
    println!(
        "steady state {:.1} s (after {:.0} s ramp + {:.0} s warmup)",
        r.duration_secs, r.ramp_secs, r.warmup_secs
    );
    let p = &r.presence;
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
            lat_line(&r.presence_fanout_ms)
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
    if let Some(c) = &r.chat {
        println!(
            "chat      sent {:.1}/s  received {:.1}/s (delivery {:.3})  latency {}",
            c.sent_per_sec,
            c.received_per_sec,
            c.delivery_ratio,
            lat_line(&c.latency_ms)
        );
    }
    println!("delivered {:.0} friends' messages/s", r.delivered_per_sec);
    println!("join      {}", lat_line(&r.join_latency_ms));
    let t = &r.throughput;
    println!(
        "traffic   in {:.0} msg/s ({}/s)  out {:.0} msg/s ({}/s)",
        t.messages_in_per_sec,
        human_bytes(t.bytes_in_per_sec),
        t.messages_out_per_sec,
        human_bytes(t.bytes_out_per_sec)
    );
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
