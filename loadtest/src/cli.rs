//! Command line: one subcommand per scenario (`rooms`, `streams`, `mixed`), each flattening the
//! options every run shares
//! (target, timing, output, report, server sampling, SLO gate); `records` (the REST API of
//! accounts, places and posts), whose own flags map onto those options; plus `bare-server` (the
//! relay the `bare` target drives) and `compare` (the side-by-side table of `deploy/bench.sh`).

use crate::target::Target;
use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "wagu-loadtest",
    version,
    about = "Drive a Wagu node (or Centrifugo, or a bare relay) with real WebSocket clients and \
             measure what it holds.",
    after_help = "Exit status: 0 run completed (and the SLO held, if one was given); \
                  1 the harness itself failed; 2 the run completed but broke the SLO."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Scenarios, and the two helpers of the side-by-side benchmark.
#[derive(Subcommand, Debug)]
// One value per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Map rooms: M participants per room stream presence (and optionally chat) to each other.
    Rooms(RoomsArgs),
    /// Live streams (Wagu target only): per stream one streamer and V viewers; K viewers chat
    /// and every other client of the stream measures each message from send to receipt.
    #[command(
        long_about = "Live streams, Wagu target only (--target must be wagu): per stream, \
                      POST /api/streams, one streamer joins with the streamer key, then V \
                      viewers join, spread evenly over the ramp. From the warmup on, K of the \
                      viewers (spread evenly over the audience) send R chat messages a second \
                      in all, each text a marker (`lt <chatter> <counter>`); the streamer and \
                      every viewer but the sender read it and record send → receipt latency. \
                      Expected deliveries per message: V."
    )]
    Streams(StreamsArgs),
    /// Rooms and live streams at once (Wagu target only): both workloads against the same
    /// node(s), one dialer, monitor and progress, one result with both sections.
    #[command(
        long_about = "Rooms and live streams at once, Wagu target only: the rooms workload \
                      (--rooms × --participants, presence at --presence-hz; no room chat, so \
                      every chat figure belongs to the streams) and the streams workload \
                      (--streams × (1 + --viewers), --stream-chat-per-sec from --chatters) run \
                      over the same ramp, warmup and window. The JSON result has a `rooms` and \
                      a `streams` section (the same fields as the single-scenario results); \
                      counters, errors and the timeline cover both."
    )]
    Mixed(MixedArgs),
    /// The records REST API (Wagu only): N users sign up, then C workers run a closed-loop mix
    /// of post writes, reads, feeds and place searches; latency per operation.
    #[command(
        long_about = "The records REST API (accounts, places, posts), Wagu target only. Setup: \
                      find the sample places around Seoul (GET /api/places?bbox=…), sign up \
                      --users accounts (POST /api/auth/signup, emails unique to the run) and \
                      let each write one post. Then --concurrency workers, each one request at \
                      a time (closed loop), run the mix for --warmup-secs + --duration-secs: \
                      create post (with an Idempotency-Key), edit own post (PATCH), read post, \
                      author feed, place feed, near feed, name search, viewport. \
                      --write-ratio is the share of create + edit (half each); reads share the \
                      rest. Count, errors by status and code, and latency p50/p90/p99/p99.9/max \
                      per operation are taken after the warmup only.",
        after_help = "Rate limits: the server limits sign-ups and log-ins \
                      (rate.logins_per_minute, default 10) and writes of posts and places \
                      (rate.writes_per_minute, default 60) per client address, and every \
                      request of this harness comes from one address. Start the server for a \
                      load test with raised limits, or the run measures 429 rate_limited:\n\n  \
                      WAGU_RATE__LOGINS_PER_MINUTE=100000 WAGU_RATE__WRITES_PER_MINUTE=1000000 \
                      wagu --listen 127.0.0.1:18500 --data-dir /tmp/lt-records\n\n\
                      Exit status: 0 run completed (and the SLO held, if one was given); \
                      1 the harness itself failed; 2 the run completed but broke the SLO."
    )]
    Records(RecordsArgs),
    /// Voice and video through the SFU (Wagu only): str0m peers publish Opus (and VP8) in rooms
    /// or streams; forwarding delay, loss and CPU per step of load (`deploy/media-bench.sh`).
    Media(crate::scenario::media::MediaArgs),
    /// Failover time of a cluster (Wagu only): starts N nodes, kills (or drains) the owner of a
    /// busy room, measures until the room acks again and checks nothing acked was lost.
    Failover(crate::scenario::failover::FailoverArgs),
    /// Run the bare WebSocket relay (the `--target bare` server) until SIGTERM or Ctrl-C.
    BareServer(BareServerArgs),
    /// Print the side-by-side table of several results (what `deploy/bench.sh` shows).
    Compare(CompareArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BareServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18400")]
    pub listen: std::net::SocketAddr,
    /// Connections accepted at once; more are closed on accept.
    #[arg(long, default_value_t = 100_000)]
    pub max_connections: usize,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// One server's results: `NAME=ACTIVE.json[,IDLE.json]` (the rooms run with load, and
    /// optionally one with `--presence-hz 0` whose memory per connection is the idle figure).
    /// Repeat per server; the first is the reference of the ratios.
    #[arg(long = "run", required = true)]
    pub runs: Vec<String>,
    /// Also write the table's figures as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
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
    /// Presence updates each client sends per second (0: none; with no chat either, the
    /// clients join and sit, which is how idle memory per connection is measured).
    #[arg(long, default_value_t = 10.0)]
    pub presence_hz: f64,
    /// Chat messages each client sends per minute (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub chat_per_min: f64,
}

#[derive(Args, Debug, Clone)]
pub struct StreamsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Live streams to create.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Viewers per stream (each stream also has its streamer).
    #[arg(long, default_value_t = 1000)]
    pub viewers: usize,
    /// Chat messages per second per stream, all chatters together (0: none). Each chatter
    /// sends R/K a second; Wagu allows 5 a second per connection by default.
    #[arg(long, default_value_t = 20.0)]
    pub chat_per_sec: f64,
    /// Viewers per stream who chat, spread evenly over the audience.
    #[arg(long, default_value_t = 10)]
    pub chatters: usize,
}

#[derive(Args, Debug, Clone)]
pub struct MixedArgs {
    #[command(flatten)]
    pub common: Common,
    /// Rooms to create.
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// WebSocket clients per room (the first joins as host).
    #[arg(long, default_value_t = 5)]
    pub participants: usize,
    /// Presence updates each room client sends per second (0: none).
    #[arg(long, default_value_t = 10.0)]
    pub presence_hz: f64,
    /// Live streams to create.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Viewers per stream (each stream also has its streamer).
    #[arg(long, default_value_t = 1000)]
    pub viewers: usize,
    /// Chat messages per second per stream, all chatters together (0: none).
    #[arg(long, default_value_t = 20.0)]
    pub stream_chat_per_sec: f64,
    /// Viewers per stream who chat, spread evenly over the audience.
    #[arg(long, default_value_t = 10)]
    pub chatters: usize,
}

impl MixedArgs {
    /// The rooms half, as the `rooms` scenario would take it.
    pub fn rooms_args(&self) -> RoomsArgs {
        RoomsArgs {
            common: self.common.clone(),
            rooms: self.rooms,
            participants: self.participants,
            presence_hz: self.presence_hz,
            chat_per_min: 0.0,
        }
    }

    /// The streams half, as the `streams` scenario would take it.
    pub fn streams_args(&self) -> StreamsArgs {
        StreamsArgs {
            common: self.common.clone(),
            streams: self.streams,
            viewers: self.viewers,
            chat_per_sec: self.stream_chat_per_sec,
            chatters: self.chatters,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct RecordsArgs {
    /// HTTP base URL of the Wagu server (plain http).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Accounts to sign up before the run (emails unique to the run). Needs
    /// rate.logins_per_minute raised on the server (WAGU_RATE__LOGINS_PER_MINUTE).
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Concurrent workers, each sending one request at a time (a closed loop): also the most
    /// HTTP connections open at once. A worker acts as one of its own users (users are dealt
    /// out round-robin; fewer users than workers: workers share them).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Share of the operations that write (create or edit a post, half each), 0 to 1. Needs
    /// rate.writes_per_minute raised on the server (WAGU_RATE__WRITES_PER_MINUTE).
    #[arg(long, default_value_t = 0.2)]
    pub write_ratio: f64,
    #[command(flatten)]
    pub window: Window,
    /// Sign-ups (and the setup's first posts) in flight at once. The server hashes at most two
    /// passwords per core at a time, so more only queues there.
    #[arg(long, default_value_t = 8)]
    pub signup_concurrency: usize,
    /// Seed of the operation mix and the generated posts (default: from the clock). Emails
    /// are unique to each run whatever the seed.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub outputs: Outputs,
    #[command(flatten)]
    pub slo: SloGate,
    /// Tokio worker threads for the harness (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub progress: Progress,
}

impl RecordsArgs {
    /// The shared run options these flags amount to (no ramp: the setup takes its place).
    pub fn common(&self) -> Common {
        Common {
            url: vec![self.url.clone()],
            spread_clients: false,
            target: Target::Wagu,
            centrifugo_secret: String::new(),
            ramp_secs: 0.0,
            window: self.window.clone(),
            outputs: self.outputs.clone(),
            slo: self.slo.clone(),
            slo_fanout_p99_ms: None,
            source_ips: Vec::new(),
            threads: self.threads,
            create_concurrency: self.signup_concurrency,
            progress: self.progress.clone(),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// HTTP base URL of the server. Wagu's WebSocket URLs come from its answers; Centrifugo's
    /// is `ws://HOST:PORT/connection/websocket`, the bare relay's `ws://HOST:PORT/ws?room=N`.
    /// Several nodes: a comma-separated list, or the flag repeated; rooms (streams) are
    /// created round-robin across them and each one's clients connect to the node that
    /// created it (see --spread-clients).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    pub url: Vec<String>,
    /// With several --url: connect each client round-robin across all of them instead of to
    /// the node that created its room (stream), as clients behind a load balancer would.
    /// Wagu rooms and streams live on one node today, so this only works when every URL
    /// reaches the same node (e.g. one node under several addresses).
    #[arg(long)]
    pub spread_clients: bool,
    /// Which server protocol to speak (`streams`: wagu only).
    #[arg(long, value_enum, default_value_t = Target::Wagu)]
    pub target: Target,
    /// HMAC secret of Centrifugo's `client.token.hmac_secret_key`, to sign connection tokens.
    #[arg(
        long,
        env = "WAGU_LOADTEST_CENTRIFUGO_SECRET",
        default_value = "wagu-bench-not-a-secret",
        hide_env_values = true
    )]
    pub centrifugo_secret: String,
    /// Seconds over which rooms are created and their clients connected (streams: viewers
    /// join), evenly spread.
    #[arg(long, default_value_t = 10.0)]
    pub ramp_secs: f64,
    #[command(flatten)]
    pub window: Window,
    #[command(flatten)]
    pub outputs: Outputs,
    #[command(flatten)]
    pub slo: SloGate,
    /// Fail (exit 2) when the steady-state p99 of the fan-out alone exceeds this many ms.
    /// Rooms: server presence batch → friend; streams: server chat stamp → receiver.
    #[arg(long)]
    pub slo_fanout_p99_ms: Option<f64>,
    /// Local addresses to connect from, round-robin (default: as many 127.0.0.x as the
    /// connection count needs when the server is on loopback).
    #[arg(long, value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,
    /// Tokio worker threads for the clients (default: one per core). Lower it to leave cores
    /// to a server on the same machine.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Concurrent HTTP connections creating rooms (streams) during the ramp.
    #[arg(long, default_value_t = 4)]
    pub create_concurrency: usize,
    #[command(flatten)]
    pub progress: Progress,
}

/// The measured window, after the ramp (records: after the setup).
#[derive(Args, Debug, Clone)]
pub struct Window {
    /// Seconds of full load after the ramp (records: of the mix) before measuring starts.
    #[arg(long, default_value_t = 5.0)]
    pub warmup_secs: f64,
    /// Seconds of steady state that the results describe.
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
}

/// Where the results go, and the server process to sample alongside.
#[derive(Args, Debug, Clone)]
pub struct Outputs {
    /// Write the result as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a self-contained HTML report (latency over time, throughput or requests, server
    /// charts) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Sample this server process's CPU and RSS from /proc every second.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// The SLO gate every scenario takes (rooms and streams add a fan-out limit).
#[derive(Args, Debug, Clone)]
pub struct SloGate {
    /// Fail (exit 2) when a steady-state p99 exceeds this many ms. Rooms: presence (send →
    /// friend reads it, including the server's coalescing window) and chat end to end;
    /// streams: chat (send → every other client of the stream reads it); records: any
    /// operation.
    #[arg(long)]
    pub slo_p99_ms: Option<f64>,
    /// Fail (exit 2) when the run counts more errors (records: failed requests, setup
    /// included) than this.
    #[arg(long)]
    pub slo_max_errors: Option<u64>,
}

/// How the run reports its progress on stderr.
#[derive(Args, Debug, Clone)]
pub struct Progress {
    /// Seconds between progress lines on stderr when it is not a terminal (on a terminal a
    /// progress bar shows every second instead).
    #[arg(long, default_value_t = 5)]
    pub progress_secs: u64,
    /// No progress bar, even on a terminal: progress lines only.
    #[arg(long)]
    pub no_progress: bool,
}
