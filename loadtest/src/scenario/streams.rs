//! The `streams` scenario: S live streams, each with one streamer and V viewers, K
//! of whom chat; every other client of the stream times each message from its send to its
//! receipt. The benchmark is one stream of 10,000 viewers with chat at 20 messages a
//! second, delivered to all with p99 under 200 ms.
//!
//! Per stream: `POST /api/streams` (title, place id, location), then the streamer opens its
//! session (`join_stream` with the streamer key, answered by `stream_welcome` and `ack`). All
//! streams are created first, each with its streamer in; then the S × V viewers join (the same
//! `join_stream` without a key), evenly spread over the ramp and interleaved across streams,
//! so a stream fills the way a popular one does: a steady stream of arrivals into a live
//! broadcast.
//!
//! Chat starts with the warmup, so the window sees steady state and the joins see an empty
//! chat tail. Chatter `j` of a stream is viewer `⌊j·V/K⌋` (spread evenly over the audience)
//! and sends a chat every K/R seconds, from a start jittered over one period, with the marker
//! `lt <j> <counter>` as its text (see [`crate::target::wagu`]); the send time goes into the
//! stream's [`SendLog`]. Every client of the stream — the streamer and all viewers — peeks the
//! type of each frame it reads and parses only chat frames (the marker and the server's `at`
//! stamp), skips its own echo, and records `now − sent` (end to end) and `now − at` (the
//! fan-out alone). `viewers` frames are only counted; the streamer also reads their count, so
//! the result shows whether the server counted the whole audience. A message is expected V
//! times (V + 1 clients, less its sender).
//!
//! On Centrifugo and the bare relay (the side-by-side baseline of `deploy/bench.sh`) a stream is
//! one room of that target with V + 1 members — a channel `room:<n>`, or `?room=<n>` on the
//! relay — and the chatters send the same marked chat frames as in a room (Centrifugo: as a
//! `publish`); every member reads each message. Neither stamps its messages, so there is no
//! fan-out figure there (end to end is the fan-out: they forward each message as it comes).

use crate::cli::StreamsArgs;
use crate::http::HttpClient;
use crate::net::{Dialer, Ws, resolve_ws};
use crate::report::{self, Detail, Latency, RunResult, StreamsDetail};
use crate::scenario::cluster::Cluster;
use crate::scenario::{
    ABNORMAL, Shared, close_code, goodbye, open_client, send, tick, validate_timing,
};
use crate::stats::{C, H, SendLog, Stats, TaskGuard, Tasks, record, since_stamp_us, unit_jitter};
use crate::target::wagu::{self, StreamFrame};
use crate::target::{Incoming, RoomAccess, Step, Target};
use anyhow::bail;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval_at};
use tokio_tungstenite::tungstenite::Message;
use wagu_proto::ids::{HostKey, StreamId};

/// How far back the chat send log reaches (at least 16 messages per chatter): anything older
/// counts as late.
const CHAT_LOG_SECS: f64 = 10.0;
/// What Wagu allows one connection by default (`rate.chat_per_sec`).
const SERVER_CHAT_RATE: f64 = 5.0;

/// What every client of the run shares.
struct Ctx {
    stats: Arc<Stats>,
    tasks: Arc<Tasks>,
    dialer: Arc<Dialer>,
    cluster: Arc<Cluster>,
    /// Streams this workload created (the run's `created` also counts rooms in `mixed`).
    created: AtomicU64,
    viewers: usize,
    chatters: usize,
    /// Between two chats of one chatter; `None`: nobody chats.
    chat_period: Option<Duration>,
    chat_ring: usize,
    /// Value recorded for a chat older than the send log (a lower bound), µs.
    chat_late_us: u64,
    /// Turns true when the warmup starts: the chatters begin.
    chat_on: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
    /// Every stream created, for the final viewer count.
    streams: Mutex<Vec<Arc<LiveStream>>>,
}

/// One stream as its clients see it.
struct LiveStream {
    index: usize,
    access: Access,
    ws_url: String,
    addr: SocketAddr,
    chat: SendLog,
    /// The last viewer count the streamer read.
    count_seen: AtomicU64,
}

/// How a stream's clients join it.
enum Access {
    /// A Wagu live stream (`join_stream`).
    Wagu { id: StreamId, streamer_key: HostKey },
    /// One room of another target, every member in it.
    Room(RoomAccess),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Streamer,
    /// The viewer's index in its stream's audience.
    Viewer(usize),
}

pub fn validate(a: &StreamsArgs) -> anyhow::Result<()> {
    if a.streams == 0 || a.viewers == 0 {
        bail!("--streams and --viewers must be at least 1");
    }
    if !(a.chat_per_sec >= 0.0 && a.chat_per_sec <= 100_000.0) {
        bail!("--chat-per-sec must be 0 to 100000");
    }
    if a.chat_per_sec > 0.0 && !(1..=a.viewers).contains(&a.chatters) {
        bail!(
            "--chatters must be 1 to --viewers ({}) when chat is on",
            a.viewers
        );
    }
    if a.common.target == Target::Wagu
        && a.chat_per_sec > 0.0
        && a.chat_per_sec / a.chatters as f64 > SERVER_CHAT_RATE
    {
        tracing::warn!(
            "each chatter sends {:.1} chats/s, above Wagu's default limit of {SERVER_CHAT_RATE}/s \
             per connection: expect rate_limited errors unless the server allows more \
             (raise --chatters)",
            a.chat_per_sec / a.chatters as f64
        );
    }
    validate_timing(&a.common)
}

/// The chatter index of viewer `v` when `chatters` are spread evenly over `viewers` (chatter
/// `j` is viewer `⌊j·viewers/chatters⌋`), or `None` for a viewer who only watches.
fn chatter_of(v: usize, viewers: usize, chatters: usize) -> Option<usize> {
    if chatters == 0 || viewers == 0 || v >= viewers {
        return None;
    }
    let (v, n, k) = (v as u128, viewers as u128, chatters as u128);
    // The smallest j with j·n/k ≥ v; it is v's chatter if it maps back onto v.
    let j = (v * k).div_ceil(n);
    (j < k && j * n / k == v).then_some(j as usize)
}

pub async fn run(args: StreamsArgs) -> anyhow::Result<RunResult> {
    validate(&args)?;
    let c = &args.common;
    let planned = planned(&args);
    let (mut run, shared) = crate::scenario::start(c, planned).await?;
    let stats = shared.stats.clone();
    let (live, workers) = launch(&args, shared);
    run.ramp(workers, planned as u64).await;
    let done = run.finish(|| live.chat_on()).await;
    let detail = Detail::Streams(live.detail(&args, done.window));
    let delivered = stats.window(C::ChatIn);
    Ok(done.result(c, &stats, planned, detail, delivered))
}

/// Connections the workload opens.
pub fn planned(args: &StreamsArgs) -> usize {
    args.streams * (args.viewers + 1)
}

/// A launched streams workload.
pub struct Launched {
    ctx: Arc<Ctx>,
    chat_tx: watch::Sender<bool>,
    chatters: usize,
    per_chatter: f64,
}

impl Launched {
    /// Turns the chatters on (as the warmup starts).
    pub fn chat_on(&self) {
        if self.ctx.chat_period.is_some() {
            tracing::info!(
                "chat on: {} chatters per stream, {:.2} messages/s each",
                self.chatters,
                self.per_chatter
            );
        }
        let _ = self.chat_tx.send(true);
    }

    /// The workload's figures once the run is over (`window`: the measured seconds).
    pub fn detail(&self, args: &StreamsArgs, window: f64) -> StreamsDetail {
        let ctx = &*self.ctx;
        let stats = &*ctx.stats;
        let chat = report::flow(
            stats,
            window,
            &report::CHAT,
            if ctx.chat_period.is_some() {
                args.streams as f64 * args.chat_per_sec
            } else {
                0.0
            },
            ctx.chat_late_us as f64 / 1000.0,
            args.viewers,
        );
        let viewer_count_seen = ctx
            .streams
            .lock()
            .expect("streams lock")
            .iter()
            .map(|s| s.count_seen.load(Ordering::Relaxed))
            .sum();
        StreamsDetail {
            streams: args.streams,
            streams_created: ctx.created.load(Ordering::Relaxed),
            viewers: args.viewers,
            chatters: args.chatters,
            chat_per_sec: args.chat_per_sec,
            chat,
            chat_fanout_ms: Latency::from_hist(&stats.merged(H::ChatFanout)),
            viewers_events: stats.total(C::ViewersIn),
            viewers_events_per_sec: report::rate(stats.window(C::ViewersIn), window),
            viewer_count_seen,
        }
    }
}

/// Starts the ramp (stream creation, then the viewers); the caller hands the workers to
/// [`crate::scenario::Run::ramp`] and calls [`Launched::chat_on`] as the warmup starts.
pub fn launch(args: &StreamsArgs, shared: Shared) -> (Launched, Vec<JoinHandle<()>>) {
    let c = &args.common;
    let planned = planned(args);
    let Shared {
        stats,
        tasks,
        dialer,
        cluster,
        shutdown,
    } = shared;

    let per_chatter = if args.chatters > 0 {
        args.chat_per_sec / args.chatters as f64
    } else {
        0.0
    };
    let chat_period = (per_chatter > 0.0).then(|| Duration::from_secs_f64(1.0 / per_chatter));
    let chat_ring = ((per_chatter * CHAT_LOG_SECS).ceil() as usize)
        .max(16)
        .next_power_of_two();
    let (chat_tx, chat_on) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        stats,
        tasks,
        dialer,
        cluster,
        created: AtomicU64::new(0),
        viewers: args.viewers,
        chatters: args.chatters,
        chat_period,
        chat_ring,
        chat_late_us: chat_period.map_or(0, |p| p.as_micros() as u64 * chat_ring as u64),
        chat_on,
        shutdown,
        streams: Mutex::new(Vec::new()),
    });

    tracing::info!(
        "ramp: {} streams × (1 streamer + {} viewers) = {planned} connections; viewers join \
         over {:.0} s",
        args.streams,
        args.viewers,
        c.ramp_secs
    );
    let ramp = tokio::spawn(fill(
        ctx.clone(),
        args.streams,
        c.create_concurrency,
        Duration::from_secs_f64(c.ramp_secs),
    ));
    let live = Launched {
        ctx,
        chat_tx,
        chatters: args.chatters,
        per_chatter,
    };
    (live, vec![ramp])
}

/// The ramp: creates every stream (its streamer in), then starts the viewers, evenly spread
/// over `ramp` and interleaved across streams.
async fn fill(ctx: Arc<Ctx>, count: usize, concurrency: usize, ramp: Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency.clamp(1, count))
        .map(|_| tokio::spawn(create_streams(ctx.clone(), next.clone(), count)))
        .collect();
    let mut streams = Vec::new();
    for w in workers {
        if let Ok(mut s) = w.await {
            streams.append(&mut s);
        }
    }
    if streams.is_empty() {
        return;
    }
    streams.sort_by_key(|s| s.index);
    ctx.streams
        .lock()
        .expect("streams lock")
        .extend(streams.iter().cloned());
    let total = streams.len() * ctx.viewers;
    let t0 = tokio::time::Instant::now();
    for k in 0..total {
        tokio::time::sleep_until(t0 + ramp.mul_f64(k as f64 / total as f64)).await;
        if *ctx.shutdown.borrow() {
            return;
        }
        let stream = streams[k % streams.len()].clone();
        let guard = ctx.tasks.enter();
        tokio::spawn(client(
            ctx.clone(),
            stream,
            Role::Viewer(k / streams.len()),
            None,
            guard,
        ));
    }
}

/// One stream-creation worker: takes the next stream index, creates it over a kept-alive HTTP
/// connection, and lets its streamer in before taking the next.
async fn create_streams(
    ctx: Arc<Ctx>,
    next: Arc<AtomicUsize>,
    count: usize,
) -> Vec<Arc<LiveStream>> {
    // Per node: a kept-alive HTTP connection, and its WebSocket URL resolved once.
    let nodes = ctx.cluster.nodes.len();
    let mut https: Vec<Option<HttpClient>> = (0..nodes).map(|_| None).collect();
    let mut resolveds: Vec<Option<(String, SocketAddr)>> = vec![None; nodes];
    let mut out = Vec::new();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= count || *ctx.shutdown.borrow() {
            return out;
        }
        let fail = |why: String| {
            ctx.stats.errors.room_create(why);
            ctx.stats
                .settled
                .fetch_add(ctx.viewers as u64 + 1, Ordering::Relaxed);
        };
        let home = ctx.cluster.home(index);
        let http = https[home]
            .get_or_insert_with(|| HttpClient::new(ctx.cluster.nodes[home].base.clone()));
        let resolved = &mut resolveds[home];
        let driver = ctx.cluster.driver();
        let created = if driver.target == Target::Wagu {
            wagu::create_stream(http, index).await.map(|c| {
                tracing::debug!(stream = %c.stream_id, index, "stream created");
                let access = Access::Wagu {
                    id: c.stream_id,
                    streamer_key: c.streamer_key,
                };
                (access, c.ws_url)
            })
        } else {
            driver
                .open_room(http, index)
                .await
                .map(|r| (r.ws_url.clone(), r))
                .map(|(url, r)| (Access::Room(r), url))
        };
        let (access, ws_url) = match created {
            Ok(c) => c,
            Err(why) => {
                fail(why);
                continue;
            }
        };
        // Every stream of a node has the same WebSocket host: resolve it once.
        let host = ws_url.split('?').next().unwrap_or_default().to_string();
        let addr = match &*resolved {
            Some((url, addr)) if *url == host => *addr,
            _ => match resolve_ws(&ws_url).await {
                Ok(addr) => {
                    *resolved = Some((host, addr));
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
        let stream = Arc::new(LiveStream {
            index,
            access,
            ws_url,
            addr,
            chat: SendLog::new(
                if ctx.chat_period.is_some() {
                    ctx.chatters
                } else {
                    0
                },
                ctx.chat_ring,
            ),
            count_seen: AtomicU64::new(0),
        });
        // The streamer first: viewers then join a live stream with its streamer online, as
        // they would. A streamer that fails to join does not stop its viewers.
        let (tx, rx) = oneshot::channel();
        let guard = ctx.tasks.enter();
        tokio::spawn(client(
            ctx.clone(),
            stream.clone(),
            Role::Streamer,
            Some(tx),
            guard,
        ));
        let _ = rx.await;
        out.push(stream);
    }
}

/// One client of a stream from connect to close.
async fn client(
    ctx: Arc<Ctx>,
    stream: Arc<LiveStream>,
    role: Role,
    joined: Option<oneshot::Sender<()>>,
    _guard: TaskGuard,
) {
    let steps = match (&stream.access, role) {
        (Access::Wagu { id, streamer_key }, Role::Streamer) => vec![join_step(wagu::join_stream(
            id,
            format!("lt{}-streamer", stream.index),
            Some(streamer_key.clone()),
            None,
        ))],
        // A device key as apps send (bans apply to it); unique per viewer of the run.
        (Access::Wagu { id, .. }, Role::Viewer(v)) => vec![join_step(wagu::join_stream(
            id,
            format!("lt{}-v{v}", stream.index),
            None,
            Some(format!("lt-{}-{v}", stream.index)),
        ))],
        (Access::Room(access), Role::Streamer) => {
            ctx.cluster
                .driver()
                .opening(access, 0, format!("lt{}-streamer", stream.index))
        }
        (Access::Room(access), Role::Viewer(v)) => {
            ctx.cluster
                .driver()
                .opening(access, v + 1, format!("lt{}-v{v}", stream.index))
        }
    };
    let stats = &*ctx.stats;
    let Some(ws) = open_client(
        stats,
        &ctx.shutdown,
        &ctx.dialer,
        &ctx.cluster,
        &stream.ws_url,
        stream.addr,
        steps,
        joined,
    )
    .await
    else {
        return;
    };
    session(&ctx, &stream, role, ws).await;
    stats.open.fetch_sub(1, Ordering::Relaxed);
}

fn join_step(frame: String) -> Step {
    Step {
        frame,
        id: wagu::STREAM_JOIN_ID,
        needs_welcome: true,
        what: "join_stream",
    }
}

/// A joined client: reads and measures the stream's chat (and, as a chatter, sends its share
/// once the warmup starts), until the run stops or the server ends the connection.
async fn session(ctx: &Ctx, stream: &LiveStream, role: Role, mut ws: Ws) {
    let stats = &*ctx.stats;
    let me = match role {
        Role::Viewer(v) => chatter_of(v, ctx.viewers, ctx.chatters),
        Role::Streamer => None,
    };
    let mut chat_on = ctx.chat_on.clone();
    // Waiting for the warmup to start chatting; only a chatter ever does.
    let mut waiting = me.is_some() && ctx.chat_period.is_some();
    let mut chat = None;
    let start_chat = || {
        let period = ctx.chat_period?;
        let seed = ((stream.index as u64) << 24) | me? as u64;
        // Skip, not burst: a harness that fell behind must not catch up in a flood the server
        // would then be blamed for. The report compares sent with target rates.
        let now = tokio::time::Instant::now();
        let mut i = interval_at(now + period.mul_f64(unit_jitter(seed ^ 0xC4A7)), period);
        i.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Some(i)
    };
    if waiting && *chat_on.borrow_and_update() {
        chat = start_chat();
        waiting = false;
    }
    let (mut next_id, mut chat_n) = (wagu::STREAM_FIRST_FREE_ID, 0u64);
    // The last counter seen from each chatter (for the gap count).
    let mut seen = vec![
        0u64;
        if ctx.chat_period.is_some() {
            ctx.chatters
        } else {
            0
        }
    ];
    // Other targets: their own chat frames (Centrifugo wraps it in a `publish`).
    let mut encoder = match &stream.access {
        Access::Room(access) => Some(ctx.cluster.driver().encoder(access)),
        Access::Wagu { .. } => None,
    };
    // One wait for the stop, pinned for the whole session: a fresh `changed()` per frame would
    // register with (and leave) the run's one shutdown channel 200,000 times a second across
    // threads, which showed in profiles of the 10,000-viewer run.
    let mut shutdown = ctx.shutdown.clone();
    let stop = shutdown.changed();
    tokio::pin!(stop);
    let stopping = || *ctx.shutdown.borrow();
    let failed = || {
        if !stopping() {
            stats.errors.close(ABNORMAL);
        }
    };
    if stopping() {
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
                    if encoder.is_none() {
                        on_text(ctx, stream, role, me, &t, &mut seen);
                    } else {
                        let pings = on_text_generic(ctx, stream, me, &t, &mut seen);
                        for _ in 0..pings {
                            if send(stats, &mut ws, ctx.cluster.driver().pong().to_string()).await.is_err() {
                                failed();
                                return;
                            }
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
                    if !stopping() {
                        stats.errors.close(close_code(f));
                    }
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    failed();
                    return;
                }
            },
            changed = chat_on.changed(), if waiting => match changed {
                Ok(()) if *chat_on.borrow_and_update() => {
                    chat = start_chat();
                    waiting = false;
                }
                Ok(()) => {}
                // The run is over before it chatted.
                Err(_) => waiting = false,
            },
            _ = tick(&mut chat) => {
                // Only a chatter has an interval.
                let slot = me.unwrap_or_default();
                chat_n += 1;
                let frame = match encoder.as_mut() {
                    Some(e) => e.chat(slot, chat_n),
                    None => {
                        next_id += 1;
                        wagu::chat(next_id - 1, slot, chat_n)
                    }
                };
                // Stamped just before the write: the latency covers our send path too.
                stream.chat.record(slot, chat_n, stats.now_us());
                if send(stats, &mut ws, frame).await.is_err() {
                    failed();
                    return;
                }
                stats.add(C::ChatSent, 1);
            }
        }
    }
}

/// Records one received chat marker (end to end; the fan-out too when the server stamped it).
#[allow(clippy::too_many_arguments)]
fn on_chat(
    ctx: &Ctx,
    stream: &LiveStream,
    me: Option<usize>,
    seen: &mut [u64],
    from: usize,
    counter: u64,
    at_ms: Option<u64>,
) {
    let stats = &*ctx.stats;
    // Our own message, echoed (before its ack, on Wagu): not a delivery.
    if me == Some(from) {
        return;
    }
    let Some(lat) = stats.chat_received(&stream.chat, ctx.chat_late_us, seen, from, counter) else {
        return;
    };
    if stats.measuring() {
        stats.with_hist(H::Chat, |h| record(h, lat));
        if let Some(at_ms) = at_ms {
            let fanout = since_stamp_us(at_ms);
            stats.with_hist(H::ChatFanout, |h| record(h, fanout));
        }
    }
    stats.with_hist(H::Recent, |h| record(h, lat));
}

/// Handles one text frame of a stream client on Centrifugo or the bare relay; returns how many
/// application pings it carried (each needs a pong).
fn on_text_generic(
    ctx: &Ctx,
    stream: &LiveStream,
    me: Option<usize>,
    text: &str,
    seen: &mut [u64],
) -> usize {
    let stats = &*ctx.stats;
    stats.add(C::MsgsIn, 1);
    stats.add(C::BytesIn, text.len() as u64);
    let mut pings = 0;
    ctx.cluster.driver().classify(text, |i| match i {
        Incoming::Chat { from, counter } => on_chat(ctx, stream, me, seen, from, counter, None),
        Incoming::Ack(_) => stats.add(C::AcksIn, 1),
        Incoming::Ping => pings += 1,
        Incoming::Error(code) => stats.errors.error_frame(&code),
        Incoming::Undecodable => stats.errors.error_frame("(undecodable frame)"),
        Incoming::Presence { .. } | Incoming::Welcome | Incoming::Other => {}
    });
    pings
}

/// Handles one text frame of a joined stream client.
fn on_text(
    ctx: &Ctx,
    stream: &LiveStream,
    role: Role,
    me: Option<usize>,
    text: &str,
    seen: &mut [u64],
) {
    let stats = &*ctx.stats;
    stats.add(C::MsgsIn, 1);
    stats.add(C::BytesIn, text.len() as u64);
    match wagu::classify_stream(text) {
        StreamFrame::Chat {
            from,
            counter,
            at_ms,
        } => on_chat(ctx, stream, me, seen, from, counter, Some(at_ms)),
        StreamFrame::Viewers => {
            stats.add(C::ViewersIn, 1);
            if role == Role::Streamer
                && let Some(n) = wagu::viewers_count(text)
            {
                stream.count_seen.store(n, Ordering::Relaxed);
            }
        }
        StreamFrame::Ack(_) => stats.add(C::AcksIn, 1),
        StreamFrame::Error(code) => stats.errors.error_frame(code),
        StreamFrame::Undecodable => stats.errors.error_frame("(undecodable frame)"),
        StreamFrame::ForeignChat | StreamFrame::Welcome | StreamFrame::Other => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn chatters_are_spread_evenly_and_found_again() {
        for (viewers, chatters) in [(10_000, 10), (1000, 7), (10, 10), (5, 1), (3, 2)] {
            let found: Vec<(usize, usize)> = (0..viewers)
                .filter_map(|v| chatter_of(v, viewers, chatters).map(|j| (j, v)))
                .collect();
            let want: Vec<(usize, usize)> =
                (0..chatters).map(|j| (j, j * viewers / chatters)).collect();
            assert_eq!(found, want, "{viewers} viewers, {chatters} chatters");
        }
        assert_eq!(chatter_of(0, 10_000, 10), Some(0));
        assert_eq!(chatter_of(1000, 10_000, 10), Some(1));
        assert_eq!(chatter_of(999, 10_000, 10), None);
        assert_eq!(chatter_of(3, 10, 0), None);
        assert_eq!(chatter_of(10, 10, 10), None, "out of range");
    }

    fn parse(args: &[&str]) -> StreamsArgs {
        let mut argv = vec!["wagu-loadtest", "streams"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Streams(a) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_and_validates_the_flags() {
        let a = parse(&[
            "--url",
            "http://127.0.0.1:18300",
            "--streams",
            "2",
            "--viewers",
            "10000",
            "--chat-per-sec",
            "20",
            "--chatters",
            "10",
            "--slo-p99-ms",
            "200",
        ]);
        assert_eq!((a.streams, a.viewers, a.chatters), (2, 10_000, 10));
        assert_eq!(
            (a.chat_per_sec, a.common.slo.slo_p99_ms),
            (20.0, Some(200.0))
        );
        assert!(validate(&a).is_ok());
        let d = parse(&[]);
        assert_eq!(
            (d.streams, d.viewers, d.chatters, d.chat_per_sec),
            (1, 1000, 10, 20.0)
        );

        let refused = |args: &[&str]| validate(&parse(args)).unwrap_err().to_string();
        assert!(validate(&parse(&["--target", "centrifugo"])).is_ok());
        assert!(refused(&["--viewers", "0"]).contains("at least 1"));
        assert!(refused(&["--viewers", "5", "--chatters", "6"]).contains("--chatters"));
        assert!(refused(&["--chatters", "0"]).contains("--chatters"));
        assert!(refused(&["--chat-per-sec=-1"]).contains("--chat-per-sec"));
        assert!(refused(&["--duration-secs", "0"]).contains("--duration-secs"));
        // No chat: any number of chatters (even none) is fine.
        assert!(validate(&parse(&["--chat-per-sec", "0", "--chatters", "0"])).is_ok());
    }
}
