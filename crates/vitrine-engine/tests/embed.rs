//! The batched pipeline: same vectors as one-at-a-time, in input order, bad files isolated.

use std::path::{Path, PathBuf};
use vitrine_engine::Embedder;
use vitrine_gallery::{Picture, Style, COLOURS, GALLERY_SIDE, OBJECTS};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vitrine-clip/tests/fixtures")
}

#[test]
fn batches_equal_single_images_and_bad_files_do_not_stop_the_batch() {
    let mut e = Embedder::load(fixtures().join("clip-gelu-p16").to_str().unwrap()).unwrap();
    e.set_batch(3);
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 not really").unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let imgs = fixtures().join("images");
    let paths = vec![
        imgs.join("scene_320x240.png"),
        corrupt.clone(),
        imgs.join("wide_641x203.jpg"),
        imgs.join("rgba_200x200.png"),
        empty.clone(),
        dir.path().join("missing.png"),
        imgs.join("photo.bmp"),
    ];
    let out = e.embed_images(&paths);
    assert_eq!(out.len(), paths.len());
    for (p, r) in paths.iter().zip(&out) {
        match r {
            Ok(v) => {
                assert_eq!(v.len(), e.dim());
                let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!((n - 1.0).abs() < 1e-5, "{}: not normalised", p.display());
                let alone = e.embed_images(std::slice::from_ref(p)).remove(0).unwrap();
                let diff = v.iter().zip(&alone).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff < 1e-5, "{}: batch and single differ by {diff}", p.display());
            }
            Err(err) => {
                let msg = err.to_string();
                assert!(msg.contains(p.file_name().unwrap().to_str().unwrap()), "{msg}");
            }
        }
    }
    let failed: Vec<bool> = out.iter().map(|r| r.is_err()).collect();
    assert_eq!(failed, vec![false, true, false, false, true, true, false]);
}

#[test]
fn text_and_image_of_the_same_model_share_one_space() {
    // The bundled demo model was trained on gallery pictures: an image must be nearest to the
    // caption of what it shows, among captions of other things, in English and in Chinese.
    let e = Embedder::load(vitrine_engine::model::demo_model().unwrap().as_str()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let things: Vec<(usize, usize)> = [
        ("sneaker", "red"),
        ("dog", "white"),
        ("bicycle", "blue"),
        ("mug", "yellow"),
    ]
    .iter()
    .map(|(o, c)| {
        (
            OBJECTS.iter().position(|x| x.key == *o).unwrap(),
            COLOURS.iter().position(|x| x.en == *c).unwrap(),
        )
    })
    .collect();
    let paths: Vec<PathBuf> = things
        .iter()
        .enumerate()
        .map(|(i, &(object, colour))| {
            let p = Picture {
                object,
                colour,
                style: Style::Product,
                seed: 9_000 + i as u64,
            };
            let path = dir.path().join(format!("{i}.jpg"));
            std::fs::write(&path, p.jpeg(GALLERY_SIDE, 90)).unwrap();
            path
        })
        .collect();
    let images: Vec<Vec<f32>> = e.embed_images(&paths).into_iter().map(Result::unwrap).collect();
    for lang in ["en", "zh"] {
        let captions: Vec<String> = things
            .iter()
            .map(|&(o, c)| {
                if lang == "en" {
                    Picture::query_en(o, c)
                } else {
                    Picture::query_zh(o, c)
                }
            })
            .collect();
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        let texts = e.embed_texts(&refs).unwrap();
        assert_eq!(texts[0].len(), images[0].len());
        for (i, img) in images.iter().enumerate() {
            let scores: Vec<f32> = texts
                .iter()
                .map(|t| t.iter().zip(img).map(|(a, b)| a * b).sum())
                .collect();
            let best = (0..scores.len())
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                .unwrap();
            assert_eq!(
                best, i,
                "{lang}: picture of {:?} is nearest to {:?} ({scores:?})",
                captions[i], captions[best]
            );
        }
    }
}

#[test]
fn a_model_that_is_not_there_is_named() {
    let err = Embedder::load("no-such-org/no-such-model").err().unwrap().to_string();
    assert!(
        err.contains("no-such-org/no-such-model") && err.contains("huggingface"),
        "{err}"
    );
}
