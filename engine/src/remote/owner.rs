//! The owner's part: answers other nodes' requests for the sessions of one kind here (join,
//! create, summary) and applies their commands, in the order each gateway sent them.

use super::wire::{Cmd, JoinWire, Reply, Rpc};
use super::{Remote, cmd_subject, rpc_subject};
use crate::error::EngineError;
use crate::machine::Machine;
use crate::persist::PersistError;
use crate::sessions::{SessionHandle, Sessions};
use bytes::Bytes;
use futures_util::StreamExt;
use metrics::counter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wagu_storage::bus::BusError;

/// Remote connections joined here: their id on this node → (gateway node, handle).
type Handles = Arc<Mutex<HashMap<u64, (String, SessionHandle)>>>;

/// Starts serving this node's sessions of kind `M` to other nodes.
pub async fn serve<M: Machine>(remote: Arc<Remote>, sessions: Sessions<M>) -> Result<(), BusError> {
    let node = remote.node().as_str().to_string();
    let mut rpcs = remote.bus().subscribe(&rpc_subject(&node, M::KIND)).await?;
    let mut cmds = remote.bus().subscribe(&cmd_subject(&node, M::KIND)).await?;
    // Remote connections joined here, by their id on this node, with their gateway node.
    let handles: Handles = Default::default();

    // A gateway node that dies takes its sockets with it without a word: its connections here
    // become away (resumable), as a dropped socket on this node would.
    let (r, h) = (remote.clone(), Arc::downgrade(&handles));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(r.check_every()).await;
            let Some(handles) = h.upgrade() else { return };
            let Some(live) = r.live().await else { continue };
            let gone: Vec<SessionHandle> = {
                let mut map = handles.lock().expect("handles");
                let dead: Vec<u64> = map
                    .iter()
                    .filter(|(_, (gw, _))| !live.contains(gw))
                    .map(|(c, _)| *c)
                    .collect();
                dead.iter()
                    .filter_map(|c| map.remove(c))
                    .map(|(_, h)| h)
                    .collect()
            };
            if !gone.is_empty() {
                tracing::warn!(
                    kind = M::KIND,
                    connections = gone.len(),
                    "a gateway node's lease lapsed: its connections here are away"
                );
                for h in gone {
                    h.disconnect();
                }
            }
        }
    });

    let (r, s, h) = (remote.clone(), sessions.clone(), handles.clone());
    tokio::spawn(async move {
        while let Some(msg) = rpcs.next().await {
            let (r, s, h) = (r.clone(), s.clone(), h.clone());
            // Each request on its own task: a join waiting on a revive must not hold up others.
            tokio::spawn(async move {
                let reply = match serde_json::from_slice::<Rpc<M::Spec>>(&msg.payload) {
                    Ok(rpc) => answer(&r, &s, &h, rpc).await,
                    Err(e) => Reply::Unavailable {
                        message: format!("bad request: {e}"),
                    },
                };
                if let Some(to) = msg.reply {
                    let bytes = serde_json::to_vec(&reply).unwrap_or_default();
                    let _ = r.bus().respond(&to, Bytes::from(bytes)).await;
                }
            });
        }
    });
    tokio::spawn(async move {
        while let Some(msg) = cmds.next().await {
            match serde_json::from_slice::<Cmd>(&msg.payload) {
                Ok(Cmd::Command {
                    owner_conn, msg, ..
                }) => {
                    let sent = handles
                        .lock()
                        .expect("handles")
                        .get(&owner_conn)
                        .map(|(_, h)| h.send(msg, Instant::now()));
                    if !matches!(sent, Some(Ok(()))) {
                        counter!("wagu_remote_commands_lost_total", "kind" => M::KIND).increment(1);
                    }
                }
                Ok(Cmd::Disconnect { owner_conn, .. }) => {
                    if let Some((_, h)) = handles.lock().expect("handles").remove(&owner_conn) {
                        h.disconnect();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dropped a malformed command"),
            }
        }
    });
    Ok(())
}

async fn answer<M: Machine>(
    remote: &Arc<Remote>,
    sessions: &Sessions<M>,
    handles: &Handles,
    rpc: Rpc<M::Spec>,
) -> Reply<M::Summary> {
    let result = match rpc {
        Rpc::Join(w) => return join(remote, sessions, handles, w).await,
        Rpc::Create { spec } => sessions.spawn_here(spec).await.map(|()| Reply::Created),
        Rpc::Summary { session } => sessions
            .summary_here(session)
            .await
            .map(|summary| Reply::Summary { summary }),
    };
    result.unwrap_or_else(refusal)
}

async fn join<M: Machine>(
    remote: &Arc<Remote>,
    sessions: &Sessions<M>,
    handles: &Handles,
    w: JoinWire,
) -> Reply<M::Summary> {
    let outbound = remote.relayed_outbound(&w.gateway, w.conn);
    let gateway = w.gateway.clone();
    let args = sessions.join_args(w.id, w.name, w.host_key, w.resume, w.client_key, outbound);
    match sessions.join_here(w.session, args).await {
        Ok(h) => {
            let reply = Reply::Joined {
                session_id: h.session_id.clone(),
                participant: h.participant,
                resumed: h.resumed,
                owner_conn: h.conn.0,
            };
            handles
                .lock()
                .expect("handles")
                .insert(h.conn.0, (gateway, h));
            reply
        }
        Err(e) => refusal(e),
    }
}

fn refusal<S>(e: EngineError) -> Reply<S> {
    match e {
        EngineError::Store(PersistError::OwnedElsewhere(node)) => Reply::Moved {
            node: node.as_str().to_string(),
        },
        EngineError::UnknownSession => Reply::Unknown,
        e => Reply::Refused {
            refusal: crate::machine::Refusal::new(e.code(), e.to_string()),
        },
    }
}
