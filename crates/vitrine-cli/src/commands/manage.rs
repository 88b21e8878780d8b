//! Collections, partitions, deletes, compaction and checks.

use super::{parse_day, selection};
use crate::args::{CollectionCmd, DeleteArgs, Format, PartitionsCmd};
use crate::output::Rows;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::Path;
use vitrine_store::{Day, FieldType, Metric, Schema, Store};

pub fn collection(store: &Path, cmd: CollectionCmd) -> Result<()> {
    match cmd {
        CollectionCmd::Create {
            name,
            dim,
            metric,
            fields,
        } => {
            let metric: Metric = metric.parse()?;
            let mut schema = Schema::new(dim, metric)?;
            for f in &fields {
                let (n, t) = f
                    .split_once(':')
                    .with_context(|| format!("--field {f:?}: expected NAME:TYPE"))?;
                schema.ensure_field(n, t.parse::<FieldType>()?)?;
            }
            let w = Store::open_writer(store)?;
            w.create_collection(&name, schema)?;
            println!("created collection {name:?} (dim {dim}, metric {metric})");
        }
        CollectionCmd::List => {
            let s = Store::open(store)?;
            let mut rows = Rows::new(&["collection", "dim", "metric", "rows", "partitions"]);
            for name in s.collections()? {
                let snap = s.snapshot(&name)?;
                rows.rows.push(vec![
                    name.into(),
                    snap.schema().dim.into(),
                    snap.schema().metric.to_string().into(),
                    snap.rows().into(),
                    snap.partitions().len().into(),
                ]);
            }
            rows.print(Format::Table, &mut std::io::stdout().lock())?;
        }
        CollectionCmd::Info { name } => {
            let snap = Store::open(store)?.snapshot(&name)?;
            let parts = snap.partitions();
            let m = snap.manifest();
            let mut sources: Vec<&str> = parts.iter().map(|p| p.source.as_str()).collect();
            sources.sort();
            sources.dedup();
            let info = json!({
                "collection": name,
                "dim": m.schema.dim,
                "metric": m.schema.metric.to_string(),
                "fields": m.schema.fields.iter().map(|f| json!({"name": f.name, "type": f.ty.to_string()})).collect::<Vec<_>>(),
                "rows": snap.rows(),
                "deleted_rows": parts.iter().map(|p| p.deleted).sum::<u64>(),
                "partitions": parts.len(),
                "segments": m.segments.len(),
                "bytes": parts.iter().map(|p| p.bytes).sum::<u64>(),
                "first_day": parts.iter().map(|p| p.day).min().map(|d| d.to_string()),
                "last_day": parts.iter().map(|p| p.day).max().map(|d| d.to_string()),
                "sources": sources,
                "version": m.version,
                "info": m.info,
            });
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        CollectionCmd::Drop { name } => {
            let w = Store::open_writer(store)?;
            w.drop_collection(&name)?;
            println!("dropped collection {name:?}");
        }
    }
    Ok(())
}

pub fn partitions(store: &Path, cmd: PartitionsCmd) -> Result<()> {
    match cmd {
        PartitionsCmd::List { c, format } => {
            let snap = Store::open(store)?.snapshot(&c.collection)?;
            let mut rows = Rows::new(&["source", "day", "rows", "deleted", "segments", "bytes"]);
            for p in snap.partitions() {
                rows.rows.push(vec![
                    p.source.into(),
                    p.day.to_string().into(),
                    p.rows.into(),
                    p.deleted.into(),
                    p.segments.into(),
                    p.bytes.into(),
                ]);
            }
            rows.print(format, &mut std::io::stdout().lock())?;
        }
        PartitionsCmd::Drop { c, source, day } => {
            let day = parse_day("day", &day)?;
            let w = Store::open_writer(store)?;
            let p = w.collection(&c.collection)?.drop_partition(&source, day)?;
            println!(
                "dropped partition source={} day={} ({} rows, {} bytes)",
                p.source, p.day, p.rows, p.bytes
            );
        }
        PartitionsCmd::Retain {
            c,
            older_than,
            before,
            source,
            dry_run,
        } => {
            let cutoff = match (older_than, before) {
                (Some(age), _) => {
                    let secs = vitrine_store::parse_age(&age).context("--older-than")?;
                    Day(Day::today().0 - (secs / 86_400) as i32) // parse_age caps ages at 10,000 years
                }
                (None, Some(b)) => parse_day("before", &b)?,
                (None, None) => bail!("give --older-than or --before"),
            };
            let pred = |s: &str, d: Day| d < cutoff && source.as_deref().is_none_or(|x| x == s);
            let dropped = if dry_run {
                Store::open(store)?
                    .snapshot(&c.collection)?
                    .partitions()
                    .into_iter()
                    .filter(|p| pred(&p.source, p.day))
                    .collect()
            } else {
                Store::open_writer(store)?
                    .collection(&c.collection)?
                    .drop_partitions(pred)?
            };
            let rows: u64 = dropped.iter().map(|p| p.rows).sum();
            let verb = if dry_run { "would drop" } else { "dropped" };
            println!("{verb} {} partitions before {cutoff} ({rows} rows)", dropped.len());
            for p in &dropped {
                println!("  {} {} {} rows", p.source, p.day, p.rows);
            }
        }
    }
    Ok(())
}

pub fn delete(store: &Path, a: DeleteArgs) -> Result<()> {
    let w = Store::open_writer(store)?;
    let mut c = w.collection(&a.c.collection)?;
    let mut ids = a.ids.clone();
    if let Some(f) = &a.ids_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
        ids.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from));
    }
    let sel = selection(&a.sel, c.schema())?;
    let n = if !ids.is_empty() {
        anyhow::ensure!(sel.is_everything(), "give either ids or a selection, not both");
        c.delete_ids(&ids)?
    } else {
        if sel.is_everything() && !a.all {
            bail!(
                "no ids or selection given; pass --all to delete every row of {:?}",
                a.c.collection
            );
        }
        c.delete_where(&sel)?
    };
    println!(
        "deleted {n} rows from {:?} (space is reclaimed by `vitrine compact`)",
        a.c.collection
    );
    Ok(())
}

pub fn compact(store: &Path, name: &str) -> Result<()> {
    let w = Store::open_writer(store)?;
    let r = w.collection(name)?.compact()?;
    println!(
        "compacted {} partitions: {} deleted rows reclaimed, {} → {} bytes",
        r.partitions, r.rows_reclaimed, r.bytes_before, r.bytes_after
    );
    Ok(())
}

pub fn check(store: &Path, name: &str) -> Result<()> {
    let snap = Store::open(store)?.snapshot(name)?;
    snap.verify()?;
    println!(
        "{name}: {} segments, {} rows: all checksums match",
        snap.manifest().segments.len(),
        snap.rows()
    );
    Ok(())
}
