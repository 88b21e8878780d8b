//! The `vitrine` binary end to end: imports in every format, search output, partition
//! management, bad input, a second writer, and a real `kill -9` in the middle of an import.

mod common;

use common::{clip_fixture, copy_files, fails, ok, s, vectors, vitrine};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use vitrine_engine::{write_npy as write_f32, Engine, Selection};

#[test]
fn import_every_metadata_format_then_search_in_every_output_format() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (n, dim) = (60, 8);
    let vecs = vectors(n, dim);
    let npy = dir.path().join("emb.npy");
    write_f32(&npy, &vecs, n, dim).unwrap();
    // JSONL: timestamps as RFC 3339, unix seconds, or days.
    let jsonl = dir.path().join("meta.jsonl");
    let mut f = std::fs::File::create(&jsonl).unwrap();
    for i in 0..n {
        let ts = match i % 3 {
            0 => serde_json::json!({"timestamp": format!("2023-11-{:02}T10:00:00Z", 19 + i % 5)}),
            1 => serde_json::json!({"timestamp": 1_700_388_000 + (i % 5) as i64 * 86_400}),
            _ => serde_json::json!({"day": format!("2023-11-{:02}", 19 + i % 5)}),
        };
        let mut obj = serde_json::json!({"id": format!("j{i}"), "uri": format!("file:///j/{i}.jpg"),
            "source": if i % 2 == 0 { "products" } else { "avatars" }, "price": i * 10, "city": format!("c{}", i % 3)});
        obj.as_object_mut().unwrap().extend(ts.as_object().unwrap().clone());
        writeln!(f, "{obj}").unwrap();
    }
    drop(f);
    let out = ok(&store, &["import", "--vectors", s(&npy), "--metadata", s(&jsonl)]);
    assert!(out.contains("imported 60 vectors"), "{out}");

    // Query = row 9's vector: it must come back first with cosine 1.
    let q = dir.path().join("q.npy");
    write_f32(&q, &vecs[9 * dim..10 * dim], 1, dim).unwrap();
    let out = ok(
        &store,
        &["search", "--vector-file", s(&q), "-k", "3", "--format", "jsonl"],
    );
    let mut hits: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // JSON output ends with the recall receipt.
    let receipt = hits.pop().unwrap();
    assert_eq!(receipt["receipt"]["rows_scanned"], 60, "{receipt}");
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["id"], "j9");
    assert_eq!(hits[0]["query"], 0);
    assert_eq!(hits[0]["rank"], 1);
    assert!((hits[0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(hits[0]["source"], "avatars");
    assert_eq!(hits[0]["day"], "2023-11-23");
    assert_eq!(hits[0]["uri"], "file:///j/9.jpg");
    assert_eq!(hits[0]["price"], 90);
    // Selection: products on 2023-11-19..20 with a filter; every hit obeys it.
    let out = ok(
        &store,
        &[
            "search",
            "--vector-file",
            s(&q),
            "-k",
            "100",
            "--source",
            "products",
            "--from",
            "2023-11-19",
            "--to",
            "2023-11-20",
            "--filter",
            "price >= 100 and city != \"c0\"",
            "--format",
            "jsonl",
        ],
    );
    let mut hits: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let receipt = hits.pop().unwrap();
    assert_eq!(
        receipt["receipt"]["partitions_scanned"], 2,
        "pruned to products × 2 days"
    );
    let want = (0..n)
        .filter(|i| i % 2 == 0 && i % 5 < 2 && i * 10 >= 100 && i % 3 != 0)
        .count();
    assert_eq!(hits.len(), want);
    assert!(hits
        .iter()
        .all(|h| h["source"] == "products" && h["price"].as_i64().unwrap() >= 100));
    // CSV has a header and one line per hit; threshold returns everything at or above it.
    let out = ok(
        &store,
        &[
            "search",
            "--vector-file",
            s(&q),
            "--threshold",
            "0.2",
            "--format",
            "csv",
        ],
    );
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap(), "query,rank,id,score,source,day,uri,price,city");
    let scores: Vec<f64> = lines.map(|l| l.split(',').nth(3).unwrap().parse().unwrap()).collect();
    assert!(!scores.is_empty() && scores.iter().all(|s| *s >= 0.2));
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));

    // CSV metadata into a second collection, with inferred column types.
    let csv = dir.path().join("meta.csv");
    let mut text = String::from("id,uri,source,timestamp,price,flag\n");
    for i in 0..n {
        text += &format!(
            "c{i},u{i},products,{},{}.5,{}\n",
            1_700_388_000 + i as i64 * 3600,
            i,
            i % 2 == 0
        );
    }
    std::fs::write(&csv, text).unwrap();
    ok(
        &store,
        &[
            "import",
            "-c",
            "fromcsv",
            "--vectors",
            s(&npy),
            "--metadata",
            s(&csv),
            "--metric",
            "ip",
        ],
    );
    let info: serde_json::Value = serde_json::from_str(&ok(&store, &["collection", "info", "fromcsv"])).unwrap();
    assert_eq!(info["metric"], "ip");
    assert_eq!(info["rows"], 60);
    assert_eq!(
        info["fields"],
        serde_json::json!([{"name": "price", "type": "float"}, {"name": "flag", "type": "bool"}, {"name": "arrival", "type": "int"}])
    );
    let out = ok(
        &store,
        &[
            "search",
            "-c",
            "fromcsv",
            "--vector-file",
            s(&q),
            "-k",
            "1",
            "--filter",
            "flag == false",
            "--format",
            "jsonl",
        ],
    );
    // Under ip the longest vector along row 9's direction wins: rows 1, 9, .., 57 share it, 57 is longest.
    assert!(out.contains("\"id\":\"c57\""), "{out}");

    // A clip-retrieval folder: img_emb_N.npy + metadata_N.parquet.
    let cr = dir.path().join("cr");
    std::fs::create_dir_all(cr.join("img_emb")).unwrap();
    std::fs::create_dir_all(cr.join("metadata")).unwrap();
    for part in 0..2 {
        write_f32(
            &cr.join(format!("img_emb/img_emb_{part}.npy")),
            &vecs[part * 30 * dim..(part + 1) * 30 * dim],
            30,
            dim,
        )
        .unwrap();
        write_parquet(&cr.join(format!("metadata/metadata_{part}.parquet")), part * 30, 30);
    }
    ok(
        &store,
        &[
            "import",
            "-c",
            "cr",
            "--clip-retrieval",
            s(&cr),
            "--source",
            "products",
            "--day",
            "2023-11-19",
        ],
    );
    let out = ok(
        &store,
        &[
            "search",
            "-c",
            "cr",
            "--vector-file",
            s(&q),
            "-k",
            "1",
            "--format",
            "jsonl",
        ],
    );
    let hit: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(hit["id"], "key9");
    assert_eq!(hit["uri"], "images/9.jpg");
    assert_eq!(hit["caption"], "caption 9");
    assert_eq!(hit["day"], "2023-11-19");
    let list = ok(&store, &["collection", "list"]);
    assert!(
        list.contains("cr") && list.contains("fromcsv") && list.contains("images"),
        "{list}"
    );
}

fn write_parquet(path: &Path, first: usize, n: usize) {
    use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let key: ArrayRef = Arc::new(StringArray::from(
        (first..first + n).map(|i| format!("key{i}")).collect::<Vec<_>>(),
    ));
    let path_col: ArrayRef = Arc::new(StringArray::from(
        (first..first + n)
            .map(|i| format!("images/{i}.jpg"))
            .collect::<Vec<_>>(),
    ));
    let caption: ArrayRef = Arc::new(StringArray::from(
        (first..first + n).map(|i| format!("caption {i}")).collect::<Vec<_>>(),
    ));
    let sim: ArrayRef = Arc::new(Float64Array::from(
        (first..first + n).map(|i| i as f64 / 100.0).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_from_iter([
        ("key", key),
        ("image_path", path_col),
        ("caption", caption),
        ("similarity", sim),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn bad_input_gets_an_error_naming_the_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let dim = 4;
    let good = dir.path().join("good.npy");
    write_f32(&good, &vectors(10, dim), 10, dim).unwrap();
    ok(
        &store,
        &[
            "import",
            "--vectors",
            s(&good),
            "--source",
            "products",
            "--day",
            "2023-11-19",
        ],
    );
    let manifest = || std::fs::read_to_string(store.join("collections/images/manifest.json")).unwrap();
    let before = manifest();

    let mut v = vectors(10, dim);
    v[7 * dim + 2] = f32::NAN;
    let nan = dir.path().join("nan.npy");
    write_f32(&nan, &v, 10, dim).unwrap();
    let e = fails(
        &store,
        &[
            "import",
            "--vectors",
            s(&nan),
            "--source",
            "products",
            "--day",
            "2023-11-19",
        ],
    );
    assert!(e.contains("nan.npy") && e.contains("row 7") && e.contains("NaN"), "{e}");

    let wide = dir.path().join("wide.npy");
    write_f32(&wide, &vectors(3, 5), 3, 5).unwrap();
    let e = fails(
        &store,
        &[
            "import",
            "--vectors",
            s(&wide),
            "--source",
            "products",
            "--day",
            "2023-11-19",
        ],
    );
    assert!(
        e.contains("wide.npy") && e.contains("dimension 5") && e.contains("dimension 4"),
        "{e}"
    );

    let zero = dir.path().join("zero.npy");
    let mut z = vectors(3, dim);
    z[dim..2 * dim].fill(0.0);
    write_f32(&zero, &z, 3, dim).unwrap();
    let e = fails(
        &store,
        &[
            "import",
            "--vectors",
            s(&zero),
            "--source",
            "products",
            "--day",
            "2023-11-19",
        ],
    );
    assert!(e.contains("row 1") && e.contains("zero vector"), "{e}");

    let short = dir.path().join("short.jsonl");
    std::fs::write(&short, "{\"id\":\"a\",\"source\":\"x\",\"day\":\"2023-11-19\"}\n").unwrap();
    let e = fails(&store, &["import", "--vectors", s(&good), "--metadata", s(&short)]);
    assert!(
        e.contains("short.jsonl") && e.contains("1 metadata rows for 10 vectors"),
        "{e}"
    );

    let badts = dir.path().join("badts.jsonl");
    let mut text = String::new();
    for i in 0..10 {
        let ts = if i == 6 { "last tuesday" } else { "2023-11-19T00:00:00Z" };
        text += &format!("{{\"id\":\"b{i}\",\"source\":\"x\",\"timestamp\":\"{ts}\"}}\n");
    }
    std::fs::write(&badts, text).unwrap();
    let e = fails(&store, &["import", "--vectors", s(&good), "--metadata", s(&badts)]);
    assert!(
        e.contains("badts.jsonl") && e.contains("line 7") && e.contains("\"timestamp\"") && e.contains("last tuesday"),
        "{e}"
    );

    let bytes = std::fs::read(&good).unwrap();
    let trunc = dir.path().join("trunc.npy");
    std::fs::write(&trunc, &bytes[..bytes.len() - 7]).unwrap();
    let e = fails(
        &store,
        &["import", "--vectors", s(&trunc), "--source", "p", "--day", "2023-11-19"],
    );
    assert!(e.contains("trunc.npy") && e.contains("truncated"), "{e}");

    let nosrc = fails(&store, &["import", "--vectors", s(&good), "--day", "2023-11-19"]);
    assert!(nosrc.contains("no source"), "{nosrc}");
    assert_eq!(manifest(), before, "failed imports changed the store");

    let q = dir.path().join("q.npy");
    write_f32(&q, &vectors(1, dim), 1, dim).unwrap();
    let e = fails(
        &store,
        &[
            "search",
            "--vector-file",
            s(&q),
            "--filter",
            "source == \"a\" and (price > 3",
        ],
    );
    assert!(e.contains("position") && e.contains('^'), "{e}");
    let e = fails(
        &store,
        &["search", "--vector-file", s(&q), "--filter", "colour == \"red\""],
    );
    assert!(
        e.contains("unknown field \"colour\"") && e.contains("position 0"),
        "{e}"
    );
    let e = fails(&store, &["search", "-c", "nope", "--vector-file", s(&q)]);
    assert!(e.contains("\"nope\" does not exist") && e.contains("images"), "{e}");
    let e = fails(&store, &["search", "--vector-file", s(&wide)]);
    assert!(e.contains("wide.npy") && e.contains("dimension 5"), "{e}");
    let e = fails(
        &store,
        &["partitions", "drop", "--source", "avatars", "--day", "2023-11-19"],
    );
    assert!(
        e.contains("source \"avatars\" has no partitions") && e.contains("its sources: products"),
        "{e}"
    );
    let e = fails(
        &store,
        &["partitions", "drop", "--source", "products", "--day", "2020-01-01"],
    );
    assert!(
        e.contains("partition source=\"products\" day=2020-01-01 does not exist"),
        "{e}"
    );
    let e = fails(&store, &["search", "--vector-file", s(&q), "--from", "2023-11-31"]);
    assert!(e.contains("--from") && e.contains("2023-11-31"), "{e}");

    // A second writer is refused and told who holds the lock; readers still work.
    let holder = Engine::open_store(&store).backend().writer().unwrap();
    let e = fails(
        &store,
        &[
            "import",
            "--vectors",
            s(&good),
            "--source",
            "products",
            "--day",
            "2023-11-20",
        ],
    );
    assert!(
        e.contains("locked by another writer") && e.contains(&format!("pid {}", std::process::id())),
        "{e}"
    );
    ok(&store, &["search", "--vector-file", s(&q), "-k", "1"]);
    drop(holder);
    assert_eq!(manifest(), before);
}

#[test]
fn partitions_list_drop_retain_delete_and_compact() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (n, dim) = (300, 8);
    let npy = dir.path().join("v.npy");
    write_f32(&npy, &vectors(n, dim), n, dim).unwrap();
    let meta = dir.path().join("m.csv");
    let mut text = String::from("id,source,day,uri\n");
    for i in 0..n {
        text += &format!(
            "r{i},{},2023-11-{:02},u\n",
            if i % 2 == 0 { "products" } else { "avatars" },
            1 + (i / 2) % 10
        );
    }
    std::fs::write(&meta, text).unwrap();
    ok(&store, &["import", "--vectors", s(&npy), "--metadata", s(&meta)]);
    let list = ok(&store, &["partitions", "list", "--format", "jsonl"]);
    let parts: Vec<serde_json::Value> = list.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parts.len(), 20);
    assert!(parts
        .iter()
        .all(|p| p["rows"] == 15 && p["deleted"] == 0 && p["bytes"].as_u64().unwrap() > 0));

    let out = ok(
        &store,
        &["partitions", "drop", "--source", "avatars", "--day", "2023-11-02"],
    );
    assert!(out.contains("15 rows"), "{out}");
    let out = ok(&store, &["partitions", "retain", "--before", "2023-11-04", "--dry-run"]);
    assert!(out.contains("would drop 5 partitions"), "{out}");
    // A legal hold keeps its day from retention and from a drop, until released.
    let hold = [
        "hold",
        "add",
        "--source",
        "products",
        "--from",
        "2023-11-03",
        "--to",
        "2023-11-03",
        "--reason",
        "case 9",
        "--by",
        "tester",
    ];
    assert!(ok(&store, &hold).contains("placed hold 1"));
    let e = fails(
        &store,
        &[
            "hold",
            "add",
            "--from",
            "2023-11-03",
            "--to",
            "2023-11-01",
            "--reason",
            "x",
            "--by",
            "t",
        ],
    );
    assert!(e.contains("--from"), "{e}");
    let out = ok(&store, &["partitions", "retain", "--before", "2023-11-04", "--dry-run"]);
    assert!(
        out.contains("would drop 4 partitions") && out.contains("kept 1 partitions under legal hold"),
        "{out}"
    );
    assert!(out.contains("products 2023-11-03 15 rows (hold 1: case 9)"), "{out}");
    let e = fails(
        &store,
        &["partitions", "drop", "--source", "products", "--day", "2023-11-03"],
    );
    assert!(e.contains("legal hold 1"), "{e}");
    assert!(ok(
        &store,
        &["hold", "release", "1", "--reason", "closed", "--by", "tester"]
    )
    .contains("released hold 1"));
    let list = ok(&store, &["hold", "list", "--format", "jsonl"]);
    let h: serde_json::Value = serde_json::from_str(list.lines().next().unwrap()).unwrap();
    assert_eq!(
        (h["reason"].as_str(), h["release_reason"].as_str()),
        (Some("case 9"), Some("closed")),
        "{h}"
    );
    let out = ok(&store, &["partitions", "retain", "--before", "2023-11-04"]);
    assert!(out.contains("dropped 5 partitions"), "{out}");
    assert_eq!(
        ok(&store, &["partitions", "list", "--format", "jsonl"]).lines().count(),
        14
    );

    let e = fails(&store, &["delete"]);
    assert!(e.contains("--all"), "{e}");
    let out = ok(&store, &["delete", "--ids", "r10,r11,missing"]);
    assert!(out.contains("deleted 2 rows"), "{out}");
    let out = ok(
        &store,
        &["delete", "--source", "products", "--filter", "day == \"2023-11-05\""],
    );
    assert!(out.contains("deleted 15 rows"), "{out}");
    let parts: Vec<serde_json::Value> = ok(&store, &["partitions", "list", "--format", "jsonl"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parts.iter().map(|p| p["deleted"].as_u64().unwrap()).sum::<u64>(), 17);
    let out = ok(&store, &["compact"]);
    assert!(out.contains("17 deleted rows reclaimed"), "{out}");
    let parts: Vec<serde_json::Value> = ok(&store, &["partitions", "list", "--format", "jsonl"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parts.iter().map(|p| p["deleted"].as_u64().unwrap()).sum::<u64>(), 0);
    assert_eq!(
        parts.iter().map(|p| p["rows"].as_u64().unwrap()).sum::<u64>(),
        300 - 15 - 75 - 17
    );
    assert!(ok(&store, &["check"]).contains("all checksums match"));
    ok(&store, &["collection", "drop", "images"]);
    assert!(!ok(&store, &["collection", "list"]).contains("images"));
}

#[test]
fn kill_9_in_the_middle_of_an_import_keeps_every_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (n, dim, batch) = (400_000, 16, 2_000);
    let mut vecs = vectors(n, dim);
    for (i, v) in vecs.iter_mut().enumerate() {
        *v += (i % 97) as f32 * 1e-3; // distinct rows
    }
    let npy = dir.path().join("big.npy");
    write_f32(&npy, &vecs, n, dim).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .args([
            "--store",
            s(&store),
            "-v",
            "import",
            "--vectors",
            s(&npy),
            "--source",
            "products",
            "--day",
            "2023-11-19",
        ])
        .args(["--id-prefix", "r", "--batch-size", &batch.to_string()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the third acknowledged commit, then kill -9.
    let mut acknowledged = 0u64;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut commits = 0;
    while let Some(Ok(line)) = lines.next() {
        if let Some(rest) = line.split("committed=").nth(1) {
            acknowledged = rest.split_whitespace().next().unwrap().parse().unwrap();
            commits += 1;
            if commits == 3 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(acknowledged, 3 * batch as u64);

    // The store opens, holds every acknowledged row with the right vector, and no half batch.
    let reader = Engine::open_store(&store).reader("images").unwrap();
    let mut rows = Vec::new();
    reader
        .scan(&Selection::default(), &[], true, &mut |r| {
            rows.push((r.id, r.vector.unwrap()));
            Ok(())
        })
        .unwrap();
    assert!(
        rows.len() as u64 >= acknowledged,
        "lost acknowledged rows: {} < {acknowledged}",
        rows.len()
    );
    assert!(
        rows.len() < n,
        "the import finished before the kill; the test needs a bigger input"
    );
    assert_eq!(rows.len() % batch, 0, "a partial batch is visible");
    for (id, v) in &rows {
        let i: usize = id.strip_prefix('r').unwrap().parse().unwrap();
        assert_eq!(v.as_slice(), &vecs[i * dim..(i + 1) * dim], "row {id} differs");
    }
    drop(reader);
    // The lock died with the process; re-running the import completes it without duplicates.
    ok(
        &store,
        &[
            "import",
            "--vectors",
            s(&npy),
            "--source",
            "products",
            "--day",
            "2023-11-19",
            "--id-prefix",
            "r",
            "--batch-size",
            "100000",
        ],
    );
    let info = Engine::open_store(&store).collection_info("images").unwrap();
    assert_eq!(info.rows, n as u64);
    // No orphans of the killed commit: one file per live segment, and at most one deletion
    // bitmap per live segment (the re-run replaced rows, so some segments have one).
    let names: Vec<String> = std::fs::read_dir(store.join("collections/images/segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let segs: Vec<&str> = names.iter().filter_map(|n| n.strip_suffix(".vseg")).collect();
    assert_eq!(
        segs.len(),
        info.segments,
        "orphans of the killed commit were not cleaned up: {names:?}"
    );
    let mut dels: Vec<&str> = names
        .iter()
        .filter_map(|n| n.split_once(".del-").map(|(s, _)| s))
        .collect();
    let n_dels = dels.len();
    dels.sort();
    dels.dedup();
    assert_eq!(n_dels, dels.len(), "two bitmaps for one segment: {names:?}");
    assert!(
        dels.iter().all(|d| segs.contains(d)),
        "a bitmap of a dead segment: {names:?}"
    );
}

#[test]
fn demo_runs_offline_and_answers_its_sample_questions_right() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = ok(&store, &["demo"]);
    assert!(out.contains("indexed 6000 images"), "{out}");
    // English, Chinese and image queries: every one of the top 10 is the right thing and colour.
    assert_eq!(out.matches("10 of the top 10 are right").count(), 3, "{out}");
    assert!(out.contains("uploaded 2023-11-19 .. 2023-11-23"), "{out}");
    // Only those 5 days of products were scanned.
    assert!(out.contains("in 5 of 90 partitions"), "{out}");
    let classified = out.lines().find(|l| l.contains("labelled right")).unwrap();
    let nums: Vec<f64> = classified.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(nums[0] >= 0.9 * nums[1], "{classified}");
    assert!(out.contains("Sweep") && out.contains("are handguns"), "{out}");
    // The watchlist added before the newest day fired on it, and on handguns.
    let fired = out.lines().skip_while(|l| !l.contains("== Watchlist")).nth(1).unwrap();
    let n: Vec<usize> = fired.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(fired.contains("alerts, all from 2023-11-23;"), "{fired}");
    assert!(n[0] >= 5 && n[1] >= n[0] * 9 / 10 && n[1] >= n[2] * 9 / 10, "{fired}");
    // Every planted reuse of a product photo as an avatar is found, and nothing else.
    assert!(
        out.contains("3 clusters span products and avatars; 3 of the 3 product photos planted as avatars"),
        "{out}"
    );
    // The calibrated sweep delivers at least the precision it was calibrated for.
    let cal = out
        .lines()
        .skip_while(|l| !l.contains("== Calibrated sweep"))
        .nth(1)
        .unwrap();
    let precision: f64 = cal
        .split("precision ")
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(precision >= 90.0, "{cal}");
    let watch = ok(&store, &["watch", "list", "-c", "demo", "--format", "jsonl"]);
    assert!(watch.contains("\"name\":\"handguns\""), "{watch}");
    let parts = ok(&store, &["partitions", "list", "-c", "demo", "--format", "jsonl"]);
    assert_eq!(parts.lines().count(), 90, "2 sources × 45 days");
    let html = std::fs::read_to_string(store.join("demo-results.html")).unwrap();
    assert!(html.matches("data:image/jpeg;base64").count() >= 40);
}

#[test]
fn the_bundled_demo_model_finds_held_out_pictures_in_english_and_chinese() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["bench", "demo-eval", "--count", "800", "--seed", "99"]);
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in ["text_to_image_top1_en", "text_to_image_top1_zh", "image_to_image_top1"] {
        assert!(r[key].as_f64().unwrap() >= 0.9, "{key}: {r}");
    }
}

/// A JPEG whose EXIF says it was taken at `when` ("YYYY:MM:DD HH:MM:SS").
fn jpeg_with_exif_date(when: &str) -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
    let mut jpeg = Vec::new();
    img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90))
        .unwrap();
    // TIFF (little endian): IFD0 → Exif IFD → DateTimeOriginal (ASCII, 20 bytes).
    let mut tiff = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes());
    tiff.extend(1u16.to_le_bytes());
    tiff.extend([0x69, 0x87, 4, 0]);
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(26u32.to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    tiff.extend(1u16.to_le_bytes());
    tiff.extend([0x03, 0x90, 2, 0]);
    tiff.extend(20u32.to_le_bytes());
    tiff.extend(44u32.to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    tiff.extend(when.as_bytes());
    tiff.push(0);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend(b"Exif\0\0");
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

#[test]
fn index_a_manifest_with_bad_rows_then_receipts_name_what_was_not_covered() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let imgs = dir.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let fx = clip_fixture("images");
    for f in ["scene_320x240.png", "wide_641x203.jpg", "photo.bmp"] {
        std::fs::copy(fx.join(f), imgs.join(f)).unwrap();
    }
    std::fs::write(imgs.join("exif.jpg"), jpeg_with_exif_date("2021:05:06 07:08:09")).unwrap();
    let manifest = imgs.join("m.csv");
    std::fs::write(
        &manifest,
        "uri,source,timestamp,price\n\
         scene_320x240.png,products,2023-11-19T08:00:00Z,12.5\n\
         wide_641x203.jpg,products,1700500000,3\n\
         photo.bmp,products,last tuesday,4\n\
         gone.jpg,products,2023-11-20,5\n\
         https://example.com/x.jpg,avatars,2023-11-20,6\n\
         exif.jpg,avatars,,7\n",
    )
    .unwrap();
    let failures = dir.path().join("failures.tsv");
    let out = ok(
        &store,
        &[
            "index",
            "--manifest",
            s(&manifest),
            "--failures",
            s(&failures),
            "--json",
        ],
    );
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((r["indexed"].as_u64(), r["failed"].as_u64()), (Some(3), Some(3)), "{r}");
    let tsv = std::fs::read_to_string(&failures).unwrap();
    assert!(
        tsv.contains("m.csv line 4") && tsv.contains("unparsable timestamp"),
        "{tsv}"
    );
    assert!(tsv.contains("m.csv line 5") && tsv.contains("missing file"), "{tsv}");
    assert!(tsv.contains("m.csv line 6") && tsv.contains("remote"), "{tsv}");
    // Days: from the manifest, else EXIF DateTimeOriginal.
    let rows = ok(
        &store,
        &["search", "--text", "a photo", "-k", "10", "--format", "jsonl"],
    );
    let hits: Vec<serde_json::Value> = rows.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let day_of = |uri: &str| hits.iter().find(|h| h["uri"] == uri).map(|h| h["day"].clone());
    assert_eq!(day_of("scene_320x240.png"), Some("2023-11-19".into()));
    assert_eq!(day_of("wide_641x203.jpg"), Some("2023-11-20".into()));
    assert_eq!(day_of("exif.jpg"), Some("2021-05-06".into()));
    assert_eq!(hits.iter().filter(|h| h.get("price").is_some()).count(), 3);
    assert!(
        hits.iter().all(|h| h.get("thumbnail").is_none()),
        "thumbnails stay out of outputs"
    );
    // The last JSON record is the receipt: the missing file falls in this selection.
    let receipt = &hits.last().unwrap()["receipt"];
    assert_eq!(receipt["rows_scanned"], 3);
    let rows = ok(
        &store,
        &[
            "search",
            "--text",
            "a photo",
            "--source",
            "products",
            "--from",
            "2023-11-20",
            "--to",
            "2023-11-20",
            "--format",
            "jsonl",
        ],
    );
    let last: serde_json::Value = serde_json::from_str(rows.lines().last().unwrap()).unwrap();
    // The missing file is in it; the row with an unreadable timestamp (source and day unknown)
    // counts in every selection, since it may belong to any.
    let failed = last["receipt"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{last}");
    assert!(failed.iter().any(|f| f["uri"] == "gone.jpg"), "{last}");
    // Thumbnails live in the store: the page shows every hit after the originals are gone.
    for f in ["scene_320x240.png", "wide_641x203.jpg", "exif.jpg"] {
        std::fs::remove_file(imgs.join(f)).unwrap();
    }
    let html = dir.path().join("hits.html");
    let vec_q = ok(&store, &["search", "--text", "a photo", "-k", "3", "--html", s(&html)]);
    assert!(!vec_q.is_empty());
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("data:image/jpeg;base64").count(), 3, "{page}");
    // The file appears: the next run indexes it and the receipt no longer lists it.
    std::fs::copy(fx.join("photo.bmp"), imgs.join("gone.jpg")).unwrap();
    ok(&store, &["index", "--manifest", s(&manifest)]);
    let rows = ok(
        &store,
        &[
            "search", "--text", "a photo", "--source", "products", "--format", "jsonl",
        ],
    );
    let last: serde_json::Value = serde_json::from_str(rows.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["receipt"]["inputs_failed"], 1,
        "only the bad timestamp row is left: {last}"
    );
}

#[test]
fn english_clip_asked_in_chinese_warns_instead_of_silently_returning_noise() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let fx = clip_fixture("images");
    let model = clip_fixture("clip-quickgelu-p32");
    ok(
        &store,
        &["index", s(&fx.join("photo.bmp")), "--source", "s", "--model", s(&model)],
    );
    let out = vitrine(&store, &["search", "--text", "一只狗的照片", "-k", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("warning") && err.contains("English CLIP"),
        "{err}"
    );
    let out = vitrine(&store, &["search", "--text", "a photo of a dog", "-k", "1"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

#[test]
fn embed_prints_normalised_reference_vectors_and_finds_models_in_the_hub_cache() {
    let dir = tempfile::tempdir().unwrap();
    let fx = clip_fixture("chinese-clip-p16");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("reference.json")).unwrap()).unwrap();
    let text = reference["texts"][3].as_str().unwrap();
    let want: Vec<f64> = reference["text_features"][3]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let norm = want.iter().map(|x| x * x).sum::<f64>().sqrt();
    // A hub name resolved in HF_HUB_CACHE: models--ORG--NAME/snapshots/REV + refs/main.
    let repo = dir.path().join("hub/models--vitrine-test--tiny-cn-clip");
    let snap = repo.join("snapshots/abc123");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "abc123").unwrap();
    copy_files(&fx, &snap);
    let out = Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .args(["embed", "--model", "vitrine-test/tiny-cn-clip", "--text", text])
        .env("HF_HUB_CACHE", dir.path().join("hub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Vec<f64> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w / norm).abs() < 1e-5, "{g} vs {}", w / norm);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .args(["embed", "--model", "vitrine-test/not-cached", "--text", "x"])
        .env("HF_HUB_CACHE", dir.path().join("hub"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("models--vitrine-test--not-cached") && e.contains("never downloads"),
        "{e}"
    );
    // A path that is not there is named as a missing folder, not looked up as a hub name.
    let missing = dir.path().join("no/such/model");
    let out = Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .args(["embed", "--model", s(&missing), "--text", "x"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("no such folder") && !e.contains("models--"),
        "{e}"
    );
    // Many images after one --image (as a shell glob gives them), a bad one among them: the
    // good ones are embedded in order, the bad one is named, the exit status says so.
    let imgs = clip_fixture("images");
    let bad = dir.path().join("bad.jpg");
    std::fs::write(&bad, b"not a jpeg").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .args(["embed", "--model", s(&fx), "--image"])
        .args([imgs.join("photo.bmp"), bad.clone(), imgs.join("cmyk.jpg")])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("bad.jpg"), "{e}");
    let rows: Vec<Vec<f64>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "two good images of three");
    let one = Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .args(["embed", "--model", s(&fx), "--image", s(&imgs.join("cmyk.jpg"))])
        .output()
        .unwrap();
    let alone: Vec<f64> = serde_json::from_slice(&one.stdout).unwrap();
    assert!(
        rows[1].iter().zip(&alone).all(|(a, b)| (a - b).abs() < 1e-6),
        "order kept"
    );
}

#[test]
fn a_bad_row_in_a_later_batch_fails_the_import_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (n, dim) = (300, 4);
    let npy = dir.path().join("v.npy");
    write_f32(&npy, &vectors(n, dim), n, dim).unwrap();
    let meta = dir.path().join("m.jsonl");
    let mut text = String::new();
    for i in 0..n {
        // Row 250 (line 251) switches `price` from a number to text: a type clash three batches in.
        let price = if i == 250 {
            serde_json::json!("cheap")
        } else {
            serde_json::json!(i)
        };
        text += &format!(
            "{}\n",
            serde_json::json!({"id": format!("r{i}"), "source": "products", "day": "2023-11-19", "price": price})
        );
    }
    std::fs::write(&meta, text).unwrap();
    let e = fails(
        &store,
        &[
            "import",
            "--vectors",
            s(&npy),
            "--metadata",
            s(&meta),
            "--batch-size",
            "100",
        ],
    );
    assert!(
        e.contains("m.jsonl") && e.contains("row 250") && e.contains("price"),
        "{e}"
    );
    assert!(
        !store.join("collections/images").exists(),
        "nothing may be written, not even the collection"
    );
}

#[test]
fn index_a_folder_incrementally_then_search_it_by_text_and_by_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let imgs = dir.path().join("imgs");
    std::fs::create_dir_all(imgs.join("sub")).unwrap();
    let fx = clip_fixture("images");
    for f in ["scene_320x240.png", "wide_641x203.jpg", "rgba_200x200.png", "photo.bmp"] {
        std::fs::copy(fx.join(f), imgs.join(f)).unwrap();
    }
    std::fs::copy(fx.join("scene_320x240.png"), imgs.join("sub/same-content.png")).unwrap();
    std::fs::write(imgs.join("broken.jpg"), b"\xff\xd8\xff garbage").unwrap();
    let model = clip_fixture("chinese-clip-p16");
    let (m, i) = (s(&model), s(&imgs));
    let failures = dir.path().join("failures.tsv");
    let out = ok(
        &store,
        &[
            "index",
            i,
            "--source",
            "products",
            "--model",
            m,
            "--failures",
            s(&failures),
        ],
    );
    // Two files with the same bytes are two uploads (two rows), embedded once.
    assert!(
        out.contains("indexed 5 images")
            && out.contains("4 embedded")
            && out.contains("1 reused")
            && out.contains("1 failed"),
        "{out}"
    );
    assert!(std::fs::read_to_string(&failures).unwrap().contains("broken.jpg"));
    // A second run decodes nothing new.
    let out = ok(&store, &["index", i, "--source", "products", "--model", m]);
    assert!(out.contains("indexed 0 images") && out.contains("5 unchanged"), "{out}");
    // Search by text with the collection's own model; by image: the picture finds itself first.
    let out = ok(
        &store,
        &["search", "--text", "一只萨摩耶犬的照片", "-k", "2", "--format", "jsonl"],
    );
    assert_eq!(out.lines().count(), 3, "2 hits and the receipt");
    let out = ok(
        &store,
        &[
            "search",
            "--image",
            s(&imgs.join("wide_641x203.jpg")),
            "-k",
            "1",
            "--format",
            "jsonl",
        ],
    );
    let hit: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    // (photo.bmp is the scene as a BMP: the same pixels, the same vector, so it would tie.)
    assert!(hit["uri"].as_str().unwrap().ends_with("wide_641x203.jpg"), "{hit}");
    assert!((hit["score"].as_f64().unwrap() - 1.0).abs() < 1e-5);
    // By a stored row: its own vector finds it first; an unknown id is named.
    let id = hit["id"].as_str().unwrap();
    let out = ok(&store, &["search", "--like", id, "-k", "1", "--format", "jsonl"]);
    assert!(out.contains(&format!("\"id\":\"{id}\"")), "{out}");
    assert!(fails(&store, &["search", "--like", "nope"]).contains("like \"nope\": no row with that id"));
    // The same answer as a self-contained page: one embedded JPEG thumbnail per hit.
    let page = dir.path().join("grid.html");
    ok(
        &store,
        &["search", "--text", "a <b>dog</b>", "-k", "3", "--html", s(&page)],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("src=\"data:image/jpeg;base64,").count(), 3);
    assert!(
        html.contains("a &lt;b&gt;dog&lt;/b&gt;") && !html.contains("<b>dog</b>"),
        "texts are escaped"
    );
    // Another model's vectors are not comparable: refused.
    let other = clip_fixture("clip-gelu-p16");
    let e = fails(&store, &["index", i, "--source", "products", "--model", s(&other)]);
    assert!(e.contains("not comparable"), "{e}");
    let e = fails(&store, &["search", "--text", "dog", "--model", s(&other)]);
    assert!(e.contains("not comparable"), "{e}");
}

#[test]
fn sweep_returns_every_row_past_the_threshold_and_classify_labels_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let model = clip_fixture("chinese-clip-p16");
    let imgs = clip_fixture("images");
    ok(
        &store,
        &["index", s(&imgs), "--source", "avatars", "--model", s(&model)],
    );
    let rows: usize = ok(&store, &["partitions", "list", "--format", "jsonl"])
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["rows"]
                .as_u64()
                .unwrap() as usize
        })
        .sum();
    // The sweep equals an exact range search, best first, with counts per partition.
    let hits = dir.path().join("hits.csv");
    let out = ok(
        &store,
        &["sweep", "--prompt", "一只狗", "--threshold", "0.05", "--out", s(&hits)],
    );
    let csv = std::fs::read_to_string(&hits).unwrap();
    let scores: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    let search = ok(
        &store,
        &["search", "--text", "一只狗", "--threshold", "0.05", "--format", "jsonl"],
    );
    assert_eq!(scores.len() + 1, search.lines().count(), "hits + the receipt");
    assert!(
        !scores.is_empty() && scores.len() < rows,
        "threshold should split the rows: {}",
        scores.len()
    );
    assert!(scores.iter().all(|s| *s >= 0.05) && scores.windows(2).all(|w| w[0] >= w[1]));
    assert!(
        out.contains(&format!("{} hits", scores.len())) && out.contains("avatars"),
        "{out}"
    );
    // A negative prompt only removes rows: what stays is a subset, same scores, same order.
    let kept = dir.path().join("kept.csv");
    let out = ok(
        &store,
        &[
            "sweep",
            "--prompt",
            "一只狗",
            "--not",
            "一只猫",
            "--threshold",
            "0.05",
            "--out",
            s(&kept),
        ],
    );
    let kept_lines: Vec<String> = std::fs::read_to_string(&kept)
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    let all_lines: Vec<&str> = csv.lines().skip(1).collect();
    assert!(
        kept_lines.iter().all(|l| all_lines.contains(&l.as_str())),
        "{kept_lines:?}"
    );
    let removed = all_lines.len() - kept_lines.len();
    assert!(out.contains(&format!("{removed} rows removed")), "{out}");
    let e = fails(
        &store,
        &["search", "--text", "一只狗", "--not", "一只猫", "--not-margin", "inf"],
    );
    assert!(e.contains("margin"), "{e}");

    // Classify: one line per row, the best label first, a non-negative margin.
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "dog\ncat\nhandgun\n").unwrap();
    let out = ok(
        &store,
        &[
            "classify",
            "--labels",
            s(&labels),
            "--template",
            "a photo of a {}",
            "--template",
            "一张{}的照片",
        ],
    );
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len(), rows);
    // Cross-check with search: each label's vector (the mean of its templates' embeddings from
    // `vitrine embed`, normalised) as a query scores every row; classify's best label must be
    // the best of those scores, its score that search score, and the margin the gap to the
    // runner-up.
    let names = ["dog", "cat", "handgun"];
    let mut label_vecs: Vec<f32> = Vec::new();
    for l in names {
        let out = ok(
            &store,
            &[
                "embed",
                "--model",
                s(&model),
                "--text",
                &format!("a photo of a {l}"),
                "--text",
                &format!("一张{l}的照片"),
            ],
        );
        let embs: Vec<Vec<f32>> = out.lines().map(|x| serde_json::from_str(x).unwrap()).collect();
        let mut mean = vec![0f64; embs[0].len()];
        for v in &embs {
            for (m, x) in mean.iter_mut().zip(v) {
                *m += *x as f64;
            }
        }
        let n = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
        label_vecs.extend(mean.iter().map(|x| (x / n) as f32));
    }
    let dim = label_vecs.len() / names.len();
    let qfile = dir.path().join("labels.npy");
    write_f32(&qfile, &label_vecs, names.len(), dim).unwrap();
    let search = ok(
        &store,
        &[
            "search",
            "--vector-file",
            s(&qfile),
            "-k",
            &rows.to_string(),
            "--format",
            "jsonl",
        ],
    );
    let mut by_row: std::collections::HashMap<String, Vec<f64>> = Default::default();
    for l in search.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v.get("receipt").is_some() {
            continue;
        }
        let e = by_row
            .entry(v["id"].as_str().unwrap().to_string())
            .or_insert(vec![f64::NAN; names.len()]);
        e[v["query"].as_u64().unwrap() as usize] = v["score"].as_f64().unwrap();
    }
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let scores = &by_row[f[0]];
        let (best, second) = (
            names.iter().position(|n| *n == f[1]).unwrap(),
            names.iter().position(|n| *n == f[4]).unwrap(),
        );
        let (score, margin): (f64, f64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        assert!(best != second, "{l}");
        assert!(
            (score - scores[best]).abs() < 1e-12,
            "{l}: search says {}",
            scores[best]
        );
        assert!(
            (score - margin - scores[second]).abs() < 1e-12,
            "{l}: search says {}",
            scores[second]
        );
        let max_other = (0..names.len())
            .filter(|&i| i != best)
            .map(|i| scores[i])
            .fold(f64::MIN, f64::max);
        assert!(
            scores[best] >= max_other && (scores[second] - max_other).abs() < 1e-12,
            "{l}: {scores:?}"
        );
    }
    // Label files: comments and blank lines are skipped; a label given twice is refused.
    std::fs::write(&labels, "# things\ndog\n\ncat\ndog\n").unwrap();
    let e = fails(&store, &["classify", "--labels", s(&labels)]);
    assert!(e.contains("line 5") && e.contains("\"dog\" is given twice"), "{e}");
    std::fs::write(&labels, "dog\n").unwrap();
    assert!(fails(&store, &["classify", "--labels", s(&labels)]).contains("at least two labels"));
}

#[test]
fn kill_9_in_the_middle_of_an_index_run_keeps_its_commits_and_the_rerun_finishes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let imgs = dir.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let n = 3000;
    for (i, p) in vitrine_gallery::pictures(n, 5, 0.3).iter().enumerate() {
        std::fs::write(imgs.join(format!("{i:05}.jpg")), p.jpeg(96, 85)).unwrap();
    }
    // The bundled demo model is the default.
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .args(["--store", s(&store), "-v", "index", s(&imgs), "--source", "products"])
        .args(["--commit-every", "100"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut commits = 0;
    while let Some(Ok(line)) = lines.next() {
        if line.contains("committed=") {
            commits += 1;
            if commits == 3 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(commits, 3);
    let rows = Engine::open_store(&store).collection_info("images").unwrap().rows as usize;
    assert!((300..n).contains(&rows), "{rows} rows after the kill");
    assert_eq!(rows % 100, 0, "a partial commit is visible");
    // The receipt names every image the killed run had not written yet as pending.
    let out = ok(&store, &["search", "--text", "a photo of a dog", "--format", "jsonl"]);
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["receipt"]["inputs_pending"],
        (n - rows) as u64,
        "{}",
        last["receipt"]["inputs_pending"]
    );
    // The re-run embeds only what is missing; nothing is lost or duplicated.
    let out = ok(&store, &["index", s(&imgs), "--source", "products", "--json"]);
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["indexed"], (n - rows) as u64, "{r}");
    assert_eq!(r["unchanged"], rows as u64, "{r}");
    assert_eq!(
        Engine::open_store(&store).collection_info("images").unwrap().rows as usize,
        n
    );
    let out = ok(&store, &["search", "--text", "a photo of a dog", "--format", "jsonl"]);
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["receipt"]["inputs_pending"], 0);
}

#[test]
fn a_folder_of_good_and_bad_files_indexes_every_good_image_and_names_each_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let imgs = dir.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    // Every decodable kind: CMYK, progressive, 16-bit, palette, alpha, animated GIF, WebP, TIFF, BMP, EXIF.
    let fx = clip_fixture("images");
    let mut good = 0;
    for e in std::fs::read_dir(&fx).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, imgs.join(p.file_name().unwrap())).unwrap();
        good += 1;
    }
    let jpeg = std::fs::read(fx.join("wide_641x203.jpg")).unwrap();
    std::fs::write(imgs.join("zero.jpg"), b"").unwrap();
    std::fs::write(imgs.join("truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    std::fs::write(imgs.join("notes.png"), b"this is not an image at all").unwrap();
    let mut heic = vec![0, 0, 0, 24];
    heic.extend_from_slice(b"ftypheic");
    heic.extend_from_slice(&[0; 16]);
    std::fs::write(imgs.join("IMG_0001.heic"), heic).unwrap();
    image::GrayImage::new(16_000, 16_000)
        .save(imgs.join("bomb.png"))
        .unwrap();
    image::GrayImage::new(50_000, 2)
        .save(imgs.join("panorama.png"))
        .unwrap();
    let failures = dir.path().join("failures.tsv");
    let out = ok(
        &store,
        &[
            "index",
            s(&imgs),
            "--source",
            "products",
            "--failures",
            s(&failures),
            "--json",
        ],
    );
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["indexed"], good, "{r}");
    assert_eq!(r["failed"], 6, "{r}");
    assert_eq!(r["failed_by_kind"]["too large"], 2, "{r}");
    let tsv = std::fs::read_to_string(&failures).unwrap();
    for (name, why) in [
        ("zero.jpg", ""),
        ("truncated.jpg", ""),
        ("notes.png", ""),
        ("IMG_0001.heic", "HEIC"),
        ("bomb.png", "16000×16000"),
        ("panorama.png", "50000×2"),
    ] {
        let line = tsv
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} missing: {tsv}"));
        assert!(line.contains(why), "{line}");
    }
    // Nothing already indexed is lost when the bad files are retried.
    let out = ok(&store, &["index", s(&imgs), "--source", "products", "--json"]);
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (r["unchanged"].as_u64(), r["failed"].as_u64()),
        (Some(good), Some(6)),
        "{r}"
    );
    // --strict: the same run, but the exit status says that inputs failed.
    let e = fails(&store, &["index", s(&imgs), "--source", "products", "--strict"]);
    assert!(e.contains("6 input(s) failed (--strict)"), "{e}");
    // A path given that is not there (a typo) stops the run before anything is written,
    // instead of an empty success.
    let typo = dir.path().join("imsg");
    let e = fails(&store, &["index", s(&imgs), s(&typo), "--source", "products"]);
    assert!(
        e.contains(&format!("{}: no such file or folder", typo.display())) && e.contains("nothing was indexed"),
        "{e}"
    );
}

#[test]
fn queries_trust_the_recorded_weights_hash_only_while_the_weights_file_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let model = dir.path().join("model");
    copy_files(&clip_fixture("chinese-clip-p16"), &model);
    let imgs = clip_fixture("images");
    ok(
        &store,
        &["index", s(&imgs), "--source", "avatars", "--model", s(&model)],
    );
    let manifest = std::fs::read_to_string(store.join("collections/images/manifest.json")).unwrap();
    assert!(manifest.contains("model_weights_stamp"), "{manifest}");
    // The stamp recorded at index time lets the query skip re-hashing the weights.
    ok(&store, &["search", "--text", "a dog", "-k", "1"]);
    // The same weights elsewhere (another stamp): hashed, equal, accepted.
    let copy = dir.path().join("copy");
    copy_files(&model, &copy);
    ok(&store, &["search", "--text", "a dog", "-k", "1", "--model", s(&copy)]);
    // Other bytes under the same path, size and modification time: the stamp still matches, so
    // the query trusts the recorded hash and does not read the weights (had it hashed them, it
    // would refuse them, as below).
    let weights = model.join("model.safetensors");
    let recorded = std::fs::metadata(&weights).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 8] ^= 0x40;
    std::fs::write(&weights, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_modified(recorded)
        .unwrap();
    ok(&store, &["search", "--text", "a dog", "-k", "1"]);
    // The weights changed in place (same size, new modification time): hashed again, refused.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let e = fails(&store, &["search", "--text", "a dog", "-k", "1"]);
    assert!(e.contains("not comparable"), "{e}");
}

#[test]
fn dupes_lists_every_near_duplicate_cluster_in_every_format_and_as_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // 40 distinct rows; p03 is copied as avatar a03 (and again, re-encoded, as a03b); p07 is
    // relisted as product p07x. The uri of a03 is hostile markup.
    let dim = 8;
    let mut seed = 7u64;
    let mut v: Vec<f32> = (0..40 * dim)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let row = |v: &[f32], i: usize| v[i * dim..(i + 1) * dim].to_vec();
    let (p03, p07) = (row(&v, 3), row(&v, 7));
    v.extend(&p03);
    v.extend(p03.iter().map(|x| x + 0.001));
    v.extend(&p07);
    let vec_path = dir.path().join("v.npy");
    write_f32(&vec_path, &v, 43, dim).unwrap();
    let meta = dir.path().join("m.jsonl");
    let mut f = std::fs::File::create(&meta).unwrap();
    for i in 0..40 {
        writeln!(
            f,
            r#"{{"id":"p{i:02}","source":"products","day":"2023-11-{:02}","uri":"file:///p{i}.jpg"}}"#,
            1 + i % 20
        )
        .unwrap();
    }
    writeln!(
        f,
        r#"{{"id":"a03","source":"avatars","day":"2023-11-21","uri":"<script>alert(1)</script>"}}"#
    )
    .unwrap();
    writeln!(
        f,
        r#"{{"id":"a03b","source":"avatars","day":"2023-11-22","uri":"file:///a03b.jpg"}}"#
    )
    .unwrap();
    writeln!(
        f,
        r#"{{"id":"p07x","source":"products","day":"2023-11-23","uri":"file:///p07x.jpg"}}"#
    )
    .unwrap();
    drop(f);
    ok(&store, &["import", "--vectors", s(&vec_path), "--metadata", s(&meta)]);

    // Members, one line each: two clusters, the larger first, each earliest first.
    let out = ok(&store, &["dupes", "--threshold", "0.9999", "--format", "jsonl"]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r.get("cluster").is_some())
        .collect();
    let members: Vec<(u64, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["cluster"].as_u64().unwrap(),
                r["id"].as_str().unwrap(),
                r["nearest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        members,
        [
            (1, "p03", "a03"),
            (1, "a03", "p03"),
            (1, "a03b", "a03"),
            (2, "p07", "p07x"),
            (2, "p07x", "p07")
        ],
        "{out}"
    );
    let summary = out.lines().last().unwrap();
    assert!(
        summary.contains("2 clusters (5 rows, 4 pairs) among 43 rows"),
        "{summary}"
    );
    let copy = rows[0]["score"].as_f64().unwrap();
    assert!((copy - 1.0).abs() < 1e-12, "an exact copy scores 1: {copy}");

    // Pairs as CSV; only clusters spanning sources; products against avatars.
    let out = ok(
        &store,
        &[
            "dupes",
            "--threshold",
            "0.9999",
            "--pairs",
            "--format",
            "csv",
            "--across-sources",
        ],
    );
    let pairs: Vec<Vec<&str>> = out.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(pairs.len(), 3, "{out}");
    assert!(
        pairs.iter().all(|p| p[0] == "1") && pairs[0][1..3] == ["a03", "p03"],
        "{out}"
    );
    let out = ok(
        &store,
        &[
            "dupes",
            "--threshold",
            "0.9999",
            "--pairs",
            "--format",
            "csv",
            "--source",
            "products",
            "--against-source",
            "avatars",
        ],
    );
    let pairs: Vec<&str> = out.lines().skip(1).map(|l| l.rsplit_once(',').unwrap().0).collect();
    assert_eq!(pairs, ["1,a03,p03", "1,a03b,p03"], "{out}");

    // The page: one row of pictures per cluster, every stored value escaped.
    let page = dir.path().join("dupes.html");
    ok(&store, &["dupes", "--threshold", "0.9999", "--html", s(&page)]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<div class=\"row\">").count(), 2);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>"));

    // Bad input is named.
    let e = fails(&store, &["dupes", "--threshold", "nan"]);
    assert!(e.contains("threshold"), "{e}");
    let e = fails(&store, &["dupes", "--threshold", "0.9", "--against-source", "nowhere"]);
    assert!(e.contains("nowhere"), "{e}");
}

#[test]
fn export_packages_a_sweep_with_originals_or_their_thumbnails_and_verify_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let imgs = dir.path().join("imgs");
    copy_files(&clip_fixture("images"), &imgs);
    let model = clip_fixture("chinese-clip-p16");
    ok(
        &store,
        &["index", s(&imgs), "--source", "avatars", "--model", s(&model)],
    );
    let rows = ok(&store, &["search", "--text", "一只狗", "-k", "1000", "--format", "csv"]);
    let n = rows.lines().count() - 1;
    // After indexing, one original changes and one disappears.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(imgs.join("photo.bmp"))
        .unwrap();
    f.write_all(b"edited").unwrap();
    drop(f);
    std::fs::remove_file(imgs.join("progressive.jpg")).unwrap();

    let case = dir.path().join("case.zip");
    let out = ok(
        &store,
        &[
            "export",
            "--prompt",
            "一只狗",
            "--top",
            "1000",
            "--out",
            s(&case),
            "--reason",
            "case 4711",
            "--by",
            "qa",
        ],
    );
    assert!(
        out.contains(&format!(
            "{n} rows ({} originals, 1 changed since indexing; 1 as stored thumbnails; 0 without a picture)",
            n - 1
        )),
        "{out}"
    );
    let pinned = out
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    let verified = ok(&store, &["export", "--verify", s(&case)]);
    assert!(verified.contains(&pinned) && verified.contains("intact"), "{verified}");
    // The package is a plain zip: metadata says which original changed and which is a thumbnail.
    let listing = Command::new("python3")
        .args([
            "-c",
            "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); print(z.read('metadata.csv').decode())",
            s(&case),
        ])
        .output()
        .unwrap();
    let meta = String::from_utf8_lossy(&listing.stdout);
    let line = |name: &str| meta.lines().find(|l| l.contains(name)).unwrap_or_default().to_string();
    assert!(line("photo.bmp").contains("CHANGED since it was indexed"), "{meta}");
    assert!(line("progressive.jpg").contains("stored thumbnail only"), "{meta}");
    assert!(line("cmyk.jpg").contains("the ones indexed"), "{meta}");
    // An existing package is never overwritten; a changed one fails verification, naming the file.
    let e = fails(
        &store,
        &["export", "--prompt", "一只狗", "--top", "5", "--out", s(&case)],
    );
    assert!(e.contains("already exists"), "{e}");
    let mut bytes = std::fs::read(&case).unwrap();
    // A byte inside the first stored JPEG (past its magic number).
    let at = bytes.windows(3).position(|w| w == b"\xFF\xD8\xFF").unwrap() + 100;
    bytes[at] ^= 0x20;
    std::fs::write(&case, &bytes).unwrap();
    let e = fails(&store, &["export", "--verify", s(&case)]);
    assert!(e.contains("altered") && e.contains("1 problem(s)"), "{e}");
}

#[test]
fn calibrate_prints_the_curve_draws_it_and_a_saved_prompt_set_sweeps_at_its_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let model = clip_fixture("chinese-clip-p16");
    ok(
        &store,
        &[
            "index",
            s(&clip_fixture("images")),
            "--source",
            "avatars",
            "--model",
            s(&model),
        ],
    );
    // Label the rows by their rank for the prompt: the top half true, except the very first.
    let ranked = ok(&store, &["search", "--text", "一只狗", "-k", "1000", "--format", "csv"]);
    let ids: Vec<String> = ranked
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().to_string())
        .collect();
    let labels = dir.path().join("labels.csv");
    let mut text = String::from("id,label\n");
    for (i, id) in ids.iter().enumerate() {
        text.push_str(&format!("{id},{}\n", (i > 0 && i < ids.len() / 2) as u8));
    }
    std::fs::write(&labels, text).unwrap();
    let plot = dir.path().join("curve.svg");
    let out = vitrine(
        &store,
        &[
            "calibrate",
            "--prompt",
            "一只狗",
            "--labels",
            s(&labels),
            "--precision",
            "0.5",
            "--save",
            "dogs <b>",
            "--plot",
            s(&plot),
            "--format",
            "csv",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let curve = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        curve.lines().next(),
        Some("threshold,labelled,true_positives,precision,recall,count")
    );
    // One line per distinct score (rows that tie enter together), the last with every row.
    let last: Vec<&str> = curve.lines().last().unwrap().split(',').collect();
    assert!(
        curve.lines().count() <= 1 + ids.len() && last[1] == ids.len().to_string(),
        "{curve}"
    );
    // The first row alone: precision 0; the whole sample: recall 1.
    assert!(curve.lines().nth(1).unwrap().contains(",1,0,0,0,1"), "{curve}");
    assert_eq!(last[4], "1", "{curve}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("precision ≥ 0.5: threshold"), "{err}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.matches("<polyline").count() == 2,
        "{svg}"
    );
    // The saved set sweeps at its threshold; the receipt carries the calibration.
    let hits = dir.path().join("hits.csv");
    let receipt = dir.path().join("receipt.json");
    let out = ok(
        &store,
        &[
            "sweep",
            "--prompt-set",
            "dogs <b>",
            "--precision",
            "0.5",
            "--out",
            s(&hits),
            "--receipt",
            s(&receipt),
        ],
    );
    assert!(
        out.contains("calibrated: threshold") && out.contains("expect precision"),
        "{out}"
    );
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&receipt).unwrap()).unwrap();
    let t = r["calibration"]["threshold"].as_f64().unwrap();
    let scores: Vec<f64> = std::fs::read_to_string(&hits)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(scores.len() as u64, r["calibration"]["count"].as_u64().unwrap());
    assert!(scores.iter().all(|s| *s >= t));
    let e = fails(
        &store,
        &[
            "sweep",
            "--prompt-set",
            "dogs <b>",
            "--precision",
            "0.7",
            "--out",
            s(&hits),
        ],
    );
    assert!(e.contains("no calibration for precision 0.7"), "{e}");
}

#[test]
fn weighted_prompts_search_as_the_blended_vector_would() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let model = clip_fixture("chinese-clip-p16");
    ok(
        &store,
        &[
            "index",
            s(&clip_fixture("images")),
            "--source",
            "products",
            "--model",
            s(&model),
        ],
    );
    let (a, b, c) = ("一只狗", "一只猫", "一辆车");
    // The rule by hand: unit(e(a) + 0.5·e(b) − e(c)) from `vitrine embed`'s vectors.
    // Embedded as search embeds them: the query, then the weighted prompts in one batch.
    let out = ok(&store, &["embed", "--model", s(&model), "--text", a])
        + &ok(&store, &["embed", "--model", s(&model), "--text", b, "--text", c]);
    let e: Vec<Vec<f64>> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let sum: Vec<f64> = (0..e[0].len())
        .map(|d| (e[0][d] as f32) as f64 + 0.5 * (e[1][d] as f32) as f64 - (e[2][d] as f32) as f64)
        .collect();
    let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
    let q: Vec<f32> = sum.iter().map(|x| (x / norm) as f32).collect();
    write_f32(&dir.path().join("q.npy"), &q, 1, q.len()).unwrap();
    let by_hand = ok(
        &store,
        &[
            "search",
            "--vector-file",
            s(&dir.path().join("q.npy")),
            "-k",
            "5",
            "--format",
            "csv",
        ],
    );
    let blended = ok(
        &store,
        &[
            "search",
            "--text",
            a,
            "--add",
            &format!("0.5:{b}"),
            "--subtract",
            c,
            "-k",
            "5",
            "--format",
            "csv",
        ],
    );
    // Same rows, same scores.
    let cols = |t: &str| -> Vec<String> {
        t.lines()
            .skip(1)
            .map(|l| l.split(',').skip(1).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(cols(&blended), cols(&by_hand));
    assert_eq!(cols(&blended).len(), 5);
    let e = fails(&store, &["search", "--add", b, "-k", "5"]);
    assert!(e.contains("--text"), "{e}");
    let e = fails(&store, &["search", "--text", a, "--add", "inf:x"]);
    assert!(e.contains("not a finite number"), "{e}");
}
