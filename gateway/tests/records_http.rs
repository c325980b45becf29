//! The records API as a new user meets it, over real HTTP against a real server: sign up, find
//! a place by name and by map area, write a post, edit it, read the feeds, restart the server
//! and find everything still there — on the embedded store and on the test bed's Cassandra.
//! Plus every way to get it wrong: bad tokens, expired tokens, reused refresh tokens, hostile
//! bodies, other people's posts.

mod common;

use common::api::Api;
use common::{Client, http, request, signup, start, test_config};
use serde_json::{Value, json};
use wagu_gateway::Config;

fn j(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The `error.code` of an error body.
fn code(body: &str) -> String {
    j(body)["error"]["code"].as_str().unwrap_or("").to_string()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {page}"))
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

/// The whole new-user story against one configuration; `config` is reused for the restart.
async fn walkthrough(config: Config) {
    let tag = common::rand_u64() % 1_000_000;
    let server = start(config.clone()).await;
    let addr = server.addr;

    // Sign up; the email is taken afterwards, whatever its case.
    let email = format!("minji{tag}@example.com");
    let session = signup(addr, &email, "민지").await;
    let access = session["access_token"].as_str().unwrap().to_string();
    let me = session["account"]["id"].as_str().unwrap().to_string();
    let (s, v) = Api::new(addr).post("/api/auth/signup", json!({"email": email.to_uppercase(), "password": "another password", "display_name": "x"}))
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("taken")),
        "{v}"
    );
    let (s, v) = Api::new(addr).bearer(&access).get("/api/me").await;
    assert_eq!((s, v["id"].as_str()), (200, Some(me.as_str())), "{v}");

    // Add two places (Korean and Latin names) and find them by name and by area.
    let mut place_ids = Vec::new();
    for (name, lat, lng) in [
        (format!("을지로 골뱅이 {tag}"), 37.5660, 126.9910),
        (format!("Bistro Paul {tag}"), 37.5662, 126.9915),
    ] {
        let (s, v) = Api::new(addr)
            .bearer(&access)
            .post(
                "/api/places",
                json!({"name": name, "category": "Korean", "address": "Euljiro 3-ga",
                   "location": {"lat": lat, "lng": lng}, "hours": "Mo-Sa 11:00-22:00"}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["category"], "korean");
        place_ids.push(v["id"].as_str().unwrap().to_string());
    }
    let (s, v) = Api::new(addr)
        .get(&format!(
            "/api/places?q=%EC%9D%84%EC%A7%80%EB%A1%9C%20%EA%B3%A8%EB%B1%85%EC%9D%B4%20{tag}"
        ))
        .await; // "을지로 골뱅이 {tag}"
    assert_eq!((s, ids(&v)), (200, vec![place_ids[0].clone()]), "{v}");
    let (s, v) = Api::new(addr)
        .get(&format!("/api/places?q=PAUL%20{tag}"))
        .await;
    assert_eq!((s, ids(&v)), (200, vec![place_ids[1].clone()]), "{v}");
    let bbox = "37.5655,126.9905,37.5665,126.9920";
    let mut in_box = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/places?bbox={bbox}&limit=1&cursor={c}"),
            None => format!("/api/places?bbox={bbox}&limit=1"),
        };
        let (s, v) = Api::new(addr).get(&path).await;
        assert_eq!(s, 200, "{v}");
        in_box.extend(ids(&v));
        match v["next"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    for p in &place_ids {
        assert_eq!(
            in_box.iter().filter(|x| *x == p).count(),
            1,
            "{p} once in {in_box:?}"
        );
    }

    // Write a post, retry it with the same key, edit it.
    let draft = json!({"place_id": place_ids[0], "visit_date": "2026-11-20",
        "menu": [{"name": "골뱅이무침", "price": 25000}, {"name": "계란말이"}],
        "rating": 5, "text": "비 오는 날 최고", "text_origin": "author"});
    let auth = format!("Bearer {access}");
    let key = format!("retry-{tag}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Idempotency-Key", key.as_str()),
    ];
    let (s, head, body) = request(addr, "POST", "/api/posts", &headers, &draft.to_string()).await;
    assert_eq!(s, 201, "{body}");
    assert!(!head.to_lowercase().contains("idempotent-replayed"));
    let post = j(&body);
    let post_id = post["id"].as_str().unwrap().to_string();
    assert_eq!(post["author"], me.as_str());
    assert_eq!(post["author_name"], "민지");
    assert_eq!(post["place_name"], format!("을지로 골뱅이 {tag}"));
    let (s, head, body) = request(addr, "POST", "/api/posts", &headers, &draft.to_string()).await;
    assert_eq!(
        (s, j(&body)["id"].as_str()),
        (201, Some(post_id.as_str())),
        "{body}"
    );
    assert!(
        head.to_lowercase().contains("idempotent-replayed: true"),
        "{head}"
    );
    let mut other = draft.clone();
    other["rating"] = json!(1);
    let (s, _, body) = request(addr, "POST", "/api/posts", &headers, &other.to_string()).await;
    assert_eq!(
        (s, code(&body)),
        (422, "idempotency_mismatch".into()),
        "{body}"
    );

    let (s, v) = Api::new(addr)
        .bearer(&access)
        .patch(
            &format!("/api/posts/{post_id}"),
            json!({"text": "비 오는 날엔 역시", "text_origin": "ai_edited"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["text"], "비 오는 날엔 역시");
    assert_eq!(v["text_origin"], "ai_edited");
    assert_eq!(v["rating"], 5, "untouched fields stay");

    // Someone else may read it but not change it.
    let other_session = signup(addr, &format!("jun{tag}@example.com"), "준").await;
    let other_access = other_session["access_token"].as_str().unwrap();
    for (method, body) in [("PATCH", json!({"rating": 1})), ("DELETE", Value::Null)] {
        let (s, v) = Api::new(addr)
            .bearer(other_access)
            .send(method, &format!("/api/posts/{post_id}"), body)
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{v}"
        );
    }

    // A second post, so the feeds have an order to keep.
    let (s, v) = Api::new(addr)
        .bearer(&access)
        .post(
            "/api/posts",
            json!({"place_id": place_ids[1], "visit_date": "2026-11-21", "rating": 4,
               "text": "Onion soup"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let second = v["id"].as_str().unwrap().to_string();
    let feeds = [
        format!("/api/accounts/{me}/posts"),
        "/api/posts?near=37.5661,126.9912&radius_km=1".to_string(),
    ];
    for f in &feeds {
        let (s, v) = Api::new(addr).get(f).await;
        assert_eq!(
            (s, ids(&v)),
            (200, vec![second.clone(), post_id.clone()]),
            "{f}: {v}"
        );
        let (_, p1) = Api::new(addr)
            .get(&format!(
                "{f}{}limit=1",
                if f.contains('?') { "&" } else { "?" }
            ))
            .await;
        assert_eq!(ids(&p1), vec![second.clone()], "{f}");
        let next = p1["next"].as_str().expect("a next page").to_string();
        let sep = if f.contains('?') { "&" } else { "?" };
        let (_, p2) = Api::new(addr)
            .get(&format!("{f}{sep}limit=1&cursor={next}"))
            .await;
        assert_eq!(ids(&p2), vec![post_id.clone()], "{f}");
    }
    let (s, v) = Api::new(addr)
        .get(&format!("/api/places/{}/posts", place_ids[0]))
        .await;
    assert_eq!((s, ids(&v)), (200, vec![post_id.clone()]), "{v}");

    // Restart: everything is still there, and the old access token still works.
    server.stop().await;
    let server = start(config.clone()).await;
    let addr = server.addr;
    let (s, v) = Api::new(addr)
        .post(
            "/api/auth/login",
            json!({"email": email, "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(
        (s, v["account"]["id"].as_str()),
        (200, Some(me.as_str())),
        "{v}"
    );
    let (s, v) = Api::new(addr).bearer(&access).get("/api/me").await;
    assert_eq!(s, 200, "the key outlives the restart: {v}");
    let (s, v) = Api::new(addr).get(&format!("/api/posts/{post_id}")).await;
    assert_eq!(
        (s, v["text"].as_str()),
        (200, Some("비 오는 날엔 역시")),
        "{v}"
    );
    let (s, v) = Api::new(addr)
        .get(&format!("/api/accounts/{me}/posts"))
        .await;
    assert_eq!(
        (s, ids(&v)),
        (200, vec![second.clone(), post_id.clone()]),
        "{v}"
    );
    let (s, v) = Api::new(addr)
        .get(&format!("/api/places/{}", place_ids[1]))
        .await;
    assert_eq!(
        (s, v["hours"].as_str()),
        (200, Some("Mo-Sa 11:00-22:00")),
        "{v}"
    );

    // Delete: gone from the post and every feed.
    let (s, _) = Api::new(addr)
        .bearer(&access)
        .delete(&format!("/api/posts/{post_id}"))
        .await;
    assert_eq!(s, 204);
    let (s, v) = Api::new(addr).get(&format!("/api/posts/{post_id}")).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("unknown_post"))
    );
    for f in &feeds {
        let (_, v) = Api::new(addr).get(f).await;
        assert_eq!(ids(&v), vec![second.clone()], "{f}");
    }
    server.stop().await;
}

#[tokio::test]
async fn new_user_walkthrough_embedded() {
    walkthrough(test_config()).await;
}

#[tokio::test]
async fn new_user_walkthrough_cql() {
    let Some(config) = common::on_fresh_cql(test_config(), "new_user_walkthrough_cql", "wagu_http")
    else {
        return;
    };
    walkthrough(config.clone()).await;
    common::drop_keyspace(&config).await;
}

#[tokio::test]
async fn a_fresh_server_has_sample_places() {
    let server = start(test_config()).await;
    // Euljiro, where the sample data set puts restaurants.
    let (s, v) = Api::new(server.addr)
        .get("/api/places?bbox=37.55,126.97,37.58,127.00&limit=100")
        .await;
    assert_eq!(s, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert!(!items.is_empty(), "no sample places: {v}");
    assert!(
        items
            .iter()
            .all(|p| p["id"].as_str().unwrap().starts_with("sample:"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_reads_its_own_email_and_times_in_milliseconds_and_must_declare_json_bodies() {
    let server = start(test_config()).await;
    let addr = server.addr;
    let tag = common::rand_u64() % 1_000_000;
    let email = format!("Mina.{tag}@Example.COM");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let session = signup(addr, &email, "Mina").await;
    // Every time of the API is Unix milliseconds, the session's expiries included.
    let access_at = session["access_expires_at"].as_u64().unwrap();
    let refresh_at = session["refresh_expires_at"].as_u64().unwrap();
    let ttl = 900_000; // auth.access_ttl_secs, 900 by default
    assert!(
        access_at >= before + ttl - 1_000 && access_at <= before + ttl + 60_000,
        "access_expires_at {access_at} is not about {before} + {ttl} ms"
    );
    let month = 2_592_000_000; // auth.refresh_ttl_secs, 30 days
    assert!(
        refresh_at >= before + month - 1_000 && refresh_at <= before + month + 60_000,
        "refresh_expires_at {refresh_at} is not about {before} + {month} ms"
    );
    assert_eq!(session["token_type"], "Bearer");
    // The account's own email, stored lower-cased, is in /api/me (and only there).
    let access = session["access_token"].as_str().unwrap();
    let (s, me) = Api::new(addr).bearer(access).get("/api/me").await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["email"], email.to_lowercase(), "{me}");
    let id = me["id"].as_str().unwrap();
    let (s, public) = Api::new(addr).get(&format!("/api/accounts/{id}")).await;
    assert_eq!(s, 200, "{public}");
    assert!(
        public.get("email").is_none(),
        "a profile is public: {public}"
    );
    // Log-in ignores the email's case (and surrounding spaces).
    let (s, v) = Api::new(addr).post("/api/auth/login", json!({"email": format!("  {}  ", email.to_uppercase()), "password": "correct horse battery"}))
    .await;
    assert_eq!(s, 200, "{v}");
    // A body must be declared JSON: curl's default form type, text/plain and no type at all
    // are refused with 415, on the records API and on rooms and streams alike.
    let login = json!({"email": email, "password": "correct horse battery"}).to_string();
    for (path, body) in [
        ("/api/auth/login", login.as_str()),
        ("/api/rooms", r#"{"title":"Friday dinner"}"#),
        (
            "/api/streams",
            r#"{"title":"Live","place_id":"sample:0001"}"#,
        ),
    ] {
        for t in ["application/x-www-form-urlencoded", "text/plain", ""] {
            let (s, _, text) = request(addr, "POST", path, &[("Content-Type", t)], body).await;
            assert_eq!(
                (s, code(&text).as_str()),
                (415, "unsupported_media_type"),
                "POST {path} as {t:?}: {text}"
            );
        }
        let (s, _, text) = request(
            addr,
            "POST",
            path,
            &[("Content-Type", "application/json; charset=utf-8")],
            body,
        )
        .await;
        assert!(s == 200 || s == 201, "POST {path} as JSON: {s} {text}");
    }
    // An empty body needs no type where it is allowed: a room with every default.
    let (s, _, text) = request(addr, "POST", "/api/rooms", &[("Content-Type", "")], "").await;
    assert_eq!(s, 201, "{text}");
    server.stop().await;
}

#[tokio::test]
async fn tokens_refresh_rotate_and_die() {
    let mut config = test_config();
    config.auth.token_secret = Some("test-secret-test-secret-test-secret".into());
    let server = start(config).await;
    let addr = server.addr;
    let s0 = signup(addr, "rotate@example.com", "Rot").await;
    let r0 = s0["refresh_token"].as_str().unwrap().to_string();

    // No token, a garbage token, a malformed header, an expired token.
    let (s, v) = Api::new(addr).get("/api/me").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (s, v) = Api::new(addr).bearer("garbage").get("/api/me").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("invalid_token"))
    );
    let (s, _, body) = request(
        addr,
        "GET",
        "/api/me",
        &[("Authorization", "Basic abc")],
        "",
    )
    .await;
    assert_eq!((s, code(&body)), (401, "invalid_token".into()));
    let tokens = wagu_gateway::auth::Tokens::new(b"test-secret-test-secret-test-secret", 900, 3600);
    let id = wagu_proto::records::AccountId(s0["account"]["id"].as_str().unwrap().into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (expired, _) = tokens.issue(&id, "Rot", now - 3600);
    let (s, v) = Api::new(addr).bearer(&expired).get("/api/me").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("token_expired")),
        "{v}"
    );
    let (fresh, _) = tokens.issue(&id, "Rot", now);
    let (s, _) = Api::new(addr).bearer(&fresh).get("/api/me").await;
    assert_eq!(s, 200, "a token of the shared key is accepted (any node)");

    // Refresh rotates; a spent token presented at once (the client's own concurrent refresh)
    // is refused but the newest token lives on.
    let (s, s1) = Api::new(addr)
        .post("/api/auth/refresh", json!({"refresh_token": r0}))
        .await;
    assert_eq!(s, 200, "{s1}");
    let r1 = s1["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r0, r1);
    let (s, v) = Api::new(addr)
        .post("/api/auth/refresh", json!({"refresh_token": r0}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("invalid_refresh")),
        "reuse"
    );
    let (s, s2) = Api::new(addr)
        .post("/api/auth/refresh", json!({"refresh_token": r1}))
        .await;
    assert_eq!(s, 200, "within the grace the family survives: {s2}");
    server.stop().await;

    // With no grace, a spent token replayed ends the whole family (a stolen copy).
    let mut config = test_config();
    config.auth.refresh_reuse_grace_secs = 0;
    let server = start(config).await;
    let addr = server.addr;
    let s0 = signup(addr, "rotate@example.com", "Rot").await;
    let r0 = s0["refresh_token"].as_str().unwrap().to_string();
    let (s, s1) = Api::new(addr)
        .post("/api/auth/refresh", json!({"refresh_token": r0}))
        .await;
    assert_eq!(s, 200, "{s1}");
    let r1 = s1["refresh_token"].as_str().unwrap().to_string();
    let (s, _) = Api::new(addr)
        .post("/api/auth/refresh", json!({"refresh_token": r0}))
        .await;
    assert_eq!(s, 401, "reuse");
    let (s, _) = Api::new(addr)
        .post("/api/auth/refresh", json!({"refresh_token": r1}))
        .await;
    assert_eq!(s, 401, "the family died with the reuse");

    // Logout ends a fresh family.
    let (s, s2) = Api::new(addr)
        .post(
            "/api/auth/login",
            json!({"email": "ROTATE@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(s, 200, "{s2}");
    let r2 = s2["refresh_token"].as_str().unwrap().to_string();
    let (s, _) = Api::new(addr)
        .post("/api/auth/logout", json!({"refresh_token": r2}))
        .await;
    assert_eq!(s, 204);
    let (s, _) = Api::new(addr)
        .post("/api/auth/refresh", json!({"refresh_token": r2}))
        .await;
    assert_eq!(s, 401);

    // Wrong password and unknown email read the same.
    for (email, pw) in [
        ("rotate@example.com", "wrong password"),
        ("nobody@example.com", "whatever!"),
    ] {
        let (s, v) = Api::new(addr)
            .post("/api/auth/login", json!({"email": email, "password": pw}))
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (401, Some("invalid_credentials"))
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn hostile_and_malformed_requests_get_clear_errors() {
    let server = start(test_config()).await;
    let addr = server.addr;
    let session = signup(addr, "hostile@example.com", "H").await;
    let access = session["access_token"].as_str().unwrap().to_string();
    let auth = format!("Bearer {access}");
    let a = [("Authorization", auth.as_str())];

    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        ("POST", "/api/auth/signup".into(), "{not json".into(), 400, "invalid"),
        ("POST", "/api/auth/signup".into(),
            json!({"email": "x@y.z", "password": "short", "display_name": "a"}).to_string(), 400, "invalid"),
        ("POST", "/api/auth/signup".into(),
            json!({"email": "not-an-email", "password": "long enough", "display_name": "a"}).to_string(), 400, "invalid"),
        ("POST", "/api/auth/signup".into(),
            json!({"email": "a@b.co", "password": "long enough", "display_name": "a", "admin": true}).to_string(), 400, "invalid"),
        ("POST", "/api/posts".into(), format!("{{\"text\": \"{}\"}}", "x".repeat(70_000)), 413, "too_large"),
        ("POST", "/api/posts".into(),
            json!({"place_id": "nowhere", "visit_date": "2026-11-20", "rating": 3}).to_string(), 400, "invalid"),
        ("POST", "/api/places".into(),
            json!({"name": "x", "location": {"lat": 91.0, "lng": 0.0}}).to_string(), 400, "invalid"),
        ("POST", "/api/places".into(),
            json!({"name": "", "location": {"lat": 1.0, "lng": 0.0}}).to_string(), 400, "invalid"),
        ("GET", "/api/places?q=".into(), String::new(), 400, "invalid"),
        ("GET", "/api/places?q=a&bbox=1,2,3,4".into(), String::new(), 400, "invalid"),
        ("GET", "/api/places?bbox=1,2,3".into(), String::new(), 400, "invalid"),
        ("GET", "/api/places?bbox=-80,-170,80,170".into(), String::new(), 400, "invalid"),
        ("GET", "/api/places?q=a&limit=0".into(), String::new(), 400, "invalid"),
        ("GET", "/api/places?q=a&cursor=garbage".into(), String::new(), 400, "invalid"),
        ("GET", "/api/places?q=a&bogus=1".into(), String::new(), 400, "invalid"),
        ("GET", "/api/posts?near=37.5,127&radius_km=50".into(), String::new(), 400, "invalid"),
        ("GET", "/api/posts?near=100,127".into(), String::new(), 400, "invalid"),
        ("GET", "/api/posts/AAAAAAAAAAAAAAAAAAAAAA".into(), String::new(), 404, "unknown_post"),
        ("GET", "/api/posts/..%2F..%2Fetc".into(), String::new(), 404, "unknown_post"),
        ("GET", "/api/places/nowhere".into(), String::new(), 404, "unknown_place"),
        ("GET", "/api/accounts/nobody".into(), String::new(), 404, "unknown_account"),
    ];
    for (method, path, body, status, want) in cases {
        let (s, _, text) = request(addr, method, &path, &a, &body).await;
        assert_eq!(
            (s, code(&text)),
            (status, want.to_string()),
            "{method} {path}: {text}"
        );
        assert!(!j(&text)["error"]["message"].as_str().unwrap().is_empty());
    }

    // A place to post about, then drafts that break one rule each.
    let (_, place) = Api::new(addr)
        .bearer(&access)
        .post(
            "/api/places",
            json!({"name": "Rule Diner", "location": {"lat": 37.5, "lng": 127.0}}),
        )
        .await;
    let pid = place["id"].as_str().unwrap();
    for bad in [
        json!({"place_id": pid, "visit_date": "2026-11-20", "rating": 9}),
        json!({"place_id": pid, "visit_date": "2099-01-01", "rating": 3}),
        json!({"place_id": pid, "visit_date": "2026-02-30", "rating": 3}),
        json!({"place_id": pid, "visit_date": "2026-11-20", "rating": 3, "menu": [{"name": ""}]}),
        json!({"place_id": pid, "visit_date": "2026-11-20", "rating": 3, "photos": ["../../x"]}),
        json!({"place_id": pid, "visit_date": "2026-11-20", "rating": 3, "text_origin": "ai_draft"}),
        json!({"place_id": pid, "visit_date": "2026-11-20", "rating": 3, "text_origin": "robot"}),
    ] {
        let (s, v) = Api::new(addr)
            .bearer(&access)
            .post("/api/posts", bad.clone())
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("invalid")),
            "{bad}: {v}"
        );
    }
    let (s, _, body) = request(
        addr,
        "POST",
        "/api/posts",
        &[("Authorization", auth.as_str()), ("Idempotency-Key", "")],
        &json!({"place_id": pid, "visit_date": "2026-11-20", "rating": 3}).to_string(),
    )
    .await;
    assert_eq!((s, code(&body)), (400, "invalid".into()), "{body}");
    // Nothing of the refused posts was stored.
    let me = session["account"]["id"].as_str().unwrap();
    let (_, v) = Api::new(addr)
        .get(&format!("/api/accounts/{me}/posts"))
        .await;
    assert_eq!(ids(&v), Vec::<String>::new());
    // Without a token, writes are refused.
    let (s, v) = Api::new(addr).post("/api/posts", json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );

    // The OpenAPI document is served.
    let (s, body) = http(addr, "GET", "/api/openapi.json", "").await;
    assert_eq!(s, 200);
    assert!(j(&body)["paths"]["/api/posts/{id}"]["patch"].is_object());
    server.stop().await;
}

#[tokio::test]
async fn rooms_admit_accounts_and_guests() {
    let mut config = test_config();
    config.auth.token_secret = Some("room-secret-room-secret-room-secret".into());
    let server = start(config).await;
    let addr = server.addr;
    let session = signup(addr, "roomie@example.com", "Roomie").await;
    let access = session["access_token"].as_str().unwrap().to_string();
    let me = session["account"]["id"].as_str().unwrap().to_string();
    let room = common::create_room(addr, "{}").await;

    // A guest joins by the link alone and has no account.
    let mut guest = Client::new(addr).await;
    let w = guest.join(&room.share, "Guest", None).await;
    let w = serde_json::to_value(&w).unwrap();
    assert!(w["room"]["participants"][0].get("account").is_none(), "{w}");

    // A signed-in friend is shown with the account.
    let mut friend = Client::new(addr).await;
    let r = friend
        .call(json!({"type": "join", "share": room.share, "name": "Roomie", "token": access}))
        .await;
    assert!(matches!(r, wagu_proto::ServerMessage::Ack { .. }), "{r:?}");
    let joined = guest
        .wait_for(|m| matches!(m, wagu_proto::ServerMessage::ParticipantJoined { .. }))
        .await;
    let joined = serde_json::to_value(&joined).unwrap();
    assert_eq!(joined["participant"]["account"], me.as_str(), "{joined}");

    // Bad tokens are refused with a typed error, and the connection may try again.
    let mut c = Client::new(addr).await;
    let r = c
        .call(json!({"type": "join", "share": room.share, "name": "X", "token": "garbage"}))
        .await;
    let r = serde_json::to_value(&r).unwrap();
    assert_eq!(r["code"], "invalid_token", "{r}");
    let r = c
        .call(json!({"type": "join", "share": room.share, "name": "X", "token": ""}))
        .await;
    let r = serde_json::to_value(&r).unwrap();
    assert_eq!(r["code"], "invalid_token", "{r}");
    let tokens = wagu_gateway::auth::Tokens::new(b"room-secret-room-secret-room-secret", 900, 3600);
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let (expired, _) = tokens.issue(
        &wagu_proto::records::AccountId(me.clone()),
        "Roomie",
        hour_ago,
    );
    let r = c
        .call(json!({"type": "join", "share": room.share, "name": "X", "token": expired}))
        .await;
    let r = serde_json::to_value(&r).unwrap();
    assert_eq!(r["code"], "token_expired", "{r}");
    let r = c
        .call(json!({"type": "join", "share": room.share, "name": "X"}))
        .await;
    assert!(
        matches!(r, wagu_proto::ServerMessage::Ack { .. }),
        "then a guest join: {r:?}"
    );
    server.stop().await;
}
