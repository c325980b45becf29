//! Who joins a session: the account the gateway verified (a signed-in joiner) and the client's
//! own device key (a stream's `join_stream.client_key`). Built once at the edge, in the
//! gateway's connection loop; the engine's machines read its parts (rooms show the account,
//! streams ban every key of it).
//!
//! Journals and snapshots store it in the form it had when it was a string, so old ones still
//! read: space-separated keys, `acct:<account id>` first, then the device key (a device key
//! holds no spaces and cannot start with `acct:`, see [`crate::client`]).
//!
//! What it does not do: verify anything (the gateway checks the token and the device key's
//! shape before building one).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::records::AccountId;

/// Identity keys of signed-in participants are `acct:<account id>` (set by the gateway after it
/// verified the account token); clients' own device keys may not use the prefix.
pub const ACCOUNT_KEY_PREFIX: &str = "acct:";

/// A joiner's identity: either part, both, or (never stored) neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The account whose token the gateway verified.
    pub account: Option<AccountId>,
    /// The client's own key for this device.
    pub device: Option<String>,
}

impl Identity {
    /// A joiner's identity from what the gateway verified and what the client sent; `None`
    /// when it has neither.
    pub fn of(account: Option<AccountId>, device: Option<String>) -> Option<Identity> {
        (account.is_some() || device.is_some()).then_some(Identity { account, device })
    }

    /// Every key of the identity, as a ban records it: `acct:<account id>`, then the device
    /// key.
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.account
            .iter()
            .map(|a| format!("{ACCOUNT_KEY_PREFIX}{a}"))
            .chain(self.device.iter().cloned())
    }

    /// The stored form: [`Identity::keys`] joined by spaces.
    pub fn to_wire(&self) -> String {
        self.keys().collect::<Vec<_>>().join(" ")
    }

    /// Reads the stored form. A key with the account prefix is the account, any other the
    /// device; empty keys (doubled spaces) are skipped.
    pub fn from_wire(s: &str) -> Identity {
        let mut id = Identity::default();
        for k in s.split(' ').filter(|k| !k.is_empty()) {
            match k.strip_prefix(ACCOUNT_KEY_PREFIX) {
                Some(a) if id.account.is_none() => id.account = Some(AccountId(a.to_string())),
                None if id.device.is_none() => id.device = Some(k.to_string()),
                _ => {}
            }
        }
        id
    }
}

/// Reads the stored form (a device key alone is stored as itself).
impl From<&str> for Identity {
    fn from(s: &str) -> Identity {
        Identity::from_wire(s)
    }
}

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_wire())
    }
}

impl<'de> Deserialize<'de> for Identity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Identity::from_wire(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_stored_as_the_string_it_used_to_be() {
        let both = Identity {
            account: Some(AccountId("a1".into())),
            device: Some("device-1".into()),
        };
        assert_eq!(
            serde_json::to_string(&both).unwrap(),
            r#""acct:a1 device-1""#
        );
        let account = Identity::of(Some(AccountId("a1".into())), None).unwrap();
        assert_eq!(serde_json::to_string(&account).unwrap(), r#""acct:a1""#);
        let device = Identity::of(None, Some("d".into())).unwrap();
        assert_eq!(serde_json::to_string(&device).unwrap(), r#""d""#);
        assert_eq!(Identity::of(None, None), None);
    }

    #[test]
    fn old_identity_strings_still_read() {
        for (old, account, device) in [
            ("acct:a1 device-1", Some("a1"), Some("device-1")),
            ("acct:a1", Some("a1"), None),
            ("device-1", None, Some("device-1")),
            ("acct:a1  device-1", Some("a1"), Some("device-1")),
        ] {
            let id: Identity = serde_json::from_str(&format!("{old:?}")).unwrap();
            assert_eq!(id.account, account.map(|a| AccountId(a.into())), "{old}");
            assert_eq!(id.device.as_deref(), device, "{old}");
        }
    }

    #[test]
    fn a_ban_covers_every_key_of_an_identity() {
        let both = Identity::from_wire("acct:a1 device-1");
        assert_eq!(both.keys().collect::<Vec<_>>(), ["acct:a1", "device-1"]);
    }
}
