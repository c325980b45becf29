//! Social log-in: the authorization code flow for every provider under `[[auth.oidc]]`, of
//! either kind — OpenID Connect (Google, Kakao, any issuer: [`oidc`]) or OAuth 2.0 with a
//! profile API (Naver: [`oauth2`]). The kind is configuration ([`presets`]), not code per
//! provider.
//!
//! What it does, the same for both kinds: sends the browser to the authorization endpoint with
//! a single-use `state` ([`state`], in the ephemeral store so any node can finish the flow),
//! a PKCE S256 challenge where the provider takes one and, for OIDC, a `nonce`; on the callback
//! it spends the state, redeems the code at the token endpoint (client secret by HTTP Basic or
//! in the form, PKCE verifier), and reads who logged in ([`profile`]) from the verified ID
//! token (OIDC) or from the profile API called with the access token (OAuth 2.0).
//!
//! What it does not do: create accounts or sessions (`http::social` does), link a social
//! identity to an existing password account, or the implicit flow.

pub mod oauth2;
pub mod oidc;
pub mod presets;
pub mod profile;
pub mod state;

pub use presets::ResolvedProvider;
pub use profile::Identity;

use crate::config::{ProviderKind, SocialProviderConfig, TokenAuth};
use presets::Endpoints;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use wagu_storage::EphemeralStore;

/// Every call to a provider gives up after this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest authorization code accepted from a callback.
const MAX_CODE_BYTES: usize = 2048;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocialError {
    #[error("no log-in provider named {0:?}")]
    UnknownProvider(String),
    #[error("the log-in state is unknown, expired or already used; start again")]
    InvalidState,
    #[error("the sign-in code is unknown, expired or already used; sign in again")]
    InvalidHandoff,
    #[error("the provider refused the log-in: {0}")]
    Denied(String),
    #[error("the provider's answer could not be verified; start again")]
    Failed(String),
    #[error("the log-in store is unavailable: {0}")]
    Store(#[from] wagu_storage::StorageError),
}

struct Provider {
    config: ResolvedProvider,
    /// OIDC: the discovery document and keys, learnt at first use.
    discovered: oidc::Discovered,
}

/// A provider as a client may see it (`GET /api/auth/providers`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInfo {
    pub name: String,
    pub label: String,
    pub kind: ProviderKind,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    id_token: Option<String>,
    /// Some providers (Naver) answer errors with 200 and these fields.
    error: Option<String>,
    error_description: Option<String>,
}

/// Every configured provider, and one HTTP client for them all.
pub struct Social {
    providers: HashMap<String, Provider>,
    http: reqwest::Client,
    public_url: String,
}

impl Social {
    pub fn new(configs: &[SocialProviderConfig], public_url: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            // The token endpoint must answer itself: following a redirect would resend the
            // code and secret somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut providers = HashMap::new();
        for c in configs {
            let config = presets::resolve(c)?;
            providers.insert(
                config.name.clone(),
                Provider {
                    config,
                    discovered: oidc::Discovered::default(),
                },
            );
        }
        Ok(Social {
            providers,
            http,
            public_url,
        })
    }

    /// Configured provider names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.list().into_iter().map(|p| p.name).collect()
    }

    /// Configured providers, sorted by name.
    pub fn list(&self) -> Vec<ProviderInfo> {
        let mut v: Vec<ProviderInfo> = self
            .providers
            .values()
            .map(|p| ProviderInfo {
                name: p.config.name.clone(),
                label: p.config.label.clone(),
                kind: p.config.kind,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn provider(&self, name: &str) -> Result<&Provider, SocialError> {
        self.providers
            .get(name)
            .ok_or_else(|| SocialError::UnknownProvider(name.to_string()))
    }

    pub fn redirect_uri(&self, name: &str) -> String {
        format!("{}/api/auth/oidc/{name}/callback", self.public_url)
    }

    /// The authorization and token endpoints of `p`, and its discovery document if OIDC.
    async fn endpoints<'p>(
        &self,
        p: &'p Provider,
    ) -> Result<(&'p str, &'p str, Option<&'p oidc::Metadata>), SocialError> {
        match &p.config.endpoints {
            Endpoints::Oidc { issuer } => {
                let m = p.discovered.metadata(&self.http, issuer).await?;
                Ok((&m.authorization_endpoint, &m.token_endpoint, Some(m)))
            }
            Endpoints::OAuth2 {
                authorization,
                token,
                ..
            } => Ok((authorization, token, None)),
        }
    }

    /// Starts a log-in: the URL to send the browser to, and the state it carries.
    pub async fn start(
        &self,
        name: &str,
        store: &EphemeralStore,
    ) -> Result<(String, String), SocialError> {
        let p = self.provider(name)?;
        let (authorize, _, meta) = self.endpoints(p).await?;
        let pending = state::Pending::new(name, meta.is_some(), p.config.pkce);
        let redirect_uri = self.redirect_uri(name);
        let scope = p.config.scopes.join(" ");
        let challenge = pending.challenge();
        let state = state::put(&pending, store).await?;
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", p.config.client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("state", state.as_str()),
        ];
        if !scope.is_empty() {
            params.push(("scope", scope.as_str()));
        }
        if let Some(nonce) = &pending.nonce {
            params.push(("nonce", nonce));
        }
        if let Some(c) = &challenge {
            params.push(("code_challenge", c));
            params.push(("code_challenge_method", "S256"));
        }
        let url = reqwest::Url::parse_with_params(authorize, &params)
            .map_err(|e| SocialError::Failed(format!("authorization endpoint: {e}")))?;
        Ok((url.to_string(), state))
    }

    /// The provider sent the browser back with an error instead of a code: the state is
    /// spent all the same.
    pub async fn denied(
        &self,
        name: &str,
        state: &str,
        error: &str,
        store: &EphemeralStore,
    ) -> Result<SocialError, SocialError> {
        self.provider(name)?;
        state::take(name, state, store).await?;
        let shown: String = error
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        Ok(SocialError::Denied(shown))
    }

    /// Finishes a log-in: spends the state, redeems `code`, returns who logged in.
    pub async fn finish(
        &self,
        name: &str,
        code: &str,
        state: &str,
        iss: Option<&str>,
        store: &EphemeralStore,
    ) -> Result<Identity, SocialError> {
        let p = self.provider(name)?;
        let pending = state::take(name, state, store).await?;
        if code.is_empty() || code.len() > MAX_CODE_BYTES {
            return Err(SocialError::Failed("no usable code".into()));
        }
        let (_, token_endpoint, meta) = self.endpoints(p).await?;
        // RFC 9207: a callback that names its issuer must name this provider's (mix-up
        // defence). OAuth 2.0 providers here have no issuer to compare.
        if let (Some(iss), Some(meta)) = (iss, meta)
            && iss.trim_end_matches('/') != meta.issuer.trim_end_matches('/')
        {
            return Err(SocialError::Failed(format!(
                "the callback names issuer {iss:?}, not {:?}",
                meta.issuer
            )));
        }
        let tokens = self
            .redeem(p, token_endpoint, code, state, pending.verifier.as_deref())
            .await?;
        let json = match (&p.config.endpoints, meta) {
            (Endpoints::Oidc { .. }, Some(meta)) => {
                let id_token = tokens.id_token.ok_or_else(|| {
                    SocialError::Failed("the token response has no id_token".into())
                })?;
                p.discovered
                    .verify(
                        &self.http,
                        meta,
                        &p.config.client_id,
                        &id_token,
                        pending.nonce.as_deref(),
                    )
                    .await?
            }
            (Endpoints::OAuth2 { profile, .. }, _) => {
                let access = tokens.access_token.ok_or_else(|| {
                    SocialError::Failed("the token response has no access_token".into())
                })?;
                oauth2::profile(&self.http, profile, &access).await?
            }
            (Endpoints::Oidc { .. }, None) => unreachable!("an OIDC provider has metadata"),
        };
        Identity::read(&json, &p.config.profile)
    }

    /// The token request (RFC 6749 §4.1.3), the same for both kinds.
    async fn redeem(
        &self,
        p: &Provider,
        token_endpoint: &str,
        code: &str,
        state: &str,
        verifier: Option<&str>,
    ) -> Result<TokenResponse, SocialError> {
        let c = &p.config;
        let redirect_uri = self.redirect_uri(&c.name);
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        if c.kind == ProviderKind::Oauth2 {
            // Naver wants the state again; servers ignore parameters they do not know
            // (RFC 6749 §3.2).
            form.push(("state", state));
        }
        let mut req = self.http.post(token_endpoint);
        match c.token_auth {
            TokenAuth::Basic => req = req.basic_auth(&c.client_id, Some(&c.client_secret)),
            TokenAuth::Post => {
                form.push(("client_id", c.client_id.as_str()));
                form.push(("client_secret", c.client_secret.as_str()));
            }
        }
        let resp = req
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| SocialError::Failed(format!("token endpoint: {e}")))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| SocialError::Failed(format!("token endpoint: {e}")))?;
        let shown = || body.chars().take(300).collect::<String>();
        if !status.is_success() {
            return Err(SocialError::Failed(format!(
                "token endpoint {status}: {}",
                shown()
            )));
        }
        let tokens: TokenResponse = serde_json::from_str(&body)
            .map_err(|e| SocialError::Failed(format!("token response: {e}: {}", shown())))?;
        if let Some(error) = &tokens.error {
            return Err(SocialError::Failed(format!(
                "token endpoint: {error}: {}",
                tokens.error_description.as_deref().unwrap_or("")
            )));
        }
        Ok(tokens)
    }
}
