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
//! What it does not do: decide what to drop when full (the caller, [`super::outbound`], does)
//! or carry frames to another node (relay queues are tokio channels: there are few of them).

use super::outbound::Frame;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// A drained deque with more slots than this is freed rather than kept for the next burst.
const KEEP_SLOTS: usize = 16;

/// A queue of at most `capacity` frames.
pub fn queue(capacity: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        capacity,
        state: Mutex::new(State {
            frames: VecDeque::new(),
            waker: None,
            senders: 1,
            receiver: true,
        }),
    });
    (Sender(shared.clone()), Receiver(shared))
}

#[derive(Debug)]
struct Shared {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    frames: VecDeque<Frame>,
    /// The receiver's waker while it waits on an empty queue; taken by the push that wakes it.
    waker: Option<Waker>,
    senders: usize,
    /// Whether the receiver still exists.
    receiver: bool,
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
