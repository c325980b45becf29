//! The servers a scenario can drive. Each target module speaks one server's protocol: how to
//! create a room over HTTP, which frames open a session, how a presence or chat is encoded
//! with the harness's marker, and how an incoming frame is classified. Scenarios only see
//! [`wagu::Incoming`]-like outcomes and never build or parse JSON themselves, so a Centrifugo
//! target is a sibling module (publish/subscribe frames instead of `join`/`presence`) plus a
//! `--target` value, without touching the scenarios' timing, stats or report.

pub mod wagu;

/// Which server the run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A Wagu node: `POST /api/rooms`, then the room WebSocket protocol (`wagu-proto`).
    Wagu,
}
