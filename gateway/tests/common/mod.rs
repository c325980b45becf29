//! A test server on an ephemeral port with the in-memory room store (chosen explicitly: the
//! default is the embedded file, which `restart_ws.rs` tests), and a small WebSocket client that
//! speaks the protocol through `wagu_proto`.

#![allow(dead_code)]

pub mod api;
pub mod process;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wagu_gateway::{App, Config};
use wagu_proto::ServerMessage;
use wagu_proto::codec::decode_server;

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub app_state: wagu_gateway::AppState,
}

impl TestServer {
    /// Shuts the server down as SIGTERM would, and waits until it has.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// `(event, data)` of a `text/event-stream` body, each `data` parsed as JSON.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = Some(e.trim().to_string());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            Some((event?, serde_json::from_str(&data).unwrap()))
        })
        .collect()
}

/// `config` moved onto a fresh keyspace (`<prefix>_<random>`) of the test bed's CQL database,
/// or `None` (the test is skipped and says so) when the bed promises none.
pub fn on_fresh_cql(mut config: Config, test: &str, prefix: &str) -> Option<Config> {
    let nodes = wagu_storage::testbed::service(wagu_storage::testbed::CQL_NODES, test)?;
    config.database.backend = wagu_gateway::config::DatabaseBackend::Cql;
    config.database.cql_nodes = wagu_storage::cql::parse_nodes(&nodes);
    config.database.keyspace = format!("{prefix}_{}", rand_u64() % 1_000_000_000);
    config.database.seed_sample_places = false;
    Some(config)
}

/// Drops the keyspace a test made with [`on_fresh_cql`].
pub async fn drop_keyspace(config: &Config) {
    let session = wagu_storage::cql::connect(&config.database.cql_nodes)
        .await
        .unwrap();
    session
        .query_unpaged(format!("DROP KEYSPACE {}", config.database.keyspace), ())
        .await
        .unwrap();
}

pub fn test_config() -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: std::env::temp_dir().join(format!("wagu-test-{}", rand_u64())),
        ..Config::default()
    };
    c.ephemeral.backend = wagu_gateway::config::EphemeralBackend::Memory;
    c
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

pub async fn start(config: Config) -> TestServer {
    start_app(App::build(config).await.expect("app builds")).await
}

/// Serves an app built by the caller (say, with a fake photo source) as [`start`] does.
pub async fn start_app(app: App) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = app.state.clone();
    let task = tokio::spawn(async move {
        let _ = wagu_gateway::serve(listener, app, async move {
            let _ = rx.await;
        })
        .await;
    });
    TestServer {
        addr,
        stop: Some(tx),
        task: Some(task),
        app_state: state,
    }
}

/// A bare HTTP/1.0 request (so the response is never chunked); returns (status, body).
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = request(addr, method, path, &[], body).await;
    (status, body)
}

/// [`http`] with extra request headers; returns (status, response head, body).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    // JSON unless the caller names another type (or none: a `Content-Type` of "").
    let typed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let extra = extra.replace("Content-Type: \r\n", "");
    let json = if typed {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{json}{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or_default();
    assert!(
        !text
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "unexpected chunked response"
    );
    (status, head, body)
}

/// A JSON API call, signed in with `token` when given; an empty body is sent as nothing and
/// an empty answer reads as `null`.
pub async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let (status, _, text) = request(addr, method, path, &headers, body).await;
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, v)
}

/// Signs up an account (password `correct horse battery`); returns the session.
pub async fn signup(addr: SocketAddr, email: &str, name: &str) -> Value {
    let body = serde_json::json!({"email": email, "password": "correct horse battery", "display_name": name});
    let (s, v) = api(addr, "POST", "/api/auth/signup", None, &body.to_string()).await;
    assert_eq!(s, 201, "{v}");
    v
}

pub struct Room {
    pub share: String,
    pub host_key: String,
    pub room_id: String,
}

pub async fn create_room(addr: SocketAddr, body: &str) -> Room {
    let (status, body) = http(addr, "POST", "/api/rooms", body).await;
    assert_eq!(status, 201, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    Room {
        share: v["share_token"].as_str().unwrap().into(),
        host_key: v["host_key"].as_str().unwrap().into(),
        room_id: v["room_id"].as_str().unwrap().into(),
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A frame as [`Client::ws_next`] reads it.
pub enum Frame {
    Msg(ServerMessage),
    Close(Option<u16>),
}

pub struct Client {
    pub ws: Ws,
    pub next_id: u64,
    pub me: u32,
    pub token: String,
    pub last_seq: u64,
    /// Frames read while waiting for something else, in order.
    pub seen: Vec<ServerMessage>,
}

pub async fn connect(addr: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    ws
}

impl Client {
    pub async fn new(addr: SocketAddr) -> Client {
        Client {
            ws: connect(addr).await,
            next_id: 0,
            me: 0,
            token: String::new(),
            last_seq: 0,
            seen: Vec::new(),
        }
    }

    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// Sends a command (an object without `id`; one is added) and returns its id.
    pub async fn send(&mut self, mut v: Value) -> u64 {
        let id = self.id();
        v["id"] = id.into();
        self.send_raw(v.to_string()).await;
        id
    }

    /// Sends a command and waits up to `wait` for its reply; `None` when the socket closed
    /// (or was already closed) first. Frames read meanwhile land in `seen`.
    pub async fn try_call(&mut self, mut v: Value, wait: Duration) -> Option<ServerMessage> {
        let id = self.id();
        v["id"] = id.into();
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .ok()?;
        loop {
            let m = self.try_recv(wait).await?;
            match &m {
                ServerMessage::Ack { id: r, .. } | ServerMessage::Error { id: Some(r), .. }
                    if r.0 == id =>
                {
                    return Some(m);
                }
                _ => self.seen.push(m),
            }
        }
    }

    /// The next frame as it comes, close frames included; `None` when the socket ended
    /// without one (reset, EOF).
    pub async fn ws_next(&mut self) -> Option<Frame> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let msg = decode_server(t.as_bytes()).expect("server frames decode");
                    if let Some(s) = msg.seq() {
                        self.last_seq = self.last_seq.max(s.0);
                    }
                    return Some(Frame::Msg(msg));
                }
                Some(Ok(Message::Close(f))) => {
                    return Some(Frame::Close(f.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next server frame (text), or panics after 5 s.
    pub async fn recv(&mut self) -> ServerMessage {
        self.try_recv(Duration::from_secs(5))
            .await
            .expect("a frame within 5s")
    }

    pub async fn try_recv(&mut self, wait: Duration) -> Option<ServerMessage> {
        loop {
            let m = tokio::time::timeout(wait, self.ws.next()).await.ok()??;
            match m {
                Ok(Message::Text(t)) => {
                    let msg = decode_server(t.as_bytes()).expect("server frames decode");
                    if let Some(s) = msg.seq() {
                        self.last_seq = self.last_seq.max(s.0);
                    }
                    return Some(msg);
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Reads until the reply (ack or error) to `id`; everything read lands in `seen`.
    pub async fn reply(&mut self, id: u64) -> ServerMessage {
        loop {
            let m = self.recv().await;
            let done = matches!(&m, ServerMessage::Ack { id: r, .. } | ServerMessage::Error { id: Some(r), .. } if r.0 == id);
            if done {
                return m;
            }
            self.seen.push(m);
        }
    }

    /// Sends a command and waits for its reply.
    pub async fn call(&mut self, v: Value) -> ServerMessage {
        let id = self.send(v).await;
        self.reply(id).await
    }

    /// Reads until a frame matches, keeping the others in `seen`.
    pub async fn wait_for(&mut self, f: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        if let Some(pos) = self.seen.iter().position(&f) {
            return self.seen.remove(pos);
        }
        loop {
            let m = self.recv().await;
            if f(&m) {
                return m;
            }
            self.seen.push(m);
        }
    }

    /// hello + join; returns the welcome.
    pub async fn join(&mut self, share: &str, name: &str, host_key: Option<&str>) -> ServerMessage {
        let r = self
            .call(serde_json::json!({"type": "hello", "protocol": 1}))
            .await;
        assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
        let mut j = serde_json::json!({"type": "join", "share": share, "name": name});
        if let Some(k) = host_key {
            j["host_key"] = k.into();
        }
        let r = self.call(j).await;
        assert!(
            matches!(r, ServerMessage::Ack { .. }),
            "join refused: {r:?}"
        );
        let w = self.seen.remove(0);
        match &w {
            ServerMessage::Welcome {
                you,
                resume_token,
                room,
                ..
            } => {
                self.me = you.0;
                self.token = resume_token.0.clone();
                self.last_seq = self.last_seq.max(room.seq.0);
            }
            other => panic!("expected welcome, got {other:?}"),
        }
        self.seen.clear();
        w
    }

    /// The close code the server ended with (reading and discarding frames until then).
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(f))))) => return Some(u16::from(f.code)),
                Ok(Some(Ok(Message::Close(None)))) | Ok(None) => return None,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) => return None,
                Err(_) => panic!("no close within 10s"),
            }
        }
    }
}
