//! The one door from the gateway to sessions: `Sessions<M>`, with [`Rooms`] and [`Streams`]
//! on top.
//!
//! The gateway creates rooms and streams, joins them and sends commands only through these
//! and the [`SessionHandle`] a join returns. A handle talks to its session through a
//! [`SessionLink`], which today is a local actor reference; the cluster work adds a remote
//! variant behind the same methods, so a gateway never needs to know where a session lives.

use crate::actor::EngineConfig;
use crate::actor::outbound::Outbound;
use crate::actor::session_actor::{JoinArgs, Joined, SessionMsg};
use crate::actor::supervisor::{CreateError, Supervisor, SupervisorArgs, SupervisorMsg};
use crate::error::EngineError;
use crate::machine::{ConnId, Machine};
use crate::persist::{PersistError, SessionStore};
use crate::room::{Room, RoomSpec, RoomSummary};
use crate::stream::{Stream, StreamSpec, StreamSummary};
use base64::Engine as _;
use ractor::{Actor, ActorRef, call_t};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use wagu_proto::ids::*;
use wagu_proto::ids::{PlaceId, StreamId};
use wagu_proto::model::{LatLng, UnixMillis, VoteMode};
use wagu_proto::{ClientMessage, Identity, ResumeRequest};
use wagu_storage::BlobStore;
use wagu_storage::cluster::NodeId;

/// Connection ids of this process, shared by every kind (a node's connections are told apart
/// by id alone on the bus).
static NEXT_CONN: std::sync::LazyLock<Arc<AtomicU64>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicU64::new(1)));

/// How long the gateway waits on a room before answering `unavailable`.
const CALL_TIMEOUT_MS: u64 = 5_000;

/// The door to every session of one kind on this node.
pub struct Sessions<M: Machine> {
    supervisor: ActorRef<SupervisorMsg<M>>,
    store: SessionStore,
    config: EngineConfig,
    next_conn: Arc<AtomicU64>,
    /// Sessions on other nodes (a cluster), when this node has a bus.
    remote: Option<Arc<crate::remote::Remote>>,
    /// One revive at a time per session id on this node: a herd of resumes after a failover
    /// rebuilds (and, in a cluster, claims) a session once, not once per client.
    reviving: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl<M: Machine> Clone for Sessions<M> {
    fn clone(&self) -> Self {
        Sessions {
            supervisor: self.supervisor.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
            next_conn: self.next_conn.clone(),
            remote: self.remote.clone(),
            reviving: self.reviving.clone(),
        }
    }
}

/// Map rooms.
pub type Rooms = Sessions<Room>;

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
    /// The verified account of the joiner (the gateway checked its token), if signed in.
    pub account: Option<wagu_proto::records::AccountId>,
}

/// Where a session's actor is. Only `Local` exists until sessions can live on other nodes.
pub enum Link<M: Machine> {
    Local(ActorRef<SessionMsg<M>>),
}

/// Room commands and stream commands travel the same way, to a local actor or to another
/// node; this hides which kind a connection is in, and where its session runs, from the
/// gateway's connection loop.
pub(crate) trait SessionLink: Send + Sync {
    fn command(
        &self,
        conn: ConnId,
        participant: ParticipantId,
        msg: ClientMessage,
        received: Instant,
    ) -> Result<(), EngineError>;
    fn disconnect(&self, conn: ConnId, participant: ParticipantId);
    fn crash(&self);
}

impl<M: Machine> SessionLink for Link<M> {
    fn command(
        &self,
        conn: ConnId,
        participant: ParticipantId,
        msg: ClientMessage,
        received: Instant,
    ) -> Result<(), EngineError> {
        match self {
            Link::Local(a) => a.cast(SessionMsg::Command {
                conn,
                participant,
                msg,
                received,
            })?,
        }
        Ok(())
    }
    fn disconnect(&self, conn: ConnId, participant: ParticipantId) {
        match self {
            Link::Local(a) => {
                let _ = a.cast(SessionMsg::Disconnect { conn, participant });
            }
        }
    }
    fn crash(&self) {
        match self {
            Link::Local(a) => {
                let _ = a.cast(SessionMsg::Crash);
            }
        }
    }
}

/// A connection's place in a room or stream.
pub struct SessionHandle {
    /// The room's or stream's id.
    pub session_id: String,
    pub participant: ParticipantId,
    pub conn: ConnId,
    pub resumed: bool,
    link: Box<dyn SessionLink>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("session_id", &self.session_id)
            .field("participant", &self.participant)
            .field("conn", &self.conn)
            .finish()
    }
}

impl SessionHandle {
    /// Hands a validated command to the room; its `ack`/`error` arrives on the outbound queue.
    pub fn send(&self, msg: ClientMessage, received: Instant) -> Result<(), EngineError> {
        self.link
            .command(self.conn, self.participant, msg, received)
    }

    /// The socket is gone: the participant becomes away (resumable) unless it left already.
    pub fn disconnect(&self) {
        self.link.disconnect(self.conn, self.participant);
    }

    /// Test hook: makes the room's actor panic.
    #[doc(hidden)]
    pub fn crash_room(&self) {
        self.link.crash();
    }
}

/// `n` random bytes as URL-safe base64 (no padding).
pub fn random_token(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A public session id: `prefix` and 80 random bits in hex — short enough for URLs, never
/// guessed by accident (the share token and keys are the secrets, not this).
fn random_id(prefix: char) -> String {
    let v: u128 = rand::random::<u128>() >> 48;
    format!("{prefix}{v:020x}")
}

impl<M: Machine> Sessions<M> {
    /// Starts the supervisor of this kind.
    pub async fn start_kind(
        store: SessionStore,
        config: EngineConfig,
        machine: M::Config,
        max_sessions: usize,
        records: Option<BlobStore>,
        discoverable: bool,
    ) -> Result<Self, EngineError> {
        let (supervisor, _) = Actor::spawn(
            None,
            Supervisor::<M>::default(),
            SupervisorArgs {
                store: store.clone(),
                config: config.clone(),
                machine,
                records,
                discoverable,
                max_sessions,
            },
        )
        .await
        .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        if let Some(fence) = store.fence() {
            // The moment this node's lease may have lapsed, it stops acting as the owner of
            // anything: every session is handed over (its writes would be fenced off anyway
            // once another node claims it).
            let mut valid = fence.lease().validity();
            let supervisor = supervisor.clone();
            tokio::spawn(async move {
                loop {
                    if valid.changed().await.is_err() {
                        return;
                    }
                    if !*valid.borrow_and_update() {
                        tracing::error!(
                            kind = M::KIND,
                            "node lease may have lapsed: handing every session over"
                        );
                        let _ = call_t!(
                            supervisor,
                            SupervisorMsg::HandOver,
                            CALL_TIMEOUT_MS,
                            usize::MAX
                        );
                    }
                }
            });
        }
        Ok(Sessions {
            supervisor,
            store,
            config,
            next_conn: NEXT_CONN.clone(),
            remote: None,
            reviving: Default::default(),
        })
    }

    pub fn store(&self) -> &SessionStore {
        &self.store
    }
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Makes this node reach sessions on other nodes through `remote`, and serve its own to
    /// them.
    pub async fn with_remote(
        mut self,
        remote: Arc<crate::remote::Remote>,
    ) -> Result<Self, EngineError> {
        self.remote = Some(remote.clone());
        crate::remote::owner::serve(remote, self.clone())
            .await
            .map_err(|e| EngineError::Unavailable(format!("bus: {e}")))?;
        Ok(self)
    }

    /// Spawns a session from its spec: on the least-loaded open node of a cluster (placement),
    /// else here.
    pub async fn spawn(&self, spec: M::Spec) -> Result<(), EngineError> {
        if let Some(remote) = &self.remote
            && let Some(node) = remote.place().await
            && node != *remote.node()
        {
            let rpc = crate::remote::wire::Rpc::Create { spec };
            match self.request(remote, &node, &rpc).await {
                Ok(crate::remote::wire::Reply::Created) => return Ok(()),
                Ok(other) => return Err(reply_error(other)),
                Err(e) => {
                    // Its lease is live but it does not answer (stopping, cut off from the
                    // bus): keep the session here rather than fail the create.
                    tracing::warn!(%node, error = %e, "placement: the chosen node did not answer; creating here");
                    let crate::remote::wire::Rpc::Create { spec } = rpc else {
                        unreachable!()
                    };
                    return self.spawn_here(spec).await;
                }
            }
        }
        self.spawn_here(spec).await
    }

    /// Sends `rpc` to `node` and waits for its answer (fails at once when nobody serves it).
    async fn request(
        &self,
        remote: &crate::remote::Remote,
        node: &NodeId,
        rpc: &crate::remote::wire::Rpc<M::Spec>,
    ) -> Result<crate::remote::wire::Reply<M::Summary>, EngineError> {
        let payload = serde_json::to_vec(rpc)
            .map_err(|e| EngineError::Unavailable(format!("request did not encode: {e}")))?;
        let subject = crate::remote::rpc_subject(node.as_str(), M::KIND);
        let ask = remote.bus().request(
            &subject,
            bytes::Bytes::from(payload),
            crate::remote::REQUEST_TIMEOUT,
        );
        // A node that died a moment ago may still have its subscription on the bus (NATS has
        // not seen its socket close yet): the request then waits for an answer that never
        // comes. Its lease tells sooner: give up when it lapses.
        let lapsed = async {
            loop {
                tokio::time::sleep(remote.check_every()).await;
                if remote
                    .live()
                    .await
                    .is_some_and(|live| !live.iter().any(|n| n == node.as_str()))
                {
                    return;
                }
            }
        };
        let answer = tokio::select! {
            r = ask => r.map_err(|e| EngineError::Unavailable(format!("node {node}: {e}")))?,
            () = lapsed => {
                return Err(EngineError::Unavailable(format!("node {node}'s lease lapsed")));
            }
        };
        serde_json::from_slice(&answer)
            .map_err(|e| EngineError::Unavailable(format!("node {node} answered badly: {e}")))
    }

    /// Spawns a session from its spec on this node.
    pub async fn spawn_here(&self, spec: M::Spec) -> Result<(), EngineError> {
        let created = call_t!(
            self.supervisor,
            SupervisorMsg::Create,
            CALL_TIMEOUT_MS,
            Box::new(spec)
        )?;
        created.map(|_| ()).map_err(EngineError::from)
    }

    /// The actor of session `id`, reviving it from the store if needed.
    pub(crate) async fn locate_id(
        &self,
        id: String,
        revive: bool,
    ) -> Result<ActorRef<SessionMsg<M>>, EngineError> {
        let found = call_t!(
            self.supervisor,
            SupervisorMsg::Lookup,
            CALL_TIMEOUT_MS,
            id.clone()
        )?;
        let found = match found {
            Ok(None) if revive => self.revive(id).await?,
            other => other,
        };
        match found {
            Ok(Some(actor)) => Ok(actor),
            Ok(None) => Err(EngineError::UnknownSession),
            Err(e) => Err(e.into()),
        }
    }

    /// Rebuilds session `id` from the store on this task (claiming it first in a cluster) and
    /// hands it to the supervisor, unless a concurrent revive here got there first.
    async fn revive(
        &self,
        id: String,
    ) -> Result<Result<Option<ActorRef<SessionMsg<M>>>, CreateError>, EngineError> {
        let lock = {
            let mut map = self.reviving.lock().expect("revive map");
            map.entry(id.clone()).or_default().clone()
        };
        let result = async {
            let _guard = lock.lock().await;
            // Revived by the one we waited for?
            let found = call_t!(
                self.supervisor,
                SupervisorMsg::Lookup,
                CALL_TIMEOUT_MS,
                id.clone()
            )?;
            if !matches!(found, Ok(None)) {
                return Ok(found);
            }
            let Some(revived) = self
                .store
                .load_to_revive::<M>(&id, crate::actor::unix_now())
                .await?
            else {
                return Err(EngineError::UnknownSession);
            };
            Ok(call_t!(
                self.supervisor,
                SupervisorMsg::Adopt,
                CALL_TIMEOUT_MS,
                Box::new(revived)
            )?)
        }
        .await;
        let mut map = self.reviving.lock().expect("revive map");
        if Arc::strong_count(&lock) <= 2 {
            map.remove(&id);
        }
        result
    }

    /// Joins (or resumes) session `id`, wherever it runs: here, or (in a cluster) on the node
    /// that owns it, or — when nobody owns it and this node takes no sessions (draining) — on
    /// the node placement picks. On success the session has already queued its welcome (or
    /// `resumed` + replay) and the `ack` on `outbound`.
    pub async fn join_id(&self, id: String, req: JoinArgs) -> Result<SessionHandle, EngineError> {
        let Some(remote) = self.remote.clone() else {
            return self.join_here(id, req).await;
        };
        let mut target = None;
        for _ in 0..3 {
            let node = match target.take() {
                None => match self.locate_id(id.clone(), true).await {
                    Ok(actor) => return self.join_actor(id, actor, req).await,
                    Err(EngineError::Store(PersistError::OwnedElsewhere(n))) => n,
                    Err(EngineError::Store(PersistError::NotOwning(_))) => {
                        match remote.place().await {
                            Some(n) if n != *remote.node() => n,
                            _ => {
                                return Err(EngineError::Unavailable(
                                    "no node takes this session now".into(),
                                ));
                            }
                        }
                    }
                    Err(e) => return Err(e),
                },
                Some(n) => n,
            };
            match self.join_remote(&remote, &node, &id, &req).await? {
                Ok(handle) => return Ok(handle),
                // It moved meanwhile: ask where it went (or here, if it is ours now).
                Err(Some(next)) if next != *remote.node() => target = Some(next),
                Err(_) => {}
            }
        }
        Err(EngineError::Unavailable(
            "the session kept moving; retry".into(),
        ))
    }

    /// Joins session `id` on `owner` for this node's socket `req.conn`. `Ok(Err(moved))`: the
    /// owner says the session runs on `moved` now (or nowhere, `None`).
    async fn join_remote(
        &self,
        remote: &Arc<crate::remote::Remote>,
        owner: &NodeId,
        id: &str,
        req: &JoinArgs,
    ) -> Result<Result<SessionHandle, Option<NodeId>>, EngineError> {
        use crate::remote::wire::{JoinWire, Reply, Rpc};
        // Registered first: the welcome may come back before the reply does.
        remote.add_sink(req.conn.0, owner, req.outbound.clone());
        let rpc = Rpc::<M::Spec>::Join(JoinWire {
            session: id.to_string(),
            gateway: remote.node().as_str().to_string(),
            conn: req.conn.0,
            client_key: req.client_key.clone(),
            id: req.id,
            name: req.name.clone(),
            host_key: req.host_key.clone(),
            resume: req.resume.clone(),
            resume_token: req.resume_token.clone(),
        });
        let reply = self.request(remote, owner, &rpc).await;
        match reply {
            Ok(Reply::Joined {
                session_id,
                participant,
                resumed,
                owner_conn,
            }) => Ok(Ok(SessionHandle {
                session_id,
                participant,
                conn: req.conn,
                resumed,
                link: Box::new(crate::remote::RemoteLink {
                    remote: remote.clone(),
                    owner: owner.clone(),
                    kind: M::KIND,
                    session: id.to_string(),
                    owner_conn,
                }),
            })),
            other => {
                remote.remove_sink(req.conn.0);
                match other {
                    Ok(Reply::Moved { node }) => Ok(Err(NodeId::new(node).ok())),
                    Ok(other) => Err(reply_error(other)),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Joins (or resumes) session `id` on this node only (never forwarded): what a node does
    /// for a join another node forwarded to it.
    pub async fn join_here(&self, id: String, req: JoinArgs) -> Result<SessionHandle, EngineError> {
        let actor = self.locate_id(id.clone(), true).await?;
        self.join_actor(id, actor, req).await
    }

    async fn join_actor(
        &self,
        id: String,
        actor: ActorRef<SessionMsg<M>>,
        req: JoinArgs,
    ) -> Result<SessionHandle, EngineError> {
        let conn = req.conn;
        let result = match call_t!(actor, SessionMsg::Join, CALL_TIMEOUT_MS, Box::new(req)) {
            Ok(r) => r,
            Err(e) => return Err(self.why_unreachable(id, e.into()).await),
        };
        let Joined {
            session_id,
            participant,
            resumed,
        } = result.map_err(EngineError::from)?;
        Ok(SessionHandle {
            session_id,
            participant,
            conn,
            resumed,
            link: Box::new(Link::Local(actor)),
        })
    }

    /// A session found a moment ago did not take or answer a message: if it ended meanwhile
    /// (its actor drained and stopped), say so (`room_closed`) like any join of an ended
    /// session; otherwise (crashed and restarting, node stopping, too slow) keep `failure`
    /// (`unavailable`: retry).
    async fn why_unreachable(&self, id: String, failure: EngineError) -> EngineError {
        match call_t!(self.supervisor, SupervisorMsg::Lookup, CALL_TIMEOUT_MS, id) {
            Ok(Err(CreateError::Ended)) => CreateError::Ended.into(),
            _ => failure,
        }
    }

    /// A fresh connection id and resume token for a join.
    pub fn join_args(
        &self,
        id: RequestId,
        name: String,
        host_key: Option<HostKey>,
        resume: Option<ResumeRequest>,
        client_key: Option<Identity>,
        outbound: Outbound,
    ) -> JoinArgs {
        JoinArgs {
            conn: ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed)),
            client_key,
            id,
            name,
            host_key,
            resume,
            resume_token: ResumeToken(random_token(24)),
            outbound,
        }
    }

    /// The summary of session `id`, from the node that runs it.
    pub async fn summary_id(&self, id: String) -> Result<M::Summary, EngineError> {
        let here = self.summary_here(id.clone()).await;
        let (Err(EngineError::UnknownSession), Some(remote), Some(fence)) =
            (&here, &self.remote, self.store.fence())
        else {
            return here;
        };
        match fence.owner_of::<M>(&id).await {
            Ok(Some(node)) if node != *remote.node() => {
                match self
                    .request(
                        remote,
                        &node,
                        &crate::remote::wire::Rpc::Summary { session: id },
                    )
                    .await?
                {
                    crate::remote::wire::Reply::Summary { summary } => Ok(summary),
                    other => Err(reply_error(other)),
                }
            }
            _ => here,
        }
    }

    /// The summary of session `id` if it runs on this node.
    pub async fn summary_here(&self, id: String) -> Result<M::Summary, EngineError> {
        // A session that has ended, or is ending, has no summary to show: `unknown_room`, as
        // if it had never existed (joins are told `room_closed` instead).
        let gone = |e: EngineError| match e.code() {
            wagu_proto::ErrorCode::RoomClosed => EngineError::UnknownSession,
            _ => e,
        };
        // A preview never brings a stored session back to life (that is for joins).
        let actor = self.locate_id(id.clone(), false).await.map_err(gone)?;
        match call_t!(actor, SessionMsg::Summary, CALL_TIMEOUT_MS) {
            Ok(summary) => Ok(summary),
            Err(e) => Err(gone(self.why_unreachable(id, e.into()).await)),
        }
    }

    /// Latest summaries of every running session (discoverable kinds only).
    pub async fn list(&self) -> Result<Vec<M::Summary>, EngineError> {
        Ok(call_t!(
            self.supervisor,
            SupervisorMsg::List,
            CALL_TIMEOUT_MS
        )?)
    }

    /// Sessions running on this node.
    pub async fn count(&self) -> Result<usize, EngineError> {
        Ok(call_t!(
            self.supervisor,
            SupervisorMsg::Count,
            CALL_TIMEOUT_MS
        )?)
    }

    /// Hands every session running here over, `batch` at a time (each leaves a fenced
    /// snapshot, releases ownership and closes its clients with "resume"), until none is left
    /// or `within` has passed. Returns how many were still running at the end.
    pub async fn hand_over_all(&self, batch: usize, within: std::time::Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let running = match call_t!(
                self.supervisor,
                SupervisorMsg::HandOver,
                CALL_TIMEOUT_MS,
                batch.max(1)
            ) {
                Ok(n) => n,
                Err(_) => return 0,
            };
            if running == 0 || tokio::time::Instant::now() >= deadline {
                return running;
            }
            // Let this batch finish (snapshot + release) before the next one.
            let target = running.saturating_sub(batch.max(1));
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                match self.count().await {
                    Ok(n) if n > target => continue,
                    _ => break,
                }
            }
        }
    }

    /// Stops every session (each leaves a fresh snapshot in the store), then the supervisor.
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

impl Sessions<Room> {
    /// Starts the room supervisor.
    pub async fn start(store: SessionStore, config: EngineConfig) -> Result<Self, EngineError> {
        let room = config.room.clone();
        let max = config.max_rooms;
        Self::start_kind(store, config, room, max, None, false).await
    }

    /// Creates a room and returns its share link's token and the host key.
    pub async fn create(&self, req: CreateRoom) -> Result<CreatedRoom, EngineError> {
        let share = ShareToken(random_token(24));
        let host_key = HostKey(random_token(24));
        let share_expires_at = crate::actor::unix_now() + self.config.share_ttl.as_millis() as u64;
        let spec = RoomSpec {
            id: RoomId(random_id('r')),
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
        self.spawn(spec).await?;
        Ok(CreatedRoom {
            room_id,
            share,
            host_key,
            share_expires_at,
        })
    }

    async fn room_id(&self, share: &ShareToken) -> Result<String, EngineError> {
        self.store
            .resolve_alias(&format!("share:{}", share.0))
            .await?
            .ok_or(EngineError::UnknownSession)
    }

    /// Joins (or resumes) through a share link. On success the room has already queued the
    /// `welcome` (or `resumed` + replay) and the `ack` on `outbound`.
    pub async fn join(
        &self,
        req: JoinRequest,
        outbound: Outbound,
    ) -> Result<SessionHandle, EngineError> {
        let id = self.room_id(&req.share).await?;
        let key = Identity::of(req.account, None);
        let args = self.join_args(req.id, req.name, req.host_key, req.resume, key, outbound);
        self.join_id(id, args).await
    }

    /// A public summary of the room behind a share link (for link previews).
    pub async fn summary(&self, share: &ShareToken) -> Result<RoomSummary, EngineError> {
        let id = self.room_id(share).await?;
        self.summary_id(id).await
    }
}

/// Live streams.
pub type Streams = Sessions<Stream>;

#[derive(Debug, Clone)]
pub struct CreateStream {
    pub title: String,
    pub place_id: PlaceId,
    pub location: Option<LatLng>,
    pub menu: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct CreatedStream {
    pub stream_id: StreamId,
    /// Joining with this makes the connection the streamer. Keep it secret.
    pub streamer_key: HostKey,
}

impl Sessions<Stream> {
    /// Starts the stream supervisor. Ended streams leave their record in `records`.
    pub async fn start(
        store: SessionStore,
        config: EngineConfig,
        records: Option<BlobStore>,
    ) -> Result<Self, EngineError> {
        let stream = config.stream.clone();
        let max = config.max_streams;
        Self::start_kind(store, config, stream, max, records, true).await
    }

    pub async fn create(&self, req: CreateStream) -> Result<CreatedStream, EngineError> {
        let stream_id = StreamId(random_id('s'));
        let streamer_key = HostKey(random_token(24));
        self.spawn(StreamSpec {
            id: stream_id.clone(),
            title: req.title,
            place_id: req.place_id,
            location: req.location,
            menu: req.menu,
            streamer_key: streamer_key.clone(),
        })
        .await?;
        Ok(CreatedStream {
            stream_id,
            streamer_key,
        })
    }

    /// Joins (or resumes) a stream as a viewer, or as its streamer with the streamer key.
    #[allow(clippy::too_many_arguments)]
    pub async fn join(
        &self,
        stream: &StreamId,
        id: RequestId,
        name: String,
        streamer_key: Option<HostKey>,
        resume: Option<ResumeRequest>,
        client_key: Option<Identity>,
        outbound: Outbound,
    ) -> Result<SessionHandle, EngineError> {
        let args = self.join_args(id, name, streamer_key, resume, client_key, outbound);
        self.join_id(stream.0.clone(), args)
            .await
            .map_err(|e| match e {
                EngineError::UnknownSession => EngineError::Refused {
                    code: wagu_proto::ErrorCode::UnknownRoom,
                    message: "no live stream with this id".into(),
                },
                other => other,
            })
    }

    pub async fn summary(&self, stream: &StreamId) -> Result<StreamSummary, EngineError> {
        self.summary_id(stream.0.clone()).await
    }
}

/// An owner's answer that is not what the request hoped for, as the error the caller returns.
fn reply_error<S>(reply: crate::remote::wire::Reply<S>) -> EngineError {
    use crate::remote::wire::Reply;
    match reply {
        Reply::Refused { refusal } => refusal.into(),
        Reply::Unknown => EngineError::UnknownSession,
        Reply::Unavailable { message } => EngineError::Unavailable(message),
        Reply::Moved { node } => EngineError::Unavailable(format!("the session moved to {node}")),
        Reply::Joined { .. } | Reply::Created | Reply::Summary { .. } => {
            EngineError::Unavailable("an unexpected answer".into())
        }
    }
}
