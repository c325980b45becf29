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
    close: CloseSlot,
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

impl Outbound {
    pub fn channel(capacity: usize) -> (Outbound, mpsc::Receiver<Frame>) {
        let (outbound, rx, _) = Self::channel_with_close(capacity);
        (outbound, rx)
    }

    /// Like [`Outbound::channel`], with the slot a close code lands in when the queue is full.
    pub fn channel_with_close(capacity: usize) -> (Outbound, mpsc::Receiver<Frame>, CloseSlot) {
        let (tx, rx) = mpsc::channel(capacity.max(4));
        let close = CloseSlot::default();
        (
            Outbound {
                tx,
                close: close.clone(),
            },
            rx,
            close,
        )
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
