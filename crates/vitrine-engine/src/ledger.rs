//! The ledger of inputs that are not (yet) rows: pending or failed. Recall receipts read it so an
//! analyst can show what a search did not cover.
//!
//! One JSON object per line in `STORE/collections/NAME/ledger.jsonl`; a later line about the
//! same input (its `key`: the row id it will have, or where it came from) overrides an earlier
//! one. An indexing run first rewrites the file with every input
//! it is about to embed marked `pending` (fsync'd before any row is written), appends failures
//! as they happen, and at the end drops the pending entries it resolved. An input is outstanding
//! while its entry is there *and* no row with its key (id) is in the collection, so a run killed
//! half-way leaves exactly its unwritten inputs pending.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use vitrine_store::Day;

/// File name of the ledger inside a collection's folder.
pub const LEDGER_FILE: &str = "ledger.jsonl";

/// Whether an input is waiting or has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Planned by a run that has not written it (yet).
    Pending,
    /// Could not be indexed.
    Failed,
}

/// One input that is not a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The input's identity: the row id it will have, or (before an id is known: a bad
    /// manifest line, a pipe in a folder) where it came from. Older ledgers keyed by uri.
    #[serde(default)]
    pub key: String,
    /// The input's uri (or, for a manifest row without one, where it came from).
    pub uri: String,
    /// Its source ("" if unknown: then it counts in every selection).
    pub source: String,
    /// Its day, if known (without one it counts in every date range).
    pub day: Option<Day>,
    /// Pending or failed.
    pub state: State,
    /// Why it failed.
    pub reason: Option<String>,
    /// The run scope that recorded it (a manifest), so the next run over it can forget it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The ledger of one collection.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    entries: BTreeMap<String, LedgerEntry>,
    planned: HashSet<String>,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, e)
}

impl Ledger {
    /// Reads the ledger at `path` (none yet is an empty ledger). A torn last line (a crash while
    /// appending) is ignored; any other line that does not parse makes the ledger unreadable
    /// (an error naming the line), since entries would be lost silently.
    pub fn open(path: &Path) -> Result<Ledger, Error> {
        let mut entries = BTreeMap::new();
        for mut e in crate::jsonl::read::<LedgerEntry>(path)? {
            if e.key.is_empty() {
                e.key = e.uri.clone();
            }
            entries.insert(e.key.clone(), e);
        }
        Ok(Ledger {
            path: path.to_path_buf(),
            entries,
            planned: HashSet::new(),
        })
    }

    /// Entries, by uri.
    pub fn entries(&self) -> impl Iterator<Item = &LedgerEntry> {
        self.entries.values()
    }

    /// Starts a run over the inputs `this_run` whose scope `covers(key, recorded scope)`: forgets what the ledger said
    /// about them, about everything else in the scope (the run establishes it again) and about
    /// local files that no longer exist (receipts stop listing them); marks `planned` pending,
    /// and makes that durable before anything is indexed.
    pub fn start_run(
        &mut self,
        covers: &dyn Fn(&str, Option<&str>) -> bool,
        this_run: &HashSet<&str>,
        planned: Vec<LedgerEntry>,
    ) -> Result<(), Error> {
        let gone = |uri: &str| {
            let p = Path::new(uri.strip_prefix("file://").unwrap_or(uri));
            p.is_absolute() && std::fs::symlink_metadata(p).is_err()
        };
        self.entries
            .retain(|key, e| !this_run.contains(key.as_str()) && !gone(&e.uri) && !covers(&e.uri, e.scope.as_deref()));
        for e in planned {
            self.planned.insert(e.key.clone());
            self.entries.insert(e.key.clone(), e);
        }
        self.rewrite()
    }

    /// Whether the input `key` is already recorded as failed.
    pub fn has_failure(&self, key: &str) -> bool {
        self.entries.get(key).is_some_and(|e| e.state == State::Failed)
    }

    /// Appends failed entries (flushed, not fsync'd: a crash leaves them pending, which is
    /// still true).
    pub fn record_failures(&mut self, failures: Vec<LedgerEntry>) -> Result<(), Error> {
        if failures.is_empty() {
            return Ok(());
        }
        let mut f = vitrine_store::fsio::append(&self.path)?;
        let mut buf = String::new();
        for e in failures {
            buf.push_str(&crate::jsonl::line(&e));
            self.entries.insert(e.key.clone(), e);
        }
        vitrine_store::fsio::write(&mut f, &self.path, buf.as_bytes()).map_err(|e| io(&self.path, e))
    }

    /// Ends a run: the pending entries it planned and did not fail are rows (or duplicates of
    /// rows) now, so they leave the ledger.
    pub fn finish_run(&mut self) -> Result<(), Error> {
        let planned = std::mem::take(&mut self.planned);
        self.entries
            .retain(|key, e| !(e.state == State::Pending && planned.contains(key)));
        self.rewrite()
    }

    fn rewrite(&self) -> Result<(), Error> {
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut text = String::new();
        for e in self.entries.values() {
            text.push_str(&crate::jsonl::line(e));
        }
        // Through the store's file layer, so the crash tests reach the ledger too.
        use vitrine_store::fsio;
        let mut f = fsio::create(&tmp, false)?;
        fsio::write(&mut f, &tmp, text.as_bytes()).map_err(|e| io(&tmp, e))?;
        fsio::sync(&f, &tmp)?;
        fsio::rename(&tmp, &self.path)?;
        crate::sync_dir(self.path.parent().unwrap_or(Path::new(".")))
    }

    /// Entries in the selection (sources, inclusive day range) that are not a row of the
    /// collection (`is_row`): what a search over that selection could not see.
    pub fn outstanding(
        &self,
        sources: &[String],
        from: Option<Day>,
        to: Option<Day>,
        is_row: impl Fn(&LedgerEntry) -> bool,
    ) -> Vec<&LedgerEntry> {
        self.entries
            .values()
            // An unknown source or day (a manifest row that could not be read) may be anywhere.
            .filter(|e| sources.is_empty() || e.source.is_empty() || sources.contains(&e.source))
            .filter(|e| match e.day {
                None => true,
                Some(d) => from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t),
            })
            .filter(|e| !is_row(e))
            .collect()
    }
}
