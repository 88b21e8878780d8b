//! Collections, partitions, deletes, compaction and checks.

use super::{parse_day, selection};
use crate::args::{CollectionCmd, DeleteArgs, Format, HoldCmd, PartitionsCmd};
use crate::output::Rows;
use anyhow::{bail, Context, Result};
use vitrine_engine::admin::{CollectionSpec, Cutoff, DeleteRequest, RetainRequest};
use vitrine_engine::holds::HoldRequest;
use vitrine_engine::{Engine, FieldType, Metric};

pub fn collection(engine: &Engine, cmd: CollectionCmd) -> Result<()> {
    match cmd {
        CollectionCmd::Create {
            name,
            dim,
            metric,
            fields,
        } => {
            let metric: Metric = metric.parse()?;
            let mut spec = CollectionSpec {
                dim,
                metric,
                fields: vec![],
            };
            for f in &fields {
                let (n, t) = f
                    .split_once(':')
                    .with_context(|| format!("--field {f:?}: expected NAME:TYPE"))?;
                spec.fields.push((n.to_string(), t.parse::<FieldType>()?));
            }
            engine.create_collection(&name, &spec)?;
            say!("created collection {name:?} (dim {dim}, metric {metric})");
        }
        CollectionCmd::List => {
            let mut rows = Rows::new(&["collection", "dim", "metric", "rows", "partitions"]);
            for c in engine.collections()? {
                rows.rows.push(vec![
                    c.name.into(),
                    c.dim.into(),
                    c.metric.into(),
                    c.rows.into(),
                    c.partitions.into(),
                ]);
            }
            rows.print(Format::Table, &mut std::io::stdout().lock())?;
        }
        CollectionCmd::Info { name } => {
            say!("{}", serde_json::to_string_pretty(&engine.collection_info(&name)?)?);
        }
        CollectionCmd::Drop { name } => {
            engine.drop_collection(&name)?;
            say!("dropped collection {name:?}");
        }
    }
    Ok(())
}

pub fn partitions(engine: &Engine, cmd: PartitionsCmd) -> Result<()> {
    match cmd {
        PartitionsCmd::List { c, format } => {
            let mut rows = Rows::new(&["source", "day", "rows", "deleted", "segments", "bytes"]);
            for p in engine.partitions(&c.collection)? {
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
            let p = engine.drop_partition(&c.collection, &source, parse_day("day", &day)?)?;
            say!(
                "dropped partition source={} day={} ({} rows, {} bytes)",
                p.source,
                p.day,
                p.rows,
                p.bytes
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
                (Some(age), _) => Cutoff::OlderThan(age.parse().context("--older-than")?),
                (None, Some(b)) => Cutoff::Before(parse_day("before", &b)?),
                (None, None) => bail!("give --older-than AGE or --before DAY"),
            };
            let r = engine.retain(&RetainRequest {
                collection: c.collection.clone(),
                cutoff,
                source,
                dry_run,
            })?;
            let rows: u64 = r.dropped.iter().map(|p| p.rows).sum();
            let verb = if dry_run { "would drop" } else { "dropped" };
            say!(
                "{verb} {} partitions before {} ({rows} rows)",
                r.dropped.len(),
                r.cutoff
            );
            for p in &r.dropped {
                say!("  {} {} {} rows", p.source, p.day, p.rows);
            }
            if !r.kept.is_empty() {
                let rows: u64 = r.kept.iter().map(|k| k.partition.rows).sum();
                say!("kept {} partitions under legal hold ({rows} rows)", r.kept.len());
                for k in &r.kept {
                    let why: Vec<String> = k.holds.iter().map(|h| format!("hold {}: {}", h.id, h.reason)).collect();
                    say!(
                        "  {} {} {} rows ({})",
                        k.partition.source,
                        k.partition.day,
                        k.partition.rows,
                        why.join("; ")
                    );
                }
            }
        }
    }
    Ok(())
}

/// Who is acting, for the hold records: `--by`, else $USER.
fn who(by: Option<String>) -> Result<String> {
    by.or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .context("say who you are with --by (no $USER is set)")
}

pub fn hold(engine: &Engine, cmd: HoldCmd) -> Result<()> {
    match cmd {
        HoldCmd::Add {
            c,
            source,
            from,
            to,
            reason,
            by,
        } => {
            let h = engine.place_hold(
                &c.collection,
                HoldRequest {
                    source,
                    from: parse_day("from", &from)?,
                    to: parse_day("to", &to)?,
                    reason,
                    by: who(by)?,
                },
            )?;
            say!(
                "placed hold {}: {} {}..{} ({})",
                h.id,
                h.source.as_deref().unwrap_or("every source"),
                h.from,
                h.to,
                h.reason
            );
        }
        HoldCmd::List { c, format } => {
            let mut rows = Rows::new(&[
                "id",
                "source",
                "from",
                "to",
                "reason",
                "by",
                "at",
                "released_by",
                "released_at",
                "release_reason",
            ]);
            for h in engine.holds(&c.collection)? {
                let r = h.released.as_ref();
                rows.rows.push(vec![
                    h.id.into(),
                    h.source.unwrap_or_default().into(),
                    h.from.to_string().into(),
                    h.to.to_string().into(),
                    h.reason.into(),
                    h.by.into(),
                    h.at.into(),
                    r.map(|r| r.by.clone()).unwrap_or_default().into(),
                    r.map(|r| r.at.clone()).unwrap_or_default().into(),
                    r.map(|r| r.reason.clone()).unwrap_or_default().into(),
                ]);
            }
            rows.print(format, &mut std::io::stdout().lock())?;
        }
        HoldCmd::Release { c, id, reason, by } => {
            let h = engine.release_hold(&c.collection, id, &who(by)?, &reason)?;
            say!("released hold {} ({})", h.id, h.reason);
        }
    }
    Ok(())
}

pub fn delete(engine: &Engine, a: DeleteArgs) -> Result<()> {
    let mut ids = a.ids.clone();
    if let Some(f) = &a.ids_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
        ids.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from));
    }
    let sel = selection(&a.sel)?;
    let req = if !ids.is_empty() {
        anyhow::ensure!(sel.is_everything(), "give either ids or a selection, not both");
        DeleteRequest::Ids(ids)
    } else if sel.is_everything() {
        if !a.all {
            bail!(
                "no ids or selection given; pass --all to delete every row of {:?}",
                a.c.collection
            );
        }
        DeleteRequest::All
    } else {
        DeleteRequest::Selection(sel)
    };
    let r = engine.delete(&a.c.collection, &req)?;
    say!(
        "deleted {} rows from {:?} (space is reclaimed by `vitrine compact`)",
        r.deleted,
        a.c.collection
    );
    if !r.not_found.is_empty() {
        let shown: Vec<&str> = r.not_found.iter().take(20).map(String::as_str).collect();
        eprintln!(
            "{} id(s) not found: {}{}",
            r.not_found.len(),
            shown.join(", "),
            if r.not_found.len() > 20 { ", …" } else { "" }
        );
    }
    Ok(())
}

pub fn compact(engine: &Engine, name: &str) -> Result<()> {
    let r = engine.compact(name)?;
    say!(
        "compacted {} partitions: {} deleted rows reclaimed, {} segments upgraded to scan codes, {} → {} bytes",
        r.partitions,
        r.rows_reclaimed,
        r.segments_upgraded,
        r.bytes_before,
        r.bytes_after
    );
    Ok(())
}

pub fn check(engine: &Engine, name: Option<&str>) -> Result<()> {
    let checks = engine.check(name)?;
    let mut damaged = 0;
    for c in &checks {
        if c.report.problems.is_empty() {
            say!(
                "{}: {} files, {} rows: all checksums match",
                c.collection,
                c.report.files,
                c.report.rows
            );
        } else {
            damaged += c.report.problems.len();
            say!("{}: {} damaged file(s):", c.collection, c.report.problems.len());
            for p in &c.report.problems {
                say!("  {p}");
            }
        }
    }
    if checks.is_empty() {
        say!("no collections to check");
    }
    anyhow::ensure!(damaged == 0, "{damaged} damaged file(s) found");
    Ok(())
}

pub fn migrate(a: crate::args::MigrateArgs) -> Result<()> {
    let from = super::backend(&a.from)?;
    let to = super::backend(&a.to)?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  ETA {eta}").expect("template"),
    );
    let t = std::time::Instant::now();
    let r = vitrine_engine::migrate(
        from.as_ref(),
        to.as_ref(),
        &a.collection,
        a.batch,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    say!(
        "copied {} rows of {:?} from {} to {} in {:.1} s ({} partitions copied, {} already there); {} rows on both sides, {} sampled rows equal",
        r.rows_copied,
        a.collection,
        from.location(),
        to.location(),
        t.elapsed().as_secs_f64(),
        r.partitions_copied,
        r.partitions_skipped,
        r.rows,
        r.rows_verified
    );
    Ok(())
}
