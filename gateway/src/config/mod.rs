//! Configuration: defaults, then an optional TOML file, then `WAGU_*` environment variables,
//! then command-line flags (each layer overrides the one before). Every setting is listed in
//! the README's table. A bad value stops startup with a message naming the setting.
//!
//! Nested settings use `__` in environment variables: `WAGU_EPHEMERAL__BACKEND=redis`.
//!
//! This file holds the top level (the layers, the list of sections, `validate`); each
//! section's struct, defaults and bounds live in its own file (`limits.rs` for `[limits]` and
//! `[rate]`, …), and `photos` and `media` settings in their own crates' modules.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

mod auth;
mod blobs;
mod cluster;
mod database;
mod drafts;
mod ephemeral;
mod limits;
mod web;

pub use self::auth::{
    AuthConfig, OidcProviderConfig, Preset, ProfileMappingConfig, ProviderKind,
    SocialProviderConfig, TokenAuth,
};
pub use self::blobs::{BlobBackend, BlobConfig};
pub use self::cluster::ClusterConfig;
pub use self::database::{DatabaseBackend, DatabaseConfig};
pub use self::drafts::{DraftsConfig, Secret};
pub use self::ephemeral::{EphemeralBackend, EphemeralConfig};
pub use self::limits::{Limits, RateLimits};
pub use self::web::WebConfig;

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
    /// Several nodes sharing Redis and a bus (off by default).
    pub cluster: ClusterConfig,
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

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid default"),
            data_dir: PathBuf::from("./data"),
            public_url: None,
            log_format: LogFormat::Text,
            ephemeral: EphemeralConfig::default(),
            cluster: ClusterConfig::default(),
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
const SETTINGS: [&str; 15] = [
    "cluster",
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
        if let Some((setting, message)) = self.photos.problem() {
            return bad(setting, message);
        }
        self.web.check()?;
        self.limits.check()?;
        self.rate.check()?;
        self.ephemeral.check()?;
        self.cluster.check(&self.ephemeral)?;
        if let Err(e) = self.media.validate() {
            return bad("media", e.to_string());
        }
        self.blobs.check()?;
        self.database.check()?;
        self.auth.check()?;
        self.drafts.check()?;
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

/// The refusal of one setting, naming it.
fn bad(setting: &'static str, message: String) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid { setting, message })
}

#[cfg(test)]
mod tests;
