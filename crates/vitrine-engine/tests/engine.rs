//! The engine API over the embedded store: typed answers, error kinds, receipts, the one rule
//! for days, reserved fields, imports that write all or nothing.

use std::io::Write;
use std::path::Path;
use vitrine_engine::admin::{CollectionSpec, Cutoff, DeleteRequest, RetainRequest};
use vitrine_engine::import::{Defaults, ImportRequest, ImportSource};
use vitrine_engine::query::{Query, SearchRequest};
use vitrine_engine::{Coverage, Day, Engine, ErrorKind, Metric, SelectionSpec};

/// `n` rows of dimension 4 (row i points mostly along axis i % 4), as .npy + JSONL metadata.
fn write_input(dir: &Path, name: &str, meta: impl Fn(usize) -> serde_json::Value, n: usize) -> ImportSource {
    let mut v = Vec::with_capacity(n * 4);
    for i in 0..n {
        let mut row = [0.1f32; 4];
        row[i % 4] = 1.0 + i as f32 / 100.0;
        v.extend(row);
    }
    let vectors = dir.join(format!("{name}.npy"));
    vitrine_engine::write_npy(&vectors, &v, n, 4).unwrap();
    let metadata = dir.join(format!("{name}.jsonl"));
    let mut f = std::fs::File::create(&metadata).unwrap();
    for i in 0..n {
        writeln!(f, "{}", meta(i)).unwrap();
    }
    ImportSource::Npy {
        vectors,
        metadata: Some(metadata),
    }
}

fn import(engine: &Engine, source: ImportSource, batch_size: usize) -> vitrine_engine::Result<u64> {
    engine
        .import(
            &ImportRequest {
                collection: "images".into(),
                source,
                defaults: Defaults::default(),
                metric: Metric::Cosine,
                batch_size,
                model: None,
            },
            &mut |_, _| {},
        )
        .map(|r| r.inserted)
}

fn day(s: &str) -> Day {
    s.parse().unwrap()
}

#[test]
fn errors_carry_a_kind_a_server_can_map_to_a_status() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    // No store yet: not found.
    assert_eq!(
        engine.collection_info("images").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let src = write_input(
        dir.path(),
        "a",
        |i| serde_json::json!({"id": format!("r{i}"), "source": "products", "day": "2023-11-19"}),
        8,
    );
    assert_eq!(import(&engine, src, 100).unwrap(), 8);
    assert_eq!(engine.collection_info("nope").unwrap_err().kind(), ErrorKind::NotFound);
    // A bad filter, an unknown source, a wrong dimension: bad input.
    let mut req = SearchRequest::new("images", Query::Vectors(vec![1.0, 0.0, 0.0, 0.0]));
    req.selection.filter = Some("prcie > 3".into());
    let e = engine.search(&req).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput, "{e}");
    req.selection = SelectionSpec {
        sources: vec!["product".into()],
        ..Default::default()
    };
    let e = engine.search(&req).unwrap_err();
    assert!(
        e.kind() == ErrorKind::BadInput && e.to_string().contains("products"),
        "{e}"
    );
    let e = engine
        .search(&SearchRequest::new("images", Query::Vectors(vec![1.0, 0.0, 0.0])))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput, "{e}");
    // A stored id that is not there: not found.
    let e = engine
        .search(&SearchRequest::new("images", Query::Like(vec!["zz".into()])))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // The writer lock held by someone else: conflict.
    let held = engine.backend().writer().unwrap();
    let e = engine
        .delete("images", &DeleteRequest::Ids(vec!["r1".into()]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    drop(held);
    // Creating what exists: conflict.
    let spec = CollectionSpec {
        dim: 4,
        metric: Metric::Cosine,
        fields: vec![],
    };
    assert_eq!(
        engine.create_collection("images", &spec).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    // A damaged segment: corrupt (and `check` names it).
    let seg = std::fs::read_dir(dir.path().join("store/collections/images/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "vseg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[10] ^= 0xFF;
    std::fs::write(&seg, &bytes).unwrap();
    let checks = engine.check(None).unwrap();
    assert_eq!(checks.len(), 1);
    assert!(
        checks[0]
            .report
            .problems
            .iter()
            .any(|p| p.contains(seg.file_name().unwrap().to_str().unwrap())),
        "{checks:?}"
    );
}

#[test]
fn hits_carry_fields_by_name_and_a_receipt_and_deletes_name_missing_ids() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    let src = write_input(
        dir.path(),
        "a",
        |i| serde_json::json!({"id": format!("r{i}"), "source": if i % 2 == 0 {"products"} else {"avatars"}, "day": "2023-11-19", "price": i, "city": "x"}),
        20,
    );
    import(&engine, src, 7).unwrap();
    let mut req = SearchRequest::new("images", Query::Vectors(vec![1.0, 0.0, 0.0, 0.0]));
    req.k = Some(3);
    req.selection.sources = vec!["products".into()];
    let ans = engine.search(&req).unwrap();
    assert_eq!(ans.fields, vec!["price", "city"]);
    let top = &ans.hits[0];
    assert_eq!(top.len(), 3);
    assert!(top
        .iter()
        .all(|h| h.source == "products" && h.fields.get("city").is_some()));
    assert_eq!(top[0].id, "r16");
    assert_eq!(ans.receipt.scan.rows_scanned, 10);
    assert_eq!(ans.receipt.coverage, Coverage::Complete);
    let r = engine
        .delete(
            "images",
            &DeleteRequest::Ids(vec!["r0".into(), "r1".into(), "ghost".into()]),
        )
        .unwrap();
    assert_eq!((r.deleted, r.not_found), (2, vec!["ghost".to_string()]));
}

#[test]
fn a_receipt_says_coverage_is_unknown_when_the_ledger_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    let src = write_input(
        dir.path(),
        "a",
        |i| serde_json::json!({"id": format!("r{i}"), "source": "products", "day": "2023-11-19"}),
        4,
    );
    import(&engine, src, 100).unwrap();
    let ledger = engine.backend().side_dir("images").unwrap().join("ledger.jsonl");
    // A readable ledger with a failed input in the selection: incomplete, and listed.
    std::fs::write(
        &ledger,
        "{\"uri\":\"/p/a.jpg\",\"source\":\"products\",\"day\":\"2023-11-19\",\"state\":\"failed\",\"reason\":\"bad\"}\n",
    )
    .unwrap();
    let req = SearchRequest::new("images", Query::Vectors(vec![1.0, 0.0, 0.0, 0.0]));
    let r = engine.search(&req).unwrap().receipt;
    assert_eq!((r.coverage, r.inputs_failed), (Coverage::Incomplete, 1));
    // A damaged line in the middle: the receipt cannot vouch for anything.
    std::fs::write(
        &ledger,
        "{\"uri\":\"/p/a.jpg\",\"source\":\"products\",\"day\":null,\"state\":\"failed\",\"reason\":\"bad\"}\n\u{0}garbage\n{\"uri\":\"/p/b.jpg\",\"source\":\"\",\"day\":null,\"state\":\"pending\",\"reason\":null}\n",
    )
    .unwrap();
    let r = engine.search(&req).unwrap().receipt;
    assert_eq!(r.coverage, Coverage::Unknown);
    assert!(r.note.as_deref().is_some_and(|n| n.contains("line 2")), "{r:?}");
    // A ledger that is not a file at all.
    std::fs::remove_file(&ledger).unwrap();
    std::fs::create_dir(&ledger).unwrap();
    assert_eq!(engine.search(&req).unwrap().receipt.coverage, Coverage::Unknown);
    // A torn last line (a crash while appending) is not damage.
    std::fs::remove_dir(&ledger).unwrap();
    std::fs::write(
        &ledger,
        "{\"uri\":\"/p/a.jpg\",\"source\":\"products\",\"day\":null,\"state\":\"fai",
    )
    .unwrap();
    assert_eq!(engine.search(&req).unwrap().receipt.coverage, Coverage::Complete);
}

#[test]
fn last_n_days_and_retention_older_than_n_days_split_the_days_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    let today = Day::today();
    let src = write_input(
        dir.path(),
        "a",
        |i| serde_json::json!({"id": format!("r{i}"), "source": "products", "day": Day(today.0 - i as i32).to_string()}),
        12,
    );
    import(&engine, src, 100).unwrap();
    for age in ["1d", "3d", "36h", "1w"] {
        let mut req = SearchRequest::new("images", Query::Vectors(vec![1.0, 1.0, 1.0, 1.0]));
        req.k = Some(100);
        req.selection.last = Some(age.parse().unwrap());
        let shown: std::collections::BTreeSet<Day> =
            engine.search(&req).unwrap().hits[0].iter().map(|h| h.day).collect();
        let kept_back = engine
            .retain(&RetainRequest {
                collection: "images".into(),
                cutoff: Cutoff::OlderThan(age.parse().unwrap()),
                source: None,
                dry_run: true,
            })
            .unwrap();
        let dropped: std::collections::BTreeSet<Day> = kept_back.dropped.iter().map(|p| p.day).collect();
        let all: std::collections::BTreeSet<Day> = engine.partitions("images").unwrap().iter().map(|p| p.day).collect();
        assert!(shown.is_disjoint(&dropped), "{age}: {shown:?} vs {dropped:?}");
        assert_eq!(
            shown
                .union(&dropped)
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            all,
            "{age}"
        );
    }
    // 36 hours is two days, today included.
    let r = engine
        .retain(&RetainRequest {
            collection: "images".into(),
            cutoff: Cutoff::OlderThan("36h".parse().unwrap()),
            source: None,
            dry_run: false,
        })
        .unwrap();
    assert_eq!(r.cutoff, Day(today.0 - 1));
    assert_eq!(engine.partitions("images").unwrap().len(), 2);
    // A source the collection does not have is an error listing its sources.
    let e = engine
        .retain(&RetainRequest {
            collection: "images".into(),
            cutoff: Cutoff::Before(day("2000-01-01")),
            source: Some("avatar".into()),
            dry_run: false,
        })
        .unwrap_err();
    assert!(
        e.kind() == ErrorKind::BadInput && e.to_string().contains("products"),
        "{e}"
    );
}

#[test]
fn imports_refuse_reserved_field_names_and_write_nothing_when_a_later_row_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    // A field named like the thumbnails `index` stores would reach result pages as an image.
    let src = write_input(
        dir.path(),
        "x",
        |i| serde_json::json!({"id": format!("r{i}"), "source": "products", "day": "2023-11-19", "thumbnail": "x\" onerror=\"alert(1)"}),
        3,
    );
    let e = import(&engine, src, 100).unwrap_err();
    assert!(
        e.kind() == ErrorKind::BadInput && e.to_string().contains("reserved"),
        "{e}"
    );
    // A field that is an integer in rows 0–99 and a float after, at any batch size: the field
    // is float and every row is written (or nothing is).
    for batch in [7, 100, 1000] {
        let store = dir.path().join(format!("s{batch}"));
        let engine = Engine::open_store(&store);
        let src = write_input(
            dir.path(),
            "m",
            |i| {
                let price = if i < 100 {
                    serde_json::json!(i)
                } else {
                    serde_json::json!(i as f64 + 0.5)
                };
                serde_json::json!({"id": format!("r{i}"), "source": "products", "day": "2023-11-19", "price": price})
            },
            150,
        );
        assert_eq!(import(&engine, src, batch).unwrap(), 150, "batch {batch}");
        let info = engine.collection_info("images").unwrap();
        assert_eq!(info.fields[0].ty, "float");
        // A string where the collection has floats: refused before anything is written.
        let src = write_input(
            dir.path(),
            "bad",
            |i| {
                let price = if i < 120 {
                    serde_json::json!(1.5)
                } else {
                    serde_json::json!("cheap")
                };
                serde_json::json!({"id": format!("n{i}"), "source": "products", "day": "2023-11-20", "price": price})
            },
            150,
        );
        let e = import(&engine, src, batch).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl") && e.contains("price"), "{e}");
        assert_eq!(
            engine.collection_info("images").unwrap().rows,
            150,
            "batch {batch}: a partial import"
        );
    }
}

#[test]
fn imported_vectors_can_name_the_model_that_made_them_and_then_answer_text() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    let demo = vitrine_engine::model::demo_model().unwrap();
    // 4-d vectors cannot come from the 128-d demo model: refused, nothing created.
    let small = write_input(dir.path(), "small", |i| serde_json::json!({"id": format!("s{i}")}), 4);
    let req = |collection: &str, source: ImportSource, model: Option<String>| ImportRequest {
        collection: collection.into(),
        source,
        defaults: Defaults {
            source: Some("products".into()),
            day: Some(day("2023-11-19")),
            ..Defaults::default()
        },
        metric: Metric::Cosine,
        batch_size: 100,
        model,
    };
    let e = engine
        .import(&req("images", small, Some(demo.clone())), &mut |_, _| {})
        .unwrap_err();
    assert!(
        e.to_string().contains("dimension 4") && e.to_string().contains("128"),
        "{e}"
    );
    assert_eq!(
        engine.collection_info("images").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // 128-d vectors, one of them the demo model's embedding of a text.
    let text = Query::Text(vec!["a photo of a red sneaker".into()]);
    let write = |name: &str, target: Option<&[f32]>| {
        let mut v: Vec<f32> = (0..50 * 128)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0) - 0.5)
            .collect();
        if let Some(t) = target {
            v[17 * 128..18 * 128].copy_from_slice(t);
        }
        let vectors = dir.path().join(format!("{name}.npy"));
        vitrine_engine::write_npy(&vectors, &v, 50, 128).unwrap();
        ImportSource::Npy {
            vectors,
            metadata: None,
        }
    };
    let plain = engine.import(&req("plain", write("plain", None), None), &mut |_, _| {});
    assert_eq!(plain.unwrap().inserted, 50);
    // Without a recorded model, a text query is refused and says what to do.
    let e = engine.search(&SearchRequest::new("plain", text.clone())).unwrap_err();
    assert!(
        e.kind() == ErrorKind::BadInput && e.to_string().contains("records no model"),
        "{e}"
    );
    let (t, _) = engine.query_embedding("plain", &text, Some(&demo)).unwrap();
    let r = engine.import(
        &req("made", write("made", Some(&t)), Some(demo.clone())),
        &mut |_, _| {},
    );
    assert_eq!(r.unwrap().inserted, 50);
    let ans = engine.search(&SearchRequest::new("made", text.clone())).unwrap();
    let top = &ans.hits[0][0];
    assert!(top.id.ends_with("17") && (top.score - 1.0).abs() < 1e-5, "{top:?}");
    assert_eq!(
        vitrine_engine::model::recorded_model(&engine.collection_info("made").unwrap().info),
        Some(std::fs::canonicalize(&demo).unwrap().to_str().unwrap())
    );
}

#[test]
fn an_import_that_interleaves_days_commits_partition_by_partition_and_the_last_row_of_an_id_wins() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    // 60 rows cycling over 2 sources × 3 days (every 4-row batch in file order would touch four
    // partitions), then r0..r5 again, moved to a seventh partition.
    let src = write_input(
        dir.path(),
        "mixed",
        |i| {
            if i < 60 {
                let source = if i % 2 == 0 { "products" } else { "avatars" };
                serde_json::json!({"id": format!("r{i}"), "source": source, "day": format!("2023-11-0{}", 1 + i % 3), "n": i})
            } else {
                serde_json::json!({"id": format!("r{}", i - 60), "source": "avatars", "day": "2023-11-09", "n": i})
            }
        },
        66,
    );
    let report = engine
        .import(
            &ImportRequest {
                collection: "images".into(),
                source: src,
                defaults: Defaults::default(),
                metric: Metric::Cosine,
                batch_size: 4,
                model: None,
            },
            &mut |_, _| {},
        )
        .unwrap();
    assert_eq!((report.inserted, report.replaced), (60, 6));
    assert_eq!((report.rows, report.partitions), (60, 7));
    let info = engine.collection_info("images").unwrap();
    assert_eq!(info.deleted_rows, 0, "the earlier rows of r0..r5 were never written");
    // 15 commits of 4 rows in partition order: each commit is one partition or the seam of two.
    assert!(info.segments < 15 + 7, "{} segments", info.segments);
    // r3 is the row of line 63: its vector, its partition, its fields.
    let mut q = [0.1f32; 4];
    q[63 % 4] = 1.63;
    let mut req = SearchRequest::new("images", Query::Vectors(q.to_vec()));
    req.k = Some(1);
    let top = &engine.search(&req).unwrap().hits[0][0];
    assert_eq!((top.id.as_str(), top.source.as_str()), ("r3", "avatars"));
    assert_eq!(top.day, day("2023-11-09"));
    assert_eq!(top.fields.get("n"), Some(&vitrine_engine::Value::Int(63)));
}

#[test]
fn legal_holds_keep_their_days_from_retention_and_drops_until_released() {
    use vitrine_engine::holds::HoldRequest;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let engine = Engine::open_store(&store);
    // Days 1..=5 of November for products and avatars, two rows each.
    let src = write_input(
        dir.path(),
        "a",
        |i| {
            let source = if i % 2 == 0 { "products" } else { "avatars" };
            serde_json::json!({"id": format!("r{i}"), "source": source, "day": format!("2023-11-0{}", 1 + (i / 2) % 5)})
        },
        20,
    );
    import(&engine, src, 100).unwrap();
    let hold = |source: Option<&str>, from: &str, to: &str| HoldRequest {
        source: source.map(String::from),
        from: day(from),
        to: day(to),
        reason: "case 4711".into(),
        by: "compliance@example".into(),
    };
    // Bad holds are refused and name the problem.
    let e = engine
        .place_hold("images", hold(Some("products"), "2023-11-03", "2023-11-02"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    assert!(e.to_string().contains("--from"), "{e}");
    assert!(engine
        .place_hold("images", hold(Some("prodcts"), "2023-11-02", "2023-11-03"))
        .is_err());
    let mut no_reason = hold(None, "2023-11-02", "2023-11-03");
    no_reason.reason = " ".into();
    assert_eq!(
        engine.place_hold("images", no_reason).unwrap_err().kind(),
        ErrorKind::BadInput
    );
    let h = engine
        .place_hold("images", hold(Some("products"), "2023-11-02", "2023-11-03"))
        .unwrap();
    assert_eq!(h.id, 1);

    let retain = |dry_run| {
        engine
            .retain(&RetainRequest {
                collection: "images".into(),
                cutoff: Cutoff::Before(day("2023-11-05")),
                source: None,
                dry_run,
            })
            .unwrap()
    };
    let names = |ps: Vec<(String, Day)>| ps.into_iter().map(|(s, d)| format!("{s} {d}")).collect::<Vec<_>>();
    let preview = retain(true);
    let kept: Vec<(String, Day)> = preview
        .kept
        .iter()
        .map(|k| (k.partition.source.clone(), k.partition.day))
        .collect();
    assert_eq!(names(kept), ["products 2023-11-02", "products 2023-11-03"]);
    assert!(preview
        .kept
        .iter()
        .all(|k| k.holds.len() == 1 && k.holds[0].reason == "case 4711"));
    assert_eq!(preview.dropped.len(), 6);
    let done = retain(false);
    assert_eq!((done.dropped.len(), done.kept.len()), (6, 2));
    let left: Vec<(String, Day)> = engine
        .partitions("images")
        .unwrap()
        .into_iter()
        .map(|p| (p.source, p.day))
        .collect();
    assert_eq!(
        names(left),
        [
            "avatars 2023-11-05",
            "products 2023-11-02",
            "products 2023-11-03",
            "products 2023-11-05"
        ]
    );
    // A held day cannot be dropped by hand either.
    let e = engine
        .drop_partition("images", "products", day("2023-11-02"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.to_string().contains("legal hold 1") && e.to_string().contains("case 4711"),
        "{e}"
    );

    // Nor can its rows be deleted, by id or by selection; other rows can.
    let rows_before = engine.rows("images", &SelectionSpec::all()).unwrap().len();
    for req in [
        DeleteRequest::Ids(vec!["r9".into(), "r2".into()]),
        DeleteRequest::Selection(SelectionSpec {
            sources: vec!["products".into()],
            ..Default::default()
        }),
    ] {
        let e = engine.delete("images", &req).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert!(
            e.to_string().contains("legal hold") && e.to_string().contains("hold 1 (case 4711"),
            "{e}"
        );
    }
    assert_eq!(engine.rows("images", &SelectionSpec::all()).unwrap().len(), rows_before);
    let r = engine.delete("images", &DeleteRequest::Ids(vec!["r9".into()])).unwrap();
    assert_eq!(r.deleted, 1);

    // Released (by whom and why is kept), then retention takes the days; the log survives a
    // fresh engine.
    let e = engine.release_hold("images", 9, "legal", "closed").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    engine
        .release_hold("images", 1, "legal@example", "case closed")
        .unwrap();
    assert!(engine.release_hold("images", 1, "legal@example", "again").is_err());
    let engine = Engine::open_store(&store);
    let holds = engine.holds("images").unwrap();
    assert_eq!(holds.len(), 1);
    let r = holds[0].released.as_ref().expect("released");
    assert_eq!((r.by.as_str(), r.reason.as_str()), ("legal@example", "case closed"));
    let again = engine
        .retain(&RetainRequest {
            collection: "images".into(),
            cutoff: Cutoff::Before(day("2023-11-05")),
            source: None,
            dry_run: false,
        })
        .unwrap();
    assert_eq!((again.dropped.len(), again.kept.len()), (2, 0));
    assert_eq!(engine.partitions("images").unwrap().len(), 2);
}

/// Imports `rows` (ids r0, r1, ...; one products day) as vectors made by the demo model.
fn import_demo_vectors(engine: &Engine, dir: &Path, rows: &[Vec<f32>], demo: &str) {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    vitrine_engine::write_npy(&dir.join("v.npy"), &flat, rows.len(), rows[0].len()).unwrap();
    let r = engine.import(
        &ImportRequest {
            collection: "images".into(),
            source: ImportSource::Npy {
                vectors: dir.join("v.npy"),
                metadata: None,
            },
            defaults: Defaults {
                source: Some("products".into()),
                day: Some(day("2023-11-19")),
                id_prefix: Some("r".into()),
            },
            metric: Metric::Cosine,
            batch_size: 64,
            model: Some(demo.to_string()),
        },
        &mut |_, _| {},
    );
    assert_eq!(r.unwrap().inserted, rows.len() as u64);
}

/// Cosine exactly as the store's re-rank computes it (f64 products summed in index order).
fn cosine_f64(a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum::<f64>();
    dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
}

#[test]
fn near_duplicate_pairs_are_exactly_the_brute_force_pairs_and_clusters_are_their_components() {
    use vitrine_engine::dupes::DupesRequest;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    // 300 rows of dimension 16 with a shared direction (CLIP-like: every score is well above
    // zero); 20 originals get 1–4 noisy copies each, spread over sources and days; one chain
    // (c0 ~ c1 ~ c2, c0 not ~ c2) is joined only through its middle.
    let dim = 16;
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut rows: Vec<(String, Vec<f32>)> = Vec::new();
    for i in 0..240 {
        let v: Vec<f32> = (0..dim)
            .map(|d| (rnd() + if d == 0 { 1.5 } else { 0.0 }) as f32)
            .collect();
        rows.push((format!("r{i:03}"), v));
    }
    for o in 0..20 {
        let base = rows[o * 7].1.clone();
        for c in 0..1 + o % 4 {
            let v: Vec<f32> = base.iter().map(|x| x + (rnd() * 0.03) as f32).collect();
            rows.push((format!("d{o:02}{c}"), v));
        }
    }
    // c0·c1 and c1·c2 score 0.992, c0·c2 0.985.
    let mut chain = vec![0f32; dim];
    chain[0] = 2.0;
    for c in 0..3 {
        chain[1 + c] += 0.25;
        rows.push((format!("c{c}"), chain.clone()));
    }
    let n = rows.len();
    let flat: Vec<f32> = rows.iter().flat_map(|(_, v)| v.clone()).collect();
    vitrine_engine::write_npy(&dir.path().join("v.npy"), &flat, n, dim).unwrap();
    let mut meta = std::fs::File::create(dir.path().join("v.jsonl")).unwrap();
    for (i, (id, _)) in rows.iter().enumerate() {
        let source = if i.is_multiple_of(3) { "avatars" } else { "products" };
        writeln!(
            meta,
            "{}",
            serde_json::json!({"id": id, "source": source, "day": format!("2023-11-{:02}", 1 + i % 9)})
        )
        .unwrap();
    }
    let src = ImportSource::Npy {
        vectors: dir.path().join("v.npy"),
        metadata: Some(dir.path().join("v.jsonl")),
    };
    assert_eq!(import(&engine, src, 50).unwrap(), n as u64);

    let brute = |t: f64, keep: &dyn Fn(usize, usize) -> bool| -> Vec<(String, String, f64)> {
        let mut out = Vec::new();
        for i in 0..n {
            for j in 0..n {
                let (a, b) = (&rows[i], &rows[j]);
                if a.0 < b.0 && keep(i, j) {
                    let s = cosine_f64(&a.1, &b.1);
                    if s >= t {
                        out.push((a.0.clone(), b.0.clone(), s));
                    }
                }
            }
        }
        out.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)));
        out
    };
    let found = |ans: &vitrine_engine::dupes::DupesAnswer| -> Vec<(String, String, f64)> {
        let mut out: Vec<_> = ans
            .clusters
            .iter()
            .flat_map(|c| c.pairs.iter().map(|p| (p.a.clone(), p.b.clone(), p.score)))
            .collect();
        out.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)));
        out
    };
    let req = |t: f64| DupesRequest {
        collection: "images".into(),
        threshold: t,
        selection: SelectionSpec::default(),
        against: None,
        across_sources: false,
    };

    let ans = engine.dupes(&req(0.99)).unwrap();
    let want = brute(0.99, &|_, _| true);
    assert!(want.len() >= 30, "the planted copies make pairs: {}", want.len());
    assert_eq!(found(&ans), want, "same pairs, same f64 scores");
    assert_eq!(ans.queries, n as u64);
    // Clusters are the connected components: every pair inside one cluster, no two clusters
    // joined by a pair, members earliest first.
    let of: std::collections::HashMap<&str, usize> = ans
        .clusters
        .iter()
        .enumerate()
        .flat_map(|(k, c)| c.members.iter().map(move |m| (m.id.as_str(), k)))
        .collect();
    for (a, b, _) in &want {
        assert_eq!(of[a.as_str()], of[b.as_str()], "{a} and {b} share a cluster");
    }
    for c in &ans.clusters {
        assert!(c.members.len() >= 2);
        assert!(c.pairs.len() >= c.members.len() - 1, "a component is connected");
        assert!(c
            .members
            .windows(2)
            .all(|w| (w[0].timestamp, &w[0].id) <= (w[1].timestamp, &w[1].id)));
    }
    assert!(ans
        .clusters
        .windows(2)
        .all(|w| w[0].members.len() >= w[1].members.len()));
    let chain_cluster = &ans.clusters[of["c0"]];
    assert!(
        chain_cluster.members.iter().any(|m| m.id == "c2"),
        "c0 reaches c2 through c1"
    );
    assert!(
        !want.iter().any(|(a, b, _)| a == "c0" && b == "c2"),
        "though c0 and c2 are no pair"
    );

    // A pair exactly at the threshold is in.
    let (a, b, s) = want[want.len() / 2].clone();
    let at = found(&engine.dupes(&req(s)).unwrap());
    assert!(at.contains(&(a.clone(), b.clone(), s)), "{a}-{b} at exactly {s}");
    assert_eq!(at, brute(s, &|_, _| true));

    // Only clusters spanning sources; and products against avatars.
    let across = engine
        .dupes(&DupesRequest {
            across_sources: true,
            ..req(0.99)
        })
        .unwrap();
    assert!(!across.clusters.is_empty() && across.clusters.len() < ans.clusters.len());
    assert!(across.clusters.iter().all(|c| c.sources == ["avatars", "products"]));
    let products = |s: &str| SelectionSpec {
        sources: vec![s.into()],
        ..SelectionSpec::default()
    };
    let cross = engine
        .dupes(&DupesRequest {
            selection: products("products"),
            against: Some(products("avatars")),
            ..req(0.99)
        })
        .unwrap();
    let source_of = |i: usize| if i.is_multiple_of(3) { "avatars" } else { "products" };
    assert_eq!(found(&cross), brute(0.99, &|i, j| source_of(i) != source_of(j)));

    // A deleted row leaves every pair it was in.
    let gone = want[0].0.clone();
    engine
        .delete("images", &DeleteRequest::Ids(vec![gone.clone()]))
        .unwrap();
    let after = found(&engine.dupes(&req(0.99)).unwrap());
    assert_eq!(after, brute(0.99, &|i, j| rows[i].0 != gone && rows[j].0 != gone));

    // Bad thresholds are named.
    let e = engine.dupes(&req(f64::NAN)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput, "{e}");
    let e = engine.dupes(&req(1.5)).unwrap_err();
    assert!(e.to_string().contains("1.5"), "{e}");
}

#[test]
fn negative_prompts_remove_exactly_the_rows_that_look_more_like_them_and_top_k_deepens() {
    use vitrine_engine::negatives::Negatives;
    use vitrine_engine::query::SweepRequest;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    let demo = vitrine_engine::model::demo_model().unwrap();
    let (pos, neg) = ("a photo of a red sneaker", "a photo of a blue mug");
    let (t, _) = engine.embed_texts(&demo, &[pos, neg]).unwrap();
    // 300 rows mixing the two prompts' vectors in varying amounts, plus noise: the rows most
    // like the positive are often even more like the negative.
    let n: usize = 300;
    let mut seed = 12345u64;
    let mut rnd = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut rows: Vec<Vec<f32>> = Vec::new();
    for i in 0..n {
        // Every third row: a little more of the negative than of the positive, little noise
        // (high positive scores, yet removed); the others: the positive, much noise.
        let (a, b, noise) = if i.is_multiple_of(3) {
            let a = 0.8 + rnd() * 0.4;
            (a, a * (1.05 + rnd() * 0.15), 0.04)
        } else {
            (0.5 + rnd(), rnd() * 0.3, 0.6)
        };
        rows.push(
            (0..128)
                .map(|d| a * t[0][d] + b * t[1][d] + (rnd() - 0.5) * noise)
                .collect(),
        );
    }
    import_demo_vectors(&engine, dir.path(), &rows, &demo);
    let ids: Vec<String> = engine
        .rows("images", &SelectionSpec::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    // The brute force, by the documented rule: score − best negative > margin.
    let scored: Vec<(f64, f64, String)> = {
        let by_id: std::collections::HashMap<String, Vec<f32>> = ids
            .iter()
            .cloned()
            .zip(engine.vectors("images", &ids).unwrap().into_iter().map(Option::unwrap))
            .collect();
        let mut v: Vec<(f64, f64, String)> = by_id
            .iter()
            .map(|(id, x)| (cosine_f64(&t[0], x), cosine_f64(&t[1], x), id.clone()))
            .collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.cmp(&b.2)));
        v
    };
    let want = |keep: &dyn Fn(&(f64, f64, String)) -> bool| -> Vec<(String, f64)> {
        scored.iter().filter(|r| keep(r)).map(|r| (r.2.clone(), r.0)).collect()
    };
    let negatives = |margin: f64| Negatives {
        prompts: vec![neg.into()],
        margin,
    };
    // A threshold with at least ten rows of each kind past it, and a k whose first k rows
    // hold three removed ones.
    let vetoed_at: Vec<usize> = (0..n).filter(|&i| scored[i].0 - scored[i].1 <= 0.0).collect();
    assert!(
        vetoed_at.len() >= 30,
        "{} rows look more like the negative",
        vetoed_at.len()
    );
    let kept_at: Vec<usize> = (0..n).filter(|i| !vetoed_at.contains(i)).collect();
    let threshold = scored[vetoed_at[9]].0.min(scored[kept_at[9]].0);
    let k = vetoed_at[2] + 1;
    let sweep = |top: Option<usize>, margin: f64| {
        engine
            .sweep(&SweepRequest {
                collection: "images".into(),
                prompts: vec![pos.into()],
                threshold: if top.is_some() { None } else { Some(threshold) },
                top,
                selection: SelectionSpec::default(),
                model: None,
                negatives: negatives(margin),
                blend: vec![],
            })
            .unwrap()
    };
    let got =
        |hits: &[vitrine_engine::Hit]| -> Vec<(String, f64)> { hits.iter().map(|h| (h.id.clone(), h.score)).collect() };

    // A threshold sweep keeps exactly the rows past it that beat the negative.
    let ans = sweep(None, 0.0);
    let expect = want(&|r| r.0 >= threshold && r.0 - r.1 > 0.0);
    let removed = want(&|r| r.0 >= threshold).len() - expect.len();
    assert!(
        removed >= 10 && expect.len() >= 10,
        "the data has both kinds: {removed} removed, {} kept",
        expect.len()
    );
    assert_eq!(got(&ans.hits), expect);
    assert_eq!(ans.vetoed, removed as u64);
    // A margin asks for a clearer win.
    assert_eq!(
        got(&sweep(None, 0.05).hits),
        want(&|r| r.0 >= threshold && r.0 - r.1 > 0.05)
    );

    // Top k: the best k rows the rule keeps, even when most of the first k are removed.
    assert!(
        k < kept_at.len() && kept_at[0] > k,
        "k = {k}, first kept at {}",
        kept_at[0]
    );
    let expect_k: Vec<(String, f64)> = want(&|r| r.0 - r.1 > 0.0).into_iter().take(k).collect();
    assert_eq!(got(&sweep(Some(k), 0.0).hits), expect_k);
    let mut req = SearchRequest::new("images", Query::Text(vec![pos.into()]));
    req.k = Some(k);
    req.negatives = negatives(0.0);
    let hits = &engine.search(&req).unwrap().hits[0];
    assert_eq!(got(hits), expect_k);
    assert_eq!(
        hits.iter().map(|h| h.rank).collect::<Vec<_>>(),
        (1..=k).collect::<Vec<_>>()
    );
    // More than the rule keeps: all of them, in order.
    req.k = Some(n);
    assert_eq!(got(&engine.search(&req).unwrap().hits[0]), want(&|r| r.0 - r.1 > 0.0));
    // Without negatives nothing changes.
    req.negatives = Negatives::default();
    req.k = Some(k);
    let plain: Vec<(String, f64)> = scored[..k].iter().map(|r| (r.2.clone(), r.0)).collect();
    assert_eq!(got(&engine.search(&req).unwrap().hits[0]), plain);
    // A margin that is not a number is named.
    req.negatives = negatives(f64::NAN);
    let e = engine.search(&req).unwrap_err();
    assert!(
        e.kind() == ErrorKind::BadInput && e.to_string().contains("margin"),
        "{e}"
    );
}

/// The entries of a zip, by name.
fn unzip(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().unwrap().to_string(), b)
        })
        .collect()
}

/// Writes `entries` as a new zip at `path`.
fn rezip(path: &Path, entries: &std::collections::BTreeMap<String, Vec<u8>>) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn an_evidence_package_holds_every_row_says_what_is_missing_and_verification_finds_any_change() {
    use vitrine_engine::export::{verify_export, ExportRequest, ExportRows};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    // Five rows whose uris are local files (r2's is deleted later, r3's is remote).
    for i in 0..5 {
        std::fs::write(dir.path().join(format!("f{i}.jpg")), format!("picture {i}").repeat(100)).unwrap();
    }
    let files = dir.path().to_path_buf();
    let src = write_input(
        dir.path(),
        "rows",
        |i| {
            let uri = if i == 3 {
                "https://cdn.example/f3.jpg".to_string()
            } else {
                format!("file://{}", files.join(format!("f{i}.jpg")).display())
            };
            serde_json::json!({"id": format!("r{i}"), "uri": uri, "source": "products", "day": "2023-11-20", "note": format!("<b>{i}</b>")})
        },
        5,
    );
    import(&engine, src, 10).unwrap();
    std::fs::remove_file(dir.path().join("f2.jpg")).unwrap();
    let hits = dir.path().join("hits.csv");
    std::fs::write(
        &hits,
        "prompt,id,score\nx,r0,0.9\nx,r2,0.8\nx,r3,0.7\nx,r4,0.6\nx,ghost,0.5\nx,r0,0.9\n",
    )
    .unwrap();
    let req = ExportRequest {
        collection: "images".into(),
        rows: ExportRows::HitsFile(hits.clone()),
        reason: Some("case 4711".into()),
        by: Some("analyst".into()),
        command: Some("vitrine export --hits hits.csv".into()),
    };
    let case = dir.path().join("case.zip");
    let report = engine.export(&req, &case).unwrap();
    assert_eq!(
        (
            report.rows,
            report.originals,
            report.thumbnails,
            report.missing,
            report.changed
        ),
        (4, 2, 0, 2, 0),
        "{report:?}"
    );
    assert_eq!(report.not_found, ["ghost"]);
    assert_eq!(
        report.files, 7,
        "2 originals, metadata, query, model, receipt, manifest"
    );

    let entries = unzip(&case);
    assert_eq!(
        entries["originals/000001-f0.jpg"],
        std::fs::read(dir.path().join("f0.jpg")).unwrap()
    );
    assert!(entries.contains_key("originals/000004-f4.jpg"));
    let meta = String::from_utf8(entries["metadata.csv"].clone()).unwrap();
    let lines: Vec<&str> = meta.lines().collect();
    assert_eq!(lines.len(), 1 + 5, "{meta}");
    assert_eq!(
        lines[0],
        "n,id,source,day,timestamp,uri,score,query,file,file_sha256,status,note"
    );
    assert!(
        lines[2].contains("r2") && lines[2].contains("the original is gone") && lines[2].contains("no thumbnail"),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains("not a local file"), "{}", lines[3]);
    assert!(
        lines[5].contains("ghost") && lines[5].contains("not found"),
        "{}",
        lines[5]
    );
    let query: serde_json::Value = serde_json::from_slice(&entries["query.json"]).unwrap();
    assert_eq!(query["reason"], "case 4711");
    assert_eq!(query["hits_file"]["sha256"].as_str().unwrap().len(), 64);

    // Verified intact; the manifest's hash is the one the export reported.
    let v = verify_export(&case).unwrap();
    assert_eq!((v.files, v.problems.len()), (6, 0), "{v:?}");
    assert_eq!(v.manifest_sha256, report.manifest_sha256);
    // Never overwritten.
    let e = engine.export(&req, &case).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");

    // One changed byte, one file gone, one added: each named.
    let mut tampered = entries.clone();
    tampered.get_mut("originals/000004-f4.jpg").unwrap()[5] ^= 1;
    tampered.remove("receipt.json");
    tampered.insert("originals/extra.jpg".into(), b"x".to_vec());
    let bad = dir.path().join("bad.zip");
    rezip(&bad, &tampered);
    let v = verify_export(&bad).unwrap();
    let mut problems = v.problems.clone();
    problems.sort();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].starts_with("originals/000004-f4.jpg: altered"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("originals/extra.jpg: in the package but not in"),
        "{problems:?}"
    );
    assert!(
        problems[2].starts_with("receipt.json: listed") && problems[2].contains("missing"),
        "{problems:?}"
    );
    // Not a package at all.
    let e = verify_export(&hits).unwrap_err();
    assert!(e.to_string().contains("hits.csv"), "{e}");
    // A hits file without ids is named.
    let noid = dir.path().join("noid.csv");
    std::fs::write(&noid, "a,b\n1,2\n").unwrap();
    let e = engine
        .export(
            &ExportRequest {
                rows: ExportRows::HitsFile(noid),
                ..req.clone()
            },
            &dir.path().join("x.zip"),
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("noid.csv") && e.to_string().contains("id"),
        "{e}"
    );
    assert!(!dir.path().join("x.zip").exists());
}

#[test]
fn calibration_measures_precision_and_recall_at_every_threshold_and_a_saved_set_sweeps_at_its_threshold() {
    use vitrine_engine::calibrate::CalibrateRequest;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    let demo = vitrine_engine::model::demo_model().unwrap();
    let prompt = "a photo of a red sneaker";
    let (t, _) = engine.embed_texts(&demo, &[prompt]).unwrap();
    // 240 rows: some of the prompt in varying amounts plus noise; a reviewer says a row is a
    // true match when its share of the prompt is large (so scores and labels mostly agree).
    let n = 240;
    let mut seed = 99u64;
    let mut rnd = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut rows = Vec::new();
    let mut truth = Vec::new();
    for _ in 0..n {
        let a = rnd() * 1.2;
        truth.push(a > 0.6);
        rows.push(
            (0..128)
                .map(|d| a * t[0][d] + (rnd() - 0.5) * 0.5)
                .collect::<Vec<f32>>(),
        );
    }
    import_demo_vectors(&engine, dir.path(), &rows, &demo);
    // The reviewer labelled every other row, and one id that is no row.
    let labels = dir.path().join("labels.csv");
    let mut text = String::from("id,label\n");
    for i in (0..n).step_by(2) {
        text.push_str(&format!("r{i},{}\n", truth[i] as u8));
    }
    text.push_str("ghost,1\n");
    std::fs::write(&labels, &text).unwrap();
    let req = CalibrateRequest {
        collection: "images".into(),
        prompts: vec![prompt.into()],
        negatives: Default::default(),
        labels: labels.clone(),
        selection: SelectionSpec::default(),
        targets: vec![0.9, 0.95],
        save_as: Some("sneakers".into()),
        by: Some("qa".into()),
    };
    let ans = engine.calibrate(&req).unwrap();
    assert_eq!(ans.unknown_ids, ["ghost"]);
    // The brute force: every labelled row's cosine; at each distinct score, what a sweep at it
    // returns among the labelled rows and among all rows.
    let all: Vec<f64> = rows.iter().map(|x| cosine_f64(&t[0], x)).collect();
    let mut labelled: Vec<(f64, bool)> = (0..n).step_by(2).map(|i| (all[i], truth[i])).collect();
    labelled.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = labelled.iter().filter(|l| l.1).count();
    assert_eq!((ans.positives, ans.negatives), (positives, labelled.len() - positives));
    assert_eq!(ans.curve.len(), labelled.len(), "no ties in this data");
    for (p, (s, _)) in ans.curve.iter().zip(&labelled) {
        let at: Vec<&(f64, bool)> = labelled.iter().filter(|l| l.0 >= *s).collect();
        let tp = at.iter().filter(|l| l.1).count();
        assert_eq!(p.threshold, *s);
        assert_eq!((p.labelled, p.true_positives), (at.len(), tp));
        assert_eq!(p.precision, tp as f64 / at.len() as f64);
        assert_eq!(p.recall, tp as f64 / positives as f64);
        assert_eq!(p.count, all.iter().filter(|a| **a >= *s).count() as u64);
    }
    // The threshold for 0.9: the lowest with sample precision ≥ 0.9.
    let c90 = &ans.chosen[0];
    let want = ans.curve.iter().rfind(|p| p.precision >= 0.9).unwrap();
    assert_eq!(c90.threshold, Some(want.threshold));
    assert!(
        want.recall > 0.3 && want.recall < 1.0,
        "a threshold that matters: {want:?}"
    );

    // The saved set sweeps at that threshold, and its receipt says what to expect.
    let sets = engine.prompt_sets("images").unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!((sets[0].name.as_str(), sets[0].calibrations.len()), ("sneakers", 2));
    let swept = engine
        .sweep_calibrated("images", "sneakers", 0.9, SelectionSpec::default())
        .unwrap();
    assert_eq!(swept.hits.len() as u64, want.count);
    assert!(swept.hits.iter().all(|h| h.score >= want.threshold));
    assert_eq!(swept.receipt.calibration.as_ref(), Some(c90));
    // A later calibration of the same set replaces its target's threshold and keeps the rest.
    engine
        .calibrate(&CalibrateRequest {
            targets: vec![0.8],
            ..req.clone()
        })
        .unwrap();
    let sets = engine.prompt_sets("images").unwrap();
    let mut targets: Vec<f64> = sets[0].calibrations.iter().map(|c| c.target).collect();
    targets.sort_by(f64::total_cmp);
    assert_eq!(targets, [0.8, 0.9, 0.95]);

    // What is wrong is named.
    let e = engine
        .sweep_calibrated("images", "sneakers", 0.5, SelectionSpec::default())
        .unwrap_err();
    assert!(e.to_string().contains("no calibration for precision 0.5"), "{e}");
    let e = engine
        .sweep_calibrated("images", "boots", 0.9, SelectionSpec::default())
        .unwrap_err();
    assert!(
        e.kind() == ErrorKind::NotFound && e.to_string().contains("sneakers"),
        "{e}"
    );
    for (body, what) in [
        ("id,score\nr0,1\n", "`id` and `label`"),
        ("id,label\nr0,2\n", "line 2: label \"2\""),
        ("id,label\nr0,1\nr0,0\n", "labelled twice"),
        ("id,label\nr1,0\n", "no live row is labelled 1"),
    ] {
        std::fs::write(&labels, body).unwrap();
        let e = engine.calibrate(&req).unwrap_err();
        assert!(
            e.to_string().contains(what) && e.to_string().contains("labels.csv"),
            "{body:?}: {e}"
        );
    }
    let e = engine
        .calibrate(&CalibrateRequest {
            targets: vec![1.5],
            ..req.clone()
        })
        .unwrap_err();
    assert!(e.to_string().contains("1.5"), "{e}");
}

/// Imports `rows` (id, source, day, vector) into "images" as vectors of model `demo`, in
/// commits of 16 rows.
fn import_rows(engine: &Engine, dir: &Path, tag: &str, rows: &[(String, &str, &str, Vec<f32>)], demo: &str) {
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.3.iter().copied()).collect();
    let vectors = dir.join(format!("{tag}.npy"));
    vitrine_engine::write_npy(&vectors, &flat, rows.len(), rows[0].3.len()).unwrap();
    let metadata = dir.join(format!("{tag}.jsonl"));
    let mut f = std::fs::File::create(&metadata).unwrap();
    for (id, source, day, _) in rows {
        writeln!(f, "{}", serde_json::json!({"id": id, "source": source, "day": day})).unwrap();
    }
    let r = engine.import(
        &ImportRequest {
            collection: "images".into(),
            source: ImportSource::Npy {
                vectors,
                metadata: Some(metadata),
            },
            defaults: Defaults::default(),
            metric: Metric::Cosine,
            batch_size: 16,
            model: Some(demo.to_string()),
        },
        &mut |_, _| {},
    );
    assert_eq!(r.unwrap().inserted, rows.len() as u64);
}

#[test]
fn a_watchlist_alerts_every_new_row_past_its_threshold_once_across_compaction_and_interrupted_runs() {
    use vitrine_engine::negatives::Negatives;
    use vitrine_engine::watch::{Alert, WatchlistRequest};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let engine = Engine::open_store(&store);
    let demo = vitrine_engine::model::demo_model().unwrap();
    let (pos, neg) = ("a photo of a red sneaker", "a photo of a blue mug");
    let (t, _) = engine.embed_texts(&demo, &[pos, neg]).unwrap();
    let mut seed = 777u64;
    let mut rnd = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    // Rows mixing the positive and the negative prompt with noise, over two sources and three
    // days; `latest` holds the current version of every id.
    let mut batch = |tag: &str, n: usize| -> Vec<(String, &'static str, &'static str, Vec<f32>)> {
        (0..n)
            .map(|i| {
                let (a, b) = (rnd() * 1.2, rnd() * 0.9);
                let v: Vec<f32> = (0..128)
                    .map(|d| a * t[0][d] + b * t[1][d] + (rnd() - 0.5) * 0.5)
                    .collect();
                let source = if i % 2 == 0 { "products" } else { "avatars" };
                let day = ["2023-11-10", "2023-11-11", "2023-11-12"][i % 3];
                (format!("{tag}{i}"), source, day, v)
            })
            .collect()
    };
    let a = batch("a", 60);
    import_rows(&engine, dir.path(), "a", &a, &demo);
    // A threshold that about a third of the rows reach.
    let mut scores: Vec<f64> = a.iter().map(|r| cosine_f64(&t[0], &r.3)).collect();
    scores.sort_by(f64::total_cmp);
    let threshold = scores[40];
    let request = |name: &str| WatchlistRequest {
        name: name.into(),
        prompts: vec![pos.into()],
        threshold,
        by: "ana".into(),
        ..Default::default()
    };
    let w = engine
        .add_watchlist(
            "images",
            &WatchlistRequest {
                sources: vec!["products".into()],
                ..request("sneakers")
            },
        )
        .unwrap();
    assert_eq!(w.start, 1, "one import so far");
    engine
        .add_watchlist(
            "images",
            &WatchlistRequest {
                since: Some(day("2023-11-11")),
                ..request("history")
            },
        )
        .unwrap();
    // Names are unique, safe as folder names, and looked up with the existing ones named.
    let e = engine.add_watchlist("images", &request("sneakers")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    let e = engine.add_watchlist("images", &request("../up")).unwrap_err();
    assert!(
        e.kind() == ErrorKind::BadInput && e.to_string().contains("../up"),
        "{e}"
    );
    let e = engine.run_watchlist("images", "nope").unwrap_err();
    assert!(
        e.kind() == ErrorKind::NotFound && e.to_string().contains("history, sneakers"),
        "{e}"
    );
    let e = engine
        .add_watchlist(
            "images",
            &WatchlistRequest {
                prompts: vec![],
                ..request("empty")
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput, "{e}");

    // The brute force: (id, score) of `rows` at or above the threshold, best first.
    let expect = |rows: &[&(String, &str, &str, Vec<f32>)]| -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = rows
            .iter()
            .map(|r| (r.0.clone(), cosine_f64(&t[0], &r.3)))
            .filter(|r| r.1 >= threshold)
            .collect();
        v.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        v
    };
    let got = |alerts: &[Alert]| -> Vec<(String, f64)> { alerts.iter().map(|a| (a.id.clone(), a.score)).collect() };
    let products = |rows: &[(String, &'static str, &'static str, Vec<f32>)]| -> Vec<(String, &'static str, &'static str, Vec<f32>)> {
        rows.iter().filter(|r| r.1 == "products").cloned().collect()
    };

    // Nothing is new yet for "sneakers"; "history" back-fills its days.
    let first = engine.run_watchlist("images", "sneakers").unwrap();
    assert_eq!(
        (first.alerts.len(), first.rows_evaluated, first.from, first.to),
        (0, 0, 1, 1)
    );

    // A second import, with a1 upserted to look like the prompt: the new rows and the new
    // version of a1 are evaluated, the old rows are not.
    let mut b = batch("b", 60);
    let a1: Vec<f32> = t[0].iter().map(|x| x * 2.0).collect();
    b.push(("a1".to_string(), "products", "2023-11-10", a1));
    b.push(("a0".to_string(), "avatars", "2023-11-10", a[0].3.clone()));
    import_rows(&engine, dir.path(), "b", &b, &demo);
    let run = engine.run_watchlist("images", "sneakers").unwrap();
    let want = expect(&products(&b).iter().collect::<Vec<_>>());
    assert!(want.len() >= 8, "{} hits", want.len());
    assert_eq!(got(&run.alerts), want);
    assert_eq!((run.from, run.to, run.run), (1, 2, 2));
    assert_eq!(run.rows_evaluated, products(&b).len() as u64);
    assert!(run
        .alerts
        .iter()
        .all(|x| x.arrival == Some(2) && x.source == "products" && x.query == pos));
    assert!(run.alerts.iter().any(|x| x.id == "a1"), "the upserted row is new");
    // "history": every current row from 2023-11-11 on, and every new row, once.
    let current: Vec<&(String, &str, &str, Vec<f32>)> = a
        .iter()
        .filter(|r| !b.iter().any(|n| n.0 == r.0))
        .chain(b.iter())
        .collect();
    let hist = engine.run_watchlist("images", "history").unwrap();
    assert!(hist.backfill);
    let want_hist = expect(
        &current
            .iter()
            .copied()
            .filter(|r| r.2 >= "2023-11-11" || r.0.starts_with('b') || r.0 == "a1" || r.0 == "a0")
            .collect::<Vec<_>>(),
    );
    assert_eq!(got(&hist.alerts), want_hist);
    // Run again: nothing new, nothing repeated.
    for name in ["sneakers", "history"] {
        let again = engine.run_watchlist("images", name).unwrap();
        assert_eq!((again.alerts.len(), again.rows_evaluated), (0, 0), "{name}");
    }

    // Compaction rewrites the segments; the new rows of the next import are still exactly the
    // new ones.
    engine.compact("images").unwrap();
    let c = batch("c", 60);
    import_rows(&engine, dir.path(), "c", &c, &demo);
    engine.compact("images").unwrap();
    let run = engine.run_watchlist("images", "sneakers").unwrap();
    assert_eq!(got(&run.alerts), expect(&products(&c).iter().collect::<Vec<_>>()));
    assert_eq!(run.rows_evaluated, products(&c).len() as u64);

    // Interrupted runs: a run killed after appending its alerts but before moving its cursor
    // (state.json as before), and one killed in the middle of its last alert's line.
    let wdir = store.join("collections/images/watchlists/sneakers");
    let d = batch("d", 60);
    import_rows(&engine, dir.path(), "d", &d, &demo);
    let state_before = std::fs::read(wdir.join("state.json")).unwrap();
    let log_before = std::fs::read(wdir.join("alerts.jsonl")).unwrap();
    let run = engine.run_watchlist("images", "sneakers").unwrap();
    let want_d = expect(&products(&d).iter().collect::<Vec<_>>());
    assert!(want_d.len() >= 3, "{} hits", want_d.len());
    assert_eq!(got(&run.alerts), want_d);
    let log_after = std::fs::read(wdir.join("alerts.jsonl")).unwrap();
    std::fs::write(wdir.join("state.json"), &state_before).unwrap();
    let again = engine.run_watchlist("images", "sneakers").unwrap();
    assert_eq!((again.alerts.len(), again.already_alerted), (0, want_d.len() as u64));
    assert_eq!(std::fs::read(wdir.join("alerts.jsonl")).unwrap(), log_after);
    // Torn: the last line cut in half, the cursor back.
    std::fs::write(wdir.join("state.json"), &state_before).unwrap();
    let cut = log_after.len()
        - (log_after.len()
            - 1
            - log_after[..log_after.len() - 1]
                .iter()
                .rposition(|&c| c == b'\n')
                .unwrap())
            / 2;
    std::fs::write(wdir.join("alerts.jsonl"), &log_after[..cut]).unwrap();
    let repaired = engine.run_watchlist("images", "sneakers").unwrap();
    assert_eq!(got(&repaired.alerts), want_d[want_d.len() - 1..].to_vec());
    assert_eq!(repaired.already_alerted, want_d.len() as u64 - 1);
    assert_eq!(
        repaired.alerts[0].n,
        run.alerts.last().unwrap().n,
        "the same number again"
    );
    // The whole log: every alert once, numbered 1, 2, ..., the new rows of b, c and d.
    let all = engine.alerts("images", "sneakers", 0, usize::MAX).unwrap();
    assert_eq!(
        all.iter().map(|x| x.n).collect::<Vec<_>>(),
        (1..=all.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(
        all.len(),
        log_before.iter().filter(|&&c| c == b'\n').count() + want_d.len()
    );
    let keys: std::collections::HashSet<(String, Option<i64>)> =
        all.iter().map(|x| (x.id.clone(), x.arrival)).collect();
    assert_eq!(keys.len(), all.len());
    assert_eq!(
        engine.alerts("images", "sneakers", all.len() as u64 - 2, 10).unwrap(),
        all[all.len() - 2..].to_vec()
    );

    // Negatives: the rule of search and sweep, on the new rows.
    engine
        .add_watchlist(
            "images",
            &WatchlistRequest {
                negatives: Negatives {
                    prompts: vec![neg.into()],
                    margin: 0.0,
                },
                ..request("no-mugs")
            },
        )
        .unwrap();
    let e = batch("e", 90);
    import_rows(&engine, dir.path(), "e", &e, &demo);
    let run = engine.run_watchlist("images", "no-mugs").unwrap();
    let kept: Vec<&(String, &str, &str, Vec<f32>)> = e
        .iter()
        .filter(|r| cosine_f64(&t[0], &r.3) - cosine_f64(&t[1], &r.3) > 0.0)
        .collect();
    assert_eq!(got(&run.alerts), expect(&kept));
    assert_eq!(
        run.vetoed as usize,
        expect(&e.iter().collect::<Vec<_>>()).len() - run.alerts.len()
    );
    assert!(run.vetoed > 0, "the data has rows the negative removes");

    // Listing and removal: the status says where each stands; a removed watchlist's alerts stay
    // on disk.
    let list = engine.watchlists("images").unwrap();
    let names: Vec<&str> = list.iter().map(|s| s.watchlist.name.as_str()).collect();
    assert_eq!(names, ["history", "no-mugs", "sneakers"]);
    let s = &list[2];
    assert_eq!((s.cursor, s.published, s.alerts, s.runs), (4, 5, all.len() as u64, 5));
    let moved = engine.remove_watchlist("images", "history").unwrap();
    assert!(moved.join("alerts.jsonl").exists());
    assert_eq!(engine.watchlist_names("images").unwrap(), ["no-mugs", "sneakers"]);
    assert_eq!(
        engine.run_watchlist("images", "history").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn weighted_prompts_blend_into_one_query_vector_and_search_and_sweep_it_exactly() {
    use vitrine_engine::query::{SweepRequest, Weighted};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    let demo = vitrine_engine::model::demo_model().unwrap();
    let texts = [
        "a photo of a red sneaker",
        "a photo of a blue mug",
        "a drawing of a cat",
    ];
    // Embedded as the engine embeds them: the query texts in one batch, the weighted prompts in
    // another (a batch pads its texts to one length, which moves the last bits).
    let (mut t, _) = engine.embed_texts(&demo, &texts[..1]).unwrap();
    t.extend(engine.embed_texts(&demo, &texts[1..]).unwrap().0);
    let mut seed = 99u64;
    let mut rnd = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    let rows: Vec<Vec<f32>> = (0..200)
        .map(|_| {
            let (a, b, c) = (rnd(), rnd(), rnd());
            (0..128)
                .map(|d| a * t[0][d] + b * t[1][d] + c * t[2][d] + (rnd() - 0.5) * 0.3)
                .collect()
        })
        .collect();
    import_demo_vectors(&engine, dir.path(), &rows, &demo);

    // rclip's notation, and what it refuses.
    let add = vec![
        Weighted::parse("0.5:a photo of a blue mug").unwrap(),
        Weighted::parse(texts[2]).unwrap().negated(),
    ];
    assert_eq!((add[0].weight, add[1].weight), (0.5, -1.0));
    assert_eq!(Weighted::parse("photo: a cat").unwrap().text, "photo: a cat");
    for bad in ["2:", "nan:a cat", " "] {
        assert_eq!(Weighted::parse(bad).unwrap_err().kind(), ErrorKind::BadInput, "{bad:?}");
    }

    // The blended query, by the documented rule: unit(e0 + 0.5·e1 − e2), in f64, rounded once.
    let sum: Vec<f64> = (0..128)
        .map(|d| t[0][d] as f64 + 0.5 * t[1][d] as f64 - t[2][d] as f64)
        .collect();
    let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
    let q: Vec<f32> = sum.iter().map(|x| (x / norm) as f32).collect();
    let ids: Vec<String> = engine
        .rows("images", &SelectionSpec::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let vectors = engine.vectors("images", &ids).unwrap();
    let mut brute: Vec<(String, f64)> = ids
        .into_iter()
        .zip(vectors)
        .map(|(id, v)| (id, cosine_f64(&q, &v.unwrap())))
        .collect();
    brute.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut req = SearchRequest::new(
        "images",
        Query::Blend {
            texts: vec![texts[0].into()],
            add: add.clone(),
        },
    );
    req.k = Some(15);
    let ans = engine.search(&req).unwrap();
    let got: Vec<(String, f64)> = ans.hits[0].iter().map(|h| (h.id.clone(), h.score)).collect();
    assert_eq!(got, brute[..15].to_vec());
    assert_eq!(
        ans.labels[0],
        "a photo of a red sneaker +0.5 \"a photo of a blue mug\" -1 \"a drawing of a cat\""
    );
    // It is not the plain prompt's answer.
    let plain = engine
        .search(&{
            let mut r = SearchRequest::new("images", Query::Text(vec![texts[0].into()]));
            r.k = Some(15);
            r
        })
        .unwrap();
    assert_ne!(
        plain.hits[0].iter().map(|h| &h.id).collect::<Vec<_>>(),
        got.iter().map(|h| &h.0).collect::<Vec<_>>()
    );
    // A sweep with the same blend returns every row at or above a threshold for that vector.
    let threshold = brute[40].1;
    let sweep = engine
        .sweep(&SweepRequest {
            collection: "images".into(),
            prompts: vec![texts[0].into()],
            threshold: Some(threshold),
            top: None,
            selection: SelectionSpec::default(),
            model: None,
            negatives: Default::default(),
            blend: add.clone(),
        })
        .unwrap();
    let mut swept: Vec<(String, f64)> = sweep.hits.iter().map(|h| (h.id.clone(), h.score)).collect();
    swept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    assert_eq!(
        swept,
        brute.iter().filter(|r| r.1 >= threshold).cloned().collect::<Vec<_>>()
    );
    // Weights that cancel the query out are refused.
    let cancel = SearchRequest::new(
        "images",
        Query::Blend {
            texts: vec![texts[0].into()],
            add: vec![Weighted::parse(texts[0]).unwrap().negated()],
        },
    );
    let e = engine.search(&cancel).unwrap_err();
    assert!(
        e.kind() == ErrorKind::BadInput && e.to_string().contains("cancel"),
        "{e}"
    );
}

/// Bit rot in the engine's logs: a bit flipped at any byte of the ledger, the legal holds or the
/// tombstones is caught by `check`, which names the file; readers refuse the damaged log rather
/// than act on it (a hold must never silently vanish).
#[test]
fn a_bit_flipped_anywhere_in_the_ledger_holds_or_tombstones_is_caught_by_check_and_named() {
    use vitrine_engine::holds::HoldRequest;
    use vitrine_engine::ledger::{Ledger, LedgerEntry, State};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_store(dir.path().join("store"));
    let src = write_input(
        dir.path(),
        "a",
        |i| serde_json::json!({"id": format!("r{i}"), "source": "products", "day": format!("2023-11-0{}", 1 + i % 3)}),
        12,
    );
    import(&engine, src, 100).unwrap();
    let hold = HoldRequest {
        source: Some("products".into()),
        from: day("2023-11-01"),
        to: day("2023-11-02"),
        reason: "case 4711".into(),
        by: "compliance@example".into(),
    };
    engine.place_hold("images", hold).unwrap();
    engine.drop_partition("images", "products", day("2023-11-03")).unwrap();
    let side = engine.backend().side_dir("images").unwrap();
    let mut ledger = Ledger::open(&side.join("ledger.jsonl")).unwrap();
    ledger
        .record_failures(vec![LedgerEntry {
            key: "x1".into(),
            uri: "file:///photos/x1.jpg".into(),
            source: "products".into(),
            day: Some(day("2023-11-02")),
            state: State::Failed,
            reason: Some("not an image".into()),
            scope: None,
        }])
        .unwrap();
    let clean = engine.check(Some("images")).unwrap();
    assert!(clean[0].report.problems.is_empty(), "{clean:?}");
    let mut flips = 0;
    for name in ["ledger.jsonl", "holds.jsonl", "forgotten.jsonl"] {
        let path = side.join(name);
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1 << (i % 8);
            std::fs::write(&path, &bad).unwrap();
            let report = &engine.check(Some("images")).unwrap()[0].report;
            assert!(
                report.problems.iter().any(|p| p.contains(name)),
                "{name} byte {i} ({:?}): {:?}",
                good[i] as char,
                report.problems
            );
            flips += 1;
        }
        std::fs::write(&path, &good).unwrap();
    }
    assert!(flips > 300, "{flips}");
    // A reader refuses a damaged hold log: retention must not run as if the hold were gone.
    let holds = side.join("holds.jsonl");
    let good = std::fs::read(&holds).unwrap();
    let mut bad = good.clone();
    let at = good.iter().position(|b| *b == b'4').unwrap(); // a digit of "case 4711"
    bad[at] = b'5';
    std::fs::write(&holds, &bad).unwrap();
    let e = engine.holds("images").unwrap_err();
    // Damage, not the caller's fault: a server answers 500, not 400.
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let e = e.to_string();
    assert!(e.contains("holds.jsonl") && e.contains("checksum"), "{e}");
    std::fs::write(&holds, &good).unwrap();
    assert_eq!(engine.holds("images").unwrap().len(), 1);
}
