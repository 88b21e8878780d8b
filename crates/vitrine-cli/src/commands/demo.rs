//! `vitrine demo`: an offline tour of the store on a synthetic gallery.
//!
//! Generates vectors around named concepts ("samoyed", "sneaker", ...) for two sources over 30
//! days, imports them through the same path as `vitrine import`, then runs the kinds of
//! questions the risk-control team asks: nearest neighbours, a source + date-range filter,
//! a field filter and a threshold sweep. (The CLIP pipeline will replace these vectors with
//! real image embeddings; the store side is what this shows.)

use crate::args::{CollectionArg, DemoArgs, Format, ImportArgs, SearchArgs, SelectionArgs};
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::path::Path;
use vitrine_store::{Day, Store};

const CONCEPTS: &[&str] = &[
    "samoyed",
    "handgun",
    "sneaker",
    "handbag",
    "smartphone",
    "watch",
    "guitar",
    "bicycle",
    "sofa",
    "lamp",
    "camera",
    "teddy-bear",
    "laptop",
    "perfume",
    "sunglasses",
    "drone",
    "kettle",
    "skateboard",
    "headphones",
    "vase",
];
const DIM: usize = 64;
const FIRST_DAY: &str = "2023-11-01";

pub fn run(store: &Path, a: DemoArgs) -> Result<()> {
    let collection = "demo".to_string();
    let input = store.join("demo-input");
    let first: Day = FIRST_DAY.parse()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2023);
    let centroids: Vec<Vec<f32>> = CONCEPTS
        .iter()
        .map(|_| unit((0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect()))
        .collect();
    let exists = Store::open(store).is_ok_and(|s| s.has_collection(&collection));
    if !(a.keep && exists) {
        if exists {
            Store::open_writer(store)?.drop_collection(&collection)?;
        }
        std::fs::create_dir_all(&input).with_context(|| input.display().to_string())?;
        let mut vectors = Vec::with_capacity(a.rows * DIM);
        let mut meta = std::io::BufWriter::new(std::fs::File::create(input.join("meta.jsonl"))?);
        for i in 0..a.rows {
            let c = rng.random_range(0..CONCEPTS.len());
            let noise = rng.random_range(0.35..0.9f32);
            let v: Vec<f32> = centroids[c]
                .iter()
                .map(|x| x + noise * rng.random_range(-0.25..0.25f32))
                .collect();
            vectors.extend(unit(v));
            let source = if rng.random_bool(0.7) { "products" } else { "avatars" };
            let day = Day(first.0 + rng.random_range(0..30));
            let ts = day.start() + rng.random_range(0..86_400);
            let price = if source == "products" {
                (rng.random_range(1.0..500.0f64) * 100.0).round() / 100.0
            } else {
                0.0
            };
            writeln!(
                meta,
                "{}",
                serde_json::json!({"id": format!("{source}-{i:06}"), "uri": format!("demo://{source}/{day}/{i:06}.jpg"),
                    "source": source, "timestamp": ts, "label": CONCEPTS[c], "price": price})
            )?;
        }
        meta.flush()?;
        drop(meta);
        vitrine_import::npy::write_f32(&input.join("vectors.npy"), &vectors, a.rows, DIM)?;
        println!(
            "== import {} synthetic vectors (2 sources × 30 days) into {}",
            a.rows,
            store.display()
        );
        super::import::run(
            store,
            ImportArgs {
                c: CollectionArg {
                    collection: collection.clone(),
                },
                vectors: Some(input.join("vectors.npy")),
                metadata: Some(input.join("meta.jsonl")),
                clip_retrieval: None,
                source: None,
                day: None,
                id_prefix: None,
                metric: "cosine".into(),
                batch_size: 100_000,
            },
        )?;
    }
    let query = input.join("query-samoyed.npy");
    vitrine_import::npy::write_f32(&query, &centroids[0], 1, DIM)?;
    let sel = |sources: &[&str], from: Option<&str>, to: Option<&str>, filter: Option<&str>| SelectionArgs {
        sources: sources.iter().map(|s| s.to_string()).collect(),
        from: from.map(String::from),
        to: to.map(String::from),
        last: None,
        filter: filter.map(String::from),
    };
    let search = |title: &str, k: Option<usize>, threshold: Option<f64>, s: SelectionArgs| -> Result<()> {
        println!("\n== {title}");
        super::search::run(
            store,
            SearchArgs {
                c: CollectionArg {
                    collection: collection.clone(),
                },
                vector_file: Some(query.clone()),
                text: vec![],
                like: vec![],
                image: vec![],
                model: None,
                k,
                threshold,
                sel: s,
                format: Format::Table,
                receipt: false,
                html: None,
            },
        )
    };
    search(
        "top 5 nearest to the 'samoyed' concept, everywhere",
        Some(5),
        None,
        sel(&[], None, None, None),
    )?;
    search(
        "top 5 'samoyed' among products uploaded 2023-11-19 .. 2023-11-23",
        Some(5),
        None,
        sel(&["products"], Some("2023-11-19"), Some("2023-11-23"), None),
    )?;
    search(
        "top 5 'samoyed' with a field filter: price > 300",
        Some(5),
        None,
        sel(&[], None, None, Some(r#"source == "products" and price > 300"#)),
    )?;
    // A sweep: every row above a threshold, counted per partition.
    let snap = Store::open(store)?.snapshot(&collection)?;
    let req = vitrine_store::SearchRequest {
        queries: centroids[0].clone(),
        k: None,
        threshold: Some(0.9),
        selection: super::selection(
            &sel(&["avatars"], Some("2023-11-25"), Some("2023-11-30"), None),
            snap.schema(),
        )?,
    };
    let res = snap.search(&req)?;
    println!("\n== sweep: every avatar from 2023-11-25 .. 2023-11-30 with cosine ≥ 0.9 to 'samoyed' (exact, no k cap)");
    let mut per_day = std::collections::BTreeMap::new();
    for h in &res.hits[0] {
        *per_day.entry(h.day.to_string()).or_insert(0) += 1;
    }
    for (d, n) in &per_day {
        println!("  avatars {d}: {n} hits");
    }
    println!(
        "  total {} hits; scanned {} rows in {} of {} partitions",
        res.hits[0].len(),
        res.stats.rows_scanned,
        res.stats.partitions_scanned,
        res.stats.partitions_total
    );
    println!(
        "\nstore: {}  (try: vitrine --store {} partitions list -c demo)",
        store.display(),
        store.display()
    );
    Ok(())
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}
