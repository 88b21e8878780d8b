//! A guard in front of the `parquet` crate's Thrift decoder, for files from outside.
//!
//! parquet 60.1 skips a Thrift field it does not know by walking it. For a list, set or map of
//! booleans it loops over the claimed number of elements (up to 2³¹) but consumes no bytes for
//! them, although each is one byte on the wire: a 4 KB file with a few such fields kept it busy
//! for minutes (found by fuzzing, `fuzz/regressions/metadata/parquet-bool-list-skip-spin`).
//! Parquet's own structures have no collections of booleans in the footer or in page headers, so
//! a file that has one is refused here, after a walk that reads every byte once.
//!
//! The walk must see the bytes exactly as parquet will. parquet decodes a field it knows by the
//! type Parquet gives it, whatever type the bytes claim; a walk by the claimed types alone fell
//! out of step with it on a field whose claimed type was wrong and missed a spin further on
//! (`parquet-bool-list-behind-mistyped-field`). So the walk knows the field types of every
//! structure parquet 60.1 reads from a footer or a page header ([`want`]) and refuses a known
//! field whose claimed type differs (no Parquet writer produces one), as well as bytes it cannot
//! follow at all: where the two agree on every known field, parquet's decoding and its skipping
//! consume exactly the bytes this walk does.

/// Why the walk ended early.
enum Stop {
    /// The bytes do not follow the compact protocol (truncated, unknown type) at this offset.
    Malformed(usize),
    /// A collection of booleans that parquet would spin on, or a mistyped field: the reason.
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

/// The Thrift structures parquet 60.1 decodes from a footer (`FileMetaData`) and from page
/// headers (`PageHeader`), named as in `parquet.thrift`. `Opaque` is a structure whose fields
/// parquet does not decode (an empty union member, or anything inside a skipped field).
#[derive(Debug, Clone, Copy, PartialEq)]
enum S {
    FileMetaData,
    SchemaElement,
    LogicalType,
    TimeUnit,
    DecimalType,
    TimeType,
    IntType,
    VariantType,
    GeometryType,
    GeographyType,
    ColumnOrder,
    KeyValue,
    RowGroup,
    SortingColumn,
    ColumnChunk,
    ColumnMetaData,
    Statistics,
    PageEncodingStats,
    SizeStatistics,
    GeospatialStatistics,
    BoundingBox,
    PageHeader,
    DataPageHeader,
    DictionaryPageHeader,
    DataPageHeaderV2,
    Opaque,
}

/// What parquet reads for a field it knows.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// A value of this compact type (`BYTE`, `I16`, `I32`, `I64`, `DOUBLE`, `BINARY`).
    Value(u8),
    /// A boolean (its value is in the field header).
    Bool,
    /// A structure.
    Struct(S),
    /// A list of values of a compact type (structures of the given kind when `STRUCT`).
    List(u8, S),
}

/// The fields of `s` that parquet 60.1 decodes by their Parquet type (built without its
/// `encryption` feature, as here); every other field it skips by the type the bytes claim.
/// Taken from its readers: the `thrift_struct!`/`thrift_union!` definitions and the hand-written
/// `FileMetaData`, `RowGroup`, `ColumnChunk` and `ColumnMetaData` readers (which skip
/// `RowGroup` 6 and `ColumnMetaData` 3 and 8).
fn want(s: S, id: i16) -> Option<Want> {
    use Want::{Bool, List, Struct, Value};
    use S::*;
    Some(match (s, id) {
        (FileMetaData, 1) => Value(I32),
        (FileMetaData, 2) => List(STRUCT, SchemaElement),
        (FileMetaData, 3) => Value(I64),
        (FileMetaData, 4) => List(STRUCT, RowGroup),
        (FileMetaData, 5) => List(STRUCT, KeyValue),
        (FileMetaData, 6) => Value(BINARY),
        (FileMetaData, 7) => List(STRUCT, ColumnOrder),
        (SchemaElement, 1..=3 | 5..=9) => Value(I32),
        (SchemaElement, 4) => Value(BINARY),
        (SchemaElement, 10) => Struct(LogicalType),
        (LogicalType, 1..=4 | 6 | 11..=15 | 19) => Struct(Opaque),
        (LogicalType, 5) => Struct(DecimalType),
        (LogicalType, 7 | 8) => Struct(TimeType),
        (LogicalType, 10) => Struct(IntType),
        (LogicalType, 16) => Struct(VariantType),
        (LogicalType, 17) => Struct(GeometryType),
        (LogicalType, 18) => Struct(GeographyType),
        (TimeUnit | ColumnOrder, 1..=3) => Struct(Opaque),
        (DecimalType, 1 | 2) => Value(I32),
        (TimeType, 1) => Bool,
        (TimeType, 2) => Struct(TimeUnit),
        (IntType, 1) | (VariantType, 1) => Value(BYTE),
        (IntType, 2) => Bool,
        (GeometryType | GeographyType, 1) => Value(BINARY),
        (GeographyType, 2) => Value(I32),
        (KeyValue, 1 | 2) => Value(BINARY),
        (RowGroup, 1) => List(STRUCT, ColumnChunk),
        (RowGroup, 2 | 3 | 5) => Value(I64),
        (RowGroup, 4) => List(STRUCT, SortingColumn),
        (RowGroup, 7) => Value(I16),
        (SortingColumn, 1) => Value(I32),
        (SortingColumn, 2 | 3) => Bool,
        (ColumnChunk, 1) => Value(BINARY),
        (ColumnChunk, 2 | 4 | 6) => Value(I64),
        (ColumnChunk, 3) => Struct(ColumnMetaData),
        (ColumnChunk, 5 | 7) => Value(I32),
        (ColumnMetaData, 1 | 4 | 15) => Value(I32),
        (ColumnMetaData, 2) => List(I32, Opaque),
        (ColumnMetaData, 5..=7 | 9..=11 | 14) => Value(I64),
        (ColumnMetaData, 12) => Struct(Statistics),
        (ColumnMetaData, 13) => List(STRUCT, PageEncodingStats),
        (ColumnMetaData, 16) => Struct(SizeStatistics),
        (ColumnMetaData, 17) => Struct(GeospatialStatistics),
        (Statistics, 1 | 2 | 5 | 6) => Value(BINARY),
        (Statistics, 3 | 4 | 9) => Value(I64),
        (Statistics, 7 | 8) => Bool,
        (PageEncodingStats, 1..=3) => Value(I32),
        (SizeStatistics, 1) => Value(I64),
        (SizeStatistics, 2 | 3) => List(I64, Opaque),
        (GeospatialStatistics, 1) => Struct(BoundingBox),
        (GeospatialStatistics, 2) => List(I32, Opaque),
        (BoundingBox, 1..=8) => Value(DOUBLE),
        (PageHeader, 1..=4) => Value(I32),
        (PageHeader, 5) => Struct(DataPageHeader),
        (PageHeader, 6) => Struct(Opaque),
        (PageHeader, 7) => Struct(DictionaryPageHeader),
        (PageHeader, 8) => Struct(DataPageHeaderV2),
        (DataPageHeader, 1..=4) => Value(I32),
        (DataPageHeader, 5) | (DataPageHeaderV2, 8) => Struct(Statistics),
        (DictionaryPageHeader, 1 | 2) => Value(I32),
        (DictionaryPageHeader, 3) => Bool,
        (DataPageHeaderV2, 1..=6) => Value(I32),
        (DataPageHeaderV2, 7) => Bool,
        _ => return None,
    })
}

struct Walk<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Walk<'_> {
    fn malformed(&self) -> Stop {
        Stop::Malformed(self.pos)
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        let v = *self.b.get(self.pos).ok_or(self.malformed())?;
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
        Err(self.malformed())
    }

    fn skip(&mut self, n: u64) -> Result<(), Stop> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.b.len())
            .ok_or(self.malformed())?;
        self.pos = end;
        Ok(())
    }

    /// A list or set header: `(element type, size)`.
    fn list_header(&mut self) -> Result<(u8, u64), Stop> {
        let header = self.byte()?;
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
        Ok((elem, n))
    }

    /// One value of type `ty`, as parquet skips it (a boolean struct field has no bytes: its
    /// value is in the type).
    fn value(&mut self, ty: u8, depth: u32) -> Result<(), Stop> {
        if depth == 0 {
            return Err(self.malformed());
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
            STRUCT => self.structure(S::Opaque, depth, |_, _, _| Ok(false)),
            LIST | SET => {
                let (elem, n) = self.list_header()?;
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
            _ => Err(self.malformed()),
        }
    }

    /// A field of `s` that parquet decodes as `w`, claimed to be of type `ty`.
    fn known(&mut self, s: S, id: i16, ty: u8, w: Want, depth: u32) -> Result<(), Stop> {
        let claimed = match w {
            Want::Value(t) => t,
            Want::Bool => BOOL_TRUE,
            Want::Struct(_) => STRUCT,
            Want::List(..) => LIST,
        };
        let matches = ty == claimed || (matches!(w, Want::Bool) && ty == BOOL_FALSE);
        if !matches {
            return Err(Stop::Refused(format!(
                "field {id} of a {s:?} with Thrift type {ty} where Parquet has type {claimed}, at byte {}",
                self.pos
            )));
        }
        match w {
            Want::Value(t) => self.value(t, depth),
            Want::Bool => Ok(()),
            Want::Struct(k) => self.structure(k, depth, |_, _, _| Ok(false)),
            Want::List(elem, k) => {
                let at = self.pos;
                let (got, n) = self.list_header()?;
                if n > 0 && got != elem {
                    return Err(Stop::Refused(format!(
                        "field {id} of a {s:?}, a list of Thrift type {got} where Parquet has type {elem}, at byte {at}"
                    )));
                }
                for _ in 0..n {
                    if depth <= 1 {
                        return Err(self.malformed());
                    }
                    match elem {
                        STRUCT => self.structure(k, depth - 1, |_, _, _| Ok(false))?,
                        t => self.value(t, depth - 1)?,
                    }
                }
                Ok(())
            }
        }
    }

    /// A structure of kind `s` up to its stop byte; `field(id, type, walk)` may read a field's
    /// value itself (returning `true`) or leave it to the walk (`false`).
    fn structure(
        &mut self,
        s: S,
        depth: u32,
        mut field: impl FnMut(i16, u8, &mut Self) -> Result<bool, Stop>,
    ) -> Result<(), Stop> {
        if depth == 0 {
            return Err(self.malformed());
        }
        let mut id = 0i16;
        loop {
            let header = self.byte()?;
            // Type 0 ends the struct whatever the high nibble says, as parquet reads it.
            if header & 0x0f == 0 {
                return Ok(());
            }
            let ty = header & 0x0f;
            id = match header >> 4 {
                0 => {
                    let z = self.varint()?;
                    i16::try_from((z >> 1) as i64 ^ -((z & 1) as i64)).map_err(|_| self.malformed())?
                }
                delta => id.checked_add(i16::from(delta)).ok_or(self.malformed())?,
            };
            if field(id, ty, self)? {
                continue;
            }
            match want(s, id) {
                Some(w) => self.known(s, id, ty, w, depth - 1)?,
                None => self.value(ty, depth - 1)?,
            }
        }
    }
}

/// Checks the footer of the Parquet file `bytes` (its Thrift `FileMetaData`). `Err` names what
/// parquet could spin on, a mistyped field, or where the bytes stop making sense; `Ok` when the
/// walk reads the footer through, or there is no footer to speak of (parquet refuses that).
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
    w.structure(S::FileMetaData, MAX_DEPTH, |_, _, _| Ok(false))
        .map_err(|e| format!("its footer (at byte {start}) holds {}", reason(e)))
}

fn reason(e: Stop) -> String {
    match e {
        Stop::Refused(why) => why,
        Stop::Malformed(at) => format!("bytes that are not Thrift's compact protocol at byte {at}"),
    }
}

/// Checks the page headers of the column chunk at `start..end` of `bytes`, page after page (a
/// header, then its `compressed_page_size` bytes of data). Returns how many headers it walked,
/// and whether they tiled the chunk exactly (`false`: a page's size ran past the chunk, where
/// parquet stops).
pub(crate) fn check_pages(bytes: &[u8], start: usize, end: usize) -> Result<(usize, bool), String> {
    let mut pos = start;
    let mut pages = 0;
    while pos < end.min(bytes.len()) {
        let mut w = Walk { b: bytes, pos };
        let mut data = None;
        w.structure(S::PageHeader, MAX_DEPTH, |id, ty, w| {
            if id == 3 && ty == I32 {
                let z = w.varint()?;
                data = Some((z >> 1) as i64 ^ -((z & 1) as i64));
                return Ok(true);
            }
            Ok(false)
        })
        .map_err(|e| format!("the page header at byte {pos} holds {}", reason(e)))?;
        pages += 1;
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
        // FileMetaData field 1: i32 2; field 6: binary "ab"; unknown field 20 (long form, zigzag
        // 40): a list of 2 i64; unknown field 21: an empty struct.
        let plain = [
            0x15, 0x04, 0x58, 0x02, b'a', b'b', 0x09, 0x28, 0x26, 0x02, 0x04, 0x1c, 0x00, 0x00,
        ];
        assert!(check_footer(&footer(&plain)).is_ok());
        // Field 20: a list (size nibble 15, then a varint 2^31 - 1) of booleans (type 1).
        let spin = [0x09, 0x28, 0xf1, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00];
        let e = check_footer(&footer(&spin)).unwrap_err();
        assert!(e.contains("list of booleans (claimed size 2147483647)"), "{e}");
        // The same inside a nested struct, and as a map's values.
        let nested = [0x0c, 0x28, 0x29, 0x32, 0x01, 0x02, 0x03, 0x00, 0x00];
        assert!(check_footer(&footer(&nested)).unwrap_err().contains("claimed size 3"));
        let map = [0x0b, 0x28, 0x02, 0x51, 0x02, 0x01, 0x04, 0x01, 0x00];
        assert!(check_footer(&footer(&map))
            .unwrap_err()
            .contains("map with booleans (claimed size 2)"));
        // Bytes the walk cannot follow are refused (parquet, decoding by its own types, could
        // read on past them); a file that is not Parquet at all is parquet's to report.
        let e = check_footer(&footer(&[0x09, 0x28, 0xf5, 0xff])).unwrap_err();
        assert!(e.contains("not Thrift's compact protocol at byte 4"), "{e}");
        assert!(check_footer(b"not parquet").is_ok());
    }

    /// parquet decodes a known field by its Parquet type whatever the bytes claim, so a walk by
    /// the claimed type would fall out of step with it: such fields are refused.
    #[test]
    fn a_known_field_with_another_type_is_refused() {
        // FileMetaData field 4 (row groups, a list of structs) claimed as an i32.
        let e = check_footer(&footer(&[0x45, 0x02, 0x00])).unwrap_err();
        assert!(
            e.contains("field 4 of a FileMetaData with Thrift type 5 where Parquet has type 9"),
            "{e}"
        );
        // Field 2 (the schema) as a list of i32 rather than of structs.
        let e = check_footer(&footer(&[0x29, 0x15, 0x02, 0x00])).unwrap_err();
        assert!(e.contains("a list of Thrift type 5 where Parquet has type 12"), "{e}");
        // A boolean field may claim either boolean type; a SortingColumn inside a RowGroup.
        let ok = [0x49, 0x1c, 0x49, 0x1c, 0x15, 0x00, 0x11, 0x12, 0x00, 0x00, 0x00];
        assert!(check_footer(&footer(&ok)).is_ok(), "{:?}", check_footer(&footer(&ok)));
        // The same SortingColumn with field 2 (descending, a boolean) claimed as a byte.
        let bad = [0x49, 0x1c, 0x49, 0x1c, 0x15, 0x00, 0x13, 0x01, 0x12, 0x00, 0x00, 0x00];
        let e = check_footer(&footer(&bad)).unwrap_err();
        assert!(e.contains("field 2 of a SortingColumn with Thrift type 3"), "{e}");
    }

    #[test]
    fn page_headers_are_walked_one_after_another() {
        // Header: field 1 i32 0, field 2 i32 3, field 3 (compressed size) i32 3; stop; 3 bytes.
        let page = [0x15, 0x00, 0x15, 0x06, 0x15, 0x06, 0x00, 9, 9, 9];
        let mut chunk = page.to_vec();
        chunk.extend_from_slice(&page);
        assert_eq!(check_pages(&chunk, 0, chunk.len()), Ok((2, true)));
        // The second header gains a list of booleans (unknown field 9).
        let mut bad = page.to_vec();
        bad.extend_from_slice(&[0x15, 0x00, 0x15, 0x06, 0x15, 0x06, 0x69, 0x11, 0x01, 0x00, 9, 9, 9]);
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
