//! A connection's outbound queue as the room sees it: a bounded channel of already-encoded
//! frames. The room never waits on it. A reliable frame that does not fit means the client cannot
//! keep up: the room drops the sender, the gateway sees the queue end without a close frame and
//! closes the socket with "resume" (4000). Lossy frames (presence) are skipped instead when the
//! queue is three-quarters full, and the connection gets a full presence picture once it drains.

use bytes::Bytes;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// One encoded JSON text frame, shared by every connection it goes to.
    Text(Bytes),
    /// Close the WebSocket with this code.
    Close(u16),
}

#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Frame>,
}

pub enum Pushed {
    Sent,
    /// The queue is full (or the connection is gone).
    Full,
}

impl Outbound {
    pub fn channel(capacity: usize) -> (Outbound, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity.max(4));
        (Outbound { tx }, rx)
    }

    pub fn push(&self, frame: Frame) -> Pushed {
        match self.tx.try_send(frame) {
            Ok(()) => Pushed::Sent,
            Err(_) => Pushed::Full,
        }
    }

    /// Whether a lossy frame should be skipped to leave room for reliable ones.
    pub fn congested(&self) -> bool {
        self.tx.capacity() * 4 < self.tx.max_capacity()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
