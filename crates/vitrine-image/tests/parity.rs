//! Decoding and preprocessing against PIL + transformers' CLIP image processor, using the
//! reference pixel tensors of the CLIP fixtures (crates/vitrine-clip/tests/fixtures).

use std::path::{Path, PathBuf};
use vitrine_image::{decode, decode_bytes, Limits, Preprocess};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vitrine-clip/tests/fixtures")
}

fn reference_pixels(model: &str, stem: &str) -> Vec<f32> {
    let npy = vitrine_import::npy::Npy::open(&fixtures().join(model).join(format!("pixels_{stem}.npy"))).unwrap();
    let mut v = Vec::new();
    npy.read_rows(0..npy.rows(), &mut v);
    v
}

#[test]
fn lossless_images_preprocess_bit_for_bit_like_pil_and_transformers() {
    // PNG decoding is exact, and resampling is PIL's own algorithm: the tensors must be equal
    // to f32 rounding of the normalisation.
    for model in ["clip-quickgelu-p32", "clip-gelu-p16", "chinese-clip-p16"] {
        let pre = Preprocess::load(&fixtures().join(model)).unwrap();
        for img in ["scene_320x240", "tall_97x131_gray", "rgba_200x200", "palette_150x100"] {
            let rgb = decode(
                &fixtures().join("images").join(format!("{img}.png")),
                &Limits::default(),
            )
            .unwrap();
            let got = pre.apply(&rgb);
            let want = reference_pixels(model, img);
            assert_eq!(got.len(), want.len(), "{model} {img}");
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff <= 1e-6, "{model} {img}: max abs pixel diff {diff}");
        }
    }
}

#[test]
fn jpeg_decoding_differs_from_libjpeg_by_a_few_levels_at_most() {
    // Different IDCTs (zune-jpeg vs libjpeg-turbo) may differ by a level or two per channel.
    let pre = Preprocess::load(&fixtures().join("clip-quickgelu-p32")).unwrap();
    let rgb = decode(&fixtures().join("images/wide_641x203.jpg"), &Limits::default()).unwrap();
    let got = pre.apply(&rgb);
    let want = reference_pixels("clip-quickgelu-p32", "wide_641x203");
    let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    // one level of 255 is 1/255/0.26 ≈ 0.015 in normalised units
    assert!(diff <= 4.0 * 0.0151, "max abs pixel diff {diff}");
}

#[test]
fn bad_files_get_errors_naming_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let l = Limits::default();
    let e = decode_bytes(b"", "empty.jpg", &l).unwrap_err().to_string();
    assert!(e.contains("empty.jpg") && e.contains("0 bytes"), "{e}");
    let e = decode_bytes(b"hello, I am text", "notes.txt", &l)
        .unwrap_err()
        .to_string();
    assert!(e.contains("notes.txt") && e.contains("unrecognised format"), "{e}");
    let png = std::fs::read(fixtures().join("images/scene_320x240.png")).unwrap();
    let e = decode_bytes(&png[..png.len() / 2], "half.png", &l)
        .unwrap_err()
        .to_string();
    assert!(e.contains("half.png") && e.contains("corrupt or truncated"), "{e}");
    // A JPEG cut short: its decoder would fill the rest with grey; refused like PIL does.
    for f in ["wide_641x203.jpg", "progressive.jpg", "cmyk.jpg"] {
        let jpg = std::fs::read(fixtures().join("images").join(f)).unwrap();
        assert!(decode_bytes(&jpg, f, &l).is_ok());
        let e = decode_bytes(&jpg[..jpg.len() * 2 / 3], f, &l).unwrap_err().to_string();
        assert!(e.contains(f) && e.contains("truncated"), "{e}");
    }
    let mut heic = vec![0, 0, 0, 24];
    heic.extend_from_slice(b"ftypheic");
    heic.extend_from_slice(&[0; 16]);
    let e = decode_bytes(&heic, "IMG_0001.HEIC", &l).unwrap_err().to_string();
    assert!(
        e.contains("IMG_0001.HEIC") && e.contains("HEIC images are not supported"),
        "{e}"
    );
    // A panorama 50,000 pixels wide: refused from its header, before decoding.
    let wide = image::RgbImage::new(50_000, 2);
    let p = dir.path().join("panorama.png");
    wide.save(&p).unwrap();
    let e = decode(&p, &l).unwrap_err().to_string();
    assert!(
        e.contains("panorama.png") && e.contains("50000×2") && e.contains("before decoding"),
        "{e}"
    );
    // A decompression bomb: a tiny PNG claiming 30000×30000 pixels.
    let bomb = image::GrayImage::new(16_000, 16_000);
    let p = dir.path().join("bomb.png");
    bomb.save(&p).unwrap();
    let small = Limits {
        max_pixels: 50_000_000,
        ..Limits::default()
    };
    let e = decode(&p, &small).unwrap_err().to_string();
    assert!(std::fs::metadata(&p).unwrap().len() < 2_000_000);
    assert!(e.contains("bomb.png") && e.contains("16000×16000"), "{e}");
}

fn max_diff(model: &str, file: &str) -> f32 {
    let pre = Preprocess::load(&fixtures().join(model)).unwrap();
    let rgb = decode(&fixtures().join("images").join(file), &Limits::default()).unwrap();
    let got = pre.apply(&rgb);
    let stem = Path::new(file).file_stem().unwrap().to_str().unwrap();
    let want = reference_pixels(model, stem);
    assert_eq!(got.len(), want.len(), "{file}");
    got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
}

#[test]
fn every_format_decodes_like_pil() {
    let level = 1.0 / 255.0 / 0.26; // one grey level in normalised units
                                    // Lossless formats: identical pixels. The GIF is animated (first frame), the PNG 16-bit.
    for f in ["lossless.webp", "animated.gif", "photo.bmp", "photo.tiff", "rgb16.png"] {
        let d = max_diff("clip-gelu-p16", f);
        assert!(d <= 1e-6, "{f}: max abs pixel diff {d}");
    }
    // JPEG variants (progressive, CMYK, EXIF-rotated): a different IDCT, a few levels at most.
    for f in ["progressive.jpg", "cmyk.jpg", "exif_rotate90.jpg"] {
        let d = max_diff("clip-gelu-p16", f);
        assert!(
            d <= 4.0 * level,
            "{f}: max abs pixel diff {d} ({:.1} levels)",
            d / level
        );
    }
    // The rotation really happened: the stored 160×120 image displays as 120×160.
    let r = decode(&fixtures().join("images/exif_rotate90.jpg"), &Limits::default()).unwrap();
    assert_eq!((r.width(), r.height()), (120, 160));
}

#[test]
fn sixteen_bit_grey_keeps_its_picture_where_pil_clips_it_to_white() {
    // PIL's convert("RGB") of an I;16 image clamps every value above 255 to white; we take the
    // high byte, as PIL does for 16-bit RGB. This is the one deliberate difference.
    let rgb = decode(&fixtures().join("images/gray16.png"), &Limits::default()).unwrap();
    let distinct: std::collections::HashSet<u8> = rgb.as_raw().iter().copied().collect();
    assert!(distinct.len() > 5, "the picture survived");
    let want = reference_pixels("clip-gelu-p16", "gray16");
    let white = want.iter().filter(|v| **v > 1.7).count();
    assert!(white > want.len() * 9 / 10, "the reference really is (mostly) white");
}
