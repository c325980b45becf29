//! Voice and video through the real SFU, with WebRTC peers nobody on this project wrote:
//! aiortc (Python) speaks the protocol over `/ws` and sends real Opus and VP8 over UDP
//! (`deploy/media/peers.py`). The test bed's venv comes from `deploy/install.sh`; without it
//! (`WAGU_TEST_AIORTC_PYTHON` unset) the tests say SKIPPED, and `deploy/test.sh` fails a run
//! where they did.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;

fn python(test: &str) -> Option<String> {
    wagu_storage::testbed::service("WAGU_TEST_AIORTC_PYTHON", test)
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/media/peers.py")
}

async fn run_peers(python: &str, args: &[&str]) -> Value {
    let (python, args): (String, Vec<String>) =
        (python.into(), args.iter().map(|a| a.to_string()).collect());
    // The peers run for a bounded time (peers.py gives up after 120 s).
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script())
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .expect("the aiortc peers run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "peers.py failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// The share (fraction of spectral energy) of `freq` in the loudest of a peer's tracks, and
/// that track's peak frequency.
fn strongest(window: &Value, freq: u32) -> (f64, f64) {
    window
        .as_object()
        .unwrap()
        .values()
        .map(|t| {
            (
                t["share"][freq.to_string()].as_f64().unwrap(),
                t["peak_hz"].as_f64().unwrap(),
            )
        })
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_aiortc_peers_hear_each_other_and_a_muted_one_goes_silent() {
    let Some(py) = python("three_aiortc_peers_hear_each_other_and_a_muted_one_goes_silent") else {
        return;
    };
    let srv = start(test_config()).await;
    let room = create_room(srv.addr, "{}").await;
    let ws = format!("ws://{}/ws", srv.addr);
    let report = run_peers(
        &py,
        &[
            // `--opt=value`: a token may start with `-`, which argparse would take for an option.
            "room",
            &format!("--ws={ws}"),
            &format!("--share={}", room.share),
            "--seconds=3",
        ],
    )
    .await;
    let peers = report["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 3, "{report}");
    let freqs = [440u32, 660, 880];
    for (i, p) in peers.iter().enumerate() {
        let before = &p["before_mute"];
        assert_eq!(
            before.as_object().unwrap().len(),
            2,
            "peer {i} decodes two tracks: {before}"
        );
        for (j, f) in freqs.iter().enumerate() {
            let (share, _) = strongest(before, *f);
            if i == j {
                assert!(
                    share < 0.01,
                    "peer {i} hears itself ({f} Hz share {share}): {p}"
                );
            } else {
                assert!(
                    share > 0.5,
                    "peer {i} does not hear {f} Hz (share {share}): {p}"
                );
            }
        }
        // Decoded audio is not silence.
        assert!(
            before
                .as_object()
                .unwrap()
                .values()
                .all(|t| t["rms"].as_f64().unwrap() > 500.0),
            "peer {i} decoded near-silence: {before}"
        );
        let states = p["media_state"].as_array().unwrap();
        assert_eq!(states.len(), 1, "peer {i} saw media_state");
        let publishers = states[0]["peers"].as_array().unwrap();
        assert_eq!(publishers.len(), 3, "{states:?}");
    }
    // Peer 0 (440 Hz) muted itself: the others no longer hear it, and still hear each other.
    for i in [1usize, 2] {
        let after = &peers[i]["after_mute"];
        let (share440, _) = strongest(after, 440);
        assert!(
            share440 < 0.05,
            "peer {i} still hears the muted peer: {after}"
        );
        let other = if i == 1 { 880 } else { 660 };
        let (share, _) = strongest(after, other);
        assert!(
            share > 0.5,
            "peer {i} lost {other} Hz after the mute: {after}"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_viewers_watch_a_stream_and_a_late_one_sees_a_picture_within_two_seconds() {
    let Some(py) =
        python("aiortc_viewers_watch_a_stream_and_a_late_one_sees_a_picture_within_two_seconds")
    else {
        return;
    };
    let srv = start(test_config()).await;
    let body = json!({"title": "live", "place_id": "p1", "location": {"lat": 37.5, "lng": 127.0}});
    let (status, text) = http(srv.addr, "POST", "/api/streams", &body.to_string()).await;
    assert_eq!(status, 201, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let ws = format!("ws://{}/ws", srv.addr);
    let report = run_peers(
        &py,
        &[
            "stream",
            &format!("--ws={ws}"),
            &format!("--stream={}", v["stream_id"].as_str().unwrap()),
            &format!("--streamer-key={}", v["streamer_key"].as_str().unwrap()),
            "--seconds=3",
        ],
    )
    .await;
    assert!(
        report["early_frames"].as_u64().unwrap() > 30,
        "the early viewer decoded too few frames: {report}"
    );
    assert!(
        report["late_frames"].as_u64().unwrap() > 10,
        "the late viewer decoded too few frames: {report}"
    );
    let first = report["late_first_picture_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("the late viewer never decoded a frame: {report}"));
    assert!(first < 2.0, "late viewer's first picture after {first} s");
    let (share, _) = strongest(&report["late_audio"], 440);
    assert!(
        share > 0.5,
        "the late viewer does not hear the streamer: {report}"
    );
    // A viewer that offers to send is refused with a typed error.
    let refused = &report["intruder_reply"];
    assert_eq!(refused["type"], "error", "{report}");
    assert_eq!(refused["code"], "forbidden", "{report}");
    srv.stop().await;
}
