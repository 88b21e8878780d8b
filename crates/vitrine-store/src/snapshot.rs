//! [`Snapshot`]: a consistent, read-only view of a collection, and the rows it can show.

use crate::deletes::Bitmap;
use crate::error::Result;
use crate::manifest::{Manifest, SegmentEntry};
use crate::partition::{partitions_of, PartitionInfo};
use crate::schema::{Schema, Value};
use crate::search::{self, SearchRequest, SearchResults, SegRef};
use crate::segment::{seg_file, Segment};
use crate::selection::Selection;
use crate::Error;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A consistent, read-only view of a collection as of one manifest version.
///
/// Opening maps every segment file; nothing is copied. Writers publishing later versions
/// never disturb a snapshot (removed files stay readable while mapped).
#[derive(Debug)]
pub struct Snapshot {
    name: String,
    manifest: Manifest,
    segments: Vec<LiveSegment>,
    /// Computed once: every query checks its sources against them.
    partitions: Vec<PartitionInfo>,
    sources: Vec<String>,
}

/// Where a row lives in a snapshot: (segment number, row in the segment). Valid only for the
/// snapshot that gave it.
pub type RowLocation = (u64, u32);

/// One row of a snapshot, read in place from its segment.
#[derive(Clone, Copy)]
pub struct RowView<'a> {
    seg: &'a Segment,
    row: usize,
}

impl<'a> RowView<'a> {
    /// Primary key.
    pub fn id(&self) -> &'a str {
        self.seg.id(self.row)
    }
    /// Where the image lives.
    pub fn uri(&self) -> &'a str {
        self.seg.uri(self.row)
    }
    /// Partition source.
    pub fn source(&self) -> &'a str {
        &self.seg.footer().source
    }
    /// Partition day.
    pub fn day(&self) -> crate::Day {
        self.seg.footer().day
    }
    /// Unix seconds.
    pub fn timestamp(&self) -> i64 {
        self.seg.timestamp(self.row)
    }
    /// The vector.
    pub fn vector(&self) -> &'a [f32] {
        self.seg.vector(self.row)
    }
    /// The value of user field `name` (null if the row or its segment has none).
    pub fn value(&self, name: &str) -> Value {
        self.seg.accessor(name).get(self.row).to_value()
    }
}

/// A segment of a snapshot: its manifest entry, its mapping and its deletes.
type LiveSegment = (SegmentEntry, Arc<Segment>, Option<Bitmap>);

impl Snapshot {
    pub(crate) fn open(name: &str, dir: &Path) -> Result<Snapshot> {
        // A writer may remove files between our reading the manifest and opening them; it
        // publishes the next manifest before it removes anything, so a missing file under a
        // manifest that has since changed means "read it again", and one under the same
        // manifest means damage. A busy writer can win this race several times in a row (it
        // did, six times, under a loaded machine), so only progress bounds the retries.
        let mut missed: Option<u64> = None;
        loop {
            let manifest = Manifest::load(dir)?;
            match Self::open_files(dir, &manifest) {
                Ok(segments) => {
                    let partitions = partitions_of(&manifest);
                    let mut sources: Vec<String> = partitions.iter().map(|p| p.source.clone()).collect();
                    sources.dedup(); // partitions are sorted by (source, day)
                    return Ok(Snapshot {
                        name: name.to_string(),
                        manifest,
                        segments,
                        partitions,
                        sources,
                    });
                }
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && missed != Some(manifest.version) =>
                {
                    missed = Some(manifest.version);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens every segment, in parallel: a day-by-day store has hundreds of small ones, and
    /// each open reads a footer and validates string offsets.
    fn open_files(dir: &Path, m: &Manifest) -> Result<Vec<LiveSegment>> {
        use rayon::prelude::*;
        m.segments
            .par_iter()
            .map(|e| {
                let seg = Segment::open(&seg_file(dir, e.id))?;
                check_entry(e, &seg, m.schema.dim)?;
                let del = match &e.deletes {
                    Some(f) => Some(Bitmap::read(&dir.join("segments").join(f), seg.rows())?),
                    None => None,
                };
                Ok((e.clone(), Arc::new(seg), del))
            })
            .collect()
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.manifest.schema
    }

    /// The manifest this snapshot reads.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Live rows in the collection.
    pub fn rows(&self) -> u64 {
        self.manifest.segments.iter().map(|e| e.rows - e.deleted).sum()
    }

    /// Partitions with their statistics, sorted by (source, day).
    pub fn partitions(&self) -> &[PartitionInfo] {
        &self.partitions
    }

    /// The sources that have partitions, sorted.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Fails with [`Error::UnknownSource`] if `selection` names a source the collection has no
    /// partition of.
    pub fn check_sources(&self, selection: &Selection) -> Result<()> {
        let known = &self.sources;
        match selection.sources.iter().find(|s| known.binary_search(s).is_err()) {
            None => Ok(()),
            Some(s) => Err(Error::UnknownSource {
                collection: self.name.clone(),
                source_name: s.clone(),
                known: known.join(", "),
            }),
        }
    }

    /// Runs an exact search.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResults> {
        self.check_sources(&req.selection)?;
        let segs: Vec<SegRef<'_>> = self
            .segments
            .iter()
            .map(|(e, s, d)| SegRef {
                id: e.id,
                seg: s,
                deletes: d.as_ref(),
            })
            .collect();
        let parts = self.partitions().len();
        search::search(self.manifest.schema.metric, self.manifest.schema.dim, &segs, parts, req)
    }

    /// The row at `location` (from a [`crate::Hit`] or [`Snapshot::locate`]).
    pub fn row(&self, location: RowLocation) -> Option<RowView<'_>> {
        let (_, seg, _) = self.segments.iter().find(|(e, ..)| e.id == location.0)?;
        let row = location.1 as usize;
        (row < seg.rows()).then_some(RowView { seg, row })
    }

    /// Where the live rows with these primary keys are (`None` for ids with no live row), in one
    /// pass over the id columns.
    pub fn locate(&self, ids: &[String]) -> Vec<Option<RowLocation>> {
        let mut want: HashMap<&str, Vec<usize>> = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            want.entry(id.as_str()).or_default().push(i);
        }
        let mut out = vec![None; ids.len()];
        for (e, seg, del) in &self.segments {
            for r in 0..seg.rows() {
                if let Some(slots) = want.get(seg.id(r)) {
                    if !del.as_ref().is_some_and(|d| d.contains(r)) {
                        for &i in slots {
                            out[i] = Some((e.id, r as u32));
                        }
                    }
                }
            }
        }
        out
    }

    /// Calls `visit` for every live row in `selection`, in storage order.
    pub fn for_each_row<E>(
        &self,
        selection: &Selection,
        mut visit: impl FnMut(RowView<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        for (_, seg, del) in &self.segments {
            if !selection.includes_partition(&seg.footer().source, seg.footer().day) {
                continue;
            }
            let (mask, ..) = selection.excluded(seg, del.as_ref());
            for row in 0..seg.rows() {
                if !mask.as_ref().is_some_and(|m| m.contains(row)) {
                    visit(RowView { seg, row })?;
                }
            }
        }
        Ok(())
    }

    /// Reads every byte of every segment and checks the checksums; fails on the first damaged
    /// file ([`crate::Store::check`] names them all).
    pub fn verify(&self) -> Result<()> {
        self.segments.iter().try_for_each(|(_, s, _)| s.verify())
    }
}

pub(crate) fn check_entry(e: &SegmentEntry, seg: &Segment, dim: usize) -> Result<()> {
    let f = seg.footer();
    if f.rows != e.rows || f.dim as usize != dim || f.source != e.source || f.day != e.day {
        return Err(Error::Corrupt {
            path: seg.path().to_path_buf(),
            reason: "segment does not match its manifest entry".into(),
        });
    }
    Ok(())
}
