//! `SessionActor<M>`: the one owner of a map room (`M = Room`) or a live stream
//! (`M = Stream`).
//!
//! Every message becomes an [`Input`] for the state machine, stamped with the wall clock. If
//! the input advanced the session's sequence number it is journaled to the store *before* any
//! of its outputs leave — so nothing a client saw acknowledged can be lost when the actor dies.
//!
//! Journaling is pipelined (group commit within a session): the actor hands each entry, in
//! order, to its session's journal task and goes on with the next message; the outputs wait in
//! `held` until the task reports their entry durable (`SessionMsg::Durable`). The task writes
//! every entry that queued while the previous write was on its way in one store call, so a busy
//! room pays one commit (one fsync on the embedded store) per batch, not per command. Outputs
//! leave strictly in the order their inputs were handled, journaled or not.
//!
//! Outputs are then applied in order: broadcasts are encoded once and the same bytes are pushed
//! to every connection queue without waiting; a connection whose queue is full for a reliable
//! frame is dropped (it resumes). Finally the actor arms one timer for the next deadline.
//!
//! Why one file of ~950 lines: the actor's message loop, its journal pipeline and its fan-out
//! share one `SessionState` and one ordering rule (journal before outputs); split, that rule
//! would span files.

use super::direct;
use super::media::MediaSeats;
use super::outbound::{Frame, Outbound, Pushed};
use super::{EngineConfig, unix_now};
use crate::machine::{ConnId, Input, Machine, Output, Refusal};
use crate::persist::{PersistError, SessionStore};
use bytes::Bytes;
use metrics::{counter, histogram};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use wagu_proto::codec::encode_server;
use wagu_proto::ids::{HostKey, ParticipantId, RequestId, ResumeToken};
use wagu_proto::model::UnixMillis;
use wagu_proto::{ClientMessage, ErrorCode, ResumeRequest};

/// What a successful join hands back to the connection.
#[derive(Debug, Clone)]
pub struct Joined {
    pub session_id: String,
    pub participant: ParticipantId,
    pub resumed: bool,
}

#[derive(Debug)]
pub struct JoinArgs {
    pub conn: ConnId,
    pub client_key: Option<wagu_proto::Identity>,
    pub id: RequestId,
    pub name: String,
    pub host_key: Option<HostKey>,
    pub resume: Option<ResumeRequest>,
    pub resume_token: ResumeToken,
    pub outbound: Outbound,
}

pub enum SessionMsg<M: Machine> {
    Join(Box<JoinArgs>, RpcReplyPort<Result<Joined, Refusal>>),
    Command {
        conn: ConnId,
        participant: ParticipantId,
        msg: ClientMessage,
        /// When the gateway read the frame, for the fan-out latency histogram.
        received: Instant,
    },
    Disconnect {
        conn: ConnId,
        participant: ParticipantId,
    },
    /// A timer fired; the number is the timer's generation (stale timers are ignored).
    Tick(u64),
    /// The journal task made every entry up to this counter durable.
    Durable(u64),
    /// The journal task could not write: the session fails and is revived from the store —
    /// unless another node took it over (fenced off), then this copy just stops.
    JournalFailed(PersistError),
    /// Stop and hand the session over (a drain, or this node's lease lapsed): leave a fresh
    /// snapshot, release ownership, close every client with "resume" so it resumes wherever
    /// the session runs next.
    HandOver,
    Summary(RpcReplyPort<M::Summary>),
    /// Something the session's SFU reports (an answer, a peer that ended, who speaks).
    Media(wagu_proto::media::SfuEvent),
    /// Test hook: panic inside the actor, to exercise supervision. Never sent by the gateway.
    #[doc(hidden)]
    Crash,
}

pub struct SessionActor<M>(std::marker::PhantomData<fn() -> M>);

impl<M> Default for SessionActor<M> {
    fn default() -> Self {
        SessionActor(std::marker::PhantomData)
    }
}

type JoinReply = RpcReplyPort<Result<Joined, Refusal>>;

pub struct SessionArgs<M: Machine> {
    pub machine: M,
    /// Journal entries already applied to `room` (0 for a new room).
    pub applied: u64,
    /// The latest time the session was handled at before (0 for a new session): its clock
    /// never runs below it, whatever this node's clock says.
    pub not_before: UnixMillis,
    /// This actor's journal epoch: its fencing token in a cluster (claimed before the session
    /// was read), else a random number.
    pub epoch: u64,
    /// Journal entries the store held when the session was read (a fenced store trims them with
    /// the first snapshot).
    pub journal_len: u64,
    pub store: SessionStore,
    pub config: EngineConfig,
    /// Where a retiring session leaves its durable record, if it has one.
    pub records: Option<wagu_storage::BlobStore>,
    /// The supervisor: told when the session ends, and (for discoverable kinds, `report`)
    /// about its summary after each tick.
    pub supervisor: ractor::ActorRef<crate::actor::supervisor::SupervisorMsg<M>>,
    pub report: bool,
}

/// Entries one journal write may carry.
const MAX_JOURNAL_BATCH: usize = 512;

/// Outputs waiting for the journal entry `needs` (0: none of their own) to be durable.
struct Held {
    needs: u64,
    outputs: Vec<Output>,
    received: Option<Instant>,
}

struct Conn {
    participant: Option<ParticipantId>,
    outbound: Outbound,
    /// Skipped a presence batch while congested: owes a full presence picture.
    presence_owed: bool,
}

pub struct SessionState<M: Machine> {
    machine: M,
    applied: u64,
    since_snapshot: u64,
    last_snapshot: Instant,
    store: SessionStore,
    config: EngineConfig,
    conns: HashMap<ConnId, Conn>,
    /// Joins waiting for their outcome, and whether each asked to resume.
    pending_joins: HashMap<ConnId, (JoinReply, bool)>,
    armed: Option<u64>,
    /// Set when the room retired: its stored state is deleted, not saved, on stop.
    retired: bool,
    /// Generation of the one timer that counts (see `arm`).
    timer_generation: u64,
    records: Option<wagu_storage::BlobStore>,
    supervisor: ractor::ActorRef<crate::actor::supervisor::SupervisorMsg<M>>,
    report: bool,
    media: MediaSeats,
    /// This actor's journal epoch.
    epoch: u64,
    /// Entries for the journal task, in order; `None` once stopping.
    journal: Option<mpsc::UnboundedSender<(u64, Bytes)>>,
    journal_task: Option<tokio::task::JoinHandle<()>>,
    /// Highest journal counter known durable.
    durable: u64,
    /// Durable journal entries not trimmed by a snapshot yet (what a fenced snapshot trims).
    untrimmed: u64,
    /// Another node owns the session now: this copy writes nothing more, not even on stop.
    fenced_off: bool,
    /// The session's clock never reads below this: the latest time it was handled at, here or
    /// on the node that ran it before (whose clock may have been ahead of ours).
    clock_floor: UnixMillis,
    /// Outputs waiting for their entry, oldest first.
    held: VecDeque<Held>,
    /// An `Output::Retire` left: retire after this message.
    retire: bool,
    /// Flushes the sockets this session's turns wrote into directly (see `direct`).
    flusher: direct::Flusher,
}

impl<M: Machine> SessionState<M> {
    /// The session's time: this node's clock, never below the last time the session was
    /// handled at (so a session revived on a node whose clock is behind does not go back).
    fn now(&mut self) -> UnixMillis {
        let now = unix_now().max(self.clock_floor);
        self.clock_floor = now;
        now
    }
}

/// Starts the session's journal task: it writes what queued, in order, one store call per
/// batch, and tells the actor how far the journal is durable.
fn spawn_journal<M: Machine>(
    myself: ActorRef<SessionMsg<M>>,
    store: SessionStore,
    id: String,
    epoch: u64,
) -> (
    mpsc::UnboundedSender<(u64, Bytes)>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Bytes)>();
    let task = tokio::spawn(async move {
        let mut entries = Vec::new();
        while let Some((mut last, first)) = rx.recv().await {
            entries.push(first);
            while entries.len() < MAX_JOURNAL_BATCH {
                match rx.try_recv() {
                    Ok((n, e)) => {
                        last = n;
                        entries.push(e);
                    }
                    Err(_) => break,
                }
            }
            histogram!("wagu_journal_batch_entries", "kind" => M::KIND)
                .record(entries.len() as f64);
            let batch = std::mem::take(&mut entries);
            match store.append_entries::<M>(&id, epoch, batch).await {
                Ok(()) => {
                    // A dead actor no longer listens; what its task still writes carries
                    // its epoch, which the actor reviving it does not replay.
                    let _ = myself.cast(SessionMsg::Durable(last));
                }
                Err(e) => {
                    let _ = myself.cast(SessionMsg::JournalFailed(e));
                    return;
                }
            }
        }
    });
    (tx, task)
}

impl<M: Machine> Actor for SessionActor<M> {
    type Msg = SessionMsg<M>;
    type State = SessionState<M>;
    type Arguments = SessionArgs<M>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SessionArgs<M>,
    ) -> Result<Self::State, ActorProcessingErr> {
        // A fresh (or just restored) room is written at once, so a crash before its first
        // journal entry still finds it. The epoch (see `persist`) goes first in its snapshot;
        // the snapshot trims the journal entries the session was rebuilt from.
        let epoch = args.epoch;
        args.store
            .save(
                &args.machine,
                args.applied,
                epoch,
                args.not_before,
                args.journal_len,
            )
            .await?;
        let (journal, journal_task) = spawn_journal(
            myself.clone(),
            args.store.clone(),
            args.machine.key().to_string(),
            epoch,
        );
        let mut state = SessionState {
            machine: args.machine,
            applied: args.applied,
            since_snapshot: 0,
            last_snapshot: Instant::now(),
            store: args.store,
            config: args.config,
            conns: HashMap::new(),
            pending_joins: HashMap::new(),
            armed: None,
            retired: false,
            timer_generation: 0,
            records: args.records,
            supervisor: args.supervisor,
            report: args.report,
            media: MediaSeats::default(),
            epoch,
            journal: Some(journal),
            journal_task: Some(journal_task),
            durable: args.applied,
            untrimmed: 0,
            fenced_off: false,
            clock_floor: args.not_before,
            held: VecDeque::new(),
            retire: false,
            flusher: direct::Flusher::default(),
        };
        arm(&myself, &mut state);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SessionMsg<M>,
        state: &mut SessionState<M>,
    ) -> Result<(), ActorProcessingErr> {
        if state.retired {
            // Ended and draining its mailbox: a join that was already queued is answered like
            // any join of an ended session (`room_closed`), never left to fail as
            // `unavailable`, which would tell the client to retry.
            if let SessionMsg::Join(_, reply) = msg {
                let _ = reply.send(Err(ended::<M>()));
            }
            return Ok(());
        }
        let mut received = None;
        let input = match msg {
            SessionMsg::Join(args, reply) => {
                let a = *args;
                // The caller gave up (timed out) or its connection is gone: do not create a
                // participant nobody will ever hear from.
                if reply.is_closed() || a.outbound.is_closed() {
                    return Ok(());
                }
                state.conns.insert(
                    a.conn,
                    Conn {
                        participant: None,
                        outbound: a.outbound,
                        presence_owed: false,
                    },
                );
                state
                    .pending_joins
                    .insert(a.conn, (reply, a.resume.is_some()));
                Input::Join {
                    conn: a.conn,
                    id: a.id,
                    name: a.name,
                    host_key: a.host_key,
                    resume: a.resume,
                    resume_token: a.resume_token,
                    client_key: a.client_key,
                }
            }
            SessionMsg::Command {
                conn,
                participant,
                msg,
                ..
            } if crate::media::is_media(&msg) => {
                media_command(&myself, state, conn, participant, msg);
                return Ok(());
            }
            SessionMsg::Media(event) => {
                media_event(state, event);
                return Ok(());
            }
            SessionMsg::Command {
                conn,
                participant,
                msg,
                received: r,
            } => {
                received = Some(r);
                Input::Command {
                    conn,
                    participant,
                    msg,
                }
            }
            SessionMsg::Disconnect { conn, participant } => {
                state.conns.remove(&conn);
                Input::Disconnect { conn, participant }
            }
            SessionMsg::Tick(generation) => {
                if generation != state.timer_generation {
                    // Superseded by an earlier deadline armed later; that timer does the work.
                    return Ok(());
                }
                state.armed = None;
                if state.report {
                    let _ = state
                        .supervisor
                        .cast(crate::actor::supervisor::SupervisorMsg::Report(
                            state.machine.key().to_string(),
                            state.machine.summary(),
                        ));
                }
                Input::Tick
            }
            SessionMsg::Summary(reply) => {
                let _ = reply.send(state.machine.summary());
                return Ok(());
            }
            SessionMsg::Durable(n) => {
                state.untrimmed += n.saturating_sub(state.durable);
                state.durable = state.durable.max(n);
                let (released, fed) = direct::write_through(|| release(state)).await;
                state.flusher.add(fed);
                released?;
                return after(&myself, state).await;
            }
            SessionMsg::JournalFailed(e) if e.is_fenced_off() => {
                // Another node took the session over (this node was paused or cut off past
                // its lease): nothing acknowledged here was lost (acks wait for the journal),
                // and this copy must neither write nor answer any more. Its clients see their
                // queue end and resume, reaching the new owner.
                tracing::warn!(
                    kind = M::KIND,
                    id = state.machine.key(),
                    error = %e,
                    "fenced off: another node owns this session now; dropping this copy"
                );
                counter!("wagu_sessions_fenced_off_total", "kind" => M::KIND).increment(1);
                state.fenced_off = true;
                myself.stop(Some("fenced off".into()));
                return Ok(());
            }
            SessionMsg::HandOver => {
                myself.stop(Some("handed over".into()));
                return Ok(());
            }
            SessionMsg::JournalFailed(e) => {
                return Err(format!(
                    "{} {}: journal write failed: {e}",
                    M::KIND,
                    state.machine.key()
                )
                .into());
            }
            SessionMsg::Crash => panic!(
                "{} {} asked to crash (test hook)",
                M::KIND,
                state.machine.key()
            ),
        };
        let revision = state.machine.revision();
        // The turn's frames go straight into the sockets that can take them (see `direct`).
        let (stepped, fed) = direct::write_through(|| {
            step(state, input, received)?;
            if state.machine.revision() != revision {
                end_gone_media(state);
            }
            Ok::<_, ActorProcessingErr>(())
        })
        .await;
        state.flusher.add(fed);
        stepped?;
        after(&myself, state).await
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut SessionState<M>,
    ) -> Result<(), ActorProcessingErr> {
        // Connections still attached learn the room is gone when their queue ends.
        for (_, (reply, _)) in state.pending_joins.drain() {
            let refusal = if state.retired {
                ended::<M>()
            } else {
                Refusal::new(ErrorCode::Unavailable, "the room is stopping".into())
            };
            let _ = reply.send(Err(refusal));
        }
        if let Some(sfu) = state.media.session.take() {
            sfu.send(wagu_proto::media::SfuRequest::Close);
        }
        // Let the clients go first: they resume wherever the session runs next, without waiting
        // for the writes below (which may take the store's timeouts when it is unreachable).
        state.conns.clear();
        // Let the journal task finish what it was given, so nothing it writes lands after the
        // snapshot below.
        state.journal = None;
        if let Some(task) = state.journal_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        // Stopped but not retired (node shutdown, drain): leave a fresh snapshot so that this
        // or another node can revive the room and its clients resume there; in a cluster, also
        // release it so another node claims it at once. A copy fenced off writes nothing.
        if !state.retired && !state.fenced_off {
            snapshot(state).await?;
            state
                .store
                .release::<M>(state.machine.key(), state.epoch)
                .await?;
        }
        Ok(())
    }
}

/// What a join of a session that has ended is told: the same as the machine's own refusal.
fn ended<M: Machine>() -> Refusal {
    Refusal::ended(M::KIND)
}

/// After a message: retire if an applied output asked for it, else snapshot when due and arm
/// the next timer.
async fn after<M: Machine>(
    myself: &ActorRef<SessionMsg<M>>,
    state: &mut SessionState<M>,
) -> Result<(), ActorProcessingErr> {
    if state.retired {
        return Ok(());
    }
    if state.retire {
        // Boxed, like the snapshot below: the store's futures are large, and everything
        // `handle` awaits inline sits in every session actor's (boxed once, kept for life)
        // message loop, so inline they cost every idle session about 20 kB.
        return Box::pin(retire(myself, state)).await;
    }
    if snapshot_due(state) {
        Box::pin(snapshot(state)).await?;
    }
    arm(myself, state);
    Ok(())
}

/// The session ended: tell the supervisor, close media, let the journal finish, keep the
/// ended record, delete the session from the store and drain the mailbox.
async fn retire<M: Machine>(
    myself: &ActorRef<SessionMsg<M>>,
    state: &mut SessionState<M>,
) -> Result<(), ActorProcessingErr> {
    state.retired = true;
    // First of all, before the store is touched: from now on the supervisor answers
    // lookups of this id with "ended" (so nobody revives it from the store while it is
    // being deleted, and a join whose message to this actor fails learns why).
    let _ = state
        .supervisor
        .cast(crate::actor::supervisor::SupervisorMsg::Ended(
            state.machine.key().to_string(),
        ));
    if let Some(sfu) = state.media.session.take() {
        sfu.send(wagu_proto::media::SfuRequest::Close);
    }
    // The journal task may still be writing entries of this session: let it finish, so
    // that nothing of the session is written after it is deleted.
    state.journal = None;
    if let Some(task) = state.journal_task.take() {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if let (Some(records), Some((key, body))) = (&state.records, state.machine.ended_record())
        && let Err(e) = records.put(&key, body.into(), "application/json").await
    {
        tracing::warn!(key, error = %e, "could not keep the ended record");
    }
    if let Err(e) = state.store.delete(&state.machine, state.epoch).await {
        tracing::warn!(id = state.machine.key(), error = %e, "could not delete retired session");
    }
    counter!("wagu_sessions_retired_total", "kind" => M::KIND).increment(1);
    // Drain rather than stop: messages already queued (joins racing the end) are still
    // handled, by the `retired` branch of `handle`; later sends fail and the directory
    // asks the supervisor, which knows the session ended.
    if myself.drain().is_err() {
        myself.stop(Some("retired".into()));
    }
    Ok(())
}

/// Feeds one input (and any disconnects it causes) through the room. An input that changed
/// the room goes to the journal; its outputs wait in `held` until that entry is durable, and
/// so does everything after them, so outputs leave in the order their inputs were handled.
fn step<M: Machine>(
    state: &mut SessionState<M>,
    input: Input,
    received: Option<Instant>,
) -> Result<(), ActorProcessingErr> {
    let mut queue = vec![input];
    let mut received = received;
    while let Some(input) = queue.pop() {
        let now = state.now();
        let before = state.machine.revision();
        // `handle` consumes the input; keep a copy for the journal unless the input can never
        // change the room (presence is lossy by design, pings change nothing), which is most
        // of the traffic.
        let journal_copy = (!is_ephemeral(&input)).then(|| input.clone());
        let outputs = state.machine.handle(now, input);
        let mut needs = 0;
        if state.machine.revision() != before {
            state.applied += 1;
            state.since_snapshot += 1;
            // An ephemeral input can only have advanced the sequence through the timers that
            // run with every input (an away participant timing out), and a tick at the same
            // `now` replays exactly that.
            let entry = journal_copy.unwrap_or(Input::Tick);
            let bytes = SessionStore::encode_entry(
                state.machine.key(),
                state.epoch,
                state.applied,
                now,
                &entry,
            )?;
            state
                .journal
                .as_ref()
                .ok_or("the journal is closed")?
                .send((state.applied, bytes))
                .map_err(|_| "the journal task has stopped")?;
            needs = state.applied;
        }
        let r = received.take();
        if needs <= state.durable && state.held.is_empty() {
            for d in apply_now(state, outputs, r) {
                queue.push(d);
            }
        } else {
            state.held.push_back(Held {
                needs,
                outputs,
                received: r,
            });
        }
    }
    Ok(())
}

/// Applies held outputs whose entries are now durable, oldest first; the disconnects of
/// connections that lagged go back through the room.
fn release<M: Machine>(state: &mut SessionState<M>) -> Result<(), ActorProcessingErr> {
    let mut lagged = Vec::new();
    while state.held.front().is_some_and(|h| h.needs <= state.durable) {
        let h = state.held.pop_front().expect("front exists");
        lagged.extend(apply_now(state, h.outputs, h.received));
    }
    for d in lagged {
        step(state, d, None)?;
    }
    Ok(())
}

/// Applies outputs now; returns the disconnects of connections dropped for lagging.
fn apply_now<M: Machine>(
    state: &mut SessionState<M>,
    outputs: Vec<Output>,
    received: Option<Instant>,
) -> Vec<Input> {
    let mut retire = false;
    let lagged = apply(state, outputs, &mut retire);
    state.retire |= retire;
    if let Some(r) = received {
        histogram!("wagu_fanout_seconds").record(r.elapsed().as_secs_f64());
    }
    lagged
        .into_iter()
        .map(|(conn, participant)| {
            counter!("wagu_queue_drops_total", "kind" => "lagged").increment(1);
            Input::Disconnect { conn, participant }
        })
        .collect()
}

/// Forgets a connection that could not take a reliable frame; the room hears of it as a
/// disconnect once the current outputs are applied.
fn drop_conn<M: Machine>(
    state: &mut SessionState<M>,
    lagged: &mut Vec<(ConnId, ParticipantId)>,
    dropped: &mut HashMap<ConnId, Outbound>,
    conn: ConnId,
) {
    if let Some(c) = state.conns.remove(&conn) {
        if let Some(p) = c.participant {
            lagged.push((conn, p));
        }
        dropped.insert(conn, c.outbound);
    }
}

/// Inputs that never advance the sequence number, so never need journaling.
fn is_ephemeral(input: &Input) -> bool {
    matches!(
        input,
        Input::Command {
            msg: ClientMessage::Presence { .. } | ClientMessage::Ping { .. },
            ..
        }
    )
}

/// Applies outputs in order. Returns the connections dropped for lagging.
fn apply<M: Machine>(
    state: &mut SessionState<M>,
    outputs: Vec<Output>,
    retire: &mut bool,
) -> Vec<(ConnId, ParticipantId)> {
    let mut lagged = Vec::new();
    // Connections dropped in this batch, kept so that a close the same outputs ask for later
    // (a kick's event may be what overflowed the queue) still reaches the client's close slot.
    let mut dropped: HashMap<ConnId, Outbound> = HashMap::new();

    for o in outputs {
        match o {
            Output::Attach { conn, participant } => {
                if let Some(c) = state.conns.get_mut(&conn) {
                    c.participant = Some(participant);
                }
            }
            Output::JoinRefused {
                conn,
                code,
                message,
                ..
            } => {
                state.conns.remove(&conn);
                if let Some((reply, _)) = state.pending_joins.remove(&conn) {
                    let _ = reply.send(Err(Refusal { code, message }));
                }
            }
            Output::Send { conn, msg } => {
                let frame = Frame::text(encode_server(&msg));
                counter!("wagu_messages_out_total", "type" => msg.kind()).increment(1);
                let full = match state.conns.get(&conn) {
                    Some(c) => matches!(c.outbound.push(frame), Pushed::Full),
                    None => false,
                };
                if full {
                    drop_conn(state, &mut lagged, &mut dropped, conn);
                }
                if let Some((reply, resumed)) = state.pending_joins.remove(&conn) {
                    // The welcome (or resumed) frame is queued: the join succeeded.
                    match state.conns.get(&conn).and_then(|c| c.participant) {
                        Some(participant) => {
                            let _ = reply.send(Ok(Joined {
                                session_id: state.machine.key().to_string(),
                                participant,
                                resumed,
                            }));
                            // Right after its welcome, a newcomer learns who is in voice.
                            send_media_state(state, conn);
                        }
                        None => {
                            let _ = reply.send(Err(Refusal::new(
                                ErrorCode::Unavailable,
                                "could not queue the welcome; retry".into(),
                            )));
                        }
                    }
                }
            }
            Output::Broadcast { msg, lossy } => {
                for id in broadcast(state, &msg, lossy, None) {
                    drop_conn(state, &mut lagged, &mut dropped, id);
                }
            }
            Output::BroadcastOthers { msg, author } => {
                for id in broadcast(state, &msg, true, Some(author)) {
                    drop_conn(state, &mut lagged, &mut dropped, id);
                }
            }
            Output::Detach { conn, code } => {
                // Closed because its participant is gone (kicked, banned): its media ends
                // first, and the client hears so before the close.
                end_media_of_leaving(state, conn);
                if let Some(c) = state.conns.remove(&conn) {
                    c.outbound.close(code);
                } else if let Some(o) = dropped.get(&conn) {
                    o.close(code);
                }
            }
            Output::Retire => *retire = true,
        }
    }
    lagged
}

/// Queues `msg` once, shared, for every attached connection except those of `skip`. Returns
/// the connections a reliable frame did not fit (they are dropped as lagging); a lossy frame
/// that does not fit, or finds a queue three-quarters full, is skipped and owed as a resync.
fn broadcast<M: Machine>(
    state: &mut SessionState<M>,
    msg: &wagu_proto::ServerMessage,
    lossy: bool,
    skip: Option<ParticipantId>,
) -> Vec<ConnId> {
    let bytes = std::sync::Arc::new(encode_server(msg));
    let mut sent = 0u64;
    let mut full = Vec::new();
    let now = state.now();
    for (id, c) in state.conns.iter_mut() {
        if c.participant.is_none() || c.participant == skip {
            continue;
        }
        if lossy {
            if c.outbound.congested() {
                c.presence_owed = true;
                counter!("wagu_queue_drops_total", "kind" => "presence").increment(1);
                continue;
            }
            if c.presence_owed
                && let Some(resync) = state.machine.resync(now)
            {
                // Drained again: send the whole lossy picture instead of this batch.
                c.presence_owed = false;
                if let Pushed::Full = c.outbound.push(Frame::text(encode_server(&resync))) {
                    c.presence_owed = true;
                }
                sent += 1;
                continue;
            }
        }
        match c.outbound.push(Frame::Text(bytes.clone())) {
            Pushed::Sent => sent += 1,
            Pushed::Full if lossy => c.presence_owed = true,
            Pushed::Full => full.push(*id),
        }
    }
    counter!("wagu_messages_out_total", "type" => msg.kind()).increment(sent);
    full
}

/// Whether a fresh snapshot is due (see `EngineConfig::snapshot_every` and `snapshot_after`).
fn snapshot_due<M: Machine>(state: &SessionState<M>) -> bool {
    state.since_snapshot >= state.config.snapshot_every
        || (state.since_snapshot > 0
            && state.last_snapshot.elapsed() >= state.config.snapshot_after)
}

/// Writes a fresh snapshot (which trims the journal).
async fn snapshot<M: Machine>(state: &mut SessionState<M>) -> Result<(), ActorProcessingErr> {
    state
        .store
        .save(
            &state.machine,
            state.applied,
            state.epoch,
            state.clock_floor,
            state.untrimmed,
        )
        .await?;
    state.untrimmed = 0;
    state.since_snapshot = 0;
    state.last_snapshot = Instant::now();
    Ok(())
}

/// Arms one timer for the room's next deadline, unless an earlier one is already armed.
fn arm<M: Machine>(myself: &ActorRef<SessionMsg<M>>, state: &mut SessionState<M>) {
    let Some(deadline) = state.machine.next_deadline() else {
        return;
    };
    if state.armed.is_some_and(|a| a <= deadline) {
        return;
    }
    let now = state.now();
    let wait = Duration::from_millis(deadline.saturating_sub(now));
    state.armed = Some(deadline);
    // A new generation retires any timer still pending: only the latest one ticks, so timers
    // never pile up however often the deadline moves earlier.
    state.timer_generation += 1;
    let generation = state.timer_generation;
    myself.send_after(wait, move || SessionMsg::Tick(generation));
}

/// A `media_*` command: the session's rules decide (`crate::media::route`), the SFU acts.
/// Nothing here is journaled: media is not durable state, and a revived session's clients
/// offer again.
fn media_command<M: Machine>(
    myself: &ActorRef<SessionMsg<M>>,
    state: &mut SessionState<M>,
    conn: ConnId,
    participant: ParticipantId,
    msg: ClientMessage,
) {
    use wagu_proto::media::SfuRequest;
    let seat = state.media.seats.get(&participant).copied();
    let mut routed = crate::media::route(
        &state.machine,
        conn,
        participant,
        msg,
        seat.is_some(),
        seat.map_or(0, |s| s.candidates),
    );
    if let Some(request) = routed.request.take() {
        match open_media(myself, state) {
            false => {
                routed.reply = Some(wagu_proto::ServerMessage::error(
                    request_id(&request),
                    ErrorCode::MediaUnavailable,
                    "this node serves no voice or video",
                ));
            }
            true => {
                match &request {
                    SfuRequest::Offer { .. } => {
                        state.media.seats.insert(
                            participant,
                            super::media::Seat {
                                conn,
                                candidates: 0,
                            },
                        );
                    }
                    SfuRequest::Candidate { .. } => {
                        if let Some(s) = state.media.seats.get_mut(&participant) {
                            s.candidates += 1;
                        }
                    }
                    SfuRequest::End { .. } => {
                        state.media.seats.remove(&participant);
                    }
                    SfuRequest::Mute { .. } | SfuRequest::Close => {}
                }
                counter!("wagu_media_requests_total", "kind" => request_kind(&request))
                    .increment(1);
                if let Some(sfu) = &state.media.session {
                    sfu.send(request);
                }
            }
        }
    }
    if let Some(reply) = routed.reply {
        send_to(state, conn, &reply);
    }
}

fn request_id(r: &wagu_proto::media::SfuRequest) -> Option<RequestId> {
    match r {
        wagu_proto::media::SfuRequest::Offer { request, .. } => Some(*request),
        _ => None,
    }
}

fn request_kind(r: &wagu_proto::media::SfuRequest) -> &'static str {
    use wagu_proto::media::SfuRequest::*;
    match r {
        Offer { .. } => "offer",
        Candidate { .. } => "candidate",
        Mute { .. } => "mute",
        End { .. } => "end",
        Close => "close",
    }
}

/// Opens the session's SFU on first use; false when the node serves no media.
fn open_media<M: Machine>(myself: &ActorRef<SessionMsg<M>>, state: &mut SessionState<M>) -> bool {
    if state.media.session.is_none() {
        let Some(plane) = state.config.media.as_ref() else {
            return false;
        };
        let me = myself.clone();
        let events: super::media::MediaEvents = std::sync::Arc::new(move |e| {
            let _ = me.cast(SessionMsg::Media(e));
        });
        state.media.session = Some(plane.open(M::KIND, state.machine.key(), events));
    }
    true
}

/// One frame to one connection, if it is still attached. A full queue drops the frame: media
/// frames are replies and lossy states, and the next reliable frame drops a lagging
/// connection anyway.
fn send_to<M: Machine>(state: &SessionState<M>, conn: ConnId, msg: &wagu_proto::ServerMessage) {
    if let Some(c) = state.conns.get(&conn) {
        counter!("wagu_messages_out_total", "type" => msg.kind()).increment(1);
        let _ = c.outbound.push(Frame::text(encode_server(msg)));
    }
}

fn media_event<M: Machine>(state: &mut SessionState<M>, event: wagu_proto::media::SfuEvent) {
    use wagu_proto::ServerMessage as S;
    use wagu_proto::media::SfuEvent as E;
    let lossy = match event {
        E::Answer {
            participant,
            request,
            sdp,
        } => {
            if let Some(seat) = state.media.seats.get(&participant) {
                send_to(state, seat.conn, &S::MediaAnswer { id: request, sdp });
            }
            return;
        }
        E::Refused {
            participant,
            request,
            code,
            message,
        } => {
            if let Some(seat) = state.media.seats.remove(&participant) {
                send_to(state, seat.conn, &S::error(Some(request), code, message));
            }
            return;
        }
        E::Ended {
            participant,
            reason,
        } => {
            if let Some(seat) = state.media.seats.remove(&participant) {
                send_to(state, seat.conn, &S::MediaEnded { reason });
            }
            return;
        }
        E::Peers(peers) => {
            state.media.peers = peers.clone();
            S::MediaState {
                seq: state.machine.seq(),
                at: unix_now(),
                peers,
            }
        }
        E::Speaking(participants) => S::Speaking {
            seq: state.machine.seq(),
            at: unix_now(),
            participants,
        },
    };
    let mut retire = false;
    let lagged = apply(
        state,
        vec![Output::Broadcast {
            msg: lossy,
            lossy: true,
        }],
        &mut retire,
    );
    debug_assert!(lagged.is_empty(), "a lossy frame drops nobody");
}

/// Ends the media of participants who are no longer in the session.
fn end_gone_media<M: Machine>(state: &mut SessionState<M>) {
    if state.media.seats.is_empty() {
        return;
    }
    let machine = &state.machine;
    let gone = state.media.gone(|p| machine.is_member(p));
    for (participant, seat) in gone {
        end_not_member(state, participant, seat.conn);
    }
}

/// Ends the media of a participant no longer in the session: the SFU drops its peer and its
/// connection hears why.
fn end_not_member<M: Machine>(
    state: &mut SessionState<M>,
    participant: ParticipantId,
    conn: ConnId,
) {
    state.media.seats.remove(&participant);
    let reason = wagu_proto::media::MediaEndReason::NotMember;
    if let Some(sfu) = &state.media.session {
        sfu.send(wagu_proto::media::SfuRequest::End {
            participant,
            reason,
        });
    }
    send_to(
        state,
        conn,
        &wagu_proto::ServerMessage::MediaEnded { reason },
    );
}

/// Tells a newcomer who publishes voice/video now.
fn send_media_state<M: Machine>(state: &SessionState<M>, conn: ConnId) {
    if state.media.peers.is_empty() {
        return;
    }
    if state
        .conns
        .get(&conn)
        .is_some_and(|c| c.participant.is_some())
    {
        let msg = wagu_proto::ServerMessage::MediaState {
            seq: state.machine.seq(),
            at: unix_now(),
            peers: state.media.peers.clone(),
        };
        send_to(state, conn, &msg);
    }
}

/// Ends the media of the participant on `conn` if that participant is no longer a member.
fn end_media_of_leaving<M: Machine>(state: &mut SessionState<M>, conn: ConnId) {
    let Some(participant) = state
        .media
        .seats
        .iter()
        .find(|(_, s)| s.conn == conn)
        .map(|(p, _)| *p)
    else {
        return;
    };
    if !state.machine.is_member(participant) {
        end_not_member(state, participant, conn);
    }
}
