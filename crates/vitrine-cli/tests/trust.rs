//! Data the team can trust: one row per upload, deletes and retention that stick, inputs that
//! are not files, one meaning per query, output that loses nothing.

mod common;

use common::{clip_fixture, fails, ok, s, vectors, vitrine};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn jsonl(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("receipt").is_none())
        .collect()
}

/// Every row of the collection, by a vector search with k above the row count.
fn rows(store: &Path) -> Vec<serde_json::Value> {
    jsonl(&ok(
        store,
        &["search", "--text", "x", "-k", "1000", "--format", "jsonl"],
    ))
}

/// The uri of every row.
fn all_uris(store: &Path) -> Vec<String> {
    rows(store)
        .iter()
        .map(|h| h["uri"].as_str().unwrap().to_string())
        .collect()
}

/// `vitrine index ARGS --json`'s report.
fn index_report(store: &Path, args: &[&str]) -> serde_json::Value {
    let args: Vec<&str> = ["index"].iter().chain(args).chain(&["--json"]).copied().collect();
    serde_json::from_str(ok(store, &args).trim()).unwrap()
}

#[test]
fn the_same_picture_uploaded_twice_is_two_rows_embedded_once_and_a_moved_file_moves_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let model = clip_fixture("chinese-clip-p16");
    let fx = clip_fixture("images");
    let (products, avatars) = (dir.path().join("products"), dir.path().join("avatars"));
    std::fs::create_dir_all(&products).unwrap();
    std::fs::create_dir_all(&avatars).unwrap();
    std::fs::copy(fx.join("photo.bmp"), products.join("listing-1.bmp")).unwrap();
    std::fs::copy(fx.join("photo.bmp"), products.join("listing-2.bmp")).unwrap();
    std::fs::copy(fx.join("scene_320x240.png"), products.join("scene.png")).unwrap();
    // The product photo reused as an avatar: the reuse the team hunts for.
    std::fs::copy(fx.join("photo.bmp"), avatars.join("me.bmp")).unwrap();
    let r = index_report(&store, &[s(&products), "--source", "products", "--model", s(&model)]);
    assert_eq!(
        (r["indexed"].as_u64(), r["embedded"].as_u64(), r["reused"].as_u64()),
        (Some(3), Some(2), Some(1)),
        "{r}"
    );
    let r = index_report(&store, &[s(&avatars), "--source", "avatars"]);
    assert_eq!(
        (r["indexed"].as_u64(), r["embedded"].as_u64(), r["reused"].as_u64()),
        (Some(1), Some(0), Some(1)),
        "{r}"
    );
    let all = rows(&store);
    assert_eq!(all.len(), 4);
    // Each upload keeps its own source and uri; identical bytes share the content hash.
    let avatar = all.iter().find(|h| h["source"] == "avatars").unwrap();
    assert!(avatar["uri"].as_str().unwrap().ends_with("avatars/me.bmp"), "{avatar}");
    let hash = avatar["content_hash"].as_str().unwrap();
    let same: Vec<&str> = all
        .iter()
        .filter(|h| h["content_hash"] == hash)
        .map(|h| h["uri"].as_str().unwrap())
        .collect();
    assert_eq!(same.len(), 3, "{same:?}");
    // Reuse is one query away, and a search limited to avatars finds the avatar.
    let filter = format!("content_hash == \"{hash}\" and source == \"avatars\"");
    let hits = jsonl(&ok(
        &store,
        &[
            "search",
            "--like",
            avatar["id"].as_str().unwrap(),
            "--filter",
            &filter,
            "--format",
            "jsonl",
        ],
    ));
    assert_eq!(hits.len(), 1);
    // A file renamed between runs: its row follows it (new uri), the old uri is gone.
    std::fs::rename(products.join("scene.png"), products.join("scene-renamed.png")).unwrap();
    let r = index_report(&store, &[s(&products), "--source", "products"]);
    assert_eq!(
        (r["moved"].as_u64(), r["embedded"].as_u64(), r["unchanged"].as_u64()),
        (Some(1), Some(0), Some(2)),
        "{r}"
    );
    let uris = all_uris(&store);
    assert_eq!(uris.len(), 4, "{uris:?}");
    assert!(uris.iter().any(|u| u.ends_with("scene-renamed.png")) && !uris.iter().any(|u| u.ends_with("/scene.png")));
    // Identical bytes renamed, one commit per file: each old row moves once, none is left with
    // a dead uri, and nothing is embedded again.
    std::fs::copy(products.join("listing-2.bmp"), products.join("listing-3.bmp")).unwrap();
    ok(&store, &["index", s(&products), "--source", "products"]);
    std::fs::rename(products.join("listing-2.bmp"), products.join("listing-2b.bmp")).unwrap();
    std::fs::rename(products.join("listing-3.bmp"), products.join("listing-3b.bmp")).unwrap();
    let r = index_report(&store, &[s(&products), "--source", "products", "--commit-every", "1"]);
    assert_eq!(
        (r["moved"].as_u64(), r["embedded"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(0), Some(0)),
        "{r}"
    );
    let uris = all_uris(&store);
    assert_eq!(uris.len(), 5, "{uris:?}");
    assert!(
        uris.iter().all(|u| std::path::Path::new(u).exists()),
        "a row kept a dead uri: {uris:?}"
    );
    // A name that is not UTF-8 is refused by name, never altered.
    use std::os::unix::ffi::OsStrExt;
    let odd = products.join(std::ffi::OsStr::from_bytes(b"caf\xe9.bmp"));
    std::fs::copy(fx.join("photo.bmp"), &odd).unwrap();
    let out = vitrine(&store, &["index", s(&products), "--source", "products"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("not valid UTF-8") && text.contains("1 failed"),
        "{text}"
    );
}

/// A manifest of 8 pictures over 4 days (2 per day), all products.
fn manifest(dir: &Path) -> std::path::PathBuf {
    let fx = clip_fixture("images");
    let files = ["scene_320x240.png", "wide_641x203.jpg", "rgba_200x200.png", "photo.bmp"];
    let mut text = String::new();
    for i in 0..8 {
        let name = format!("img{i}.{}", files[i % 4].rsplit('.').next().unwrap());
        std::fs::copy(fx.join(files[i % 4]), dir.join(&name)).unwrap();
        text += &format!(
            "{}\n",
            serde_json::json!({"uri": name, "source": "products", "timestamp": format!("2023-11-{:02}", 19 + i / 2)})
        );
    }
    let m = dir.join("manifest.jsonl");
    std::fs::write(&m, text).unwrap();
    m
}

#[test]
fn deleted_rows_and_dropped_or_expired_days_stay_gone_until_readmitted() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let m = manifest(dir.path());
    let model = clip_fixture("chinese-clip-p16");
    let index = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["index", "--manifest", s(&m), "--model", s(&model), "--json"];
        args.extend(extra);
        serde_json::from_str(ok(&store, &args).trim()).unwrap()
    };
    assert_eq!(index(&[])["indexed"], 8);
    let all = rows(&store);
    let victim = all.iter().find(|h| h["day"] == "2023-11-22").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&store, &["delete", "--ids", &victim]);
    ok(
        &store,
        &["partitions", "drop", "--source", "products", "--day", "2023-11-19"],
    );
    ok(&store, &["partitions", "retain", "--before", "2023-11-21"]);
    assert_eq!(rows(&store).len(), 3);
    // The same manifest again: nothing comes back, and the run says what it skipped.
    let r = index(&[]);
    assert_eq!(
        (r["indexed"].as_u64(), r["forgotten"].as_u64(), r["unchanged"].as_u64()),
        (Some(0), Some(5), Some(3)),
        "{r}"
    );
    let out = ok(&store, &["index", "--manifest", s(&m)]);
    assert!(
        out.contains("skipped 5 inputs") && out.contains("--readmit-deleted"),
        "{out}"
    );
    assert_eq!(rows(&store).len(), 3);
    // `--older-than` records a horizon too.
    ok(&store, &["partitions", "retain", "--older-than", "5000d"]);
    // Deleting by selection sticks too.
    ok(&store, &["delete", "--source", "products", "--from", "2023-11-22"]);
    assert_eq!(rows(&store).len(), 2);
    assert_eq!(index(&[])["indexed"], 0);
    assert_eq!(rows(&store).len(), 2);
    // Asked for explicitly, they come back, and then stay (no longer forgotten).
    let r = index(&["--readmit-deleted"]);
    assert_eq!(
        (r["indexed"].as_u64(), r["unchanged"].as_u64()),
        (Some(6), Some(2)),
        "{r}"
    );
    assert_eq!(rows(&store).len(), 8);
    let r = index(&[]);
    assert_eq!(
        (r["indexed"].as_u64(), r["unchanged"].as_u64()),
        (Some(0), Some(8)),
        "{r}"
    );
    // Ids that are not there are named.
    let out = vitrine(&store, &["delete", "--ids", &format!("{victim},ghost-1")]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 id(s) not found: ghost-1"));
}

#[test]
fn a_folder_of_pipes_sockets_devices_and_bad_links_is_indexed_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let imgs = dir.path().join("imgs");
    std::fs::create_dir_all(imgs.join("sub")).unwrap();
    std::fs::copy(clip_fixture("images").join("photo.bmp"), imgs.join("good.bmp")).unwrap();
    let fifo = imgs.join("pipe.jpg");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let _socket = std::os::unix::net::UnixListener::bind(imgs.join("socket.png")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", imgs.join("zero.jpg")).unwrap();
    std::os::unix::fs::symlink(imgs.join("nowhere.jpg"), imgs.join("dangling.jpg")).unwrap();
    std::os::unix::fs::symlink(imgs.join("loop-b.jpg"), imgs.join("loop-a.jpg")).unwrap();
    std::os::unix::fs::symlink(imgs.join("loop-a.jpg"), imgs.join("loop-b.jpg")).unwrap();
    std::os::unix::fs::symlink(&imgs, imgs.join("sub/back-up")).unwrap();
    // A name with a tab and a newline must stay one line of the failures file.
    std::fs::write(imgs.join("odd\tname\n.jpg"), b"not an image").unwrap();
    let failures = dir.path().join("f.tsv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .args([
            "--store",
            s(&store),
            "index",
            s(&imgs),
            "--source",
            "products",
            "--failures",
            s(&failures),
        ])
        .args(["--model", s(&clip_fixture("chinese-clip-p16"))])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A hang is a failure too: give it a minute (it takes well under a second).
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed().as_secs() < 60, "index blocked on a special file");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("indexed 1 images"));
    let tsv = std::fs::read_to_string(&failures).unwrap();
    assert!(tsv.lines().all(|l| l.split('\t').count() == 3), "{tsv}");
    assert_eq!(tsv.lines().count(), 1 + 8, "{tsv}");
    assert!(tsv.contains("odd\\tname\\n.jpg"), "{tsv}");
    for (name, why) in [
        ("pipe.jpg", "named pipe"),
        ("socket.png", "socket"),
        ("zero.jpg", "character device"),
        ("dangling.jpg", "does not exist"),
        ("loop-a.jpg", "loop"),
        ("loop-b.jpg", "loop"),
        ("back-up", "loop"),
    ] {
        let lines: Vec<&str> = tsv
            .lines()
            .filter(|l| l.split('\t').next().unwrap().ends_with(name))
            .collect();
        assert_eq!(lines.len(), 1, "{name} named once: {tsv}");
        assert!(lines[0].contains(why), "{name}: {}", lines[0]);
    }
    // An input that is gone leaves the ledger: the receipt stops listing it.
    let receipt = |store: &Path| -> u64 {
        let out = ok(store, &["search", "--text", "x", "--format", "jsonl"]);
        let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        last["receipt"]["inputs_failed"].as_u64().unwrap()
    };
    assert_eq!(receipt(&store), 8);
    for f in [
        "pipe.jpg",
        "socket.png",
        "zero.jpg",
        "dangling.jpg",
        "loop-a.jpg",
        "loop-b.jpg",
        "sub/back-up",
        "odd\tname\n.jpg",
    ] {
        std::fs::remove_file(imgs.join(f)).unwrap();
    }
    ok(&store, &["index", s(&imgs), "--source", "products"]);
    assert_eq!(receipt(&store), 0);
}

#[test]
fn the_same_uri_at_two_times_is_two_uploads_and_fixed_lines_leave_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let fx = clip_fixture("images");
    std::fs::copy(fx.join("photo.bmp"), dir.path().join("a.bmp")).unwrap();
    let m = dir.path().join("m.jsonl");
    std::fs::write(
        &m,
        "{\"uri\":\"a.bmp\",\"source\":\"products\",\"timestamp\":\"2023-11-19\"}\n\
         {\"uri\":\"a.bmp\",\"source\":\"products\",\"timestamp\":\"2023-11-20\"}\n\
         {\"uri\":\"a.bmp\",\"source\":\"products\",\"timestamp\":\"2023-11-20\"}\n\
         {\"uri\":\"a.bmp\",\"source\":\"products\",\"timestamp\":\"last tuesday\"}\n",
    )
    .unwrap();
    // Run from the manifest's folder with a relative path, as a user would.
    let run = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_vitrine"))
            .current_dir(dir.path())
            .args(["--store", s(&store), "index", "--manifest", "m.jsonl", "--json"])
            .args(["--model", s(&clip_fixture("chinese-clip-p16"))])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
    };
    let r = run(&[]);
    // Two uploads (two days), one embedding; the exact repeat and the bad line are named.
    assert_eq!(
        (r["indexed"].as_u64(), r["embedded"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(1), Some(2)),
        "{r}"
    );
    let days: Vec<String> = rows(&store)
        .iter()
        .map(|h| h["day"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(days.len(), 2, "{days:?}");
    let failed = |store: &Path| -> u64 {
        let out = ok(store, &["search", "--text", "x", "--format", "jsonl"]);
        let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        last["receipt"]["inputs_failed"].as_u64().unwrap()
    };
    assert_eq!(failed(&store), 2);
    // The manifest fixed: the next run forgets the lines it no longer has.
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, text.lines().take(2).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let r = run(&[]);
    assert_eq!(
        (r["unchanged"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(0)),
        "{r}"
    );
    assert_eq!(failed(&store), 0);
}

#[test]
fn a_jsonl_manifest_with_a_broken_line_indexes_the_others_and_a_failed_command_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let m = manifest(dir.path());
    let mut text = std::fs::read_to_string(&m).unwrap();
    text.insert_str(text.find('\n').unwrap() + 1, "{\"uri\": \"img1.jpg\", oops\n");
    std::fs::write(&m, text).unwrap();
    let model = clip_fixture("chinese-clip-p16");
    let failures = dir.path().join("f.tsv");
    let r = index_report(
        &store,
        &["--manifest", s(&m), "--model", s(&model), "--failures", s(&failures)],
    );
    assert_eq!((r["indexed"].as_u64(), r["failed"].as_u64()), (Some(8), Some(1)), "{r}");
    assert!(std::fs::read_to_string(&failures)
        .unwrap()
        .contains("manifest.jsonl line 2"));
    // Commands that fail on a store that does not exist create nothing.
    let none = dir.path().join("nothing-here");
    let npy = dir.path().join("v.npy");
    vitrine_engine::write_npy(&npy, &vectors(3, 4), 3, 4).unwrap();
    let reserved = dir.path().join("reserved.jsonl");
    std::fs::write(
        &reserved,
        (0..3)
            .map(|i| format!("{{\"id\":\"r{i}\",\"source\":\"p\",\"day\":\"2023-11-19\",\"thumbnail\":\"x\"}}\n"))
            .collect::<String>(),
    )
    .unwrap();
    for args in [
        vec!["import", "--vectors", s(&npy), "--metadata", s(&reserved)],
        vec!["delete", "--ids", "a"],
        vec!["partitions", "drop", "--source", "x", "--day", "2023-11-19"],
        vec!["partitions", "retain", "--before", "2023-11-19"],
        vec!["compact"],
        vec!["collection", "drop", "images"],
    ] {
        fails(&none, &args);
        assert!(!none.exists(), "{args:?} created {}", none.display());
    }
    // An index run that writes nothing (every input fails) creates no collection.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("x.jpg"), b"not an image").unwrap();
    let out = ok(&store, &["index", s(&bad), "--source", "products", "-c", "empty"]);
    assert!(out.contains("1 failed"), "{out}");
    assert!(!ok(&store, &["collection", "list"]).contains("empty"));
}

#[test]
fn queries_mean_one_thing_and_outputs_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (n, dim) = (40, 8);
    let npy = dir.path().join("v.npy");
    vitrine_engine::write_npy(&npy, &vectors(n, dim), n, dim).unwrap();
    let meta = dir.path().join("m.jsonl");
    let mut text = String::new();
    for i in 0..n {
        // Every fourth row has no price.
        let price = if i % 4 == 0 {
            serde_json::Value::Null
        } else {
            serde_json::json!(i as f64 / 3.0)
        };
        text += &format!(
            "{}\n",
            serde_json::json!({"id": format!("r{i}"), "source": if i % 2 == 0 { "products" } else { "avatars" }, "day": "2023-11-19", "price": price})
        );
    }
    std::fs::write(&meta, text).unwrap();
    ok(&store, &["import", "--vectors", s(&npy), "--metadata", s(&meta)]);
    // And one row whose price is NaN (CSV and JSON both allow it): unknown like a null.
    let nan_meta = dir.path().join("nan.csv");
    std::fs::write(&nan_meta, "id,source,day,price\nnan1,products,2023-11-19,NaN\n").unwrap();
    let one = dir.path().join("one.npy");
    vitrine_engine::write_npy(&one, &vectors(1, dim), 1, dim).unwrap();
    ok(&store, &["import", "--vectors", s(&one), "--metadata", s(&nan_meta)]);
    let q = dir.path().join("q.npy");
    vitrine_engine::write_npy(&q, &vectors(n, dim)[..dim], 1, dim).unwrap();
    let ids = |filter: &str| -> Vec<String> {
        let out = ok(
            &store,
            &[
                "search",
                "--vector-file",
                s(&q),
                "-k",
                "100",
                "--filter",
                filter,
                "--format",
                "jsonl",
            ],
        );
        let mut v: Vec<String> = jsonl(&out)
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    // One null rule: a negated predicate and `!=` agree, and neither selects a row without a price.
    assert_eq!(ids("price != 5"), ids("not (price == 5)"));
    assert_eq!(ids("price != 5").len(), 29, "40 rows, 10 without a price, 1 priced 5");
    assert_eq!(ids("price not in [1.0, 2.0]"), ids("not (price in [1.0, 2.0])"));
    assert_eq!(ids("price not in [1.0, 2.0]").len(), 28);
    assert!(!ids("price != 5").contains(&"nan1".to_string()) && !ids("price not in [5]").contains(&"nan1".to_string()));
    // A source the collection does not have, in a filter or a delete, is named with the real ones.
    let e = fails(
        &store,
        &["search", "--vector-file", s(&q), "--filter", "source == \"product\""],
    );
    assert!(e.contains("\"product\"") && e.contains("avatars, products"), "{e}");
    let e = fails(&store, &["delete", "--source", "avatar"]);
    assert!(e.contains("\"avatar\"") && e.contains("avatars, products"), "{e}");
    // Filter errors read as words, not Rust.
    let e = fails(
        &store,
        &["search", "--vector-file", s(&q), "--filter", "price == \"cheap\""],
    );
    assert!(e.contains("text \"cheap\"") && !e.contains("Str("), "{e}");
    // CSV scores read back to exactly the JSON ones.
    let json: Vec<f64> = jsonl(&ok(
        &store,
        &["search", "--vector-file", s(&q), "-k", "10", "--format", "jsonl"],
    ))
    .iter()
    .map(|h| h["score"].as_f64().unwrap())
    .collect();
    let csv = ok(
        &store,
        &["search", "--vector-file", s(&q), "-k", "10", "--format", "csv"],
    );
    let from_csv: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(json, from_csv);
    assert!(
        json.iter().any(|s| s.to_string().len() > 9),
        "scores with many digits: {json:?}"
    );
    // Markup in ids, uris and sources reaches a page as text.
    let evil_meta = dir.path().join("evil.jsonl");
    std::fs::write(
        &evil_meta,
        "{\"id\":\"<img src=x onerror=alert(1)>\",\"uri\":\"a\\\"><script>alert(2)</script>\",\"source\":\"'><b>x\",\"day\":\"2023-11-19\"}\n",
    )
    .unwrap();
    ok(
        &store,
        &[
            "import",
            "-c",
            "evil",
            "--vectors",
            s(&one),
            "--metadata",
            s(&evil_meta),
        ],
    );
    let page = dir.path().join("evil.html");
    ok(
        &store,
        &["search", "-c", "evil", "--vector-file", s(&q), "--html", s(&page)],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;") && html.contains("&lt;script&gt;"),
        "{html}"
    );
    assert!(
        !html.contains("<img src=x") && !html.contains("<script>") && !html.contains("<b>x"),
        "{html}"
    );
    // A closed pipe ends the command quietly with status 0 (1,600 lines: more than a pipe holds).
    let all_queries = dir.path().join("all.npy");
    vitrine_engine::write_npy(&all_queries, &vectors(n, dim), n, dim).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .args([
            "--store",
            s(&store),
            "search",
            "--vector-file",
            s(&all_queries),
            "-k",
            "40",
            "--format",
            "csv",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("panicked"),
        "{:?}: {err}",
        out.status
    );
    // Missing arguments name every alternative.
    let e = fails(&store, &["search"]);
    assert!(
        ["--text", "--image", "--like", "--vector-file"]
            .iter()
            .all(|a| e.contains(a)),
        "{e}"
    );
    let e = fails(&store, &["sweep", "--prompt", "x", "--out", "o.csv"]);
    assert!(e.contains("--threshold") && e.contains("--top"), "{e}");
    let e = fails(&store, &["partitions", "retain"]);
    assert!(e.contains("--older-than") && e.contains("--before"), "{e}");
    let e = fails(&store, &["import"]);
    assert!(e.contains("--vectors") && e.contains("--clip-retrieval"), "{e}");
}

#[test]
fn check_covers_every_collection_and_names_every_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (n, dim) = (20, 4);
    let npy = dir.path().join("v.npy");
    vitrine_engine::write_npy(&npy, &vectors(n, dim), n, dim).unwrap();
    for c in ["one", "two"] {
        ok(
            &store,
            &[
                "import",
                "-c",
                c,
                "--vectors",
                s(&npy),
                "--source",
                "products",
                "--day",
                "2023-11-19",
            ],
        );
        ok(
            &store,
            &[
                "import",
                "-c",
                c,
                "--vectors",
                s(&npy),
                "--source",
                "avatars",
                "--day",
                "2023-11-19",
                "--id-prefix",
                "a",
            ],
        );
    }
    let out = ok(&store, &["check"]);
    assert!(
        out.contains("one:") && out.contains("two:") && out.matches("all checksums match").count() == 2,
        "{out}"
    );
    // Damage one segment in each collection, and a second in "two".
    let segs = |c: &str| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(store.join("collections").join(c).join("segments"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let mut damaged = vec![segs("one")[0].clone()];
    damaged.extend(segs("two"));
    for p in &damaged {
        let mut b = std::fs::read(p).unwrap();
        b[20] ^= 0x55;
        std::fs::write(p, b).unwrap();
    }
    let out = vitrine(&store, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    for p in &damaged {
        assert!(
            text.contains(p.file_name().unwrap().to_str().unwrap()),
            "{} not named: {text}",
            p.display()
        );
    }
}

#[test]
fn a_sweep_with_several_prompts_returns_each_row_once_with_its_best_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ok(
        &store,
        &[
            "index",
            s(&clip_fixture("images")),
            "--source",
            "avatars",
            "--model",
            s(&clip_fixture("chinese-clip-p16")),
        ],
    );
    let n = rows(&store).len();
    let prompts = ["a photo of a dog", "一只猫"];
    let hits = dir.path().join("hits.csv");
    ok(
        &store,
        &[
            "sweep",
            "--prompt",
            prompts[0],
            "--prompt",
            prompts[1],
            "--threshold",
            "-1",
            "--out",
            s(&hits),
        ],
    );
    let csv = std::fs::read_to_string(&hits).unwrap();
    let lines: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let mut ids: Vec<&str> = lines.iter().map(|l| l[1].as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((lines.len(), ids.len()), (n, n), "every row once: {csv}");
    // Each row's prompt is the one that scores it higher, with that score (search says; the
    // sweep embeds its prompts as one batch, which moves scores by ~1e-8).
    let scores = |p: &str| -> std::collections::HashMap<String, f64> {
        jsonl(&ok(
            &store,
            &["search", "--text", p, "--threshold", "-1", "--format", "jsonl"],
        ))
        .iter()
        .map(|h| (h["id"].as_str().unwrap().to_string(), h["score"].as_f64().unwrap()))
        .collect()
    };
    let (a, b) = (scores(prompts[0]), scores(prompts[1]));
    for l in &lines {
        let (sa, sb) = (a[&l[1]], b[&l[1]]);
        let (best, score) = if sa >= sb { (prompts[0], sa) } else { (prompts[1], sb) };
        let got: f64 = l[2].parse().unwrap();
        assert!(
            l[0] == best && (got - score).abs() < 1e-6,
            "{l:?}: search gives {best} {score}"
        );
    }
}
