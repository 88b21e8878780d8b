//! `vitrine dupes`: near-duplicate clusters, exactly.

use crate::args::{DupesArgs, Format};
use crate::output::Rows;
use anyhow::{Context, Result};
use serde_json::json;
use vitrine_engine::dupes::DupesRequest;
use vitrine_engine::Engine;

pub fn run(engine: &Engine, a: DupesArgs) -> Result<()> {
    let ans = engine
        .dupes(&DupesRequest {
            collection: a.c.collection.clone(),
            threshold: a.threshold,
            selection: super::selection(&a.sel)?,
            against: a.against.selection().as_ref().map(super::selection).transpose()?,
            across_sources: a.across_sources,
        })
        .with_context(|| format!("looking for duplicates in {:?}", a.c.collection))?;
    let mut rows;
    if a.pairs {
        rows = Rows::new(&["cluster", "a", "b", "score"]);
        for (k, c) in ans.clusters.iter().enumerate() {
            for p in &c.pairs {
                rows.rows.push(vec![
                    (k + 1).into(),
                    p.a.clone().into(),
                    p.b.clone().into(),
                    json!(p.score),
                ]);
            }
        }
    } else {
        // Each member with its best partner in the cluster, so a reviewer sees why it is there.
        rows = Rows::new(&["cluster", "size", "id", "source", "day", "uri", "nearest", "score"]);
        for (k, c) in ans.clusters.iter().enumerate() {
            // Pairs come best first: the first pair of a member is its best.
            let mut best: std::collections::HashMap<&str, (&str, f64)> = Default::default();
            for p in &c.pairs {
                best.entry(&p.a).or_insert((&p.b, p.score));
                best.entry(&p.b).or_insert((&p.a, p.score));
            }
            for m in &c.members {
                let (nearest, score) = best
                    .get(m.id.as_str())
                    .map_or((None, None), |(n, s)| (Some(*n), Some(*s)));
                rows.rows.push(vec![
                    (k + 1).into(),
                    c.members.len().into(),
                    m.id.clone().into(),
                    m.source.clone().into(),
                    m.day.to_string().into(),
                    m.uri.clone().into(),
                    nearest.into(),
                    score.map(|s| json!(s)).unwrap_or_default(),
                ]);
            }
        }
    }
    rows.print(a.format, &mut std::io::stdout().lock())?;
    let s = &ans.receipt.scan;
    let members: usize = ans.clusters.iter().map(|c| c.members.len()).sum();
    let pairs: usize = ans.clusters.iter().map(|c| c.pairs.len()).sum();
    let summary = format!(
        "{} clusters ({members} rows, {pairs} pairs{}) among {} rows, each compared with {} rows in {} of {} partitions ({} deleted and {} filtered rows excluded)",
        ans.clusters.len(),
        if a.across_sources {
            format!(" spanning sources, of {} pairs found", ans.pairs_found)
        } else {
            String::new()
        },
        ans.queries,
        s.rows_scanned,
        s.partitions_scanned,
        s.partitions_total,
        s.rows_deleted,
        s.rows_filtered,
    );
    if a.format == Format::Jsonl {
        say!("{}", json!({ "summary": summary, "receipt": ans.receipt }));
    } else {
        eprintln!("{summary}");
    }
    super::search::print_outstanding(&ans.receipt);
    if let Some(path) = &a.html {
        let shown: Vec<(String, String)> = ans
            .clusters
            .iter()
            .flat_map(|c| c.members.iter().map(|m| (m.id.clone(), m.uri.clone())))
            .collect();
        let thumbs = engine.thumbnails(&a.c.collection, &shown)?;
        let title = format!("vitrine: near-duplicates in {} at {}", a.c.collection, a.threshold);
        crate::html::write_clusters(path, &title, &ans.clusters, &thumbs)
            .with_context(|| path.display().to_string())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
