//! `vitrine calibrate`: precision and recall of a prompt set on a reviewer's labels.

use crate::args::CalibrateArgs;
use crate::output::Rows;
use anyhow::{Context, Result};
use serde_json::json;
use vitrine_engine::calibrate::CalibrateRequest;
use vitrine_engine::Engine;

pub fn run(engine: &Engine, a: CalibrateArgs) -> Result<()> {
    let ans = engine
        .calibrate(&CalibrateRequest {
            collection: a.c.collection.clone(),
            prompts: a.prompts.clone(),
            negatives: a.neg.negatives(),
            labels: a.labels.clone(),
            selection: super::selection(&a.sel)?,
            targets: a.precisions.clone(),
            save_as: a.save.clone(),
            by: a.by.clone().or_else(|| std::env::var("USER").ok()),
        })
        .with_context(|| format!("calibrating on {}", a.labels.display()))?;
    super::warn(&ans.warnings);
    let mut rows = Rows::new(&[
        "threshold",
        "labelled",
        "true_positives",
        "precision",
        "recall",
        "count",
    ]);
    for p in &ans.curve {
        rows.rows.push(vec![
            json!(p.threshold),
            p.labelled.into(),
            p.true_positives.into(),
            json!(p.precision),
            json!(p.recall),
            p.count.into(),
        ]);
    }
    rows.print(a.format, &mut std::io::stdout().lock())?;
    eprintln!(
        "{} labelled rows ({} true, {} false){}",
        ans.positives + ans.negatives,
        ans.positives,
        ans.negatives,
        if ans.unknown_ids.is_empty() {
            String::new()
        } else {
            format!(
                "; {} labelled ids are not rows and were left out",
                ans.unknown_ids.len()
            )
        }
    );
    for c in &ans.chosen {
        match c.threshold {
            Some(t) => eprintln!(
                "precision ≥ {}: threshold {t} (sample precision {:.4}, recall {:.4}; {} rows at or past it)",
                c.target,
                c.precision.unwrap_or_default(),
                c.recall.unwrap_or_default(),
                c.count.unwrap_or_default()
            ),
            None => eprintln!("precision ≥ {}: no threshold reaches it on these labels", c.target),
        }
    }
    if let Some(name) = &a.save {
        eprintln!("saved prompt set {name:?}: vitrine sweep --prompt-set {name:?} --precision P");
    }
    if let Some(path) = &a.plot {
        let title = format!("{} — {}", a.c.collection, a.prompts.join(" | "));
        std::fs::write(path, crate::plot::precision_recall(&title, &ans.curve, &ans.chosen))
            .with_context(|| path.display().to_string())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
