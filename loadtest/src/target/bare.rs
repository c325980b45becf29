//! The bare target: clients of `wagu-loadtest bare-server` (see [`crate::bare_server`]). A
//! client opens `ws://HOST:PORT/ws?room=<n>` and is in the room; it sends the Wagu client
//! frames as they are, and reads each friend's frame relayed verbatim. There is no handshake,
//! no acknowledgement and no server stamp.

use super::Incoming;
use super::centrifugo::Marked;

/// Path and query of room `index`.
pub fn path(index: usize) -> String {
    format!("/ws?room={index}")
}

/// A relayed frame is a Wagu client frame from a friend.
pub fn classify(frame: &str) -> Incoming {
    match serde_json::from_str::<Marked>(frame) {
        Ok(m) => m.incoming(),
        Err(_) => Incoming::Undecodable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::wagu;

    #[test]
    fn reads_relayed_wagu_frames() {
        assert_eq!(
            classify(&wagu::presence(6, 1234)),
            Incoming::Presence {
                at_ms: None,
                updates: vec![(6, 1234)]
            }
        );
        assert_eq!(
            classify(&wagu::chat(0, 2, 5)),
            Incoming::Chat {
                from: 2,
                counter: 5
            }
        );
        assert_eq!(classify(r#"{"type":"ping"}"#), Incoming::Other);
        assert_eq!(classify("]"), Incoming::Undecodable);
        assert_eq!(path(12), "/ws?room=12");
    }
}
