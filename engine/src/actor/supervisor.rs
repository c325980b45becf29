//! `RoomSupervisor`: the parent of every room actor on this node.
//!
//! It spawns a room when one is created, finds (or revives from the store) the actor of a room
//! when a connection asks for it, restarts a room that panicked from its snapshot plus journal,
//! and forgets a room whose actor stopped normally (retired). A room that keeps crashing (more
//! than `max_restarts_per_minute`) is given up rather than restarted forever.
//!
//! Note ractor's default `handle_supervisor_evt` stops the supervisor when a child dies; this
//! one overrides it, which is the point of having it.

use super::EngineConfig;
use super::room::{RoomActor, RoomArgs, RoomMsg};
use super::unix_now;
use crate::persist::RoomStore;
use crate::room::{Room, RoomSpec};
use metrics::{counter, gauge};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use wagu_proto::ids::RoomId;

pub enum SupervisorMsg {
    /// Spawn a new room.
    Create(
        Box<RoomSpec>,
        RpcReplyPort<Result<ActorRef<RoomMsg>, CreateError>>,
    ),
    /// The actor of a room: running here, or revived from the store (a snapshot left by a
    /// previous process or node), or `None` when the room is unknown.
    Lookup(
        RoomId,
        RpcReplyPort<Result<Option<ActorRef<RoomMsg>>, CreateError>>,
    ),
    /// How many rooms run here.
    Count(RpcReplyPort<usize>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateError {
    Capacity(usize),
    Store(String),
}

pub struct RoomSupervisor;

pub struct SupervisorArgs {
    pub store: RoomStore,
    pub config: EngineConfig,
}

pub struct SupervisorState {
    store: RoomStore,
    config: EngineConfig,
    rooms: HashMap<RoomId, ActorRef<RoomMsg>>,
    by_actor: HashMap<ActorId, RoomId>,
    restarts: HashMap<RoomId, Vec<Instant>>,
}

impl SupervisorState {
    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        room: Room,
        applied: u64,
    ) -> Result<ActorRef<RoomMsg>, ActorProcessingErr> {
        let id = room.id().clone();
        let args = RoomArgs {
            room,
            applied,
            store: self.store.clone(),
            config: self.config.clone(),
        };
        let (actor, _handle) =
            Actor::spawn_linked(None, RoomActor, args, myself.get_cell()).await?;
        self.by_actor.insert(actor.get_id(), id.clone());
        self.rooms.insert(id, actor.clone());
        gauge!("wagu_rooms").set(self.rooms.len() as f64);
        Ok(actor)
    }

    /// Rebuilds a room from the store, with every participant away (their sockets are gone).
    async fn revive(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &RoomId,
    ) -> Result<Option<ActorRef<RoomMsg>>, ActorProcessingErr> {
        let Some((mut room, applied)) = self.store.load(id).await? else {
            return Ok(None);
        };
        if room.is_closed() {
            return Ok(None);
        }
        let _ = room.detach_all(unix_now());
        Ok(Some(self.spawn(myself, room, applied).await?))
    }
}

impl Actor for RoomSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState {
            store: args.store,
            config: args.config,
            rooms: HashMap::new(),
            by_actor: HashMap::new(),
            restarts: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Create(spec, reply) => {
                if state.rooms.len() >= state.config.max_rooms {
                    let _ = reply.send(Err(CreateError::Capacity(state.config.max_rooms)));
                    return Ok(());
                }
                let room = Room::new(*spec, state.config.room.clone(), unix_now());
                let result = state
                    .spawn(&myself, room, 0)
                    .await
                    .map_err(|e| CreateError::Store(e.to_string()));
                if result.is_ok() {
                    counter!("wagu_rooms_created_total").increment(1);
                }
                let _ = reply.send(result);
            }
            SupervisorMsg::Lookup(id, reply) => {
                let found = match state.rooms.get(&id) {
                    Some(a) => Ok(Some(a.clone())),
                    // Reviving would take this node over its room limit.
                    None if state.rooms.len() >= state.config.max_rooms => {
                        Err(CreateError::Capacity(state.config.max_rooms))
                    }
                    None => match state.revive(&myself, &id).await {
                        Ok(a) => Ok(a),
                        Err(e) => Err(CreateError::Store(e.to_string())),
                    },
                };
                let _ = reply.send(found);
            }
            SupervisorMsg::Count(reply) => {
                let _ = reply.send(state.rooms.len());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(id) = state.by_actor.remove(&cell.get_id()) {
                    state.rooms.remove(&id);
                    state.restarts.remove(&id);
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(id) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                state.rooms.remove(&id);
                counter!("wagu_room_restarts_total").increment(1);
                let recent = state.restarts.entry(id.clone()).or_default();
                recent.retain(|t| t.elapsed() < Duration::from_secs(60));
                recent.push(Instant::now());
                if recent.len() as u32 > state.config.max_restarts_per_minute {
                    tracing::error!(room = %id, error = %err, "room keeps crashing; giving it up");
                    state.restarts.remove(&id);
                } else {
                    tracing::warn!(room = %id, error = %err, "room crashed; restarting from its snapshot");
                    match state.revive(&myself, &id).await {
                        Ok(Some(_)) => {}
                        Ok(None) => tracing::warn!(room = %id, "no snapshot to restart from"),
                        Err(e) => tracing::error!(room = %id, error = %e, "restart failed"),
                    }
                }
            }
            _ => {}
        }
        gauge!("wagu_rooms").set(state.rooms.len() as f64);
        Ok(())
    }
}
