//! `wagu-loadtest bare-server`: the "physical limit" baseline, a WebSocket relay with nothing
//! in it but the relaying.
//!
//! What it does, exactly:
//!
//! * accepts WebSocket connections on any path; the query parameter `room` names the room
//!   (`/ws?room=12`); without it the upgrade is refused with 400;
//! * each text frame a member sends is forwarded, byte for byte, to every *other* member of its
//!   room at that moment: one queue push per receiver, then one WebSocket frame and one socket
//!   write (`send` flushes) per delivery on the receiver's task. No parsing, no coalescing, no
//!   batching of writes, no sequence numbers, no acknowledgements, no rate limits, no auth;
//! * each connection has one task (reading its socket and writing its queue) and a queue of
//!   [`QUEUE`] frames; when a receiver's queue is full the frame is dropped for that receiver
//!   and counted (logged every 5 s), so a slow reader never slows its room;
//! * binary frames are ignored; pings are answered by tungstenite; a close or error ends the
//!   connection and takes it out of its room (an empty room is forgotten);
//! * SIGTERM or Ctrl-C stops it.
//!
//! What it does not do: anything a room engine is for (state, ordering guarantees across
//! reconnects, resume, validation). It is the floor under any server's cost for the same
//! fan-out — Wagu's and Centrifugo's numbers are read against it. Buffers are sized like
//! Wagu's (4 KiB read buffer) so memory per connection compares like for like.

use crate::cli::BareServerArgs;
use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames queued per receiver before further frames to it are dropped.
pub const QUEUE: usize = 1024;
/// Largest frame accepted (Wagu's limit is 16 KiB; room frames are a few hundred bytes).
const MAX_FRAME: usize = 64 * 1024;

type Tx = mpsc::Sender<Utf8Bytes>;

#[derive(Default)]
struct Room {
    members: RwLock<Vec<(u64, Tx)>>,
}

#[derive(Default)]
struct Relay {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_id: AtomicU64,
    open: AtomicI64,
    relayed: AtomicU64,
    dropped: AtomicU64,
}

impl Relay {
    fn join(&self, key: &str, id: u64, tx: Tx) -> Arc<Room> {
        let mut rooms = self.rooms.lock().expect("rooms poisoned");
        let room = rooms.entry(key.to_string()).or_default().clone();
        room.members.write().expect("room poisoned").push((id, tx));
        room
    }

    fn leave(&self, key: &str, id: u64) {
        let mut rooms = self.rooms.lock().expect("rooms poisoned");
        if let Some(room) = rooms.get(key) {
            let mut m = room.members.write().expect("room poisoned");
            m.retain(|(i, _)| *i != id);
            if m.is_empty() {
                drop(m);
                rooms.remove(key);
            }
        }
    }

    /// Queues `text` for every member of `room` but `from`.
    fn relay(&self, room: &Room, from: u64, text: &Utf8Bytes) {
        let members = room.members.read().expect("room poisoned");
        let (mut sent, mut dropped) = (0, 0);
        for (id, tx) in members.iter() {
            if *id == from {
                continue;
            }
            // Cloning a `Utf8Bytes` shares the buffer: no copy per receiver.
            match tx.try_send(text.clone()) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                // The member is leaving; it will be out of the room in a moment.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        self.relayed.fetch_add(sent, Ordering::Relaxed);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }
}

/// The value of `room` in a query string.
pub fn room_of(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("room="))
        .filter(|v| !v.is_empty())
}

pub async fn run(args: BareServerArgs) -> anyhow::Result<()> {
    crate::sys::raise_nofile(args.max_connections as u64 + 256).context("raise RLIMIT_NOFILE")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    tracing::info!(
        "bare relay listening on {} (ws://{}/ws?room=N)",
        listener.local_addr()?,
        listener.local_addr()?
    );
    let relay = Arc::new(Relay::default());
    let reporter = tokio::spawn(report(relay.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    if relay.open.load(Ordering::Relaxed) >= args.max_connections as i64 {
                        continue; // dropping the stream closes it
                    }
                    tokio::spawn(connection(relay.clone(), stream));
                }
                Err(e) => {
                    // Out of descriptors or similar: keep serving who is connected.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    reporter.abort();
    tracing::info!(
        "bare relay stopping: {} frames relayed, {} dropped for full queues",
        relay.relayed.load(Ordering::Relaxed),
        relay.dropped.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn report(relay: Arc<Relay>) {
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let dropped = relay.dropped.load(Ordering::Relaxed);
        if dropped != last {
            tracing::warn!(
                "{} frames dropped for full receiver queues so far ({} connections open)",
                dropped,
                relay.open.load(Ordering::Relaxed)
            );
            last = dropped;
        }
    }
}

async fn connection(relay: Arc<Relay>, stream: TcpStream) {
    // Frames are small and latency is the point: no Nagle delay (Wagu sets it too).
    let _ = stream.set_nodelay(true);
    let mut key = None;
    // The callback's signature is tungstenite's; its error is the whole HTTP response.
    #[allow(clippy::result_large_err)]
    let pick_room = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match room_of(req.uri().query()) {
            Some(r) => {
                key = Some(r.to_string());
                Ok(resp)
            }
            None => {
                let mut e = ErrorResponse::new(Some("query parameter `room` required".into()));
                *e.status_mut() = StatusCode::BAD_REQUEST;
                Err(e)
            }
        }
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        // Every frame goes to the socket as it is sent: one write per delivery.
        .write_buffer_size(0)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, pick_room, Some(config)).await
    else {
        return;
    };
    let Some(key) = key else { return };
    let id = relay.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let room = relay.join(&key, id, tx);
    relay.open.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(text) => {
                    if ws.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => relay.relay(&room, id, &text),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                // Binary is not part of the room workload; pings are answered by tungstenite.
                Some(Ok(_)) => {}
            },
        }
    }
    relay.leave(&key, id);
    relay.open.fetch_sub(1, Ordering::Relaxed);
    // Completes the close handshake when the client started it; harmless otherwise.
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_comes_from_the_query() {
        assert_eq!(room_of(Some("room=12")), Some("12"));
        assert_eq!(room_of(Some("x=1&room=a-b")), Some("a-b"));
        assert_eq!(room_of(Some("room=")), None);
        assert_eq!(room_of(Some("rooms=3")), None);
        assert_eq!(room_of(None), None);
    }

    #[test]
    fn relays_to_the_others_in_the_room_only() {
        let relay = Relay::default();
        let (a_tx, mut a_rx) = mpsc::channel(4);
        let (b_tx, mut b_rx) = mpsc::channel(4);
        let (c_tx, mut c_rx) = mpsc::channel(4);
        let room = relay.join("1", 1, a_tx);
        relay.join("1", 2, b_tx);
        relay.join("2", 3, c_tx);
        relay.relay(&room, 1, &Utf8Bytes::from_static("hi"));
        assert_eq!(b_rx.try_recv().unwrap().as_str(), "hi");
        assert!(a_rx.try_recv().is_err(), "no echo to the sender");
        assert!(c_rx.try_recv().is_err(), "other rooms see nothing");
        relay.leave("1", 1);
        relay.leave("1", 2);
        assert!(relay.rooms.lock().unwrap().get("1").is_none());
    }

    #[test]
    fn full_queues_drop_and_count() {
        let relay = Relay::default();
        let (a_tx, _a_rx) = mpsc::channel(1);
        let (b_tx, _b_rx) = mpsc::channel(1);
        let room = relay.join("r", 1, a_tx);
        relay.join("r", 2, b_tx);
        for _ in 0..3 {
            relay.relay(&room, 1, &Utf8Bytes::from_static("x"));
        }
        assert_eq!(relay.relayed.load(Ordering::Relaxed), 1);
        assert_eq!(relay.dropped.load(Ordering::Relaxed), 2);
    }
}
