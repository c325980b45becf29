//! The SLO gate: judges a [`RunResult`] against the limits given on the command line; the
//! verdict decides the exit status.

use super::{Detail, Latency, RoomsDetail, RunResult, StreamsDetail};
use serde::Serialize;

#[derive(Serialize, Debug, Default)]
pub struct Slo {
    pub p99_ms: Option<f64>,
    pub fanout_p99_ms: Option<f64>,
    pub max_errors: Option<u64>,
    pub passed: bool,
    pub violations: Vec<String>,
}

/// Judges a result against the gate; with no gate given, a run always passes. Rooms gate
/// presence (and chat) end to end and the presence fan-out; streams gate chat end to end and
/// the chat fan-out.
pub fn evaluate(
    r: &RunResult,
    p99_ms: Option<f64>,
    fanout_p99_ms: Option<f64>,
    max_errors: Option<u64>,
) -> Slo {
    let mut v = Vec::new();
    // What each gate reads: (name, latency, whether samples were expected).
    type Gate<'a> = (&'static str, &'a Latency, bool);
    fn rooms(d: &RoomsDetail) -> (Gate<'_>, Gate<'_>, Option<&Latency>) {
        (
            ("presence", &d.presence.latency_ms, d.participants > 1),
            (
                "presence fan-out",
                &d.presence_fanout_ms,
                d.participants > 1,
            ),
            d.chat.as_ref().map(|c| &c.latency_ms),
        )
    }
    fn streams(d: &StreamsDetail) -> (Gate<'_>, Gate<'_>) {
        let expected = d.chat_per_sec > 0.0 && d.viewers > 0;
        (
            ("stream chat", &d.chat.latency_ms, expected),
            ("stream chat fan-out", &d.chat_fanout_ms, expected),
        )
    }
    // Mixed: both workloads' gates.
    let (gates, extra): (Vec<(Gate, Gate)>, Option<&Latency>) = match &r.detail {
        Detail::Rooms(d) => {
            let (e, f, x) = rooms(d);
            (vec![(e, f)], x)
        }
        Detail::Streams(d) => {
            let (e, f) = streams(d);
            (vec![(("chat", e.1, e.2), ("chat fan-out", f.1, f.2))], None)
        }
        Detail::Mixed(m) => {
            let (e, f, x) = rooms(&m.rooms);
            (vec![(e, f), streams(&m.streams)], x)
        }
        // Gated per operation below.
        Detail::Records(_) => (Vec::new(), None),
    };
    let mut gate = |(name, lat, expected): (&str, &Latency, bool), limit: f64| {
        if expected && lat.samples == 0 {
            v.push(format!("no {name} latency was measured"));
        } else if lat.p99 > limit {
            v.push(format!("{name} p99 {:.1} ms exceeds {limit} ms", lat.p99));
        }
    };
    for &(e2e, fanout) in &gates {
        if let Some(limit) = fanout_p99_ms {
            gate(fanout, limit);
        }
        if let Some(limit) = p99_ms {
            gate(e2e, limit);
        }
    }
    if let (Some(limit), Detail::Records(d)) = (p99_ms, &r.detail) {
        if d.latency_ms.samples == 0 {
            v.push("no request latency was measured".to_string());
        }
        for (op, o) in &d.ops {
            if o.latency_ms.samples > 0 && o.latency_ms.p99 > limit {
                v.push(format!(
                    "{op} p99 {:.1} ms exceeds {limit} ms",
                    o.latency_ms.p99
                ));
            }
        }
    }
    if let Some(limit) = p99_ms
        && let Some(chat) = extra
        && chat.samples > 0
        && chat.p99 > limit
    {
        v.push(format!("chat p99 {:.1} ms exceeds {limit} ms", chat.p99));
    }
    if let Some(max) = max_errors
        && r.errors.total > max
    {
        v.push(format!(
            "{} errors exceed the limit of {max}",
            r.errors.total
        ));
    }
    Slo {
        p99_ms,
        fanout_p99_ms,
        max_errors,
        passed: v.is_empty(),
        violations: v,
    }
}
