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
use super::wire::{ALONE_BYTES, Wire, flush_before};
use crate::auth::TokenError;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use metrics::{counter, gauge};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wagu_engine::actor::outbound::{CloseSlot, DirectWrite, Frame, Outbound, Receiver};
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
    /// The socket as a session may write to it directly (see `super::wire`).
    socket: std::sync::Arc<dyn DirectWrite>,
}

/// Serves one connection until it closes. Generic so tests can pass channels. One object is
/// both the sink and the stream (not the two halves of a split, whose shared lock every write
/// and every read would take); the session the connection joins may write into it directly
/// (see `super::wire`).
pub fn serve<W>(ws: W, app: AppState) -> impl Future<Output = ()>
where
    W: Sink<Message> + Stream<Item = Result<Message, axum::Error>> + Unpin + Send + 'static,
{
    // Not an `async fn`: its future would keep a slot for the socket it was given, moved into
    // the wire, for the connection's whole life (a few hundred bytes per idle connection).
    serve_wire(Wire::new(ws), app)
}

async fn serve_wire<W>(mut ws: Wire<W>, app: AppState)
where
    W: Sink<Message> + Stream<Item = Result<Message, axum::Error>> + Unpin + Send + 'static,
{
    let open = app.connections.fetch_add(1, Ordering::Relaxed) + 1;
    gauge!("wagu_connections").set(open as f64);
    let mut shutdown = app.shutdown.clone();
    // Made once and polled by the turns that look at it: a fresh `changed()` per turn would
    // join and leave the node-wide watch channel's waiter list for every frame.
    let shutdown = shutdown.changed();
    tokio::pin!(shutdown);
    let ping_every = Duration::from_secs(app.config.limits.ping_interval_secs);
    let idle = Duration::from_secs(app.config.limits.idle_timeout_secs);
    // Boxed: a timer is larger than the rest of an idle connection's loop state.
    let mut ping = Box::pin(tokio::time::sleep(ping_every));
    let mut turns = Turns::default();
    let mut c = Conn {
        limiter: Limiter::new(&app.config.rate, Instant::now()),
        app: app.clone(),
        session: None,
        room_rx: None,
        room_close: CloseSlot::default(),
        last_heard: Instant::now(),
        socket: ws.direct(),
    };

    // The rare branches below (refusals, pings, the close) box what they await: this
    // future lives as long as the connection, and it is as large as its largest await.
    let end = loop {
        let event = std::future::poll_fn(|cx| {
            turns.poll(
                cx,
                &mut c.room_rx,
                &mut ws,
                shutdown.as_mut(),
                ping.as_mut(),
            )
        })
        .await;
        match event {
            Event::Shutdown => break End::Close(close::RESUME, "server restarting; resume"),
            Event::Room(frame) => match frame {
                Some(Frame::Text(bytes)) => {
                    // Write this frame and whatever else is queued, then flush once: fewer
                    // syscalls under fan-out. Boxed like the rare branches: inline, the
                    // batch's state (the sink's feed and flush) would add a quarter to every
                    // idle connection's future; one allocation per batch is small beside the
                    // write's syscall.
                    let mut batch = Box::pin(async {
                        write_batched(&mut ws, &bytes).await?;
                        let mut closing = None;
                        if let Some(rx) = c.room_rx.as_mut() {
                            for _ in 0..64 {
                                match rx.try_recv() {
                                    Some(Frame::Text(b)) => write_batched(&mut ws, &b).await?,
                                    Some(Frame::Close(code)) => {
                                        closing = Some(code);
                                        break;
                                    }
                                    None => break,
                                }
                            }
                        }
                        if ws.pending() > 0 {
                            ws.flush().await.map_err(|_| ())?;
                        }
                        // Everything taken is written: the session may write directly again
                        // (not to a connection about to close).
                        if closing.is_none()
                            && let Some(rx) = c.room_rx.as_mut()
                        {
                            rx.settle();
                        }
                        Ok::<_, ()>(closing)
                    });
                    // Almost every batch is written at once (the socket has room); only one
                    // that waits on the socket gets a timer, which bounds the rest of it, so a
                    // client that stops reading cannot block the task forever (the room has
                    // already dropped it if it lagged).
                    let batch = match poll_once(&mut batch).await {
                        Some(done) => done,
                        None => Box::pin(tokio::time::timeout(WRITE_TIMEOUT, batch))
                            .await
                            .unwrap_or(Err(())),
                    };
                    match batch {
                        Ok(Some(code)) => break End::Close(code, reason(code)),
                        Ok(None) => {}
                        Err(()) => break End::Gone,
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
            Event::Client(msg) => {
                c.last_heard = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: handling a frame (decode, join, dispatch) is a large future
                        // that an idle connection should not carry inline.
                        if let Some(end) = Box::pin(c.on_text(&mut ws, text.as_bytes())).await {
                            break end;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let e = ServerMessage::error(
                            None,
                            ErrorCode::BadFrame,
                            "binary frames are not part of the protocol; send JSON text",
                        );
                        if let Some(end) = Box::pin(c.refuse(&mut ws, e)).await {
                            break end;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break End::Gone,
                    Some(Err(e)) => {
                        // The transport refused the frame (over the hard size limit) or the
                        // socket broke. Say why if the socket still takes a frame.
                        if is_over_capacity(e) {
                            counter!("wagu_frames_refused_total", "code" => "frame_too_large")
                                .increment(1);
                            let e = ServerMessage::error(
                                None,
                                ErrorCode::FrameTooLarge,
                                "frame exceeds the size limit",
                            );
                            let _ = Box::pin(async { write_msg(&mut ws, &e).await }).await;
                            break End::Close(close::TOO_BIG, "frame too large");
                        }
                        break End::Gone;
                    }
                }
            }
            Event::Flush => {
                // A session's write the socket did not take at once: finish it here, bounded
                // like any write.
                match Box::pin(tokio::time::timeout(WRITE_TIMEOUT, ws.flush())).await {
                    Ok(Ok(())) => {}
                    _ => break End::Gone,
                }
            }
            Event::Ping => {
                if c.last_heard.elapsed() > idle {
                    break End::Close(close::IDLE_TIMEOUT, "idle timeout; resume");
                }
                ping.as_mut()
                    .reset(tokio::time::Instant::now() + ping_every);
                match Box::pin(tokio::time::timeout(
                    WRITE_TIMEOUT,
                    ws.send(Message::Ping(Default::default())),
                ))
                .await
                {
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
            let _ = ws.send(frame).await;
            let _ = ws.close().await;
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

/// What woke the connection's loop.
enum Event {
    Shutdown,
    /// The room's next frame; `None` when the room let the connection go.
    Room(Option<Frame>),
    /// The client's next frame; `None` when the socket closed.
    Client(Option<Result<Message, axum::Error>>),
    /// Time to ping (and to check the client was heard from).
    Ping,
    /// A session wrote into the socket and left a flush to finish.
    Flush,
}

/// After this many turns in a row that found a room frame first, one turn looks at everything
/// else first: a room that always has a frame queued cannot starve the client's own frames,
/// the ping or the shutdown.
const ROOM_STREAK: u8 = 8;

/// Which of the loop's sources to look at, and in what order. A turn polls only until one
/// source is ready, and the room comes first: under fan-out most turns are woken by the room,
/// and polling the socket's read side, the ping timer and the shutdown watch on each of them
/// too (as `select!` does, in random order) registers their wakers again for nothing. What a
/// turn does not poll keeps the waker it was last polled with, so it still wakes the task when
/// it is ready.
#[derive(Default)]
struct Turns {
    /// Room-first turns in a row that found a frame.
    room_streak: u8,
    /// Whether the ping timer holds the task's waker (it was polled since its last reset).
    ping_armed: bool,
}

impl Turns {
    fn poll<W>(
        &mut self,
        cx: &mut Context<'_>,
        room: &mut Option<Receiver>,
        ws: &mut Wire<W>,
        shutdown: Pin<&mut impl Future>,
        ping: Pin<&mut tokio::time::Sleep>,
    ) -> Poll<Event>
    where
        W: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        // First: a flush a session left must not wait behind the room's next frames (they
        // queue behind it anyway).
        if ws.flush_wanted(cx) {
            return Poll::Ready(Event::Flush);
        }
        let room_first = self.room_streak < ROOM_STREAK;
        if room_first && let Poll::Ready(frame) = poll_room(room, cx) {
            self.room_streak += 1;
            return Poll::Ready(Event::Room(frame));
        }
        self.room_streak = 0;
        if let Poll::Ready(msg) = ws.poll_next_unpin(cx) {
            return Poll::Ready(Event::Client(msg));
        }
        if poll_ping(&mut self.ping_armed, ping, cx).is_ready() {
            return Poll::Ready(Event::Ping);
        }
        if shutdown.poll(cx).is_ready() {
            return Poll::Ready(Event::Shutdown);
        }
        if !room_first && let Poll::Ready(frame) = poll_room(room, cx) {
            self.room_streak = 1;
            return Poll::Ready(Event::Room(frame));
        }
        Poll::Pending
    }
}

/// Ready when the ping timer fired. Once it holds the waker (`armed`), only its state is read
/// until it fires; the caller resets the timer, which disarms it.
fn poll_ping(
    armed: &mut bool,
    ping: Pin<&mut tokio::time::Sleep>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if *armed && !ping.is_elapsed() {
        return Poll::Pending;
    }
    // Outside the task's budget: a poll the budget refused would not register the waker, and
    // the timer would then fire into nothing.
    let fired = std::pin::pin!(tokio::task::unconstrained(ping)).poll(cx);
    *armed = fired.is_pending();
    fired
}

fn poll_room(rx: &mut Option<Receiver>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
    match rx {
        Some(rx) => rx.poll_recv(cx),
        // Not in a room yet: nothing to wait for here.
        None => Poll::Pending,
    }
}

/// Polls `fut` once: its output if it is done, `None` if it waits.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match Pin::new(&mut *fut).poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Queues one frame of a batch of the room's frames, flushing so that the transport's write
/// buffer stays small: a frame over [`ALONE_BYTES`] goes alone, a batch of small ones stops at
/// 4 KiB (see `super::wire::BATCH_BYTES` for why). The wire counts the bytes written since
/// its last flush, by this task and by the session alike.
async fn write_batched<W: Sink<Message> + Unpin>(
    ws: &mut Wire<W>,
    bytes: &bytes::Bytes,
) -> Result<(), ()> {
    let len = bytes.len();
    if flush_before(ws.pending(), len) {
        ws.flush().await.map_err(|_| ())?;
    }
    feed_text(ws, bytes.clone()).await?;
    if len > ALONE_BYTES {
        ws.flush().await.map_err(|_| ())?;
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
        let (outbound, rx, slot) = Outbound::channel_to(
            self.app.config.limits.outbound_queue,
            Some(self.socket.clone()),
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::stream;

    /// One connection's sources, as the loop holds them, with a pending shutdown.
    struct Sources<W> {
        turns: Turns,
        room: Option<Receiver>,
        ws: Wire<W>,
        shutdown: Pin<Box<std::future::Pending<()>>>,
        ping: Pin<Box<tokio::time::Sleep>>,
    }

    impl<W: Stream<Item = Result<Message, axum::Error>> + Unpin> Sources<W> {
        fn new(room: Option<Receiver>, ws: W, ping: Duration) -> Self {
            Sources {
                turns: Turns::default(),
                room,
                ws: Wire::new(ws),
                shutdown: Box::pin(std::future::pending()),
                ping: Box::pin(tokio::time::sleep(ping)),
            }
        }

        /// One turn of the loop, without waiting: what it found.
        async fn turn(&mut self) -> &'static str {
            let s = self;
            let event = std::future::poll_fn(|cx| {
                Poll::Ready(s.turns.poll(
                    cx,
                    &mut s.room,
                    &mut s.ws,
                    s.shutdown.as_mut(),
                    s.ping.as_mut(),
                ))
            })
            .await;
            match event {
                Poll::Ready(Event::Room(_)) => "room",
                Poll::Ready(Event::Client(_)) => "client",
                Poll::Ready(Event::Ping) => "ping",
                Poll::Ready(Event::Shutdown) => "shutdown",
                Poll::Ready(Event::Flush) => "flush",
                Poll::Pending => "pending",
            }
        }
    }

    #[tokio::test]
    async fn a_room_that_always_has_a_frame_cannot_starve_the_clients_frames() {
        let (outbound, rx) = Outbound::channel(64);
        for _ in 0..40 {
            let _ = outbound.push(Frame::text(Bytes::from_static(b"{}")));
        }
        let ws = stream::iter(vec![Ok(Message::Text("hi".into()))]);
        let mut sources = Sources::new(Some(rx), ws, Duration::from_secs(3600));
        let mut seen = Vec::new();
        for _ in 0..=ROOM_STREAK + 1 {
            seen.push(sources.turn().await);
        }
        let mut want = vec!["room"; usize::from(ROOM_STREAK)];
        want.extend(["client", "room"]);
        assert_eq!(seen, want);
    }

    #[tokio::test]
    async fn the_ping_timer_wakes_a_connection_nobody_writes_to() {
        let mut sources = Sources::new(None, stream::pending(), Duration::from_millis(50));
        assert_eq!(sources.turn().await, "pending");
        assert!(
            sources.turns.ping_armed,
            "the first look registers the timer"
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(sources.turn().await, "ping");
        assert!(!sources.turns.ping_armed);
        // Reset, it is looked at (and registered) again, and fires again.
        let again = tokio::time::Instant::now() + Duration::from_millis(50);
        sources.ping.as_mut().reset(again);
        assert_eq!(sources.turn().await, "pending");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(sources.turn().await, "ping");
    }
}
