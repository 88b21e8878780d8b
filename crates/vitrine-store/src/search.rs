//! Exact search over a snapshot: selection, scan, exact re-ranking.
//!
//! 1. **Select** — partitions outside the requested sources or days, or for which the filter is
//!    certainly false, are pruned from the manifest alone; no vector of theirs is read.
//! 2. **Mask** — within the remaining segments, rows that are deleted or fail the filter are
//!    excluded (a bitmap per segment, built in parallel).
//! 3. **Scan** — segments are cut into chunks that rayon spreads over all cores; each chunk is
//!    scored in blocks of rows against the whole query batch, so a batch reads each row from
//!    memory once. Segments with 8-bit scan codes are read through them (a quarter of the bytes;
//!    [`vitrine_kernels::codes`]): each row gets an interval proven to hold its exact score. Older
//!    segments, and chunks where the codes stop pruning, are read as f32 with
//!    [`vitrine_kernels::scores_block`], whose interval is the f32 score ± its rounding bound.
//!    Every query keeps a [`Collector`] per thread: every row whose upper bound reaches the k-th
//!    best lower bound (or the threshold).
//! 4. **Re-rank** — the surviving candidates are re-scored in f64 from their f32 vectors and
//!    sorted by (score, id). This makes the answer equal to a brute-force float64 search with
//!    ties broken by id, at any k, whichever way the rows were scanned.

use crate::deletes::Bitmap;
use crate::error::{invalid, Result};
use crate::schema::Metric;
use crate::segment::Segment;
use crate::selection::Selection;
use crate::Day;
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use vitrine_kernels::codes::{
    codes_block_then, key_interval, plane_dot, reaching, upper_bounds, KeyKind, QueryPlanes, QueryTerms, RowBlock,
};
use vitrine_kernels::{dot_error_bound, Candidate, Collector};

/// How a search reads vectors. Either way the answer is the same; only the bytes read differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScanMode {
    /// Through the 8-bit scan codes where a segment has them, f32 elsewhere.
    #[default]
    Codes,
    /// Every row as f32 (the reference, and for benchmarks).
    Float,
}

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
    /// How to read them.
    pub scan: ScanMode,
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
    /// Rows read through their 8-bit scan codes rather than as f32 (deleted and filtered rows
    /// included: they are read, then masked).
    pub rows_by_code: u64,
    /// Rows whose code interval could still reach the answer, so they were re-scored from their
    /// f32 vectors (all queries; the f64 re-rank then takes those f32 cannot rule out).
    pub code_survivors: u64,
    /// Chunks of rows whose codes stopped pruning, so they (and the rest of their segment)
    /// were read as f32 instead.
    pub code_fallbacks: u64,
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
/// Batches of more queries than this scan with one plane per query and refine survivors: one
/// or two queries wait on memory either way; from four on, the arithmetic shows (1M × 512,
/// medians in ms, two planes in the kernel → one and refinement: 4 queries 25–32 → 22, 8
/// queries 40–56 → 31–33, 16 queries 64–72 → 50–53).
const REFINE_FROM: usize = 2;

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
            .map(|_| match threshold_key {
                Some(t) => Collector::at_least(t as f32),
                None => Collector::top_k(k.unwrap_or(0)),
            })
            .collect()
    };

    // The 8-bit path: the queries as two integer planes each (two bound ~128× tighter than
    // one), and per (segment, query) what the bound needs. A batch is bound by arithmetic, so
    // its scan reads the first planes only and refines the rows that pass with the second.
    let use_codes = req.scan == ScanMode::Codes && selected.iter().any(|s| s.seg.codes().is_some());
    let planes = use_codes.then(|| QueryPlanes::new(&kq, dim, 2));
    let first = planes
        .as_ref()
        .filter(|_| nq > REFINE_FROM)
        .map(QueryPlanes::first_planes);
    let per_seg: Vec<Vec<(QueryTerms, QueryTerms)>> = match &planes {
        None => Vec::new(),
        Some(qp) => selected
            .iter()
            .map(|s| match s.seg.codes() {
                None => Vec::new(),
                Some(c) => kq
                    .chunks_exact(dim)
                    .enumerate()
                    .map(|(q, query)| (qp.terms(q, query, c.mean), qp.terms_first(q, query, c.mean)))
                    .collect(),
            })
            .collect(),
    };
    let fell_back: Vec<AtomicBool> = selected.iter().map(|_| AtomicBool::new(false)).collect();
    let (by_code, fallbacks, float_rows) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));

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
    let eps32: Vec<f32> = eps.iter().map(|e| *e as f32).collect();
    let kinds: Vec<KeyKind> = qn2
        .iter()
        .map(|&q2| match metric {
            Metric::Ip => KeyKind::Dot,
            Metric::Cosine => KeyKind::Cosine,
            Metric::L2 => KeyKind::NegL2(q2),
        })
        .collect();
    let collectors = tasks
        .par_iter()
        .fold(new_collectors, |mut cols, &(si, a, b)| {
            let s = selected[si];
            let mask = masks[si].0.as_ref();
            let codes = s.seg.codes().filter(|_| !fell_back[si].load(Ordering::Relaxed));
            if let (Some(c), Some(qp)) = (codes, &planes) {
                let scan = CodeScan {
                    kinds: &kinds,
                    qp,
                    first: first.as_deref(),
                    terms: &per_seg[si],
                    codes: c,
                    norms: s.seg.norms(),
                    mask,
                    seg: si as u32,
                };
                let late = scan.run(&mut cols, a, b);
                by_code.fetch_add((b - a) as u64, Ordering::Relaxed);
                // Pruning failed (an eighth of the rows' intervals still reach the answer once
                // the floor has settled, in the chunk's second half): f32 intervals are ~1000×
                // narrower, so read the rest of this segment as f32. What this chunk pushed
                // stays: its intervals are true, only wide.
                let half = (b - a) / 2;
                if half >= BLOCK_ROWS && late as usize > (half * nq / 8).max(8 * nq * k.unwrap_or(0)) {
                    fallbacks.fetch_add(1, Ordering::Relaxed);
                    fell_back[si].store(true, Ordering::Relaxed);
                }
                return cols;
            }
            float_rows.fetch_add((b - a) as u64, Ordering::Relaxed);
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
                    let e = eps32[q];
                    for (j, &s32) in row_scores.iter().enumerate() {
                        let r = r0 + j;
                        let key = match metric {
                            Metric::Cosine => s32 / norms[r],
                            Metric::Ip => s32,
                            Metric::L2 => 2.0 * s32 - norms[r] * norms[r] - qn2[q],
                        };
                        if key + e >= col.floor() && !mask.is_some_and(|m| m.contains(r)) {
                            col.push(key + e, key - e, si as u32, r as u32);
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
    stats.rows_by_code = by_code.into_inner();
    stats.code_fallbacks = fallbacks.into_inner();
    let code_bytes = planes.as_ref().map_or(0, |p| p.stride as u64 + 12);
    stats.bytes_scanned = stats.rows_by_code * code_bytes + float_rows.into_inner() * (dim as u64 * 4);

    // 4. Re-rank exactly, each query on its own thread. Rows that came through the codes carry
    // intervals about a thousand times wider than f32's: re-score them from their f32 vectors
    // first (± the kernels' rounding bound), so that only rows f32 cannot rule out reach f64.
    let candidates: Vec<Vec<Candidate>> = collectors.into_par_iter().map(Collector::into_candidates).collect();
    if use_codes {
        prefetch_candidates(&selected, &candidates);
    }
    let ranked: Vec<(Vec<Hit>, u64, u64)> = candidates
        .into_par_iter()
        .enumerate()
        .map(|(q, mut cands)| {
            let query = &req.queries[q * dim..(q + 1) * dim];
            let survivors = cands.len() as u64;
            if use_codes {
                let mut refine = new_collectors().swap_remove(q);
                let e = eps32[q];
                for c in &cands {
                    let seg = selected[c.seg as usize].seg;
                    let r = c.row as usize;
                    let s32 = vitrine_kernels::dot(&kq[q * dim..(q + 1) * dim], seg.vector(r));
                    let n = seg.norms()[r];
                    let key = match metric {
                        Metric::Cosine => s32 / n,
                        Metric::Ip => s32,
                        Metric::L2 => 2.0 * s32 - n * n - qn2[q],
                    };
                    refine.push(key + e, key - e, c.seg, c.row);
                }
                cands = refine.into_candidates();
            }
            let reranked = cands.len() as u64;
            let mut scored: Vec<(f64, &str, usize, usize)> = cands
                .iter()
                .map(|c| {
                    let seg = selected[c.seg as usize].seg;
                    let x = seg.vector(c.row as usize);
                    let key = match metric {
                        Metric::Cosine => {
                            vitrine_kernels::dot_f64(query, x) / (qnorm[q] * vitrine_kernels::norm_f64(x))
                        }
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
            let hits = scored
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
                .collect();
            (hits, survivors, reranked)
        })
        .collect();
    let mut hits = Vec::with_capacity(nq);
    for (h, survivors, reranked) in ranked {
        hits.push(h);
        if use_codes {
            stats.code_survivors += survivors;
        }
        stats.candidates_reranked += reranked;
    }
    Ok(SearchResults { hits, stats })
}

/// Rows re-scored from f32 after an 8-bit scan are scattered; where the page cache no longer
/// holds them (a store larger than memory keeps its codes cached, not its f32 copy) each is a
/// read from disk, and reading them one fault at a time waits for each in turn. Asking for all
/// of them first lets the disk serve them together. One `madvise` costs a couple of
/// microseconds even when the page is cached (65k candidates of a 64-query batch: 160 ms), so
/// a sample of the candidates is checked with `mincore` first, and a warm store pays only that.
fn prefetch_candidates(selected: &[&SegRef<'_>], candidates: &[Vec<Candidate>]) {
    let mut rows: Vec<(u32, u32)> = candidates.iter().flatten().map(|c| (c.seg, c.row)).collect();
    if rows.is_empty() {
        return;
    }
    let step = rows.len().div_ceil(16);
    let warm = rows
        .iter()
        .step_by(step)
        .all(|&(s, r)| selected[s as usize].seg.vector_cached(r as usize));
    if warm {
        return;
    }
    rows.par_sort_unstable();
    rows.dedup();
    rows.par_chunks(1024).for_each(|chunk| {
        for &(s, r) in chunk {
            selected[s as usize].seg.prefetch_vector(r as usize);
        }
    });
}

/// One chunk of one segment read through its codes.
struct CodeScan<'a> {
    kinds: &'a [KeyKind],
    qp: &'a QueryPlanes,
    /// Each query's first plane, when the scan reads those alone ([`QueryPlanes::first_planes`]).
    first: Option<&'a [i8]>,
    /// Per query: the terms of both planes, and of the first alone.
    terms: &'a [(QueryTerms, QueryTerms)],
    codes: crate::segment::SegmentCodes<'a>,
    norms: &'a [f32],
    mask: Option<&'a Bitmap>,
    seg: u32,
}

impl CodeScan<'_> {
    /// Pushes every row of `a..b` whose upper bound reaches its collector's floor; returns how
    /// many pushes the second half of the range took (all queries): by then the floors have
    /// settled, so that is the pass rate the bound achieves.
    ///
    /// With both planes in the kernel, a row's bound comes straight from it. With the first
    /// planes only, a row whose one-plane bound reaches the floor gets its second plane's
    /// product computed on its own (its codes are still in L1) and is pushed with the two-plane
    /// interval: about 10× fewer rows for the collectors and the f32 re-score than one plane's.
    fn run(&self, cols: &mut [Collector], a: usize, b: usize) -> u64 {
        let qp = self.qp;
        let stride = self.codes.stride;
        let (kplanes, np) = match self.first {
            Some(f) => (f, 1),
            None => (&qp.values[..], qp.planes),
        };
        let nqp = cols.len() * np;
        let mut raw = vec![0i32; nqp * BLOCK_ROWS];
        let mut hi = vec![0f32; BLOCK_ROWS];
        let mut reach = Vec::with_capacity(BLOCK_ROWS);
        let mut pushed = 0u64;
        let mut r0 = a;
        while r0 < b {
            let r1 = (r0 + BLOCK_ROWS).min(b);
            let nb = r1 - r0;
            let block = &self.codes.codes[r0 * stride..r1 * stride];
            let next = &self.codes.codes[r1 * stride..(r1 + BLOCK_ROWS).min(b) * stride];
            codes_block_then(kplanes, block, next, stride, &mut raw[..nqp * nb]);
            let rows = RowBlock {
                scale: &self.codes.scale[r0..r1],
                resid: &self.codes.resid[r0..r1],
                err: &self.codes.err[r0..r1],
                norms: &self.norms[r0..r1],
            };
            let late = r0 >= a + (b - a) / 2;
            for (q, col) in cols.iter_mut().enumerate() {
                let raw1 = &raw[q * np * nb..][..nb];
                let raw2 = (np > 1).then(|| &raw[(q * np + 1) * nb..][..nb]);
                let kind = self.kinds[q];
                let (t, t_first) = &self.terms[q];
                let scan_terms = if self.first.is_some() { t_first } else { t };
                upper_bounds(kind, scan_terms, raw1, raw2, &rows, &mut hi[..nb]);
                // Rows whose bound reaches the floor (an overflowed, NaN, bound included).
                reach.clear();
                reaching(&hi[..nb], col.floor(), &mut reach);
                for &j in &reach {
                    let j = j as usize;
                    if self.mask.is_some_and(|m| m.contains(r0 + j)) {
                        continue;
                    }
                    let r2 = match raw2 {
                        Some(r) => r[j],
                        None if qp.planes > 1 => {
                            let plane = &qp.values[(q * qp.planes + 1) * stride..][..stride];
                            plane_dot(plane, &block[j * stride..][..stride])
                        }
                        None => t.o2,
                    };
                    let (upper, lower) = key_interval(kind, t, raw1[j], r2, &rows, j);
                    // A NaN bound is kept (the collector treats it as unbounded).
                    if upper >= col.floor() || upper.is_nan() {
                        pushed += u64::from(late);
                        col.push(upper, lower, self.seg, (r0 + j) as u32);
                    }
                }
            }
            r0 = r1;
        }
        pushed
    }
}
