//! Command line: one subcommand per scenario, each flattening the options every run shares
//! (target, timing, output, server sampling, SLO gate).

use crate::target::Target;
use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "wagu-loadtest",
    version,
    about = "Drive a Wagu node with real WebSocket clients and measure what it holds.",
    after_help = "Exit status: 0 run completed (and the SLO held, if one was given); \
                  1 the harness itself failed; 2 the run completed but broke the SLO."
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Scenarios. `streams` (media fan-out) and `mixed` (rooms plus streams) are planned next to
/// `rooms` and reuse [`Common`].
#[derive(Subcommand, Debug)]
pub enum Scenario {
    /// Map rooms: M participants per room stream presence (and optionally chat) to each other.
    Rooms(RoomsArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RoomsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Rooms to create.
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// WebSocket clients per room (the first joins as host).
    #[arg(long, default_value_t = 5)]
    pub participants: usize,
    /// Presence updates each client sends per second.
    #[arg(long, default_value_t = 10.0)]
    pub presence_hz: f64,
    /// Chat messages each client sends per minute (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub chat_per_min: f64,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// HTTP base URL of the server; WebSocket URLs come from its answers.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Which server protocol to speak.
    #[arg(long, value_enum, default_value_t = Target::Wagu)]
    pub target: Target,
    /// Seconds over which rooms are created and their clients connected, evenly spread.
    #[arg(long, default_value_t = 10.0)]
    pub ramp_secs: f64,
    /// Seconds of full load after the ramp before measuring starts.
    #[arg(long, default_value_t = 5.0)]
    pub warmup_secs: f64,
    /// Seconds of steady state that the results describe.
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Write the result as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sample this server process's CPU and RSS from /proc every second.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Fail (exit 2) when the steady-state end-to-end p99 (send → friend reads it, including
    /// the server's coalescing window) exceeds this many ms.
    #[arg(long)]
    pub slo_p99_ms: Option<f64>,
    /// Fail (exit 2) when the steady-state p99 of the fan-out alone (server batch → friend)
    /// exceeds this many ms.
    #[arg(long)]
    pub slo_fanout_p99_ms: Option<f64>,
    /// Fail (exit 2) when the run counts more errors than this.
    #[arg(long)]
    pub slo_max_errors: Option<u64>,
    /// Local addresses to connect from, round-robin (default: as many 127.0.0.x as the
    /// connection count needs when the server is on loopback).
    #[arg(long, value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,
    /// Tokio worker threads for the clients (default: one per core). Lower it to leave cores
    /// to a server on the same machine.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Concurrent HTTP connections creating rooms during the ramp.
    #[arg(long, default_value_t = 4)]
    pub create_concurrency: usize,
    /// Seconds between progress lines on stderr.
    #[arg(long, default_value_t = 5)]
    pub progress_secs: u64,
}
