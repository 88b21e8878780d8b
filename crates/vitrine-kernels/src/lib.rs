//! Distance kernels and exact top-k selection: the innermost loops of vitrine's search.
//!
//! Everything here works on plain `f32` slices laid out row-major (`rows × dim`). The store
//! hands memory-mapped segment data straight to these functions.
//!
//! * [`scores_block`] computes every dot product between a block of queries and a block of rows.
//!   It is the one hot kernel: a single query is a batch of one, and a batch of many queries
//!   reads each row from memory once per batch (the row block stays in cache while all queries
//!   pass over it).
//! * [`scalar`] holds the reference implementations that define what the SIMD versions must
//!   compute; tests compare the two on random shapes, tails included.
//! * The SIMD level (AVX-512, AVX2+FMA or scalar) is detected once at run time ([`simd_level`]),
//!   so one binary runs everywhere and uses the widest units the CPU has.
//! * [`Collector`] keeps the candidates of one query as score intervals: every row whose upper
//!   bound reaches the k-th best lower bound, so the rows can be re-ranked in f64 afterwards
//!   without losing any that the exact ranking would put in the top k. Intervals come from f32
//!   scores and [`dot_error_bound`], or from 8-bit codes and their proven bound ([`codes`]).
//! * [`codes`] holds the 8-bit scan: row codes with error norms, query planes, and the exact
//!   integer kernel [`codes::codes_block`] (AVX-512 VNNI / AVX-512BW / AVX2 / scalar).
#![deny(missing_docs)]

pub mod codes;
mod collector;
pub mod scalar;
mod simd;

pub use collector::{Candidate, Collector};

use std::sync::OnceLock;

/// The instruction set the kernels use on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    /// AVX-512F (16 f32 lanes), with masked loads for dimension tails.
    Avx512,
    /// AVX2 with FMA (8 f32 lanes).
    Avx2Fma,
    /// Portable scalar code.
    Scalar,
}

impl SimdLevel {
    /// A short name for logs and benchmark reports.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Avx2Fma => "avx2+fma",
            SimdLevel::Scalar => "scalar",
        }
    }
}

/// The SIMD level detected on this CPU (once; later calls are free).
///
/// Setting the environment variable `VITRINE_SIMD=scalar` (or `avx2`) caps the level, which
/// is how benchmarks and tests exercise the fallbacks on a machine that has AVX-512.
pub fn simd_level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var("VITRINE_SIMD").unwrap_or_default();
        detect(&cap)
    })
}

#[cfg(target_arch = "x86_64")]
fn detect(cap: &str) -> SimdLevel {
    if cap == "scalar" {
        return SimdLevel::Scalar;
    }
    if cap != "avx2" && std::arch::is_x86_feature_detected!("avx512f") {
        return SimdLevel::Avx512;
    }
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return SimdLevel::Avx2Fma;
    }
    SimdLevel::Scalar
}

#[cfg(not(target_arch = "x86_64"))]
fn detect(_cap: &str) -> SimdLevel {
    SimdLevel::Scalar
}

/// `out[q * nr + r] = dot(queries[q], rows[r])` for `nq` queries and `nr` rows of `dim` floats.
///
/// # Panics
/// If a slice is shorter than its stated shape (a caller bug, never user input).
pub fn scores_block(queries: &[f32], rows: &[f32], dim: usize, out: &mut [f32]) {
    scores_block_at(simd_level(), queries, rows, dim, out)
}

/// Whether this CPU can run `level` (scalar always can).
pub fn supported(level: SimdLevel) -> bool {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2Fma => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
        SimdLevel::Scalar => true,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Whether the 8-bit code kernels can use AVX-512 (F and BW) on this CPU.
pub fn supported_codes_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the 8-bit code kernels can use AVX-512 VNNI (`vpdpbusd`) on this CPU.
pub fn supported_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        supported_codes_avx512() && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// [`scores_block`] at an explicit SIMD level (falls back to scalar if the CPU lacks it).
pub fn scores_block_at(level: SimdLevel, queries: &[f32], rows: &[f32], dim: usize, out: &mut [f32]) {
    assert!(dim > 0, "dimension must be positive");
    let nq = queries.len() / dim;
    let nr = rows.len() / dim;
    assert_eq!(queries.len(), nq * dim, "queries are not a whole number of rows");
    assert_eq!(rows.len(), nr * dim, "rows are not a whole number of rows");
    assert!(out.len() >= nq * nr, "output buffer too small");
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if supported(level) => {
            // SAFETY: the CPU supports AVX-512F (checked just above); shapes were checked.
            unsafe { simd::avx512::scores_block(queries, nq, rows, nr, dim, out) }
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2Fma if supported(level) => {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above); shapes were checked.
            unsafe { simd::avx2::scores_block(queries, nq, rows, nr, dim, out) }
        }
        _ => scalar::scores_block(queries, rows, dim, out),
    }
}

/// Dot product in f32 with the detected SIMD level.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut out = [0f32];
    scores_block(a, b, a.len(), &mut out);
    out[0]
}

/// Dot product accumulated in f64: the exact re-ranking step uses it.
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Squared Euclidean distance accumulated in f64.
pub fn l2sq_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum()
}

/// Euclidean norm accumulated in f64.
pub fn norm_f64(a: &[f32]) -> f64 {
    dot_f64(a, a).sqrt()
}

/// Euclidean norm in f64 with eight independent sums: within about 1e-16 of [`norm_f64`] but
/// not bit-identical, and several times faster (one sum is a chain of dependent additions).
/// For validation and the stored f32 norms, which every import computes for every row; the
/// exact re-rank keeps [`norm_f64`].
pub fn norm_fast(a: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if supported(SimdLevel::Avx2Fma) && simd_level() != SimdLevel::Scalar {
        // SAFETY: AVX2 is present (checked just above).
        return unsafe { norm_fast_avx2(a) };
    }
    norm_fast_generic(a)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn norm_fast_avx2(a: &[f32]) -> f64 {
    norm_fast_generic(a)
}

#[inline(always)]
fn norm_fast_generic(a: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let whole = a.len() / 8 * 8;
    for c in a[..whole].chunks_exact(8) {
        for (s, &v) in acc.iter_mut().zip(c) {
            *s += v as f64 * v as f64;
        }
    }
    for (s, &v) in acc.iter_mut().zip(&a[whole..]) {
        *s += v as f64 * v as f64;
    }
    acc.iter().sum::<f64>().sqrt()
}

/// An upper bound on `|dot_f32(q, x) - dot_exact(q, x)|` for any row `x` with `‖x‖ ≤ norm_x`.
///
/// Any summation order of `dim` products has a relative error of at most γ(dim+1) times
/// `Σ|qᵢxᵢ| ≤ ‖q‖‖x‖` (Cauchy–Schwarz), with γ(n) = n·u/(1−n·u) and u = 2⁻²⁴. The bound is
/// doubled to cover the few extra roundings around the dot product (normalisation, conversions).
pub fn dot_error_bound(dim: usize, norm_q: f64, norm_x: f64) -> f64 {
    let u = f32::EPSILON as f64 / 2.0;
    let n = (dim + 8) as f64;
    let gamma = n * u / (1.0 - n * u);
    2.0 * gamma * norm_q * norm_x + f32::MIN_POSITIVE as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn simd_levels_agree_with_scalar_on_random_shapes_and_tails() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Only levels this CPU has: an unsupported level would fall back to scalar and compare
        // scalar with scalar. The test says which ran and which it skipped.
        let all = [SimdLevel::Avx512, SimdLevel::Avx2Fma, SimdLevel::Scalar];
        let (levels, skipped): (Vec<SimdLevel>, Vec<SimdLevel>) = all.into_iter().partition(|l| supported(*l));
        eprintln!(
            "SIMD levels tested: {:?}; skipped (not on this CPU): {:?}",
            levels.iter().map(|l| l.name()).collect::<Vec<_>>(),
            skipped.iter().map(|l| l.name()).collect::<Vec<_>>()
        );
        // A machine that must cover a level says so (VITRINE_REQUIRE_SIMD=avx512,avx2+fma).
        for want in std::env::var("VITRINE_REQUIRE_SIMD")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
        {
            assert!(
                levels.iter().any(|l| l.name() == want),
                "VITRINE_REQUIRE_SIMD asks for {want}, which this CPU does not have"
            );
        }
        for &dim in &[1usize, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 512, 515] {
            for &(nq, nr) in &[(1usize, 1usize), (1, 9), (3, 5), (4, 4), (5, 13), (9, 7), (64, 37)] {
                let q = random(&mut rng, nq * dim);
                let x = random(&mut rng, nr * dim);
                let mut want = vec![0f32; nq * nr];
                scalar::scores_block(&q, &x, dim, &mut want);
                for &level in &levels {
                    let mut got = vec![f32::NAN; nq * nr];
                    scores_block_at(level, &q, &x, dim, &mut got);
                    for i in 0..nq * nr {
                        let (qi, ri) = (i / nr, i % nr);
                        let exact = dot_f64(&q[qi * dim..][..dim], &x[ri * dim..][..dim]);
                        let bound =
                            dot_error_bound(dim, norm_f64(&q[qi * dim..][..dim]), norm_f64(&x[ri * dim..][..dim]));
                        assert!(
                            (got[i] as f64 - exact).abs() <= bound,
                            "{level:?} dim={dim} nq={nq} nr={nr} i={i}: {} vs exact {exact} (bound {bound})",
                            got[i]
                        );
                        assert!((got[i] - want[i]).abs() <= 2.0 * bound as f32);
                    }
                }
            }
        }
    }

    #[test]
    fn the_fast_norm_is_the_f64_norm_to_rounding() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [0usize, 1, 7, 8, 9, 512, 515] {
            let a = random(&mut rng, n);
            let (f, r) = (norm_fast(&a), norm_f64(&a));
            assert!((f - r).abs() <= 1e-14 * r, "n={n}: {f} vs {r}");
            assert_eq!(f, norm_fast_generic(&a), "every level sums the same way");
        }
    }

    #[test]
    fn dot_matches_f64_reference() {
        let a = [1.0f32, 2.0, 3.0];
        let b = [4.0f32, -5.0, 6.0];
        assert_eq!(dot(&a, &b), 12.0);
        assert_eq!(dot_f64(&a, &b), 12.0);
        assert_eq!(l2sq_f64(&a, &b), 9.0 + 49.0 + 9.0);
    }
}
