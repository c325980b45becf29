//! The SLO gate: judges a [`RunResult`] against the limits given on the command line; the
//! verdict decides the exit status.

use super::{Detail, Latency, RoomsDetail, RunResult, StreamsDetail};
use crate::target::Target;
use serde::Serialize;

#[derive(Serialize, Debug, Default)]
pub struct Slo {
    pub p99_ms: Option<f64>,
    pub fanout_p99_ms: Option<f64>,
    pub max_errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_delivery: Option<f64>,
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
    // Only Wagu stamps its batches and chats (`at`): elsewhere there is no fan-out figure to
    // gate (and end to end is the fan-out, as those servers forward without coalescing).
    let stamped = r.target == Target::Wagu;
    // What each gate reads: (name, latency, whether samples were expected).
    type Gate<'a> = (&'static str, &'a Latency, bool);
    fn rooms(d: &RoomsDetail, stamped: bool) -> (Gate<'_>, Gate<'_>, Option<&Latency>) {
        (
            ("presence", &d.presence.latency_ms, d.participants > 1),
            (
                "presence fan-out",
                &d.presence_fanout_ms,
                d.participants > 1 && stamped,
            ),
            d.chat.as_ref().map(|c| &c.latency_ms),
        )
    }
    fn streams(d: &StreamsDetail, stamped: bool) -> (Gate<'_>, Gate<'_>) {
        let expected = d.chat_per_sec > 0.0 && d.viewers > 0;
        (
            ("stream chat", &d.chat.latency_ms, expected),
            (
                "stream chat fan-out",
                &d.chat_fanout_ms,
                expected && stamped,
            ),
        )
    }
    // Mixed: both workloads' gates.
    let (gates, extra): (Vec<(Gate, Gate)>, Option<&Latency>) = match &r.detail {
        Detail::Rooms(d) => {
            let (e, f, x) = rooms(d, stamped);
            (vec![(e, f)], x)
        }
        Detail::Streams(d) => {
            let (e, f) = streams(d, stamped);
            (vec![(("chat", e.1, e.2), ("chat fan-out", f.1, f.2))], None)
        }
        Detail::Mixed(m) => {
            let (e, f, x) = rooms(&m.rooms, stamped);
            (vec![(e, f), streams(&m.streams, stamped)], x)
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
        ..Default::default()
    }
}

/// The capacity gates of `deploy/bench.sh` on top of [`evaluate`]'s: a presence end-to-end
/// limit of its own and a least delivery ratio for every traced flow. Adds their violations
/// to `slo` and judges it again.
pub fn tighten(
    slo: &mut Slo,
    r: &RunResult,
    presence_p99_ms: Option<f64>,
    min_delivery: Option<f64>,
) {
    slo.presence_p99_ms = presence_p99_ms;
    slo.min_delivery = min_delivery;
    let rooms = match &r.detail {
        Detail::Rooms(d) => Some(d),
        Detail::Mixed(m) => Some(&m.rooms),
        _ => None,
    };
    let streams = match &r.detail {
        Detail::Streams(d) => Some(d),
        Detail::Mixed(m) => Some(&m.streams),
        _ => None,
    };
    let v = &mut slo.violations;
    // Only when tighter than the general limit, which already judged presence.
    let tighter = presence_p99_ms.filter(|l| slo.p99_ms.is_none_or(|p| *l < p));
    if let (Some(limit), Some(d)) = (tighter, rooms) {
        let l = &d.presence.latency_ms;
        if l.samples > 0 && l.p99 > limit {
            v.push(format!("presence p99 {:.1} ms exceeds {limit} ms", l.p99));
        }
    }
    if let Some(min) = min_delivery {
        let mut check = |name: &str, ratio: f64, received: f64| {
            if received > 0.0 && ratio < min {
                v.push(format!("{name} delivered {ratio:.4} is below {min}"));
            }
        };
        // The gap count, not `delivery_ratio`: the window's edges move the latter by more than
        // a tenth of a percent when few messages flow (20 chats/s for 15 s).
        if let Some(d) = rooms.filter(|d| d.participants > 1) {
            check(
                "presence",
                d.presence.delivered_share,
                d.presence.received_per_sec,
            );
            if let Some(c) = &d.chat {
                check("chat", c.delivered_share, c.received_per_sec);
            }
        }
        if let Some(d) = streams.filter(|d| d.viewers > 0) {
            check(
                "stream chat",
                d.chat.delivered_share,
                d.chat.received_per_sec,
            );
        }
    }
    slo.passed = slo.violations.is_empty();
}
