//! vitrine's engine: every operation a user runs, as one library API over a backend.
//!
//! An [`Engine`] is opened on a [`Backend`] (the embedded store by default,
//! [`Engine::open_store`]) and offers one method per user operation: search by text, image,
//! stored id or vector ([`Engine::search`]), [`Engine::sweep`], [`Engine::classify`],
//! [`Engine::index`], [`Engine::import`], deletes, partitions and retention, compaction, checks
//! and collections. Each returns typed results (hits with fields by name, scan statistics, the
//! recall [`Receipt`], warnings as data). The engine never prints; front ends (the `vitrine`
//! command, the HTTP server) format what it returns.
//!
//! ```text
//! image ─▶ vitrine-image ─▶ vitrine-clip ─▶ Embedder ─▶ Engine ─▶ Backend ─▶ vitrine-store (or a remote database)
//! ```
//!
//! Modules follow the operations: [`query`] (search, sweep, classify), [`dupes`] (near-duplicate
//! clusters), [`index`] (plan, loop),
//! [`watch`] (watchlists), [`import`], [`admin`] (collections, partitions, deletes, retention, compaction, checks),
//! [`receipt`] and [`ledger`] (what a search covered), [`model`] (which model filled a
//! collection), [`selection`] (sources, days, filters), [`backend`].
#![deny(missing_docs)]

pub mod admin;
pub mod backend;
pub mod calibrate;
pub mod dupes;
mod embedder;
mod error;
pub mod export;
pub mod holds;
pub mod import;
pub mod index;
mod jsonl;
pub mod ledger;
pub mod media;
pub mod migrate;
pub mod model;
pub mod negatives;
pub mod query;
pub mod receipt;
pub mod selection;
pub mod thumbnail;
pub mod tombstones;
pub mod watch;

pub use backend::embedded::EmbeddedBackend;
pub use backend::{Backend, Capabilities, CheckReport, CollectionReader, DeleteReport, Fields, Hit, Record};
pub use embedder::{read_image_file, Embedder, ImageResult, MAX_FILE_BYTES};
pub use error::{Error, ErrorKind, Result};
pub use index::ENGINE_FIELDS;
pub use migrate::{migrate, MigrateReport};
pub use receipt::{Coverage, Receipt};
pub use selection::{Age, SelectionSpec};
pub use vitrine_clip::Towers;
/// The vocabulary shared with backends, re-exported so front ends need no other crate.
pub use vitrine_store::{
    CompactReport, Day, FieldType, InsertReport, Metric, PartitionInfo, Schema, SearchStats, Selection, Value,
};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An open reader and the generation of the collection it reads.
type CachedReader = (String, Arc<dyn CollectionReader>);

/// The engine: a backend plus the models loaded for it.
pub struct Engine {
    backend: Arc<dyn Backend>,
    models: model::Models,
    readers: Mutex<HashMap<String, CachedReader>>,
}

impl Engine {
    /// An engine over `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Engine {
        Engine {
            backend,
            models: model::Models::default(),
            readers: Mutex::new(HashMap::new()),
        }
    }

    /// An engine over the embedded store at `dir` (created by the first write).
    pub fn open_store(dir: impl Into<PathBuf>) -> Engine {
        Engine::new(Arc::new(EmbeddedBackend::new(dir)))
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Models loaded so far (shared by every request).
    pub fn models(&self) -> &model::Models {
        &self.models
    }

    /// A read view of `collection`, reused while the collection has not changed (a server keeps
    /// its store mapped between requests).
    pub fn reader(&self, collection: &str) -> Result<Arc<dyn CollectionReader>> {
        let generation = self.backend.generation(collection)?;
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(g), Some((have, r))) = (&generation, readers.get(collection)) {
            if g == have {
                return Ok(r.clone());
            }
        }
        let r: Arc<dyn CollectionReader> = Arc::from(self.backend.reader(collection)?);
        match generation {
            Some(g) => {
                readers.insert(collection.to_string(), (g, r.clone()));
            }
            None => {
                readers.remove(collection);
            }
        }
        Ok(r)
    }

    /// The side folder of `collection` if it has one yet (the ledger lives there).
    fn side_dir(&self, collection: &str) -> Option<PathBuf> {
        self.backend.side_dir(collection).ok()
    }

    /// L2-normalised text embeddings with model `model` (a folder or cached hub name), and the
    /// warnings about texts the model cannot read.
    pub fn embed_texts(&self, model: &str, texts: &[&str]) -> Result<(Vec<Vec<f32>>, Vec<String>)> {
        let e = self.models.get(model, Towers::Text)?;
        let warnings = texts.iter().flat_map(|t| e.query_warnings(t)).collect();
        Ok((e.embed_texts(texts)?, warnings))
    }

    /// L2-normalised image embeddings with model `model`; each file gets its vector or its error.
    pub fn embed_images(&self, model: &str, paths: &[PathBuf], batch: usize) -> Result<(usize, Vec<ImageResult>)> {
        let e = self.models.get(model, Towers::Image)?;
        let out = e.embed_images_with(paths, batch, |_, _| ());
        Ok((e.dim(), out.into_iter().map(|r| r.map(|(v, ())| v)).collect()))
    }
}

/// Appends `text` to the file at `path` (created if missing) and syncs it before returning: the
/// engine's append-only logs (holds, tombstones, prompt sets) write each record this way.
pub(crate) fn append_durably(path: &Path, text: &str) -> Result<()> {
    use vitrine_store::fsio;
    let mut f = fsio::append(path)?;
    fsio::write(&mut f, path, text.as_bytes()).map_err(|e| Error::io(path, e))?;
    Ok(fsio::sync(&f, path)?)
}

/// Replaces the file at `path` with `bytes` atomically and durably: a temporary file in the same
/// folder, synced, renamed over it, and the folder synced.
pub(crate) fn replace_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    use vitrine_store::fsio;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    let mut f = fsio::create(&tmp, false)?;
    fsio::write(&mut f, &tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    fsio::sync(&f, &tmp)?;
    fsio::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Syncs a folder, so the names created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    Ok(vitrine_store::fsio::sync_dir(dir)?)
}

/// The SIMD level the scan kernels use on this CPU ("avx512", "avx2", "scalar").
pub fn simd_level() -> &'static str {
    vitrine_kernels::simd_level().name()
}

/// Reads a float32/float16 `.npy` matrix: (values row-major, rows, dim).
pub fn read_npy(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let npy = vitrine_import::npy::Npy::open(path)?;
    let mut out = Vec::new();
    npy.read_rows(0..npy.rows(), &mut out);
    Ok((out, npy.rows(), npy.dim()))
}

/// Writes `data` (`rows × dim`, row-major) as a float32 `.npy` file.
pub fn write_npy(path: &Path, data: &[f32], rows: usize, dim: usize) -> Result<()> {
    Ok(vitrine_import::npy::write_f32(path, data, rows, dim)?)
}
