//! Watchlists: standing queries evaluated exactly on every row added since their last run.
//!
//! **Which rows are new.** Every commit of `index` and `import` stamps its rows with an
//! *arrival* number (the engine field `arrival`), one more than the number the collection last
//! published (`arrivals` in its info), and publishes that number once its rows are committed.
//! A watchlist remembers the published number it has evaluated up to (its cursor) and each run
//! evaluates the rows with `arrival > cursor`, then advances the cursor to the number published
//! in the snapshot it read. Arrival is a field of the row, so compaction, which rewrites
//! segments, keeps it. A writer killed between its commits and the publication leaves rows
//! stamped one past the published number; they are evaluated by the next run (which reads every
//! row past the cursor) and again once the number is published, and the alert log's
//! de-duplication makes the second time a no-op.
//!
//! **Exactly.** A run is a range search (the sweep's scan: 8-bit codes with a proven bound,
//! f64 re-rank) with the watchlist's queries and threshold over the new rows, so every new row
//! at or above the threshold is found; negatives remove rows by the rule of [`crate::negatives`].
//!
//! **Durably, once.** Hits go to `alerts.jsonl` (one line per alert, appended and fsync'd in
//! one write), and only then is the cursor advanced (`state.json`, replaced atomically). An alert
//! is the version of a row that hit, `(id, arrival)`: a run killed after appending but before
//! advancing finds the same rows again and skips those already in the log, and a torn last line
//! (a kill mid-append) is cut before the next append, its rows found again. Runs of one
//! watchlist are serialised by an flock on its folder's `LOCK`.
//!
//! On disk, beside the collection: `watchlists/NAME/{watchlist.json, alerts.jsonl, state.json,
//! LOCK}`; a removed watchlist's folder moves to `watchlists-removed/NAME.UNIXTIME` with its
//! alerts.

use crate::backend::{CollectionWriter, Hit};
use crate::error::{Error, Result};
use crate::negatives::{Negatives, Veto};
use crate::query::{sweep_rows, Query, SweepScan};
use crate::selection::SelectionSpec;
use crate::{Day, Engine, FieldType, Value};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use vitrine_store::Batch;

/// The engine field holding the arrival number of the commit that wrote a row.
pub const ARRIVAL_FIELD: &str = "arrival";
/// The collection info key holding the last published arrival number.
const PUBLISHED: &str = "arrivals";
pub(crate) const FOLDER: &str = "watchlists";
const REMOVED: &str = "watchlists-removed";

/// The arrival number of one writing run (`index`, `import`): stamped on every row it commits,
/// published when it is done.
pub(crate) struct Arrival(i64);

impl Arrival {
    /// Declares the arrival field (if missing) and takes the next number.
    pub(crate) fn begin(col: &mut dyn CollectionWriter) -> Result<Arrival> {
        let mut schema = col.schema().clone();
        schema.ensure_field(ARRIVAL_FIELD, FieldType::Int).map_err(|e| {
            Error::invalid(format!(
                "collection field {ARRIVAL_FIELD:?} is the engine's (watchlists use it): {e}"
            ))
        })?;
        if schema != *col.schema() {
            col.extend_schema(&schema)?;
        }
        Ok(Arrival(published(col.info()) + 1))
    }

    /// Adds the arrival field to every row of `batch`.
    pub(crate) fn stamp(&self, batch: &mut Batch) {
        batch.field_names.push(ARRIVAL_FIELD.to_string());
        for r in &mut batch.rows {
            r.fields.push(Value::Int(self.0));
        }
    }

    /// Publishes the number: watchlists may now move past it.
    pub(crate) fn publish(self, col: &mut dyn CollectionWriter) -> Result<()> {
        col.set_info(vec![(PUBLISHED.to_string(), serde_json::json!(self.0))])
    }
}

/// The last arrival number published in a collection's info (0 before any).
fn published(info: &serde_json::Map<String, serde_json::Value>) -> i64 {
    info.get(PUBLISHED).and_then(|v| v.as_i64()).unwrap_or(0)
}

/// One query of a watchlist, kept as its vector so a run needs no model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchQuery {
    /// "prompt", "image" or "like".
    pub kind: String,
    /// The prompt, the image file, or the row id.
    pub text: String,
    /// Its embedding (the row's vector for "like").
    pub vector: Vec<f32>,
}

/// A watchlist as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watchlist {
    /// Its name.
    pub name: String,
    /// What it looks for: a row matches when any query scores at or above the threshold.
    pub queries: Vec<WatchQuery>,
    /// The threshold (similarity for cosine and ip, at most this distance for l2).
    pub threshold: f64,
    /// What matching rows must look less like (negative prompts).
    pub negatives: Vec<WatchQuery>,
    /// The negatives' margin (see [`crate::negatives`]).
    pub margin: f64,
    /// Only rows of these sources (every source if empty).
    pub sources: Vec<String>,
    /// The history its first run evaluates too: rows of this day and later.
    pub since: Option<Day>,
    /// The arrival number published when it was added: later rows are new to it.
    pub start: i64,
    /// Who added it.
    pub by: String,
    /// When (UTC, RFC 3339).
    pub at: String,
    /// The collection's model when it was added (provenance of the vectors).
    #[serde(default)]
    pub model: Option<serde_json::Value>,
}

/// What a new watchlist says.
#[derive(Debug, Clone, Default)]
pub struct WatchlistRequest {
    /// Its name (letters, digits, `-`, `_`, `.`; not starting with `.`).
    pub name: String,
    /// Text prompts.
    pub prompts: Vec<String>,
    /// Image files, embedded now.
    pub images: Vec<PathBuf>,
    /// Stored rows whose vectors are the queries ("like this one").
    pub likes: Vec<String>,
    /// The threshold.
    pub threshold: f64,
    /// Negative prompts.
    pub negatives: Negatives,
    /// Only these sources (every source if empty; a source may not exist yet).
    pub sources: Vec<String>,
    /// Back-fill: the first run also evaluates the rows of this day and later.
    pub since: Option<Day>,
    /// Who adds it.
    pub by: String,
    /// The model (default: the collection's).
    pub model: Option<String>,
}

/// A watchlist with where it stands.
#[derive(Debug, Clone, Serialize)]
pub struct WatchlistStatus {
    /// Its definition.
    pub watchlist: Watchlist,
    /// The arrival number evaluated up to (its start before the first run).
    pub cursor: i64,
    /// The arrival number the collection has published: rows up to it are committed.
    pub published: i64,
    /// Runs so far.
    pub runs: u64,
    /// Alerts in its log.
    pub alerts: u64,
    /// When it last ran (UTC, RFC 3339).
    pub last_run: Option<String>,
}

/// One hit of a watchlist, as its alert log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The watchlist.
    pub watchlist: String,
    /// Its number in the log (1, 2, ...): "new since N" is `n > N`.
    pub n: u64,
    /// The run that found it.
    pub run: u64,
    /// The row.
    pub id: String,
    /// Its best score over the watchlist's queries.
    pub score: f64,
    /// The query that scored it (prompt, image file, or "like ID").
    pub query: String,
    /// Partition source.
    pub source: String,
    /// Partition day.
    pub day: Day,
    /// Where the image lives.
    pub uri: String,
    /// The row's timestamp (unix seconds).
    pub timestamp: i64,
    /// The arrival number of the commit that wrote the row (none for rows from before
    /// arrival numbers, found by a back-fill).
    pub arrival: Option<i64>,
    /// When the run found it (UTC, RFC 3339).
    pub found: String,
}

/// What one run of a watchlist did.
#[derive(Debug, Clone, Serialize)]
pub struct WatchRun {
    /// The watchlist.
    pub watchlist: String,
    /// The run's number.
    pub run: u64,
    /// Arrival numbers evaluated: after `from`, up to `to` (the published one).
    pub from: i64,
    /// See `from`.
    pub to: i64,
    /// Whether the watchlist's back-fill was part of this run.
    pub backfill: bool,
    /// Rows evaluated (new rows of the watchlist's sources).
    pub rows_evaluated: u64,
    /// Hits already in the log (found by an interrupted run); not alerted again.
    pub already_alerted: u64,
    /// Rows the negatives removed.
    pub vetoed: u64,
    /// The new alerts, best first.
    pub alerts: Vec<Alert>,
}

/// The run counters, replaced atomically after the alerts are durable.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    cursor: i64,
    runs: u64,
    last_run: Option<String>,
}

fn check_watch_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "watchlist name {name:?}: use 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::damaged(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The alert log's text up to its last newline (a torn last line, a crash mid-append, is not
/// part of it), and whether such a torn line follows.
fn read_log(path: &Path) -> Result<(String, bool)> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    let torn = whole < text.len();
    text.truncate(whole);
    Ok((text, torn))
}

/// Line `i` (0-based) of the alert log at `path`, its checksum verified (see [`crate::jsonl`]).
fn parse_alert(path: &Path, i: usize, line: &str, sealed: &mut bool) -> Result<Alert> {
    crate::jsonl::record(path, i, line, sealed)
}

/// The alert log as a run needs it: its alerts' keys and count, a torn last line cut off.
struct Log {
    path: PathBuf,
    keys: HashSet<(String, Option<i64>)>,
    count: u64,
}

impl Log {
    /// Reads `path`, cutting a torn last line off the file (its rows are found again).
    fn open(path: PathBuf) -> Result<Log> {
        let (text, torn) = read_log(&path)?;
        if torn {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            f.set_len(text.len() as u64)
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
        let mut keys = HashSet::new();
        let mut count = 0;
        let mut sealed = false;
        for (i, line) in text.lines().enumerate() {
            let a = parse_alert(&path, i, line, &mut sealed)?;
            keys.insert((a.id, a.arrival));
            count += 1;
        }
        Ok(Log { path, keys, count })
    }
}

impl Engine {
    fn watch_root(&self, collection: &str) -> Result<PathBuf> {
        Ok(self.backend().side_dir(collection)?.join(FOLDER))
    }

    fn watch_dir(&self, collection: &str, name: &str) -> Result<PathBuf> {
        check_watch_name(name)?;
        let dir = self.watch_root(collection)?.join(name);
        if !dir.join("watchlist.json").exists() {
            let known: Vec<String> = self.watchlist_names(collection)?;
            return Err(Error::NotFound(format!(
                "no watchlist {name:?} in collection {collection:?} (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        Ok(dir)
    }

    /// The names of `collection`'s watchlists, sorted.
    pub fn watchlist_names(&self, collection: &str) -> Result<Vec<String>> {
        let root = self.watch_root(collection)?;
        let mut names = Vec::new();
        match std::fs::read_dir(&root) {
            Ok(entries) => {
                for e in entries {
                    let e = e.map_err(|e| Error::io(&root, e))?;
                    if e.path().join("watchlist.json").exists() {
                        names.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&root, e)),
        }
        names.sort();
        Ok(names)
    }

    /// Adds a watchlist to `collection`: its queries are embedded now (with the collection's
    /// model) and kept as vectors. Rows committed from now on are new to it; with `since`, its
    /// first run also evaluates the rows of that day and later.
    pub fn add_watchlist(&self, collection: &str, req: &WatchlistRequest) -> Result<Watchlist> {
        check_watch_name(&req.name)?;
        if !req.threshold.is_finite() {
            return Err(Error::invalid(format!(
                "watchlist threshold {} is not a finite number",
                req.threshold
            )));
        }
        if !req.negatives.margin.is_finite() {
            return Err(Error::invalid(format!(
                "negative margin {} is not a finite number",
                req.negatives.margin
            )));
        }
        if req.prompts.is_empty() && req.images.is_empty() && req.likes.is_empty() {
            return Err(Error::invalid(
                "a watchlist needs a prompt, an image or a row id to look for",
            ));
        }
        if req.by.trim().is_empty() {
            return Err(Error::invalid("a watchlist needs who adds it"));
        }
        for s in &req.sources {
            vitrine_store::check_name("source", s)?;
        }
        let reader = self.reader(collection)?;
        let dim = reader.schema().dim;
        let mut queries = Vec::new();
        let mut add = |kind: &str, texts: Vec<String>, q: Query| -> Result<()> {
            if texts.is_empty() {
                return Ok(());
            }
            let (v, _, _) = self.query_vectors(reader.as_ref(), &q, req.model.as_deref())?;
            for (text, vector) in texts.into_iter().zip(v.chunks_exact(dim)) {
                queries.push(WatchQuery {
                    kind: kind.to_string(),
                    text,
                    vector: vector.to_vec(),
                });
            }
            Ok(())
        };
        add("prompt", req.prompts.clone(), Query::Text(req.prompts.clone()))?;
        add(
            "image",
            req.images.iter().map(|p| p.display().to_string()).collect(),
            Query::ImageFiles(req.images.clone()),
        )?;
        add("like", req.likes.clone(), Query::Like(req.likes.clone()))?;
        let mut negatives = Vec::new();
        if !req.negatives.prompts.is_empty() {
            let (v, _, _) = self.query_vectors(
                reader.as_ref(),
                &Query::Text(req.negatives.prompts.clone()),
                req.model.as_deref(),
            )?;
            for (text, vector) in req.negatives.prompts.iter().zip(v.chunks_exact(dim)) {
                negatives.push(WatchQuery {
                    kind: "prompt".to_string(),
                    text: text.clone(),
                    vector: vector.to_vec(),
                });
            }
        }
        let w = Watchlist {
            name: req.name.clone(),
            queries,
            threshold: req.threshold,
            negatives,
            margin: req.negatives.margin,
            sources: req.sources.clone(),
            since: req.since,
            start: published(reader.info()),
            by: req.by.clone(),
            at: now(),
            model: reader.info().get("model").cloned(),
        };
        let root = self.watch_root(collection)?;
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        let dir = root.join(&req.name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            // A folder without its definition is what a crash during an earlier add leaves.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !dir.join("watchlist.json").exists() => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(format!(
                    "collection {collection:?} already has a watchlist {:?} (remove it first)",
                    req.name
                )))
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let text = serde_json::to_vec_pretty(&w).expect("a watchlist serialises");
        crate::replace_durably(&dir.join("watchlist.json"), &text)?;
        Ok(w)
    }

    /// Every watchlist of `collection` with where it stands.
    pub fn watchlists(&self, collection: &str) -> Result<Vec<WatchlistStatus>> {
        let reader = self.reader(collection)?;
        let root = self.watch_root(collection)?;
        self.watchlist_names(collection)?
            .iter()
            .map(|name| self.status_of(&root.join(name), published(reader.info())))
            .collect()
    }

    /// One watchlist of `collection` with where it stands.
    pub fn watchlist(&self, collection: &str, name: &str) -> Result<WatchlistStatus> {
        let reader = self.reader(collection)?;
        let dir = self.watch_dir(collection, name)?;
        self.status_of(&dir, published(reader.info()))
    }

    fn status_of(&self, dir: &Path, published: i64) -> Result<WatchlistStatus> {
        let watchlist: Watchlist = read_json(&dir.join("watchlist.json"))?
            .ok_or_else(|| Error::NotFound(format!("{}: no watchlist.json", dir.display())))?;
        let state: Option<State> = read_json(&dir.join("state.json"))?;
        // A count of lines: listing does not parse every alert of every watchlist.
        let (log, _) = read_log(&dir.join("alerts.jsonl"))?;
        Ok(WatchlistStatus {
            cursor: state.as_ref().map_or(watchlist.start, |s| s.cursor),
            runs: state.as_ref().map_or(0, |s| s.runs),
            last_run: state.and_then(|s| s.last_run),
            alerts: log.lines().count() as u64,
            published,
            watchlist,
        })
    }

    /// Removes a watchlist; its folder, alerts included, moves to `watchlists-removed/`.
    pub fn remove_watchlist(&self, collection: &str, name: &str) -> Result<PathBuf> {
        let dir = self.watch_dir(collection, name)?;
        let _lock = lock(&dir)?;
        let removed = self.backend().side_dir(collection)?.join(REMOVED);
        std::fs::create_dir_all(&removed).map_err(|e| Error::io(&removed, e))?;
        let to = removed.join(format!("{name}.{}", chrono::Utc::now().timestamp()));
        std::fs::rename(&dir, &to).map_err(|e| Error::io(&dir, e))?;
        let root = self.watch_root(collection)?;
        crate::sync_dir(&root)?;
        crate::sync_dir(&removed)?;
        Ok(to)
    }

    /// The alerts of a watchlist numbered after `after`, oldest first, at most `limit`.
    pub fn alerts(&self, collection: &str, name: &str, after: u64, limit: usize) -> Result<Vec<Alert>> {
        let dir = self.watch_dir(collection, name)?;
        let path = dir.join("alerts.jsonl");
        let (text, _) = read_log(&path)?;
        let mut sealed = false;
        text.lines()
            .enumerate()
            .skip(usize::try_from(after).unwrap_or(usize::MAX))
            .take(limit)
            .map(|(i, line)| parse_alert(&path, i, line, &mut sealed))
            .collect()
    }

    /// Runs every watchlist of `collection`, in name order.
    pub fn run_watchlists(&self, collection: &str) -> Result<Vec<WatchRun>> {
        self.watchlist_names(collection)?
            .iter()
            .map(|n| self.run_watchlist(collection, n))
            .collect()
    }

    /// Runs watchlist `name` on the rows added since its last run (and, the first time, its
    /// back-fill), appends its new alerts durably, then advances its cursor.
    pub fn run_watchlist(&self, collection: &str, name: &str) -> Result<WatchRun> {
        let dir = self.watch_dir(collection, name)?;
        let _lock = lock(&dir)?;
        let w: Watchlist = read_json(&dir.join("watchlist.json"))?
            .ok_or_else(|| Error::NotFound(format!("{}: no watchlist.json", dir.display())))?;
        let state: Option<State> = read_json(&dir.join("state.json"))?;
        let mut log = Log::open(dir.join("alerts.jsonl"))?;
        let reader = self.reader(collection)?;
        let published = published(reader.info());
        let cursor = state.as_ref().map_or(w.start, |s| s.cursor);
        let backfill = state.is_none() && w.since.is_some();
        let run = state.as_ref().map_or(0, |s| s.runs) + 1;
        let mut report = WatchRun {
            watchlist: w.name.clone(),
            run,
            from: cursor,
            to: published.max(cursor),
            backfill,
            rows_evaluated: 0,
            already_alerted: 0,
            vetoed: 0,
            alerts: vec![],
        };
        let has_arrival = reader.schema().field_type(ARRIVAL_FIELD) == Some(FieldType::Int);
        let new_rows = has_arrival.then(|| format!("{ARRIVAL_FIELD} > {cursor}"));
        let filter = match (backfill.then_some(w.since).flatten(), new_rows) {
            (Some(d), Some(n)) => Some(format!("day >= \"{d}\" or {n}")),
            (Some(d), None) => Some(format!("day >= \"{d}\"")),
            (None, n) => n,
        };
        // Sources it watches that have no rows yet have nothing to evaluate.
        let present: HashSet<&str> = reader.partitions().iter().map(|p| p.source.as_str()).collect();
        let sources: Vec<String> = w
            .sources
            .iter()
            .filter(|s| present.contains(s.as_str()))
            .cloned()
            .collect();
        let nothing = filter.is_none() || (!w.sources.is_empty() && sources.is_empty());
        if !nothing {
            let spec = SelectionSpec {
                sources,
                filter,
                ..Default::default()
            };
            let selection = spec.resolve(reader.schema(), Day::today())?;
            let queries: Vec<f32> = w.queries.iter().flat_map(|q| q.vector.iter().copied()).collect();
            let veto = (!w.negatives.is_empty()).then(|| {
                Veto::from_vectors(
                    w.negatives.iter().map(|q| q.vector.clone()).collect(),
                    reader.schema().metric,
                    w.margin,
                )
            });
            let fields = if has_arrival {
                vec![ARRIVAL_FIELD.to_string()]
            } else {
                vec![]
            };
            let found = now();
            let mut hits: Vec<Hit> = Vec::new();
            let (stats, vetoed) = sweep_rows(
                reader.as_ref(),
                &SweepScan {
                    queries: &queries,
                    threshold: Some(w.threshold),
                    top: None,
                    veto: veto.as_ref(),
                    selection: &selection,
                    fields: &fields,
                },
                &mut |h| {
                    hits.push(h);
                    Ok(())
                },
            )?;
            report.rows_evaluated = stats.rows_scanned;
            report.vetoed = vetoed;
            let higher = reader.schema().metric.higher_is_better();
            hits.sort_by(|a, b| {
                let s = if higher {
                    b.score.total_cmp(&a.score)
                } else {
                    a.score.total_cmp(&b.score)
                };
                s.then_with(|| a.id.cmp(&b.id))
            });
            let mut text = String::new();
            for h in hits {
                let arrival = match h.fields.get(ARRIVAL_FIELD) {
                    Some(Value::Int(a)) => Some(*a),
                    _ => None,
                };
                if !log.keys.insert((h.id.clone(), arrival)) {
                    report.already_alerted += 1;
                    continue;
                }
                log.count += 1;
                let a = Alert {
                    watchlist: w.name.clone(),
                    n: log.count,
                    run,
                    query: w.queries.get(h.query).map_or_else(String::new, |q| q.text.clone()),
                    id: h.id,
                    score: h.score,
                    source: h.source,
                    day: h.day,
                    uri: h.uri,
                    timestamp: h.timestamp,
                    arrival,
                    found: found.clone(),
                };
                text.push_str(&crate::jsonl::line(&a));
                report.alerts.push(a);
            }
            if !text.is_empty() {
                crate::append_durably(&log.path, &text)?;
            }
        }
        // Only now, with the alerts durable, does the cursor move.
        let next = State {
            cursor: report.to,
            runs: run,
            last_run: Some(now()),
        };
        let bytes = serde_json::to_vec(&next).expect("a state serialises");
        crate::replace_durably(&dir.join("state.json"), &bytes)?;
        Ok(report)
    }
}

/// Serialises runs (and removal) of one watchlist across threads and processes; the kernel
/// drops the lock when a holder dies.
fn lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    f.lock().map_err(|e| Error::io(&path, e))?;
    Ok(f)
}
