//! The engine's failure domain as the gateway sees it. Each error maps to a protocol
//! [`ErrorCode`], so the gateway turns any of them into a typed `error` frame.

use crate::persist::PersistError;
use wagu_proto::ErrorCode;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No session behind this share link or id (the wire code stays `unknown_room`).
    #[error("no room behind this share link")]
    UnknownSession,
    #[error("this node holds its maximum of {0} rooms")]
    Capacity(usize),
    #[error("the room is not reachable right now: {0}")]
    Unavailable(String),
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    #[error("room store: {0}")]
    Store(#[from] PersistError),
}

impl EngineError {
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::UnknownSession => ErrorCode::UnknownRoom,
            EngineError::Capacity(_) => ErrorCode::Capacity,
            EngineError::Unavailable(_) => ErrorCode::Unavailable,
            EngineError::Refused { code, .. } => *code,
            // In a cluster: the session runs elsewhere (until forwarding reaches it), this node
            // is draining or cut off from Redis: the client retries, through another node.
            EngineError::Store(
                PersistError::OwnedElsewhere(_)
                | PersistError::NotOwning(_)
                | PersistError::Cluster(_),
            ) => ErrorCode::Unavailable,
            EngineError::Store(_) => ErrorCode::Internal,
        }
    }
}

impl From<crate::machine::Refusal> for EngineError {
    fn from(r: crate::machine::Refusal) -> Self {
        EngineError::Refused {
            code: r.code,
            message: r.message,
        }
    }
}

impl From<crate::actor::supervisor::CreateError> for EngineError {
    fn from(e: crate::actor::supervisor::CreateError) -> Self {
        use crate::actor::supervisor::CreateError;
        match e {
            CreateError::Capacity(n) => EngineError::Capacity(n),
            CreateError::Store(e) => EngineError::Unavailable(e),
            CreateError::Ended => EngineError::Refused {
                code: ErrorCode::RoomClosed,
                message: "this session has ended".into(),
            },
        }
    }
}

impl<T> From<ractor::RactorErr<T>> for EngineError {
    fn from(e: ractor::RactorErr<T>) -> Self {
        EngineError::Unavailable(e.to_string())
    }
}

impl<T> From<ractor::MessagingErr<T>> for EngineError {
    fn from(e: ractor::MessagingErr<T>) -> Self {
        EngineError::Unavailable(e.to_string())
    }
}
