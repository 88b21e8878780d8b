//! `vitrine index`: image folders or a manifest → embeddings in a collection, incrementally.

use crate::args::IndexArgs;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use vitrine_engine::index::{IndexInputs, IndexOptions, IndexReport, IndexRequest};
use vitrine_engine::Engine;

pub fn run(engine: &Engine, store: &Path, a: IndexArgs) -> Result<()> {
    let started = Instant::now();
    let inputs = match &a.manifest {
        Some(m) => IndexInputs::Manifest {
            path: m.clone(),
            default_source: a.source.clone(),
        },
        None => IndexInputs::Paths {
            paths: a.paths.clone(),
            source: a.source.clone().unwrap_or_default(),
        },
    };
    let req = IndexRequest {
        collection: a.c.collection.clone(),
        inputs,
        model: a.model.clone(),
        options: IndexOptions {
            commit_every: a.commit_every,
            batch: a.batch,
            thumbnails: !a.no_thumbnails,
            readmit_deleted: a.readmit_deleted,
        },
    };
    let bar = progress_bar();
    let report = engine.index(&req, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        tracing::info!(committed = done, "committed batch");
    })?;
    bar.finish_and_clear();
    super::warn(&report.warnings);
    let secs = started.elapsed().as_secs_f64();
    print_summary(store, &a, &report, secs)?;
    if a.watch {
        super::watch::after_write(engine, &a.c.collection)?;
    }
    if a.strict && !report.failed.is_empty() {
        anyhow::bail!(
            "{} input(s) failed (--strict); the other {} were indexed",
            report.failed.len(),
            report.indexed + report.unchanged
        );
    }
    Ok(())
}

/// The bar `index` and the demo show while embedding.
pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}").expect("template"));
    bar
}

/// One line of the failures file: tabs, newlines and backslashes in any cell escaped as `\t`,
/// `\n`, `\r` and `\\`, so every failure stays one line of three columns.
pub fn tsv_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn print_summary(store: &Path, a: &IndexArgs, report: &IndexReport, secs: f64) -> Result<()> {
    let failures_file = match (&a.failures, report.failed.is_empty()) {
        (Some(f), _) => Some(f.clone()),
        // A run that wrote nothing into a store that does not exist leaves no folder behind.
        (None, false) if store.is_dir() => Some(store.join(format!("failures-{}.tsv", a.c.collection))),
        (None, _) => None,
    };
    if let Some(f) = &failures_file {
        let mut out = std::io::BufWriter::new(std::fs::File::create(f).with_context(|| f.display().to_string())?);
        writeln!(out, "input\tkind\treason")?;
        for fl in &report.failed {
            writeln!(
                out,
                "{}\t{}\t{}",
                tsv_cell(&fl.origin),
                tsv_cell(fl.kind),
                tsv_cell(&fl.reason)
            )?;
        }
        out.flush().with_context(|| f.display().to_string())?;
    }
    let by_kind = report.failed_by_kind();
    if a.json {
        say!(
            "{}",
            json!({
                "collection": a.c.collection, "indexed": report.indexed, "embedded": report.embedded,
                "reused": report.reused, "moved": report.moved, "unchanged": report.unchanged,
                "forgotten": report.forgotten, "failed": report.failed.len(),
                "failed_by_kind": by_kind.iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "seconds": secs, "images_per_s": report.indexed as f64 / secs.max(1e-9),
                "failures_file": failures_file.as_ref().map(|f| f.display().to_string()),
            })
        );
        return Ok(());
    }
    say!(
        "indexed {} images into {:?} in {secs:.1} s ({:.1} images/s): {} embedded, {} reused the embedding of identical bytes, {} moved; {} unchanged, {} failed",
        report.indexed,
        a.c.collection,
        report.indexed as f64 / secs.max(1e-9),
        report.embedded,
        report.reused,
        report.moved,
        report.unchanged,
        report.failed.len()
    );
    if report.forgotten > 0 {
        say!(
            "skipped {} inputs whose rows were deleted or whose days were dropped or expired (--readmit-deleted indexes them)",
            report.forgotten
        );
    }
    if !by_kind.is_empty() {
        let parts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
        say!("failed: {}", parts.join(", "));
        for fl in report.failed.iter().take(20) {
            if fl.reason.contains(&fl.origin) {
                eprintln!("  {}", fl.reason);
            } else {
                eprintln!("  {}: {}", fl.origin, fl.reason);
            }
        }
        if report.failed.len() > 20 {
            eprintln!("  … and {} more", report.failed.len() - 20);
        }
    }
    if let Some(f) = failures_file {
        say!("failures listed in {}", f.display());
    }
    Ok(())
}
