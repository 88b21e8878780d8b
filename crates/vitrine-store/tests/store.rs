//! Store behaviour end to end: exactness against a float64 brute force, upserts, deletes,
//! partitions, retention, compaction, locking and bad input.

use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use vitrine_store::*;

/// What the brute force keeps, mirroring a selection.
type RowPredicate = Box<dyn Fn(&Row) -> bool>;

struct Data {
    rows: Vec<Row>,
    vectors: Vec<f32>,
}

const DAY0: i64 = 1_700_352_000; // 2023-11-19T00:00:00Z

/// `n` rows over 2 sources × `days` days, with a few exact duplicate vectors (ties).
fn data(n: usize, dim: usize, days: i64, seed: u64) -> Data {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut vectors = Vec::with_capacity(n * dim);
    let mut rows = Vec::new();
    for i in 0..n {
        if i % 17 == 5 {
            // duplicate of the previous row: an exact tie under every metric
            let prev: Vec<f32> = vectors[(i - 1) * dim..i * dim].to_vec();
            vectors.extend(prev);
        } else {
            vectors.extend((0..dim).map(|_| rng.random_range(-1.0f32..1.0)));
        }
        rows.push(Row {
            id: format!("img-{:05}", (i * 7919) % 100_000),
            uri: format!("file:///photos/{i}.jpg"),
            source: if i % 3 == 0 {
                "avatars".into()
            } else {
                "products".into()
            },
            timestamp: DAY0 + (i as i64 % days) * 86_400 + (i as i64 * 37) % 86_400,
            fields: vec![
                Value::Float((i % 500) as f64),
                if i % 4 == 0 {
                    Value::Null
                } else {
                    Value::Str(format!("c{}", i % 5))
                },
            ],
        });
    }
    Data { rows, vectors }
}

fn batch(d: &Data, range: std::ops::Range<usize>, dim: usize) -> Batch {
    Batch {
        field_names: vec!["price".into(), "city".into()],
        rows: d.rows[range.clone()].to_vec(),
        vectors: d.vectors[range.start * dim..range.end * dim].to_vec(),
    }
}

/// Brute force in f64 over the rows of `live` that pass `keep`.
fn brute(
    metric: Metric,
    live: &[(Row, Vec<f32>)],
    q: &[f32],
    k: Option<usize>,
    threshold: Option<f64>,
    keep: &dyn Fn(&Row) -> bool,
) -> Vec<(String, f64)> {
    let qn: f64 = q.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let mut v: Vec<(String, f64, f64)> = live
        .iter()
        .filter(|(r, _)| keep(r))
        .map(|(r, x)| {
            let dot: f64 = q.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum();
            let xn: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            let l2: f64 = q.iter().zip(x).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
            let (key, score) = match metric {
                Metric::Cosine => (dot / (qn * xn), dot / (qn * xn)),
                Metric::Ip => (dot, dot),
                Metric::L2 => (-l2, l2.sqrt()),
            };
            (r.id.clone(), key, score)
        })
        .collect();
    if let Some(t) = threshold {
        v.retain(|(_, _, s)| if metric == Metric::L2 { *s <= t } else { *s >= t });
    }
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if let Some(k) = k {
        v.truncate(k);
    }
    v.into_iter().map(|(id, _, s)| (id, s)).collect()
}

fn assert_same(got: &[Hit], want: &[(String, f64)], what: &str) {
    let g: Vec<&str> = got.iter().map(|h| h.id.as_str()).collect();
    let w: Vec<&str> = want.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(g, w, "{what}: ids differ");
    for (h, (_, s)) in got.iter().zip(want) {
        assert!((h.score - s).abs() < 1e-9, "{what}: score {} vs {}", h.score, s);
    }
    for (i, h) in got.iter().enumerate() {
        assert_eq!(h.rank, i + 1);
    }
}

/// A top-k request over everything.
fn top_k(queries: Vec<f32>, k: usize) -> SearchRequest {
    SearchRequest {
        queries,
        k: Some(k),
        threshold: None,
        selection: Selection::default(),
        scan: Default::default(),
    }
}

fn open(dim: usize, metric: Metric) -> (tempfile::TempDir, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let w = Store::open_writer(dir.path()).unwrap();
    w.create_collection("images", Schema::new(dim, metric).unwrap())
        .unwrap();
    (dir, w)
}

#[test]
fn exact_search_equals_f64_brute_force_for_every_metric_selection_and_k() {
    let dim = 37; // not a multiple of the SIMD width: exercises tails
    let n = 3000;
    for metric in [Metric::Cosine, Metric::Ip, Metric::L2] {
        let (_d, w) = open(dim, metric);
        let mut c = w.collection("images").unwrap();
        c.set_max_segment_rows(97);
        let d = data(n, dim, 6, 1);
        c.insert(&batch(&d, 0..1500, dim)).unwrap();
        c.insert(&batch(&d, 1500..n, dim)).unwrap();
        let live: Vec<(Row, Vec<f32>)> = d
            .rows
            .iter()
            .cloned()
            .zip(d.vectors.chunks(dim).map(|v| v.to_vec()))
            .collect();
        let snap = w.snapshot("images").unwrap();
        assert_eq!(snap.rows(), n as u64);
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        // queries: random, plus an exact copy of a duplicated stored vector (ties at the top)
        let mut queries: Vec<f32> = (0..3 * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        queries.extend_from_slice(&d.vectors[5 * dim..6 * dim]);
        let nq = 4;
        let day = |s: &str| s.parse::<Day>().unwrap();
        let filter = Expr::parse(
            r#"price > 100 and (city in ["c1", "c2"] or city == "c3")"#,
            snap.schema(),
        )
        .unwrap();
        let selections: Vec<(Selection, RowPredicate)> = vec![
            (Selection::default(), Box::new(|_| true)),
            (
                Selection {
                    sources: vec!["avatars".into()],
                    ..Default::default()
                },
                Box::new(|r: &Row| r.source == "avatars"),
            ),
            (
                Selection {
                    from: Some(day("2023-11-20")),
                    to: Some(day("2023-11-21")),
                    ..Default::default()
                },
                Box::new(|r: &Row| (DAY0 + 86_400..DAY0 + 3 * 86_400).contains(&r.timestamp)),
            ),
            (
                Selection {
                    filter: Some(filter),
                    sources: vec!["products".into()],
                    ..Default::default()
                },
                Box::new(|r: &Row| {
                    let price = matches!(r.fields[0], Value::Float(p) if p > 100.0);
                    let city = matches!(&r.fields[1], Value::Str(c) if ["c1", "c2", "c3"].contains(&c.as_str()));
                    r.source == "products" && price && city
                }),
            ),
        ];
        for (si, (sel, keep)) in selections.iter().enumerate() {
            // Both ways of reading rows: through the 8-bit codes (the default) and as f32.
            for (k, scan) in [1usize, 20, 5000]
                .into_iter()
                .flat_map(|k| [(k, ScanMode::Codes), (k, ScanMode::Float)])
            {
                let res = snap
                    .search(&SearchRequest {
                        queries: queries.clone(),
                        k: Some(k),
                        threshold: None,
                        selection: sel.clone(),
                        scan,
                    })
                    .unwrap();
                assert_eq!(res.hits.len(), nq);
                for q in 0..nq {
                    let want = brute(metric, &live, &queries[q * dim..(q + 1) * dim], Some(k), None, keep);
                    assert_same(
                        &res.hits[q],
                        &want,
                        &format!("{metric} {scan:?} selection {si} k {k} query {q}"),
                    );
                }
            }
            // Range search: every hit past the threshold, exactly.
            let t = match metric {
                Metric::Cosine => 0.3,
                Metric::Ip => 3.0,
                Metric::L2 => 3.2,
            };
            for scan in [ScanMode::Codes, ScanMode::Float] {
                let res = snap
                    .search(&SearchRequest {
                        queries: queries.clone(),
                        k: None,
                        threshold: Some(t),
                        selection: sel.clone(),
                        scan,
                    })
                    .unwrap();
                for q in 0..nq {
                    let want = brute(metric, &live, &queries[q * dim..(q + 1) * dim], None, Some(t), keep);
                    assert_same(
                        &res.hits[q],
                        &want,
                        &format!("{metric} {scan:?} range selection {si} query {q}"),
                    );
                }
            }
        }
    }
}

#[test]
fn upsert_replaces_and_deletes_hide_rows_until_compaction_reclaims_them() {
    let dim = 8;
    let (_d, w) = open(dim, Metric::Cosine);
    let mut c = w.collection("images").unwrap();
    let d = data(200, dim, 3, 2);
    let r = c.insert(&batch(&d, 0..200, dim)).unwrap();
    assert_eq!((r.inserted, r.replaced), (200, 0));
    // Re-inserting the same ids (even moved to another day) replaces them.
    let mut again = batch(&d, 0..50, dim);
    for row in &mut again.rows {
        row.timestamp += 10 * 86_400;
    }
    let r = c.insert(&again).unwrap();
    assert_eq!((r.inserted, r.replaced), (50, 50));
    let snap = w.snapshot("images").unwrap();
    assert_eq!(snap.rows(), 200);
    // Each id appears once in a k=all search.
    let res = snap.search(&top_k(d.vectors[..dim].to_vec(), 1000)).unwrap();
    let mut seen = HashMap::new();
    for h in &res.hits[0] {
        *seen.entry(h.id.clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|&n| n == 1));

    let gone = c
        .delete_ids(&[d.rows[60].id.clone(), d.rows[61].id.clone(), "no-such-id".into()])
        .unwrap();
    assert_eq!(gone, 2);
    let sel = Selection {
        sources: vec!["avatars".into()],
        ..Default::default()
    };
    let avatars = w
        .snapshot("images")
        .unwrap()
        .partitions()
        .iter()
        .filter(|p| p.source == "avatars")
        .map(|p| p.rows)
        .sum::<u64>();
    assert_eq!(c.delete_where(&sel).unwrap(), avatars);
    let snap = w.snapshot("images").unwrap();
    assert_eq!(snap.rows(), 198 - avatars);
    let res = snap
        .search(&top_k(d.vectors[60 * dim..61 * dim].to_vec(), 1000))
        .unwrap();
    assert!(res.hits[0]
        .iter()
        .all(|h| h.source == "products" && h.id != d.rows[60].id && h.id != d.rows[61].id));
    assert_eq!(res.stats.rows_deleted, 50 + 2 + avatars);
    let deleted_before: u64 = snap.partitions().iter().map(|p| p.deleted).sum();
    assert!(deleted_before > 0);

    let rep = c.compact().unwrap();
    assert_eq!(rep.rows_reclaimed, deleted_before);
    assert!(rep.bytes_after < rep.bytes_before);
    let after = w.snapshot("images").unwrap();
    assert_eq!(after.rows(), 198 - avatars);
    assert!(after.partitions().iter().all(|p| p.deleted == 0 && p.segments == 1));
    // The old snapshot still reads its (now unlinked) files.
    let again = snap.search(&top_k(d.vectors[..dim].to_vec(), 5)).unwrap();
    let now = after.search(&top_k(d.vectors[..dim].to_vec(), 5)).unwrap();
    let ids_scores = |r: &SearchResults| r.hits[0].iter().map(|h| (h.id.clone(), h.score)).collect::<Vec<_>>();
    assert_eq!(ids_scores(&again), ids_scores(&now));
    // Deletes survive a reopen, and the id index is rebuilt.
    drop(c);
    let mut c = w.collection("images").unwrap();
    assert_eq!(c.delete_ids(&[d.rows[60].id.clone()]).unwrap(), 0);
    assert_eq!(c.delete_ids(&[d.rows[62].id.clone()]).unwrap(), 1);
}

#[test]
fn partitions_drop_and_retention_remove_whole_days() {
    let dim = 4;
    let (_d, w) = open(dim, Metric::Ip);
    let mut c = w.collection("images").unwrap();
    let d = data(300, dim, 10, 3);
    c.insert(&batch(&d, 0..300, dim)).unwrap();
    let parts = c.partitions();
    assert_eq!(parts.len(), 20);
    assert_eq!(parts.iter().map(|p| p.rows).sum::<u64>(), 300);
    let day0: Day = "2023-11-19".parse().unwrap();
    let p = c.drop_partition("avatars", day0).unwrap();
    assert_eq!(
        p.rows,
        d.rows
            .iter()
            .filter(|r| r.source == "avatars" && r.timestamp < DAY0 + 86_400)
            .count() as u64
    );
    let err = c.drop_partition("avatars", day0).unwrap_err();
    assert!(matches!(err, Error::UnknownPartition { .. }), "{err}");
    assert!(err.to_string().contains("avatars") && err.to_string().contains("2023-11-19"));
    let cutoff: Day = "2023-11-24".parse().unwrap();
    let dropped = c.drop_partitions(|_, day| day < cutoff).unwrap();
    assert_eq!(dropped.len(), 9);
    let snap = w.snapshot("images").unwrap();
    assert!(snap.partitions().iter().all(|p| p.day >= cutoff));
    assert_eq!(snap.partitions().len(), 10);
    let seg_files = std::fs::read_dir(_d.path().join("collections/images/segments"))
        .unwrap()
        .count();
    assert_eq!(seg_files, snap.manifest().segments.len(), "dropped files are removed");
    // A source with no partition (a typo, or all its days dropped) is named, not read as "no
    // matches"; k = 0 is refused.
    let mut q = top_k(vec![1.0; dim], 5);
    q.selection.sources = vec!["avatars".into(), "product".into()];
    let err = snap.search(&q).unwrap_err();
    assert!(matches!(err, Error::UnknownSource { .. }), "{err}");
    assert!(
        err.to_string().contains("\"product\"") && err.to_string().contains("avatars, products"),
        "{err}"
    );
    q.selection.sources = vec!["products".into()];
    assert_eq!(snap.search(&q).unwrap().hits[0].len(), 5);
    q.k = Some(0);
    assert!(snap
        .search(&q)
        .unwrap_err()
        .to_string()
        .contains("k must be at least 1"));
}

#[test]
fn a_second_writer_is_refused_with_the_holder_named_and_readers_are_not_blocked() {
    let (dir, w) = open(4, Metric::Cosine);
    let err = Store::open_writer(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }));
    assert!(
        err.to_string().contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    let reader = Store::open(dir.path()).unwrap();
    assert_eq!(reader.collections().unwrap(), vec!["images".to_string()]);
    drop(w);
    Store::open_writer(dir.path()).unwrap();
}

#[test]
fn bad_input_is_refused_with_the_row_named_and_nothing_written() {
    let dim = 3;
    let (_d, w) = open(dim, Metric::Cosine);
    let mut c = w.collection("images").unwrap();
    let row = |id: &str| Row {
        id: id.into(),
        uri: String::new(),
        source: "products".into(),
        timestamp: DAY0,
        fields: vec![],
    };
    let cases: Vec<(Batch, &str)> = vec![
        (
            Batch {
                field_names: vec![],
                rows: vec![row("a")],
                vectors: vec![1.0, 2.0],
            },
            "dimension 3",
        ),
        (
            Batch {
                field_names: vec![],
                rows: vec![row("a"), row("b")],
                vectors: vec![1.0, 2.0, 3.0, 1.0, f32::NAN, 0.0],
            },
            "row 1 (id \"b\"): vector value 1 is NaN",
        ),
        (
            Batch {
                field_names: vec![],
                rows: vec![row("a")],
                vectors: vec![f32::INFINITY, 0.0, 0.0],
            },
            "inf",
        ),
        (
            Batch {
                field_names: vec![],
                rows: vec![row("z")],
                vectors: vec![0.0, 0.0, 0.0],
            },
            "zero vector",
        ),
        (
            Batch {
                field_names: vec!["price".into()],
                rows: vec![
                    Row {
                        fields: vec![Value::Int(3)],
                        ..row("a")
                    },
                    Row {
                        fields: vec![Value::Str("x".into())],
                        ..row("b")
                    },
                ],
                vectors: vec![1.0; 6],
            },
            "field \"price\" is string here but int elsewhere",
        ),
        (
            Batch {
                field_names: vec!["id".into()],
                rows: vec![Row {
                    fields: vec![Value::Int(1)],
                    ..row("a")
                }],
                vectors: vec![1.0; 3],
            },
            "reserved",
        ),
    ];
    for (b, want) in cases {
        let err = c.insert(&b).unwrap_err().to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
    let snap = w.snapshot("images").unwrap();
    assert_eq!(snap.rows(), 0);
    assert_eq!(snap.manifest().version, 0);
    assert_eq!(
        std::fs::read_dir(_d.path().join("collections/images/segments"))
            .unwrap()
            .count(),
        0
    );
    let q = SearchRequest {
        queries: vec![1.0, 0.0],
        k: Some(1),
        threshold: None,
        selection: Selection::default(),
        scan: Default::default(),
    };
    assert!(snap.search(&q).unwrap_err().to_string().contains("dimension 3"));
    // A cosine threshold above 1 could only ever return nothing: refused, saying why.
    let q = SearchRequest {
        queries: vec![1.0, 0.0, 0.0],
        k: None,
        threshold: Some(2.0),
        selection: Selection::default(),
        scan: Default::default(),
    };
    let err = snap.search(&q).unwrap_err().to_string();
    assert!(err.contains("threshold 2") && err.contains("at most 1"), "{err}");
    let err = w.snapshot("nope").unwrap_err().to_string();
    assert!(
        err.contains("\"nope\" does not exist") && err.contains("images"),
        "{err}"
    );
}

#[test]
fn orphan_files_of_an_interrupted_commit_are_ignored_and_removed() {
    let dim = 4;
    let (dir, w) = open(dim, Metric::L2);
    let mut c = w.collection("images").unwrap();
    let d = data(50, dim, 2, 4);
    c.insert(&batch(&d, 0..50, dim)).unwrap();
    drop(c);
    let segs = dir.path().join("collections/images/segments");
    std::fs::write(segs.join("seg-00000099.vseg"), b"half written").unwrap();
    std::fs::write(dir.path().join("collections/images/manifest.json.tmp"), b"{").unwrap();
    let snap = w.snapshot("images").unwrap();
    assert_eq!(snap.rows(), 50);
    let _c = w.collection("images").unwrap();
    assert!(!segs.join("seg-00000099.vseg").exists());
}

/// A store of 10 rows in one segment: its directory, writer and segment file.
fn one_segment() -> (tempfile::TempDir, Writer, std::path::PathBuf) {
    let dim = 4;
    let (dir, w) = open(dim, Metric::Cosine);
    let mut c = w.collection("images").unwrap();
    let d = data(10, dim, 1, 5);
    c.insert(&batch(&d, 0..10, dim)).unwrap();
    let seg = std::fs::read_dir(dir.path().join("collections/images/segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    (dir, w, seg)
}

/// A reader retries a file the writer removed only while the manifest moves on; a file missing
/// under a manifest that stays the same is damage, reported with its path, not retried forever.
#[test]
fn a_segment_missing_under_an_unchanged_manifest_is_an_error_naming_it() {
    let (dir, _w, seg) = one_segment();
    std::fs::remove_file(&seg).unwrap();
    let err = Store::open(dir.path())
        .unwrap()
        .snapshot("images")
        .unwrap_err()
        .to_string();
    assert!(err.contains(".vseg") && err.contains("No such file"), "{err}");
}

#[test]
fn corrupt_segments_are_reported_with_their_path() {
    let (_dir, w, seg) = one_segment();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[70] ^= 0xff; // inside the vectors: only the full check sees it
    std::fs::write(&seg, &bytes).unwrap();
    let snap = w.snapshot("images").unwrap();
    let err = snap.verify().unwrap_err().to_string();
    assert!(err.contains("body checksum") && err.contains(".vseg"), "{err}");
    let n = bytes.len();
    bytes[n - 20] ^= 0xff; // inside the footer: opening fails
    std::fs::write(&seg, &bytes).unwrap();
    let err = w.snapshot("images").unwrap_err().to_string();
    assert!(err.contains("corrupt store file") && err.contains(".vseg"), "{err}");
}

#[test]
fn extreme_values_are_refused_or_handled_without_losing_rows() {
    let dim = 3;
    let (_d, w) = open(dim, Metric::L2);
    let mut c = w.collection("images").unwrap();
    let row = |id: &str, ts: i64| Row {
        id: id.into(),
        uri: String::new(),
        source: "products".into(),
        timestamp: ts,
        fields: vec![],
    };
    // A norm whose square would overflow f32, and a nanosecond timestamp: refused, naming the row.
    let e = c.insert(&Batch {
        field_names: vec![],
        rows: vec![row("big", DAY0)],
        vectors: vec![1.5e19, 0.0, 0.0],
    });
    assert!(e.unwrap_err().to_string().contains("row 0 (id \"big\"): vector norm"));
    let e = c.insert(&Batch {
        field_names: vec![],
        rows: vec![row("ns", 1_700_000_000_000_000_000)],
        vectors: vec![1.0; 3],
    });
    assert!(e.unwrap_err().to_string().contains("outside years 1..9999"));
    c.insert(&Batch {
        field_names: vec![],
        rows: vec![row("a", DAY0), row("b", DAY0), row("c", DAY0)],
        vectors: vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 3.0, 4.0, 0.0],
    })
    .unwrap();
    let snap = w.snapshot("images").unwrap();
    let search = |k: Option<usize>, t: Option<f64>| {
        snap.search(&SearchRequest {
            queries: vec![0.0, 0.0, 0.0],
            k,
            threshold: t,
            selection: Selection::default(),
            scan: Default::default(),
        })
        .unwrap()
        .hits
    };
    // A huge k is clamped to the selection instead of allocating for it.
    assert_eq!(search(Some(usize::MAX / 2), None)[0].len(), 3);
    // L2 range search compares the reported distance itself: the row at exactly 5.0 is in.
    let ids: Vec<String> = search(None, Some(5.0))[0].iter().map(|h| h.id.clone()).collect();
    assert_eq!(ids, vec!["a", "b", "c"]);
    assert!(search(None, Some(-1.0))[0].is_empty(), "no distance is negative");
    let q = SearchRequest {
        queries: vec![1e30, 0.0, 0.0],
        k: Some(1),
        threshold: None,
        selection: Selection::default(),
        scan: Default::default(),
    };
    assert!(snap
        .search(&q)
        .unwrap_err()
        .to_string()
        .contains("query 0: vector norm"));
}

#[test]
fn a_collection_writer_keeps_the_store_locked_after_its_writer_is_dropped() {
    let (dir, w) = open(4, Metric::Cosine);
    let c = w.collection("images").unwrap();
    drop(w);
    assert!(matches!(
        Store::open_writer(dir.path()).unwrap_err(),
        Error::Locked { .. }
    ));
    drop(c);
    Store::open_writer(dir.path()).unwrap();
}

#[test]
fn of_several_bad_rows_in_a_large_batch_the_first_is_named() {
    // Vectors are checked in parallel; the error must still name the earliest bad row.
    let dim = 3;
    let (_d, w) = open(dim, Metric::Cosine);
    let mut c = w.collection("images").unwrap();
    let n = 60_000;
    let rows: Vec<Row> = (0..n)
        .map(|i| Row {
            id: format!("r{i}"),
            uri: String::new(),
            source: "products".into(),
            timestamp: DAY0,
            fields: vec![],
        })
        .collect();
    let mut vectors = vec![1.0f32; n * dim];
    vectors[50_000 * dim] = f32::NAN;
    vectors[31_337 * dim + 2] = f32::INFINITY;
    vectors[59_999 * dim + 1] = f32::NAN;
    let e = c
        .insert(&Batch {
            field_names: vec![],
            rows,
            vectors,
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 31337 (id \"r31337\"): vector value 2 is inf"), "{e}");
    assert!(w.snapshot("images").unwrap().partitions().is_empty());
}

/// Where a segment's metadata starts: its JSON footer, then the footer's length (8 bytes), its
/// CRC-32 (4) and the magic (4). Anything else (a bitmap, the manifest) is all metadata.
fn metadata_start(name: &str, file: &[u8]) -> usize {
    if !name.ends_with(".vseg") {
        return 0;
    }
    let n = file.len();
    let len = u64::from_le_bytes(file[n - 16..n - 8].try_into().unwrap()) as usize;
    n - 16 - len
}

/// Bit rot: one bit flipped at every byte of every file of a collection (manifest, segments,
/// deletion bitmap) is caught by `check`, which names the file; a damaged manifest also stops
/// every reader (a flipped digit in a row count still parses: its checksum catches it).
#[test]
fn a_bit_flipped_anywhere_in_any_file_is_caught_and_named() {
    let dim = 4;
    let (dir, w) = open(dim, Metric::Cosine);
    let mut c = w.collection("images").unwrap();
    let d = data(12, dim, 2, 11);
    c.insert(&batch(&d, 0..12, dim)).unwrap();
    c.delete_ids(&[d.rows[3].id.clone()]).unwrap();
    drop(c);
    let col = dir.path().join("collections/images");
    let mut files = vec![col.join("manifest.json")];
    for e in std::fs::read_dir(col.join("segments")).unwrap() {
        files.push(e.unwrap().path());
    }
    assert!(files.len() >= 4, "a manifest, two segments and a bitmap: {files:?}");
    let store = Store::open(dir.path()).unwrap();
    assert!(store.check("images").unwrap().problems.is_empty());
    let (mut flips, mut query_caught) = (0, 0);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let good = std::fs::read(f).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1 << (i % 8);
            std::fs::write(f, &bad).unwrap();
            let out = store.check("images").unwrap();
            assert!(
                out.problems.iter().any(|p| p.to_string().contains(&name)),
                "{name} byte {i}: check found {:?}",
                out.problems
            );
            // What a query opens it verifies: the manifest, every bitmap, and each segment's
            // footer (its layout) and trailer. Only the payload is left to `check` and scrubs.
            if i >= metadata_start(&name, &good) {
                match store.snapshot("images") {
                    Err(e) => assert!(e.to_string().contains(&name), "{name} byte {i}: {e}"),
                    Ok(s) => panic!("{name} byte {i}: a query opened the damaged file ({} rows)", s.rows()),
                }
                query_caught += 1;
            }
            flips += 1;
        }
        std::fs::write(f, &good).unwrap();
    }
    assert!(flips > 1000, "{flips} flips");
    assert!(query_caught > 500, "{query_caught} flips in what queries verify");
    // Several damaged files at once: check names every one of them, not only the first.
    for f in &files {
        let mut bad = std::fs::read(f).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        std::fs::write(f, &bad).unwrap();
    }
    let out = store.check("images").unwrap();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            out.problems.iter().any(|p| p.to_string().contains(&name)),
            "{name} is damaged too: {:?}",
            out.problems
        );
    }
    assert_eq!(out.problems.len(), files.len(), "{:?}", out.problems);
    for f in &files {
        let mut bad = std::fs::read(f).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        std::fs::write(f, &bad).unwrap();
    }
    assert!(store.check("images").unwrap().problems.is_empty());
    // A manifest written before manifests carried a checksum (no trailer) is still read.
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let legacy = &text[..text.trim_end().rfind('\n').unwrap()];
    assert!(!legacy.contains("crc32"));
    std::fs::write(&files[0], legacy).unwrap();
    assert_eq!(store.snapshot("images").unwrap().rows(), 11);
}
