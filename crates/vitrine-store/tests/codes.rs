//! The 8-bit scan is exact: on adversarial and random data, for every metric, k and threshold,
//! a search through the codes returns what the f32 scan and a float64 brute force return (same
//! ids, same order, same scores), and its statistics say how the rows were read.

use rand::{Rng, SeedableRng};
use rand_distr_free::*;
use vitrine_store::*;

/// Small distributions without another dependency.
mod rand_distr_free {
    use rand::Rng;
    /// A standard normal sample (Box–Muller).
    pub fn normal(rng: &mut impl Rng) -> f32 {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        let v: f64 = rng.random();
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

const DAY0: i64 = 1_700_352_000; // 2023-11-19T00:00:00Z

fn store(dim: usize, metric: Metric, vectors: &[f32], seg_rows: usize) -> (tempfile::TempDir, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let w = Store::open_writer(dir.path()).unwrap();
    w.create_collection("c", Schema::new(dim, metric).unwrap()).unwrap();
    let mut c = w.collection("c").unwrap();
    c.set_max_segment_rows(seg_rows);
    let n = vectors.len() / dim;
    let rows: Vec<Row> = (0..n)
        .map(|i| Row {
            id: format!("r{:06}", (i * 7919) % 1_000_003),
            uri: format!("u{i}"),
            source: if i % 2 == 0 { "a".into() } else { "b".into() },
            timestamp: DAY0 + (i as i64 % 3) * 86_400,
            fields: vec![Value::Int(i as i64 % 10)],
        })
        .collect();
    c.insert(&Batch {
        field_names: vec!["n".into()],
        rows,
        vectors: vectors.to_vec(),
    })
    .unwrap();
    (dir, w)
}

fn request(
    queries: &[f32],
    k: Option<usize>,
    threshold: Option<f64>,
    scan: ScanMode,
    selection: Selection,
) -> SearchRequest {
    SearchRequest {
        queries: queries.to_vec(),
        k,
        threshold,
        selection,
        scan,
    }
}

/// Float64 brute force, ties by id: (id, score) per query.
/// The stored rows, as the brute force sees them.
struct Rows<'a> {
    metric: Metric,
    dim: usize,
    vectors: &'a [f32],
    ids: &'a [String],
}

fn brute(
    rows: &Rows<'_>,
    q: &[f32],
    k: Option<usize>,
    t: Option<f64>,
    keep: &dyn Fn(usize) -> bool,
) -> Vec<(String, f64)> {
    let Rows {
        metric,
        dim,
        vectors,
        ids,
    } = *rows;
    let qn = q.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
    let mut v: Vec<(f64, f64, &String)> = vectors
        .chunks_exact(dim)
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, x)| {
            let dot: f64 = q.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum();
            let xn = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            let l2: f64 = q.iter().zip(x).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
            let (key, score) = match metric {
                Metric::Cosine => (dot / (qn * xn), dot / (qn * xn)),
                Metric::Ip => (dot, dot),
                Metric::L2 => (-l2, l2.sqrt()),
            };
            (key, score, &ids[i])
        })
        .collect();
    if let Some(t) = t {
        v.retain(|(_, s, _)| if metric == Metric::L2 { *s <= t } else { *s >= t });
    }
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.2.cmp(b.2)));
    if let Some(k) = k {
        v.truncate(k);
    }
    v.into_iter().map(|(_, s, id)| (id.clone(), s)).collect()
}

/// Checks one case under both scans against the brute force; returns the codes scan's stats.
fn check(
    label: &str,
    metric: Metric,
    dim: usize,
    vectors: &[f32],
    queries: &[f32],
    seg_rows: usize,
) -> Vec<SearchStats> {
    let (_d, w) = store(dim, metric, vectors, seg_rows);
    let snap = w.snapshot("c").unwrap();
    let n = vectors.len() / dim;
    let ids: Vec<String> = (0..n).map(|i| format!("r{:06}", (i * 7919) % 1_000_003)).collect();
    let nq = queries.len() / dim;
    let mut stats = Vec::new();
    // Top k at several k (past the row count too), thresholds at a few quantiles of the true
    // scores including exactly at a score, over everything and over one source.
    let rows = Rows {
        metric,
        dim,
        vectors,
        ids: &ids,
    };
    let some_scores = brute(&rows, &queries[..dim], None, None, &|_| true);
    let mut thresholds = vec![some_scores[some_scores.len() / 3].1, some_scores[0].1];
    if some_scores.len() > 5 {
        thresholds.push(some_scores[5].1);
    }
    if metric == Metric::Cosine {
        // A cosine computed in f64 can exceed 1 by an ulp; the store refuses thresholds above 1.
        thresholds.iter_mut().for_each(|t| *t = t.min(1.0));
    }
    let selections = [
        (
            Selection::default(),
            Box::new(|_: usize| true) as Box<dyn Fn(usize) -> bool>,
        ),
        (
            Selection {
                sources: vec!["b".into()],
                ..Default::default()
            },
            Box::new(|i: usize| i % 2 == 1),
        ),
    ];
    // One row has only source "a".
    for (sel, keep) in selections.into_iter().take(if n > 1 { 2 } else { 1 }) {
        let mut cases: Vec<(Option<usize>, Option<f64>)> = [1, 7, 50, n + 5].iter().map(|&k| (Some(k), None)).collect();
        cases.extend(thresholds.iter().map(|&t| (None, Some(t))));
        cases.push((Some(3), Some(thresholds[0])));
        for (k, t) in cases {
            let by_code = snap
                .search(&request(queries, k, t, ScanMode::Codes, sel.clone()))
                .unwrap();
            let by_float = snap
                .search(&request(queries, k, t, ScanMode::Float, sel.clone()))
                .unwrap();
            for q in 0..nq {
                let want = brute(&rows, &queries[q * dim..][..dim], k, t, &keep);
                for (how, got) in [("codes", &by_code), ("float", &by_float)] {
                    let g: Vec<(&str, f64)> = got.hits[q].iter().map(|h| (h.id.as_str(), h.score)).collect();
                    let w: Vec<(&str, f64)> = want.iter().map(|(i, s)| (i.as_str(), *s)).collect();
                    assert_eq!(
                        g.iter().map(|x| x.0).collect::<Vec<_>>(),
                        w.iter().map(|x| x.0).collect::<Vec<_>>(),
                        "{label} {metric} {how} k={k:?} t={t:?} query {q}"
                    );
                    for (a, b) in g.iter().zip(&w) {
                        // Both are the same f64 computation, so equal to the last bit.
                        assert_eq!(a.1, b.1, "{label} {metric} {how} k={k:?} t={t:?} query {q}: score");
                    }
                }
            }
            assert_eq!(by_float.stats.rows_by_code, 0);
            assert_eq!(by_code.stats.rows_scanned, by_float.stats.rows_scanned);
            stats.push(by_code.stats);
        }
    }
    stats
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

#[test]
fn codes_are_exact_on_adversarial_data() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let dim = 48;
    let metrics = [Metric::Cosine, Metric::Ip, Metric::L2];

    // Near-duplicate clusters: 8 centres, 50 rows each within 1e-4, plus exact copies.
    let mut clusters = Vec::new();
    for _ in 0..8 {
        let centre: Vec<f32> = (0..dim).map(|_| normal(&mut rng)).collect();
        for j in 0..50 {
            clusters.extend(
                centre
                    .iter()
                    .map(|&c| if j % 10 == 0 { c } else { c + 1e-4 * normal(&mut rng) }),
            );
        }
    }
    let q: Vec<f32> = clusters[..dim]
        .iter()
        .map(|&c| c + 1e-5)
        .chain((0..dim).map(|_| normal(&mut rng)))
        .collect();
    // A batch of more than 16 queries scans with one plane per query and refines the rows that
    // pass with the second: the same answers.
    let batch: Vec<f32> = (0..20)
        .flat_map(|i| {
            clusters[i * 20 * dim..][..dim]
                .iter()
                .map(move |&c| c + 1e-5 * i as f32)
        })
        .collect();
    for m in metrics {
        check("near-duplicate clusters", m, dim, &clusters, &q, 64);
        check("near-duplicate clusters, a batch of 20", m, dim, &clusters, &batch, 64);
    }

    // Every row identical: all tie, the answer is by id; the codes cannot prune, so they fall back.
    let one: Vec<f32> = (0..dim).map(|_| normal(&mut rng)).collect();
    let same: Vec<f32> = one.iter().cycle().take(300 * dim).copied().collect();
    for m in metrics {
        let stats = check("identical rows", m, dim, &same, &q[dim..], 1000);
        assert!(
            stats.iter().all(|s| s.rows_by_code > 0),
            "{m}: the codes were read first"
        );
    }

    // Rows differing only in the last bits of one coordinate.
    let mut bits = Vec::new();
    for i in 0..200u32 {
        let mut x = one.clone();
        x[i as usize % dim] = f32::from_bits(x[i as usize % dim].to_bits() ^ (i % 8));
        bits.extend(x);
    }
    let qb: Vec<f32> = one.iter().chain(&q[dim..]).copied().collect();
    for m in metrics {
        check("last-bit differences", m, dim, &bits, &qb, 1000);
    }

    // A few huge coordinates (as in some CLIP dimensions, but far worse), un-normalised rows
    // with norms from 1e-3 to 1e3.
    let mut wild = Vec::new();
    for i in 0..400usize {
        let s = 10f32.powi(i as i32 % 7 - 3);
        let mut x: Vec<f32> = (0..dim).map(|_| s * normal(&mut rng)).collect();
        if i % 13 == 0 {
            x[i % dim] = 5e3;
        }
        wild.extend(x);
    }
    let qw: Vec<f32> = (0..2 * dim)
        .map(|i| if i == 7 { 300.0 } else { normal(&mut rng) })
        .collect();
    let qwb: Vec<f32> = (0..20 * dim)
        .map(|i| {
            if i % (3 * dim + 1) == 7 {
                300.0
            } else {
                normal(&mut rng)
            }
        })
        .collect();
    for m in metrics {
        check("huge coordinates and wild norms", m, dim, &wild, &qw, 128);
        check(
            "huge coordinates and wild norms, a batch of 20",
            m,
            dim,
            &wild,
            &qwb,
            128,
        );
    }
}

#[test]
fn codes_are_exact_on_random_data_of_varied_shapes_and_distributions() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    for trial in 0..24 {
        let dim = [1usize, 2, 5, 31, 64, 65, 130, 512][trial % 8];
        let n = [1usize, 3, 40, 257, 900][trial % 5];
        let kind = trial % 4;
        let cone: Vec<f32> = (0..dim).map(|_| normal(&mut rng)).collect();
        let mut vectors = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let mut x: Vec<f32> = match kind {
                // uniform in a cube
                0 => (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
                // CLIP-like: unit vectors in a cone around a shared direction
                1 => cone.iter().map(|&c| 2.0 * c + normal(&mut rng)).collect(),
                // heavy-tailed: a normal divided by a normal
                2 => (0..dim)
                    .map(|_| normal(&mut rng) / (0.05 + normal(&mut rng).abs()))
                    .collect(),
                // sparse: most coordinates zero
                _ => (0..dim)
                    .map(|i| if i % 5 == 0 { normal(&mut rng) } else { 0.0 })
                    .collect(),
            };
            if x.iter().all(|v| *v == 0.0) {
                x[0] = 1.0;
            }
            if kind == 1 {
                unit(&mut x);
            }
            vectors.extend(x);
        }
        // Batches of over 16 queries take the one-plane scan with refinement.
        let nq = [1, 2, 3, 20][(trial / 3) % 4];
        let queries: Vec<f32> = (0..nq * dim).map(|_| normal(&mut rng)).collect();
        let metric = [Metric::Cosine, Metric::Ip, Metric::L2][trial % 3];
        check(
            &format!("trial {trial} (dim {dim}, n {n}, kind {kind})"),
            metric,
            dim,
            &vectors,
            &queries,
            1 + n / 3,
        );
    }
}

#[test]
fn on_spread_out_data_the_codes_prune_and_say_how_rows_were_read() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let (dim, n) = (128, 20_000);
    let mut vectors = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let mut x: Vec<f32> = (0..dim).map(|_| normal(&mut rng)).collect();
        unit(&mut x);
        vectors.extend(x);
    }
    let (_d, w) = store(dim, Metric::Cosine, &vectors, 5_000);
    let snap = w.snapshot("c").unwrap();
    let q = &vectors[..dim];
    let res = snap
        .search(&request(q, Some(10), None, ScanMode::Codes, Selection::default()))
        .unwrap();
    let s = &res.stats;
    assert_eq!(s.rows_by_code, n as u64, "{s:?}");
    assert_eq!(s.code_fallbacks, 0, "{s:?}");
    // Every row is read at stride + 12 bytes instead of 4·dim + 4.
    assert_eq!(s.bytes_scanned, n as u64 * (128 + 12), "{s:?}");
    // Few rows reach the f64 re-rank; the exact answer starts with the query's own row.
    assert!(s.candidates_reranked < 500, "{s:?}");
    assert!((res.hits[0][0].score - 1.0).abs() < 1e-12, "{:?}", res.hits[0][0]);
}

/// Rewrites a segment file's footer as a binary from before scan codes wrote it (no `codes`).
fn strip_codes(path: &std::path::Path) {
    let mut b = std::fs::read(path).unwrap();
    let n = b.len();
    let flen = u64::from_le_bytes(b[n - 16..n - 8].try_into().unwrap()) as usize;
    let mut footer: serde_json::Value = serde_json::from_slice(&b[n - 16 - flen..n - 16]).unwrap();
    footer
        .as_object_mut()
        .unwrap()
        .remove("codes")
        .expect("a codes section");
    let json = serde_json::to_vec(&footer).unwrap();
    b.truncate(n - 16 - flen);
    b.extend_from_slice(&json);
    b.extend_from_slice(&(json.len() as u64).to_le_bytes());
    b.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
    b.extend_from_slice(b"VSG1");
    std::fs::write(path, b).unwrap();
}

#[test]
fn segments_from_before_codes_are_read_as_f32_and_compaction_upgrades_them() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(29);
    let (dim, n) = (32, 600);
    let vectors: Vec<f32> = (0..n * dim).map(|_| normal(&mut rng)).collect();
    let (dir, w) = store(dim, Metric::Ip, &vectors, 100);
    drop(w);
    let segs: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "vseg"))
        .collect();
    assert!(segs.len() >= 6, "{segs:?}");
    for p in &segs {
        strip_codes(p);
    }
    let w = Store::open_writer(dir.path()).unwrap();
    let q = &vectors[3 * dim..4 * dim];
    let before = w
        .snapshot("c")
        .unwrap()
        .search(&request(q, Some(15), None, ScanMode::Codes, Selection::default()))
        .unwrap();
    assert_eq!(before.stats.rows_by_code, 0, "old segments have no codes: read as f32");
    let rep = w.collection("c").unwrap().compact().unwrap();
    assert_eq!(rep.segments_upgraded, segs.len(), "{rep:?}");
    let after = w
        .snapshot("c")
        .unwrap()
        .search(&request(q, Some(15), None, ScanMode::Codes, Selection::default()))
        .unwrap();
    assert_eq!(after.stats.rows_by_code, n as u64);
    let ids = |r: &SearchResults| r.hits[0].iter().map(|h| (h.id.clone(), h.score)).collect::<Vec<_>>();
    assert_eq!(ids(&before), ids(&after));
    // Nothing left to upgrade: a second compaction rewrites nothing.
    assert_eq!(w.collection("c").unwrap().compact().unwrap().partitions, 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
