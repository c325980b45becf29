//! The gateway's handle on a session another node owns: commands and disconnects go to the
//! owner as bus messages, in order; the frames come back through the node's batches.

use super::wire::Cmd;
use super::{Remote, cmd_subject};
use crate::error::EngineError;
use crate::machine::ConnId;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use wagu_proto::ClientMessage;
use wagu_proto::ids::ParticipantId;
use wagu_storage::cluster::NodeId;

pub struct RemoteLink {
    pub(crate) remote: Arc<Remote>,
    pub(crate) owner: NodeId,
    pub(crate) kind: &'static str,
    pub(crate) session: String,
    /// The connection's id on the owner.
    pub(crate) owner_conn: u64,
}

impl RemoteLink {
    fn send(&self, cmd: &Cmd) {
        match serde_json::to_vec(cmd) {
            Ok(v) => self
                .remote
                .publish(cmd_subject(self.owner.as_str(), self.kind), Bytes::from(v)),
            Err(e) => tracing::error!(error = %e, "a command did not encode"),
        }
    }
}

impl crate::sessions::SessionLink for RemoteLink {
    fn command(
        &self,
        conn: ConnId,
        participant: ParticipantId,
        msg: ClientMessage,
        _received: Instant,
    ) -> Result<(), EngineError> {
        self.send(&Cmd::Command {
            session: self.session.clone(),
            gateway: self.remote.node().as_str().to_string(),
            conn: conn.0,
            owner_conn: self.owner_conn,
            participant,
            msg,
        });
        Ok(())
    }

    fn disconnect(&self, conn: ConnId, participant: ParticipantId) {
        self.remote.remove_sink(conn.0);
        self.send(&Cmd::Disconnect {
            session: self.session.clone(),
            owner_conn: self.owner_conn,
            participant,
        });
    }

    fn crash(&self) {}
}
