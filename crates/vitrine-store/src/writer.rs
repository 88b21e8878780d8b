//! [`CollectionWriter`]: the single writer of a collection; every method is one atomic commit.

use crate::deletes::Bitmap;
use crate::error::{invalid, IoContext, Result};
use crate::manifest::{sync_dir, Manifest, SegmentEntry};
use crate::partition::{partitions_of, PartitionInfo};
use crate::rows::Batch;
use crate::schema::{FieldType, Schema, Value};
use crate::segment::{seg_file, write_segment, RowRef, Segment};
use crate::selection::Selection;
use crate::validate::{check_vector, validate_rows};
use crate::{Day, Error};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per segment file at most (about 256 MB at 512 dimensions).
pub const MAX_SEGMENT_ROWS: usize = 131_072;

/// What an insert did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertReport {
    /// Rows written.
    pub inserted: u64,
    /// Of those, rows that replaced an existing id (or an earlier duplicate in the batch).
    pub replaced: u64,
    /// Partitions touched.
    pub partitions: usize,
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Partitions rewritten.
    pub partitions: usize,
    /// Deleted rows whose space was reclaimed.
    pub rows_reclaimed: u64,
    /// Bytes before and after.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
    /// Segments rewritten because they were written before scan codes existed (they gain them).
    pub segments_upgraded: usize,
}

/// Where each live id is: (segment, row). Ids come from the user's files, so the hash is
/// seeded per process; foldhash rather than SipHash because upserting a 1M-row import hashes
/// every id twice, and SipHash was 7 % of the import's time.
type IdIndex = HashMap<String, (u64, u32), foldhash::fast::RandomState>;

/// The single writer of one collection. Every method is one atomic, durable commit.
pub struct CollectionWriter {
    // Keeps the store's writer lock alive as long as this writer exists.
    _lock: Arc<crate::lock::WriterLock>,
    name: String,
    dir: PathBuf,
    manifest: Manifest,
    segs: HashMap<u64, Arc<Segment>>,
    deletes: HashMap<u64, Bitmap>,
    ids: Option<IdIndex>,
    max_segment_rows: usize,
}

impl CollectionWriter {
    pub(crate) fn open(name: &str, dir: &Path, lock: Arc<crate::lock::WriterLock>) -> Result<CollectionWriter> {
        let manifest = Manifest::load(dir)?;
        let mut w = CollectionWriter {
            _lock: lock,
            name: name.to_string(),
            dir: dir.to_path_buf(),
            manifest,
            segs: HashMap::new(),
            deletes: HashMap::new(),
            ids: None,
            max_segment_rows: MAX_SEGMENT_ROWS,
        };
        for e in &w.manifest.segments {
            if let Some(f) = &e.deletes {
                w.deletes
                    .insert(e.id, Bitmap::read(&dir.join("segments").join(f), e.rows as usize)?);
            }
        }
        w.remove_orphans()?;
        Ok(w)
    }

    /// Limits segment size (tests use small segments to exercise multi-segment paths).
    pub fn set_max_segment_rows(&mut self, n: usize) {
        self.max_segment_rows = n.max(1);
    }

    /// The schema as of the last commit.
    pub fn schema(&self) -> &Schema {
        &self.manifest.schema
    }

    /// The manifest as of the last commit.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Sets provenance entries (e.g. the model that produced the vectors) in one commit.
    pub fn set_info(&mut self, entries: impl IntoIterator<Item = (String, serde_json::Value)>) -> Result<()> {
        let mut m = self.manifest.clone();
        m.info.extend(entries);
        self.publish(m, HashMap::new(), &[])
    }

    /// Adds the user fields of `schema` that the collection lacks, in one commit, so that a
    /// multi-batch import declares every field's final type (an int field that turns float in
    /// a later row) before its first batch. Dimension and metric must match.
    pub fn extend_schema(&mut self, schema: &Schema) -> Result<()> {
        let mut m = self.manifest.clone();
        if schema.dim != m.schema.dim || schema.metric != m.schema.metric {
            return Err(invalid(format!(
                "collection {:?} has dimension {} and metric {}, not {} and {}",
                self.name, m.schema.dim, m.schema.metric, schema.dim, schema.metric
            )));
        }
        for f in &schema.fields {
            m.schema.ensure_field(&f.name, f.ty)?;
        }
        if m.schema == self.manifest.schema {
            return Ok(());
        }
        self.publish(m, HashMap::new(), &[])
    }

    /// The ids among `ids` that no live row has.
    pub fn missing_ids(&mut self, ids: &[String]) -> Result<Vec<String>> {
        let index = self.id_index()?;
        Ok(ids.iter().filter(|id| !index.contains_key(*id)).cloned().collect())
    }

    /// Files in `segments/` that no manifest names are leftovers of a crashed commit.
    fn remove_orphans(&self) -> Result<()> {
        let segdir = self.dir.join("segments");
        let mut live: HashSet<String> = HashSet::new();
        for e in &self.manifest.segments {
            live.insert(format!("seg-{:08}.vseg", e.id));
            if let Some(d) = &e.deletes {
                live.insert(d.clone());
            }
        }
        for ent in std::fs::read_dir(&segdir).at(&segdir)? {
            let ent = ent.at(&segdir)?;
            let name = ent.file_name().to_string_lossy().to_string();
            if !live.contains(&name) {
                tracing::info!(file = %name, "removing file left by an interrupted commit");
                let _ = crate::fsio::remove_file(&ent.path());
            }
        }
        Ok(())
    }

    fn segment(&mut self, id: u64) -> Result<Arc<Segment>> {
        if let Some(s) = self.segs.get(&id) {
            return Ok(s.clone());
        }
        let s = Arc::new(Segment::open(&seg_file(&self.dir, id))?);
        self.segs.insert(id, s.clone());
        Ok(s)
    }

    fn id_index(&mut self) -> Result<&mut IdIndex> {
        if self.ids.is_none() {
            let mut ids = IdIndex::default();
            let entries = self.manifest.segments.clone();
            for e in &entries {
                let seg = self.segment(e.id)?;
                let del = self.deletes.get(&e.id);
                for r in 0..seg.rows() {
                    if !del.is_some_and(|d| d.contains(r)) {
                        ids.insert(seg.id(r).to_string(), (e.id, r as u32));
                    }
                }
            }
            self.ids = Some(ids);
        }
        Ok(self.ids.as_mut().expect("just built"))
    }

    /// Validates a batch against the schema; returns the schema extended by new fields.
    fn validate(&self, batch: &Batch) -> Result<Schema> {
        let dim = self.manifest.schema.dim;
        if batch.vectors.len() != batch.rows.len() * dim {
            return Err(invalid(format!(
                "batch has {} rows but {} vector values; the collection {:?} has dimension {dim}, so {} were expected",
                batch.rows.len(),
                batch.vectors.len(),
                self.name,
                batch.rows.len() * dim
            )));
        }
        let metric = self.manifest.schema.metric;
        {
            use rayon::prelude::*;
            // The first bad row, whichever thread finds it.
            let bad = batch
                .vectors
                .par_chunks_exact(dim.max(1))
                .enumerate()
                .find_map_first(|(i, v)| {
                    check_vector(metric, v)
                        .err()
                        .map(|e| invalid(format!("row {i} (id {:?}): {e}", batch.rows[i].id)))
                });
            if let Some(e) = bad {
                return Err(e);
            }
        }
        validate_rows(&self.manifest.schema, &batch.field_names, &batch.rows)
    }

    /// Inserts (upserts) a batch as one commit: all rows become visible together or none do.
    pub fn insert(&mut self, batch: &Batch) -> Result<InsertReport> {
        self.insert_replacing(batch, &[])
    }

    /// [`CollectionWriter::insert`], also deleting the rows with ids `replaced` in the same
    /// commit (a row that moved to a new id), so no crash can leave both.
    pub fn insert_replacing(&mut self, batch: &Batch, replaced: &[String]) -> Result<InsertReport> {
        let schema = self.validate(batch)?;
        let dim = schema.dim;
        // Last occurrence of an id within the batch wins.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(batch.rows.len());
        for (i, r) in batch.rows.iter().enumerate() {
            last.insert(&r.id, i);
        }
        let mut report = InsertReport {
            replaced: (batch.rows.len() - last.len()) as u64,
            ..Default::default()
        };
        let mut groups: BTreeMap<(&str, Day), Vec<usize>> = BTreeMap::new();
        for (i, r) in batch.rows.iter().enumerate() {
            if last[r.id.as_str()] == i {
                groups
                    .entry((&r.source, Day::from_timestamp(r.timestamp)))
                    .or_default()
                    .push(i);
            }
        }
        report.partitions = groups.len();
        // Map batch field order onto schema order.
        let fields: Vec<(String, FieldType)> = schema.fields.iter().map(|f| (f.name.clone(), f.ty)).collect();
        let pos: Vec<Option<usize>> = fields
            .iter()
            .map(|(n, _)| batch.field_names.iter().position(|b| b == n))
            .collect();
        let aligned: Vec<Vec<Value>> = batch
            .rows
            .iter()
            .map(|r| {
                pos.iter()
                    .map(|p| p.map_or(Value::Null, |p| r.fields[p].clone()))
                    .collect()
            })
            .collect();

        let mut next = self.manifest.next_segment;
        let mut new_entries = Vec::new();
        let mut placed: Vec<(usize, u64, u32)> = Vec::new();
        for ((source, day), idx) in &groups {
            for chunk in idx.chunks(self.max_segment_rows) {
                let id = next;
                next += 1;
                let rows: Vec<RowRef<'_>> = chunk
                    .iter()
                    .map(|&i| RowRef {
                        id: &batch.rows[i].id,
                        uri: &batch.rows[i].uri,
                        timestamp: batch.rows[i].timestamp,
                        fields: &aligned[i],
                        vector: &batch.vectors[i * dim..(i + 1) * dim],
                    })
                    .collect();
                let bytes = self.write_or_forget(id, source, *day, &fields, &rows)?;
                for (r, &i) in chunk.iter().enumerate() {
                    placed.push((i, id, r as u32));
                }
                new_entries.push(SegmentEntry {
                    id,
                    source: source.to_string(),
                    day: *day,
                    rows: chunk.len() as u64,
                    deleted: 0,
                    deletes: None,
                    bytes,
                });
            }
        }
        report.inserted = placed.len() as u64;
        // Upsert: the rows these ids had before are deleted in the same commit.
        let mut changed: HashMap<u64, Bitmap> = HashMap::new();
        let (old, gone) = {
            let ids = self.id_index()?;
            let old: Vec<(u64, u32)> = placed
                .iter()
                .filter_map(|(i, ..)| ids.get(batch.rows[*i].id.as_str()).copied())
                .collect();
            let gone: Vec<(u64, u32)> = replaced
                .iter()
                .filter(|id| !last.contains_key(id.as_str()))
                .filter_map(|id| ids.get(id.as_str()).copied())
                .collect();
            (old, gone)
        };
        report.replaced += old.len() as u64;
        for &(seg, row) in old.iter().chain(&gone) {
            self.mark(&mut changed, seg, row);
        }
        let mut m = self.manifest.clone();
        m.schema = schema;
        m.next_segment = next;
        m.segments.extend(new_entries);
        self.publish(m, changed, &[])?;
        let ids = self.ids.as_mut().expect("built above");
        for id in replaced.iter().filter(|id| !last.contains_key(id.as_str())) {
            ids.remove(id);
        }
        for (i, seg, row) in placed {
            ids.insert(batch.rows[i].id.clone(), (seg, row));
        }
        Ok(report)
    }

    /// Re-reads the manifest and deletion bitmaps from disk after a failed commit.
    fn reload(&mut self) {
        if let Ok(m) = Manifest::load(&self.dir) {
            let mut deletes = HashMap::new();
            for e in &m.segments {
                if let Some(f) = &e.deletes {
                    if let Ok(b) = Bitmap::read(&self.dir.join("segments").join(f), e.rows as usize) {
                        deletes.insert(e.id, b);
                    }
                }
            }
            self.manifest = m;
            self.deletes = deletes;
        }
        // Segment ids past every file on disk, including orphans of the failed commit.
        if let Ok(rd) = std::fs::read_dir(self.dir.join("segments")) {
            for ent in rd.flatten() {
                let name = ent.file_name().to_string_lossy().to_string();
                if let Some(id) = name
                    .strip_prefix("seg-")
                    .and_then(|r| r.get(..8))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    self.manifest.next_segment = self.manifest.next_segment.max(id + 1);
                }
            }
        }
        self.ids = None;
        self.segs.clear();
    }

    /// Writes segment `id`; if that fails, re-reads what is durable, so that the next commit
    /// numbers its segments past the files this one left behind (a new segment file is never
    /// overwritten, so reusing the number would fail every later commit).
    fn write_or_forget(
        &mut self,
        id: u64,
        source: &str,
        day: Day,
        fields: &[(String, FieldType)],
        rows: &[RowRef<'_>],
    ) -> Result<u64> {
        let dim = self.manifest.schema.dim;
        write_segment(&seg_file(&self.dir, id), source, day, dim, fields, rows).inspect_err(|_| self.reload())
    }

    fn mark(&self, changed: &mut HashMap<u64, Bitmap>, seg: u64, row: u32) {
        let rows = self
            .manifest
            .segments
            .iter()
            .find(|e| e.id == seg)
            .map_or(0, |e| e.rows as usize);
        changed
            .entry(seg)
            .or_insert_with(|| self.deletes.get(&seg).cloned().unwrap_or_else(|| Bitmap::new(rows)))
            .insert(row as usize);
    }

    /// Writes changed bitmaps and the new manifest, then updates memory and removes dead files.
    fn publish(&mut self, mut m: Manifest, changed: HashMap<u64, Bitmap>, removed: &[u64]) -> Result<()> {
        m.version += 1;
        let segdir = self.dir.join("segments");
        let mut dead: Vec<PathBuf> = Vec::new();
        for e in m.segments.iter_mut() {
            if let Some(b) = changed.get(&e.id) {
                let name = format!("seg-{:08}.del-{:08}", e.id, m.version);
                if let Err(e) = b.write(&segdir.join(&name)) {
                    // The segments this commit wrote are orphans now: number the next past them.
                    self.reload();
                    return Err(e);
                }
                if let Some(old) = e.deletes.replace(name) {
                    dead.push(segdir.join(old));
                }
                e.deleted = b.count() as u64;
            }
        }
        for id in removed {
            if let Some(e) = self.manifest.segments.iter().find(|e| e.id == *id) {
                dead.push(seg_file(&self.dir, *id));
                if let Some(d) = &e.deletes {
                    dead.push(segdir.join(d));
                }
            }
        }
        m.segments.retain(|e| !removed.contains(&e.id));
        if let Err(e) = sync_dir(&segdir).and_then(|_| m.publish(&self.dir)) {
            // Whether or not the new manifest made it to disk, memory no longer knows: re-read
            // what is durable so the next commit neither reuses segment ids nor forgets deletes.
            self.reload();
            return Err(e);
        }
        self.manifest = m;
        for (id, b) in changed {
            self.deletes.insert(id, b);
        }
        for id in removed {
            self.deletes.remove(id);
            self.segs.remove(id);
        }
        for p in dead {
            let _ = crate::fsio::remove_file(&p);
        }
        Ok(())
    }

    /// Deletes rows by id; returns how many existed.
    pub fn delete_ids(&mut self, ids: &[String]) -> Result<u64> {
        let unique: HashSet<&String> = ids.iter().collect();
        let locs: Vec<(u64, u32)> = {
            let index = self.id_index()?;
            unique.iter().filter_map(|id| index.get(*id).copied()).collect()
        };
        let mut changed = HashMap::new();
        for &(seg, row) in &locs {
            self.mark(&mut changed, seg, row);
        }
        if locs.is_empty() {
            return Ok(0);
        }
        self.publish(self.manifest.clone(), changed, &[])?;
        let index = self.ids.as_mut().expect("built");
        for id in ids {
            index.remove(id);
        }
        Ok(locs.len() as u64)
    }

    /// Deletes every live row in `selection`; returns how many.
    pub fn delete_where(&mut self, selection: &Selection) -> Result<u64> {
        let mut changed = HashMap::new();
        let mut n = 0;
        let entries = self.manifest.segments.clone();
        for e in &entries {
            if !selection.includes_partition(&e.source, e.day) {
                continue;
            }
            let seg = self.segment(e.id)?;
            let del = self.deletes.get(&e.id);
            let (mask, deleted, _) = selection.excluded(&seg, del);
            let _ = deleted;
            for r in 0..seg.rows() {
                let gone = del.is_some_and(|d| d.contains(r));
                if !gone && !mask.as_ref().is_some_and(|m| m.contains(r)) {
                    self.mark(&mut changed, e.id, r as u32);
                    n += 1;
                }
            }
        }
        if n > 0 {
            self.publish(self.manifest.clone(), changed, &[])?;
            self.ids = None;
        }
        Ok(n)
    }

    /// Drops whole partitions for which `pred(source, day)` holds; cost grows with the number of
    /// segments dropped, not rows. Returns what was dropped.
    pub fn drop_partitions(&mut self, pred: impl Fn(&str, Day) -> bool) -> Result<Vec<PartitionInfo>> {
        let dropped: Vec<PartitionInfo> = partitions_of(&self.manifest)
            .into_iter()
            .filter(|p| pred(&p.source, p.day))
            .collect();
        if dropped.is_empty() {
            return Ok(dropped);
        }
        let removed: Vec<u64> = self
            .manifest
            .segments
            .iter()
            .filter(|e| pred(&e.source, e.day))
            .map(|e| e.id)
            .collect();
        self.publish(self.manifest.clone(), HashMap::new(), &removed)?;
        self.ids = None;
        Ok(dropped)
    }

    /// Drops one partition, or fails with [`Error::UnknownPartition`].
    pub fn drop_partition(&mut self, source: &str, day: Day) -> Result<PartitionInfo> {
        let mut d = self.drop_partitions(|s, d| s == source && d == day)?;
        d.pop().ok_or_else(|| Error::UnknownPartition {
            collection: self.name.clone(),
            source_name: source.to_string(),
            day: day.to_string(),
        })
    }

    /// Partitions and their statistics as of the last commit.
    pub fn partitions(&self) -> Vec<PartitionInfo> {
        partitions_of(&self.manifest)
    }

    /// Rewrites partitions that have deleted rows, several small segments, or segments written
    /// before scan codes existed (which gain them: this is how a store is upgraded).
    pub fn compact(&mut self) -> Result<CompactReport> {
        let mut report = CompactReport::default();
        let mut by_part: BTreeMap<(String, Day), Vec<SegmentEntry>> = BTreeMap::new();
        for e in &self.manifest.segments {
            by_part.entry((e.source.clone(), e.day)).or_default().push(e.clone());
        }
        let fields: Vec<(String, FieldType)> = self
            .manifest
            .schema
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.ty))
            .collect();
        let mut next = self.manifest.next_segment;
        let mut new_entries = Vec::new();
        let mut removed = Vec::new();
        for ((source, day), entries) in by_part {
            let small = entries
                .iter()
                .filter(|e| (e.rows as usize) < self.max_segment_rows / 2)
                .count();
            let deleted: u64 = entries.iter().map(|e| e.deleted).sum();
            let mut without_codes = 0;
            for e in &entries {
                without_codes += usize::from(self.segment(e.id)?.codes().is_none());
            }
            if deleted == 0 && small < 2 && without_codes == 0 {
                continue;
            }
            report.segments_upgraded += without_codes;
            report.partitions += 1;
            report.rows_reclaimed += deleted;
            let mut segs = Vec::new();
            for e in &entries {
                report.bytes_before += e.bytes;
                segs.push((self.segment(e.id)?, self.deletes.get(&e.id).cloned()));
                removed.push(e.id);
            }
            let mut live: Vec<(usize, usize, Vec<Value>)> = Vec::new();
            for (si, (s, d)) in segs.iter().enumerate() {
                for r in 0..s.rows() {
                    if !d.as_ref().is_some_and(|d| d.contains(r)) {
                        let user = s.user_fields(r);
                        let vals = fields
                            .iter()
                            .map(|(n, _)| {
                                user.iter()
                                    .find(|(u, _)| u == n)
                                    .map_or(Value::Null, |(_, v)| v.clone())
                            })
                            .collect();
                        live.push((si, r, vals));
                    }
                }
            }
            for chunk in live.chunks(self.max_segment_rows) {
                let rows: Vec<RowRef<'_>> = chunk
                    .iter()
                    .map(|(si, r, vals)| {
                        let s = &segs[*si].0;
                        RowRef {
                            id: s.id(*r),
                            uri: s.uri(*r),
                            timestamp: s.timestamp(*r),
                            fields: vals,
                            vector: s.vector(*r),
                        }
                    })
                    .collect();
                let id = next;
                next += 1;
                let bytes = self.write_or_forget(id, &source, day, &fields, &rows)?;
                report.bytes_after += bytes;
                new_entries.push(SegmentEntry {
                    id,
                    source: source.clone(),
                    day,
                    rows: chunk.len() as u64,
                    deleted: 0,
                    deletes: None,
                    bytes,
                });
            }
        }
        if report.partitions > 0 {
            let mut m = self.manifest.clone();
            m.next_segment = next;
            m.segments.extend(new_entries);
            self.publish(m, HashMap::new(), &removed)?;
            self.ids = None;
        }
        Ok(report)
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
