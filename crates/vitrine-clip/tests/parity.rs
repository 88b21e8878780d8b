//! Numerical identity with Hugging Face transformers, on random-weight fixtures of several shapes
//! made by `tools/clip_fixtures.py` (token ids, text features, image features).

use std::path::{Path, PathBuf};
use vitrine_clip::{ClipModel, Family, Tensor, TextTokenizer, Towers};

const FIXTURES: [&str; 3] = ["clip-quickgelu-p32", "clip-gelu-p16", "chinese-clip-p16"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn reference(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max)
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// A copy of fixture `name` whose weights are rewritten after `edit` (a tensor removed, ...).
fn edited_fixture(name: &str, edit: impl FnOnce(&mut std::collections::HashMap<String, Tensor>)) -> tempfile::TempDir {
    let dir = fixture(name);
    let tmp = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, tmp.path().join(f.file_name().unwrap())).unwrap();
    }
    let mut tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
    tmp
}

#[test]
fn token_ids_equal_the_reference_tokenizer_from_tokenizer_json_and_from_vocab_files() {
    for name in FIXTURES {
        let dir = fixture(name);
        let r = reference(&dir);
        let texts: Vec<String> = r["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let want: Vec<Vec<u32>> = r["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect();
        let family = if name.starts_with("chinese") {
            Family::ChineseClip
        } else {
            Family::Clip
        };
        let ctx = r["max_length"].as_u64().unwrap() as usize;
        let from_json = TextTokenizer::load(&dir, family, ctx).unwrap();
        assert_eq!(from_json.encode(&texts).unwrap(), want, "{name}: tokenizer.json");
        // Without tokenizer.json the tokenizer is rebuilt from vocab.json + merges.txt / vocab.txt.
        let tmp = tempfile::tempdir().unwrap();
        for f in ["vocab.json", "merges.txt", "vocab.txt"] {
            if dir.join(f).is_file() {
                std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
            }
        }
        let from_vocab = TextTokenizer::load(tmp.path(), family, ctx).unwrap();
        assert_eq!(from_vocab.encode(&texts).unwrap(), want, "{name}: vocab files");
        assert!(
            want.iter().any(|ids| ids.len() == ctx),
            "{name}: the corpus must include an over-long text"
        );
    }
}

#[test]
fn text_and_image_features_match_transformers_within_1e4() {
    for name in FIXTURES {
        let dir = fixture(name);
        let r = reference(&dir);
        let model = ClipModel::load(&dir).unwrap();
        let texts: Vec<&str> = r["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let ids = model.tokenizer().encode(&texts).unwrap();
        let got = vitrine_clip::rows(&model.text_features(&ids).unwrap()).unwrap();
        let want = r["text_features"].as_array().unwrap();
        let mut worst = 0f64;
        for (g, w) in got.iter().zip(want) {
            worst = worst.max(max_abs_diff(g, &floats(w)));
        }
        assert!(worst <= 1e-4, "{name}: text features differ by {worst}");
        // Each text alone (no padding) gives the same features as inside the padded batch.
        let alone = vitrine_clip::rows(&model.text_features(&ids[3..4]).unwrap()).unwrap();
        assert!(
            max_abs_diff(&alone[0], &floats(&want[3])) <= 1e-4,
            "{name}: padding changed a feature"
        );

        for img in r["images"].as_array().unwrap() {
            let file = img["file"].as_str().unwrap();
            let stem = Path::new(file).file_stem().unwrap().to_str().unwrap();
            let npy = vitrine_import::npy::Npy::open(&dir.join(format!("pixels_{stem}.npy"))).unwrap();
            let mut px = Vec::new();
            npy.read_rows(0..npy.rows(), &mut px);
            let s = model.config().vision.image_size;
            let t = Tensor::from_vec(px, (1, 3, s, s), &candle_core::Device::Cpu).unwrap();
            let got = vitrine_clip::rows(&model.image_features(&t).unwrap()).unwrap();
            let diff = max_abs_diff(&got[0], &floats(&img["features"]));
            assert!(diff <= 1e-4, "{name} {file}: image features differ by {diff}");
        }
    }
}

#[test]
fn the_end_of_text_token_is_found_by_position_not_by_largest_id() {
    // In this fixture <|endoftext|> has id 1, far from the largest id: pooling at argmax(id)
    // (candle-transformers' CLIP) would pick another token and fail the parity test above.
    let dir = fixture("clip-quickgelu-p32");
    let model = ClipModel::load(&dir).unwrap();
    assert_eq!(model.tokenizer().token_id("<|endoftext|>"), Some(1));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["text_config"]["eos_token_id"], 1);
    assert_eq!(cfg["text_config"]["hidden_act"], "quick_gelu");
    let gelu: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("clip-gelu-p16").join("config.json")).unwrap()).unwrap();
    assert_eq!(gelu["text_config"]["hidden_act"], "gelu");
    assert_eq!(gelu["text_config"]["layer_norm_eps"], 1e-6);
}

#[test]
fn missing_tensors_and_unknown_architectures_are_errors_naming_the_file() {
    for missing in [
        "vision_model.embeddings.class_embedding",
        "logit_scale",
        "text_projection.weight",
    ] {
        let tmp = edited_fixture("clip-gelu-p16", |t| assert!(t.remove(missing).is_some()));
        let err = ClipModel::load(tmp.path())
            .err()
            .expect("loading must fail")
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains(missing.trim_end_matches(".weight")),
            "{err}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), r#"{"model_type": "siglip"}"#).unwrap();
    let err = ClipModel::load(tmp.path()).err().unwrap().to_string();
    assert!(
        err.contains("config.json") && err.contains("\"siglip\" is not supported"),
        "{err}"
    );
}

#[test]
fn pytorch_model_bin_loads_the_same_weights_as_safetensors() {
    let dir = fixture("chinese-clip-p16");
    let tmp = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap().path();
        if f.file_name().unwrap() != "model.safetensors" {
            std::fs::copy(&f, tmp.path().join(f.file_name().unwrap())).unwrap();
        }
    }
    let a = ClipModel::load(&dir).unwrap();
    let b = ClipModel::load(tmp.path()).unwrap();
    let texts = ["一只萨摩耶犬的照片", "a photo of a dog"];
    assert_eq!(a.embed_texts(&texts).unwrap(), b.embed_texts(&texts).unwrap());
}

#[test]
fn one_tower_loads_alone_gives_the_same_features_and_refuses_the_other_modality() {
    for name in ["clip-quickgelu-p32", "chinese-clip-p16"] {
        let dir = fixture(name);
        let both = ClipModel::load(&dir).unwrap();
        let text = ClipModel::load_towers(&dir, Towers::Text).unwrap();
        let image = ClipModel::load_towers(&dir, Towers::Image).unwrap();
        let texts = ["a photo of a dog", "一只狗的照片"];
        assert_eq!(
            text.embed_texts(&texts).unwrap(),
            both.embed_texts(&texts).unwrap(),
            "{name}"
        );
        let s = both.config().vision.image_size;
        let px: Vec<f32> = (0..3 * s * s)
            .map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5)
            .collect();
        assert_eq!(
            image.embed_pixels(px.clone(), 1).unwrap(),
            both.embed_pixels(px.clone(), 1).unwrap(),
            "{name}"
        );
        let e = text.embed_pixels(px, 1).unwrap_err().to_string();
        assert!(e.contains("without its vision tower"), "{e}");
        let e = image.embed_texts(&texts).unwrap_err().to_string();
        assert!(e.contains("without its text tower"), "{e}");
    }
    // A text-only load never reads the vision weights: a checkpoint without them still loads.
    let tmp = edited_fixture("clip-gelu-p16", |t| {
        t.retain(|k, _| !k.starts_with("vision_model.") && !k.starts_with("visual_projection"))
    });
    assert!(ClipModel::load(tmp.path()).is_err());
    let text = ClipModel::load_towers(tmp.path(), Towers::Text).unwrap();
    assert_eq!(text.embed_texts(&["a dog"]).unwrap().len(), 1);
}
