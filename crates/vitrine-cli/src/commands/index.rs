//! `vitrine index`: image folders or a manifest → embeddings in a collection, incrementally.

use crate::args::IndexArgs;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use vitrine_engine::index::{
    check_model, index_inputs, inputs_from_manifest, inputs_from_paths, model_identity, weights_stamp, IndexOptions,
    IndexReport, Plan, MODEL_HASH_KEY, MODEL_KEY, MODEL_STAMP_KEY,
};
use vitrine_engine::ledger::LEDGER_FILE;
use vitrine_engine::Embedder;
use vitrine_store::{Metric, Schema, Store};

pub fn run(store: &Path, a: IndexArgs) -> Result<()> {
    let started = Instant::now();
    if let Some(s) = &a.source {
        vitrine_store::check_name("source", s)?;
    }
    // A path that is not there is a typo, not an input that failed: stop before anything is
    // written (it would otherwise sit in the ledger's receipts as a failed input).
    if let Some(p) = a.paths.iter().find(|p| !p.exists()) {
        anyhow::bail!("{}: no such file or folder (nothing was indexed)", p.display());
    }
    let model = super::model_or_demo(a.model.clone())?;
    let mut embedder = Embedder::load_towers(&model, vitrine_engine::Towers::Image)?;
    embedder.set_batch(a.batch);
    let plan = match &a.manifest {
        Some(m) => inputs_from_manifest(m, a.source.as_deref())?,
        None => inputs_from_paths(&a.paths, a.source.as_deref().unwrap_or_default()),
    };
    let opts = IndexOptions {
        commit_every: a.commit_every,
        thumbnails: !a.no_thumbnails,
        ledger: None,
    };
    let report = index_into(store, &a.c.collection, &embedder, &plan, opts, true)?;
    let secs = started.elapsed().as_secs_f64();
    print_summary(store, &a, &report, secs)?;
    if a.strict && !report.failed.is_empty() {
        anyhow::bail!(
            "{} input(s) failed (--strict); the other {} were indexed",
            report.failed.len(),
            report.indexed + report.unchanged + report.duplicates
        );
    }
    Ok(())
}

/// Indexes `plan` into `collection` (created if needed), recording the model; the ledger
/// lives in the collection's folder.
pub fn index_into(
    store: &Path,
    collection: &str,
    embedder: &Embedder,
    plan: &Plan,
    mut opts: IndexOptions,
    show_progress: bool,
) -> Result<IndexReport> {
    let (name, hash) = model_identity(embedder.model().dir())?;
    let w = Store::open_writer(store)?;
    if !w.has_collection(collection) {
        w.create_collection(collection, Schema::new(embedder.dim(), Metric::Cosine)?)?;
    }
    let mut col = w.collection(collection)?;
    check_model(&col.manifest().info, &name, &hash)?;
    anyhow::ensure!(
        col.schema().dim == embedder.dim(),
        "collection {collection:?} has dimension {}, the model embeds to {}",
        col.schema().dim,
        embedder.dim()
    );
    if !col.manifest().info.contains_key(MODEL_HASH_KEY) {
        col.set_info(MODEL_KEY, name.clone().into())?;
        col.set_info(MODEL_HASH_KEY, hash.clone().into())?;
    }
    // The weights just hashed equal the recorded ones: let queries trust the hash for this file.
    if let Some(stamp) = weights_stamp(embedder.model().dir()) {
        if col.manifest().info.get(MODEL_STAMP_KEY).and_then(|v| v.as_str()) != Some(stamp.as_str()) {
            col.set_info(MODEL_STAMP_KEY, stamp.into())?;
        }
    }
    let existing = w.snapshot(collection)?;
    let bar = ProgressBar::new(plan.inputs.len() as u64);
    if !show_progress {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}").expect("template"));
    opts.ledger = Some(w.collection_dir(collection).join(LEDGER_FILE));
    let report = index_inputs(embedder, &mut col, Some(&existing), plan, &opts, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        tracing::info!(committed = done, "committed batch");
    })?;
    bar.finish_and_clear();
    Ok(report)
}

fn print_summary(store: &Path, a: &IndexArgs, report: &IndexReport, secs: f64) -> Result<()> {
    let failures_file = match (&a.failures, report.failed.is_empty()) {
        (Some(f), _) => Some(f.clone()),
        (None, false) => Some(store.join(format!("failures-{}.tsv", a.c.collection))),
        (None, true) => None,
    };
    if let Some(f) = &failures_file {
        let mut out = std::fs::File::create(f).with_context(|| f.display().to_string())?;
        writeln!(out, "input\tkind\treason")?;
        for fl in &report.failed {
            writeln!(
                out,
                "{}\t{}\t{}",
                fl.origin,
                fl.kind,
                fl.reason.replace(['\t', '\n'], " ")
            )?;
        }
    }
    let by_kind = report.failed_by_kind();
    if a.json {
        println!(
            "{}",
            json!({
                "collection": a.c.collection, "indexed": report.indexed, "unchanged": report.unchanged,
                "duplicates": report.duplicates, "failed": report.failed.len(),
                "failed_by_kind": by_kind.iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "seconds": secs, "images_per_s": report.indexed as f64 / secs.max(1e-9),
                "failures_file": failures_file.as_ref().map(|f| f.display().to_string()),
            })
        );
        return Ok(());
    }
    println!(
        "indexed {} images into {:?} in {secs:.1} s ({:.1} images/s): {} unchanged, {} duplicates by content, {} failed",
        report.indexed,
        a.c.collection,
        report.indexed as f64 / secs.max(1e-9),
        report.unchanged,
        report.duplicates,
        report.failed.len()
    );
    if !by_kind.is_empty() {
        let parts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!("failed: {}", parts.join(", "));
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
        println!("failures listed in {}", f.display());
    }
    Ok(())
}
