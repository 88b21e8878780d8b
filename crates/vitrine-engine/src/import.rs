//! Importing precomputed vectors: `.npy` + metadata, or a clip-retrieval folder.
//!
//! Everything is read and validated before the first write (vectors, every row's metadata, the
//! field types folded over every file), then written in atomic batches. The first commit
//! declares every field with its final type, so a field that is an integer in early rows and a
//! float later cannot make a later batch fail after earlier ones were committed. Batches take a
//! file's rows partition by partition (the last row of each id), so a file that interleaves
//! days still leaves a few large segments per day; an interrupted import leaves whole days
//! before partial ones.

use crate::error::{Error, Result};
use crate::index::ENGINE_FIELDS;
use crate::Engine;
use std::path::PathBuf;
pub use vitrine_import::Defaults;
use vitrine_import::{clip_retrieval, Part};
use vitrine_store::{Metric, Schema};

/// Where the vectors come from.
#[derive(Debug, Clone)]
pub enum ImportSource {
    /// A `.npy` matrix (float32 or float16) and, optionally, its metadata table (`.jsonl`,
    /// `.csv` or `.parquet`, one row per vector).
    Npy {
        /// The vectors.
        vectors: PathBuf,
        /// The metadata.
        metadata: Option<PathBuf>,
    },
    /// A clip-retrieval output folder (`img_emb/` + `metadata/`).
    ClipRetrieval(PathBuf),
}

/// An import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The collection (created if needed).
    pub collection: String,
    /// The files.
    pub source: ImportSource,
    /// Source, day and id prefix for rows without them.
    pub defaults: Defaults,
    /// Metric if the collection has to be created.
    pub metric: Metric,
    /// Rows per commit: each commit is atomic and durable.
    pub batch_size: usize,
    /// The model that made the vectors (a folder or a cached hub name): recorded in the
    /// collection, as `index` records its own, so that text and image queries use it; refused
    /// when its dimension differs or the collection records another model.
    pub model: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Rows written.
    pub inserted: u64,
    /// Of those, rows that replaced a row with the same id.
    pub replaced: u64,
    /// Vector files read.
    pub files: usize,
    /// Whether this import created the collection.
    pub created: bool,
    /// Rows in the collection afterwards.
    pub rows: u64,
    /// Partitions in the collection afterwards.
    pub partitions: usize,
}

impl Engine {
    /// Imports vectors and metadata; `progress(done, total)` is called after each commit.
    pub fn import(&self, req: &ImportRequest, progress: &mut dyn FnMut(usize, usize)) -> Result<ImportReport> {
        if let Some(s) = &req.defaults.source {
            vitrine_store::check_name("source", s)?;
        }
        if req.batch_size == 0 {
            return Err(Error::invalid("the batch size must be positive"));
        }
        // Read and validate every input before taking the lock or writing anything.
        let parts: Vec<Part> = match &req.source {
            ImportSource::Npy { vectors, metadata } => vec![Part::open(vectors, metadata.as_deref(), &req.defaults)?],
            ImportSource::ClipRetrieval(dir) => clip_retrieval::open(dir, &req.defaults)?,
        };
        // Validate against the collection as it is (or will be), before taking the writer: a
        // failed import creates no store folder and no collection.
        let exists = self.backend().has_collection(&req.collection)?;
        let base = if exists {
            self.backend().reader(&req.collection)?.schema().clone()
        } else {
            Schema::new(parts.first().map_or(0, Part::dim), req.metric)?
        };
        // Every row's metadata, with the schema folded over all parts (a field's type must
        // agree across files).
        let mut schema = base.clone();
        for p in &parts {
            if let Some(f) = p.field_names().iter().find(|f| ENGINE_FIELDS.contains(&f.as_str())) {
                return Err(Error::invalid(format!(
                    "{}: field name {f:?} is reserved for what `vitrine index` stores (reserved: {})",
                    p.metadata_path().display(),
                    ENGINE_FIELDS.join(", ")
                )));
            }
            p.validate(base.dim, base.metric)?;
            schema = p.validate_rows(&schema)?;
        }
        let model = match &req.model {
            Some(m) => {
                let e = self.models().get(m, vitrine_clip::Towers::Text)?;
                crate::model::check_dim(&req.collection, base.dim, m, e.dim())?;
                let (name, hash) = crate::model::model_identity(e.model().dir())?;
                Some((name, hash, e.model().dir().to_path_buf()))
            }
            None => None,
        };
        let mut w = self.backend().writer()?;
        let created = !w.has_collection(&req.collection)?;
        if created {
            w.create_collection(&req.collection, &Schema::new(base.dim, base.metric)?)?;
        }
        // Checks dimension and metric again, in case the collection changed meanwhile.
        let mut col = w.collection(&req.collection)?;
        if let Some((name, hash, dir)) = &model {
            if let Err(e) = crate::model::record_model(col.as_mut(), name, hash, dir) {
                if created {
                    drop(col);
                    let _ = w.drop_collection(&req.collection);
                }
                return Err(e);
            }
        }
        col.extend_schema(&schema)?;
        // Every row of this import carries one arrival number, published at the end (watchlists).
        let arrival = crate::watch::Arrival::begin(col.as_mut())?;
        let orders: Vec<Vec<usize>> = parts.iter().map(Part::commit_order).collect();
        let total: usize = orders.iter().map(Vec::len).sum();
        let mut report = ImportReport {
            files: parts.len(),
            created,
            ..Default::default()
        };
        // Rows hidden by a later row with the same id in the same file count as replaced, as
        // they would have been had they been committed first.
        report.replaced = parts
            .iter()
            .zip(&orders)
            .map(|(p, o)| (p.rows() - o.len()) as u64)
            .sum();
        let mut done = 0;
        // Commits go partition by partition (`Part::commit_order`), and the next batch is read
        // (copied out of the mapped file, f16 widened) on another thread while this one is
        // validated, encoded and written.
        let failed = std::thread::scope(|scope| -> Option<Error> {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let (parts, orders) = (&parts, &orders);
            let batch_size = req.batch_size;
            scope.spawn(move || {
                for (p, order) in parts.iter().zip(orders) {
                    for start in (0..order.len()).step_by(batch_size) {
                        let end = (start + batch_size).min(order.len());
                        // The receiver is gone when a commit failed: stop reading.
                        if tx.send((p, start, end, p.batch_of(&order[start..end]))).is_err() {
                            return;
                        }
                    }
                }
            });
            for (p, start, end, mut batch) in rx {
                arrival.stamp(&mut batch);
                match col.insert(&batch) {
                    Ok(r) => {
                        report.inserted += r.inserted;
                        report.replaced += r.replaced;
                        done += end - start;
                        progress(done, total);
                    }
                    Err(e) => {
                        return Some(e.context(format!(
                            "{}: rows {start}..{end} in (source, day) order",
                            p.path().display()
                        )))
                    }
                }
            }
            None
        });
        if let Some(e) = failed {
            // A collection this import created and could not fill goes away again (committed
            // batches of an existing one stay: each is acknowledged).
            if created && report.inserted == 0 {
                drop(col);
                let _ = w.drop_collection(&req.collection);
            } else if report.inserted > 0 {
                // Should this fail too, the next writer reuses the number (see `watch`).
                let _ = arrival.publish(col.as_mut());
            }
            return Err(e);
        }
        arrival.publish(col.as_mut())?;
        let parts = col.partitions();
        report.rows = parts.iter().map(|p| p.rows).sum();
        report.partitions = parts.len();
        Ok(report)
    }
}
