//! The seam between a session's actor and its SFU.
//!
//! What it does: [`MediaPlane`] is how an actor opens its session's SFU (the `media` crate
//! implements it in this process; a media node across the network can implement it with the
//! same [`SfuRequest`]/[`SfuEvent`] messages), and [`MediaSeats`] is what the actor remembers
//! of each participant's media: which connection asked, how many candidates it trickled, and
//! the last list of publishers (for newcomers).
//!
//! What it does not do: decide who may publish (`Machine::media_grant`, applied by
//! `crate::media::route`), or touch SDP and packets (the SFU).

use crate::machine::ConnId;
use std::collections::HashMap;
use std::sync::Arc;
use wagu_proto::ids::ParticipantId;
use wagu_proto::media::{MediaPeer, SfuEvent, SfuRequest};

/// Where SFU events for one session go (the session actor's mailbox). Never blocks.
pub type MediaEvents = Arc<dyn Fn(SfuEvent) + Send + Sync>;

/// Opens the SFU of a session. One per node, shared by every session.
pub trait MediaPlane: Send + Sync + std::fmt::Debug + 'static {
    /// Starts the SFU of session `id` of kind `kind` (`room`, `stream`); its events go to
    /// `events`. Cheap: nothing runs until the first offer arrives.
    fn open(&self, kind: &'static str, id: &str, events: MediaEvents) -> Box<dyn MediaSession>;
}

/// One session's SFU, as its actor holds it.
pub trait MediaSession: Send + Sync {
    /// Queues a request, in order; never waits. A request to an SFU that has stopped is
    /// dropped (its peers ended with it, and `SfuEvent::Ended` said so).
    fn send(&self, request: SfuRequest);
}

/// What the actor keeps of one participant's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    /// The connection that sent the offer: answers and endings go there.
    pub conn: ConnId,
    /// Candidates trickled since the offer.
    pub candidates: usize,
}

/// Every participant with media in one session.
#[derive(Default)]
pub struct MediaSeats {
    pub seats: HashMap<ParticipantId, Seat>,
    /// The publishers as the SFU last reported them.
    pub peers: Vec<MediaPeer>,
    pub session: Option<Box<dyn MediaSession>>,
}

impl MediaSeats {
    /// Participants whose media must end because they are no longer in the session.
    pub fn gone(&self, is_member: impl Fn(ParticipantId) -> bool) -> Vec<(ParticipantId, Seat)> {
        self.seats
            .iter()
            .filter(|(p, _)| !is_member(**p))
            .map(|(p, s)| (*p, *s))
            .collect()
    }
}
