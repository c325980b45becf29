//! `[drafts]`: review drafts from an OpenAI-compatible model, or the built-in template; the
//! secret type its key is kept in. Only the settings and their bounds; the drafts service is
//! `crate::drafts`.

use super::{ConfigError, bad};
use serde::{Deserialize, Serialize};

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

impl DraftsConfig {
    /// The bounds of every drafts setting.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if let Some(u) = &self.base_url {
            let ok = (u.starts_with("https://") || u.starts_with("http://"))
                && reqwest::Url::parse(u).is_ok_and(|p| p.host_str().is_some());
            if !ok {
                return bad(
                    "drafts.base_url",
                    format!("must be an http(s) URL (got {u:?})"),
                );
            }
            if self.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                return bad(
                    "drafts.model",
                    "required when drafts.base_url is set".into(),
                );
            }
        }
        if let Some(k) = &self.api_key
            && (k.expose().is_empty() || !k.expose().bytes().all(|b| b.is_ascii_graphic()))
        {
            // Said without the value: it is a secret.
            return bad(
                "drafts.api_key",
                "must be printable ASCII without spaces (it goes into a header)".into(),
            );
        }
        if !(1..=600).contains(&self.timeout_secs) {
            return bad("drafts.timeout_secs", "must be 1 to 600".into());
        }
        if !(16..=8192).contains(&self.max_completion_tokens) {
            return bad("drafts.max_completion_tokens", "must be 16 to 8192".into());
        }
        Ok(())
    }
}
