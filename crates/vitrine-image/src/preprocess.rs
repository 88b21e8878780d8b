//! The checkpoint's image preprocessing, applied as transformers' CLIP image processor does.

use crate::resample::{resize_region_rgbx, Kernel, Region};
use crate::{Error, RgbImage};
use serde_json::Value;
use std::path::Path;

/// Resize → center crop → rescale → normalise, from `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// Resize so the shorter side has this length (aspect kept), or to exactly `size_hw`.
    pub shortest_edge: Option<u32>,
    /// Exact resize target (height, width).
    pub size_hw: Option<(u32, u32)>,
    /// Center crop (height, width), if any.
    pub crop_hw: Option<(u32, u32)>,
    /// Multiplier from 0..255 to floats.
    pub rescale: Option<f64>,
    /// Per-channel mean and std, if normalising.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

fn side(v: &Value) -> Option<u32> {
    v.as_u64().map(|x| x as u32)
}

impl Preprocess {
    /// Reads `preprocessor_config.json`, else transformers 5's `processor_config.json`, in `dir`.
    pub fn load(dir: &Path) -> Result<Preprocess, Error> {
        for name in ["preprocessor_config.json", "processor_config.json"] {
            let p = dir.join(name);
            if p.is_file() {
                let text = std::fs::read_to_string(&p).map_err(|source| Error::Io {
                    path: p.display().to_string(),
                    source,
                })?;
                return Preprocess::from_json(&text, &p.display().to_string());
            }
        }
        Err(Error::Config {
            path: dir.display().to_string(),
            reason: "no preprocessor_config.json or processor_config.json".into(),
        })
    }

    /// Parses the JSON; `name` is used in errors.
    pub fn from_json(text: &str, name: &str) -> Result<Preprocess, Error> {
        let bad = |reason: String| Error::Config {
            path: name.to_string(),
            reason,
        };
        let mut v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        // processor_config.json nests the image processor's settings.
        if let Some(inner) = v.get("image_processor").cloned() {
            v = inner;
        }
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(true);
        let resample = v.get("resample").and_then(Value::as_u64).unwrap_or(3);
        if flag("do_resize") && resample != 3 {
            return Err(bad(format!(
                "resample {resample} is not supported (only 3, bicubic, as CLIP uses)"
            )));
        }
        let (mut shortest_edge, mut size_hw) = (None, None);
        if flag("do_resize") {
            match v.get("size") {
                Some(s) if s.get("shortest_edge").is_some() => shortest_edge = s.get("shortest_edge").and_then(side),
                Some(s) if s.get("height").is_some() => {
                    size_hw = s.get("height").and_then(side).zip(s.get("width").and_then(side));
                }
                Some(s) if s.is_u64() => shortest_edge = side(s),
                _ => return Err(bad("do_resize without a usable size".into())),
            }
        }
        let crop_hw = if flag("do_center_crop") {
            match v.get("crop_size") {
                Some(c) if c.is_u64() => side(c).map(|s| (s, s)),
                Some(c) => c.get("height").and_then(side).zip(c.get("width").and_then(side)),
                None => return Err(bad("do_center_crop without crop_size".into())),
            }
        } else {
            None
        };
        let rescale =
            flag("do_rescale").then(|| v.get("rescale_factor").and_then(Value::as_f64).unwrap_or(1.0 / 255.0));
        let three = |k: &str, d: [f32; 3]| -> Result<[f32; 3], Error> {
            match v.get(k) {
                None => Ok(d),
                Some(a) => {
                    let xs: Vec<f32> = a
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_f64)
                        .map(|x| x as f32)
                        .collect();
                    xs.try_into().map_err(|_| bad(format!("{k} must have 3 numbers")))
                }
            }
        };
        let normalize = if flag("do_normalize") {
            Some((
                three("image_mean", [0.481_454_66, 0.457_827_5, 0.408_210_73])?,
                three("image_std", [0.268_629_54, 0.261_302_6, 0.275_777_1])?,
            ))
        } else {
            None
        };
        Ok(Preprocess {
            shortest_edge,
            size_hw,
            crop_hw,
            rescale,
            normalize,
        })
    }

    /// The (height, width) of the output tensor.
    pub fn output_hw(&self, h: u32, w: u32) -> (u32, u32) {
        let (rh, rw) = self.resized_hw(h, w);
        self.crop_hw.unwrap_or((rh, rw))
    }

    /// transformers' `get_resize_output_image_size`: the long side is `int(size * long / short)`.
    fn resized_hw(&self, h: u32, w: u32) -> (u32, u32) {
        if let Some(hw) = self.size_hw {
            return hw;
        }
        let Some(s) = self.shortest_edge else { return (h, w) };
        let (short, long) = (h.min(w), h.max(w));
        let new_long = (s as f64 * long as f64 / short as f64) as u32;
        if h <= w {
            (s, new_long)
        } else {
            (new_long, s)
        }
    }

    /// Model-ready pixels, channels first: `3 × out_h × out_w` floats.
    pub fn apply(&self, img: &RgbImage) -> Vec<f32> {
        self.apply_with(img, Kernel::detect())
    }

    /// [`Preprocess::apply`] with a chosen resampling kernel (the tests pin each one).
    pub fn apply_with(&self, img: &RgbImage, kernel: Kernel) -> Vec<f32> {
        let (h, w) = self.resized_hw(img.height(), img.width());
        let (h, w) = (h as i64, w as i64);
        let (ch, cw) = self.crop_hw.map_or((h, w), |(a, b)| (a as i64, b as i64));
        // transformers pads a too-small image to the crop size (centered, zeros), then crops
        // with floored offsets: both reduce to this offset arithmetic.
        let (pad_h, pad_w) = ((ch - h).max(0) / 2, (cw - w).max(0) / 2);
        let (top, left) = (((h.max(ch)) - ch) / 2 - pad_h, ((w.max(cw)) - cw) / 2 - pad_w);
        // Only the part of the resized image the crop keeps is computed (same bits as PIL's
        // full resize there); the rest of the crop is padding.
        let (ry0, ry1) = (top.max(0), (top + ch).min(h));
        let (rx0, rx1) = (left.max(0), (left + cw).min(w));
        let region = Region {
            x: rx0 as u32,
            y: ry0 as u32,
            width: (rx1 - rx0).max(0) as u32,
            height: (ry1 - ry0).max(0) as u32,
        };
        let kept = resize_region_rgbx(img, w as u32, h as u32, region, kernel);
        let plane = (ch * cw) as usize;
        // Per channel: rescale in f64 then f32, normalise in f32 (transformers' order of rounding).
        let lut: Vec<[f32; 256]> = (0..3)
            .map(|c| {
                let mut t = [0f32; 256];
                for (v, slot) in t.iter_mut().enumerate() {
                    let mut f = match self.rescale {
                        Some(r) => (v as f64 * r) as f32,
                        None => v as f32,
                    };
                    if let Some((m, s)) = &self.normalize {
                        f = (f - m[c]) / s[c];
                    }
                    *slot = f;
                }
                t
            })
            .collect();
        // Padding is zero *before* rescaling and normalising, as in transformers.
        let mut out = vec![0f32; 3 * plane];
        for (c, o) in out.chunks_exact_mut(plane).enumerate() {
            o.fill(lut[c][0]);
        }
        let kw = region.width as usize;
        for y in ry0..ry1 {
            let src = &kept[(y - ry0) as usize * kw * 4..][..kw * 4];
            let o = ((y - top) * cw + (rx0 - left)) as usize;
            for (c, lut) in lut.iter().enumerate() {
                let dst = &mut out[c * plane + o..][..kw];
                for (d, p) in dst.iter_mut().zip(src.chunks_exact(4)) {
                    *d = lut[p[c] as usize];
                }
            }
        }
        out
    }
}
