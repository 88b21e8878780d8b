//! 8-bit scan codes with a proven error bound: read a quarter of the bytes, skip rows with proof.
//!
//! A row `x` of a segment with mean `μ` is stored (besides its f32 vector) as
//!
//! ```text
//! x = μ + s·c + e        c ∈ [-127, 127]^d (kept as u = c + 128, one byte),  s > 0 per row
//! ```
//!
//! with `R ≥ ‖s·c‖` and `E ≥ ‖e‖` computed in f64 from the codes actually stored and rounded up
//! ([`encode_row`]). A query `q` is split into integer *planes* ([`QueryPlanes`]):
//!
//! ```text
//! q = s₁·p₁ + s₂·p₂ + e_q     pⱼ ∈ [-64, 64]^d,  ‖e_q‖ known
//! ```
//!
//! so that `q·x = q·μ + s·(s₁·p₁·c + s₂·p₂·c) + s·(e_q·c) + q·e`, where the integer dot
//! products `pⱼ·c` are computed exactly ([`codes_block`]), and by Cauchy–Schwarz
//!
//! ```text
//! |q·x − q·μ − s·(s₁·I₁ + s₂·I₂)|  ≤  ‖e_q‖·R + ‖q‖·E
//! ```
//!
//! [`QueryPlanes::bound_terms`] adds a generous allowance for the f32 arithmetic of the estimate
//! itself. The store keeps every row whose upper bound can still reach the answer and re-scores
//! it from its f32 vector in f64; no row is skipped without proof.
//!
//! Planes are limited to ±64 so that AVX2's `vpmaddubsw` (u8 × i8, pairs summed into a
//! *saturating* i16) can never saturate: 2 · 255 · 64 = 32 640 < 32 767. Every level therefore
//! computes the same exact integers, and the tests compare them for equality.

use crate::SimdLevel;

/// Row stride of the codes, in bytes: the dimension rounded up to a multiple of this, so the
/// SIMD loops need no tails (padding codes meet zero query lanes and add nothing).
pub const CODE_ALIGN: usize = 64;

/// The largest magnitude of a query plane value (see the module docs: no i16 saturation).
pub const PLANE_MAX: i32 = 64;

/// Bytes per row of codes for vectors of `dim` values.
pub fn code_stride(dim: usize) -> usize {
    dim.div_ceil(CODE_ALIGN) * CODE_ALIGN
}

/// Rounds a non-negative f64 up to an f32 that is at least as large.
fn up(x: f64) -> f32 {
    // The f64 sums themselves carry a relative error of at most about d·2⁻⁵³: 7.3e-12 at the
    // store's largest dimension (65,536); 1e-10 covers that with room.
    let x = x * (1.0 + 1e-10);
    let f = x as f32;
    if (f as f64) < x {
        f.next_up()
    } else {
        f
    }
}

/// What the scan needs besides a row's codes: its scale and the two norms of the bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowCode {
    /// `s`: the codes times this are the residual's estimate.
    pub scale: f32,
    /// `R ≥ ‖s·c‖`.
    pub resid: f32,
    /// `E ≥ ‖x − μ − s·c‖`.
    pub err: f32,
}

/// The mean of `rows` (row-major, `dim` wide), accumulated in f64.
pub fn mean(rows: &[f32], dim: usize) -> Vec<f32> {
    let n = rows.len() / dim;
    let mut acc = vec![0f64; dim];
    for r in rows.chunks_exact(dim) {
        for (a, &v) in acc.iter_mut().zip(r) {
            *a += v as f64;
        }
    }
    acc.iter().map(|a| (a / n.max(1) as f64) as f32).collect()
}

/// Encodes `x` as codes of its residual from `mean` into `out` (`code_stride(dim)` bytes).
///
/// The codes may be any choice; only `R` and `E`, computed from the stored codes, make the
/// bound true. Rounding to nearest keeps `E` small.
pub fn encode_row(x: &[f32], mean: &[f32], out: &mut [u8]) -> RowCode {
    assert!(
        x.len() == mean.len() && out.len() >= x.len(),
        "row, mean and codes differ in length"
    );
    #[cfg(target_arch = "x86_64")]
    if crate::supported(SimdLevel::Avx2Fma) && crate::simd_level() != SimdLevel::Scalar {
        // SAFETY: AVX2 is present (checked just above).
        return unsafe { encode_row_avx2(x, mean, out) };
    }
    encode_row_generic(x, mean, out)
}

/// [`encode_row`] compiled for AVX2: the same operations in the same order, so the same codes
/// and norms bit for bit, about twice as fast as baseline x86-64.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn encode_row_avx2(x: &[f32], mean: &[f32], out: &mut [u8]) -> RowCode {
    encode_row_generic(x, mean, out)
}

#[inline(always)]
fn encode_row_generic(x: &[f32], mean: &[f32], out: &mut [u8]) -> RowCode {
    // The largest |x − μ|, as the bits of non-negative floats (which order as integers), so the
    // loop vectorises (a float max must honour NaN and does not).
    let mut maxbits = 0u32;
    for (&v, &m) in x.iter().zip(mean) {
        maxbits = maxbits.max((v - m).abs().to_bits());
    }
    let maxabs = f32::from_bits(maxbits);
    out.fill(128);
    let scale = maxabs / 127.0;
    if !(scale > 0.0 && scale.is_finite()) {
        // A row equal to the mean (or too small to scale): all codes zero, the residual is the error.
        let err: f64 = x.iter().zip(mean).map(|(&v, &m)| (v as f64 - m as f64).powi(2)).sum();
        return RowCode {
            scale: 0.0,
            resid: 0.0,
            err: up(err.sqrt()),
        };
    }
    let inv = 1.0 / scale;
    // Imports encode every row, so these loops must stay cheap and vectorise: rounding by adding
    // ±0.5 and truncating (`f32::round` is a libm call on baseline x86-64: it made imports 40 %
    // slower), and the f64 norms as eight independent sums instead of one dependent chain.
    for ((&v, &m), o) in x.iter().zip(mean).zip(out.iter_mut()) {
        // max/min map NaN to a bound (clamp would keep it), so y is always within ±127.
        #[allow(clippy::manual_clamp)]
        let y = ((v - m) * inv).max(-127.0).min(127.0);
        // SAFETY: finite and within i32 (just above); unlike `as`, this vectorises.
        let c = unsafe { (y + 0.5f32.copysign(y)).to_int_unchecked::<i32>() }.clamp(-127, 127);
        *o = (c + 128) as u8;
    }
    let (mut e2, mut r2) = ([0f64; 8], [0f64; 8]);
    let s64 = scale as f64;
    let lanes = x.len() / 8 * 8;
    for ((xs, ms), os) in x[..lanes]
        .chunks_exact(8)
        .zip(mean[..lanes].chunks_exact(8))
        .zip(out[..lanes].chunks_exact(8))
    {
        for l in 0..8 {
            let sc = s64 * (os[l] as i32 - 128) as f64;
            let e = (xs[l] as f64 - ms[l] as f64) - sc;
            e2[l] += e * e;
            r2[l] += sc * sc;
        }
    }
    for i in lanes..x.len() {
        let sc = s64 * (out[i] as i32 - 128) as f64;
        let e = (x[i] as f64 - mean[i] as f64) - sc;
        e2[0] += e * e;
        r2[0] += sc * sc;
    }
    let (e2, r2) = (e2.iter().sum::<f64>(), r2.iter().sum::<f64>());
    RowCode {
        scale,
        resid: up(r2.sqrt()),
        err: up(e2.sqrt()),
    }
}

/// A query (or a batch of them) as integer planes for [`codes_block`], with what the bound needs.
#[derive(Debug, Clone)]
pub struct QueryPlanes {
    /// Planes per query (1 or 2).
    pub planes: usize,
    /// Row stride (as the codes').
    pub stride: usize,
    /// `nq × planes` rows of `stride` values in [-64, 64], query-major (query 0's planes first).
    pub values: Vec<i8>,
    /// The scale of each plane (`nq × planes`).
    pub scales: Vec<f32>,
    /// `128 · Σ` of each plane, to turn `Σ p·u` into `Σ p·c` (`nq × planes`).
    pub offsets: Vec<i32>,
    /// `‖e_q‖` of each query, rounded up.
    pub err_norm: Vec<f64>,
    /// `‖e_q‖` of each query as its first plane alone leaves it, rounded up (what a scan that
    /// reads the first planes only, [`QueryPlanes::first_planes`], must allow for).
    pub err_norm_first: Vec<f64>,
    /// `‖q‖` of each query, rounded up.
    pub norm: Vec<f64>,
}

impl QueryPlanes {
    /// Splits `queries` (`nq × dim`, row-major) into `planes` integer planes each (1 or 2).
    /// Two planes leave an error about 128 times smaller than one, for twice the integer work.
    pub fn new(queries: &[f32], dim: usize, planes: usize) -> QueryPlanes {
        assert!((1..=2).contains(&planes), "1 or 2 planes");
        let stride = code_stride(dim);
        let nq = queries.len() / dim;
        let mut out = QueryPlanes {
            planes,
            stride,
            values: vec![0; nq * planes * stride],
            scales: Vec::with_capacity(nq * planes),
            offsets: Vec::with_capacity(nq * planes),
            err_norm: Vec::with_capacity(nq),
            err_norm_first: Vec::with_capacity(nq),
            norm: Vec::with_capacity(nq),
        };
        for (qi, q) in queries.chunks_exact(dim).enumerate() {
            // The part of the query not yet represented, exactly (f64 holds f32 · small int sums).
            let mut rest: Vec<f64> = q.iter().map(|&v| v as f64).collect();
            out.norm.push(up(rest.iter().map(|v| v * v).sum::<f64>().sqrt()) as f64);
            for p in 0..planes {
                let maxabs = rest.iter().fold(0f64, |m, v| m.max(v.abs()));
                let scale = (maxabs / PLANE_MAX as f64) as f32;
                let vals = &mut out.values[(qi * planes + p) * stride..][..dim];
                let mut sum = 0i32;
                if scale > 0.0 && scale.is_finite() {
                    let inv = 1.0 / scale as f64;
                    for (r, o) in rest.iter_mut().zip(vals.iter_mut()) {
                        let c = (*r * inv).round().clamp(-(PLANE_MAX as f64), PLANE_MAX as f64);
                        *o = c as i8;
                        sum += c as i32;
                        *r -= scale as f64 * c;
                    }
                }
                out.scales.push(if scale.is_finite() { scale } else { 0.0 });
                out.offsets.push(128 * sum);
                if p == 0 {
                    out.err_norm_first
                        .push(up(rest.iter().map(|v| v * v).sum::<f64>().sqrt()) as f64);
                }
            }
            out.err_norm
                .push(up(rest.iter().map(|v| v * v).sum::<f64>().sqrt()) as f64);
        }
        out
    }

    /// Queries in the batch.
    pub fn queries(&self) -> usize {
        self.norm.len()
    }

    /// Each query's first plane, `nq × stride` values: a batch large enough to be bound by
    /// arithmetic scans with these alone, then refines the rows that survive with the second
    /// plane ([`plane_dot`]).
    pub fn first_planes(&self) -> Vec<i8> {
        self.values
            .chunks_exact(self.stride * self.planes)
            .flat_map(|q| &q[..self.stride])
            .copied()
            .collect()
    }

    /// `(a, b, c)` such that `a·R + b·E + c` (evaluated in f32) bounds the error of
    /// `q·μ + estimate` against the exact `q·x`, for a row with norms `R`, `E`, given `|q·μ|`.
    ///
    /// `a` adds to `‖e_q‖` an allowance for the f32 arithmetic of the estimate (whose terms are
    /// at most a few `‖q‖·R`); `c` covers rounding `q·μ` to f32. Both are hundreds of times the
    /// worst case, and negligible next to the quantisation terms.
    pub fn bound_terms(&self, qi: usize, q_dot_mean: f64) -> (f32, f32, f32) {
        self.bound_terms_with(self.err_norm[qi], qi, q_dot_mean)
    }

    fn bound_terms_with(&self, err_norm: f64, qi: usize, q_dot_mean: f64) -> (f32, f32, f32) {
        let u = f32::EPSILON as f64;
        let n = self.norm[qi];
        let a = err_norm + 64.0 * u * n;
        let b = n * (1.0 + 8.0 * u);
        let c = 16.0 * u * q_dot_mean.abs() + f32::MIN_POSITIVE as f64;
        (up(a), up(b), up(c))
    }
}

/// How a search turns a dot product into its "higher is better" key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyKind {
    /// The dot product itself (inner product).
    Dot,
    /// The dot product divided by the row's norm (the query is a unit vector).
    Cosine,
    /// `2·dot − ‖x‖² − ‖q‖²`, minus the squared distance; carries `‖q‖²`.
    NegL2(f32),
}

/// What one (segment, query) pair contributes to every row's bound.
#[derive(Debug, Clone, Copy)]
pub struct QueryTerms {
    /// `q·μ` (rounded to f32; `c` covers the rounding).
    pub qmu: f32,
    /// The bound is `a·R + b·E + c` ([`QueryPlanes::bound_terms`]).
    pub a: f32,
    /// See `a`.
    pub b: f32,
    /// See `a`.
    pub c: f32,
    /// Plane scales and offsets (`s2 = 0` with one plane).
    pub s1: f32,
    /// See `s1`.
    pub o1: i32,
    /// See `s1`.
    pub s2: f32,
    /// See `s1`.
    pub o2: i32,
}

impl QueryPlanes {
    /// The [`QueryTerms`] of query `qi` against a segment whose mean is `mean`.
    pub fn terms(&self, qi: usize, query: &[f32], mean: &[f32]) -> QueryTerms {
        let qmu = crate::dot_f64(query, mean);
        let (a, b, c) = self.bound_terms(qi, qmu);
        let i = qi * self.planes;
        let two = self.planes > 1;
        QueryTerms {
            qmu: qmu as f32,
            a,
            b,
            c,
            s1: self.scales[i],
            o1: self.offsets[i],
            s2: if two { self.scales[i + 1] } else { 0.0 },
            o2: if two { self.offsets[i + 1] } else { 0 },
        }
    }

    /// The [`QueryTerms`] of query `qi` read through its first plane alone (as if the query had
    /// one): for the bounds of a scan over [`QueryPlanes::first_planes`].
    pub fn terms_first(&self, qi: usize, query: &[f32], mean: &[f32]) -> QueryTerms {
        let qmu = crate::dot_f64(query, mean);
        let (a, b, c) = self.bound_terms_with(self.err_norm_first[qi], qi, qmu);
        let i = qi * self.planes;
        QueryTerms {
            qmu: qmu as f32,
            a,
            b,
            c,
            s1: self.scales[i],
            o1: self.offsets[i],
            s2: 0.0,
            o2: 0,
        }
    }
}

/// `Σᵢ plane[i] · code[i]` (plane as i8, code as u8), exactly: one row against one plane, for
/// the few rows a scan refines.
pub fn plane_dot(plane: &[i8], code: &[u8]) -> i32 {
    let mut out = [0i32; 1];
    codes_block(plane, code, code.len(), &mut out);
    out[0]
}

/// A block of rows' per-row numbers, all the same length.
#[derive(Debug, Clone, Copy)]
pub struct RowBlock<'a> {
    /// Scales `s`.
    pub scale: &'a [f32],
    /// `R`.
    pub resid: &'a [f32],
    /// `E`.
    pub err: &'a [f32],
    /// The rows' f32 norms.
    pub norms: &'a [f32],
}

/// The interval `(upper, lower)` that holds row `j`'s exact key, from the raw kernel outputs
/// of the query's planes (`r2` is ignored with one plane).
#[inline(always)]
pub fn key_interval(kind: KeyKind, t: &QueryTerms, r1: i32, r2: i32, rows: &RowBlock<'_>, j: usize) -> (f32, f32) {
    let est = t.qmu + rows.scale[j] * (t.s1 * (r1 - t.o1) as f32 + t.s2 * (r2 - t.o2) as f32);
    let bound = t.a * rows.resid[j] + t.b * rows.err[j] + t.c;
    match kind {
        KeyKind::Dot => (est + bound, est - bound),
        KeyKind::Cosine => {
            // The unit query and the stored norm are f32-rounded: a few units of rounding
            // relative to (|est| + bound)/‖x‖; 1e-6 times that is over ten times the worst case.
            let inv = 1.0 / rows.norms[j];
            let slack = 1e-6 * (1.0 + (est.abs() + bound) * inv);
            ((est + bound) * inv + slack, (est - bound) * inv - slack)
        }
        KeyKind::NegL2(qn2) => {
            let n2 = rows.norms[j] * rows.norms[j];
            let slack = 16.0 * f32::EPSILON * (n2 + qn2 + 2.0 * (est.abs() + bound)) + f32::MIN_POSITIVE;
            (
                2.0 * (est + bound) - n2 - qn2 + slack,
                2.0 * (est - bound) - n2 - qn2 - slack,
            )
        }
    }
}

/// `hi[j]` = the upper end of [`key_interval`] for every row of the block. It runs for every
/// (row, query) pair, so it is compiled for AVX2 where the CPU has it (the same IEEE operations
/// lane by lane, so the values equal the scalar ones bit for bit).
pub fn upper_bounds(
    kind: KeyKind,
    t: &QueryTerms,
    raw1: &[i32],
    raw2: Option<&[i32]>,
    rows: &RowBlock<'_>,
    hi: &mut [f32],
) {
    let n = hi.len();
    assert!(raw1.len() >= n && raw2.is_none_or(|r| r.len() >= n));
    assert!(rows.scale.len() >= n && rows.resid.len() >= n && rows.err.len() >= n && rows.norms.len() >= n);
    #[cfg(target_arch = "x86_64")]
    if crate::supported(SimdLevel::Avx2Fma) && crate::simd_level() != SimdLevel::Scalar {
        // SAFETY: AVX2 is present (checked just above); lengths were checked.
        return unsafe { upper_bounds_avx2(kind, t, raw1, raw2, rows, hi) };
    }
    upper_bounds_generic(kind, t, raw1, raw2, rows, hi)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn upper_bounds_avx2(
    kind: KeyKind,
    t: &QueryTerms,
    raw1: &[i32],
    raw2: Option<&[i32]>,
    rows: &RowBlock<'_>,
    hi: &mut [f32],
) {
    upper_bounds_generic(kind, t, raw1, raw2, rows, hi)
}

#[inline(always)]
fn upper_bounds_generic(
    kind: KeyKind,
    t: &QueryTerms,
    raw1: &[i32],
    raw2: Option<&[i32]>,
    rows: &RowBlock<'_>,
    hi: &mut [f32],
) {
    // One loop per case, so each is branch-free and vectorises.
    macro_rules! each {
        ($kind:expr, $r2:expr) => {
            for j in 0..hi.len() {
                hi[j] = key_interval($kind, t, raw1[j], $r2(j), rows, j).0;
            }
        };
    }
    match (kind, raw2) {
        (KeyKind::Dot, None) => each!(KeyKind::Dot, |_| t.o2),
        (KeyKind::Dot, Some(r2)) => each!(KeyKind::Dot, |j: usize| r2[j]),
        (KeyKind::Cosine, None) => each!(KeyKind::Cosine, |_| t.o2),
        (KeyKind::Cosine, Some(r2)) => each!(KeyKind::Cosine, |j: usize| r2[j]),
        (KeyKind::NegL2(q), None) => each!(KeyKind::NegL2(q), |_| t.o2),
        (KeyKind::NegL2(q), Some(r2)) => each!(KeyKind::NegL2(q), |j: usize| r2[j]),
    }
}

/// Appends to `out` every `j` whose `hi[j]` reaches `floor` or is NaN (an overflowed bound is
/// kept, never skipped): the rows of a block that a query's collector must see. It runs for
/// every (row, query) pair, so AVX2 compares eight at a time where the CPU has it.
pub fn reaching(hi: &[f32], floor: f32, out: &mut Vec<u32>) {
    #[cfg(target_arch = "x86_64")]
    if crate::supported(SimdLevel::Avx2Fma) && crate::simd_level() != SimdLevel::Scalar {
        // SAFETY: AVX2 is present (checked just above).
        return unsafe { reaching_avx2(hi, floor, out) };
    }
    reaching_scalar(hi, floor, 0, out)
}

/// The reference for [`reaching`], from index `from` on.
pub fn reaching_scalar(hi: &[f32], floor: f32, from: usize, out: &mut Vec<u32>) {
    for (j, &h) in hi.iter().enumerate().skip(from) {
        if h >= floor || h.is_nan() {
            out.push(j as u32);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn reaching_avx2(hi: &[f32], floor: f32, out: &mut Vec<u32>) {
    use std::arch::x86_64::*;
    let f = _mm256_set1_ps(floor);
    let mut j = 0;
    while j + 8 <= hi.len() {
        // "Not less than", unordered true: h >= floor, or h is NaN.
        let v = _mm256_loadu_ps(hi.as_ptr().add(j));
        let mut m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NLT_UQ>(v, f)) as u32;
        while m != 0 {
            out.push(j as u32 + m.trailing_zeros());
            m &= m - 1;
        }
        j += 8;
    }
    reaching_scalar(hi, floor, j, out)
}

/// `out[p * nr + r] = Σᵢ planes[p][i] · codes[r][i]` (planes as i8, codes as u8), exactly, for
/// `np` planes and `nr` rows of `stride` bytes (a multiple of [`CODE_ALIGN`]).
///
/// # Panics
/// If a slice is shorter than its stated shape (a caller bug, never user input).
pub fn codes_block(planes: &[i8], codes: &[u8], stride: usize, out: &mut [i32]) {
    codes_block_at(crate::simd_level(), planes, codes, &[], stride, out)
}

/// [`codes_block`], asking the caches for `next` (the rows a scan will read next) while it
/// works. The kernel spreads those requests over its first pass through `codes`, a whole
/// block ahead of their use: prefetches a few rows ahead within the block came too late once
/// the first pass was short (a batch's first 4 planes of 64), and a 64-query batch read the
/// codes 30 % slower from memory than from L2.
pub fn codes_block_then(planes: &[i8], codes: &[u8], next: &[u8], stride: usize, out: &mut [i32]) {
    codes_block_at(crate::simd_level(), planes, codes, next, stride, out)
}

/// [`codes_block_then`] at an explicit SIMD level (scalar if the CPU lacks it).
pub fn codes_block_at(level: SimdLevel, planes: &[i8], codes: &[u8], next: &[u8], stride: usize, out: &mut [i32]) {
    assert!(
        stride > 0 && stride.is_multiple_of(CODE_ALIGN),
        "stride must be a multiple of {CODE_ALIGN}"
    );
    let np = planes.len() / stride;
    let nr = codes.len() / stride;
    assert_eq!(planes.len(), np * stride, "planes are not a whole number of rows");
    assert_eq!(codes.len(), nr * stride, "codes are not a whole number of rows");
    assert!(out.len() >= np * nr, "output buffer too small");
    debug_assert!(planes.iter().all(|&p| (p as i32).abs() <= PLANE_MAX));
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if crate::supported_codes_avx512() => {
            // SAFETY: AVX-512F/BW are present (checked just above); shapes were checked.
            unsafe { avx512::codes_block(planes, np, codes, next, nr, stride, out) }
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 | SimdLevel::Avx2Fma if crate::supported(SimdLevel::Avx2Fma) => {
            // SAFETY: AVX2 is present (checked just above); shapes were checked.
            unsafe { avx2::codes_block(planes, np, codes, next, nr, stride, out) }
        }
        _ => scalar_codes_block(planes, codes, stride, out),
    }
}

/// The reference: plain integer arithmetic.
pub fn scalar_codes_block(planes: &[i8], codes: &[u8], stride: usize, out: &mut [i32]) {
    let nr = codes.len() / stride;
    for (pi, p) in planes.chunks_exact(stride).enumerate() {
        for (ri, c) in codes.chunks_exact(stride).enumerate() {
            out[pi * nr + ri] = p.iter().zip(c).map(|(&a, &b)| a as i32 * b as i32).sum();
        }
    }
}

/// Asks for the rows a scan needs soon, `n` rows' worth per call from row `r` on: row `r` of
/// `next` (the block after this one) when the caller gave it, else the rows a few tiles ahead
/// in this block. Rows of codes are short (a few cache lines), so the hardware's stream
/// prefetchers see many short streams and fall behind. Measured on AVX2 (Zen 3, 1M × 512, one
/// query): 68 → 42 ms (7.7 → 12.5 GB/s) with 16 rows ahead in the block; 32 and 64 were worse.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_ahead(cp: *const u8, next: &[u8], r: usize, n: usize, nr: usize, stride: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
    const AHEAD_ROWS: usize = 16;
    let (base, from, to) = if next.is_empty() {
        let ahead = r + AHEAD_ROWS;
        (
            cp,
            ahead * stride,
            if ahead + n <= nr { (ahead + n) * stride } else { 0 },
        )
    } else {
        (next.as_ptr(), r * stride, ((r + n) * stride).min(next.len()))
    };
    let mut off = from;
    while off < to {
        // SAFETY: the address lies inside `codes` or `next` (bounded above); prefetches never
        // fault.
        unsafe {
            if next.is_empty() {
                _mm_prefetch::<_MM_HINT_T0>(base.add(off).cast())
            } else {
                _mm_prefetch::<_MM_HINT_T1>(base.add(off).cast())
            }
        };
        off += 64;
    }
}

// Index loops over the tile keep the register layout explicit; iterator forms obscure it.
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2; `p` holds `np·stride` bytes, `c` `nr·stride`, `out` `np·nr`;
    /// `stride` is a multiple of 32; plane values are within ±64.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn codes_block(
        p: &[i8],
        np: usize,
        c: &[u8],
        next: &[u8],
        nr: usize,
        stride: usize,
        out: &mut [i32],
    ) {
        let (pp, cp, op) = (p.as_ptr(), c.as_ptr(), out.as_mut_ptr());
        let mut r = 0;
        while r + 4 <= nr {
            crate::codes::prefetch_ahead(cp, next, r, 4, nr, stride);
            let mut pi = 0;
            while pi + 2 <= np {
                tile::<2, 4>(pp, pi, cp, r, stride, nr, op);
                pi += 2;
            }
            while pi < np {
                tile::<1, 4>(pp, pi, cp, r, stride, nr, op);
                pi += 1;
            }
            r += 4;
        }
        while r < nr {
            for pi in 0..np {
                tile::<1, 1>(pp, pi, cp, r, stride, nr, op);
            }
            r += 1;
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile<const P: usize, const R: usize>(
        pp: *const i8,
        p0: usize,
        cp: *const u8,
        r0: usize,
        stride: usize,
        nr: usize,
        op: *mut i32,
    ) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); R]; P];
        let mut cv = [_mm256_setzero_si256(); R];
        let mut i = 0;
        while i < stride {
            for r in 0..R {
                cv[r] = _mm256_loadu_si256(cp.add((r0 + r) * stride + i).cast());
            }
            for (p, row) in acc.iter_mut().enumerate() {
                let pv = _mm256_loadu_si256(pp.add((p0 + p) * stride + i).cast());
                for r in 0..R {
                    // u8 × i8 → adjacent pairs summed to i16 (never saturates, see the module),
                    // then pairs of i16 summed to i32.
                    let pairs = _mm256_maddubs_epi16(cv[r], pv);
                    row[r] = _mm256_add_epi32(row[r], _mm256_madd_epi16(pairs, ones));
                }
            }
            i += 32;
        }
        for (p, row) in acc.iter().enumerate() {
            for (r, a) in row.iter().enumerate() {
                *op.add((p0 + p) * nr + r0 + r) = hsum(*a);
            }
        }
    }
}

#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX-512F and BW (and VNNI when `vnni`); shapes as in the AVX2 version;
    /// `stride` is a multiple of 64.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn codes_block(
        p: &[i8],
        np: usize,
        c: &[u8],
        next: &[u8],
        nr: usize,
        stride: usize,
        out: &mut [i32],
    ) {
        if crate::supported_vnni() {
            return vnni::codes_block(p, np, c, next, nr, stride, out);
        }
        codes_block_bw(p, np, c, next, nr, stride, out)
    }

    /// The same without VNNI (`vpmaddubsw` + `vpmaddwd`).
    ///
    /// # Safety
    /// As [`codes_block`]'s.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn codes_block_bw(
        p: &[i8],
        np: usize,
        c: &[u8],
        next: &[u8],
        nr: usize,
        stride: usize,
        out: &mut [i32],
    ) {
        let (pp, cp, op) = (p.as_ptr(), c.as_ptr(), out.as_mut_ptr());
        let mut r = 0;
        while r < nr {
            let rr = (nr - r).min(4);
            crate::codes::prefetch_ahead(cp, next, r, 4, nr, stride);
            let mut pi = 0;
            while pi < np {
                let pn = (np - pi).min(4);
                match (pn, rr) {
                    (4, 4) => tile::<4, 4>(pp, pi, cp, r, stride, nr, op),
                    (_, 4) => tile::<1, 4>(pp, pi, cp, r, stride, nr, op),
                    (4, _) => tile::<4, 1>(pp, pi, cp, r, stride, nr, op),
                    _ => tile::<1, 1>(pp, pi, cp, r, stride, nr, op),
                }
                pi += if pn == 4 { 4 } else { 1 };
            }
            r += if rr == 4 { 4 } else { 1 };
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn tile<const P: usize, const R: usize>(
        pp: *const i8,
        p0: usize,
        cp: *const u8,
        r0: usize,
        stride: usize,
        nr: usize,
        op: *mut i32,
    ) {
        let ones = _mm512_set1_epi16(1);
        let mut acc = [[_mm512_setzero_si512(); R]; P];
        let mut cv = [_mm512_setzero_si512(); R];
        let mut i = 0;
        while i < stride {
            for r in 0..R {
                cv[r] = _mm512_loadu_si512(cp.add((r0 + r) * stride + i).cast());
            }
            for (p, row) in acc.iter_mut().enumerate() {
                let pv = _mm512_loadu_si512(pp.add((p0 + p) * stride + i).cast());
                for r in 0..R {
                    let pairs = _mm512_maddubs_epi16(cv[r], pv);
                    row[r] = _mm512_add_epi32(row[r], _mm512_madd_epi16(pairs, ones));
                }
            }
            i += 64;
        }
        store_sums(&acc, p0, r0, nr, op);
    }

    /// Writes each accumulator's lane sum to `out[(p0 + p) * nr + r0 + r]`. A tile of 16
    /// accumulators (4 × 4, 2 × 8, 1 × 16) is reduced all at once (16 vectors to one, 45
    /// instructions instead of 16 reductions of 9: at 512 dimensions a tile's 128 multiply-adds
    /// otherwise pay 144 for their sums).
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn store_sums<const P: usize, const R: usize>(
        acc: &[[__m512i; R]; P],
        p0: usize,
        r0: usize,
        nr: usize,
        op: *mut i32,
    ) {
        if P * R == 16 {
            let mut v = [_mm512_setzero_si512(); 16];
            for (i, x) in v.iter_mut().enumerate() {
                *x = acc[i / R][i % R];
            }
            let sums = reduce16(&v);
            let mut lanes = [0i32; 16];
            _mm512_storeu_si512(lanes.as_mut_ptr().cast(), sums);
            for p in 0..P {
                std::ptr::copy_nonoverlapping(lanes.as_ptr().add(R * p), op.add((p0 + p) * nr + r0), R);
            }
            return;
        }
        for (p, row) in acc.iter().enumerate() {
            for (r, a) in row.iter().enumerate() {
                *op.add((p0 + p) * nr + r0 + r) = _mm512_reduce_add_epi32(*a);
            }
        }
    }

    /// Lane `i` of the result is the sum of the 16 lanes of `v[i]`: a transpose and add, pairs
    /// of 32-bit lanes first, then 64-bit pairs, then 128-bit quarters.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn reduce16(v: &[__m512i; 16]) -> __m512i {
        // Per 128-bit quarter, t[k] holds partial sums of v[2k] (lanes 0, 2) and v[2k+1] (1, 3).
        let mut t = [_mm512_setzero_si512(); 8];
        for k in 0..8 {
            let (a, b) = (v[2 * k], v[2 * k + 1]);
            t[k] = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
        }
        // Per quarter, u[k] holds partial sums of v[4k], v[4k+1], v[4k+2], v[4k+3] in order.
        let mut u = [_mm512_setzero_si512(); 4];
        for k in 0..4 {
            let (c, d) = (t[2 * k], t[2 * k + 1]);
            u[k] = _mm512_add_epi32(_mm512_unpacklo_epi64(c, d), _mm512_unpackhi_epi64(c, d));
        }
        // Quarter j of the result: u[j] summed over its four quarters.
        fold_quarters(fold_quarters(u[0], u[1]), fold_quarters(u[2], u[3]))
    }

    /// `[a₀+a₁, a₂+a₃, b₀+b₁, b₂+b₃]` of the 128-bit quarters of `a` and `b`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn fold_quarters(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi32(
            _mm512_shuffle_i32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b),
        )
    }

    pub(super) mod vnni {
        use std::arch::x86_64::*;

        /// # Safety
        /// As the caller's, plus AVX-512 VNNI.
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        pub(in crate::codes) unsafe fn codes_block(
            p: &[i8],
            np: usize,
            c: &[u8],
            next: &[u8],
            nr: usize,
            stride: usize,
            out: &mut [i32],
        ) {
            let (pp, cp, op) = (p.as_ptr(), c.as_ptr(), out.as_mut_ptr());
            // Sub-blocks of planes × rows whose bytes fit the L1 cache together (16 planes and
            // 32 rows of 512 bytes: 24 KiB), so each tile's loads hit L1: with all 64 planes of
            // a batch (32 KiB) cycled for every 4 rows, they came from L2.
            let fit = |rows: usize| (rows * 512 / stride / 4 * 4).max(4);
            let (pb, rb) = (fit(16), fit(32));
            let mut p0 = 0;
            while p0 < np {
                let p1 = (p0 + pb).min(np);
                let mut r0 = 0;
                while r0 < nr {
                    let r1 = (r0 + rb).min(nr);
                    // Planes in groups of 4 (4 × 4 tiles), then a pair (2 × 8), then one (1 ×
                    // 16): every tile has 16 accumulators, reduced together. A single query has
                    // 2 planes; as 1 × 4 tiles it re-read each row and paid a reduction per sum.
                    let mut pi = p0;
                    while pi < p1 {
                        let pn = match p1 - pi {
                            n if n >= 4 => 4,
                            n if n >= 2 => 2,
                            _ => 1,
                        };
                        let step = 16 / pn;
                        let mut r = r0;
                        while r < r1 {
                            if p0 == 0 && pi == 0 {
                                crate::codes::prefetch_ahead(cp, next, r, step.min(r1 - r), nr, stride);
                            }
                            match (pn, r1 - r >= step) {
                                (4, true) => tile::<4, 4>(pp, pi, cp, r, stride, nr, op),
                                (2, true) => tile::<2, 8>(pp, pi, cp, r, stride, nr, op),
                                (1, true) => tile::<1, 16>(pp, pi, cp, r, stride, nr, op),
                                (4, false) => tile::<4, 1>(pp, pi, cp, r, stride, nr, op),
                                (2, false) => tile::<2, 1>(pp, pi, cp, r, stride, nr, op),
                                _ => tile::<1, 1>(pp, pi, cp, r, stride, nr, op),
                            }
                            r += if r1 - r >= step { step } else { 1 };
                        }
                        pi += pn;
                    }
                    r0 = r1;
                }
                p0 = p1;
            }
        }

        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        #[inline]
        unsafe fn tile<const P: usize, const R: usize>(
            pp: *const i8,
            p0: usize,
            cp: *const u8,
            r0: usize,
            stride: usize,
            nr: usize,
            op: *mut i32,
        ) {
            let mut acc = [[_mm512_setzero_si512(); R]; P];
            let mut cv = [_mm512_setzero_si512(); R];
            let mut i = 0;
            while i < stride {
                for r in 0..R {
                    cv[r] = _mm512_loadu_si512(cp.add((r0 + r) * stride + i).cast());
                }
                for (p, row) in acc.iter_mut().enumerate() {
                    let pv = _mm512_loadu_si512(pp.add((p0 + p) * stride + i).cast());
                    for r in 0..R {
                        // u8 × i8, four products summed into each i32 lane, exactly.
                        row[r] = _mm512_dpbusd_epi32(row[r], cv[r], pv);
                    }
                }
                i += 64;
            }
            super::store_sums(&acc, p0, r0, nr, op);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{dot_f64, supported};
    use rand::{Rng, SeedableRng};

    #[test]
    fn every_level_computes_the_same_integers_as_scalar() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let levels = kernels();
        let skipped: Vec<&str> = ["avx512+vnni", "avx512bw", "avx2"]
            .into_iter()
            .filter(|k| !levels.contains(k))
            .collect();
        eprintln!(
            "code kernels tested: {}; skipped (not on this CPU): {}; scalar is the reference",
            levels.join(", "),
            if skipped.is_empty() {
                "none".to_string()
            } else {
                skipped.join(", ")
            }
        );
        for &stride in &[64usize, 128, 576] {
            for &(np, nr) in &[
                (1usize, 1usize),
                (1, 7),
                (2, 5),
                (3, 9),
                (4, 4),
                (5, 13),
                (64, 37),
                (70, 130),
            ] {
                // Extremes included: codes 0 and 255, planes ±64.
                let planes: Vec<i8> = (0..np * stride)
                    .map(|i| {
                        if i % 17 == 0 {
                            64
                        } else if i % 19 == 0 {
                            -64
                        } else {
                            rng.random_range(-64..=64)
                        }
                    })
                    .collect();
                let codes: Vec<u8> = (0..nr * stride)
                    .map(|i| {
                        if i % 13 == 0 {
                            255
                        } else if i % 23 == 0 {
                            0
                        } else {
                            rng.random()
                        }
                    })
                    .collect();
                let mut want = vec![0i32; np * nr];
                scalar_codes_block(&planes, &codes, stride, &mut want);
                for &level in &levels {
                    let mut got = vec![i32::MIN; np * nr];
                    kernel(level, &planes, &codes, stride, &mut got);
                    assert_eq!(got, want, "{level} stride={stride} np={np} nr={nr}");
                }
            }
        }
        // The worst case for saturation: every pair at 255 · 64.
        let planes = vec![64i8; 64];
        let codes = vec![255u8; 64];
        for &level in &levels {
            let mut got = [0i32];
            kernel(level, &planes, &codes, 64, &mut got);
            assert_eq!(got[0], 64 * 255 * 64, "{level}");
        }
    }

    #[test]
    fn reaching_keeps_what_the_scalar_rule_keeps() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for n in [0usize, 1, 7, 8, 9, 128, 131] {
            let hi: Vec<f32> = (0..n)
                .map(|i| match i % 13 {
                    0 => f32::NAN,
                    1 => 0.5, // exactly the floor
                    2 => f32::INFINITY,
                    3 => f32::NEG_INFINITY,
                    _ => rng.random_range(-1.0..1.0),
                })
                .collect();
            for floor in [0.5f32, -2.0, 2.0, f32::NEG_INFINITY] {
                let (mut got, mut want) = (Vec::new(), Vec::new());
                reaching(&hi, floor, &mut got);
                reaching_scalar(&hi, floor, 0, &mut want);
                assert_eq!(got, want, "n={n} floor={floor}");
            }
        }
    }

    /// Every SIMD kernel of the 8-bit scan this CPU can run (a VNNI machine has the AVX-512BW
    /// one too, which dispatch never picks there).
    fn kernels() -> Vec<&'static str> {
        let mut out = Vec::new();
        if crate::supported_vnni() {
            out.push("avx512+vnni");
        }
        if crate::supported_codes_avx512() {
            out.push("avx512bw");
        }
        if supported(SimdLevel::Avx2Fma) {
            out.push("avx2");
        }
        out
    }

    /// Runs the kernel named by [`kernels`] (shapes as [`codes_block_at`] checks them).
    fn kernel(name: &str, planes: &[i8], codes: &[u8], stride: usize, out: &mut [i32]) {
        let (np, nr) = (planes.len() / stride, codes.len() / stride);
        assert!(out.len() >= np * nr && stride.is_multiple_of(CODE_ALIGN));
        // Half the shapes ask for a next block too (its own rows: only the cache sees it).
        let next = if nr % 2 == 0 { codes } else { &[] };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: each kernel is run only where `kernels` found its CPU features.
        unsafe {
            match name {
                "avx512+vnni" => avx512::vnni::codes_block(planes, np, codes, next, nr, stride, out),
                "avx512bw" => avx512::codes_block_bw(planes, np, codes, next, nr, stride, out),
                "avx2" => avx2::codes_block(planes, np, codes, next, nr, stride, out),
                _ => unreachable!("{name}"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("{name}")
    }

    /// The bound holds on random rows and queries of varied shapes, scales and offsets.
    #[test]
    fn the_exact_dot_product_is_always_within_the_scan_interval() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for trial in 0..200 {
            let dim = [1usize, 3, 17, 64, 100, 512, 768][trial % 7];
            let n = 1 + trial % 23;
            let shift: f32 = [0.0, 0.5, -3.0, 100.0][trial % 4];
            let spread: f32 = [1.0, 1e-3, 50.0, 1e-20][trial % 4];
            let rows: Vec<f32> = (0..n * dim)
                .map(|i| {
                    let mut v = shift + spread * rng.random_range(-1.0f32..1.0);
                    if i % 97 == 3 {
                        v *= 1000.0; // a few huge coordinates
                    }
                    v
                })
                .collect();
            let mu = mean(&rows, dim);
            let stride = code_stride(dim);
            let mut codes = vec![0u8; n * stride];
            let meta: Vec<RowCode> = rows
                .chunks_exact(dim)
                .zip(codes.chunks_exact_mut(stride))
                .map(|(x, c)| encode_row(x, &mu, c))
                .collect();
            let queries: Vec<f32> = (0..3 * dim).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            for planes in 1..=2 {
                let qp = QueryPlanes::new(&queries, dim, planes);
                let mut raw = vec![0i32; 3 * planes * n];
                codes_block(&qp.values, &codes, stride, &mut raw);
                // The scan of a big batch reads the first planes alone, from their own run.
                let mut first_raw = vec![0i32; 3 * n];
                codes_block(&qp.first_planes(), &codes, stride, &mut first_raw);
                let scale: Vec<f32> = meta.iter().map(|m| m.scale).collect();
                let resid: Vec<f32> = meta.iter().map(|m| m.resid).collect();
                let err: Vec<f32> = meta.iter().map(|m| m.err).collect();
                let norms = vec![1f32; n];
                let block = RowBlock {
                    scale: &scale,
                    resid: &resid,
                    err: &err,
                    norms: &norms,
                };
                for qi in 0..3 {
                    let q = &queries[qi * dim..][..dim];
                    let t = qp.terms(qi, q, &mu);
                    for (r, x) in rows.chunks_exact(dim).enumerate() {
                        let r1 = raw[qi * planes * n + r];
                        let r2 = if planes > 1 {
                            raw[(qi * planes + 1) * n + r]
                        } else {
                            t.o2
                        };
                        // The interval the scan uses for an inner-product key.
                        let (hi, lo) = key_interval(KeyKind::Dot, &t, r1, r2, &block, r);
                        let exact = dot_f64(q, x);
                        assert!(
                            lo as f64 <= exact && exact <= hi as f64,
                            "trial {trial} dim {dim} planes {planes}: exact {exact} outside [{lo}, {hi}]"
                        );
                        if planes > 1 {
                            // The scan of a big batch: the first plane alone, from its own kernel
                            // run, then the second plane's product for one row.
                            assert_eq!(first_raw[qi * n + r], r1, "trial {trial}: first plane");
                            let code = &codes[r * stride..][..stride];
                            assert_eq!(plane_dot(&qp.values[(qi * 2 + 1) * stride..][..stride], code), r2);
                            let tf = qp.terms_first(qi, q, &mu);
                            let (hi1, lo1) = key_interval(KeyKind::Dot, &tf, r1, tf.o2, &block, r);
                            assert!(
                                lo1 as f64 <= exact && exact <= hi1 as f64,
                                "trial {trial} dim {dim} first plane: exact {exact} outside [{lo1}, {hi1}]"
                            );
                            assert!(tf.a >= t.a, "trial {trial}: one plane's error is no smaller");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn encoding_is_the_same_on_every_level() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        for dim in [1usize, 7, 64, 515] {
            let x: Vec<f32> = (0..dim).map(|_| rng.random_range(-3.0f32..3.0)).collect();
            let mu: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let (mut a, mut b) = (vec![0u8; code_stride(dim)], vec![0u8; code_stride(dim)]);
            assert_eq!(encode_row(&x, &mu, &mut a), encode_row_generic(&x, &mu, &mut b));
            assert_eq!(a, b, "dim {dim}");
        }
    }

    #[test]
    fn two_planes_bound_far_tighter_than_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let q: Vec<f32> = (0..512).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let one = QueryPlanes::new(&q, 512, 1).err_norm[0];
        let two = QueryPlanes::new(&q, 512, 2).err_norm[0];
        assert!(two * 50.0 < one, "one plane {one}, two {two}");
    }
}
