//! The photo pipeline: an upload's bytes in, two JPEG variants out.
//!
//! 1. Sniff the format from the bytes (the part's declared type is never trusted): JPEG, PNG,
//!    WebP and GIF (its first frame) are accepted; HEIC/AVIF and other image formats are
//!    [`ImageRejected::Unsupported`]; anything else is [`ImageRejected::NotAnImage`].
//! 2. Decode under explicit [`DecodeLimits`] (width, height, pixels, allocation): a
//!    decompression bomb is refused from its header, before any pixel buffer exists.
//! 3. Apply the EXIF orientation, then drop every piece of metadata: the encoder writes pixels
//!    only (no EXIF, no GPS, no ICC, no comments).
//! 4. Flatten transparency onto white, resize with Lanczos3 to at most 1280 px (display) and,
//!    from that, 320 px (thumb) on the long side — never up — and encode baseline JPEG at
//!    quality [`JPEG_QUALITY`].
//!
//! What it does not do: run on the async runtime (it is CPU-bound and synchronous: callers run
//! it on the blocking pool and catch panics, see [`super::service`]), store anything, or know
//! HTTP. The resampler was chosen by `gateway/benches/photos.rs` (docs/PERFORMANCE.md); the
//! other one stays callable for that comparison.

use std::io::Cursor;

use fast_image_resize as fir;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};
use sha2::{Digest, Sha256};
use wagu_storage::records::photos::VariantKind;

/// JPEG quality of every variant.
pub const JPEG_QUALITY: u8 = 85;

/// Long side of a variant, in pixels (smaller photos keep their size).
pub fn long_side(kind: VariantKind) -> u32 {
    match kind {
        VariantKind::Thumb => 320,
        VariantKind::Display => 1280,
    }
}

/// What a decode may cost. `image`'s own default sets no dimension limit at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_width: u32,
    pub max_height: u32,
    /// Width × height.
    pub max_pixels: u64,
    /// Bytes the decoder may allocate (its output buffer included).
    pub max_alloc: u64,
}

/// Which resampler resizes (both Lanczos3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resampler {
    /// `fast_image_resize` (SIMD).
    Fast,
    /// `image::imageops::resize`.
    Image,
}

/// The resampler in use, chosen by the benchmark in docs/PERFORMANCE.md.
pub const RESAMPLER: Resampler = Resampler::Fast;

/// Why an upload is not a photo we can store. Each maps to its own HTTP error code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageRejected {
    #[error("the file is not an image (its first bytes match no image format)")]
    NotAnImage,
    #[error("{0} images are not supported: send JPEG, PNG, WebP or GIF")]
    Unsupported(String),
    #[error("the image is too large: {0}")]
    TooLarge(String),
    #[error("the image is damaged or truncated: {0}")]
    Corrupt(String),
    #[error("the image could not be decoded (the decoder failed on it)")]
    DecoderPanicked,
    #[error("could not re-encode the image: {0}")]
    Encode(String),
}

/// One encoded variant.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub kind: VariantKind,
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Hex SHA-256 of `jpeg`.
    pub hash: String,
}

/// A processed upload.
#[derive(Clone, Debug)]
pub struct Processed {
    /// The format the bytes turned out to be.
    pub format: ImageFormat,
    /// Thumb, then display.
    pub variants: [Encoded; 2],
    /// Hex SHA-256 over the variants' hashes.
    pub content_hash: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sniffs the format from the bytes: one of the four accepted, or why not.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, ImageRejected> {
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif)) => {
            Ok(f)
        }
        Ok(other) => Err(ImageRejected::Unsupported(
            format!("{other:?}").to_uppercase(),
        )),
        Err(_) => match iso_media_brand(bytes) {
            Some(brand) => Err(ImageRejected::Unsupported(brand.into())),
            None => Err(ImageRejected::NotAnImage),
        },
    }
}

/// HEIF-family files (`ftyp` box first): HEIC from iPhones, AVIF.
fn iso_media_brand(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 12 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    Some(match &bytes[8..12] {
        b"avif" | b"avis" => "AVIF",
        b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => "HEIC",
        _ => "ISO media (MP4/MOV)",
    })
}

fn classify(e: ImageError) -> ImageRejected {
    match e {
        ImageError::Limits(l) => ImageRejected::TooLarge(l.to_string()),
        ImageError::Unsupported(u) => ImageRejected::Unsupported(u.to_string()),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageRejected::Corrupt("it ends early".into())
        }
        other => ImageRejected::Corrupt(other.to_string()),
    }
}

/// Decodes and orients: the pixels as the photographer saw them.
pub fn decode(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<(ImageFormat, DynamicImage), ImageRejected> {
    let format = sniff(bytes)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_width);
    l.max_image_height = Some(limits.max_height);
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (w, h) = decoder.dimensions();
    if w > limits.max_width
        || h > limits.max_height
        || u64::from(w) * u64::from(h) > limits.max_pixels
    {
        return Err(ImageRejected::TooLarge(format!(
            "{w} × {h} pixels (at most {} × {} and {} pixels)",
            limits.max_width, limits.max_height, limits.max_pixels
        )));
    }
    if w == 0 || h == 0 {
        return Err(ImageRejected::Corrupt("it has no pixels".into()));
    }
    // A malformed EXIF block costs the orientation, not the photo.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(classify)?;
    img.apply_orientation(orientation);
    Ok((format, img))
}

/// 8-bit RGB; transparent pixels are laid on white (JPEG has no alpha).
fn flatten(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            dst[c] = ((u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// The size that fits `long` on the long side, keeping the aspect ratio; never larger.
pub fn fit(w: u32, h: u32, long: u32) -> (u32, u32) {
    let max = w.max(h);
    if max <= long {
        return (w, h);
    }
    let scale = |x: u32| {
        ((u64::from(x) * u64::from(long) + u64::from(max) / 2) / u64::from(max)).max(1) as u32
    };
    (scale(w), scale(h))
}

fn resize(src: &RgbImage, long: u32, with: Resampler) -> Result<RgbImage, ImageRejected> {
    let (w, h) = fit(src.width(), src.height(), long);
    if (w, h) == src.dimensions() {
        return Ok(src.clone());
    }
    match with {
        Resampler::Image => Ok(image::imageops::resize(
            src,
            w,
            h,
            image::imageops::FilterType::Lanczos3,
        )),
        Resampler::Fast => {
            let mut dst = RgbImage::new(w, h);
            let options = fir::ResizeOptions::new()
                .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3));
            fir::Resizer::new()
                .resize(src, &mut dst, &options)
                .map_err(|e| ImageRejected::Encode(format!("resize: {e}")))?;
            Ok(dst)
        }
    }
}

fn encode(kind: VariantKind, img: &RgbImage) -> Result<Encoded, ImageRejected> {
    let mut jpeg = Vec::with_capacity(img.as_raw().len() / 8);
    JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode_image(img)
        .map_err(|e| ImageRejected::Encode(e.to_string()))?;
    Ok(Encoded {
        kind,
        hash: sha256_hex(&jpeg),
        width: img.width(),
        height: img.height(),
        jpeg,
    })
}

/// The whole pipeline, synchronously.
pub fn process(
    bytes: &[u8],
    limits: &DecodeLimits,
    with: Resampler,
) -> Result<Processed, ImageRejected> {
    let (format, img) = decode(bytes, limits)?;
    let rgb = flatten(img);
    let display = resize(&rgb, long_side(VariantKind::Display), with)?;
    drop(rgb);
    // The thumb comes from the display pixels: a 4× Lanczos step from there looks the same
    // as one from the original and costs a sixteenth.
    let thumb = resize(&display, long_side(VariantKind::Thumb), with)?;
    let thumb = encode(VariantKind::Thumb, &thumb)?;
    let display = encode(VariantKind::Display, &display)?;
    let content_hash = sha256_hex(format!("{}:{}", thumb.hash, display.hash).as_bytes());
    Ok(Processed {
        format,
        variants: [thumb, display],
        content_hash,
    })
}

/// A photo-like JPEG for benchmarks and tests: smooth gradients with fine noise (what a
/// camera's output compresses like), quality 90.
pub fn synthetic_jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let img = RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state % 24) as u32;
        let r = (x * 200 / width.max(1)) + n;
        let g = (y * 200 / height.max(1)) + n;
        let b = ((x + y) * 100 / (width + height).max(1)) + 60 + n;
        image::Rgb([r.min(255) as u8, g.min(255) as u8, b.min(255) as u8])
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("encoding to memory");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_fit_the_long_side_and_are_never_upscaled() {
        assert_eq!(fit(4000, 3000, 1280), (1280, 960));
        assert_eq!(fit(3000, 4000, 320), (240, 320));
        assert_eq!(fit(100, 50, 1280), (100, 50));
        assert_eq!(fit(10_000, 1, 320), (320, 1));
    }

    #[test]
    fn heic_and_non_images_are_told_apart() {
        let mut heic = vec![0, 0, 0, 24];
        heic.extend_from_slice(b"ftypheic");
        heic.extend_from_slice(&[0; 16]);
        assert_eq!(sniff(&heic), Err(ImageRejected::Unsupported("HEIC".into())));
        assert_eq!(sniff(b"<html>hello</html>"), Err(ImageRejected::NotAnImage));
        assert_eq!(
            sniff(b"BM\0\0\0\0\0\0\0\0"),
            Err(ImageRejected::Unsupported("BMP".into()))
        );
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), Ok(ImageFormat::Png));
    }

    #[test]
    fn transparency_is_laid_on_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([10, 20, 30, 255]));
        let rgb = flatten(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [10, 20, 30]);
    }
}
