//! A connection's outbound queue as the room sees it: a bounded queue of already-encoded
//! frames ([`super::frame_queue`]). The room never waits on it. A reliable frame that does not fit means the client cannot
//! keep up: the room drops the sender, the gateway sees the queue end without a close frame and
//! closes the socket with "resume" (4000). Lossy frames (presence) are skipped instead when the
//! queue is three-quarters full, and the connection gets a full presence picture once it drains.
//!
//! A connection whose gateway is another node has a *relayed* outbound: its frames go, tagged
//! with the gateway's connection id, into one queue per gateway node that a relay task sends over
//! the bus (see `crate::remote`). The same rules hold there (a full queue drops the connection);
//! when the session lets the connection go, the relay tells the gateway, with any close code.

pub use super::direct::{DirectWrite, Fed};
use super::frame_queue;
pub use super::frame_queue::Receiver;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// One encoded JSON text frame, shared by every connection it goes to. Behind an `Arc`
    /// (one more pointer than `Bytes`) so that a queue slot is 16 bytes, not 40: a connection's
    /// queue keeps the slots of its last few frames (see `frame_queue::KEEP_SLOTS`).
    Text(Arc<Bytes>),
    /// Close the WebSocket with this code.
    Close(u16),
}

#[derive(Debug, Clone)]
pub struct Outbound {
    to: To,
    close: CloseSlot,
}

#[derive(Debug, Clone)]
enum To {
    /// A socket on this node.
    Local(frame_queue::Sender),
    /// A socket on another node, through that node's relay queue.
    Relayed {
        /// The connection's id on its gateway node.
        conn: u64,
        tx: mpsc::Sender<Relayed>,
        /// Tells the relay when the last handle of this connection is gone.
        _end: std::sync::Arc<EndGuard>,
    },
}

/// What a relay queue carries: a frame for one remote connection, or its end.
#[derive(Debug)]
pub enum Relayed {
    Frame(u64, Frame),
    /// The session let the connection go; the close code it asked for, if any.
    End(u64, Option<u16>),
}

#[derive(Debug)]
struct EndGuard {
    conn: u64,
    tx: mpsc::Sender<Relayed>,
    ended: mpsc::UnboundedSender<(u64, Option<u16>)>,
    close: CloseSlot,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let code = self.close.get();
        // In band when there is room (after the frames before it), else on the side channel
        // the relay also reads, so an end is never lost to a full queue.
        if self.tx.try_send(Relayed::End(self.conn, code)).is_err() {
            let _ = self.ended.send((self.conn, code));
        }
    }
}

/// Where the room leaves the close code it wanted to send when the queue had no room for the
/// close frame: the connection reads it when the queue ends, so a kicked, banned or closed-room
/// client is still told the right code (not "resume").
#[derive(Debug, Clone, Default)]
pub struct CloseSlot(std::sync::Arc<std::sync::atomic::AtomicU16>);

impl CloseSlot {
    /// The code left here, if any.
    pub fn get(&self) -> Option<u16> {
        match self.0.load(std::sync::atomic::Ordering::Acquire) {
            0 => None,
            c => Some(c),
        }
    }
}

pub enum Pushed {
    Sent,
    /// The queue is full (or the connection is gone).
    Full,
}

impl Frame {
    /// A text frame for one connection.
    pub fn text(bytes: Bytes) -> Frame {
        Frame::Text(Arc::new(bytes))
    }
}

impl Outbound {
    pub fn channel(capacity: usize) -> (Outbound, Receiver) {
        let (outbound, rx, _) = Self::channel_with_close(capacity);
        (outbound, rx)
    }

    /// Like [`Outbound::channel`], with the slot a close code lands in when the queue is full.
    pub fn channel_with_close(capacity: usize) -> (Outbound, Receiver, CloseSlot) {
        Self::channel_to(capacity, None)
    }

    /// Like [`Outbound::channel_with_close`]; with a `socket`, a session may write this
    /// connection's frames straight into it (see [`super::direct`]).
    pub fn channel_to(
        capacity: usize,
        socket: Option<Arc<dyn DirectWrite>>,
    ) -> (Outbound, Receiver, CloseSlot) {
        let (tx, rx) = frame_queue::queue_with(capacity.max(4), socket);
        let close = CloseSlot::default();
        (
            Outbound {
                to: To::Local(tx),
                close: close.clone(),
            },
            rx,
            close,
        )
    }

    /// The outbound of connection `conn` of another node, through that node's relay queue
    /// `tx` (and its side channel `ended` for ends that find the queue full).
    pub fn relayed(
        conn: u64,
        tx: mpsc::Sender<Relayed>,
        ended: mpsc::UnboundedSender<(u64, Option<u16>)>,
    ) -> Outbound {
        let close = CloseSlot::default();
        let guard = EndGuard {
            conn,
            tx: tx.clone(),
            ended,
            close: close.clone(),
        };
        Outbound {
            to: To::Relayed {
                conn,
                tx,
                _end: std::sync::Arc::new(guard),
            },
            close,
        }
    }

    /// Asks the connection to close with `code`: a close frame, or (queue full) the close slot.
    pub fn close(&self, code: u16) {
        if let Pushed::Full = self.push(Frame::Close(code)) {
            self.close
                .0
                .store(code, std::sync::atomic::Ordering::Release);
        }
    }

    pub fn push(&self, frame: Frame) -> Pushed {
        let sent = match &self.to {
            To::Local(tx) => tx.try_send(frame).is_ok(),
            To::Relayed { conn, tx, .. } => tx.try_send(Relayed::Frame(*conn, frame)).is_ok(),
        };
        if sent { Pushed::Sent } else { Pushed::Full }
    }

    /// Whether a lossy frame should be skipped to leave room for reliable ones.
    pub fn congested(&self) -> bool {
        match &self.to {
            To::Local(tx) => (tx.capacity() - tx.len()) * 4 < tx.capacity(),
            To::Relayed { tx, .. } => tx.capacity() * 4 < tx.max_capacity(),
        }
    }

    pub fn is_closed(&self) -> bool {
        match &self.to {
            To::Local(tx) => tx.is_closed(),
            To::Relayed { tx, .. } => tx.is_closed(),
        }
    }
}
