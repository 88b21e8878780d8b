//! `vitrine demo`: the whole product, offline, on a generated gallery.
//!
//! Draws a marketplace's worth of pictures (vitrine-gallery: product shots and avatars over
//! several weeks), writes them as JPEG files with a manifest, indexes the manifest with the
//! bundled demo model through the same path as `vitrine index --manifest`, then asks the kinds
//! of questions the risk-control team asks: English and Chinese text, an image, a source +
//! date-range filter, a zero-shot classification and a threshold sweep; then what a risk team
//! keeps doing: a watchlist added before the newest day arrives fires on it, near-duplicate
//! clusters find the product photos planted in the gallery as avatars, and a sweep runs at the
//! threshold a reviewer's labels calibrated. The gallery's ground truth is known, so each answer
//! is marked right (✓) or wrong (✗) or counted against it; the store never sees it.

use super::gallery::AVATAR_SHARE;
use crate::args::DemoArgs;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use vitrine_engine::calibrate::CalibrateRequest;
use vitrine_engine::dupes::DupesRequest;
use vitrine_engine::index::{IndexInputs, IndexOptions, IndexRequest};
use vitrine_engine::query::{ClassifyRequest, Query, SearchRequest, SweepRequest};
use vitrine_engine::watch::WatchlistRequest;
use vitrine_engine::{Day, Engine, Hit, SelectionSpec};
use vitrine_gallery::{Picture, Style, GALLERY_SIDE, OBJECTS};

const COLLECTION: &str = "demo";
const LAST_DAY: &str = "2023-11-23";
/// Cosine score at which the demo's sweep calls an image a match for its prompt; chosen once on
/// the demo model's held-out pictures (a real deployment calibrates its own).
const SWEEP_THRESHOLD: f64 = 0.30;

/// The demo's watchlist and what it looks for (at [`SWEEP_THRESHOLD`]).
const WATCHLIST: &str = "handguns";
const WATCH_PROMPT: &str = "a photo of a handgun";
/// Cosine at which two pictures count as the same photo. The small demo model puts drawings of
/// the same object and colour very close together (a different red cat scores up to 0.998), so
/// only a copy clears 0.999; CLIP ViT-B/32 tells copies from look-alikes well below that.
const DUPLICATE_THRESHOLD: f64 = 0.999;

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

pub fn run(engine: &Engine, store: &Path, a: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let model = match &a.model {
        Some(m) => m.clone(),
        None => vitrine_engine::model::demo_model()?,
    };
    let gallery = store.join("demo-gallery");
    let last: Day = LAST_DAY.parse()?;
    let first = Day(last.0 - a.days as i32 + 1);
    let (pictures, reused) = plant_reuses(vitrine_gallery::pictures(a.images, 2023, AVATAR_SHARE));

    let exists = engine.backend().has_collection(COLLECTION)?;
    if !(a.keep && exists) {
        if exists {
            engine.drop_collection(COLLECTION)?;
        }
        if gallery.exists() {
            std::fs::remove_dir_all(&gallery).with_context(|| gallery.display().to_string())?;
        }
        say!(
            "== drawing {} pictures: products and avatars over {} days ({first} .. {last})",
            a.images,
            a.days
        );
        let t = Instant::now();
        let rows = write_gallery(&gallery, &pictures, &reused, first, a.days)?;
        say!(
            "   {} files + manifest.jsonl in {:.1} s ({} product photos reused as avatars, planted)",
            rows,
            t.elapsed().as_secs_f64(),
            reused.len()
        );

        // Every day but the newest, then a watchlist, then the newest day: what a team that
        // indexes every night sees the morning after.
        say!(
            "== indexing {} with {}",
            gallery.join("manifest.jsonl").display(),
            model
        );
        let t = Instant::now();
        let bar = super::index::progress_bar();
        let mut indexed = 0;
        let mut failed = 0;
        for part in ["manifest-history.jsonl", "manifest-newest.jsonl"] {
            if part == "manifest-newest.jsonl" {
                engine.add_watchlist(
                    COLLECTION,
                    &WatchlistRequest {
                        name: WATCHLIST.into(),
                        prompts: vec![WATCH_PROMPT.into()],
                        threshold: SWEEP_THRESHOLD,
                        by: "vitrine demo".into(),
                        ..Default::default()
                    },
                )?;
            }
            let report = engine.index(
                &IndexRequest {
                    collection: COLLECTION.into(),
                    inputs: IndexInputs::Manifest {
                        path: gallery.join(part),
                        default_source: None,
                    },
                    model: Some(model.clone()),
                    options: IndexOptions::default(),
                },
                &mut |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                },
            )?;
            indexed += report.indexed;
            failed += report.failed.len();
        }
        bar.finish_and_clear();
        let secs = t.elapsed().as_secs_f64();
        say!(
            "   indexed {indexed} images in {secs:.1} s ({:.0} images/s), {failed} failed",
            indexed as f64 / secs,
        );
    }

    // Ground truth by row id (the store never sees it): the picture a row's uri names.
    let truth_by_id: HashMap<String, &Picture> = engine
        .rows(COLLECTION, &SelectionSpec::all())?
        .into_iter()
        .filter_map(|r| truth_of(&pictures, &r.uri).map(|p| (r.id, p)))
        .collect();
    let truth = |h: &Hit| truth_of(&pictures, &h.uri);
    let mark = |h: &Hit, want: Want| -> &'static str {
        match truth(h) {
            Some(p) if p.object == want.0 && want.1.is_none_or(|c| p.colour == c) => "✓",
            Some(_) => "✗",
            None => " ",
        }
    };
    let mut pages: Vec<(String, Vec<Hit>)> = Vec::new();
    let mut ask = |title: &str, query: Query, k: usize, selection: SelectionSpec, want: Want| -> Result<Vec<Hit>> {
        // How many right answers exist at all in the selection (ground truth).
        let exist = engine
            .rows(COLLECTION, &selection)?
            .iter()
            .filter_map(|r| truth_by_id.get(&r.id))
            .filter(|p| p.object == want.0 && want.1.is_none_or(|c| p.colour == c))
            .count();
        let mut req = SearchRequest::new(COLLECTION, query);
        req.k = Some(k);
        req.selection = selection;
        let ans = engine.search(&req)?;
        super::warn(&ans.warnings);
        let stats = ans.receipt.scan.clone();
        let hits = ans.hits.into_iter().next().unwrap_or_default();
        let right = hits.iter().filter(|h| mark(h, want) == "✓").count();
        say!(
            "\n== {title}\n   {right} of the top {} are right ({exist} right answers exist in the selection); \
             scanned {} rows in {} of {} partitions",
            hits.len(),
            stats.rows_scanned,
            stats.partitions_scanned,
            stats.partitions_total
        );
        for h in hits.iter().take(5) {
            let what = truth(h).map(Picture::label).unwrap_or_default();
            say!(
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
    let text = |t: &str| Query::Text(vec![t.to_string()]);

    ask(
        "English text: \"a photo of a red sneaker\" (top 10, everything)",
        text("a photo of a red sneaker"),
        10,
        SelectionSpec::all(),
        (object("sneaker"), Some(colour("red"))),
    )?;
    ask(
        "Chinese text: \"一张黑色手枪的照片\" (a photo of a black handgun; top 10)",
        text("一张黑色手枪的照片"),
        10,
        SelectionSpec::all(),
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
    ask(
        &format!(
            "Image: pictures like {} (a new blue bicycle; top 10)",
            probe_path.display()
        ),
        Query::ImageFiles(vec![probe_path.clone()]),
        10,
        SelectionSpec::all(),
        (probe.object, Some(probe.colour)),
    )?;
    let week = SelectionSpec {
        sources: vec!["products".into()],
        from: Some("2023-11-19".parse()?),
        to: Some(last),
        ..Default::default()
    };
    ask(
        "Filter: top 20 products like \"a photo of a samoyed\", uploaded 2023-11-19 .. 2023-11-23",
        text("a photo of a samoyed"),
        20,
        week,
        (object("dog"), Some(colour("white"))),
    )?;
    classify(engine, &truth_by_id, last)?;
    sweep(engine, &truth_by_id, &pictures, last)?;
    watchlist(engine, &truth_by_id, &pictures, last)?;
    near_duplicates(engine, &pictures, &reused)?;
    calibrated_sweep(engine, store, &truth_by_id, &pictures, first, last)?;

    let html = store.join("demo-results.html");
    let titles: Vec<String> = pages.iter().map(|(t, _)| t.clone()).collect();
    let hits: Vec<Vec<Hit>> = pages.into_iter().map(|(_, h)| h).collect();
    let rows: Vec<(String, String)> = hits.iter().flatten().map(|h| (h.id.clone(), h.uri.clone())).collect();
    let thumbs = engine.thumbnails(COLLECTION, &rows)?;
    crate::html::write_grid(&html, "vitrine demo", &titles, &hits, &thumbs)?;
    say!(
        "\n== done in {:.1} s. The answers as pictures: {}\n   store: {}   try: vitrine --store {} search -c demo --text \"一张白色猫的照片\" -k 5",
        started.elapsed().as_secs_f64(),
        html.display(),
        store.display(),
        store.display()
    );
    if a.serve {
        let config = vitrine_server::Config {
            addr: a.addr,
            // The gallery's originals open full size when a result is clicked.
            images_root: Some(store.join("demo-gallery")),
            ..Default::default()
        };
        say!(
            "   the same gallery in the page: open http://{}/?collection={COLLECTION}&q=a+photo+of+a+samoyed&source=products&from=2023-11-19&to=2023-11-23&k=20",
            a.addr
        );
        return super::serve::serve(Engine::open_store(store), store, config);
    }
    Ok(())
}

/// Writes the JPEGs, `manifest.jsonl` (uri, source, timestamp, price, user) and `truth.jsonl`
/// (what each picture shows); returns the count.
fn write_gallery(dir: &Path, pictures: &[Picture], reused: &[(usize, usize)], first: Day, days: u32) -> Result<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let as_avatar: std::collections::HashSet<usize> = reused.iter().map(|r| r.1).collect();
    let last = Day(first.0 + days as i32 - 1);
    let rows: Vec<(String, Picture, i64, serde_json::Value)> = pictures
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let day = Day(first.0 + rng.random_range(0..days as i32));
            let ts = day.start() + rng.random_range(0..86_400);
            let source = if as_avatar.contains(&i) {
                "avatars"
            } else {
                p.style.source()
            };
            let uri = format!("{source}/{day}/{i:05}.jpg");
            let extra = if source == "products" {
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
        // A reused photo is the product's picture saved again (re-encoded), as uploads are.
        let quality = if uri.starts_with("avatars/") && p.style == Style::Product {
            75
        } else {
            90
        };
        std::fs::write(&path, p.jpeg(GALLERY_SIDE, quality)).with_context(|| path.display().to_string())
    })?;
    // The whole manifest, and the same rows split: every day but the newest, and the newest.
    let create = |name: &str| -> Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::new(std::fs::File::create(dir.join(name))?))
    };
    let (mut m, mut history, mut newest) = (
        create("manifest.jsonl")?,
        create("manifest-history.jsonl")?,
        create("manifest-newest.jsonl")?,
    );
    for (uri, _, ts, extra) in &rows {
        let source = uri.split('/').next().unwrap_or_default();
        let mut o = json!({"uri": uri, "source": source, "timestamp": ts});
        if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        writeln!(m, "{o}")?;
        let part = if Day::from_timestamp(*ts) == last {
            &mut newest
        } else {
            &mut history
        };
        writeln!(part, "{o}")?;
    }
    for f in [&mut m, &mut history, &mut newest] {
        f.flush()?;
    }
    // What each picture shows, beside the gallery (never in the store): the page's browser
    // tests mark answers right or wrong with it, as this command does.
    let mut t = std::io::BufWriter::new(std::fs::File::create(dir.join("truth.jsonl"))?);
    for (uri, p, ..) in &rows {
        writeln!(
            t,
            "{}",
            json!({"uri": uri, "object": OBJECTS[p.object].key, "colour": vitrine_gallery::COLOURS[p.colour].en})
        )?;
    }
    t.flush()?;
    Ok(rows.len())
}

/// Whether the picture a uri names shows `object`.
fn shows(pictures: &[Picture], uri: &str, object: usize) -> bool {
    truth_of(pictures, uri).is_some_and(|p| p.object == object)
}

/// The rows of `selection` that show `object`, by the gallery's truth.
fn rows_showing(
    engine: &Engine,
    truth: &HashMap<String, &Picture>,
    selection: &SelectionSpec,
    object: usize,
) -> Result<usize> {
    Ok(engine
        .rows(COLLECTION, selection)?
        .iter()
        .filter(|r| truth.get(&r.id).is_some_and(|p| p.object == object))
        .count())
}

fn truth_of<'a>(pictures: &'a [Picture], uri: &str) -> Option<&'a Picture> {
    let stem = Path::new(uri).file_stem()?.to_str()?;
    pictures.get(stem.parse::<usize>().ok()?)
}

/// Zero-shot labels for the last week's avatars, several templates averaged per label (the
/// same classification as `vitrine classify`).
fn classify(engine: &Engine, truth: &HashMap<String, &Picture>, last: Day) -> Result<()> {
    let ans = engine.classify(&ClassifyRequest {
        collection: COLLECTION.into(),
        labels: OBJECTS.iter().map(|o| o.en[0].to_string()).collect(),
        templates: ["a photo of a {}", "a picture of a {}", "a {}"]
            .map(String::from)
            .to_vec(),
        selection: SelectionSpec {
            sources: vec!["avatars".into()],
            from: Some(Day(last.0 - 6)),
            to: Some(last),
            ..Default::default()
        },
        model: None,
    })?;
    let (mut right, mut counts) = (0, BTreeMap::<&str, usize>::new());
    for r in &ans.rows {
        *counts.entry(OBJECTS[r.label].key).or_default() += 1;
        if truth.get(&r.id).is_some_and(|p| p.object == r.label) {
            right += 1;
        }
    }
    say!(
        "\n== Classify: {} avatars of {} .. {last} among {} labels (templates averaged)\n   {right} of {} labelled right",
        ans.rows.len(),
        Day(last.0 - 6),
        OBJECTS.len(),
        ans.rows.len()
    );
    let mut top: Vec<_> = counts.into_iter().collect();
    top.sort_by_key(|b| std::cmp::Reverse(b.1));
    let parts: Vec<String> = top.iter().take(8).map(|(k, n)| format!("{k} {n}")).collect();
    say!("   {}", parts.join(", "));
    Ok(())
}

/// Every image of the last 30 days scoring at or above the threshold for a prompt, exactly
/// (the same sweep as `vitrine sweep`).
fn sweep(engine: &Engine, truth: &HashMap<String, &Picture>, pictures: &[Picture], last: Day) -> Result<()> {
    let prompt = "a photo of a handgun";
    let from = Day(last.0 - 29);
    let selection = SelectionSpec {
        from: Some(from),
        to: Some(last),
        ..Default::default()
    };
    let ans = engine.sweep(&SweepRequest {
        collection: COLLECTION.into(),
        prompts: vec![prompt.into()],
        threshold: Some(SWEEP_THRESHOLD),
        top: None,
        selection: selection.clone(),
        model: None,
        negatives: Default::default(),
        blend: vec![],
    })?;
    let handgun = object("handgun");
    let right = ans.hits.iter().filter(|h| shows(pictures, &h.uri, handgun)).count();
    let all = rows_showing(engine, truth, &selection, handgun)?;
    let mut per_source = BTreeMap::<&str, usize>::new();
    for h in &ans.hits {
        *per_source.entry(h.source.as_str()).or_default() += 1;
    }
    say!(
        "\n== Sweep: \"{prompt}\", every image of {from} .. {last} with cosine ≥ {SWEEP_THRESHOLD} (exact range search)\n   \
         {} hits in {} partitions ({}); {right} are handguns, of the {all} handguns in those days",
        ans.hits.len(),
        ans.per_partition.len(),
        per_source.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// Plants product photos reused as avatars: for three product pictures spread over the gallery,
/// the next avatar becomes a copy of it (written to the avatars source, re-encoded). Returns
/// the pictures and the (product, avatar) index pairs.
fn plant_reuses(mut pictures: Vec<Picture>) -> (Vec<Picture>, Vec<(usize, usize)>) {
    let n = pictures.len();
    let mut reused = Vec::new();
    for start in [n / 40, n / 2, n * 9 / 10] {
        let Some(i) = (start..n).find(|&i| pictures[i].style == Style::Product) else {
            continue;
        };
        let Some(j) = (i + 1..n).find(|&j| pictures[j].style == Style::Avatar) else {
            continue;
        };
        pictures[j] = pictures[i];
        reused.push((i, j));
    }
    (pictures, reused)
}

/// The row ids of the pictures (by their index in the gallery).
fn ids_by_picture(engine: &Engine) -> Result<HashMap<usize, String>> {
    Ok(engine
        .rows(COLLECTION, &SelectionSpec::all())?
        .into_iter()
        .filter_map(|r| {
            let stem = Path::new(&r.uri).file_stem()?.to_str()?.parse::<usize>().ok()?;
            Some((stem, r.id))
        })
        .collect())
}

/// The watchlist added before the newest day was indexed: its alerts (all from the newest
/// day), checked against the gallery's truth.
fn watchlist(engine: &Engine, truth: &HashMap<String, &Picture>, pictures: &[Picture], last: Day) -> Result<()> {
    let runs = engine.run_watchlists(COLLECTION)?;
    let alerts = engine.alerts(COLLECTION, WATCHLIST, 0, usize::MAX)?;
    let handgun = object("handgun");
    let right = alerts.iter().filter(|a| shows(pictures, &a.uri, handgun)).count();
    let days: std::collections::BTreeSet<Day> = alerts.iter().map(|a| a.day).collect();
    let newest = SelectionSpec {
        from: Some(last),
        to: Some(last),
        ..Default::default()
    };
    let all = rows_showing(engine, truth, &newest, handgun)?;
    let on = days.iter().map(Day::to_string).collect::<Vec<_>>().join(", ");
    say!(
        "\n== Watchlist \"{WATCHLIST}\" (\"{WATCH_PROMPT}\", cosine ≥ {SWEEP_THRESHOLD}), added before {last} was indexed\n   \
         {} alerts, all from {}; {right} are handguns, of the {all} handguns of {last}{}",
        alerts.len(),
        if on.is_empty() { "no day" } else { &on },
        if runs.iter().all(|r| r.alerts.is_empty()) {
            ""
        } else {
            " (found by this run)"
        }
    );
    for a in alerts.iter().take(3) {
        let what = truth_of(pictures, &a.uri).map(Picture::label).unwrap_or_default();
        say!(
            "   alert {} {:.3}  {:<8} {}  {:<28} {}",
            a.n,
            a.score,
            a.source,
            a.day,
            a.uri,
            what
        );
    }
    Ok(())
}

/// Near-duplicate clusters that span products and avatars, and whether they include every
/// planted reuse.
fn near_duplicates(engine: &Engine, pictures: &[Picture], reused: &[(usize, usize)]) -> Result<()> {
    let t = Instant::now();
    let ans = engine.dupes(&DupesRequest {
        collection: COLLECTION.into(),
        threshold: DUPLICATE_THRESHOLD,
        selection: SelectionSpec::all(),
        against: None,
        across_sources: true,
    })?;
    let ids = ids_by_picture(engine)?;
    let found = reused
        .iter()
        .filter(|(i, j)| {
            ans.clusters.iter().any(|c| {
                [i, j]
                    .iter()
                    .all(|k| ids.get(k).is_some_and(|id| c.members.iter().any(|m| &m.id == id)))
            })
        })
        .count();
    say!(
        "\n== Near-duplicates across sources (cosine ≥ {DUPLICATE_THRESHOLD}, an exact self-join of {} images in {:.1} s)\n   \
         {} clusters span products and avatars; {found} of the {} product photos planted as avatars are among them",
        ans.queries,
        t.elapsed().as_secs_f64(),
        ans.clusters.len(),
        reused.len()
    );
    for c in ans.clusters.iter().take(3) {
        let members: Vec<String> = c
            .members
            .iter()
            .take(4)
            .map(|m| {
                let what = truth_of(pictures, &m.uri).map(Picture::label).unwrap_or_default();
                format!("{} {} {} ({what})", m.source, m.day, m.uri)
            })
            .collect();
        say!("   {}", members.join("  ~  "));
    }
    Ok(())
}

/// A reviewer labels the top 300 of the first 15 days for the sweep's prompt; the threshold
/// for precision 0.9 on those labels is saved with the prompt, and the last 30 days are swept
/// at it; the precision it delivers is checked against the truth.
fn calibrated_sweep(
    engine: &Engine,
    store: &Path,
    truth: &HashMap<String, &Picture>,
    pictures: &[Picture],
    first: Day,
    last: Day,
) -> Result<()> {
    let prompt = WATCH_PROMPT;
    let handgun = object("handgun");
    let sample_days = SelectionSpec {
        from: Some(first),
        to: Some(Day(first.0 + 14)),
        ..Default::default()
    };
    let sample = engine.sweep(&SweepRequest {
        collection: COLLECTION.into(),
        prompts: vec![prompt.into()],
        threshold: None,
        top: Some(300),
        selection: sample_days.clone(),
        model: None,
        negatives: Default::default(),
        blend: vec![],
    })?;
    let labels = store.join("demo-labels.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&labels)?);
    writeln!(f, "id,label")?;
    for h in &sample.hits {
        let yes = shows(pictures, &h.uri, handgun);
        writeln!(f, "{},{}", h.id, yes as u8)?;
    }
    f.flush()?;
    drop(f);
    let target = 0.9;
    let cal = engine.calibrate(&CalibrateRequest {
        collection: COLLECTION.into(),
        prompts: vec![prompt.into()],
        negatives: Default::default(),
        labels: labels.clone(),
        selection: sample_days,
        targets: vec![target],
        save_as: Some(WATCHLIST.into()),
        by: Some("vitrine demo".into()),
    })?;
    let chosen = cal.chosen.first().and_then(|c| c.threshold);
    let Some(threshold) = chosen else {
        say!("\n== Calibrated sweep: no threshold reached precision {target} on the reviewer's labels");
        return Ok(());
    };
    let from = Day(last.0 - 29);
    let month = SelectionSpec {
        from: Some(from),
        to: Some(last),
        ..Default::default()
    };
    let ans = engine.sweep_calibrated(COLLECTION, WATCHLIST, target, month.clone())?;
    let right = ans.hits.iter().filter(|h| shows(pictures, &h.uri, handgun)).count();
    let all = rows_showing(engine, truth, &month, handgun)?;
    let precision = right as f64 / ans.hits.len().max(1) as f64;
    say!(
        "\n== Calibrated sweep: a reviewer labelled the top {} of {first} .. {} for \"{prompt}\" ({}); \
         precision {target} needs cosine ≥ {threshold:.4} (saved as prompt set \"{WATCHLIST}\")\n   \
         swept {from} .. {last} at it: {} hits, {right} are handguns: precision {:.1}% (calibrated for {:.0}%), \
         {:.1}% of the {all} handguns",
        sample.hits.len(),
        Day(first.0 + 14),
        labels.display(),
        ans.hits.len(),
        100.0 * precision,
        100.0 * target,
        100.0 * right as f64 / all.max(1) as f64
    );
    Ok(())
}
