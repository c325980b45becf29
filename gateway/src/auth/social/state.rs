//! The short-lived secrets of a social log-in, kept in the ephemeral store (Redis when
//! configured, so any node finishes a flow another started): the pending log-in behind a
//! `state` (ten minutes, single use) with its PKCE verifier and OIDC nonce, and the one-time
//! hand-off code a browser trades for its session (one minute, single use, bound to the
//! browser's state cookie).
//!
//! What it does not do: talk to providers, or decide what a callback means.

use super::SocialError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use wagu_engine::sessions::random_token;
use wagu_proto::records::AccountId;
use wagu_storage::EphemeralStore;

/// How long a started log-in may take before its `state` is forgotten.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// How long a browser has to trade its hand-off code for a session.
pub const HANDOFF_TTL: Duration = Duration::from_secs(60);
/// Longest state or hand-off code looked up (ours are 22 characters).
const MAX_KEY_CHARS: usize = 64;

/// What a started log-in keeps until its callback.
#[derive(Serialize, Deserialize)]
pub struct Pending {
    pub provider: String,
    /// OIDC only.
    pub nonce: Option<String>,
    /// Only when the provider takes PKCE.
    pub verifier: Option<String>,
}

impl Pending {
    pub fn new(provider: &str, oidc: bool, pkce: bool) -> Pending {
        Pending {
            provider: provider.to_string(),
            nonce: oidc.then(|| random_token(16)),
            verifier: pkce.then(|| random_token(32)),
        }
    }

    /// The PKCE S256 challenge of the verifier.
    pub fn challenge(&self) -> Option<String> {
        self.verifier
            .as_ref()
            .map(|v| URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())))
    }
}

fn state_key(state: &str) -> String {
    format!("wagu:oidc:{state}")
}

fn handoff_key(code: &str) -> String {
    format!("wagu:oidc:handoff:{code}")
}

/// Keeps `pending` under a new state, which it returns.
pub async fn put(pending: &Pending, store: &EphemeralStore) -> Result<String, SocialError> {
    let state = random_token(16);
    let value = serde_json::to_vec(pending).expect("pending log-ins serialise");
    store
        .put(&state_key(&state), value.into(), STATE_TTL)
        .await?;
    Ok(state)
}

/// Takes the pending log-in of `state` (single use) for provider `name`.
pub async fn take(name: &str, state: &str, store: &EphemeralStore) -> Result<Pending, SocialError> {
    if state.is_empty() || state.len() > MAX_KEY_CHARS {
        return Err(SocialError::InvalidState);
    }
    let key = state_key(state);
    let Some(bytes) = store.get(&key).await? else {
        return Err(SocialError::InvalidState);
    };
    // Get then delete is not one atomic step: two callbacks racing with one state could
    // both pass here, but the provider redeems a code once, so only one can log in.
    store.delete(&[&key]).await?;
    let pending: Pending = serde_json::from_slice(&bytes).map_err(|_| SocialError::InvalidState)?;
    if pending.provider != name {
        return Err(SocialError::InvalidState);
    }
    Ok(pending)
}

#[derive(Serialize, Deserialize)]
struct Handoff {
    account: String,
    /// The state of the log-in: the browser must still hold it in its cookie.
    state: String,
}

/// A one-time code for `account`, redeemable by the browser holding `state` in its cookie.
pub async fn put_handoff(
    account: &AccountId,
    state: &str,
    store: &EphemeralStore,
) -> Result<String, SocialError> {
    let code = random_token(32);
    let value = serde_json::to_vec(&Handoff {
        account: account.0.clone(),
        state: state.to_string(),
    })
    .expect("hand-offs serialise");
    store
        .put(&handoff_key(&code), value.into(), HANDOFF_TTL)
        .await?;
    Ok(code)
}

/// Spends the hand-off `code`; the account it was issued for if `cookie_state` matches.
pub async fn take_handoff(
    code: &str,
    cookie_state: Option<&str>,
    store: &EphemeralStore,
) -> Result<AccountId, SocialError> {
    if code.is_empty() || code.len() > MAX_KEY_CHARS {
        return Err(SocialError::InvalidHandoff);
    }
    let key = handoff_key(code);
    let Some(bytes) = store.get(&key).await? else {
        return Err(SocialError::InvalidHandoff);
    };
    let h: Handoff = serde_json::from_slice(&bytes).map_err(|_| SocialError::InvalidHandoff)?;
    // Another browser's attempt does not burn the code of the one that logged in.
    if cookie_state != Some(h.state.as_str()) {
        return Err(SocialError::InvalidHandoff);
    }
    // Get then delete, as for states: two exchanges racing with one code from the one
    // browser holding the cookie could both get a session of the same account (no one
    // else can), which costs nothing.
    store.delete(&[&key]).await?;
    Ok(AccountId(h.account))
}
