//! WebSocket close codes the server uses, and what a client should do on each. Codes 4000–4999
//! are reserved by RFC 6455 for applications.

/// Reconnect and `join` with `resume`: nothing is lost (the server restarted a room, the client
/// fell too far behind, or it was idle past the timeout).
pub const RESUME: u16 = 4000;
/// The host removed this participant; do not reconnect with the same resume token.
pub const KICKED: u16 = 4001;
/// The room (or live stream) has ended for good.
pub const ROOM_CLOSED: u16 = 4002;
/// The client sent no frame (not even a pong) within the idle timeout.
pub const IDLE_TIMEOUT: u16 = 4003;
/// `hello` named an unsupported protocol version.
pub const UNSUPPORTED_VERSION: u16 = 4004;
/// The streamer banned this viewer; do not reconnect.
pub const BANNED: u16 = 4005;
/// The participant left (the answer to `leave`).
pub const LEFT: u16 = 1000;
/// Sustained abuse: too many refused frames.
pub const POLICY: u16 = 1008;
/// A frame over the size limit.
pub const TOO_BIG: u16 = 1009;
