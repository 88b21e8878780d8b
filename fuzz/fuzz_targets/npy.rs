//! `.npy` vector files (`vitrine import`): `Npy::open` validates the header against the file,
//! then every row is read (first, last, and all in chunks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitrine_import::npy::Npy;

fuzz_target!(|data: &[u8]| {
    let path = vitrine_fuzz::input_file("v.npy", data);
    if let Ok(n) = Npy::open(&path) {
        let (rows, dim) = (n.rows(), n.dim());
        assert!(dim > 0);
        let mut out = Vec::new();
        if rows > 0 {
            n.read_rows(0..1, &mut out);
            assert_eq!(out.len(), dim);
            n.read_rows(rows - 1..rows, &mut out);
            assert_eq!(out.len(), dim);
        }
        let mut at = 0;
        while at < rows {
            let end = (at + 64).min(rows);
            n.read_rows(at..end, &mut out);
            assert_eq!(out.len(), (end - at) * dim);
            at = end;
        }
    }
});
