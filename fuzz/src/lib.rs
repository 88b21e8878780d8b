//! Shared helpers of the fuzz targets: a per-process scratch folder (in /dev/shm when there is
//! one), writing an input to a file for entry points that take a path, and a small store built
//! once per process with the public API (for `store_files` and `http_bodies`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process's scratch folder, `/dev/shm/vitrine-fuzz-PID` (else under the temp dir),
/// created on first use and removed when the process exits. Folders of dead processes (a
/// crashed or killed run) are removed too.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("vitrine-fuzz-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = base.join(format!("vitrine-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        extern "C" fn cleanup() {
            if let Some(d) = DIR.get() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        // SAFETY: registering a plain extern "C" function with no preconditions.
        unsafe { libc::atexit(cleanup) };
        dir
    })
}

/// Writes `data` to `scratch()/name` and returns the path.
pub fn input_file(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, data).expect("write input");
    p
}

/// The collection of the fuzz store.
pub const COLLECTION: &str = "vectors";
/// The watchlist of the fuzz store.
pub const WATCHLIST: &str = "w";
/// Dimension of the fuzz store's vectors.
pub const DIM: usize = 4;

fn import(engine: &vitrine_engine::Engine, dir: &Path, tag: &str, first: usize, n: usize) {
    use vitrine_engine::import::{Defaults, ImportRequest, ImportSource};
    let mut v = Vec::new();
    let mut meta = String::new();
    for i in first..first + n {
        let mut row = [0.1f32; DIM];
        row[i % DIM] = 1.0 + i as f32 / 50.0;
        v.extend(row);
        let mut o = serde_json::json!({
            "id": format!("r{i}"),
            "uri": format!("/nowhere/{i}.jpg"),
            "source": if i % 2 == 0 { "products" } else { "avatars" },
            "day": format!("2023-11-{:02}", 19 + i % 3),
            "caption": format!("row {i}"),
            "price": i as f64 * 1.5,
            "count": i as i64,
        });
        if i % 3 == 0 {
            o["verified"] = serde_json::json!(i % 2 == 0);
        }
        meta += &format!("{o}\n");
    }
    let npy = dir.join(format!("{tag}.npy"));
    vitrine_engine::write_npy(&npy, &v, n, DIM).expect("write npy");
    let m = dir.join(format!("{tag}.jsonl"));
    std::fs::write(&m, meta).expect("write metadata");
    engine
        .import(
            &ImportRequest {
                collection: COLLECTION.into(),
                source: ImportSource::Npy {
                    vectors: npy,
                    metadata: Some(m),
                },
                defaults: Defaults::default(),
                metric: vitrine_engine::Metric::Cosine,
                batch_size: 4,
                model: None,
            },
            &mut |_, _| {},
        )
        .expect("import");
}

/// Builds a small store in `dir/store` with the public API: collection `vectors` (4-d, cosine,
/// fields caption/price/count/verified) over two sources and three days in several segments,
/// deleted rows (a deletion bitmap and tombstones), a dropped partition, legal holds (one
/// released), watchlist `w` with alerts, and an indexing ledger. Returns the store folder.
pub fn build_store(dir: &Path) -> PathBuf {
    use vitrine_engine::admin::DeleteRequest;
    use vitrine_engine::holds::HoldRequest;
    use vitrine_engine::ledger::{LedgerEntry, State};
    use vitrine_engine::watch::WatchlistRequest;
    use vitrine_store::Day;
    std::fs::create_dir_all(dir).expect("store folder");
    let store = dir.join("store");
    let engine = vitrine_engine::Engine::open_store(&store);
    import(&engine, dir, "a", 0, 12);
    engine
        .add_watchlist(
            COLLECTION,
            &WatchlistRequest {
                name: WATCHLIST.into(),
                likes: vec!["r1".into(), "r2".into()],
                threshold: 0.5,
                by: "fuzz".into(),
                ..Default::default()
            },
        )
        .expect("watchlist");
    import(&engine, dir, "b", 12, 6);
    engine.run_watchlist(COLLECTION, WATCHLIST).expect("watch run");
    engine
        .delete(COLLECTION, &DeleteRequest::Ids(vec!["r0".into(), "r5".into()]))
        .expect("delete");
    let day = |s: &str| s.parse::<Day>().unwrap();
    engine
        .drop_partition(COLLECTION, "avatars", day("2023-11-21"))
        .expect("drop partition");
    for source in [Some("products".to_string()), None] {
        engine
            .place_hold(
                COLLECTION,
                HoldRequest {
                    source,
                    from: day("2023-11-19"),
                    to: day("2023-11-20"),
                    reason: "case 1".into(),
                    by: "fuzz".into(),
                },
            )
            .expect("hold");
    }
    engine.release_hold(COLLECTION, 2, "fuzz", "done").expect("release");
    let side = vitrine_store::Store::open(&store).unwrap().collection_dir(COLLECTION);
    let mut ledger = String::new();
    for (i, state) in [State::Pending, State::Failed].into_iter().enumerate() {
        let e = LedgerEntry {
            key: format!("k{i}"),
            uri: format!("/pictures/{i}.jpg"),
            source: "products".into(),
            day: Some(day("2023-11-19")),
            state,
            reason: (state == State::Failed).then(|| "not an image".into()),
            scope: Some("manifest:/m.csv".into()),
        };
        ledger += &serde_json::to_string(&e).unwrap();
        ledger.push('\n');
    }
    std::fs::write(side.join(vitrine_engine::ledger::LEDGER_FILE), ledger).unwrap();
    store
}

/// Every file under `root`, by path relative to it, with its bytes.
pub fn snapshot_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Makes the files under `root` exactly `files` again: rewrites changed files, recreates
/// missing ones, removes extra files (directories left by a run are kept if empty).
pub fn restore_files(root: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) {
    let now = snapshot_files(root);
    for p in now.keys() {
        if !files.contains_key(p) {
            let _ = std::fs::remove_file(root.join(p));
        }
    }
    for (p, bytes) in files {
        if now.get(p) != Some(bytes) {
            let full = root.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, bytes).unwrap();
        }
    }
}
