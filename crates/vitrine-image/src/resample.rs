//! PIL's resampling (`Image.resize` with `BICUBIC`), reproduced exactly.
//!
//! Same bicubic kernel (a = -0.5, support 2 scaled by the reduction factor), same coefficient
//! windows (`(int)(center ± support + 0.5)` clamped), same normalisation to 22-bit fixed point
//! rounded away from zero, same horizontal-then-vertical passes over only the rows the vertical
//! pass needs, same rounding (`+ 1 << 21`) and clipping to 0..=255 between passes. With these,
//! our resized pixels equal PIL's bit for bit, which is what makes the preprocessing match.

use crate::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: first input index, number of taps, fixed-point weights (`ksize` each).
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero; both values are > -1 here so this matches.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = bicubic((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for x in 0..xmax {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            let f = w * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if w < 0.0 { (-0.5 + f) as i32 } else { (0.5 + f) as i32 };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs { ksize, bounds, weights }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Resizes `img` to `w × h` with PIL's bicubic filter.
pub fn resize_bicubic(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (w, h) = (w as usize, h as usize);
    let src = img.as_raw();
    let cv = coeffs(ih, h);
    // Rows of the input the vertical pass reads.
    let (ybox_first, ybox_last) = if h > 0 {
        (cv.bounds[0].0, cv.bounds[h - 1].0 + cv.bounds[h - 1].1)
    } else {
        (0, 0)
    };
    let need_h = w != iw;
    let need_v = h != ih;
    // Horizontal pass over rows [ybox_first, ybox_last) only.
    let (tmp, tmp_w, row0) = if need_h {
        let ch = coeffs(iw, w);
        let rows = ybox_last - ybox_first;
        let mut out = vec![0u8; w * rows * 3];
        for y in 0..rows {
            let line = &src[(y + ybox_first) * iw * 3..(y + ybox_first + 1) * iw * 3];
            for xx in 0..w {
                let (xmin, xmax) = ch.bounds[xx];
                let k = &ch.weights[xx * ch.ksize..xx * ch.ksize + xmax];
                let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
                for (x, &kx) in k.iter().enumerate() {
                    let p = &line[(x + xmin) * 3..(x + xmin) * 3 + 3];
                    for c in 0..3 {
                        ss[c] = ss[c].wrapping_add(p[c] as i32 * kx);
                    }
                }
                for c in 0..3 {
                    out[(y * w + xx) * 3 + c] = clip8(ss[c]);
                }
            }
        }
        (out, w, ybox_first)
    } else {
        (src.to_vec(), iw, 0)
    };
    if !need_v {
        // Without a vertical pass the rows kept are all rows (PIL's box covers the full height).
        return RgbImage::from_raw(tmp_w as u32, h as u32, tmp).expect("sizes match");
    }
    let mut out = vec![0u8; tmp_w * h * 3];
    for yy in 0..h {
        let (ymin, ymax) = cv.bounds[yy];
        let ymin = ymin - row0;
        let k = &cv.weights[yy * cv.ksize..yy * cv.ksize + ymax];
        for xx in 0..tmp_w {
            let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
            for (y, &ky) in k.iter().enumerate() {
                let p = &tmp[((y + ymin) * tmp_w + xx) * 3..((y + ymin) * tmp_w + xx) * 3 + 3];
                for c in 0..3 {
                    ss[c] = ss[c].wrapping_add(p[c] as i32 * ky);
                }
            }
            for c in 0..3 {
                out[(yy * tmp_w + xx) * 3 + c] = clip8(ss[c]);
            }
        }
    }
    RgbImage::from_raw(tmp_w as u32, h as u32, out).expect("sizes match")
}
