//! What the store's crash and concurrency tests share: an in-memory model of what a reader
//! must see, read back from a store and compared, and the rows they write.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::path::Path;
use vitrine_store::*;

pub const DIM: usize = 8;
pub const DAY0: i64 = 1_700_352_000; // 2023-11-19T00:00:00Z

/// One row as the model holds it: everything a reader can see, vectors bit for bit.
#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    pub uri: String,
    pub source: String,
    pub timestamp: i64,
    pub fields: Vec<(String, String)>,
    pub vector: Vec<u32>,
}

/// A collection as a reader sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Coll {
    pub schema: String,
    pub info: BTreeMap<String, String>,
    pub rows: BTreeMap<String, Rec>,
}

/// The whole store: collection name → contents.
pub type State = BTreeMap<String, Coll>;

pub fn vector(i: usize, salt: u64) -> Vec<f32> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 0.999
        })
        .collect()
}

/// Rows `ids` over two sources and three days, with a price and a city.
pub fn batch(ids: impl IntoIterator<Item = usize>, salt: u64) -> Batch {
    batch_at(
        ids.into_iter().map(|i| {
            let source = if i % 2 == 0 { "products" } else { "avatars" };
            (i, source, DAY0 + (i as i64 % 3) * 86_400 + i as i64)
        }),
        salt,
    )
}

/// Rows `(id number, source, timestamp)`, with vectors and prices that depend on `salt`.
pub fn batch_at<'a>(rows: impl IntoIterator<Item = (usize, &'a str, i64)>, salt: u64) -> Batch {
    let mut b = Batch {
        field_names: vec!["price".into(), "city".into()],
        rows: Vec::new(),
        vectors: Vec::new(),
    };
    for (i, source, timestamp) in rows {
        b.rows.push(Row {
            id: format!("r{i:03}"),
            uri: format!("file:///photos/{i}-{salt}.jpg"),
            source: source.into(),
            timestamp,
            fields: vec![Value::Float(i as f64 + salt as f64), Value::Str(format!("c{}", i % 4))],
        });
        b.vectors.extend(vector(i, salt));
    }
    b
}

pub fn read_state(root: &Path) -> State {
    let store = Store::open(root).unwrap();
    let mut out = State::new();
    for name in store.collections().unwrap() {
        let snap = store.snapshot(&name).unwrap();
        let names: Vec<String> = snap.schema().fields.iter().map(|f| f.name.clone()).collect();
        let mut c = Coll {
            schema: serde_json::to_string(snap.schema()).unwrap(),
            info: snap
                .manifest()
                .info
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            rows: BTreeMap::new(),
        };
        snap.for_each_row::<()>(&Selection::default(), |r| {
            let rec = Rec {
                uri: r.uri().into(),
                source: r.source().into(),
                timestamp: r.timestamp(),
                fields: names.iter().map(|n| (n.clone(), format!("{:?}", r.value(n)))).collect(),
                vector: r.vector().iter().map(|x| x.to_bits()).collect(),
            };
            assert!(
                c.rows.insert(r.id().to_string(), rec).is_none(),
                "{} is live twice",
                r.id()
            );
            Ok(())
        })
        .unwrap();
        out.insert(name, c);
    }
    out
}

/// `check` finds nothing wrong and no file lies in `segments/` that the manifest does not name.
pub fn assert_sound(root: &Path, context: &str) {
    let store = Store::open(root).unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(root.join("collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{context}: left behind {leftovers:?}");
    for name in store.collections().unwrap() {
        let out = store.check(&name).unwrap();
        assert!(out.problems.is_empty(), "{context}: check found {:?}", out.problems);
        let snap = store.snapshot(&name).unwrap();
        let mut named: Vec<String> = Vec::new();
        for e in &snap.manifest().segments {
            named.push(format!("seg-{:08}.vseg", e.id));
            named.extend(e.deletes.clone());
        }
        named.sort();
        let mut present: Vec<String> = std::fs::read_dir(store.collection_dir(&name).join("segments"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        present.sort();
        assert_eq!(present, named, "{context}: files the manifest does not name were left");
    }
}

/// The files of every collection's `segments/`.
pub fn files(root: &Path) -> Vec<String> {
    let store = Store::open(root).unwrap();
    let mut out = Vec::new();
    for name in store.collections().unwrap() {
        for e in std::fs::read_dir(store.collection_dir(&name).join("segments")).unwrap() {
            out.push(format!("{name}/{}", e.unwrap().file_name().to_string_lossy()));
        }
    }
    out.sort();
    out
}

/// What differs between two states, briefly.
pub fn diff(got: &State, want: &State) -> String {
    let mut out = Vec::new();
    for name in got.keys().chain(want.keys()).collect::<std::collections::BTreeSet<_>>() {
        match (got.get(name), want.get(name)) {
            (Some(_), None) => out.push(format!("collection {name} should not exist")),
            (None, Some(_)) => out.push(format!("collection {name} is missing")),
            (Some(g), Some(w)) => {
                if g.schema != w.schema {
                    out.push(format!("{name}: schema {} instead of {}", g.schema, w.schema));
                }
                if g.info != w.info {
                    out.push(format!("{name}: info {:?} instead of {:?}", g.info, w.info));
                }
                let missing: Vec<&String> = w.rows.keys().filter(|k| !g.rows.contains_key(*k)).collect();
                let extra: Vec<&String> = g.rows.keys().filter(|k| !w.rows.contains_key(*k)).collect();
                let changed: Vec<&String> = g
                    .rows
                    .iter()
                    .filter(|(k, r)| w.rows.get(*k).is_some_and(|x| x != *r))
                    .map(|(k, _)| k)
                    .collect();
                out.push(format!(
                    "{name}: missing {missing:?}, extra {extra:?}, changed {changed:?}"
                ));
            }
            (None, None) => {}
        }
    }
    out.join("; ")
}

pub fn copy_dir(from: &Path, to: &Path) {
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

/// A scratch directory on tmpfs where there is one: the matrix runs thousands of commits, and
/// fsync there costs nothing. What is tested is the order of operations, not the disk.
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("vitrine-faults").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

pub fn rows_of(b: &Batch) -> Vec<(String, Rec)> {
    b.rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let fields = vec![
                ("price".to_string(), format!("{:?}", r.fields[0])),
                ("city".to_string(), format!("{:?}", r.fields[1])),
            ];
            let rec = Rec {
                uri: r.uri.clone(),
                source: r.source.clone(),
                timestamp: r.timestamp,
                fields,
                vector: b.vectors[i * DIM..(i + 1) * DIM].iter().map(|x| x.to_bits()).collect(),
            };
            (r.id.clone(), rec)
        })
        .collect()
}

pub fn day_of(rec: &Rec) -> Day {
    Day::from_timestamp(rec.timestamp)
}

/// One commit of the randomized workloads.
#[derive(Debug)]
pub enum Op {
    /// Insert (rows whose id is live replace it; the last of a batch wins).
    Insert(Batch),
    /// Insert, also deleting these ids in the same commit.
    Upsert(Batch, Vec<String>),
    /// Delete by id.
    DeleteIds(Vec<String>),
    /// Delete one partition's rows by selection.
    DeleteWhere(String, Day),
    /// Compaction.
    Compact,
    /// Retention: drop every day before this one.
    Retain(Day),
}

/// The `i`-th commit of workload `seed`: the same on both sides of a process boundary. Ids
/// come from 600, so upserts and deletes hit live rows; the clock moves a day every 20
/// commits and rows land on the last five days, so retention has something to drop.
pub fn op(seed: u64, i: u64) -> Op {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let today = DAY0 + (i / 20) as i64 * 86_400;
    let source = |rng: &mut rand::rngs::StdRng| if rng.random_bool(0.5) { "products" } else { "avatars" };
    let rows = |rng: &mut rand::rngs::StdRng, n: usize| -> Vec<(usize, &'static str, i64)> {
        (0..n)
            .map(|_| {
                let t = today - rng.random_range(0..5) * 86_400 + rng.random_range(0..86_400);
                (rng.random_range(0..600), source(rng), t)
            })
            .collect()
    };
    let ids = |rng: &mut rand::rngs::StdRng, n: usize| -> Vec<String> {
        (0..n).map(|_| format!("r{:03}", rng.random_range(0..600))).collect()
    };
    match rng.random_range(0..100) {
        0..40 => {
            let n = rng.random_range(1..60);
            Op::Insert(batch_at(rows(&mut rng, n), i))
        }
        40..55 => {
            let n = rng.random_range(1..30);
            let b = batch_at(rows(&mut rng, n), i);
            Op::Upsert(b, ids(&mut rng, 3))
        }
        55..70 => Op::DeleteIds(ids(&mut rng, 10)),
        70..80 => {
            let s = source(&mut rng).to_string();
            Op::DeleteWhere(s, Day::from_timestamp(today - rng.random_range(0..5) * 86_400))
        }
        80..90 => Op::Compact,
        _ => Op::Retain(Day::from_timestamp(today - 3 * 86_400)),
    }
}

/// Commits `op`.
pub fn execute(c: &mut CollectionWriter, op: &Op) -> Result<()> {
    match op {
        Op::Insert(b) => c.insert(b).map(drop),
        Op::Upsert(b, gone) => c.insert_replacing(b, gone).map(drop),
        Op::DeleteIds(ids) => c.delete_ids(ids).map(drop),
        Op::DeleteWhere(source, day) => {
            let sel = Selection {
                sources: vec![source.clone()],
                from: Some(*day),
                to: Some(*day),
                filter: None,
            };
            c.delete_where(&sel).map(drop)
        }
        Op::Compact => c.compact().map(drop),
        Op::Retain(cutoff) => c.drop_partitions(|_, d| d < *cutoff).map(drop),
    }
}

/// What `op` does to the model of collection `c`.
pub fn apply(c: &mut Coll, op: &Op) {
    match op {
        Op::Insert(b) => c.rows.extend(rows_of(b)),
        Op::Upsert(b, gone) => {
            for id in gone {
                c.rows.remove(id);
            }
            c.rows.extend(rows_of(b));
        }
        Op::DeleteIds(ids) => {
            for id in ids {
                c.rows.remove(id);
            }
        }
        Op::DeleteWhere(source, day) => c.rows.retain(|_, r| !(r.source == *source && day_of(r) == *day)),
        Op::Compact => {}
        Op::Retain(cutoff) => c.rows.retain(|_, r| day_of(r) >= *cutoff),
    }
}

/// The rows of `c` as `(id, vector)`, by id.
pub fn vectors_of(c: &Coll) -> Vec<(String, Vec<f32>)> {
    c.rows
        .iter()
        .map(|(id, r)| (id.clone(), r.vector.iter().map(|b| f32::from_bits(*b)).collect()))
        .collect()
}

/// The exact cosine top `k` of `rows` for `q`, in f64, ties by id: what search must return.
pub fn top_k(rows: &[(String, Vec<f32>)], q: &[f32], k: usize) -> Vec<(String, f64)> {
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let qn = norm(q);
    let mut v: Vec<(String, f64)> = rows
        .iter()
        .map(|(id, x)| {
            let dot: f64 = q.iter().zip(x).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            (id.clone(), dot / (qn * norm(x)))
        })
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(k);
    v
}
