//! One client connection, from first frame to close.
//!
//! The task reads client frames, decodes and validates them (the protocol crate), applies rate
//! limits, and hands room commands to the room through a [`SessionHandle`]; it writes whatever the
//! room queued for it and its own replies (hello, errors for frames that never reached a room).
//! It keeps no room state: a reconnect to any node resumes from the room.
//!
//! Close codes (see `wagu_proto::close`): the room asks for kick/leave/room-closed closes; a
//! room queue that ends without asking means the client was too slow or the room restarted, so
//! the socket closes with 4000 "resume".

use super::ratelimit::Limiter;
use crate::auth::TokenError;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use metrics::{counter, gauge};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wagu_engine::actor::outbound::{CloseSlot, Frame, Outbound, Receiver};
use wagu_engine::error::EngineError;
use wagu_engine::sessions::{JoinRequest, SessionHandle};
use wagu_proto::codec::{decode_client_within, encode_server};
use wagu_proto::records::AccountId;
use wagu_proto::{
    ClientMessage, ErrorCode, Identity, PROTOCOL_VERSION, RequestId, ServerMessage, close,
};

/// Longest a single write may take before the client counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the loop ended, for the close frame.
enum End {
    Close(u16, &'static str),
    /// The peer went away; nothing to send.
    Gone,
}

struct Conn {
    app: AppState,
    session: Option<SessionHandle>,
    room_rx: Option<Receiver>,
    /// Where the room leaves a close code it could not queue (see `CloseSlot`).
    room_close: CloseSlot,
    limiter: Limiter,
    last_heard: Instant,
}

/// Serves one connection until it closes. Generic so tests can pass channels.
pub async fn serve<S, R>(mut sink: S, mut stream: R, app: AppState)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let open = app.connections.fetch_add(1, Ordering::Relaxed) + 1;
    gauge!("wagu_connections").set(open as f64);
    let mut shutdown = app.shutdown.clone();
    // Made once and polled by every loop turn: a fresh `changed()` per turn would join and
    // leave the node-wide watch channel's waiter list for every frame.
    let shutdown = shutdown.changed();
    tokio::pin!(shutdown);
    let ping_every = Duration::from_secs(app.config.limits.ping_interval_secs);
    let idle = Duration::from_secs(app.config.limits.idle_timeout_secs);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut c = Conn {
        limiter: Limiter::new(&app.config.rate, Instant::now()),
        app: app.clone(),
        session: None,
        room_rx: None,
        room_close: CloseSlot::default(),
        last_heard: Instant::now(),
    };

    // The rare branches below (refusals, pings, the close) box what they await: this
    // future lives as long as the connection, and it is as large as its largest await.
    let end = loop {
        // Not `biased`: under sustained fan-out the room queue is rarely empty, and a fixed
        // order would starve reading the client's own frames and the ping timer.
        tokio::select! {
            _ = &mut shutdown => break End::Close(close::RESUME, "server restarting; resume"),
            frame = next_room_frame(&mut c.room_rx) => match frame {
                Some(Frame::Text(bytes)) => {
                    // Write this frame and whatever else is queued, then flush once: fewer
                    // syscalls under fan-out. One timer bounds the whole batch, so a client
                    // that stops reading cannot block the task forever (the room has already
                    // dropped it if it lagged). Boxed like the rare branches: inline, the
                    // batch's state (its timer, the sink's feed and flush) would add a quarter
                    // to every idle connection's future; one allocation per batch is small
                    // beside the write's syscall.
                    let batch = Box::pin(tokio::time::timeout(WRITE_TIMEOUT, async {
                        let mut pending = 0;
                        write_batched(&mut sink, &bytes, &mut pending).await?;
                        let mut closing = None;
                        if let Some(rx) = c.room_rx.as_mut() {
                            for _ in 0..64 {
                                match rx.try_recv() {
                                    Some(Frame::Text(b)) => write_batched(&mut sink, &b, &mut pending).await?,
                                    Some(Frame::Close(code)) => {
                                        closing = Some(code);
                                        break;
                                    }
                                    None => break,
                                }
                            }
                        }
                        if pending > 0 {
                            sink.flush().await.map_err(|_| ())?;
                        }
                        Ok::<_, ()>(closing)
                    }))
                    .await;
                    match batch {
                        Ok(Ok(Some(code))) => break End::Close(code, reason(code)),
                        Ok(Ok(None)) => {}
                        _ => break End::Gone,
                    }
                }
                Some(Frame::Close(code)) => break End::Close(code, reason(code)),
                None => {
                    c.room_rx = None;
                    c.session = None;
                    // A close the room could not queue (kick, ban, end) still gets its code.
                    if let Some(code) = c.room_close.get() {
                        break End::Close(code, reason(code));
                    }
                    // The room dropped us without a close: too slow, or the room restarted.
                    break End::Close(close::RESUME, "fell behind or room restarted; resume");
                }
            },
            msg = stream.next() => {
                c.last_heard = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: handling a frame (decode, join, dispatch) is a large future
                        // that an idle connection should not carry inline.
                        if let Some(end) = Box::pin(c.on_text(&mut sink, text.as_bytes())).await {
                            break end;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let e = ServerMessage::error(None, ErrorCode::BadFrame, "binary frames are not part of the protocol; send JSON text");
                        if let Some(end) = Box::pin(c.refuse(&mut sink, e)).await { break end; }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break End::Gone,
                    Some(Err(e)) => {
                        // The transport refused the frame (over the hard size limit) or the
                        // socket broke. Say why if the socket still takes a frame.
                        if is_over_capacity(e) {
                            counter!("wagu_frames_refused_total", "code" => "frame_too_large").increment(1);
                            let e = ServerMessage::error(None, ErrorCode::FrameTooLarge, "frame exceeds the size limit");
                            let _ = Box::pin(async { write_msg(&mut sink, &e).await }).await;
                            break End::Close(close::TOO_BIG, "frame too large");
                        }
                        break End::Gone;
                    }
                }
            }
            _ = ping.tick() => {
                if c.last_heard.elapsed() > idle {
                    break End::Close(close::IDLE_TIMEOUT, "idle timeout; resume");
                }
                match Box::pin(tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Ping(Default::default())))).await {
                    Ok(Ok(())) => {}
                    _ => break End::Gone,
                }
            }
        }
    };

    if let End::Close(code, why) = end {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(why),
        }));
        let _ = Box::pin(tokio::time::timeout(WRITE_TIMEOUT, async {
            let _ = sink.send(frame).await;
            let _ = sink.close().await;
        }))
        .await;
    }
    if let Some(s) = c.session.take() {
        // Leaves the participant away (resumable); ignored by the room if it already let go.
        s.disconnect();
    }
    let open = app.connections.fetch_sub(1, Ordering::Relaxed) - 1;
    gauge!("wagu_connections").set(open as f64);
}

fn reason(code: u16) -> &'static str {
    match code {
        close::KICKED => "removed by the host",
        close::BANNED => "banned by the streamer",
        close::ROOM_CLOSED => "room closed",
        close::LEFT => "left the room",
        close::RESUME => "replaced by a newer connection",
        _ => "closing",
    }
}

async fn next_room_frame(rx: &mut Option<Receiver>) -> Option<Frame> {
    match rx {
        Some(rx) => rx.recv().await,
        // Not in a room yet: never resolves, so select! waits on the other branches.
        None => std::future::pending().await,
    }
}

/// A flush carries at most this many bytes of frames (unless one frame is larger).
const BATCH_BYTES: usize = 4096;
/// A frame larger than this is flushed on its own.
const ALONE_BYTES: usize = 512;

/// Queues one frame of a batch of the room's frames, flushing so that the transport's write
/// buffer stays small. tungstenite's buffer keeps the capacity of the most it ever held, for
/// the connection's life, and grows by doubling: a join's batch (a kilobyte of `welcome`, then
/// `ack` and `media_state`) left every idle connection holding twice its welcome. So a large
/// frame (a welcome, a resume's replay) goes alone, and a batch of small ones stops at
/// [`BATCH_BYTES`]. `pending` counts the bytes fed since the last flush.
async fn write_batched<S: Sink<Message> + Unpin>(
    sink: &mut S,
    bytes: &bytes::Bytes,
    pending: &mut usize,
) -> Result<(), ()> {
    let len = bytes.len();
    if *pending > 0 && (len > ALONE_BYTES || *pending + len > BATCH_BYTES) {
        sink.flush().await.map_err(|_| ())?;
        *pending = 0;
    }
    feed_text(sink, bytes.clone()).await?;
    *pending += len;
    if len > ALONE_BYTES {
        sink.flush().await.map_err(|_| ())?;
        *pending = 0;
    }
    Ok(())
}

/// Queues one text frame on the sink (no flush). Callers bound the time it may take.
async fn feed_text<S: Sink<Message> + Unpin>(sink: &mut S, bytes: bytes::Bytes) -> Result<(), ()> {
    let text = Utf8Bytes::try_from(bytes).map_err(|_| ())?;
    sink.feed(Message::Text(text)).await.map_err(|_| ())
}

async fn write_msg<S: Sink<Message> + Unpin>(sink: &mut S, msg: &ServerMessage) -> Result<(), ()> {
    counter!("wagu_messages_out_total", "type" => msg.kind()).increment(1);
    let write = async {
        feed_text(sink, encode_server(msg)).await?;
        sink.flush().await.map_err(|_| ())
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .unwrap_or(Err(()))
}

impl Conn {
    /// Sends a refusal and counts a strike; ends the connection on sustained abuse.
    async fn refuse<S: Sink<Message> + Unpin>(
        &mut self,
        sink: &mut S,
        err: ServerMessage,
    ) -> Option<End> {
        if let ServerMessage::Error { code, .. } = &err {
            counter!("wagu_frames_refused_total", "code" => code.as_str()).increment(1);
        }
        if write_msg(sink, &err).await.is_err() {
            return Some(End::Gone);
        }
        if self.limiter.strike(Instant::now()) {
            return Some(End::Close(close::POLICY, "too many refused frames"));
        }
        None
    }

    /// The account behind a join's access token: `None` for a guest, an `error` frame for a
    /// token that does not verify (the client refreshes it and joins again).
    fn account(
        &self,
        id: RequestId,
        token: Option<&str>,
    ) -> Result<Option<AccountId>, ServerMessage> {
        let Some(token) = token else {
            return Ok(None);
        };
        match self.app.tokens.verify(token) {
            Ok(claims) => Ok(Some(claims.account())),
            Err(e) => {
                let code = match e {
                    TokenError::Expired => ErrorCode::TokenExpired,
                    _ => ErrorCode::InvalidToken,
                };
                Err(ServerMessage::error(Some(id), code, e.to_string()))
            }
        }
    }

    /// Enters a room or stream for `join`/`join_stream`: refuses a second entry, gives the
    /// session a fresh queue, and on success makes that queue this connection's (the welcome
    /// and ack are already in it); on failure, a typed error.
    async fn enter<S, F, J>(
        &mut self,
        sink: &mut S,
        id: RequestId,
        resuming: bool,
        join: F,
    ) -> Option<End>
    where
        S: Sink<Message> + Unpin,
        F: FnOnce(AppState, Outbound) -> J,
        J: std::future::Future<Output = Result<SessionHandle, EngineError>>,
    {
        if self.session.is_some() {
            let e = ServerMessage::error(
                Some(id),
                ErrorCode::AlreadyJoined,
                "this connection is already in a room or stream",
            );
            return self.refuse(sink, e).await;
        }
        let (outbound, rx, slot) =
            Outbound::channel_with_close(self.app.config.limits.outbound_queue);
        // Boxed: joining is rare and its future is large; inline, it would sit in every idle
        // connection's task for its whole life.
        match Box::pin(join(self.app.clone(), outbound)).await {
            Ok(session) => {
                if resuming {
                    counter!("wagu_resumes_total").increment(1);
                }
                self.session = Some(session);
                self.room_rx = Some(rx);
                self.room_close = slot;
                None
            }
            Err(e) => {
                let e = ServerMessage::error(Some(id), e.code(), e.to_string());
                self.refuse(sink, e).await
            }
        }
    }

    async fn on_text<S: Sink<Message> + Unpin>(
        &mut self,
        sink: &mut S,
        frame: &[u8],
    ) -> Option<End> {
        let received = Instant::now();
        let msg = match decode_client_within(frame, self.app.config.limits.max_frame_bytes) {
            Ok(m) => m,
            Err(e) => return self.refuse(sink, e.to_message()).await,
        };
        counter!("wagu_messages_in_total", "type" => msg.kind()).increment(1);
        if !self.limiter.allow(msg.rate_class(), received) {
            let e = ServerMessage::error(
                msg.id(),
                ErrorCode::RateLimited,
                format!("too many {} messages; slow down", msg.kind()),
            );
            return self.refuse(sink, e).await;
        }
        match msg {
            ClientMessage::Hello { id, protocol } => {
                if protocol != PROTOCOL_VERSION {
                    let e = ServerMessage::error(
                        Some(id),
                        ErrorCode::UnsupportedVersion,
                        format!("this server speaks protocol {PROTOCOL_VERSION}, not {protocol}"),
                    );
                    let _ = write_msg(sink, &e).await;
                    return Some(End::Close(
                        close::UNSUPPORTED_VERSION,
                        "unsupported protocol version",
                    ));
                }
                if write_msg(sink, &ServerMessage::Ack { id, seq: None })
                    .await
                    .is_err()
                {
                    return Some(End::Gone);
                }
                None
            }
            ClientMessage::Join {
                id,
                share,
                name,
                host_key,
                resume,
                token,
            } => {
                let account = match self.account(id, token.as_deref()) {
                    Ok(a) => a,
                    Err(e) => return self.refuse(sink, e).await,
                };
                let resuming = resume.is_some();
                let req = JoinRequest {
                    id,
                    share,
                    name,
                    host_key,
                    resume,
                    account,
                };
                self.enter(sink, id, resuming, |app, outbound| async move {
                    app.rooms.join(req, outbound).await
                })
                .await
            }
            ClientMessage::JoinStream {
                id,
                stream,
                name,
                streamer_key,
                resume,
                client_key,
                token,
            } => {
                // A signed-in viewer is known by its account as well as its device key: a ban
                // then covers the account on every device and this device whether or not it
                // signs in next time.
                let client_key = match self.account(id, token.as_deref()) {
                    Ok(account) => Identity::of(account, client_key),
                    Err(e) => return self.refuse(sink, e).await,
                };
                let resuming = resume.is_some();
                self.enter(sink, id, resuming, |app, outbound| async move {
                    app.streams
                        .join(
                            &stream,
                            id,
                            name,
                            streamer_key,
                            resume,
                            client_key,
                            outbound,
                        )
                        .await
                })
                .await
            }
            other => {
                let Some(session) = &self.session else {
                    let e =
                        ServerMessage::error(other.id(), ErrorCode::NotJoined, "join a room first");
                    return self.refuse(sink, e).await;
                };
                if let Err(e) = session.send(other, received) {
                    // The room's actor is gone (restarting): tell the client to resume.
                    tracing::debug!(error = %e, "room unreachable");
                    self.session = None;
                    self.room_rx = None;
                    return Some(End::Close(close::RESUME, "room restarting; resume"));
                }
                None
            }
        }
    }
}

/// Whether the transport's error is its refusal of a frame or message over the size limit
/// (tungstenite's capacity error), as opposed to a broken socket.
fn is_over_capacity(e: axum::Error) -> bool {
    matches!(
        e.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}
