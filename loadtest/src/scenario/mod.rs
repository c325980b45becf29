//! Scenarios, and what every scenario shares: the phase clock (ramp → warmup → steady-state
//! window → stop, any of it cut short by Ctrl-C) and the once-a-second monitor that keeps the
//! timeline (throughput, latency of that second, server CPU and RSS), drives the progress bar
//! (or prints progress lines when there is no terminal) and samples the server process.
//!
//! A scenario (today `rooms`; `streams` and `mixed` later) sets up its clients during the ramp,
//! then hands the clock to [`steady_state`] and builds a [`crate::report::RunResult`] from the
//! shared [`Stats`].

pub mod rooms;

use crate::report::Latency;
use crate::report::{Sample, ServerReport};
use crate::stats::{C, H, Phase, Stats};
use crate::sys::ProcSampler;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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

pub struct Monitor {
    stop: oneshot::Sender<()>,
    task: JoinHandle<MonitorOut>,
}

pub struct MonitorOut {
    pub timeline: Vec<Sample>,
    pub server: Option<ServerReport>,
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
    let read = |s: &Stats| {
        [
            s.total(C::MsgsIn),
            s.total(C::MsgsOut),
            s.total(C::BytesIn),
            s.total(C::BytesOut),
            s.total(C::PresenceSent),
            s.total(C::PresenceUpdatesIn),
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
            errors_total: stats.errors.total(),
            latency_p50_ms: p50,
            latency_p99_ms: p99,
            server_cpu_percent: proc.map(|p| (p.cpu_percent * 10.0).round() / 10.0),
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
    MonitorOut { timeline, server }
}
