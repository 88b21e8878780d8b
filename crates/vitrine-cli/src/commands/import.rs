//! `vitrine import`: validate everything, then write in atomic batches with a progress bar.

use crate::args::ImportArgs;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;
use vitrine_engine::import::{Defaults, ImportRequest, ImportSource};
use vitrine_engine::Engine;

pub fn run(engine: &Engine, a: ImportArgs) -> Result<()> {
    let started = Instant::now();
    let source = match (&a.vectors, &a.clip_retrieval) {
        (Some(v), _) => ImportSource::Npy {
            vectors: v.clone(),
            metadata: a.metadata.clone(),
        },
        (None, Some(dir)) => ImportSource::ClipRetrieval(dir.clone()),
        (None, None) => anyhow::bail!("give --vectors FILE or --clip-retrieval FOLDER"),
    };
    let req = ImportRequest {
        collection: a.c.collection.clone(),
        source,
        defaults: Defaults {
            source: a.source.clone(),
            day: a.day.as_deref().map(|d| super::parse_day("day", d)).transpose()?,
            id_prefix: a.id_prefix.clone(),
        },
        metric: a.metric.parse()?,
        batch_size: a.batch_size,
        model: a.model.clone(),
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} vectors  {per_sec}  ETA {eta}").expect("valid template"),
    );
    let r = engine.import(&req, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        tracing::info!(committed = done, total, "committed batch");
    })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    say!(
        "imported {} vectors into {:?} ({} new, {} replaced) from {} file(s) in {secs:.1} s ({:.0} vectors/s); collection now has {} rows in {} partitions",
        r.inserted,
        a.c.collection,
        r.inserted - r.replaced.min(r.inserted),
        r.replaced,
        r.files,
        r.inserted as f64 / secs.max(1e-9),
        r.rows,
        r.partitions,
    );
    if a.watch {
        super::watch::after_write(engine, &a.c.collection)?;
    }
    Ok(())
}
