//! Thumbnails kept with each indexed row, so results can be shown after the originals move.

use base64::Engine as _;

/// The user field holding each row's thumbnail (base64 JPEG); output formats leave it out.
pub const THUMBNAIL_FIELD: &str = "thumbnail";
/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 128;

/// A JPEG thumbnail whose longer side is at most [`THUMBNAIL_SIDE`], base64-encoded.
pub fn thumbnail(img: &vitrine_image::RgbImage) -> String {
    let (w, h) = (img.width().max(1), img.height().max(1));
    let s = THUMBNAIL_SIDE as f64 / w.max(h) as f64;
    let small;
    let img = if s < 1.0 {
        let (tw, th) = (
            ((w as f64 * s).round() as u32).max(1),
            ((h as f64 * s).round() as u32).max(1),
        );
        small = vitrine_image::resample::resize_bicubic(img, tw, th);
        &small
    } else {
        img
    };
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    if img.write_with_encoder(enc).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// The JPEG bytes of a stored thumbnail, if it is one: base64 that decodes to a JPEG stream.
/// Anything else (an imported field that happens to be called `thumbnail`, damaged data) is not
/// a thumbnail and is never passed on to a page.
pub fn decode_stored(value: &vitrine_store::Value) -> Option<Vec<u8>> {
    let vitrine_store::Value::Str(s) = value else {
        return None;
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    bytes.starts_with(&[0xFF, 0xD8, 0xFF]).then_some(bytes)
}

/// A thumbnail made now from the local file at `uri` (a path or `file://` uri), if it is an
/// image.
pub fn from_file(uri: &str) -> Option<Vec<u8>> {
    let path = std::path::Path::new(uri.strip_prefix("file://").unwrap_or(uri));
    if !path.is_file() {
        return None;
    }
    let img = vitrine_image::decode(path, &vitrine_image::Limits::default()).ok()?;
    decode_stored(&vitrine_store::Value::Str(thumbnail(&img)))
}

impl crate::Engine {
    /// The thumbnail `index` stored for row `id` (JPEG bytes), if the row exists and has one.
    pub fn stored_thumbnail(&self, collection: &str, id: &str) -> crate::Result<Option<Vec<u8>>> {
        let reader = self.reader(collection)?;
        if reader.schema().field_type(THUMBNAIL_FIELD).is_none() {
            return Ok(None);
        }
        let rec = reader.get(&[id.to_string()], &[THUMBNAIL_FIELD.to_string()], false)?;
        Ok(rec
            .into_iter()
            .flatten()
            .next()
            .and_then(|r| r.fields.get(THUMBNAIL_FIELD).and_then(decode_stored)))
    }

    /// JPEG thumbnails for rows of `collection` given as (id, uri): the one `index` stored, else
    /// one made from the local file at the uri; `None` where neither exists.
    pub fn thumbnails(&self, collection: &str, rows: &[(String, String)]) -> crate::Result<Vec<Option<Vec<u8>>>> {
        let reader = self.reader(collection)?;
        let ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
        let stored = if reader.schema().field_type(THUMBNAIL_FIELD).is_some() {
            reader.get(&ids, &[THUMBNAIL_FIELD.to_string()], false)?
        } else {
            vec![None; ids.len()]
        };
        Ok(rows
            .iter()
            .zip(stored)
            .map(|((_, uri), rec)| {
                rec.and_then(|r| r.fields.get(THUMBNAIL_FIELD).and_then(decode_stored))
                    .or_else(|| from_file(uri))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitrine_store::Value;

    #[test]
    fn only_base64_jpeg_counts_as_a_stored_thumbnail() {
        let img = vitrine_image::RgbImage::from_pixel(300, 200, image::Rgb([200, 30, 30]));
        let t = thumbnail(&img);
        let jpeg = decode_stored(&Value::Str(t)).expect("a real thumbnail");
        assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF]);
        let decoded = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (128, 85));
        // Markup, other images and non-strings are not thumbnails: nothing of them reaches a page.
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nrest");
        for v in [
            Value::Str("x\" onerror=\"alert(1)".into()),
            Value::Str(png),
            Value::Str(String::new()),
            Value::Int(3),
            Value::Null,
        ] {
            assert_eq!(decode_stored(&v), None, "{v:?}");
        }
    }
}
