//! The indexing loop: skip unchanged inputs, embed in batches, commit, keep the ledger.

use super::plan::{Failure, Plan};
use crate::backend::{CollectionWriter, Record};
use crate::embedder::Embedder;
use crate::error::Error;
use crate::ledger::{Ledger, LedgerEntry, State};
use crate::thumbnail::{thumbnail, THUMBNAIL_FIELD};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use vitrine_store::{Batch, Day, Row, Value};

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
    /// Images per forward pass.
    pub batch: usize,
    /// Keep a thumbnail of each image in the store.
    pub thumbnails: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            commit_every: 256,
            batch: 32,
            thumbnails: true,
        }
    }
}

fn kind_of(e: &Error) -> &'static str {
    match e {
        Error::Image(vitrine_image::Error::TooLarge { .. }) => "too large",
        Error::Image(vitrine_image::Error::Decode { .. }) => "not a decodable image",
        Error::Image(vitrine_image::Error::Io { .. }) | Error::Io { .. } => "unreadable",
        _ => "model error",
    }
}

/// Indexes `plan` into `writer`, committing every `opts.commit_every` inputs; `existing` are
/// the collection's rows (uri, id, file_size, file_mtime) before the run. The plan's failures
/// (bad manifest rows) join the report and the ledger at `ledger` (if any).
/// `progress(done, total)` is called after each commit.
pub fn index_inputs(
    embedder: &Embedder,
    writer: &mut dyn CollectionWriter,
    existing: &[Record],
    plan: &Plan,
    opts: &IndexOptions,
    ledger: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<IndexReport, Error> {
    let (inputs, field_names) = (&plan.inputs, &plan.field_names);
    let mut report = IndexReport {
        failed: plan.failures.clone(),
        ..Default::default()
    };
    // uri → [file_size, file_mtime, id] of every live row.
    let known: HashMap<&str, Vec<Value>> = existing
        .iter()
        .map(|r| {
            let f = |n: &str| r.fields.get(n).cloned().unwrap_or(Value::Null);
            (
                r.uri.as_str(),
                vec![f("file_size"), f("file_mtime"), Value::Str(r.id.clone())],
            )
        })
        .collect();
    let mut todo = Vec::new();
    let mut stale = Vec::new();
    for input in inputs {
        match (
            std::fs::metadata(&input.path).map(|m| stat_values(&m)),
            known.get(input.uri.as_str()),
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
    let mut ledger = match ledger {
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
        let results = embedder.embed_images_with(&paths, opts.batch, |bytes, img| Facts {
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
            l.record_failures(failed_now.iter().map(Failure::ledger_entry).collect())?;
        }
        report.failed.extend(failed_now);
        done += chunk.len();
        progress(done, todo.len());
    }
    writer.tidy()?;
    if let Some(l) = ledger.as_mut() {
        // Failures found before embedding (unreadable files, bad manifest rows) are recorded too.
        let early: Vec<LedgerEntry> = report
            .failed
            .iter()
            .map(Failure::ledger_entry)
            .filter(|e| !l.has_failure(&e.uri))
            .collect();
        l.record_failures(early)?;
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
