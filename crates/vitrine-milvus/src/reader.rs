//! Reading a collection on Milvus: exact search, rows by id, scans.
//!
//! **Exactness.** Milvus scores in float32 with its own summation order and breaks ties its own
//! way; the embedded store answers as a float64 brute force with ties broken by id. A search
//! here asks Milvus (FLAT: every row is scored) for the best rows with their vectors, re-scores
//! them in float64 as the store does, and asks for more, a page at a time in descending score
//! bands, until no row left out could still enter the answer: for top-k, until the k-th exact
//! score beats the worst score Milvus returned by more than float32's error; for a threshold,
//! until a page comes back short. The answer is then the store's: same ids, same order, same
//! scores.

use crate::expr;
use crate::meta::{self, CollectionDoc};
use crate::names;
use crate::{metric_type, Remote, MAX_LIMIT};
use milvus::v2::prelude::*;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use vitrine_engine::backend::{CollectionReader, SearchOutput};
use vitrine_engine::{
    Day, Error, ErrorKind, FieldType, Fields, Hit, Metric, PartitionInfo, Record, Result, Schema, SearchStats,
    Selection, Value,
};
use vitrine_store::SearchRequest;

/// A view of one collection on Milvus, as of when it was opened.
pub struct MilvusReader {
    remote: Arc<Remote>,
    doc: CollectionDoc,
    partitions: Vec<PartitionInfo>,
    rows: u64,
}

/// Columns of a query or search answer, by name.
pub(crate) struct Columns<'a> {
    pub ids: &'a [String],
    uris: &'a [String],
    sources: &'a [String],
    days: &'a [String],
    timestamps: &'a [i64],
    fields: Option<&'a [serde_json::Value]>,
    vectors: Option<&'a [Vec<f32>]>,
}

impl<'a> Columns<'a> {
    pub(crate) fn read(r: &Remote, get: impl Fn(&str) -> Option<&'a FieldData>) -> Result<Columns<'a>> {
        if get("id").is_none() {
            // An empty answer comes without columns.
            return Ok(Columns {
                ids: &[],
                uris: &[],
                sources: &[],
                days: &[],
                timestamps: &[],
                fields: None,
                vectors: None,
            });
        }
        let missing = |c: &str| {
            r.fail(
                "reading an answer",
                &format!("column {c:?} is missing"),
                ErrorKind::Internal,
            )
        };
        let text = |c: &str| get(c).and_then(|f| f.as_varchar()).ok_or_else(|| missing(c));
        Ok(Columns {
            ids: text("id")?,
            uris: text("uri")?,
            sources: text("source")?,
            days: text("day")?,
            timestamps: get("timestamp")
                .and_then(|f| f.as_int64())
                .ok_or_else(|| missing("timestamp"))?,
            fields: get(expr::FIELDS).and_then(|f| f.as_json()),
            vectors: get("vector").and_then(|f| f.as_float_vectors()),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn record(&self, schema: &Schema, i: usize, fields: &[String]) -> Record {
        let json = self.fields.and_then(|f| f.get(i));
        Record {
            id: self.ids[i].clone(),
            uri: self.uris.get(i).cloned().unwrap_or_default(),
            source: self.sources.get(i).cloned().unwrap_or_default(),
            day: self.days.get(i).and_then(|d| d.parse().ok()).unwrap_or(Day(0)),
            timestamp: self.timestamps.get(i).copied().unwrap_or(0),
            fields: Fields(
                fields
                    .iter()
                    .map(|n| (n.clone(), value(schema, n, json.and_then(|j| j.get(n)))))
                    .collect(),
            ),
            vector: self.vectors.and_then(|v| v.get(i)).cloned(),
        }
    }
}

/// A user field's value from its JSON, typed by the schema.
fn value(schema: &Schema, name: &str, v: Option<&serde_json::Value>) -> Value {
    let Some(v) = v else { return Value::Null };
    match (schema.field_type(name), v) {
        (_, serde_json::Value::Null) => Value::Null,
        (Some(FieldType::String), serde_json::Value::String(s)) => Value::Str(s.clone()),
        (Some(FieldType::Int), n) if n.as_i64().is_some() => Value::Int(n.as_i64().unwrap_or_default()),
        (Some(FieldType::Float), n) if n.as_f64().is_some() => Value::Float(n.as_f64().unwrap_or_default()),
        (Some(FieldType::Bool), serde_json::Value::Bool(b)) => Value::Bool(*b),
        _ => Value::Null,
    }
}

/// The user fields of a row as JSON (absent keys are nulls).
pub(crate) fn fields_json(names: &[String], values: &[Value]) -> serde_json::Value {
    serde_json::Value::Object(
        names
            .iter()
            .zip(values)
            .filter(|(_, v)| !matches!(v, Value::Null))
            .map(|(n, v)| (n.clone(), v.to_json()))
            .collect(),
    )
}

/// The columns to ask for.
pub(crate) fn output(fields: &[String], vectors: bool) -> Vec<String> {
    let mut out: Vec<String> = expr::BUILT_IN.iter().map(|s| s.to_string()).collect();
    if !fields.is_empty() {
        out.push(expr::FIELDS.into());
    }
    if vectors {
        out.push("vector".into());
    }
    out
}

/// One candidate: Milvus's score mapped so that larger is better, and the row.
struct Candidate {
    milvus_key: f64,
    record: Record,
}

/// float32's error on a score of magnitude `s` (dimensions up to a few thousand), generously.
fn slack(s: f64, scale: f64) -> f64 {
    1e-4 * s.abs().max(scale).max(1e-30)
}

impl MilvusReader {
    pub(crate) fn open(remote: Arc<Remote>, name: &str) -> Result<MilvusReader> {
        let doc = meta::collection(&remote, name)?.ok_or_else(|| meta::unknown(&remote, name))?;
        let counts = meta::day_counts(&remote, name)?;
        let bytes_per_row = doc.schema.dim as u64 * 4;
        let partitions: Vec<PartitionInfo> = counts
            .iter()
            .map(|((source, day), n)| PartitionInfo {
                source: source.clone(),
                day: *day,
                segments: 1,
                rows: *n,
                deleted: 0,
                bytes: n * bytes_per_row,
            })
            .collect();
        let rows = partitions.iter().map(|p| p.rows).sum();
        Ok(MilvusReader {
            remote,
            doc,
            partitions,
            rows,
        })
    }

    /// Milvus partitions and the day expression that cover `selection`, and its partitions.
    fn plan(&self, selection: &Selection) -> (Vec<String>, Vec<&PartitionInfo>) {
        let chosen: Vec<&PartitionInfo> = self
            .partitions
            .iter()
            .filter(|p| selection.includes_partition(&p.source, p.day))
            .collect();
        let parts: BTreeSet<String> = chosen.iter().map(|p| names::partition(&p.source, p.day)).collect();
        (parts.into_iter().collect(), chosen)
    }

    /// One search request: the best `limit` rows per query within the score band.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        queries: Vec<Vec<f32>>,
        limit: usize,
        radius: Option<f64>,
        range_filter: Option<f64>,
        partitions: &[String],
        filter: &str,
        fields: &[String],
    ) -> Result<Vec<Vec<Candidate>>> {
        let metric = self.doc.schema.metric;
        let mut b = milvus::v2::prelude::SearchRequest::builder()
            .collection_name(self.doc.milvus.clone())
            .vector_field("vector")
            .vectors(SearchVectors::Float(queries))
            .partition_names(partitions.to_vec())
            // Vectors come by id afterwards: asking a 2.3 search for them is slow past a few
            // queries (64 queries × 40 candidates: over 120 s, against 0.5 s per 1,000 by id).
            .output_fields(output(fields, false))
            .limit(limit as i64)
            .metric_type(metric_type(metric))
            .consistency_level(self.remote.read_level());
        if !filter.is_empty() {
            b = b.filter(filter.to_string());
        }
        if let Some(r) = radius {
            b = b.radius(r);
        }
        if let Some(f) = range_filter {
            b = b.range_filter(f);
        }
        let req = b.build().map_err(|e| {
            self.remote
                .fail("building a search", &e.to_string(), ErrorKind::Internal)
        })?;
        let res = self.remote.call_read(&format!("searching {}", self.doc.name), |c| {
            let req = req.clone();
            async move { c.search(req).await }
        })?;
        let schema = &self.doc.schema;
        let mut out = Vec::new();
        for one in res.results().get_results() {
            let cols = Columns::read(&self.remote, |n| one.get_output_field(n))?;
            let scores = one.get_scores();
            let ids = match one.get_ids() {
                Ids::VarChar(v) => v.clone(),
                _ => {
                    return Err(self.remote.fail(
                        "searching",
                        "non-text ids in a vitrine collection",
                        ErrorKind::Corrupt,
                    ))
                }
            };
            let mut cands = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                // Output columns come in the order of the ids.
                let mut record = cols.record(schema, i, fields);
                record.id = id.clone();
                let s = scores.get(i).copied().unwrap_or(f32::NAN) as f64;
                cands.push(Candidate {
                    milvus_key: if metric == Metric::L2 { -s } else { s },
                    record,
                });
            }
            out.push(cands);
        }
        let ids: Vec<String> = out
            .iter()
            .flatten()
            .map(|c| c.record.id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let vectors = self.vectors(&ids)?;
        for c in out.iter_mut().flatten() {
            c.record.vector = vectors.get(&c.record.id).cloned();
        }
        Ok(out)
    }

    /// The vectors of these rows, by id.
    fn vectors(&self, ids: &[String]) -> Result<std::collections::HashMap<String, Vec<f32>>> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let what = format!("reading vectors of {}", self.doc.name);
            let res = self.remote.query(
                &what,
                &self.doc.milvus,
                &[],
                &expr::ids(chunk),
                &["id", "vector"],
                self.remote.read_level(),
            )?;
            let res = res.results();
            let ids = res.get_output_field("id").and_then(|f| f.as_varchar()).unwrap_or(&[]);
            let vs = res
                .get_output_field("vector")
                .and_then(|f| f.as_float_vectors())
                .unwrap_or(&[]);
            for (id, v) in ids.iter().zip(vs) {
                found.insert(id.clone(), v.clone());
            }
        }
        Ok(found)
    }

    /// Rows matching `filter` in `partitions`.
    fn count(&self, partitions: &[String], filter: &str) -> Result<u64> {
        let what = format!("counting rows of {}", self.doc.name);
        self.remote
            .count(&what, &self.doc.milvus, partitions, filter, self.remote.read_level())
    }

    /// The exact key (larger is better) of `x` for query `q` of norm `qn`, as the store computes it.
    fn key(&self, q: &[f32], qn: f64, x: &[f32]) -> f64 {
        match self.doc.schema.metric {
            Metric::Cosine => vitrine_kernels::dot_f64(q, x) / (qn * vitrine_kernels::norm_f64(x)),
            Metric::Ip => vitrine_kernels::dot_f64(q, x),
            Metric::L2 => -vitrine_kernels::l2sq_f64(q, x),
        }
    }

    /// Milvus's `radius` for a threshold (loosened so float32 error never drops a row) and the
    /// key of the threshold.
    fn radius(&self, threshold: Option<f64>) -> Option<f64> {
        threshold.map(|t| match self.doc.schema.metric {
            Metric::L2 => t * t + slack(t * t, 1.0),
            _ => t - slack(t, 1.0),
        })
    }

    /// The next band's upper bound in Milvus's terms from a key.
    fn band(&self, key: f64) -> f64 {
        if self.doc.schema.metric == Metric::L2 {
            -key
        } else {
            key
        }
    }
}

impl CollectionReader for MilvusReader {
    fn name(&self) -> &str {
        &self.doc.name
    }

    fn schema(&self) -> &Schema {
        &self.doc.schema
    }

    fn info(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.doc.info
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn partitions(&self) -> &[PartitionInfo] {
        &self.partitions
    }

    fn search(&self, req: &SearchRequest, fields: &[String]) -> Result<SearchOutput> {
        let schema = &self.doc.schema;
        let dim = schema.dim;
        if dim == 0 || !req.queries.len().is_multiple_of(dim) {
            return Err(Error::Invalid(format!(
                "query vectors have {} values, not a multiple of the collection's dimension {dim}",
                req.queries.len()
            )));
        }
        if req.k.is_none() && req.threshold.is_none() {
            return Err(Error::Invalid("a search needs k, a threshold, or both".into()));
        }
        if req.k == Some(0) {
            return Err(Error::Invalid("k must be at least 1".into()));
        }
        let nq = req.queries.len() / dim;
        let queries: Vec<Vec<f32>> = req.queries.chunks(dim).map(|q| q.to_vec()).collect();
        for (i, q) in queries.iter().enumerate() {
            vitrine_store::check_vector(schema.metric, q).map_err(|e| Error::Invalid(format!("query {i}: {e}")))?;
        }
        let (parts, chosen) = self.plan(&req.selection);
        let mut stats = SearchStats {
            partitions_total: self.partitions.len(),
            partitions_scanned: chosen.len(),
            segments_scanned: parts.len(),
            rows_scanned: chosen.iter().map(|p| p.rows).sum(),
            bytes_scanned: chosen.iter().map(|p| p.bytes).sum(),
            ..SearchStats::default()
        };
        if chosen.is_empty() || nq == 0 {
            return Ok(SearchOutput {
                hits: vec![Vec::new(); nq],
                stats,
            });
        }
        let filter = expr::selection(&req.selection);
        if let Some(f) = &req.selection.filter {
            // The receipt counts the rows the filter excluded, as the embedded store's does.
            let matching = self.count(
                &parts,
                &expr::and(
                    &expr::selection(&Selection {
                        filter: None,
                        ..req.selection.clone()
                    }),
                    &expr::translate(f, true),
                ),
            )?;
            stats.rows_filtered = stats.rows_scanned.saturating_sub(matching);
            stats.rows_scanned = matching;
        }
        let radius = self.radius(req.threshold);
        let first_limit = match req.k {
            Some(k) => (k + k.max(16)).min(MAX_LIMIT),
            None => MAX_LIMIT,
        };
        let first = self.request(queries.clone(), first_limit, radius, None, &parts, &filter, fields)?;
        let mut hits = Vec::with_capacity(nq);
        for (qi, page) in first.into_iter().enumerate() {
            let q = &queries[qi];
            let qn = vitrine_kernels::norm_f64(q);
            let mut seen: HashSet<String> = HashSet::new();
            let mut scored: Vec<(f64, Record)> = Vec::new();
            let mut page = page;
            let mut limit = first_limit;
            loop {
                let full = page.len() >= limit;
                let worst = page.last().map(|c| c.milvus_key);
                let mut fresh = 0;
                for c in page {
                    if !seen.insert(c.record.id.clone()) {
                        continue;
                    }
                    fresh += 1;
                    let Some(x) = c.record.vector.as_deref() else {
                        return Err(self
                            .remote
                            .fail("searching", "the answer has no vectors", ErrorKind::Internal));
                    };
                    let key = self.key(q, qn, x);
                    scored.push((key, c.record));
                }
                stats.candidates_reranked += fresh as u64;
                if !full {
                    break; // every row of the band came back
                }
                let worst = worst.unwrap_or(f64::NEG_INFINITY);
                let scale = qn * qn.max(1.0);
                if let Some(k) = req.k {
                    if scored.len() >= k {
                        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
                        if scored[k - 1].0 > worst + slack(worst, scale) {
                            break; // no row left out can reach the k-th
                        }
                    }
                }
                if fresh == 0 {
                    return Err(Error::Backend {
                        backend: self.remote.location.clone(),
                        message: format!(
                            "search of {}: more than {MAX_LIMIT} rows share one score, past Milvus's cap on results per request",
                            self.doc.name
                        ),
                        kind: ErrorKind::Unsupported,
                        source: None,
                    });
                }
                // The next band: everything scoring at most the worst so far (its ties come back
                // again and are skipped by id).
                limit = MAX_LIMIT;
                let lower = radius.unwrap_or(match schema.metric {
                    Metric::L2 => f64::from(f32::MAX),
                    Metric::Cosine => -2.0,
                    Metric::Ip => -f64::from(f32::MAX),
                });
                page = self
                    .request(
                        vec![q.clone()],
                        limit,
                        Some(lower),
                        Some(self.band(worst)),
                        &parts,
                        &filter,
                        fields,
                    )?
                    .into_iter()
                    .next()
                    .unwrap_or_default();
            }
            let metric = schema.metric;
            scored.retain(|(key, _)| match (req.threshold, metric) {
                (None, _) => true,
                (Some(t), Metric::L2) => (-key).sqrt() <= t,
                (Some(t), _) => *key >= t,
            });
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
            if let Some(k) = req.k {
                scored.truncate(k);
            }
            hits.push(
                scored
                    .into_iter()
                    .enumerate()
                    .map(|(i, (key, r))| Hit {
                        query: qi,
                        rank: i + 1,
                        id: r.id,
                        score: if metric == Metric::L2 { (-key).sqrt() } else { key },
                        source: r.source,
                        day: r.day,
                        uri: r.uri,
                        timestamp: r.timestamp,
                        fields: r.fields,
                    })
                    .collect(),
            );
        }
        Ok(SearchOutput { hits, stats })
    }

    fn get(&self, ids: &[String], fields: &[String], vectors: bool) -> Result<Vec<Option<Record>>> {
        let mut found = std::collections::HashMap::new();
        for chunk in ids.chunks(1000) {
            let out = output(fields, vectors);
            let out: Vec<&str> = out.iter().map(String::as_str).collect();
            let what = format!("reading rows of {}", self.doc.name);
            let res = self.remote.query(
                &what,
                &self.doc.milvus,
                &[],
                &expr::ids(chunk),
                &out,
                self.remote.read_level(),
            )?;
            let res = res.results();
            let cols = Columns::read(&self.remote, |n| res.get_output_field(n))?;
            for i in 0..cols.len() {
                let r = cols.record(&self.doc.schema, i, fields);
                found.insert(r.id.clone(), r);
            }
        }
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    fn scan(
        &self,
        selection: &Selection,
        fields: &[String],
        vectors: bool,
        visit: &mut dyn FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        let (_, chosen) = self.plan(selection);
        // One query per chosen day (a day's rows fit one answer), or per slice of a day's
        // seconds when it holds more than Milvus answers at once: every row exactly once,
        // whatever order the server returns rows in.
        let filter = selection.filter.as_ref().map(|f| expr::translate(f, true));
        let out = output(fields, vectors);
        let out: Vec<&str> = out.iter().map(String::as_str).collect();
        for p in chosen {
            let base = format!(
                "source == {} and day == {}",
                expr::string(&p.source),
                expr::string(&p.day.to_string())
            );
            let base = match &filter {
                Some(f) => format!("{base} and {f}"),
                None => base,
            };
            let part = vec![names::partition(&p.source, p.day)];
            let mut slices = vec![(p.day.start(), p.day.end() + 1, p.rows)];
            while let Some((from, to, estimate)) = slices.pop() {
                let slice = format!("{base} and timestamp >= {from} and timestamp < {to}");
                if estimate as usize >= MAX_LIMIT {
                    let n = self.count(&part, &slice)?;
                    if n as usize >= MAX_LIMIT {
                        if to - from <= 1 {
                            return Err(Error::Backend {
                                backend: self.remote.location.clone(),
                                message: format!("scanning {}: more than {MAX_LIMIT} rows share the timestamp {from}, past Milvus's cap on rows per answer", self.doc.name),
                                kind: ErrorKind::Unsupported,
                                source: None,
                            });
                        }
                        let mid = from + (to - from) / 2;
                        slices.push((mid, to, n));
                        slices.push((from, mid, n));
                        continue;
                    }
                }
                let what = format!("scanning {}", self.doc.name);
                let res = self
                    .remote
                    .query(&what, &self.doc.milvus, &part, &slice, &out, self.remote.read_level())?;
                let res = res.results();
                let cols = Columns::read(&self.remote, |n| res.get_output_field(n))?;
                if cols.len() >= MAX_LIMIT && estimate < MAX_LIMIT as u64 {
                    // More rows than the counts said: count and cut this slice.
                    slices.push((from, to, MAX_LIMIT as u64));
                    continue;
                }
                for i in 0..cols.len() {
                    visit(cols.record(&self.doc.schema, i, fields))?;
                }
            }
        }
        Ok(())
    }
}
