//! The map room as a deterministic, sans-IO state machine.
//!
//! What it does: holds one room's participants, presence, candidates, ballots, decision and
//! chat, and applies the rules to every input: `Room::handle(now, input)` returns the outputs
//! (frames to one connection, events to everyone, connections to attach or close, "retire me").
//! Every reliable event gets the next sequence number and goes into a bounded replay buffer so a
//! resuming client receives exactly what it missed.
//!
//! What it does not do: sockets, timers, randomness or clocks. The caller passes the time in
//! (`now`, Unix milliseconds), generates tokens and connection ids, and asks
//! [`Room::next_deadline`] when to call back with [`Input::Tick`]. Because of that the room is
//! replayable: the actor journals the inputs that changed it and rebuilds the room after a
//! crash from the last snapshot plus the journal (see `actor::room`).
//!
//! Why one file of ~980 lines: it is every rule of a map room (join, resume, votes, candidates,
//! chat, presence, kicks, expiry) over one state; split by command, each part would need the
//! whole state and the invariants would have no single place to be read. Its tests are in
//! `tests.rs`.

pub mod votes;

use crate::machine::{
    Machine, RecentCommands, Refusal, ReplayLog, keep_chat, refuse_by_scope, refuse_ended,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use wagu_proto::client::Scope;
use wagu_proto::close;
use wagu_proto::error::ErrorCode;
use wagu_proto::ids::*;
use wagu_proto::limits::MAX_CANDIDATES;
use wagu_proto::model::*;
use wagu_proto::{ClientMessage, PROTOCOL_VERSION, ResumeRequest, ServerMessage};

pub use crate::machine::{ConnId, Input, Output};

/// Tunables of one room. Part of the room's state so that a restored room keeps its settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoomConfig {
    pub max_participants: usize,
    /// How long a dropped participant stays listed as away and may resume.
    pub away_grace_ms: u64,
    /// How long a room with nobody online lives before it retires (its link dies with it).
    pub empty_ttl_ms: u64,
    /// How many reliable events are kept for resuming clients.
    pub replay_capacity: usize,
    /// Minimum time between two presence batches (50 ms = at most 20 Hz).
    pub presence_interval_ms: u64,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            max_participants: 50,
            away_grace_ms: 60_000,
            empty_ttl_ms: 10 * 60_000,
            replay_capacity: 512,
            presence_interval_ms: 50,
        }
    }
}

/// What a room is created with.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoomSpec {
    pub id: RoomId,
    pub title: String,
    pub center: Option<LatLng>,
    pub vote_mode: VoteMode,
    pub share: ShareToken,
    pub host_key: HostKey,
    pub share_expires_at: UnixMillis,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Participant {
    info: ParticipantInfo,
    resume_token: ResumeToken,
    conn: Option<ConnId>,
    away_since: Option<UnixMillis>,
    viewport: Option<Viewport>,
    pointer: Option<LatLng>,
}

/// A newcomer's details, from an `Input::Join` without a resume.
struct Joining {
    name: String,
    host_key: Option<HostKey>,
    resume_token: ResumeToken,
    account: Option<wagu_proto::records::AccountId>,
}

/// One map room. Serialisable: a snapshot of it is what the actor stores.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Room {
    spec: RoomSpec,
    config: RoomConfig,
    created_at: UnixMillis,
    host: Option<ParticipantId>,
    participants: BTreeMap<ParticipantId, Participant>,
    next_participant: u32,
    candidates: Vec<Candidate>,
    ballots: BTreeMap<ParticipantId, Vec<PlaceId>>,
    vote: VoteState,
    chat: VecDeque<ChatMessage>,
    seq: Seq,
    /// The last commands that changed it, so that a retry is not applied twice.
    #[serde(default)]
    recent: RecentCommands,
    replay: ReplayLog,
    dirty_presence: BTreeSet<ParticipantId>,
    last_presence_flush: UnixMillis,
    empty_since: Option<UnixMillis>,
    closed: bool,
}

const COLORS: [&str; 12] = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
    "#469990", "#800000", "#808000", "#000075",
];

/// A short public summary of a room, for link previews.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RoomSummary {
    pub room_id: RoomId,
    pub title: String,
    pub participants: usize,
    pub online: usize,
    pub share_expires_at: UnixMillis,
    pub vote_open: bool,
    pub seq: Seq,
}

impl Room {
    pub fn new(spec: RoomSpec, config: RoomConfig, now: UnixMillis) -> Self {
        let replay = ReplayLog::new(config.replay_capacity);
        Room {
            spec,
            config,
            created_at: now,
            host: None,
            participants: BTreeMap::new(),
            next_participant: 1,
            candidates: Vec::new(),
            ballots: BTreeMap::new(),
            vote: VoteState::Open,
            chat: VecDeque::new(),
            seq: Seq(0),
            recent: RecentCommands::default(),
            replay,
            dirty_presence: BTreeSet::new(),
            last_presence_flush: 0,
            // A room nobody has entered yet counts as empty from its creation.
            empty_since: Some(now),
            closed: false,
        }
    }

    pub fn id(&self) -> &RoomId {
        &self.spec.id
    }
    pub fn spec(&self) -> &RoomSpec {
        &self.spec
    }
    pub fn seq(&self) -> Seq {
        self.seq
    }
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn summary(&self) -> RoomSummary {
        RoomSummary {
            room_id: self.spec.id.clone(),
            title: self.spec.title.clone(),
            participants: self.participants.len(),
            online: self.online_count(),
            share_expires_at: self.spec.share_expires_at,
            vote_open: matches!(self.vote, VoteState::Open),
            seq: self.seq,
        }
    }

    fn online_count(&self) -> usize {
        self.participants
            .values()
            .filter(|p| p.conn.is_some())
            .count()
    }

    /// Applies one input and returns what the caller must do, in order.
    pub fn handle(&mut self, now: UnixMillis, input: Input) -> Vec<Output> {
        if self.closed {
            return refuse_ended(input, "room");
        }
        let mut out = Vec::new();
        match input {
            Input::Join {
                conn,
                id,
                name,
                host_key,
                resume,
                resume_token,
                client_key,
            } => match resume {
                Some(r) => self.resume(now, conn, id, r, &mut out),
                None => {
                    // Rooms use the identity only to show who signed in (the account the
                    // gateway verified).
                    let account = client_key.and_then(|k| k.account);
                    let joining = Joining {
                        name,
                        host_key,
                        resume_token,
                        account,
                    };
                    self.join(now, conn, id, joining, &mut out)
                }
            },
            Input::Command {
                conn,
                participant,
                msg,
            } => {
                let current = self.participants.get(&participant).and_then(|p| p.conn);
                RecentCommands::dispatch_once(
                    self,
                    |r| &mut r.recent,
                    |r| r.seq,
                    &mut out,
                    conn,
                    current,
                    participant,
                    msg,
                    "room",
                    |r, msg, effects| {
                        r.command(now, conn, participant, msg, effects)
                            .map(|()| r.seq)
                    },
                );
            }
            Input::Disconnect { conn, participant } => {
                if let Some(p) = self.participants.get_mut(&participant)
                    && p.conn == Some(conn)
                {
                    p.conn = None;
                    p.away_since = Some(now);
                    p.info.status = Status::Away;
                    self.emit(&mut out, |seq| ServerMessage::ParticipantAway {
                        seq,
                        participant,
                    });
                }
            }
            Input::Tick => {}
        }
        self.tick(now, &mut out);
        out
    }

    /// The next time at which [`Input::Tick`] has work to do, if any.
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        let presence = (!self.dirty_presence.is_empty())
            .then(|| self.last_presence_flush + self.config.presence_interval_ms);
        let away = self
            .participants
            .values()
            .filter_map(|p| p.away_since)
            .min()
            .map(|t| t + self.config.away_grace_ms);
        let empty = self.empty_since.map(|t| t + self.config.empty_ttl_ms);
        [presence, away, empty].into_iter().flatten().min()
    }

    /// Marks every participant away, as if all connections dropped at once. Used after a room
    /// is rebuilt from its snapshot: the old connections died with the old actor.
    pub fn detach_all(&mut self, now: UnixMillis) -> Vec<Output> {
        let mut out = Vec::new();
        let online: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.conn.is_some())
            .map(|(id, _)| *id)
            .collect();
        for participant in online {
            if let Some(p) = self.participants.get_mut(&participant) {
                p.conn = None;
                p.away_since = Some(now);
                p.info.status = Status::Away;
            }
            self.emit(&mut out, |seq| ServerMessage::ParticipantAway {
                seq,
                participant,
            });
        }
        self.dirty_presence.clear();
        if self.empty_since.is_none() {
            self.empty_since = Some(now);
        }
        out
    }

    /// The snapshot a joining client receives.
    pub fn snapshot(&self) -> RoomSnapshot {
        RoomSnapshot {
            room_id: self.spec.id.clone(),
            title: self.spec.title.clone(),
            center: self.spec.center,
            vote_mode: self.spec.vote_mode,
            created_at: self.created_at,
            share_expires_at: self.spec.share_expires_at,
            participants: self.participants.values().map(|p| p.info.clone()).collect(),
            presence: self.presence_entries(),
            candidates: self.candidates.clone(),
            ballots: self
                .ballots
                .iter()
                .map(|(p, c)| Ballot {
                    participant: *p,
                    choices: c.clone(),
                })
                .collect(),
            tally: votes::tally(&self.candidates, &self.ballots),
            vote: self.vote.clone(),
            chat: self.chat.iter().cloned().collect(),
            seq: self.seq,
        }
    }

    fn presence_entries(&self) -> Vec<PresenceEntry> {
        self.participants
            .iter()
            .filter(|(_, p)| p.viewport.is_some() || p.pointer.is_some())
            .map(|(id, p)| PresenceEntry {
                participant: *id,
                viewport: p.viewport,
                pointer: p.pointer,
            })
            .collect()
    }

    /// The latest presence of everyone, for a connection that missed batches while slow.
    pub fn full_presence(&self, now: UnixMillis) -> ServerMessage {
        ServerMessage::Presence {
            seq: self.seq,
            at: now,
            updates: self.presence_entries(),
        }
    }

    /// Read access for tests and invariants.
    pub fn ballots(&self) -> &BTreeMap<ParticipantId, Vec<PlaceId>> {
        &self.ballots
    }
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }
    pub fn participant_ids(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.participants.keys().copied()
    }
    pub fn host(&self) -> Option<ParticipantId> {
        self.host
    }
    pub fn vote_state(&self) -> &VoteState {
        &self.vote
    }
    pub fn chat(&self) -> impl Iterator<Item = &ChatMessage> {
        self.chat.iter()
    }

    // ---- internals -------------------------------------------------------------------------

    /// Numbers a reliable event, keeps it for replay and broadcasts it.
    fn emit(&mut self, out: &mut Vec<Output>, make: impl FnOnce(Seq) -> ServerMessage) -> Seq {
        self.seq = self.seq.next();
        let msg = make(self.seq);
        self.replay.push(msg.clone());
        out.push(Output::Broadcast { msg, lossy: false });
        self.seq
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        now: UnixMillis,
        conn: ConnId,
        id: RequestId,
        joining: Joining,
        out: &mut Vec<Output>,
    ) {
        let Joining {
            name,
            host_key,
            resume_token,
            account,
        } = joining;
        let refuse = |code, message: &str| Output::JoinRefused {
            conn,
            id,
            code,
            message: message.into(),
        };
        if now > self.spec.share_expires_at {
            out.push(refuse(
                ErrorCode::ShareExpired,
                "this share link has expired",
            ));
            return;
        }
        if self.participants.len() >= self.config.max_participants {
            out.push(refuse(
                ErrorCode::RoomFull,
                &format!(
                    "the room already has {} participants",
                    self.config.max_participants
                ),
            ));
            return;
        }
        let pid = ParticipantId(self.next_participant);
        self.next_participant += 1;
        let is_host = host_key.is_some_and(|k| k.ct_eq(&self.spec.host_key));
        let info = ParticipantInfo {
            id: pid,
            name: name.trim().to_string(),
            color: COLORS[(pid.0 as usize - 1) % COLORS.len()].to_string(),
            host: false,
            status: Status::Online,
            joined_at: now,
            account,
        };
        self.participants.insert(
            pid,
            Participant {
                info: info.clone(),
                resume_token: resume_token.clone(),
                conn: None,
                away_since: None,
                viewport: None,
                pointer: None,
            },
        );
        // Announce before attaching, so the newcomer gets the event in its snapshot only.
        let seq = self.emit(out, |seq| ServerMessage::ParticipantJoined {
            seq,
            participant: info,
        });
        // The creator's key makes them host; a hostless room takes its next arrival as host.
        let mut ack_seq = seq;
        if is_host || self.host.is_none() {
            ack_seq = self.set_host(Some(pid), out).unwrap_or(seq);
        }
        self.attach(pid, conn, out);
        out.push(Output::Send {
            conn,
            msg: ServerMessage::Welcome {
                protocol: PROTOCOL_VERSION,
                you: pid,
                resume_token,
                room: Box::new(self.snapshot()),
            },
        });
        out.push(Output::Send {
            conn,
            msg: ServerMessage::Ack {
                id,
                seq: Some(ack_seq),
            },
        });
    }

    fn resume(
        &mut self,
        now: UnixMillis,
        conn: ConnId,
        id: RequestId,
        r: ResumeRequest,
        out: &mut Vec<Output>,
    ) {
        let _ = now;
        let Some(p) = self.participants.get(&r.participant) else {
            out.push(Output::JoinRefused {
                conn,
                id,
                code: ErrorCode::ResumeFailed,
                message: "no such participant in this room any more; join afresh".into(),
            });
            return;
        };
        if !p.resume_token.ct_eq(&r.token) {
            out.push(Output::JoinRefused {
                conn,
                id,
                code: ErrorCode::ResumeFailed,
                message: "resume token does not match".into(),
            });
            return;
        }
        let pid = r.participant;
        let token = p.resume_token.clone();
        if let Some(old) = p.conn {
            // The old socket is probably half-dead; the newest connection wins.
            out.push(Output::Detach {
                conn: old,
                code: close::RESUME,
            });
        }
        let mut back = None;
        if p.away_since.is_some() {
            if let Some(p) = self.participants.get_mut(&pid) {
                p.away_since = None;
            }
            // Emitted before attaching: the resuming client receives it through the replay.
            back = Some(self.emit(out, |seq| ServerMessage::ParticipantBack {
                seq,
                participant: pid,
            }));
        }
        self.attach(pid, conn, out);
        let resumed = ServerMessage::Resumed {
            you: pid,
            resume_token: token.clone(),
            from_seq: r.last_seq,
            to_seq: self.seq,
        };
        self.replay
            .catch_up(out, conn, id, resumed, r.last_seq, self.seq, back, || {
                ServerMessage::Welcome {
                    protocol: PROTOCOL_VERSION,
                    you: pid,
                    resume_token: token,
                    room: Box::new(self.snapshot()),
                }
            });
    }

    fn attach(&mut self, pid: ParticipantId, conn: ConnId, out: &mut Vec<Output>) {
        if let Some(p) = self.participants.get_mut(&pid) {
            p.conn = Some(conn);
            p.info.status = Status::Online;
            p.away_since = None;
        }
        self.empty_since = None;
        out.push(Output::Attach {
            conn,
            participant: pid,
        });
    }

    /// Changes the host and announces it; returns the event's seq when it changed.
    fn set_host(&mut self, host: Option<ParticipantId>, out: &mut Vec<Output>) -> Option<Seq> {
        if self.host == host {
            return None;
        }
        if let Some(old) = self.host.and_then(|h| self.participants.get_mut(&h)) {
            old.info.host = false;
        }
        self.host = host;
        let new = host?;
        if let Some(p) = self.participants.get_mut(&new) {
            p.info.host = true;
        }
        Some(self.emit(out, |seq| ServerMessage::HostChanged {
            seq,
            participant: new,
        }))
    }

    /// Removes a participant with their ballot; hands the host role on if they held it.
    fn remove(&mut self, pid: ParticipantId, reason: LeaveReason, out: &mut Vec<Output>) {
        let had_ballot = self.ballots.remove(&pid).is_some();
        let p = self.participants.remove(&pid);
        self.dirty_presence.remove(&pid);
        if had_ballot && matches!(self.vote, VoteState::Open) {
            let tally = votes::tally(&self.candidates, &self.ballots);
            self.emit(out, |seq| ServerMessage::BallotChanged {
                seq,
                participant: pid,
                choices: vec![],
                tally,
            });
        }
        self.emit(out, |seq| ServerMessage::ParticipantLeft {
            seq,
            participant: pid,
            reason,
        });
        if let Some(conn) = p.and_then(|p| p.conn) {
            let code = match reason {
                LeaveReason::Kicked => close::KICKED,
                _ => close::LEFT,
            };
            out.push(Output::Detach { conn, code });
        }
        if self.host == Some(pid) {
            // The earliest arrival still here (online first) takes over.
            let next = self
                .participants
                .iter()
                .find(|(_, p)| p.conn.is_some())
                .or_else(|| self.participants.iter().next())
                .map(|(id, _)| *id);
            self.set_host(next, out);
        }
    }

    fn require_host(&self, pid: ParticipantId) -> Result<(), Refusal> {
        if self.host == Some(pid) {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::Forbidden,
                "only the host may do this".to_string(),
            ))
        }
    }

    /// Applies one command of a joined participant. `Err` is the refusal, with nothing
    /// changed; the `ack` names the last event it emitted (see `session::dispatch`).
    fn command(
        &mut self,
        now: UnixMillis,
        _conn: ConnId,
        pid: ParticipantId,
        msg: ClientMessage,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        use ClientMessage as C;
        let err = |code, m: &str| Err(Refusal::new(code, m.to_string()));
        if let Some(refused) = refuse_by_scope(&msg, Scope::Room) {
            return Err(refused);
        }
        match msg {
            C::Ping { .. } => Ok(()),
            C::Presence {
                viewport, pointer, ..
            } => {
                if let Some(p) = self.participants.get_mut(&pid) {
                    if viewport.is_some() {
                        p.viewport = viewport;
                    }
                    if pointer.is_some() {
                        p.pointer = pointer;
                    }
                    self.dirty_presence.insert(pid);
                }
                Ok(())
            }
            C::AddCandidate {
                place_id,
                name,
                lat,
                lng,
                note,
                ..
            } => {
                if !matches!(self.vote, VoteState::Open) {
                    return err(
                        ErrorCode::VoteClosed,
                        "reopen the vote to change candidates",
                    );
                }
                if self.candidates.iter().any(|c| c.place_id == place_id) {
                    return err(
                        ErrorCode::DuplicateCandidate,
                        "this place is already a candidate",
                    );
                }
                if self.candidates.len() >= MAX_CANDIDATES {
                    return err(
                        ErrorCode::TooManyCandidates,
                        &format!("a room holds at most {MAX_CANDIDATES} candidates"),
                    );
                }
                let candidate = Candidate {
                    place_id,
                    name: name.trim().to_string(),
                    location: LatLng { lat, lng },
                    note: note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()),
                    added_by: pid,
                    added_at: now,
                };
                self.candidates.push(candidate.clone());
                {
                    self.emit(out, |seq| ServerMessage::CandidateAdded { seq, candidate });
                    Ok(())
                }
            }
            C::RemoveCandidate { place_id, .. } => {
                if !matches!(self.vote, VoteState::Open) {
                    return err(
                        ErrorCode::VoteClosed,
                        "reopen the vote to change candidates",
                    );
                }
                let Some(pos) = self.candidates.iter().position(|c| c.place_id == place_id) else {
                    return err(ErrorCode::UnknownCandidate, "no such candidate");
                };
                if self.candidates[pos].added_by != pid && self.host != Some(pid) {
                    return err(
                        ErrorCode::Forbidden,
                        "only who added a candidate, or the host, may remove it",
                    );
                }
                self.candidates.remove(pos);
                // Removed candidates carry no votes: strip them from every ballot.
                for choices in self.ballots.values_mut() {
                    choices.retain(|c| c != &place_id);
                }
                self.ballots.retain(|_, c| !c.is_empty());
                let tally = votes::tally(&self.candidates, &self.ballots);
                {
                    self.emit(out, |seq| ServerMessage::CandidateRemoved {
                        seq,
                        place_id,
                        by: pid,
                        tally,
                    });
                    Ok(())
                }
            }
            C::Vote { choices, .. } => {
                if !matches!(self.vote, VoteState::Open) {
                    return err(ErrorCode::VoteClosed, "the vote is closed");
                }
                let max = self.spec.vote_mode.max_choices();
                if choices.len() > max {
                    return err(
                        ErrorCode::TooManyChoices,
                        &format!("this room allows {max} choice(s) per ballot"),
                    );
                }
                let unique: BTreeSet<&PlaceId> = choices.iter().collect();
                if unique.len() != choices.len() {
                    return err(ErrorCode::Invalid, "a ballot names each place once");
                }
                if let Some(bad) = choices
                    .iter()
                    .find(|c| !self.candidates.iter().any(|x| &x.place_id == *c))
                {
                    return err(
                        ErrorCode::UnknownCandidate,
                        &format!("{} is not a candidate", bad.0),
                    );
                }
                let previous = self.ballots.get(&pid).cloned().unwrap_or_default();
                if previous == choices {
                    return Ok(());
                }
                if choices.is_empty() {
                    self.ballots.remove(&pid);
                } else {
                    self.ballots.insert(pid, choices.clone());
                }
                let tally = votes::tally(&self.candidates, &self.ballots);
                {
                    self.emit(out, |seq| ServerMessage::BallotChanged {
                        seq,
                        participant: pid,
                        choices,
                        tally,
                    });
                    Ok(())
                }
            }
            C::CloseVote { .. } => {
                self.require_host(pid)?;
                if !matches!(self.vote, VoteState::Open) {
                    return err(ErrorCode::VoteClosed, "the vote is already closed");
                }
                let decision =
                    votes::decide(votes::tally(&self.candidates, &self.ballots), pid, now);
                self.vote = VoteState::Closed {
                    decision: decision.clone(),
                };
                {
                    self.emit(out, |seq| ServerMessage::VoteClosed { seq, decision });
                    Ok(())
                }
            }
            C::ReopenVote { .. } => {
                self.require_host(pid)?;
                if matches!(self.vote, VoteState::Open) {
                    return err(ErrorCode::VoteOpen, "the vote is already open");
                }
                self.vote = VoteState::Open;
                {
                    self.emit(out, |seq| ServerMessage::VoteReopened { seq, by: pid });
                    Ok(())
                }
            }
            C::Chat { text, .. } => {
                let name = self
                    .participants
                    .get(&pid)
                    .map(|p| p.info.name.clone())
                    .unwrap_or_default();
                let message = keep_chat(&mut self.chat, self.seq.next(), pid, name, text, now);
                {
                    self.emit(out, |seq| ServerMessage::Chat { seq, message });
                    Ok(())
                }
            }
            C::Kick { participant, .. } => {
                self.require_host(pid)?;
                if participant == pid {
                    return err(ErrorCode::Invalid, "the host cannot kick themselves");
                }
                if !self.participants.contains_key(&participant) {
                    return err(ErrorCode::UnknownParticipant, "no such participant");
                }
                {
                    self.remove(participant, LeaveReason::Kicked, out);
                    Ok(())
                }
            }
            C::Rename { title, .. } => {
                self.require_host(pid)?;
                let title = title.trim().to_string();
                self.spec.title = title.clone();
                {
                    self.emit(out, |seq| ServerMessage::RoomRenamed {
                        seq,
                        title,
                        by: pid,
                    });
                    Ok(())
                }
            }
            C::CloseRoom { .. } => {
                self.require_host(pid)?;
                self.emit(out, |seq| ServerMessage::RoomClosed {
                    seq,
                    reason: RoomCloseReason::HostClosed,
                });
                self.close(out);
                Ok(())
            }
            C::Leave { .. } => {
                self.remove(pid, LeaveReason::Left, out);
                Ok(())
            }
            // Refused above by its scope.
            other => Err(crate::machine::out_of_scope(&other)),
        }
    }

    /// Ends the room: every connection is closed (4002) and the actor retires. The `ack` of
    /// the command that closed it is still delivered: `handle` puts replies before closes.
    fn close(&mut self, out: &mut Vec<Output>) {
        self.closed = true;
        self.dirty_presence.clear();
        for p in self.participants.values() {
            if let Some(conn) = p.conn {
                out.push(Output::Detach {
                    conn,
                    code: close::ROOM_CLOSED,
                });
            }
        }
        out.push(Output::Retire);
    }

    fn tick(&mut self, now: UnixMillis, out: &mut Vec<Output>) {
        if self.closed {
            return;
        }
        // Away participants past the grace period leave for good.
        let expired: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| {
                p.away_since
                    .is_some_and(|t| now >= t + self.config.away_grace_ms)
            })
            .map(|(id, _)| *id)
            .collect();
        for pid in expired {
            self.remove(pid, LeaveReason::Timeout, out);
        }
        // Presence: at most one batch per interval, latest value per participant.
        if !self.dirty_presence.is_empty()
            && now >= self.last_presence_flush + self.config.presence_interval_ms
        {
            let updates: Vec<PresenceEntry> = std::mem::take(&mut self.dirty_presence)
                .into_iter()
                .filter_map(|pid| {
                    self.participants.get(&pid).map(|p| PresenceEntry {
                        participant: pid,
                        viewport: p.viewport,
                        pointer: p.pointer,
                    })
                })
                .collect();
            self.last_presence_flush = now;
            let only = match updates.as_slice() {
                [one] => Some(one.participant),
                _ => None,
            };
            let msg = ServerMessage::Presence {
                seq: self.seq,
                at: now,
                updates,
            };
            out.push(match only {
                // Its one author does not need its own update back.
                Some(author) => Output::BroadcastOthers { msg, author },
                None => Output::Broadcast { msg, lossy: true },
            });
        }
        // A room with nobody online retires after the idle time.
        if self.online_count() > 0 {
            self.empty_since = None;
        } else {
            let since = *self.empty_since.get_or_insert(now);
            if now >= since + self.config.empty_ttl_ms {
                self.closed = true;
                out.push(Output::Retire);
            }
        }
    }
}

impl Machine for Room {
    const KIND: &'static str = "room";
    type Spec = RoomSpec;
    type Config = RoomConfig;
    type Summary = RoomSummary;

    fn create(spec: RoomSpec, config: &RoomConfig, now: UnixMillis) -> Self {
        Room::new(spec, config.clone(), now)
    }
    fn key(&self) -> &str {
        &self.spec.id.0
    }
    fn aliases(&self) -> Vec<String> {
        vec![format!("share:{}", self.spec.share.0)]
    }
    fn handle(&mut self, now: UnixMillis, input: Input) -> Vec<Output> {
        Room::handle(self, now, input)
    }
    fn seq(&self) -> Seq {
        self.seq
    }
    fn next_deadline(&self) -> Option<UnixMillis> {
        Room::next_deadline(self)
    }
    fn detach_all(&mut self, now: UnixMillis) -> Vec<Output> {
        Room::detach_all(self, now)
    }
    fn is_closed(&self) -> bool {
        self.closed
    }
    fn resync(&self, now: UnixMillis) -> Option<ServerMessage> {
        Some(self.full_presence(now))
    }
    fn summary(&self) -> RoomSummary {
        Room::summary(self)
    }
    /// Anyone in a room talks and hears the loudest others; nobody sends video.
    fn media_grant(
        &self,
        participant: ParticipantId,
        conn: ConnId,
    ) -> Result<wagu_proto::media::MediaGrant, Refusal> {
        match self.participants.get(&participant) {
            Some(p) if p.conn == Some(conn) => Ok(wagu_proto::media::MediaGrant {
                publish_audio: true,
                publish_video: false,
                audio_slots: wagu_proto::limits::VOICE_RECEIVE_SLOTS,
                video_slots: 0,
            }),
            _ => Err(Refusal::new(
                ErrorCode::NotJoined,
                "this connection is no longer in the room; resume".into(),
            )),
        }
    }
    fn is_member(&self, participant: ParticipantId) -> bool {
        self.participants.contains_key(&participant)
    }
}

#[cfg(test)]
mod tests;
