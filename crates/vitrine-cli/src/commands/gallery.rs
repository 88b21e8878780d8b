//! The demo model's data: training sets for `tools/train_demo_model.py` and the held-out
//! evaluation whose figures BENCHMARKS.md quotes. Both draw pictures with vitrine-gallery and
//! pass them through JPEG, as the demo gallery is stored.

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use vitrine_engine::Embedder;
use vitrine_gallery::{Picture, COLOURS, GALLERY_SIDE, OBJECTS};

/// Share of avatars in training and evaluation sets (the demo gallery's share too).
pub const AVATAR_SHARE: f64 = 0.3;

pub fn dataset(out: &Path, count: usize, seed: u64, size: u32, render: u32) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    let pictures = vitrine_gallery::pictures(count, seed, AVATAR_SHARE);
    let plane = (size * size * 3) as usize;
    let mut pixels = vec![0u8; count * plane];
    pixels
        .par_chunks_mut(plane)
        .zip(&pictures)
        .try_for_each(|(dst, p)| -> Result<()> {
            let bytes = p.jpeg(render, 90);
            let img = vitrine_engine::media::decode_bytes(&bytes, "rendered picture")?;
            let small = vitrine_engine::media::resize(&img, size, size);
            dst.copy_from_slice(small.as_raw());
            Ok(())
        })?;
    let header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({count}, {size}, {size}, 3), }}");
    let mut f = std::io::BufWriter::new(std::fs::File::create(out.join("pixels.npy"))?);
    write_npy_header(&mut f, &header)?;
    f.write_all(&pixels)?;
    f.flush()?;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed ^ 0x5eed);
    let mut labels = std::io::BufWriter::new(std::fs::File::create(out.join("labels.jsonl"))?);
    for p in &pictures {
        let captions: Vec<_> = ["en", "en", "en", "zh", "zh", "zh"]
            .iter()
            .map(|lang| {
                let c = p.caption(&mut rng, lang);
                json!({"text": c.text, "lang": c.lang, "object": c.object, "colour": c.colour})
            })
            .collect();
        writeln!(
            labels,
            "{}",
            json!({"object": p.object, "colour": p.colour, "style": p.style.source(), "captions": captions})
        )?;
    }
    labels.flush()?;
    let classes: Vec<_> = (0..OBJECTS.len())
        .flat_map(|o| (0..COLOURS.len()).map(move |c| (o, c)))
        .map(|(o, c)| json!({"object": o, "colour": c, "en": Picture::query_en(o, c), "zh": Picture::query_zh(o, c)}))
        .collect();
    std::fs::write(out.join("classes.json"), serde_json::to_string_pretty(&classes)?)?;
    eprintln!("wrote {count} pictures of {size}² to {}", out.display());
    Ok(())
}

fn write_npy_header(w: &mut impl Write, dict: &str) -> std::io::Result<()> {
    // Version 1.0: magic, version, u16 header length; header padded with spaces to 64 bytes.
    let mut h = dict.to_string();
    let total = 10 + h.len() + 1;
    h.push_str(&" ".repeat((64 - total % 64) % 64));
    h.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(h.len() as u16).to_le_bytes())?;
    w.write_all(h.as_bytes())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn argmax(scores: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, s) in scores.enumerate() {
        if s > best.1 {
            best = (i, s);
        }
    }
    best.0
}

/// Renders `count` held-out pictures to JPEG files, embeds them through the normal pipeline and
/// measures zero-shot retrieval: for each (colour, thing) class present, the canonical English
/// and Chinese query's top-1 image must be of that class; for each image, its nearest other
/// image must be of its class; and classification of each image among all class prompts.
pub fn eval(model: &str, count: usize, seed: u64) -> Result<()> {
    let embedder = Embedder::load(model)?;
    let dir = tempfile::tempdir()?;
    let pictures = vitrine_gallery::pictures(count, seed, AVATAR_SHARE);
    let paths: Vec<_> = pictures
        .par_iter()
        .enumerate()
        .map(|(i, p)| -> Result<_> {
            let path = dir.path().join(format!("{i:06}.jpg"));
            std::fs::write(&path, p.jpeg(GALLERY_SIDE, 90))?;
            Ok(path)
        })
        .collect::<Result<_>>()?;
    let t = std::time::Instant::now();
    let images: Vec<Vec<f32>> = embedder.embed_images(&paths).into_iter().collect::<Result<_, _>>()?;
    let image_secs = t.elapsed().as_secs_f64();
    let class_of = |p: &Picture| p.object * COLOURS.len() + p.colour;
    let classes: Vec<(usize, usize)> = (0..OBJECTS.len())
        .flat_map(|o| (0..COLOURS.len()).map(move |c| (o, c)))
        .collect();
    let present: Vec<bool> = {
        let mut v = vec![false; classes.len()];
        pictures.iter().for_each(|p| v[class_of(p)] = true);
        v
    };
    let mut report = serde_json::Map::new();
    let mut text_vectors = Vec::new();
    for lang in ["en", "zh"] {
        let queries: Vec<String> = classes
            .iter()
            .map(|&(o, c)| {
                if lang == "en" {
                    Picture::query_en(o, c)
                } else {
                    Picture::query_zh(o, c)
                }
            })
            .collect();
        let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
        let q = embedder.embed_texts(&refs)?;
        let (mut hit, mut asked) = (0, 0);
        for (ci, qv) in q.iter().enumerate() {
            if !present[ci] {
                continue;
            }
            asked += 1;
            let top = argmax(images.iter().map(|x| dot(qv, x)));
            hit += usize::from(class_of(&pictures[top]) == ci);
        }
        // Classification: each image's best prompt among all classes.
        let correct = images
            .iter()
            .zip(&pictures)
            .filter(|(x, p)| argmax(q.iter().map(|qv| dot(qv, x))) == class_of(p))
            .count();
        report.insert(format!("text_to_image_top1_{lang}"), json!(hit as f64 / asked as f64));
        report.insert(format!("queries_{lang}"), json!(asked));
        report.insert(
            format!("classification_top1_{lang}"),
            json!(correct as f64 / count as f64),
        );
        text_vectors.push(q);
    }
    let nn_hits = (0..images.len())
        .into_par_iter()
        .filter(|&i| {
            let best =
                argmax(
                    images
                        .iter()
                        .enumerate()
                        .map(|(j, y)| if j == i { f32::NEG_INFINITY } else { dot(&images[i], y) }),
                );
            class_of(&pictures[best]) == class_of(&pictures[i])
        })
        .count();
    report.insert("image_to_image_top1".into(), json!(nn_hits as f64 / count as f64));
    report.insert("images".into(), json!(count));
    report.insert("seed".into(), json!(seed));
    report.insert("images_per_s".into(), json!(count as f64 / image_secs));
    report.insert("model".into(), json!(model));
    say!("{}", serde_json::Value::Object(report));
    Ok(())
}
