//! Portable reference kernels: the specification the SIMD versions are tested against.

/// `out[q * nr + r] = Σ queries[q][i] · rows[r][i]`, accumulated in f32 in index order.
pub fn scores_block(queries: &[f32], rows: &[f32], dim: usize, out: &mut [f32]) {
    let nr = rows.len() / dim;
    for (qi, q) in queries.chunks_exact(dim).enumerate() {
        for (ri, x) in rows.chunks_exact(dim).enumerate() {
            out[qi * nr + ri] = q.iter().zip(x).map(|(a, b)| a * b).sum();
        }
    }
}
