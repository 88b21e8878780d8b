//! The crash and I/O-fault matrix: every commit the store makes (insert, upsert, delete by id
//! and by selection, compaction, partition drop, retention, provenance, schema change,
//! collection create and drop) is run once to count its file operations, then again for every
//! N of them with the N-th one failing, crashing, or crashing under a power cut
//! ([`vitrine_store::faults`]). After each: the store reopens, `check` finds no damage, no file
//! is left that the manifest does not name, and the contents equal an in-memory model of the
//! state before the commit or after it — after it whenever the commit was acknowledged. A
//! writer that saw an I/O error must also go on committing correctly.

use std::path::Path;
use vitrine_store::faults::{Fault, Injection};
use vitrine_store::*;

mod model;
use model::*;

const SEGMENT_ROWS: usize = 8;

/// The store every operation starts from: 60 rows in 2 commits (segments of 8 rows), 7 of them
/// deleted (so bitmaps exist), and one provenance entry.
fn baseline(root: &Path) {
    let w = Store::open_writer(root).unwrap();
    w.create_collection("c", Schema::new(DIM, Metric::Cosine).unwrap())
        .unwrap();
    let mut c = w.collection("c").unwrap();
    c.set_max_segment_rows(SEGMENT_ROWS);
    c.insert(&batch(0..30, 0)).unwrap();
    c.insert(&batch(30..60, 0)).unwrap();
    let gone: Vec<String> = (0..60).step_by(9).map(|i| format!("r{i:03}")).collect();
    assert_eq!(c.delete_ids(&gone).unwrap(), 7);
    c.set_info([("model".to_string(), serde_json::json!("demo"))]).unwrap();
}

type Commit = Box<dyn Fn(&Writer, &mut CollectionWriter) -> Result<()>>;
type Expect = Box<dyn Fn(&mut State)>;
/// Every commit the store makes, each with what it does to the model.
fn operations() -> Vec<(&'static str, Commit, Expect)> {
    let d1 = Day::from_timestamp(DAY0 + 86_400);
    vec![
        (
            "insert",
            Box::new(|_, c| c.insert(&batch(60..100, 0)).map(drop)),
            Box::new(|s| s.get_mut("c").unwrap().rows.extend(rows_of(&batch(60..100, 0)))),
        ),
        (
            "upsert",
            // Half new ids, half replacing live ones (and deleted ones), plus a moved row.
            Box::new(|_, c| c.insert_replacing(&batch(40..75, 1), &["r001".into()]).map(drop)),
            Box::new(|s| {
                let c = s.get_mut("c").unwrap();
                c.rows.remove("r001");
                c.rows.extend(rows_of(&batch(40..75, 1)));
            }),
        ),
        (
            "delete by id",
            Box::new(|_, c| c.delete_ids(&["r002".into(), "r031".into(), "r058".into()]).map(drop)),
            Box::new(|s| {
                for id in ["r002", "r031", "r058"] {
                    s.get_mut("c").unwrap().rows.remove(id);
                }
            }),
        ),
        (
            "delete by selection",
            Box::new(move |_, c| {
                let sel = Selection {
                    sources: vec!["avatars".into()],
                    from: Some(d1),
                    to: Some(d1),
                    filter: None,
                };
                c.delete_where(&sel).map(drop)
            }),
            Box::new(move |s| {
                s.get_mut("c")
                    .unwrap()
                    .rows
                    .retain(|_, r| !(r.source == "avatars" && day_of(r) == d1))
            }),
        ),
        ("compact", Box::new(|_, c| c.compact().map(drop)), Box::new(|_| {})),
        (
            "partition drop",
            Box::new(move |_, c| c.drop_partition("products", d1).map(drop)),
            Box::new(move |s| {
                s.get_mut("c")
                    .unwrap()
                    .rows
                    .retain(|_, r| !(r.source == "products" && day_of(r) == d1))
            }),
        ),
        (
            "retention",
            Box::new(move |_, c| c.drop_partitions(|_, d| d <= d1).map(drop)),
            Box::new(move |s| s.get_mut("c").unwrap().rows.retain(|_, r| day_of(r) > d1)),
        ),
        (
            "provenance",
            Box::new(|_, c| c.set_info([("model".to_string(), serde_json::json!("clip-b32"))])),
            Box::new(|s| {
                let c = s.get_mut("c").unwrap();
                c.info.insert("model".into(), "\"clip-b32\"".into());
            }),
        ),
        (
            "schema change",
            Box::new(|_, c| {
                let mut schema = c.schema().clone();
                schema.ensure_field("label", FieldType::String)?;
                c.extend_schema(&schema)
            }),
            Box::new(|s| {
                let c = s.get_mut("c").unwrap();
                let mut schema: Schema = serde_json::from_str(&c.schema).unwrap();
                schema.ensure_field("label", FieldType::String).unwrap();
                c.schema = serde_json::to_string(&schema).unwrap();
                for r in c.rows.values_mut() {
                    r.fields.push(("label".into(), format!("{:?}", Value::Null)));
                }
            }),
        ),
        (
            "collection create",
            Box::new(|w, _| w.create_collection("d", Schema::new(4, Metric::L2).unwrap())),
            Box::new(|s| {
                let schema = serde_json::to_string(&Schema::new(4, Metric::L2).unwrap()).unwrap();
                s.insert(
                    "d".into(),
                    Coll {
                        schema,
                        ..Coll::default()
                    },
                );
            }),
        ),
        (
            "collection drop",
            Box::new(|w, _| w.drop_collection("c")),
            Box::new(|s| {
                s.remove("c");
            }),
        ),
    ]
}

/// One more commit after a failed one: the same writer must still work.
fn marker() -> Batch {
    batch([500], 7)
}

fn with_marker(mut s: State) -> State {
    if let Some(c) = s.get_mut("c") {
        let schema: Schema = serde_json::from_str(&c.schema).unwrap();
        for (id, mut rec) in rows_of(&marker()) {
            // Fields the schema gained read as null in a row that does not give them.
            for f in schema.fields.iter().skip(rec.fields.len()) {
                rec.fields.push((f.name.clone(), format!("{:?}", Value::Null)));
            }
            c.rows.insert(id, rec);
        }
    }
    s
}

struct Tally {
    runs: usize,
    acknowledged: usize,
    ended_before: usize,
    ended_after: usize,
    rows_checked: usize,
}

#[test]
fn every_commit_survives_a_failure_a_crash_or_a_power_cut_at_each_of_its_file_operations() {
    let dir = scratch();
    let base = dir.path().join("base");
    baseline(&base);
    let before = read_state(&base);
    assert_eq!(before["c"].rows.len(), 53);
    let mut tally = Tally {
        runs: 0,
        acknowledged: 0,
        ended_before: 0,
        ended_after: 0,
        rows_checked: 0,
    };
    let mut report = Vec::new();
    for (name, commit, expect) in operations() {
        // A clean run counts the operations and gives the state after.
        let root = dir.path().join("count");
        copy_dir(&base, &root);
        let total = {
            let w = Store::open_writer(&root).unwrap();
            let mut c = w.collection("c").unwrap();
            c.set_max_segment_rows(SEGMENT_ROWS);
            let count = Injection::count(&root);
            commit(&w, &mut c).unwrap_or_else(|e| panic!("{name}: {e}"));
            count.ops()
        };
        let after = read_state(&root);
        let mut want = before.clone();
        expect(&mut want);
        assert!(
            after == want,
            "{name}: the commit does not do what the model says: {}",
            diff(&after, &want)
        );
        assert!(
            after != before || files(&root) != files(&base),
            "{name} changed nothing: the matrix would prove nothing"
        );
        assert_sound(&root, name);
        std::fs::remove_dir_all(&root).unwrap();
        assert!(total >= 2, "{name}: only {total} file operations");

        for n in 1..=total {
            for fault in [Fault::Fail, Fault::Crash, Fault::PowerLoss] {
                let context = format!("{name}, {fault:?} at operation {n} of {total}");
                let root = dir.path().join(format!("run-{n}"));
                copy_dir(&base, &root);
                let (acked, marked) = {
                    let w = Store::open_writer(&root).unwrap();
                    let mut c = w.collection("c").unwrap();
                    c.set_max_segment_rows(SEGMENT_ROWS);
                    let injection = Injection::at(&root, n, fault);
                    let result = commit(&w, &mut c);
                    assert!(injection.fired(), "{context}: the fault was not reached");
                    drop(injection);
                    // After an I/O error (not a crash) the same writer goes on, and its next
                    // commit must land whatever the failed one left in memory and on disk.
                    let go_on = fault == Fault::Fail && name != "collection drop";
                    if go_on {
                        c.insert(&marker())
                            .unwrap_or_else(|e| panic!("{context}: the next commit failed: {e}"));
                    }
                    (result.is_ok(), go_on)
                };
                // Reopen as the writer: leftovers of the interrupted commit are removed.
                {
                    let w = Store::open_writer(&root).unwrap();
                    for name in w.collections().unwrap() {
                        drop(w.collection(&name).unwrap());
                    }
                }
                assert_sound(&root, &context);
                let got = read_state(&root);
                let (b, a) = if marked {
                    (with_marker(before.clone()), with_marker(after.clone()))
                } else {
                    (before.clone(), after.clone())
                };
                if acked {
                    tally.acknowledged += 1;
                    assert!(
                        got == a,
                        "{context}: an acknowledged commit was lost or altered: {}",
                        diff(&got, &a)
                    );
                } else {
                    assert!(
                        got == b || got == a,
                        "{context}: the store is neither before nor after: against before {}; against after {}",
                        diff(&got, &b),
                        diff(&got, &a)
                    );
                }
                if got == b {
                    tally.ended_before += 1;
                } else {
                    tally.ended_after += 1;
                }
                tally.rows_checked += got.values().map(|c| c.rows.len()).sum::<usize>();
                tally.runs += 1;
                std::fs::remove_dir_all(&root).unwrap();
            }
        }
        report.push(format!("{name}: {total} file operations"));
    }
    eprintln!(
        "fault matrix: {}; {} runs ({} acknowledged despite the fault), {} ended before, {} after, {} rows checked, 0 lost",
        report.join(", "),
        tally.runs,
        tally.acknowledged,
        tally.ended_before,
        tally.ended_after,
        tally.rows_checked
    );
}
