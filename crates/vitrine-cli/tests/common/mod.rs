//! Helpers shared by the binary's end-to-end tests.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output};

pub fn vitrine(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vitrine"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("VITRINE_STORE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run vitrine")
}

pub fn ok(store: &Path, args: &[&str]) -> String {
    let out = vitrine(store, args);
    assert!(
        out.status.success(),
        "vitrine {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn fails(store: &Path, args: &[&str]) -> String {
    let out = vitrine(store, args);
    assert!(
        !out.status.success(),
        "vitrine {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// Deterministic vectors: row i points mostly along axis i % dim.
pub fn vectors(n: usize, dim: usize) -> Vec<f32> {
    let mut v = vec![0.01f32; n * dim];
    for i in 0..n {
        v[i * dim + i % dim] = 1.0 + (i / dim) as f32 * 0.01;
        v[i * dim + (i * 7 + 3) % dim] += 0.3;
    }
    v
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn clip_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vitrine-clip/tests/fixtures")
        .join(name)
}

/// Copies the files of folder `from` into `to` (created), as a model folder elsewhere.
pub fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
}
