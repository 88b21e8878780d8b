//! A guard in front of the `parquet` crate's Thrift decoder, for files from outside.
//!
//! parquet 60.1 skips a Thrift field it does not know by walking it. For a list, set or map of
//! booleans it loops over the claimed number of elements (up to 2³¹) but consumes no bytes for
//! them, although each is one byte on the wire: a 4 KB file with a few such fields kept it busy
//! for minutes (found by fuzzing, `fuzz/regressions/metadata/parquet-bool-list-skip-spin`; the
//! same walk then misreads every byte after such a list). Parquet's own structures have no
//! collections of booleans in the footer or in page headers, so a file that has one is refused
//! here, after a walk of the compact protocol that reads every byte once. Anything else this walk
//! cannot make sense of is left to parquet, which reads it the same way up to that point and
//! fails there itself.

/// Why the walk ended early.
enum Stop {
    /// The bytes do not follow the compact protocol (truncated, unknown type): parquet's to report.
    Malformed,
    /// A collection of booleans that parquet would spin on: the reason, for the error.
    Refused(String),
}

// Compact-protocol type codes.
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
const UUID: u8 = 13;
/// parquet's own skip depth.
const MAX_DEPTH: u32 = 64;

struct Walk<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Walk<'_> {
    fn byte(&mut self) -> Result<u8, Stop> {
        let v = *self.b.get(self.pos).ok_or(Stop::Malformed)?;
        self.pos += 1;
        Ok(v)
    }

    fn varint(&mut self) -> Result<u64, Stop> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift.min(63);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Stop::Malformed)
    }

    fn skip(&mut self, n: u64) -> Result<(), Stop> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.b.len())
            .ok_or(Stop::Malformed)?;
        self.pos = end;
        Ok(())
    }

    /// One value of type `ty` (a boolean struct field has no bytes: its value is in the type).
    fn value(&mut self, ty: u8, depth: u32) -> Result<(), Stop> {
        if depth == 0 {
            return Err(Stop::Malformed);
        }
        match ty {
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            BYTE => self.skip(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.skip(8),
            UUID => self.skip(16),
            BINARY => {
                let n = self.varint()?;
                self.skip(n)
            }
            STRUCT => self.structure(depth, |_, _, _| Ok(false)),
            LIST | SET => {
                let header = self.byte()?;
                if header == 0 {
                    return Ok(()); // an empty list, as some writers put it
                }
                let elem = header & 0x0f;
                let n = match header >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                if n > 0 && matches!(elem, BOOL_TRUE | BOOL_FALSE) {
                    return Err(Stop::Refused(format!(
                        "a Thrift list of booleans (claimed size {n}) at byte {}",
                        self.pos
                    )));
                }
                for _ in 0..n {
                    self.value(elem, depth - 1)?;
                }
                Ok(())
            }
            MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                let (k, v) = (kv >> 4, kv & 0x0f);
                if [k, v].iter().any(|t| matches!(*t, BOOL_TRUE | BOOL_FALSE)) {
                    return Err(Stop::Refused(format!(
                        "a Thrift map with booleans (claimed size {n}) at byte {}",
                        self.pos
                    )));
                }
                for _ in 0..n {
                    self.value(k, depth - 1)?;
                    self.value(v, depth - 1)?;
                }
                Ok(())
            }
            _ => Err(Stop::Malformed),
        }
    }

    /// A struct's fields up to its stop byte; `field(id, type, walk)` may read a field's value
    /// itself (returning `true`) or leave it to the walk (`false`).
    fn structure(
        &mut self,
        depth: u32,
        mut field: impl FnMut(i16, u8, &mut Self) -> Result<bool, Stop>,
    ) -> Result<(), Stop> {
        let mut id = 0i16;
        loop {
            let header = self.byte()?;
            if header == 0 {
                return Ok(());
            }
            let ty = header & 0x0f;
            id = match header >> 4 {
                0 => {
                    let z = self.varint()?;
                    i16::try_from((z >> 1) as i64 ^ -((z & 1) as i64)).map_err(|_| Stop::Malformed)?
                }
                delta => id.checked_add(i16::from(delta)).ok_or(Stop::Malformed)?,
            };
            if !field(id, ty, self)? {
                self.value(ty, depth - 1)?;
            }
        }
    }
}

/// Checks the footer of the Parquet file `bytes` (its Thrift `FileMetaData`). `Err` names what
/// parquet would spin on; `Ok` when there is nothing of the kind, or no footer to speak of.
pub(crate) fn check_footer(bytes: &[u8]) -> Result<(), String> {
    let n = bytes.len();
    if n < 12 || &bytes[n - 4..] != b"PAR1" {
        return Ok(()); // not Parquet, or an encrypted footer: parquet refuses it itself
    }
    let len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    let Some(start) = (n - 8).checked_sub(len) else {
        return Ok(());
    };
    let mut w = Walk {
        b: &bytes[start..n - 8],
        pos: 0,
    };
    match w.value(STRUCT, MAX_DEPTH) {
        Err(Stop::Refused(why)) => Err(format!("its footer (at byte {start}) holds {why}")),
        _ => Ok(()),
    }
}

/// Checks the page headers of the column chunk at `start..end` of `bytes`, page after page (a
/// header, then its `compressed_page_size` bytes of data). Returns how many headers it walked,
/// and whether they tiled the chunk exactly (`false`: it stopped where parquet will fail).
pub(crate) fn check_pages(bytes: &[u8], start: usize, end: usize) -> Result<(usize, bool), String> {
    let mut pos = start;
    let mut pages = 0;
    while pos < end.min(bytes.len()) {
        let mut w = Walk { b: bytes, pos };
        let mut data = None;
        let walked = w.structure(MAX_DEPTH, |id, ty, w| {
            if id == 3 && ty == I32 {
                let z = w.varint()?;
                data = Some((z >> 1) as i64 ^ -((z & 1) as i64));
                return Ok(true);
            }
            Ok(false)
        });
        match walked {
            Err(Stop::Refused(why)) => return Err(format!("the page header at byte {pos} holds {why}")),
            Err(Stop::Malformed) => return Ok((pages, false)),
            Ok(()) => pages += 1,
        }
        match data.and_then(|d| usize::try_from(d).ok()) {
            Some(d) => pos = w.pos.saturating_add(d),
            None => return Ok((pages, false)),
        }
    }
    Ok((pages, pos == end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer(meta: &[u8]) -> Vec<u8> {
        let mut f = b"PAR1".to_vec();
        f.extend_from_slice(meta);
        f.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        f.extend_from_slice(b"PAR1");
        f
    }

    #[test]
    fn a_list_of_booleans_is_refused_and_ordinary_fields_pass() {
        // field 1: i32 2; field 2: binary "ab"; field 3: list of 2 i64; field 4: empty struct.
        let plain = [
            0x15, 0x04, 0x18, 0x02, b'a', b'b', 0x19, 0x26, 0x02, 0x04, 0x1c, 0x00, 0x00,
        ];
        assert!(check_footer(&footer(&plain)).is_ok());
        // field 1: a list (size nibble 15, then a varint 2^31 - 1) of booleans (type 1).
        let spin = [0x19, 0xf1, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00];
        let e = check_footer(&footer(&spin)).unwrap_err();
        assert!(e.contains("list of booleans (claimed size 2147483647)"), "{e}");
        // The same inside a nested struct, and as a map's values.
        let nested = [0x1c, 0x29, 0x32, 0x01, 0x02, 0x03, 0x00, 0x00];
        assert!(check_footer(&footer(&nested)).unwrap_err().contains("claimed size 3"));
        let map = [0x1b, 0x02, 0x51, 0x02, 0x01, 0x04, 0x01, 0x00];
        assert!(check_footer(&footer(&map))
            .unwrap_err()
            .contains("map with booleans (claimed size 2)"));
        // Truncated or unknown bytes are parquet's to report.
        assert!(check_footer(&footer(&[0x19, 0xf5, 0xff])).is_ok());
        assert!(check_footer(b"not parquet").is_ok());
    }

    #[test]
    fn page_headers_are_walked_one_after_another() {
        // Header: field 1 i32 0, field 2 i32 3, field 3 (compressed size) i32 3; stop; 3 bytes.
        let page = [0x15, 0x00, 0x15, 0x06, 0x15, 0x06, 0x00, 9, 9, 9];
        let mut chunk = page.to_vec();
        chunk.extend_from_slice(&page);
        assert_eq!(check_pages(&chunk, 0, chunk.len()), Ok((2, true)));
        // The second header gains a list of booleans (field 4).
        let mut bad = page.to_vec();
        bad.extend_from_slice(&[0x15, 0x00, 0x15, 0x06, 0x15, 0x06, 0x19, 0x11, 0x01, 0x00, 9, 9, 9]);
        let e = check_pages(&bad, 0, bad.len()).unwrap_err();
        assert!(
            e.contains("page header at byte 10") && e.contains("claimed size 1"),
            "{e}"
        );
    }

    /// What a real writer produces (several row groups, several pages per chunk, dictionary
    /// pages, page statistics, nulls, a boolean column) passes, and the walk follows every page
    /// header to the exact end of every column chunk.
    #[test]
    fn the_parquet_writers_files_pass_and_every_page_is_walked() {
        use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
        use parquet::file::properties::{EnabledStatistics, WriterProperties};
        use std::sync::Arc;
        let n = 400;
        let day: ArrayRef = Arc::new(StringArray::from(
            (0..n).map(|i| format!("2023-11-{:02}", 19 + i % 5)).collect::<Vec<_>>(),
        ));
        let count: ArrayRef = Arc::new(Int64Array::from(
            (0..n).map(|i| (i % 7 != 0).then_some(i as i64)).collect::<Vec<_>>(),
        ));
        let flag: ArrayRef = Arc::new(BooleanArray::from(
            (0..n).map(|i| (i % 11 != 0).then_some(i % 2 == 0)).collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_from_iter([("day", day), ("count", count), ("flag", flag)]).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .set_data_page_row_count_limit(16)
            .set_write_batch_size(16)
            .set_statistics_enabled(EnabledStatistics::Page)
            .build();
        let mut bytes = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        let meta = w.close().unwrap();
        assert!(check_footer(&bytes).is_ok());
        let mut chunks = 0;
        for rg in meta.row_groups() {
            for c in rg.columns() {
                let start = c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset()) as usize;
                let (pages, complete) = check_pages(&bytes, start, start + c.compressed_size() as usize).unwrap();
                assert!(
                    complete && pages >= 2,
                    "{:?}: {pages} pages, complete: {complete}",
                    c.column_path()
                );
                chunks += 1;
            }
        }
        assert_eq!(chunks, 4 * 3);
    }
}
