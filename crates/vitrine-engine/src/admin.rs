//! Looking after collections: create, list, describe, drop; partitions and retention; deletes;
//! compaction and checks.

use crate::backend::{CheckReport, CollectionWriter, DeleteReport};
use crate::error::{Error, Result};
use crate::holds::{Hold, HoldRequest, Holds};
use crate::selection::{check_sources, Age, SelectionSpec};
use crate::tombstones::{Forgotten, Tombstones};
use crate::Engine;
use serde::Serialize;
use vitrine_store::{CompactReport, Day, FieldType, Metric, PartitionInfo, Schema};

/// A new collection's schema.
#[derive(Debug, Clone)]
pub struct CollectionSpec {
    /// Vector dimension.
    pub dim: usize,
    /// Comparison metric.
    pub metric: Metric,
    /// Declared user fields.
    pub fields: Vec<(String, FieldType)>,
}

/// One line of the collection list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionSummary {
    /// Name.
    pub name: String,
    /// Vector dimension.
    pub dim: usize,
    /// Metric.
    pub metric: String,
    /// Live rows.
    pub rows: u64,
    /// Partitions.
    pub partitions: usize,
}

/// A user field of a collection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldInfo {
    /// Name.
    pub name: String,
    /// Type (string, int, float, bool).
    #[serde(rename = "type")]
    pub ty: String,
}

/// A collection described: schema, counts, days, sources and provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionInfo {
    /// Name.
    pub collection: String,
    /// Vector dimension.
    pub dim: usize,
    /// Metric.
    pub metric: String,
    /// User fields.
    pub fields: Vec<FieldInfo>,
    /// Live rows.
    pub rows: u64,
    /// Deleted rows not yet reclaimed.
    pub deleted_rows: u64,
    /// Partitions.
    pub partitions: usize,
    /// Segment files (embedded store).
    pub segments: usize,
    /// Bytes on disk.
    pub bytes: u64,
    /// The first day with rows.
    pub first_day: Option<String>,
    /// The last day with rows.
    pub last_day: Option<String>,
    /// Sources, sorted.
    pub sources: Vec<String>,
    /// Provenance: the model that filled it, and the like.
    pub info: serde_json::Map<String, serde_json::Value>,
}

/// Which partitions retention drops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cutoff {
    /// Days older than the last N days (the rule of [`crate::selection`]: it keeps exactly what
    /// "the last N days" selects).
    OlderThan(Age),
    /// Days before this day.
    Before(Day),
}

/// A retention run.
#[derive(Debug, Clone)]
pub struct RetainRequest {
    /// The collection.
    pub collection: String,
    /// Which days go.
    pub cutoff: Cutoff,
    /// Only this source's partitions.
    pub source: Option<String>,
    /// Only report what would be dropped.
    pub dry_run: bool,
}

/// What retention dropped (or would drop).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetainReport {
    /// Partitions of days before this one go.
    pub cutoff: Day,
    /// Whether nothing was dropped (a preview).
    pub dry_run: bool,
    /// The partitions dropped (or that would be).
    pub dropped: Vec<PartitionInfo>,
    /// Partitions before the cutoff that legal holds kept, with the holds that kept each.
    pub kept: Vec<HeldPartition>,
}

/// A partition a legal hold kept from retention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldPartition {
    /// The partition.
    pub partition: PartitionInfo,
    /// The active holds covering it.
    pub holds: Vec<crate::holds::Hold>,
}

/// Which rows to delete.
#[derive(Debug, Clone)]
pub enum DeleteRequest {
    /// These ids.
    Ids(Vec<String>),
    /// Every row in a selection (which must not be everything).
    Selection(SelectionSpec),
    /// Every row.
    All,
}

/// One collection's check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionCheck {
    /// The collection.
    pub collection: String,
    /// What was found.
    #[serde(flatten)]
    pub report: CheckReport,
}

impl Engine {
    /// Creates an empty collection.
    pub fn create_collection(&self, name: &str, spec: &CollectionSpec) -> Result<()> {
        let mut schema = Schema::new(spec.dim, spec.metric)?;
        for (n, t) in &spec.fields {
            schema.ensure_field(n, *t)?;
        }
        self.backend().writer()?.create_collection(name, &schema)
    }

    /// Every collection with its size.
    pub fn collections(&self) -> Result<Vec<CollectionSummary>> {
        let mut out = Vec::new();
        for name in self.backend().collections()? {
            let r = self.reader(&name)?;
            out.push(CollectionSummary {
                dim: r.schema().dim,
                metric: r.schema().metric.to_string(),
                rows: r.rows(),
                partitions: r.partitions().len(),
                name,
            });
        }
        Ok(out)
    }

    /// A collection's schema, counts, days, sources and provenance.
    pub fn collection_info(&self, name: &str) -> Result<CollectionInfo> {
        let r = self.reader(name)?;
        let parts = r.partitions().to_vec();
        let mut sources: Vec<String> = parts.iter().map(|p| p.source.clone()).collect();
        sources.sort();
        sources.dedup();
        Ok(CollectionInfo {
            collection: name.to_string(),
            dim: r.schema().dim,
            metric: r.schema().metric.to_string(),
            fields: r
                .schema()
                .fields
                .iter()
                .map(|f| FieldInfo {
                    name: f.name.clone(),
                    ty: f.ty.to_string(),
                })
                .collect(),
            rows: r.rows(),
            deleted_rows: parts.iter().map(|p| p.deleted).sum(),
            partitions: parts.len(),
            segments: parts.iter().map(|p| p.segments).sum(),
            bytes: parts.iter().map(|p| p.bytes).sum(),
            first_day: parts.iter().map(|p| p.day).min().map(|d| d.to_string()),
            last_day: parts.iter().map(|p| p.day).max().map(|d| d.to_string()),
            sources,
            info: r.info().clone(),
        })
    }

    /// Drops a collection and all its data.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        self.ensure_collection(name)?;
        self.backend().writer()?.drop_collection(name)
    }

    /// Partitions with their statistics, sorted by (source, day).
    pub fn partitions(&self, collection: &str) -> Result<Vec<PartitionInfo>> {
        Ok(self.reader(collection)?.partitions().to_vec())
    }

    /// Drops one (source, day) partition.
    pub fn drop_partition(&self, collection: &str, source: &str, day: Day) -> Result<PartitionInfo> {
        let mut c = self.collection_writer(collection)?;
        self.check_source(collection, Some(source), &c.partitions())?;
        if !c.partitions().iter().any(|p| p.source == source && p.day == day) {
            return Err(vitrine_store::Error::UnknownPartition {
                collection: collection.to_string(),
                source_name: source.to_string(),
                day: day.to_string(),
            }
            .into());
        }
        if let Some(h) = self.hold_log(collection)?.covering(source, day).first() {
            return Err(Error::Held(format!(
                "partition source={source} day={day} is under legal hold {} ({}, placed by {} at {}): release the hold first",
                h.id, h.reason, h.by, h.at
            )));
        }
        // Recorded first, so the next index run of the same files does not bring the day back.
        self.tombstones(collection)?.record(vec![Forgotten::Partition {
            source: source.to_string(),
            day,
        }])?;
        let mut dropped = c.drop_partitions(&|s, d| s == source && d == day)?;
        dropped.pop().ok_or_else(|| {
            vitrine_store::Error::UnknownPartition {
                collection: collection.to_string(),
                source_name: source.to_string(),
                day: day.to_string(),
            }
            .into()
        })
    }

    /// Drops (or, with `dry_run`, lists) every partition older than the cutoff.
    pub fn retain(&self, req: &RetainRequest) -> Result<RetainReport> {
        let cutoff = match req.cutoff {
            Cutoff::OlderThan(age) => age.first_day(Day::today()),
            Cutoff::Before(d) => d,
        };
        let source = req.source.clone();
        let which = move |s: &str, d: Day| d < cutoff && source.as_deref().is_none_or(|x| x == s);
        // Split what the cutoff selects into what goes and what a hold keeps.
        let split = |parts: Vec<PartitionInfo>, holds: &Holds| {
            let (mut go, mut kept) = (Vec::new(), Vec::new());
            for p in parts.into_iter().filter(|p| which(&p.source, p.day)) {
                let by: Vec<Hold> = holds.covering(&p.source, p.day).into_iter().cloned().collect();
                if by.is_empty() {
                    go.push(p);
                } else {
                    kept.push(HeldPartition {
                        partition: p,
                        holds: by,
                    });
                }
            }
            (go, kept)
        };
        let (dropped, kept) = if req.dry_run {
            let parts = self.partitions(&req.collection)?;
            self.check_source(&req.collection, req.source.as_deref(), &parts)?;
            split(parts, &self.hold_log(&req.collection)?)
        } else {
            let mut c = self.collection_writer(&req.collection)?;
            self.check_source(&req.collection, req.source.as_deref(), &c.partitions())?;
            // Read under the writer lock, which placing a hold takes too.
            let (go, kept) = split(c.partitions(), &self.hold_log(&req.collection)?);
            // Recorded first, so the next index run does not bring the days back. With nothing
            // held, one horizon also refuses days older than the cutoff that arrive later; with
            // holds, each dropped partition is recorded instead, so held days can still be
            // re-indexed.
            let records = if kept.is_empty() {
                vec![Forgotten::Horizon {
                    source: req.source.clone(),
                    before: cutoff,
                }]
            } else {
                go.iter()
                    .map(|p| Forgotten::Partition {
                        source: p.source.clone(),
                        day: p.day,
                    })
                    .collect()
            };
            self.tombstones(&req.collection)?.record(records)?;
            let doomed: std::collections::HashSet<(String, Day)> =
                go.iter().map(|p| (p.source.clone(), p.day)).collect();
            let dropped = c.drop_partitions(&|s: &str, d: Day| doomed.contains(&(s.to_string(), d)))?;
            (dropped, kept)
        };
        Ok(RetainReport {
            cutoff,
            dry_run: req.dry_run,
            dropped,
            kept,
        })
    }

    fn check_source(&self, collection: &str, source: Option<&str>, parts: &[PartitionInfo]) -> Result<()> {
        let sel = vitrine_store::Selection {
            sources: source.map(|s| vec![s.to_string()]).unwrap_or_default(),
            ..Default::default()
        };
        check_sources(collection, &sel, parts)
    }

    /// Deletes rows by id, by selection, or all of them. The deleted ids are recorded first (see
    /// [`crate::tombstones`]), so indexing the same files again does not bring them back.
    pub fn delete(&self, collection: &str, req: &DeleteRequest) -> Result<DeleteReport> {
        let mut c = self.collection_writer(collection)?;
        // Read after taking the writer lock: no commit can come between this and the delete.
        let reader = self.backend().reader(collection)?;
        // The rows to delete, with their partitions (legal holds are by partition).
        let doomed: Vec<(String, String, Day)> = match req {
            DeleteRequest::Ids(ids) => {
                if ids.is_empty() {
                    return Err(Error::invalid("no ids to delete"));
                }
                reader
                    .get(ids, &[], false)?
                    .into_iter()
                    .flatten()
                    .map(|r| (r.id, r.source, r.day))
                    .collect()
            }
            DeleteRequest::Selection(spec) if spec.is_everything() => {
                return Err(Error::invalid(format!(
                    "no ids or selection given; deleting every row of {collection:?} must be asked for explicitly"
                )))
            }
            DeleteRequest::Selection(_) | DeleteRequest::All => {
                let sel = match req {
                    DeleteRequest::Selection(spec) => {
                        let sel = spec.resolve(c.schema(), Day::today())?;
                        check_sources(collection, &sel, &c.partitions())?;
                        sel
                    }
                    _ => vitrine_store::Selection::default(),
                };
                let mut rows = Vec::new();
                reader.scan(&sel, &[], false, &mut |r| {
                    rows.push((r.id, r.source, r.day));
                    Ok(())
                })?;
                rows
            }
        };
        // Evidence under a legal hold is not deleted, row by row no more than by the day.
        let holds = self.hold_log(collection)?;
        let held: Vec<&(String, String, Day)> = doomed
            .iter()
            .filter(|(_, s, d)| !holds.covering(s, *d).is_empty())
            .collect();
        if let Some((id, source, day)) = held.first() {
            let h = holds.covering(source, *day)[0];
            return Err(Error::Held(format!(
                "{} of the {} rows to delete lie in days under legal hold (row {id:?}: source={source} day={day}, \
                 hold {} ({}, placed by {} at {})); nothing was deleted: release the hold or leave those days out",
                held.len(),
                doomed.len(),
                h.id,
                h.reason,
                h.by,
                h.at
            )));
        }
        let doomed: Vec<String> = doomed.into_iter().map(|(id, ..)| id).collect();
        self.tombstones(collection)?
            .record(doomed.iter().map(|id| Forgotten::Row { id: id.clone() }).collect())?;
        match req {
            DeleteRequest::Ids(ids) => c.delete_ids(ids),
            _ => Ok(DeleteReport {
                deleted: c.delete_ids(&doomed)?.deleted,
                not_found: vec![],
            }),
        }
    }

    /// The writer of an existing collection: never creates a store or a collection (a command
    /// that fails leaves nothing behind).
    fn collection_writer(&self, collection: &str) -> Result<Box<dyn CollectionWriter>> {
        self.ensure_collection(collection)?;
        self.backend().writer()?.collection(collection)
    }

    /// Fails with the backend's own error (no store here, or the collections that do exist)
    /// unless `collection` exists.
    fn ensure_collection(&self, collection: &str) -> Result<()> {
        if !self.backend().has_collection(collection)? {
            self.backend().reader(collection)?;
        }
        Ok(())
    }

    /// Every legal hold of `collection`, released ones included, in the order placed.
    pub fn holds(&self, collection: &str) -> Result<Vec<Hold>> {
        self.partitions(collection)?;
        Ok(self.hold_log(collection)?.all().to_vec())
    }

    /// Places a legal hold: retention and partition drops keep the days it covers until it is
    /// released.
    pub fn place_hold(&self, collection: &str, req: HoldRequest) -> Result<Hold> {
        // Under the writer lock, so a retention run either sees the hold or has finished.
        let c = self.collection_writer(collection)?;
        self.check_source(collection, req.source.as_deref(), &c.partitions())?;
        self.hold_log(collection)?.place(req)
    }

    /// Releases legal hold `id`, recording who and why.
    pub fn release_hold(&self, collection: &str, id: u64, by: &str, reason: &str) -> Result<Hold> {
        let _lock = self.collection_writer(collection)?;
        self.hold_log(collection)?.release(id, by, reason)
    }

    fn hold_log(&self, collection: &str) -> Result<Holds> {
        Holds::open(&self.backend().side_dir(collection)?)
    }

    fn tombstones(&self, collection: &str) -> Result<Tombstones> {
        Tombstones::open(&self.backend().side_dir(collection)?)
    }

    /// Rewrites partitions to reclaim the space of deleted rows (where the backend can).
    pub fn compact(&self, collection: &str) -> Result<CompactReport> {
        self.collection_writer(collection)?.compact()
    }

    /// Reads and verifies every file of `collection`, or of every collection.
    pub fn check(&self, collection: Option<&str>) -> Result<Vec<CollectionCheck>> {
        let names = match collection {
            Some(c) => vec![c.to_string()],
            None => self.backend().collections()?,
        };
        let mut out = Vec::new();
        for name in names {
            let mut report = self.backend().check(&name)?;
            let side = self.backend().side_dir(&name)?;
            for log in side_logs(&side) {
                report.files += 1;
                report.problems.extend(crate::jsonl::problems(&log));
            }
            out.push(CollectionCheck {
                collection: name,
                report,
            });
        }
        Ok(out)
    }
}

/// The engine's checksummed logs beside a collection (see [`crate::jsonl`]) that exist.
fn side_logs(side: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut logs: Vec<std::path::PathBuf> = [
        crate::ledger::LEDGER_FILE,
        crate::holds::FILE,
        crate::tombstones::FILE,
        crate::calibrate::PROMPT_SETS_FILE,
    ]
    .iter()
    .map(|f| side.join(f))
    .collect();
    if let Ok(rd) = std::fs::read_dir(side.join(crate::watch::FOLDER)) {
        let mut alerts: Vec<_> = rd.flatten().map(|e| e.path().join("alerts.jsonl")).collect();
        alerts.sort();
        logs.extend(alerts);
    }
    logs.retain(|p| p.is_file());
    logs
}
