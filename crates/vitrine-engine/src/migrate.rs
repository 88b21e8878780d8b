//! Copying a collection between backends (the embedded store ↔ Milvus), resumable and verified.
//!
//! The copy goes one (source, day) partition at a time, every row with all its fields
//! (thumbnails included) and its vector, in upserts of `batch` rows. A partition whose row count
//! already matches on the destination is skipped, and upserts replace by id, so re-running an
//! interrupted migration finishes it without duplicates. At the end the row counts of every
//! partition must match, and a sample of rows must come back with the same vector (bit for bit)
//! and the same fields.

use crate::backend::{Backend, CollectionReader, Record};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use vitrine_store::{Batch, Day, Row, Selection};

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MigrateReport {
    /// Whether the destination collection was created by this run.
    pub created: bool,
    /// Partitions copied by this run.
    pub partitions_copied: usize,
    /// Partitions already complete on the destination (an earlier, interrupted run).
    pub partitions_skipped: usize,
    /// Rows copied by this run.
    pub rows_copied: u64,
    /// Live rows in the source (and, verified, in the destination).
    pub rows: u64,
    /// Rows whose vector and fields were compared at the end.
    pub rows_verified: usize,
}

/// Copies collection `name` from `from` to `to`. `progress(rows done, rows total)` is called as
/// it goes.
pub fn migrate(
    from: &dyn Backend,
    to: &dyn Backend,
    name: &str,
    batch: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<MigrateReport> {
    let batch = batch.max(1);
    let src = from.reader(name)?;
    let schema = src.schema().clone();
    let fields: Vec<String> = schema.fields.iter().map(|f| f.name.clone()).collect();
    let mut report = MigrateReport {
        rows: src.rows(),
        ..Default::default()
    };
    let mut store = to.writer()?;
    if !store.has_collection(name)? {
        store.create_collection(name, &schema)?;
        report.created = true;
    }
    let mut w = store.collection(name)?;
    let have = w.schema().clone();
    if (have.dim, have.metric) != (schema.dim, schema.metric) {
        return Err(Error::Invalid(format!(
            "collection {name} on {} has dimension {} and metric {}, the source's has {} and {}",
            to.location(),
            have.dim,
            have.metric,
            schema.dim,
            schema.metric
        )));
    }
    w.extend_schema(&schema)?;
    // Provenance (the model that filled it) goes first: a half-copied collection still refuses
    // another model's vectors.
    let info: Vec<(String, serde_json::Value)> = src.info().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if !info.is_empty() {
        w.set_info(info)?;
    }
    let done: BTreeMap<(String, Day), u64> = w
        .partitions()
        .into_iter()
        .map(|p| ((p.source, p.day), p.rows))
        .collect();
    let mut copied = 0u64;
    for p in src.partitions().iter().filter(|p| p.rows > 0) {
        if done.get(&(p.source.clone(), p.day)) == Some(&p.rows) {
            report.partitions_skipped += 1;
            copied += p.rows;
            progress(copied, report.rows);
            continue;
        }
        let selection = Selection {
            sources: vec![p.source.clone()],
            from: Some(p.day),
            to: Some(p.day),
            filter: None,
        };
        let mut pending: Vec<Record> = Vec::with_capacity(batch.min(65_536));
        let mut flush = |pending: &mut Vec<Record>, w: &mut Box<dyn crate::backend::CollectionWriter>| -> Result<()> {
            if pending.is_empty() {
                return Ok(());
            }
            let mut b = Batch {
                field_names: fields.clone(),
                rows: Vec::with_capacity(pending.len()),
                vectors: Vec::with_capacity(pending.len() * schema.dim),
            };
            for r in pending.drain(..) {
                let v = r
                    .vector
                    .ok_or_else(|| Error::Invalid(format!("row {}: the source returned no vector", r.id)))?;
                b.vectors.extend_from_slice(&v);
                b.rows.push(Row {
                    id: r.id,
                    uri: r.uri,
                    source: r.source,
                    timestamp: r.timestamp,
                    fields: r.fields.0.into_iter().map(|(_, v)| v).collect(),
                });
            }
            let n = b.rows.len() as u64;
            w.insert(&b)?;
            report.rows_copied += n;
            copied += n;
            progress(copied, report.rows);
            Ok(())
        };
        src.scan(&selection, &fields, true, &mut |r| {
            pending.push(r);
            if pending.len() >= batch {
                flush(&mut pending, &mut w)?;
            }
            Ok(())
        })?;
        flush(&mut pending, &mut w)?;
        report.partitions_copied += 1;
    }
    w.tidy()?;
    drop(w);
    drop(store);
    report.rows_verified = verify(src.as_ref(), to.reader(name)?.as_ref(), &fields, to)?;
    Ok(report)
}

/// Every partition's count equal, and a sample of rows (spread over the partitions) equal in
/// vector and fields. Returns how many rows were compared.
fn verify(
    src: &dyn CollectionReader,
    dst: &dyn CollectionReader,
    fields: &[String],
    to: &dyn Backend,
) -> Result<usize> {
    let counts = |r: &dyn CollectionReader| -> BTreeMap<(String, Day), u64> {
        r.partitions()
            .iter()
            .filter(|p| p.rows > 0)
            .map(|p| ((p.source.clone(), p.day), p.rows))
            .collect()
    };
    let (a, b) = (counts(src), counts(dst));
    if a != b {
        let differ: Vec<String> = a
            .keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .take(5)
            .map(|(s, d)| {
                format!(
                    "{s} {d}: {} vs {}",
                    a.get(&(s.clone(), *d)).unwrap_or(&0),
                    b.get(&(s.clone(), *d)).unwrap_or(&0)
                )
            })
            .collect();
        return Err(Error::Invalid(format!(
            "after the copy, {} does not hold the same rows: {}",
            to.location(),
            differ.join("; ")
        )));
    }
    // The first row of up to 100 partitions spread over the collection, plus their neighbours.
    let parts = src.partitions();
    let step = (parts.len() / 100).max(1);
    let mut ids = Vec::new();
    for p in parts.iter().step_by(step).filter(|p| p.rows > 0) {
        let sel = Selection {
            sources: vec![p.source.clone()],
            from: Some(p.day),
            to: Some(p.day),
            filter: None,
        };
        let mut n = 0;
        src.scan(&sel, &[], false, &mut |r| {
            if n < 3 {
                ids.push(r.id);
            }
            n += 1;
            Ok(())
        })?;
    }
    let x = src.get(&ids, fields, true)?;
    let y = dst.get(&ids, fields, true)?;
    for (id, (x, y)) in ids.iter().zip(x.iter().zip(&y)) {
        let same = match (x, y) {
            (Some(x), Some(y)) => {
                x.vector == y.vector
                    && x.fields == y.fields
                    && (&x.uri, &x.source, x.day, x.timestamp) == (&y.uri, &y.source, y.day, y.timestamp)
            }
            _ => false,
        };
        if !same {
            return Err(Error::Invalid(format!(
                "after the copy, row {id:?} differs on {} (vector, fields or place)",
                to.location()
            )));
        }
    }
    Ok(ids.len())
}
