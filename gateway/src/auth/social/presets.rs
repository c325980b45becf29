//! What a `[[auth.oidc]]` table means: the preset's values (Google, Kakao, Naver — each from
//! the provider's own documentation), overridden field by field by what the table sets, then
//! checked. This is the one owner of every rule about a provider's configuration; startup
//! (`Config::validate`) and the log-in code both go through [`resolve`].
//!
//! What it does not do: talk to any provider (discovery happens at first use, in
//! [`super::oidc`]).

use crate::config::{Preset, ProviderKind, SocialProviderConfig, TokenAuth};

/// Where a provider's log-in goes, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoints {
    /// OpenID Connect: endpoints come from the issuer's discovery document.
    Oidc { issuer: String },
    /// OAuth 2.0 with a profile API.
    OAuth2 {
        authorization: String,
        token: String,
        profile: String,
    },
}

/// JSON pointers (RFC 6901) into the ID token's claims or the profile JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileMapping {
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<String>,
    pub picture: Option<String>,
}

/// A provider ready to use: every value decided and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedProvider {
    pub name: String,
    pub label: String,
    pub kind: ProviderKind,
    pub endpoints: Endpoints,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub token_auth: TokenAuth,
    pub pkce: bool,
    pub profile: ProfileMapping,
}

/// A configuration problem, naming the setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct PresetError {
    pub setting: &'static str,
    pub message: String,
}

/// A preset's values; `None` where the preset has nothing to say.
struct Defaults {
    label: &'static str,
    kind: ProviderKind,
    issuer: Option<&'static str>,
    authorization: Option<&'static str>,
    token: Option<&'static str>,
    profile_endpoint: Option<&'static str>,
    scopes: &'static [&'static str],
    token_auth: TokenAuth,
    pkce: bool,
    subject: &'static str,
    name: Option<&'static str>,
    email: Option<&'static str>,
    email_verified: Option<&'static str>,
    picture: Option<&'static str>,
}

/// Google: OpenID Connect (developers.google.com/identity/openid-connect/openid-connect).
/// Its ID token carries `name`, `email`, `email_verified` and `picture` with the `email` and
/// `profile` scopes.
const GOOGLE: Defaults = Defaults {
    label: "Google",
    issuer: Some("https://accounts.google.com"),
    // The standard claims and scopes, as any OpenID Connect issuer.
    ..OIDC
};

/// Kakao Login with OpenID Connect (developers.kakao.com/docs/latest/en/kakaologin/common):
/// issuer `https://kauth.kakao.com`; the ID token carries `nickname` and `picture` (profile
/// image) with the `profile_nickname` and `profile_image` consent items, and `email` with
/// `account_email` (which Kakao grants only to reviewed apps: add it to `scopes` once yours is).
/// Kakao's token endpoint takes the client secret in the form.
const KAKAO: Defaults = Defaults {
    label: "Kakao",
    kind: ProviderKind::Oidc,
    issuer: Some("https://kauth.kakao.com"),
    authorization: None,
    token: None,
    profile_endpoint: None,
    scopes: &["openid", "profile_nickname", "profile_image"],
    token_auth: TokenAuth::Post,
    pkce: true,
    subject: "/sub",
    name: Some("/nickname"),
    email: Some("/email"),
    email_verified: None,
    picture: Some("/picture"),
};

/// Naver Login (developers.naver.com/docs/login/api): OAuth 2.0 without OpenID Connect. The
/// profile API answers `{"resultcode":"00","message":"success","response":{"id",
/// "nickname","email","profile_image",…}}`. Naver takes no scope (consent items are chosen in
/// its console), the client secret in the form, and no PKCE.
const NAVER: Defaults = Defaults {
    label: "Naver",
    kind: ProviderKind::Oauth2,
    issuer: None,
    authorization: Some("https://nid.naver.com/oauth2.0/authorize"),
    token: Some("https://nid.naver.com/oauth2.0/token"),
    profile_endpoint: Some("https://openapi.naver.com/v1/nid/me"),
    scopes: &[],
    token_auth: TokenAuth::Post,
    pkce: false,
    subject: "/response/id",
    name: Some("/response/nickname"),
    email: Some("/response/email"),
    email_verified: None,
    picture: Some("/response/profile_image"),
};

/// Without a preset, an `oidc` provider reads the standard claims.
const OIDC: Defaults = Defaults {
    label: "",
    kind: ProviderKind::Oidc,
    issuer: None,
    authorization: None,
    token: None,
    profile_endpoint: None,
    scopes: &["openid", "email", "profile"],
    token_auth: TokenAuth::Basic,
    pkce: true,
    subject: "/sub",
    name: Some("/name"),
    email: Some("/email"),
    email_verified: Some("/email_verified"),
    picture: Some("/picture"),
};

/// Without a preset, an `oauth2` provider must say everything but scopes, PKCE and token_auth.
const OAUTH2: Defaults = Defaults {
    label: "",
    kind: ProviderKind::Oauth2,
    issuer: None,
    authorization: None,
    token: None,
    profile_endpoint: None,
    scopes: &[],
    token_auth: TokenAuth::Basic,
    pkce: true,
    subject: "",
    name: None,
    email: None,
    email_verified: None,
    picture: None,
};

fn defaults(preset: Option<Preset>, kind: Option<ProviderKind>) -> &'static Defaults {
    match (preset, kind) {
        (Some(Preset::Google), _) => &GOOGLE,
        (Some(Preset::Kakao), _) => &KAKAO,
        (Some(Preset::Naver), _) => &NAVER,
        (None, Some(ProviderKind::Oauth2)) => &OAUTH2,
        (None, _) => &OIDC,
    }
}

fn bad<T>(setting: &'static str, message: String) -> Result<T, PresetError> {
    Err(PresetError { setting, message })
}

fn http_url(setting: &'static str, name: &str, url: &str) -> Result<String, PresetError> {
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
        return bad(
            setting,
            format!("provider {name}: {url:?} must be an http(s) URL"),
        );
    }
    Ok(url.to_string())
}

fn pointer(setting: &'static str, name: &str, p: &str) -> Result<String, PresetError> {
    if !p.starts_with('/') || p.len() > 256 {
        return bad(
            setting,
            format!("provider {name}: {p:?} must be a JSON pointer such as /sub or /response/id"),
        );
    }
    Ok(p.to_string())
}

/// The provider `c` describes, or the first thing wrong with it.
pub fn resolve(c: &SocialProviderConfig) -> Result<ResolvedProvider, PresetError> {
    let name = c.name.as_str();
    let name_ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    // `exchange` is a route of its own under /api/auth/oidc/.
    if !name_ok || name == "exchange" {
        return bad(
            "auth.oidc.name",
            format!("{name:?} must be 1 to 32 characters of [a-z0-9_-], not \"exchange\""),
        );
    }
    let d = defaults(c.preset, c.kind);
    let kind = c.kind.unwrap_or(d.kind);
    if kind != d.kind {
        return bad(
            "auth.oidc.kind",
            format!("provider {name}: its preset is of kind {:?}", d.kind),
        );
    }
    if c.client_id.is_empty() || c.client_secret.is_empty() {
        return bad(
            "auth.oidc.client_id",
            format!("provider {name}: client_id and client_secret are required"),
        );
    }
    let endpoints = match kind {
        ProviderKind::Oidc => {
            if c.authorization_endpoint.is_some()
                || c.token_endpoint.is_some()
                || c.profile_endpoint.is_some()
            {
                return bad(
                    "auth.oidc.kind",
                    format!(
                        "provider {name}: an oidc provider's endpoints come from its issuer; \
                         authorization_endpoint, token_endpoint and profile_endpoint are for kind \"oauth2\""
                    ),
                );
            }
            let Some(issuer) = c.issuer.as_deref().or(d.issuer) else {
                return bad(
                    "auth.oidc.issuer",
                    format!("provider {name}: required for kind \"oidc\" without a preset"),
                );
            };
            Endpoints::Oidc {
                issuer: http_url("auth.oidc.issuer", name, issuer)?,
            }
        }
        ProviderKind::Oauth2 => {
            if c.issuer.is_some() {
                return bad(
                    "auth.oidc.issuer",
                    format!("provider {name}: an oauth2 provider has no issuer; set its endpoints"),
                );
            }
            let get = |setting: &'static str, v: Option<&str>| match v {
                Some(u) => http_url(setting, name, u),
                None => bad(
                    setting,
                    format!("provider {name}: required for kind \"oauth2\" without a preset"),
                ),
            };
            Endpoints::OAuth2 {
                authorization: get(
                    "auth.oidc.authorization_endpoint",
                    c.authorization_endpoint.as_deref().or(d.authorization),
                )?,
                token: get(
                    "auth.oidc.token_endpoint",
                    c.token_endpoint.as_deref().or(d.token),
                )?,
                profile: get(
                    "auth.oidc.profile_endpoint",
                    c.profile_endpoint.as_deref().or(d.profile_endpoint),
                )?,
            }
        }
    };
    let mut scopes: Vec<String> = match &c.scopes {
        Some(s) => s.clone(),
        None => d.scopes.iter().map(|s| s.to_string()).collect(),
    };
    if scopes
        .iter()
        .any(|s| s.is_empty() || s.len() > 100 || s.contains(char::is_whitespace))
    {
        return bad(
            "auth.oidc.scopes",
            format!("provider {name}: scopes are non-empty words without spaces"),
        );
    }
    if kind == ProviderKind::Oidc && !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    let m = &c.profile;
    let subject = match m.subject.as_deref() {
        Some(p) => p,
        None if !d.subject.is_empty() => d.subject,
        None => {
            return bad(
                "auth.oidc.profile.subject",
                format!(
                    "provider {name}: required for kind \"oauth2\" without a preset (the JSON \
                     pointer of the user's id in the profile, e.g. /id)"
                ),
            );
        }
    };
    let opt = |setting: &'static str, set: Option<&str>, preset: Option<&'static str>| {
        set.or(preset)
            .map(|p| pointer(setting, name, p))
            .transpose()
    };
    let label = c
        .label
        .clone()
        .unwrap_or_else(|| {
            if d.label.is_empty() {
                name.to_string()
            } else {
                d.label.to_string()
            }
        })
        .trim()
        .to_string();
    if label.is_empty() || label.chars().count() > 40 || label.chars().any(char::is_control) {
        return bad(
            "auth.oidc.label",
            format!("provider {name}: 1 to 40 characters"),
        );
    }
    Ok(ResolvedProvider {
        name: name.to_string(),
        label,
        kind,
        endpoints,
        client_id: c.client_id.clone(),
        client_secret: c.client_secret.clone(),
        scopes,
        token_auth: c.token_auth.unwrap_or(d.token_auth),
        pkce: c.pkce.unwrap_or(d.pkce),
        profile: ProfileMapping {
            subject: pointer("auth.oidc.profile.subject", name, subject)?,
            name: opt("auth.oidc.profile.name", m.name.as_deref(), d.name)?,
            email: opt("auth.oidc.profile.email", m.email.as_deref(), d.email)?,
            email_verified: opt(
                "auth.oidc.profile.email_verified",
                m.email_verified.as_deref(),
                d.email_verified,
            )?,
            picture: opt("auth.oidc.profile.picture", m.picture.as_deref(), d.picture)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, preset: Option<Preset>) -> SocialProviderConfig {
        SocialProviderConfig {
            name: name.into(),
            preset,
            client_id: "id".into(),
            client_secret: "secret".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_google_preset_needs_only_the_client() {
        let p = resolve(&with("google", Some(Preset::Google))).unwrap();
        assert_eq!(
            p.endpoints,
            Endpoints::Oidc {
                issuer: "https://accounts.google.com".into()
            }
        );
        assert_eq!(p.scopes, ["openid", "email", "profile"]);
        assert_eq!(p.label, "Google");
        assert_eq!(p.profile.email_verified.as_deref(), Some("/email_verified"));
        assert_eq!(p.profile.picture.as_deref(), Some("/picture"));
        assert!(p.pkce);
    }

    #[test]
    fn the_kakao_preset_reads_nickname_and_picture_and_posts_its_secret() {
        let p = resolve(&with("kakao", Some(Preset::Kakao))).unwrap();
        assert_eq!(
            p.endpoints,
            Endpoints::Oidc {
                issuer: "https://kauth.kakao.com".into()
            }
        );
        assert_eq!(p.scopes, ["openid", "profile_nickname", "profile_image"]);
        assert_eq!(p.profile.name.as_deref(), Some("/nickname"));
        assert_eq!(p.profile.picture.as_deref(), Some("/picture"));
        assert_eq!(p.token_auth, TokenAuth::Post);
    }

    #[test]
    fn the_naver_preset_is_oauth2_with_its_profile_api() {
        let p = resolve(&with("naver", Some(Preset::Naver))).unwrap();
        assert_eq!(p.kind, ProviderKind::Oauth2);
        assert_eq!(
            p.endpoints,
            Endpoints::OAuth2 {
                authorization: "https://nid.naver.com/oauth2.0/authorize".into(),
                token: "https://nid.naver.com/oauth2.0/token".into(),
                profile: "https://openapi.naver.com/v1/nid/me".into(),
            }
        );
        assert_eq!(p.profile.subject, "/response/id");
        assert_eq!(
            p.profile.picture.as_deref(),
            Some("/response/profile_image")
        );
        assert!(p.scopes.is_empty());
        assert!(!p.pkce);
    }

    #[test]
    fn explicit_fields_override_the_preset() {
        let mut c = with("kakao", Some(Preset::Kakao));
        c.scopes = Some(vec!["profile_nickname".into(), "account_email".into()]);
        c.issuer = Some("http://127.0.0.1:9/kakao".into());
        c.profile.name = Some("/name".into());
        c.label = Some("카카오".into());
        c.pkce = Some(false);
        let p = resolve(&c).unwrap();
        assert_eq!(p.scopes, ["openid", "profile_nickname", "account_email"]);
        assert_eq!(
            p.endpoints,
            Endpoints::Oidc {
                issuer: "http://127.0.0.1:9/kakao".into()
            }
        );
        assert_eq!(p.profile.name.as_deref(), Some("/name"));
        assert_eq!(
            p.profile.picture.as_deref(),
            Some("/picture"),
            "the rest stays"
        );
        assert_eq!(p.label, "카카오");
        assert!(!p.pkce);
    }

    #[test]
    fn an_oauth2_provider_without_a_preset_must_name_its_endpoints_and_subject() {
        let mut c = with("corp", None);
        c.kind = Some(ProviderKind::Oauth2);
        assert_eq!(
            resolve(&c).unwrap_err().setting,
            "auth.oidc.authorization_endpoint"
        );
        c.authorization_endpoint = Some("https://corp.example/authorize".into());
        c.token_endpoint = Some("https://corp.example/token".into());
        c.profile_endpoint = Some("https://corp.example/me".into());
        assert_eq!(
            resolve(&c).unwrap_err().setting,
            "auth.oidc.profile.subject"
        );
        c.profile.subject = Some("id".into());
        assert_eq!(
            resolve(&c).unwrap_err().setting,
            "auth.oidc.profile.subject"
        );
        c.profile.subject = Some("/id".into());
        let p = resolve(&c).unwrap();
        assert_eq!(p.label, "corp");
        assert!(p.pkce);
    }

    #[test]
    fn mismatched_kinds_and_names_are_refused_with_the_setting() {
        let mut c = with("naver", Some(Preset::Naver));
        c.kind = Some(ProviderKind::Oidc);
        assert_eq!(resolve(&c).unwrap_err().setting, "auth.oidc.kind");
        let mut c = with("google", Some(Preset::Google));
        c.token_endpoint = Some("https://x.example/token".into());
        assert_eq!(resolve(&c).unwrap_err().setting, "auth.oidc.kind");
        let mut c = with("naver", Some(Preset::Naver));
        c.issuer = Some("https://nid.naver.com".into());
        assert_eq!(resolve(&c).unwrap_err().setting, "auth.oidc.issuer");
        assert_eq!(
            resolve(&with("corp", None)).unwrap_err().setting,
            "auth.oidc.issuer"
        );
        for bad_name in ["", "Bad", "exchange", "a/b"] {
            assert_eq!(
                resolve(&with(bad_name, Some(Preset::Google)))
                    .unwrap_err()
                    .setting,
                "auth.oidc.name"
            );
        }
        let mut c = with("google", Some(Preset::Google));
        c.client_secret.clear();
        assert_eq!(resolve(&c).unwrap_err().setting, "auth.oidc.client_id");
    }
}
