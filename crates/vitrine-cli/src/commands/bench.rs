//! Hidden `vitrine bench` commands: in-process timings for BENCHMARKS.md, printed as JSON.
//! bench/search_bench.py runs them beside numpy and faiss on the same data.

use crate::args::BenchCmd;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde_json::json;
use std::path::Path;
use std::time::Instant;
use vitrine_engine::query::{Query, SearchRequest};
use vitrine_engine::Engine;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn run(engine: &Engine, store: &Path, cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::DemoDataset {
            out,
            count,
            seed,
            size,
            render,
        } => super::gallery::dataset(&out, count, seed, size, render)?,
        BenchCmd::DemoEval { model, count, seed } => {
            let model = match model {
                Some(m) => m,
                None => vitrine_engine::model::demo_model()?,
            };
            super::gallery::eval(&model, count, seed)?
        }
        BenchCmd::Membw { mib, repeat } => {
            // A STREAM-like read probe: sum a large array with 1 thread, then with all threads.
            let n = mib * 1024 * 1024 / 4;
            let data: Vec<f32> = (0..n).into_par_iter().map(|i| (i % 7) as f32).collect();
            let bytes = (n * 4) as f64;
            let time = |par: bool| {
                let mut runs = Vec::new();
                for _ in 0..repeat {
                    let t = Instant::now();
                    let s: f32 = if par {
                        data.par_chunks(1 << 16).map(sum_chunk).sum()
                    } else {
                        data.chunks(1 << 16).map(sum_chunk).sum()
                    };
                    std::hint::black_box(s);
                    runs.push(bytes / t.elapsed().as_secs_f64() / 1e9);
                }
                median(runs)
            };
            let one = time(false);
            let all = time(true);
            say!(
                "{}",
                json!({"threads_1_gbps": one, "threads_all_gbps": all, "threads": rayon::current_num_threads(), "mib": mib})
            );
        }
        BenchCmd::Search {
            c,
            queries,
            k,
            batch,
            repeat,
            sel,
        } => {
            let (q, nq, dim) = vitrine_engine::read_npy(&queries)?;
            anyhow::ensure!(
                batch >= 1 && batch <= nq,
                "--batch {batch} but the query file has {nq} queries"
            );
            let selection = super::selection(&sel)?;
            let mut runs = Vec::new();
            let mut first_ms = 0.0;
            let mut stats = None;
            for i in 0..repeat + 1 {
                // Single queries cycle through the file so no run repeats the previous one.
                let start = (i * batch) % (nq - batch + 1);
                let mut req = SearchRequest::new(
                    c.collection.clone(),
                    Query::Vectors(q[start * dim..(start + batch) * dim].to_vec()),
                );
                req.k = Some(k);
                req.selection = selection.clone();
                let t = Instant::now();
                let ans = engine.search(&req)?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                if i > 0 {
                    runs.push(ms);
                } else {
                    // The first run maps the segments and warms the page cache: reported apart.
                    first_ms = ms;
                }
                stats = Some(ans.receipt.scan);
            }
            let stats = stats.expect("at least one run");
            let med = median(runs.clone());
            say!(
                "{}",
                json!({
                    "median_ms": med,
                    "runs_ms": runs,
                    "first_ms": first_ms,
                    "rows_scanned": stats.rows_scanned,
                    "bytes_scanned": stats.bytes_scanned,
                    "partitions_scanned": stats.partitions_scanned,
                    "segments_scanned": stats.segments_scanned,
                    "rows_by_code": stats.rows_by_code,
                    "code_fallbacks": stats.code_fallbacks,
                    "code_survivors_per_query": stats.code_survivors as f64 / batch as f64,
                    "candidates_reranked_per_query": stats.candidates_reranked as f64 / batch as f64,
                    "gbps": stats.bytes_scanned as f64 / (med / 1e3) / 1e9,
                    "batch": batch,
                    "simd": vitrine_engine::simd_level(),
                    "threads": rayon::current_num_threads(),
                })
            );
        }
        BenchCmd::ClipImage { model, batch, repeat } => {
            let e = vitrine_engine::Embedder::load(&model)?;
            let s = e.model().config().vision.image_size;
            let mut rng = rand::rngs::StdRng::seed_from_u64(0);
            let px: Vec<f32> = (0..batch * 3 * s * s).map(|_| rng.random_range(-1.8f32..2.1)).collect();
            let runs = time_runs(repeat, || {
                e.model().embed_pixels(px.clone(), batch)?;
                Ok(())
            })?;
            let med = median(runs.clone());
            say!(
                "{}",
                json!({"images_per_s": batch as f64 / med, "runs_s": runs, "batch": batch, "threads": rayon::current_num_threads()})
            );
        }
        BenchCmd::TextSearch {
            c,
            model,
            queries,
            k,
            repeat,
            sel,
        } => {
            let texts: Vec<String> = match &queries {
                Some(f) => std::fs::read_to_string(f)
                    .with_context(|| f.display().to_string())?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect(),
                None => (0..=repeat)
                    .map(|i| format!("{} {i}", CAPTIONS[i % CAPTIONS.len()]))
                    .collect(),
            };
            anyhow::ensure!(!texts.is_empty(), "--queries: no query texts");
            let selection = super::selection(&sel)?;
            let (mut embed, mut search, mut total) = (Vec::new(), Vec::new(), Vec::new());
            let mut stats = None;
            for i in 0..repeat + 1 {
                // A different prompt each run, so nothing is cached between runs.
                let text = &texts[i % texts.len()];
                let t = Instant::now();
                let (q, _) =
                    engine.query_embedding(&c.collection, &Query::Text(vec![text.clone()]), model.as_deref())?;
                let t_embed = t.elapsed().as_secs_f64() * 1e3;
                let mut req = SearchRequest::new(c.collection.clone(), Query::Vectors(q));
                req.k = Some(k);
                req.selection = selection.clone();
                let ans = engine.search(&req)?;
                let t_total = t.elapsed().as_secs_f64() * 1e3;
                if i > 0 {
                    embed.push(t_embed);
                    search.push(t_total - t_embed);
                    total.push(t_total);
                }
                stats = Some(ans.receipt.scan);
            }
            let rows_total = engine.collection_info(&c.collection)?.rows;
            let stats = stats.expect("at least one run");
            say!(
                "{}",
                json!({"total_ms": median(total), "embed_ms": median(embed), "search_ms": median(search),
                       "rows_total": rows_total, "rows_scanned": stats.rows_scanned,
                       "partitions_scanned": stats.partitions_scanned, "threads": rayon::current_num_threads()})
            );
        }
        BenchCmd::ClipText { model, batch, repeat } => {
            let e = vitrine_engine::Embedder::load(&model)?;
            let texts: Vec<String> = (0..batch).map(|i| CAPTIONS[i % CAPTIONS.len()].to_string()).collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let runs = time_runs(repeat, || {
                e.model().embed_texts(&texts)?;
                Ok(())
            })?;
            let med = median(runs.clone());
            say!(
                "{}",
                json!({"texts_per_s": batch as f64 / med, "runs_s": runs, "batch": batch, "threads": rayon::current_num_threads()})
            );
        }
        BenchCmd::Preprocess { model, images, repeat } => {
            let e = vitrine_engine::Embedder::load(&model)?;
            let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&images)?
                .filter_map(|d| d.ok().map(|d| d.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            anyhow::ensure!(!files.is_empty(), "{}: no files", images.display());
            // Every file through `f` on all threads, `repeat` times.
            let over_files = |f: &(dyn Fn(&std::path::Path) -> Result<usize, vitrine_engine::Error> + Sync)| {
                time_runs(repeat, || {
                    let sizes = files.par_iter().map(|p| f(p)).collect::<Result<Vec<_>, _>>()?;
                    std::hint::black_box(sizes);
                    Ok(())
                })
            };
            let runs = over_files(&|p| e.pixels(p).map(|v| v.len()))?;
            let med = median(runs.clone());
            // Decoding alone (read + decode + RGB), for the split of the time.
            let decode_runs = over_files(&|p| Ok(vitrine_engine::media::decode(p)?.len()))?;
            let decode_med = median(decode_runs.clone());
            say!(
                "{}",
                json!({"images_per_s": files.len() as f64 / med, "runs_s": runs, "images": files.len(),
                       "decode_images_per_s": files.len() as f64 / decode_med, "decode_runs_s": decode_runs,
                       "threads": rayon::current_num_threads()})
            );
        }
        BenchCmd::Pixels { model, image, out } => {
            let e = vitrine_engine::Embedder::load(&model)?;
            let rows: Vec<Vec<f32>> = image.iter().map(|p| e.pixels(p)).collect::<Result<_, _>>()?;
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            vitrine_engine::write_npy(&out, &flat, rows.len(), rows[0].len())?;
        }
        BenchCmd::Open { c, repeat } => {
            let mut runs = Vec::new();
            for _ in 0..repeat {
                let t = Instant::now();
                // A fresh engine each time: nothing cached between runs.
                let rows = Engine::open_store(store).collection_info(&c.collection)?.rows;
                std::hint::black_box(rows);
                runs.push(t.elapsed().as_secs_f64() * 1e3);
            }
            say!("{}", json!({"open_ms": median(runs.clone()), "runs_ms": runs}));
        }
    }
    Ok(())
}

/// Seconds per call of `f`, `repeat` times after one warm-up call.
fn time_runs(repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    f()?;
    let mut runs = Vec::with_capacity(repeat);
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        f()?;
        runs.push(t.elapsed().as_secs_f64());
    }
    Ok(runs)
}

/// Captions of varied length for text-encoding benchmarks.
const CAPTIONS: &[&str] = &[
    "a photo of a samoyed dog",
    "a photo of a handgun on a wooden table",
    "red running sneakers, size 42, barely worn, original box included",
    "vintage leather handbag with brass buckle and long shoulder strap in brown",
    "a smartphone with a cracked screen lying on a desk next to a charger",
    "a close-up photo of a luxury wrist watch with a blue dial and a steel bracelet",
    "an acoustic guitar",
    "a mountain bicycle leaning against a brick wall in the afternoon sun, slightly muddy tyres",
];

fn sum_chunk(c: &[f32]) -> f32 {
    // 16 independent accumulators let the compiler vectorise without reassociation.
    let mut acc = [0f32; 16];
    for ch in c.chunks_exact(16) {
        for i in 0..16 {
            acc[i] += ch[i];
        }
    }
    acc.iter().sum()
}
