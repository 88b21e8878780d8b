//! When a photo was taken, from its EXIF data.

/// Unix seconds of the photo's EXIF `DateTimeOriginal` (else `DateTime`), if the file's bytes
/// have one.
///
/// EXIF times are the camera's local wall-clock time; `OffsetTimeOriginal` (EXIF 2.31) is
/// applied when present, otherwise the time is taken as UTC. Only the file's metadata is read,
/// never its pixels. Any problem (no EXIF, unreadable, a malformed date) gives `None`, so the
/// caller falls back to the file's modification time.
pub fn taken_at(bytes: &[u8]) -> Option<i64> {
    let data = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .ok()?;
    let field = data
        .get_field(exif::Tag::DateTimeOriginal, exif::In::PRIMARY)
        .or_else(|| data.get_field(exif::Tag::DateTime, exif::In::PRIMARY))?;
    let exif::Value::Ascii(ref parts) = field.value else {
        return None;
    };
    let mut dt = exif::DateTime::from_ascii(parts.first()?).ok()?;
    if let Some(off) = data.get_field(exif::Tag::OffsetTimeOriginal, exif::In::PRIMARY) {
        if let exif::Value::Ascii(ref o) = off.value {
            if let Some(o) = o.first() {
                let _ = dt.parse_offset(o);
            }
        }
    }
    let date = chrono::NaiveDate::from_ymd_opt(dt.year as i32, dt.month as u32, dt.day as u32)?;
    let time = chrono::NaiveTime::from_hms_opt(dt.hour as u32, dt.minute as u32, dt.second as u32)?;
    let secs = date.and_time(time).and_utc().timestamp();
    Some(secs - dt.offset.map_or(0, |m| m as i64 * 60))
}
