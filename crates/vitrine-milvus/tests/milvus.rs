//! vitrine on a real Milvus server gives the embedded store's answers.
//!
//! These tests need a running Milvus (2.3 or later). They are `#[ignore]`d, so a plain
//! `cargo test` lists them as ignored (skipped), never as passed; tools/test.sh starts Milvus
//! 2.3.5 and runs them with `--ignored` and `VITRINE_TEST_MILVUS=milvus://127.0.0.1:PORT`.

use rand::{Rng, SeedableRng};
use vitrine_engine::backend::{CollectionWriter, SearchOutput};
use vitrine_engine::{Backend, Day, EmbeddedBackend, ErrorKind, FieldType, Metric, Schema, Selection};
use vitrine_milvus::MilvusBackend;
use vitrine_store::{Batch, Expr, Row, SearchRequest, Value};

const NEEDS: &str =
    "needs a Milvus server: run tools/test.sh, or set VITRINE_TEST_MILVUS=milvus://HOST:PORT and pass --ignored";

fn milvus() -> MilvusBackend {
    let url = std::env::var("VITRINE_TEST_MILVUS").unwrap_or_else(|_| panic!("{NEEDS}"));
    MilvusBackend::connect(&url).unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// A unique collection name per test run, so reruns against one server never collide.
fn name(base: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{base}-{}-{}", std::process::id(), t.subsec_nanos())
}

fn day(s: &str) -> Day {
    s.parse().unwrap()
}

/// Rows that make exactness hard: clusters, exact duplicates (ties), near-duplicates, nulls.
fn data(n: usize, dim: usize, seed: u64) -> Batch {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..6)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let mut vectors = Vec::with_capacity(n * dim);
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let v: Vec<f32> = if i % 10 == 9 {
            vectors[(i - 1) * dim..i * dim].to_vec() // an exact duplicate of the row before
        } else {
            let c = &centres[i % centres.len()];
            c.iter().map(|x| x + rng.random_range(-0.3f32..0.3)).collect()
        };
        vectors.extend_from_slice(&v);
        let source = ["products", "avatars", "user_photos"][i % 3].to_string();
        let d = 19_000 + (i % 40) as i64; // 40 days from 2022-01-08
        rows.push(Row {
            id: format!("row-{i:05}"),
            uri: format!("img/{i}.jpg"),
            source,
            timestamp: d * 86_400 + (i as i64 % 86_400),
            fields: vec![
                if i % 3 == 0 {
                    Value::Null
                } else {
                    Value::Float((i % 17) as f64)
                },
                if i % 5 == 0 {
                    Value::Str(format!("t{}", i % 4))
                } else {
                    Value::Null
                },
                Value::Int((i % 7) as i64),
            ],
        });
    }
    Batch {
        field_names: vec!["price".into(), "tag".into(), "n".into()],
        rows,
        vectors,
    }
}

fn schema(dim: usize, metric: Metric) -> Schema {
    let mut s = Schema::new(dim, metric).unwrap();
    s.ensure_field("price", FieldType::Float).unwrap();
    s.ensure_field("tag", FieldType::String).unwrap();
    s.ensure_field("n", FieldType::Int).unwrap();
    s
}

fn fill(b: &dyn Backend, name: &str, schema: &Schema, batch: &Batch) {
    let mut w = b.writer().unwrap();
    w.create_collection(name, schema).unwrap();
    let mut c = w.collection(name).unwrap();
    c.insert(batch).unwrap();
}

fn writer(b: &dyn Backend, name: &str) -> Box<dyn CollectionWriter> {
    b.writer().unwrap().collection(name).unwrap()
}

/// Ids, scores, partitions and fields of every hit, both sides equal.
fn same(label: &str, a: &SearchOutput, b: &SearchOutput) {
    assert_eq!(a.hits.len(), b.hits.len(), "{label}: queries");
    for (q, (x, y)) in a.hits.iter().zip(&b.hits).enumerate() {
        let ids = |h: &[vitrine_engine::Hit]| h.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(x), ids(y), "{label}: query {q}");
        for (h, g) in x.iter().zip(y) {
            assert!(
                (h.score - g.score).abs() <= 1e-9,
                "{label}: {} scores {} vs {}",
                h.id,
                h.score,
                g.score
            );
            assert_eq!(
                (&h.source, h.day, &h.uri, h.timestamp),
                (&g.source, g.day, &g.uri, g.timestamp),
                "{label}: {}",
                h.id
            );
            assert_eq!(h.fields, g.fields, "{label}: {}", h.id);
        }
    }
    assert_eq!(a.stats.rows_scanned, b.stats.rows_scanned, "{label}: rows scanned");
    // Partitions scanned may differ by those the embedded store keeps, emptied, until
    // compaction; rows scanned and filtered may not.
    assert_eq!(a.stats.rows_filtered, b.stats.rows_filtered, "{label}: rows filtered");
}

fn requests(batch: &Batch, dim: usize, schema: &Schema, metric: Metric) -> Vec<(String, SearchRequest)> {
    let q = |ids: &[usize]| -> Vec<f32> {
        ids.iter()
            .flat_map(|&i| batch.vectors[i * dim..(i + 1) * dim].to_vec())
            .collect()
    };
    let sel = |f: Option<&str>| Selection {
        filter: f.map(|t| Expr::parse(t, schema).unwrap()),
        ..Default::default()
    };
    // Thresholds that keep a few percent of the rows.
    let t = match metric {
        Metric::Cosine => 0.9,
        Metric::Ip => 4.0,
        Metric::L2 => 1.2,
    };
    let mut out = vec![];
    for k in [1usize, 10, 100] {
        out.push((
            format!("top {k}"),
            SearchRequest {
                scan: Default::default(),
                queries: q(&[8, 19, 500]),
                k: Some(k),
                threshold: None,
                selection: sel(None),
            },
        ));
    }
    out.push((
        "threshold".into(),
        SearchRequest {
            scan: Default::default(),
            queries: q(&[8, 77]),
            k: None,
            threshold: Some(t),
            selection: sel(None),
        },
    ));
    out.push((
        "threshold and k".into(),
        SearchRequest {
            scan: Default::default(),
            queries: q(&[8]),
            k: Some(7),
            threshold: Some(t),
            selection: sel(None),
        },
    ));
    for f in [
        "price != 5",
        "not (price == 5)",
        "tag like 't%' or price >= 15",
        "not (tag in ['t1', 't2'] and price < 9)",
        "n == 3 and source == 'avatars'",
        "day >= '2022-01-20' and timestamp < 1643000000",
    ] {
        out.push((
            format!("filter {f}"),
            SearchRequest {
                scan: Default::default(),
                queries: q(&[8, 30]),
                k: Some(20),
                threshold: None,
                selection: sel(Some(f)),
            },
        ));
    }
    out.push((
        "five days of one source".into(),
        SearchRequest {
            scan: Default::default(),
            queries: q(&[8]),
            k: Some(15),
            threshold: None,
            selection: Selection {
                sources: vec!["products".into()],
                from: Some(day("2022-01-10")),
                to: Some(day("2022-01-14")),
                filter: None,
            },
        },
    ));
    out
}

fn compare(
    label: &str,
    emb: &dyn Backend,
    mil: &dyn Backend,
    name: &str,
    batch: &Batch,
    schema: &Schema,
    metric: Metric,
) {
    let (e, m) = (emb.reader(name).unwrap(), mil.reader(name).unwrap());
    assert_eq!(e.rows(), m.rows(), "{label}: rows");
    // Partitions with live rows (the embedded store lists emptied ones until compaction).
    let strip = |ps: &[vitrine_engine::PartitionInfo]| {
        ps.iter()
            .filter(|p| p.rows > 0)
            .map(|p| (p.source.clone(), p.day, p.rows))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(e.partitions()), strip(m.partitions()), "{label}: partitions");
    let fields: Vec<String> = vec!["price".into(), "tag".into(), "n".into()];
    for (what, req) in requests(batch, schema.dim, schema, metric) {
        let a = e.search(&req, &fields).unwrap();
        let b = m
            .search(&req, &fields)
            .unwrap_or_else(|err| panic!("{label} {what}: {err}"));
        assert!(
            a.hits.iter().any(|h| !h.is_empty()),
            "{label} {what}: the test must find something"
        );
        same(&format!("{label} {metric} {what}"), &a, &b);
    }
}

#[test]
#[ignore = "needs a Milvus server (tools/test.sh starts one)"]
fn search_sweep_and_filters_equal_the_embedded_store_for_every_metric_before_and_after_changes() {
    let mil = milvus();
    let dir = tempfile::tempdir().unwrap();
    let emb = EmbeddedBackend::new(dir.path());
    let dim = 24;
    let batch = data(3000, dim, 7);
    for metric in [Metric::Cosine, Metric::Ip, Metric::L2] {
        let name = name(&format!("same-{metric}"));
        let schema = schema(dim, metric);
        fill(&emb, &name, &schema, &batch);
        fill(&mil, &name, &schema, &batch);
        compare("fresh", &emb, &mil, &name, &batch, &schema, metric);

        // Upserts that move rows to other days and sources (and one that stays), deletes by id
        // and by selection, a dropped day: still the same answers, and no id is left twice.
        let mut moved = data(3000, dim, 7);
        let keep: Vec<usize> = (0..3000).filter(|i| i % 13 == 0).collect();
        moved.rows = keep
            .iter()
            .map(|&i| {
                let mut r = batch.rows[i].clone();
                r.source = "avatars".into();
                r.timestamp += 86_400 * 3;
                r
            })
            .collect();
        moved.vectors = keep
            .iter()
            .flat_map(|&i| batch.vectors[(i + 1) % 3000 * dim..((i + 1) % 3000 + 1) * dim].to_vec())
            .collect();
        let ids: Vec<String> = (0..3000)
            .filter(|i| i % 29 == 1)
            .map(|i| format!("row-{i:05}"))
            .collect();
        let sel = Selection {
            filter: Some(Expr::parse("tag == 't2'", &schema).unwrap()),
            ..Default::default()
        };
        for b in [&emb as &dyn Backend, &mil as &dyn Backend] {
            let mut w = writer(b, &name);
            let r = w.insert(&moved).unwrap();
            assert_eq!(
                (r.inserted, r.replaced),
                (keep.len() as u64, keep.len() as u64),
                "{}",
                b.location()
            );
            let d = w
                .delete_ids(&[ids.clone(), vec!["no-such-row".into()]].concat())
                .unwrap();
            assert_eq!(d.not_found, vec!["no-such-row".to_string()]);
            w.delete_where(&sel).unwrap();
            let gone = w
                .drop_partitions(&|s, d| s == "products" && d == day("2022-01-09"))
                .unwrap();
            assert_eq!(gone.len(), 1);
        }
        compare("after changes", &emb, &mil, &name, &batch, &schema, metric);
        let m = mil.reader(&name).unwrap();
        let got = m
            .get(&["row-00013".into(), "row-00001".into()], &["price".into()], true)
            .unwrap();
        assert!(got[1].is_none(), "a deleted row is gone");
        let r = got[0].as_ref().expect("a moved row is found");
        assert_eq!(
            (r.source.as_str(), r.vector.as_deref()),
            ("avatars", Some(&batch.vectors[14 * dim..15 * dim]))
        );
        let mut scanned = 0u64;
        let mut seen = std::collections::HashSet::new();
        m.scan(&Selection::default(), &[], false, &mut |r| {
            assert!(seen.insert(r.id), "an id scanned twice");
            scanned += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(scanned, m.rows(), "a scan sees every live row once");
        mil.writer().unwrap().drop_collection(&name).unwrap();
        assert!(!mil.has_collection(&name).unwrap());
    }
}

#[test]
#[ignore = "needs a Milvus server (tools/test.sh starts one)"]
fn three_years_of_five_sources_pass_milvus_partition_cap_and_retention_drops_whole_months() {
    let mil = milvus();
    let name = name("years");
    let dim = 4;
    let first = 19_358i64; // 2023-01-01
    let days = 3 * 365;
    let sources = ["products", "avatars", "banners", "messages", "reviews"];
    let mut rows = vec![];
    let mut vectors = vec![];
    for d in 0..days {
        for (si, s) in sources.iter().enumerate() {
            rows.push(Row {
                id: format!("{s}-{d}"),
                uri: format!("{s}/{d}.jpg"),
                source: s.to_string(),
                timestamp: (first + d) * 86_400,
                fields: vec![],
            });
            vectors.extend_from_slice(&[1.0, d as f32 / days as f32, si as f32, 0.5]);
        }
    }
    let n = rows.len();
    assert!(n > 4096, "more (source, day) partitions than Milvus allows partitions");
    let batch = Batch {
        field_names: vec![],
        rows,
        vectors,
    };
    fill(&mil, &name, &Schema::new(dim, Metric::Ip).unwrap(), &batch);
    let r = mil.reader(&name).unwrap();
    assert_eq!((r.rows(), r.partitions().len()), (n as u64, n));
    assert_eq!(
        mil.milvus_partitions(&name).unwrap().len(),
        5 * 36 + 1,
        "one Milvus partition per source-month, and _default"
    );

    // Five days of one source touch one Milvus partition (two across a month's end).
    let req = SearchRequest {
        scan: Default::default(),
        queries: vec![1.0, 0.2, 0.0, 0.5],
        k: Some(50),
        threshold: None,
        selection: Selection {
            sources: vec!["avatars".into()],
            from: Some(day("2024-02-27")),
            to: Some(day("2024-03-02")),
            filter: None,
        },
    };
    let out = r.search(&req, &[]).unwrap();
    assert_eq!(out.hits[0].len(), 5);
    assert_eq!(
        (
            out.stats.partitions_scanned,
            out.stats.segments_scanned,
            out.stats.rows_scanned
        ),
        (5, 2, 5)
    );
    assert!(out.hits[0]
        .iter()
        .all(|h| h.source == "avatars" && h.day >= day("2024-02-27") && h.day <= day("2024-03-02")));

    // Retention before 2023-03-15: January and February go whole, March is cut by day.
    let cut = day("2023-03-15");
    let gone = writer(&mil, &name).drop_partitions(&|_, d| d < cut).unwrap();
    assert_eq!(gone.len(), 5 * (31 + 28 + 14));
    let parts = mil.milvus_partitions(&name).unwrap();
    assert_eq!(parts.len(), 5 * 34 + 1);
    assert!(parts.iter().any(|p| p == "p_products_202303") && !parts.iter().any(|p| p == "p_products_202302"));
    let r = mil.reader(&name).unwrap();
    assert_eq!(r.rows(), (n - gone.len()) as u64);
    let all = r
        .search(
            &SearchRequest {
                scan: Default::default(),
                queries: vec![1.0, 0.0, 0.0, 0.0],
                k: None,
                threshold: Some(0.0),
                selection: Selection {
                    from: Some(day("2023-03-01")),
                    to: Some(day("2023-03-31")),
                    ..Default::default()
                },
            },
            &[],
        )
        .unwrap();
    assert_eq!(all.hits[0].len(), 5 * 17, "March 15-31 stay, March 1-14 went");
    mil.writer().unwrap().drop_collection(&name).unwrap();
}

#[test]
#[ignore = "needs a Milvus server (tools/test.sh starts one)"]
fn errors_name_the_server_and_the_problem() {
    // Nothing listens on port 1.
    let e = MilvusBackend::connect("milvus://127.0.0.1:1").err().expect("no server");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("milvus://127.0.0.1:1"), "{e}");

    let mil = milvus();
    let e = mil.reader("no-such-collection").err().expect("unknown");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("no-such-collection"), "{e}");

    let name = name("errors");
    fill(
        &mil,
        &name,
        &Schema::new(4, Metric::Cosine).unwrap(),
        &Batch {
            field_names: vec![],
            rows: vec![],
            vectors: vec![],
        },
    );
    let e = mil
        .writer()
        .unwrap()
        .create_collection(&name, &Schema::new(4, Metric::Cosine).unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let bad = Batch {
        field_names: vec![],
        rows: vec![Row {
            id: "a".into(),
            uri: "a".into(),
            source: "s".into(),
            timestamp: 0,
            fields: vec![],
        }],
        vectors: vec![1.0; 5],
    };
    let e = writer(&mil, &name).insert(&bad).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert!(e.to_string().contains("dimension 4"), "{e}");
    let e = mil
        .reader(&name)
        .unwrap()
        .search(
            &SearchRequest {
                scan: Default::default(),
                queries: vec![1.0; 3],
                k: Some(1),
                threshold: None,
                selection: Selection::default(),
            },
            &[],
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert_eq!(mil.reader(&name).unwrap().rows(), 0, "a refused batch wrote nothing");
    mil.writer().unwrap().drop_collection(&name).unwrap();
}

#[test]
#[ignore = "needs a Milvus server (tools/test.sh starts one)"]
fn migrate_copies_both_ways_resumes_after_an_interruption_and_verifies() {
    let mil = milvus();
    let dir = tempfile::tempdir().unwrap();
    let emb = EmbeddedBackend::new(dir.path().join("a"));
    let name = name("migrate");
    let dim = 16;
    let schema = schema(dim, Metric::Cosine);
    let batch = data(1500, dim, 11);
    fill(&emb, &name, &schema, &batch);

    // An earlier run that stopped part way: ten partitions complete, one half copied.
    let parts = emb.reader(&name).unwrap().partitions().to_vec();
    let done: Vec<(String, Day)> = parts.iter().take(10).map(|p| (p.source.clone(), p.day)).collect();
    let half = (parts[10].source.clone(), parts[10].day);
    let mut partial = Batch {
        field_names: batch.field_names.clone(),
        rows: vec![],
        vectors: vec![],
    };
    let mut in_half = 0;
    for (i, r) in batch.rows.iter().enumerate() {
        let key = (r.source.clone(), Day::from_timestamp(r.timestamp));
        let take = done.contains(&key)
            || (key == half && {
                in_half += 1;
                in_half % 2 == 0
            });
        if take {
            partial.rows.push(r.clone());
            partial
                .vectors
                .extend_from_slice(&batch.vectors[i * dim..(i + 1) * dim]);
        }
    }
    fill(&mil, &name, &schema, &partial);

    let r = vitrine_engine::migrate(&emb, &mil, &name, 100, &mut |_, _| {}).unwrap();
    assert_eq!((r.partitions_skipped, r.partitions_copied), (10, parts.len() - 10));
    assert_eq!(r.rows, 1500);
    assert!(r.rows_verified >= 30, "{r:?}");
    compare("migrated", &emb, &mil, &name, &batch, &schema, Metric::Cosine);
    let again = vitrine_engine::migrate(&emb, &mil, &name, 100, &mut |_, _| {}).unwrap();
    assert_eq!(
        (again.rows_copied, again.partitions_skipped),
        (0, parts.len()),
        "a finished migration copies nothing"
    );

    // And back, into a new store.
    let back = EmbeddedBackend::new(dir.path().join("b"));
    let r = vitrine_engine::migrate(&mil, &back, &name, 500, &mut |_, _| {}).unwrap();
    assert!(r.created && r.rows_copied == 1500);
    compare("migrated back", &back, &mil, &name, &batch, &schema, Metric::Cosine);
    assert!(back.check(&name).unwrap().problems.is_empty());
    mil.writer().unwrap().drop_collection(&name).unwrap();
}
