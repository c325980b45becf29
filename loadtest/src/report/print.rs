//! The human summary of a run, printed to stdout.

use super::{Detail, Latency, RECORDS_OPS, RecordsDetail, RoomsDetail, RunResult, StreamsDetail};
use std::collections::BTreeMap;

fn human_bytes(b: f64) -> String {
    if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}

fn lat_line(l: &Latency) -> String {
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms  ({} samples)",
        l.p50, l.p90, l.p99, l.p999, l.max, l.samples
    )
}

/// The human summary, printed to stdout.
pub fn print_summary(r: &RunResult) {
    println!();
    println!(
        "== wagu-loadtest {} against {} ({:?}) ==",
        r.scenario, r.url, r.target
    );
    match &r.detail {
        Detail::Rooms(d) => print_rooms(r, d, true),
        Detail::Streams(d) => print_streams(r, d, true),
        Detail::Mixed(m) => {
            println!(
                "{}/{} connections joined, {} open at the end",
                r.connections_joined, r.connections, r.connections_open
            );
            steady_line(r);
            print_rooms(r, &m.rooms, false);
            print_streams(r, &m.streams, false);
            println!(
                "delivered {:.0} presence updates and chat messages/s",
                r.delivered_per_sec
            );
        }
        Detail::Records(d) => print_records(r, d),
    }
    let t = &r.throughput;
    if let Detail::Records(_) = &r.detail {
        println!(
            "traffic   requests {:.0}/s ({}/s of bodies)  answers {:.0}/s ({}/s of bodies)",
            t.messages_out_per_sec,
            human_bytes(t.bytes_out_per_sec),
            t.messages_in_per_sec,
            human_bytes(t.bytes_in_per_sec)
        );
    } else {
        println!(
            "join      {}  (every connection settled {:.1} s into the ramp)",
            lat_line(&r.join_latency_ms),
            r.ramp_done_secs
        );
        println!(
            "traffic   in {:.0} msg/s ({}/s)  out {:.0} msg/s ({}/s)",
            t.messages_in_per_sec,
            human_bytes(t.bytes_in_per_sec),
            t.messages_out_per_sec,
            human_bytes(t.bytes_out_per_sec)
        );
    }
    if let Some(s) = &r.server {
        println!(
            "server    pid {}: CPU avg {:.1}% max {:.1}% (of one core), RSS avg {:.1} MB max {:.1} MB ({} samples)",
            s.pid, s.cpu_percent_avg, s.cpu_percent_max, s.rss_mb_avg, s.rss_mb_max, s.samples
        );
        if let Some(kb) = s.rss_kb_per_connection {
            println!(
                "          RSS {:.1} MB before the run: {kb:.1} kB per open connection",
                s.rss_mb_start
            );
        }
    }
    if let Some(cpu) = r.harness_cpu_percent {
        println!("harness   CPU avg {cpu:.1}% (of one core), this load generator itself");
    }
    let e = &r.errors;
    println!("errors    {}", e.total);
    let show = |name: &str, b: &BTreeMap<String, u64>| {
        for (k, n) in b {
            println!("  {name}: {k} × {n}");
        }
    };
    show("room create", &e.room_create);
    show("connect", &e.connect);
    show("join", &e.join);
    show("error frame", &e.error_frames);
    show("request", &e.requests);
    for (code, n) in &e.unexpected_closes {
        println!("  unexpected close: code {code} × {n}");
    }
    if r.interrupted {
        println!("(interrupted: the run was cut short)");
    }
    if r.slo.p99_ms.is_some() || r.slo.fanout_p99_ms.is_some() || r.slo.max_errors.is_some() {
        if r.slo.passed {
            println!("SLO       passed");
        } else {
            for v in &r.slo.violations {
                println!("SLO       FAILED: {v}");
            }
        }
    }
}

fn print_records(r: &RunResult, d: &RecordsDetail) {
    println!(
        "setup     {}/{} users signed up, {} places found, {} posts seeded in {:.1} s",
        d.users_signed_up, d.users, d.places_found, d.posts_seeded, r.ramp_done_secs
    );
    println!("sign-up   {}", lat_line(&r.join_latency_ms));
    println!(
        "steady state {:.1} s (after {:.0} s warmup): {} workers, write ratio {}",
        r.duration_secs, r.warmup_secs, d.concurrency, d.write_ratio
    );
    println!(
        "{:<12} {:>6} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "operation",
        "share",
        "requests",
        "req/s",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    let row = |name: &str, share: f64, count: u64, per_sec: f64, errors: u64, l: &Latency| {
        println!(
            "{name:<12} {:>5.1}% {count:>8} {per_sec:>8.1} {errors:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            share * 100.0,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        );
    };
    for name in RECORDS_OPS {
        if let Some(o) = d.ops.get(name) {
            row(name, o.share, o.count, o.per_sec, o.errors, &o.latency_ms);
        }
    }
    row(
        "all",
        1.0,
        d.requests,
        d.requests_per_sec,
        d.errors_in_window,
        &d.latency_ms,
    );
    for name in RECORDS_OPS {
        if let Some(o) = d.ops.get(name) {
            for (why, n) in &o.errors_by {
                println!("  {name}: {why} × {n} (in the window)");
            }
        }
    }
    println!(
        "requests  {:.1}/s, {:.1}/s successful; {} token refreshes",
        d.requests_per_sec, r.delivered_per_sec, d.token_refreshes
    );
}

fn steady_line(r: &RunResult) {
    println!(
        "steady state {:.1} s (after {:.0} s ramp + {:.0} s warmup)",
        r.duration_secs, r.ramp_secs, r.warmup_secs
    );
}

/// `alone`: the whole run is this workload (not one half of `mixed`).
fn print_rooms(r: &RunResult, d: &RoomsDetail, alone: bool) {
    if !alone {
        println!(
            "rooms {}/{} created, {} participants each",
            d.rooms_created, d.rooms, d.participants
        );
    } else {
        println!(
            "rooms {}/{} created, {} participants each: {}/{} connections joined, {} open at the end",
            d.rooms_created,
            d.rooms,
            d.participants,
            r.connections_joined,
            r.connections,
            r.connections_open
        );
        steady_line(r);
    }
    let p = &d.presence;
    println!(
        "presence  sent {:.0}/s (target {:.0}/s)  friends' updates received {:.0}/s in {:.0} frames/s (delivery {:.3}; {} lost: {:.4} delivered)",
        p.sent_per_sec,
        p.target_sent_per_sec,
        p.received_per_sec,
        p.frames_per_sec,
        p.delivery_ratio,
        p.lost,
        p.delivered_share
    );
    if r.target == crate::target::Target::Wagu {
        println!(
            "  end-to-end (send → friend, incl. ≤50 ms coalescing) {}",
            lat_line(&p.latency_ms)
        );
        println!(
            "  fan-out (server batch → friend)                   {}",
            lat_line(&d.presence_fanout_ms)
        );
    } else {
        println!("  end-to-end (send → friend) {}", lat_line(&p.latency_ms));
    }
    if p.late > 0 {
        println!(
            "  {} updates arrived more than {:.0} ms after their send",
            p.late, p.late_after_ms
        );
    }
    if let Some(c) = &d.chat {
        println!(
            "chat      sent {:.1}/s  received {:.1}/s (delivery {:.3}; {} lost)  latency {}",
            c.sent_per_sec,
            c.received_per_sec,
            c.delivery_ratio,
            c.lost,
            lat_line(&c.latency_ms)
        );
    }
    if alone {
        println!("delivered {:.0} friends' messages/s", r.delivered_per_sec);
    }
}

fn print_streams(r: &RunResult, d: &StreamsDetail, alone: bool) {
    if !alone {
        println!(
            "streams {}/{} created, 1 streamer + {} viewers each ({} chatting)",
            d.streams_created, d.streams, d.viewers, d.chatters
        );
    } else {
        println!(
            "streams {}/{} created, 1 streamer + {} viewers each ({} chatting): {}/{} connections joined, {} open at the end",
            d.streams_created,
            d.streams,
            d.viewers,
            d.chatters,
            r.connections_joined,
            r.connections,
            r.connections_open
        );
        steady_line(r);
    }
    let c = &d.chat;
    println!(
        "chat      sent {:.1}/s (target {:.1}/s)  delivered {:.0}/s (delivery {:.4} of sent × {} receivers; {} lost)",
        c.sent_per_sec,
        c.target_sent_per_sec,
        c.received_per_sec,
        c.delivery_ratio,
        d.viewers,
        c.lost
    );
    println!(
        "  end-to-end (send → every receiver) {}",
        lat_line(&c.latency_ms)
    );
    println!(
        "  fan-out (server stamp → receiver)  {}",
        lat_line(&d.chat_fanout_ms)
    );
    if c.late > 0 {
        println!(
            "  {} messages arrived more than {:.0} ms after their send",
            c.late, c.late_after_ms
        );
    }
    println!(
        "viewers   {} count events over the run ({:.1}/s in the window); the streamers last saw {} viewers in all",
        d.viewers_events, d.viewers_events_per_sec, d.viewer_count_seen
    );
}
