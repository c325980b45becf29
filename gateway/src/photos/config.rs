//! The `photos.*` settings: upload limits, decode limits, concurrency and the orphan sweep.
//! Each limit is defined here once and enforced by [`super::Photos`] or the upload handler.
//!
//! What it does not do: read the settings (that is [`crate::config`]).

use serde::{Deserialize, Serialize};

use super::pipeline::DecodeLimits;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PhotoConfig {
    /// Largest single photo file accepted, bytes.
    pub max_photo_bytes: usize,
    /// Largest `POST /api/photos` body (all its files together), bytes.
    pub max_request_bytes: usize,
    /// Most files in one upload request.
    pub max_files: usize,
    /// Largest width and height, in pixels, of a photo that is decoded.
    pub max_dimension: u32,
    /// Most pixels (width × height) of a photo that is decoded.
    pub max_pixels: u64,
    /// Most bytes a decoder may allocate for one photo.
    pub max_decode_bytes: u64,
    /// Photos decoded at the same time on this node (each holds its pixels in memory).
    pub max_concurrent_decodes: usize,
    /// A photo no post uses is deleted this long after its upload or its last removal from
    /// a post, seconds.
    pub orphan_grace_secs: u64,
    /// How often the orphan sweep runs, seconds (0: never; tests run it by hand).
    pub sweep_every_secs: u64,
}

impl Default for PhotoConfig {
    fn default() -> Self {
        PhotoConfig {
            max_photo_bytes: 20 * 1024 * 1024,
            max_request_bytes: 50 * 1024 * 1024,
            max_files: wagu_proto::records::MAX_PHOTOS,
            max_dimension: 12_000,
            max_pixels: 50_000_000,
            max_decode_bytes: 256 * 1024 * 1024,
            max_concurrent_decodes: 2,
            orphan_grace_secs: 24 * 3600,
            sweep_every_secs: 600,
        }
    }
}

impl PhotoConfig {
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_width: self.max_dimension,
            max_height: self.max_dimension,
            max_pixels: self.max_pixels,
            max_alloc: self.max_decode_bytes,
        }
    }

    /// Why the settings cannot work, naming the setting.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.max_photo_bytes == 0 || self.max_photo_bytes > self.max_request_bytes {
            return Some((
                "photos.max_photo_bytes",
                "must be more than 0 and at most photos.max_request_bytes".into(),
            ));
        }
        if self.max_files == 0 {
            return Some(("photos.max_files", "must be at least 1".into()));
        }
        if self.max_dimension == 0 || self.max_pixels == 0 {
            return Some((
                "photos.max_dimension",
                "photos.max_dimension and photos.max_pixels must be at least 1".into(),
            ));
        }
        if self.max_concurrent_decodes == 0 {
            return Some(("photos.max_concurrent_decodes", "must be at least 1".into()));
        }
        None
    }
}
