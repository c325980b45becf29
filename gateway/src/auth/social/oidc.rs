//! The OpenID Connect half of social log-in: the issuer's discovery document (read at first
//! use and checked to name the configured issuer), and the ID token's verification — an
//! asymmetric signature against the provider's JWKS (fetched again once when a key id is
//! unknown, for key rotation), issuer, audience, expiry and nonce.
//!
//! What it does not do: the redirect, state, PKCE and token request, shared with OAuth 2.0
//! providers in [`super`] and [`super::state`]; or the implicit flow.

use super::SocialError;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{OnceCell, RwLock};

/// The provider's discovery document (the fields we use).
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// What an OIDC provider learns at first use and keeps.
#[derive(Default)]
pub struct Discovered {
    metadata: OnceCell<Metadata>,
    jwks: RwLock<Option<JwkSet>>,
}

impl Discovered {
    /// The discovery document of `issuer`, fetched once.
    pub async fn metadata(
        &self,
        http: &reqwest::Client,
        issuer: &str,
    ) -> Result<&Metadata, SocialError> {
        self.metadata
            .get_or_try_init(|| async {
                let issuer = issuer.trim_end_matches('/');
                let url = format!("{issuer}/.well-known/openid-configuration");
                let m: Metadata = http
                    .get(&url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| SocialError::Failed(format!("discovery {url}: {e}")))?
                    .json()
                    .await
                    .map_err(|e| SocialError::Failed(format!("discovery {url}: {e}")))?;
                // A document naming another issuer is not this provider's (OIDC Discovery §4.3).
                if m.issuer.trim_end_matches('/') != issuer {
                    return Err(SocialError::Failed(format!(
                        "discovery names issuer {:?}, configured {issuer:?}",
                        m.issuer
                    )));
                }
                Ok(m)
            })
            .await
    }

    /// The verified claims of `id_token`, whose nonce must be `nonce`.
    pub async fn verify(
        &self,
        http: &reqwest::Client,
        meta: &Metadata,
        client_id: &str,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<Value, SocialError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| SocialError::Failed(format!("ID token header: {e}")))?;
        // Only asymmetric signatures: an HS256 ID token would be signed with our own client
        // secret, which is not proof of the provider.
        use jsonwebtoken::Algorithm::*;
        if !matches!(
            header.alg,
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA
        ) {
            return Err(SocialError::Failed(format!(
                "ID token algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = self.key(http, meta, header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[meta.issuer.as_str()]);
        validation.set_audience(&[client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| SocialError::Failed(format!("ID token: {e}")))?;
        if claims.get("nonce").and_then(Value::as_str) != nonce {
            return Err(SocialError::Failed(
                "the ID token's nonce does not match".into(),
            ));
        }
        Ok(claims)
    }

    /// The provider's key for `kid`, fetching the JWKS again once if the cached set lacks it.
    async fn key(
        &self,
        http: &reqwest::Client,
        meta: &Metadata,
        kid: Option<&str>,
    ) -> Result<DecodingKey, SocialError> {
        let mut fetched = false;
        for refresh in [false, true] {
            if refresh && fetched {
                // Fetched just now and the key is not there: another fetch would not help.
                break;
            }
            if refresh || self.jwks.read().await.is_none() {
                fetched = true;
                let set: JwkSet = http
                    .get(&meta.jwks_uri)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| SocialError::Failed(format!("jwks: {e}")))?
                    .json()
                    .await
                    .map_err(|e| SocialError::Failed(format!("jwks: {e}")))?;
                *self.jwks.write().await = Some(set);
            }
            let guard = self.jwks.read().await;
            let set = guard.as_ref().expect("fetched above");
            let jwk = match kid {
                Some(k) => set.find(k),
                // Without a kid, a set of one key is unambiguous.
                None if set.keys.len() == 1 => set.keys.first(),
                None => None,
            };
            if let Some(jwk) = jwk {
                return DecodingKey::from_jwk(jwk)
                    .map_err(|e| SocialError::Failed(format!("jwk: {e}")));
            }
        }
        Err(SocialError::Failed(format!(
            "no provider key with kid {kid:?}"
        )))
    }
}
