//! Decoding with limits checked before the pixels are decoded.

use crate::{Error, RgbImage};
use image::{DynamicImage, ImageDecoder, ImageReader};
use std::io::Cursor;
use std::path::Path;

/// Size limits, checked from the header before decoding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest width or height in pixels.
    pub max_side: u32,
    /// Largest width × height.
    pub max_pixels: u64,
    /// Largest allocation the decoder may make, in bytes.
    pub max_alloc: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // 16k per side and 100 MP cover real photos (a 108 MP phone shot is 12000×9000);
        // beyond that an image is a panorama or a bomb, and the caller hears which.
        Limits {
            max_side: 16_384,
            max_pixels: 100_000_000,
            max_alloc: 1 << 30,
        }
    }
}

/// Reads and decodes `path` (see [`decode_bytes`]).
pub fn decode(path: &Path, limits: &Limits) -> Result<RgbImage, Error> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: name.clone(),
        source,
    })?;
    decode_bytes(&bytes, &name, limits)
}

/// Decodes an image held in memory; `name` is used in errors.
pub fn decode_bytes(bytes: &[u8], name: &str, limits: &Limits) -> Result<RgbImage, Error> {
    let err = |reason: String| Error::Decode {
        path: name.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(err("empty file (0 bytes)".into()));
    }
    if let Some(kind) = unsupported_kind(bytes) {
        return Err(err(format!("{kind} images are not supported (convert to JPEG or PNG)")));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(err(
            "not an image: unrecognised format (supported: JPEG, PNG, WebP, GIF, BMP, TIFF)".into(),
        ));
    };
    // The JPEG decoder fills a file cut short with grey and reports no error; PIL refuses it.
    if format == image::ImageFormat::Jpeg && !jpeg_complete(bytes) {
        return Err(err(
            "corrupt or truncated Jpeg: no end-of-image marker after the last scan (the file was cut short)".into(),
        ));
    }
    // Dimensions are checked below from the header, with a message naming them; the decoder
    // itself is only capped in how much it may allocate.
    let mut il = image::Limits::default();
    il.max_image_width = None;
    il.max_image_height = None;
    il.max_alloc = Some(limits.max_alloc);
    let mut reader = reader;
    reader.limits(il);
    let mut decoder = reader.into_decoder().map_err(|e| classify(name, format, e, limits))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(err(format!("image has no pixels ({w}×{h})")));
    }
    if w > limits.max_side || h > limits.max_side || w as u64 * h as u64 > limits.max_pixels {
        return Err(Error::TooLarge {
            path: name.to_string(),
            reason: format!(
                "image is {w}×{h} pixels, over the limit of {} per side and {} megapixels (checked before decoding)",
                limits.max_side,
                limits.max_pixels / 1_000_000
            ),
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(name, format, e, limits))?;
    img.apply_orientation(orientation);
    Ok(to_rgb_like_pil(img))
}

fn classify(name: &str, format: image::ImageFormat, e: image::ImageError, limits: &Limits) -> Error {
    match e {
        image::ImageError::Limits(l) => Error::TooLarge {
            path: name.to_string(),
            reason: format!(
                "{format:?} image exceeds the decoding limits ({l}; max {} per side)",
                limits.max_side
            ),
        },
        other => Error::Decode {
            path: name.to_string(),
            reason: format!("corrupt or truncated {format:?}: {other}"),
        },
    }
}

/// Whether an end-of-image marker (FF D9) follows the last start-of-scan (FF DA). Inside
/// entropy-coded data every FF byte is stuffed (FF 00) or a restart marker, so an FF D9 after
/// the last scan can only be the real end; an EXIF thumbnail's markers all come before it.
/// Searched from both ends (the last EOI is normally the file's last two bytes and the first
/// SOS is in the header) so a whole file is not scanned byte by byte.
fn jpeg_complete(b: &[u8]) -> bool {
    let Some(eoi) = b.windows(2).rposition(|w| w == [0xFF, 0xD9]) else {
        return false;
    };
    let sos = |w: &[u8]| w == [0xFF, 0xDA];
    // Some scan before the last EOI, and none after it.
    b[..eoi].windows(2).any(sos) && !b[eoi..].windows(2).any(sos)
}

/// HEIC/AVIF containers (ISO BMFF `ftyp` brands) that this build does not decode.
fn unsupported_kind(b: &[u8]) -> Option<&'static str> {
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        return match &b[8..12] {
            b"heic" | b"heix" | b"hevc" | b"mif1" | b"msf1" | b"heim" | b"heis" => Some("HEIC"),
            b"avif" | b"avis" => Some("AVIF"),
            _ => None,
        };
    }
    None
}

/// PIL's `convert("RGB")`: alpha dropped (not blended), grey replicated, 16-bit reduced to the high byte.
fn to_rgb_like_pil(img: DynamicImage) -> RgbImage {
    match img {
        DynamicImage::ImageRgb8(i) => i,
        DynamicImage::ImageRgb16(i) => {
            let (w, h) = i.dimensions();
            RgbImage::from_raw(w, h, i.into_raw().into_iter().map(|v| (v >> 8) as u8).collect()).expect("same size")
        }
        DynamicImage::ImageRgba16(i) => {
            let (w, h) = i.dimensions();
            let raw: Vec<u8> = i
                .into_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .map(|v| (v >> 8) as u8)
                .collect();
            RgbImage::from_raw(w, h, raw).expect("same size")
        }
        DynamicImage::ImageLuma16(i) => {
            let (w, h) = i.dimensions();
            let raw: Vec<u8> = i.into_raw().into_iter().flat_map(|v| [(v >> 8) as u8; 3]).collect();
            RgbImage::from_raw(w, h, raw).expect("same size")
        }
        other => other.to_rgb8(),
    }
}

#[cfg(test)]
mod tests {
    use super::jpeg_complete;

    #[test]
    fn a_jpeg_is_complete_only_with_an_end_marker_after_its_last_scan() {
        let soi = [0xFF, 0xD8];
        let thumb = [0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0xD9]; // an EXIF thumbnail: scan + end
        let scan = [0xFF, 0xDA, 0, 1, 0xFF, 0x00, 7, 8];
        let eoi = [0xFF, 0xD9];
        let cat = |parts: &[&[u8]]| parts.concat();
        assert!(jpeg_complete(&cat(&[&soi, &scan, &eoi])));
        assert!(
            jpeg_complete(&cat(&[&soi, &thumb, &scan, &eoi, &[0, 0]])),
            "trailing bytes are fine"
        );
        assert!(!jpeg_complete(&cat(&[&soi, &scan])), "cut after the scan");
        assert!(
            !jpeg_complete(&cat(&[&soi, &thumb, &scan])),
            "the thumbnail's end is not the image's"
        );
        assert!(!jpeg_complete(&cat(&[&soi, &eoi])), "no scan at all");
        assert!(!jpeg_complete(&[]));
    }
}
