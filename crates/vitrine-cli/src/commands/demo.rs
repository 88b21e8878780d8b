//! `vitrine demo`: the whole product, offline, on a generated gallery.
//!
//! Draws a marketplace's worth of pictures (vitrine-gallery: product shots and avatars over
//! several weeks), writes them as JPEG files with a manifest, indexes the manifest with the
//! bundled demo model through the same path as `vitrine index --manifest`, then asks the kinds
//! of questions the risk-control team asks: English and Chinese text, an image, a source +
//! date-range filter, a zero-shot classification and a threshold sweep. The gallery's ground
//! truth is known, so each answer is marked right (✓) or wrong (✗); the store never sees it.

use super::gallery::AVATAR_SHARE;
use super::index::index_into;
use crate::args::DemoArgs;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use vitrine_engine::index::{inputs_from_manifest, IndexOptions};
use vitrine_engine::Embedder;
use vitrine_gallery::{Picture, Style, GALLERY_SIDE, OBJECTS};
use vitrine_store::{Day, Hit, SearchRequest, Selection, Snapshot, Store};

const COLLECTION: &str = "demo";
const LAST_DAY: &str = "2023-11-23";
/// Cosine score at which the demo's sweep calls an image a match for its prompt; chosen once on
/// the demo model's held-out pictures (a real deployment calibrates its own).
const SWEEP_THRESHOLD: f64 = 0.30;

/// What a picture shows, for marking answers; `None` colour means any.
type Want = (usize, Option<usize>);

fn object(key: &str) -> usize {
    OBJECTS.iter().position(|o| o.key == key).expect("known object")
}

fn colour(en: &str) -> usize {
    vitrine_gallery::COLOURS
        .iter()
        .position(|c| c.en == en)
        .expect("known colour")
}

pub fn run(store: &Path, a: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let model = super::model_or_demo(a.model.clone())?;
    let embedder = Embedder::load(&model)?;
    let gallery = store.join("demo-gallery");
    let last: Day = LAST_DAY.parse()?;
    let first = Day(last.0 - a.days as i32 + 1);
    let pictures = vitrine_gallery::pictures(a.images, 2023, AVATAR_SHARE);

    let exists = Store::open(store).is_ok_and(|s| s.has_collection(COLLECTION));
    if !(a.keep && exists) {
        if exists {
            Store::open_writer(store)?.drop_collection(COLLECTION)?;
        }
        if gallery.exists() {
            std::fs::remove_dir_all(&gallery).with_context(|| gallery.display().to_string())?;
        }
        println!(
            "== drawing {} pictures: products and avatars over {} days ({first} .. {last})",
            a.images, a.days
        );
        let t = Instant::now();
        let rows = write_gallery(&gallery, &pictures, first, a.days)?;
        println!(
            "   {} files + manifest.jsonl in {:.1} s",
            rows,
            t.elapsed().as_secs_f64()
        );

        println!(
            "== indexing {} with {}",
            gallery.join("manifest.jsonl").display(),
            model
        );
        let t = Instant::now();
        let plan = inputs_from_manifest(&gallery.join("manifest.jsonl"), None)?;
        let report = index_into(store, COLLECTION, &embedder, &plan, IndexOptions::default(), true)?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "   indexed {} images in {secs:.1} s ({:.0} images/s), {} duplicates, {} failed",
            report.indexed,
            report.indexed as f64 / secs,
            report.duplicates,
            report.failed.len()
        );
    }

    let snap = Store::open(store)?.snapshot(COLLECTION)?;
    let truth = |h: &Hit| truth_of(&pictures, &h.uri);
    let mark = |h: &Hit, want: Want| -> &'static str {
        match truth(h) {
            Some(p) if p.object == want.0 && want.1.is_none_or(|c| p.colour == c) => "✓",
            Some(_) => "✗",
            None => " ",
        }
    };
    let mut pages: Vec<(String, Vec<Hit>)> = Vec::new();
    let by_id = uris_by_id(&snap);
    let mut ask = |title: &str, query: Vec<f32>, k: usize, selection: Selection, want: Want| -> Result<Vec<Hit>> {
        // How many right answers exist at all in the selection (ground truth).
        let exist = snap
            .rows_where(&selection)
            .iter()
            .filter_map(|(id, _)| by_id.get(id).and_then(|u| truth_of(&pictures, u)))
            .filter(|p| p.object == want.0 && want.1.is_none_or(|c| p.colour == c))
            .count();
        let res = snap.search(&SearchRequest {
            queries: query,
            k: Some(k),
            threshold: None,
            selection,
        })?;
        let hits = res.hits.into_iter().next().unwrap_or_default();
        let right = hits.iter().filter(|h| mark(h, want) == "✓").count();
        println!(
            "\n== {title}\n   {right} of the top {} are right ({exist} right answers exist in the selection); \
             scanned {} rows in {} of {} partitions",
            hits.len(),
            res.stats.rows_scanned,
            res.stats.partitions_scanned,
            res.stats.partitions_total
        );
        for h in hits.iter().take(5) {
            let what = truth(h).map(Picture::label).unwrap_or_default();
            println!(
                "   {} #{:<2} {:.3}  {:<8} {}  {:<28} {}",
                mark(h, want),
                h.rank,
                h.score,
                h.source,
                h.day,
                h.uri,
                what
            );
        }
        pages.push((title.to_string(), hits.clone()));
        Ok(hits)
    };
    let text = |t: &str| -> Result<Vec<f32>> { Ok(super::search::embed_text_queries(&embedder, &[t])?.remove(0)) };
    let everything = Selection::default();

    ask(
        "English text: \"a photo of a red sneaker\" (top 10, everything)",
        text("a photo of a red sneaker")?,
        10,
        everything.clone(),
        (object("sneaker"), Some(colour("red"))),
    )?;
    ask(
        "Chinese text: \"一张黑色手枪的照片\" (a photo of a black handgun; top 10)",
        text("一张黑色手枪的照片")?,
        10,
        everything.clone(),
        (object("handgun"), Some(colour("black"))),
    )?;
    // An image the gallery has never seen.
    let probe = Picture {
        object: object("bicycle"),
        colour: colour("blue"),
        style: Style::Product,
        seed: 424_242,
    };
    let probe_path = store.join("demo-query-blue-bicycle.jpg");
    std::fs::write(&probe_path, probe.jpeg(GALLERY_SIDE, 90))?;
    let image_query = embedder.embed_images(std::slice::from_ref(&probe_path)).remove(0)?;
    ask(
        &format!(
            "Image: pictures like {} (a new blue bicycle; top 10)",
            probe_path.display()
        ),
        image_query,
        10,
        everything.clone(),
        (probe.object, Some(probe.colour)),
    )?;
    let week = Selection {
        sources: vec!["products".into()],
        from: Some("2023-11-19".parse()?),
        to: Some(last),
        filter: None,
    };
    ask(
        "Filter: top 20 products like \"a photo of a samoyed\", uploaded 2023-11-19 .. 2023-11-23",
        text("a photo of a samoyed")?,
        20,
        week,
        (object("dog"), Some(colour("white"))),
    )?;
    classify(&snap, &embedder, &pictures, last)?;
    sweep(&snap, &embedder, &pictures, last)?;

    let html = store.join("demo-results.html");
    let titles: Vec<String> = pages.iter().map(|(t, _)| t.clone()).collect();
    let hits: Vec<Vec<Hit>> = pages.into_iter().map(|(_, h)| h).collect();
    crate::html::write_grid(&html, "vitrine demo", &titles, &hits, |h| {
        super::search::stored_thumbnail(&snap, h)
    })?;
    println!(
        "\n== done in {:.1} s. The answers as pictures: {}\n   store: {}   try: vitrine --store {} search -c demo --text \"一张白色猫的照片\" -k 5",
        started.elapsed().as_secs_f64(),
        html.display(),
        store.display(),
        store.display()
    );
    Ok(())
}

/// Writes the JPEGs and `manifest.jsonl` (uri, source, timestamp, price, user); returns the count.
fn write_gallery(dir: &Path, pictures: &[Picture], first: Day, days: u32) -> Result<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let rows: Vec<(String, Picture, i64, serde_json::Value)> = pictures
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let day = Day(first.0 + rng.random_range(0..days as i32));
            let ts = day.start() + rng.random_range(0..86_400);
            let source = p.style.source();
            let uri = format!("{source}/{day}/{i:05}.jpg");
            let extra = if p.style == Style::Product {
                json!({"price": (rng.random_range(5.0..900.0f64) * 100.0).round() / 100.0, "user": format!("u{:04}", rng.random_range(0..2000))})
            } else {
                json!({"price": null, "user": format!("u{:04}", rng.random_range(0..2000))})
            };
            (uri, *p, ts, extra)
        })
        .collect();
    rows.par_iter().try_for_each(|(uri, p, ..)| -> Result<()> {
        let path = dir.join(uri);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(&path, p.jpeg(GALLERY_SIDE, 90)).with_context(|| path.display().to_string())
    })?;
    let mut m = std::io::BufWriter::new(std::fs::File::create(dir.join("manifest.jsonl"))?);
    for (uri, p, ts, extra) in &rows {
        let mut o = json!({"uri": uri, "source": p.style.source(), "timestamp": ts});
        if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        writeln!(m, "{o}")?;
    }
    m.flush()?;
    Ok(rows.len())
}

/// id → uri of every row.
fn uris_by_id(snap: &Snapshot) -> std::collections::HashMap<String, String> {
    snap.values_by_uri(&["id"])
        .into_iter()
        .filter_map(|(uri, v)| match v.into_iter().next() {
            Some(vitrine_store::Value::Str(id)) => Some((id, uri)),
            _ => None,
        })
        .collect()
}

fn truth_of<'a>(pictures: &'a [Picture], uri: &str) -> Option<&'a Picture> {
    let stem = Path::new(uri).file_stem()?.to_str()?;
    pictures.get(stem.parse::<usize>().ok()?)
}

/// Zero-shot labels for the last week's avatars, several templates averaged per label.
fn classify(snap: &Snapshot, e: &Embedder, pictures: &[Picture], last: Day) -> Result<()> {
    let templates = ["a photo of a {}", "a picture of a {}", "a {}"];
    let names: Vec<&str> = OBJECTS.iter().map(|o| o.en[0]).collect();
    let label_vecs = super::analyze::label_vectors(e, &names, &templates)?;
    let sel = Selection {
        sources: vec!["avatars".into()],
        from: Some(Day(last.0 - 6)),
        to: Some(last),
        filter: None,
    };
    let uris = uris_by_id(snap);
    let rows = snap.rows_where(&sel);
    let (mut right, mut counts) = (0, BTreeMap::<&str, usize>::new());
    for (id, v) in &rows {
        let best = (0..label_vecs.len())
            .max_by(|&i, &j| {
                vitrine_kernels::dot_f64(v, &label_vecs[i]).total_cmp(&vitrine_kernels::dot_f64(v, &label_vecs[j]))
            })
            .unwrap_or(0);
        *counts.entry(OBJECTS[best].key).or_default() += 1;
        if uris
            .get(id)
            .and_then(|u| truth_of(pictures, u))
            .is_some_and(|p| p.object == best)
        {
            right += 1;
        }
    }
    println!(
        "\n== Classify: {} avatars of {} .. {last} among {} labels (templates averaged)\n   {right} of {} labelled right",
        rows.len(),
        Day(last.0 - 6),
        OBJECTS.len(),
        rows.len()
    );
    let mut top: Vec<_> = counts.into_iter().collect();
    top.sort_by_key(|b| std::cmp::Reverse(b.1));
    let parts: Vec<String> = top.iter().take(8).map(|(k, n)| format!("{k} {n}")).collect();
    println!("   {}", parts.join(", "));
    Ok(())
}

/// Every image of the last 30 days scoring at or above the threshold for a prompt, exactly.
fn sweep(snap: &Snapshot, e: &Embedder, pictures: &[Picture], last: Day) -> Result<()> {
    let prompt = "a photo of a handgun";
    let from = Day(last.0 - 29);
    let sel = Selection {
        sources: vec![],
        from: Some(from),
        to: Some(last),
        filter: None,
    };
    let q = super::search::embed_text_queries(e, &[prompt])?.remove(0);
    let res = snap.search(&SearchRequest {
        queries: q,
        k: None,
        threshold: Some(SWEEP_THRESHOLD),
        selection: sel.clone(),
    })?;
    let hits = &res.hits[0];
    let handgun = object("handgun");
    let right = hits
        .iter()
        .filter(|h| truth_of(pictures, &h.uri).is_some_and(|p| p.object == handgun))
        .count();
    let uris = uris_by_id(snap);
    let all = snap
        .rows_where(&sel)
        .iter()
        .filter(|(id, _)| {
            uris.get(id)
                .and_then(|u| truth_of(pictures, u))
                .is_some_and(|p| p.object == handgun)
        })
        .count();
    let mut per_source = BTreeMap::<&str, usize>::new();
    let mut per_day = BTreeMap::<Day, usize>::new();
    for h in hits {
        *per_source.entry(h.source.as_str()).or_default() += 1;
        *per_day.entry(h.day).or_default() += 1;
    }
    println!(
        "\n== Sweep: \"{prompt}\", every image of {from} .. {last} with cosine ≥ {SWEEP_THRESHOLD} (exact range search)\n   \
         {} hits in {} partitions ({}); {right} are handguns, of the {all} handguns in those days",
        hits.len(),
        per_day.len(),
        per_source.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
