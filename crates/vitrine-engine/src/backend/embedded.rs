//! The embedded store ([`vitrine_store`]) as a [`Backend`]: the default, in-process backend.

use super::{
    Backend, Capabilities, CheckReport, CollectionReader, CollectionWriter, DeleteReport, Fields, Hit, Record,
    SearchOutput, StoreWriter,
};
use crate::error::Result;
use std::path::{Path, PathBuf};
use vitrine_store::{
    Batch, CompactReport, Day, InsertReport, PartitionInfo, RowView, Schema, SearchRequest, Selection, Snapshot, Store,
};

/// A store directory on this machine.
#[derive(Debug, Clone)]
pub struct EmbeddedBackend {
    root: PathBuf,
}

impl EmbeddedBackend {
    /// The store at `root` (it need not exist yet: the first write creates it).
    pub fn new(root: impl Into<PathBuf>) -> EmbeddedBackend {
        EmbeddedBackend { root: root.into() }
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Backend for EmbeddedBackend {
    fn location(&self) -> String {
        format!("store {}", self.root.display())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            compact: true,
            check: true,
        }
    }

    fn collections(&self) -> Result<Vec<String>> {
        Ok(Store::open(&self.root)?.collections()?)
    }

    fn has_collection(&self, name: &str) -> Result<bool> {
        Ok(Store::open(&self.root).is_ok_and(|s| s.has_collection(name)))
    }

    fn generation(&self, name: &str) -> Result<Option<String>> {
        // Every commit renames a new manifest into place: a new inode and modification time.
        use std::os::unix::fs::MetadataExt;
        vitrine_store::check_name("collection", name)?;
        let path = self.root.join("collections").join(name).join("manifest.json");
        Ok(std::fs::metadata(&path)
            .ok()
            .map(|m| format!("{}:{}:{}.{}:{}", m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size())))
    }

    fn reader(&self, name: &str) -> Result<Box<dyn CollectionReader>> {
        let snap = Store::open(&self.root)?.snapshot(name)?;
        Ok(Box::new(EmbeddedReader { snap }))
    }

    fn writer(&self) -> Result<Box<dyn StoreWriter>> {
        Ok(Box::new(EmbeddedStoreWriter {
            w: Store::open_writer(&self.root)?,
        }))
    }

    fn check(&self, name: &str) -> Result<CheckReport> {
        let c = Store::open(&self.root)?.check(name)?;
        Ok(CheckReport {
            files: c.files,
            rows: c.rows,
            problems: c.problems.iter().map(|e| e.to_string()).collect(),
        })
    }

    fn side_dir(&self, name: &str) -> Result<PathBuf> {
        let store = Store::open(&self.root)?;
        if !store.has_collection(name) {
            store.snapshot(name)?; // the store's "unknown collection" error, with the existing ones
        }
        Ok(store.collection_dir(name))
    }
}

struct EmbeddedStoreWriter {
    w: vitrine_store::Writer,
}

impl StoreWriter for EmbeddedStoreWriter {
    fn has_collection(&self, name: &str) -> Result<bool> {
        Ok(self.w.has_collection(name))
    }

    fn create_collection(&mut self, name: &str, schema: &Schema) -> Result<()> {
        Ok(self.w.create_collection(name, schema.clone())?)
    }

    fn drop_collection(&mut self, name: &str) -> Result<()> {
        Ok(self.w.drop_collection(name)?)
    }

    fn collection(&mut self, name: &str) -> Result<Box<dyn CollectionWriter>> {
        Ok(Box::new(EmbeddedWriter {
            c: self.w.collection(name)?,
        }))
    }
}

struct EmbeddedReader {
    snap: Snapshot,
}

fn record(row: RowView<'_>, fields: &[String], vectors: bool) -> Record {
    Record {
        id: row.id().to_string(),
        uri: row.uri().to_string(),
        source: row.source().to_string(),
        day: row.day(),
        timestamp: row.timestamp(),
        fields: Fields(fields.iter().map(|f| (f.clone(), row.value(f))).collect()),
        vector: vectors.then(|| row.vector().to_vec()),
    }
}

impl CollectionReader for EmbeddedReader {
    fn name(&self) -> &str {
        self.snap.name()
    }

    fn schema(&self) -> &Schema {
        self.snap.schema()
    }

    fn info(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.snap.manifest().info
    }

    fn rows(&self) -> u64 {
        self.snap.rows()
    }

    fn partitions(&self) -> &[PartitionInfo] {
        self.snap.partitions()
    }

    fn search(&self, req: &SearchRequest, fields: &[String]) -> Result<SearchOutput> {
        let res = self.snap.search(req)?;
        let hits = res
            .hits
            .into_iter()
            .map(|q| {
                q.into_iter()
                    .map(|h| {
                        let values = match self.snap.row(h.location) {
                            Some(row) => fields.iter().map(|f| (f.clone(), row.value(f))).collect(),
                            None => Vec::new(),
                        };
                        Hit {
                            query: h.query,
                            rank: h.rank,
                            id: h.id,
                            score: h.score,
                            source: h.source,
                            day: h.day,
                            uri: h.uri,
                            timestamp: h.timestamp,
                            fields: Fields(values),
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(SearchOutput { hits, stats: res.stats })
    }

    fn get(&self, ids: &[String], fields: &[String], vectors: bool) -> Result<Vec<Option<Record>>> {
        Ok(self
            .snap
            .locate(ids)
            .into_iter()
            .map(|loc| loc.and_then(|l| self.snap.row(l)).map(|r| record(r, fields, vectors)))
            .collect())
    }

    fn scan(
        &self,
        selection: &Selection,
        fields: &[String],
        vectors: bool,
        visit: &mut dyn FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        self.snap
            .for_each_row(selection, |row| visit(record(row, fields, vectors)))
    }
}

struct EmbeddedWriter {
    c: vitrine_store::CollectionWriter,
}

impl CollectionWriter for EmbeddedWriter {
    fn schema(&self) -> &Schema {
        self.c.schema()
    }

    fn info(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.c.manifest().info
    }

    fn set_info(&mut self, entries: Vec<(String, serde_json::Value)>) -> Result<()> {
        Ok(self.c.set_info(entries)?)
    }

    fn extend_schema(&mut self, schema: &Schema) -> Result<()> {
        Ok(self.c.extend_schema(schema)?)
    }

    fn insert(&mut self, batch: &Batch) -> Result<InsertReport> {
        Ok(self.c.insert(batch)?)
    }

    fn insert_replacing(&mut self, batch: &Batch, replaced: &[String]) -> Result<InsertReport> {
        Ok(self.c.insert_replacing(batch, replaced)?)
    }

    fn delete_ids(&mut self, ids: &[String]) -> Result<DeleteReport> {
        let not_found = self.c.missing_ids(ids)?;
        let deleted = self.c.delete_ids(ids)?;
        Ok(DeleteReport { deleted, not_found })
    }

    fn delete_where(&mut self, selection: &Selection) -> Result<u64> {
        Ok(self.c.delete_where(selection)?)
    }

    fn partitions(&self) -> Vec<PartitionInfo> {
        self.c.partitions()
    }

    fn drop_partitions(&mut self, which: &dyn Fn(&str, Day) -> bool) -> Result<Vec<PartitionInfo>> {
        Ok(self.c.drop_partitions(which)?)
    }

    fn compact(&mut self) -> Result<CompactReport> {
        Ok(self.c.compact()?)
    }

    fn tidy(&mut self) -> Result<()> {
        // Frequent commits leave many small segments per partition; merge them so searches open
        // a few files per partition, not hundreds.
        let parts = self.c.partitions();
        if parts.iter().map(|p| p.segments).sum::<usize>() > 2 * parts.len() {
            self.c.compact()?;
        }
        Ok(())
    }
}
