//! `vitrine search`: exact top-k or threshold search by text, image, stored id or vectors.

use crate::args::{Format, SearchArgs};
use crate::output::Rows;
use anyhow::{Context, Result};
use serde_json::json;
use vitrine_engine::query::{Query, SearchRequest};
use vitrine_engine::{Engine, Receipt};

pub fn run(engine: &Engine, a: SearchArgs) -> Result<()> {
    if a.text.is_empty() && !(a.blend.add.is_empty() && a.blend.subtract.is_empty()) {
        anyhow::bail!("--add and --subtract blend prompts into --text queries: give --text too");
    }
    let query = if let Some(f) = &a.vector_file {
        Query::VectorFile(f.clone())
    } else if !a.like.is_empty() {
        Query::Like(a.like.clone())
    } else if !a.text.is_empty() {
        let add = a.blend.weighted()?;
        if add.is_empty() {
            Query::Text(a.text.clone())
        } else {
            Query::Blend {
                texts: a.text.clone(),
                add,
            }
        }
    } else {
        Query::ImageFiles(a.image.clone())
    };
    let req = SearchRequest {
        collection: a.c.collection.clone(),
        query,
        k: a.k,
        threshold: a.threshold,
        selection: super::selection(&a.sel)?,
        model: a.model.clone(),
        fields: (!a.fields.is_empty()).then(|| a.fields.clone()),
        negatives: a.neg.negatives(),
    };
    let ans = engine
        .search(&req)
        .with_context(|| format!("searching {:?}", a.c.collection))?;
    super::warn(&ans.warnings);
    let mut cols = vec!["query", "rank", "id", "score", "source", "day", "uri"];
    cols.extend(ans.fields.iter().map(String::as_str));
    let mut rows = Rows::new(&cols);
    for hit in ans.hits.iter().flatten() {
        let mut r = vec![
            hit.query.into(),
            hit.rank.into(),
            hit.id.clone().into(),
            json!(hit.score),
            hit.source.clone().into(),
            hit.day.to_string().into(),
            hit.uri.clone().into(),
        ];
        r.extend(hit.fields.0.iter().map(|(_, v)| v.to_json()));
        rows.rows.push(r);
    }
    rows.print(a.format, &mut std::io::stdout().lock())?;
    if a.format == Format::Jsonl {
        say!("{}", json!({ "receipt": ans.receipt }));
    }
    if a.receipt || a.format == Format::Table {
        let s = &ans.receipt.scan;
        eprintln!(
            "scanned {} rows in {} of {} partitions ({} segments); excluded {} deleted and {} filtered rows; {} hits",
            s.rows_scanned,
            s.partitions_scanned,
            s.partitions_total,
            s.segments_scanned,
            s.rows_deleted,
            s.rows_filtered,
            ans.hits.iter().map(Vec::len).sum::<usize>()
        );
        print_outstanding(&ans.receipt);
    }
    if let Some(path) = &a.html {
        let hits: Vec<(String, String)> = ans
            .hits
            .iter()
            .flatten()
            .map(|h| (h.id.clone(), h.uri.clone()))
            .collect();
        let thumbs = engine.thumbnails(&a.c.collection, &hits)?;
        crate::html::write_grid(
            path,
            &format!("vitrine: {}", a.c.collection),
            &ans.labels,
            &ans.hits,
            &thumbs,
        )
        .with_context(|| path.display().to_string())?;
        eprintln!("wrote {}", path.display());
    }
    if a.receipt {
        eprintln!("{}", json!({ "receipt": ans.receipt }));
    }
    Ok(())
}

/// A line on stderr when the selection holds inputs that are not rows, or coverage is unknown.
pub fn print_outstanding(rec: &Receipt) {
    if let Some(note) = rec
        .note
        .as_deref()
        .filter(|_| rec.coverage == vitrine_engine::Coverage::Unknown)
    {
        eprintln!("warning: {note}");
    }
    let (f, p) = (rec.inputs_failed, rec.inputs_pending);
    if f + p > 0 {
        eprintln!(
            "not covered: {f} inputs in this selection failed to index and {p} are pending (not yet indexed); \
             --receipt lists them"
        );
    }
}
