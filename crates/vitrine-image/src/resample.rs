//! PIL's resampling (`Image.resize` with `BICUBIC`), reproduced exactly.
//!
//! Same bicubic kernel (a = -0.5, support 2 scaled by the reduction factor), same coefficient
//! windows (`(int)(center ± support + 0.5)` clamped), same normalisation to 22-bit fixed point
//! rounded away from zero, same horizontal-then-vertical passes, same rounding (`+ 1 << 21`) and
//! clipping to 0..=255 between passes. With these, our resized pixels equal PIL's bit for bit,
//! which is what makes the preprocessing match.
//!
//! Each output pixel depends only on its own window of input pixels, so a [`Region`] of the
//! resized image (the center crop CLIP keeps) can be computed alone and still equal the same
//! pixels of PIL's full resize: the columns and rows the crop throws away are never computed.
//!
//! The horizontal pass is the hot loop (every input row, ~15 taps per output pixel at CLIP's
//! 1024 → 298 reduction). Its SIMD form splits each input row into R, G and B planes so one
//! output channel is a contiguous run of taps: 16 (AVX-512) or 8 (AVX2) 32-bit products per
//! instruction. Products and sums are the same wrapping 32-bit integers as the scalar code, so
//! every path gives the same bits; the tests check that.

use crate::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;
const HALF: i32 = 1 << (PRECISION_BITS - 1);

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

/// Per output pixel: first input index, number of taps, fixed-point weights (`ksize` each,
/// zero past the taps).
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

/// A rectangle of the resized image, in its pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First column.
    pub x: u32,
    /// First row.
    pub y: u32,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

/// Which instructions the horizontal pass may use (the tests pin each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, the reference the SIMD paths are tested against.
    Scalar,
    /// 8 products per instruction.
    Avx2,
    /// 16 products per instruction.
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw") {
                return Kernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Scalar
    }

    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// Resizes `img` to `w × h` with PIL's bicubic filter.
pub fn resize_bicubic(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let all = Region {
        x: 0,
        y: 0,
        width: w,
        height: h,
    };
    resize_bicubic_region(img, w, h, all, Kernel::detect())
}

/// The pixels inside `region` of `img` resized to `w × h`: the same bits as cropping
/// [`resize_bicubic`]'s result, without computing the rest. `region` must lie inside `w × h`.
pub fn resize_bicubic_region(img: &RgbImage, w: u32, h: u32, region: Region, kernel: Kernel) -> RgbImage {
    let rgbx = resize_region_rgbx(img, w, h, region, kernel);
    let rgb: Vec<u8> = rgbx.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    RgbImage::from_raw(region.width, region.height, rgb).expect("sizes match")
}

/// [`resize_bicubic_region`] as RGBX rows (4 bytes per pixel, the 4th undefined), the layout
/// the passes work in; preprocessing reads it directly.
pub(crate) fn resize_region_rgbx(img: &RgbImage, w: u32, h: u32, region: Region, kernel: Kernel) -> Vec<u8> {
    let kernel = if kernel.available() { kernel } else { Kernel::Scalar };
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (w, h) = (w as usize, h as usize);
    let (x0, y0, cw, chh) = (
        region.x as usize,
        region.y as usize,
        region.width as usize,
        region.height as usize,
    );
    assert!(x0 + cw <= w && y0 + chh <= h, "region {region:?} outside {w}×{h}");
    let mut out = vec![0u8; cw * chh * 4];
    if cw == 0 || chh == 0 {
        return out;
    }
    let src = img.as_raw();
    // PIL skips a pass whose size does not change.
    let need_h = w != iw;
    let need_v = h != ih;
    let cv = need_v.then(|| coeffs(ih, h));
    // Rows of the input the vertical pass reads (window bounds grow with the output row).
    let (first, last) = match &cv {
        Some(cv) => (cv.bounds[y0].0, cv.bounds[y0 + chh - 1].0 + cv.bounds[y0 + chh - 1].1),
        None => (y0, y0 + chh),
    };
    let rows = last - first;
    let row_bytes = cw * 4;
    // Horizontal pass (or a copy) into RGBX rows `first..last`, columns `x0..x0 + cw`.
    let mut tmp = if need_v {
        vec![0u8; rows * row_bytes]
    } else {
        Vec::new()
    };
    {
        let dst_all: &mut [u8] = if need_v { &mut tmp } else { &mut out };
        if need_h {
            let ch = coeffs(iw, w);
            let pass = Horizontal::new(&ch, x0, cw, kernel);
            let mut planes = Planes::default();
            for (y, dst) in dst_all.chunks_exact_mut(row_bytes).enumerate() {
                let line = &src[(y + first) * iw * 3..(y + first + 1) * iw * 3];
                pass.run(line, &mut planes, dst);
            }
        } else {
            for (y, dst) in dst_all.chunks_exact_mut(row_bytes).enumerate() {
                let line = &src[((y + first) * iw + x0) * 3..((y + first) * iw + x0 + cw) * 3];
                for (q, p) in dst.chunks_exact_mut(4).zip(line.chunks_exact(3)) {
                    q[..3].copy_from_slice(p);
                }
            }
        }
    }
    if let Some(cv) = cv {
        vertical(&tmp, row_bytes, first, &cv, y0, &mut out, kernel);
    }
    out
}

/// The horizontal pass for one set of output columns, weights laid out for the kernel.
struct Horizontal {
    kernel: Kernel,
    /// First input column read; tap offsets below are relative to it.
    in0: usize,
    /// Input columns read.
    in_len: usize,
    /// Per output pixel: first tap, relative to `in0`.
    starts: Vec<usize>,
    /// Per output pixel: taps (scalar) or `stride` zero-padded weights (SIMD).
    taps: Vec<usize>,
    stride: usize,
    weights: Vec<i32>,
}

impl Horizontal {
    fn new(ch: &Coeffs, x0: usize, cw: usize, kernel: Kernel) -> Horizontal {
        let lanes = match kernel {
            Kernel::Scalar => 1,
            Kernel::Avx2 => 8,
            Kernel::Avx512 => 16,
        };
        let bounds = &ch.bounds[x0..x0 + cw];
        let in0 = bounds[0].0;
        let in_end = bounds.iter().map(|&(a, n)| a + n).max().unwrap_or(in0);
        let widest = bounds.iter().map(|&(_, n)| n).max().unwrap_or(0);
        let stride = widest.div_ceil(lanes) * lanes;
        let mut weights = vec![0i32; cw * stride];
        for (i, &(_, n)) in bounds.iter().enumerate() {
            let k = &ch.weights[(x0 + i) * ch.ksize..][..n];
            weights[i * stride..][..n].copy_from_slice(k);
        }
        Horizontal {
            kernel,
            in0,
            in_len: in_end - in0,
            starts: bounds.iter().map(|&(a, _)| a - in0).collect(),
            taps: bounds.iter().map(|&(_, n)| n).collect(),
            stride,
            weights,
        }
    }

    fn run(&self, line: &[u8], planes: &mut Planes, dst: &mut [u8]) {
        let line = &line[self.in0 * 3..(self.in0 + self.in_len) * 3];
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 | Kernel::Avx512 => {
                planes.split(line, self.stride);
                // SAFETY: `available()` checked the CPU; the planes have `stride` bytes of zero
                // slack past the last column, so every window's padded load stays in bounds.
                unsafe {
                    if self.kernel == Kernel::Avx512 {
                        horizontal_avx512(self, planes, dst)
                    } else {
                        horizontal_avx2(self, planes, dst)
                    }
                }
            }
            _ => self.scalar(line, dst),
        }
    }

    fn scalar(&self, line: &[u8], dst: &mut [u8]) {
        for (i, px) in dst.chunks_exact_mut(4).enumerate() {
            let (start, n) = (self.starts[i], self.taps[i]);
            let k = &self.weights[i * self.stride..][..n];
            let mut ss = [HALF; 3];
            for (p, &kx) in line[start * 3..(start + n) * 3].chunks_exact(3).zip(k) {
                for c in 0..3 {
                    ss[c] = ss[c].wrapping_add(p[c] as i32 * kx);
                }
            }
            for c in 0..3 {
                px[c] = clip8(ss[c]);
            }
        }
    }
}

/// One input row split into R, G and B planes, each with zero slack for padded windows.
#[derive(Default)]
struct Planes {
    rgb: [Vec<u8>; 3],
}

impl Planes {
    fn split(&mut self, line: &[u8], slack: usize) {
        let n = line.len() / 3;
        for p in &mut self.rgb {
            p.clear();
            p.resize(n + slack, 0);
        }
        let [r, g, b] = &mut self.rgb;
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("ssse3") {
            // SAFETY: SSSE3 is available; the function reads and writes whole 16-pixel blocks only.
            done = unsafe { split_ssse3(line, r, g, b) };
        }
        for (i, p) in line.chunks_exact(3).enumerate().skip(done) {
            r[i] = p[0];
            g[i] = p[1];
            b[i] = p[2];
        }
    }
}

/// Byte shuffles that gather channel `ch` of 16 RGB pixels from the `block`-th 16 bytes.
const fn split_mask(ch: usize, block: usize) -> [u8; 16] {
    let mut m = [0x80u8; 16];
    let mut i = 0;
    while i < 16 {
        let pos = 3 * i + ch;
        if pos / 16 == block {
            m[i] = (pos % 16) as u8;
        }
        i += 1;
    }
    m
}

const SPLIT_MASKS: [[[u8; 16]; 3]; 3] = {
    let mut m = [[[0u8; 16]; 3]; 3];
    let mut ch = 0;
    while ch < 3 {
        let mut block = 0;
        while block < 3 {
            m[ch][block] = split_mask(ch, block);
            block += 1;
        }
        ch += 1;
    }
    m
};

/// Splits whole blocks of 16 RGB pixels into planes; returns the pixels done.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn split_ssse3(line: &[u8], r: &mut [u8], g: &mut [u8], b: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    let blocks = line.len() / 48;
    let mask = |ch: usize, k: usize| _mm_loadu_si128(SPLIT_MASKS[ch][k].as_ptr() as *const __m128i);
    for i in 0..blocks {
        let src = line.as_ptr().add(i * 48) as *const __m128i;
        let v = [
            _mm_loadu_si128(src),
            _mm_loadu_si128(src.add(1)),
            _mm_loadu_si128(src.add(2)),
        ];
        for (ch, plane) in [&mut *r, &mut *g, &mut *b].into_iter().enumerate() {
            let x = _mm_or_si128(
                _mm_or_si128(_mm_shuffle_epi8(v[0], mask(ch, 0)), _mm_shuffle_epi8(v[1], mask(ch, 1))),
                _mm_shuffle_epi8(v[2], mask(ch, 2)),
            );
            _mm_storeu_si128(plane.as_mut_ptr().add(i * 16) as *mut __m128i, x);
        }
    }
    blocks * 16
}

/// Sums of R, G and B lanes (8 × i32 each) → rounded, clipped `[R, G, B, 0]` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn finish_pixel(
    r: std::arch::x86_64::__m256i,
    g: std::arch::x86_64::__m256i,
    b: std::arch::x86_64::__m256i,
) -> i32 {
    use std::arch::x86_64::*;
    let rg = _mm256_hadd_epi32(r, g);
    let b0 = _mm256_hadd_epi32(b, _mm256_setzero_si256());
    let s = _mm256_hadd_epi32(rg, b0);
    let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    let s = _mm_srai_epi32::<{ PRECISION_BITS as i32 }>(_mm_add_epi32(s, _mm_set1_epi32(HALF)));
    // Saturating packs clip to 0..=255 exactly as `clip8` does after the shift.
    let s = _mm_packus_epi16(_mm_packs_epi32(s, s), _mm_setzero_si128());
    _mm_cvtsi128_si32(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn horizontal_avx2(pass: &Horizontal, planes: &Planes, dst: &mut [u8]) {
    use std::arch::x86_64::*;
    let [pr, pg, pb] = &planes.rgb;
    for (i, px) in dst.chunks_exact_mut(4).enumerate() {
        let start = pass.starts[i];
        let k = pass.weights.as_ptr().add(i * pass.stride);
        let (mut r, mut g, mut b) = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256());
        let mut t = 0;
        while t < pass.stride {
            let w = _mm256_loadu_si256(k.add(t) as *const __m256i);
            let load = |p: &Vec<u8>| _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.as_ptr().add(start + t) as *const __m128i));
            r = _mm256_add_epi32(r, _mm256_mullo_epi32(load(pr), w));
            g = _mm256_add_epi32(g, _mm256_mullo_epi32(load(pg), w));
            b = _mm256_add_epi32(b, _mm256_mullo_epi32(load(pb), w));
            t += 8;
        }
        px.copy_from_slice(&finish_pixel(r, g, b).to_le_bytes());
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn horizontal_avx512(pass: &Horizontal, planes: &Planes, dst: &mut [u8]) {
    use std::arch::x86_64::*;
    let [pr, pg, pb] = &planes.rgb;
    let fold = |v: __m512i| _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
    for (i, px) in dst.chunks_exact_mut(4).enumerate() {
        let start = pass.starts[i];
        let k = pass.weights.as_ptr().add(i * pass.stride);
        let (mut r, mut g, mut b) = (_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512());
        let mut t = 0;
        while t < pass.stride {
            let w = _mm512_loadu_si512(k.add(t) as *const __m512i);
            let load = |p: &Vec<u8>| _mm512_cvtepu8_epi32(_mm_loadu_si128(p.as_ptr().add(start + t) as *const __m128i));
            r = _mm512_add_epi32(r, _mm512_mullo_epi32(load(pr), w));
            g = _mm512_add_epi32(g, _mm512_mullo_epi32(load(pg), w));
            b = _mm512_add_epi32(b, _mm512_mullo_epi32(load(pb), w));
            t += 16;
        }
        px.copy_from_slice(&finish_pixel(fold(r), fold(g), fold(b)).to_le_bytes());
    }
}

/// The vertical pass over RGBX rows, a whole output row at a time so the inner loop vectorises.
fn vertical(tmp: &[u8], row_bytes: usize, first: usize, cv: &Coeffs, y0: usize, out: &mut [u8], kernel: Kernel) {
    match kernel {
        // SAFETY: `available()` checked the CPU.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { vertical_avx512(tmp, row_bytes, first, cv, y0, out) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { vertical_avx2(tmp, row_bytes, first, cv, y0, out) },
        _ => vertical_generic(tmp, row_bytes, first, cv, y0, out),
    }
}

/// [`vertical_generic`] compiled for AVX-512 (16-lane 32-bit multiplies).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn vertical_avx512(tmp: &[u8], row_bytes: usize, first: usize, cv: &Coeffs, y0: usize, out: &mut [u8]) {
    vertical_generic(tmp, row_bytes, first, cv, y0, out)
}

/// [`vertical_generic`] compiled for AVX2 (8-lane 32-bit multiplies).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vertical_avx2(tmp: &[u8], row_bytes: usize, first: usize, cv: &Coeffs, y0: usize, out: &mut [u8]) {
    vertical_generic(tmp, row_bytes, first, cv, y0, out)
}

#[inline(always)]
fn vertical_generic(tmp: &[u8], row_bytes: usize, first: usize, cv: &Coeffs, y0: usize, out: &mut [u8]) {
    let mut acc = vec![0i32; row_bytes];
    for (i, orow) in out.chunks_exact_mut(row_bytes).enumerate() {
        let (ymin, n) = cv.bounds[y0 + i];
        let ymin = ymin - first;
        acc.fill(HALF);
        for (y, &ky) in cv.weights[(y0 + i) * cv.ksize..][..n].iter().enumerate() {
            let row = &tmp[(y + ymin) * row_bytes..(y + ymin + 1) * row_bytes];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(p as i32 * ky);
            }
        }
        for (o, &a) in orow.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(mut seed: u64) -> impl FnMut() -> u32 {
        move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        }
    }

    #[test]
    fn every_kernel_and_region_gives_the_scalar_full_resize_bits() {
        let mut next = rng(12345);
        let kernels: Vec<Kernel> = [Kernel::Avx2, Kernel::Avx512]
            .into_iter()
            .filter(|k| k.available())
            .collect();
        for _ in 0..60 {
            let (iw, ih) = (1 + next() % 300, 1 + next() % 300);
            let raw: Vec<u8> = (0..iw * ih * 3).map(|_| next() as u8).collect();
            let img = RgbImage::from_raw(iw, ih, raw).unwrap();
            // Sometimes keep one side, so the skipped-pass paths run too.
            let w = if next().is_multiple_of(5) { iw } else { 1 + next() % 260 };
            let h = if next().is_multiple_of(5) { ih } else { 1 + next() % 260 };
            let all = Region {
                x: 0,
                y: 0,
                width: w,
                height: h,
            };
            let full = resize_bicubic_region(&img, w, h, all, Kernel::Scalar);
            let (rx, ry) = (next() % w, next() % h);
            let region = Region {
                x: rx,
                y: ry,
                width: 1 + next() % (w - rx),
                height: 1 + next() % (h - ry),
            };
            let cropped = image::imageops::crop_imm(&full, rx, ry, region.width, region.height).to_image();
            for &k in &kernels {
                assert_eq!(
                    resize_bicubic_region(&img, w, h, all, k),
                    full,
                    "{k:?} {iw}x{ih} -> {w}x{h}"
                );
            }
            for k in [Kernel::Scalar].iter().chain(&kernels) {
                assert_eq!(
                    resize_bicubic_region(&img, w, h, region, *k),
                    cropped,
                    "{k:?} {iw}x{ih} -> {w}x{h} {region:?}"
                );
            }
        }
    }

    #[test]
    fn large_reductions_use_wide_windows_correctly() {
        // 2000 → 30 is a 67× reduction: windows of ~270 taps, many SIMD chunks per pixel.
        let mut next = rng(99);
        let raw: Vec<u8> = (0..2000 * 9 * 3).map(|_| next() as u8).collect();
        let img = RgbImage::from_raw(2000, 9, raw).unwrap();
        let all = Region {
            x: 0,
            y: 0,
            width: 30,
            height: 4,
        };
        let want = resize_bicubic_region(&img, 30, 4, all, Kernel::Scalar);
        for k in [Kernel::Avx2, Kernel::Avx512] {
            if k.available() {
                assert_eq!(resize_bicubic_region(&img, 30, 4, all, k), want, "{k:?}");
            }
        }
    }
}
