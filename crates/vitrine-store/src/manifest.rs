//! The manifest: the one file that says what a collection is.
//!
//! `manifest.json` lists the schema and every live segment with its partition and deletion
//! bitmap. Every change (insert, delete, drop, compact) writes new immutable files first,
//! fsyncs them and their directory, then publishes a new manifest by writing
//! `manifest.json.tmp`, fsyncing it, renaming it over `manifest.json` and fsyncing the
//! directory. A crash before the rename leaves the previous manifest in force (the new files are
//! orphans, removed when the next writer opens); after it, the change is durable. Readers load
//! whichever manifest is current and never see a half-applied change.

use crate::error::{IoContext, Result};
use crate::schema::Schema;
use crate::{Day, Error};
use serde::{Deserialize, Serialize};
use std::io::Write;
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
    /// Reads `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(FILE);
        let text = std::fs::read(&path).at(&path)?;
        let m: Manifest = serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: format!("unreadable manifest: {e}"),
        })?;
        if m.format != 1 {
            return Err(Error::Corrupt {
                path,
                reason: format!("unsupported manifest format {}", m.format),
            });
        }
        Ok(m)
    }

    /// Atomically replaces `dir/manifest.json` with `self` (see the module docs).
    pub fn publish(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join("manifest.json.tmp");
        let path = dir.join(FILE);
        let mut f = std::fs::File::create(&tmp).at(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).expect("manifest serializes"))
            .at(&tmp)?;
        f.sync_all().at(&tmp)?;
        std::fs::rename(&tmp, &path).at(&path)?;
        sync_dir(dir)
    }
}

/// Fsyncs a directory so that file creations and renames in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).at(dir)?.sync_all().at(dir)
}
