//! Questions asked of a collection: search (by text, image, stored id or vector), sweep (every
//! row past a threshold for a set of prompts) and classify (a label for every row).
//!
//! Queries are embedded with the model that filled the collection (checked by its weights),
//! the selection is resolved against the collection's schema and sources, and the backend runs
//! the exact search. Warnings (a query in a language the model was not trained for, words
//! outside its vocabulary) are returned as data.

use crate::backend::{CollectionReader, Hit};
use crate::embedder::Embedder;
use crate::error::{Error, Result};
use crate::negatives::{deepen, Negatives, Veto};
use crate::receipt::Receipt;
use crate::selection::{check_sources, SelectionSpec};
use crate::thumbnail::THUMBNAIL_FIELD;
use crate::Engine;
use std::path::PathBuf;
use std::sync::Arc;
use vitrine_clip::Towers;
use vitrine_store::{Day, Selection};

/// What to search with.
#[derive(Debug, Clone)]
pub enum Query {
    /// Texts (one query each), embedded with the collection's model.
    Text(Vec<String>),
    /// Texts (one query each), each blended with weighted prompts (see [`blend`]): "a photo of
    /// a beach" + 0.5 "sunset" − "people".
    Blend {
        /// The texts.
        texts: Vec<String>,
        /// Weighted prompts added to each text (a negative weight subtracts).
        add: Vec<Weighted>,
    },
    /// Image files (one query each).
    ImageFiles(Vec<PathBuf>),
    /// Images as bytes (uploads), each with a name for its errors.
    ImageBytes(Vec<(String, Vec<u8>)>),
    /// The vectors of stored rows, by id ("more like this").
    Like(Vec<String>),
    /// Query vectors, row-major (`queries × dim`).
    Vectors(Vec<f32>),
    /// Query vectors from a `.npy` file (one vector or a batch).
    VectorFile(PathBuf),
    /// Any of the above already turned into vectors by [`Engine::embed_query`], with their
    /// labels and warnings: the model's part of a search done, the scan to come.
    Embedded {
        /// Row-major, `labels.len() × dim`.
        vectors: Vec<f32>,
        /// One per query.
        labels: Vec<String>,
        /// The embedding's warnings.
        warnings: Vec<String>,
    },
}

impl Query {
    /// Whether answering it runs a model (text or image queries).
    pub fn needs_model(&self) -> bool {
        matches!(
            self,
            Query::Text(_) | Query::Blend { .. } | Query::ImageFiles(_) | Query::ImageBytes(_)
        )
    }
}

/// A search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The collection.
    pub collection: String,
    /// What to search with.
    pub query: Query,
    /// Results per query (with a threshold: an optional cap). Neither given: 20.
    pub k: Option<usize>,
    /// Range search: every row scoring at least this (cosine, ip) or within this distance (l2).
    pub threshold: Option<f64>,
    /// Which rows.
    pub selection: SelectionSpec,
    /// The model for text and image queries (default: the collection's; must have its weights).
    pub model: Option<String>,
    /// The user fields hits carry (default: all but thumbnails, see [`visible_fields`]).
    pub fields: Option<Vec<String>>,
    /// What hits must look less like than the query (see [`crate::negatives`]).
    pub negatives: Negatives,
}

impl SearchRequest {
    /// A top-20 search of `collection` with `query` over everything.
    pub fn new(collection: impl Into<String>, query: Query) -> SearchRequest {
        SearchRequest {
            collection: collection.into(),
            query,
            k: None,
            threshold: None,
            selection: SelectionSpec::default(),
            model: None,
            fields: None,
            negatives: Negatives::default(),
        }
    }
}

/// What a search found.
#[derive(Debug, Clone)]
pub struct SearchAnswer {
    /// One label per query (its text, `like FILE`, `like ID`, `query N`).
    pub labels: Vec<String>,
    /// The user fields every hit carries, in schema order.
    pub fields: Vec<String>,
    /// `hits[q]` for query `q`, best first (ties by id).
    pub hits: Vec<Vec<Hit>>,
    /// What the search covered.
    pub receipt: Receipt,
    /// Things the caller should know about the queries.
    pub warnings: Vec<String>,
    /// Rows the negative prompts removed among those examined.
    pub vetoed: u64,
}

/// A sweep: every row matching any of several prompts.
#[derive(Debug, Clone)]
pub struct SweepRequest {
    /// The collection.
    pub collection: String,
    /// Text prompts; a row matches if any prompt matches.
    pub prompts: Vec<String>,
    /// Every row scoring at least this for some prompt (exact range search)...
    pub threshold: Option<f64>,
    /// ... or the best N rows per prompt.
    pub top: Option<usize>,
    /// Which rows.
    pub selection: SelectionSpec,
    /// The model (default: the collection's).
    pub model: Option<String>,
    /// What matching rows must look less like than their prompt (see [`crate::negatives`]).
    pub negatives: Negatives,
    /// Weighted prompts blended into each prompt (see [`blend`]; none: the prompts as they are).
    pub blend: Vec<Weighted>,
}

/// What a sweep found.
#[derive(Debug, Clone)]
pub struct SweepAnswer {
    /// The prompts, in the order asked.
    pub prompts: Vec<String>,
    /// Each matching row once, with the prompt that scored best (`Hit::query`) and that score;
    /// best first, ties by id.
    pub hits: Vec<Hit>,
    /// Hits per partition (source, day), sorted.
    pub per_partition: Vec<(String, Day, usize)>,
    /// What the sweep covered.
    pub receipt: Receipt,
    /// Things the caller should know about the prompts.
    pub warnings: Vec<String>,
    /// Rows the negative prompts removed.
    pub vetoed: u64,
}

/// Zero-shot classification of every row in a selection.
#[derive(Debug, Clone)]
pub struct ClassifyRequest {
    /// The collection.
    pub collection: String,
    /// Distinct labels (at least two); see [`parse_labels`].
    pub labels: Vec<String>,
    /// Prompt templates with `{}` for the label; a label's vector is their embeddings' mean.
    pub templates: Vec<String>,
    /// Which rows.
    pub selection: SelectionSpec,
    /// The model (default: the collection's).
    pub model: Option<String>,
}

/// One row's label.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The row.
    pub id: String,
    /// Its source.
    pub source: String,
    /// Its day.
    pub day: Day,
    /// Its uri.
    pub uri: String,
    /// Index of the best label.
    pub label: usize,
    /// Cosine similarity with the best label (f64).
    pub score: f64,
    /// Index of the second-best label.
    pub second: usize,
    /// Best score minus the second-best score.
    pub margin: f64,
}

/// What a classification found.
#[derive(Debug, Clone)]
pub struct ClassifyAnswer {
    /// The labels, in the order asked.
    pub labels: Vec<String>,
    /// One entry per row, in storage order.
    pub rows: Vec<Labelled>,
    /// Things the caller should know about the prompts.
    pub warnings: Vec<String>,
}

/// Hit order: best score first (by the metric), then id, then prompt.
fn better(higher: bool, a: &Hit, b: &Hit) -> std::cmp::Ordering {
    let by_score = if higher {
        b.score.total_cmp(&a.score)
    } else {
        a.score.total_cmp(&b.score)
    };
    by_score
        .then_with(|| a.id.cmp(&b.id))
        .then_with(|| a.query.cmp(&b.query))
}

/// Labels from a text: one per line, blank lines and `#` comments skipped; duplicates are
/// refused (naming the line), and at least two are needed.
pub fn parse_labels(text: &str, name: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(first) = out.iter().position(|o| o == l) {
            return Err(Error::invalid(format!(
                "{name} line {}: label {l:?} is given twice (first as label {})",
                i + 1,
                first + 1
            )));
        }
        out.push(l.to_string());
    }
    if out.len() < 2 {
        return Err(Error::invalid(format!("{name}: need at least two labels")));
    }
    Ok(out)
}

/// The user fields a hit shows: all but the engine's thumbnails (served separately) and arrival
/// numbers (the watchlists' bookkeeping).
pub fn visible_fields(schema: &vitrine_store::Schema) -> Vec<String> {
    schema
        .fields
        .iter()
        .map(|f| f.name.clone())
        .filter(|f| f != THUMBNAIL_FIELD && f != crate::watch::ARRIVAL_FIELD)
        .collect()
}

/// A prompt with a weight, in rclip's notation `W:prompt` (a number and a colon in front; a
/// prompt without them weighs 1). A negative weight subtracts the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted {
    /// The weight.
    pub weight: f64,
    /// The prompt.
    pub text: String,
}

impl Weighted {
    /// Reads `W:prompt` or `prompt`.
    pub fn parse(s: &str) -> Result<Weighted> {
        if let Some((w, rest)) = s.split_once(':') {
            if let Ok(weight) = w.trim().parse::<f64>() {
                if !weight.is_finite() {
                    return Err(Error::invalid(format!("{s:?}: the weight {w} is not a finite number")));
                }
                if rest.trim().is_empty() {
                    return Err(Error::invalid(format!("{s:?}: no prompt after the weight")));
                }
                return Ok(Weighted {
                    weight,
                    text: rest.trim_start().to_string(),
                });
            }
        }
        if s.trim().is_empty() {
            return Err(Error::invalid("an empty weighted prompt"));
        }
        Ok(Weighted {
            weight: 1.0,
            text: s.to_string(),
        })
    }

    /// The same prompt with the opposite weight (`--subtract`).
    pub fn negated(self) -> Weighted {
        Weighted {
            weight: -self.weight,
            ..self
        }
    }
}

/// Blends weighted prompts into query vectors, the rule rclip's `--add` / `--subtract` follow:
/// each query becomes the unit vector along `q + Σ wᵢ·eᵢ`, where `q` and the `eᵢ` are unit
/// text embeddings, summed in f64 and rounded to f32 once. The search with the blended vector
/// is then as exact as any other. Returns the vectors and the prompts' warnings.
pub fn blend(e: &Embedder, queries: Vec<Vec<f32>>, add: &[Weighted]) -> Result<(Vec<Vec<f32>>, Vec<String>)> {
    if add.is_empty() {
        return Ok((queries, vec![]));
    }
    let refs: Vec<&str> = add.iter().map(|w| w.text.as_str()).collect();
    let (adds, warnings) = embed_texts(e, &refs)?;
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let mut sum: Vec<f64> = q.iter().map(|&x| x as f64).collect();
        for (w, v) in add.iter().zip(&adds) {
            for (s, &x) in sum.iter_mut().zip(v) {
                *s += w.weight * x as f64;
            }
        }
        let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm < 1e-6 {
            return Err(Error::invalid(
                "the weighted prompts cancel the query out (their sum is the zero vector)",
            ));
        }
        out.push(sum.into_iter().map(|x| (x / norm) as f32).collect());
    }
    Ok((out, warnings))
}

/// How a blended query reads: `a photo of a beach +0.5 "sunset" -1 "people"`.
pub fn blend_label(text: &str, add: &[Weighted]) -> String {
    let mut label = text.to_string();
    for w in add {
        label.push_str(&format!(" {:+} {:?}", w.weight, w.text));
    }
    label
}

/// Text embeddings plus the warnings for texts the model cannot read.
pub fn embed_texts(e: &Embedder, texts: &[&str]) -> Result<(Vec<Vec<f32>>, Vec<String>)> {
    let warnings = texts.iter().flat_map(|t| e.query_warnings(t)).collect();
    Ok((e.embed_texts(texts)?, warnings))
}

/// One unit vector per label: the normalised mean of its templates' embeddings ("{}" is the
/// label); plus the warnings.
pub fn label_vectors(e: &Embedder, labels: &[String], templates: &[String]) -> Result<(Vec<Vec<f32>>, Vec<String>)> {
    if templates.is_empty() {
        return Err(Error::invalid("give at least one template"));
    }
    if let Some(t) = templates.iter().find(|t| !t.contains("{}")) {
        return Err(Error::invalid(format!("template {t:?} has no {{}} for the label")));
    }
    let mut out = Vec::with_capacity(labels.len());
    let mut warnings = Vec::new();
    for l in labels {
        let prompts: Vec<String> = templates.iter().map(|t| t.replace("{}", l)).collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let (embs, w) = embed_texts(e, &refs)?;
        warnings.extend(w);
        let mut mean = vec![0f64; e.dim()];
        for v in &embs {
            for (m, x) in mean.iter_mut().zip(v) {
                *m += *x as f64;
            }
        }
        let n = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
        out.push(mean.into_iter().map(|x| (x / n) as f32).collect());
    }
    Ok((out, warnings))
}

impl Engine {
    /// The model that filled `reader`'s collection (or `model`), with `towers`.
    fn collection_model(
        &self,
        reader: &dyn CollectionReader,
        model: Option<&str>,
        towers: Towers,
    ) -> Result<Arc<Embedder>> {
        self.models()
            .for_collection(reader.name(), reader.info(), reader.schema().dim, model, towers)
    }

    /// The negatives of a search embedded with the collection's model (`None` without any).
    fn veto(
        &self,
        reader: &dyn CollectionReader,
        model: Option<&str>,
        negatives: &Negatives,
    ) -> Result<Option<(Veto, Vec<String>)>> {
        if negatives.prompts.is_empty() {
            return Ok(None);
        }
        let e = self.collection_model(reader, model, Towers::Text)?;
        Veto::new(&e, reader.schema().metric, negatives)
    }

    /// The query vectors (row-major), a label per query, and warnings.
    pub(crate) fn query_vectors(
        &self,
        reader: &dyn CollectionReader,
        query: &Query,
        model: Option<&str>,
    ) -> Result<(Vec<f32>, Vec<String>, Vec<String>)> {
        let dim = reader.schema().dim;
        let images = |results: Vec<crate::ImageResult>| -> Result<Vec<f32>> {
            let mut flat = Vec::new();
            for r in results {
                flat.extend(r?);
            }
            Ok(flat)
        };
        Ok(match query {
            Query::Text(texts) => {
                if texts.is_empty() {
                    return Err(Error::invalid("no query text"));
                }
                let e = self.collection_model(reader, model, Towers::Text)?;
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let (v, warnings) = embed_texts(&e, &refs)?;
                (v.into_iter().flatten().collect(), texts.clone(), warnings)
            }
            Query::Blend { texts, add } => {
                if texts.is_empty() {
                    return Err(Error::invalid("no query text"));
                }
                let e = self.collection_model(reader, model, Towers::Text)?;
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let (v, mut warnings) = embed_texts(&e, &refs)?;
                let (v, more) = blend(&e, v, add)?;
                warnings.extend(more);
                let labels = texts.iter().map(|t| blend_label(t, add)).collect();
                (v.into_iter().flatten().collect(), labels, warnings)
            }
            Query::ImageFiles(paths) => {
                let e = self.collection_model(reader, model, Towers::Image)?;
                let labels = paths.iter().map(|p| format!("like {}", p.display())).collect();
                (images(e.embed_images(paths))?, labels, vec![])
            }
            Query::ImageBytes(items) => {
                let e = self.collection_model(reader, model, Towers::Image)?;
                let labels = items.iter().map(|(n, _)| format!("like {n}")).collect();
                (images(e.embed_image_bytes(items))?, labels, vec![])
            }
            Query::Like(ids) => {
                let mut flat = Vec::with_capacity(ids.len() * dim);
                for (id, rec) in ids.iter().zip(reader.get(ids, &[], true)?) {
                    match rec.and_then(|r| r.vector) {
                        Some(v) => flat.extend(v),
                        None => {
                            return Err(Error::NotFound(format!(
                                "like {id:?}: no row with that id in {:?}",
                                reader.name()
                            )))
                        }
                    }
                }
                (flat, ids.iter().map(|id| format!("like {id}")).collect(), vec![])
            }
            Query::Vectors(v) => {
                let n = v.len() / dim.max(1);
                (v.clone(), (0..n).map(|q| format!("query {q}")).collect(), vec![])
            }
            Query::Embedded {
                vectors,
                labels,
                warnings,
            } => {
                if vectors.len() != labels.len() * dim {
                    return Err(Error::invalid(format!(
                        "{} embedded queries of {} numbers do not fit dimension {dim}",
                        labels.len(),
                        vectors.len()
                    )));
                }
                (vectors.clone(), labels.clone(), warnings.clone())
            }
            Query::VectorFile(path) => {
                let npy = vitrine_import::npy::Npy::open(path)?;
                if npy.dim() != dim {
                    return Err(Error::invalid(format!(
                        "{}: queries have dimension {}, but collection {:?} has dimension {dim}",
                        path.display(),
                        npy.dim(),
                        reader.name()
                    )));
                }
                let mut q = Vec::new();
                npy.read_rows(0..npy.rows(), &mut q);
                (q, (0..npy.rows()).map(|i| format!("query {i}")).collect(), vec![])
            }
        })
    }

    /// The vectors `query` stands for in `collection` (embedded with its model, or read), as
    /// search computes them first; plus the warnings.
    pub fn query_embedding(
        &self,
        collection: &str,
        query: &Query,
        model: Option<&str>,
    ) -> Result<(Vec<f32>, Vec<String>)> {
        let reader = self.reader(collection)?;
        let (v, _, warnings) = self.query_vectors(reader.as_ref(), query, model)?;
        Ok((v, warnings))
    }

    /// `req` with its query embedded ([`Query::Embedded`]): the model's part of a search, which
    /// a server runs under its model-work limit, leaving the scan to run outside it.
    pub fn embed_query(&self, req: SearchRequest) -> Result<SearchRequest> {
        if !req.query.needs_model() {
            return Ok(req);
        }
        let reader = self.reader(&req.collection)?;
        let (vectors, labels, warnings) = self.query_vectors(reader.as_ref(), &req.query, req.model.as_deref())?;
        Ok(SearchRequest {
            query: Query::Embedded {
                vectors,
                labels,
                warnings,
            },
            ..req
        })
    }

    /// The selection of `spec` in `reader`'s collection, its sources checked.
    pub(crate) fn resolve(&self, reader: &dyn CollectionReader, spec: &SelectionSpec) -> Result<Selection> {
        let sel = spec.resolve(reader.schema(), Day::today())?;
        check_sources(reader.name(), &sel, reader.partitions())?;
        Ok(sel)
    }

    /// The live rows with these ids (`None` where there is none), with `fields` (default: the
    /// visible ones).
    pub fn rows_by_id(
        &self,
        collection: &str,
        ids: &[String],
        fields: Option<&[String]>,
    ) -> Result<Vec<Option<crate::Record>>> {
        let reader = self.reader(collection)?;
        let fields = fields.map_or_else(|| visible_fields(reader.schema()), <[String]>::to_vec);
        reader.get(ids, &fields, false)
    }

    /// The vectors of the live rows with these ids (`None` where there is none).
    pub fn vectors(&self, collection: &str, ids: &[String]) -> Result<Vec<Option<Vec<f32>>>> {
        Ok(self
            .reader(collection)?
            .get(ids, &[], true)?
            .into_iter()
            .map(|r| r.and_then(|r| r.vector))
            .collect())
    }

    /// The live rows in a selection (identity, partition and uri; no fields or vectors), in
    /// storage order.
    pub fn rows(&self, collection: &str, selection: &SelectionSpec) -> Result<Vec<crate::Record>> {
        let reader = self.reader(collection)?;
        let sel = self.resolve(reader.as_ref(), selection)?;
        let mut out = Vec::new();
        reader.scan(&sel, &[], false, &mut |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Exact search: the top k (or every row past a threshold) for each query.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchAnswer> {
        let reader = self.reader(&req.collection)?;
        let (queries, labels, warnings) = self.query_vectors(reader.as_ref(), &req.query, req.model.as_deref())?;
        let selection = self.resolve(reader.as_ref(), &req.selection)?;
        let k = match (req.k, req.threshold) {
            (None, None) => Some(20),
            (k, _) => k,
        };
        let fields = match &req.fields {
            None => visible_fields(reader.schema()),
            Some(asked) => {
                if let Some(f) = asked.iter().find(|f| reader.schema().field_type(f).is_none()) {
                    return Err(Error::invalid(format!(
                        "collection {:?} has no field {f:?} (its fields: {})",
                        reader.name(),
                        reader
                            .schema()
                            .fields
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                asked.clone()
            }
        };
        let veto = self.veto(reader.as_ref(), req.model.as_deref(), &req.negatives)?;
        let run = |k: Option<usize>| {
            reader.search(
                &vitrine_store::SearchRequest {
                    queries: queries.clone(),
                    k,
                    threshold: req.threshold,
                    selection: selection.clone(),
                    scan: scan_mode(),
                },
                &fields,
            )
        };
        let mut warnings = warnings;
        let (out, vetoed) = match (veto, k) {
            (None, _) => (run(k)?, 0),
            (Some((v, w)), Some(k)) => {
                warnings.extend(w);
                deepen(&v, reader.as_ref(), k, &mut |ask| run(Some(ask)))?
            }
            (Some((v, w)), None) => {
                warnings.extend(w);
                let out = run(None)?;
                let (hits, vetoed) = v.filter(reader.as_ref(), out.hits)?;
                (crate::backend::SearchOutput { hits, stats: out.stats }, vetoed)
            }
        };
        let side = self.side_dir(&req.collection);
        let receipt = Receipt::new(out.stats, reader.as_ref(), side.as_deref(), &selection);
        Ok(SearchAnswer {
            labels,
            fields,
            hits: out.hits,
            receipt,
            warnings,
            vetoed,
        })
    }

    /// Every row matching any prompt (each row once, with its best prompt), exactly; best
    /// first, ties by id.
    pub fn sweep(&self, req: &SweepRequest) -> Result<SweepAnswer> {
        let mut hits = Vec::new();
        let (receipt, warnings, vetoed) = self.sweep_inner(req, &mut |h| {
            hits.push(h);
            Ok(())
        })?;
        let higher = self.reader(&req.collection)?.schema().metric.higher_is_better();
        hits.sort_by(|a, b| better(higher, a, b));
        let mut per: std::collections::BTreeMap<(String, Day), usize> = Default::default();
        for (i, h) in hits.iter_mut().enumerate() {
            h.rank = i + 1;
            *per.entry((h.source.clone(), h.day)).or_default() += 1;
        }
        Ok(SweepAnswer {
            prompts: req.prompts.iter().map(|p| blend_label(p, &req.blend)).collect(),
            hits,
            per_partition: per.into_iter().map(|((s, d), n)| (s, d, n)).collect(),
            receipt,
            warnings,
            vetoed,
        })
    }

    /// [`Engine::sweep`] without holding the answer: `visit` sees each matching row once, one
    /// partition at a time ((source, day) order; best first within a partition, `rank` counting
    /// within it), so a million hits never sit in memory. Returns the receipt.
    pub fn sweep_each(&self, req: &SweepRequest, visit: &mut dyn FnMut(Hit) -> Result<()>) -> Result<Receipt> {
        Ok(self.sweep_inner(req, visit)?.0)
    }

    fn sweep_inner(
        &self,
        req: &SweepRequest,
        visit: &mut dyn FnMut(Hit) -> Result<()>,
    ) -> Result<(Receipt, Vec<String>, u64)> {
        if req.threshold.is_some() == req.top.is_some() {
            return Err(Error::invalid("a sweep needs a threshold or a top N (one of them)"));
        }
        if req.prompts.is_empty() {
            return Err(Error::invalid("a sweep needs at least one prompt"));
        }
        let reader = self.reader(&req.collection)?;
        let e = self.collection_model(reader.as_ref(), req.model.as_deref(), Towers::Text)?;
        let refs: Vec<&str> = req.prompts.iter().map(String::as_str).collect();
        let (vectors, mut warnings) = embed_texts(&e, &refs)?;
        let (vectors, more) = blend(&e, vectors, &req.blend)?;
        warnings.extend(more);
        let queries: Vec<f32> = vectors.into_iter().flatten().collect();
        let veto = match Veto::new(&e, reader.schema().metric, &req.negatives)? {
            Some((v, w)) => {
                warnings.extend(w);
                Some(v)
            }
            None => None,
        };
        let selection = self.resolve(reader.as_ref(), &req.selection)?;
        let (stats, vetoed) = sweep_rows(
            reader.as_ref(),
            &SweepScan {
                queries: &queries,
                threshold: req.threshold,
                top: req.top,
                veto: veto.as_ref(),
                selection: &selection,
                fields: &[],
            },
            visit,
        )?;
        let side = self.side_dir(&req.collection);
        Ok((
            Receipt::new(stats, reader.as_ref(), side.as_deref(), &selection),
            warnings,
            vetoed,
        ))
    }

    /// A label for every row in the selection: the label whose vector is most similar (cosine,
    /// in f64), with the runner-up and the margin.
    pub fn classify(&self, req: &ClassifyRequest) -> Result<ClassifyAnswer> {
        if req.labels.len() < 2 {
            return Err(Error::invalid("classify needs at least two labels"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = req.labels.iter().find(|l| !seen.insert(l.as_str())) {
            return Err(Error::invalid(format!("label {d:?} is given twice")));
        }
        let reader = self.reader(&req.collection)?;
        let e = self.collection_model(reader.as_ref(), req.model.as_deref(), Towers::Text)?;
        let (label_vecs, warnings) = label_vectors(&e, &req.labels, &req.templates)?;
        let selection = self.resolve(reader.as_ref(), &req.selection)?;
        let label_norms: Vec<f64> = label_vecs.iter().map(|l| vitrine_kernels::norm_f64(l)).collect();
        let mut rows = Vec::new();
        reader.scan(&selection, &[], true, &mut |r| {
            let v = r.vector.as_deref().unwrap_or_default();
            let norm = vitrine_kernels::norm_f64(v);
            // The same cosine as a search with the label vector as the query.
            let mut scored: Vec<(f64, usize)> = label_vecs
                .iter()
                .zip(&label_norms)
                .enumerate()
                .map(|(i, (l, ln))| (vitrine_kernels::dot_f64(v, l) / (norm * ln), i))
                .collect();
            // Ties go to the label listed first.
            scored.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            rows.push(Labelled {
                id: r.id,
                source: r.source,
                day: r.day,
                uri: r.uri,
                label: scored[0].1,
                score: scored[0].0,
                second: scored[1].1,
                margin: scored[0].0 - scored[1].0,
            });
            Ok(())
        })?;
        Ok(ClassifyAnswer {
            labels: req.labels.clone(),
            rows,
            warnings,
        })
    }
}

/// What [`sweep_rows`] scans for.
pub(crate) struct SweepScan<'a> {
    /// Row-major query vectors.
    pub queries: &'a [f32],
    /// Every row scoring at least this for some query...
    pub threshold: Option<f64>,
    /// ... or the best N rows per query.
    pub top: Option<usize>,
    /// Negatives that remove rows.
    pub veto: Option<&'a Veto>,
    /// Which rows.
    pub selection: &'a Selection,
    /// User fields the hits carry.
    pub fields: &'a [String],
}

/// The scan of a sweep (and of a watchlist run): each matching row once, with the query that
/// scored best, one partition at a time in (source, day) order when there is a threshold.
/// Returns what was scanned and how many rows the negatives removed.
pub(crate) fn sweep_rows(
    reader: &dyn CollectionReader,
    scan: &SweepScan,
    visit: &mut dyn FnMut(Hit) -> Result<()>,
) -> Result<(vitrine_store::SearchStats, u64)> {
    let mut vetoed = 0;
    let higher = reader.schema().metric.higher_is_better();
    let mut stats = vitrine_store::SearchStats {
        partitions_total: reader.partitions().len(),
        ..Default::default()
    };
    // With a top N the best rows of the whole selection are needed at once; with a
    // threshold, each partition is answered by itself.
    let parts: Vec<Selection> = if scan.top.is_some() {
        vec![scan.selection.clone()]
    } else {
        reader
            .partitions()
            .iter()
            .filter(|p| scan.selection.includes_partition(&p.source, p.day))
            .map(|p| Selection {
                sources: vec![p.source.clone()],
                from: Some(p.day),
                to: Some(p.day),
                filter: scan.selection.filter.clone(),
            })
            .collect()
    };
    for part in parts {
        let run = |k: Option<usize>| {
            reader.search(
                &vitrine_store::SearchRequest {
                    queries: scan.queries.to_vec(),
                    k,
                    threshold: scan.threshold,
                    selection: part.clone(),
                    scan: scan_mode(),
                },
                scan.fields,
            )
        };
        let out = match (scan.veto, scan.top) {
            (None, _) => run(scan.top)?,
            (Some(v), Some(top)) => {
                let (out, removed) = deepen(v, reader, top, &mut |ask| run(Some(ask)))?;
                vetoed += removed;
                out
            }
            (Some(v), None) => {
                let out = run(None)?;
                let (hits, removed) = v.filter(reader, out.hits)?;
                vetoed += removed;
                crate::backend::SearchOutput { hits, stats: out.stats }
            }
        };
        let s = &out.stats;
        stats.partitions_scanned += s.partitions_scanned;
        stats.segments_scanned += s.segments_scanned;
        stats.rows_scanned += s.rows_scanned;
        stats.rows_deleted += s.rows_deleted;
        stats.rows_filtered += s.rows_filtered;
        stats.bytes_scanned += s.bytes_scanned;
        stats.candidates_reranked += s.candidates_reranked;
        stats.rows_by_code += s.rows_by_code;
        stats.code_survivors += s.code_survivors;
        stats.code_fallbacks += s.code_fallbacks;
        let mut all: Vec<Hit> = out.hits.into_iter().flatten().collect();
        all.sort_by(|a, b| better(higher, a, b));
        let mut seen = std::collections::HashSet::new();
        for (i, mut h) in all.into_iter().filter(|h| seen.insert(h.id.clone())).enumerate() {
            h.rank = i + 1;
            visit(h)?;
        }
    }
    Ok((stats, vetoed))
}

/// How searches read vectors: through the 8-bit scan codes (the default), or as f32 when the
/// environment says `VITRINE_SCAN=float` (benchmarks compare the two in one run; the answers
/// are the same).
pub(crate) fn scan_mode() -> vitrine_store::ScanMode {
    match std::env::var("VITRINE_SCAN").as_deref() {
        Ok("float") => vitrine_store::ScanMode::Float,
        _ => vitrine_store::ScanMode::Codes,
    }
}
