//! What crosses the bus between nodes: requests to a session's owner (join, create, summary),
//! commands and disconnects for it, and batches of frames from an owner to a gateway node.
//!
//! Requests and commands are JSON (rare, small, and they carry the protocol's own types).
//! Frame batches are binary, since they carry already-encoded JSON frames that would otherwise
//! be escaped again: `relay (u64) · batch (u64) · node id (u8 len + bytes)`, then items, each
//! `tag (u8) · …`:
//! - `0` text to many: `count (u32) · conn (u64) × count · len (u32) · bytes` — one broadcast
//!   goes to a gateway node once, however many of its connections are in the session;
//! - `1` close: `conn (u64) · code (u16)`;
//! - `2` end: `conn (u64) · code (u16, 0 = none)` — the session let the connection go.
//!
//! What it does not do: route (`remote::mod`) or apply anything.

use crate::actor::outbound::Frame;
use crate::machine::Refusal;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use wagu_proto::ids::{HostKey, ParticipantId, RequestId, ResumeToken};
use wagu_proto::{ClientMessage, Identity, ResumeRequest};

/// A join forwarded to the owner: the connection lives on `gateway` as `conn`.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinWire {
    pub session: String,
    pub gateway: String,
    pub conn: u64,
    pub client_key: Option<Identity>,
    pub id: RequestId,
    pub name: String,
    pub host_key: Option<HostKey>,
    pub resume: Option<ResumeRequest>,
    pub resume_token: ResumeToken,
}

/// A request to the node that owns (or is to own) a session.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "rpc", rename_all = "snake_case")]
pub enum Rpc<Spec> {
    Join(JoinWire),
    /// Placement: create this session here.
    Create {
        spec: Spec,
    },
    Summary {
        session: String,
    },
}

/// The owner's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply<Summary> {
    Joined {
        session_id: String,
        participant: ParticipantId,
        resumed: bool,
        /// The connection's id on the owner (commands name it).
        owner_conn: u64,
    },
    Created,
    Summary {
        summary: Summary,
    },
    Refused {
        refusal: Refusal,
    },
    /// The session is owned by this other node now (it moved): ask there.
    Moved {
        node: String,
    },
    Unknown,
    Unavailable {
        message: String,
    },
}

/// A command or disconnect for a session on its owner (no reply: the acks come as frames).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Cmd {
    Command {
        session: String,
        gateway: String,
        conn: u64,
        owner_conn: u64,
        participant: ParticipantId,
        msg: ClientMessage,
    },
    Disconnect {
        session: String,
        owner_conn: u64,
        participant: ParticipantId,
    },
}

/// One item of a frame batch (see the module head).
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Text(Vec<u64>, Bytes),
    Close(u64, u16),
    End(u64, Option<u16>),
}

/// A batch of items from one owner's relay to one gateway node.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The relay (random per relay task): batch numbers count within it.
    pub relay: u64,
    pub batch: u64,
    /// The owner node that sent it.
    pub node: String,
    pub items: Vec<Item>,
}

#[derive(Debug, thiserror::Error)]
#[error("a frame batch is malformed: {0}")]
pub struct BadBatch(&'static str);

impl Batch {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_u64(self.relay);
        b.put_u64(self.batch);
        b.put_u8(self.node.len() as u8);
        b.put_slice(self.node.as_bytes());
        for item in &self.items {
            match item {
                Item::Text(conns, bytes) => {
                    b.put_u8(0);
                    b.put_u32(conns.len() as u32);
                    for c in conns {
                        b.put_u64(*c);
                    }
                    b.put_u32(bytes.len() as u32);
                    b.put_slice(bytes);
                }
                Item::Close(conn, code) => {
                    b.put_u8(1);
                    b.put_u64(*conn);
                    b.put_u16(*code);
                }
                Item::End(conn, code) => {
                    b.put_u8(2);
                    b.put_u64(*conn);
                    b.put_u16(code.unwrap_or(0));
                }
            }
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Result<Batch, BadBatch> {
        fn need(b: &Bytes, n: usize) -> Result<(), BadBatch> {
            if b.remaining() < n {
                Err(BadBatch("truncated"))
            } else {
                Ok(())
            }
        }
        need(&b, 17)?;
        let relay = b.get_u64();
        let batch = b.get_u64();
        let len = b.get_u8() as usize;
        need(&b, len)?;
        let node = String::from_utf8(b.split_to(len).to_vec()).map_err(|_| BadBatch("node"))?;
        let mut items = Vec::new();
        while b.has_remaining() {
            match b.get_u8() {
                0 => {
                    need(&b, 4)?;
                    let n = b.get_u32() as usize;
                    need(&b, n * 8 + 4)?;
                    let conns = (0..n).map(|_| b.get_u64()).collect();
                    let len = b.get_u32() as usize;
                    need(&b, len)?;
                    items.push(Item::Text(conns, b.split_to(len)));
                }
                1 => {
                    need(&b, 10)?;
                    items.push(Item::Close(b.get_u64(), b.get_u16()));
                }
                2 => {
                    need(&b, 10)?;
                    let conn = b.get_u64();
                    let code = b.get_u16();
                    items.push(Item::End(conn, (code != 0).then_some(code)));
                }
                _ => return Err(BadBatch("unknown item")),
            }
        }
        Ok(Batch {
            relay,
            batch,
            node,
            items,
        })
    }
}

/// Adds one relayed frame to `items`, folding a broadcast frame (the same shared bytes) that
/// follows the previous item into it.
pub fn push_frame(items: &mut Vec<Item>, conn: u64, frame: Frame) {
    match frame {
        Frame::Text(bytes) => {
            if let Some(Item::Text(conns, prev)) = items.last_mut()
                && prev.as_ptr() == bytes.as_ptr()
                && prev.len() == bytes.len()
            {
                conns.push(conn);
                return;
            }
            items.push(Item::Text(vec![conn], Bytes::clone(&bytes)));
        }
        Frame::Close(code) => items.push(Item::Close(conn, code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_goes_into_a_batch_once_for_all_its_connections() {
        let shared = Bytes::from_static(br#"{"type":"chat"}"#);
        let mut items = Vec::new();
        push_frame(&mut items, 1, Frame::text(shared.clone()));
        push_frame(&mut items, 2, Frame::text(shared.clone()));
        push_frame(&mut items, 3, Frame::text(Bytes::from_static(b"{}")));
        push_frame(&mut items, 3, Frame::Close(4001));
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], Item::Text(vec![1, 2], shared));
        let batch = Batch {
            relay: 7,
            batch: 9,
            node: "wagu-2".into(),
            items: [items, vec![Item::End(5, None), Item::End(6, Some(4000))]].concat(),
        };
        assert_eq!(Batch::decode(batch.encode()).unwrap(), batch);
    }

    #[test]
    fn a_truncated_batch_is_refused_not_misread() {
        let batch = Batch {
            relay: 1,
            batch: 1,
            node: "n".into(),
            items: vec![Item::Text(vec![1, 2], Bytes::from_static(b"hello"))],
        };
        let bytes = batch.encode();
        // 18 bytes of header (relay, batch, the node's length and name), then the item.
        for cut in (0..bytes.len()).filter(|c| *c != 18) {
            assert!(Batch::decode(bytes.slice(..cut)).is_err(), "cut at {cut}");
        }
        assert!(Batch::decode(Bytes::from_static(&[0; 17])).is_ok());
        let mut bad = bytes.to_vec();
        bad[18] = 9;
        assert!(Batch::decode(Bytes::from(bad)).is_err());
    }
}
