//! Images in, model-ready pixels out.
//!
//! * [`decode`] — JPEG (incl. progressive, CMYK), PNG (incl. 16-bit, palette, alpha), WebP, GIF
//!   (first frame), BMP and TIFF through the `image` crate, with the dimensions checked against
//!   [`Limits`] *before* any pixel is decoded (decompression bombs, 50k-pixel panoramas) and an
//!   allocation cap during decoding; EXIF orientation applied; converted to 8-bit RGB as PIL's
//!   `convert("RGB")` does (alpha dropped, grey replicated, palette expanded, 16-bit RGB → high
//!   byte). One deliberate difference: PIL clamps 16-bit *grey* (`I;16`) to white; we take its
//!   high byte like 16-bit RGB, so the picture survives.
//! * [`resample`] — PIL's bicubic resampling re-implemented bit for bit (same filter, same
//!   fixed-point coefficients, same two passes and rounding), so resized pixels equal PIL's.
//! * [`Preprocess`] — the checkpoint's `preprocessor_config.json` (or transformers 5's
//!   `processor_config.json`) applied like transformers' CLIP image processor: shortest edge
//!   resized with `int()` truncation, center crop with floored offsets, rescale in f64 then f32,
//!   normalise in f32, channels first.
//!
//! * [`taken_at`] — EXIF `DateTimeOriginal`, the day of a photo that has no other date.
//!
//! Every error names the file and the reason; nothing here panics on bad input.
#![deny(missing_docs)]

mod decode;
mod exif;
mod preprocess;
pub mod resample;

pub use decode::{decode, decode_bytes, Limits};
pub use exif::taken_at;
pub use preprocess::Preprocess;

/// An 8-bit RGB image.
pub type RgbImage = image::RgbImage;

/// Errors of the image crate; each names the input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The bytes are not an image we can decode (corrupt, truncated, unsupported format).
    #[error("{path}: {reason}")]
    Decode {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The image is larger than the limits allow.
    #[error("{path}: {reason}")]
    TooLarge {
        /// The file.
        path: String,
        /// Which limit.
        reason: String,
    },
    /// A preprocessing config that cannot be used.
    #[error("{path}: {reason}")]
    Config {
        /// The config file.
        path: String,
        /// Why.
        reason: String,
    },
}
