//! Indexing image files into a collection: walk, skip unchanged files, embed in batches, upsert.
//!
//! * The id of an image is the BLAKE3 hash of its bytes (32 hex digits), so the same picture
//!   indexed twice, or found under two paths, is one row.
//! * A file whose size and modification time match what the collection holds for its path is
//!   skipped without being decoded. A changed file is re-embedded and replaces its row.
//! * The day comes from the file's modification time (EXIF and manifests come later).
//! * Every commit is atomic and durable, so an interrupted run keeps what it committed and the
//!   next run continues from there.

use crate::{Embedder, Error};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use vitrine_store::{Batch, CollectionWriter, Row, Snapshot, Value};

/// Manifest info keys recording the model that filled a collection.
pub const MODEL_KEY: &str = "model";
/// See [`MODEL_KEY`].
pub const MODEL_HASH_KEY: &str = "model_hash";

const EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif",
];

/// Image files under `paths` (files as given, folders recursively), sorted.
pub fn walk(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn visit(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    visit(&e.path(), out);
                }
            }
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(p.to_path_buf());
        }
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else {
            visit(p, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A model's identity for a collection: its folder and the BLAKE3 hash of its weights.
pub fn model_identity(dir: &Path) -> Result<(String, String), Error> {
    for name in ["model.safetensors", "pytorch_model.bin"] {
        let p = dir.join(name);
        if p.is_file() {
            let mut h = blake3::Hasher::new();
            h.update_mmap_rayon(&p)
                .map_err(|e| Error::Io(format!("{}: {e}", p.display())))?;
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            return Ok((dir.display().to_string(), h.finalize().to_hex()[..32].to_string()));
        }
    }
    Err(Error::Io(format!("{}: no model weights", dir.display())))
}

/// Refuses a model other than the one that filled the collection (vectors would not compare).
pub fn check_model(info: &serde_json::Map<String, serde_json::Value>, name: &str, hash: &str) -> Result<(), Error> {
    match info.get(MODEL_HASH_KEY).and_then(|v| v.as_str()) {
        Some(h) if h != hash => Err(Error::ModelMismatch(format!(
            "the collection was filled by model {} (weights {h}), not {name} (weights {hash}); vectors of different \
             models are not comparable: use that model, or another collection",
            info.get(MODEL_KEY).and_then(|v| v.as_str()).unwrap_or("?")
        ))),
        _ => Ok(()),
    }
}

/// What an indexing run did.
#[derive(Debug, Default, Clone)]
pub struct IndexReport {
    /// Files embedded and written.
    pub indexed: u64,
    /// Files skipped because they did not change.
    pub unchanged: u64,
    /// Files whose content equals another file's in this run (one row for both).
    pub duplicates: u64,
    /// Files that could not be indexed, with the reason.
    pub failed: Vec<(PathBuf, String)>,
}

/// Indexes `files` into `writer` as source `source`, committing every `commit_every` files.
/// `progress(done, total)` is called after each commit.
pub fn index_files(
    embedder: &Embedder,
    writer: &mut CollectionWriter,
    existing: Option<&Snapshot>,
    files: &[PathBuf],
    source: &str,
    commit_every: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<IndexReport, Error> {
    use rayon::prelude::*;
    let mut report = IndexReport::default();
    // uri → [file_size, file_mtime, id] of every live row.
    let known: HashMap<String, Vec<Value>> = existing
        .map(|s| s.values_by_uri(&["file_size", "file_mtime", "id"]))
        .unwrap_or_default();
    let mut todo = Vec::new();
    let mut stale = Vec::new();
    for f in files {
        let abs = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
        let uri = abs.display().to_string();
        match (std::fs::metadata(f).map(|m| stat_values(&m)), known.get(&uri)) {
            (Ok(now), Some(k)) if k[..2] == now[..] => report.unchanged += 1,
            (Ok(now), old) => {
                // A changed file's old content goes away with its new embedding.
                if let Some(Value::Str(id)) = old.map(|k| &k[2]) {
                    stale.push(id.clone());
                }
                todo.push((f.clone(), uri, now));
            }
            (Err(e), _) => report.failed.push((f.clone(), format!("{}: {e}", f.display()))),
        }
    }
    if !stale.is_empty() {
        writer.delete_ids(&stale)?;
    }
    // Content already in the collection under another path is a duplicate, not a new row.
    let mut seen: HashSet<String> = known
        .values()
        .filter_map(|k| match &k[2] {
            Value::Str(id) if !stale.contains(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    let mut done = 0;
    for chunk in todo.chunks(commit_every.max(1)) {
        let paths: Vec<PathBuf> = chunk.iter().map(|(p, ..)| p.clone()).collect();
        let vectors = embedder.embed_images(&paths);
        let hashes: Vec<std::io::Result<String>> = paths
            .par_iter()
            .map(|p| std::fs::read(p).map(|b| blake3::hash(&b).to_hex()[..32].to_string()))
            .collect();
        let mut batch = Batch {
            field_names: vec!["file_size".into(), "file_mtime".into()],
            ..Default::default()
        };
        for (((path, uri, stat), v), h) in chunk.iter().zip(vectors).zip(hashes) {
            let (v, id) = match (v, h) {
                (Ok(v), Ok(h)) => (v, h),
                (Err(e), _) => {
                    report.failed.push((path.clone(), e.to_string()));
                    continue;
                }
                (_, Err(e)) => {
                    report.failed.push((path.clone(), format!("{}: {e}", path.display())));
                    continue;
                }
            };
            if !seen.insert(id.clone()) {
                report.duplicates += 1;
                continue;
            }
            let Value::Int(mtime) = stat[1] else {
                unreachable!("stat_values gives ints")
            };
            batch.rows.push(Row {
                id,
                uri: uri.clone(),
                source: source.to_string(),
                timestamp: mtime,
                fields: stat.clone(),
            });
            batch.vectors.extend(v);
        }
        if !batch.rows.is_empty() {
            writer.insert(&batch)?;
            report.indexed += batch.rows.len() as u64;
        }
        done += chunk.len();
        progress(done, todo.len());
    }
    Ok(report)
}

fn stat_values(m: &std::fs::Metadata) -> Vec<Value> {
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    vec![Value::Int(m.len() as i64), Value::Int(mtime)]
}
