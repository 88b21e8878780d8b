//! Exact search over a snapshot: selection, scan, exact re-ranking.
//!
//! 1. **Select** — partitions outside the requested sources or days, or for which the filter is
//!    certainly false, are pruned from the manifest alone; no vector of theirs is read.
//! 2. **Mask** — within the remaining segments, rows that are deleted or fail the filter are
//!    excluded (a bitmap per segment, built in parallel).
//! 3. **Scan** — segments are cut into chunks that rayon spreads over all cores; each chunk is
//!    scored in blocks of rows against the whole query batch with [`vitrine_kernels::scores_block`],
//!    so a batch reads each vector from memory once. Every query keeps a [`Collector`] per thread.
//! 4. **Re-rank** — the surviving candidates (the f32 top k plus every row within twice the
//!    kernels' error bound of the k-th score) are re-scored in f64 and sorted by (score, id).
//!    This makes the answer equal to a brute-force float64 search with ties broken by id, at any k.

use crate::deletes::Bitmap;
use crate::error::{invalid, Result};
use crate::schema::Metric;
use crate::segment::Segment;
use crate::selection::Selection;
use crate::Day;
use rayon::prelude::*;
use vitrine_kernels::{dot_error_bound, Collector};

/// A search: one query or a batch, top k or everything above a threshold.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// Queries, row-major (`nq × dim`).
    pub queries: Vec<f32>,
    /// Results per query. With a threshold, an optional cap; without, required.
    pub k: Option<usize>,
    /// Range search: every row scoring at least this (cosine, ip) or at most this distance (l2).
    pub threshold: Option<f64>,
    /// Which rows.
    pub selection: Selection,
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Index of the query in the batch.
    pub query: usize,
    /// 1-based rank.
    pub rank: usize,
    /// Primary key.
    pub id: String,
    /// Similarity (cosine, ip) or Euclidean distance (l2), computed in f64.
    pub score: f64,
    /// Partition source.
    pub source: String,
    /// Partition day.
    pub day: Day,
    /// URI.
    pub uri: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// Where the row lives: (segment id, row) — for fetching more fields.
    pub location: (u64, u32),
}

/// What a search covered: the "recall receipt".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SearchStats {
    /// Partitions in the collection.
    pub partitions_total: usize,
    /// Partitions whose rows were read.
    pub partitions_scanned: usize,
    /// Segments read.
    pub segments_scanned: usize,
    /// Rows scored.
    pub rows_scanned: u64,
    /// Rows skipped because they are deleted.
    pub rows_deleted: u64,
    /// Rows skipped by the filter.
    pub rows_filtered: u64,
    /// Vector bytes read.
    pub bytes_scanned: u64,
    /// Candidates re-ranked in f64 (all queries).
    pub candidates_reranked: u64,
}

/// Hits per query plus the receipt.
#[derive(Debug, Clone)]
pub struct SearchResults {
    /// `hits[q]` for query `q`, best first.
    pub hits: Vec<Vec<Hit>>,
    /// What was covered.
    pub stats: SearchStats,
}

/// A segment as the searcher sees it.
pub(crate) struct SegRef<'a> {
    pub id: u64,
    pub seg: &'a Segment,
    pub deletes: Option<&'a Bitmap>,
}

const CHUNK_ROWS: usize = 16_384;
const BLOCK_ROWS: usize = 128;

pub(crate) fn search(
    metric: Metric,
    dim: usize,
    segs: &[SegRef<'_>],
    partitions_total: usize,
    req: &SearchRequest,
) -> Result<SearchResults> {
    let nq = req.queries.len() / dim;
    if nq == 0 || !req.queries.len().is_multiple_of(dim) {
        return Err(invalid(format!(
            "query has {} values, which is not a positive multiple of the collection's dimension {dim}",
            req.queries.len()
        )));
    }
    if req.k.is_none() && req.threshold.is_none() {
        return Err(invalid("a search needs k or a threshold"));
    }
    if req.threshold.is_some_and(|t| !t.is_finite()) {
        return Err(invalid("threshold must be a finite number"));
    }
    if req.k == Some(0) {
        return Err(invalid("k must be at least 1"));
    }
    if let (Metric::Cosine, Some(t)) = (metric, req.threshold) {
        if t > 1.0 {
            return Err(invalid(format!(
                "threshold {t} can select nothing: cosine scores are at most 1"
            )));
        }
    }
    let mut qnorm = Vec::with_capacity(nq);
    for (i, q) in req.queries.chunks_exact(dim).enumerate() {
        if let Some(j) = q.iter().position(|v| !v.is_finite()) {
            return Err(invalid(format!(
                "query {i}: value {j} is {} (queries must be finite)",
                q[j]
            )));
        }
        let n = vitrine_kernels::norm_f64(q);
        crate::validate::check_vector(metric, q).map_err(|e| invalid(format!("query {i}: {e}")))?;
        qnorm.push(n);
    }
    // The kernels see unit queries under cosine, so every score is a cosine up to rounding.
    let kq: Vec<f32> = match metric {
        Metric::Cosine => req
            .queries
            .chunks_exact(dim)
            .zip(&qnorm)
            .flat_map(|(q, n)| q.iter().map(move |v| (*v as f64 / n) as f32))
            .collect(),
        _ => req.queries.clone(),
    };

    // 1–2. Select partitions and mask rows.
    let selected: Vec<&SegRef<'_>> = segs
        .iter()
        .filter(|s| {
            req.selection
                .includes_partition(&s.seg.footer().source, s.seg.footer().day)
        })
        .collect();
    let masks: Vec<(Option<Bitmap>, u64, u64)> = selected
        .par_iter()
        .map(|s| req.selection.excluded(s.seg, s.deletes))
        .collect();
    let max_norm = selected
        .iter()
        .map(|s| s.seg.footer().max_norm as f64)
        .fold(0.0, f64::max);
    let mut stats = SearchStats {
        partitions_total,
        segments_scanned: selected.len(),
        ..Default::default()
    };
    let selected_rows: usize = selected.iter().map(|s| s.seg.rows()).sum();
    // No query can return more rows than the selection holds; this also bounds the buffers.
    let k = req.k.map(|k| k.min(selected_rows));
    let mut parts: Vec<(&str, Day)> = selected
        .iter()
        .map(|s| (s.seg.footer().source.as_str(), s.seg.footer().day))
        .collect();
    parts.sort();
    parts.dedup();
    stats.partitions_scanned = parts.len();
    for (s, m) in selected.iter().zip(&masks) {
        stats.rows_deleted += m.1;
        stats.rows_filtered += m.2;
        stats.rows_scanned += s.seg.rows() as u64 - m.1 - m.2;
        stats.bytes_scanned += (s.seg.rows() * dim * 4) as u64;
    }

    // The keys collectors compare are "higher is better": cosine, ip, or minus squared distance.
    let u = f32::EPSILON as f64 / 2.0;
    let eps: Vec<f64> = qnorm
        .iter()
        .map(|&qn| match metric {
            Metric::Cosine => dot_error_bound(dim, 1.0, 1.0) + 8.0 * u,
            Metric::Ip => dot_error_bound(dim, qn, max_norm),
            Metric::L2 => 2.0 * dot_error_bound(dim, qn, max_norm) + 8.0 * u * (max_norm * max_norm + qn * qn),
        })
        .collect();
    let threshold_key = req.threshold.map(|t| match metric {
        Metric::L2 => -(t.max(0.0) * t.max(0.0)),
        _ => t,
    });
    let new_collectors = || -> Vec<Collector> {
        (0..nq)
            .map(|q| match threshold_key {
                Some(t) => Collector::at_least((t - eps[q]) as f32),
                None => Collector::top_k(k.unwrap_or(0), (2.0 * eps[q]) as f32),
            })
            .collect()
    };

    // 3. Scan.
    let tasks: Vec<(usize, usize, usize)> = selected
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            (0..s.seg.rows())
                .step_by(CHUNK_ROWS)
                .map(move |a| (i, a, (a + CHUNK_ROWS).min(s.seg.rows())))
        })
        .collect();
    let qn2: Vec<f32> = qnorm.iter().map(|n| (n * n) as f32).collect();
    let collectors = tasks
        .par_iter()
        .fold(new_collectors, |mut cols, &(si, a, b)| {
            let s = selected[si];
            let mask = masks[si].0.as_ref();
            let vecs = s.seg.vectors();
            let norms = s.seg.norms();
            let mut buf = vec![0f32; nq * BLOCK_ROWS];
            let mut r0 = a;
            while r0 < b {
                let r1 = (r0 + BLOCK_ROWS).min(b);
                let nb = r1 - r0;
                vitrine_kernels::scores_block(&kq, &vecs[r0 * dim..r1 * dim], dim, &mut buf[..nq * nb]);
                for (q, col) in cols.iter_mut().enumerate() {
                    let row_scores = &buf[q * nb..(q + 1) * nb];
                    for (j, &s32) in row_scores.iter().enumerate() {
                        let r = r0 + j;
                        if mask.is_some_and(|m| m.contains(r)) {
                            continue;
                        }
                        let key = match metric {
                            Metric::Cosine => s32 / norms[r],
                            Metric::Ip => s32,
                            Metric::L2 => 2.0 * s32 - norms[r] * norms[r] - qn2[q],
                        };
                        if key >= col.floor() {
                            col.push(key, si as u32, r as u32);
                        }
                    }
                }
                r0 = r1;
            }
            cols
        })
        .reduce(new_collectors, |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
            a
        });

    // 4. Re-rank exactly.
    let mut hits = Vec::with_capacity(nq);
    for (q, col) in collectors.into_iter().enumerate() {
        let query = &req.queries[q * dim..(q + 1) * dim];
        let cands = col.into_candidates();
        stats.candidates_reranked += cands.len() as u64;
        let mut scored: Vec<(f64, &str, usize, usize)> = cands
            .iter()
            .map(|c| {
                let seg = selected[c.seg as usize].seg;
                let x = seg.vector(c.row as usize);
                let key = match metric {
                    Metric::Cosine => vitrine_kernels::dot_f64(query, x) / (qnorm[q] * vitrine_kernels::norm_f64(x)),
                    Metric::Ip => vitrine_kernels::dot_f64(query, x),
                    Metric::L2 => -vitrine_kernels::l2sq_f64(query, x),
                };
                (key, seg.id(c.row as usize), c.seg as usize, c.row as usize)
            })
            .filter(|(key, ..)| match (req.threshold, metric) {
                (None, _) => true,
                // Compare the reported distance itself, so a row at exactly `t` is included.
                (Some(t), Metric::L2) => (-key).sqrt() <= t,
                (Some(t), _) => *key >= t,
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        if let Some(k) = k {
            scored.truncate(k);
        }
        hits.push(
            scored
                .into_iter()
                .enumerate()
                .map(|(i, (key, id, si, r))| {
                    let s = selected[si];
                    Hit {
                        query: q,
                        rank: i + 1,
                        id: id.to_string(),
                        score: if metric == Metric::L2 { (-key).sqrt() } else { key },
                        source: s.seg.footer().source.clone(),
                        day: s.seg.footer().day,
                        uri: s.seg.uri(r).to_string(),
                        timestamp: s.seg.timestamp(r),
                        location: (s.id, r as u32),
                    }
                })
                .collect(),
        );
    }
    Ok(SearchResults { hits, stats })
}
