//! `Supervisor<M>`: the parent of every session actor of one kind on this node (one supervisor
//! for map rooms, one for live streams).
//!
//! It spawns a session when one is created, finds the actor of a running session, adopts a
//! session a joining connection rebuilt from the store (the directory loads it outside this
//! mailbox), restarts a session that panicked from its snapshot plus journal, and forgets a
//! session whose actor stopped normally (retired). A session that keeps crashing (more than
//! `max_restarts_per_minute`) is given up and not adopted again within the minute. For discoverable kinds (streams) it also keeps the latest summary each session
//! reports, so listing live streams never has to ask every actor.
//!
//! Note ractor's default `handle_supervisor_evt` stops the supervisor when a child dies; this
//! one overrides it, which is the point of having it.

use super::EngineConfig;
use super::session_actor::{SessionActor, SessionArgs, SessionMsg};
use super::unix_now;
use crate::machine::Machine;
use crate::persist::{PersistError, Revived, SessionStore};
use metrics::{counter, gauge};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use wagu_storage::BlobStore;

type Found<M> = Result<Option<ActorRef<SessionMsg<M>>>, CreateError>;

pub enum SupervisorMsg<M: Machine> {
    /// Spawn a new session.
    Create(
        Box<M::Spec>,
        RpcReplyPort<Result<ActorRef<SessionMsg<M>>, CreateError>>,
    ),
    /// The actor of a session running here, or `None`.
    Lookup(String, RpcReplyPort<Found<M>>),
    /// Run this session, rebuilt from the store by the caller (a snapshot left by a previous
    /// process or node) — unless it is already running here, then that actor. Loading and
    /// replaying happen on the caller's task, so a herd of resumes after a restart does not
    /// queue store round trips behind each other in this mailbox.
    Adopt(Box<Revived<M>>, RpcReplyPort<Found<M>>),
    /// Hand up to this many sessions over (stop each with a fresh snapshot, release it, close
    /// its clients with "resume"); answers how many were still running before.
    HandOver(usize, RpcReplyPort<usize>),
    /// How many sessions run here.
    Count(RpcReplyPort<usize>),
    /// A session's latest summary (sent by discoverable sessions on their ticks).
    Report(String, M::Summary),
    /// The latest summaries of every running discoverable session.
    List(RpcReplyPort<Vec<M::Summary>>),
    /// Sent by a session as it retires (closed room, ended stream), before it deletes its
    /// stored state and stops: lookups and adoptions of this id answer [`CreateError::Ended`]
    /// for [`ENDED_MEMORY`], so a join racing the end is told `room_closed`, never
    /// `unavailable`, and the session is never revived from the store it is being deleted from.
    Ended(String),
}

/// How long the supervisor remembers a session that ended here. Its stored state is deleted
/// within moments of the end, after which a lookup finds nothing anywhere (`unknown_room`).
pub const ENDED_MEMORY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    Capacity(usize),
    Store(String),
    /// The session ended (or is ending) on this node.
    Ended,
}

pub struct Supervisor<M>(std::marker::PhantomData<fn() -> M>);

impl<M> Default for Supervisor<M> {
    fn default() -> Self {
        Supervisor(std::marker::PhantomData)
    }
}

pub struct SupervisorArgs<M: Machine> {
    pub store: SessionStore,
    pub config: EngineConfig,
    pub machine: M::Config,
    /// Where retiring sessions leave their durable record (streams).
    pub records: Option<BlobStore>,
    /// Whether sessions report summaries for discovery.
    pub discoverable: bool,
    /// Sessions this node may hold at once.
    pub max_sessions: usize,
}

pub struct SupervisorState<M: Machine> {
    args: SupervisorArgs<M>,
    sessions: HashMap<String, ActorRef<SessionMsg<M>>>,
    /// The epoch (fencing token in a cluster) each running session was started with.
    epochs: HashMap<String, u64>,
    by_actor: HashMap<ActorId, String>,
    restarts: HashMap<String, Vec<Instant>>,
    summaries: HashMap<String, M::Summary>,
    /// Sessions that ended here, and when (see [`SupervisorMsg::Ended`]).
    ended: HashMap<String, Instant>,
}

impl<M: Machine> SupervisorState<M> {
    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        revived: Revived<M>,
    ) -> Result<ActorRef<SessionMsg<M>>, ActorProcessingErr> {
        let Revived {
            machine,
            applied,
            not_before,
            epoch,
            journal_len,
        } = revived;
        let id = machine.key().to_string();
        if self.args.discoverable {
            self.summaries.insert(id.clone(), machine.summary());
        }
        let args = SessionArgs {
            machine,
            applied,
            not_before,
            epoch,
            journal_len,
            store: self.args.store.clone(),
            config: self.args.config.clone(),
            records: self.args.records.clone(),
            supervisor: myself.clone(),
            report: self.args.discoverable,
        };
        let (actor, _handle) =
            Actor::spawn_linked(None, SessionActor::<M>::default(), args, myself.get_cell())
                .await?;
        self.by_actor.insert(actor.get_id(), id.clone());
        self.epochs.insert(id.clone(), epoch);
        self.sessions.insert(id, actor.clone());
        gauge!("wagu_sessions", "kind" => M::KIND).set(self.sessions.len() as f64);
        Ok(actor)
    }

    /// Rebuilds a session from the store, with every participant away (their sockets are gone).
    async fn revive(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        id: &str,
    ) -> Result<Option<ActorRef<SessionMsg<M>>>, ActorProcessingErr> {
        let revived = match self.args.store.load_to_revive::<M>(id, unix_now()).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(PersistError::OwnedElsewhere(node)) => {
                tracing::info!(kind = M::KIND, id, %node, "not restarted here: another node owns it now");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Some(self.spawn(myself, revived).await?))
    }

    fn forget(&mut self, id: &str) {
        self.sessions.remove(id);
        self.epochs.remove(id);
        self.summaries.remove(id);
    }

    /// Whether session `id` ended here recently; forgets older ends on the way.
    fn has_ended(&mut self, id: &str) -> bool {
        self.ended.retain(|_, at| at.elapsed() < ENDED_MEMORY);
        self.ended.contains_key(id)
    }
}

impl<M: Machine> Actor for Supervisor<M> {
    type Msg = SupervisorMsg<M>;
    type State = SupervisorState<M>;
    type Arguments = SupervisorArgs<M>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: SupervisorArgs<M>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState {
            args,
            sessions: HashMap::new(),
            epochs: HashMap::new(),
            by_actor: HashMap::new(),
            restarts: HashMap::new(),
            summaries: HashMap::new(),
            ended: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg<M>,
        state: &mut SupervisorState<M>,
    ) -> Result<(), ActorProcessingErr> {
        let max = state.args.max_sessions;
        match msg {
            SupervisorMsg::Create(spec, reply) => {
                if state.sessions.len() >= max {
                    let _ = reply.send(Err(CreateError::Capacity(max)));
                    return Ok(());
                }
                let machine = M::create(*spec, &state.args.machine, unix_now());
                let result = match state.args.store.claim_new::<M>(machine.key()).await {
                    Ok(epoch) => state
                        .spawn(
                            &myself,
                            Revived {
                                machine,
                                applied: 0,
                                not_before: 0,
                                epoch,
                                journal_len: 0,
                            },
                        )
                        .await
                        .map_err(|e| CreateError::Store(e.to_string())),
                    Err(e) => Err(CreateError::Store(e.to_string())),
                };
                if result.is_ok() {
                    counter!("wagu_sessions_created_total", "kind" => M::KIND).increment(1);
                }
                let _ = reply.send(result);
            }
            SupervisorMsg::Lookup(id, reply) => {
                let found = if state.has_ended(&id) {
                    Err(CreateError::Ended)
                } else {
                    Ok(state.sessions.get(&id).cloned())
                };
                let _ = reply.send(found);
            }
            SupervisorMsg::Ended(id) => {
                // Still counted (and forgotten) when its actor stops; gone from discovery now.
                state.has_ended(&id);
                state.summaries.remove(&id);
                state.ended.insert(id, Instant::now());
            }
            SupervisorMsg::Adopt(boxed, reply) => {
                let revived = *boxed;
                let id = revived.machine.key().to_string();
                let crashing = state.restarts.get(&id).is_some_and(|r| {
                    r.iter()
                        .filter(|t| t.elapsed() < Duration::from_secs(60))
                        .count() as u32
                        > state.args.config.max_restarts_per_minute
                });
                let ended = state.has_ended(&id);
                // In a cluster, a copy claimed after the one running here (a revive that raced
                // a restart) holds the newer token: the running one is fenced off already.
                let superseded = state.args.store.fence().is_some()
                    && state.epochs.get(&id).is_some_and(|e| *e < revived.epoch);
                if superseded && let Some(old) = state.sessions.get(&id).cloned() {
                    state.by_actor.remove(&old.get_id());
                    state.forget(&id);
                    old.stop(Some("superseded by a newer claim".into()));
                }
                let found = match state.sessions.get(&id) {
                    None if ended => Err(CreateError::Ended),
                    Some(a) => Ok(Some(a.clone())),
                    // Reviving would take this node over its limit.
                    None if state.sessions.len() >= max => Err(CreateError::Capacity(max)),
                    // Given up after repeated crashes: not revived again within the minute.
                    None if crashing => Err(CreateError::Store(
                        "this session keeps crashing; try again later".into(),
                    )),
                    None => match state.spawn(&myself, revived).await {
                        Ok(a) => Ok(Some(a)),
                        Err(e) => Err(CreateError::Store(e.to_string())),
                    },
                };
                let _ = reply.send(found);
            }
            SupervisorMsg::HandOver(batch, reply) => {
                let running = state.sessions.len();
                for actor in state.sessions.values().take(batch) {
                    let _ = actor.cast(SessionMsg::HandOver);
                }
                let _ = reply.send(running);
            }
            SupervisorMsg::Count(reply) => {
                let _ = reply.send(state.sessions.len());
            }
            SupervisorMsg::Report(id, summary) => {
                if state.sessions.contains_key(&id) {
                    state.summaries.insert(id, summary);
                }
            }
            SupervisorMsg::List(reply) => {
                let _ = reply.send(state.summaries.values().cloned().collect());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut SupervisorState<M>,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(id) = state.by_actor.remove(&cell.get_id()) {
                    state.forget(&id);
                    state.restarts.remove(&id);
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(id) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                state.forget(&id);
                counter!("wagu_room_restarts_total", "kind" => M::KIND).increment(1);
                let recent = state.restarts.entry(id.clone()).or_default();
                recent.retain(|t| t.elapsed() < Duration::from_secs(60));
                recent.push(Instant::now());
                if recent.len() as u32 > state.args.config.max_restarts_per_minute {
                    // Kept in `restarts`, so `Adopt` refuses to revive it for a minute.
                    tracing::error!(kind = M::KIND, id, error = %err, "session keeps crashing; giving it up");
                } else {
                    tracing::warn!(kind = M::KIND, id, error = %err, "session crashed; restarting from its snapshot");
                    match state.revive(&myself, &id).await {
                        Ok(Some(_)) => {}
                        Ok(None) => tracing::warn!(id, "no snapshot to restart from"),
                        Err(e) => tracing::error!(id, error = %e, "restart failed"),
                    }
                }
            }
            _ => {}
        }
        gauge!("wagu_sessions", "kind" => M::KIND).set(state.sessions.len() as f64);
        Ok(())
    }
}
