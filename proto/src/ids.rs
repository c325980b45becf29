//! Newtypes for every identifier on the wire, so that a participant id can never be passed where
//! a room id is expected. Secrets (share tokens, resume tokens, host keys) redact themselves in
//! `Debug` output so they do not leak into logs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A map room's public id. Not a secret: it shows in events and URLs of the API.
#[derive(
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct RoomId(pub String);

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomId({})", self.0)
    }
}

/// A live stream's public id.
#[derive(
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Debug,
    Serialize,
    Deserialize,
    JsonSchema,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct StreamId(pub String);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A participant's id, stable for the life of the room (also across reconnects and restarts).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct ParticipantId(pub u32);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A restaurant's id as the client's map provider (or our places table) names it.
#[derive(
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Debug,
    Serialize,
    Deserialize,
    JsonSchema,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct PlaceId(pub String);

impl PlaceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The client's id for one command; echoed in the `ack` or `error` that answers it.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct RequestId(pub u64);

/// A room's event sequence number. Reliable events number 1, 2, 3… without gaps.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Debug,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

macro_rules! secret {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Show a prefix only: enough to correlate logs, useless to an attacker.
                let shown: String = self.0.chars().take(4).collect();
                write!(f, concat!(stringify!($name), "({}…)"), shown)
            }
        }

        impl $name {
            /// Constant-time comparison, so response timing does not reveal how much matched.
            pub fn ct_eq(&self, other: &Self) -> bool {
                let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
                if a.len() != b.len() {
                    return false;
                }
                a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
            }
        }
    };
}

secret!(
    /// The secret part of a share link: whoever holds it may join the room until it expires.
    ShareToken
);
secret!(
    /// Issued on join; presented with the last seen sequence number to resume after a drop.
    ResumeToken
);
secret!(
    /// Returned to the room's creator; joining with it makes that participant the host.
    HostKey
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_redact_in_debug() {
        let t = ShareToken("abcdefghijklmnop".into());
        assert_eq!(format!("{t:?}"), "ShareToken(abcd…)");
    }

    #[test]
    fn ct_eq_compares_whole_value() {
        let a = ResumeToken("abcdef".into());
        assert!(a.ct_eq(&ResumeToken("abcdef".into())));
        assert!(!a.ct_eq(&ResumeToken("abcdeg".into())));
        assert!(!a.ct_eq(&ResumeToken("abcde".into())));
    }
}
