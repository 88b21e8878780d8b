//! SIMD versions of [`crate::scalar::scores_block`].
//!
//! Both use register tiling: a tile of `Q` queries × `R` rows keeps `Q·R` accumulators in
//! registers, so each loaded lane feeds several FMAs. The outer loop walks row tiles and the
//! inner loop walks all queries: a row tile is loaded from memory once and stays in L1 while
//! every query of the batch passes over it (queries stay in L2).

// Index loops over the tile keep the register layout explicit; iterator forms obscure it.
#![allow(clippy::needless_range_loop)]

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX-512F; `q` holds `nq·d` floats, `x` holds `nr·d`, `out` `nq·nr`.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn scores_block(q: &[f32], nq: usize, x: &[f32], nr: usize, d: usize, out: &mut [f32]) {
        let (qp, xp, op) = (q.as_ptr(), x.as_ptr(), out.as_mut_ptr());
        let mut r = 0;
        while r + 4 <= nr {
            let mut qi = 0;
            while qi + 4 <= nq {
                tile::<4, 4>(qp, qi, xp, r, d, nr, op);
                qi += 4;
            }
            while qi < nq {
                tile::<1, 4>(qp, qi, xp, r, d, nr, op);
                qi += 1;
            }
            r += 4;
        }
        while r < nr {
            let mut qi = 0;
            while qi + 4 <= nq {
                tile::<4, 1>(qp, qi, xp, r, d, nr, op);
                qi += 4;
            }
            while qi < nq {
                tile::<1, 1>(qp, qi, xp, r, d, nr, op);
                qi += 1;
            }
            r += 1;
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const Q: usize, const R: usize>(
        qp: *const f32,
        q0: usize,
        xp: *const f32,
        r0: usize,
        d: usize,
        nr: usize,
        op: *mut f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); R]; Q];
        let mut xv = [_mm512_setzero_ps(); R];
        let mut i = 0;
        while i + 16 <= d {
            for r in 0..R {
                xv[r] = _mm512_loadu_ps(xp.add((r0 + r) * d + i));
            }
            for (q, row) in acc.iter_mut().enumerate() {
                let qv = _mm512_loadu_ps(qp.add((q0 + q) * d + i));
                for r in 0..R {
                    row[r] = _mm512_fmadd_ps(qv, xv[r], row[r]);
                }
            }
            i += 16;
        }
        if i < d {
            // Dimension tail: masked loads read only the remaining lanes (zeros elsewhere).
            let m: __mmask16 = ((1u32 << (d - i)) - 1) as u16;
            for r in 0..R {
                xv[r] = _mm512_maskz_loadu_ps(m, xp.add((r0 + r) * d + i));
            }
            for (q, row) in acc.iter_mut().enumerate() {
                let qv = _mm512_maskz_loadu_ps(m, qp.add((q0 + q) * d + i));
                for r in 0..R {
                    row[r] = _mm512_fmadd_ps(qv, xv[r], row[r]);
                }
            }
        }
        for (q, row) in acc.iter().enumerate() {
            for (r, a) in row.iter().enumerate() {
                *op.add((q0 + q) * nr + r0 + r) = _mm512_reduce_add_ps(*a);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2 and FMA; `q` holds `nq·d` floats, `x` `nr·d`, `out` `nq·nr`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn scores_block(q: &[f32], nq: usize, x: &[f32], nr: usize, d: usize, out: &mut [f32]) {
        let (qp, xp, op) = (q.as_ptr(), x.as_ptr(), out.as_mut_ptr());
        let mut r = 0;
        while r + 4 <= nr {
            let mut qi = 0;
            while qi + 2 <= nq {
                tile::<2, 4>(qp, qi, xp, r, d, nr, op);
                qi += 2;
            }
            while qi < nq {
                tile::<1, 4>(qp, qi, xp, r, d, nr, op);
                qi += 1;
            }
            r += 4;
        }
        while r < nr {
            for qi in 0..nq {
                tile::<1, 1>(qp, qi, xp, r, d, nr, op);
            }
            r += 1;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const Q: usize, const R: usize>(
        qp: *const f32,
        q0: usize,
        xp: *const f32,
        r0: usize,
        d: usize,
        nr: usize,
        op: *mut f32,
    ) {
        let mut acc = [[_mm256_setzero_ps(); R]; Q];
        let mut xv = [_mm256_setzero_ps(); R];
        let mut i = 0;
        while i + 8 <= d {
            for r in 0..R {
                xv[r] = _mm256_loadu_ps(xp.add((r0 + r) * d + i));
            }
            for (q, row) in acc.iter_mut().enumerate() {
                let qv = _mm256_loadu_ps(qp.add((q0 + q) * d + i));
                for r in 0..R {
                    row[r] = _mm256_fmadd_ps(qv, xv[r], row[r]);
                }
            }
            i += 8;
        }
        for (q, row) in acc.iter().enumerate() {
            for (r, a) in row.iter().enumerate() {
                let mut s = hsum(*a);
                for j in i..d {
                    s += *qp.add((q0 + q) * d + j) * *xp.add((r0 + r) * d + j);
                }
                *op.add((q0 + q) * nr + r0 + r) = s;
            }
        }
    }
}
