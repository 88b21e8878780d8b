//! `vitrine index --manifest`: `index::inputs_from_manifest` on a CSV or JSONL manifest (first
//! input byte: format, and whether `--source` is given) in a folder holding a few files the
//! manifest can name (`a.jpg`, `sub/b.png`, a folder `sub`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = vitrine_fuzz::scratch().join("manifest");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a.jpg"), b"\xff\xd8\xff\xd9").unwrap();
        std::fs::write(d.join("sub/b.png"), b"\x89PNG\r\n\x1a\n").unwrap();
        d
    });
    let Some((&kind, body)) = data.split_first() else { return };
    let path = dir.join(if kind & 1 == 0 { "m.csv" } else { "m.jsonl" });
    std::fs::write(&path, body).unwrap();
    let source = (kind & 2 != 0).then_some("fuzz");
    if let Ok(plan) = vitrine_engine::index::inputs_from_manifest(&path, source) {
        for i in &plan.inputs {
            assert_eq!(i.fields.len(), plan.field_names.len());
        }
        for f in &plan.failures {
            let _ = f.ledger_entry(plan.scope.tag());
        }
    }
});
