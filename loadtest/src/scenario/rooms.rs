//! The `rooms` scenario: N map rooms of M participants each, every participant a real
//! WebSocket client streaming presence (and optionally chat) to its friends.
//!
//! Per room: the target sets the room up (Wagu: `POST /api/rooms`; Centrifugo and the bare
//! relay: a channel or query name), then the first client opens its session (Wagu: `hello`,
//! `join` with the host key) and, once it is in, the M − 1 others follow. Rooms start evenly
//! spread over the ramp. Each open client sends a marked presence (see
//! [`crate::target::wagu`]) every 1/F seconds, from a start jittered over one period so a
//! room's clients do not fire together, and records the send time in its room's [`SendLog`].
//! Every client that reads a presence message looks up each friend's update it has not seen
//! yet and records `now − sent` — the time from a send until this friend saw it, server
//! batching included. Updates already seen (a full picture re-sent after congestion) are not
//! measured twice, and a client's own update (Wagu's batch includes it, Centrifugo echoes it)
//! is skipped.
//!
//! With `--presence-hz 0` and no chat the clients open their sessions and sit: the idle
//! connection measurement.

use crate::cli::RoomsArgs;
use crate::http::HttpClient;
use crate::net::{Dialer, Ws, resolve_ws};
use crate::report::{self, Detail, Latency, RoomsDetail, RunResult};
use crate::scenario::cluster::Cluster;
use crate::scenario::{
    ABNORMAL, Run, Shared, close_code, goodbye, open_client, send, tick, validate_timing,
};
use crate::stats::{
    C, H, Lookup, SendLog, Stats, TaskGuard, Tasks, record, since_stamp_us, unit_jitter,
};
use crate::target::{Incoming, RoomAccess, wagu};
use anyhow::bail;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::{MissedTickBehavior, interval_at};
use tokio_tungstenite::tungstenite::Message;

/// How far back the presence send log reaches: anything older counts as late.
const PRESENCE_LOG_SECS: f64 = 5.0;
/// Chat send log depth per sender (chat is slow; 16 messages reach back minutes).
const CHAT_LOG: usize = 16;

/// What every client of the run shares.
pub struct Ctx {
    stats: Arc<Stats>,
    tasks: Arc<Tasks>,
    dialer: Arc<Dialer>,
    cluster: Arc<Cluster>,
    /// Rooms this workload created (the run's `created` also counts streams in `mixed`).
    created: AtomicU64,
    participants: usize,
    /// `None`: the clients send no presence (`--presence-hz 0`).
    presence_period: Option<Duration>,
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
    access: RoomAccess,
    addr: SocketAddr,
    presence: SendLog,
    chat: SendLog,
}

pub fn validate(a: &RoomsArgs) -> anyhow::Result<()> {
    if a.rooms == 0 || a.participants == 0 {
        bail!("--rooms and --participants must be at least 1");
    }
    if a.participants > wagu::MAX_SLOT {
        bail!("--participants must be at most {}", wagu::MAX_SLOT);
    }
    if !(a.presence_hz >= 0.0 && a.presence_hz <= 1000.0) {
        bail!("--presence-hz must be 0 to 1000");
    }
    if !(a.chat_per_min >= 0.0 && a.chat_per_min <= 60_000.0) {
        bail!("--chat-per-min must be 0 to 60000");
    }
    validate_timing(&a.common)
}

pub async fn run(args: RoomsArgs) -> anyhow::Result<RunResult> {
    validate(&args)?;
    let c = &args.common;
    let planned = planned(&args);
    let (mut run, shared) = crate::scenario::start(c, planned).await?;
    let stats = shared.stats.clone();
    let (ctx, workers) = launch(&args, shared, &run);
    run.ramp(workers, planned as u64).await;
    let done = run.finish(|| {}).await;
    let detail = Detail::Rooms(detail(&args, &ctx, done.window));
    let delivered = stats.window(C::PresenceUpdatesIn) + stats.window(C::ChatIn);
    Ok(done.result(c, &stats, planned, detail, delivered))
}

/// Connections the workload opens.
pub fn planned(args: &RoomsArgs) -> usize {
    args.rooms * args.participants
}

/// Starts the ramp's room-creation workers (the caller hands them to [`Run::ramp`]).
pub fn launch(
    args: &RoomsArgs,
    shared: Shared,
    run: &Run,
) -> (Arc<Ctx>, Vec<tokio::task::JoinHandle<()>>) {
    let c = &args.common;
    let planned = planned(args);
    let Shared {
        stats,
        tasks,
        dialer,
        cluster,
        shutdown,
    } = shared;

    let presence_period =
        (args.presence_hz > 0.0).then(|| Duration::from_secs_f64(1.0 / args.presence_hz));
    let presence_ring = (args.presence_hz * PRESENCE_LOG_SECS).ceil() as usize;
    let presence_ring = presence_ring.max(16).next_power_of_two();
    let chat_period =
        (args.chat_per_min > 0.0).then(|| Duration::from_secs_f64(60.0 / args.chat_per_min));
    let ctx = Arc::new(Ctx {
        stats,
        tasks,
        dialer,
        cluster,
        created: AtomicU64::new(0),
        participants: args.participants,
        presence_period,
        chat_period,
        presence_ring,
        presence_late_us: presence_period.map_or(0, |p| p.as_micros() as u64)
            * presence_ring as u64,
        chat_late_us: chat_period.map_or(0, |p| p.as_micros() as u64 * CHAT_LOG as u64),
        shutdown,
    });

    tracing::info!(
        "ramp: {} rooms × {} participants = {planned} connections over {:.0} s",
        args.rooms,
        args.participants,
        c.ramp_secs
    );
    let ramp = Duration::from_secs_f64(c.ramp_secs);
    let next_room = Arc::new(AtomicUsize::new(0));
    let t0 = run.started();
    let workers = (0..c.create_concurrency.clamp(1, args.rooms))
        .map(|_| {
            tokio::spawn(create_rooms(
                ctx.clone(),
                next_room.clone(),
                args.rooms,
                ramp,
                t0,
            ))
        })
        .collect();
    (ctx, workers)
}

/// The workload's figures once the run is over (`window`: the measured seconds).
pub fn detail(args: &RoomsArgs, ctx: &Ctx, window: f64) -> RoomsDetail {
    let stats = &*ctx.stats;
    let planned = planned(args);
    let friends = args.participants - 1;
    let target_presence = planned as f64 * args.presence_hz;
    let presence = report::flow(
        stats,
        window,
        &report::PRESENCE,
        target_presence,
        ctx.presence_late_us as f64 / 1000.0,
        friends,
    );
    let chat = ctx.chat_period.map(|_| {
        report::flow(
            stats,
            window,
            &report::CHAT,
            planned as f64 * args.chat_per_min / 60.0,
            ctx.chat_late_us as f64 / 1000.0,
            friends,
        )
    });
    RoomsDetail {
        rooms: args.rooms,
        rooms_created: ctx.created.load(Ordering::Relaxed),
        participants: args.participants,
        presence_hz: args.presence_hz,
        chat_per_min: args.chat_per_min,
        presence,
        presence_fanout_ms: Latency::from_hist(&stats.merged(H::PresenceFanout)),
        chat,
    }
}

/// One room-creation worker: takes the next room index, waits for its slot in the ramp,
/// sets it up (over a kept-alive HTTP connection for Wagu) and starts its clients.
async fn create_rooms(
    ctx: Arc<Ctx>,
    next: Arc<AtomicUsize>,
    rooms: usize,
    ramp: Duration,
    t0: tokio::time::Instant,
) {
    // Per node: a kept-alive HTTP connection, and its WebSocket host resolved once.
    let nodes = ctx.cluster.nodes.len();
    let mut https: Vec<Option<HttpClient>> = (0..nodes).map(|_| None).collect();
    let mut resolveds: Vec<Option<(String, SocketAddr)>> = vec![None; nodes];
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
        let home = ctx.cluster.home(index);
        let node = &ctx.cluster.nodes[home];
        let http = https[home].get_or_insert_with(|| HttpClient::new(node.base.clone()));
        let resolved = &mut resolveds[home];
        let access = match node.driver.open_room(http, index).await {
            Ok(a) => a,
            Err(why) => {
                fail(why);
                continue;
            }
        };
        // Every room of a node has the same WebSocket host: resolve it once.
        let host = access.ws_url.split('?').next().unwrap_or_default();
        let addr = match &*resolved {
            Some((url, addr)) if url == host => *addr,
            _ => match resolve_ws(&access.ws_url).await {
                Ok(addr) => {
                    *resolved = Some((host.to_string(), addr));
                    addr
                }
                Err(e) => {
                    fail(format!("{e:#}"));
                    continue;
                }
            },
        };
        ctx.stats.created.fetch_add(1, Ordering::Relaxed);
        ctx.created.fetch_add(1, Ordering::Relaxed);
        let guard = ctx.tasks.enter();
        tokio::spawn(start_room(ctx.clone(), index, access, addr, guard));
    }
}

async fn start_room(
    ctx: Arc<Ctx>,
    index: usize,
    access: RoomAccess,
    addr: SocketAddr,
    _guard: TaskGuard,
) {
    let m = ctx.participants;
    let room = Arc::new(Room {
        index,
        access,
        addr,
        presence: SendLog::new(m, ctx.presence_ring),
        chat: SendLog::new(if ctx.chat_period.is_some() { m } else { 0 }, CHAT_LOG),
    });
    // Slot 0 first, so that on Wagu it really is the room's host; the others follow once it is
    // in, or once it failed (they can still join a room without its host).
    let (tx, rx) = oneshot::channel();
    let guard = ctx.tasks.enter();
    tokio::spawn(client(ctx.clone(), room.clone(), 0, Some(tx), guard));
    let _ = rx.await;
    for slot in 1..m {
        let guard = ctx.tasks.enter();
        tokio::spawn(client(ctx.clone(), room.clone(), slot, None, guard));
    }
}

/// One participant from connect to close.
async fn client(
    ctx: Arc<Ctx>,
    room: Arc<Room>,
    slot: usize,
    joined: Option<oneshot::Sender<()>>,
    _guard: TaskGuard,
) {
    let name = format!("lt{}-{}", room.index, slot);
    let steps = ctx.cluster.driver().opening(&room.access, slot, name);
    let stats = &*ctx.stats;
    let Some(ws) = open_client(
        stats,
        &ctx.shutdown,
        &ctx.dialer,
        &ctx.cluster,
        &room.access.ws_url,
        room.addr,
        steps,
        joined,
    )
    .await
    else {
        return;
    };
    session(&ctx, &room, slot, ws).await;
    stats.open.fetch_sub(1, Ordering::Relaxed);
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
    let mut presence = ctx.presence_period.map(|p| every(p, 0));
    let mut chat = ctx.chat_period.map(|p| every(p, 0xC4A7));
    let mut last_seen = vec![0u64; ctx.participants];
    // The last chat counter seen from each friend (for the gap count).
    let mut chat_seen = vec![
        0u64;
        if ctx.chat_period.is_some() {
            ctx.participants
        } else {
            0
        }
    ];
    let mut encoder = ctx.cluster.driver().encoder(&room.access);
    let (mut presence_n, mut chat_n) = (0u64, 0u64);
    // One wait for the stop, pinned for the whole session: a fresh `changed()` per frame would
    // register with (and leave) the run's one shutdown channel for every frame read or sent.
    let mut stop_rx = ctx.shutdown.clone();
    let stop = stop_rx.changed();
    tokio::pin!(stop);
    let shutdown = &ctx.shutdown;
    let failed = |shutdown: &watch::Receiver<bool>| {
        if !*shutdown.borrow() {
            stats.errors.close(ABNORMAL);
        }
    };
    if *shutdown.borrow() {
        // The run stopped while this client was joining.
        goodbye(&mut ws).await;
        return;
    }
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => {
                goodbye(&mut ws).await;
                return;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let pings = on_text(ctx, room, slot, &t, &mut last_seen, &mut chat_seen);
                    for _ in 0..pings {
                        if send(stats, &mut ws, ctx.cluster.driver().pong().to_string()).await.is_err() {
                            failed(shutdown);
                            return;
                        }
                    }
                }
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
                    failed(shutdown);
                    return;
                }
            },
            _ = tick(&mut presence) => {
                presence_n += 1;
                let frame = encoder.presence(slot, presence_n);
                // Stamped just before the write: the latency covers our send path too, as a
                // real client's would.
                room.presence.record(slot, presence_n, stats.now_us());
                if send(stats, &mut ws, frame).await.is_err() {
                    failed(shutdown);
                    return;
                }
                stats.add(C::PresenceSent, 1);
            }
            _ = tick(&mut chat) => {
                chat_n += 1;
                let frame = encoder.chat(slot, chat_n);
                room.chat.record(slot, chat_n, stats.now_us());
                if send(stats, &mut ws, frame).await.is_err() {
                    failed(shutdown);
                    return;
                }
                stats.add(C::ChatSent, 1);
            }
        }
    }
}

/// Handles one text frame of a joined client; returns how many application pings it carried
/// (each needs a pong).
fn on_text(
    ctx: &Ctx,
    room: &Room,
    slot: usize,
    text: &str,
    last_seen: &mut [u64],
    chat_seen: &mut [u64],
) -> usize {
    let stats = &*ctx.stats;
    stats.add(C::MsgsIn, 1);
    stats.add(C::BytesIn, text.len() as u64);
    let mut pings = 0;
    ctx.cluster
        .driver()
        .classify(text, |incoming| match incoming {
            Incoming::Presence { at_ms, updates } => {
                on_presence(ctx, room, slot, at_ms, &updates, last_seen)
            }
            Incoming::Chat { from, counter } => {
                if from == slot {
                    return;
                }
                let Some(lat) =
                    stats.chat_received(&room.chat, ctx.chat_late_us, chat_seen, from, counter)
                else {
                    return;
                };
                if stats.measuring() {
                    stats.with_hist(H::Chat, |h| record(h, lat));
                }
            }
            Incoming::Ack(_) => stats.add(C::AcksIn, 1),
            Incoming::Ping => pings += 1,
            Incoming::Error(code) => stats.errors.error_frame(&code),
            Incoming::Undecodable => stats.errors.error_frame("(undecodable frame)"),
            Incoming::Welcome | Incoming::Other => {}
        });
    pings
}

/// Measures one presence message: each friend's update not seen before, from its send.
fn on_presence(
    ctx: &Ctx,
    room: &Room,
    slot: usize,
    at_ms: Option<u64>,
    updates: &[(usize, u64)],
    last_seen: &mut [u64],
) {
    let stats = &*ctx.stats;
    stats.add(C::PresenceFramesIn, 1);
    let now = stats.now_us();
    let measuring = stats.measuring();
    if let (Some(at), true) = (at_ms, measuring) {
        let lat = since_stamp_us(at);
        stats.with_hist(H::PresenceFanout, |h| record(h, lat));
    }
    // A batch holds at most one update per participant: a fixed array, no allocation.
    let mut lats = [0u64; 64];
    let (mut n, mut fresh, mut late, mut gaps) = (0, 0, 0, 0u64);
    for &(from, counter) in updates {
        // Own echo, a sender outside this room's slots, or an update seen before.
        if from == slot || from >= last_seen.len() || counter <= last_seen[from] {
            continue;
        }
        // Counters this receiver skipped since the last one it saw from this friend (not at
        // the first sighting: a receiver that joined late never saw the earlier ones).
        if last_seen[from] != 0 {
            gaps += counter - last_seen[from] - 1;
        }
        last_seen[from] = counter;
        fresh += 1;
        let lat = match room.presence.lookup(from, counter) {
            Lookup::Sent(t) => now.saturating_sub(t),
            Lookup::Late => {
                late += 1;
                ctx.presence_late_us
            }
            Lookup::Unknown => continue,
        };
        if n == lats.len() {
            // More than 64 friends in one batch: record what we have and go on.
            record_all(stats, &lats[..n], measuring);
            n = 0;
        }
        lats[n] = lat;
        n += 1;
    }
    record_all(stats, &lats[..n], measuring);
    stats.add(C::PresenceUpdatesIn, fresh);
    if gaps > 0 {
        stats.add(C::PresenceGaps, gaps);
    }
    if late > 0 {
        stats.add(C::PresenceLate, late);
    }
}

/// One lock per histogram for a whole batch; the window histogram only while measuring.
fn record_all(stats: &Stats, lats: &[u64], measuring: bool) {
    if lats.is_empty() {
        return;
    }
    if measuring {
        stats.with_hist(H::Presence, |h| lats.iter().for_each(|&l| record(h, l)));
    }
    stats.with_hist(H::Recent, |h| lats.iter().for_each(|&l| record(h, l)));
}
