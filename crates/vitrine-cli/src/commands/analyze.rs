//! `vitrine sweep` and `vitrine classify`: questions over a whole selection with text prompts.

use crate::args::{ClassifyArgs, Format, SweepArgs};
use crate::output::Rows;
use anyhow::{Context, Result};
use serde_json::json;
use vitrine_engine::query::{parse_labels, ClassifyRequest, SweepRequest};
use vitrine_engine::Engine;

pub fn sweep(engine: &Engine, a: SweepArgs) -> Result<()> {
    if a.prompt_set.is_some() && !(a.blend.add.is_empty() && a.blend.subtract.is_empty()) {
        anyhow::bail!("a saved prompt set sweeps as it was calibrated: --add and --subtract do not apply");
    }
    let ans = match (&a.prompt_set, a.precision) {
        (Some(set), Some(p)) => engine.sweep_calibrated(&a.c.collection, set, p, super::selection(&a.sel)?)?,
        _ => engine.sweep(&SweepRequest {
            collection: a.c.collection.clone(),
            prompts: a.prompts.clone(),
            threshold: a.threshold,
            top: a.top,
            selection: super::selection(&a.sel)?,
            model: a.model.clone(),
            negatives: a.neg.negatives(),
            blend: a.blend.weighted()?,
        })?,
    };
    super::warn(&ans.warnings);
    let mut rows = Rows::new(&["prompt", "id", "score", "source", "day", "uri"]);
    for h in &ans.hits {
        rows.rows.push(vec![
            ans.prompts[h.query].clone().into(),
            h.id.clone().into(),
            json!(h.score),
            h.source.clone().into(),
            h.day.to_string().into(),
            h.uri.clone().into(),
        ]);
    }
    let file = std::fs::File::create(&a.out).with_context(|| a.out.display().to_string())?;
    rows.print(Format::Csv, &mut std::io::BufWriter::new(file))
        .with_context(|| a.out.display().to_string())?;
    let s = &ans.receipt.scan;
    say!(
        "{} hits for {} prompt(s) in {} partitions; scanned {} rows in {} of {} partitions ({} deleted and {} filtered rows excluded) → {}",
        ans.hits.len(),
        ans.prompts.len(),
        ans.per_partition.len(),
        s.rows_scanned,
        s.partitions_scanned,
        s.partitions_total,
        s.rows_deleted,
        s.rows_filtered,
        a.out.display()
    );
    if let Some(c) = &ans.receipt.calibration {
        say!(
            "  calibrated: threshold {} for precision {}: expect precision {:.3} and recall {:.3} (measured on {} labelled rows, {} true, in {}, {})",
            c.threshold.unwrap_or(f64::NAN),
            c.target,
            c.precision.unwrap_or(f64::NAN),
            c.recall.unwrap_or(f64::NAN),
            c.labelled,
            c.positives,
            c.labels_file,
            c.at
        );
    }
    if !a.neg.not.is_empty() || ans.vetoed > 0 {
        say!("  {} rows removed: they score as high for a --not prompt", ans.vetoed);
    }
    for (source, day, n) in &ans.per_partition {
        say!("  {source} {day}: {n}");
    }
    super::search::print_outstanding(&ans.receipt);
    if let Some(r) = &a.receipt {
        std::fs::write(r, serde_json::to_string_pretty(&ans.receipt)?).with_context(|| r.display().to_string())?;
    }
    Ok(())
}

pub fn classify(engine: &Engine, a: ClassifyArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.labels).with_context(|| a.labels.display().to_string())?;
    let labels = parse_labels(&text, &a.labels.display().to_string())?;
    let ans = engine.classify(&ClassifyRequest {
        collection: a.c.collection.clone(),
        labels,
        templates: a.templates.clone(),
        selection: super::selection(&a.sel)?,
        model: a.model.clone(),
    })?;
    super::warn(&ans.warnings);
    let mut rows = Rows::new(&["id", "label", "score", "margin", "second"]);
    for r in &ans.rows {
        rows.rows.push(vec![
            r.id.clone().into(),
            ans.labels[r.label].clone().into(),
            json!(r.score),
            json!(r.margin),
            ans.labels[r.second].clone().into(),
        ]);
    }
    rows.print(a.format, &mut std::io::stdout().lock())?;
    Ok(())
}
