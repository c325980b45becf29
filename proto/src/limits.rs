//! Limits every frame must respect. They live in the protocol crate so that clients, the
//! gateway and the engine agree on them, and `docs/PROTOCOL.md` lists them.

/// Largest text frame the gateway accepts from a client, in bytes.
pub const MAX_CLIENT_FRAME_BYTES: usize = 16 * 1024;
/// Display names: 1 to 40 characters after trimming.
pub const MAX_NAME_CHARS: usize = 40;
/// Chat messages: 1 to 1,000 characters.
pub const MAX_CHAT_CHARS: usize = 1_000;
/// Room titles: up to 100 characters.
pub const MAX_TITLE_CHARS: usize = 100;
/// Candidate names: 1 to 200 characters.
pub const MAX_PLACE_NAME_CHARS: usize = 200;
/// Candidate notes: up to 500 characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// Place ids: 1 to 128 bytes of printable ASCII.
pub const MAX_PLACE_ID_BYTES: usize = 128;
/// Candidates one room may hold.
pub const MAX_CANDIDATES: usize = 100;
/// Choices in one ballot (approval voting can never exceed the candidate count either).
pub const MAX_CHOICES: usize = 32;
/// Chat messages kept in the room and sent in a snapshot.
pub const CHAT_TAIL: usize = 200;
/// SDP offers (`media_offer`): up to 12,000 bytes. The offers the SFU asks for have a fixed
/// number of m-lines (one per track sent, one per receive slot), so they stay far below the
/// frame limit however many people a room holds.
pub const MAX_SDP_BYTES: usize = 12_000;
/// One trickled ICE candidate (`media_candidate`): up to 512 bytes.
pub const MAX_ICE_CANDIDATE_BYTES: usize = 512;
/// Trickled candidates one media peer may send.
pub const MAX_ICE_CANDIDATES: usize = 20;
/// Audio tracks the SFU forwards to one room participant at most: the loudest speakers other
/// than itself. A client offers this many `recvonly` audio m-lines (fewer is fine).
pub const VOICE_RECEIVE_SLOTS: u8 = 4;
/// Highest map zoom level accepted.
pub const MAX_ZOOM: f64 = 24.0;
