//! The Wagu room engine.
//!
//! - [`machine`]: what every session's state machine shares (inputs, outputs, the `Machine`
//!   trait the actors run).
//! - [`room`]: the map room as a deterministic, sans-IO state machine (`handle(now, input)` →
//!   outputs). No tokio, no sockets, no clock of its own: build this crate with
//!   `--no-default-features` and that is all you get.
//! - [`stream`]: the live stream (streamer, viewers, chat moderation) as the same kind of state
//!   machine.
//! - `actor` (feature `runtime`, on by default): the ractor actors that run rooms, the
//!   supervisor that spawns, restarts and retires them, and the snapshot store they write to.
//! - `sessions` (feature `runtime`): `Sessions<M>` (with `Rooms` and `Streams`), the one
//!   interface the gateway uses to reach a session, whether its actor is in this process or,
//!   later, on another node.

pub mod machine;
pub mod media;
pub mod room;
pub mod stream;

#[cfg(feature = "runtime")]
pub mod actor;
#[cfg(feature = "runtime")]
pub mod error;
#[cfg(feature = "runtime")]
pub mod persist;
#[cfg(feature = "runtime")]
pub mod remote;
#[cfg(feature = "runtime")]
pub mod sessions;
