//! The `media` scenario: str0m peers send Opus (50 frames a second) and VP8 (~1 Mb/s at 30
//! frames a second) through a Wagu node's SFU, and measure what comes out.
//!
//! Every peer is a real WebRTC client: its own UDP socket, a str0m `Rtc` (ICE, DTLS, SRTP), the
//! Wagu protocol over a WebSocket for signalling (`join`/`join_stream`, `media_offer`). Each
//! frame carries its send time and its publisher's number, so a receiver knows the forwarding
//! delay (publisher send → subscriber receive, both on this machine's monotonic clock) and
//! which frames it missed. The payloads are not real Opus or VP8 (the SFU does not decode; a VP8
//! keyframe is marked as one), so no codec runs in the generator.
//!
//! A run steps the load up (`--steps`): for each step it opens that many rooms (or streams),
//! connects every peer, waits for the warm-up, measures for the window, closes everything and
//! goes on, until a step loses more than `--max-loss-pct` of the frames or the server's CPU
//! passes `--max-server-cpu`. It does not do: real codecs, simulcast, congestion control.

use crate::sys::ProcSampler;
use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args, Debug, Clone)]
pub struct MediaArgs {
    /// Base URL of the Wagu node (REST and `/ws`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// `rooms` (voice: every participant publishes audio and hears the others) or `streams`
    /// (one streamer publishes audio + video, viewers receive both).
    #[arg(long, default_value = "rooms")]
    pub kind: String,
    /// Participants per room (rooms), or viewers per stream (streams).
    #[arg(long, default_value_t = 5)]
    pub per_session: usize,
    /// Sessions (rooms or streams) per step, comma-separated, tried in order.
    #[arg(long, default_value = "5,10,20,40", value_delimiter = ',')]
    pub steps: Vec<usize>,
    /// Video bitrate of a streamer, kbit/s (30 frames a second).
    #[arg(long, default_value_t = 1000)]
    pub video_kbps: u32,
    /// Seconds between the last peer connecting and the window.
    #[arg(long, default_value_t = 3)]
    pub warmup_secs: u64,
    /// Seconds measured per step.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Peers connecting at once (signalling and DTLS), to spread the set-up.
    #[arg(long, default_value_t = 20)]
    pub connect_concurrency: usize,
    /// PID of the server, to sample its CPU during the window.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// A step fails above this loss.
    #[arg(long, default_value_t = 1.0)]
    pub max_loss_pct: f64,
    /// A step fails above this server CPU (percent of one core).
    #[arg(long, default_value_t = 90.0)]
    pub max_server_cpu: f64,
    /// Write the result (JSON) here.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Tokio worker threads of the generator (default: one per core it may use).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// One step's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub sessions: usize,
    pub peers: usize,
    /// Publisher tracks × their subscribers: what the SFU forwards.
    pub forwarded_streams: usize,
    pub forwarded_audio_streams: usize,
    pub forwarded_video_streams: usize,
    pub expected_frames: u64,
    pub received_frames: u64,
    pub loss_pct: f64,
    pub delay_p50_ms: f64,
    pub delay_p99_ms: f64,
    pub delay_max_ms: f64,
    pub server_cpu_pct: Option<f64>,
    pub generator_cpu_pct: Option<f64>,
    pub server_rss_mb: Option<f64>,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MediaResult {
    pub kind: String,
    pub per_session: usize,
    pub video_kbps: u32,
    pub duration_secs: u64,
    pub steps: Vec<Step>,
}

/// The process-wide clock frames are stamped with.
fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fn stamp() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// What one step's peers add up.
#[derive(Default)]
struct Tally {
    /// Frames each publisher sent inside the window, by publisher number.
    sent: Vec<(u32, u64, u32)>,
    received: u64,
    delay: Option<Histogram<u64>>,
}

#[derive(Clone, Copy)]
struct Window {
    start: u64,
    end: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    RoomTalker,
    Streamer,
    Viewer,
}

struct Plan {
    role: Role,
    /// Publisher number (unique in the run), carried in every frame.
    number: u32,
    ws: String,
    join: Value,
    /// How many subscribers each of its tracks has.
    subscribers: u32,
}

pub async fn run(args: MediaArgs) -> anyhow::Result<MediaResult> {
    let _ = epoch();
    let http = reqwest::Client::new();
    let ws = format!(
        "{}/ws",
        args.url
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1)
    );
    let streams = match args.kind.as_str() {
        "rooms" => false,
        "streams" => true,
        other => bail!("--kind must be rooms or streams, not {other}"),
    };
    if !streams && !(2..=5).contains(&args.per_session) {
        bail!("--per-session for rooms must be 2 to 5 (each hears the others through 4 slots)");
    }
    let mut result = MediaResult {
        kind: args.kind.clone(),
        per_session: args.per_session,
        video_kbps: args.video_kbps,
        duration_secs: args.duration_secs,
        steps: Vec::new(),
    };
    let mut next_number = 0u32;
    for &sessions in &args.steps {
        let mut plans = Vec::new();
        for _ in 0..sessions {
            if streams {
                let v: Value = post(&http, &args.url, "/api/streams", json!({"title": "bench", "place_id": "bench", "location": {"lat": 37.5, "lng": 127.0}})).await?;
                let id = v["stream_id"].as_str().context("stream_id")?.to_string();
                let key = v["streamer_key"]
                    .as_str()
                    .context("streamer_key")?
                    .to_string();
                next_number += 1;
                plans.push(Plan {
                    role: Role::Streamer,
                    number: next_number,
                    ws: ws.clone(),
                    join: json!({"type": "join_stream", "stream": id, "name": "streamer", "streamer_key": key}),
                    subscribers: args.per_session as u32,
                });
                for i in 0..args.per_session {
                    next_number += 1;
                    plans.push(Plan {
                        role: Role::Viewer,
                        number: next_number,
                        ws: ws.clone(),
                        join: json!({"type": "join_stream", "stream": id, "name": format!("v{i}")}),
                        subscribers: 0,
                    });
                }
            } else {
                let v: Value = post(&http, &args.url, "/api/rooms", json!({})).await?;
                let share = v["share_token"]
                    .as_str()
                    .context("share_token")?
                    .to_string();
                for i in 0..args.per_session {
                    next_number += 1;
                    plans.push(Plan {
                        role: Role::RoomTalker,
                        number: next_number,
                        ws: ws.clone(),
                        join: json!({"type": "join", "share": share, "name": format!("t{i}")}),
                        subscribers: args.per_session as u32 - 1,
                    });
                }
            }
        }
        let step = run_step(&args, sessions, plans, streams).await?;
        tracing::info!(
            sessions,
            forwarded = step.forwarded_streams,
            loss_pct = format!("{:.3}", step.loss_pct),
            p99_ms = format!("{:.2}", step.delay_p99_ms),
            server_cpu = ?step.server_cpu_pct,
            "step done"
        );
        let passed = step.passed;
        result.steps.push(step);
        if !passed {
            break;
        }
    }
    print_table(&result);
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(result)
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let r = http
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        bail!(
            "POST {path}: {status}: {text} (start the server with WAGU_RATE__CREATES_PER_MINUTE raised)"
        );
    }
    Ok(serde_json::from_str(&text)?)
}

async fn run_step(
    args: &MediaArgs,
    sessions: usize,
    plans: Vec<Plan>,
    streams: bool,
) -> anyhow::Result<Step> {
    let peers = plans.len();
    let tally = Arc::new(Mutex::new(Tally {
        delay: Some(Histogram::new_with_bounds(1_000, 60_000_000_000, 3)?),
        ..Tally::default()
    }));
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency.max(1)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None::<Window>);
    let mut tasks = Vec::new();
    let (forwarded_audio, forwarded_video) = plans.iter().fold((0, 0), |(a, v), p| match p.role {
        Role::RoomTalker => (a + p.subscribers as usize, v),
        Role::Streamer => (a + p.subscribers as usize, v + p.subscribers as usize),
        Role::Viewer => (a, v),
    });
    for plan in plans {
        let tally = tally.clone();
        let connected = connected.clone();
        let gate = gate.clone();
        let stop = stop_rx.clone();
        let kbps = args.video_kbps;
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.ok();
            let r = peer(plan, tally, connected, permit, stop, kbps).await;
            if let Err(e) = &r {
                tracing::warn!(error = %e, "peer failed");
            }
            r
        }));
    }
    // Every peer connected (ICE + DTLS), or a deadline.
    let deadline = Duration::from_secs(30 + peers as u64 / 10);
    match tokio::time::timeout(deadline, connected.acquire_many(peers as u32)).await {
        Ok(Ok(p)) => p.forget(),
        _ => bail!(
            "only {} of {peers} peers connected within {deadline:?}",
            connected.available_permits()
        ),
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    let mut server = args.server_pid.map(ProcSampler::new).transpose()?;
    let mut me = ProcSampler::new(std::process::id())?;
    let start = stamp();
    tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
    let end = stamp();
    let server_sample = server.as_mut().map(|s| s.sample()).transpose()?.flatten();
    let me_sample = me.sample()?;
    // Each peer reads on for a second (frames still in flight), then reports.
    let _ = stop_tx.send(Some(Window { start, end }));
    for t in tasks {
        let _ = t.await;
    }
    let tally = Arc::try_unwrap(tally)
        .map_err(|_| anyhow!("peers still hold the tally"))?
        .into_inner()
        .map_err(|_| anyhow!("tally poisoned"))?;
    let expected: u64 = tally
        .sent
        .iter()
        .map(|(_, n, subs)| n * u64::from(*subs))
        .sum();
    let received = tally.received;
    let loss_pct = if expected == 0 {
        100.0
    } else {
        (1.0 - received as f64 / expected as f64).max(0.0) * 100.0
    };
    let h = tally.delay.context("histogram")?;
    let ms = |ns: u64| ns as f64 / 1e6;
    let server_cpu = server_sample.map(|s| s.cpu_percent);
    let passed = loss_pct <= args.max_loss_pct
        && server_cpu.is_none_or(|c| c <= args.max_server_cpu)
        && expected > 0;
    let _ = streams;
    Ok(Step {
        sessions,
        peers,
        forwarded_streams: forwarded_audio + forwarded_video,
        forwarded_audio_streams: forwarded_audio,
        forwarded_video_streams: forwarded_video,
        expected_frames: expected,
        received_frames: received,
        loss_pct,
        delay_p50_ms: ms(h.value_at_quantile(0.5)),
        delay_p99_ms: ms(h.value_at_quantile(0.99)),
        delay_max_ms: ms(h.max()),
        server_cpu_pct: server_cpu,
        generator_cpu_pct: me_sample.map(|s| s.cpu_percent),
        server_rss_mb: server_sample.map(|s| s.rss_bytes as f64 / 1e6),
        passed,
    })
}

/// One WebRTC peer: signalling, then media until the step ends.
async fn peer(
    plan: Plan,
    tally: Arc<Mutex<Tally>>,
    connected: Arc<tokio::sync::Semaphore>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    mut stop: tokio::sync::watch::Receiver<Option<Window>>,
    video_kbps: u32,
) -> anyhow::Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&plan.ws).await?;
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    let (mut audio_out, mut video_out): (Option<Mid>, Option<Mid>) = (None, None);
    match plan.role {
        Role::RoomTalker => {
            audio_out =
                Some(change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
            for _ in 0..4 {
                change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            }
        }
        Role::Streamer => {
            audio_out =
                Some(change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
            video_out =
                Some(change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        }
        Role::Viewer => {
            change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
    }
    let (offer, pending) = change.apply().context("an offer")?;
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"type": "hello", "id": 1, "protocol": 1})))
        .await?;
    let mut join = plan.join.clone();
    join["id"] = 2.into();
    ws.send(send(join)).await?;
    ws.send(send(
        json!({"type": "media_offer", "id": 3, "sdp": offer.to_sdp_string()}),
    ))
    .await?;
    let answer = loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .context("no media_answer within 20 s")?
            .context("socket closed")??;
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(&t)?;
        match v["type"].as_str() {
            Some("media_answer") => break v["sdp"].as_str().context("sdp")?.to_string(),
            Some("error") => bail!("refused: {v}"),
            _ => {}
        }
    };
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer)?)?;

    let mut buf = vec![0u8; 2048];
    let mut is_connected = false;
    let mut permit = permit;
    let mut sent_audio = 0u64;
    let mut sent_video = 0u64;
    // Send stamps of what this peer published, and (send stamp, delay) of what it received:
    // the window is only known once it has closed.
    let mut sent_stamps: Vec<u64> = Vec::new();
    let mut got: Vec<(u64, u64)> = Vec::new();
    let mut force_key = false;
    let window: Window;
    let started = Instant::now();
    let frame_bytes = (video_kbps as usize * 1000 / 8 / 30).max(16);
    loop {
        let drained = drain(&mut rtc, &socket, &mut got)?;
        let timeout = drained.timeout;
        if drained.connected {
            is_connected = true;
            permit.take();
            connected.add_permits(1);
        }
        force_key |= drained.keyframe_asked;
        let now = Instant::now();
        let mut next_send = timeout;
        if is_connected && let Some(mid) = audio_out {
            let due = started + Duration::from_millis(20 * sent_audio);
            if due <= now {
                let s = stamp();
                let mut payload = s.to_be_bytes().to_vec();
                payload.extend_from_slice(&plan.number.to_be_bytes());
                payload.resize(120, 0xab);
                if let Some(w) = rtc.writer(mid) {
                    let pt = w
                        .payload_params()
                        .find(|p| p.spec().codec == Codec::Opus)
                        .map(|p| p.pt());
                    if let Some(pt) = pt {
                        w.audio_level(-30, true).write(
                            pt,
                            now,
                            MediaTime::new(960 * sent_audio, Frequency::FORTY_EIGHT_KHZ),
                            payload,
                        )?;
                    }
                }
                sent_stamps.push(s);
                sent_audio += 1;
                continue;
            }
            next_send = next_send.min(due);
        }
        if is_connected && let Some(mid) = video_out {
            let due = started + Duration::from_micros(33_333 * sent_video);
            if due <= now {
                let s = stamp();
                let key = sent_video.is_multiple_of(60) || std::mem::take(&mut force_key);
                let mut frame = vec![if key { 0x50 } else { 0x51 }, 0];
                frame.extend_from_slice(&s.to_be_bytes());
                if key {
                    frame.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
                }
                frame.resize(if key { frame_bytes * 3 } else { frame_bytes }, 0x5a);
                if let Some(w) = rtc.writer(mid) {
                    let pt = w
                        .payload_params()
                        .find(|p| p.spec().codec == Codec::Vp8)
                        .map(|p| p.pt());
                    if let Some(pt) = pt {
                        w.write(
                            pt,
                            now,
                            MediaTime::new(3000 * sent_video, Frequency::NINETY_KHZ),
                            frame,
                        )?;
                    }
                }
                sent_stamps.push(s);
                sent_video += 1;
                continue;
            }
            next_send = next_send.min(due);
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r?;
                receive(&mut rtc, &buf[..n], source, local)?;
            }
            _ = tokio::time::sleep_until(next_send.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
            m = ws.next() => {
                if m.is_none() {
                    bail!("the server closed the WebSocket");
                }
            }
            _ = stop.changed() => {
                if let Some(w) = *stop.borrow() {
                    window = w;
                    break;
                }
            }
        }
    }
    // Frames sent in the window's last moments still arrive: keep reading for a second.
    let linger = Instant::now() + Duration::from_secs(1);
    while Instant::now() < linger {
        let timeout = drain(&mut rtc, &socket, &mut got)?.timeout;
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r?;
                receive(&mut rtc, &buf[..n], source, local)?;
            }
            _ = tokio::time::sleep_until(timeout.min(linger).into()) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
        }
    }
    let in_window = |t: u64| t >= window.start && t < window.end;
    let sent_in_window = sent_stamps.iter().filter(|t| in_window(**t)).count() as u64;
    let mut delay = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3)?;
    let mut received = 0u64;
    for (sent, d) in got {
        if in_window(sent) {
            received += 1;
            let _ = delay.record(d.max(1_000));
        }
    }
    // The window's figures: frames sent while it was open (counted as it closed) and received.
    {
        let mut t = tally.lock().map_err(|_| anyhow!("tally poisoned"))?;
        if plan.subscribers > 0 {
            t.sent.push((plan.number, sent_in_window, plan.subscribers));
        }
        t.received += received;
        if let Some(h) = t.delay.as_mut() {
            h.add(&delay)?;
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// What one drain of a peer's `Rtc` produced besides datagrams and received frames.
struct Drained {
    timeout: Instant,
    connected: bool,
    keyframe_asked: bool,
}

/// Drains str0m to its timeout (after whatever changed it): sends what it transmits, and
/// records (send stamp, delay) of every frame received.
fn drain(rtc: &mut Rtc, socket: &UdpSocket, got: &mut Vec<(u64, u64)>) -> anyhow::Result<Drained> {
    let mut d = Drained {
        timeout: Instant::now(),
        connected: false,
        keyframe_asked: false,
    };
    loop {
        match rtc.poll_output()? {
            Output::Timeout(t) => {
                d.timeout = t;
                return Ok(d);
            }
            Output::Transmit(t) => {
                let _ = socket.try_send_to(&t.contents, t.destination);
            }
            Output::Event(Event::Connected) => d.connected = true,
            Output::Event(Event::KeyframeRequest(_)) => d.keyframe_asked = true,
            Output::Event(Event::MediaData(m)) => {
                // A video frame starts with its VP8 header (0x50 key, 0x51 delta) and a pad.
                let off = if m.data.first().is_some_and(|b| *b == 0x50 || *b == 0x51) {
                    2
                } else {
                    0
                };
                if let Some(ts) = m.data.get(off..off + 8) {
                    let sent = u64::from_be_bytes(ts.try_into().unwrap_or_default());
                    got.push((sent, stamp().saturating_sub(sent)));
                }
            }
            Output::Event(_) => {}
        }
    }
}

/// Feeds one datagram from the socket to the peer's `Rtc`.
fn receive(
    rtc: &mut Rtc,
    data: &[u8],
    source: SocketAddr,
    local: SocketAddr,
) -> anyhow::Result<()> {
    let Ok(contents) = data.try_into() else {
        return Ok(());
    };
    rtc.handle_input(Input::Receive(
        Instant::now(),
        Receive {
            proto: Protocol::Udp,
            source,
            destination: local,
            contents,
        },
    ))?;
    Ok(())
}

fn print_table(r: &MediaResult) {
    println!(
        "\nmedia: {} × {} per session{}",
        r.kind,
        r.per_session,
        if r.kind == "streams" {
            format!(", video {} kbit/s", r.video_kbps)
        } else {
            String::new()
        }
    );
    println!(
        "{:>8} {:>6} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>6}",
        "sessions",
        "peers",
        "forwarded",
        "loss %",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server %",
        "gen %",
        "ok"
    );
    for s in &r.steps {
        println!(
            "{:>8} {:>6} {:>10} {:>9.3} {:>9.2} {:>9.2} {:>9.2} {:>10} {:>10} {:>6}",
            s.sessions,
            s.peers,
            s.forwarded_streams,
            s.loss_pct,
            s.delay_p50_ms,
            s.delay_p99_ms,
            s.delay_max_ms,
            s.server_cpu_pct.map_or("-".into(), |c| format!("{c:.0}")),
            s.generator_cpu_pct
                .map_or("-".into(), |c| format!("{c:.0}")),
            if s.passed { "yes" } else { "no" }
        );
    }
}
