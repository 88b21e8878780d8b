//! Calibrated thresholds: how far to trust a sweep's threshold, measured on a reviewer's labels.
//!
//! A reviewer labels a sample of rows (id, 1 for a true match, 0 for not). Each labelled row is
//! scored exactly as a sweep scores it (its best prompt; removed at every threshold when a
//! negative prompt wins, see [`crate::negatives`]), and the curve gives, at every threshold
//! where a labelled row enters, the precision and recall on the sample and the number of rows of
//! the selection the sweep would return. The threshold for a target precision is the lowest
//! whose sample precision reaches the target (the most recall at that precision).
//!
//! A calibration is saved with its prompt set (prompts, negatives, margin) in the collection's
//! `prompt_sets.jsonl`, an append-only log, so `sweep --prompt-set NAME --precision P` runs the
//! same prompts at the calibrated threshold and its receipt says what precision to expect and
//! on what evidence. The precision is the sample's: it holds for the collection as far as the
//! sample is a fair draw from what the sweep returns.

use crate::error::{Error, Result};
use crate::negatives::{Negatives, Veto};
use crate::query::{embed_texts, SweepAnswer, SweepRequest};
use crate::selection::SelectionSpec;
use crate::Engine;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vitrine_clip::Towers;
use vitrine_kernels::{dot_f64, l2sq_f64, norm_f64};
use vitrine_store::Metric;

/// The file of saved prompt sets in a collection's side folder.
pub const PROMPT_SETS_FILE: &str = "prompt_sets.jsonl";

/// A calibration.
#[derive(Debug, Clone)]
pub struct CalibrateRequest {
    /// The collection.
    pub collection: String,
    /// The prompts (a row's score is its best prompt's).
    pub prompts: Vec<String>,
    /// Negative prompts.
    pub negatives: Negatives,
    /// A CSV of `id,label` (label 1 or 0; a header row naming `id` and `label`).
    pub labels: PathBuf,
    /// The rows counted at each threshold.
    pub selection: SelectionSpec,
    /// Precisions to find thresholds for.
    pub targets: Vec<f64>,
    /// Save the prompt set under this name, with the thresholds found.
    pub save_as: Option<String>,
    /// Who calibrated (saved with the set).
    pub by: Option<String>,
}

/// One point of the curve: what a sweep at `threshold` would give.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurvePoint {
    /// The threshold (a labelled row's score).
    pub threshold: f64,
    /// Labelled rows at or past it.
    pub labelled: usize,
    /// Of those, labelled 1.
    pub true_positives: usize,
    /// `true_positives / labelled`.
    pub precision: f64,
    /// `true_positives / positives`.
    pub recall: f64,
    /// Rows of the selection a sweep at this threshold returns.
    pub count: u64,
}

/// The threshold found for a target precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrated {
    /// The precision asked for.
    pub target: f64,
    /// The lowest threshold whose sample precision reaches it (`None`: no threshold does).
    pub threshold: Option<f64>,
    /// The sample precision there.
    pub precision: Option<f64>,
    /// The sample recall there.
    pub recall: Option<f64>,
    /// Rows a sweep returned there, at calibration time.
    pub count: Option<u64>,
    /// Labelled rows, and how many were labelled 1.
    pub labelled: usize,
    /// See `labelled`.
    pub positives: usize,
    /// The labels file, as named.
    pub labels_file: String,
    /// BLAKE3 of the labels file.
    pub labels_blake3: String,
    /// When, and by whom.
    pub at: String,
    /// See `at`.
    pub by: Option<String>,
}

/// What a calibration found.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrateAnswer {
    /// The curve, best threshold first.
    pub curve: Vec<CurvePoint>,
    /// Rows labelled 1 and 0.
    pub positives: usize,
    /// See `positives`.
    pub negatives: usize,
    /// Labelled ids that are not live rows (left out).
    pub unknown_ids: Vec<String>,
    /// One per target.
    pub chosen: Vec<Calibrated>,
    /// About the prompts.
    pub warnings: Vec<String>,
}

/// A saved prompt set and its calibrations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSet {
    /// Its name.
    pub name: String,
    /// The prompts.
    pub prompts: Vec<String>,
    /// Negative prompts.
    pub not: Vec<String>,
    /// Their margin.
    pub not_margin: f64,
    /// The latest calibration per target precision.
    pub calibrations: Vec<Calibrated>,
}

/// Scores rows as a sweep does.
struct Scorer {
    prompts: Vec<(Vec<f32>, f64)>,
    veto: Option<Veto>,
    metric: Metric,
}

impl Scorer {
    /// The row's sweep score, or `None` when a negative prompt removes it.
    fn score(&self, x: &[f32]) -> Option<f64> {
        let scores = self.prompts.iter().map(|(p, pn)| match self.metric {
            Metric::Cosine => dot_f64(p, x) / (pn * norm_f64(x)),
            Metric::Ip => dot_f64(p, x),
            Metric::L2 => l2sq_f64(p, x).sqrt(),
        });
        let best = if self.metric.higher_is_better() {
            scores.fold(f64::NEG_INFINITY, f64::max)
        } else {
            scores.fold(f64::INFINITY, f64::min)
        };
        match &self.veto {
            Some(v) if !v.keeps(best, x) => None,
            _ => Some(best),
        }
    }
}

/// `(id, label)` pairs of a labels file.
fn read_labels(path: &Path) -> Result<Vec<(String, bool)>> {
    let name = path.display().to_string();
    let bad = |m: String| Error::invalid(format!("{name}: {m}"));
    let mut r = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let h = r.headers().map_err(|e| bad(e.to_string()))?.clone();
    let (Some(id), Some(label)) = (h.iter().position(|c| c == "id"), h.iter().position(|c| c == "label")) else {
        return Err(bad(format!(
            "needs columns `id` and `label` (it has: {})",
            h.iter().collect::<Vec<_>>().join(", ")
        )));
    };
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| bad(format!("line {line}: {e}")))?;
        let v = rec.get(id).unwrap_or_default().trim().to_string();
        let l = match rec.get(label).unwrap_or_default().trim() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            other => return Err(bad(format!("line {line}: label {other:?} is not 1 or 0"))),
        };
        if v.is_empty() {
            return Err(bad(format!("line {line}: empty id")));
        }
        if let Some(first) = seen.insert(v.clone(), line) {
            return Err(bad(format!(
                "line {line}: id {v:?} is labelled twice (first on line {first})"
            )));
        }
        out.push((v, l));
    }
    Ok(out)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Engine {
    /// Precision, recall and count at every threshold, on a reviewer's labels; thresholds for the
    /// target precisions; saved with the prompt set when asked.
    pub fn calibrate(&self, req: &CalibrateRequest) -> Result<CalibrateAnswer> {
        if req.prompts.is_empty() {
            return Err(Error::invalid("calibrate needs at least one prompt"));
        }
        if let Some(t) = req.targets.iter().find(|t| !(**t > 0.0 && **t <= 1.0)) {
            return Err(Error::invalid(format!("target precision {t} is not in (0, 1]")));
        }
        let labels = read_labels(&req.labels)?;
        let reader = self.reader(&req.collection)?;
        let metric = reader.schema().metric;
        let higher = metric.higher_is_better();
        let e = self
            .models()
            .for_collection(reader.name(), reader.info(), reader.schema().dim, None, Towers::Text)?;
        let refs: Vec<&str> = req.prompts.iter().map(String::as_str).collect();
        let (vectors, mut warnings) = embed_texts(&e, &refs)?;
        let veto = match Veto::new(&e, metric, &req.negatives)? {
            Some((v, w)) => {
                warnings.extend(w);
                Some(v)
            }
            None => None,
        };
        let scorer = Scorer {
            prompts: vectors
                .into_iter()
                .map(|v| {
                    let n = norm_f64(&v);
                    (v, n)
                })
                .collect(),
            veto,
            metric,
        };
        // The labelled rows' scores.
        let ids: Vec<String> = labels.iter().map(|(id, _)| id.clone()).collect();
        let mut scored: Vec<(f64, bool)> = Vec::new();
        let (mut positives, mut negatives) = (0, 0);
        let mut unknown_ids = Vec::new();
        for ((id, label), rec) in labels.iter().zip(reader.get(&ids, &[], true)?) {
            let Some(x) = rec.and_then(|r| r.vector) else {
                unknown_ids.push(id.clone());
                continue;
            };
            if *label {
                positives += 1;
            } else {
                negatives += 1;
            }
            if let Some(s) = scorer.score(&x) {
                scored.push((s, *label));
            }
        }
        if positives == 0 {
            return Err(Error::invalid(format!(
                "{}: no live row is labelled 1: precision and recall cannot be measured",
                req.labels.display()
            )));
        }
        // Every row of the selection, for the counts.
        let selection = self.resolve(reader.as_ref(), &req.selection)?;
        let mut all: Vec<f64> = Vec::new();
        reader.scan(&selection, &[], true, &mut |r| {
            if let Some(s) = scorer.score(r.vector.as_deref().unwrap_or_default()) {
                all.push(s);
            }
            Ok(())
        })?;
        // Best first.
        let order = |a: &f64, b: &f64| if higher { b.total_cmp(a) } else { a.total_cmp(b) };
        all.sort_by(order);
        scored.sort_by(|a, b| order(&a.0, &b.0).then(b.1.cmp(&a.1)));
        let mut curve: Vec<CurvePoint> = Vec::new();
        let mut tp = 0;
        for (i, &(s, label)) in scored.iter().enumerate() {
            tp += label as usize;
            // A point where the next row scores differently (all rows at a tie enter together).
            if scored.get(i + 1).is_some_and(|n| n.0 == s) {
                continue;
            }
            let count = all.partition_point(|a| if higher { *a >= s } else { *a <= s }) as u64;
            curve.push(CurvePoint {
                threshold: s,
                labelled: i + 1,
                true_positives: tp,
                precision: tp as f64 / (i + 1) as f64,
                recall: tp as f64 / positives as f64,
                count,
            });
        }
        let labels_bytes = std::fs::read(&req.labels).map_err(|e| Error::io(&req.labels, e))?;
        let at = now();
        let chosen: Vec<Calibrated> = req
            .targets
            .iter()
            .map(|&target| {
                // The lowest threshold (most recall) whose precision reaches the target.
                let p = curve.iter().rfind(|p| p.precision >= target);
                Calibrated {
                    target,
                    threshold: p.map(|p| p.threshold),
                    precision: p.map(|p| p.precision),
                    recall: p.map(|p| p.recall),
                    count: p.map(|p| p.count),
                    labelled: positives + negatives,
                    positives,
                    labels_file: req.labels.display().to_string(),
                    labels_blake3: blake3::hash(&labels_bytes).to_hex()[..32].to_string(),
                    at: at.clone(),
                    by: req.by.clone(),
                }
            })
            .collect();
        if let Some(name) = &req.save_as {
            if name.trim().is_empty() || name.contains(['\n', '\r']) {
                return Err(Error::invalid(format!(
                    "prompt set name {name:?} is empty or spans lines"
                )));
            }
            let set = PromptSet {
                name: name.clone(),
                prompts: req.prompts.clone(),
                not: req.negatives.prompts.clone(),
                not_margin: req.negatives.margin,
                calibrations: chosen.clone(),
            };
            let path = self.backend().side_dir(&req.collection)?.join(PROMPT_SETS_FILE);
            let line = crate::jsonl::line(&set);
            crate::append_durably(&path, &line)?;
        }
        Ok(CalibrateAnswer {
            curve,
            positives,
            negatives,
            unknown_ids,
            chosen,
            warnings,
        })
    }

    /// The saved prompt sets of `collection` (a later save of a name replaces the prompts and
    /// adds or replaces its calibrations per target), by name.
    pub fn prompt_sets(&self, collection: &str) -> Result<Vec<PromptSet>> {
        let path = self.backend().side_dir(collection)?.join(PROMPT_SETS_FILE);
        let mut sets: std::collections::BTreeMap<String, PromptSet> = Default::default();
        for s in crate::jsonl::read::<PromptSet>(&path)? {
            match sets.get_mut(&s.name) {
                Some(have) if have.prompts == s.prompts && have.not == s.not && have.not_margin == s.not_margin => {
                    for c in s.calibrations {
                        have.calibrations.retain(|h| h.target != c.target);
                        have.calibrations.push(c);
                    }
                }
                _ => {
                    sets.insert(s.name.clone(), s);
                }
            }
        }
        Ok(sets.into_values().collect())
    }

    /// A sweep with saved prompt set `name` at its threshold calibrated for `precision`; the
    /// receipt carries the calibration.
    pub fn sweep_calibrated(
        &self,
        collection: &str,
        name: &str,
        precision: f64,
        selection: SelectionSpec,
    ) -> Result<SweepAnswer> {
        let sets = self.prompt_sets(collection)?;
        let Some(set) = sets.iter().find(|s| s.name == name) else {
            return Err(Error::NotFound(format!(
                "no prompt set {name:?} in {collection:?} (saved: {})",
                sets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        let Some(cal) = set.calibrations.iter().find(|c| c.target == precision) else {
            return Err(Error::NotFound(format!(
                "prompt set {name:?} has no calibration for precision {precision} (it has: {})",
                set.calibrations
                    .iter()
                    .map(|c| c.target.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let Some(threshold) = cal.threshold else {
            return Err(Error::invalid(format!(
                "prompt set {name:?}: no threshold reached precision {precision} on its labels ({})",
                cal.labels_file
            )));
        };
        let mut ans = self.sweep(&SweepRequest {
            collection: collection.to_string(),
            prompts: set.prompts.clone(),
            threshold: Some(threshold),
            top: None,
            selection,
            model: None,
            negatives: Negatives {
                prompts: set.not.clone(),
                margin: set.not_margin,
            },
            blend: vec![],
        })?;
        ans.receipt.calibration = Some(cal.clone());
        Ok(ans)
    }
}
