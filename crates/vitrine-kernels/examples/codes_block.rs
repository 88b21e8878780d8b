//! Time of the 8-bit scan kernel on one thread, the way a search calls it (blocks of 128 rows
//! against every query plane), at each SIMD level the CPU has:
//! `cargo run --release -p vitrine-kernels --example codes_block -- [PLANES] [MROWS] [DIM] [MIB]`
//! (default 64 planes, a batch of 64 queries; 1 million rows; 512 dimensions; 64 MiB of codes,
//! more than the last-level cache, so memory is in the time; 1 MiB fits L2 and times the
//! arithmetic alone).
use std::time::Instant;
use vitrine_kernels::codes::{code_stride, codes_block_at};
use vitrine_kernels::{supported, SimdLevel};

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().expect("a number")).collect();
    let planes = a.first().copied().unwrap_or(64);
    let rows = a.get(1).copied().unwrap_or(1) * 1_000_000;
    let dim = a.get(2).copied().unwrap_or(512);
    let stride = code_stride(dim);
    let mib = a.get(3).copied().unwrap_or(64);
    // VITRINE_NEXT=0: no prefetch of the next block (the kernel's in-block prefetch only).
    let ahead = std::env::var("VITRINE_NEXT").map_or(true, |v| v != "0");
    let buf_rows = ((mib << 20) / stride).max(256);
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let codes: Vec<u8> = (0..buf_rows * stride).map(|_| next() as u8).collect();
    let p: Vec<i8> = (0..planes * stride).map(|_| (next() % 129) as i8 - 64).collect();
    const BLOCK: usize = 128;
    let mut out = vec![0i32; planes * BLOCK];
    for level in [SimdLevel::Avx512, SimdLevel::Avx2Fma] {
        if !supported(level) {
            println!("{level:?}: not on this CPU");
            continue;
        }
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let mut done = 0;
            let mut check = 0i64;
            while done < rows {
                let r0 = done % (buf_rows - BLOCK + 1);
                let next = if r0 + 2 * BLOCK <= buf_rows {
                    &codes[(r0 + BLOCK) * stride..(r0 + 2 * BLOCK) * stride]
                } else {
                    &[]
                };
                let block = &codes[r0 * stride..(r0 + BLOCK) * stride];
                codes_block_at(level, &p, block, if ahead { next } else { &[] }, stride, &mut out);
                check += out[0] as i64;
                done += BLOCK;
            }
            std::hint::black_box(check);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let ms = times[times.len() / 2];
        let products = planes as f64 * rows as f64 * dim as f64;
        println!(
            "{level:?}: {planes} planes x {rows} rows x {dim}: {ms:.1} ms (median of {}), {:.1} G products/s",
            times.len(),
            products / ms / 1e6
        );
    }
}
