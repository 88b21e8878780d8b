//! vitrine-image as indexing uses it: the file read and decoded under the default limits
//! (`decode`), its EXIF capture time (`taken_at`, read from the same bytes), then CLIP's
//! preprocessing (resize, center crop, normalise) of the decoded picture.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vitrine_image::{Limits, Preprocess};

/// openai/clip-vit-base-patch32's preprocessor_config.json.
const CLIP: &str = r#"{"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
  "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
  "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224}"#;

fuzz_target!(|data: &[u8]| {
    static PRE: OnceLock<Preprocess> = OnceLock::new();
    let pre = PRE.get_or_init(|| Preprocess::from_json(CLIP, "clip").unwrap());
    let _ = vitrine_image::taken_at(data);
    let path = vitrine_fuzz::input_file("image", data);
    if let Ok(img) = vitrine_image::decode(&path, &Limits::default()) {
        assert!(img.width() > 0 && img.height() > 0);
        let px = pre.apply(&img);
        assert_eq!(px.len(), 3 * 224 * 224);
    }
});
