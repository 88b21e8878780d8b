//! Legal holds: days of a source (or of every source) that retention and partition drops must
//! keep, whatever their age, until the hold is released.
//!
//! Kept as an append-only log (`holds.jsonl` beside the collection's other records): one line
//! per hold placed and one per release, each fsync'd before the call returns, so who placed or
//! released which hold, when and why is never rewritten. A torn last line (a crash mid-append)
//! is ignored; any other unreadable line is an error naming it.

use crate::error::{Error, Result};
use crate::Day;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub(crate) const FILE: &str = "holds.jsonl";

/// One hold, with its release once released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Its number in the collection (1, 2, ...).
    pub id: u64,
    /// The source held, or every source.
    pub source: Option<String>,
    /// The first day held.
    pub from: Day,
    /// The last day held (inclusive).
    pub to: Day,
    /// Why (a case number, a request).
    pub reason: String,
    /// Who placed it.
    pub by: String,
    /// When (UTC, RFC 3339).
    pub at: String,
    /// The release, once released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Release>,
}

/// Who released a hold, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Who.
    pub by: String,
    /// When (UTC, RFC 3339).
    pub at: String,
    /// Why.
    pub reason: String,
}

impl Hold {
    /// Whether this hold, while active, covers partition (`source`, `day`).
    pub fn covers(&self, source: &str, day: Day) -> bool {
        self.released.is_none()
            && self.source.as_deref().is_none_or(|s| s == source)
            && self.from <= day
            && day <= self.to
    }
}

/// A line of the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Place(Hold),
    Release { id: u64, release: Release },
}

/// What a new hold says.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    /// The source, or every source.
    pub source: Option<String>,
    /// The first day held.
    pub from: Day,
    /// The last day held (inclusive).
    pub to: Day,
    /// Why; required.
    pub reason: String,
    /// Who; required.
    pub by: String,
}

/// The holds of one collection.
#[derive(Debug)]
pub struct Holds {
    path: PathBuf,
    holds: Vec<Hold>,
}

impl Holds {
    /// Reads the log in `dir` (none yet: no holds).
    pub fn open(dir: &Path) -> Result<Holds> {
        let path = dir.join(FILE);
        let mut holds: Vec<Hold> = Vec::new();
        // A log only grows, so record i is line i + 1.
        for (i, event) in crate::jsonl::read::<Event>(&path)?.into_iter().enumerate() {
            match event {
                Event::Place(h) => holds.push(h),
                Event::Release { id, release } => match holds.iter_mut().find(|h| h.id == id) {
                    Some(h) => h.released = Some(release),
                    None => {
                        return Err(Error::damaged(
                            &path,
                            format!("line {}: releases hold {id}, which was never placed", i + 1),
                        ))
                    }
                },
            }
        }
        Ok(Holds { path, holds })
    }

    /// Every hold ever placed, released ones included, in the order placed.
    pub fn all(&self) -> &[Hold] {
        &self.holds
    }

    /// The active holds covering partition (`source`, `day`).
    pub fn covering(&self, source: &str, day: Day) -> Vec<&Hold> {
        self.holds.iter().filter(|h| h.covers(source, day)).collect()
    }

    /// Places a hold and records it durably.
    pub fn place(&mut self, req: HoldRequest) -> Result<Hold> {
        if req.from > req.to {
            return Err(Error::Invalid(format!(
                "a hold from {} to {} holds no day: --from must not be after --to",
                req.from, req.to
            )));
        }
        for (what, v) in [("reason", &req.reason), ("who (--by)", &req.by)] {
            if v.trim().is_empty() {
                return Err(Error::Invalid(format!("a hold needs a {what}")));
            }
        }
        let hold = Hold {
            id: self.holds.iter().map(|h| h.id).max().unwrap_or(0) + 1,
            source: req.source,
            from: req.from,
            to: req.to,
            reason: req.reason,
            by: req.by,
            at: now(),
            released: None,
        };
        self.append(&Event::Place(hold.clone()))?;
        self.holds.push(hold.clone());
        Ok(hold)
    }

    /// Releases hold `id` and records who, when and why.
    pub fn release(&mut self, id: u64, by: &str, reason: &str) -> Result<Hold> {
        let Some(i) = self.holds.iter().position(|h| h.id == id) else {
            return Err(Error::NotFound(format!("no hold {id}")));
        };
        if self.holds[i].released.is_some() {
            return Err(Error::Invalid(format!("hold {id} is already released")));
        }
        for (what, v) in [("reason", reason), ("who (--by)", by)] {
            if v.trim().is_empty() {
                return Err(Error::Invalid(format!("a release needs a {what}")));
            }
        }
        let release = Release {
            by: by.to_string(),
            at: now(),
            reason: reason.to_string(),
        };
        self.append(&Event::Release {
            id,
            release: release.clone(),
        })?;
        self.holds[i].released = Some(release);
        Ok(self.holds[i].clone())
    }

    fn append(&self, event: &Event) -> Result<()> {
        crate::append_durably(&self.path, &crate::jsonl::line(event))
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
