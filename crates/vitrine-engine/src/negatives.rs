//! Negative prompts: "a photo of a handgun", but not "a toy gun", not "a drawing".
//!
//! The rule, exact and the same for search and sweep: a row is kept when its score for what was
//! asked beats its best score against the negative prompts by more than a margin (default 0):
//! `score − max(negative scores) > margin` for cosine and ip, and for l2, where lower is
//! better, `min(negative distances) − distance > margin`. With margin 0 this is what zero-shot
//! classification among the prompts would say: the row looks more like the positive than like
//! any negative. The score a hit reports stays its positive score, so thresholds (and their
//! calibration) keep their meaning; the negatives only remove rows.
//!
//! Every score is computed the way the exact re-rank computes it (f64 from the stored f32
//! vector), so the rule is decided exactly. A top-k with negatives deepens: it asks for more
//! rows until k survive or the selection is exhausted, so the answer is the top k of the rows
//! the rule keeps, never fewer because some were removed.

use crate::backend::{CollectionReader, Hit};
use crate::embedder::Embedder;
use crate::error::{Error, Result};
use std::collections::HashMap;
use vitrine_kernels::{dot_f64, l2sq_f64, norm_f64};
use vitrine_store::Metric;

/// Negative prompts of a search or sweep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Negatives {
    /// Texts, embedded with the collection's model (none: nothing is removed).
    pub prompts: Vec<String>,
    /// A row is kept when its score beats its best negative score by more than this.
    pub margin: f64,
}

/// The negatives as vectors, ready to judge rows.
pub(crate) struct Veto {
    vectors: Vec<Vec<f32>>,
    norms: Vec<f64>,
    metric: Metric,
    margin: f64,
}

impl Veto {
    /// The negatives embedded with `e`, and the embedding's warnings; `None` without any.
    pub(crate) fn new(e: &Embedder, metric: Metric, negatives: &Negatives) -> Result<Option<(Veto, Vec<String>)>> {
        if negatives.prompts.is_empty() {
            return Ok(None);
        }
        if !negatives.margin.is_finite() {
            return Err(Error::invalid(format!(
                "negative margin {} is not a finite number",
                negatives.margin
            )));
        }
        let refs: Vec<&str> = negatives.prompts.iter().map(String::as_str).collect();
        let (vectors, warnings) = crate::query::embed_texts(e, &refs)?;
        Ok(Some((Veto::from_vectors(vectors, metric, negatives.margin), warnings)))
    }

    /// Negatives already embedded (a watchlist keeps its vectors).
    pub(crate) fn from_vectors(vectors: Vec<Vec<f32>>, metric: Metric, margin: f64) -> Veto {
        let norms = vectors.iter().map(|v| norm_f64(v)).collect();
        Veto {
            vectors,
            norms,
            metric,
            margin,
        }
    }

    /// Whether a row with vector `x` and positive score `score` stays.
    pub(crate) fn keeps(&self, score: f64, x: &[f32]) -> bool {
        let scores = self.vectors.iter().zip(&self.norms).map(|(n, nn)| match self.metric {
            Metric::Cosine => dot_f64(n, x) / (nn * norm_f64(x)),
            Metric::Ip => dot_f64(n, x),
            Metric::L2 => l2sq_f64(n, x).sqrt(),
        });
        if self.metric.higher_is_better() {
            score - scores.fold(f64::NEG_INFINITY, f64::max) > self.margin
        } else {
            scores.fold(f64::INFINITY, f64::min) - score > self.margin
        }
    }

    /// The hits of each query that the rule keeps, in order, ranks renumbered; and how many
    /// were removed.
    pub(crate) fn filter(&self, reader: &dyn CollectionReader, hits: Vec<Vec<Hit>>) -> Result<(Vec<Vec<Hit>>, u64)> {
        let mut ids: Vec<String> = hits.iter().flatten().map(|h| h.id.clone()).collect();
        ids.sort();
        ids.dedup();
        let vectors: HashMap<String, Vec<f32>> = ids
            .iter()
            .zip(reader.get(&ids, &[], true)?)
            .filter_map(|(id, r)| Some((id.clone(), r?.vector?)))
            .collect();
        let mut removed = 0;
        let kept = hits
            .into_iter()
            .map(|q| {
                let mut kept: Vec<Hit> = Vec::with_capacity(q.len());
                for mut h in q {
                    // A row deleted since the search answered is gone either way.
                    if vectors.get(&h.id).is_some_and(|x| self.keeps(h.score, x)) {
                        h.rank = kept.len() + 1;
                        kept.push(h);
                    } else {
                        removed += 1;
                    }
                }
                kept
            })
            .collect();
        Ok((kept, removed))
    }
}

/// A top-k (or capped range) search with negatives: runs `search` with a growing k until each
/// query keeps `k` rows or its rows run out (fewer hits than asked), then cuts to `k`.
pub(crate) fn deepen(
    veto: &Veto,
    reader: &dyn CollectionReader,
    k: usize,
    search: &mut dyn FnMut(usize) -> Result<crate::backend::SearchOutput>,
) -> Result<(crate::backend::SearchOutput, u64)> {
    let mut ask = k;
    loop {
        let out = search(ask)?;
        let exhausted: Vec<bool> = out.hits.iter().map(|h| h.len() < ask).collect();
        let (mut kept, removed) = veto.filter(reader, out.hits)?;
        if kept.iter().zip(&exhausted).all(|(h, &done)| done || h.len() >= k) {
            for h in &mut kept {
                h.truncate(k);
            }
            return Ok((
                crate::backend::SearchOutput {
                    hits: kept,
                    stats: out.stats,
                },
                removed,
            ));
        }
        ask = ask.saturating_mul(4);
    }
}
