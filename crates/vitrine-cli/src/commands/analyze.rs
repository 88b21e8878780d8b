//! `vitrine sweep` and `vitrine classify`: questions over a whole selection with text prompts.

use super::search::collection_model;
use crate::args::{ClassifyArgs, SweepArgs};
use crate::output::Rows;
use anyhow::{Context, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use vitrine_engine::Towers;
use vitrine_store::{SearchRequest, Selection, Store};

pub fn sweep(store: &Path, a: SweepArgs) -> Result<()> {
    let snap = Store::open(store)?.snapshot(&a.c.collection)?;
    let e = collection_model(&snap, a.model.as_deref(), Towers::Text)?;
    let prompts: Vec<&str> = a.prompts.iter().map(String::as_str).collect();
    let queries: Vec<f32> = super::search::embed_text_queries(&e, &prompts)?
        .into_iter()
        .flatten()
        .collect();
    let selection = super::selection(&a.sel, snap.schema())?;
    // Exact range search (every row at or above the threshold), or the exact top N.
    let req = SearchRequest {
        queries,
        k: a.top,
        threshold: a.threshold,
        selection,
    };
    let res = snap.search(&req)?;
    let rec = super::search::receipt(store, &snap, &req.selection, &res.stats);
    let mut rows = Rows::new(&["prompt", "id", "score", "source", "day", "uri"]);
    let mut hits: Vec<_> = res.hits.iter().flatten().collect();
    hits.sort_by(|x, y| y.score.total_cmp(&x.score).then_with(|| x.id.cmp(&y.id)));
    let mut per_partition: BTreeMap<(String, String), usize> = BTreeMap::new();
    for h in &hits {
        rows.rows.push(vec![
            a.prompts[h.query].clone().into(),
            h.id.clone().into(),
            json!(h.score),
            h.source.clone().into(),
            h.day.to_string().into(),
            h.uri.clone().into(),
        ]);
        *per_partition.entry((h.source.clone(), h.day.to_string())).or_default() += 1;
    }
    let file = std::fs::File::create(&a.out).with_context(|| a.out.display().to_string())?;
    rows.print(crate::args::Format::Csv, &mut std::io::BufWriter::new(file))?;
    println!(
        "{} hits for {} prompt(s) in {} partitions; scanned {} rows in {} of {} partitions ({} deleted and {} filtered rows excluded) → {}",
        hits.len(),
        prompts.len(),
        per_partition.len(),
        res.stats.rows_scanned,
        res.stats.partitions_scanned,
        res.stats.partitions_total,
        res.stats.rows_deleted,
        res.stats.rows_filtered,
        a.out.display()
    );
    for ((source, day), n) in &per_partition {
        println!("  {source} {day}: {n}");
    }
    super::search::print_outstanding(&rec);
    if let Some(r) = &a.receipt {
        std::fs::write(r, serde_json::to_string_pretty(&rec)?).with_context(|| r.display().to_string())?;
    }
    Ok(())
}

pub fn classify(store: &Path, a: ClassifyArgs) -> Result<()> {
    let snap = Store::open(store)?.snapshot(&a.c.collection)?;
    let e = collection_model(&snap, a.model.as_deref(), Towers::Text)?;
    let text = std::fs::read_to_string(&a.labels).with_context(|| a.labels.display().to_string())?;
    let labels: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    anyhow::ensure!(labels.len() >= 2, "{}: need at least two labels", a.labels.display());
    for t in &a.templates {
        anyhow::ensure!(t.contains("{}"), "template {t:?} has no {{}} for the label");
    }
    let templates: Vec<&str> = a.templates.iter().map(String::as_str).collect();
    let label_vecs = label_vectors(&e, &labels, &templates)?;
    let selection: Selection = super::selection(&a.sel, snap.schema())?;
    snap.check_sources(&selection)?;
    let mut rows = Rows::new(&["id", "label", "score", "margin", "second"]);
    for (id, v) in snap.rows_where(&selection) {
        let norm = vitrine_kernels::norm_f64(&v);
        let mut scored: Vec<(f64, usize)> = label_vecs
            .iter()
            .enumerate()
            .map(|(i, l)| (vitrine_kernels::dot_f64(&v, l) / norm, i))
            .collect();
        scored.sort_by(|x, y| y.0.total_cmp(&x.0));
        rows.rows.push(vec![
            id.into(),
            labels[scored[0].1].into(),
            json!(scored[0].0),
            json!(scored[0].0 - scored[1].0),
            labels[scored[1].1].into(),
        ]);
    }
    rows.print(a.format, &mut std::io::stdout().lock())?;
    Ok(())
}

/// One embedding per label: the normalised mean of its templates' embeddings ("{}" is the label).
pub fn label_vectors(e: &vitrine_engine::Embedder, labels: &[&str], templates: &[&str]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(labels.len());
    for l in labels {
        let prompts: Vec<String> = templates.iter().map(|t| t.replace("{}", l)).collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let embs = super::search::embed_text_queries(e, &refs)?;
        let mut mean = vec![0f32; e.dim()];
        for v in &embs {
            for (m, x) in mean.iter_mut().zip(v) {
                *m += x;
            }
        }
        let n = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        out.push(mean.into_iter().map(|x| x / n).collect());
    }
    Ok(out)
}
