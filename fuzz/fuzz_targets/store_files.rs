//! The store's and the engine's own files read back from disk. A small store is built once
//! with the public API (see `vitrine_fuzz::build_store`); each input replaces one of its files
//! (first byte: which) and the store is then opened, checked, listed, searched and read row by
//! row, through the store crate and through the engine (collections, check, holds, search with
//! its receipt, watchlists and their alerts, a watchlist run), and the side logs are read
//! directly (`Ledger::open`, `Holds::open`, `Tombstones::open`). Every file is put back after.
//!
//! Files: 0 manifest.json, 1 a segment with deletes, 2 its deletion bitmap, 3 ledger.jsonl,
//! 4 holds.jsonl, 5 forgotten.jsonl, 6 the alert log, 7 watchlist.json, 8 the watchlist's
//! state.json, 9 another segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use vitrine_engine::query::{Query, SearchRequest};
use vitrine_engine::{Engine, SelectionSpec};
use vitrine_fuzz::{COLLECTION, DIM, WATCHLIST};
use vitrine_store::{Day, Selection, Store};

struct World {
    store: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
    targets: Vec<PathBuf>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let store = vitrine_fuzz::build_store(&vitrine_fuzz::scratch().join("build"));
        let files = vitrine_fuzz::snapshot_files(&store);
        let col = PathBuf::from("collections").join(COLLECTION);
        let seg = |f: &PathBuf| f.starts_with(col.join("segments")) && f.extension().is_some_and(|e| e == "vseg");
        let del = files
            .keys()
            .find(|f| f.to_string_lossy().contains(".del-"))
            .expect("a deletion bitmap")
            .clone();
        let del_name = del.file_name().unwrap().to_string_lossy().into_owned();
        let seg_with_del = files
            .keys()
            .find(|f| seg(f) && del_name.starts_with(f.file_stem().unwrap().to_str().unwrap()))
            .expect("the bitmap's segment")
            .clone();
        let other_seg = files.keys().find(|f| seg(f) && **f != seg_with_del).expect("a second segment").clone();
        let watch = col.join("watchlists").join(WATCHLIST);
        let targets = vec![
            col.join("manifest.json"),
            seg_with_del,
            del,
            col.join("ledger.jsonl"),
            col.join("holds.jsonl"),
            col.join("forgotten.jsonl"),
            watch.join("alerts.jsonl"),
            watch.join("watchlist.json"),
            watch.join("state.json"),
            other_seg,
        ];
        for t in &targets {
            assert!(files.contains_key(t), "the fuzz store has no {}", t.display());
        }
        // The committed seeds are these files as they are (run-ci.sh --seeds writes them).
        if let Some(out) = std::env::var_os("VITRINE_FUZZ_WRITE_SEEDS") {
            let out = PathBuf::from(out);
            std::fs::create_dir_all(&out).unwrap();
            for (i, t) in targets.iter().enumerate() {
                let name = t.file_name().unwrap().to_string_lossy();
                let mut seed = vec![i as u8];
                seed.extend_from_slice(&files[t]);
                std::fs::write(out.join(format!("seed-{i}-{name}")), seed).unwrap();
            }
        }
        World { store, files, targets }
    })
}

fn read_store(root: &Path) {
    let Ok(store) = Store::open(root) else { return };
    let _ = store.collections();
    let _ = store.check(COLLECTION);
    let _ = vitrine_store::Manifest::load(&store.collection_dir(COLLECTION));
    let Ok(snap) = store.snapshot(COLLECTION) else { return };
    let _ = snap.rows();
    let _ = snap.partitions();
    let dim = snap.schema().dim;
    let mut ids = Vec::new();
    let fields: Vec<String> = snap.schema().fields.iter().map(|f| f.name.clone()).collect();
    let _ = snap.for_each_row(&Selection::default(), |r| -> Result<(), ()> {
        ids.push(r.id().to_string());
        let _ = (r.uri(), r.source(), r.day().to_string(), r.timestamp(), r.vector().len());
        for f in &fields {
            let _ = r.value(f);
        }
        Ok(())
    });
    ids.push("r1".into());
    for loc in snap.locate(&ids).into_iter().flatten() {
        if let Some(r) = snap.row(loc) {
            let _ = (r.id(), r.vector().len());
        }
    }
    if (1..=65_536).contains(&dim) {
        let schema = snap.schema().clone();
        for (k, threshold, filter) in [
            (Some(5), None, None),
            (None, Some(0.2), None),
            (Some(3), None, Some("price > 2 and caption like \"row%\" or verified == true")),
        ] {
            let mut selection = Selection::default();
            if let Some(f) = filter {
                match vitrine_store::Expr::parse(f, &schema) {
                    Ok(e) => selection.filter = Some(e),
                    Err(_) => continue,
                }
            }
            let queries: Vec<f32> = (0..2 * dim).map(|i| (i % 3) as f32 - 0.5).collect();
            let _ = snap.search(&vitrine_store::SearchRequest {
                queries,
                k,
                threshold,
                selection,
                scan: Default::default(),
            });
        }
    }
    let _ = snap.verify();
}

fn read_engine(root: &Path, side: &Path) {
    let engine = Engine::open_store(root);
    let _ = engine.collections();
    let _ = engine.collection_info(COLLECTION);
    let _ = engine.partitions(COLLECTION);
    let _ = engine.check(None);
    let _ = engine.holds(COLLECTION);
    let _ = engine.watchlists(COLLECTION);
    let _ = engine.watchlist(COLLECTION, WATCHLIST);
    let _ = engine.alerts(COLLECTION, WATCHLIST, 0, 100);
    let _ = engine.alerts(COLLECTION, WATCHLIST, 1, 1);
    let mut req = SearchRequest::new(COLLECTION, Query::Vectors(vec![0.5; DIM]));
    req.k = Some(5);
    let _ = engine.search(&req);
    req.query = Query::Like(vec!["r1".into()]);
    req.selection = SelectionSpec {
        sources: vec!["products".into()],
        ..Default::default()
    };
    let _ = engine.search(&req);
    let _ = engine.run_watchlist(COLLECTION, WATCHLIST);

    if let Ok(l) = vitrine_engine::ledger::Ledger::open(&side.join(vitrine_engine::ledger::LEDGER_FILE)) {
        let day = "2023-11-19".parse::<Day>().ok();
        let _ = l.outstanding(&["products".into()], day, day, |_| false).len();
        let _ = l.has_failure("k1");
    }
    if let Ok(h) = vitrine_engine::holds::Holds::open(side) {
        let _ = h.covering("products", Day(19_680)).len();
        let _ = h.all().len();
    }
    if let Ok(t) = vitrine_engine::tombstones::Tombstones::open(side) {
        let _ = t.forgets("r0", "products", Some(Day(19_680)));
        let _ = t.forgets("r9", "avatars", Some(Day(i32::MIN)));
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let Some((&which, body)) = data.split_first() else { return };
    let target = &w.targets[which as usize % w.targets.len()];
    std::fs::write(w.store.join(target), body).unwrap();
    read_store(&w.store);
    read_engine(&w.store, &w.store.join("collections").join(COLLECTION));
    vitrine_fuzz::restore_files(&w.store, &w.files);
});
