//! `vitrine search`: exact top-k or threshold search with query vectors from a .npy file.

use crate::args::{Format, SearchArgs};
use crate::output::Rows;
use anyhow::{Context, Result};
use serde_json::json;
use std::path::Path;
use vitrine_engine::Towers;
use vitrine_store::{SearchRequest, Snapshot, Store};

/// Reads query vectors and checks their dimension against the collection.
pub fn load_queries(path: &Path, snap: &Snapshot) -> Result<Vec<f32>> {
    let npy = vitrine_import::npy::Npy::open(path)?;
    let dim = snap.schema().dim;
    anyhow::ensure!(
        npy.dim() == dim,
        "{}: queries have dimension {}, but collection {:?} has dimension {dim}",
        path.display(),
        npy.dim(),
        snap.name()
    );
    let mut q = Vec::new();
    npy.read_rows(0..npy.rows(), &mut q);
    Ok(q)
}

/// Embeds --text or --image queries with the collection's model (or --model, if the same weights).
fn embed_queries(a: &SearchArgs, snap: &Snapshot) -> Result<Vec<f32>> {
    let towers = if a.text.is_empty() { Towers::Image } else { Towers::Text };
    let e = collection_model(snap, a.model.as_deref(), towers)?;
    let rows = if !a.text.is_empty() {
        let texts: Vec<&str> = a.text.iter().map(String::as_str).collect();
        embed_text_queries(&e, &texts)?
    } else {
        e.embed_images(&a.image).into_iter().collect::<Result<Vec<_>, _>>()?
    };
    Ok(rows.into_iter().flatten().collect())
}

/// Embeds text queries, warning on stderr about any the model cannot read (wrong language,
/// unknown words).
pub fn embed_text_queries(e: &vitrine_engine::Embedder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    for t in texts {
        for w in e.query_warnings(t) {
            eprintln!("warning: {w}");
        }
    }
    Ok(e.embed_texts(texts)?)
}

/// What a search covered, for `--receipt` and the last record of JSON output: the store's scan
/// statistics, plus the inputs in the selection that are not rows (failed to index, or still
/// pending in an interrupted run), from the indexer's ledger.
pub fn receipt(
    store: &Path,
    snap: &Snapshot,
    sel: &vitrine_store::Selection,
    stats: &vitrine_store::SearchStats,
) -> serde_json::Value {
    use vitrine_engine::ledger::{Ledger, State, LEDGER_FILE};
    let mut r = serde_json::to_value(stats).unwrap_or_default();
    let ledger = Store::open(store)
        .map(|s| s.collection_dir(snap.name()).join(LEDGER_FILE))
        .ok()
        .and_then(|p| Ledger::open(&p).ok());
    let (mut failed, mut pending) = (Vec::new(), Vec::new());
    if let Some(l) = &ledger {
        // The uri map costs a pass over every row: build it only if some entry is in the selection.
        let rows = std::cell::OnceCell::new();
        let is_row = |uri: &str| rows.get_or_init(|| snap.values_by_uri(&[])).contains_key(uri);
        for e in l.outstanding(&sel.sources, sel.from, sel.to, is_row) {
            let v = json!({"uri": e.uri, "source": e.source, "day": e.day.map(|d| d.to_string()), "reason": e.reason});
            match e.state {
                State::Failed => failed.push(v),
                State::Pending => pending.push(v),
            }
        }
    }
    if let Some(m) = r.as_object_mut() {
        m.insert("inputs_failed".into(), json!(failed.len()));
        m.insert("inputs_pending".into(), json!(pending.len()));
        m.insert("failed".into(), json!(failed));
        m.insert("pending".into(), json!(pending));
        if sel.filter.is_some() && !(failed.is_empty() && pending.is_empty()) {
            m.insert(
                "note".into(),
                json!("failed and pending inputs have no field values, so --filter could not be applied to them"),
            );
        }
    }
    r
}

/// The model that filled `snap` (or `model`, if it has the same weights), ready to embed queries
/// (with only the tower they need).
pub fn collection_model(snap: &Snapshot, model: Option<&str>, towers: Towers) -> Result<vitrine_engine::Embedder> {
    use vitrine_engine::index::{check_collection_model, MODEL_KEY};
    let info = &snap.manifest().info;
    let model = match (model, info.get(MODEL_KEY).and_then(|v| v.as_str())) {
        (Some(m), _) => m.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => anyhow::bail!(
            "collection {:?} records no model (its vectors were imported); pass --model, or query with --vector-file",
            snap.name()
        ),
    };
    let e = vitrine_engine::Embedder::load_towers(&model, towers)?;
    check_collection_model(info, e.model().dir())?;
    anyhow::ensure!(
        e.dim() == snap.schema().dim,
        "model {model} embeds to {} dimensions, the collection has {}",
        e.dim(),
        snap.schema().dim
    );
    Ok(e)
}

pub fn run(store: &Path, a: SearchArgs) -> Result<()> {
    let snap = Store::open(store)?.snapshot(&a.c.collection)?;
    let queries = match &a.vector_file {
        Some(f) => load_queries(f, &snap)?,
        None if !a.like.is_empty() => {
            let mut q = Vec::new();
            for id in &a.like {
                let v = snap
                    .vector_of(id)
                    .with_context(|| format!("--like {id:?}: no row with that id in {:?}", a.c.collection))?;
                q.extend(v);
            }
            q
        }
        None => embed_queries(&a, &snap)?,
    };
    let selection = super::selection(&a.sel, snap.schema())?;
    let k = match (a.k, a.threshold) {
        (None, None) => Some(20),
        (k, _) => k,
    };
    let req = SearchRequest {
        queries,
        k,
        threshold: a.threshold,
        selection,
    };
    let res = snap
        .search(&req)
        .with_context(|| format!("searching {:?}", a.c.collection))?;
    let fields: Vec<String> = snap
        .schema()
        .fields
        .iter()
        .map(|f| f.name.clone())
        .filter(|f| f != vitrine_engine::index::THUMBNAIL_FIELD)
        .collect();
    let mut cols = vec!["query", "rank", "id", "score", "source", "day", "uri"];
    cols.extend(fields.iter().map(String::as_str));
    let mut rows = Rows::new(&cols);
    for hit in res.hits.iter().flatten() {
        let mut r = vec![
            hit.query.into(),
            hit.rank.into(),
            hit.id.clone().into(),
            json!(hit.score),
            hit.source.clone().into(),
            hit.day.to_string().into(),
            hit.uri.clone().into(),
        ];
        if !fields.is_empty() {
            let vals = snap.fields_at(hit.location);
            r.extend(fields.iter().map(|f| {
                vals.iter()
                    .find(|(n, _)| n == f)
                    .map_or(serde_json::Value::Null, |(_, v)| v.to_json())
            }));
        }
        rows.rows.push(r);
    }
    rows.print(a.format, &mut std::io::stdout().lock())?;
    let rec = receipt(store, &snap, &req.selection, &res.stats);
    if a.format == Format::Jsonl {
        println!("{}", json!({ "receipt": rec }));
    }
    if a.receipt || a.format == Format::Table {
        let s = &res.stats;
        eprintln!(
            "scanned {} rows in {} of {} partitions ({} segments); excluded {} deleted and {} filtered rows; {} hits",
            s.rows_scanned,
            s.partitions_scanned,
            s.partitions_total,
            s.segments_scanned,
            s.rows_deleted,
            s.rows_filtered,
            res.hits.iter().map(Vec::len).sum::<usize>()
        );
        print_outstanding(&rec);
    }
    if let Some(path) = &a.html {
        let labels: Vec<String> = if !a.text.is_empty() {
            a.text.clone()
        } else if !a.image.is_empty() {
            a.image.iter().map(|p| format!("like {}", p.display())).collect()
        } else if !a.like.is_empty() {
            a.like.iter().map(|id| format!("like {id}")).collect()
        } else {
            (0..res.hits.len()).map(|q| format!("query {q}")).collect()
        };
        crate::html::write_grid(path, &format!("vitrine: {}", a.c.collection), &labels, &res.hits, |h| {
            stored_thumbnail(&snap, h)
        })
        .with_context(|| path.display().to_string())?;
        eprintln!("wrote {}", path.display());
    }
    if a.receipt {
        eprintln!("{}", json!({ "receipt": rec }));
    }
    Ok(())
}

/// One line on stderr when the selection holds inputs that are not rows.
pub fn print_outstanding(rec: &serde_json::Value) {
    let (f, p) = (
        rec["inputs_failed"].as_u64().unwrap_or(0),
        rec["inputs_pending"].as_u64().unwrap_or(0),
    );
    if f + p > 0 {
        eprintln!(
            "not covered: {f} inputs in this selection failed to index and {p} are pending (not yet indexed); \
             --receipt lists them"
        );
    }
}

/// The thumbnail `vitrine index` kept for a hit, if any.
pub fn stored_thumbnail(snap: &Snapshot, h: &vitrine_store::Hit) -> Option<String> {
    snap.fields_at(h.location)
        .into_iter()
        .find(|(n, _)| n == vitrine_engine::index::THUMBNAIL_FIELD)
        .and_then(|(_, v)| match v {
            vitrine_store::Value::Str(s) => Some(s),
            _ => None,
        })
}
