//! `POST /api/drafts` end to end through the gateway, against an OpenAI-compatible server
//! written here (axum on 127.0.0.1:0) that records every request and answers as the model
//! name asks: a canned answer, a stream, a slow answer, errors. Photos come from a fake photo
//! source holding real JPEGs made with `image`, one of them with EXIF (GPS text and an
//! orientation) that must never reach the model.
//!
//! Every test first sets `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_ORG_ID` and
//! `OPENAI_PROJECT_ID` to values that would break the call if read: only the configuration
//! may decide where the request goes and with which key.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use common::{api, request, signup, start_app, test_config};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};
use wagu_gateway::App;
use wagu_gateway::config::{Config, Secret};
use wagu_gateway::drafts::photos::{DisplayPhoto, DraftPhotos, DraftPhotosError};
use wagu_proto::records::{AccountId, PhotoId};

const GPS_TEXT: &[u8] = b"GPS 37.5665N 126.9780E";
const KEY: &str = "sk-wagu-test-key";

fn poison_openai_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test calls this before starting anything that reads the environment;
        // `Once` makes the others wait until it is done.
        unsafe {
            std::env::set_var("OPENAI_API_KEY", "sk-from-env-must-not-be-used");
            std::env::set_var("OPENAI_BASE_URL", "http://127.0.0.1:9/from-env");
            std::env::set_var("OPENAI_ORG_ID", "org-from-env");
            std::env::set_var("OPENAI_PROJECT_ID", "proj-from-env");
        }
    });
}

// ---- photos -------------------------------------------------------------------------------

/// A JPEG of `w`×`h`, warm and bright; with `exif_orientation`, an EXIF block (orientation and
/// a GPS-looking text) right after the start marker, as a phone camera writes one.
fn jpeg(w: u32, h: u32, exif_orientation: Option<u16>) -> Vec<u8> {
    let img =
        image::ImageBuffer::from_fn(w, h, |x, _| image::Rgb([230u8, 190, (x % 64) as u8 + 60]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    let Some(o) = exif_orientation else {
        return out;
    };
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"Exif\0\0II\x2a\x00\x08\x00\x00\x00");
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one IFD entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&(o as u32).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    tiff.extend_from_slice(GPS_TEXT);
    let mut with = out[..2].to_vec();
    with.extend_from_slice(&[0xFF, 0xE1]);
    with.extend_from_slice(&((tiff.len() + 2) as u16).to_be_bytes());
    with.extend_from_slice(&tiff);
    with.extend_from_slice(&out[2..]);
    with
}

/// The markers before the image data of a JPEG.
fn jpeg_markers(b: &[u8]) -> Vec<u8> {
    assert_eq!(&b[..2], &[0xFF, 0xD8], "a JPEG starts with SOI");
    let mut i = 2;
    let mut markers = Vec::new();
    while i + 4 <= b.len() {
        assert_eq!(b[i], 0xFF, "marker at {i}");
        let m = b[i + 1];
        markers.push(m);
        if m == 0xDA {
            break;
        }
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        i += 2 + len;
    }
    markers
}

/// Photos by owner: each account sees only its own.
#[derive(Default)]
struct FakePhotos {
    by_owner: Mutex<HashMap<(String, String), DisplayPhoto>>,
}

impl FakePhotos {
    fn add(&self, owner: &str, id: &str, jpeg: Vec<u8>) {
        let img = image::load_from_memory(&jpeg).unwrap();
        self.by_owner.lock().unwrap().insert(
            (owner.into(), id.into()),
            DisplayPhoto {
                jpeg: jpeg.into(),
                width: img.width(),
                height: img.height(),
            },
        );
    }
}

impl DraftPhotos for FakePhotos {
    fn display_jpeg<'a>(
        &'a self,
        owner: &'a AccountId,
        id: &'a PhotoId,
    ) -> BoxFuture<'a, Result<Option<DisplayPhoto>, DraftPhotosError>> {
        let found = self
            .by_owner
            .lock()
            .unwrap()
            .get(&(owner.0.clone(), id.0.clone()))
            .cloned();
        Box::pin(async move { Ok(found) })
    }
}

// ---- the fake model server ----------------------------------------------------------------

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Default)]
struct FakeModel {
    seen: Mutex<Vec<Seen>>,
}

const CANNED: &str = "평양냉면 국물이 깔끔했어요. 수육도 부드러웠고요.";

fn completion(model: &str, content: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000u32,
        "model": format!("{model}-served"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    })
}

fn chunk(model: &str, content: &str, finish: Option<&str>) -> String {
    let v = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000u32,
        "model": format!("{model}-served"),
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
    });
    format!("data: {v}\n\n")
}

fn sse(body: String) -> Response {
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn chat(
    State(fake): State<Arc<FakeModel>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        headers,
        body: body.clone(),
    });
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let stream = body["stream"] == true;
    match model.as_str() {
        "canned" if stream => {
            let mut b = String::new();
            for piece in ["평양냉면 국물이 ", "깔끔했어요. ", "수육도 부드러웠고요."] {
                b.push_str(&chunk(&model, piece, None));
            }
            b.push_str(&chunk(&model, "", Some("stop")));
            b.push_str("data: [DONE]\n\n");
            sse(b)
        }
        "canned" => axum::Json(completion(&model, json!(CANNED), "stop")).into_response(),
        "long" => axum::Json(completion(&model, json!("끝없이 이어지는"), "length")).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            axum::Json(completion(&model, json!(CANNED), "stop")).into_response()
        }
        "stalls" => {
            // One piece, then nothing until long after the deadline.
            let first = futures_util::stream::once(async move {
                Ok::<_, std::convert::Infallible>(chunk("stalls", "처음 ", None))
            });
            let rest = futures_util::stream::once(async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, std::convert::Infallible>("data: [DONE]\n\n".to_string())
            });
            let body = axum::body::Body::from_stream(futures_util::StreamExt::chain(first, rest));
            ([("content-type", "text/event-stream")], body).into_response()
        }
        "down" => (StatusCode::SERVICE_UNAVAILABLE, "upstream overloaded").into_response(),
        "blind" => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "Invalid content type. image_url is only supported by certain models.", "type": "invalid_request_error", "param": "messages", "code": null}})),
        )
            .into_response(),
        "unknown-model" => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"message": "The model `unknown-model` does not exist", "type": "invalid_request_error", "param": null, "code": "model_not_found"}})),
        )
            .into_response(),
        "echo-key" => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"message": format!("Incorrect API key provided: {}", KEY), "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})),
        )
            .into_response(),
        "empty" => axum::Json(completion(&model, json!("   "), "stop")).into_response(),
        "garbage" => ([("content-type", "application/json")], "<html>oops</html>").into_response(),
        _ => (StatusCode::NOT_FOUND, "no such fake").into_response(),
    }
}

async fn start_fake() -> (SocketAddr, Arc<FakeModel>) {
    let fake = Arc::new(FakeModel::default());
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(chat))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, fake)
}

// ---- the gateway --------------------------------------------------------------------------

struct Setup {
    server: common::TestServer,
    token: String,
    me: String,
    photos: Arc<FakePhotos>,
}

fn with_model(fake: SocketAddr, model: &str) -> Config {
    let mut c = test_config();
    c.drafts.base_url = Some(format!("http://{fake}/v1"));
    c.drafts.model = Some(model.into());
    c.drafts.api_key = Some(Secret(KEY.into()));
    c.drafts.max_completion_tokens = 321;
    c
}

async fn setup(config: Config) -> Setup {
    poison_openai_env();
    let photos = Arc::new(FakePhotos::default());
    let app = App::build_with_photos(config, photos.clone())
        .await
        .unwrap();
    let server = start_app(app).await;
    let tag = common::rand_u64();
    let session = signup(server.addr, &format!("d{tag}@example.com"), "민지").await;
    let me = session["account"]["id"].as_str().unwrap().to_string();
    photos.add(&me, "landscape", jpeg(800, 600, None));
    // Stored 640×480, shown rotated a quarter turn: a portrait photo.
    photos.add(&me, "phone", jpeg(640, 480, Some(6)));
    Setup {
        server,
        token: session["access_token"].as_str().unwrap().to_string(),
        me,
        photos,
    }
}

fn ask(photos: &[&str], language: &str) -> Value {
    json!({
        "place_id": "sample:0001",
        "photos": photos,
        "menu": [{"name": "평양냉면", "price": 15000}, {"name": "수육"}],
        "rating": 5,
        "keywords": ["담백", "줄 서는 집"],
        "language": language,
    })
}

async fn draft(s: &Setup, body: &Value) -> (u16, Value) {
    api(
        s.server.addr,
        "POST",
        "/api/drafts",
        Some(&s.token),
        &body.to_string(),
    )
    .await
}

async fn stream(s: &Setup, body: &Value) -> (u16, String, String) {
    let auth = format!("Bearer {}", s.token);
    let mut body = body.clone();
    body["stream"] = json!(true);
    request(
        s.server.addr,
        "POST",
        "/api/drafts",
        &[("Authorization", &auth)],
        &body.to_string(),
    )
    .await
}

// ---- tests --------------------------------------------------------------------------------

#[tokio::test]
async fn the_model_gets_the_configured_model_key_prompts_and_metadata_free_jpegs() {
    let (fake_addr, fake) = start_fake().await;
    let s = setup(with_model(fake_addr, "canned")).await;
    let (status, d) = draft(&s, &ask(&["landscape", "phone"], "ko")).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["text"], CANNED);
    assert_eq!(d["source"], "ai");
    assert_eq!(d["model"], "canned");
    assert_eq!(d["text_origin"], "ai_draft");
    assert_eq!(d["text_origin_if_edited"], "ai_edited");
    assert_eq!(d["photos_used"], 2);
    assert_eq!(d["truncated"], false);

    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one call, no retry");
    let req = &seen[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.headers["authorization"], format!("Bearer {KEY}"));
    assert!(req.headers.get("openai-organization").is_none());
    assert!(req.headers.get("openai-project").is_none());
    let b = &req.body;
    assert_eq!(b["model"], "canned");
    assert_eq!(b["max_completion_tokens"], 321);
    assert!(
        b.get("max_tokens").is_none(),
        "the deprecated limit is not sent"
    );
    assert!(b.get("stream").is_none() || b["stream"] == false);
    let messages = b["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    assert!(messages[0]["content"].as_str().unwrap().contains("한국어"));
    assert_eq!(messages[1]["role"], "user");
    let parts = messages[1]["content"].as_array().unwrap();
    assert_eq!(parts[0]["type"], "text");
    let prompt = parts[0]["text"].as_str().unwrap();
    for needle in [
        "보름달비빔국수",
        "noodles",
        "평양냉면, 수육",
        "5점",
        "담백, 줄 서는 집",
        "2장",
    ] {
        assert!(prompt.contains(needle), "prompt lacks {needle}: {prompt}");
    }
    assert!(!prompt.contains("민지"), "nothing about the author");
    let images: Vec<&Value> = parts.iter().filter(|p| p["type"] == "image_url").collect();
    assert_eq!(images.len(), 2);
    let mut sizes = Vec::new();
    for img in images {
        assert_eq!(img["image_url"]["detail"], "low");
        let url = img["image_url"]["url"].as_str().unwrap();
        let b64 = url.strip_prefix("data:image/jpeg;base64,").expect(url);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let markers = jpeg_markers(&bytes);
        assert!(
            markers
                .iter()
                .all(|m| !(0xE1..=0xEF).contains(m) && *m != 0xFE),
            "no EXIF/XMP/ICC/comment segments: {markers:x?}"
        );
        assert!(!bytes.windows(4).any(|w| w == b"Exif"));
        assert!(!bytes.windows(GPS_TEXT.len()).any(|w| w == GPS_TEXT));
        let decoded =
            image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
        sizes.push((decoded.width(), decoded.height()));
    }
    // Shrunk to 512 on the long side; the phone photo turned upright by its EXIF orientation.
    assert_eq!(sizes, vec![(512, 384), (384, 512)]);
}

#[tokio::test]
async fn without_a_model_the_template_drafts_in_korean_and_english_and_says_so() {
    let s = setup(test_config()).await;
    let (status, d) = draft(&s, &ask(&["landscape", "phone"], "ko")).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["source"], "template");
    assert!(d.get("model").is_none());
    assert_eq!(d["text_origin"], "template_draft");
    assert_eq!(d["text_origin_if_edited"], "author");
    assert_eq!(d["photos_used"], 2);
    assert_eq!(
        d["text"],
        "보름달비빔국수(noodles)에 다녀왔어요. 평양냉면, 수육을 주문했어요. 별점 5점, 정말 \
         만족스러웠어요. 사진 2장(세로 1장, 가로 1장)을 남겼어요. 밝고 따뜻한 분위기였어요.\n\
         #담백 #줄서는집"
    );
    let (_, again) = draft(&s, &ask(&["landscape", "phone"], "ko")).await;
    assert_eq!(again, d, "deterministic");
    let (status, en) = draft(&s, &ask(&[], "en")).await;
    assert_eq!(status, 200, "{en}");
    assert_eq!(
        en["text"],
        "Had a meal at 보름달비빔국수 (noodles). I ordered 평양냉면 and 수육. Five stars: I \
         loved it.\n#담백 #줄서는집"
    );
}

/// A template draft kept as drafted is posted as `template_draft`, reads back so, and becomes
/// `author` once edited: on the store `config` names.
async fn kept_template_draft_round_trip(config: Config) {
    let s = setup(config).await;
    let (status, place) = api(
        s.server.addr,
        "POST",
        "/api/places",
        Some(&s.token),
        &json!({"name": "국수집", "category": "noodles", "location": {"lat": 37.57, "lng": 126.99}})
            .to_string(),
    )
    .await;
    assert_eq!(status, 201, "{place}");
    let mut ask = ask(&[], "en");
    ask["place_id"] = place["id"].clone();
    let (status, d) = draft(&s, &ask).await;
    assert_eq!(status, 200, "{d}");
    assert!(
        d["text"]
            .as_str()
            .unwrap()
            .starts_with("Had a meal at 국수집 (noodles).")
    );
    let post = json!({
        "place_id": place["id"], "visit_date": "2026-01-02", "rating": 5,
        "text": d["text"], "text_origin": d["text_origin"],
    });
    let (status, p) = api(
        s.server.addr,
        "POST",
        "/api/posts",
        Some(&s.token),
        &post.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    let path = format!("/api/posts/{}", p["id"].as_str().unwrap());
    let (_, back) = api(s.server.addr, "GET", &path, None, "").await;
    assert_eq!(back["text_origin"], "template_draft");
    assert_eq!(back["text"], d["text"]);
    let edit = json!({"text": "My own words.", "text_origin": d["text_origin_if_edited"]});
    let (status, edited) = api(
        s.server.addr,
        "PATCH",
        &path,
        Some(&s.token),
        &edit.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    let (_, back) = api(s.server.addr, "GET", &path, None, "").await;
    assert_eq!(back["text_origin"], "author");
}

#[tokio::test]
async fn a_kept_template_draft_is_posted_as_template_draft_and_reads_back_embedded() {
    kept_template_draft_round_trip(test_config()).await;
}

#[tokio::test]
async fn a_kept_template_draft_is_posted_as_template_draft_and_reads_back_cql() {
    let Some(config) = common::on_fresh_cql(
        test_config(),
        "a_kept_template_draft_is_posted_as_template_draft_and_reads_back_cql",
        "wagu_drafts",
    ) else {
        return;
    };
    kept_template_draft_round_trip(config.clone()).await;
    common::drop_keyspace(&config).await;
}

#[tokio::test]
async fn a_streamed_draft_arrives_as_deltas_then_the_whole_draft() {
    let (fake_addr, fake) = start_fake().await;
    let s = setup(with_model(fake_addr, "canned")).await;
    let (status, head, body) = stream(&s, &ask(&["landscape"], "ko")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let ev = common::sse_events(&body);
    let deltas: String = ev
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, CANNED);
    let (last, done) = ev.last().unwrap();
    assert_eq!(last, "done", "{body}");
    assert_eq!(done["text"], CANNED);
    assert_eq!(done["source"], "ai");
    assert_eq!(done["model"], "canned");
    assert_eq!(done["photos_used"], 1);
    assert_eq!(fake.seen.lock().unwrap()[0].body["stream"], true);

    // The template streams too: its whole text in one delta.
    let t = setup(test_config()).await;
    let (status, _, body) = stream(&t, &ask(&[], "en")).await;
    assert_eq!(status, 200);
    let ev = common::sse_events(&body);
    assert_eq!(ev.len(), 2, "{body}");
    assert_eq!(ev[0].1["text"], ev[1].1["text"]);
    assert_eq!(ev[1].1["source"], "template");
}

#[tokio::test]
async fn a_slow_model_is_a_504_timeout_and_a_stalled_stream_ends_in_a_timeout_event() {
    let (fake_addr, _fake) = start_fake().await;
    let mut c = with_model(fake_addr, "slow");
    c.drafts.timeout_secs = 1;
    let s = setup(c).await;
    let t0 = Instant::now();
    let (status, e) = draft(&s, &ask(&[], "en")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (504, Some("model_timeout")),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());

    let mut c = with_model(fake_addr, "stalls");
    c.drafts.timeout_secs = 1;
    let s = setup(c).await;
    let t0 = Instant::now();
    let (status, _, body) = stream(&s, &ask(&[], "en")).await;
    assert_eq!(status, 200);
    let ev = common::sse_events(&body);
    assert_eq!(
        ev[0],
        ("delta".to_string(), json!({"text": "처음 "})),
        "{body}"
    );
    let (last, err) = ev.last().unwrap();
    assert_eq!(last, "error", "{body}");
    assert_eq!(err["error"]["code"], "model_timeout");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn model_failures_get_their_own_status_and_code() {
    let (fake_addr, _fake) = start_fake().await;
    // A port held (bound) but not listening: connections to it are refused, and no other
    // server can take it meanwhile.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = held.local_addr().unwrap();
    for (config, status, code) in [
        (with_model(closed, "canned"), 502, "model_unreachable"),
        (with_model(fake_addr, "down"), 503, "model_unavailable"),
        (with_model(fake_addr, "unknown-model"), 502, "model_error"),
        (with_model(fake_addr, "echo-key"), 502, "model_error"),
        (with_model(fake_addr, "empty"), 502, "model_bad_answer"),
        (with_model(fake_addr, "garbage"), 502, "model_bad_answer"),
    ] {
        let model = config.drafts.model.clone().unwrap();
        let s = setup(config).await;
        let (st, e) = draft(&s, &ask(&[], "en")).await;
        assert_eq!(
            (st, e["error"]["code"].as_str()),
            (status, Some(code)),
            "{model}: {e}"
        );
        assert!(!e.to_string().contains(KEY), "the key never leaves");
        // Streamed, the same error comes before any event, with the same status.
        let (st, _, body) = stream(&s, &ask(&[], "en")).await;
        if code == "model_bad_answer" {
            // Known only once the answer is read: an `error` event.
            assert_eq!(st, 200, "{model}: {body}");
            assert_eq!(
                common::sse_events(&body).last().unwrap().0,
                "error",
                "{model}: {body}"
            );
        } else {
            assert_eq!(st, status, "{model}: {body}");
        }
    }
}

#[tokio::test]
async fn a_model_that_takes_no_images_is_a_distinct_error_and_the_template_still_answers() {
    let (fake_addr, _fake) = start_fake().await;
    let s = setup(with_model(fake_addr, "blind")).await;
    let (status, e) = draft(&s, &ask(&["landscape"], "en")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (502, Some("model_rejects_images")),
        "{e}"
    );
    let mut again = ask(&["landscape"], "en");
    again["drafter"] = json!("template");
    let (status, d) = draft(&s, &again).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["source"], "template");
}

#[tokio::test]
async fn a_model_that_hit_its_token_limit_says_the_draft_is_truncated() {
    let (fake_addr, _fake) = start_fake().await;
    let s = setup(with_model(fake_addr, "long")).await;
    let (status, d) = draft(&s, &ask(&[], "ko")).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["truncated"], true);
}

#[tokio::test]
async fn photos_that_are_not_the_authors_are_422_unknown_photo_and_bad_input_is_400() {
    let s = setup(test_config()).await;
    // Another account's photo, and one that does not exist.
    s.photos.add("someone-else", "theirs", jpeg(100, 100, None));
    for id in ["theirs", "missing"] {
        let (status, e) = draft(&s, &ask(&[id], "ko")).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (422, Some("unknown_photo")),
            "{e}"
        );
        assert!(e["error"]["message"].as_str().unwrap().contains(id));
    }
    assert!(!s.me.is_empty());
    let eleven: Vec<String> = (0..11).map(|i| format!("p{i}")).collect();
    for (change, needle) in [
        (json!({"photos": eleven}), "photos"),
        (json!({"photos": ["landscape", "landscape"]}), "repeat"),
        (json!({"photos": ["../x"]}), "photos"),
        (json!({"rating": 6}), "rating"),
        (json!({"keywords": vec!["k"; 11]}), "keywords"),
        (json!({"keywords": ["x".repeat(31)]}), "keywords"),
        (json!({"keywords": ["  "]}), "keywords"),
        (json!({"menu": [{"name": ""}]}), "menu"),
        (json!({"language": "fr"}), "expected `ko` or `en`"),
        (json!({"place_id": "sample:none"}), "place_id"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let mut body = ask(&[], "ko");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, e) = draft(&s, &body).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{change}: {e}"
        );
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{change}: {e}"
        );
    }
    let (status, e) = api(
        s.server.addr,
        "POST",
        "/api/drafts",
        None,
        &ask(&[], "ko").to_string(),
    )
    .await;
    assert_eq!(status, 401, "{e}");
}

#[tokio::test]
async fn drafts_count_against_the_write_rate_and_streaming_can_be_turned_off() {
    let mut c = test_config();
    c.rate.writes_per_minute = 2;
    c.drafts.stream = false;
    let s = setup(c).await;
    let (status, _, body) = stream(&s, &ask(&[], "en")).await;
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("streaming_off")),
        "{e}"
    );
    for _ in 0..2 {
        assert_eq!(draft(&s, &ask(&[], "en")).await.0, 200);
    }
    let (status, e) = draft(&s, &ask(&[], "en")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{e}"
    );
}

#[tokio::test]
async fn the_documented_template_example_is_what_the_server_answers() {
    let docs = include_str!("../../docs/RECORDS.md");
    let asked = docs
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("-d '{\"place_id\":\"sample:0001\",\"menu\"")
        })
        .map(|rest| {
            format!(
                "{{\"place_id\":\"sample:0001\",\"menu\"{}",
                rest.trim_end_matches('\'')
            )
        })
        .expect("the curl example in docs/RECORDS.md");
    let answered: Value = docs
        .lines()
        .find(|l| l.starts_with("{\"text\":\"보름달"))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("the answer example in docs/RECORDS.md");
    let s = setup(test_config()).await;
    let body: Value = serde_json::from_str(&asked).unwrap();
    let (status, d) = draft(&s, &body).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d, answered);
}
