//! The `rooms` scenario: N map rooms of M participants each, every participant a real
//! WebSocket client streaming presence (and optionally chat) to its friends.
//!
//! Per room: `POST /api/rooms`, then the host connects (`hello`, `join` with the host key) and,
//! once it is in, the M − 1 others join with the share token. Rooms start evenly spread over
//! the ramp. Each joined client sends a marked presence (see [`crate::target::wagu`]) every
//! 1/F seconds, from a start jittered over one period so a room's clients do not fire
//! together, and records the send time in its room's [`SendLog`]. Every client that reads a
//! `presence` batch looks up each friend's entry it has not seen yet and records
//! `now − sent` — the time from a send until this friend saw it, server batching included.
//! Entries already seen (a full picture re-sent after congestion) are not measured twice, and
//! a client's own entry is skipped.

use crate::cli::RoomsArgs;
use crate::http::{Base, HttpClient};
use crate::net::{Dialer, Ws, resolve_ws};
use crate::report::{self, ErrorReport, Latency, RunResult};
use crate::scenario::{Monitor, interruptible, steady_state};
use crate::stats::{C, H, Phase, SendLog, Stats, TaskGuard, Tasks, record, unit_jitter};
use crate::target::wagu::{self, CreatedRoom, Incoming};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tokio::time::{Interval, MissedTickBehavior, interval_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wagu_proto::ids::{HostKey, ShareToken};

/// Longest `hello` + `join` may take once the socket is open.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// After the ramp, longest to wait for the last joins before warming up regardless.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At the end, longest to wait for every client to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// How far back the presence send log reaches: anything older counts as late.
const PRESENCE_LOG_SECS: f64 = 5.0;
/// Chat send log depth per sender (chat is slow; 16 messages reach back minutes).
const CHAT_LOG: usize = 16;
/// Close code recorded when a connection ends without a close frame.
const ABNORMAL: u16 = 1006;

/// What every client of the run shares.
struct Ctx {
    stats: Arc<Stats>,
    tasks: Arc<Tasks>,
    dialer: Dialer,
    participants: usize,
    presence_period: Duration,
    chat_period: Option<Duration>,
    presence_ring: usize,
    /// Value recorded for an update older than the send log (a lower bound), µs.
    presence_late_us: u64,
    chat_late_us: u64,
    shutdown: watch::Receiver<bool>,
}

/// One room as its clients see it.
struct Room {
    index: usize,
    share: ShareToken,
    ws_url: String,
    addr: SocketAddr,
    presence: SendLog,
    chat: SendLog,
}

fn validate(a: &RoomsArgs) -> anyhow::Result<()> {
    let c = &a.common;
    if a.rooms == 0 || a.participants == 0 {
        bail!("--rooms and --participants must be at least 1");
    }
    if a.participants > wagu::MAX_SLOT {
        bail!("--participants must be at most {}", wagu::MAX_SLOT);
    }
    if !(a.presence_hz > 0.0 && a.presence_hz <= 1000.0) {
        bail!("--presence-hz must be above 0 and at most 1000");
    }
    if !(a.chat_per_min >= 0.0 && a.chat_per_min <= 60_000.0) {
        bail!("--chat-per-min must be 0 to 60000");
    }
    for (name, v) in [
        ("--ramp-secs", c.ramp_secs),
        ("--warmup-secs", c.warmup_secs),
        ("--duration-secs", c.duration_secs),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{name} must be a non-negative number");
        }
    }
    if c.duration_secs <= 0.0 {
        bail!("--duration-secs must be above 0");
    }
    Ok(())
}

pub async fn run(args: RoomsArgs) -> anyhow::Result<RunResult> {
    validate(&args)?;
    let c = &args.common;
    let planned = args.rooms * args.participants;

    // One descriptor per connection, plus the HTTP clients, the runtime and some slack.
    let wanted = planned as u64 + c.create_concurrency as u64 + 256;
    let nofile = crate::sys::raise_nofile(wanted).context("raise RLIMIT_NOFILE")?;
    if nofile < wanted {
        bail!(
            "{planned} connections need about {wanted} file descriptors; the limit is {nofile} \
             (raise the hard limit: ulimit -Hn, or run as root)"
        );
    }

    let base = Base::parse(&c.url).await?;
    let mut probe = HttpClient::new(base.clone());
    match probe.get("/healthz").await {
        Ok((200, _)) => {}
        Ok((status, _)) => bail!("{}/healthz answered {status}", c.url),
        Err(e) => bail!("cannot reach {}: {e}", c.url),
    }
    drop(probe);

    let stats = Arc::new(Stats::new());
    let (shutdown_tx, shutdown) = watch::channel(false);
    let presence_period = Duration::from_secs_f64(1.0 / args.presence_hz);
    let presence_ring = (args.presence_hz * PRESENCE_LOG_SECS).ceil() as usize;
    let presence_ring = presence_ring.max(16).next_power_of_two();
    let chat_period =
        (args.chat_per_min > 0.0).then(|| Duration::from_secs_f64(60.0 / args.chat_per_min));
    let ctx = Arc::new(Ctx {
        stats: stats.clone(),
        tasks: Arc::new(Tasks::default()),
        dialer: Dialer::new(&c.source_ips, base.addr, planned)?,
        participants: args.participants,
        presence_period,
        chat_period,
        presence_ring,
        presence_late_us: (presence_period.as_micros() as u64) * presence_ring as u64,
        chat_late_us: chat_period.map_or(0, |p| p.as_micros() as u64 * CHAT_LOG as u64),
        shutdown,
    });
    let monitor = Monitor::spawn(stats.clone(), c.server_pid, c.progress_secs)?;

    tracing::info!(
        "ramp: {} rooms × {} participants = {planned} connections over {:.0} s",
        args.rooms,
        args.participants,
        c.ramp_secs
    );
    let ramp = Duration::from_secs_f64(c.ramp_secs);
    let next_room = Arc::new(AtomicUsize::new(0));
    let t0 = tokio::time::Instant::now();
    let workers: Vec<_> = (0..c.create_concurrency.clamp(1, args.rooms))
        .map(|_| {
            tokio::spawn(create_rooms(
                ctx.clone(),
                base.clone(),
                next_room.clone(),
                args.rooms,
                ramp,
                t0,
            ))
        })
        .collect();
    let mut interrupted = interruptible(async {
        for w in workers {
            let _ = w.await;
        }
        // Ramp done: give the last joins time to land before the warmup.
        let settle = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        while stats.settled.load(Ordering::Relaxed) < planned as u64 {
            if tokio::time::Instant::now() >= settle {
                tracing::warn!(
                    "{} of {planned} connections settled after the ramp; going on",
                    stats.settled.load(Ordering::Relaxed)
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_none();
    tracing::info!(
        "ramp done in {:.1} s: {} rooms, {} connections joined",
        t0.elapsed().as_secs_f64(),
        stats.rooms_created.load(Ordering::Relaxed),
        stats.joined.load(Ordering::Relaxed)
    );

    let mut window = 0.0;
    if !interrupted {
        let warmup = Duration::from_secs_f64(c.warmup_secs);
        let (w, i) = steady_state(&stats, warmup, Duration::from_secs_f64(c.duration_secs)).await;
        window = w;
        interrupted = i;
    }
    stats.set_phase(Phase::Stop);
    let open_at_end = stats.open.load(Ordering::Relaxed);

    let _ = shutdown_tx.send(true);
    if tokio::time::timeout(CLOSE_TIMEOUT, ctx.tasks.idle())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} clients still closing after {:?}; reporting anyway",
            ctx.tasks.live(),
            CLOSE_TIMEOUT
        );
    }
    let mon = monitor.finish().await;

    let friends = args.participants - 1;
    let target_presence = planned as f64 * args.presence_hz;
    let mut result = RunResult {
        scenario: "rooms",
        target: c.target,
        url: c.url.clone(),
        interrupted,
        rooms: args.rooms,
        rooms_created: stats.rooms_created.load(Ordering::Relaxed),
        participants: args.participants,
        connections: planned as u64,
        connections_joined: stats.joined.load(Ordering::Relaxed),
        connections_open: open_at_end,
        presence_hz: args.presence_hz,
        chat_per_min: args.chat_per_min,
        ramp_secs: c.ramp_secs,
        warmup_secs: c.warmup_secs,
        duration_secs: (window * 100.0).round() / 100.0,
        presence: report::flow(
            &stats,
            window,
            &report::PRESENCE,
            target_presence,
            ctx.presence_late_us as f64 / 1000.0,
            friends,
        ),
        chat: chat_period.map(|_| {
            report::flow(
                &stats,
                window,
                &report::CHAT,
                planned as f64 * args.chat_per_min / 60.0,
                ctx.chat_late_us as f64 / 1000.0,
                friends,
            )
        }),
        presence_fanout_ms: Latency::from_hist(&stats.merged(H::PresenceFanout)),
        join_latency_ms: Latency::from_hist(&stats.merged(H::Join)),
        throughput: report::throughput(&stats, window),
        errors: ErrorReport::from_stats(&stats),
        server: mon.server,
        slo: Default::default(),
        timeline: mon.timeline,
    };
    result.slo = report::evaluate(&result, c.slo_p99_ms, c.slo_fanout_p99_ms, c.slo_max_errors);
    Ok(result)
}

/// One room-creation worker: takes the next room index, waits for its slot in the ramp,
/// creates it over a kept-alive HTTP connection and starts its clients.
async fn create_rooms(
    ctx: Arc<Ctx>,
    base: Base,
    next: Arc<AtomicUsize>,
    rooms: usize,
    ramp: Duration,
    t0: tokio::time::Instant,
) {
    let mut http = HttpClient::new(base);
    let mut resolved: Option<(String, SocketAddr)> = None;
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= rooms || *ctx.shutdown.borrow() {
            return;
        }
        tokio::time::sleep_until(t0 + ramp.mul_f64(index as f64 / rooms as f64)).await;
        let fail = |why: String| {
            ctx.stats.errors.room_create(why);
            ctx.stats
                .settled
                .fetch_add(ctx.participants as u64, Ordering::Relaxed);
        };
        let created = match wagu::create_room(&mut http).await {
            Ok(c) => c,
            Err(why) => {
                fail(why);
                continue;
            }
        };
        // Every room of a node answers with the same ws_url: resolve it once.
        let addr = match &resolved {
            Some((url, addr)) if *url == created.ws_url => *addr,
            _ => match resolve_ws(&created.ws_url).await {
                Ok(addr) => {
                    resolved = Some((created.ws_url.clone(), addr));
                    addr
                }
                Err(e) => {
                    fail(format!("{e:#}"));
                    continue;
                }
            },
        };
        ctx.stats.rooms_created.fetch_add(1, Ordering::Relaxed);
        let guard = ctx.tasks.enter();
        tokio::spawn(start_room(ctx.clone(), index, created, addr, guard));
    }
}

async fn start_room(
    ctx: Arc<Ctx>,
    index: usize,
    created: CreatedRoom,
    addr: SocketAddr,
    _guard: TaskGuard,
) {
    let m = ctx.participants;
    let room = Arc::new(Room {
        index,
        share: created.share_token,
        ws_url: created.ws_url,
        addr,
        presence: SendLog::new(m, ctx.presence_ring),
        chat: SendLog::new(if ctx.chat_period.is_some() { m } else { 0 }, CHAT_LOG),
    });
    tracing::debug!(room = %created.room_id, index, "room created");
    // The host first, so that it really is the room's host; the others follow once it is in,
    // or once it failed (they can still join a room without its host).
    let (tx, rx) = oneshot::channel();
    let guard = ctx.tasks.enter();
    tokio::spawn(client(
        ctx.clone(),
        room.clone(),
        0,
        Some(created.host_key),
        Some(tx),
        guard,
    ));
    let _ = rx.await;
    for slot in 1..m {
        let guard = ctx.tasks.enter();
        tokio::spawn(client(ctx.clone(), room.clone(), slot, None, None, guard));
    }
}

/// One participant from connect to close.
async fn client(
    ctx: Arc<Ctx>,
    room: Arc<Room>,
    slot: usize,
    host_key: Option<HostKey>,
    joined: Option<oneshot::Sender<()>>,
    _guard: TaskGuard,
) {
    let stats = &*ctx.stats;
    let settle = || stats.settled.fetch_add(1, Ordering::Relaxed);
    if *ctx.shutdown.borrow() {
        settle();
        return;
    }
    let started = Instant::now();
    let mut ws = match ctx.dialer.dial(room.addr, &room.ws_url).await {
        Ok(ws) => ws,
        Err(why) => {
            stats.errors.connect(why);
            settle();
            return;
        }
    };
    let name = format!("lt{}-{}", room.index, slot);
    if handshake(stats, &mut ws, &room.share, name, host_key)
        .await
        .is_err()
    {
        settle();
        return;
    }
    stats.with_hist(H::Join, |h| record(h, started.elapsed().as_micros() as u64));
    stats.joined.fetch_add(1, Ordering::Relaxed);
    stats.open.fetch_add(1, Ordering::Relaxed);
    settle();
    drop(joined);
    session(&ctx, &room, slot, ws).await;
    stats.open.fetch_sub(1, Ordering::Relaxed);
}

/// Sends one text frame and counts it.
async fn send(stats: &Stats, ws: &mut Ws, frame: String) -> Result<(), ()> {
    let len = frame.len() as u64;
    ws.send(Message::text(frame)).await.map_err(|_| ())?;
    stats.add(C::MsgsOut, 1);
    stats.add(C::BytesOut, len);
    Ok(())
}

fn close_code(f: Option<CloseFrame>) -> u16 {
    f.map_or(1005, |f| u16::from(f.code))
}

/// `hello`, then `join`; returns once the join is acknowledged. Every failure is counted in
/// exactly one error book.
async fn handshake(
    stats: &Stats,
    ws: &mut Ws,
    share: &ShareToken,
    name: String,
    host_key: Option<HostKey>,
) -> Result<(), ()> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    if send(stats, ws, wagu::hello()).await.is_err() {
        stats.errors.close(ABNORMAL);
        return Err(());
    }
    await_ack(stats, ws, wagu::HELLO_ID, false, deadline).await?;
    if send(stats, ws, wagu::join(share, name, host_key))
        .await
        .is_err()
    {
        stats.errors.close(ABNORMAL);
        return Err(());
    }
    await_ack(stats, ws, wagu::JOIN_ID, true, deadline).await
}

/// Reads until the `ack` of `id` (after a `welcome`, for a join).
async fn await_ack(
    stats: &Stats,
    ws: &mut Ws,
    id: u64,
    needs_welcome: bool,
    deadline: tokio::time::Instant,
) -> Result<(), ()> {
    let mut welcomed = !needs_welcome;
    loop {
        let Ok(msg) = tokio::time::timeout_at(deadline, ws.next()).await else {
            stats.errors.join(if id == wagu::HELLO_ID {
                "timeout waiting for the hello ack"
            } else {
                "timeout waiting for the join ack"
            });
            return Err(());
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                stats.add(C::MsgsIn, 1);
                stats.add(C::BytesIn, t.len() as u64);
                match wagu::classify(&t) {
                    Incoming::Ack(i) if i == id => {
                        if welcomed {
                            return Ok(());
                        }
                        stats.errors.join("join acknowledged without a welcome");
                        return Err(());
                    }
                    Incoming::Welcome => welcomed = true,
                    Incoming::Error(code) => {
                        stats.errors.error_frame(code);
                        return Err(());
                    }
                    Incoming::Undecodable => stats.errors.error_frame("(undecodable frame)"),
                    _ => {}
                }
            }
            Some(Ok(Message::Close(f))) => {
                stats.errors.close(close_code(f));
                return Err(());
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                stats.errors.close(ABNORMAL);
                return Err(());
            }
        }
    }
}

async fn tick(i: &mut Option<Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A joined client: streams presence (and chat), reads and measures what friends send, until
/// the run stops or the server ends the connection.
async fn session(ctx: &Ctx, room: &Room, slot: usize, mut ws: Ws) {
    let stats = &*ctx.stats;
    let seed = ((room.index as u64) << 24) | slot as u64;
    let now = tokio::time::Instant::now();
    let every = |period: Duration, salt: u64| {
        // Skip, not burst: a harness that fell behind must not catch up in a flood the
        // server would then be blamed for. The report compares sent with target rates.
        let mut i = interval_at(now + period.mul_f64(unit_jitter(seed ^ salt)), period);
        i.set_missed_tick_behavior(MissedTickBehavior::Skip);
        i
    };
    let mut presence = every(ctx.presence_period, 0);
    let mut chat = ctx.chat_period.map(|p| every(p, 0xC4A7));
    let mut last_seen = vec![0u64; ctx.participants];
    let (mut presence_n, mut chat_n, mut next_id) = (0u64, 0u64, wagu::FIRST_FREE_ID);
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                goodbye(&mut ws).await;
                return;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => on_text(ctx, room, slot, &t, &mut last_seen),
                Some(Ok(Message::Binary(b))) => {
                    stats.add(C::MsgsIn, 1);
                    stats.add(C::BytesIn, b.len() as u64);
                    stats.errors.error_frame("(binary frame)");
                }
                // Pings are answered by tungstenite itself, with the next read or write.
                Some(Ok(Message::Close(f))) => {
                    if !*shutdown.borrow() {
                        stats.errors.close(close_code(f));
                    }
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    if !*shutdown.borrow() {
                        stats.errors.close(ABNORMAL);
                    }
                    return;
                }
            },
            _ = presence.tick() => {
                presence_n += 1;
                let frame = wagu::presence(slot, presence_n);
                // Stamped just before the write: the latency covers our send path too, as a
                // real client's would.
                room.presence.record(slot, presence_n, stats.now_us());
                if send(stats, &mut ws, frame).await.is_err() {
                    if !*shutdown.borrow() {
                        stats.errors.close(ABNORMAL);
                    }
                    return;
                }
                stats.add(C::PresenceSent, 1);
            }
            _ = tick(&mut chat) => {
                chat_n += 1;
                let frame = wagu::chat(next_id, slot, chat_n);
                next_id += 1;
                room.chat.record(slot, chat_n, stats.now_us());
                if send(stats, &mut ws, frame).await.is_err() {
                    if !*shutdown.borrow() {
                        stats.errors.close(ABNORMAL);
                    }
                    return;
                }
                stats.add(C::ChatSent, 1);
            }
        }
    }
}

/// Handles one text frame of a joined client.
fn on_text(ctx: &Ctx, room: &Room, slot: usize, text: &str, last_seen: &mut [u64]) {
    let stats = &*ctx.stats;
    stats.add(C::MsgsIn, 1);
    stats.add(C::BytesIn, text.len() as u64);
    match wagu::classify(text) {
        Incoming::Presence(at, updates) => {
            stats.add(C::PresenceFramesIn, 1);
            let now = stats.now_us();
            if stats.measuring() {
                let wall_us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as u64)
                    .unwrap_or(0);
                // `at` has millisecond resolution: add half a millisecond to centre the error.
                let lat = wall_us.saturating_sub(at * 1000 + 500);
                stats.with_hist(H::PresenceFanout, |h| record(h, lat));
            }
            let (mut fresh, mut late) = (0, 0);
            let mut measure = |mut hist: Option<&mut hdrhistogram::Histogram<u64>>| {
                for e in &updates {
                    let Some((from, n)) = e.viewport.as_ref().and_then(wagu::read_marker) else {
                        continue;
                    };
                    // Own echo, a sender outside this room's slots, or an update seen before.
                    if from == slot || from >= last_seen.len() || n <= last_seen[from] {
                        continue;
                    }
                    last_seen[from] = n;
                    fresh += 1;
                    let lat = match room.presence.lookup(from, n) {
                        crate::stats::Lookup::Sent(t) => now.saturating_sub(t),
                        crate::stats::Lookup::Late => {
                            late += 1;
                            ctx.presence_late_us
                        }
                        crate::stats::Lookup::Unknown => continue,
                    };
                    if let Some(h) = hist.as_deref_mut() {
                        record(h, lat);
                    }
                }
            };
            // One lock for the whole batch, and none outside the window.
            if stats.measuring() {
                stats.with_hist(H::Presence, |h| measure(Some(h)));
            } else {
                measure(None);
            }
            stats.add(C::PresenceUpdatesIn, fresh);
            if late > 0 {
                stats.add(C::PresenceLate, late);
            }
        }
        Incoming::Chat(m) => {
            let Some((from, n)) = wagu::read_chat_marker(&m.text) else {
                return;
            };
            if from == slot {
                return;
            }
            stats.add(C::ChatIn, 1);
            let lat = match room.chat.lookup(from, n) {
                crate::stats::Lookup::Sent(t) => stats.now_us().saturating_sub(t),
                crate::stats::Lookup::Late => {
                    stats.add(C::ChatLate, 1);
                    ctx.chat_late_us
                }
                crate::stats::Lookup::Unknown => return,
            };
            if stats.measuring() {
                stats.with_hist(H::Chat, |h| record(h, lat));
            }
        }
        Incoming::Ack(_) => stats.add(C::AcksIn, 1),
        Incoming::Error(code) => stats.errors.error_frame(code),
        Incoming::Undecodable => stats.errors.error_frame("(undecodable frame)"),
        Incoming::Welcome | Incoming::Other => {}
    }
}

/// Closes normally and waits (briefly) for the server's close, so the server sees a clean
/// departure rather than a reset.
async fn goodbye(ws: &mut Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = ws
            .close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "load test over".into(),
            }))
            .await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
