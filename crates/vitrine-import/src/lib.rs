//! Readers for precomputed embeddings, turning files into [`vitrine_store::Batch`]es.
//!
//! * [`npy`] — `.npy` matrices (float32 or float16, C order), memory-mapped.
//! * [`metadata`] — one row per vector from JSONL, CSV or Parquet: `id`, `uri`, `source`,
//!   `timestamp` (RFC 3339 or unix seconds) or `day` (YYYY-MM-DD), plus user fields.
//! * [`clip_retrieval`] — a clip-retrieval output folder (`img_emb/img_emb_N.npy` +
//!   `metadata/metadata_N.parquet`), the common precomputed-embedding format of the field.
//!
//! A [`Part`] (one vectors file and its metadata) is validated completely before anything is written: vector values, counts,
//! timestamps and field types. Bad input therefore writes nothing; its error names the file,
//! the row (and line) and the field.
//!
//! Dependencies: `parquet`/`arrow-*` (the Apache Arrow project's readers; Parquet is how
//! clip-retrieval and most embedding pipelines ship metadata), `csv` (BurntSushi's reader),
//! `half` (float16 conversion).
#![deny(missing_docs)]

pub mod clip_retrieval;
pub mod metadata;
pub mod npy;
mod thrift_guard;

use std::path::{Path, PathBuf};
use vitrine_store::{check_vector, Batch, Day, Metric, Row, Value};

/// The import crate's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file whose contents are not acceptable; the message names the row, line or field.
    #[error("{}: {msg}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        msg: String,
    },
    /// An error from the store.
    #[error(transparent)]
    Store(#[from] vitrine_store::Error),
}

/// `Result` with the import [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn invalid(path: &Path, msg: impl Into<String>) -> Error {
    Error::Invalid {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Defaults for rows whose metadata lacks a field.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// Source for rows without one.
    pub source: Option<String>,
    /// Day for rows without a timestamp or day.
    pub day: Option<Day>,
    /// Id prefix for rows without an id: the id becomes `{prefix}{row}`.
    pub id_prefix: Option<String>,
}

/// One vectors file with its metadata, validated and ready to write in batches.
pub struct Part {
    meta_path: std::path::PathBuf,
    vectors: npy::Npy,
    rows: Vec<Row>,
    field_names: Vec<String>,
}

impl Part {
    /// Opens `vectors` and reads `metadata` (or applies `defaults` to every row).
    pub fn open(vectors: &Path, metadata: Option<&Path>, defaults: &Defaults) -> Result<Part> {
        Part::open_at(vectors, metadata, defaults, 0)
    }

    /// [`Part::open`] where generated ids (`--id-prefix`) continue from `row_offset`, so the
    /// files of a multi-file import never produce the same id twice.
    pub fn open_at(vectors: &Path, metadata: Option<&Path>, defaults: &Defaults, row_offset: usize) -> Result<Part> {
        let npy = npy::Npy::open(vectors)?;
        match metadata {
            Some(m) => Part::from_table(npy, metadata::read(m)?, m, defaults, row_offset),
            None => {
                let n = npy.rows();
                let mut d = defaults.clone();
                if d.id_prefix.is_none() {
                    let stem = vectors
                        .file_stem()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_default();
                    d.id_prefix = Some(format!("{stem}-"));
                }
                Part::from_table(npy, metadata::Table::empty(n), vectors, &d, row_offset)
            }
        }
    }

    /// Pairs vectors with an already-read metadata table (`meta_path` names it in errors).
    pub fn from_table(
        npy: npy::Npy,
        table: metadata::Table,
        meta_path: &Path,
        defaults: &Defaults,
        row_offset: usize,
    ) -> Result<Part> {
        let n = npy.rows();
        if table.rows.len() != n {
            return Err(invalid(
                meta_path,
                format!(
                    "{} metadata rows for {} vectors in {} (they must match one to one)",
                    table.rows.len(),
                    n,
                    npy.path().display()
                ),
            ));
        }
        let mut rows = Vec::with_capacity(n);
        for (i, m) in table.rows.into_iter().enumerate() {
            let at = |what: &str| format!("{} {}: {what}", table.row_label, m.line.unwrap_or(i + 1));
            let id = match (m.id, &defaults.id_prefix, &m.uri) {
                (Some(id), ..) if !id.is_empty() => id,
                (_, Some(p), _) => format!("{p}{}", row_offset + i),
                (_, None, Some(uri)) if !uri.is_empty() => uri.clone(),
                _ => {
                    return Err(invalid(
                        meta_path,
                        at("no id (add an `id` or `uri` column, or pass --id-prefix)"),
                    ))
                }
            };
            let source = match m.source.or_else(|| defaults.source.clone()) {
                Some(s) => s,
                None => {
                    return Err(invalid(
                        meta_path,
                        at("no source (add a `source` column or pass --source)"),
                    ))
                }
            };
            let timestamp = match (m.timestamp, defaults.day) {
                (Some(t), _) => t,
                (None, Some(d)) => d.start(),
                (None, None) => {
                    return Err(invalid(
                        meta_path,
                        at("no timestamp or day (add a `timestamp` or `day` column, or pass --day)"),
                    ))
                }
            };
            rows.push(Row {
                id,
                uri: m.uri.unwrap_or_default(),
                source,
                timestamp,
                fields: m.fields,
            });
        }
        Ok(Part {
            vectors: npy,
            rows,
            field_names: table.field_names,
            meta_path: meta_path.to_path_buf(),
        })
    }

    /// The user field names of its metadata.
    pub fn field_names(&self) -> &[String] {
        &self.field_names
    }

    /// The metadata file (the vectors file when there is none).
    pub fn metadata_path(&self) -> &Path {
        &self.meta_path
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.vectors.dim()
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// The vectors file.
    pub fn path(&self) -> &Path {
        self.vectors.path()
    }

    /// Checks every vector against the collection's dimension and metric.
    pub fn validate(&self, dim: usize, metric: Metric) -> Result<()> {
        if self.dim() != dim {
            return Err(invalid(
                self.path(),
                format!(
                    "vectors have dimension {}, but the collection has dimension {dim}",
                    self.dim()
                ),
            ));
        }
        // Blocks of rows in parallel; the error is the first bad row's.
        use rayon::prelude::*;
        const BLOCK: usize = 16_384;
        let bad = (0..self.rows().div_ceil(BLOCK)).into_par_iter().find_map_first(|b| {
            let (start, end) = (b * BLOCK, ((b + 1) * BLOCK).min(self.rows()));
            let mut buf = Vec::new();
            self.vectors.read_rows(start..end, &mut buf);
            self.vectors.release(start..end);
            buf.chunks_exact(dim).enumerate().find_map(|(j, v)| {
                check_vector(metric, v).err().map(|e| {
                    invalid(
                        self.path(),
                        format!("row {} (id {:?}): {e}", start + j, self.rows[start + j].id),
                    )
                })
            })
        });
        bad.map_or(Ok(()), Err)
    }

    /// Checks every row's metadata against `schema` and returns it extended by this part's
    /// fields; run over all parts before writing so that bad input writes nothing.
    pub fn validate_rows(&self, schema: &vitrine_store::Schema) -> Result<vitrine_store::Schema> {
        let meta = self.meta_path.clone();
        vitrine_store::validate_rows(schema, &self.field_names, &self.rows).map_err(|e| invalid(&meta, e.to_string()))
    }

    /// The order to commit rows in: grouped by partition (source, then UTC day), file order
    /// within each, and only the last occurrence of each id (the row an import in file order
    /// would leave). Commits of a file whose rows interleave days then write one large segment
    /// per partition, not a small one in every partition each batch touches (100k-row commits
    /// of a year of rows: 375 segments rather than 3,650).
    pub fn commit_order(&self) -> Vec<usize> {
        let mut last: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::with_capacity(self.rows.len());
        for (i, r) in self.rows.iter().enumerate() {
            last.insert(&r.id, i);
        }
        let mut order: Vec<usize> = (0..self.rows.len())
            .filter(|&i| last[self.rows[i].id.as_str()] == i)
            .collect();
        // Stable: file order stays within a partition.
        order.sort_by_key(|&i| {
            (
                self.rows[i].source.as_str(),
                Day::from_timestamp(self.rows[i].timestamp),
            )
        });
        order
    }

    /// The rows at `rows` (indices into the file), in that order.
    pub fn batch_of(&self, rows: &[usize]) -> Batch {
        let mut vectors = Vec::with_capacity(rows.len() * self.dim());
        // Runs of consecutive rows are read at once (a file already in partition order is
        // copied in one piece).
        let mut at = 0;
        while at < rows.len() {
            let mut end = at + 1;
            while end < rows.len() && rows[end] == rows[end - 1] + 1 {
                end += 1;
            }
            self.vectors.append_rows(rows[at]..rows[end - 1] + 1, &mut vectors);
            at = end;
        }
        // One call for the span, in rows that interleave partitions too: rows of it that a
        // later batch reads come back from the page cache.
        if let (Some(lo), Some(hi)) = (rows.iter().min(), rows.iter().max()) {
            self.vectors.release(*lo..hi + 1);
        }
        Batch {
            field_names: self.field_names.clone(),
            rows: rows.iter().map(|&i| self.rows[i].clone()).collect(),
            vectors,
        }
    }
}

/// Converts a JSON value into a field value (`None` for arrays and objects).
pub fn json_value(v: &serde_json::Value) -> Option<Value> {
    Some(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::Str(s.clone()),
        _ => return None,
    })
}
