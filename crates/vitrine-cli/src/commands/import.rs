//! `vitrine import`: validate everything, then write in atomic batches with a progress bar.

use crate::args::ImportArgs;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::time::Instant;
use vitrine_import::{clip_retrieval, Defaults, Part};
use vitrine_store::{Metric, Schema, Store};

pub fn run(store: &Path, a: ImportArgs) -> Result<()> {
    let started = Instant::now();
    let defaults = Defaults {
        source: a.source.clone(),
        day: a.day.as_deref().map(|d| super::parse_day("day", d)).transpose()?,
        id_prefix: a.id_prefix.clone(),
    };
    if let Some(s) = &defaults.source {
        vitrine_store::check_name("source", s)?;
    }
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be positive");
    // Read and validate every input before taking the lock or writing anything.
    let parts: Vec<Part> = match (&a.vectors, &a.clip_retrieval) {
        (Some(v), _) => vec![Part::open(v, a.metadata.as_deref(), &defaults)?],
        (None, Some(dir)) => clip_retrieval::open(dir, &defaults)?,
        (None, None) => anyhow::bail!("give --vectors or --clip-retrieval"),
    };
    let w = Store::open_writer(store)?;
    let (dim, metric) = if w.has_collection(&a.c.collection) {
        let s = w.collection(&a.c.collection)?;
        (s.schema().dim, s.schema().metric)
    } else {
        (parts[0].dim(), a.metric.parse::<Metric>()?)
    };
    // Everything is checked before the first write: vectors, then every row's metadata with the
    // schema folded over all parts (a field's type must agree across files).
    let mut schema = if w.has_collection(&a.c.collection) {
        w.collection(&a.c.collection)?.schema().clone()
    } else {
        Schema::new(dim, metric)?
    };
    for p in &parts {
        p.validate(dim, metric)?;
        schema = p.validate_rows(&schema)?;
    }
    if !w.has_collection(&a.c.collection) {
        w.create_collection(&a.c.collection, Schema::new(dim, metric)?)?;
        tracing::info!(collection = %a.c.collection, dim, %metric, "created collection");
    }
    let mut col = w.collection(&a.c.collection)?;
    let total: usize = parts.iter().map(Part::rows).sum();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} vectors  {per_sec}  ETA {eta}").expect("valid template"),
    );
    let (mut inserted, mut replaced, mut done) = (0u64, 0u64, 0usize);
    for p in &parts {
        for start in (0..p.rows()).step_by(a.batch_size) {
            let end = (start + a.batch_size).min(p.rows());
            let r = col
                .insert(&p.batch(start..end))
                .with_context(|| format!("{}: rows {start}..{end}", p.path().display()))?;
            inserted += r.inserted;
            replaced += r.replaced;
            done += end - start;
            bar.set_position(done as u64);
            tracing::info!(committed = done, total, file = %p.path().display(), "committed batch");
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {inserted} vectors into {:?} ({} new, {replaced} replaced) from {} file(s) in {secs:.1} s ({:.0} vectors/s); collection now has {} rows in {} partitions",
        a.c.collection,
        inserted - replaced.min(inserted),
        parts.len(),
        inserted as f64 / secs.max(1e-9),
        w.snapshot(&a.c.collection)?.rows(),
        col.partitions().len(),
    );
    Ok(())
}
