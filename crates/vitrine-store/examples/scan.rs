//! The 8-bit scan against the f32 scan on an existing store, in process (for profiling the
//! store's search without the engine and CLI around it):
//!
//! ```sh
//! cargo run --release -p vitrine-store --example scan -- STORE COLLECTION QUERIES.npy BATCH [REPEAT]
//! ```
use std::time::Instant;
use vitrine_store::{ScanMode, SearchRequest, Selection, Store};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let [_, store, name, npy, batch, ..] = &a[..] else {
        eprintln!("usage: scan STORE COLLECTION QUERIES.npy BATCH [REPEAT]");
        std::process::exit(2);
    };
    let batch: usize = batch.parse().expect("BATCH");
    let repeat: usize = a.get(5).map_or(9, |r| r.parse().expect("REPEAT"));
    let snap = Store::open(std::path::Path::new(store))
        .unwrap()
        .snapshot(name)
        .unwrap();
    let dim = snap.schema().dim;
    // A plain little-endian f32 .npy: the header length sits at bytes 8..10 (format 1.0).
    let bytes = std::fs::read(npy).unwrap();
    let start = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let q: Vec<f32> = bytes[start..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    for scan in [ScanMode::Codes, ScanMode::Float, ScanMode::Codes, ScanMode::Float] {
        let mut ms = Vec::new();
        let mut last = None;
        for i in 0..repeat {
            let at = (i * batch) % (q.len() / dim - batch + 1);
            let req = SearchRequest {
                queries: q[at * dim..(at + batch) * dim].to_vec(),
                k: Some(20),
                threshold: None,
                selection: Selection::default(),
                scan,
            };
            let t = Instant::now();
            let r = snap.search(&req).unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            last = Some(r);
        }
        ms.sort_by(f64::total_cmp);
        let s = last.unwrap().stats;
        println!(
            "{scan:?}: median {:.1} ms; survivors/query {:.0}, f64 re-ranked/query {:.1}, fallbacks {}",
            ms[ms.len() / 2],
            s.code_survivors as f64 / batch as f64,
            s.candidates_reranked as f64 / batch as f64,
            s.code_fallbacks
        );
    }
}
