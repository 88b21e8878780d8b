//! The manifest: the one file that says what a collection is.
//!
//! `manifest.json` lists the schema and every live segment with its partition and deletion
//! bitmap. Every change (insert, delete, drop, compact) writes new immutable files first,
//! fsyncs them and their directory, then publishes a new manifest by writing
//! `manifest.json.tmp`, fsyncing it, renaming it over `manifest.json` and fsyncing the
//! directory. A crash before the rename leaves the previous manifest in force (the new files are
//! orphans, removed when the next writer opens); after it, the change is durable. Readers load
//! whichever manifest is current and never see a half-applied change.
//!
//! The JSON document is followed by a second one, `{"crc32": N}`, the CRC-32 of the first's
//! bytes, so a flipped bit that still parses (a digit of a row count, a letter of a model name)
//! is caught by every reader. Manifests written before the checksum have no trailer and are
//! read as they are; the next commit adds it.

use crate::error::{IoContext, Result};
use crate::fsio;
use crate::schema::Schema;
use crate::{Day, Error};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One live segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Segment number; the file is `segments/seg-{id:08}.vseg`.
    pub id: u64,
    /// Partition source.
    pub source: String,
    /// Partition day.
    pub day: Day,
    /// Rows in the file.
    pub rows: u64,
    /// Rows marked deleted.
    pub deleted: u64,
    /// File name of the deletion bitmap, if any row is deleted.
    pub deletes: Option<String>,
    /// Size of the segment file.
    pub bytes: u64,
}

/// A collection's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub format: u32,
    /// Incremented by every published change.
    pub version: u64,
    /// The schema.
    pub schema: Schema,
    /// The next segment number to use.
    pub next_segment: u64,
    /// Live segments.
    pub segments: Vec<SegmentEntry>,
    /// Free-form provenance, such as the model that produced the vectors.
    #[serde(default)]
    pub info: serde_json::Map<String, serde_json::Value>,
}

pub(crate) const FILE: &str = "manifest.json";

impl Manifest {
    /// Reads `dir/manifest.json`, verifying its checksum.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(FILE);
        let text = std::fs::read(&path).at(&path)?;
        let corrupt = |reason: String| Error::Corrupt {
            path: path.clone(),
            reason,
        };
        let mut docs = serde_json::Deserializer::from_slice(&text).into_iter::<serde_json::Value>();
        let body = match docs.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(corrupt(format!("unreadable manifest: {e}"))),
            None => return Err(corrupt("empty manifest".into())),
        };
        let body_end = docs.byte_offset();
        match docs.next() {
            None => {} // written before manifests carried a checksum
            Some(Ok(trailer)) => {
                let want = trailer
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .and_then(|o| o.get("crc32"))
                    .and_then(serde_json::Value::as_u64)
                    .ok_or_else(|| corrupt(format!("unreadable checksum trailer {trailer}")))?;
                if u64::from(crc32fast::hash(&text[..body_end])) != want {
                    return Err(corrupt("manifest checksum mismatch".into()));
                }
                if docs.next().is_some() {
                    return Err(corrupt("trailing data after the checksum".into()));
                }
            }
            Some(Err(e)) => return Err(corrupt(format!("unreadable checksum trailer: {e}"))),
        }
        let m: Manifest = serde_json::from_value(body).map_err(|e| corrupt(format!("unreadable manifest: {e}")))?;
        if m.format != 1 {
            return Err(corrupt(format!("unsupported manifest format {}", m.format)));
        }
        Ok(m)
    }

    /// Atomically replaces `dir/manifest.json` with `self` (see the module docs).
    pub fn publish(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join("manifest.json.tmp");
        let path = dir.join(FILE);
        let mut bytes = serde_json::to_vec_pretty(self).expect("manifest serializes");
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(format!("\n{{\"crc32\": {crc}}}\n").as_bytes());
        let mut f = fsio::create(&tmp, false)?;
        fsio::write(&mut f, &tmp, &bytes).at(&tmp)?;
        fsio::sync(&f, &tmp)?;
        fsio::rename(&tmp, &path)?;
        sync_dir(dir)
    }
}

pub(crate) use crate::fsio::sync_dir;
