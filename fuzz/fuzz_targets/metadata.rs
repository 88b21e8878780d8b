//! Metadata tables (`vitrine import`): `metadata::read` (strict) and `read_lenient` (as
//! manifests use it) on JSONL, CSV or Parquet, the format chosen by the first input byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitrine_import::metadata;

fuzz_target!(|data: &[u8]| {
    // vitrine-import contains panics of the Parquet reader (catch_unwind, an error naming the
    // file); libfuzzer-sys's panic hook would abort before that. With the default hook back, a
    // panic that escapes vitrine still aborts the run (libfuzzer-sys aborts on any unwind out
    // of the target), and the panic message is printed either way.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let Some((&kind, body)) = data.split_first() else { return };
    let ext = ["jsonl", "csv", "parquet"][kind as usize % 3];
    let path = vitrine_fuzz::input_file(&format!("m.{ext}"), body);
    if let Ok(t) = metadata::read(&path) {
        for r in &t.rows {
            assert_eq!(r.fields.len(), t.field_names.len());
        }
    }
    if let Ok((t, _bad)) = metadata::read_lenient(&path) {
        for r in &t.rows {
            assert_eq!(r.fields.len(), t.field_names.len());
        }
    }
});
