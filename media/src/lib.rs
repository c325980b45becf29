//! The Wagu media plane: one str0m SFU per map room and per live stream.
//!
//! What it does: [`MediaNode`] binds the node's one UDP media port and runs each session's SFU
//! on a task of its own (`node.rs`); [`sfu::SfuSession`] is that SFU as a sans-IO state machine
//! (`sfu.rs`: peers, forwarding into a fixed number of receive slots, mute, keyframes, active
//! speakers); `demux.rs` routes datagrams to sessions by STUN ufrag and source address. The
//! session actors reach it through `wagu_engine::actor::media::MediaPlane`, with the
//! serialisable messages of `wagu_proto::media`, so media can move to nodes of its own.
//!
//! What it does not do: decide who may publish (the session's `media_grant`), signalling
//! transport (it rides on the session's WebSocket), TURN (run coturn; see `deploy/`),
//! simulcast layer selection or bandwidth estimation.

pub mod demux;
pub mod node;
pub mod sfu;

pub use node::MediaNode;

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Where the SFU listens for media and which addresses it advertises to peers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// UDP address for WebRTC media, shared by every room and stream of the node, e.g.
    /// `0.0.0.0:3478`; port 0 picks a free one. `None` (or `""`): media is off on this node.
    pub udp_listen: Option<String>,
    /// Addresses given to peers as host candidates (str0m enumerates no interfaces). Empty: the
    /// bound address, which must then not be a wildcard.
    pub public_ips: Vec<String>,
}

impl Default for MediaConfig {
    /// On, on loopback with a free port: `cargo run` gives voice between browser tabs on this
    /// machine. A deployment sets `udp_listen` and `public_ips`.
    fn default() -> Self {
        MediaConfig {
            udp_listen: Some("127.0.0.1:0".into()),
            public_ips: Vec::new(),
        }
    }
}

/// What can go wrong setting up media.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media.udp_listen `{0}` is not an address like 0.0.0.0:3478")]
    BadListen(String),
    #[error("media.public_ips entry `{0}` is not an IP address")]
    BadPublicIp(String),
    #[error("media listens on the wildcard {0}: set media.public_ips to the address peers reach")]
    NoPublicIp(SocketAddr),
    #[error("cannot bind the media port {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl MediaConfig {
    /// Media switched off.
    pub fn off() -> Self {
        MediaConfig {
            udp_listen: None,
            public_ips: Vec::new(),
        }
    }

    /// Whether this node serves media.
    pub fn enabled(&self) -> bool {
        self.udp_listen.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// The address to bind, if media is on.
    pub fn udp_listen(&self) -> Result<Option<SocketAddr>, MediaError> {
        match self.udp_listen.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| MediaError::BadListen(s.to_string())),
        }
    }

    /// Checks the settings without binding anything.
    pub fn validate(&self) -> Result<(), MediaError> {
        if let Some(addr) = self.udp_listen()? {
            self.advertised(addr)?;
        }
        Ok(())
    }

    /// The host candidates for a port bound at `bound`: each public IP with the bound port, or
    /// the bound address itself.
    pub fn advertised(&self, bound: SocketAddr) -> Result<Vec<SocketAddr>, MediaError> {
        if self.public_ips.is_empty() {
            if bound.ip().is_unspecified() {
                return Err(MediaError::NoPublicIp(bound));
            }
            return Ok(vec![bound]);
        }
        self.public_ips
            .iter()
            .map(|s| {
                s.parse::<IpAddr>()
                    .map(|ip| SocketAddr::new(ip, bound.port()))
                    .map_err(|_| MediaError::BadPublicIp(s.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_is_on_loopback_by_default_and_can_be_switched_off() {
        assert!(MediaConfig::default().enabled());
        assert!(!MediaConfig::off().enabled());
        let empty = MediaConfig {
            udp_listen: Some(String::new()),
            public_ips: vec![],
        };
        assert!(!empty.enabled());
        assert_eq!(empty.udp_listen().unwrap(), None);
    }

    #[test]
    fn a_wildcard_listen_needs_a_public_ip() {
        let c = MediaConfig {
            udp_listen: Some("0.0.0.0:3478".into()),
            public_ips: vec![],
        };
        assert!(matches!(c.validate(), Err(MediaError::NoPublicIp(_))));
        let c = MediaConfig {
            public_ips: vec!["203.0.113.7".into()],
            ..c
        };
        assert_eq!(
            c.advertised("0.0.0.0:3478".parse().unwrap()).unwrap(),
            vec!["203.0.113.7:3478".parse().unwrap()]
        );
        let bad = MediaConfig {
            public_ips: vec!["example.com".into()],
            ..c
        };
        assert!(matches!(bad.validate(), Err(MediaError::BadPublicIp(_))));
    }
}
