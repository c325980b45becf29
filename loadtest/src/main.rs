//! `wagu-loadtest`: measures how much one Wagu node holds by driving it with real WebSocket
//! clients, then reports throughput, fan-out latency, errors and the server's CPU and memory.
//! The same workload runs against Centrifugo and a bare relay for a side-by-side baseline.
//!
//! ```text
//! wagu-loadtest rooms --url http://127.0.0.1:8080 --rooms 1000 --participants 5 \
//!     --duration-secs 60 --server-pid $(pidof wagu) --out result.json --report report.html \
//!     --slo-p99-ms 100
//! wagu-loadtest rooms --target centrifugo --url http://127.0.0.1:8000 …
//! wagu-loadtest streams --url http://127.0.0.1:8080 --streams 1 --viewers 10000 \
//!     --chat-per-sec 20 --ramp-secs 40 --server-pid $(pidof wagu) --slo-p99-ms 200
//! wagu-loadtest mixed --url http://127.0.0.1:8080,http://127.0.0.1:8081 --rooms 500 \
//!     --participants 5 --streams 1 --viewers 5000 --stream-chat-per-sec 20
//! WAGU_RATE__LOGINS_PER_MINUTE=100000 WAGU_RATE__WRITES_PER_MINUTE=1000000 wagu … &
//! wagu-loadtest records --url http://127.0.0.1:8080 --users 200 --concurrency 32 \
//!     --write-ratio 0.2 --duration-secs 30 --server-pid $(pidof wagu) --slo-p99-ms 50
//! wagu-loadtest bare-server --listen 127.0.0.1:18400 &
//! wagu-loadtest rooms --target bare --url http://127.0.0.1:18400 …
//! wagu-loadtest compare --run wagu=a.json,a-idle.json --run centrifugo=b.json,b-idle.json
//! ```
//!
//! Modules: [`cli`] (flags), [`scenario`] (phases, monitor, and one module per scenario),
//! [`target`] (one module per server protocol), [`bare_server`] (the relay baseline),
//! [`net`] and [`http`] (sockets; the `records` scenario uses reqwest), [`stats`] (counters,
//! histograms, send logs), [`report`] (JSON, summary, SLO), [`html`] (the charts), [`compare`]
//! (the side-by-side table), [`progress`] (the bar), [`sys`] (rlimit, /proc).

mod bare_server;
mod cli;
mod compare;
mod html;
mod http;
mod net;
mod progress;
mod report;
mod scenario;
mod stats;
mod sys;
mod target;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(|| progress::LogWriter)
        // Colour codes only for a person at a terminal, not in logs and CI output.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAGU_LOADTEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let threads = match &cli.command {
        Command::Rooms(a) => a.common.threads,
        Command::Streams(a) => a.common.threads,
        Command::Mixed(a) => a.common.threads,
        Command::Records(a) => a.threads,
        Command::BareServer(a) => a.threads,
        Command::Media(a) => a.threads,
        Command::Failover(a) => a.threads,
        Command::Compare(a) => return compare::run(a).map(|()| ExitCode::SUCCESS),
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build().context("tokio runtime")?;
    let (common, result) = match cli.command {
        Command::Rooms(a) => (a.common.clone(), rt.block_on(scenario::rooms::run(a))?),
        Command::Streams(a) => (a.common.clone(), rt.block_on(scenario::streams::run(a))?),
        Command::Mixed(a) => (a.common.clone(), rt.block_on(scenario::mixed::run(a))?),
        Command::Records(a) => (a.common(), rt.block_on(scenario::records::run(a))?),
        Command::BareServer(a) => {
            rt.block_on(bare_server::run(a))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Media(a) => {
            let r = rt.block_on(scenario::media::run(a))?;
            let ok = r.steps.first().is_some_and(|s| s.passed);
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            });
        }
        Command::Failover(a) => {
            let r = rt.block_on(scenario::failover::run(a))?;
            let ok = r.failed_runs == 0 && r.lost == 0 && r.duplicated == 0 && r.ghosts == 0;
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            });
        }
        Command::Compare(_) => unreachable!("handled above"),
    };

    report::print_summary(&result);
    if let Some(path) = &common.outputs.out {
        let json = serde_json::to_vec_pretty(&result).context("encode result")?;
        std::fs::write(path, json).with_context(|| format!("write {}", path.display()))?;
        eprintln!("result written to {}", path.display());
    }
    if let Some(path) = &common.outputs.report {
        std::fs::write(path, html::render(&result)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    // 2, not 1: a gate in CI can tell "the server broke the SLO" from "the harness failed".
    Ok(if result.slo.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
