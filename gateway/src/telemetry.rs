//! Logs and metrics.
//!
//! Metrics go through the `metrics` facade into a Prometheus recorder whose text is served at
//! `/metrics` by our own router (no second HTTP listener). The recorder is process-global, so it
//! is installed once even when tests build several apps in one process.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once) and returns the handle that renders it.
pub fn metrics() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("wagu_fanout_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    ],
                )
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness): then ours renders
            // nothing, which is visible at /metrics rather than a crash.
            let _ = metrics::set_global_recorder(recorder);
            let h = handle.clone();
            // Histograms and summaries drain on upkeep; without it memory grows.
            tokio::spawn(async move {
                let mut t = tokio::time::interval(Duration::from_secs(5));
                loop {
                    t.tick().await;
                    h.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// Installs the `tracing` subscriber. `RUST_LOG`/`WAGU_LOG` choose levels (default `info`).
pub fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("WAGU_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colour codes only for a person at a terminal, never into log files or journald.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
