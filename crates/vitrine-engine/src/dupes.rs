//! Near-duplicate clusters: every pair of rows at or past a threshold, found exactly, grouped
//! into connected components.
//!
//! The same picture reused as a product photo and an avatar, or relisted under many ids, is a
//! pair of rows whose vectors nearly coincide. Finding every such pair is a self-join: each row
//! of the selection is a query of an exact range search against the selection (or against a
//! second selection). The backend answers a batch of rows at a time, through the same exact
//! range search users run (8-bit scan with a proven bound, then the f64 re-rank), so the pairs
//! are exactly those a brute-force f64 comparison finds, with no approximate index.
//!
//! Scores are symmetric (the f64 products of f32 values are exact and summed in index order
//! either way), so a self-join keeps each pair from the query with the smaller id, and a join
//! against a second selection keeps each unordered pair once.

use crate::backend::CollectionReader;
use crate::error::{Error, Result};
use crate::receipt::Receipt;
use crate::selection::SelectionSpec;
use crate::Engine;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use vitrine_store::{Day, Metric, SearchStats, Selection};

/// Rows per range-search batch: large enough that the scan of the selection is shared by many
/// queries, small enough that a batch's vectors and candidates stay in cache-sized buffers.
const QUERY_BATCH: usize = 256;

/// A near-duplicate search.
#[derive(Debug, Clone)]
pub struct DupesRequest {
    /// The collection.
    pub collection: String,
    /// A pair is a duplicate when it scores at least this (cosine, ip) or lies within this
    /// distance (l2).
    pub threshold: f64,
    /// The rows whose duplicates are sought.
    pub selection: SelectionSpec,
    /// Where to look for them (default: the same selection, a self-join).
    pub against: Option<SelectionSpec>,
    /// Keep only clusters whose members come from more than one source.
    pub across_sources: bool,
}

/// A row in a cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    /// Primary key.
    pub id: String,
    /// Partition source.
    pub source: String,
    /// Partition day.
    pub day: Day,
    /// Where the image lives.
    pub uri: String,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Two rows at or past the threshold (`a < b` by id) and their exact score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    /// The smaller id.
    pub a: String,
    /// The larger id.
    pub b: String,
    /// Similarity (cosine, ip) or distance (l2), in f64 as a search reports it.
    pub score: f64,
}

/// Rows joined by duplicate pairs (a connected component).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    /// Its members, the earliest first (timestamp, then id).
    pub members: Vec<Member>,
    /// The pairs inside it, best first (ties by ids).
    pub pairs: Vec<Pair>,
    /// The distinct sources of its members, sorted.
    pub sources: Vec<String>,
}

/// What a near-duplicate search found.
#[derive(Debug, Clone, Serialize)]
pub struct DupesAnswer {
    /// Clusters, largest first, then by their earliest member.
    pub clusters: Vec<Cluster>,
    /// Rows used as queries (the selection's live rows).
    pub queries: u64,
    /// Pairs found before `across_sources` kept some clusters only.
    pub pairs_found: usize,
    /// What the search side covered (scan statistics are summed over the query batches,
    /// except rows and partitions, which are those of one pass).
    pub receipt: Receipt,
}

/// Disjoint sets over row numbers, with path halving.
struct Components(Vec<usize>);

impl Components {
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Best first by the metric, then by ids.
fn pair_order(metric: Metric, x: &Pair, y: &Pair) -> std::cmp::Ordering {
    let by_score = if metric.higher_is_better() {
        y.score.total_cmp(&x.score)
    } else {
        x.score.total_cmp(&y.score)
    };
    by_score.then_with(|| x.a.cmp(&y.a)).then_with(|| x.b.cmp(&y.b))
}

impl Engine {
    /// Every pair of rows at or past the threshold, exactly, grouped into clusters.
    pub fn dupes(&self, req: &DupesRequest) -> Result<DupesAnswer> {
        if !req.threshold.is_finite() {
            return Err(Error::invalid(format!(
                "threshold {} is not a finite number",
                req.threshold
            )));
        }
        let reader = self.reader(&req.collection)?;
        let metric = reader.schema().metric;
        let queries_sel = self.resolve(reader.as_ref(), &req.selection)?;
        let self_join = req.against.is_none();
        let against = match &req.against {
            Some(spec) => self.resolve(reader.as_ref(), spec)?,
            None => queries_sel.clone(),
        };
        let mut join = Join {
            reader: reader.as_ref(),
            metric,
            threshold: req.threshold,
            against: &against,
            self_join,
            batch: Vec::with_capacity(QUERY_BATCH),
            vectors: Vec::new(),
            members: Vec::new(),
            index: HashMap::new(),
            pairs: HashMap::new(),
            stats: None,
            queries: 0,
        };
        reader.scan(&queries_sel, &[], true, &mut |r| {
            join.queries += 1;
            join.vectors.extend(r.vector.as_deref().unwrap_or_default());
            join.batch.push(Member {
                id: r.id,
                source: r.source,
                day: r.day,
                uri: r.uri,
                timestamp: r.timestamp,
            });
            if join.batch.len() == QUERY_BATCH {
                join.flush()?;
            }
            Ok(())
        })?;
        join.flush()?;
        let stats = join.stats.take().unwrap_or_else(|| SearchStats {
            partitions_total: reader.partitions().len(),
            ..Default::default()
        });
        let (queries, pairs_found) = (join.queries, join.pairs.len());
        let mut clusters = join.clusters();
        if req.across_sources {
            clusters.retain(|c| c.sources.len() > 1);
        }
        let side = self.side_dir(&req.collection);
        Ok(DupesAnswer {
            clusters,
            queries,
            pairs_found,
            receipt: Receipt::new(stats, reader.as_ref(), side.as_deref(), &against),
        })
    }
}

/// The state of a self-join as it streams through the query rows.
struct Join<'a> {
    reader: &'a dyn CollectionReader,
    metric: Metric,
    threshold: f64,
    against: &'a Selection,
    self_join: bool,
    /// The query rows waiting for a search, and their vectors (row-major).
    batch: Vec<Member>,
    vectors: Vec<f32>,
    /// Every row in some pair, numbered in the order first seen.
    members: Vec<Member>,
    index: HashMap<String, usize>,
    /// (smaller member, larger member by id) → score.
    pairs: HashMap<(usize, usize), f64>,
    stats: Option<SearchStats>,
    queries: u64,
}

impl Join<'_> {
    fn member(&mut self, m: &Member) -> usize {
        if let Some(&i) = self.index.get(&m.id) {
            return i;
        }
        self.members.push(m.clone());
        self.index.insert(m.id.clone(), self.members.len() - 1);
        self.members.len() - 1
    }

    /// Searches the waiting rows and records their pairs.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let out = self.reader.search(
            &vitrine_store::SearchRequest {
                queries: std::mem::take(&mut self.vectors),
                k: None,
                threshold: Some(self.threshold),
                selection: self.against.clone(),
                scan: crate::query::scan_mode(),
            },
            &[],
        )?;
        let batch = std::mem::take(&mut self.batch);
        for (q, hits) in batch.iter().zip(&out.hits) {
            for h in hits {
                // A row is not its own duplicate; a self-join sees every pair from both ends
                // and keeps the one from the smaller id.
                if h.id == q.id || (self.self_join && h.id < q.id) {
                    continue;
                }
                let hm = Member {
                    id: h.id.clone(),
                    source: h.source.clone(),
                    day: h.day,
                    uri: h.uri.clone(),
                    timestamp: h.timestamp,
                };
                let (a, b) = (self.member(q), self.member(&hm));
                let key = if self.members[a].id < self.members[b].id {
                    (a, b)
                } else {
                    (b, a)
                };
                self.pairs.insert(key, h.score);
            }
        }
        let s = out.stats;
        match &mut self.stats {
            None => self.stats = Some(s),
            Some(t) => {
                t.bytes_scanned += s.bytes_scanned;
                t.candidates_reranked += s.candidates_reranked;
                t.rows_by_code += s.rows_by_code;
                t.code_survivors += s.code_survivors;
                t.code_fallbacks += s.code_fallbacks;
            }
        }
        Ok(())
    }

    /// The pairs as connected components.
    fn clusters(&self) -> Vec<Cluster> {
        let mut sets = Components((0..self.members.len()).collect());
        for &(a, b) in self.pairs.keys() {
            sets.union(a, b);
        }
        let mut by_root: BTreeMap<usize, (Vec<usize>, Vec<Pair>)> = BTreeMap::new();
        for i in 0..self.members.len() {
            by_root.entry(sets.find(i)).or_default().0.push(i);
        }
        for (&(a, b), &score) in &self.pairs {
            by_root.entry(sets.find(a)).or_default().1.push(Pair {
                a: self.members[a].id.clone(),
                b: self.members[b].id.clone(),
                score,
            });
        }
        let mut clusters: Vec<Cluster> = by_root
            .into_values()
            .map(|(rows, mut pairs)| {
                let mut members: Vec<Member> = rows.into_iter().map(|i| self.members[i].clone()).collect();
                members.sort_by(|x, y| x.timestamp.cmp(&y.timestamp).then_with(|| x.id.cmp(&y.id)));
                pairs.sort_by(|x, y| pair_order(self.metric, x, y));
                let mut sources: Vec<String> = members.iter().map(|m| m.source.clone()).collect();
                sources.sort();
                sources.dedup();
                Cluster {
                    members,
                    pairs,
                    sources,
                }
            })
            .collect();
        clusters.sort_by(|x, y| {
            y.members
                .len()
                .cmp(&x.members.len())
                .then_with(|| x.members[0].timestamp.cmp(&y.members[0].timestamp))
                .then_with(|| x.members[0].id.cmp(&y.members[0].id))
        });
        clusters
    }
}
