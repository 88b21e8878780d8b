//! Where vectors live: the [`Backend`] trait and what crosses it.
//!
//! The engine runs every user operation against a backend: the embedded store
//! ([`embedded::EmbeddedBackend`], the default) or a remote vector database. The trait is shaped
//! so that a remote database can implement it:
//!
//! * rows are named by their id, partitions by (source, day); no storage addresses leave it;
//! * hits carry the fields the caller asked for, by name;
//! * reads go through a [`CollectionReader`] (a consistent view), writes through one
//!   [`CollectionWriter`] at a time (the embedded store's single-writer lock);
//! * operations a remote database cannot do cheaply ([`CollectionWriter::compact`],
//!   [`Backend::check`]) are optional: their default answers
//!   [`Error::Unsupported`], and [`Capabilities`] says which exist.
//!
//! The vocabulary (schema, selection, rows, batches) is the embedded store's, re-exported by
//! the engine; a remote backend translates it (e.g. a [`Selection`]'s filter into the
//! database's expression language).

pub mod embedded;

use crate::error::{Error, Result};
use std::path::PathBuf;
use vitrine_store::{Batch, CompactReport, Day, InsertReport, PartitionInfo, Schema, SearchStats, Selection, Value};

/// What a backend can do besides the operations every backend has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// Rewrites partitions to reclaim deleted rows ([`CollectionWriter::compact`]).
    pub compact: bool,
    /// Verifies every byte against checksums ([`Backend::check`]).
    pub check: bool,
}

/// A store of collections.
pub trait Backend: Send + Sync {
    /// Where the data lives, for messages: `store ./vitrine-data`, `milvus://host:19530`.
    fn location(&self) -> String;
    /// The optional operations it has.
    fn capabilities(&self) -> Capabilities;
    /// Names of the collections, sorted.
    fn collections(&self) -> Result<Vec<String>>;
    /// Whether `name` exists.
    fn has_collection(&self, name: &str) -> Result<bool>;
    /// A token that changes whenever collection `name` changes, so an open reader can be reused
    /// while it is current; `None` when there is no cheap way to tell (then every operation
    /// opens a fresh reader).
    fn generation(&self, name: &str) -> Result<Option<String>> {
        let _ = name;
        Ok(None)
    }
    /// A consistent read view of collection `name`.
    fn reader(&self, name: &str) -> Result<Box<dyn CollectionReader>>;
    /// The writer of the store (the embedded store takes its lock: one writer at a time).
    fn writer(&self) -> Result<Box<dyn StoreWriter>>;
    /// Reads every byte of collection `name` and verifies it, naming every damaged file (a
    /// collection too damaged to open is still checked file by file).
    fn check(&self, name: &str) -> Result<CheckReport> {
        let _ = name;
        Err(Error::Unsupported {
            operation: "check",
            backend: self.location(),
        })
    }
    /// A local folder for the engine's side files about collection `name` (the indexing
    /// ledger); it goes when the collection is dropped. Created on demand.
    fn side_dir(&self, name: &str) -> Result<PathBuf>;
}

/// The writer of a store: creates, drops and opens collections for writing.
pub trait StoreWriter {
    /// Whether `name` exists.
    fn has_collection(&self, name: &str) -> Result<bool>;
    /// Creates an empty collection.
    fn create_collection(&mut self, name: &str, schema: &Schema) -> Result<()>;
    /// Drops a collection and all its data (and its side folder).
    fn drop_collection(&mut self, name: &str) -> Result<()>;
    /// Opens collection `name` for writing.
    fn collection(&mut self, name: &str) -> Result<Box<dyn CollectionWriter>>;
}

/// One row as a backend returns it: its identity, partition, and the fields asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Primary key.
    pub id: String,
    /// Where the image lives.
    pub uri: String,
    /// Partition source.
    pub source: String,
    /// Partition day (UTC day of the timestamp).
    pub day: Day,
    /// Unix seconds.
    pub timestamp: i64,
    /// The requested user fields, by name, in the order asked (null where the row has none).
    pub fields: Fields,
    /// The vector, when asked for.
    pub vector: Option<Vec<f32>>,
}

/// User field values by name, in the order they were asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub Vec<(String, Value)>);

impl Fields {
    /// The value of field `name` (`None` if it was not asked for).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fields as a JSON object.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0.iter().map(|(n, v)| (n.clone(), v.to_json())).collect()
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Index of the query in the batch.
    pub query: usize,
    /// 1-based rank.
    pub rank: usize,
    /// Primary key.
    pub id: String,
    /// Similarity (cosine, ip) or Euclidean distance (l2).
    pub score: f64,
    /// Partition source.
    pub source: String,
    /// Partition day.
    pub day: Day,
    /// Where the image lives.
    pub uri: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// The requested user fields.
    pub fields: Fields,
}

/// What a backend's search returns: hits per query and what was covered.
#[derive(Debug, Clone)]
pub struct SearchOutput {
    /// `hits[q]` for query `q`, best first.
    pub hits: Vec<Vec<Hit>>,
    /// Partitions and rows scanned or excluded.
    pub stats: SearchStats,
}

/// What a delete by ids did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeleteReport {
    /// Rows deleted.
    pub deleted: u64,
    /// Ids asked for that no live row has.
    pub not_found: Vec<String>,
}

/// What `check` found in one collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Files read.
    pub files: usize,
    /// Live rows.
    pub rows: u64,
    /// Every damaged file and what is wrong with it (empty: all checksums match).
    pub problems: Vec<String>,
}

/// A consistent read view of one collection.
pub trait CollectionReader: Send + Sync {
    /// The collection's name.
    fn name(&self) -> &str;
    /// Its schema (dimension, metric, user fields).
    fn schema(&self) -> &Schema;
    /// Provenance entries (the model that filled it, ...).
    fn info(&self) -> &serde_json::Map<String, serde_json::Value>;
    /// Live rows.
    fn rows(&self) -> u64;
    /// Partitions and their statistics, sorted by (source, day).
    fn partitions(&self) -> &[PartitionInfo];
    /// Exact search; hits carry the user fields named in `fields`.
    fn search(&self, req: &vitrine_store::SearchRequest, fields: &[String]) -> Result<SearchOutput>;
    /// The live rows with these ids (`None` where there is none), with `fields` and, if asked,
    /// their vectors.
    fn get(&self, ids: &[String], fields: &[String], vectors: bool) -> Result<Vec<Option<Record>>>;
    /// Calls `visit` for every live row in `selection` (storage order), with `fields` and, if
    /// asked, the vector.
    fn scan(
        &self,
        selection: &Selection,
        fields: &[String],
        vectors: bool,
        visit: &mut dyn FnMut(Record) -> Result<()>,
    ) -> Result<()>;
}

/// The writer of one collection. Every method is one atomic commit.
pub trait CollectionWriter {
    /// The schema as of the last commit.
    fn schema(&self) -> &Schema;
    /// Provenance entries as of the last commit.
    fn info(&self) -> &serde_json::Map<String, serde_json::Value>;
    /// Sets provenance entries in one commit.
    fn set_info(&mut self, entries: Vec<(String, serde_json::Value)>) -> Result<()>;
    /// Widens the schema (new fields, int fields that become float) before rows that need it.
    fn extend_schema(&mut self, schema: &Schema) -> Result<()>;
    /// Inserts (upserts by id) a batch: all rows become visible together or none do.
    fn insert(&mut self, batch: &Batch) -> Result<InsertReport>;
    /// Inserts a batch and deletes the rows `replaced`, in one commit where the backend can
    /// (the default is two: insert, then delete).
    fn insert_replacing(&mut self, batch: &Batch, replaced: &[String]) -> Result<InsertReport> {
        let r = self.insert(batch)?;
        if !replaced.is_empty() {
            self.delete_ids(replaced)?;
        }
        Ok(r)
    }
    /// Deletes rows by id.
    fn delete_ids(&mut self, ids: &[String]) -> Result<DeleteReport>;
    /// Deletes every live row in `selection`; returns how many.
    fn delete_where(&mut self, selection: &Selection) -> Result<u64>;
    /// Partitions and their statistics as of the last commit.
    fn partitions(&self) -> Vec<PartitionInfo>;
    /// Drops the partitions for which `which(source, day)` holds; returns them.
    fn drop_partitions(&mut self, which: &dyn Fn(&str, Day) -> bool) -> Result<Vec<PartitionInfo>>;
    /// Rewrites partitions to reclaim deleted rows and merge small segments.
    fn compact(&mut self) -> Result<CompactReport> {
        Err(Error::Unsupported {
            operation: "compact",
            backend: "this backend".into(),
        })
    }
    /// Housekeeping after many small commits (the embedded store merges small segments; a
    /// database that compacts by itself does nothing).
    fn tidy(&mut self) -> Result<()> {
        Ok(())
    }
}
