//! `[web]`: what the web client is told (`/config.json`): map tiles and their attribution.
use super::{ConfigError, bad};
use serde::{Deserialize, Serialize};

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

impl WebConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let w = self;
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
        Ok(())
    }
}
