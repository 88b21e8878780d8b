//! The engine's writes under injected faults: an import (an upsert of old and new ids) and an
//! index run (the ledger, thumbnails, provenance, arrival numbers) are each run once to count
//! their file operations, then once per operation with it failing, crashing, or crashing under
//! a power cut ([`vitrine_store::faults`]; the engine's own files go through the same layer).
//! After each: the store checks clean (its logs included), the rows are those before or after
//! the operation (after, if it was acknowledged), and running the operation again ends exactly
//! where an uninterrupted run ends, with nothing left pending in the ledger.
//!
//! Deletes, partition drops and retention first append a tombstone (`forgotten.jsonl`, so an
//! index run does not bring the rows back), then commit to the store. Their matrices add one
//! invariant after every fault and every rerun: each row that is gone has its tombstone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vitrine_engine::admin::{Cutoff, DeleteRequest, RetainRequest};
use vitrine_engine::holds::HoldRequest;
use vitrine_engine::import::{Defaults, ImportRequest, ImportSource};
use vitrine_engine::index::{IndexInputs, IndexOptions, IndexRequest};
use vitrine_engine::ledger::{Ledger, State};
use vitrine_engine::tombstones::Tombstones;
use vitrine_engine::{Day, Engine, ErrorKind, Metric, SelectionSpec};
use vitrine_store::faults::{Fault, Injection};
use vitrine_store::{Selection, Store};

/// Every row as a reader sees it: uri, vector bits, fields (the arrival stamp left out: a rerun
/// stamps its own).
type Rows = BTreeMap<String, (String, Vec<u32>, Vec<String>)>;

fn rows(store: &Path) -> Rows {
    let mut out = Rows::new();
    let Ok(s) = Store::open(store) else { return out };
    if !s.has_collection("images") {
        return out;
    }
    let snap = s.snapshot("images").unwrap();
    let names: Vec<String> = snap
        .schema()
        .fields
        .iter()
        .map(|f| f.name.clone())
        .filter(|n| n != "arrival")
        .collect();
    snap.for_each_row::<()>(&Selection::default(), |r| {
        let fields = names.iter().map(|n| format!("{n}={:?}", r.value(n))).collect();
        let bits = r.vector().iter().map(|x| x.to_bits()).collect();
        out.insert(r.id().to_string(), (r.uri().to_string(), bits, fields));
        Ok(())
    })
    .unwrap();
    out
}

/// The (source, day) of every row.
fn homes(store: &Path) -> BTreeMap<String, (String, Day)> {
    let mut out = BTreeMap::new();
    let snap = Store::open(store).unwrap().snapshot("images").unwrap();
    snap.for_each_row::<()>(&Selection::default(), |r| {
        out.insert(r.id().to_string(), (r.source().to_string(), r.day()));
        Ok(())
    })
    .unwrap();
    out
}

/// Every row of `before` that is gone from the store at `root` has a tombstone.
fn gone_rows_have_tombstones(root: &Path, before: &BTreeMap<String, (String, Day)>, context: &str) {
    let now = rows(root);
    let t = Tombstones::open(&root.join("collections/images")).unwrap_or_else(|e| panic!("{context}: {e}"));
    for (id, (source, day)) in before.iter().filter(|(id, _)| !now.contains_key(*id)) {
        assert!(
            t.forgets(id, source, Some(*day)).is_some(),
            "{context}: row {id} ({source}, {day}) is gone without a tombstone"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("vitrine-engine-faults").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Opens the store as its writer once (a crashed commit's leftovers go), then checks every
/// file and log.
fn reopen_and_check(store: &Path, context: &str) {
    if let Ok(w) = Store::open_writer(store) {
        for name in w.collections().unwrap() {
            drop(w.collection(&name).unwrap());
        }
    }
    for c in Engine::open_store(store).check(None).unwrap() {
        assert!(c.report.problems.is_empty(), "{context}: {:?}", c.report.problems);
    }
}

fn no_pending(store: &Path, context: &str) {
    let ledger = store.join("collections/images/ledger.jsonl");
    let l = Ledger::open(&ledger).unwrap_or_else(|e| panic!("{context}: {e}"));
    let pending: Vec<&str> = l
        .entries()
        .filter(|e| e.state == State::Pending)
        .map(|e| e.key.as_str())
        .collect();
    assert!(
        pending.is_empty(),
        "{context}: still pending after a full run: {pending:?}"
    );
}

/// Runs `op` against a copy of `base` for every file operation it performs and every fault.
fn matrix(name: &str, base: &Path, op: &dyn Fn(&Engine) -> vitrine_engine::Result<()>) -> (u64, usize) {
    let dir = scratch();
    let before = rows(base);
    let homes_before = homes(base);
    let clean = dir.path().join("clean");
    copy_dir(base, &clean);
    let total = {
        let engine = Engine::open_store(&clean);
        let count = Injection::count(&clean);
        op(&engine).unwrap_or_else(|e| panic!("{name}: {e}"));
        count.ops()
    };
    let after = rows(&clean);
    assert_ne!(after, before, "{name} changed nothing");
    reopen_and_check(&clean, name);
    let mut runs = 0;
    for n in 1..=total {
        for fault in [Fault::Fail, Fault::Crash, Fault::PowerLoss] {
            let context = format!("{name}, {fault:?} at file operation {n} of {total}");
            let root = dir.path().join(format!("run-{n}"));
            copy_dir(base, &root);
            let acked = {
                let engine = Engine::open_store(&root);
                let injection = Injection::at(&root, n, fault);
                let r = op(&engine);
                assert!(injection.fired(), "{context}: the fault was not reached");
                r.is_ok()
            };
            reopen_and_check(&root, &context);
            gone_rows_have_tombstones(&root, &homes_before, &context);
            let got = rows(&root);
            if acked {
                assert!(got == after, "{context}: acknowledged, but the rows are not the run's");
            } else {
                assert!(
                    got == before || got == after,
                    "{context}: the rows are neither before nor after"
                );
            }
            // Running it again finishes the job exactly.
            op(&Engine::open_store(&root)).unwrap_or_else(|e| panic!("{context}: the rerun failed: {e}"));
            assert!(
                rows(&root) == after,
                "{context}: the rerun did not end where a clean run ends"
            );
            reopen_and_check(&root, &context);
            gone_rows_have_tombstones(&root, &homes_before, &context);
            no_pending(&root, &context);
            runs += 1;
            std::fs::remove_dir_all(&root).unwrap();
        }
    }
    (total, runs)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vitrine-clip/tests/fixtures")
}

fn write_vectors(dir: &Path, name: &str, ids: std::ops::Range<usize>, salt: f32) -> ImportSource {
    let n = ids.len();
    let mut v = Vec::new();
    let mut meta = String::new();
    for i in ids {
        let mut row = [0.1f32 + salt; 4];
        row[i % 4] = 1.0 + i as f32 / 100.0;
        v.extend(row);
        meta += &format!(
            "{}\n",
            serde_json::json!({"id": format!("r{i}"), "source": if i % 2 == 0 {"products"} else {"avatars"},
                               "day": format!("2023-11-{:02}", 19 + i % 3), "price": i as f64 + salt as f64})
        );
    }
    let vectors = dir.join(format!("{name}.npy"));
    vitrine_engine::write_npy(&vectors, &v, n, 4).unwrap();
    let metadata = dir.join(format!("{name}.jsonl"));
    std::fs::write(&metadata, meta).unwrap();
    ImportSource::Npy {
        vectors,
        metadata: Some(metadata),
    }
}

fn import_request(source: ImportSource) -> ImportRequest {
    ImportRequest {
        collection: "images".into(),
        source,
        defaults: Defaults::default(),
        metric: Metric::Cosine,
        batch_size: 1000,
        model: None,
    }
}

#[test]
fn an_import_survives_a_failure_a_crash_or_a_power_cut_at_each_file_operation_and_a_rerun_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let first = write_vectors(dir.path(), "first", 0..20, 0.0);
    Engine::open_store(&base)
        .import(&import_request(first), &mut |_, _| {})
        .unwrap();
    // Ten rows: five replace live ids, five are new.
    let second = write_vectors(dir.path(), "second", 15..25, 0.05);
    let (ops, runs) = matrix("import", &base, &|e: &Engine| {
        e.import(&import_request(second.clone()), &mut |_, _| {}).map(drop)
    });
    eprintln!("import under faults: {ops} file operations, {runs} runs, 0 rows lost");
}

#[test]
fn an_index_run_survives_a_failure_a_crash_or_a_power_cut_at_each_file_operation_and_a_rerun_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let pictures = dir.path().join("pictures");
    std::fs::create_dir_all(&pictures).unwrap();
    for f in ["scene_320x240.png", "wide_641x203.jpg"] {
        std::fs::copy(fixtures().join("images").join(f), pictures.join(f)).unwrap();
    }
    let request = IndexRequest {
        collection: "images".into(),
        inputs: IndexInputs::Paths {
            paths: vec![pictures.clone()],
            source: "products".into(),
        },
        model: Some(fixtures().join("chinese-clip-p16").display().to_string()),
        options: IndexOptions::default(),
    };
    let base = dir.path().join("base");
    Engine::open_store(&base).index(&request, &mut |_, _| {}).unwrap();
    // One more picture: the run plans three inputs, skips two unchanged, embeds and commits one.
    std::fs::copy(
        fixtures().join("images/rgba_200x200.png"),
        pictures.join("rgba_200x200.png"),
    )
    .unwrap();
    let (ops, runs) = matrix("index", &base, &|e: &Engine| {
        e.index(&request, &mut |_, _| {}).map(drop)
    });
    eprintln!("index under faults: {ops} file operations, {runs} runs, 0 rows lost");
}

/// A store of 40 rows over two sources and three days.
fn forgetting_base(dir: &Path) -> PathBuf {
    let base = dir.join("base");
    let src = write_vectors(dir, "rows", 0..40, 0.0);
    Engine::open_store(&base)
        .import(&import_request(src), &mut |_, _| {})
        .unwrap();
    base
}

fn day(s: &str) -> Day {
    s.parse().unwrap()
}

/// An operation that is done already (a partition dropped before the fault) is not an error
/// for the rerun.
fn done_if_gone<T>(r: vitrine_engine::Result<T>) -> vitrine_engine::Result<()> {
    match r {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        r => r.map(drop),
    }
}

#[test]
fn deletes_by_id_and_by_selection_survive_every_fault_and_never_lose_a_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let base = forgetting_base(dir.path());
    let ids: Vec<String> = ["r1", "r4", "r7", "r38", "missing"].map(String::from).to_vec();
    let (a, runs_a) = matrix("delete by id", &base, &|e: &Engine| {
        e.delete("images", &DeleteRequest::Ids(ids.clone())).map(drop)
    });
    let selection = DeleteRequest::Selection(SelectionSpec {
        sources: vec!["products".into()],
        from: Some(day("2023-11-20")),
        to: Some(day("2023-11-20")),
        filter: Some("price < 30".into()),
        ..SelectionSpec::default()
    });
    let (b, runs_b) = matrix("delete by selection", &base, &|e: &Engine| {
        e.delete("images", &selection).map(drop)
    });
    eprintln!(
        "deletes under faults: {a} + {b} file operations, {} runs, no row gone without a tombstone",
        runs_a + runs_b
    );
}

#[test]
fn partition_drops_and_retention_survive_every_fault_and_never_lose_a_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let base = forgetting_base(dir.path());
    let (a, runs_a) = matrix("partition drop", &base, &|e: &Engine| {
        done_if_gone(e.drop_partition("images", "avatars", day("2023-11-20")))
    });
    let retain = RetainRequest {
        collection: "images".into(),
        cutoff: Cutoff::Before(day("2023-11-21")),
        source: None,
        dry_run: false,
    };
    // Without holds retention records one horizon; with a hold, each partition it drops.
    let (b, runs_b) = matrix("retention", &base, &|e: &Engine| e.retain(&retain).map(drop));
    let held = dir.path().join("held");
    copy_dir(&base, &held);
    let hold = HoldRequest {
        source: Some("products".into()),
        from: day("2023-11-19"),
        to: day("2023-11-19"),
        reason: "case 4711".into(),
        by: "compliance@example".into(),
    };
    Engine::open_store(&held).place_hold("images", hold).unwrap();
    let (c, runs_c) = matrix("retention under a hold", &held, &|e: &Engine| {
        let r = e.retain(&retain)?;
        assert_eq!(r.kept.len(), 1, "the held day stays");
        Ok(())
    });
    eprintln!(
        "partition drops and retention under faults: {a} + {b} + {c} file operations, {} runs, no row gone without a tombstone",
        runs_a + runs_b + runs_c
    );
}
