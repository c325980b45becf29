//! Measurements shared by every connection of a run: counters, latency histograms, error books,
//! and the send log that turns a received presence (or chat) back into "how long since it was
//! sent".
//!
//! Hot counters and histograms are sharded by OS thread: a tokio worker always updates its own
//! cache-line-aligned shard, so tens of thousands of connections on a few workers never fight
//! over one atomic or one lock. Readers (the once-a-second reporter, the final report) sum the
//! shards. Every counter exists twice: `total` for the whole run (the per-second timeline) and
//! `window` for the steady-state window only (the result), decided per event by the
//! `measuring` flag so the window edges are exact.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// Event counters. Message and byte counts cover WebSocket text payloads (what the protocol
/// carries), not TCP or WebSocket framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum C {
    MsgsIn,
    BytesIn,
    MsgsOut,
    BytesOut,
    PresenceSent,
    /// `presence` frames received.
    PresenceFramesIn,
    /// Entries in those frames that carried a friend's update this client had not seen yet.
    PresenceUpdatesIn,
    /// Updates whose send time had already left the send log (older than its window).
    PresenceLate,
    ChatSent,
    /// Friends' chat messages received.
    ChatIn,
    ChatLate,
    AcksIn,
    /// Streams: `viewers` frames (the coalesced viewer count) received.
    ViewersIn,
    /// Updates a receiver never saw: the gaps in a sender's counters between two it did see
    /// (a superseded presence that a server coalesced away counts here too).
    PresenceGaps,
    /// Chat messages a receiver never saw (gaps in a sender's counters).
    ChatGaps,
}
const NC: usize = C::ChatGaps as usize + 1;

/// Latency histograms, in microseconds.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub enum H {
    /// From a client sending a presence to a friend reading the batch that carries it.
    Presence,
    /// From the server's batch (its `at` stamp) to a client reading it: the fan-out alone,
    /// without the coalescing window. Wall clocks, so only meaningful on one machine.
    PresenceFanout,
    /// From a client sending a chat to a friend (or, in a stream, any other client) reading it.
    Chat,
    /// Streams: from the server's stamp of a chat message (its `at`) to a client reading it,
    /// the fan-out alone. Wall clocks, millisecond stamps: only meaningful on one machine.
    ChatFanout,
    /// From starting the TCP connect to the session being open (Wagu: `join` or `join_stream`
    /// acknowledged; Centrifugo: subscribed; bare: WebSocket open), recorded during the ramp.
    Join,
    /// End-to-end latency of the scenario's main traced flow (rooms: presence; streams: chat;
    /// records: every HTTP request) in the current second, in every phase: the monitor takes
    /// and resets it once a second for the timeline's latency-over-time.
    Recent,
}
const NH: usize = H::Recent as usize + 1;

/// Largest latency a histogram holds exactly (60 s); larger values saturate to it.
const HIST_MAX_US: u64 = 60_000_000;
const SHARDS: usize = 16;

/// Where a run is; the reporter shows it and the window counters follow `Measure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Ramp = 0,
    Warmup = 1,
    Measure = 2,
    Stop = 3,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Ramp => "ramp",
            Phase::Warmup => "warmup",
            Phase::Measure => "measure",
            Phase::Stop => "stop",
        }
    }
}

#[repr(align(128))]
struct Shard {
    total: [AtomicU64; NC],
    window: [AtomicU64; NC],
    hists: [Mutex<Histogram<u64>>; NH],
}

impl Shard {
    fn new() -> Self {
        Shard {
            total: std::array::from_fn(|_| AtomicU64::new(0)),
            window: std::array::from_fn(|_| AtomicU64::new(0)),
            hists: std::array::from_fn(|_| Mutex::new(new_hist())),
        }
    }
}

pub fn new_hist() -> Histogram<u64> {
    // 3 significant figures: 1 µs resolution up to 2 ms, 0.1% relative error beyond.
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

/// Failures, each counted in exactly one book so that the books add up to the error total.
#[derive(Default)]
pub struct Errors {
    /// Room (or stream) creation over HTTP failed (connect, status, body), by reason.
    pub room_create: Mutex<BTreeMap<String, u64>>,
    /// TCP connect or WebSocket handshake failed, by reason.
    pub connect: Mutex<BTreeMap<String, u64>>,
    /// `hello`/`join` (`join_stream`) did not complete for a reason other than an error frame
    /// or a close.
    pub join: Mutex<BTreeMap<String, u64>>,
    /// Every `error` frame received, by code (during the join too).
    pub error_frames: Mutex<BTreeMap<String, u64>>,
    /// Connections the server (or the network) ended before the harness stopped, by close
    /// code; 1006 stands for "no close frame" (reset, EOF, read or write error).
    pub closes: Mutex<BTreeMap<u16, u64>>,
    /// `records` scenario: HTTP requests that failed (a status other than 2xx, a transport
    /// error, an answer without what it should hold), by `operation: status code` or
    /// `operation: transport kind`.
    pub requests: Mutex<BTreeMap<String, u64>>,
}

fn bump<K: Ord>(book: &Mutex<BTreeMap<K, u64>>, key: K, n: u64) {
    *book
        .lock()
        .expect("error book poisoned")
        .entry(key)
        .or_insert(0) += n;
}

impl Errors {
    pub fn room_create(&self, why: impl Into<String>) {
        bump(&self.room_create, why.into(), 1);
    }
    pub fn connect(&self, why: impl Into<String>) {
        bump(&self.connect, why.into(), 1);
    }
    pub fn join(&self, why: impl Into<String>) {
        bump(&self.join, why.into(), 1);
    }
    pub fn error_frame(&self, code: &str) {
        bump(&self.error_frames, code.to_string(), 1);
    }
    pub fn close(&self, code: u16) {
        bump(&self.closes, code, 1);
    }
    pub fn request(&self, why: impl Into<String>) {
        bump(&self.requests, why.into(), 1);
    }

    pub fn total(&self) -> u64 {
        fn sum<K>(b: &Mutex<BTreeMap<K, u64>>) -> u64 {
            b.lock().expect("error book poisoned").values().sum()
        }
        sum(&self.room_create)
            + sum(&self.connect)
            + sum(&self.join)
            + sum(&self.error_frames)
            + sum(&self.closes)
            + sum(&self.requests)
    }
}

pub struct Stats {
    epoch: Instant,
    shards: Box<[Shard]>,
    measuring: AtomicBool,
    phase: AtomicU8,
    /// Connections that completed `join` and have not ended yet.
    pub open: AtomicI64,
    /// Connections that completed `join` at some point.
    pub joined: AtomicU64,
    /// Planned connections that reached an outcome: joined, or failed before joining (a
    /// room or stream that could not be created settles all of its clients at once).
    pub settled: AtomicU64,
    /// Rooms (or streams) created.
    pub created: AtomicU64,
    pub errors: Errors,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            epoch: Instant::now(),
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            measuring: AtomicBool::new(false),
            phase: AtomicU8::new(Phase::Ramp as u8),
            open: AtomicI64::new(0),
            joined: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            created: AtomicU64::new(0),
            errors: Errors::default(),
        }
    }

    /// Microseconds since the run started: the time base of the send logs.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
        self.measuring.store(p == Phase::Measure, Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Ramp,
            1 => Phase::Warmup,
            2 => Phase::Measure,
            _ => Phase::Stop,
        }
    }

    pub fn add(&self, c: C, n: u64) {
        let s = &self.shards[shard_index()];
        s.total[c as usize].fetch_add(n, Ordering::Relaxed);
        if self.measuring() {
            s.window[c as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn total(&self, c: C) -> u64 {
        self.shards
            .iter()
            .map(|s| s.total[c as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub fn window(&self, c: C) -> u64 {
        self.shards
            .iter()
            .map(|s| s.window[c as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// Runs `f` on this thread's histogram of kind `h`; one lock for a whole batch of samples.
    pub fn with_hist<R>(&self, h: H, f: impl FnOnce(&mut Histogram<u64>) -> R) -> R {
        let mut g = self.shards[shard_index()].hists[h as usize]
            .lock()
            .expect("histogram poisoned");
        f(&mut g)
    }

    /// All shards of one histogram merged.
    pub fn merged(&self, h: H) -> Histogram<u64> {
        let mut out = new_hist();
        for s in self.shards.iter() {
            let g = s.hists[h as usize].lock().expect("histogram poisoned");
            out.add(&*g).expect("same bounds");
        }
        out
    }
}

impl Stats {
    /// All shards of one histogram merged, and each shard emptied.
    pub fn take(&self, h: H) -> Histogram<u64> {
        let mut out = new_hist();
        for s in self.shards.iter() {
            let mut g = s.hists[h as usize].lock().expect("histogram poisoned");
            out.add(&*g).expect("same bounds");
            g.reset();
        }
        out
    }
}

impl Stats {
    /// Counts one chat message received from sender `from` with its `counter`: the counters
    /// skipped since the last one seen from that sender (`seen`, per sender; not at the first
    /// sighting) as gaps, and one older than `log`'s window as late (its latency is then
    /// `late_us`). Returns the latency, or `None` for a message the harness never sent.
    pub fn chat_received(
        &self,
        log: &SendLog,
        late_us: u64,
        seen: &mut [u64],
        from: usize,
        counter: u64,
    ) -> Option<u64> {
        self.add(C::ChatIn, 1);
        if let Some(s) = seen.get_mut(from) {
            if *s != 0 && counter > *s + 1 {
                self.add(C::ChatGaps, counter - *s - 1);
            }
            *s = (*s).max(counter);
        }
        match log.lookup(from, counter) {
            Lookup::Sent(t) => Some(self.now_us().saturating_sub(t)),
            Lookup::Late => {
                self.add(C::ChatLate, 1);
                Some(late_us)
            }
            Lookup::Unknown => None,
        }
    }
}

/// Time from a server's stamp `at_ms` (Unix ms) to now on the wall clock, in µs. The stamp has
/// millisecond resolution: half a millisecond is added to centre the error.
pub fn since_stamp_us(at_ms: u64) -> u64 {
    let wall_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    wall_us.saturating_sub(at_ms * 1000 + 500)
}

/// Records a latency in µs, saturating at the histogram's top.
pub fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

/// What the send log knows about one (sender, counter).
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Sent at this time (µs on the [`Stats::now_us`] clock).
    Sent(u64),
    /// The entry was overwritten by a later send: this one is older than the log's window.
    Late,
    /// Never recorded (a frame the harness did not send).
    Unknown,
}

/// A ring of send times per sender, shared by the clients of one room.
///
/// One `AtomicU64` per entry packs the low 24 bits of the counter with 40 bits of send time
/// (µs, 12.7 days), so a reader never sees a torn pair and can tell whether the entry still
/// belongs to the counter it looks for.
pub struct SendLog {
    ring: usize,
    entries: Box<[AtomicU64]>,
}

const TIME_BITS: u32 = 40;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
const TAG_MASK: u64 = (1 << (64 - TIME_BITS)) - 1;

impl SendLog {
    /// `ring` is rounded up to a power of two.
    pub fn new(senders: usize, ring: usize) -> Self {
        let ring = ring.max(2).next_power_of_two();
        SendLog {
            ring,
            entries: (0..senders * ring).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn index(&self, sender: usize, counter: u64) -> usize {
        sender * self.ring + (counter as usize & (self.ring - 1))
    }

    /// Counters start at 1, so an untouched entry (0) never matches.
    pub fn record(&self, sender: usize, counter: u64, t_us: u64) {
        let packed = ((counter & TAG_MASK) << TIME_BITS) | (t_us & TIME_MASK);
        // Release pairs with the Acquire in `lookup`; the frame itself also travels through
        // the server, which orders them anyway.
        self.entries[self.index(sender, counter)].store(packed, Ordering::Release);
    }

    pub fn lookup(&self, sender: usize, counter: u64) -> Lookup {
        if counter == 0 || sender * self.ring >= self.entries.len() {
            return Lookup::Unknown;
        }
        let packed = self.entries[self.index(sender, counter)].load(Ordering::Acquire);
        let tag = packed >> TIME_BITS;
        let want = counter & TAG_MASK;
        if packed == 0 {
            Lookup::Unknown
        } else if tag == want {
            Lookup::Sent(packed & TIME_MASK)
        } else if tag.wrapping_sub(want) & TAG_MASK < (1 << 23) {
            // A later counter took the slot: this send is older than the whole ring.
            Lookup::Late
        } else {
            Lookup::Unknown
        }
    }
}

/// Counts live client tasks so the end of a run can wait for every one to close cleanly.
#[derive(Default)]
pub struct Tasks {
    live: AtomicUsize,
    idle: Notify,
}

pub struct TaskGuard(Arc<Tasks>);

impl Tasks {
    /// Counts a task from now until the guard drops. Take it before spawning, so a task that
    /// has not started yet is already waited for.
    pub fn enter(self: &Arc<Self>) -> TaskGuard {
        self.live.fetch_add(1, Ordering::AcqRel);
        TaskGuard(self.clone())
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Resolves once no task is live.
    pub async fn idle(&self) {
        loop {
            // Created before the check, so a wake-up between the check and the await is kept.
            let woken = self.idle.notified();
            if self.live() == 0 {
                return;
            }
            woken.await;
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A cheap, reproducible number in [0, 1) from a seed (splitmix64): start jitter needs spread,
/// not cryptographic quality, and a run with the same shape jitters the same way.
pub fn unit_jitter(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_log_finds_recent_and_flags_overwritten() {
        let log = SendLog::new(3, 4);
        for c in 1..=6 {
            log.record(2, c, 1000 + c);
        }
        assert_eq!(log.lookup(2, 6), Lookup::Sent(1006));
        assert_eq!(log.lookup(2, 3), Lookup::Sent(1003));
        assert_eq!(log.lookup(2, 2), Lookup::Late, "overwritten by 6");
        assert_eq!(log.lookup(1, 1), Lookup::Unknown);
        assert_eq!(log.lookup(9, 1), Lookup::Unknown, "no such sender");
    }

    #[test]
    fn window_counts_only_while_measuring() {
        let s = Stats::new();
        s.add(C::MsgsIn, 2);
        s.set_phase(Phase::Measure);
        s.add(C::MsgsIn, 3);
        s.set_phase(Phase::Stop);
        s.add(C::MsgsIn, 5);
        assert_eq!((s.total(C::MsgsIn), s.window(C::MsgsIn)), (10, 3));
    }

    #[test]
    fn take_empties_the_histogram() {
        let s = Stats::new();
        s.with_hist(H::Recent, |h| record(h, 1500));
        assert_eq!(s.take(H::Recent).len(), 1);
        assert_eq!(s.take(H::Recent).len(), 0);
    }

    #[test]
    fn jitter_is_in_unit_range() {
        assert!(
            (0..10_000)
                .map(unit_jitter)
                .all(|x| (0.0..1.0).contains(&x))
        );
    }
}
