//! A live stream as a deterministic, sans-IO state machine: the streamer, the viewers, the
//! live chat and its moderation.
//!
//! What it does: admits viewers (refusing banned ones, by participant and by the client's
//! device key), keeps the chat tail and the pinned message, applies the streamer's moderation
//! (pin, delete, mute, ban, end), counts viewers and sends the count coalesced to about once a
//! second — never one event per join, because a stream may have ten thousand viewers. When the
//! streamer drops, viewers stay for a grace period; then the stream ends and everyone is told
//! why. Reliable events are numbered and kept for resuming clients, as in rooms.
//!
//! What it does not do: video and audio (the SFU, `media`), sockets, clocks, randomness. Like
//! [`crate::room::Room`], time and tokens come in with the inputs so the actor can rebuild a
//! stream from its snapshot plus journal.
//!
//! Why one file of ~880 lines: every rule of a live stream (seats, moderation, chat tail, grace
//! periods, the ended record) over one state, kept together for the same reason as the room's.
//! Its tests are in `tests.rs`.

use crate::machine::{
    ConnId, Input, Machine, Output, RecentCommands, Refusal, ReplayLog, keep_chat, refuse_by_scope,
    refuse_ended,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use wagu_proto::client::Scope;
use wagu_proto::close;
use wagu_proto::error::ErrorCode;
use wagu_proto::ids::*;
use wagu_proto::model::*;
use wagu_proto::{ClientMessage, Identity, PROTOCOL_VERSION, ResumeRequest, ServerMessage};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamConfig {
    pub max_viewers: usize,
    /// How long a dropped viewer may resume.
    pub away_grace_ms: u64,
    /// How long viewers wait for a dropped streamer (and a new stream for its streamer).
    pub streamer_grace_ms: u64,
    /// Minimum time between two viewer-count events.
    pub count_interval_ms: u64,
    pub replay_capacity: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_viewers: 20_000,
            away_grace_ms: 60_000,
            streamer_grace_ms: 120_000,
            count_interval_ms: 1_000,
            replay_capacity: 512,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamSpec {
    pub id: StreamId,
    pub title: String,
    pub place_id: PlaceId,
    pub location: Option<LatLng>,
    pub menu: Vec<String>,
    pub streamer_key: HostKey,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Member {
    name: String,
    resume_token: ResumeToken,
    conn: Option<ConnId>,
    away_since: Option<UnixMillis>,
    muted_until: Option<UnixMillis>,
    client_key: Option<Identity>,
}

/// A public summary for discovery lists.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StreamSummary {
    pub stream_id: StreamId,
    pub title: String,
    pub place_id: PlaceId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<LatLng>,
    pub menu: Vec<String>,
    pub streamer_name: Option<String>,
    pub streamer_online: bool,
    pub started_at: UnixMillis,
    pub viewers: u32,
    pub peak_viewers: u32,
}

/// What an ended stream leaves behind ("was streamed here").
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EndedStream {
    pub stream_id: StreamId,
    pub title: String,
    pub place_id: PlaceId,
    pub streamer_name: Option<String>,
    pub started_at: UnixMillis,
    pub ended_at: UnixMillis,
    pub peak_viewers: u32,
    pub reason: StreamEndReason,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stream {
    spec: StreamSpec,
    config: StreamConfig,
    created_at: UnixMillis,
    streamer: Option<ParticipantId>,
    /// Kept apart from the member list: the ended record names the streamer even after they
    /// left.
    streamer_name: Option<String>,
    /// Since when the streamer is not connected (from creation until they first join).
    streamer_away_since: Option<UnixMillis>,
    members: BTreeMap<ParticipantId, Member>,
    next_participant: u32,
    online_viewers: u32,
    peak_viewers: u32,
    /// Members with a connection (the streamer included), kept as a running count so that a
    /// stream of ten thousand viewers never rescans them per message.
    connected: u32,
    /// Away viewers by the time they dropped: expiry pops from the front, and the next
    /// deadline is the first entry, both without scanning the members.
    away: BTreeSet<(UnixMillis, ParticipantId)>,
    count_dirty: bool,
    last_count_flush: UnixMillis,
    chat: VecDeque<ChatMessage>,
    pinned: Option<ChatMessage>,
    banned: BTreeSet<ParticipantId>,
    banned_keys: BTreeSet<String>,
    seq: Seq,
    /// The last commands that changed it, so that a retry is not applied twice.
    #[serde(default)]
    recent: RecentCommands,
    /// Bumped by every durable change, evented or not (joins are not broadcast).
    revision: u64,
    replay: ReplayLog,
    ended: Option<(UnixMillis, StreamEndReason)>,
}

impl Stream {
    pub fn new(spec: StreamSpec, config: StreamConfig, now: UnixMillis) -> Self {
        let replay = ReplayLog::new(config.replay_capacity);
        Stream {
            spec,
            config,
            created_at: now,
            streamer: None,
            streamer_name: None,
            streamer_away_since: Some(now),
            members: BTreeMap::new(),
            next_participant: 1,
            online_viewers: 0,
            peak_viewers: 0,
            connected: 0,
            away: BTreeSet::new(),
            count_dirty: false,
            last_count_flush: 0,
            chat: VecDeque::new(),
            pinned: None,
            banned: BTreeSet::new(),
            banned_keys: BTreeSet::new(),
            seq: Seq(0),
            recent: RecentCommands::default(),
            revision: 0,
            replay,
            ended: None,
        }
    }

    pub fn id(&self) -> &StreamId {
        &self.spec.id
    }
    pub fn viewers(&self) -> u32 {
        self.online_viewers
    }
    pub fn streamer(&self) -> Option<ParticipantId> {
        self.streamer
    }
    pub fn pinned(&self) -> Option<&ChatMessage> {
        self.pinned.as_ref()
    }
    pub fn chat(&self) -> impl Iterator<Item = &ChatMessage> {
        self.chat.iter()
    }

    fn streamer_name(&self) -> Option<String> {
        self.streamer_name.clone()
    }

    pub fn snapshot(&self) -> StreamSnapshot {
        StreamSnapshot {
            stream_id: self.spec.id.clone(),
            title: self.spec.title.clone(),
            place_id: self.spec.place_id.clone(),
            location: self.spec.location,
            menu: self.spec.menu.clone(),
            streamer: self.streamer.unwrap_or(ParticipantId(0)),
            streamer_name: self.streamer_name().unwrap_or_default(),
            streamer_online: self.streamer_away_since.is_none(),
            started_at: self.created_at,
            viewers: self.online_viewers,
            peak_viewers: self.peak_viewers,
            pinned: self.pinned.clone(),
            chat: self.chat.iter().cloned().collect(),
            seq: self.seq,
        }
    }

    fn is_streamer(&self, p: ParticipantId) -> bool {
        self.streamer == Some(p)
    }

    /// The member's connection dropped: away from `now` (viewers enter the expiry queue).
    fn mark_away(&mut self, pid: ParticipantId, now: UnixMillis) {
        let is_streamer = self.is_streamer(pid);
        if let Some(m) = self.members.get_mut(&pid)
            && m.conn.take().is_some()
        {
            self.connected -= 1;
            m.away_since = Some(now);
            if !is_streamer {
                self.away.insert((now, pid));
            }
        }
    }

    /// The member is back on `conn` (a resume, or a new device taking over).
    fn mark_back(&mut self, pid: ParticipantId, conn: ConnId) {
        if let Some(m) = self.members.get_mut(&pid) {
            if m.conn.replace(conn).is_none() {
                self.connected += 1;
            }
            if let Some(t) = m.away_since.take() {
                self.away.remove(&(t, pid));
            }
        }
    }

    /// Removes a member for good, keeping the running counts true.
    fn forget(&mut self, pid: ParticipantId) -> Option<Member> {
        let m = self.members.remove(&pid)?;
        if m.conn.is_some() {
            self.connected -= 1;
        }
        if let Some(t) = m.away_since {
            self.away.remove(&(t, pid));
        }
        Some(m)
    }

    fn emit(&mut self, out: &mut Vec<Output>, make: impl FnOnce(Seq) -> ServerMessage) -> Seq {
        self.seq = self.seq.next();
        self.revision += 1;
        let msg = make(self.seq);
        self.replay.push(msg.clone());
        out.push(Output::Broadcast { msg, lossy: false });
        self.seq
    }

    /// Recounts viewers after a connection came or went (the streamer is not a viewer).
    fn recount(&mut self) {
        let streamer_on = self
            .streamer
            .and_then(|s| self.members.get(&s))
            .is_some_and(|m| m.conn.is_some());
        let n = self.connected - u32::from(streamer_on);
        if n != self.online_viewers {
            self.online_viewers = n;
            self.peak_viewers = self.peak_viewers.max(n);
            self.count_dirty = true;
        }
    }

    pub fn handle(&mut self, now: UnixMillis, input: Input) -> Vec<Output> {
        if self.ended.is_some() {
            return refuse_ended(input, "stream");
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
            } => {
                let r = match resume {
                    Some(r) => self.resume(conn, id, r, &mut out),
                    None => self.join(conn, id, name, host_key, resume_token, client_key, &mut out),
                };
                if let Err(Refusal { code, message }) = r {
                    out.push(Output::JoinRefused {
                        conn,
                        id,
                        code,
                        message,
                    });
                }
            }
            Input::Command {
                conn,
                participant,
                msg,
            } => {
                let current = self.members.get(&participant).and_then(|m| m.conn);
                RecentCommands::dispatch_once(
                    self,
                    |s| &mut s.recent,
                    |s| s.seq,
                    &mut out,
                    conn,
                    current,
                    participant,
                    msg,
                    "stream",
                    |s, msg, effects| s.command(now, participant, msg, effects).map(|()| s.seq),
                );
            }
            Input::Disconnect { conn, participant } => {
                if self
                    .members
                    .get(&participant)
                    .is_some_and(|m| m.conn == Some(conn))
                {
                    self.mark_away(participant, now);
                    self.revision += 1;
                    if self.is_streamer(participant) {
                        self.streamer_away_since = Some(now);
                        self.emit(&mut out, |seq| ServerMessage::StreamerAway { seq });
                    }
                    self.recount();
                }
            }
            Input::Tick => {}
        }
        self.tick(now, &mut out);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        conn: ConnId,
        id: RequestId,
        name: String,
        key: Option<HostKey>,
        resume_token: ResumeToken,
        client_key: Option<Identity>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let is_streamer = match &key {
            None => false,
            Some(k) if k.ct_eq(&self.spec.streamer_key) => true,
            // A wrong key is a mistake worth saying, not a silent demotion to viewer.
            Some(_) => {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    "the streamer key does not match".into(),
                ));
            }
        };
        // The identity key may hold several keys (a signed-in viewer's account and device):
        // any one of them banned refuses the join.
        if client_key
            .as_ref()
            .is_some_and(|k| k.keys().any(|k| self.banned_keys.contains(&k)))
            && !is_streamer
        {
            return Err(Refusal::new(
                ErrorCode::Banned,
                "the streamer banned you from this stream".into(),
            ));
        }
        if is_streamer && let Some(s) = self.streamer {
            // The streamer is already in: a second device takes over the same seat.
            let token = self.members.get(&s).map(|m| m.resume_token.clone());
            if let Some(token) = token {
                let r = ResumeRequest {
                    participant: s,
                    token,
                    last_seq: Seq(0),
                };
                return self.resume(conn, id, r, out);
            }
        }
        if !is_streamer && self.members.len() >= self.config.max_viewers {
            return Err(Refusal::new(
                ErrorCode::RoomFull,
                format!(
                    "the stream has {} viewers, its maximum",
                    self.config.max_viewers
                ),
            ));
        }
        let pid = ParticipantId(self.next_participant);
        self.next_participant += 1;
        self.members.insert(
            pid,
            Member {
                name: name.trim().to_string(),
                resume_token: resume_token.clone(),
                conn: Some(conn),
                away_since: None,
                muted_until: None,
                client_key,
            },
        );
        self.connected += 1;
        self.revision += 1;
        let mut ack_seq = None;
        if is_streamer {
            self.streamer = Some(pid);
            self.streamer_name = Some(name.trim().to_string());
            self.streamer_away_since = None;
            ack_seq = Some(self.emit(out, |seq| ServerMessage::StreamerBack { seq }));
        }
        self.recount();
        out.push(Output::Attach {
            conn,
            participant: pid,
        });
        out.push(Output::Send {
            conn,
            msg: ServerMessage::StreamWelcome {
                protocol: PROTOCOL_VERSION,
                you: pid,
                resume_token,
                stream: Box::new(self.snapshot()),
            },
        });
        out.push(Output::Send {
            conn,
            msg: ServerMessage::Ack { id, seq: ack_seq },
        });
        Ok(())
    }

    fn resume(
        &mut self,
        conn: ConnId,
        id: RequestId,
        r: ResumeRequest,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        if self.banned.contains(&r.participant) {
            return Err(Refusal::new(
                ErrorCode::Banned,
                "the streamer banned you from this stream".into(),
            ));
        }
        let Some(m) = self.members.get(&r.participant) else {
            return Err(Refusal::new(
                ErrorCode::ResumeFailed,
                "no such viewer in this stream any more; join afresh".into(),
            ));
        };
        if !m.resume_token.ct_eq(&r.token) {
            return Err(Refusal::new(
                ErrorCode::ResumeFailed,
                "resume token does not match".into(),
            ));
        }
        let pid = r.participant;
        let token = m.resume_token.clone();
        if let Some(old) = m.conn {
            out.push(Output::Detach {
                conn: old,
                code: close::RESUME,
            });
        }
        self.mark_back(pid, conn);
        self.revision += 1;
        let mut back = None;
        if self.is_streamer(pid) && self.streamer_away_since.is_some() {
            self.streamer_away_since = None;
            back = Some(self.emit(out, |seq| ServerMessage::StreamerBack { seq }));
        }
        self.recount();
        out.push(Output::Attach {
            conn,
            participant: pid,
        });
        let resumed = ServerMessage::Resumed {
            you: pid,
            resume_token: token.clone(),
            from_seq: r.last_seq,
            to_seq: self.seq,
        };
        // `last_seq` 0 (a streamer taking over from another device) gets a snapshot.
        self.replay
            .catch_up(out, conn, id, resumed, r.last_seq, self.seq, back, || {
                ServerMessage::StreamWelcome {
                    protocol: PROTOCOL_VERSION,
                    you: pid,
                    resume_token: token,
                    stream: Box::new(self.snapshot()),
                }
            });
        Ok(())
    }

    fn require_streamer(&self, p: ParticipantId) -> Result<(), Refusal> {
        if self.is_streamer(p) {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::Forbidden,
                "only the streamer may do this".into(),
            ))
        }
    }

    fn command(
        &mut self,
        now: UnixMillis,
        pid: ParticipantId,
        msg: ClientMessage,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        use ClientMessage as C;
        let err = |code, m: &str| Err(Refusal::new(code, m.to_string()));
        if let Some(refused) = refuse_by_scope(&msg, Scope::Stream) {
            return Err(refused);
        }
        match msg {
            C::Ping { .. } => Ok(()),
            C::Chat { text, .. } => {
                if let Some(until) = self.members.get(&pid).and_then(|m| m.muted_until)
                    && until > now
                {
                    return err(
                        ErrorCode::Muted,
                        &format!(
                            "the streamer muted you for {} more seconds",
                            (until - now).div_ceil(1000)
                        ),
                    );
                }
                let name = self
                    .members
                    .get(&pid)
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                let message = keep_chat(&mut self.chat, self.seq.next(), pid, name, text, now);
                {
                    self.emit(out, |seq| ServerMessage::Chat { seq, message });
                    Ok(())
                }
            }
            C::Pin { message, .. } => {
                self.require_streamer(pid)?;
                let Some(m) = self.chat.iter().find(|m| m.seq == message).cloned() else {
                    return err(ErrorCode::UnknownMessage, "no such message in the chat");
                };
                self.pinned = Some(m.clone());
                {
                    self.emit(out, |seq| ServerMessage::PinChanged {
                        seq,
                        message: Some(m),
                    });
                    Ok(())
                }
            }
            C::Unpin { .. } => {
                self.require_streamer(pid)?;
                if self.pinned.take().is_none() {
                    return Ok(());
                }
                {
                    self.emit(out, |seq| ServerMessage::PinChanged { seq, message: None });
                    Ok(())
                }
            }
            C::DeleteMessage { message, .. } => {
                self.require_streamer(pid)?;
                let Some(pos) = self.chat.iter().position(|m| m.seq == message) else {
                    return err(ErrorCode::UnknownMessage, "no such message in the chat");
                };
                self.chat.remove(pos);
                if self.pinned.as_ref().is_some_and(|p| p.seq == message) {
                    self.pinned = None;
                    self.emit(out, |seq| ServerMessage::PinChanged { seq, message: None });
                }
                {
                    self.emit(out, |seq| ServerMessage::MessageDeleted {
                        seq,
                        message,
                        by: pid,
                    });
                    Ok(())
                }
            }
            C::Mute {
                participant,
                minutes,
                ..
            } => {
                self.require_streamer(pid)?;
                if participant == pid {
                    return err(ErrorCode::Invalid, "the streamer cannot mute themselves");
                }
                let until = now + u64::from(minutes) * 60_000;
                let Some(m) = self.members.get_mut(&participant) else {
                    return err(ErrorCode::UnknownParticipant, "no such viewer");
                };
                m.muted_until = Some(until);
                {
                    self.emit(out, |seq| ServerMessage::Muted {
                        seq,
                        participant,
                        until,
                    });
                    Ok(())
                }
            }
            C::Ban { participant, .. } => {
                self.require_streamer(pid)?;
                if participant == pid {
                    return err(ErrorCode::Invalid, "the streamer cannot ban themselves");
                }
                let Some(m) = self.forget(participant) else {
                    return err(ErrorCode::UnknownParticipant, "no such viewer");
                };
                self.banned.insert(participant);
                if let Some(k) = m.client_key {
                    self.banned_keys.extend(k.keys());
                }
                self.emit(out, |seq| ServerMessage::Banned { seq, participant });
                if let Some(conn) = m.conn {
                    out.push(Output::Detach {
                        conn,
                        code: close::BANNED,
                    });
                }
                self.recount();
                Ok(())
            }
            C::EndStream { .. } => {
                self.require_streamer(pid)?;
                {
                    self.end(now, StreamEndReason::StreamerEnded, out);
                    Ok(())
                }
            }
            C::Leave { .. } => {
                let m = self.forget(pid);
                self.revision += 1;
                if let Some(conn) = m.and_then(|m| m.conn) {
                    out.push(Output::Detach {
                        conn,
                        code: close::LEFT,
                    });
                }
                if self.is_streamer(pid) {
                    // A streamer who leaves ends the stream at once: nobody to wait for.
                    self.streamer = None;
                    self.end(now, StreamEndReason::StreamerEnded, out);
                    return Ok(());
                }
                self.recount();
                Ok(())
            }
            // Refused above by its scope.
            other => Err(crate::machine::out_of_scope(&other)),
        }
    }

    /// Ends the stream: everyone is told why and disconnected; the actor retires.
    fn end(&mut self, now: UnixMillis, reason: StreamEndReason, out: &mut Vec<Output>) {
        self.emit(out, |seq| ServerMessage::StreamEnded { seq, reason });
        self.ended = Some((now, reason));
        for m in self.members.values() {
            if let Some(conn) = m.conn {
                out.push(Output::Detach {
                    conn,
                    code: close::ROOM_CLOSED,
                });
            }
        }
        out.push(Output::Retire);
    }

    fn tick(&mut self, now: UnixMillis, out: &mut Vec<Output>) {
        if self.ended.is_some() {
            return;
        }
        if let Some(since) = self.streamer_away_since
            && now >= since + self.config.streamer_grace_ms
        {
            self.end(now, StreamEndReason::StreamerLeft, out);
            return;
        }
        // Viewers away past the grace period leave for good, oldest first.
        let grace = self.config.away_grace_ms;
        while let Some(&(t, pid)) = self.away.first() {
            if now < t + grace {
                break;
            }
            self.away.pop_first();
            self.members.remove(&pid);
            self.revision += 1;
        }
        if self.count_dirty && now >= self.last_count_flush + self.config.count_interval_ms {
            self.count_dirty = false;
            self.last_count_flush = now;
            out.push(Output::Broadcast {
                msg: ServerMessage::Viewers {
                    seq: self.seq,
                    at: now,
                    count: self.online_viewers,
                },
                lossy: true,
            });
        }
    }

    pub fn next_deadline(&self) -> Option<UnixMillis> {
        let count = self
            .count_dirty
            .then(|| self.last_count_flush + self.config.count_interval_ms);
        // The streamer's absence is governed by the streamer grace, not the viewers'.
        let away = self
            .away
            .first()
            .map(|(t, _)| t + self.config.away_grace_ms);
        let streamer = self
            .streamer_away_since
            .map(|t| t + self.config.streamer_grace_ms);
        if self.ended.is_some() {
            return None;
        }
        [count, away, streamer].into_iter().flatten().min()
    }
}

impl Machine for Stream {
    const KIND: &'static str = "stream";
    type Spec = StreamSpec;
    type Config = StreamConfig;
    type Summary = StreamSummary;

    fn create(spec: StreamSpec, config: &StreamConfig, now: UnixMillis) -> Self {
        Stream::new(spec, config.clone(), now)
    }
    fn key(&self) -> &str {
        &self.spec.id.0
    }
    fn handle(&mut self, now: UnixMillis, input: Input) -> Vec<Output> {
        Stream::handle(self, now, input)
    }
    fn seq(&self) -> Seq {
        self.seq
    }
    fn revision(&self) -> u64 {
        self.revision
    }
    fn next_deadline(&self) -> Option<UnixMillis> {
        Stream::next_deadline(self)
    }
    fn detach_all(&mut self, now: UnixMillis) -> Vec<Output> {
        let mut out = Vec::new();
        let online: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|(_, m)| m.conn.is_some())
            .map(|(id, _)| *id)
            .collect();
        for pid in online {
            self.mark_away(pid, now);
        }
        if self.streamer.is_some() && self.streamer_away_since.is_none() {
            self.streamer_away_since = Some(now);
            self.emit(&mut out, |seq| ServerMessage::StreamerAway { seq });
        }
        self.recount();
        out
    }
    fn is_closed(&self) -> bool {
        self.ended.is_some()
    }
    fn resync(&self, now: UnixMillis) -> Option<ServerMessage> {
        Some(ServerMessage::Viewers {
            seq: self.seq,
            at: now,
            count: self.online_viewers,
        })
    }
    fn summary(&self) -> StreamSummary {
        StreamSummary {
            stream_id: self.spec.id.clone(),
            title: self.spec.title.clone(),
            place_id: self.spec.place_id.clone(),
            location: self.spec.location,
            menu: self.spec.menu.clone(),
            streamer_name: self.streamer_name(),
            streamer_online: self.streamer_away_since.is_none(),
            started_at: self.created_at,
            viewers: self.online_viewers,
            peak_viewers: self.peak_viewers,
        }
    }
    /// The streamer publishes camera and microphone and receives nothing; a viewer receives
    /// one audio and one video track and publishes nothing.
    fn media_grant(
        &self,
        participant: ParticipantId,
        conn: ConnId,
    ) -> Result<wagu_proto::media::MediaGrant, Refusal> {
        match self.members.get(&participant) {
            Some(m) if m.conn == Some(conn) => {
                let streamer = self.streamer == Some(participant);
                Ok(wagu_proto::media::MediaGrant {
                    publish_audio: streamer,
                    publish_video: streamer,
                    audio_slots: u8::from(!streamer),
                    video_slots: u8::from(!streamer),
                })
            }
            _ => Err(Refusal::new(
                ErrorCode::NotJoined,
                "this connection is no longer in the stream; resume".into(),
            )),
        }
    }
    fn is_member(&self, participant: ParticipantId) -> bool {
        !self.banned.contains(&participant) && self.members.contains_key(&participant)
    }
    fn ended_record(&self) -> Option<(String, Vec<u8>)> {
        let (ended_at, reason) = self.ended?;
        // A stream nobody ever broadcast is not history worth keeping (and creating streams
        // costs nothing, so keeping them would let anyone fill a place's list).
        self.streamer_name.as_ref()?;
        let record = EndedStream {
            stream_id: self.spec.id.clone(),
            title: self.spec.title.clone(),
            place_id: self.spec.place_id.clone(),
            streamer_name: self.streamer_name(),
            started_at: self.created_at,
            ended_at,
            peak_viewers: self.peak_viewers,
            reason,
        };
        let key = ended_key(&self.spec.place_id, &self.spec.id, ended_at);
        Some((key, serde_json::to_vec(&record).ok()?))
    }
}

/// Blob key of an ended stream's record: grouped by place so a place lists its streams with
/// one prefix listing, newest first. Place ids are arbitrary printable ASCII, so they are hex-encoded to fit
/// the blob key alphabet.
pub fn ended_key(place: &PlaceId, stream: &StreamId, ended_at: UnixMillis) -> String {
    // Listings come back in key order; an inverted time puts the newest first.
    let newest_first = u64::MAX - ended_at;
    format!(
        "{}{newest_first:020}-{}.json",
        ended_prefix(place),
        stream.0
    )
}

pub fn ended_prefix(place: &PlaceId) -> String {
    let hex: String = place.0.bytes().map(|b| format!("{b:02x}")).collect();
    format!("streams/ended/{hex}/")
}

#[cfg(test)]
mod tests;
