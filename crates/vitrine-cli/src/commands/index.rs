//! `vitrine index`: image files and folders → embeddings in a collection, incrementally.

use crate::args::IndexArgs;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use vitrine_engine::index::{check_model, index_files, model_identity, walk, MODEL_HASH_KEY, MODEL_KEY};
use vitrine_engine::Embedder;
use vitrine_store::{Metric, Schema, Store};

pub fn run(store: &Path, a: IndexArgs) -> Result<()> {
    let started = Instant::now();
    vitrine_store::check_name("source", &a.source)?;
    let mut embedder = Embedder::load(&a.model)?;
    embedder.set_batch(a.batch);
    let (name, hash) = model_identity(embedder.model().dir())?;
    let files = walk(&a.paths);
    let w = Store::open_writer(store)?;
    if !w.has_collection(&a.c.collection) {
        w.create_collection(&a.c.collection, Schema::new(embedder.dim(), Metric::Cosine)?)?;
    }
    let mut col = w.collection(&a.c.collection)?;
    check_model(&col.manifest().info, &name, &hash)?;
    anyhow::ensure!(
        col.schema().dim == embedder.dim(),
        "collection {:?} has dimension {}, model {} embeds to {}",
        a.c.collection,
        col.schema().dim,
        a.model,
        embedder.dim()
    );
    if !col.manifest().info.contains_key(MODEL_HASH_KEY) {
        col.set_info(MODEL_KEY, name.clone().into())?;
        col.set_info(MODEL_HASH_KEY, hash.clone().into())?;
    }
    let existing = w.snapshot(&a.c.collection)?;
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}").expect("template"));
    let report = index_files(
        &embedder,
        &mut col,
        Some(&existing),
        &files,
        &a.source,
        a.commit_every,
        |done, _| {
            bar.set_position(done as u64);
            tracing::info!(committed = done, "committed batch");
        },
    )?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "indexed {} images into {:?} in {secs:.1} s ({:.1} images/s): {} unchanged, {} duplicates by content, {} failed",
        report.indexed,
        a.c.collection,
        report.indexed as f64 / secs.max(1e-9),
        report.unchanged,
        report.duplicates,
        report.failed.len()
    );
    for (_, why) in &report.failed {
        eprintln!("failed: {why}");
    }
    if let Some(f) = &a.failures {
        let mut out = std::fs::File::create(f).with_context(|| f.display().to_string())?;
        for (p, why) in &report.failed {
            writeln!(out, "{}\t{}", p.display(), why.replace(['\t', '\n'], " "))?;
        }
    }
    Ok(())
}
