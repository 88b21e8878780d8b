//! The batched pipeline: same vectors as one-at-a-time, in input order, bad files isolated.

use std::path::{Path, PathBuf};
use vitrine_engine::Embedder;

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
    let e = Embedder::load(fixtures().join("chinese-clip-p16").to_str().unwrap()).unwrap();
    let t = e.embed_texts(&["一只萨摩耶犬的照片", "a photo of a dog"]).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].len(), e.dim());
    assert_ne!(t[0], t[1]);
    let err = Embedder::load("no-such-org/no-such-model").err().unwrap().to_string();
    assert!(
        err.contains("no-such-org/no-such-model") && err.contains("huggingface"),
        "{err}"
    );
}
