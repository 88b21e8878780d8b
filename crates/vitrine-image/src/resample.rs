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
    resize_impl(img, w, h, true)
}

/// [`resize_bicubic`] with the SIMD horizontal pass turned off: the reference the tests compare to.
pub fn resize_bicubic_scalar(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    resize_impl(img, w, h, false)
}

fn resize_impl(img: &RgbImage, w: u32, h: u32, simd: bool) -> RgbImage {
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
        let mut rgbx = vec![0u8; iw * 4 + 8];
        for y in 0..rows {
            let line = &src[(y + ybox_first) * iw * 3..(y + ybox_first + 1) * iw * 3];
            let dst = &mut out[y * w * 3..(y + 1) * w * 3];
            #[cfg(target_arch = "x86_64")]
            if simd && std::arch::is_x86_feature_detected!("avx2") {
                for (p, q) in line.chunks_exact(3).zip(rgbx.chunks_exact_mut(4)) {
                    q[..3].copy_from_slice(p);
                }
                // SAFETY: AVX2 is available; `rgbx` has 8 bytes of slack past the last pixel.
                unsafe { horizontal_avx2(&rgbx, &ch, dst) };
                continue;
            }
            let _ = simd;
            horizontal_scalar(line, &ch, dst);
        }
        (out, w, ybox_first)
    } else {
        (src.to_vec(), iw, 0)
    };
    if !need_v {
        return RgbImage::from_raw(tmp_w as u32, h as u32, tmp).expect("sizes match");
    }
    // Vertical pass, a whole output row at a time so the inner loop vectorises.
    let rowlen = tmp_w * 3;
    let mut out = vec![0u8; rowlen * h];
    #[cfg(target_arch = "x86_64")]
    if simd && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available.
        unsafe { vertical_avx2(&tmp, rowlen, row0, &cv, &mut out) };
        return RgbImage::from_raw(tmp_w as u32, h as u32, out).expect("sizes match");
    }
    vertical(&tmp, rowlen, row0, &cv, &mut out);
    RgbImage::from_raw(tmp_w as u32, h as u32, out).expect("sizes match")
}

/// The vertical pass compiled for AVX2: the same code, but 8-lane 32-bit multiplies instead of
/// the baseline target's emulated ones.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vertical_avx2(tmp: &[u8], rowlen: usize, row0: usize, cv: &Coeffs, out: &mut [u8]) {
    vertical(tmp, rowlen, row0, cv, out)
}

#[inline(always)]
fn vertical(tmp: &[u8], rowlen: usize, row0: usize, cv: &Coeffs, out: &mut [u8]) {
    let mut acc = vec![0i32; rowlen];
    for (yy, orow) in out.chunks_exact_mut(rowlen).enumerate() {
        let (ymin, ymax) = cv.bounds[yy];
        let ymin = ymin - row0;
        acc.fill(1 << (PRECISION_BITS - 1));
        for (y, &ky) in cv.weights[yy * cv.ksize..yy * cv.ksize + ymax].iter().enumerate() {
            let row = &tmp[(y + ymin) * rowlen..(y + ymin + 1) * rowlen];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(p as i32 * ky);
            }
        }
        for (o, &a) in orow.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
}

fn horizontal_scalar(line: &[u8], ch: &Coeffs, dst: &mut [u8]) {
    for (xx, px) in dst.chunks_exact_mut(3).enumerate() {
        let (xmin, xmax) = ch.bounds[xx];
        let k = &ch.weights[xx * ch.ksize..xx * ch.ksize + xmax];
        let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
        for (p, &kx) in line[xmin * 3..(xmin + xmax) * 3].chunks_exact(3).zip(k) {
            for c in 0..3 {
                ss[c] = ss[c].wrapping_add(p[c] as i32 * kx);
            }
        }
        for c in 0..3 {
            px[c] = clip8(ss[c]);
        }
    }
}

/// The horizontal pass on RGBX pixels: two taps per step, four channels per lane group.
/// Integer sums are exact, so the result equals the scalar pass bit for bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn horizontal_avx2(rgbx: &[u8], ch: &Coeffs, dst: &mut [u8]) {
    use std::arch::x86_64::*;
    for (xx, px) in dst.chunks_exact_mut(3).enumerate() {
        let (xmin, xmax) = ch.bounds[xx];
        let k = &ch.weights[xx * ch.ksize..xx * ch.ksize + xmax];
        let base = rgbx.as_ptr().add(xmin * 4);
        let mut acc = _mm256_setzero_si256();
        let mut t = 0;
        while t + 2 <= xmax {
            let p = _mm256_cvtepu8_epi32(_mm_loadl_epi64(base.add(t * 4) as *const __m128i));
            let w = _mm256_setr_epi32(k[t], k[t], k[t], k[t], k[t + 1], k[t + 1], k[t + 1], k[t + 1]);
            acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(p, w));
            t += 2;
        }
        let mut s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256::<1>(acc));
        if t < xmax {
            let p = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((base.add(t * 4) as *const i32).read_unaligned()));
            s = _mm_add_epi32(s, _mm_mullo_epi32(p, _mm_set1_epi32(k[t])));
        }
        let s = _mm_add_epi32(s, _mm_set1_epi32(1 << (PRECISION_BITS - 1)));
        let mut lanes = [0i32; 4];
        _mm_storeu_si128(lanes.as_mut_ptr() as *mut __m128i, s);
        for c in 0..3 {
            px[c] = clip8(lanes[c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_scalar_resizes_are_identical() {
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for _ in 0..40 {
            let (iw, ih) = (1 + next() % 300, 1 + next() % 300);
            let raw: Vec<u8> = (0..iw * ih * 3).map(|_| next() as u8).collect();
            let img = RgbImage::from_raw(iw, ih, raw).unwrap();
            let (w, h) = (1 + next() % 260, 1 + next() % 260);
            assert_eq!(
                resize_bicubic(&img, w, h),
                resize_bicubic_scalar(&img, w, h),
                "{iw}x{ih} -> {w}x{h}"
            );
        }
    }
}
