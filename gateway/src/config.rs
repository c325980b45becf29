//! Configuration: defaults, then an optional TOML file, then `WAGU_*` environment variables,
//! then command-line flags (each layer overrides the one before). Every setting is listed in
//! the README's table. A bad value stops startup with a message naming the setting.
//!
//! Nested settings use `__` in environment variables: `WAGU_EPHEMERAL__BACKEND=redis`.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use wagu_storage::blob::S3Config;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP/WebSocket server listens on.
    pub listen: SocketAddr,
    /// Where durable data lives (blobs today; posts later).
    pub data_dir: PathBuf,
    /// Base URL put in share links; defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    pub ephemeral: EphemeralConfig,
    pub blobs: BlobConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub rate: RateLimits,
    /// Voice and video: the SFU's UDP port and the addresses it advertises.
    pub media: wagu_media::MediaConfig,
    pub web: WebConfig,
    /// Photo uploads: limits and the orphan sweep.
    pub photos: crate::photos::PhotoConfig,
    /// Review drafts (`POST /api/drafts`): an OpenAI-compatible model, or the built-in template.
    pub drafts: DraftsConfig,
}

/// Review drafts. With `base_url` unset, every draft comes from the built-in template drafter
/// (`source: "template"`); with it set, from the model (`source: "ai"`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DraftsConfig {
    /// Base URL of an OpenAI-compatible API, up to its `/v1` (`https://api.openai.com/v1`,
    /// `http://127.0.0.1:8081/v1` for a llama-server). `OPENAI_*` variables are never read.
    pub base_url: Option<String>,
    /// The model named in every request; required with `base_url`.
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer …`. Secret: never logged or printed.
    pub api_key: Option<Secret>,
    /// The whole model call (connection, the client's own retries, every streamed token),
    /// seconds.
    pub timeout_secs: u64,
    /// `max_completion_tokens` of every request: bounds the length (and cost) of a draft.
    pub max_completion_tokens: u32,
    /// Offer `stream: true` (Server-Sent Events of text deltas) to clients.
    pub stream: bool,
    /// Send the photos to the model as images; turn off for a text-only model (the prompt then
    /// carries only the photos' count and shape).
    pub send_photos: bool,
}

impl Default for DraftsConfig {
    fn default() -> Self {
        DraftsConfig {
            base_url: None,
            model: None,
            api_key: None,
            timeout_secs: 30,
            max_completion_tokens: 600,
            stream: true,
            send_photos: true,
        }
    }
}

/// A secret setting: its `Debug` never shows the value, so it cannot leak into a log line.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The web client's settings (public: `/config.json` hands them to every browser).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Map tile URL template with `{z}`, `{x}`, `{y}` (and optionally `{s}`).
    pub tile_url: String,
    /// The tile provider's attribution, shown on the map as text.
    pub tile_attribution: String,
    /// Where the attribution links to.
    pub tile_attribution_url: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            tile_url: "https://tile.openstreetmap.org/{z}/{x}/{y}.png".into(),
            tile_attribution: "© OpenStreetMap contributors".into(),
            tile_attribution_url: "https://www.openstreetmap.org/copyright".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EphemeralConfig {
    /// `embedded` (a redb file under `data_dir/ephemeral`, the default), `memory`
    /// (in-process, lost on restart: tests) or `redis`.
    pub backend: EphemeralBackend,
    pub redis_url: Option<String>,
    /// How long a stored room outlives its last snapshot, seconds.
    pub room_ttl_secs: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EphemeralBackend {
    Embedded,
    Memory,
    Redis,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BlobConfig {
    /// `filesystem` (under `data_dir/blobs`) or `s3`.
    pub backend: BlobBackend,
    pub s3: Option<S3Config>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    Filesystem,
    S3,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `embedded` or `cql` (ScyllaDB/Cassandra).
    pub backend: DatabaseBackend,
    /// CQL contact points, `host:port`.
    pub cql_nodes: Vec<String>,
    /// CQL keyspace holding accounts, places and posts.
    pub keyspace: String,
    /// Replication factor used when `wagu migrate` creates the keyspace (SimpleStrategy).
    pub replication_factor: u32,
    /// Create the CQL schema at startup if missing (what `wagu migrate` does). Turn off where
    /// schema changes go through a deploy step.
    pub migrate_on_start: bool,
    /// Load the bundled sample places (fictional, marked `sample:`) into an empty store, so a
    /// fresh server has restaurants to show.
    pub seed_sample_places: bool,
}

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

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseBackend {
    Embedded,
    Cql,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest client frame accepted, bytes (at most the protocol's 16 KiB).
    pub max_frame_bytes: usize,
    pub max_participants: usize,
    pub max_rooms: usize,
    pub max_connections: usize,
    /// Frames queued per connection before it counts as too slow.
    pub outbound_queue: usize,
    /// Close a connection that sent nothing (not even a pong) for this long, seconds.
    pub idle_timeout_secs: u64,
    /// Send a WebSocket ping this often, seconds.
    pub ping_interval_secs: u64,
    /// Allowed `Origin` headers for `/ws`; empty allows any origin.
    pub allowed_origins: Vec<String>,
    /// How long a dropped participant may resume, seconds.
    pub away_grace_secs: u64,
    /// How long a room with nobody online lives, seconds.
    pub room_empty_ttl_secs: u64,
    /// How long a share link admits newcomers, seconds.
    pub share_ttl_secs: u64,
    /// Reliable events kept per room for resuming clients.
    pub replay_events: usize,
    /// Live streams per node.
    pub max_streams: usize,
    /// Viewers per stream.
    pub max_viewers: usize,
    /// How long viewers wait for a dropped streamer before the stream ends, seconds.
    pub streamer_grace_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Presence updates per second per connection (burst: twice this).
    pub presence_per_sec: u32,
    /// Chat messages per second per connection (burst: twice this).
    pub chat_per_sec: u32,
    /// Other commands per second per connection (burst: twice this).
    pub commands_per_sec: u32,
    /// Refused frames within 10 seconds after which the connection is closed (1008).
    pub abuse_threshold: u32,
    /// Rooms and streams one client address may create per minute (burst: a minute's worth).
    pub creates_per_minute: u32,
    /// Sign-ups and log-in attempts one client address may make per minute.
    pub logins_per_minute: u32,
    /// Posts and places one client address may write (create, edit, delete) per minute.
    pub writes_per_minute: u32,
    /// `media_offer` and `media_mute` per second per connection (burst: twice this).
    pub media_per_sec: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid default"),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            log_format: LogFormat::Text,
            ephemeral: EphemeralConfig::default(),
            blobs: BlobConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            limits: Limits::default(),
            rate: RateLimits::default(),
            media: wagu_media::MediaConfig::default(),
            web: WebConfig::default(),
            photos: crate::photos::PhotoConfig::default(),
            drafts: DraftsConfig::default(),
        }
    }
}

impl Default for EphemeralConfig {
    fn default() -> Self {
        EphemeralConfig {
            backend: EphemeralBackend::Embedded,
            redis_url: None,
            room_ttl_secs: 48 * 3600,
        }
    }
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig {
            backend: BlobBackend::Filesystem,
            s3: None,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            backend: DatabaseBackend::Embedded,
            cql_nodes: Vec::new(),
            keyspace: "wagu".into(),
            replication_factor: 1,
            migrate_on_start: true,
            seed_sample_places: true,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: wagu_proto::limits::MAX_CLIENT_FRAME_BYTES,
            max_participants: 50,
            max_rooms: 10_000,
            max_connections: 100_000,
            outbound_queue: 1024,
            idle_timeout_secs: 60,
            ping_interval_secs: 20,
            allowed_origins: Vec::new(),
            away_grace_secs: 60,
            room_empty_ttl_secs: 600,
            share_ttl_secs: 24 * 3600,
            replay_events: 512,
            max_streams: 1_000,
            max_viewers: 20_000,
            streamer_grace_secs: 120,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            presence_per_sec: 30,
            chat_per_sec: 5,
            commands_per_sec: 20,
            abuse_threshold: 50,
            creates_per_minute: 30,
            logins_per_minute: 10,
            writes_per_minute: 60,
            media_per_sec: 1,
        }
    }
}

/// Settings given as flags; `None` leaves the lower layers' value.
#[derive(Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("configuration: {setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

/// Top-level settings, the only `WAGU_*` variables the configuration reads.
const SETTINGS: [&str; 14] = [
    "photos",
    "listen",
    "data_dir",
    "public_url",
    "log_format",
    "ephemeral",
    "blobs",
    "database",
    "auth",
    "limits",
    "rate",
    "media",
    "web",
    "drafts",
];

fn is_setting(env_key: &str) -> bool {
    let k = env_key.to_ascii_lowercase();
    let top = k.split("__").next().unwrap_or("");
    SETTINGS.contains(&top)
}

/// `WAGU_*` variables that name no setting, so that startup can warn about likely typos.
pub fn ignored_env_vars() -> Vec<String> {
    std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("WAGU_").map(str::to_string))
        .filter(|k| {
            let l = k.to_ascii_lowercase();
            !is_setting(k) && l != "config" && l != "log" && !l.starts_with("test_")
        })
        .map(|k| format!("WAGU_{k}"))
        .collect()
}

impl Config {
    /// Loads the layers. `file` that does not exist is an error (a typo should not silently
    /// fall back to defaults).
    pub fn load(
        file: Option<&std::path::Path>,
        flags: FlagOverrides,
    ) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Invalid {
                    setting: "config",
                    message: format!("file {} does not exist", f.display()),
                });
            }
            fig = fig.merge(Toml::file_exact(f));
        }
        fig = fig
            .merge(
                Env::prefixed("WAGU_")
                    // Only variables naming a setting: the environment also carries WAGU_*
                    // variables of tools (the test bed's WAGU_TEST_*, WAGU_CACHE_DIR…).
                    // Within a section, unknown keys still fail (a typo is caught).
                    .filter(|k| is_setting(k.as_str()))
                    .split("__"),
            )
            .merge(Serialized::defaults(flags));
        let config: Config = fig.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting, message: String| Err(ConfigError::Invalid { setting, message });
        if let Some((setting, message)) = self.photos.problem() {
            return bad(setting, message);
        }
        let w = &self.web;
        if crate::web::tile_origin(&w.tile_url).is_none()
            || !["{z}", "{x}", "{y}"].iter().all(|p| w.tile_url.contains(p))
        {
            return bad(
                "web.tile_url",
                "must be an http(s) URL template with {z}, {x} and {y}".into(),
            );
        }
        if !(w.tile_attribution_url.starts_with("https://")
            || w.tile_attribution_url.starts_with("http://"))
        {
            return bad("web.tile_attribution_url", "must be an http(s) URL".into());
        }
        let l = &self.limits;
        if l.max_frame_bytes < 256 || l.max_frame_bytes > wagu_proto::limits::MAX_CLIENT_FRAME_BYTES
        {
            return bad(
                "limits.max_frame_bytes",
                format!(
                    "must be 256 to {}",
                    wagu_proto::limits::MAX_CLIENT_FRAME_BYTES
                ),
            );
        }
        if l.max_participants == 0 || l.max_participants > 10_000 {
            return bad("limits.max_participants", "must be 1 to 10000".into());
        }
        if l.max_rooms == 0 {
            return bad("limits.max_rooms", "must be at least 1".into());
        }
        if l.outbound_queue < 8 {
            return bad("limits.outbound_queue", "must be at least 8".into());
        }
        // A resume queues every missed event at once into a fresh queue: it must fit with
        // room to spare, or the resuming client would be dropped as too slow.
        if l.replay_events * 2 > l.outbound_queue {
            return bad(
                "limits.replay_events",
                format!(
                    "must be at most half of limits.outbound_queue ({})",
                    l.outbound_queue
                ),
            );
        }
        if l.ping_interval_secs == 0 || l.idle_timeout_secs <= l.ping_interval_secs {
            return bad(
                "limits.idle_timeout_secs",
                "must exceed limits.ping_interval_secs (> 0)".into(),
            );
        }
        if self.rate.presence_per_sec == 0
            || self.rate.chat_per_sec == 0
            || self.rate.commands_per_sec == 0
            || self.rate.creates_per_minute == 0
            || self.rate.logins_per_minute == 0
            || self.rate.writes_per_minute == 0
            || self.rate.media_per_sec == 0
        {
            return bad("rate", "every rate must be at least 1".into());
        }
        if self.ephemeral.backend == EphemeralBackend::Redis && self.ephemeral.redis_url.is_none() {
            return bad(
                "ephemeral.redis_url",
                "required when ephemeral.backend = \"redis\"".into(),
            );
        }
        if let Err(e) = self.media.validate() {
            return bad("media", e.to_string());
        }
        if self.blobs.backend == BlobBackend::S3 && self.blobs.s3.is_none() {
            return bad("blobs.s3", "required when blobs.backend = \"s3\"".into());
        }
        if self.database.backend == DatabaseBackend::Cql && self.database.cql_nodes.is_empty() {
            return bad(
                "database.cql_nodes",
                "required when database.backend = \"cql\"".into(),
            );
        }
        if let Err(e) = wagu_storage::cql::check_keyspace(&self.database.keyspace) {
            return bad("database.keyspace", e.to_string());
        }
        if self.database.replication_factor == 0 {
            return bad("database.replication_factor", "must be at least 1".into());
        }
        if let Some(secret) = &self.auth.token_secret
            && secret.len() < 32
        {
            return bad(
                "auth.token_secret",
                "must be at least 32 characters (use a random string)".into(),
            );
        }
        if self.auth.access_ttl_secs < 30 || self.auth.access_ttl_secs > 24 * 3600 {
            return bad("auth.access_ttl_secs", "must be 30 to 86400".into());
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.auth.oidc {
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
        if self.auth.refresh_reuse_grace_secs > 300 {
            return bad(
                "auth.refresh_reuse_grace_secs",
                "must be at most 300".into(),
            );
        }
        if self.auth.refresh_ttl_secs <= self.auth.access_ttl_secs {
            return bad(
                "auth.refresh_ttl_secs",
                "must exceed auth.access_ttl_secs".into(),
            );
        }
        self.drafts
            .validate()
            .map_err(|(setting, message)| ConfigError::Invalid { setting, message })?;
        if let Some(u) = &self.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return bad(
                "public_url",
                format!("must start with http:// or https:// (got {u:?})"),
            );
        }
        Ok(())
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }
}

impl DraftsConfig {
    /// The bounds of every drafts setting.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(u) = &self.base_url {
            let ok = (u.starts_with("https://") || u.starts_with("http://"))
                && reqwest::Url::parse(u).is_ok_and(|p| p.host_str().is_some());
            if !ok {
                return Err((
                    "drafts.base_url",
                    format!("must be an http(s) URL (got {u:?})"),
                ));
            }
            if self.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                return Err((
                    "drafts.model",
                    "required when drafts.base_url is set".into(),
                ));
            }
        }
        if let Some(k) = &self.api_key
            && (k.expose().is_empty() || !k.expose().bytes().all(|b| b.is_ascii_graphic()))
        {
            // Said without the value: it is a secret.
            return Err((
                "drafts.api_key",
                "must be printable ASCII without spaces (it goes into a header)".into(),
            ));
        }
        if !(1..=600).contains(&self.timeout_secs) {
            return Err(("drafts.timeout_secs", "must be 1 to 600".into()));
        }
        if !(16..=8192).contains(&self.max_completion_tokens) {
            return Err(("drafts.max_completion_tokens", "must be 16 to 8192".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_need_a_model_with_a_base_url_and_keep_the_key_out_of_debug() {
        let mut c = Config::default();
        c.drafts.base_url = Some("http://127.0.0.1:8081/v1".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("drafts.model"), "{e}");
        c.drafts.model = Some("gpt-4o-mini".into());
        c.drafts.api_key = Some(Secret("sk-very-secret".into()));
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("sk-very-secret"));
        c.drafts.api_key = Some(Secret("sk bad\nkey".into()));
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("drafts.api_key") && !e.contains("bad"), "{e}");
        c.drafts.api_key = Some(Secret("sk-very-secret".into()));
        c.drafts.base_url = Some("ftp://x/v1".into());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("drafts.base_url")
        );
        c.drafts.base_url = None;
        c.drafts.timeout_secs = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("drafts.timeout_secs")
        );
        c.drafts.timeout_secs = 30;
        c.drafts.max_completion_tokens = 1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("drafts.max_completion_tokens"), "{e}");
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn web_tile_url_must_be_an_http_template() {
        let mut c = Config::default();
        c.web.tile_url = "http://127.0.0.1:9000/{z}/{x}/{y}.png".into();
        c.validate().unwrap();
        for bad in [
            "javascript:alert(1)//{z}/{x}/{y}",
            "https://tiles.example/{z}/{x}.png",
            "https://a;b/{z}/{x}/{y}.png",
        ] {
            c.web.tile_url = bad.into();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("web.tile_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn rooms_persist_in_the_embedded_file_unless_memory_is_asked_for() {
        assert_eq!(
            Config::default().ephemeral.backend,
            EphemeralBackend::Embedded
        );
        let dir = std::env::temp_dir().join(format!("wagu-cfg3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("memory.toml");
        std::fs::write(&f, "[ephemeral]\nbackend = \"memory\"\n").unwrap();
        let c = Config::load(Some(&f), FlagOverrides::default()).unwrap();
        assert_eq!(c.ephemeral.backend, EphemeralBackend::Memory);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_values_name_the_setting() {
        let dir = std::env::temp_dir().join(format!("wagu-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.toml");
        std::fs::write(&f, "[limits]\nmax_participants = \"many\"\n").unwrap();
        let e = Config::load(Some(&f), FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_participants"), "{e}");
        std::fs::write(&f, "[limits]\nmax_participants = 0\n").unwrap();
        let e = Config::load(Some(&f), FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.max_participants"), "{e}");
        std::fs::write(&f, "[limits]\nmax_partcipants = 3\n").unwrap();
        let e = Config::load(Some(&f), FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_partcipants"), "{e}");
        std::fs::write(&f, "[ephemeral]\nbackend = \"redis\"\n").unwrap();
        let e = Config::load(Some(&f), FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ephemeral.redis_url"), "{e}");
        let e =
            Config::load(Some(&dir.join("missing.toml")), FlagOverrides::default()).unwrap_err();
        assert!(e.to_string().contains("does not exist"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn social_providers_come_from_presets_in_the_file_and_bad_ones_name_the_setting() {
        let dir = std::env::temp_dir().join(format!("wagu-cfg4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("social.toml");
        std::fs::write(
            &f,
            "[[auth.oidc]]\nname = \"naver\"\npreset = \"naver\"\nclient_id = \"a\"\n\
             client_secret = \"b\"\n\n[[auth.oidc]]\nname = \"kakao\"\npreset = \"kakao\"\n\
             client_id = \"c\"\nclient_secret = \"d\"\n[auth.oidc.profile]\nname = \"/name\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), FlagOverrides::default()).unwrap();
        assert_eq!(c.auth.oidc.len(), 2);
        assert_eq!(c.auth.oidc[0].preset, Some(Preset::Naver));
        assert_eq!(c.auth.oidc[1].profile.name.as_deref(), Some("/name"));
        for (toml, setting) in [
            ("name = \"x\"\npreset = \"line\"", "preset"),
            (
                "name = \"x\"\nkind = \"oauth2\"",
                "auth.oidc.authorization_endpoint",
            ),
            (
                "name = \"x\"\npreset = \"google\"\nprofile_endpoint = \"https://x.example/me\"",
                "auth.oidc.kind",
            ),
            (
                "name = \"x\"\npreset = \"google\"\n[auth.oidc.profile]\nsubject = \"sub\"",
                "auth.oidc.profile.subject",
            ),
        ] {
            std::fs::write(
                &f,
                format!("[[auth.oidc]]\nclient_id = \"a\"\nclient_secret = \"b\"\n{toml}\n"),
            )
            .unwrap();
            let e = Config::load(Some(&f), FlagOverrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(setting), "{toml}: {e}");
        }
        std::fs::write(
            &f,
            "[[auth.oidc]]\nname = \"g\"\npreset = \"google\"\nclient_id = \"a\"\nclient_secret = \"b\"\n\
             [[auth.oidc]]\nname = \"g\"\npreset = \"kakao\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
        )
        .unwrap();
        let e = Config::load(Some(&f), FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("used by two providers"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_setting_variables_are_read() {
        assert!(is_setting("LIMITS__MAX_ROOMS"));
        assert!(is_setting("listen"));
        assert!(!is_setting("CACHE_DIR"));
        assert!(!is_setting("TEST_REDIS_URL"));
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("wagu-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("ok.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\n").unwrap();
        let c = Config::load(
            Some(&f),
            FlagOverrides {
                listen: Some("127.0.0.1:9100".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
