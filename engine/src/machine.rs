//! What every realtime session (a map room, a live stream) shares, with no IO: the inputs a
//! session's state machine takes, the outputs it returns, and the [`Machine`] trait the actors
//! run. A machine is deterministic: time and randomness come in through its inputs, so a
//! snapshot plus a journal of inputs rebuilds it exactly.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wagu_proto::client::Scope;
use wagu_proto::ids::{HostKey, ParticipantId, RequestId, ResumeToken, Seq};
use wagu_proto::model::UnixMillis;
use wagu_proto::{ClientMessage, ErrorCode, Identity, ResumeRequest, ServerMessage};

/// A connection to a session, numbered by the caller. A participant has at most one at a time;
/// a resume on a new connection replaces (and closes) the old one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct ConnId(pub u64);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Input {
    /// A connection asks to enter (or resume). `resume_token` is a fresh token the caller
    /// generated, used if this becomes a new participant. `host_key` is the privileged key
    /// (a room's host key, a stream's streamer key). `client_key` is the joiner's identity:
    /// the account whose token the gateway verified and the client's own device key, if it
    /// sent one (stored as the string it used to be, see [`Identity`]). Streams ban every key
    /// of it; rooms show the account.
    Join {
        conn: ConnId,
        id: RequestId,
        name: String,
        host_key: Option<HostKey>,
        resume: Option<ResumeRequest>,
        resume_token: ResumeToken,
        #[serde(default)]
        client_key: Option<Identity>,
    },
    /// A validated command from a joined connection.
    Command {
        conn: ConnId,
        participant: ParticipantId,
        msg: ClientMessage,
    },
    /// The connection dropped (or was dropped for lagging).
    Disconnect {
        conn: ConnId,
        participant: ParticipantId,
    },
    /// Time passed: flush what is batched, expire what timed out.
    Tick,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// The join succeeded: route this connection's frames to this participant from now on.
    Attach {
        conn: ConnId,
        participant: ParticipantId,
    },
    /// The join was refused; nothing changed.
    JoinRefused {
        conn: ConnId,
        id: RequestId,
        code: ErrorCode,
        message: String,
    },
    /// A frame for one connection only.
    Send { conn: ConnId, msg: ServerMessage },
    /// An event for every attached connection. `lossy` frames may be skipped for a slow
    /// connection (presence, viewer counts); reliable ones may not.
    Broadcast { msg: ServerMessage, lossy: bool },
    /// A lossy frame for every attached connection except those of `author`, whose own
    /// update is all it holds (a presence batch with one entry): nobody needs their own
    /// echo, and in a quiet room that is one write in every group-size.
    BroadcastOthers {
        msg: ServerMessage,
        author: ParticipantId,
    },
    /// Close this connection with this WebSocket close code.
    Detach { conn: ConnId, code: u16 },
    /// The session is over: stop the actor and forget its state.
    Retire,
}

/// A session's state machine, as the actors see it.
pub trait Machine: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Names the kind in store keys and metrics: `room`, `stream`.
    const KIND: &'static str;
    /// What the session is created from.
    type Spec: Send + Serialize + serde::de::DeserializeOwned + 'static;
    /// Tunables of every session of this kind.
    type Config: Clone + Send + Sync + 'static;
    /// A short public description (link previews, discovery lists).
    type Summary: Clone + Send + Serialize + serde::de::DeserializeOwned + 'static;

    fn create(spec: Self::Spec, config: &Self::Config, now: UnixMillis) -> Self;
    /// The session's id as used in store keys and lookups.
    fn key(&self) -> &str;
    /// Other lookup keys that lead to this session (a room's share token).
    fn aliases(&self) -> Vec<String> {
        Vec::new()
    }
    fn handle(&mut self, now: UnixMillis, input: Input) -> Vec<Output>;
    fn seq(&self) -> Seq;
    /// Changes whenever durable state changes: the actor journals every input that changed it.
    /// Most kinds announce every such change with an event, so the sequence number serves.
    fn revision(&self) -> u64 {
        self.seq().0
    }
    fn next_deadline(&self) -> Option<UnixMillis>;
    /// Marks every participant away, as if all connections dropped at once (after a restore).
    fn detach_all(&mut self, now: UnixMillis) -> Vec<Output>;
    fn is_closed(&self) -> bool;
    /// A full picture of the lossy state, for a connection that skipped lossy frames.
    fn resync(&self, now: UnixMillis) -> Option<ServerMessage>;
    fn summary(&self) -> Self::Summary;
    /// Voice and video: what `participant`, on its connection `conn`, may publish and receive
    /// (see `crate::media`). A connection that is not the participant's current one is refused
    /// with `not_joined`, like any command.
    fn media_grant(
        &self,
        _participant: ParticipantId,
        _conn: ConnId,
    ) -> Result<wagu_proto::media::MediaGrant, Refusal> {
        Err(Refusal::new(
            ErrorCode::MediaUnavailable,
            format!("a {} has no voice or video", Self::KIND),
        ))
    }
    /// Whether `participant` is still in the session, connected or away. Its media ends once
    /// it is not (left, kicked, banned, timed out).
    fn is_member(&self, _participant: ParticipantId) -> bool {
        false
    }
    /// A durable record to keep when the session retires (a stream's "was streamed here").
    fn ended_record(&self) -> Option<(String, Vec<u8>)> {
        None
    }
}

/// The reliable events a session keeps for resuming clients: the last `capacity` of them, in
/// order. Part of each session's snapshot, so a restored session can still replay.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplayLog {
    events: std::collections::VecDeque<ServerMessage>,
    capacity: usize,
    /// Approximate bytes held (see [`approx_size`]); bounded by [`REPLAY_MAX_BYTES`].
    #[serde(default)]
    bytes: usize,
}

/// A replay log never holds more than about this many bytes, whatever its event count: long
/// chat messages must not let one session grow without bound. Past it the oldest events go
/// and a client that missed them gets a fresh snapshot instead of a replay.
pub const REPLAY_MAX_BYTES: usize = 1024 * 1024;

/// The chat tail keeps at most this many bytes of text, besides its message count.
pub const CHAT_TAIL_MAX_BYTES: usize = 256 * 1024;

/// A cheap upper estimate of an event's encoded size: its variable-length text plus a
/// generous allowance for the fixed fields. Encoding it to measure would cost as much as the
/// event itself.
pub fn approx_size(msg: &ServerMessage) -> usize {
    const FIXED: usize = 160;
    FIXED
        + match msg {
            ServerMessage::Chat { message, .. } => message.text.len() + message.name.len(),
            ServerMessage::CandidateAdded { candidate, .. } => {
                candidate.name.len() + candidate.note.as_ref().map_or(0, String::len)
            }
            ServerMessage::ParticipantJoined { participant, .. } => participant.name.len(),
            ServerMessage::RoomRenamed { title, .. } => title.len(),
            ServerMessage::PinChanged {
                message: Some(m), ..
            } => m.text.len(),
            ServerMessage::BallotChanged { tally, choices, .. } => {
                (tally.len() + choices.len()) * 48
            }
            ServerMessage::CandidateRemoved { tally, .. } => tally.len() * 48,
            ServerMessage::VoteClosed { decision, .. } => decision.tally.len() * 48,
            _ => 0,
        }
}

impl ReplayLog {
    pub fn new(capacity: usize) -> Self {
        ReplayLog {
            events: Default::default(),
            capacity,
            bytes: 0,
        }
    }

    /// Keeps a reliable event, dropping the oldest past the count or byte bound.
    pub fn push(&mut self, msg: ServerMessage) {
        if self.capacity == 0 {
            return;
        }
        self.bytes += approx_size(&msg);
        self.events.push_back(msg);
        while self.events.len() > self.capacity
            || (self.bytes > REPLAY_MAX_BYTES && self.events.len() > 1)
        {
            if let Some(old) = self.events.pop_front() {
                self.bytes -= approx_size(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Whether a client that saw everything up to `last_seq` can be brought to `current` by
    /// replaying kept events (it must not have missed anything older than the oldest kept).
    pub fn covers(&self, last_seq: Seq, current: Seq) -> bool {
        let oldest = self.events.front().and_then(|m| m.seq());
        last_seq <= current
            && match oldest {
                Some(o) => last_seq.0 + 1 >= o.0,
                None => last_seq == current,
            }
    }

    /// Appends to `out` what brings a resuming connection up to date: `resumed` and every kept
    /// event after `last_seq` when the log covers the gap, else the `welcome` snapshot; then
    /// the join's `ack`. `last_seq` 0 (the client holds no state) always gets the snapshot.
    /// `ack_seq` is the event the resume itself produced (`participant_back`,
    /// `streamer_back`), if any: the `ack` carries it like every other command's.
    #[allow(clippy::too_many_arguments)]
    pub fn catch_up(
        &self,
        out: &mut Vec<Output>,
        conn: ConnId,
        id: RequestId,
        resumed: ServerMessage,
        last_seq: Seq,
        current: Seq,
        ack_seq: Option<Seq>,
        welcome: impl FnOnce() -> ServerMessage,
    ) {
        if last_seq.0 > 0 && self.covers(last_seq, current) {
            out.push(Output::Send { conn, msg: resumed });
            for m in self
                .events
                .iter()
                .filter(|m| m.seq().is_some_and(|s| s > last_seq))
            {
                out.push(Output::Send {
                    conn,
                    msg: m.clone(),
                });
            }
        } else {
            out.push(Output::Send {
                conn,
                msg: welcome(),
            });
        }
        out.push(Output::Send {
            conn,
            msg: ServerMessage::Ack { id, seq: ack_seq },
        });
    }
}

/// Orders the outputs of one command: its effects, then its reply, then any close it caused
/// (leave, ban, end): the sender always receives its `ack` before its socket closes.
pub fn reply_then_close(
    out: &mut Vec<Output>,
    effects: Vec<Output>,
    conn: ConnId,
    reply: Option<ServerMessage>,
) {
    let (closing, regular): (Vec<_>, Vec<_>) = effects
        .into_iter()
        .partition(|o| matches!(o, Output::Detach { .. } | Output::Retire));
    out.extend(regular);
    if let Some(msg) = reply {
        out.push(Output::Send { conn, msg });
    }
    out.extend(closing);
}

/// A refusal: the error code and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: ErrorCode,
    /// For humans; clients switch on `code`.
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: String) -> Self {
        Refusal { code, message }
    }

    /// What any command or join of a session that has ended is told.
    pub fn ended(kind: &str) -> Self {
        Refusal::new(ErrorCode::RoomClosed, format!("this {kind} has ended"))
    }
}

/// Refuses, by its [`scope`](ClientMessage::scope) alone, a command that a session of scope
/// `own` (a room or a stream) does not handle: entering again, the other kind's commands, and
/// media (the actor routes those to the SFU, `crate::media::route`, before the session).
/// `None`: the session handles it.
pub fn refuse_by_scope(msg: &ClientMessage, own: Scope) -> Option<Refusal> {
    let (kind, this, other) = match own {
        Scope::Stream => ("stream", "a live stream", "a map-room"),
        _ => ("room", "a map room", "a live-stream"),
    };
    let refused = match msg.scope() {
        Scope::Entry => Refusal::new(
            ErrorCode::AlreadyJoined,
            format!("this connection is already in a {kind}"),
        ),
        Scope::Media => Refusal::new(ErrorCode::Internal, "media commands go to the SFU".into()),
        s if s == Scope::AnySession || s == own => return None,
        _ => Refusal::new(
            ErrorCode::WrongSession,
            format!("that is {other} command; this is {this}"),
        ),
    };
    Some(refused)
}

/// The refusal of a message that reached a session's command handler although its
/// [`scope`](ClientMessage::scope) says it belongs elsewhere (the handler checks the scope
/// first, so this is a bug, answered rather than panicked on).
pub fn out_of_scope(msg: &ClientMessage) -> Refusal {
    Refusal::new(
        ErrorCode::Internal,
        format!("a {} message reached the wrong handler", msg.kind()),
    )
}

/// What a session that has ended answers: joins are refused and commands get `room_closed`;
/// disconnects and ticks change nothing. `what` names the kind ("room", "stream").
pub fn refuse_ended(input: Input, what: &str) -> Vec<Output> {
    let Refusal { code, message } = Refusal::ended(what);
    match input {
        Input::Join { conn, id, .. } => vec![Output::JoinRefused {
            conn,
            id,
            code,
            message,
        }],
        Input::Command { conn, msg, .. } => msg
            .id()
            .map(|id| Output::Send {
                conn,
                msg: ServerMessage::error(Some(id), code, message),
            })
            .into_iter()
            .collect(),
        Input::Disconnect { .. } | Input::Tick => Vec::new(),
    }
}

/// Runs one command from `conn`. A connection that is not the participant's current one (it
/// was replaced by a resume, or the participant was removed) gets `not_joined`; otherwise
/// `run` applies the command and returns the session's sequence number after it, and the
/// reply goes out after the command's effects and before any close it caused.
///
/// This is the one owner of the rule of PROTOCOL section 3: the `ack` carries the `seq` of the
/// last reliable event the command produced (`seq_before` is the number before it ran), and
/// none when it produced none. Commands never pick the number themselves, so one that emits
/// several events (a host's `leave`: `participant_left` then `host_changed`) cannot name the
/// wrong one.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    out: &mut Vec<Output>,
    conn: ConnId,
    current: Option<ConnId>,
    seq_before: Seq,
    msg: ClientMessage,
    what: &str,
    run: impl FnOnce(ClientMessage, &mut Vec<Output>) -> Result<Seq, Refusal>,
) {
    if current != Some(conn) {
        if let Some(id) = msg.id() {
            out.push(Output::Send {
                conn,
                msg: ServerMessage::error(
                    Some(id),
                    ErrorCode::NotJoined,
                    format!("this connection is no longer in the {what}; resume"),
                ),
            });
        }
        return;
    }
    let id = msg.id();
    let mut effects = Vec::new();
    let reply = match run(msg, &mut effects) {
        Ok(after) => id.map(|id| ServerMessage::Ack {
            id,
            seq: (after != seq_before).then_some(after),
        }),
        Err(Refusal { code, message }) => Some(ServerMessage::Error { id, code, message }),
    };
    reply_then_close(out, effects, conn, reply);
}

/// How many commands a session remembers for [`RecentCommands`].
pub const RECENT_COMMANDS: usize = 128;

/// The last commands that changed a session, kept with it (snapshots and journal replay
/// rebuild it, so it survives a move to another node): a retry of one — same participant, same
/// `id`, same content — after its ack was lost is acknowledged again with the first one's
/// `seq`, never applied twice. A new command that reuses an id with other content is applied.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RecentCommands(std::collections::VecDeque<(ParticipantId, RequestId, u64, Seq)>);

impl RecentCommands {
    /// What identifies a command for retries: its id and a hash of its content (stable across
    /// processes and nodes: FNV-1a over its JSON). `None` for commands without an id.
    pub fn key(msg: &ClientMessage) -> Option<(RequestId, u64)> {
        let id = msg.id()?;
        let bytes = serde_json::to_vec(msg).ok()?;
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Some((id, hash))
    }

    /// The `seq` a command with this key got when `participant` sent it before, if it did.
    pub fn applied(&self, participant: ParticipantId, key: (RequestId, u64)) -> Option<Seq> {
        self.0
            .iter()
            .rev()
            .find(|(p, id, h, _)| *p == participant && (*id, *h) == key)
            .map(|e| e.3)
    }

    pub fn remember(&mut self, participant: ParticipantId, key: (RequestId, u64), seq: Seq) {
        if self.0.len() >= RECENT_COMMANDS {
            self.0.pop_front();
        }
        self.0.push_back((participant, key.0, key.1, seq));
    }

    /// Runs one command through [`dispatch`] unless it is a retry of one already applied (then
    /// acknowledges it again), and remembers it when it changed the session.
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch_once<S>(
        session: &mut S,
        recent: impl Fn(&mut S) -> &mut RecentCommands,
        seq: impl Fn(&S) -> Seq,
        out: &mut Vec<Output>,
        conn: ConnId,
        current: Option<ConnId>,
        participant: ParticipantId,
        msg: ClientMessage,
        what: &str,
        run: impl FnOnce(&mut S, ClientMessage, &mut Vec<Output>) -> Result<Seq, Refusal>,
    ) {
        let key = Self::key(&msg);
        if current == Some(conn)
            && let Some(key) = key
            && let Some(first) = recent(session).applied(participant, key)
        {
            out.push(Output::Send {
                conn,
                msg: ServerMessage::Ack {
                    id: key.0,
                    seq: Some(first),
                },
            });
            return;
        }
        let before = seq(session);
        dispatch(out, conn, current, before, msg, what, |msg, effects| {
            run(session, msg, effects)
        });
        let after = seq(session);
        if after != before
            && let Some(key) = key
        {
            recent(session).remember(participant, key, after);
        }
    }
}

/// Appends a chat message to a session's tail (the last [`wagu_proto::limits::CHAT_TAIL`]
/// kept) and returns it, for the event that announces it. `seq` is that event's number.
pub fn keep_chat(
    tail: &mut std::collections::VecDeque<wagu_proto::model::ChatMessage>,
    seq: Seq,
    from: ParticipantId,
    name: String,
    text: String,
    at: UnixMillis,
) -> wagu_proto::model::ChatMessage {
    let message = wagu_proto::model::ChatMessage {
        seq,
        from,
        name,
        text,
        at,
    };
    tail.push_back(message.clone());
    // Bounded by count and by text bytes (a tail of 200 long messages in four-byte characters
    // would otherwise make every welcome snapshot most of a megabyte).
    let text_bytes = |t: &std::collections::VecDeque<wagu_proto::model::ChatMessage>| {
        t.iter().map(|m| m.text.len() + m.name.len()).sum::<usize>()
    };
    while tail.len() > wagu_proto::limits::CHAT_TAIL
        || (tail.len() > 1 && text_bytes(tail) > CHAT_TAIL_MAX_BYTES)
    {
        tail.pop_front();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagu_proto::model::ChatMessage;

    #[test]
    fn commands_outside_a_sessions_scope_are_refused_by_scope_alone() {
        let id = RequestId(1);
        let pin = ClientMessage::Pin {
            id,
            message: Seq(1),
        };
        let kick = ClientMessage::Kick {
            id,
            participant: ParticipantId(2),
        };
        let hello = ClientMessage::Hello {
            id,
            protocol: wagu_proto::PROTOCOL_VERSION,
        };
        let refused = |m: &ClientMessage, own| refuse_by_scope(m, own).map(|r| (r.code, r.message));
        assert_eq!(
            refused(&pin, Scope::Room),
            Some((
                ErrorCode::WrongSession,
                "that is a live-stream command; this is a map room".into()
            ))
        );
        assert_eq!(
            refused(&kick, Scope::Stream),
            Some((
                ErrorCode::WrongSession,
                "that is a map-room command; this is a live stream".into()
            ))
        );
        assert_eq!(
            refused(&hello, Scope::Stream),
            Some((
                ErrorCode::AlreadyJoined,
                "this connection is already in a stream".into()
            ))
        );
        assert_eq!(refused(&pin, Scope::Stream), None);
        assert_eq!(refused(&kick, Scope::Room), None);
        let chat = ClientMessage::Chat {
            id,
            text: "hi".into(),
        };
        assert_eq!(refused(&chat, Scope::Room), None);
        assert_eq!(refused(&chat, Scope::Stream), None);
    }

    fn chat(seq: u64, text: &str) -> ServerMessage {
        ServerMessage::Chat {
            seq: Seq(seq),
            message: ChatMessage {
                seq: Seq(seq),
                from: ParticipantId(1),
                name: "n".into(),
                text: text.into(),
                at: 0,
            },
        }
    }

    #[test]
    fn replay_is_bounded_by_bytes_and_falls_back_to_a_snapshot() {
        let mut log = ReplayLog::new(1000);
        let big = "가".repeat(1000); // 3,000 bytes
        for s in 1..=1000 {
            log.push(chat(s, &big));
        }
        assert!(
            log.len() < 1000,
            "byte bound applies before the count bound"
        );
        assert!(log.bytes <= REPLAY_MAX_BYTES);
        assert!(log.covers(Seq(999), Seq(1000)));
        assert!(!log.covers(Seq(1), Seq(1000)), "too old: snapshot instead");
    }

    #[test]
    fn chat_tail_is_bounded_by_bytes() {
        let mut tail = std::collections::VecDeque::new();
        let big = "가".repeat(1000);
        for s in 1..=200 {
            keep_chat(
                &mut tail,
                Seq(s),
                ParticipantId(1),
                "n".into(),
                big.clone(),
                0,
            );
        }
        let bytes: usize = tail.iter().map(|m| m.text.len() + 1).sum();
        assert!(bytes <= CHAT_TAIL_MAX_BYTES, "{bytes}");
        assert_eq!(tail.back().unwrap().seq, Seq(200), "the newest is kept");
    }
}
