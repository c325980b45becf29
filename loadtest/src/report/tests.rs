//! The JSON shape of results and the SLO gate of every scenario.

use super::*;
use crate::stats::Stats;
use crate::target::Target;
use std::collections::BTreeMap;

fn flow(p99: f64) -> Flow {
    Flow {
        sent_per_sec: 20.0,
        target_sent_per_sec: 20.0,
        received_per_sec: 200_000.0,
        frames_per_sec: 200_000.0,
        delivery_ratio: 1.0,
        late: 0,
        late_after_ms: 5000.0,
        lost: 0,
        delivered_share: 1.0,
        latency_ms: Latency {
            samples: 100,
            p99,
            ..Default::default()
        },
    }
}

fn result(detail: Detail) -> RunResult {
    RunResult {
        scenario: detail.scenario(),
        target: Target::Wagu,
        url: "http://127.0.0.1:1".into(),
        interrupted: false,
        connections: 10,
        connections_joined: 10,
        connections_open: 10,
        ramp_secs: 1.0,
        ramp_done_secs: 1.2,
        warmup_secs: 1.0,
        duration_secs: 1.0,
        detail,
        join_latency_ms: Latency::default(),
        delivered_per_sec: 0.0,
        throughput: Throughput {
            messages_in_per_sec: 0.0,
            messages_out_per_sec: 0.0,
            bytes_in_per_sec: 0.0,
            bytes_out_per_sec: 0.0,
        },
        errors: ErrorReport::from_stats(&Stats::new()),
        server: None,
        harness_cpu_percent: None,
        slo: Slo::default(),
        timeline: Vec::new(),
    }
}

fn streams(p99: f64, fanout_p99: f64) -> RunResult {
    result(Detail::Streams(StreamsDetail {
        streams: 1,
        streams_created: 1,
        viewers: 9,
        chatters: 2,
        chat_per_sec: 20.0,
        chat: flow(p99),
        chat_fanout_ms: Latency {
            samples: 100,
            p99: fanout_p99,
            ..Default::default()
        },
        viewers_events: 3,
        viewers_events_per_sec: 0.0,
        viewer_count_seen: 9,
    }))
}

#[test]
fn scenario_fields_sit_at_the_top_level() {
    let rooms = result(Detail::Rooms(RoomsDetail {
        rooms: 2,
        rooms_created: 2,
        participants: 5,
        presence_hz: 10.0,
        chat_per_min: 0.0,
        presence: flow(30.0),
        presence_fanout_ms: Latency::default(),
        chat: None,
    }));
    let v = serde_json::to_value(&rooms).unwrap();
    // The paths `compare` and older results use.
    assert_eq!(v["scenario"], "rooms");
    assert_eq!(v["participants"], 5);
    assert_eq!(v["presence"]["latency_ms"]["p99"], 30.0);
    assert!(v["chat"].is_null() && v.get("Rooms").is_none());
    let v = serde_json::to_value(streams(12.0, 3.0)).unwrap();
    assert_eq!(v["scenario"], "streams");
    assert_eq!(v["viewers"], 9);
    assert_eq!(v["chat"]["latency_ms"]["p99"], 12.0);
    assert_eq!(v["chat_fanout_ms"]["p99"], 3.0);
    assert!(v.get("presence").is_none());
}

#[test]
fn streams_gate_on_chat() {
    let r = streams(250.0, 20.0);
    let slo = evaluate(&r, Some(200.0), Some(50.0), Some(0));
    assert_eq!(slo.violations, vec!["chat p99 250.0 ms exceeds 200 ms"]);
    let slo = evaluate(&streams(150.0, 60.0), Some(200.0), Some(50.0), None);
    assert_eq!(
        slo.violations,
        vec!["chat fan-out p99 60.0 ms exceeds 50 ms"]
    );
    let mut quiet = streams(0.0, 0.0);
    if let Detail::Streams(d) = &mut quiet.detail {
        d.chat.latency_ms.samples = 0;
    }
    let slo = evaluate(&quiet, Some(200.0), None, None);
    assert_eq!(slo.violations, vec!["no chat latency was measured"]);
    assert!(evaluate(&streams(150.0, 20.0), Some(200.0), Some(50.0), Some(0)).passed);
}

fn records(ops: &[(&str, f64, u64)]) -> RunResult {
    let lat = |p99: f64, samples: u64| Latency {
        samples,
        p99,
        ..Default::default()
    };
    let ops: BTreeMap<String, OpReport> = ops
        .iter()
        .map(|&(name, p99, samples)| {
            (
                name.to_string(),
                OpReport {
                    share: 0.125,
                    count: samples,
                    latency_ms: lat(p99, samples),
                    ..Default::default()
                },
            )
        })
        .collect();
    let samples = ops.values().map(|o| o.count).sum();
    result(Detail::Records(RecordsDetail {
        users: 10,
        users_signed_up: 10,
        concurrency: 4,
        write_ratio: 0.2,
        seed: 1,
        places_found: 230,
        search_prefixes: 100,
        posts_seeded: 10,
        token_refreshes: 0,
        requests: samples,
        requests_per_sec: samples as f64,
        errors_in_window: 0,
        latency_ms: lat(40.0, samples),
        ops,
    }))
}

#[test]
fn records_gate_every_operation() {
    let r = records(&[
        ("create_post", 80.0, 100),
        ("read_post", 5.0, 100),
        ("edit_post", 0.0, 0),
    ]);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["scenario"], "records");
    assert_eq!(v["ops"]["create_post"]["latency_ms"]["p99"], 80.0);
    assert_eq!(v["concurrency"], 4);
    let slo = evaluate(&r, Some(50.0), None, Some(0));
    assert_eq!(
        slo.violations,
        vec!["create_post p99 80.0 ms exceeds 50 ms"]
    );
    assert!(evaluate(&r, Some(100.0), None, Some(0)).passed);
    // An operation with no samples (none drawn) is not a violation; no samples at all is.
    let slo = evaluate(&records(&[]), Some(100.0), None, None);
    assert_eq!(slo.violations, vec!["no request latency was measured"]);
    let mut failed = records(&[("read_post", 5.0, 100)]);
    failed.errors.total = 3;
    let slo = evaluate(&failed, None, None, Some(2));
    assert_eq!(slo.violations, vec!["3 errors exceed the limit of 2"]);
    assert!(evaluate(&failed, None, None, Some(3)).passed);
    let html = crate::html::render(&r).unwrap();
    assert!(html.contains("create_post") && html.contains("sign-up (setup)"));
}

#[test]
fn mixed_nests_both_sections_and_gates_both() {
    let rooms = RoomsDetail {
        rooms: 2,
        rooms_created: 2,
        participants: 5,
        presence_hz: 10.0,
        chat_per_min: 0.0,
        presence: flow(30.0),
        presence_fanout_ms: Latency {
            samples: 100,
            p99: 1.0,
            ..Default::default()
        },
        chat: None,
    };
    let Detail::Streams(stream) = streams(250.0, 20.0).detail else {
        unreachable!()
    };
    let r = result(Detail::Mixed(Box::new(MixedDetail {
        rooms,
        streams: stream,
    })));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["scenario"], "mixed");
    assert_eq!(v["rooms"]["participants"], 5);
    assert_eq!(v["rooms"]["presence"]["latency_ms"]["p99"], 30.0);
    assert_eq!(v["streams"]["viewers"], 9);
    assert_eq!(v["streams"]["chat"]["latency_ms"]["p99"], 250.0);
    let slo = evaluate(&r, Some(200.0), None, None);
    assert_eq!(
        slo.violations,
        vec!["stream chat p99 250.0 ms exceeds 200 ms"]
    );
    assert!(evaluate(&r, Some(300.0), Some(50.0), Some(0)).passed);
    assert!(crate::html::render(&r).is_ok());
}

#[test]
fn capacity_gates_presence_delivery_and_unstamped_targets() {
    let rooms = |target: Target, p99: f64, delivery: f64, fanout_samples: u64| {
        let mut presence = flow(p99);
        presence.delivered_share = delivery;
        let mut chat = flow(4.0);
        chat.delivery_ratio = 1.0;
        let mut r = result(Detail::Rooms(RoomsDetail {
            rooms: 2,
            rooms_created: 2,
            participants: 10,
            presence_hz: 10.0,
            chat_per_min: 6.0,
            presence,
            presence_fanout_ms: Latency {
                samples: fanout_samples,
                p99: 2.0,
                ..Default::default()
            },
            chat: Some(chat),
        }));
        r.target = target;
        r
    };
    let judge = |r: &RunResult, presence_limit: f64| {
        let mut slo = evaluate(r, Some(100.0), Some(50.0), Some(0));
        tighten(&mut slo, r, Some(presence_limit), Some(0.999));
        slo
    };
    // Wagu: window 50 ms + 50 ms.
    assert!(judge(&rooms(Target::Wagu, 90.0, 1.0, 10), 100.0).passed);
    // The relay stamps nothing: no fan-out figure is not a violation; its presence limit is 50.
    let bare = judge(&rooms(Target::Bare, 60.0, 1.0, 0), 50.0);
    assert_eq!(
        bare.violations,
        vec!["presence p99 60.0 ms exceeds 50 ms"],
        "{bare:?}"
    );
    assert_eq!(bare.presence_p99_ms, Some(50.0));
    let late = judge(&rooms(Target::Wagu, 90.0, 0.99, 10), 100.0);
    assert_eq!(
        late.violations,
        vec!["presence delivered 0.9900 is below 0.999"]
    );
    assert!(!late.passed);
    // Wagu without fan-out samples is still a violation (it should stamp every batch).
    assert!(!judge(&rooms(Target::Wagu, 90.0, 1.0, 0), 100.0).passed);
    // Streams on another target: chat delivery is gated, the fan-out is not expected.
    let mut s = streams(50.0, 0.0);
    s.target = Target::Centrifugo;
    if let Detail::Streams(d) = &mut s.detail {
        d.chat_fanout_ms.samples = 0;
        d.chat.delivered_share = 0.95;
    }
    let slo = judge(&s, 50.0);
    assert_eq!(
        slo.violations,
        vec!["stream chat delivered 0.9500 is below 0.999"]
    );
}
