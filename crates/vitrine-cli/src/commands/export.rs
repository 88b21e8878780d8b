//! `vitrine export`: an evidence package of a case's rows, and its verification.

use crate::args::ExportArgs;
use anyhow::{bail, Context, Result};
use vitrine_engine::export::{verify_export, ExportRequest, ExportRows};
use vitrine_engine::query::SweepRequest;
use vitrine_engine::Engine;

pub fn run(engine: &Engine, a: ExportArgs) -> Result<()> {
    if let Some(zip) = &a.verify {
        let v = verify_export(zip)?;
        for p in &v.problems {
            eprintln!("{}: {p}", zip.display());
        }
        say!("manifest sha256 {}", v.manifest_sha256);
        if !v.problems.is_empty() {
            bail!(
                "{}: {} problem(s) in {} listed files",
                zip.display(),
                v.problems.len(),
                v.files
            );
        }
        say!("{}: intact ({} files match their SHA-256)", zip.display(), v.files);
        return Ok(());
    }
    let Some(out) = &a.out else { bail!("--out is needed") };
    let rows = match &a.hits {
        Some(h) => ExportRows::HitsFile(h.clone()),
        None => {
            if a.threshold.is_none() && a.top.is_none() {
                bail!("a sweep export needs --threshold or --top");
            }
            ExportRows::Sweep(Box::new(SweepRequest {
                collection: a.c.collection.clone(),
                prompts: a.prompts.clone(),
                threshold: a.threshold,
                top: a.top,
                selection: super::selection(&a.sel)?,
                model: None,
                negatives: a.neg.negatives(),
                blend: vec![],
            }))
        }
    };
    let command: Vec<String> = std::env::args().collect();
    let r = engine
        .export(
            &ExportRequest {
                collection: a.c.collection.clone(),
                rows,
                reason: a.reason.clone(),
                by: a.by.clone().or_else(|| std::env::var("USER").ok()),
                command: Some(command.join(" ")),
            },
            out,
        )
        .with_context(|| format!("exporting from {:?}", a.c.collection))?;
    say!(
        "{}: {} rows ({} originals, {} changed since indexing; {} as stored thumbnails; {} without a picture), {} files",
        out.display(),
        r.rows,
        r.originals,
        r.changed,
        r.thumbnails,
        r.missing,
        r.files
    );
    if !r.not_found.is_empty() {
        eprintln!(
            "warning: {} ids have no live row (listed in metadata.csv): {}",
            r.not_found.len(),
            r.not_found.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    say!(
        "manifest sha256 {} (note it in the case file: it pins every byte of the package)",
        r.manifest_sha256
    );
    Ok(())
}
