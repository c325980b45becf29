//! The photos a draft is written from: the [`DraftPhotos`] trait the drafts service reads them
//! through, and what it does with each one — decode the display-size JPEG (bounded, off the
//! async threads), measure simple facts for the template drafter ([`PhotoFacts`]) and, for a
//! language model, re-encode a small JPEG that carries no metadata at all.
//!
//! What it does not do: store, upload or resize photos for display (the photos service), or
//! decide who owns a photo (the [`DraftPhotos`] implementation answers `None` for a photo that
//! is not the owner's).

use bytes::Bytes;
use futures_util::future::BoxFuture;
use image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use image::{DynamicImage, ImageDecoder, Limits};
use std::io::Cursor;
use wagu_proto::records::{AccountId, PhotoId};

pub use crate::photos::DisplayPhoto;

/// The photo store failed (not: the photo does not exist, which is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
#[error("the photo store failed: {0}")]
pub struct DraftPhotosError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where drafts read photos from. `Ok(None)` for an id that does not exist or that `owner`
/// does not own: the two are not told apart.
pub trait DraftPhotos: Send + Sync {
    fn display_jpeg<'a>(
        &'a self,
        owner: &'a AccountId,
        id: &'a PhotoId,
    ) -> BoxFuture<'a, Result<Option<DisplayPhoto>, DraftPhotosError>>;
}

/// The photo service is the source: only the owner's own photos, at display size.
impl DraftPhotos for crate::photos::Photos {
    fn display_jpeg<'a>(
        &'a self,
        owner: &'a AccountId,
        id: &'a PhotoId,
    ) -> BoxFuture<'a, Result<Option<DisplayPhoto>, DraftPhotosError>> {
        Box::pin(async move {
            crate::photos::Photos::display_jpeg(self, owner, id)
                .await
                .map_err(|e| DraftPhotosError(Box::new(e)))
        })
    }
}

/// Largest side of the JPEG sent to a model. Vision APIs scale a `detail: low` image to fit
/// 512×512 anyway (a fixed, small token cost per photo); sending more only costs bandwidth.
pub const MODEL_IMAGE_MAX_SIDE: u32 = 512;
/// JPEG quality of that image.
const MODEL_IMAGE_QUALITY: u8 = 80;
/// A display photo larger than this on either side is refused as unreadable (the photos
/// service makes display sizes far smaller).
const MAX_SIDE: u32 = 8192;
/// Decoder allocation cap.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// What the template drafter may say about a photo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhotoFacts {
    /// After EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// Mean luma, 0 (black) to 255 (white).
    pub brightness: u8,
    /// Mean red minus mean blue, -255 to 255: above 0 a warm (yellow-red) cast, below a cool
    /// (blue) one.
    pub warmth: i16,
}

impl PhotoFacts {
    pub fn orientation(&self) -> Orientation {
        match self.width.cmp(&self.height) {
            std::cmp::Ordering::Greater => Orientation::Landscape,
            std::cmp::Ordering::Less => Orientation::Portrait,
            std::cmp::Ordering::Equal => Orientation::Square,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Orientation {
    Portrait,
    Landscape,
    Square,
}

/// One photo ready for drafting.
#[derive(Clone, Debug)]
pub struct PreparedPhoto {
    pub facts: PhotoFacts,
    /// A fresh JPEG (at most [`MODEL_IMAGE_MAX_SIDE`] on its longer side, no metadata),
    /// present when it is meant for a model.
    pub model_jpeg: Option<Bytes>,
}

/// Decodes `jpeg` (honouring its EXIF orientation), measures it, and re-encodes a small copy
/// for a model when `for_model`. CPU work: call it from `spawn_blocking`.
pub fn prepare(jpeg: &[u8], for_model: bool) -> Result<PreparedPhoto, image::ImageError> {
    let mut decoder = JpegDecoder::new(Cursor::new(jpeg))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    decoder.set_limits(limits)?;
    let orientation = decoder.orientation()?;
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    let facts = measure(&img);
    let model_jpeg = if for_model {
        let small = if img.width().max(img.height()) > MODEL_IMAGE_MAX_SIDE {
            img.resize(
                MODEL_IMAGE_MAX_SIDE,
                MODEL_IMAGE_MAX_SIDE,
                image::imageops::FilterType::Triangle,
            )
        } else {
            img
        };
        // Only pixels are encoded: the encoder writes no EXIF, XMP, ICC or comment unless told.
        let rgb = small.to_rgb8();
        let mut out = Vec::with_capacity(64 * 1024);
        JpegEncoder::new_with_quality(&mut out, MODEL_IMAGE_QUALITY).encode_image(&rgb)?;
        Some(Bytes::from(out))
    } else {
        None
    };
    Ok(PreparedPhoto { facts, model_jpeg })
}

/// Mean luma and warmth over a small thumbnail (the mean barely moves, the cost does).
fn measure(img: &DynamicImage) -> PhotoFacts {
    let thumb = img.thumbnail(64, 64).to_rgb8();
    let (mut r, mut g, mut b) = (0u64, 0u64, 0u64);
    for p in thumb.pixels() {
        r += u64::from(p[0]);
        g += u64::from(p[1]);
        b += u64::from(p[2]);
    }
    let n = u64::from(thumb.width() * thumb.height()).max(1);
    let (r, g, b) = (r / n, g / n, b / n);
    // ITU-R BT.601 luma.
    let luma = (299 * r + 587 * g + 114 * b) / 1000;
    PhotoFacts {
        width: img.width(),
        height: img.height(),
        brightness: luma.min(255) as u8,
        warmth: (r as i16) - (b as i16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn jpeg(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        let img = ImageBuffer::from_pixel(w, h, Rgb(rgb));
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn a_warm_bright_landscape_photo_is_measured_as_such_and_shrunk_for_the_model() {
        let p = prepare(&jpeg(1200, 800, [240, 200, 120]), true).unwrap();
        assert_eq!((p.facts.width, p.facts.height), (1200, 800));
        assert_eq!(p.facts.orientation(), Orientation::Landscape);
        assert!(p.facts.brightness > 190, "{:?}", p.facts);
        assert!(p.facts.warmth > 100, "{:?}", p.facts);
        let small = image::load_from_memory(p.model_jpeg.as_ref().unwrap()).unwrap();
        assert_eq!((small.width(), small.height()), (512, 341));
    }

    #[test]
    fn no_model_copy_is_made_when_no_model_will_see_it() {
        let p = prepare(&jpeg(300, 400, [20, 30, 90]), false).unwrap();
        assert!(p.model_jpeg.is_none());
        assert_eq!(p.facts.orientation(), Orientation::Portrait);
        assert!(
            p.facts.warmth < -40 && p.facts.brightness < 60,
            "{:?}",
            p.facts
        );
    }

    #[test]
    fn bytes_that_are_not_a_jpeg_are_an_error_not_a_panic() {
        assert!(prepare(b"\xff\xd8\xff\xe0 not really", true).is_err());
        assert!(prepare(b"", false).is_err());
    }
}
