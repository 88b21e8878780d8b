//! Watchlists through the binary: add, list, run, alerts, remove, `import --watch`, the page,
//! and `watch run` killed with SIGKILL at random moments without losing or repeating an alert.

mod common;

use common::{clip_fixture, fails, ok, s, vitrine};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DIM: usize = 16;

/// A seeded generator (the test is the same every time).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` rows: about half near direction `a` (they hit a watchlist like row "seed"), the rest
/// anywhere.
fn rows(rng: &mut Lcg, a: &[f32], n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let near = rng.next() < 0.5;
            (0..DIM)
                .map(|d| {
                    let noise = (rng.next() - 0.5) as f32;
                    if near {
                        a[d] + noise * 0.5
                    } else {
                        noise
                    }
                })
                .collect()
        })
        .collect()
}

/// Imports `rows` with ids PREFIX0, PREFIX1, ... (uris from `uri`) and returns the output.
fn import(
    store: &Path,
    dir: &Path,
    prefix: &str,
    rows: &[Vec<f32>],
    uri: &dyn Fn(usize) -> String,
    extra: &[&str],
) -> String {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let npy = dir.join(format!("{prefix}.npy"));
    vitrine_engine::write_npy(&npy, &flat, rows.len(), DIM).unwrap();
    let meta = dir.join(format!("{prefix}.jsonl"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&meta).unwrap());
    for i in 0..rows.len() {
        let source = if i % 3 == 0 { "avatars" } else { "products" };
        writeln!(
            f,
            "{}",
            serde_json::json!({"id": format!("{prefix}{i}"), "uri": uri(i), "source": source, "day": "2024-03-01"})
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let mut args = vec!["import", "--vectors", s(&npy), "--metadata", s(&meta)];
    args.extend_from_slice(extra);
    ok(store, &args)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum::<f64>();
    dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
}

/// The alert log as (id, arrival) → n, asserting every key once and numbers 1, 2, ...
fn alert_log(store: &Path, name: &str) -> HashMap<(String, i64), u64> {
    let out = ok(store, &["watch", "alerts", name, "--format", "jsonl"]);
    let mut keys = HashMap::new();
    for (i, line) in out.lines().enumerate() {
        let a: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(a["n"].as_u64(), Some(i as u64 + 1), "{line}");
        let key = (a["id"].as_str().unwrap().to_string(), a["arrival"].as_i64().unwrap());
        assert!(keys.insert(key, i as u64 + 1).is_none(), "alerted twice: {line}");
    }
    keys
}

#[test]
fn watch_add_list_run_alerts_remove_and_import_watch() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut rng = Lcg(7);
    let a: Vec<f32> = (0..DIM).map(|d| if d < 4 { 1.0 } else { 0.0 }).collect();
    let first = rows(&mut rng, &a, 300);
    import(
        &store,
        dir.path(),
        "old",
        &first,
        &|i| format!("/photos/old/{i}.jpg"),
        &[],
    );
    let threshold = "0.8";
    // Only products, like the first row.
    let added = ok(
        &store,
        &[
            "watch",
            "add",
            "near-a",
            "--like",
            "old0",
            "--threshold",
            threshold,
            "--source",
            "products",
            "--by",
            "ana",
        ],
    );
    assert!(added.contains("added watchlist \"near-a\""), "{added}");
    let e = fails(
        &store,
        &[
            "watch",
            "add",
            "near-a",
            "--like",
            "old0",
            "--threshold",
            "0.5",
            "--by",
            "ana",
        ],
    );
    assert!(e.contains("already has a watchlist \"near-a\""), "{e}");
    let e = fails(
        &store,
        &[
            "watch",
            "add",
            "x",
            "--like",
            "nope",
            "--threshold",
            "0.5",
            "--by",
            "ana",
        ],
    );
    assert!(e.contains("\"nope\""), "{e}");
    let e = fails(&store, &["watch", "run", "missing"]);
    assert!(e.contains("no watchlist \"missing\"") && e.contains("near-a"), "{e}");

    // `import --watch` runs it on what was just imported; one uri needs escaping in the page.
    let second = rows(&mut rng, &a, 300);
    let out = import(
        &store,
        dir.path(),
        "new",
        &second,
        &|i| format!("/photos/<new>&{i}.jpg"),
        &["--watch"],
    );
    let query = &first[0];
    let want: HashSet<String> = second
        .iter()
        .enumerate()
        .filter(|(i, v)| i % 3 != 0 && cosine(query, v) >= 0.8)
        .map(|(i, _)| format!("new{i}"))
        .collect();
    assert!(want.len() >= 50, "{} hits", want.len());
    let printed: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: HashSet<String> = printed.iter().map(|a| a["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, want);
    assert!(printed
        .iter()
        .all(|a| a["watchlist"] == "near-a" && a["source"] == "products" && a["query"] == "old0"));

    // The list says where it stands; a second run finds nothing new.
    let list = ok(&store, &["watch", "list", "--format", "jsonl"]);
    let w: serde_json::Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(
        (w["name"].as_str(), w["runs"].as_u64(), w["alerts"].as_u64()),
        (Some("near-a"), Some(1), Some(want.len() as u64))
    );
    assert_eq!((w["cursor"].as_i64(), w["published"].as_i64()), (Some(2), Some(2)));
    assert_eq!(ok(&store, &["watch", "run", "--format", "jsonl"]).trim(), "");

    // The alerts after N, and as a page where every value is escaped.
    let after = ok(
        &store,
        &["watch", "alerts", "near-a", "--after", "5", "--format", "jsonl"],
    );
    assert_eq!(after.lines().count(), want.len() - 5);
    assert!(after.lines().next().unwrap().contains("\"n\":6"));
    let page = dir.path().join("alerts.html");
    ok(
        &store,
        &["watch", "alerts", "near-a", "--html", s(&page), "--format", "csv"],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("/photos/&lt;new&gt;&amp;") && !html.contains("<new>"),
        "unescaped uri"
    );
    assert_eq!(html.matches("<figure").count(), want.len());

    // Removal keeps the alerts aside.
    let removed = ok(&store, &["watch", "remove", "near-a"]);
    assert!(removed.contains("watchlists-removed"), "{removed}");
    assert_eq!(ok(&store, &["watch", "list", "--format", "jsonl"]).trim(), "");
    let kept = std::fs::read_dir(store.join("collections/images/watchlists-removed"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let log = std::fs::read_to_string(kept.join("alerts.jsonl")).unwrap();
    assert_eq!(log.lines().count(), want.len());
}

#[test]
fn watch_runs_killed_at_random_moments_lose_and_repeat_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut rng = Lcg(2024);
    let a: Vec<f32> = (0..DIM).map(|d| if d % 2 == 0 { 1.0 } else { 0.0 }).collect();
    let seed = rows(&mut rng, &a, 1);
    import(&store, dir.path(), "seed", &seed, &|i| format!("seed/{i}.jpg"), &[]);
    ok(
        &store,
        &[
            "watch",
            "add",
            "w",
            "--like",
            "seed0",
            "--threshold",
            "0.75",
            "--by",
            "test",
        ],
    );
    let state = store.join("collections/images/watchlists/w/state.json");
    let log = store.join("collections/images/watchlists/w/alerts.jsonl");
    let cursor = || -> i64 {
        std::fs::read_to_string(&state).ok().map_or(1, |t| {
            serde_json::from_str::<serde_json::Value>(&t).unwrap()["cursor"]
                .as_i64()
                .unwrap()
        })
    };
    let lines = || std::fs::read(&log).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
    let torn = || std::fs::read(&log).is_ok_and(|b| b.last().is_some_and(|&c| c != b'\n'));

    // Rounds: import 40k rows, then a `watch run` that is left to finish (every third round),
    // killed after a random delay (up to twice a clean run's time), or killed the moment its
    // alert log starts to grow (mid-append, or appended with the cursor not yet moved).
    let mut all: Vec<(String, Vec<f32>)> = Vec::new();
    let mut clean = Duration::from_millis(200);
    let (mut killed, mut before_cursor, mut torn_seen) = (0, 0, 0);
    let size = || std::fs::metadata(&log).map_or(0, |m| m.len());
    for round in 0..15 {
        let batch = rows(&mut rng, &a, 40_000);
        let prefix = format!("r{round}_");
        import(&store, dir.path(), &prefix, &batch, &|i| format!("img/{i}.jpg"), &[]);
        all.extend(batch.into_iter().enumerate().map(|(i, v)| (format!("{prefix}{i}"), v)));
        let (lines_before, cursor_before, size_before) = (lines(), cursor(), size());
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vitrine"))
            .args(["--store", s(&store), "watch", "run", "w", "--format", "jsonl"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        match round % 3 {
            0 => {
                assert!(child.wait().unwrap().success());
                clean = started.elapsed();
                continue;
            }
            1 => std::thread::sleep(clean.mul_f64(2.0 * rng.next())),
            _ => {
                // The log grows only by this run's append; give up waiting after 20 s.
                while size() == size_before && started.elapsed() < Duration::from_secs(20) {
                    std::hint::spin_loop();
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        if child.wait().unwrap().success() {
            continue; // it finished before the kill
        }
        killed += 1;
        if torn() {
            torn_seen += 1;
        } else if lines() > lines_before && cursor() == cursor_before {
            before_cursor += 1;
        }
    }
    // A last clean run, then the log against the brute force: every row at or above the
    // threshold exactly once.
    ok(&store, &["watch", "run", "w"]);
    let keys = alert_log(&store, "w");
    let query = &seed[0];
    let want: HashSet<String> = all
        .iter()
        .filter(|(_, v)| cosine(query, v) >= 0.75)
        .map(|(id, _)| id.clone())
        .collect();
    let got: HashSet<String> = keys.keys().map(|(id, _)| id.clone()).collect();
    assert_eq!(got.len(), keys.len(), "a row alerted under two arrival numbers");
    assert_eq!(got, want, "alerts lost or extra");
    assert!(!torn(), "a torn line survived a clean run");
    eprintln!(
        "{} rows, {} alerts; {killed} runs killed: {before_cursor} after appending alerts but before moving the \
         cursor, {torn_seen} in the middle of a line",
        all.len(),
        keys.len()
    );
    // Killed the moment the log grew, a run is caught before its cursor moves: the states this
    // test is for did occur (a run does its append, fsync and state write in milliseconds; the
    // kill follows the growth within microseconds).
    assert!(
        before_cursor + torn_seen >= 1,
        "no kill landed between the append and the cursor"
    );
    let out = vitrine(&store, &["watch", "run", "w"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 new alert(s)"));
}

#[test]
fn an_image_watchlist_fires_when_index_watch_adds_a_copy_of_its_picture() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (day1, day2) = (dir.path().join("day1"), dir.path().join("day2"));
    std::fs::create_dir_all(&day1).unwrap();
    std::fs::create_dir_all(&day2).unwrap();
    let fx = clip_fixture("images");
    for f in ["wide_641x203.jpg", "rgba_200x200.png", "photo.bmp"] {
        std::fs::copy(fx.join(f), day1.join(f)).unwrap();
    }
    let model = clip_fixture("chinese-clip-p16");
    ok(
        &store,
        &["index", s(&day1), "--source", "products", "--model", s(&model)],
    );
    // Watch for a picture that is not indexed yet; the next day's folder holds a copy of it
    // and two others.
    let wanted = dir.path().join("wanted.png");
    std::fs::copy(fx.join("scene_320x240.png"), &wanted).unwrap();
    // The fixture pictures are one photo in several formats (photo.bmp, already indexed, is
    // the same picture; progressive.jpg scores 0.999992): only a copy of the bytes' pixels
    // reaches the threshold, and only new rows are evaluated.
    ok(
        &store,
        &[
            "watch",
            "add",
            "wanted",
            "--image",
            s(&wanted),
            "--threshold",
            "0.99999999",
            "--by",
            "ana",
        ],
    );
    std::fs::copy(fx.join("scene_320x240.png"), day2.join("reposted.png")).unwrap();
    for f in ["palette_150x100.png", "progressive.jpg"] {
        std::fs::copy(fx.join(f), day2.join(f)).unwrap();
    }
    let out = vitrine(&store, &["index", s(&day2), "--source", "avatars", "--watch"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("watchlist \"wanted\" run 1: 1 new alert(s) among 3 row(s) evaluated"),
        "{stderr}"
    );
    let alerts: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0]["uri"].as_str().unwrap().ends_with("reposted.png"),
        "{}",
        alerts[0]
    );
    assert_eq!(alerts[0]["source"], "avatars");
    assert!(alerts[0]["score"].as_f64().unwrap() > 0.999);
    assert!(alerts[0]["query"].as_str().unwrap().ends_with("wanted.png"));
}
