//! The queue between a session and one connection on this node: the session pushes encoded
//! frames without ever waiting, the connection's task takes them.
//!
//! Why not a tokio channel: a bounded `tokio::sync::mpsc` allocates its first block of 32 slots
//! and a header of cache-padded fields with the channel, about 1.1 kB for every connection,
//! however idle (heaptrack, `docs/PERFORMANCE.md`). Here the bound is a count, not an
//! allocation: an idle connection's queue is one small `Arc` and a deque of a few slots, and a
//! deque that a burst grew is let go once it drains. A push takes an uncontended lock and wakes
//! the connection only when it is waiting.
//!
//! A queue may also hold the connection's socket as a [`DirectWrite`]: inside a session's
//! write-through scope ([`super::direct`]), a text frame pushed while the queue is empty and the
//! connection holds nothing it took but has not written (it calls [`Receiver::settle`] once it
//! has) goes to the socket instead, without waking the connection. Per-connection order holds:
//! a frame only skips the queue when nothing is ahead of it.
//!
//! What it does not do: decide what to drop when full (the caller, [`super::outbound`], does)
//! or carry frames to another node (relay queues are tokio channels: there are few of them).

use super::direct::{self, DirectWrite};
use super::outbound::Frame;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// A drained deque with more slots than this is freed rather than kept for the next burst.
const KEEP_SLOTS: usize = 16;

/// A queue of at most `capacity` frames.
pub fn queue(capacity: usize) -> (Sender, Receiver) {
    queue_with(capacity, None)
}

/// A queue of at most `capacity` frames whose text frames may go straight to `socket` (see
/// the module's head).
pub fn queue_with(capacity: usize, socket: Option<Arc<dyn DirectWrite>>) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        capacity,
        socket,
        state: Mutex::new(State {
            frames: VecDeque::new(),
            waker: None,
            senders: 1,
            receiver: true,
            holding: false,
        }),
    });
    (Sender(shared.clone()), Receiver(shared))
}

struct Shared {
    capacity: usize,
    /// The connection's socket, when it may be written to directly.
    socket: Option<Arc<dyn DirectWrite>>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("capacity", &self.capacity)
            .field("direct", &self.socket.is_some())
            .field("state", &self.state)
            .finish()
    }
}

#[derive(Debug)]
struct State {
    frames: VecDeque<Frame>,
    /// The receiver's waker while it waits on an empty queue; taken by the push that wakes it.
    waker: Option<Waker>,
    senders: usize,
    /// Whether the receiver still exists.
    receiver: bool,
    /// Whether the receiver took a frame it has not settled yet (it may not be written: a
    /// frame must not pass it on the way to the socket).
    holding: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock can panic half-way through a change.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The session's end. Clones share the queue; the receiver sees the end once all are dropped.
#[derive(Debug)]
pub struct Sender(Arc<Shared>);

/// The connection's end.
#[derive(Debug)]
pub struct Receiver(Arc<Shared>);

impl Sender {
    /// Queues `frame`, or gives it back when the queue is full or the receiver is gone.
    pub fn try_send(&self, frame: Frame) -> Result<(), Frame> {
        let waker = {
            let mut s = self.0.lock();
            if !s.receiver || s.frames.len() >= self.0.capacity {
                return Err(frame);
            }
            if s.frames.is_empty()
                && !s.holding
                && let (Some(socket), Frame::Text(bytes)) = (&self.0.socket, &frame)
                && direct::in_scope()
                && direct::offer(socket, bytes)
            {
                return Ok(());
            }
            s.frames.push_back(frame);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Frames queued now.
    pub fn len(&self) -> usize {
        self.0.lock().frames.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most frames the queue holds.
    pub fn capacity(&self) -> usize {
        self.0.capacity
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        !self.0.lock().receiver
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Sender(self.0.clone())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.lock();
            s.senders -= 1;
            if s.senders == 0 { s.waker.take() } else { None }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Receiver {
    /// The next frame; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Frame> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next frame if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Frame> {
        let mut s = self.0.lock();
        pop(&mut s)
    }

    /// Says that every frame taken so far is in the socket's hands (written or buffered in
    /// order), so later frames may go to the socket directly again.
    pub fn settle(&mut self) {
        self.0.lock().holding = false;
    }

    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        let mut s = self.0.lock();
        if let Some(frame) = pop(&mut s) {
            return Poll::Ready(Some(frame));
        }
        if s.senders == 0 {
            return Poll::Ready(None);
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

fn pop(s: &mut State) -> Option<Frame> {
    let frame = s.frames.pop_front()?;
    s.holding = true;
    if s.frames.is_empty() && s.frames.capacity() > KEEP_SLOTS {
        s.frames = VecDeque::new();
    }
    Some(frame)
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let frames = {
            let mut s = self.0.lock();
            s.receiver = false;
            s.waker = None;
            std::mem::take(&mut s.frames)
        };
        // Dropped outside the lock.
        drop(frames);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn text(s: &'static str) -> Frame {
        Frame::text(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn frames_come_out_in_order_and_a_full_queue_gives_the_frame_back() {
        let (tx, mut rx) = queue(2);
        assert!(tx.try_send(text("a")).is_ok());
        assert!(tx.try_send(text("b")).is_ok());
        assert_eq!(tx.try_send(text("c")), Err(text("c")));
        assert_eq!(tx.len(), 2);
        assert_eq!(rx.try_recv(), Some(text("a")));
        assert!(tx.try_send(text("c")).is_ok());
        assert_eq!(rx.try_recv(), Some(text("b")));
        assert_eq!(rx.try_recv(), Some(text("c")));
        assert_eq!(rx.try_recv(), None);
        assert!(tx.is_empty());
    }

    #[test]
    fn the_receiver_sees_the_end_only_after_the_last_sender_and_the_last_frame() {
        let (tx, mut rx) = queue(4);
        let tx2 = tx.clone();
        tx.try_send(text("a")).unwrap();
        drop(tx);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(text("a"))));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending, "a clone still lives");
        drop(tx2);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn a_dropped_receiver_refuses_pushes_and_frees_what_was_queued() {
        let (tx, rx) = queue(4);
        let frame = text("a");
        tx.try_send(frame.clone()).unwrap();
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.try_send(text("b")), Err(text("b")));
        let Frame::Text(arc) = frame else {
            unreachable!()
        };
        assert_eq!(Arc::strong_count(&arc), 1, "the queued copy was dropped");
    }

    #[test]
    fn a_deque_grown_by_a_burst_is_let_go_once_drained() {
        let (tx, mut rx) = queue(1024);
        for _ in 0..100 {
            tx.try_send(text("x")).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.0.lock().frames.capacity(), 0);
        tx.try_send(text("y")).unwrap();
        rx.try_recv();
        assert!(
            rx.0.lock().frames.capacity() <= KEEP_SLOTS,
            "small deques are kept"
        );
    }

    /// A socket that takes frames while `open`, and records what was fed and flushed.
    #[derive(Default)]
    struct Socket {
        open: std::sync::atomic::AtomicBool,
        log: Mutex<Vec<String>>,
    }

    impl DirectWrite for Socket {
        fn feed(&self, frame: &Bytes) -> direct::Fed {
            if !self.open.load(std::sync::atomic::Ordering::Relaxed) {
                return direct::Fed::Refused;
            }
            let mut log = self.log.lock().unwrap();
            let first = log.last().is_none_or(|l| l == "flush");
            log.push(String::from_utf8(frame.to_vec()).unwrap());
            if first {
                direct::Fed::First
            } else {
                direct::Fed::Again
            }
        }

        fn flush(&self) {
            self.log.lock().unwrap().push("flush".into());
        }
    }

    fn direct_queue() -> (Arc<Socket>, Sender, Receiver) {
        let socket = Arc::new(Socket::default());
        socket
            .open
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = queue_with(8, Some(socket.clone() as Arc<dyn DirectWrite>));
        (socket, tx, rx)
    }

    fn log(socket: &Socket) -> Vec<String> {
        socket.log.lock().unwrap().clone()
    }

    #[test]
    fn frames_pushed_in_a_turn_go_to_an_idle_socket_and_are_flushed_once_at_its_end() {
        let (socket, tx, mut rx) = direct_queue();
        let ((), fed) = direct::scoped(|| {
            tx.try_send(text("a")).unwrap();
            tx.try_send(text("b")).unwrap();
            assert_eq!(log(&socket), ["a", "b"], "not flushed inside the turn");
        });
        assert_eq!(fed.len(), 1, "one socket to flush, once");
        fed.flush_now();
        assert_eq!(log(&socket), ["a", "b", "flush"]);
        assert_eq!(rx.try_recv(), None, "nothing was queued");
    }

    #[test]
    fn outside_a_turn_every_frame_queues() {
        let (socket, tx, mut rx) = direct_queue();
        tx.try_send(text("a")).unwrap();
        assert!(log(&socket).is_empty());
        assert_eq!(rx.try_recv(), Some(text("a")));
    }

    #[test]
    fn a_frame_never_passes_one_the_connection_took_but_has_not_written() {
        let (socket, tx, mut rx) = direct_queue();
        tx.try_send(text("a")).unwrap();
        assert_eq!(rx.try_recv(), Some(text("a")), "taken, not yet written");
        let ((), fed) = direct::scoped(|| tx.try_send(text("b")).unwrap());
        assert!(fed.is_empty());
        assert!(log(&socket).is_empty(), "b waits behind a");
        rx.settle();
        let ((), fed) = direct::scoped(|| tx.try_send(text("c")).unwrap());
        assert!(fed.is_empty());
        assert!(log(&socket).is_empty(), "c waits behind b, still queued");
        assert_eq!(rx.try_recv(), Some(text("b")));
        assert_eq!(rx.try_recv(), Some(text("c")));
        rx.settle();
        let ((), fed) = direct::scoped(|| tx.try_send(text("d")).unwrap());
        fed.flush_now();
        assert_eq!(
            log(&socket),
            ["d", "flush"],
            "drained and settled: direct again"
        );
    }

    #[test]
    fn a_socket_that_declines_leaves_the_frame_to_the_queue_and_its_bound() {
        let (socket, tx, mut rx) = direct_queue();
        socket
            .open
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let ((), fed) = direct::scoped(|| {
            for _ in 0..8 {
                tx.try_send(text("x")).unwrap();
            }
            assert_eq!(tx.try_send(text("y")), Err(text("y")), "the bound holds");
            socket
                .open
                .store(true, std::sync::atomic::Ordering::Relaxed);
            tx.try_send(text("z")).unwrap_err();
        });
        assert!(fed.is_empty());
        assert!(log(&socket).is_empty(), "nothing fed, nothing to flush");
        assert_eq!(rx.try_recv(), Some(text("x")));
    }

    #[test]
    fn close_frames_always_queue() {
        let (socket, tx, mut rx) = direct_queue();
        let ((), fed) = direct::scoped(|| tx.try_send(Frame::Close(4000)).unwrap());
        assert!(fed.is_empty());
        assert!(log(&socket).is_empty());
        assert_eq!(rx.try_recv(), Some(Frame::Close(4000)));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_push_and_by_the_last_sender_leaving() {
        let (tx, mut rx) = queue(4);
        let got = tokio::spawn(async move {
            let first = rx.recv().await;
            let end = rx.recv().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        tx.try_send(text("a")).unwrap();
        tokio::task::yield_now().await;
        drop(tx);
        let (first, end) = tokio::time::timeout(std::time::Duration::from_secs(5), got)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(first, Some(text("a")));
        assert_eq!(end, None);
    }
}
