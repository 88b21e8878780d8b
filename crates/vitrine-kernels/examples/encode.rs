//! Time of encoding rows into 8-bit scan codes (what every import pays per row):
//! `cargo run --release -p vitrine-kernels --example encode -- [ROWS] [DIM]`
use std::time::Instant;
use vitrine_kernels::codes::{code_stride, encode_row, mean};

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().expect("a number")).collect();
    let (rows, dim) = (a.first().copied().unwrap_or(200_000), a.get(1).copied().unwrap_or(512));
    // A cheap deterministic pseudo-random fill (no dependency for an example).
    let mut state = 0x9e3779b97f4a7c15u64;
    let x: Vec<f32> = (0..rows * dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let mu = mean(&x, dim);
    let stride = code_stride(dim);
    let mut out = vec![0u8; rows * stride];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let mut check = 0f32;
        for (r, o) in x.chunks_exact(dim).zip(out.chunks_exact_mut(stride)) {
            check += encode_row(r, &mu, o).err;
        }
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(check);
    }
    println!(
        "{rows} rows × {dim}: {:.0} ns per row on one thread (best of 5)",
        best * 1e9 / rows as f64
    );
}
