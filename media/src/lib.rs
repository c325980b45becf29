//! The Wagu media plane: where each room's SFU will live.
//!
//! What it will do (the media issue): one str0m-based, sans-IO SFU actor per room forwarding
//! Opus voice and VP8/H.264 video between participants, with signalling (SDP offers/answers,
//! ICE candidates) riding on the room's WebSocket, and the ability to run on nodes of its own,
//! apart from the room/data nodes, as the original team learned to do.
//!
//! What it does today: nothing at run time. It holds only the configuration surface, so that
//! the gateway's settings and the deployment layout do not change when the SFU lands. No str0m
//! dependency is pulled in until it is used.

use serde::{Deserialize, Serialize};

/// Where the SFU listens for media and which addresses it advertises to peers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct MediaConfig {
    /// UDP address for WebRTC media, e.g. `0.0.0.0:3478`. `None`: media is off on this node.
    pub udp_listen: Option<String>,
    /// Public addresses given to peers as host candidates (str0m enumerates no interfaces).
    pub public_ips: Vec<String>,
}

impl MediaConfig {
    /// Whether this node serves media.
    pub fn enabled(&self) -> bool {
        self.udp_listen.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_is_off_by_default() {
        assert!(!MediaConfig::default().enabled());
    }
}
