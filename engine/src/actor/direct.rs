//! Writing a session's frames straight into its connections' sockets, instead of waking one
//! task per connection to do it.
//!
//! A connection on this node may give its queue a [`DirectWrite`]: the socket's framing layer,
//! which takes a frame without waiting when it can. Inside [`write_through`] (the session actor
//! wraps each turn's fan-out in it), a push to a queue that is empty, and whose connection holds
//! no frame it took from the queue but has not written yet, is framed into the socket's write
//! buffer at once ([`super::frame_queue`] decides). The sockets a turn fed go to the session's
//! [`Flusher`], one task that writes them out in the order they were fed, a slice at a time,
//! yielding between slices so that the node keeps reading (the next chat arrives while this
//! one is still going out). A socket fed again before its flush rides in that same flush:
//! under load, several frames leave in one write, as they do when a connection's own task
//! drains its queue.
//!
//! What a socket does not take (full, or its connection busy on another thread) falls back to
//! the queue, whose rules hold as before (bounded, lagging drops the connection).
//!
//! What it does not do: know what a socket is (the gateway implements the trait), or write
//! outside the scope (a push elsewhere always queues).

use bytes::Bytes;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// What [`DirectWrite::feed`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// Not taken; queue it.
    Refused,
    /// Taken; the socket held nothing unflushed before, so it needs a flush.
    First,
    /// Taken after an earlier frame that is not flushed yet (its flush carries this one too).
    Again,
}

/// A connection's socket as a session may write to it. Implementations never wait: a call
/// either does its work now or declines.
pub trait DirectWrite: Send + Sync + 'static {
    /// Frames `frame` into the socket's write buffer, in order after everything written
    /// before it, without flushing. Declines (and keeps nothing) when the socket is busy or
    /// its buffer still waits on the network.
    fn feed(&self, frame: &Bytes) -> Fed;
    /// Writes out what [`DirectWrite::feed`] buffered, as far as the socket takes it now; what
    /// is left becomes the connection task's to write (with its own timeout).
    fn flush(&self);
}

type Socket = Arc<dyn DirectWrite>;

thread_local! {
    /// The sockets fed in the current scope; `None` outside a scope.
    static FED: RefCell<Option<Vec<Socket>>> = const { RefCell::new(None) };
}

/// The sockets a scope fed, to flush. Flushed where they are if dropped unflushed, so a
/// frame that was fed always leaves.
#[must_use = "fed sockets must be flushed (give them to a Flusher)"]
#[derive(Default)]
pub struct FedSockets(Vec<Socket>);

impl FedSockets {
    /// Flushes them now, on this task (what dropping them does).
    pub fn flush_now(self) {
        drop(self);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for FedSockets {
    fn drop(&mut self) {
        for socket in self.0.drain(..) {
            socket.flush();
        }
    }
}

/// Runs `f` with direct writes allowed; returns its result and the sockets it fed. The scope
/// never spans an await (it is one poll of a future that does not wait), and it runs outside
/// tokio's cooperative budget: a socket write the budget refused would only stall the socket.
pub async fn write_through<R>(f: impl FnOnce() -> R) -> (R, FedSockets) {
    tokio::task::unconstrained(async move { scoped(f) }).await
}

/// The synchronous half of [`write_through`]. A nested scope joins the outer one.
pub(crate) fn scoped<R>(f: impl FnOnce() -> R) -> (R, FedSockets) {
    let outer = FED.with(|fed| {
        let mut fed = fed.borrow_mut();
        if fed.is_some() {
            true
        } else {
            *fed = Some(Vec::new());
            false
        }
    });
    if outer {
        return (f(), FedSockets::default());
    }
    /// Closes the scope if `f` panics: what was fed is flushed here.
    struct Unwinding;
    impl Drop for Unwinding {
        fn drop(&mut self) {
            drop(FedSockets(take_fed()));
        }
    }
    let unwinding = Unwinding;
    let r = f();
    std::mem::forget(unwinding);
    (r, FedSockets(take_fed()))
}

fn take_fed() -> Vec<Socket> {
    FED.with(|fed| fed.borrow_mut().take()).unwrap_or_default()
}

/// Whether a scope is open on this thread.
pub(crate) fn in_scope() -> bool {
    FED.with(|fed| fed.borrow().is_some())
}

/// Offers `frame` to `socket`; true when the socket took it. Only inside a scope (the caller
/// checks [`in_scope`]), which hands what it fed to be flushed.
pub(crate) fn offer(socket: &Socket, frame: &Bytes) -> bool {
    match socket.feed(frame) {
        Fed::Refused => false,
        Fed::Again => true,
        Fed::First => {
            FED.with(|fed| {
                if let Some(fed) = fed.borrow_mut().as_mut() {
                    fed.push(socket.clone());
                }
            });
            true
        }
    }
}

/// Sockets flushed per slice, between which the flusher yields. About half a millisecond of
/// writes on loopback.
const SLICE: usize = 64;

/// One session's flusher: a task, started with its first fed socket, that flushes fed sockets
/// in order. It ends once the session drops this handle and the last socket is flushed.
#[derive(Default)]
pub struct Flusher(Option<Arc<FlushQueue>>);

struct FlushQueue {
    sockets: Mutex<VecDeque<Socket>>,
    more: Notify,
    closed: AtomicBool,
}

impl Flusher {
    /// Queues `fed` for flushing (the task writes them out soon, oldest first).
    pub fn add(&mut self, mut fed: FedSockets) {
        if fed.0.is_empty() {
            return;
        }
        let q = self.0.get_or_insert_with(|| {
            let q = Arc::new(FlushQueue {
                sockets: Mutex::new(VecDeque::new()),
                more: Notify::new(),
                closed: AtomicBool::new(false),
            });
            tokio::spawn(flush_loop(q.clone()));
            q
        });
        q.sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(fed.0.drain(..));
        q.more.notify_one();
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        if let Some(q) = &self.0 {
            q.closed.store(true, Ordering::Release);
            q.more.notify_one();
        }
    }
}

async fn flush_loop(q: Arc<FlushQueue>) {
    // Grown on first use: most sessions only ever flush a handful of sockets at a time.
    let mut slice = Vec::new();
    loop {
        {
            let mut sockets = q.sockets.lock().unwrap_or_else(PoisonError::into_inner);
            let n = sockets.len().min(SLICE);
            slice.extend(sockets.drain(..n));
            if sockets.is_empty() && sockets.capacity() > 4 * SLICE {
                *sockets = VecDeque::new();
            }
        }
        if slice.is_empty() {
            if q.closed.load(Ordering::Acquire) {
                return;
            }
            q.more.notified().await;
            continue;
        }
        // Outside the cooperative budget, which would refuse socket writes part-way through.
        tokio::task::unconstrained(async {
            for socket in slice.drain(..) {
                socket.flush();
            }
        })
        .await;
        // Let the node read and the session take its next input before the next slice.
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that counts its feeds and flushes into one shared log.
    struct Logged {
        name: &'static str,
        unflushed: AtomicBool,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl DirectWrite for Logged {
        fn feed(&self, frame: &Bytes) -> Fed {
            let text = String::from_utf8_lossy(frame);
            self.log
                .lock()
                .unwrap()
                .push(format!("{} fed {text}", self.name));
            if self.unflushed.swap(true, Ordering::AcqRel) {
                Fed::Again
            } else {
                Fed::First
            }
        }

        fn flush(&self) {
            self.unflushed.store(false, Ordering::Release);
            self.log
                .lock()
                .unwrap()
                .push(format!("{} flushed", self.name));
        }
    }

    fn socket(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Socket {
        Arc::new(Logged {
            name,
            unflushed: AtomicBool::new(false),
            log: log.clone(),
        })
    }

    #[tokio::test]
    async fn the_flusher_writes_each_fed_socket_once_in_the_order_they_were_fed() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = (socket("a", &log), socket("b", &log));
        let frame = Bytes::from_static(b"x");
        let ((), fed) = scoped(|| {
            for s in [&b, &a, &b] {
                assert!(offer(s, &frame));
            }
        });
        assert_eq!(fed.len(), 2, "b fed twice, flushed once");
        let mut flusher = Flusher::default();
        flusher.add(fed);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            *log.lock().unwrap(),
            ["b fed x", "a fed x", "b fed x", "b flushed", "a flushed"]
        );
        drop(flusher);
    }

    #[test]
    fn sockets_fed_in_a_turn_that_panics_are_still_flushed() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let a = socket("a", &log);
        let frame = Bytes::from_static(b"x");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scoped(|| {
                offer(&a, &frame);
                panic!("the session's rules failed");
            })
        }));
        assert!(caught.is_err());
        assert_eq!(*log.lock().unwrap(), ["a fed x", "a flushed"]);
        assert!(!in_scope(), "the scope closed");
    }

    #[test]
    fn outside_a_scope_nothing_is_collected() {
        assert!(!in_scope());
        let ((), fed) = scoped(|| assert!(in_scope()));
        assert!(fed.is_empty());
        assert!(!in_scope());
    }
}
