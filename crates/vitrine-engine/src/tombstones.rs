//! What was deleted or expired, so that indexing the same folder or manifest again does not
//! bring it back.
//!
//! `vitrine delete` records the ids it deletes, `partitions drop` the (source, day) it drops,
//! and `partitions retain` its horizon (days before a cutoff, for one source or all). An index
//! run skips inputs whose id, partition or day is recorded here and says how many it skipped;
//! `--readmit-deleted` indexes them anyway and removes their ids and partitions from this file.
//!
//! One JSON object per line in the collection's side folder (`forgotten.jsonl`), appended and
//! fsync'd *before* the delete it records commits: a crash in between leaves a record for a row
//! that still exists (which only stops the indexer from re-adding what is there), never a
//! deleted row without a record (which would let it come back).

use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use vitrine_store::Day;

/// File name in a collection's side folder.
pub const FILE: &str = "forgotten.jsonl";

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Forgotten {
    /// A row deleted by id or by selection.
    Row {
        /// Its id.
        id: String,
    },
    /// A (source, day) partition dropped.
    Partition {
        /// Its source.
        source: String,
        /// Its day.
        day: Day,
    },
    /// Retention: every day before `before` (of `source`, or of every source).
    Horizon {
        /// The source, or every source.
        source: Option<String>,
        /// The first day kept.
        before: Day,
    },
}

/// Why an input is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its row was deleted.
    Deleted,
    /// Its partition was dropped.
    Dropped,
    /// Its day is before a retention horizon.
    Expired,
}

/// The records of one collection.
#[derive(Debug, Default)]
pub struct Tombstones {
    path: PathBuf,
    ids: HashSet<String>,
    partitions: HashSet<(String, Day)>,
    horizons: Vec<(Option<String>, Day)>,
}

impl Tombstones {
    /// Reads the records in `dir` (none yet: empty). A torn last line is ignored; any other line
    /// that does not parse is an error naming it (records must not be lost silently).
    pub fn open(dir: &Path) -> Result<Tombstones> {
        let path = dir.join(FILE);
        let mut t = Tombstones {
            path: path.clone(),
            ..Default::default()
        };
        for f in crate::jsonl::read::<Forgotten>(&path)? {
            t.add(f);
        }
        Ok(t)
    }

    fn add(&mut self, f: Forgotten) {
        match f {
            Forgotten::Row { id } => {
                self.ids.insert(id);
            }
            Forgotten::Partition { source, day } => {
                self.partitions.insert((source, day));
            }
            Forgotten::Horizon { source, before } => self.horizons.push((source, before)),
        }
    }

    /// Appends records durably (fsync'd before this returns).
    pub fn record(&mut self, records: Vec<Forgotten>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = String::new();
        for r in &records {
            buf.push_str(&crate::jsonl::line(r));
        }
        crate::append_durably(&self.path, &buf)?;
        records.into_iter().for_each(|r| self.add(r));
        Ok(())
    }

    /// Whether an input with this id, source and day (if known yet) was deleted or expired.
    pub fn forgets(&self, id: &str, source: &str, day: Option<Day>) -> Option<Why> {
        if self.ids.contains(id) {
            return Some(Why::Deleted);
        }
        let day = day?;
        if self.partitions.contains(&(source.to_string(), day)) {
            return Some(Why::Dropped);
        }
        self.horizons
            .iter()
            .any(|(s, before)| s.as_deref().is_none_or(|s| s == source) && day < *before)
            .then_some(Why::Expired)
    }

    /// Takes back the records of rows and partitions that were indexed again on purpose
    /// (`--readmit-deleted`); horizons stay.
    pub fn readmit(&mut self, ids: &HashSet<String>, partitions: &HashSet<(String, Day)>) -> Result<()> {
        let before = (self.ids.len(), self.partitions.len());
        self.ids.retain(|i| !ids.contains(i));
        self.partitions.retain(|p| !partitions.contains(p));
        if before == (self.ids.len(), self.partitions.len()) {
            return Ok(());
        }
        let mut text = String::new();
        let mut push = |f: Forgotten| {
            text.push_str(&crate::jsonl::line(&f));
        };
        for id in &self.ids {
            push(Forgotten::Row { id: id.clone() });
        }
        for (source, day) in &self.partitions {
            push(Forgotten::Partition {
                source: source.clone(),
                day: *day,
            });
        }
        for (source, before) in &self.horizons {
            push(Forgotten::Horizon {
                source: source.clone(),
                before: *before,
            });
        }
        crate::replace_durably(&self.path, text.as_bytes())
    }
}
