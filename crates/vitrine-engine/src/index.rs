//! Indexing images into a collection: plan, skip unchanged inputs, embed in batches, upsert.
//!
//! * Inputs come from folders ([`inputs_from_paths`]) or a manifest ([`inputs_from_manifest`]:
//!   CSV or JSONL with `uri`, `source`, `timestamp`, optional `id` and user fields).
//! * The day of an image comes from the manifest's `timestamp`, else the photo's EXIF
//!   `DateTimeOriginal`, else the file's modification time, in that order.
//! * The id defaults to the BLAKE3 hash of the file's bytes (32 hex digits), so the same picture
//!   indexed twice, or found under two paths, is one row.
//! * An input whose size and modification time match what the collection holds for its uri is
//!   skipped without being decoded. A changed file is re-embedded and replaces its row.
//! * Each row keeps a small JPEG thumbnail (field `thumbnail`, base64) so results can be shown
//!   after the originals move.
//! * Every commit is atomic and durable, so an interrupted run keeps what it committed and the
//!   next run continues from there. The [`crate::ledger`] remembers inputs that failed or are
//!   still pending, for recall receipts.

use crate::ledger::{Ledger, LedgerEntry, State};
use crate::{Embedder, Error};
use base64::Engine as _;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use vitrine_store::{Batch, CollectionWriter, Day, Row, Snapshot, Value};

/// Manifest info keys recording the model that filled a collection.
pub const MODEL_KEY: &str = "model";
/// See [`MODEL_KEY`].
pub const MODEL_HASH_KEY: &str = "model_hash";
/// See [`weights_stamp`].
pub const MODEL_STAMP_KEY: &str = "model_weights_stamp";
/// The user field holding each row's thumbnail (base64 JPEG); output formats leave it out.
pub const THUMBNAIL_FIELD: &str = "thumbnail";
/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 128;

const EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif",
];

/// Image files under `paths` (files as given, folders recursively, by extension), sorted, and
/// the paths that could not be listed (missing, unreadable folders) with the reason: a folder
/// that cannot be read is reported, never silently skipped.
pub fn walk(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    fn visit(p: &Path, out: &mut Vec<PathBuf>, bad: &mut Vec<(PathBuf, String)>) {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(rd) => {
                    for e in rd {
                        match e {
                            Ok(e) => visit(&e.path(), out, bad),
                            Err(e) => bad.push((p.to_path_buf(), format!("cannot list folder: {e}"))),
                        }
                    }
                }
                Err(e) => bad.push((p.to_path_buf(), format!("cannot list folder: {e}"))),
            }
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(p.to_path_buf());
        }
    }
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else if p.exists() {
            visit(p, &mut out, &mut bad);
        } else {
            bad.push((p.clone(), "no such file or folder".into()));
        }
    }
    out.sort();
    out.dedup();
    (out, bad)
}

/// One image to index and what is known about it before it is read.
#[derive(Debug, Clone)]
pub struct Input {
    /// The local file.
    pub path: PathBuf,
    /// The uri stored in the row (the manifest's, or the file's absolute path).
    pub uri: String,
    /// Data source.
    pub source: String,
    /// From the manifest, if it gave one.
    pub timestamp: Option<i64>,
    /// From the manifest, if it gave one.
    pub id: Option<String>,
    /// User field values, aligned with the plan's field names.
    pub fields: Vec<Value>,
    /// Where the input came from, for messages ("m.csv line 7", or the path).
    pub origin: String,
}

/// An input that could not be indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Where it came from ("m.csv line 7", or the path).
    pub origin: String,
    /// Its uri, if known.
    pub uri: Option<String>,
    /// Its source, if known.
    pub source: Option<String>,
    /// Its day, if known.
    pub day: Option<Day>,
    /// A short category: "missing file", "bad manifest row", "not an image", "too large", …
    pub kind: &'static str,
    /// The full reason.
    pub reason: String,
}

/// What to index: the inputs, the user fields they carry, and the inputs already known to fail
/// (bad manifest rows, missing files).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Inputs to index.
    pub inputs: Vec<Input>,
    /// User field names the inputs' values follow.
    pub field_names: Vec<String>,
    /// Inputs that failed before reading an image.
    pub failures: Vec<Failure>,
}

/// Folder inputs, all from `source`.
pub fn inputs_from_paths(paths: &[PathBuf], source: &str) -> Plan {
    let (files, bad) = walk(paths);
    let failures = bad
        .into_iter()
        .map(|(p, reason)| Failure {
            origin: p.display().to_string(),
            uri: None,
            source: Some(source.to_string()),
            day: None,
            kind: "unreadable",
            reason,
        })
        .collect();
    let inputs = files
        .into_iter()
        .map(|p| {
            let abs = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            Input {
                uri: abs.display().to_string(),
                origin: p.display().to_string(),
                path: p,
                source: source.to_string(),
                timestamp: None,
                id: None,
                fields: vec![],
            }
        })
        .collect();
    Plan {
        inputs,
        failures,
        ..Plan::default()
    }
}

/// Inputs of a manifest (`.csv` or `.jsonl`): columns `uri` (a path, relative to the manifest's
/// folder, or `file://`), `source` (else `default_source`), `timestamp` (RFC 3339, unix seconds
/// or YYYY-MM-DD; else EXIF, else mtime), optional `id`, and user fields. Each unusable row
/// becomes a failure naming its line.
pub fn inputs_from_manifest(manifest: &Path, default_source: Option<&str>) -> Result<Plan, Error> {
    let (table, bad) = vitrine_import::metadata::read_lenient(manifest).map_err(|e| Error::Io(e.to_string()))?;
    let name = manifest.display().to_string();
    let base = manifest.parent().unwrap_or(Path::new("."));
    let mut failures: Vec<Failure> = bad
        .into_iter()
        .map(|(line, e)| Failure {
            origin: format!("{name} line {line}"),
            uri: None,
            source: None,
            day: None,
            kind: "bad manifest row",
            reason: e.to_string(),
        })
        .collect();
    let mut inputs = Vec::with_capacity(table.rows.len());
    for row in table.rows {
        let origin = format!("{name} {} {}", table.row_label, row.line.unwrap_or(0));
        let day = row.timestamp.map(Day::from_timestamp);
        let fail = |kind, reason: String| Failure {
            origin: origin.clone(),
            uri: row.uri.clone(),
            source: row.source.clone().or(default_source.map(str::to_string)),
            day,
            kind,
            reason: format!("{origin}: {reason}"),
        };
        let Some(uri) = row.uri.clone() else {
            failures.push(fail("bad manifest row", "no uri".into()));
            continue;
        };
        let Some(source) = row.source.clone().or(default_source.map(str::to_string)) else {
            failures.push(fail(
                "bad manifest row",
                "no source (add a source column or pass --source)".into(),
            ));
            continue;
        };
        if let Err(e) = vitrine_store::check_name("source", &source) {
            failures.push(fail("bad manifest row", e.to_string()));
            continue;
        }
        if let Some(t) = row.timestamp {
            if let Err(e) = vitrine_store::check_timestamp(t) {
                failures.push(fail("bad manifest row", e.to_string()));
                continue;
            }
        }
        if uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("s3://") {
            failures.push(fail(
                "remote uri",
                format!("{uri}: remote images are not fetched (vitrine never uses the network); copy them locally"),
            ));
            continue;
        }
        let local = uri.strip_prefix("file://").unwrap_or(&uri);
        let path = if Path::new(local).is_absolute() {
            PathBuf::from(local)
        } else {
            base.join(local)
        };
        if !path.is_file() {
            failures.push(fail("missing file", format!("{}: no such file", path.display())));
            continue;
        }
        inputs.push(Input {
            path,
            uri,
            source,
            timestamp: row.timestamp,
            id: row.id,
            fields: row.fields,
            origin,
        });
    }
    Ok(Plan {
        inputs,
        field_names: table.field_names,
        failures,
    })
}

/// `path|size|mtime_ns` of the weights file in `dir`, recorded with the collection
/// ([`MODEL_STAMP_KEY`]) so that queries can trust the recorded hash without reading the
/// weights again (600 MB for ViT-B/32, for every command-line query).
pub fn weights_stamp(dir: &Path) -> Option<String> {
    let p = vitrine_clip::weights_file(dir).ok()?;
    let meta = std::fs::metadata(&p).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let p = std::fs::canonicalize(&p).unwrap_or(p);
    Some(format!("{}|{}|{mtime}", p.display(), meta.len()))
}

/// [`check_model`] for a query: when the weights file's stamp equals the one recorded at index
/// time, the recorded hash stands (the same rule as unchanged images: same path, size and
/// modification time); otherwise the weights are hashed and compared.
pub fn check_collection_model(info: &serde_json::Map<String, serde_json::Value>, dir: &Path) -> Result<(), Error> {
    if !info.contains_key(MODEL_HASH_KEY) {
        return Ok(()); // imported vectors: no model recorded, nothing to compare with
    }
    let recorded = info.get(MODEL_STAMP_KEY).and_then(|v| v.as_str());
    if recorded.is_some() && recorded == weights_stamp(dir).as_deref() {
        return Ok(());
    }
    let (name, hash) = model_identity(dir)?;
    check_model(info, &name, &hash)
}

/// A model's identity for a collection: its folder and the BLAKE3 hash of its weights.
pub fn model_identity(dir: &Path) -> Result<(String, String), Error> {
    let p = vitrine_clip::weights_file(dir)?;
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(&p)
        .map_err(|e| Error::Io(format!("{}: {e}", p.display())))?;
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    Ok((dir.display().to_string(), h.finalize().to_hex()[..32].to_string()))
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
    /// Inputs embedded and written.
    pub indexed: u64,
    /// Inputs skipped because they did not change.
    pub unchanged: u64,
    /// Inputs whose content equals another input's (one row for both).
    pub duplicates: u64,
    /// Inputs that could not be indexed.
    pub failed: Vec<Failure>,
}

impl IndexReport {
    /// Failures counted by kind, most frequent first.
    pub fn failed_by_kind(&self) -> Vec<(&'static str, usize)> {
        let mut m: HashMap<&'static str, usize> = HashMap::new();
        for f in &self.failed {
            *m.entry(f.kind).or_default() += 1;
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }
}

/// Indexing settings.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Inputs per commit.
    pub commit_every: usize,
    /// Keep a thumbnail of each image in the store.
    pub thumbnails: bool,
    /// Where the ledger of pending and failed inputs lives (`None`: keep none).
    pub ledger: Option<PathBuf>,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            commit_every: 256,
            thumbnails: true,
            ledger: None,
        }
    }
}

fn kind_of(e: &Error) -> &'static str {
    match e {
        Error::Image(vitrine_image::Error::TooLarge { .. }) => "too large",
        Error::Image(vitrine_image::Error::Decode { .. }) => "not a decodable image",
        Error::Image(vitrine_image::Error::Io { .. }) | Error::Io(_) => "unreadable",
        _ => "model error",
    }
}

/// A JPEG thumbnail whose longer side is at most [`THUMBNAIL_SIDE`], base64-encoded.
pub fn thumbnail(img: &vitrine_image::RgbImage) -> String {
    let (w, h) = (img.width().max(1), img.height().max(1));
    let s = THUMBNAIL_SIDE as f64 / w.max(h) as f64;
    let small;
    let img = if s < 1.0 {
        let (tw, th) = (
            ((w as f64 * s).round() as u32).max(1),
            ((h as f64 * s).round() as u32).max(1),
        );
        small = vitrine_image::resample::resize_bicubic(img, tw, th);
        &small
    } else {
        img
    };
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    if img.write_with_encoder(enc).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Indexes `plan` into `writer`, committing every `opts.commit_every` inputs; the plan's
/// failures (bad manifest rows) join the report and the ledger. `progress(done, total)` is called after each commit.
pub fn index_inputs(
    embedder: &Embedder,
    writer: &mut CollectionWriter,
    existing: Option<&Snapshot>,
    plan: &Plan,
    opts: &IndexOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<IndexReport, Error> {
    let (inputs, field_names) = (&plan.inputs, &plan.field_names);
    let mut report = IndexReport {
        failed: plan.failures.clone(),
        ..Default::default()
    };
    // uri → [file_size, file_mtime, id] of every live row.
    let known: HashMap<String, Vec<Value>> = existing
        .map(|s| s.values_by_uri(&["file_size", "file_mtime", "id"]))
        .unwrap_or_default();
    let mut todo = Vec::new();
    let mut stale = Vec::new();
    for input in inputs {
        match (
            std::fs::metadata(&input.path).map(|m| stat_values(&m)),
            known.get(&input.uri),
        ) {
            (Ok(now), Some(k)) if k[..2] == now[..] => report.unchanged += 1,
            (Ok(now), old) => {
                // A changed file's old content goes away with its new embedding.
                if let Some(Value::Str(id)) = old.map(|k| &k[2]) {
                    stale.push(id.clone());
                }
                todo.push((input, now));
            }
            (Err(e), _) => report.failed.push(Failure {
                origin: input.origin.clone(),
                uri: Some(input.uri.clone()),
                source: Some(input.source.clone()),
                day: input.timestamp.map(Day::from_timestamp),
                kind: "unreadable",
                reason: format!("{}: {e}", input.path.display()),
            }),
        }
    }
    // Before anything is written: every input of this run is pending until its row commits.
    let mut ledger = match &opts.ledger {
        Some(p) => {
            let mut l = Ledger::open(p)?;
            let planned: Vec<LedgerEntry> = todo
                .iter()
                .map(|(i, _)| LedgerEntry {
                    uri: i.uri.clone(),
                    source: i.source.clone(),
                    day: i.timestamp.map(Day::from_timestamp),
                    state: State::Pending,
                    reason: None,
                })
                .collect();
            let this_run: HashSet<&str> = inputs.iter().map(|i| i.uri.as_str()).collect();
            l.start_run(&this_run, planned)?;
            Some(l)
        }
        None => None,
    };
    if !stale.is_empty() {
        writer.delete_ids(&stale)?;
    }
    // Content already in the collection under another uri is a duplicate, not a new row.
    let mut seen: HashSet<String> = known
        .values()
        .filter_map(|k| match &k[2] {
            Value::Str(id) if !stale.contains(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    let mut names = vec!["file_size".to_string(), "file_mtime".to_string()];
    if opts.thumbnails {
        names.push(THUMBNAIL_FIELD.to_string());
    }
    names.extend(field_names.iter().cloned());
    let mut done = 0;
    for chunk in todo.chunks(opts.commit_every.max(1)) {
        let paths: Vec<PathBuf> = chunk.iter().map(|(i, _)| i.path.clone()).collect();
        let thumbs = opts.thumbnails;
        // One read and one decode per file: the content hash (the default id), the EXIF date
        // and the thumbnail come from the same bytes and pixels as the embedding.
        let results = embedder.embed_images_with(&paths, |bytes, img| Facts {
            hash: blake3::hash(bytes).to_hex()[..32].to_string(),
            taken: vitrine_image::taken_at(bytes),
            thumbnail: thumbs.then(|| thumbnail(img)),
        });
        let mut batch = Batch {
            field_names: names.clone(),
            ..Default::default()
        };
        let mut failed_now = Vec::new();
        for ((input, stat), r) in chunk.iter().zip(results) {
            let fail = |kind, reason: String| Failure {
                origin: input.origin.clone(),
                uri: Some(input.uri.clone()),
                source: Some(input.source.clone()),
                day: input.timestamp.map(Day::from_timestamp),
                kind,
                reason,
            };
            let (v, facts) = match r {
                Ok(r) => r,
                Err(e) => {
                    let reason = if input.origin == input.path.display().to_string() {
                        e.to_string()
                    } else {
                        format!("{}: {e}", input.origin)
                    };
                    failed_now.push(fail(kind_of(&e), reason));
                    continue;
                }
            };
            let Facts { hash, taken, thumbnail } = facts;
            let id = input.id.clone().unwrap_or(hash);
            if !seen.insert(id.clone()) {
                report.duplicates += 1;
                continue;
            }
            let Value::Int(mtime) = stat[1] else {
                unreachable!("stat_values gives ints")
            };
            let mut fields = stat.clone();
            if let Some(t) = thumbnail {
                fields.push(Value::Str(t));
            }
            fields.extend(input.fields.iter().cloned());
            batch.rows.push(Row {
                id,
                uri: input.uri.clone(),
                source: input.source.clone(),
                // The manifest's time wins over EXIF, which wins over the file's mtime.
                timestamp: input.timestamp.or(taken).unwrap_or(mtime),
                fields,
            });
            batch.vectors.extend(v);
        }
        if !batch.rows.is_empty() {
            writer.insert(&batch)?;
            report.indexed += batch.rows.len() as u64;
        }
        if let Some(l) = ledger.as_mut() {
            l.record_failures(&failed_now)?;
        }
        report.failed.extend(failed_now);
        done += chunk.len();
        progress(done, todo.len());
    }
    // Frequent commits leave many small segments per partition; merge them once at the end so
    // searches open a few files per partition, not hundreds.
    let parts = writer.partitions();
    if parts.iter().map(|p| p.segments).sum::<usize>() > 2 * parts.len() {
        writer.compact()?;
    }
    if let Some(l) = ledger.as_mut() {
        // Failures found before embedding (unreadable files, bad manifest rows) are recorded too.
        let early: Vec<Failure> = report.failed.iter().filter(|f| !l.has_failure(f)).cloned().collect();
        l.record_failures(&early)?;
        l.finish_run()?;
    }
    Ok(report)
}

/// What indexing learns from a file's bytes and pixels besides its embedding.
struct Facts {
    hash: String,
    taken: Option<i64>,
    thumbnail: Option<String>,
}

fn stat_values(m: &std::fs::Metadata) -> Vec<Value> {
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    vec![Value::Int(m.len() as i64), Value::Int(mtime)]
}
