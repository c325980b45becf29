//! `POST /api/drafts` against a real OpenAI-compatible server: llama.cpp's `llama-server`
//! serving a tiny llama model with random weights (both made by `deploy/llama/install.sh`).
//! Its text is gibberish; the HTTP, JSON and streaming path, the refusal of image input (no
//! vision projector loaded) and a hung server's timeout are real.
//!
//! Needs `WAGU_TEST_LLAMA_SERVER` (the binary) and `WAGU_TEST_LLAMA_MODEL` (the .gguf). Without
//! them every test prints a line starting `SKIPPED` and passes; with them, anything that does
//! not work fails. Each test starts its own server on a free loopback port and kills it (by
//! its pid, through the child handle) when done.

mod common;

use common::{api, request, signup, start_app, test_config};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wagu_gateway::App;
use wagu_gateway::config::Config;
use wagu_gateway::drafts::photos::{DisplayPhoto, DraftPhotos, DraftPhotosError};
use wagu_proto::records::{AccountId, PhotoId};

/// The binary and model, or `None` (after printing `SKIPPED`) when the variables are unset.
fn llama(test: &str) -> Option<(PathBuf, PathBuf)> {
    match (
        std::env::var_os("WAGU_TEST_LLAMA_SERVER"),
        std::env::var_os("WAGU_TEST_LLAMA_MODEL"),
    ) {
        (Some(server), Some(model)) => {
            let (server, model) = (PathBuf::from(server), PathBuf::from(model));
            assert!(
                server.is_file(),
                "WAGU_TEST_LLAMA_SERVER={} is not a file",
                server.display()
            );
            assert!(
                model.is_file(),
                "WAGU_TEST_LLAMA_MODEL={} is not a file",
                model.display()
            );
            Some((server, model))
        }
        _ => {
            println!(
                "SKIPPED {test}: set WAGU_TEST_LLAMA_SERVER and WAGU_TEST_LLAMA_MODEL \
                 (deploy/llama/install.sh prints them)"
            );
            None
        }
    }
}

/// A running llama-server, killed on drop.
struct LlamaServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl LlamaServer {
    async fn start(binary: &PathBuf, model: &PathBuf) -> LlamaServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("wagu-llama-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .args(["-m"])
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "-c", "2048", "-t", "1", "-np", "1", "--seed", "7", "--temp", "0",
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut server = LlamaServer { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "llama-server exited ({status}); its log:\n{}",
                    std::fs::read_to_string(&server.log).unwrap_or_default()
                );
            }
            let url = format!("http://127.0.0.1:{port}/health");
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "llama-server not healthy within 60 s; its log:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({sig})");
    }

    fn config(&self, max_tokens: u32) -> Config {
        let mut c = test_config();
        c.drafts.base_url = Some(format!("http://127.0.0.1:{}/v1", self.port));
        c.drafts.model = Some("wagu-tiny-random".into());
        c.drafts.max_completion_tokens = max_tokens;
        c.drafts.timeout_secs = 30;
        c
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

struct OnePhoto(Vec<u8>);

impl DraftPhotos for OnePhoto {
    fn display_jpeg<'a>(
        &'a self,
        _owner: &'a AccountId,
        id: &'a PhotoId,
    ) -> BoxFuture<'a, Result<Option<DisplayPhoto>, DraftPhotosError>> {
        let found = (id.0 == "bibimbap").then(|| DisplayPhoto {
            jpeg: self.0.clone().into(),
            width: 640,
            height: 480,
        });
        Box::pin(async move { Ok(found) })
    }
}

fn photo() -> Vec<u8> {
    let img = image::ImageBuffer::from_fn(640, 480, |x, y| {
        image::Rgb([200u8, (x % 200) as u8, (y % 120) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    out
}

async fn gateway(config: Config) -> (common::TestServer, String) {
    let app = App::build_with_photos(config, Arc::new(OnePhoto(photo())))
        .await
        .unwrap();
    let server = start_app(app).await;
    let session = signup(
        server.addr,
        &format!("l{}@example.com", common::rand_u64()),
        "L",
    )
    .await;
    (
        server,
        session["access_token"].as_str().unwrap().to_string(),
    )
}

/// `POST /api/drafts` as the signed-in `token`.
async fn draft(gw: &common::TestServer, token: &str, body: &str) -> (u16, Value) {
    api(gw.addr, "POST", "/api/drafts", Some(token), body).await
}

/// The same, read whole as a raw answer: status, head, body (a stream of events).
async fn draft_stream(gw: &common::TestServer, token: &str, body: &str) -> (u16, String, String) {
    let auth = format!("Bearer {token}");
    request(
        gw.addr,
        "POST",
        "/api/drafts",
        &[("Authorization", &auth)],
        body,
    )
    .await
}

fn ask(photos: &[&str], stream: bool) -> String {
    json!({
        "place_id": "sample:0002", "photos": photos, "menu": [{"name": "삼겹살"}],
        "rating": 4, "keywords": ["고소함"], "language": "ko", "stream": stream,
    })
    .to_string()
}

#[tokio::test]
async fn a_real_llama_server_drafts_a_review_as_json_and_as_a_stream() {
    let Some((bin, model)) = llama("a_real_llama_server_drafts_a_review_as_json_and_as_a_stream")
    else {
        return;
    };
    let llama = LlamaServer::start(&bin, &model).await;
    let (gw, token) = gateway(llama.config(24)).await;
    let (status, d) = draft(&gw, &token, &ask(&[], false)).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["source"], "ai");
    assert_eq!(d["text_origin"], "ai_draft");
    assert!(!d["text"].as_str().unwrap().is_empty(), "{d}");
    assert!(d["model"].as_str().is_some_and(|m| !m.is_empty()), "{d}");

    let (status, head, body) = draft_stream(&gw, &token, &ask(&[], true)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("text/event-stream"),
        "{head}"
    );
    let ev = common::sse_events(&body);
    let deltas: Vec<&str> = ev
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert!(deltas.len() > 1, "several deltas: {body}");
    let (last, done) = ev.last().unwrap();
    assert_eq!(last, "done", "{body}");
    assert_eq!(
        done["text"].as_str().unwrap(),
        wagu_gateway::drafts::openai::clean(&deltas.concat())
    );
}

#[tokio::test]
async fn a_real_llama_server_without_a_vision_projector_refuses_photos_with_its_own_code() {
    let Some((bin, model)) =
        llama("a_real_llama_server_without_a_vision_projector_refuses_photos_with_its_own_code")
    else {
        return;
    };
    let llama = LlamaServer::start(&bin, &model).await;
    let (gw, token) = gateway(llama.config(16)).await;
    let (status, e) = draft(&gw, &token, &ask(&["bibimbap"], false)).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (502, Some("model_rejects_images")),
        "{e}"
    );
    let (status, _, body) = draft_stream(&gw, &token, &ask(&["bibimbap"], true)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("model_rejects_images"), "{body}");
    // With photos the model cannot see, the template still drafts.
    let mut body: Value = serde_json::from_str(&ask(&["bibimbap"], false)).unwrap();
    body["drafter"] = json!("template");
    let (status, d) = draft(&gw, &token, &body.to_string()).await;
    assert_eq!(
        (status, d["source"].as_str()),
        (200, Some("template")),
        "{d}"
    );
}

#[tokio::test]
async fn a_hung_llama_server_is_a_504_timeout() {
    let Some((bin, model)) = llama("a_hung_llama_server_is_a_504_timeout") else {
        return;
    };
    let llama = LlamaServer::start(&bin, &model).await;
    let mut config = llama.config(16);
    config.drafts.timeout_secs = 2;
    let (gw, token) = gateway(config).await;
    // Stopped, it still accepts connections (the kernel's backlog) but never answers.
    llama.signal(libc::SIGSTOP);
    let t0 = Instant::now();
    let (status, e) = draft(&gw, &token, &ask(&[], false)).await;
    llama.signal(libc::SIGCONT);
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (504, Some("model_timeout")),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    // And once it runs again, drafts flow again.
    let (status, d) = draft(&gw, &token, &ask(&[], false)).await;
    assert_eq!(status, 200, "{d}");
}
