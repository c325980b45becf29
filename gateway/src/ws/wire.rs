//! A connection's WebSocket, shared between its task and the session it is in, so that the
//! session can write frames straight into it (`wagu_engine::actor::direct`).
//!
//! [`Wire`] is the task's handle: a `Sink + Stream` like the socket itself, each call taking
//! the socket's lock for that call only (never across an await). [`Wire::direct`] is the
//! session's handle: its `feed` frames a text frame into the socket's write buffer during the
//! session's turn, and its `flush` (from the session's flusher task) writes the buffer out,
//! both without waiting. Both decline whenever the socket is locked (the task is using it on
//! another thread) or its buffer still waits on the network: a stalled client's frames then
//! queue, and the queue's bound drops it as before. There is one write buffer per socket (the
//! transport's), so whatever the order of the two writers, every frame is whole and in order.
//!
//! A flush the socket does not finish is handed to the task, which finishes it under its write
//! timeout: the session's writes register a waker ([`Handoff`]) that marks the flush as wanted
//! and wakes the task, and the task looks at that mark at each turn ([`Wire::flush_wanted`]).
//!
//! What it does not do: decide when a frame may skip the queue (the queue does), or read.

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use futures_util::{Sink, Stream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::{Context, Poll, Wake, Waker};
use wagu_engine::actor::outbound::{DirectWrite, Fed};

/// A flush carries at most this many bytes of frames (unless one frame is larger).
pub const BATCH_BYTES: usize = 4096;
/// A frame larger than this is flushed on its own.
///
/// Why both: tungstenite's write buffer keeps the capacity of the most it ever held, for the
/// connection's life, and grows by doubling. A join's frames together (a kilobyte of
/// `welcome`, then `ack` and `media_state`) would leave every idle connection holding twice its
/// welcome; so a large frame (a welcome, a resume's replay) goes alone, and a batch of small
/// ones stops at [`BATCH_BYTES`]. The connection task's writes and the session's keep the same
/// rule.
pub const ALONE_BYTES: usize = 512;

/// Whether the bytes already written (`pending`, unflushed) must be flushed before a frame of
/// `len` bytes joins them.
pub fn flush_before(pending: usize, len: usize) -> bool {
    pending > 0 && (len > ALONE_BYTES || pending + len > BATCH_BYTES)
}

/// The connection task's handle on its socket.
pub struct Wire<W>(Arc<Shared<W>>);

struct Shared<W> {
    socket: Mutex<Socket<W>>,
    handoff: Arc<Handoff>,
    /// A waker for [`Handoff`], made once.
    handoff_waker: Waker,
}

struct Socket<W> {
    ws: W,
    /// Frames went into the write buffer since the last complete flush.
    unflushed: bool,
    /// The last flush (or readiness check) waited on the network: the buffer is not empty and
    /// the session must not add to it.
    stalled: bool,
    /// Bytes of frames written since the last complete flush.
    pending: usize,
    /// The task let go of the socket, closed it, or a write failed: the session writes
    /// nothing more (its frames find the queue, whose receiver is gone, and it drops the
    /// connection as it always did).
    closed: bool,
}

impl<W> Socket<W> {
    /// A flush completed: nothing waits in the buffer any more.
    fn flushed(&mut self) {
        self.unflushed = false;
        self.stalled = false;
        self.pending = 0;
    }
}

/// What the session's writes leave for the task: a flush to finish.
#[derive(Default)]
struct Handoff {
    wanted: AtomicBool,
    task: AtomicWaker,
}

impl Handoff {
    /// Marks a flush as wanted and wakes the task.
    fn hand_off(&self) {
        self.wanted.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Fired by the socket when a write the session left waiting may go on.
impl Wake for Handoff {
    fn wake(self: Arc<Self>) {
        self.hand_off();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.hand_off();
    }
}

impl<W> Wire<W> {
    pub fn new(ws: W) -> Self {
        let handoff = Arc::new(Handoff::default());
        Wire(Arc::new(Shared {
            socket: Mutex::new(Socket {
                ws,
                unflushed: false,
                stalled: false,
                pending: 0,
                closed: false,
            }),
            handoff_waker: Waker::from(handoff.clone()),
            handoff,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Socket<W>> {
        // A panic inside the transport cannot leave these flags half-changed in a way that
        // loses frames: at worst a flush is tried once more.
        self.0.socket.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes written (by either writer) since the last complete flush: the task's batches
    /// count them toward their limit too.
    pub fn pending(&self) -> usize {
        self.lock().pending
    }

    /// Whether a session's write left a flush for the task. The task's waker is registered
    /// first, so a hand-off that comes after the look still wakes it.
    pub fn flush_wanted(&self, cx: &Context<'_>) -> bool {
        self.0.handoff.task.register(cx.waker());
        self.0.handoff.wanted.swap(false, Ordering::AcqRel)
    }
}

impl<W> Wire<W>
where
    W: Sink<Message> + Unpin + Send + 'static,
{
    /// The session's handle on this socket.
    pub fn direct(&self) -> Arc<dyn DirectWrite> {
        self.0.clone()
    }
}

impl<W> DirectWrite for Shared<W>
where
    W: Sink<Message> + Unpin + Send + 'static,
{
    fn feed(&self, frame: &Bytes) -> Fed {
        let Some(mut s) = self.try_socket() else {
            return Fed::Refused;
        };
        if s.stalled || s.closed {
            return Fed::Refused;
        }
        let Ok(text) = Utf8Bytes::try_from(frame.clone()) else {
            return Fed::Refused;
        };
        let listed = s.unflushed;
        let len = frame.len();
        // The batching rule the task's writes keep too (see `ALONE_BYTES`).
        if flush_before(s.pending, len) {
            self.flush_locked(&mut s);
            if s.stalled || s.closed {
                return Fed::Refused;
            }
        }
        let mut cx = Context::from_waker(&self.handoff_waker);
        match Pin::new(&mut s.ws).poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Pending => {
                s.stalled = true;
                return Fed::Refused;
            }
            // Broken: queued, the frame reaches the task, which finds out and closes.
            Poll::Ready(Err(_)) => {
                s.closed = true;
                return Fed::Refused;
            }
        }
        if Pin::new(&mut s.ws).start_send(Message::Text(text)).is_err() {
            // The socket is broken and the frame is lost with it; the task sees the error at
            // its next read or write and ends the connection.
            s.closed = true;
            drop(s);
            self.handoff.hand_off();
            return Fed::Again;
        }
        s.unflushed = true;
        s.pending += len;
        if len > ALONE_BYTES {
            self.flush_locked(&mut s);
        }
        // A socket already on the flusher's list stays there; one flushed here (or whose
        // flush went to the task) needs nothing more.
        if listed || !s.unflushed || s.stalled {
            Fed::Again
        } else {
            Fed::First
        }
    }

    fn flush(&self) {
        let Some(mut s) = self.try_socket() else {
            // The task is using the socket on another thread; it flushes for us.
            self.handoff.hand_off();
            return;
        };
        // Nothing left, or the task already owns finishing it.
        if s.unflushed && !s.stalled && !s.closed {
            self.flush_locked(&mut s);
        }
    }
}

impl<W> Shared<W>
where
    W: Sink<Message> + Unpin,
{
    /// The socket, unless its task holds it (on another thread) right now.
    fn try_socket(&self) -> Option<MutexGuard<'_, Socket<W>>> {
        match self.socket.try_lock() {
            Ok(s) => Some(s),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Flushes without waiting; a flush the socket does not finish (or that fails) is handed
    /// to the task, which finishes it under its write timeout (or ends the connection).
    fn flush_locked(&self, s: &mut Socket<W>) {
        let mut cx = Context::from_waker(&self.handoff_waker);
        match Pin::new(&mut s.ws).poll_flush(&mut cx) {
            Poll::Ready(Ok(())) => s.flushed(),
            Poll::Pending => {
                s.stalled = true;
                self.handoff.hand_off();
            }
            Poll::Ready(Err(_)) => {
                s.closed = true;
                self.handoff.hand_off();
            }
        }
    }
}

impl<W: Sink<Message> + Unpin> Sink<Message> for Wire<W> {
    type Error = W::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), W::Error>> {
        let mut s = self.lock();
        let ready = Pin::new(&mut s.ws).poll_ready(cx);
        // Only a completed flush clears it: the transport may be ready for a frame while
        // bytes of an earlier flush still wait.
        if ready.is_pending() {
            s.stalled = true;
        }
        ready
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), W::Error> {
        let mut s = self.lock();
        s.unflushed = true;
        s.pending += match &item {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        };
        Pin::new(&mut s.ws).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), W::Error>> {
        let mut s = self.lock();
        let flushed = Pin::new(&mut s.ws).poll_flush(cx);
        match flushed {
            Poll::Ready(_) => s.flushed(),
            Poll::Pending => s.stalled = true,
        }
        flushed
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), W::Error>> {
        let mut s = self.lock();
        // Closed or closing: the session must not write any more.
        s.closed = true;
        Pin::new(&mut s.ws).poll_close(cx)
    }
}

/// The task let go: whatever the session still holds, it writes nothing more.
impl<W> Drop for Wire<W> {
    fn drop(&mut self) {
        self.lock().closed = true;
    }
}

impl<W: Stream + Unpin> Stream for Wire<W> {
    type Item = W::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<W::Item>> {
        Pin::new(&mut self.lock().ws).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt;

    /// A socket that writes on flush, or (blocked) waits like a full one and wakes the last
    /// flusher once unblocked.
    #[derive(Clone, Default)]
    struct Pipe {
        written: Arc<Mutex<Vec<String>>>,
        flushed: Arc<Mutex<usize>>,
        buffered: Vec<String>,
        blocked: Arc<AtomicBool>,
        waiting: Arc<Mutex<Option<Waker>>>,
    }

    impl Pipe {
        fn unblock(&self) {
            self.blocked.store(false, Ordering::Relaxed);
            if let Some(w) = self.waiting.lock().unwrap().take() {
                w.wake();
            }
        }

        fn written(&self) -> Vec<String> {
            self.written.lock().unwrap().clone()
        }

        fn flushes(&self) -> usize {
            *self.flushed.lock().unwrap()
        }
    }

    impl Sink<Message> for Pipe {
        type Error = axum::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(mut self: Pin<&mut Self>, m: Message) -> Result<(), Self::Error> {
            let Message::Text(t) = m else { unreachable!() };
            self.buffered.push(t.to_string());
            Ok(())
        }
        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            if self.blocked.load(Ordering::Relaxed) {
                *self.waiting.lock().unwrap() = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let frames = std::mem::take(&mut self.buffered);
            if !frames.is_empty() {
                *self.flushed.lock().unwrap() += 1;
            }
            self.written.lock().unwrap().extend(frames);
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A pipe, the task's wire over it, and the session's handle on that wire.
    fn wired() -> (Pipe, Wire<Pipe>, Arc<dyn DirectWrite>) {
        let pipe = Pipe::default();
        let wire = Wire::new(pipe.clone());
        let direct = wire.direct();
        (pipe, wire, direct)
    }

    fn frame(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn a_session_feeds_frames_in_order_and_one_flush_writes_them() {
        let (pipe, _wire, direct) = wired();
        assert_eq!(direct.feed(&frame("a")), Fed::First);
        assert_eq!(direct.feed(&frame("b")), Fed::Again);
        assert!(pipe.written().is_empty(), "fed, not yet flushed");
        direct.flush();
        assert_eq!(pipe.written(), ["a", "b"]);
        assert_eq!(direct.feed(&frame("c")), Fed::First, "a new turn");
    }

    #[tokio::test]
    async fn a_flush_the_socket_does_not_finish_is_handed_to_the_task_and_nothing_is_added_meanwhile()
     {
        let (pipe, mut wire, direct) = wired();
        pipe.blocked.store(true, Ordering::Relaxed);
        assert_eq!(direct.feed(&frame("a")), Fed::First);
        direct.flush();
        assert!(pipe.written().is_empty());
        assert_eq!(
            direct.feed(&frame("b")),
            Fed::Refused,
            "a stalled socket's frames queue (where the lag bound holds)"
        );
        let waker = Waker::noop();
        let cx = Context::from_waker(waker);
        assert!(
            wire.flush_wanted(&cx),
            "the task is told to finish the flush"
        );
        assert!(!wire.flush_wanted(&cx), "once");
        let mut cx = Context::from_waker(waker);
        assert!(matches!(
            wire.poll_ready_unpin(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(
            direct.feed(&frame("b")),
            Fed::Refused,
            "ready for a frame is not flushed: still stalled"
        );
        // The task's flush waits on the socket like any write, then completes.
        let flush = tokio::spawn(async move {
            wire.flush().await.unwrap();
            wire
        });
        tokio::task::yield_now().await;
        pipe.unblock();
        let _wire = flush.await.unwrap();
        assert_eq!(pipe.written(), ["a"]);
        assert_eq!(
            direct.feed(&frame("b")),
            Fed::First,
            "drained: direct again"
        );
    }

    #[test]
    fn a_large_frame_leaves_alone_and_small_ones_in_batches_of_at_most_4_kib() {
        let (pipe, _wire, direct) = wired();
        let small = Bytes::from(vec![b's'; 100]);
        let large = Bytes::from(vec![b'L'; ALONE_BYTES + 1]);
        assert_eq!(direct.feed(&small), Fed::First);
        assert_eq!(
            direct.feed(&large),
            Fed::Again,
            "flushed before and after: nothing left to list"
        );
        assert_eq!(pipe.flushes(), 2);
        assert_eq!(pipe.written().len(), 2);
        // 41 small frames: the 41st would pass 4 KiB, so the first 40 leave first.
        for i in 0..41 {
            let fed = direct.feed(&small);
            assert_eq!(fed, if i == 0 { Fed::First } else { Fed::Again });
        }
        assert_eq!(pipe.flushes(), 3);
        assert_eq!(pipe.written().len(), 42);
        direct.flush();
        assert_eq!(pipe.written().len(), 43);
    }

    #[test]
    fn once_the_task_lets_go_of_its_socket_the_session_writes_nothing_more() {
        let (pipe, wire, direct) = wired();
        drop(wire);
        assert_eq!(direct.feed(&frame("a")), Fed::Refused);
        direct.flush();
        assert!(pipe.written().is_empty());
    }

    #[test]
    fn a_socket_in_use_by_its_task_declines_and_its_task_is_asked_to_flush() {
        let (_pipe, wire, direct) = wired();
        assert_eq!(direct.feed(&frame("a")), Fed::First);
        let held = wire.lock();
        assert_eq!(direct.feed(&frame("b")), Fed::Refused);
        direct.flush();
        drop(held);
        let waker = Waker::noop();
        assert!(wire.flush_wanted(&Context::from_waker(waker)));
    }
}
