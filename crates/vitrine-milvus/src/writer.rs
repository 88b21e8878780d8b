//! Writing to Milvus: collections, upserts that never leave a second copy, deletes, retention.
//!
//! Milvus has no multi-request transactions, so the order of steps is chosen so that an
//! interruption never loses an acknowledged row: an upsert writes the new copies first
//! (Milvus's upsert replaces within one partition atomically), then deletes the old copies that
//! lived in another partition, then updates the row counts; a re-run of the same import repairs
//! whatever an interruption left. Every write ends with a `Strong` read (the barrier), so it is
//! visible to every reader when the call returns.

use crate::expr;
use crate::meta::{self, CollectionDoc, DayCounts};
use crate::names;
use crate::reader::fields_json;
use crate::{metric_type, Remote};
use milvus::v2::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use vitrine_engine::backend::{CollectionWriter, DeleteReport, StoreWriter};
use vitrine_engine::{Day, Error, ErrorKind, InsertReport, PartitionInfo, Result, Schema, Selection};
use vitrine_store::Batch;

/// Longest id, uri and source accepted (Milvus VarChar lengths of the columns).
pub const MAX_ID: usize = 4096;
/// See [`MAX_ID`].
pub const MAX_URI: usize = 65_535;
/// See [`MAX_ID`].
pub const MAX_SOURCE: usize = 256;
/// Bytes per insert request: well under gRPC's 64 MB message cap.
const MAX_REQUEST_BYTES: usize = 32 << 20;

/// The writer of collections on a Milvus server.
pub struct MilvusStoreWriter {
    remote: Arc<Remote>,
}

impl MilvusStoreWriter {
    pub(crate) fn new(remote: Arc<Remote>) -> MilvusStoreWriter {
        MilvusStoreWriter { remote }
    }
}

impl StoreWriter for MilvusStoreWriter {
    fn has_collection(&self, name: &str) -> Result<bool> {
        Ok(meta::collection(&self.remote, name)?.is_some())
    }

    fn create_collection(&mut self, name: &str, schema: &Schema) -> Result<()> {
        vitrine_store::check_name("collection", name)?;
        let r = &self.remote;
        if meta::collection(r, name)?.is_some() {
            return Err(Error::Backend {
                backend: r.location.clone(),
                message: format!("collection {name:?} already exists"),
                kind: ErrorKind::Conflict,
                source: None,
            });
        }
        let milvus = names::collection(name);
        let fields = CollectionSchema::new()
            .add_field(
                FieldSchema::new()
                    .name("id")
                    .data_type(DataType::VarChar)
                    .max_length(MAX_ID as u32)
                    .primary_key(true),
            )
            .add_field(
                FieldSchema::new()
                    .name("uri")
                    .data_type(DataType::VarChar)
                    .max_length(MAX_URI as u32),
            )
            .add_field(
                FieldSchema::new()
                    .name("source")
                    .data_type(DataType::VarChar)
                    .max_length(MAX_SOURCE as u32),
            )
            .add_field(
                FieldSchema::new()
                    .name("day")
                    .data_type(DataType::VarChar)
                    .max_length(10),
            )
            .add_field(FieldSchema::new().name("timestamp").data_type(DataType::Int64))
            .add_field(FieldSchema::new().name(expr::FIELDS).data_type(DataType::Json))
            .add_field(
                FieldSchema::new()
                    .name("vector")
                    .data_type(DataType::FloatVector)
                    .dimension(schema.dim as u32),
            );
        let metric = metric_type(schema.metric);
        let (m1, m2, m3) = (milvus.clone(), milvus.clone(), milvus.clone());
        let description = format!("vitrine collection {name}");
        // A Milvus collection left by a creation that was interrupted before its record was
        // written is vitrine's own (the prefix): replace it.
        r.call(&format!("creating {milvus}"), |c| async move {
            if c.has_collection(HasCollectionRequest::builder().collection_name(m1.clone()).build()?)
                .await?
                .exists()
            {
                c.drop_collection(DropCollectionRequest::builder().collection_name(m1.clone()).build()?)
                    .await?;
            }
            c.create_collection(
                CreateCollectionRequest::builder()
                    .collection_name(m1)
                    .description(description)
                    .schema(fields)
                    .build()?,
            )
            .await?;
            c.create_index(
                CreateIndexRequest::builder()
                    .collection_name(m2)
                    .index_param(
                        IndexParam::new()
                            .field_name("vector")
                            .index_type(IndexType::Flat)
                            .metric_type(metric),
                    )
                    .sync(true)
                    .build()?,
            )
            .await
        })?;
        meta::load(r, &m3)?;
        meta::put_collection(
            r,
            &CollectionDoc {
                name: name.to_string(),
                milvus,
                schema: schema.clone(),
                info: Default::default(),
                created: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
                    .to_string(),
            },
        )?;
        meta::barrier(r, &m3)?;
        Ok(())
    }

    fn drop_collection(&mut self, name: &str) -> Result<()> {
        let r = &self.remote;
        let Some(doc) = meta::collection(r, name)? else {
            return Err(meta::unknown(r, name));
        };
        let milvus = doc.milvus.clone();
        r.call(&format!("dropping {milvus}"), |c| async move {
            if c.has_collection(
                HasCollectionRequest::builder()
                    .collection_name(milvus.clone())
                    .build()?,
            )
            .await?
            .exists()
            {
                c.drop_collection(DropCollectionRequest::builder().collection_name(milvus).build()?)
                    .await?;
            }
            Ok(())
        })?;
        meta::forget(r, name)?;
        meta::strong_count(r, meta::META, "key != \"\"")?;
        let side = crate::side_dir_of(r, &doc);
        if side.exists() {
            std::fs::remove_dir_all(&side).map_err(|source| Error::Io { path: side, source })?;
        }
        Ok(())
    }

    fn collection(&mut self, name: &str) -> Result<Box<dyn CollectionWriter>> {
        let r = self.remote.clone();
        let doc = meta::collection(&r, name)?.ok_or_else(|| meta::unknown(&r, name))?;
        let counts = meta::day_counts(&r, name)?;
        Ok(Box::new(MilvusCollectionWriter {
            remote: r,
            doc,
            counts,
            partitions: None,
            unsynced: false,
            recent: HashMap::new(),
        }))
    }
}

/// The writer of one collection.
pub struct MilvusCollectionWriter {
    remote: Arc<Remote>,
    doc: CollectionDoc,
    counts: DayCounts,
    /// Milvus partitions known to exist (listed on first need).
    partitions: Option<HashSet<String>>,
    /// Written but not yet waited for (see `finish`).
    unsynced: bool,
    /// Where this writer put (or deleted) ids since the last barrier: reads of the server may
    /// not show them yet, and the writer's next upsert must know them.
    recent: HashMap<String, Option<(String, Day)>>,
}

/// Ids remembered between barriers before the writer waits for the server instead.
const MAX_RECENT: usize = 200_000;

impl Drop for MilvusCollectionWriter {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!("{e}");
        }
    }
}

impl MilvusCollectionWriter {
    fn what(&self, doing: &str) -> String {
        format!("{doing} {}", self.doc.name)
    }

    /// Where each of `ids` lives now: id → (source, day).
    fn locate(&self, ids: &[String]) -> Result<HashMap<String, (String, Day)>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(1000) {
            let what = self.what("looking up rows of");
            let res = self.remote.query(
                &what,
                &self.doc.milvus,
                &[],
                &expr::ids(chunk),
                &["id", "source", "day"],
                self.remote.read_level(),
            )?;
            let res = res.results();
            let ids = res.get_output_field("id").and_then(|f| f.as_varchar()).unwrap_or(&[]);
            let sources = res
                .get_output_field("source")
                .and_then(|f| f.as_varchar())
                .unwrap_or(&[]);
            let days = res.get_output_field("day").and_then(|f| f.as_varchar()).unwrap_or(&[]);
            for ((id, s), d) in ids.iter().zip(sources).zip(days) {
                if let Ok(day) = d.parse() {
                    out.insert(id.clone(), (s.clone(), day));
                }
            }
        }
        for id in ids {
            match self.recent.get(id) {
                Some(Some(place)) => {
                    out.insert(id.clone(), place.clone());
                }
                Some(None) => {
                    out.remove(id);
                }
                None => {}
            }
        }
        Ok(out)
    }

    fn ensure_partition(&mut self, partition: &str) -> Result<()> {
        if self.partitions.is_none() {
            let name = self.doc.milvus.clone();
            let list = self.remote.call(&self.what("listing partitions of"), |c| async move {
                c.list_partitions(ListPartitionsRequest::builder().collection_name(name).build()?)
                    .await
            })?;
            self.partitions = Some(list.partition_names().iter().cloned().collect());
        }
        if self.partitions.as_ref().is_some_and(|p| p.contains(partition)) {
            return Ok(());
        }
        let (name, part) = (self.doc.milvus.clone(), partition.to_string());
        self.remote.call(
            &format!("creating partition {partition} of {}", self.doc.name),
            |c| async move {
                c.create_partition(
                    CreatePartitionRequest::builder()
                        .collection_name(name.clone())
                        .partition_name(part.clone())
                        .build()?,
                )
                .await?;
                // A partition created after the collection was loaded is loaded on its own.
                c.load_partitions(
                    LoadPartitionsRequest::builder()
                        .collection_name(name)
                        .partition_names([part])
                        .sync(true)
                        .build()?,
                )
                .await
            },
        )?;
        self.partitions
            .get_or_insert_with(HashSet::new)
            .insert(partition.to_string());
        Ok(())
    }

    /// Deletes rows matching `filter` in one Milvus partition (or all, with `None`).
    fn delete_expr(&self, partition: Option<&str>, filter: String) -> Result<()> {
        let name = self.doc.milvus.clone();
        let part = partition.map(str::to_string);
        self.remote.call(&self.what("deleting from"), |c| async move {
            let mut b = DeleteRequest::builder().collection_name(name).filter(filter);
            if let Some(p) = part {
                b = b.partition_name(p);
            }
            c.delete(b.build()?).await
        })?;
        Ok(())
    }

    /// Writes the row counts of `touched`. What was written becomes visible to every reader at
    /// the next [`CollectionWriter::tidy`] or when the writer goes (the barrier), so a run of
    /// many commits waits once.
    fn finish(&mut self, touched: &[(String, Day)]) -> Result<()> {
        meta::put_day_counts(&self.remote, &self.doc.name, &self.counts, touched)?;
        self.unsynced = true;
        Ok(())
    }

    fn put_doc(&mut self) -> Result<()> {
        meta::put_collection(&self.remote, &self.doc)?;
        self.unsynced = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            meta::barrier(&self.remote, &self.doc.milvus)?;
            self.unsynced = false;
        }
        self.recent.clear();
        Ok(())
    }

    fn upsert(&self, partition: &str, rows: &[usize], batch: &Batch) -> Result<()> {
        let dim = self.doc.schema.dim;
        let mut start = 0;
        while start < rows.len() {
            // Cut requests by size, under gRPC's message cap.
            let mut bytes = 0;
            let mut end = start;
            while end < rows.len() && (end == start || bytes < MAX_REQUEST_BYTES) {
                let r = &batch.rows[rows[end]];
                bytes += dim * 4 + r.id.len() + r.uri.len() + r.source.len() + 64 + r.fields.len() * 16;
                end += 1;
            }
            let chunk = &rows[start..end];
            let pick = |f: &dyn Fn(usize) -> String| chunk.iter().map(|&i| f(i)).collect::<Vec<String>>();
            let ids = pick(&|i| batch.rows[i].id.clone());
            let uris = pick(&|i| batch.rows[i].uri.clone());
            let sources = pick(&|i| batch.rows[i].source.clone());
            let days = pick(&|i| Day::from_timestamp(batch.rows[i].timestamp).to_string());
            let timestamps: Vec<i64> = chunk.iter().map(|&i| batch.rows[i].timestamp).collect();
            let fields: Vec<serde_json::Value> = chunk
                .iter()
                .map(|&i| fields_json(&batch.field_names, &batch.rows[i].fields))
                .collect();
            let vectors: Vec<Vec<f32>> = chunk
                .iter()
                .map(|&i| batch.vectors[i * dim..(i + 1) * dim].to_vec())
                .collect();
            let (name, part) = (self.doc.milvus.clone(), partition.to_string());
            let n = chunk.len();
            let done = self.remote.call(&self.what("writing to"), |c| async move {
                c.upsert(
                    UpsertRequest::builder()
                        .insert(
                            InsertRequest::builder()
                                .collection_name(name)
                                .partition_name(part)
                                .columns(vec![
                                    FieldData::varchar("id", ids),
                                    FieldData::varchar("uri", uris),
                                    FieldData::varchar("source", sources),
                                    FieldData::varchar("day", days),
                                    FieldData::int64("timestamp", timestamps),
                                    FieldData::json(expr::FIELDS, fields),
                                    FieldData::float_vector("vector", vectors),
                                ])
                                .build()?,
                        )
                        .build()?,
                )
                .await
            })?;
            if done.upsert_count() as usize != n {
                return Err(self.remote.fail(
                    &self.what("writing to"),
                    &format!("the server acknowledged {} of {n} rows", done.upsert_count()),
                    ErrorKind::Unavailable,
                ));
            }
            start = end;
        }
        Ok(())
    }

    fn checked(&self, batch: &Batch) -> Result<Schema> {
        let dim = self.doc.schema.dim;
        if batch.vectors.len() != batch.rows.len() * dim {
            return Err(Error::Invalid(format!(
                "{} rows but {} vector values (dimension {dim})",
                batch.rows.len(),
                batch.vectors.len()
            )));
        }
        let schema = vitrine_store::validate_rows(&self.doc.schema, &batch.field_names, &batch.rows)?;
        for (i, r) in batch.rows.iter().enumerate() {
            vitrine_store::check_vector(self.doc.schema.metric, &batch.vectors[i * dim..(i + 1) * dim])
                .map_err(|e| Error::Invalid(format!("row {i} (id {:?}): {e}", r.id)))?;
            for (what, v, max) in [
                ("id", &r.id, MAX_ID),
                ("uri", &r.uri, MAX_URI),
                ("source", &r.source, MAX_SOURCE),
            ] {
                if v.len() > max {
                    return Err(Error::Invalid(format!(
                        "row {i} (id {:?}): its {what} has {} bytes, more than Milvus's column holds ({max})",
                        r.id.chars().take(64).collect::<String>(),
                        v.len()
                    )));
                }
            }
        }
        Ok(schema)
    }
}

impl CollectionWriter for MilvusCollectionWriter {
    fn schema(&self) -> &Schema {
        &self.doc.schema
    }

    fn info(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.doc.info
    }

    fn set_info(&mut self, entries: Vec<(String, serde_json::Value)>) -> Result<()> {
        for (k, v) in entries {
            self.doc.info.insert(k, v);
        }
        self.put_doc()
    }

    fn extend_schema(&mut self, schema: &Schema) -> Result<()> {
        if schema.dim != self.doc.schema.dim || schema.metric != self.doc.schema.metric {
            return Err(Error::Invalid(format!(
                "collection {}: dimension and metric cannot change ({} {} → {} {})",
                self.doc.name, self.doc.schema.dim, self.doc.schema.metric, schema.dim, schema.metric
            )));
        }
        if *schema == self.doc.schema {
            return Ok(());
        }
        // User fields live in one JSON column: a new field needs no change on the server.
        self.doc.schema = schema.clone();
        self.put_doc()
    }

    fn insert(&mut self, batch: &Batch) -> Result<InsertReport> {
        let schema = self.checked(batch)?;
        if schema != self.doc.schema {
            self.extend_schema(&schema)?;
        }
        // The last copy of an id in the batch wins, as in the embedded store.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, r) in batch.rows.iter().enumerate() {
            last.insert(r.id.as_str(), i);
        }
        let dups = (batch.rows.len() - last.len()) as u64;
        let mut keep: Vec<usize> = last.values().copied().collect();
        keep.sort_unstable();
        let ids: Vec<String> = keep.iter().map(|&i| batch.rows[i].id.clone()).collect();
        let before = self.locate(&ids)?;
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut touched: BTreeSet<(String, Day)> = BTreeSet::new();
        for &i in &keep {
            let r = &batch.rows[i];
            let day = Day::from_timestamp(r.timestamp);
            groups.entry(names::partition(&r.source, day)).or_default().push(i);
        }
        for p in groups.keys().cloned().collect::<Vec<_>>() {
            self.ensure_partition(&p)?;
        }
        for (p, rows) in &groups {
            self.upsert(p, rows, batch)?;
        }
        // Old copies in another Milvus partition go, now that the new ones are written.
        let mut moved: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for &i in &keep {
            let r = &batch.rows[i];
            if let Some((s, d)) = before.get(&r.id) {
                let old = names::partition(s, *d);
                if old != names::partition(&r.source, Day::from_timestamp(r.timestamp)) {
                    moved.entry(old).or_default().push(r.id.clone());
                }
            }
        }
        for (p, ids) in moved {
            for chunk in ids.chunks(1000) {
                self.delete_expr(Some(&p), expr::ids(chunk))?;
            }
        }
        let mut new_parts = BTreeSet::new();
        for &i in &keep {
            let r = &batch.rows[i];
            let day = Day::from_timestamp(r.timestamp);
            if let Some((s, d)) = before.get(&r.id) {
                if let Some(n) = self.counts.get_mut(&(s.clone(), *d)) {
                    *n = n.saturating_sub(1);
                }
                touched.insert((s.clone(), *d));
            }
            *self.counts.entry((r.source.clone(), day)).or_insert(0) += 1;
            touched.insert((r.source.clone(), day));
            new_parts.insert((r.source.clone(), day));
        }
        self.counts.retain(|_, n| *n > 0);
        for &i in &keep {
            let r = &batch.rows[i];
            self.recent
                .insert(r.id.clone(), Some((r.source.clone(), Day::from_timestamp(r.timestamp))));
        }
        self.finish(&touched.into_iter().collect::<Vec<_>>())?;
        if self.recent.len() > MAX_RECENT {
            self.sync()?;
        }
        Ok(InsertReport {
            inserted: keep.len() as u64,
            replaced: before.len() as u64 + dups,
            partitions: new_parts.len(),
        })
    }

    fn delete_ids(&mut self, ids: &[String]) -> Result<DeleteReport> {
        let found = self.locate(ids)?;
        let mut unique: Vec<String> = found.keys().cloned().collect();
        unique.sort();
        for chunk in unique.chunks(1000) {
            self.delete_expr(None, expr::ids(chunk))?;
        }
        let mut touched = BTreeSet::new();
        for (s, d) in found.values() {
            if let Some(n) = self.counts.get_mut(&(s.clone(), *d)) {
                *n = n.saturating_sub(1);
            }
            touched.insert((s.clone(), *d));
        }
        self.counts.retain(|_, n| *n > 0);
        for id in found.keys() {
            self.recent.insert(id.clone(), None);
        }
        self.finish(&touched.into_iter().collect::<Vec<_>>())?;
        if self.recent.len() > MAX_RECENT {
            self.sync()?;
        }
        let mut seen = HashSet::new();
        Ok(DeleteReport {
            deleted: found.len() as u64,
            not_found: ids
                .iter()
                .filter(|i| !found.contains_key(*i) && seen.insert(i.as_str()))
                .cloned()
                .collect(),
        })
    }

    fn delete_where(&mut self, selection: &Selection) -> Result<u64> {
        let chosen: Vec<(String, Day)> = self
            .counts
            .keys()
            .filter(|(s, d)| selection.includes_partition(s, *d))
            .cloned()
            .collect();
        let filter = selection.filter.as_ref().map(|f| expr::translate(f, true));
        // Counts must see this writer's own earlier writes.
        self.sync()?;
        let level = self.remote.read_level();
        let mut deleted = 0;
        let mut by_partition: BTreeMap<String, Vec<Day>> = BTreeMap::new();
        for (s, d) in &chosen {
            let n = match &filter {
                None => self.counts.get(&(s.clone(), *d)).copied().unwrap_or(0),
                Some(f) => self.remote.count(
                    &self.what("counting rows of"),
                    &self.doc.milvus,
                    &[],
                    &format!(
                        "source == {} and day == {} and {f}",
                        expr::string(s),
                        expr::string(&d.to_string())
                    ),
                    level,
                )?,
            };
            deleted += n;
            if let Some(c) = self.counts.get_mut(&(s.clone(), *d)) {
                *c = c.saturating_sub(n);
            }
            by_partition.entry(names::partition(s, *d)).or_default().push(*d);
        }
        for (p, days) in &by_partition {
            let mut e = expr::days(days);
            if let Some(f) = &filter {
                e = format!("{e} and {f}");
            }
            self.delete_expr(Some(p), e)?;
        }
        self.counts.retain(|_, n| *n > 0);
        self.finish(&chosen)?;
        // Which ids went is known only to the server: wait until reads show it.
        self.sync()?;
        Ok(deleted)
    }

    fn partitions(&self) -> Vec<PartitionInfo> {
        let bytes = self.doc.schema.dim as u64 * 4;
        self.counts
            .iter()
            .map(|((s, d), n)| PartitionInfo {
                source: s.clone(),
                day: *d,
                segments: 1,
                rows: *n,
                deleted: 0,
                bytes: n * bytes,
            })
            .collect()
    }

    fn tidy(&mut self) -> Result<()> {
        self.sync()
    }

    fn drop_partitions(&mut self, which: &dyn Fn(&str, Day) -> bool) -> Result<Vec<PartitionInfo>> {
        let all = self.partitions();
        let (gone, kept): (Vec<PartitionInfo>, Vec<PartitionInfo>) =
            all.into_iter().partition(|p| which(&p.source, p.day));
        if gone.is_empty() {
            return Ok(gone);
        }
        let kept_parts: HashSet<String> = kept.iter().map(|p| names::partition(&p.source, p.day)).collect();
        let mut by_partition: BTreeMap<String, Vec<Day>> = BTreeMap::new();
        for p in &gone {
            by_partition
                .entry(names::partition(&p.source, p.day))
                .or_default()
                .push(p.day);
        }
        for (part, days) in &by_partition {
            if !kept_parts.contains(part) {
                // Every day of this Milvus partition goes: release it, then drop it whole.
                let (name, p) = (self.doc.milvus.clone(), part.clone());
                let dropped = self.remote.call(
                    &format!("dropping partition {part} of {}", self.doc.name),
                    |c| async move {
                        c.release_partitions(
                            ReleasePartitionsRequest::builder()
                                .collection_name(name.clone())
                                .partition_names([p.clone()])
                                .build()?,
                        )
                        .await?;
                        c.drop_partition(
                            DropPartitionRequest::builder()
                                .collection_name(name)
                                .partition_name(p)
                                .build()?,
                        )
                        .await
                    },
                );
                match dropped {
                    Ok(()) => {
                        if let Some(ps) = self.partitions.as_mut() {
                            ps.remove(part);
                        }
                        continue;
                    }
                    Err(e) => tracing::warn!("{e}; deleting its rows by day instead"),
                }
            }
            self.delete_expr(Some(part), expr::days(days))?;
        }
        for p in &gone {
            self.counts.remove(&(p.source.clone(), p.day));
        }
        let touched: Vec<(String, Day)> = gone.iter().map(|p| (p.source.clone(), p.day)).collect();
        self.finish(&touched)?;
        self.sync()?;
        Ok(gone)
    }
}
