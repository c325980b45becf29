//! Scenarios, and what every scenario shares: the phase clock (ramp → warmup → steady-state
//! window → stop, any of it cut short by Ctrl-C), the once-a-second monitor that keeps the
//! timeline (throughput, latency of that second, server CPU and RSS), drives the progress bar
//! (or prints progress lines when there is no terminal) and samples the server process, and the
//! client plumbing (handshake, counted sends, clean close).
//!
//! A scenario (`rooms`, `streams`, `mixed`, `records`) calls [`start`] (file descriptors, probe,
//! dialer, monitor), sets up its clients during the ramp and hands the workers that do it to
//! [`Run::ramp`], then [`Run::finish`] runs warmup, window and stop, and [`Finished::result`]
//! builds the [`crate::report::RunResult`] around the scenario's own [`Detail`] from the shared
//! [`Stats`].

pub mod cluster;
pub mod failover;
pub mod media;
pub mod mixed;
pub mod records;
pub mod rooms;
pub mod streams;

use crate::cli::Common;
use crate::net::{Dialer, Ws};
use crate::report::Latency;
use crate::report::{self, Detail, ErrorReport, RunResult};
use crate::report::{Sample, ServerReport};
use crate::stats::{C, H, Phase, Stats, Tasks};
use crate::sys::ProcSampler;
use crate::target::{Driver, Incoming, Step};
use anyhow::{Context, bail};
use cluster::Cluster;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Interval;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Runs `fut` unless Ctrl-C comes first; `None` when interrupted.
pub async fn interruptible<T>(fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        r = fut => Some(r),
        _ = tokio::signal::ctrl_c() => {
            tracing::warn!("interrupted: ending the run and reporting what was measured");
            None
        }
    }
}

/// Warmup, then the measured window. Returns the window's real length and whether Ctrl-C cut
/// the run short.
pub async fn steady_state(stats: &Stats, warmup: Duration, window: Duration) -> (f64, bool) {
    stats.set_phase(Phase::Warmup);
    tracing::info!("warming up for {:.0} s", warmup.as_secs_f64());
    if interruptible(tokio::time::sleep(warmup)).await.is_none() {
        stats.set_phase(Phase::Stop);
        return (0.0, true);
    }
    tracing::info!("measuring for {:.0} s", window.as_secs_f64());
    stats.set_phase(Phase::Measure);
    let t = Instant::now();
    let interrupted = interruptible(tokio::time::sleep(window)).await.is_none();
    stats.set_phase(Phase::Stop);
    (t.elapsed().as_secs_f64(), interrupted)
}

/// Longest the opening frames (`hello` + `join`, `join_stream`, `connect` + `subscribe`) may
/// take once the socket is open.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// After the ramp, longest to wait for the last joins before warming up regardless.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At the end, longest to wait for every client to close.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Close code recorded when a connection ends without a close frame.
pub const ABNORMAL: u16 = 1006;

/// Checks the timing flags every scenario shares.
pub fn validate_timing(c: &Common) -> anyhow::Result<()> {
    for (name, v) in [
        ("--ramp-secs", c.ramp_secs),
        ("--warmup-secs", c.window.warmup_secs),
        ("--duration-secs", c.window.duration_secs),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{name} must be a non-negative number");
        }
    }
    if c.window.duration_secs <= 0.0 {
        bail!("--duration-secs must be above 0");
    }
    Ok(())
}

/// What every client of a run shares, whatever the scenario.
#[derive(Clone)]
pub struct Shared {
    pub stats: Arc<Stats>,
    pub tasks: Arc<Tasks>,
    pub dialer: Arc<Dialer>,
    /// The node(s) and their protocol.
    pub cluster: Arc<Cluster>,
    /// Turns true when the run stops: every client closes.
    pub shutdown: watch::Receiver<bool>,
}

/// The run as its scenario drives it: the clock, the monitor and the stop switch.
pub struct Run {
    /// The `--url` list, comma-joined, for the result.
    url: String,
    stats: Arc<Stats>,
    tasks: Arc<Tasks>,
    shutdown: watch::Sender<bool>,
    monitor: Monitor,
    started: tokio::time::Instant,
    ramp_done_secs: f64,
    interrupted: bool,
    common: Common,
}

/// Prepares a run of `planned` connections: raises the descriptor limit, checks the server
/// answers, picks the source addresses and starts the monitor. The ramp clock starts here.
pub async fn start(c: &Common, planned: usize) -> anyhow::Result<(Run, Shared)> {
    // One descriptor per connection, plus the HTTP clients, the runtime and some slack.
    let wanted = planned as u64 + c.create_concurrency as u64 + 256;
    let nofile = crate::sys::raise_nofile(wanted).context("raise RLIMIT_NOFILE")?;
    if nofile < wanted {
        bail!(
            "{planned} connections need about {wanted} file descriptors; the limit is {nofile} \
             (raise the hard limit: ulimit -Hn, or run as root)"
        );
    }

    let cluster =
        Arc::new(Cluster::connect(&c.url, c.target, &c.centrifugo_secret, c.spread_clients).await?);

    let stats = Arc::new(Stats::new());
    let tasks = Arc::new(Tasks::default());
    let (shutdown_tx, shutdown) = watch::channel(false);
    let dialer = Arc::new(Dialer::new(
        &c.source_ips,
        cluster.nodes[0].base.addr,
        planned,
    )?);
    let planned_secs = (c.ramp_secs + c.window.warmup_secs + c.window.duration_secs).ceil() as u64;
    let monitor = Monitor::spawn(
        stats.clone(),
        c.outputs.server_pid,
        c.progress.progress_secs,
        planned_secs,
        !c.progress.no_progress,
    )?;
    let run = Run {
        url: cluster.url_list(),
        stats: stats.clone(),
        tasks: tasks.clone(),
        shutdown: shutdown_tx,
        monitor,
        started: tokio::time::Instant::now(),
        ramp_done_secs: 0.0,
        interrupted: false,
        common: c.clone(),
    };
    let shared = Shared {
        stats,
        tasks,
        dialer,
        cluster,
        shutdown,
    };
    Ok((run, shared))
}

/// What a run measured, before the scenario adds its own figures.
pub struct Finished {
    url: String,
    pub interrupted: bool,
    /// Length of the steady-state window actually measured, seconds.
    pub window: f64,
    /// Connections still open when the window ended.
    pub open_at_end: i64,
    pub ramp_done_secs: f64,
    pub timeline: Vec<report::Sample>,
    pub server: Option<ServerReport>,
    pub harness_cpu_percent: Option<f64>,
}

impl Run {
    /// When the ramp started (the clock that spreads connections over `--ramp-secs`).
    pub fn started(&self) -> tokio::time::Instant {
        self.started
    }

    /// Waits for the ramp's `workers`, then (up to [`SETTLE_TIMEOUT`]) for all `planned`
    /// connections to settle. Ctrl-C cuts it short and the run goes straight to the report.
    pub async fn ramp(&mut self, workers: Vec<JoinHandle<()>>, planned: u64) {
        let stats = &self.stats;
        self.interrupted = interruptible(async {
            for w in workers {
                let _ = w.await;
            }
            // Ramp done: give the last joins time to land before the warmup.
            let settle = tokio::time::Instant::now() + SETTLE_TIMEOUT;
            while stats.settled.load(Ordering::Relaxed) < planned {
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
        self.ramp_done_secs = (self.started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
        tracing::info!(
            "ramp done in {:.1} s: {} created, {} connections joined",
            self.ramp_done_secs,
            stats.created.load(Ordering::Relaxed),
            stats.joined.load(Ordering::Relaxed)
        );
    }

    /// Warmup (`warmup_started` runs as it begins), the measured window, then every client
    /// closes and the monitor stops.
    pub async fn finish(self, warmup_started: impl FnOnce()) -> Finished {
        let c = &self.common;
        let stats = &*self.stats;
        let (mut window, mut interrupted) = (0.0, self.interrupted);
        if !interrupted {
            warmup_started();
            let warmup = Duration::from_secs_f64(c.window.warmup_secs);
            let (w, i) = steady_state(
                stats,
                warmup,
                Duration::from_secs_f64(c.window.duration_secs),
            )
            .await;
            window = w;
            interrupted = i;
        }
        stats.set_phase(Phase::Stop);
        let open_at_end = stats.open.load(Ordering::Relaxed);

        let _ = self.shutdown.send(true);
        if tokio::time::timeout(CLOSE_TIMEOUT, self.tasks.idle())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} clients still closing after {:?}; reporting anyway",
                self.tasks.live(),
                CLOSE_TIMEOUT
            );
        }
        let mon = self.monitor.finish().await;
        let mut server = mon.server;
        if let Some(s) = server.as_mut() {
            s.per_connection(open_at_end);
        }
        Finished {
            url: self.url,
            interrupted,
            window,
            open_at_end,
            ramp_done_secs: self.ramp_done_secs,
            timeline: mon.timeline,
            server,
            harness_cpu_percent: mon.harness_cpu_percent,
        }
    }
}

impl Finished {
    /// The result of `planned` connections around the scenario's `detail`, with the SLO
    /// judged. `delivered` counts the traced messages received during the window.
    pub fn result(
        self,
        c: &Common,
        stats: &Stats,
        planned: usize,
        detail: Detail,
        delivered: u64,
    ) -> RunResult {
        let mut result = RunResult {
            scenario: detail.scenario(),
            target: c.target,
            url: self.url,
            interrupted: self.interrupted,
            connections: planned as u64,
            connections_joined: stats.joined.load(Ordering::Relaxed),
            connections_open: self.open_at_end,
            ramp_secs: c.ramp_secs,
            ramp_done_secs: self.ramp_done_secs,
            warmup_secs: c.window.warmup_secs,
            duration_secs: (self.window * 100.0).round() / 100.0,
            detail,
            join_latency_ms: Latency::from_hist(&stats.merged(H::Join)),
            delivered_per_sec: report::rate(delivered, self.window),
            throughput: report::throughput(stats, self.window),
            errors: ErrorReport::from_stats(stats),
            server: self.server,
            harness_cpu_percent: self.harness_cpu_percent,
            slo: Default::default(),
            timeline: self.timeline,
        };
        result.slo = report::evaluate(
            &result,
            c.slo.slo_p99_ms,
            c.slo_fanout_p99_ms,
            c.slo.slo_max_errors,
        );
        result
    }
}

/// Sends one text frame and counts it.
pub async fn send(stats: &Stats, ws: &mut Ws, frame: String) -> Result<(), ()> {
    let len = frame.len() as u64;
    ws.send(Message::text(frame)).await.map_err(|_| ())?;
    stats.add(C::MsgsOut, 1);
    stats.add(C::BytesOut, len);
    Ok(())
}

pub fn close_code(f: Option<CloseFrame>) -> u16 {
    f.map_or(1005, |f| u16::from(f.code))
}

/// Opens one client's session: unless the run is stopping, dials its node (`cluster` picks it),
/// plays the opening `steps` and does the join bookkeeping (join latency, joined and open
/// counts). `settled` is counted and `joined` released whatever happens, so the ramp never
/// waits on a failed client. `None`: the failure is already counted.
#[allow(clippy::too_many_arguments)]
pub async fn open_client(
    stats: &Stats,
    shutdown: &watch::Receiver<bool>,
    dialer: &Dialer,
    cluster: &Cluster,
    ws_url: &str,
    addr: std::net::SocketAddr,
    steps: Vec<Step>,
    joined: Option<oneshot::Sender<()>>,
) -> Option<Ws> {
    let settle = || stats.settled.fetch_add(1, Ordering::Relaxed);
    if *shutdown.borrow() {
        settle();
        return None;
    }
    let started = Instant::now();
    let (ws_url, addr) = cluster.client_dest(ws_url, addr);
    let mut ws = match dialer.dial(addr, &ws_url).await {
        Ok(ws) => ws,
        Err(why) => {
            stats.errors.connect(why);
            settle();
            return None;
        }
    };
    if handshake(cluster.driver(), stats, &mut ws, steps)
        .await
        .is_err()
    {
        settle();
        return None;
    }
    stats.with_hist(H::Join, |h| {
        crate::stats::record(h, started.elapsed().as_micros() as u64)
    });
    stats.joined.fetch_add(1, Ordering::Relaxed);
    stats.open.fetch_add(1, Ordering::Relaxed);
    settle();
    drop(joined);
    Some(ws)
}

/// Sends the target's opening frames in turn, each once the previous one is acknowledged.
/// Every failure is counted in exactly one error book.
pub async fn handshake(
    driver: &Driver,
    stats: &Stats,
    ws: &mut Ws,
    steps: Vec<Step>,
) -> Result<(), ()> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    for step in steps {
        if send(stats, ws, step.frame.clone()).await.is_err() {
            stats.errors.close(ABNORMAL);
            return Err(());
        }
        await_ack(driver, stats, ws, &step, deadline).await?;
    }
    Ok(())
}

/// Reads until the success reply to `step` (after a `welcome` or `stream_welcome`, for a Wagu
/// join).
async fn await_ack(
    driver: &Driver,
    stats: &Stats,
    ws: &mut Ws,
    step: &Step,
    deadline: tokio::time::Instant,
) -> Result<(), ()> {
    let mut welcomed = !step.needs_welcome;
    let mut seen = Vec::new();
    loop {
        let Ok(msg) = tokio::time::timeout_at(deadline, ws.next()).await else {
            stats
                .errors
                .join(format!("timeout waiting for the {} reply", step.what));
            return Err(());
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                stats.add(C::MsgsIn, 1);
                stats.add(C::BytesIn, t.len() as u64);
                seen.clear();
                driver.classify(&t, |i| seen.push(i));
                for i in seen.drain(..) {
                    match i {
                        Incoming::Ack(i) if i == step.id => {
                            if welcomed {
                                return Ok(());
                            }
                            stats.errors.join("join acknowledged without a welcome");
                            return Err(());
                        }
                        Incoming::Welcome => welcomed = true,
                        Incoming::Error(code) => {
                            stats.errors.error_frame(&code);
                            return Err(());
                        }
                        // Answer the ping; only a failed answer ends the handshake.
                        Incoming::Ping
                            if send(stats, ws, driver.pong().to_string()).await.is_err() =>
                        {
                            stats.errors.close(ABNORMAL);
                            return Err(());
                        }
                        Incoming::Undecodable => stats.errors.error_frame("(undecodable frame)"),
                        _ => {}
                    }
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

/// The next tick of an optional interval; never, without one.
pub async fn tick(i: &mut Option<Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Closes normally and waits (briefly) for the server's close, so the server sees a clean
/// departure rather than a reset.
pub async fn goodbye(ws: &mut Ws) {
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

pub struct Monitor {
    stop: oneshot::Sender<()>,
    task: JoinHandle<MonitorOut>,
}

pub struct MonitorOut {
    pub timeline: Vec<Sample>,
    pub server: Option<ServerReport>,
    /// This process's CPU averaged over the window, percent of one core.
    pub harness_cpu_percent: Option<f64>,
}

impl Monitor {
    /// Starts sampling once a second. Fails if `server_pid` names no readable process, so a
    /// typo does not silently drop the server figures.
    pub fn spawn(
        stats: Arc<Stats>,
        server_pid: Option<u32>,
        progress_every: u64,
        planned_secs: u64,
        show_bar: bool,
    ) -> anyhow::Result<Monitor> {
        let sampler = server_pid
            .map(|pid| {
                ProcSampler::new(pid)
                    .map_err(|e| anyhow::anyhow!("--server-pid {pid}: cannot read /proc: {e}"))
            })
            .transpose()?;
        let (stop, stopped) = oneshot::channel();
        let bar = crate::progress::start(planned_secs, show_bar);
        let task = tokio::spawn(monitor(
            stats,
            sampler,
            server_pid,
            progress_every.max(1),
            bar,
            stopped,
        ));
        Ok(Monitor { stop, task })
    }

    pub async fn finish(self) -> MonitorOut {
        let _ = self.stop.send(());
        self.task.await.expect("monitor task panicked")
    }
}

async fn monitor(
    stats: Arc<Stats>,
    mut sampler: Option<ProcSampler>,
    pid: Option<u32>,
    progress_every: u64,
    bar: Option<indicatif::ProgressBar>,
    mut stopped: oneshot::Receiver<()>,
) -> MonitorOut {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut timeline = Vec::new();
    let mut server = pid.map(|pid| ServerReport {
        pid,
        rss_mb_start: sampler.as_ref().map_or(0.0, |s| {
            (s.baseline_rss_bytes as f64 / 1e6 * 10.0).round() / 10.0
        }),
        ..Default::default()
    });
    let (mut cpu_sum, mut rss_sum) = (0.0, 0.0);
    // The load generator itself: on a machine it shares with the server, what it takes is
    // what the server did not get.
    let mut own = ProcSampler::new(std::process::id()).ok();
    let (mut own_sum, mut own_n) = (0.0, 0u32);
    let read = |s: &Stats| {
        [
            s.total(C::MsgsIn),
            s.total(C::MsgsOut),
            s.total(C::BytesIn),
            s.total(C::BytesOut),
            s.total(C::PresenceSent),
            s.total(C::PresenceUpdatesIn),
            s.total(C::ChatSent),
            s.total(C::ChatIn),
        ]
    };
    let mut last = read(&stats);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {}
        }
        let now = read(&stats);
        let d: Vec<u64> = now.iter().zip(&last).map(|(a, b)| a - b).collect();
        last = now;
        let phase = stats.phase();
        // /proc reads are served from kernel memory and take microseconds: fine inline.
        let proc = match sampler.as_mut().map(|s| s.sample()) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                tracing::warn!("server process no longer readable ({e}); stopping its sampling");
                sampler = None;
                None
            }
            None => None,
        };
        let own_cpu = own
            .as_mut()
            .and_then(|s| s.sample().ok().flatten())
            .map(|p| p.cpu_percent);
        if let (Some(cpu), Phase::Measure) = (own_cpu, phase) {
            own_sum += cpu;
            own_n += 1;
        }
        if let (Some(p), Some(agg)) = (proc, server.as_mut())
            && phase == Phase::Measure
        {
            let rss_mb = p.rss_bytes as f64 / 1e6;
            agg.samples += 1;
            cpu_sum += p.cpu_percent;
            rss_sum += rss_mb;
            agg.cpu_percent_max = agg.cpu_percent_max.max(p.cpu_percent);
            agg.rss_mb_max = agg.rss_mb_max.max(rss_mb);
        }
        let recent = Latency::from_hist(&stats.take(H::Recent));
        let (p50, p99) = if recent.samples > 0 {
            (Some(recent.p50), Some(recent.p99))
        } else {
            (None, None)
        };
        let sample = Sample {
            t_secs: start.elapsed().as_secs_f64().round() as u64,
            phase: phase.name(),
            open: stats.open.load(std::sync::atomic::Ordering::Relaxed),
            messages_in: d[0],
            messages_out: d[1],
            bytes_in: d[2],
            bytes_out: d[3],
            presence_sent: d[4],
            presence_received: d[5],
            chat_sent: d[6],
            chat_received: d[7],
            errors_total: stats.errors.total(),
            latency_p50_ms: p50,
            latency_p99_ms: p99,
            server_cpu_percent: proc.map(|p| (p.cpu_percent * 10.0).round() / 10.0),
            harness_cpu_percent: own_cpu.map(|c| (c * 10.0).round() / 10.0),
            server_rss_mb: proc.map(|p| (p.rss_bytes as f64 / 1e6 * 10.0).round() / 10.0),
        };
        if let Some(bar) = &bar {
            bar.set_position(sample.t_secs);
            bar.set_message(crate::progress::message(
                sample.phase,
                sample.open,
                sample.messages_in,
                sample.messages_out,
                p99,
                sample.errors_total,
                proc.map(|p| (p.cpu_percent, p.rss_bytes as f64 / 1e6)),
            ));
        } else if sample.t_secs.is_multiple_of(progress_every) {
            let server = match proc {
                Some(p) => format!(
                    "  server cpu {:.0}% rss {:.0} MB",
                    p.cpu_percent,
                    p.rss_bytes as f64 / 1e6
                ),
                None => String::new(),
            };
            let p99 = p99.map_or(String::new(), |p| format!("  p99 {p:.1} ms"));
            tracing::info!(
                "t={:>4}s {:<7} open {:>6}  in {:>7} msg/s  out {:>6} msg/s{}  errors {}{}",
                sample.t_secs,
                sample.phase,
                sample.open,
                sample.messages_in,
                sample.messages_out,
                p99,
                sample.errors_total,
                server
            );
        }
        timeline.push(sample);
    }
    if let Some(bar) = &bar {
        crate::progress::finish(bar);
    }
    if let Some(agg) = server.as_mut()
        && agg.samples > 0
    {
        let n = agg.samples as f64;
        agg.cpu_percent_avg = (cpu_sum / n * 10.0).round() / 10.0;
        agg.rss_mb_avg = (rss_sum / n * 10.0).round() / 10.0;
        agg.cpu_percent_max = (agg.cpu_percent_max * 10.0).round() / 10.0;
        agg.rss_mb_max = (agg.rss_mb_max * 10.0).round() / 10.0;
    }
    MonitorOut {
        timeline,
        server,
        harness_cpu_percent: (own_n > 0).then(|| (own_sum / own_n as f64 * 10.0).round() / 10.0),
    }
}
