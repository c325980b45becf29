//! The Wagu wire protocol.
//!
//! What it does: defines every frame a client and the server exchange over the room WebSocket
//! (JSON text frames tagged by `type`), the ids and the room model those frames carry, the limits
//! a frame must respect, and a codec that turns bytes into a validated [`ClientMessage`] and a
//! [`ServerMessage`] into bytes. A JSON Schema of both directions comes from the Rust types
//! ([`schema`]).
//!
//! What it does not do: IO, timing, room rules. It has no tokio and no allocator tricks; the
//! engine and the gateway build on it, and so can a client in another language through the
//! schema. See `docs/PROTOCOL.md` for the prose version with an example of every message.

pub mod client;
pub mod close;
pub mod codec;
pub mod error;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod media;
pub mod model;
pub mod records;
pub mod schema;
pub mod server;

pub use client::{ClientMessage, ResumeRequest};
pub use codec::{DecodeError, decode_client, encode_server};
pub use error::ErrorCode;
pub use identity::Identity;
pub use ids::{
    HostKey, ParticipantId, PlaceId, RequestId, ResumeToken, RoomId, Seq, ShareToken, StreamId,
};
pub use server::ServerMessage;

/// The protocol version this build speaks. A `hello` naming another version is refused with
/// [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 1;
