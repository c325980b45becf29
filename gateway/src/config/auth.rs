//! `[auth]`: access and refresh tokens, and the social log-in providers as written in the
//! file (what they resolve to is `crate::auth::social::presets`).
use super::{ConfigError, bad};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HMAC key for access tokens, at least 32 bytes. Every node of a cluster must share it.
    /// Unset: a random key is created once and kept in `data_dir/auth.key` (fine for one node).
    pub token_secret: Option<String>,
    /// Lifetime of an access token, seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of a refresh token, seconds (each use rotates it).
    pub refresh_ttl_secs: u64,
    /// A spent refresh token presented again within this many seconds of its use is taken for
    /// the client's own concurrent refresh (refused, family kept); later, for a stolen copy
    /// (refused, family revoked).
    pub refresh_reuse_grace_secs: u64,
    /// Social log-in providers: OpenID Connect (Google, Kakao, any issuer) or plain OAuth 2.0
    /// with a profile API (Naver). `[[auth.oidc]]` tables; see `docs/RECORDS.md`.
    pub oidc: Vec<SocialProviderConfig>,
}

/// One social log-in provider as written in the file. A `preset` fills every field but the
/// client's id and secret; a field set here overrides the preset's. What the fields become
/// (and every check of them) is `auth::social::presets::resolve`. The redirect URI to register
/// with the provider is `{public_url}/api/auth/oidc/{name}/callback`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SocialProviderConfig {
    /// Short name used in URLs: `[a-z0-9_-]{1,32}`.
    pub name: String,
    /// `google`, `kakao` or `naver`: the provider's documented endpoints, scopes and claims.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// `oidc` (ID token checked against the issuer's keys) or `oauth2` (access token, then the
    /// profile API). Default: the preset's, else `oidc`.
    #[serde(default)]
    pub kind: Option<ProviderKind>,
    /// The button's text in the web client. Default: the preset's, else the name.
    #[serde(default)]
    pub label: Option<String>,
    /// `oidc`: the issuer URL; its `/.well-known/openid-configuration` is read at first use.
    #[serde(default)]
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    /// Scopes asked for. `oidc` always includes `openid`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// `oauth2`: where the browser is sent to log in.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// `oauth2`: where the code is redeemed for an access token.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// `oauth2`: the profile API called with the access token (`GET`, `Authorization: Bearer`).
    #[serde(default)]
    pub profile_endpoint: Option<String>,
    /// How the client authenticates at the token endpoint: `basic` (HTTP Basic, the default)
    /// or `post` (`client_id` and `client_secret` in the form; Kakao and Naver).
    #[serde(default)]
    pub token_auth: Option<TokenAuth>,
    /// Send a PKCE S256 challenge (default true; Naver's preset turns it off).
    #[serde(default)]
    pub pkce: Option<bool>,
    /// Where the person's identity is in the ID token's claims (`oidc`) or the profile JSON
    /// (`oauth2`): JSON pointers (RFC 6901) such as `/sub` or `/response/id`.
    #[serde(default)]
    pub profile: ProfileMappingConfig,
}

/// The old name of [`SocialProviderConfig`] (it held only OpenID Connect providers).
pub type OidcProviderConfig = SocialProviderConfig;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Google,
    Kakao,
    Naver,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Oidc,
    Oauth2,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenAuth {
    Basic,
    Post,
}

/// JSON pointers into the claims or profile; unset ones come from the preset or the kind's
/// defaults (`/sub`, `/name`, `/email`, `/email_verified`, `/picture` for `oidc`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileMappingConfig {
    pub subject: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// A boolean (or `"true"`/`"false"`); when it is false the email is dropped.
    pub email_verified: Option<String>,
    pub picture: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_secret: None,
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            refresh_reuse_grace_secs: 30,
            oidc: Vec::new(),
        }
    }
}

impl AuthConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.token_secret
            && secret.len() < 32
        {
            return bad(
                "auth.token_secret",
                "must be at least 32 characters (use a random string)".into(),
            );
        }
        if self.access_ttl_secs < 30 || self.access_ttl_secs > 24 * 3600 {
            return bad("auth.access_ttl_secs", "must be 30 to 86400".into());
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.oidc {
            if let Err(e) = crate::auth::social::presets::resolve(p) {
                return bad(e.setting, e.message);
            }
            if !names.insert(p.name.clone()) {
                return bad(
                    "auth.oidc.name",
                    format!("{:?} is used by two providers", p.name),
                );
            }
        }
        if self.refresh_reuse_grace_secs > 300 {
            return bad(
                "auth.refresh_reuse_grace_secs",
                "must be at most 300".into(),
            );
        }
        if self.refresh_ttl_secs <= self.access_ttl_secs {
            return bad(
                "auth.refresh_ttl_secs",
                "must exceed auth.access_ttl_secs".into(),
            );
        }
        Ok(())
    }
}
