//! Indexing images into a collection: plan, skip unchanged inputs, embed in batches, upsert.
//!
//! * Inputs come from folders ([`plan::inputs_from_paths`]) or a manifest ([`plan::inputs_from_manifest`]:
//!   CSV or JSONL with `uri`, `source`, `timestamp`, optional `id` and user fields).
//! * The day of an image comes from the manifest's `timestamp`, else the photo's EXIF
//!   `DateTimeOriginal`, else the file's modification time, in that order.
//! * Each input is one upload and one row: the id is the manifest's `id`, else
//!   [`plan::upload_id`] of its source, uri (and manifest timestamp). Identical bytes share the
//!   `content_hash` field and are embedded once.
//! * An input whose size and modification time match what the collection holds for its uri is
//!   skipped without being decoded. A changed file is re-embedded and replaces its row.
//! * Each row keeps a small JPEG thumbnail (field `thumbnail`, base64) so results can be shown
//!   after the originals move.
//! * Every commit is atomic and durable, so an interrupted run keeps what it committed and the
//!   next run continues from there. The [`crate::ledger`] remembers inputs that failed or are
//!   still pending, for recall receipts.

pub mod plan;
pub mod run;

pub use plan::{inputs_from_manifest, inputs_from_paths, walk, Failure, Input, Plan, Scope};
pub use run::{index_inputs, IndexOptions, IndexReport, CONTENT_HASH_FIELD, ENGINE_FIELDS};

use crate::error::{Error, Result};
use crate::model::{check_dim, model_identity, record_model, recorded_model};
use crate::tombstones::Tombstones;
use crate::Engine;
use std::path::PathBuf;
use vitrine_clip::Towers;
use vitrine_store::{Metric, Schema, Selection};

/// What to index.
#[derive(Debug, Clone)]
pub enum IndexInputs {
    /// Image files and folders (searched recursively), all from one source.
    Paths {
        /// Files and folders.
        paths: Vec<PathBuf>,
        /// Their data source.
        source: String,
    },
    /// A CSV or JSONL manifest (see [`inputs_from_manifest`]).
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The source of rows without one.
        default_source: Option<String>,
    },
}

/// An indexing run.
#[derive(Debug, Clone)]
pub struct IndexRequest {
    /// The collection (created if needed, with cosine similarity).
    pub collection: String,
    /// What to index.
    pub inputs: IndexInputs,
    /// The model: a checkpoint folder or a cached hub name. Default: the model recorded in the
    /// collection, else the bundled demo model for a new collection.
    pub model: Option<String>,
    /// Commit size, batch size, thumbnails.
    pub options: IndexOptions,
}

impl Engine {
    /// What `inputs` hold, and which of them fail before any image is read.
    pub fn plan(&self, inputs: &IndexInputs) -> Result<Plan> {
        match inputs {
            IndexInputs::Paths { paths, source } => {
                vitrine_store::check_name("source", source)?;
                // A path that is not there is a typo, not an input that failed: stop before
                // anything is written (it would otherwise sit in receipts as a failed input).
                if let Some(p) = paths.iter().find(|p| !p.exists()) {
                    return Err(Error::invalid(format!(
                        "{}: no such file or folder (nothing was indexed)",
                        p.display()
                    )));
                }
                Ok(inputs_from_paths(paths, source))
            }
            IndexInputs::Manifest { path, default_source } => {
                if let Some(s) = default_source {
                    vitrine_store::check_name("source", s)?;
                }
                inputs_from_manifest(path, default_source.as_deref())
            }
        }
    }

    /// The model an index run of `collection` uses: the one asked for, else the collection's
    /// recorded model, else the bundled demo model.
    pub fn index_model(&self, collection: &str, model: Option<&str>) -> Result<String> {
        if let Some(m) = model {
            return Ok(m.to_string());
        }
        if self.backend().has_collection(collection)? {
            if let Some(m) = recorded_model(self.reader(collection)?.info()) {
                return Ok(m.to_string());
            }
        }
        crate::model::demo_model()
    }

    /// Indexes images into a collection: new and changed inputs are embedded (identical bytes
    /// once) and written in atomic commits, unchanged, deleted and expired ones skipped;
    /// `progress(done, total)` after each commit. A new collection is created with the first
    /// row, so a run that writes nothing leaves nothing behind.
    pub fn index(&self, req: &IndexRequest, progress: &mut dyn FnMut(usize, usize)) -> Result<IndexReport> {
        let plan = self.plan(&req.inputs)?;
        let model = self.index_model(&req.collection, req.model.as_deref())?;
        let embedder = self.models().get(&model, Towers::Image)?;
        let (name, hash) = model_identity(embedder.model().dir())?;
        let mut target = Destination {
            engine: self,
            collection: &req.collection,
            model: &model,
            name,
            hash,
            dim: embedder.dim(),
            dir: embedder.model().dir().to_path_buf(),
        };
        let (mut existing, mut forgotten, mut pre) = (Vec::new(), Tombstones::default(), None);
        if self.backend().has_collection(&req.collection)? {
            // Take the writer (and refuse another model's weights) before reading the rows and
            // the deletion records: no delete can come in between and be undone.
            let (writer, side) = run::Target::open(&mut target)?;
            self.backend().reader(&req.collection)?.scan(
                &Selection::default(),
                &run::existing_fields(),
                false,
                &mut |r| {
                    existing.push(r);
                    Ok(())
                },
            )?;
            forgotten = Tombstones::open(&side)?;
            pre = Some((writer, side));
        }
        index_inputs(
            &embedder,
            &mut target,
            pre,
            &existing,
            &mut forgotten,
            &plan,
            &req.options,
            progress,
        )
    }
}

/// The collection an index run writes to, created on first use and checked against the model.
struct Destination<'a> {
    engine: &'a Engine,
    collection: &'a str,
    model: &'a str,
    name: String,
    hash: String,
    dim: usize,
    dir: PathBuf,
}

impl run::Target for Destination<'_> {
    fn open(&mut self) -> Result<(Box<dyn crate::backend::CollectionWriter>, PathBuf)> {
        let mut w = self.engine.backend().writer()?;
        if !w.has_collection(self.collection)? {
            w.create_collection(self.collection, &Schema::new(self.dim, Metric::Cosine)?)?;
        }
        let mut col = w.collection(self.collection)?;
        check_dim(self.collection, col.schema().dim, self.model, self.dim)?;
        record_model(col.as_mut(), &self.name, &self.hash, &self.dir)?;
        Ok((col, self.engine.backend().side_dir(self.collection)?))
    }

    fn reader(&self) -> Result<Box<dyn crate::backend::CollectionReader>> {
        self.engine.backend().reader(self.collection)
    }
}
