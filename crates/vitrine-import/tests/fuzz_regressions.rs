//! Inputs found by the fuzz targets (fuzz/, see TESTING.md), each minimized and kept under
//! fuzz/regressions/<target>/ (the first byte there picks the format; the file's bytes follow):
//! they must give an error naming the file, never a panic.

use vitrine_import::metadata;

fn read_as(ext: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(format!("m.{ext}"));
    std::fs::write(&p, bytes).unwrap();
    let strict = metadata::read(&p).unwrap_err().to_string();
    let lenient = metadata::read_lenient(&p).unwrap_err().to_string();
    assert_eq!(strict, lenient);
    assert!(strict.contains("m.parquet"), "{strict}");
    strict
}

/// fuzz/regressions/metadata/parquet-negative-column-offset: a footer whose column chunk has a
/// negative offset made the Parquet reader panic ("column start and length should not be
/// negative") while reading the rows. Its footer also has a mistyped field, which the Thrift
/// guard now refuses first; either way it is an error naming the file, not a panic.
#[test]
fn a_parquet_column_chunk_outside_the_file_is_an_error_not_a_panic() {
    let input = include_bytes!("../../../fuzz/regressions/metadata/parquet-negative-column-offset");
    assert_eq!(input[0] % 3, 2, "a Parquet input");
    let e = read_as("parquet", &input[1..]);
    assert!(
        e.contains("not a readable Parquet file")
            && (e.contains("outside the file") || e.contains("where Parquet has type")),
        "{e}"
    );
}

/// fuzz/regressions/metadata/parquet-definition-levels-out-of-bounds: damaged page data made the
/// Arrow bit-chunk iterator under the Parquet reader's definition-level decoding panic
/// ("offset + len out of bounds"); the reader's panics are now contained and reported.
#[test]
fn a_panic_of_the_parquet_reader_is_an_error_naming_the_file() {
    let input = include_bytes!("../../../fuzz/regressions/metadata/parquet-definition-levels-out-of-bounds");
    assert_eq!(input[0] % 3, 2, "a Parquet input");
    let e = read_as("parquet", &input[1..]);
    assert!(e.contains("not a readable Parquet file"), "{e}");
}

/// fuzz/regressions/metadata/parquet-thrift-skip-hang: a page header claiming a list of 2^31
/// fields made the Parquet reader's Thrift skip spin on empty reads at the end of the file for
/// minutes; reading past the end is now an error, so the file is refused at once.
#[test]
fn a_parquet_page_header_that_claims_more_than_the_file_holds_is_refused_not_spun_on() {
    let e = read_parquet_within_a_minute(include_bytes!(
        "../../../fuzz/regressions/metadata/parquet-thrift-skip-hang"
    ));
    assert!(
        e.contains("not a readable Parquet file") || e.contains("Parquet"),
        "{e}"
    );
}

/// fuzz/regressions/metadata/parquet-bool-list-skip-spin (found by the hour-long run): a footer
/// with unknown fields holding lists of booleans that claim up to 2^31 elements. parquet 60.1's
/// Thrift skip counts through such a list without consuming a byte (1 s of CPU per list on this
/// 4 KB file, a timeout under the fuzzer); the file is now refused before parquet reads it.
#[test]
fn a_parquet_footer_with_a_huge_list_of_booleans_is_refused_before_the_reader_spins_on_it() {
    let e = read_parquet_within_a_minute(include_bytes!(
        "../../../fuzz/regressions/metadata/parquet-bool-list-skip-spin"
    ));
    // Named by the guard (the reader never saw the file), with where the collection is.
    assert!(
        e.contains("not a readable Parquet file") && e.contains("booleans (claimed size"),
        "{e}"
    );
}

/// fuzz/regressions/metadata/parquet-bool-map-behind-stop-nibble (found by the hour-long run
/// after the guard above): a field header whose type nibble is 0 under a non-zero delta. parquet
/// reads any type 0 as the end of the struct; the guard read only a whole 0 byte so, and, out of
/// step with parquet from there, missed a map of booleans claiming 241 million entries that
/// parquet then skipped (1.2 s of CPU in the release binary, 12 s under the fuzzer). The guard
/// now ends a struct where parquet does, and knows parquet's field types (a field it decodes by
/// its own type whatever the bytes claim would otherwise put the two out of step as well).
#[test]
fn a_parquet_footer_read_out_of_step_is_refused_before_the_reader_spins_behind_it() {
    let e = read_parquet_within_a_minute(include_bytes!(
        "../../../fuzz/regressions/metadata/parquet-bool-map-behind-stop-nibble"
    ));
    assert!(
        e.contains("not a readable Parquet file") && e.contains("map with booleans (claimed size 241356298)"),
        "{e}"
    );
}

/// Reads a Parquet regression input on a thread of its own: a hang fails the test by its
/// deadline instead of holding the suite.
fn read_parquet_within_a_minute(input: &'static [u8]) -> String {
    assert_eq!(input[0] % 3, 2, "a Parquet input");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(read_as("parquet", &input[1..])).unwrap());
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("reading the file did not finish within 60 s")
}
