//! Social log-in through OpenID Connect: the authorization code flow with PKCE, for any
//! provider configured under `[[auth.oidc]]` (Kakao, Google, a company's own issuer…).
//!
//! What it does: reads each provider's discovery document at first use, sends the browser to
//! its authorization endpoint with a single-use `state` (kept for ten minutes in the ephemeral
//! store — Redis when configured — so any node can finish the flow), a `nonce` and a PKCE
//! challenge; on the callback it redeems the code at the token endpoint (client secret over
//! HTTP Basic, PKCE verifier), verifies the ID token's signature against the provider's JWKS
//! (fetched again once when a key id is unknown, for key rotation), its issuer, audience,
//! expiry and nonce, and returns the subject and profile claims.
//!
//! What it does not do: plain OAuth2 providers without ID tokens (Naver's log-in is OAuth2
//! with a profile API, not OIDC), account linking of an OIDC identity to an existing
//! password account (a first log-in creates its own account), or the implicit flow.

use crate::config::OidcProviderConfig;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{OnceCell, RwLock};
use wagu_engine::sessions::random_token;
use wagu_storage::EphemeralStore;

/// How long a started log-in may take before its `state` is forgotten.
const STATE_TTL: Duration = Duration::from_secs(600);
/// Every call to a provider gives up after this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    #[error("no log-in provider named {0:?}")]
    UnknownProvider(String),
    #[error("the log-in state is unknown, expired or already used; start again")]
    InvalidState,
    #[error("the provider refused the log-in: {0}")]
    Denied(String),
    #[error("the provider's answer could not be verified; start again")]
    Failed(String),
    #[error("the log-in store is unavailable: {0}")]
    Store(#[from] wagu_storage::StorageError),
}

/// The provider's discovery document (the fields we use).
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

struct Provider {
    config: OidcProviderConfig,
    metadata: OnceCell<Metadata>,
    jwks: RwLock<Option<JwkSet>>,
}

/// What a started log-in keeps until its callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    provider: String,
    nonce: String,
    verifier: String,
}

/// Who the provider says logged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    name: Option<String>,
    nickname: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

/// Every configured provider, and one HTTP client for them all.
pub struct Oidc {
    providers: HashMap<String, Provider>,
    http: reqwest::Client,
    public_url: String,
}

fn state_key(state: &str) -> String {
    format!("wagu:oidc:{state}")
}

impl Oidc {
    pub fn new(configs: &[OidcProviderConfig], public_url: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            // The token endpoint must answer itself: following a redirect would resend the
            // code and secret somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let providers = configs
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    Provider {
                        config: c.clone(),
                        metadata: OnceCell::new(),
                        jwks: RwLock::new(None),
                    },
                )
            })
            .collect();
        Ok(Oidc {
            providers,
            http,
            public_url,
        })
    }

    /// Configured provider names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.providers.keys().cloned().collect();
        v.sort();
        v
    }

    fn provider(&self, name: &str) -> Result<&Provider, OidcError> {
        self.providers
            .get(name)
            .ok_or_else(|| OidcError::UnknownProvider(name.to_string()))
    }

    pub fn redirect_uri(&self, name: &str) -> String {
        format!("{}/api/auth/oidc/{name}/callback", self.public_url)
    }

    async fn metadata<'p>(&self, p: &'p Provider) -> Result<&'p Metadata, OidcError> {
        p.metadata
            .get_or_try_init(|| async {
                let issuer = p.config.issuer.trim_end_matches('/');
                let url = format!("{issuer}/.well-known/openid-configuration");
                let m: Metadata = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| OidcError::Failed(format!("discovery {url}: {e}")))?
                    .json()
                    .await
                    .map_err(|e| OidcError::Failed(format!("discovery {url}: {e}")))?;
                // A document naming another issuer is not this provider's (OIDC Discovery §4.3).
                if m.issuer.trim_end_matches('/') != issuer {
                    return Err(OidcError::Failed(format!(
                        "discovery names issuer {:?}, configured {:?}",
                        m.issuer, p.config.issuer
                    )));
                }
                Ok(m)
            })
            .await
    }

    /// Starts a log-in: the URL to send the browser to, and the state it carries.
    pub async fn start(
        &self,
        name: &str,
        store: &EphemeralStore,
    ) -> Result<(String, String), OidcError> {
        let p = self.provider(name)?;
        let meta = self.metadata(p).await?;
        let state = random_token(16);
        let pending = Pending {
            provider: name.to_string(),
            nonce: random_token(16),
            verifier: random_token(32),
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(pending.verifier.as_bytes()));
        let mut scopes = p.config.scopes.clone();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        let url = reqwest::Url::parse_with_params(
            &meta.authorization_endpoint,
            [
                ("response_type", "code"),
                ("client_id", p.config.client_id.as_str()),
                ("redirect_uri", self.redirect_uri(name).as_str()),
                ("scope", scopes.join(" ").as_str()),
                ("state", state.as_str()),
                ("nonce", pending.nonce.as_str()),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .map_err(|e| OidcError::Failed(format!("authorization_endpoint: {e}")))?;
        let value = serde_json::to_vec(&pending).expect("pending log-ins serialise");
        store
            .put(&state_key(&state), value.into(), STATE_TTL)
            .await?;
        Ok((url.to_string(), state))
    }

    /// Takes the pending log-in of `state` (single use) for provider `name`.
    async fn take(
        &self,
        name: &str,
        state: &str,
        store: &EphemeralStore,
    ) -> Result<Pending, OidcError> {
        if state.is_empty() || state.len() > 64 {
            return Err(OidcError::InvalidState);
        }
        let key = state_key(state);
        let Some(bytes) = store.get(&key).await? else {
            return Err(OidcError::InvalidState);
        };
        // Get then delete is not one atomic step: two callbacks racing with one state could
        // both pass here, but the provider redeems a code once, so only one can log in.
        store.delete(&[&key]).await?;
        let pending: Pending =
            serde_json::from_slice(&bytes).map_err(|_| OidcError::InvalidState)?;
        if pending.provider != name {
            return Err(OidcError::InvalidState);
        }
        Ok(pending)
    }

    /// The provider sent the browser back with an error instead of a code: the state is
    /// spent all the same.
    pub async fn denied(
        &self,
        name: &str,
        state: &str,
        error: &str,
        store: &EphemeralStore,
    ) -> Result<OidcError, OidcError> {
        self.provider(name)?;
        self.take(name, state, store).await?;
        let shown: String = error.chars().take(100).collect();
        Ok(OidcError::Denied(shown))
    }

    /// Finishes a log-in: redeems `code`, verifies the ID token, returns who logged in.
    pub async fn finish(
        &self,
        name: &str,
        code: &str,
        state: &str,
        iss: Option<&str>,
        store: &EphemeralStore,
    ) -> Result<Identity, OidcError> {
        let p = self.provider(name)?;
        let pending = self.take(name, state, store).await?;
        if code.is_empty() || code.len() > 2048 {
            return Err(OidcError::Failed("no usable code".into()));
        }
        let meta = self.metadata(p).await?;
        if let Some(iss) = iss
            && iss.trim_end_matches('/') != meta.issuer.trim_end_matches('/')
        {
            return Err(OidcError::Failed(format!(
                "the callback names issuer {iss:?}, not {:?}",
                meta.issuer
            )));
        }
        let redirect_uri = self.redirect_uri(name);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let resp = self
            .http
            .post(&meta.token_endpoint)
            .basic_auth(&p.config.client_id, Some(&p.config.client_secret))
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Failed(format!("token endpoint: {e}")))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(OidcError::Failed(format!(
                "token endpoint {status}: {body}"
            )));
        }
        let tokens: TokenResponse = resp
            .json()
            .await
            .map_err(|e| OidcError::Failed(format!("token response: {e}")))?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| OidcError::Failed("the token response has no id_token".into()))?;
        let claims = self.verify(p, meta, &id_token).await?;
        if claims.nonce.as_deref() != Some(pending.nonce.as_str()) {
            return Err(OidcError::Failed(
                "the ID token's nonce does not match".into(),
            ));
        }
        Ok(Identity {
            subject: claims.sub,
            // An unverified address is not the user's to claim.
            email: claims
                .email
                .filter(|_| claims.email_verified != Some(false)),
            name: claims.name.or(claims.nickname),
        })
    }

    async fn verify(
        &self,
        p: &Provider,
        meta: &Metadata,
        id_token: &str,
    ) -> Result<IdClaims, OidcError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| OidcError::Failed(format!("ID token header: {e}")))?;
        // Only asymmetric signatures: an HS256 ID token would be signed with our own client
        // secret, which is not proof of the provider.
        use jsonwebtoken::Algorithm::*;
        if !matches!(
            header.alg,
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA
        ) {
            return Err(OidcError::Failed(format!(
                "ID token algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = self.key(p, meta, header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[meta.issuer.as_str()]);
        validation.set_audience(&[p.config.client_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| OidcError::Failed(format!("ID token: {e}")))
    }

    /// The provider's key for `kid`, fetching the JWKS again once if the cached set lacks it.
    async fn key(
        &self,
        p: &Provider,
        meta: &Metadata,
        kid: Option<&str>,
    ) -> Result<DecodingKey, OidcError> {
        let mut fetched = false;
        for refresh in [false, true] {
            if refresh && fetched {
                // Fetched just now and the key is not there: another fetch would not help.
                break;
            }
            if refresh || p.jwks.read().await.is_none() {
                fetched = true;
                let set: JwkSet = self
                    .http
                    .get(&meta.jwks_uri)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| OidcError::Failed(format!("jwks: {e}")))?
                    .json()
                    .await
                    .map_err(|e| OidcError::Failed(format!("jwks: {e}")))?;
                *p.jwks.write().await = Some(set);
            }
            let guard = p.jwks.read().await;
            let set = guard.as_ref().expect("fetched above");
            let jwk = match kid {
                Some(k) => set.find(k),
                // Without a kid, a set of one key is unambiguous.
                None if set.keys.len() == 1 => set.keys.first(),
                None => None,
            };
            if let Some(jwk) = jwk {
                return DecodingKey::from_jwk(jwk)
                    .map_err(|e| OidcError::Failed(format!("jwk: {e}")));
            }
        }
        Err(OidcError::Failed(format!(
            "no provider key with kid {kid:?}"
        )))
    }
}
