//! The measurement that chose the bus between nodes (issue 11): NATS (`wagu_storage::bus`) vs
//! Redis pub/sub (the `redis` crate's async `PubSub`), and the in-process memory bus as the
//! same-node reference, on the services of the test bed:
//!
//! 1. fan-out of a room event from one node to two others (three client connections), 200-byte
//!    payloads: latency p50/p99 at 1k msgs/s, then rising rates until a subscriber falls behind
//!    (loses messages, or its p99 passes 50 ms, or the publisher cannot keep the rate);
//! 2. what bus load costs the Redis every ack waits on: latency of the fenced journal append
//!    (`cluster::Ownership::append`, one `EVALSHA`) at 500 appends/s, with no bus load, with
//!    10k and 50k msgs/s on NATS, and with the same through that same Redis's pub/sub; plus the
//!    CPU that Redis, nats-server (when `WAGU_BENCH_NATS_PID` names it) and the clients used;
//! 3. request/reply between two nodes (NATS and memory; Redis pub/sub has none): the round trip
//!    of an answered request, and how fast a request nobody subscribes to fails.
//!
//! Run (figures in docs/PERFORMANCE.md, "The bus between nodes"):
//!
//! ```text
//! WAGU_TESTBED_DIR=/tmp/tb-bus WAGU_TESTBED_SERVICES="redis nats" deploy/services.sh start
//! source /tmp/tb-bus/env
//! WAGU_BENCH_NATS_PID=$(cat /tmp/tb-bus/pids/nats.pid) \
//!     cargo bench -p wagu-storage --bench bus    # -- --secs 5 --runs 3 --only 1a,1b,2,3 (the defaults: all)
//! WAGU_TESTBED_DIR=/tmp/tb-bus WAGU_TESTBED_SERVICES="redis nats" deploy/services.sh stop
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a smoke run: a few hundred
//! messages over each transport, checked to arrive. Both need `WAGU_TEST_NATS_URL` and
//! `WAGU_TEST_REDIS_URL`; without them it says SKIPPED (like the tests).

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hdrhistogram::Histogram;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use wagu_storage::bus::Bus;
use wagu_storage::cluster::{Claim, NodeId, Ownership, SessionKey};
use wagu_storage::testbed;

const PAYLOAD: usize = 200;
/// Latency histograms: 1 µs .. 60 s, 3 significant digits.
const HIST_MAX_US: u64 = 60_000_000;
/// A step of the rising-rate test counts as kept up when its p99 stays under this.
const MAX_P99: Duration = Duration::from_millis(50);

static T0: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// 200 bytes: send time (ns since T0), sequence number, padding.
fn payload(seq: u64) -> Bytes {
    let mut b = Vec::with_capacity(PAYLOAD);
    b.extend_from_slice(&now_ns().to_le_bytes());
    b.extend_from_slice(&seq.to_le_bytes());
    b.resize(PAYLOAD, b'x');
    Bytes::from(b)
}

/// The message that tells a subscriber the run is over.
const STOP: &[u8] = b"!";

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Memory,
    Nats,
    Redis,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Memory => "memory (same node)",
            Transport::Nats => "NATS",
            Transport::Redis => "Redis pub/sub",
        }
    }
}

struct Services {
    nats: String,
    redis: String,
    memory: Bus,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

// ------------------------------------------------------------ endpoints --

enum Publisher {
    Bus(Bus),
    Redis(MultiplexedConnection),
}

impl Publisher {
    async fn new(s: &Services, t: Transport) -> Publisher {
        match t {
            Transport::Memory => Publisher::Bus(s.memory.clone()),
            Transport::Nats => Publisher::Bus(Bus::connect(&s.nats, "bench-pub").await.unwrap()),
            Transport::Redis => Publisher::Redis(
                redis::Client::open(s.redis.as_str())
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap(),
            ),
        }
    }

    /// Sends `n` messages numbered from `seq`; Redis gets them as one pipeline.
    async fn send(&mut self, subject: &str, seq: u64, n: u64) {
        match self {
            Publisher::Bus(bus) => {
                for i in 0..n {
                    bus.publish(subject, payload(seq + i)).await.unwrap();
                }
            }
            Publisher::Redis(conn) => {
                let mut pipe = redis::pipe();
                for i in 0..n {
                    pipe.cmd("PUBLISH")
                        .arg(subject)
                        .arg(payload(seq + i).as_ref())
                        .ignore();
                }
                pipe.query_async::<()>(conn).await.unwrap();
            }
        }
    }

    async fn stop(&mut self, subject: &str) {
        match self {
            Publisher::Bus(bus) => {
                bus.publish(subject, Bytes::from_static(STOP))
                    .await
                    .unwrap();
                bus.flush().await.unwrap();
            }
            Publisher::Redis(conn) => {
                redis::cmd("PUBLISH")
                    .arg(subject)
                    .arg(STOP)
                    .query_async::<i64>(conn)
                    .await
                    .unwrap();
            }
        }
    }
}

type Payloads = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// One subscriber "node" on its own connection (the memory bus: its own subscription).
async fn subscriber(s: &Services, t: Transport, subject: &str, name: &str) -> Payloads {
    match t {
        Transport::Memory => Box::pin(
            s.memory
                .subscribe(subject)
                .await
                .unwrap()
                .map(|m| m.payload),
        ),
        Transport::Nats => {
            let bus = Bus::connect(&s.nats, name).await.unwrap();
            let sub = bus.subscribe(subject).await.unwrap();
            bus.flush().await.unwrap();
            bus.ping().await.unwrap();
            // The stream keeps the client alive.
            Box::pin(sub.map(move |m| {
                let _keep = &bus;
                m.payload
            }))
        }
        Transport::Redis => {
            let mut ps = redis::Client::open(s.redis.as_str())
                .unwrap()
                .get_async_pubsub()
                .await
                .unwrap();
            ps.subscribe(subject).await.unwrap();
            Box::pin(
                ps.into_on_message()
                    .map(|m| Bytes::copy_from_slice(m.get_payload_bytes())),
            )
        }
    }
}

struct Received {
    count: u64,
    latency: Histogram<u64>,
}

/// Reads until the stop message, or 2 s without any message (the stop message was lost).
fn drain(mut stream: Payloads) -> tokio::task::JoinHandle<Received> {
    tokio::spawn(async move {
        let mut r = Received {
            count: 0,
            latency: hist(),
        };
        while let Ok(Some(p)) = tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
            if &p[..] == STOP {
                break;
            }
            let sent = u64::from_le_bytes(p[..8].try_into().unwrap());
            let us = (now_ns().saturating_sub(sent) / 1000).clamp(1, HIST_MAX_US);
            r.latency.record(us).unwrap();
            r.count += 1;
        }
        r
    })
}

/// Publishes at `rate` msgs/s for `secs` (a batch every millisecond) from one node to two
/// subscriber nodes. Returns (messages sent, achieved send rate, what each subscriber got).
async fn fan_out(s: &Services, t: Transport, rate: u64, secs: f64) -> (u64, f64, Vec<Received>) {
    let subject = unique("bench.room");
    let subs = vec![
        drain(subscriber(s, t, &subject, "bench-sub-1").await),
        drain(subscriber(s, t, &subject, "bench-sub-2").await),
    ];
    let mut publisher = Publisher::new(s, t).await;
    let total = (rate as f64 * secs) as u64;
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut tick = 1u64;
    while sent < total {
        tokio::time::sleep_until(started + Duration::from_millis(tick)).await;
        let due = (rate * tick / 1000).min(total);
        if due > sent {
            publisher.send(&subject, sent, due - sent).await;
            sent = due;
        }
        // When sending fell behind, catch up in one batch instead of sleeping per tick.
        tick = tick.max(started.elapsed().as_millis() as u64) + 1;
    }
    let achieved = sent as f64 / started.elapsed().as_secs_f64();
    publisher.stop(&subject).await;
    let mut got = Vec::new();
    for h in subs {
        got.push(h.await.unwrap());
    }
    (sent, achieved, got)
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn merged(got: &[Received]) -> Histogram<u64> {
    let mut h = hist();
    for r in got {
        h.add(&r.latency).unwrap();
    }
    h
}

// ------------------------------------------------------ Redis append cost --

async fn manager(url: &str) -> ConnectionManager {
    ConnectionManager::new(redis::Client::open(url).unwrap())
        .await
        .unwrap()
}

/// The Redis server's pid, from INFO.
async fn redis_pid(conn: &mut ConnectionManager) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .ok()?;
    Some(
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))?
            .trim()
            .to_owned(),
    )
}

/// A process's CPU time so far (user + system), in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU use of some processes between two readings, in % of one core.
struct CpuMeter {
    pids: Vec<Option<String>>,
    start: Vec<Option<u64>>,
    wall: Instant,
}

impl CpuMeter {
    fn start(pids: Vec<Option<String>>) -> CpuMeter {
        let start = pids.iter().map(|p| cpu_ticks(p.as_deref()?)).collect();
        CpuMeter {
            pids,
            start,
            wall: Instant::now(),
        }
    }

    fn percent(&self) -> Vec<Option<f64>> {
        let tick = rustix::param::clock_ticks_per_second() as f64;
        let secs = self.wall.elapsed().as_secs_f64();
        self.pids
            .iter()
            .zip(&self.start)
            .map(|(p, a)| {
                let b = cpu_ticks(p.as_deref()?)?;
                Some((b - (*a)?) as f64 / tick / secs * 100.0)
            })
            .collect()
    }
}

fn pct(p: Option<f64>) -> String {
    p.map(|c| format!("{c:.1}")).unwrap_or_else(|| "?".into())
}

struct AppendRun {
    latency: Histogram<u64>,
    /// CPU of Redis, nats-server and this process (the clients), % of one core.
    cpu: Vec<Option<f64>>,
    delivered: u64,
}

/// Fenced appends at `rate`/s for `secs` while `load` (if any) carries `bus_rate` msgs/s to two
/// subscribers; returns the append latencies, the CPU used meanwhile and the bus messages
/// delivered.
async fn append_under_load(
    s: &Services,
    load: Option<Transport>,
    bus_rate: u64,
    rate: u64,
    secs: f64,
) -> AppendRun {
    let mut admin = manager(&s.redis).await;
    let owner = Ownership::new(
        manager(&s.redis).await,
        NodeId::new(unique("bench-node")).unwrap(),
        Duration::from_secs(60),
    );
    let key = SessionKey::new("room", &unique("bench"));
    let token = match owner
        .claim(&key, async |_: &NodeId| Ok(true))
        .await
        .unwrap()
    {
        Claim::Owned(t) => t,
        other => panic!("a fresh session is free: {other:?}"),
    };
    let bus = load.map(|t| {
        let services = Services {
            nats: s.nats.clone(),
            redis: s.redis.clone(),
            memory: s.memory.clone(),
        };
        // Runs a little longer than the appends so they see load from start to end.
        tokio::spawn(async move { fan_out(&services, t, bus_rate, secs + 1.0).await })
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let meter = CpuMeter::start(vec![
        redis_pid(&mut admin).await,
        std::env::var("WAGU_BENCH_NATS_PID").ok(),
        Some(std::process::id().to_string()),
    ]);
    let mut h = hist();
    let total = (rate as f64 * secs) as u64;
    let started = tokio::time::Instant::now();
    let entry = [Bytes::from(vec![b'e'; 100])];
    for i in 0..total {
        tokio::time::sleep_until(started + Duration::from_micros(i * 1_000_000 / rate)).await;
        let t = Instant::now();
        owner.append(&key, token, &entry).await.unwrap();
        h.record((t.elapsed().as_micros() as u64).clamp(1, HIST_MAX_US))
            .unwrap();
    }
    let cpu = meter.percent();
    let delivered = match bus {
        Some(task) => {
            let (_, _, got) = task.await.unwrap();
            got.iter().map(|r| r.count).sum()
        }
        None => 0,
    };
    let _: () = redis::cmd("DEL")
        .arg(key.owner())
        .arg(key.journal())
        .arg(key.snapshot())
        .query_async(&mut admin)
        .await
        .unwrap();
    AppendRun {
        latency: h,
        cpu,
        delivered,
    }
}

// -------------------------------------------------------- request/reply --

/// Requests one after another for `secs` from one node to another that echoes them (or, with
/// `answered` false, to a subject nobody subscribes to: the no-responders path).
async fn round_trips(s: &Services, t: Transport, answered: bool, secs: f64) -> Histogram<u64> {
    let connect = async |name: &str| match t {
        Transport::Memory => s.memory.clone(),
        _ => Bus::connect(&s.nats, name).await.unwrap(),
    };
    let (requester, owner) = (connect("bench-gateway").await, connect("bench-owner").await);
    let subject = unique("bench.owner");
    let responder = if answered {
        let mut sub = owner.subscribe(&subject).await.unwrap();
        owner.flush().await.unwrap();
        owner.ping().await.unwrap();
        let owner = owner.clone();
        Some(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(reply) = m.reply {
                    owner.respond(&reply, m.payload).await.unwrap();
                }
            }
        }))
    } else {
        None
    };
    let mut h = hist();
    let body = Bytes::from(vec![b'r'; PAYLOAD]);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < secs {
        let t0 = Instant::now();
        let r = requester
            .request(&subject, body.clone(), Duration::from_secs(5))
            .await;
        match (answered, r) {
            (true, Ok(reply)) => assert_eq!(reply.len(), PAYLOAD),
            (false, Err(wagu_storage::bus::BusError::NoResponders)) => {}
            (_, other) => panic!("{}: unexpected {other:?}", t.name()),
        }
        h.record((t0.elapsed().as_micros() as u64).clamp(1, HIST_MAX_US))
            .unwrap();
    }
    if let Some(task) = responder {
        task.abort();
    }
    h
}

// ----------------------------------------------------------------- main --

struct Args {
    bench: bool,
    secs: f64,
    runs: usize,
    /// Sections to run (`--only 1a,3`); empty: all.
    only: Vec<String>,
}

impl Args {
    fn runs(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

fn args() -> Args {
    let mut a = Args {
        bench: false,
        secs: 5.0,
        runs: 3,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => a.bench = true,
            "--secs" => a.secs = it.next().and_then(|v| v.parse().ok()).expect("--secs N"),
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--only" => {
                a.only = it
                    .next()
                    .expect("--only 1a,1b,2,3")
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            _ => {} // cargo's own flags
        }
    }
    a
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn smoke(s: &Services) {
    for t in [Transport::Memory, Transport::Nats, Transport::Redis] {
        let (sent, _, got) = fan_out(s, t, 1_000, 0.2).await;
        for r in &got {
            assert_eq!(r.count, sent, "{}: a subscriber missed messages", t.name());
        }
        println!("smoke {}: {sent} messages to 2 subscribers", t.name());
    }
    let run = append_under_load(s, Some(Transport::Nats), 1_000, 200, 0.2).await;
    assert_eq!(run.latency.len(), 40);
    println!("smoke: fenced appends under bus load");
    for t in [Transport::Memory, Transport::Nats] {
        for answered in [true, false] {
            assert!(!round_trips(s, t, answered, 0.1).await.is_empty());
        }
    }
    println!("smoke: request/reply and no-responders");
}

async fn bench(s: &Services, a: &Args) {
    println!(
        "# bus benchmark: {} s per measurement, {} runs, load average before: {}",
        a.secs,
        a.runs,
        load_average()
    );

    if a.runs("1a") {
        println!("\n## 1a. Fan-out to 2 nodes at 1k msgs/s, 200-byte payloads (latency in ms)\n");
        println!("| bus | run | sent | received (each) | p50 | p99 | p99.9 | max |");
        println!("|---|---|---|---|---|---|---|---|");
        for t in [Transport::Memory, Transport::Nats, Transport::Redis] {
            for run in 1..=a.runs {
                let (sent, _, got) = fan_out(s, t, 1_000, a.secs).await;
                let h = merged(&got);
                let counts: Vec<String> = got.iter().map(|r| r.count.to_string()).collect();
                println!(
                    "| {} | {run} | {sent} | {} | {} | {} | {} | {} |",
                    t.name(),
                    counts.join(" / "),
                    ms(h.value_at_quantile(0.5)),
                    ms(h.value_at_quantile(0.99)),
                    ms(h.value_at_quantile(0.999)),
                    ms(h.max()),
                );
            }
        }
    }

    if a.runs("1b") {
        println!(
            "\n## 1b. Rising rate until a subscriber falls behind (loss, p99 > {} ms, or the publisher misses the rate)\n",
            MAX_P99.as_millis()
        );
        println!(
            "| bus | target msgs/s | achieved send msgs/s | lost (worst subscriber) | p50 ms | p99 ms | server CPU % | clients CPU % | kept up |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        let redis_server = redis_pid(&mut manager(&s.redis).await).await;
        let nats_server = std::env::var("WAGU_BENCH_NATS_PID").ok();
        let secs = (a.secs / 2.0).max(1.0);
        for t in [Transport::Nats, Transport::Redis] {
            let mut best = 0;
            for rate in [10_000u64, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000] {
                let server = match t {
                    Transport::Redis => redis_server.clone(),
                    _ => nats_server.clone(),
                };
                let meter = CpuMeter::start(vec![server, Some(std::process::id().to_string())]);
                let (sent, achieved, got) = fan_out(s, t, rate, secs).await;
                let cpu = meter.percent();
                let h = merged(&got);
                let lost = got
                    .iter()
                    .map(|r| sent - r.count.min(sent))
                    .max()
                    .unwrap_or(0);
                let ok = lost == 0
                    && h.value_at_quantile(0.99) <= MAX_P99.as_micros() as u64
                    && achieved >= rate as f64 * 0.95;
                println!(
                    "| {} | {rate} | {achieved:.0} | {lost} | {} | {} | {} | {} | {} |",
                    t.name(),
                    ms(h.value_at_quantile(0.5)),
                    ms(h.value_at_quantile(0.99)),
                    pct(cpu[0]),
                    pct(cpu[1]),
                    if ok { "yes" } else { "no" },
                );
                if !ok {
                    break;
                }
                best = rate;
            }
            println!(
                "| **{}** | **highest rate kept up: {best}** | | | | | | | |",
                t.name()
            );
        }
    }

    if a.runs("2") {
        println!(
            "\n## 2. Fenced append (Ownership::append, EVALSHA) at 500/s on the Redis every ack waits on, under bus load to 2 nodes (latency in ms; CPU in % of one core)\n"
        );
        println!(
            "| bus load | msgs/s | run | appends | p50 | p99 | p99.9 | max | Redis CPU | nats-server CPU | clients CPU | bus msgs delivered |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for bus_rate in [10_000u64, 50_000] {
            for run in 1..=a.runs {
                for (label, load) in [
                    ("none", None),
                    ("NATS", Some(Transport::Nats)),
                    ("Redis pub/sub (same Redis)", Some(Transport::Redis)),
                ] {
                    let r = append_under_load(s, load, bus_rate, 500, a.secs).await;
                    let h = &r.latency;
                    println!(
                        "| {label} | {} | {run} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        if load.is_some() {
                            bus_rate.to_string()
                        } else {
                            "0".into()
                        },
                        h.len(),
                        ms(h.value_at_quantile(0.5)),
                        ms(h.value_at_quantile(0.99)),
                        ms(h.value_at_quantile(0.999)),
                        ms(h.max()),
                        pct(r.cpu[0]),
                        pct(r.cpu[1]),
                        pct(r.cpu[2]),
                        r.delivered,
                    );
                }
            }
        }
    }

    if a.runs("3") {
        println!(
            "\n## 3. Request/reply between two nodes, 200-byte payloads, one request at a time (latency in ms)\n"
        );
        println!("| bus | what | requests | p50 | p99 | p99.9 | max |");
        println!("|---|---|---|---|---|---|---|");
        for t in [Transport::Memory, Transport::Nats] {
            for (what, answered) in [("answered", true), ("no responders", false)] {
                let h = round_trips(s, t, answered, a.secs).await;
                println!(
                    "| {} | {what} | {} | {} | {} | {} | {} |",
                    t.name(),
                    h.len(),
                    ms(h.value_at_quantile(0.5)),
                    ms(h.value_at_quantile(0.99)),
                    ms(h.value_at_quantile(0.999)),
                    ms(h.max()),
                );
            }
        }
    }

    println!("\nload average after: {}", load_average());
}

fn main() {
    let a = args();
    let (Some(nats), Some(redis)) = (
        testbed::service("WAGU_TEST_NATS_URL", "bench bus"),
        testbed::service(testbed::REDIS_URL, "bench bus"),
    ) else {
        return;
    };
    T0.get_or_init(Instant::now);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = Services {
            nats,
            redis,
            memory: Bus::memory(),
        };
        if a.bench {
            bench(&s, &a).await
        } else {
            smoke(&s).await
        }
    });
}
