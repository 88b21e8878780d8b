//! Readers under a writer: searches run continuously in other threads and in other processes
//! while one writer commits a random mixed workload (inserts, upserts, deletes, compaction,
//! retention). Every answer must be the answer on some committed manifest version: the writer
//! writes the model of each version to `expected/VERSION` before committing it, and a reader
//! compares the whole snapshot and an exact top 10 against the version it opened. Then: a
//! writer held in the middle of publishing does not stop readers, and a reader holding an old
//! snapshot does not stop the writer from compacting and dropping the files it maps.

use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vitrine_store::faults::{Injection, Op as FileOp};
use vitrine_store::*;

mod model;
use model::*;

const COMMITS: u64 = 300;

fn schema() -> Schema {
    let mut s = Schema::new(DIM, Metric::Cosine).unwrap();
    s.ensure_field("price", FieldType::Float).unwrap();
    s.ensure_field("city", FieldType::String).unwrap();
    s
}

/// Writes the rows a reader of `version` must see, atomically.
fn write_expected(dir: &Path, version: u64, c: &Coll) {
    let mut text = String::new();
    for (id, v) in vectors_of(c) {
        text.push_str(&id);
        for x in v {
            text.push_str(&format!(" {:08x}", x.to_bits()));
        }
        text.push('\n');
    }
    let tmp = dir.join(format!("{version}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(version.to_string())).unwrap();
}

fn read_expected(dir: &Path, version: u64) -> Vec<(String, Vec<f32>)> {
    let path = dir.join(version.to_string());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("a reader saw version {version}, which the writer never committed: {e}"));
    text.lines()
        .map(|l| {
            let mut parts = l.split(' ');
            let id = parts.next().unwrap().to_string();
            let v = parts
                .map(|h| f32::from_bits(u32::from_str_radix(h, 16).unwrap()))
                .collect();
            (id, v)
        })
        .collect()
}

/// Opens a snapshot and checks it against the version it says it is: every row, bit for bit,
/// and an exact top 10. Returns that version.
fn check_once(store: &Store, expected: &Path, rng: &mut impl Rng) -> u64 {
    let snap = store
        .snapshot("c")
        .unwrap_or_else(|e| panic!("a reader failed to open a snapshot: {e}"));
    let version = snap.manifest().version;
    let want = read_expected(expected, version);
    let mut got: Vec<(String, Vec<f32>)> = Vec::new();
    snap.for_each_row::<()>(&Selection::default(), |r| {
        got.push((r.id().to_string(), r.vector().to_vec()));
        Ok(())
    })
    .unwrap();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let bits = |v: &[(String, Vec<f32>)]| -> Vec<(String, Vec<u32>)> {
        v.iter()
            .map(|(id, x)| (id.clone(), x.iter().map(|f| f.to_bits()).collect()))
            .collect()
    };
    assert!(
        bits(&got) == bits(&want),
        "version {version}: the snapshot's rows are not that version's"
    );
    let q: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let res = snap
        .search(&SearchRequest {
            queries: q.clone(),
            k: Some(10),
            threshold: None,
            selection: Selection::default(),
            scan: Default::default(),
        })
        .unwrap_or_else(|e| panic!("version {version}: search failed: {e}"));
    let brute = top_k(&want, &q, 10);
    let ids: Vec<&str> = res.hits[0].iter().map(|h| h.id.as_str()).collect();
    let want_ids: Vec<&str> = brute.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, want_ids, "version {version}: the top 10 is not that version's");
    for (h, (_, s)) in res.hits[0].iter().zip(&brute) {
        assert!(
            (h.score - s).abs() < 1e-12,
            "version {version}: score {} instead of {s}",
            h.score
        );
    }
    version
}

/// A reader process: checks snapshots until the stop file appears, then prints its count.
#[test]
#[ignore = "a reader process of the readers-under-a-writer test, started by it"]
fn reader_process() {
    let var = |k: &str| PathBuf::from(std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run by the test")));
    let (root, expected, stop) = (
        var("VITRINE_READER_STORE"),
        var("VITRINE_READER_EXPECTED"),
        var("VITRINE_READER_STOP"),
    );
    let store = Store::open(&root).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(std::process::id().into());
    let (mut checks, mut versions) = (0u64, std::collections::BTreeSet::new());
    loop {
        let stopping = stop.exists();
        versions.insert(check_once(&store, &expected, &mut rng));
        checks += 1;
        if stopping {
            break;
        }
    }
    println!("\nchecked {checks} snapshots of {} versions", versions.len());
}

#[test]
fn searches_in_other_threads_and_processes_during_commits_see_only_committed_versions() {
    let seed = 7_301;
    let dir = scratch();
    let root = dir.path().join("store");
    let expected = dir.path().join("expected");
    std::fs::create_dir_all(&expected).unwrap();
    let stop_file = dir.path().join("stop");
    let w = Store::open_writer(&root).unwrap();
    w.create_collection("c", schema()).unwrap();
    let mut c = w.collection("c").unwrap();
    c.set_max_segment_rows(16);
    let mut model = read_state(&root).remove("c").unwrap();
    write_expected(&expected, c.manifest().version, &model);

    let processes: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "reader_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("VITRINE_READER_STORE", &root)
                .env("VITRINE_READER_EXPECTED", &expected)
                .env("VITRINE_READER_STOP", &stop_file)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let (stop, root, expected) = (stop.clone(), root.clone(), expected.clone());
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                let (mut checks, mut versions) = (0u64, std::collections::BTreeSet::new());
                loop {
                    let stopping = stop.load(Ordering::SeqCst);
                    versions.insert(check_once(&store, &expected, &mut rng));
                    checks += 1;
                    if stopping {
                        return (checks, versions.len());
                    }
                }
            })
        })
        .collect();

    let mut published = 0;
    for i in 1..=COMMITS {
        let op = op(seed, i);
        let before = c.manifest().version;
        let mut next = model.clone();
        apply(&mut next, &op);
        // Readers may see the new version the moment it is published: describe it first.
        write_expected(&expected, before + 1, &next);
        execute(&mut c, &op).unwrap();
        let after = c.manifest().version;
        assert!(
            after == before || after == before + 1,
            "commit {i} published {} versions",
            after - before
        );
        if after == before {
            assert!(next == model, "commit {i} changed the model but published nothing");
        }
        published += after - before;
        model = next;
    }
    stop.store(true, Ordering::SeqCst);
    std::fs::write(&stop_file, b"").unwrap();
    let mut report = Vec::new();
    for t in threads {
        let (checks, versions) = t.join().expect("a reader thread failed");
        report.push(format!("thread: {checks} snapshots of {versions} versions"));
    }
    for p in processes {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success(), "a reader process failed: {:?}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("checked "))
            .expect("the reader process reported");
        report.push(format!("process: {}", line.trim_start_matches("checked ")));
    }
    eprintln!(
        "readers under a writer: {COMMITS} commits ({published} versions published, {} rows at the end); {}; 0 errors",
        model.rows.len(),
        report.join("; ")
    );
}

#[test]
fn a_writer_held_mid_publish_does_not_stop_readers_and_an_old_snapshot_does_not_stop_the_writer() {
    let dir = scratch();
    let root = dir.path().join("store");
    let w = Store::open_writer(&root).unwrap();
    w.create_collection("c", schema()).unwrap();
    let mut c = w.collection("c").unwrap();
    c.set_max_segment_rows(16);
    c.insert(&batch(0..100, 0)).unwrap();
    c.delete_ids(&["r003".into(), "r050".into()]).unwrap();
    let v0 = read_state(&root);
    let store = Store::open(&root).unwrap();
    let old = store.snapshot("c").unwrap();

    // Hold the writer just before it renames its new manifest into place.
    let (paused_tx, paused_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let hook = Injection::hook(&root, move |_, op, path| {
        if op == FileOp::Rename && path.ends_with("manifest.json.tmp") {
            paused_tx.send(()).unwrap();
            go_rx.lock().unwrap().recv().unwrap();
        }
    });
    let writer = std::thread::spawn(move || {
        c.insert(&batch(100..150, 1)).unwrap();
        c
    });
    paused_rx.recv().unwrap();
    // The writer is mid-commit: its segments are written, its manifest not yet in place.
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let during = store.snapshot("c").unwrap();
    assert_eq!(during.manifest().version, old.manifest().version);
    assert_eq!(during.rows() as usize, v0["c"].rows.len());
    let q: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let req = SearchRequest {
        queries: q.clone(),
        k: Some(10),
        threshold: None,
        selection: Selection::default(),
        scan: Default::default(),
    };
    let hits: Vec<String> = during.search(&req).unwrap().hits[0]
        .iter()
        .map(|h| h.id.clone())
        .collect();
    let want: Vec<String> = top_k(&vectors_of(&v0["c"]), &q, 10)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(hits, want);
    go_tx.send(()).unwrap();
    let mut c = writer.join().unwrap();
    drop(hook);
    assert_eq!(store.snapshot("c").unwrap().rows() as usize, v0["c"].rows.len() + 50);

    // The old snapshot maps files that compaction and retention now remove: the writer does
    // not wait for it, and it still answers as the version it was.
    c.compact().unwrap();
    c.drop_partitions(|_, _| true).unwrap();
    assert_eq!(store.snapshot("c").unwrap().rows(), 0);
    let mut rows: Vec<(String, Vec<f32>)> = Vec::new();
    old.for_each_row::<()>(&Selection::default(), |r| {
        rows.push((r.id().to_string(), r.vector().to_vec()));
        Ok(())
    })
    .unwrap();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(rows == vectors_of(&v0["c"]), "the old snapshot changed under it");
    let hits: Vec<String> = old.search(&req).unwrap().hits[0].iter().map(|h| h.id.clone()).collect();
    assert_eq!(hits, want);
}
