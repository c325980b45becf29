//! `wagu-loadtest`: measures how much one Wagu node holds by driving it with real WebSocket
//! clients, then reports throughput, fan-out latency, errors and the server's CPU and memory.
//!
//! ```text
//! wagu-loadtest rooms --url http://127.0.0.1:8080 --rooms 1000 --participants 5 \
//!     --duration-secs 60 --server-pid $(pidof wagu) --out result.json --slo-p99-ms 100
//! ```
//!
//! Modules: [`cli`] (flags), [`scenario`] (phases, monitor, and one module per scenario),
//! [`target`] (one module per server protocol), [`net`] and [`http`] (sockets), [`stats`]
//! (counters, histograms, send logs), [`report`] (JSON, summary, SLO), [`sys`] (rlimit, /proc).

mod cli;
mod http;
mod net;
mod report;
mod scenario;
mod stats;
mod sys;
mod target;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Scenario};
use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAGU_LOADTEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let common = match &cli.scenario {
        Scenario::Rooms(a) => a.common.clone(),
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = common.threads {
        rt.worker_threads(n.max(1));
    }
    let result = rt.build().context("tokio runtime")?.block_on(async {
        match cli.scenario {
            Scenario::Rooms(a) => scenario::rooms::run(a).await,
        }
    })?;

    report::print_summary(&result);
    if let Some(path) = &common.out {
        let json = serde_json::to_vec_pretty(&result).context("encode result")?;
        std::fs::write(path, json).with_context(|| format!("write {}", path.display()))?;
        eprintln!("result written to {}", path.display());
    }
    // 2, not 1: a gate in CI can tell "the server broke the SLO" from "the harness failed".
    Ok(if result.slo.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
