//! The indexing loop: skip unchanged and forgotten inputs, embed new content once, commit,
//! keep the ledger.
//!
//! Each input is one upload and one row: its id is the manifest's `id`, else
//! [`upload_id`](super::plan::upload_id) of its source and uri. Its content hash (BLAKE3 of the
//! bytes, field `content_hash`) finds identical bytes: those are embedded once, and every other
//! upload of them reuses the vector and thumbnail (so reuse across sources and days is one
//! query away). Per commit of `commit_every` inputs:
//!
//! 1. read and hash the inputs in parallel (bounded reads; failures named);
//! 2. skip what was deleted or expired ([`crate::tombstones`]);
//! 3. embed only content the collection (or this run) does not have yet;
//! 4. write the rows in one commit, deleting in the same commit the rows they replace (a moved
//!    file's old row, a row of the same upload under an older id).

use super::plan::{Failure, Input, Plan};
use crate::backend::{CollectionReader, CollectionWriter, Record};
use crate::embedder::{read_image_file, Embedder};
use crate::error::{Error, Result};
use crate::ledger::{Ledger, LedgerEntry, State};
use crate::thumbnail::{thumbnail, THUMBNAIL_FIELD};
use crate::tombstones::Tombstones;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use vitrine_store::{Batch, Day, Row, Value};

/// The field holding each row's content hash (BLAKE3 of the file, 32 hex digits).
pub const CONTENT_HASH_FIELD: &str = "content_hash";

/// Fields indexing writes itself into each row; imports and manifests may not use these names.
pub const ENGINE_FIELDS: &[&str] = &[
    THUMBNAIL_FIELD,
    "file_size",
    "file_mtime",
    CONTENT_HASH_FIELD,
    crate::watch::ARRIVAL_FIELD,
];

/// What an indexing run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct IndexReport {
    /// Rows written (new uploads, changed and moved files).
    pub indexed: u64,
    /// Of those, images run through the model.
    pub embedded: u64,
    /// Of those, uploads whose bytes were already embedded (another upload, another source or
    /// day): their vector and thumbnail were reused.
    pub reused: u64,
    /// Of those, files found under a new uri whose old file is gone: the row moved.
    pub moved: u64,
    /// Inputs skipped because they did not change.
    pub unchanged: u64,
    /// Inputs skipped because their row was deleted, their partition dropped or their day
    /// expired (`--readmit-deleted` indexes them).
    pub forgotten: u64,
    /// Inputs that could not be indexed.
    #[serde(skip)]
    pub failed: Vec<Failure>,
    /// What the caller should know (a damaged ledger that was restarted).
    pub warnings: Vec<String>,
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
    /// Images per forward pass.
    pub batch: usize,
    /// Keep a thumbnail of each image in the store.
    pub thumbnails: bool,
    /// Index inputs whose rows were deleted or whose days were dropped or expired.
    pub readmit_deleted: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            commit_every: 256,
            batch: 32,
            thumbnails: true,
            readmit_deleted: false,
        }
    }
}

/// Where an index run writes: the collection's writer and its side folder, opened (and the
/// collection created) on first use, so a run that writes nothing leaves nothing behind.
pub trait Target {
    /// The writer, and the side folder for the ledger.
    fn open(&mut self) -> Result<(Box<dyn CollectionWriter>, PathBuf)>;
    /// A fresh read view of the collection (it sees this run's commits).
    fn reader(&self) -> Result<Box<dyn CollectionReader>>;
}

/// The collection's rows before the run: (id, uri, source, file_size, file_mtime, content_hash).
pub fn existing_fields() -> Vec<String> {
    ["file_size", "file_mtime", CONTENT_HASH_FIELD]
        .map(String::from)
        .to_vec()
}

fn kind_of(e: &Error) -> &'static str {
    match e {
        Error::Image(vitrine_image::Error::TooLarge { .. }) => "too large",
        Error::Image(vitrine_image::Error::Decode { .. }) => "not a decodable image",
        Error::Image(vitrine_image::Error::Io { .. }) | Error::Io { .. } => "unreadable",
        _ => "model error",
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

/// The local file a uri names, if it names one.
fn local_path(uri: &str) -> Option<&Path> {
    let p = Path::new(uri.strip_prefix("file://").unwrap_or(uri));
    p.is_absolute().then_some(p)
}

/// A planned input after the hash pass.
struct Hashed<'a> {
    input: &'a Input,
    id: String,
    size: i64,
    mtime: i64,
    hash: String,
    timestamp: i64,
}

/// Where the vector of a row comes from.
enum VectorFrom {
    /// Embed this input (index into the chunk's embed list).
    Embed(usize),
    /// The same bytes embedded earlier in this chunk (index into the embed list).
    Sibling(usize),
    /// A stored row with the same bytes (its id).
    Row(String),
}

/// The run's open writer and ledger.
struct Open {
    writer: Box<dyn CollectionWriter>,
    ledger: Ledger,
    /// The run's arrival number (watchlists), published after its last commit.
    arrival: Option<crate::watch::Arrival>,
}

/// The run's mutable state that outlives one commit.
struct Run<'a> {
    target: &'a mut dyn Target,
    pre: Option<(Box<dyn CollectionWriter>, PathBuf)>,
    open: Option<Open>,
    plan: &'a Plan,
    /// The ids of every input of the run (the ledger forgets what it said about them).
    ids: HashSet<String>,
    planned: Vec<LedgerEntry>,
    warnings: Vec<String>,
}

impl Run<'_> {
    /// The writer and ledger, opened on first use; the ledger marks every planned input pending
    /// (durably) before anything is written.
    fn get(&mut self) -> Result<&mut Open> {
        if self.open.is_none() {
            let (writer, dir) = match self.pre.take() {
                Some(p) => p,
                None => self.target.open()?,
            };
            let path = dir.join(crate::ledger::LEDGER_FILE);
            let mut ledger = match Ledger::open(&path) {
                Ok(l) => l,
                // The ledger is the indexer's own record, rebuilt by every run over its inputs:
                // a damaged one is kept aside (receipts said "unknown" meanwhile) and restarted.
                Err(Error::Damaged { why, .. }) => {
                    let aside = path.with_extension(format!("jsonl.damaged-{}", Day::today()));
                    std::fs::rename(&path, &aside).map_err(|e| Error::io(&path, e))?;
                    self.warnings.push(format!(
                        "the ledger {} was damaged ({why}); it was moved to {} and restarted: inputs that failed \
                         before this run and are not part of it are no longer listed in receipts",
                        path.display(),
                        aside.display()
                    ));
                    Ledger::open(&path)?
                }
                Err(e) => return Err(e),
            };
            let this_run: HashSet<&str> = self.ids.iter().map(String::as_str).collect();
            let scope = &self.plan.scope;
            ledger.start_run(
                &|key, recorded| scope.covers(key, recorded),
                &this_run,
                std::mem::take(&mut self.planned),
            )?;
            let mut writer = writer;
            let arrival = Some(crate::watch::Arrival::begin(writer.as_mut())?);
            self.open = Some(Open {
                writer,
                ledger,
                arrival,
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }
}

/// A row with some content hash.
struct Holder {
    id: String,
    source: String,
    uri: String,
}

/// Indexes `plan`: `existing` are the collection's rows before the run (with
/// [`existing_fields`]), `forgotten` its tombstones, both read while `pre` (the target opened
/// ahead, for an existing collection, whose ledger must hear about this run even if nothing is
/// written) held the writer lock. `progress(done, total)` is called after each commit.
#[allow(clippy::too_many_arguments)]
pub fn index_inputs(
    embedder: &Embedder,
    target: &mut dyn Target,
    pre: Option<(Box<dyn CollectionWriter>, PathBuf)>,
    existing: &[Record],
    forgotten: &mut Tombstones,
    plan: &Plan,
    opts: &IndexOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<IndexReport> {
    let mut report = IndexReport {
        failed: plan.failures.clone(),
        ..Default::default()
    };
    let by_id: HashMap<&str, &Record> = existing.iter().map(|r| (r.id.as_str(), r)).collect();
    let by_upload: HashMap<(&str, &str), &str> = existing
        .iter()
        .map(|r| ((r.source.as_str(), r.uri.as_str()), r.id.as_str()))
        .collect();
    // Content hash → the rows with those bytes (the collection's, then this run's).
    let mut by_hash: HashMap<String, Vec<Holder>> = HashMap::new();
    for r in existing {
        if let Some(h) = text(r.fields.get(CONTENT_HASH_FIELD)) {
            by_hash.entry(h.to_string()).or_default().push(Holder {
                id: r.id.clone(),
                source: r.source.clone(),
                uri: r.uri.clone(),
            });
        }
    }
    // Rows replaced in this run (moved, or re-keyed): no longer a source of vectors.
    let mut gone: HashSet<String> = HashSet::new();
    // Pass 0: what needs reading at all.
    let mut todo: Vec<(&Input, String)> = Vec::new();
    let mut first_of: HashMap<String, &str> = HashMap::new();
    for input in &plan.inputs {
        let id = input
            .id
            .clone()
            .unwrap_or_else(|| super::plan::upload_id(&input.source, &input.uri, input.timestamp));
        // Two inputs with one id would be one row: the later one is named, not merged silently.
        if let Some(first) = first_of.get(&id) {
            report.failed.push(Failure {
                id: None,
                origin: input.origin.clone(),
                uri: Some(input.uri.clone()),
                source: Some(input.source.clone()),
                day: input.timestamp.map(Day::from_timestamp),
                kind: "duplicate input",
                reason: format!(
                    "{}: the same upload as {first} (same id {id}: source, uri and time, or the manifest's id)",
                    input.origin
                ),
            });
            continue;
        }
        first_of.insert(id.clone(), &input.origin);
        match by_id.get(id.as_str()) {
            Some(r) => {
                let unchanged = std::fs::metadata(&input.path).is_ok_and(|m| {
                    let (size, mtime) = stat_of(&m);
                    r.uri == input.uri
                        && int(r.fields.get("file_size")) == Some(size)
                        && int(r.fields.get("file_mtime")) == Some(mtime)
                });
                if unchanged {
                    report.unchanged += 1;
                    continue;
                }
            }
            // Only an upload with no live row can have been deleted or expired.
            None => {
                let day = input.timestamp.map(Day::from_timestamp);
                if !opts.readmit_deleted && forgotten.forgets(&id, &input.source, day).is_some() {
                    report.forgotten += 1;
                    continue;
                }
            }
        }
        todo.push((input, id));
    }
    let tag = plan.scope.tag();
    let eager = pre.is_some();
    let mut run = Run {
        target,
        pre,
        open: None,
        plan,
        ids: first_of.keys().cloned().collect(),
        planned: todo
            .iter()
            .map(|(i, id)| LedgerEntry {
                key: id.clone(),
                uri: i.uri.clone(),
                source: i.source.clone(),
                day: i.timestamp.map(Day::from_timestamp),
                state: State::Pending,
                reason: None,
                scope: tag.clone(),
            })
            .collect(),
        warnings: Vec::new(),
    };
    if eager {
        run.get()?;
    }
    let mut names = vec![
        "file_size".to_string(),
        "file_mtime".to_string(),
        CONTENT_HASH_FIELD.to_string(),
    ];
    if opts.thumbnails {
        names.push(THUMBNAIL_FIELD.to_string());
    }
    names.extend(plan.field_names.iter().cloned());
    let mut written_ids: HashSet<String> = HashSet::new();
    let mut written_parts: HashSet<(String, Day)> = HashSet::new();
    let mut done = 0;
    for chunk in todo.chunks(opts.commit_every.max(1)) {
        // 1. Read and hash in parallel; the EXIF date comes from the same bytes.
        let hashed: Vec<std::result::Result<Hashed<'_>, Box<Failure>>> = chunk
            .par_iter()
            .map(|(input, id)| {
                let fail = |e: Error| {
                    Box::new(Failure {
                        id: Some(id.clone()),
                        origin: input.origin.clone(),
                        uri: Some(input.uri.clone()),
                        source: Some(input.source.clone()),
                        day: input.timestamp.map(Day::from_timestamp),
                        kind: kind_of(&e),
                        reason: if input.origin == input.path.display().to_string() {
                            e.to_string()
                        } else {
                            format!("{}: {e}", input.origin)
                        },
                    })
                };
                let meta = std::fs::metadata(&input.path).map_err(|e| fail(Error::io(&input.path, e)))?;
                let bytes = read_image_file(&input.path).map_err(fail)?;
                let (size, mtime) = stat_of(&meta);
                // The manifest's time wins over EXIF, which wins over the file's mtime.
                let timestamp = input
                    .timestamp
                    .or_else(|| vitrine_image::taken_at(&bytes))
                    .unwrap_or(mtime);
                Ok(Hashed {
                    input,
                    id: id.clone(),
                    size,
                    mtime,
                    hash: blake3::hash(&bytes).to_hex()[..32].to_string(),
                    timestamp,
                })
            })
            .collect();
        // 2. Skip what was forgotten; decide where each vector comes from.
        let mut rows: Vec<(Hashed<'_>, VectorFrom)> = Vec::new();
        let mut to_embed: Vec<PathBuf> = Vec::new();
        let mut first_in_chunk: HashMap<String, usize> = HashMap::new();
        let mut failed_now = Vec::new();
        for h in hashed {
            let h = match h {
                Ok(h) => h,
                Err(f) => {
                    failed_now.push(*f);
                    continue;
                }
            };
            let day = Day::from_timestamp(h.timestamp);
            if !opts.readmit_deleted
                && !by_id.contains_key(h.id.as_str())
                && forgotten.forgets(&h.id, &h.input.source, Some(day)).is_some()
            {
                report.forgotten += 1;
                continue;
            }
            let stored = by_hash
                .get(&h.hash)
                .and_then(|rows| rows.iter().find(|r| !gone.contains(&r.id)));
            let from = if let Some(&e) = first_in_chunk.get(&h.hash) {
                VectorFrom::Sibling(e)
            } else if let Some(r) = stored {
                VectorFrom::Row(r.id.clone())
            } else {
                first_in_chunk.insert(h.hash.clone(), to_embed.len());
                to_embed.push(h.input.path.clone());
                VectorFrom::Embed(to_embed.len() - 1)
            };
            rows.push((h, from));
        }
        // 3. Embed new content (each file read again: the hash pass kept no bytes in memory).
        let thumbs = opts.thumbnails;
        let embedded = embedder.embed_images_with(&to_embed, opts.batch, |bytes, img| {
            (
                blake3::hash(bytes).to_hex()[..32].to_string(),
                thumbs.then(|| thumbnail(img)),
            )
        });
        // Vectors and thumbnails of stored rows with the same bytes.
        let reuse_ids: Vec<String> = rows
            .iter()
            .filter_map(|(_, f)| match f {
                VectorFrom::Row(id) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let stored: HashMap<String, Record> = if reuse_ids.is_empty() {
            HashMap::new()
        } else {
            let fields = if thumbs {
                vec![THUMBNAIL_FIELD.to_string()]
            } else {
                vec![]
            };
            run.target
                .reader()?
                .get(&reuse_ids, &fields, true)?
                .into_iter()
                .flatten()
                .map(|r| (r.id.clone(), r))
                .collect()
        };
        // 4. The rows of this commit.
        let mut batch = Batch {
            field_names: names.clone(),
            ..Default::default()
        };
        let mut replaced: Vec<String> = Vec::new();
        let (mut n_embedded, mut n_reused, mut n_moved) = (0, 0, 0);
        for (h, from) in rows {
            let fail = |kind, reason: String| Failure {
                id: Some(h.id.clone()),
                origin: h.input.origin.clone(),
                uri: Some(h.input.uri.clone()),
                source: Some(h.input.source.clone()),
                day: Some(Day::from_timestamp(h.timestamp)),
                kind,
                reason,
            };
            let (vector, hash, thumb) = match &from {
                VectorFrom::Embed(i) | VectorFrom::Sibling(i) => match &embedded[*i] {
                    // The bytes embedded may differ from those hashed if the file changed in
                    // between: the row records what was embedded.
                    Ok((v, (hash, t))) => (v.clone(), hash.clone(), t.clone()),
                    Err(e) => {
                        let reason = if h.input.origin == h.input.path.display().to_string() {
                            e.to_string()
                        } else {
                            format!("{}: {e}", h.input.origin)
                        };
                        failed_now.push(fail(kind_of(e), reason));
                        continue;
                    }
                },
                VectorFrom::Row(id) => match stored.get(id).and_then(|r| r.vector.clone().map(|v| (v, r))) {
                    Some((v, r)) => (
                        v,
                        h.hash.clone(),
                        text(r.fields.get(THUMBNAIL_FIELD)).map(str::to_string),
                    ),
                    None => {
                        failed_now.push(fail(
                            "unreadable",
                            format!(
                                "{}: the row with the same bytes ({id}) could not be read",
                                h.input.origin
                            ),
                        ));
                        continue;
                    }
                },
            };
            match from {
                VectorFrom::Embed(_) => n_embedded += 1,
                _ => n_reused += 1,
            }
            // A row of the same upload under another id (an older id scheme, a changed manifest
            // id) is replaced by this one.
            if let Some(old) = by_upload.get(&(h.input.source.as_str(), h.input.uri.as_str())) {
                if *old != h.id {
                    replaced.push(old.to_string());
                }
            }
            // A moved file: the same id under a new uri, or a new upload whose bytes belong to a
            // row of the same source whose file is gone (each such row moves once).
            let moved_from = match by_id.get(h.id.as_str()) {
                Some(r) if r.uri != h.input.uri => Some(r.id.clone()),
                Some(_) => None,
                None => by_hash.get(&hash).and_then(|rows| {
                    rows.iter()
                        .find(|r| {
                            r.source == h.input.source
                                && !gone.contains(&r.id)
                                && !written_ids.contains(&r.id)
                                && local_path(&r.uri).is_some_and(|p| std::fs::symlink_metadata(p).is_err())
                        })
                        .map(|r| r.id.clone())
                }),
            };
            if let Some(old) = moved_from {
                n_moved += 1;
                if old != h.id {
                    replaced.push(old);
                }
            }
            gone.extend(replaced.iter().filter(|id| **id != h.id).cloned());
            let mut fields = vec![Value::Int(h.size), Value::Int(h.mtime), Value::Str(hash.clone())];
            if thumbs {
                fields.push(thumb.map_or(Value::Null, Value::Str));
            }
            fields.extend(h.input.fields.iter().cloned());
            by_hash.entry(hash).or_default().push(Holder {
                id: h.id.clone(),
                source: h.input.source.clone(),
                uri: h.input.uri.clone(),
            });
            written_parts.insert((h.input.source.clone(), Day::from_timestamp(h.timestamp)));
            written_ids.insert(h.id.clone());
            batch.rows.push(Row {
                id: h.id,
                uri: h.input.uri.clone(),
                source: h.input.source.clone(),
                timestamp: h.timestamp,
                fields,
            });
            batch.vectors.extend(vector);
        }
        if !batch.rows.is_empty() {
            let open = run.get()?;
            replaced.retain(|id| !written_ids.contains(id));
            replaced.sort();
            replaced.dedup();
            if let Some(a) = &open.arrival {
                a.stamp(&mut batch);
            }
            // One commit: a crash leaves either the old rows or the new ones, never both.
            open.writer.insert_replacing(&batch, &replaced)?;
            report.indexed += batch.rows.len() as u64;
            report.embedded += n_embedded;
            report.reused += n_reused;
            report.moved += n_moved;
        }
        if let Some(open) = run.open.as_mut() {
            open.ledger
                .record_failures(failed_now.iter().map(|f| f.ledger_entry(tag.clone())).collect())?;
        }
        report.failed.extend(failed_now);
        done += chunk.len();
        progress(done, todo.len());
    }
    if let Some(open) = run.open.as_mut() {
        if let Some(a) = open.arrival.take().filter(|_| report.indexed > 0) {
            a.publish(open.writer.as_mut())?;
        }
        open.writer.tidy()?;
        // Failures found before embedding (unreadable files, bad manifest rows) are recorded too.
        let early: Vec<LedgerEntry> = report
            .failed
            .iter()
            .map(|f| f.ledger_entry(tag.clone()))
            .filter(|e| !open.ledger.has_failure(&e.uri))
            .collect();
        open.ledger.record_failures(early)?;
        open.ledger.finish_run()?;
        if opts.readmit_deleted {
            forgotten.readmit(&written_ids, &written_parts)?;
        }
    }
    report.warnings = run.warnings;
    Ok(report)
}

/// A file's size and modification time (unix seconds), as rows record them.
fn stat_of(m: &std::fs::Metadata) -> (i64, i64) {
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    (m.len() as i64, mtime)
}
