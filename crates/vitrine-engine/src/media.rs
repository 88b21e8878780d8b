//! Image decoding and resampling as indexing does them, for tools that prepare pictures the
//! way the engine sees them (the demo model's training data, preprocessing benchmarks).

pub use vitrine_image::{Limits, RgbImage};

/// Decodes an image file with the default size limits (EXIF orientation applied, RGB).
pub fn decode(path: &std::path::Path) -> crate::Result<RgbImage> {
    Ok(vitrine_image::decode(path, &Limits::default())?)
}

/// Decodes image bytes (`name` labels errors) with the default size limits.
pub fn decode_bytes(bytes: &[u8], name: &str) -> crate::Result<RgbImage> {
    Ok(vitrine_image::decode_bytes(bytes, name, &Limits::default())?)
}

/// PIL-exact bicubic resize.
pub fn resize(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    vitrine_image::resample::resize_bicubic(img, width, height)
}
