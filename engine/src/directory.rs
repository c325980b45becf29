//! The one door from the gateway to rooms.
//!
//! The gateway creates rooms, joins them and sends commands only through [`Rooms`] and the
//! [`RoomSession`] a join returns. A session talks to its room through a [`RoomLink`], which
//! today is a local actor reference; the cluster work adds a remote variant behind the same
//! methods, so a gateway never needs to know where a room lives.

use crate::actor::EngineConfig;
use crate::actor::outbound::Outbound;
use crate::actor::room::{JoinArgs, Joined, RoomMsg};
use crate::actor::supervisor::{CreateError, RoomSupervisor, SupervisorArgs, SupervisorMsg};
use crate::error::EngineError;
use crate::persist::RoomStore;
use crate::room::{ConnId, RoomSpec, RoomSummary};
use base64::Engine as _;
use ractor::{Actor, ActorRef, call_t};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use wagu_proto::ids::*;
use wagu_proto::model::{LatLng, UnixMillis, VoteMode};
use wagu_proto::{ClientMessage, ResumeRequest};

/// How long the gateway waits on a room before answering `unavailable`.
const CALL_TIMEOUT_MS: u64 = 5_000;

#[derive(Clone)]
pub struct Rooms {
    supervisor: ActorRef<SupervisorMsg>,
    store: RoomStore,
    config: EngineConfig,
    next_conn: Arc<AtomicU64>,
}

#[derive(Debug, Clone, Default)]
pub struct CreateRoom {
    pub title: Option<String>,
    pub center: Option<LatLng>,
    pub vote_mode: Option<VoteMode>,
}

#[derive(Debug, Clone)]
pub struct CreatedRoom {
    pub room_id: RoomId,
    pub share: ShareToken,
    pub host_key: HostKey,
    pub share_expires_at: UnixMillis,
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub id: RequestId,
    pub share: ShareToken,
    pub name: String,
    pub host_key: Option<HostKey>,
    pub resume: Option<ResumeRequest>,
}

/// Where a room's actor is. Only `Local` exists until rooms can live on other nodes.
#[derive(Clone, Debug)]
pub enum RoomLink {
    Local(ActorRef<RoomMsg>),
}

/// A connection's place in a room.
#[derive(Debug)]
pub struct RoomSession {
    pub room_id: RoomId,
    pub participant: ParticipantId,
    pub conn: ConnId,
    pub resumed: bool,
    link: RoomLink,
}

impl RoomSession {
    /// Hands a validated command to the room; its `ack`/`error` arrives on the outbound queue.
    pub fn send(&self, msg: ClientMessage, received: Instant) -> Result<(), EngineError> {
        match &self.link {
            RoomLink::Local(a) => a.cast(RoomMsg::Command {
                conn: self.conn,
                participant: self.participant,
                msg,
                received,
            })?,
        }
        Ok(())
    }

    /// The socket is gone: the participant becomes away (resumable) unless it left already.
    pub fn disconnect(&self) {
        match &self.link {
            RoomLink::Local(a) => {
                let _ = a.cast(RoomMsg::Disconnect {
                    conn: self.conn,
                    participant: self.participant,
                });
            }
        }
    }

    /// Test hook: makes the room's actor panic.
    #[doc(hidden)]
    pub fn crash_room(&self) {
        match &self.link {
            RoomLink::Local(a) => {
                let _ = a.cast(RoomMsg::Crash);
            }
        }
    }
}

/// `n` random bytes as URL-safe base64 (no padding).
pub fn random_token(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random_room_id() -> RoomId {
    // 80 bits in lowercase base32-ish hex: short enough for URLs, never guessed by accident.
    let v: u128 = rand::random::<u128>() >> 48;
    RoomId(format!("r{v:020x}"))
}

impl Rooms {
    /// Starts the room supervisor.
    pub async fn start(store: RoomStore, config: EngineConfig) -> Result<Self, EngineError> {
        let (supervisor, _) = Actor::spawn(
            None,
            RoomSupervisor,
            SupervisorArgs {
                store: store.clone(),
                config: config.clone(),
            },
        )
        .await
        .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(Rooms {
            supervisor,
            store,
            config,
            next_conn: Arc::new(AtomicU64::new(1)),
        })
    }

    pub fn store(&self) -> &RoomStore {
        &self.store
    }
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Creates a room and returns its share link's token and the host key.
    pub async fn create(&self, req: CreateRoom) -> Result<CreatedRoom, EngineError> {
        let share = ShareToken(random_token(24));
        let host_key = HostKey(random_token(24));
        let share_expires_at = crate::actor::unix_now() + self.config.share_ttl.as_millis() as u64;
        let spec = RoomSpec {
            id: random_room_id(),
            title: req
                .title
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "Where shall we eat?".into()),
            center: req.center,
            vote_mode: req.vote_mode.unwrap_or(VoteMode::Single),
            share: share.clone(),
            host_key: host_key.clone(),
            share_expires_at,
        };
        let room_id = spec.id.clone();
        let created = call_t!(
            self.supervisor,
            SupervisorMsg::Create,
            CALL_TIMEOUT_MS,
            Box::new(spec)
        )?;
        match created {
            Ok(_) => Ok(CreatedRoom {
                room_id,
                share,
                host_key,
                share_expires_at,
            }),
            Err(CreateError::Capacity(n)) => Err(EngineError::Capacity(n)),
            Err(CreateError::Store(e)) => Err(EngineError::Unavailable(e)),
        }
    }

    async fn locate(&self, share: &ShareToken) -> Result<ActorRef<RoomMsg>, EngineError> {
        let id = self
            .store
            .resolve_share(share)
            .await?
            .ok_or(EngineError::UnknownRoom)?;
        match call_t!(self.supervisor, SupervisorMsg::Lookup, CALL_TIMEOUT_MS, id)? {
            Ok(Some(actor)) => Ok(actor),
            Ok(None) => Err(EngineError::UnknownRoom),
            Err(CreateError::Capacity(n)) => Err(EngineError::Capacity(n)),
            Err(CreateError::Store(e)) => Err(EngineError::Unavailable(e)),
        }
    }

    /// Joins (or resumes) through a share link. On success the room has already queued the
    /// `welcome` (or `resumed` + replay) and the `ack` on `outbound`.
    pub async fn join(
        &self,
        req: JoinRequest,
        outbound: Outbound,
    ) -> Result<RoomSession, EngineError> {
        let actor = self.locate(&req.share).await?;
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let args = JoinArgs {
            conn,
            id: req.id,
            name: req.name,
            host_key: req.host_key,
            resume: req.resume,
            resume_token: ResumeToken(random_token(24)),
            outbound,
        };
        let result = call_t!(actor, RoomMsg::Join, CALL_TIMEOUT_MS, Box::new(args))?;
        let Joined {
            room_id,
            participant,
            resumed,
        } = result.map_err(|(code, message)| EngineError::Refused { code, message })?;
        Ok(RoomSession {
            room_id,
            participant,
            conn,
            resumed,
            link: RoomLink::Local(actor),
        })
    }

    /// A public summary of the room behind a share link (for link previews).
    pub async fn summary(&self, share: &ShareToken) -> Result<RoomSummary, EngineError> {
        let actor = self.locate(share).await?;
        Ok(call_t!(actor, RoomMsg::Summary, CALL_TIMEOUT_MS)?)
    }

    /// Rooms running on this node.
    pub async fn count(&self) -> Result<usize, EngineError> {
        Ok(call_t!(
            self.supervisor,
            SupervisorMsg::Count,
            CALL_TIMEOUT_MS
        )?)
    }

    /// Stops every room (each leaves a fresh snapshot in the store), then the supervisor.
    pub async fn shutdown(&self) {
        let wait = Some(std::time::Duration::from_secs(10));
        self.supervisor
            .stop_children_and_wait(Some("shutdown".into()), wait)
            .await;
        let _ = self
            .supervisor
            .stop_and_wait(Some("shutdown".into()), wait)
            .await;
    }
}
