//! Metadata tables: one row per vector, from JSONL, CSV or Parquet (chosen by extension).
//!
//! Built-in columns: `id`, `uri`, `source`, `timestamp` (RFC 3339 text or unix seconds) and
//! `day` (YYYY-MM-DD, used when there is no timestamp). Every other column becomes a user field:
//! JSON and Parquet keep their types; a CSV column is int if every value parses as one, else
//! float, else bool (`true`/`false`), else string. Empty CSV cells and JSON nulls are null.

use crate::{invalid, json_value, Error, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use std::path::Path;
use vitrine_store::{parse_timestamp, Day, Value, RESERVED_FIELDS};

/// One metadata row with the built-ins pulled out.
#[derive(Debug, Clone, Default)]
pub struct MetaRow {
    /// Line number in the file (text formats).
    pub line: Option<usize>,
    /// `id`.
    pub id: Option<String>,
    /// `uri`.
    pub uri: Option<String>,
    /// `source`.
    pub source: Option<String>,
    /// From `timestamp`, else `day`.
    pub timestamp: Option<i64>,
    /// User field values aligned with [`Table::field_names`].
    pub fields: Vec<Value>,
}

/// A metadata file, read whole.
#[derive(Debug, Clone)]
pub struct Table {
    /// User field names.
    pub field_names: Vec<String>,
    /// Rows in file order.
    pub rows: Vec<MetaRow>,
    /// "line" for text formats, "row" for Parquet: how errors point at a row.
    pub row_label: &'static str,
}

impl Table {
    /// `n` rows without metadata.
    pub fn empty(n: usize) -> Table {
        Table {
            field_names: vec![],
            rows: vec![MetaRow::default(); n],
            row_label: "row",
        }
    }
}

/// Column renames applied before the built-ins are pulled out (clip-retrieval uses `key`,
/// `image_path`, `url`).
pub type Aliases<'a> = &'a [(&'a str, &'a str)];

/// Reads a metadata file by its extension (`.jsonl`/`.ndjson`/`.json`, `.csv`, `.parquet`).
pub fn read(path: &Path) -> Result<Table> {
    read_with(path, &[])
}

/// [`read`] with column aliases: `(from, to)` renames column `from` to `to` if `to` is absent.
pub fn read_with(path: &Path, aliases: Aliases<'_>) -> Result<Table> {
    let (names, raw, label, mut unreadable) = read_raw(path)?;
    if !unreadable.is_empty() {
        return Err(unreadable.swap_remove(0).1);
    }
    let (table, mut bad) = build(path, names, raw, label, aliases, false)?;
    match bad.pop() {
        Some(e) => Err(e.1),
        None => Ok(table),
    }
}

/// [`read`], but a row that cannot be used (unparsable timestamp, wrong type) is left out and
/// returned with its line number and error instead of failing the whole file: for manifests,
/// where one bad line must not stop the others.
/// A line that is not JSON at all counts as such a row.
pub fn read_lenient(path: &Path) -> Result<(Table, Vec<(usize, Error)>)> {
    let (names, raw, label, unreadable) = read_raw(path)?;
    let (table, mut bad) = build(path, names, raw, label, &[], true)?;
    bad.extend(unreadable);
    bad.sort_by_key(|(line, _)| *line);
    Ok((table, bad))
}

/// Column names, rows (line, values), how rows are named ("line" or "row"), and the lines that
/// could not be read at all.
type RawTable = (Vec<String>, Raw, &'static str, Vec<(usize, Error)>);

fn read_raw(path: &Path) -> Result<RawTable> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jsonl" | "ndjson" | "json" => read_jsonl(path),
        "csv" => read_csv(path).map(|(n, r, l)| (n, r, l, vec![])),
        "parquet" => read_parquet(path).map(|(n, r, l)| (n, r, l, vec![])),
        _ => Err(invalid(path, "unknown metadata format: use .jsonl, .csv or .parquet")),
    }
}

type Raw = Vec<(usize, Vec<Value>)>;

type Built = (Table, Vec<(usize, Error)>);

/// Pulls the built-ins out of raw rows. Strict (`lenient == false`): stops at the first bad row
/// and returns it as the only error.
fn build(
    path: &Path,
    mut names: Vec<String>,
    raw: Raw,
    label: &'static str,
    aliases: Aliases<'_>,
    lenient: bool,
) -> Result<Built> {
    for (from, to) in aliases {
        if !names.iter().any(|n| n == to) {
            if let Some(n) = names.iter_mut().find(|n| n == from) {
                *n = to.to_string();
            }
        }
    }
    let col = |n: &str| names.iter().position(|c| c == n);
    let (c_id, c_uri, c_src, c_ts, c_day) = (col("id"), col("uri"), col("source"), col("timestamp"), col("day"));
    let user: Vec<usize> = (0..names.len())
        .filter(|&i| !RESERVED_FIELDS.contains(&names[i].as_str()))
        .collect();
    let mut rows = Vec::with_capacity(raw.len());
    let mut bad = Vec::new();
    for (line, vals) in raw {
        let row = (|| -> Result<MetaRow> {
            let at = |field: &str, msg: String| invalid(path, format!("{label} {line}, field {field:?}: {msg}"));
            let text = |c: Option<usize>, field: &str| -> Result<Option<String>> {
                match c.map(|c| &vals[c]) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Str(s)) => Ok(Some(s.clone())),
                    Some(Value::Int(i)) => Ok(Some(i.to_string())),
                    Some(other) => Err(at(field, format!("expected text, found {}", other.describe()))),
                }
            };
            let ts = |c: Option<usize>, field: &str| -> Result<Option<i64>> {
                match c.map(|c| &vals[c]) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Int(i)) => Ok(Some(*i)),
                    Some(Value::Float(f)) if f.is_finite() => Ok(Some(f.floor() as i64)),
                    Some(Value::Str(s)) if field == "day" => s
                        .parse::<Day>()
                        .map(|d| Some(d.start()))
                        .map_err(|e| at(field, e.to_string())),
                    Some(Value::Str(s)) => parse_timestamp(s).map(Some).map_err(|e| at(field, e.to_string())),
                    Some(other) => Err(at(field, format!("expected a timestamp, found {}", other.describe()))),
                }
            };
            let timestamp = match ts(c_ts, "timestamp")? {
                Some(t) => Some(t),
                None => ts(c_day, "day")?,
            };
            Ok(MetaRow {
                line: Some(line),
                id: text(c_id, "id")?,
                uri: text(c_uri, "uri")?,
                source: text(c_src, "source")?,
                timestamp,
                fields: user.iter().map(|&c| vals[c].clone()).collect(),
            })
        })();
        match row {
            Ok(r) => rows.push(r),
            Err(e) => {
                bad.push((line, e));
                if !lenient {
                    break;
                }
            }
        }
    }
    let table = Table {
        field_names: user.iter().map(|&c| names[c].clone()).collect(),
        rows,
        row_label: label,
    };
    Ok((table, bad))
}

fn read_jsonl(path: &Path) -> Result<RawTable> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = Vec::new();
    let mut raw = Vec::new();
    let mut unreadable = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let obj: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(line) {
            Ok(o) => o,
            Err(e) => {
                unreadable.push((i + 1, invalid(path, format!("line {}: not a JSON object: {e}", i + 1))));
                continue;
            }
        };
        let mut vals = Vec::with_capacity(obj.len());
        let mut bad = None;
        for (k, v) in &obj {
            match json_value(v) {
                Some(val) => vals.push((k, val)),
                None => {
                    bad = Some(invalid(
                        path,
                        format!("line {}, field {k:?}: arrays and objects are not supported", i + 1),
                    ));
                    break;
                }
            }
        }
        if let Some(e) = bad {
            unreadable.push((i + 1, e));
            continue;
        }
        let mut row = vec![Value::Null; names.len()];
        for (k, val) in vals {
            match names.iter().position(|n| n == k) {
                Some(c) => row[c] = val,
                None => {
                    names.push(k.clone());
                    row.push(val);
                }
            }
        }
        raw.push((i + 1, row));
    }
    for (_, v) in raw.iter_mut() {
        v.resize(names.len(), Value::Null);
    }
    Ok((names, raw, "line", unreadable))
}

fn read_csv(path: &Path) -> Result<(Vec<String>, Raw, &'static str)> {
    let mut rd = csv::Reader::from_path(path).map_err(|e| invalid(path, format!("cannot read CSV: {e}")))?;
    let names: Vec<String> = rd
        .headers()
        .map_err(|e| invalid(path, format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    let mut cells: Vec<(usize, Vec<String>)> = Vec::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| invalid(path, format!("CSV: {e}")))?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        if rec.len() != names.len() {
            return Err(invalid(
                path,
                format!("line {line}: {} fields, the header has {}", rec.len(), names.len()),
            ));
        }
        cells.push((line, rec.iter().map(str::to_string).collect()));
    }
    // Infer each column's type from all its values; built-ins stay text.
    let types: Vec<u8> = (0..names.len())
        .map(|c| {
            if ["id", "uri", "source", "timestamp", "day"].contains(&names[c].as_str()) {
                return 3;
            }
            let vals = cells.iter().map(|(_, r)| r[c].trim()).filter(|s| !s.is_empty());
            if vals.clone().all(|s| s.parse::<i64>().is_ok()) {
                0
            } else if vals.clone().all(|s| s.parse::<f64>().is_ok()) {
                1
            } else if vals.clone().all(|s| s == "true" || s == "false") {
                2
            } else {
                3
            }
        })
        .collect();
    let raw = cells
        .into_iter()
        .map(|(line, r)| {
            let vals = r
                .into_iter()
                .zip(&types)
                .map(|(s, t)| {
                    let s = s.trim();
                    if s.is_empty() {
                        return Value::Null;
                    }
                    match t {
                        0 => Value::Int(s.parse().unwrap()),
                        1 => Value::Float(s.parse().unwrap()),
                        2 => Value::Bool(s == "true"),
                        _ => Value::Str(s.to_string()),
                    }
                })
                .collect();
            (line, vals)
        })
        .collect();
    Ok((names, raw, "line"))
}

fn read_parquet(path: &Path) -> Result<(Vec<String>, Raw, &'static str)> {
    // The Parquet and Arrow readers assert on some malformed pages (fuzzing found a panic in
    // their definition-level decoding: "offset + len out of bounds"); a damaged file must be an
    // error naming it, never a crash. Nothing outlives the read, so unwinding leaves no state.
    match std::panic::catch_unwind(|| read_parquet_unguarded(path)) {
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "malformed data".into());
            Err(invalid(
                path,
                format!("not a readable Parquet file: the Parquet reader failed on it ({why})"),
            ))
        }
    }
}

fn read_parquet_unguarded(path: &Path) -> Result<(Vec<String>, Raw, &'static str)> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file.metadata().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // The Thrift structures parquet would spin on are refused first (see thrift_guard).
    // SAFETY: read-only; a file truncated meanwhile could fault, as for every mapped input.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let spin = |why: String| {
        invalid(
            path,
            format!("not a readable Parquet file: {why}, which the Parquet reader cannot skip safely"),
        )
    };
    crate::thrift_guard::check_footer(&bytes).map_err(spin)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(StrictFile(file))
        .map_err(|e| invalid(path, format!("not a readable Parquet file: {e}")))?;
    check_column_chunks(path, builder.metadata(), len.len())?;
    for rg in builder.metadata().row_groups() {
        for c in rg.columns() {
            // Inside the file: checked just above.
            let start = c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset()) as usize;
            crate::thrift_guard::check_pages(&bytes, start, start + c.compressed_size() as usize).map_err(spin)?;
        }
    }
    let schema = builder.schema().clone();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let reader = builder.build().map_err(|e| invalid(path, format!("Parquet: {e}")))?;
    let mut raw = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| invalid(path, format!("Parquet: {e}")))?;
        let base = raw.len();
        for r in 0..batch.num_rows() {
            raw.push((base + r + 1, Vec::with_capacity(names.len())));
        }
        for (c, col) in batch.columns().iter().enumerate() {
            for r in 0..batch.num_rows() {
                let v = arrow_value(col, r)
                    .map_err(|m| invalid(path, format!("row {}, field {:?}: {m}", base + r + 1, names[c])))?;
                raw[base + r].1.push(v);
            }
        }
    }
    Ok((names, raw, "row"))
}

/// A metadata file as the Parquet reader sees it, where reading past the end is an error
/// rather than the end of input: parquet 60's Thrift decoder skips a field by copying its
/// claimed length and does not check that the bytes were there, so a damaged page header that
/// claims a list of 2^31 fields spins on empty reads (fuzzing found a 1,340-byte file that kept
/// an import busy for minutes: fuzz/regressions/metadata/parquet-thrift-skip-hang).
struct StrictFile(std::fs::File);

impl parquet::file::reader::Length for StrictFile {
    fn len(&self) -> u64 {
        parquet::file::reader::Length::len(&self.0)
    }
}

impl parquet::file::reader::ChunkReader for StrictFile {
    type T = StrictRead<std::io::BufReader<std::fs::File>>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(StrictRead(self.0.get_read(start)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.0.get_bytes(start, length)
    }
}

/// A reader whose end of input is an error.
struct StrictRead<R>(R);

impl<R: std::io::Read> std::io::Read for StrictRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 if !buf.is_empty() => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            )),
            n => Ok(n),
        }
    }
}

/// Every column chunk the footer lists must lie inside the file: the Parquet reader panics on
/// a negative offset or size (`ColumnChunkMetaData::byte_range`), so a damaged footer is refused
/// here with an error naming the row group and column.
fn check_column_chunks(path: &Path, meta: &parquet::file::metadata::ParquetMetaData, file_len: u64) -> Result<()> {
    for (g, rg) in meta.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or_else(|| c.data_page_offset());
            let size = c.compressed_size();
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(size).ok())
                .and_then(|(s, n)| s.checked_add(n))
                .is_some_and(|end| end <= file_len);
            if !inside {
                return Err(invalid(
                    path,
                    format!(
                        "not a readable Parquet file: row group {g}, column {:?} claims bytes at offset {start}, \
                         length {size}, outside the file ({file_len} bytes)",
                        c.column_path().string()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn arrow_value(col: &ArrayRef, r: usize) -> std::result::Result<Value, String> {
    if col.is_null(r) {
        return Ok(Value::Null);
    }
    Ok(match col.data_type() {
        DataType::Utf8 => Value::Str(col.as_string::<i32>().value(r).to_string()),
        DataType::LargeUtf8 => Value::Str(col.as_string::<i64>().value(r).to_string()),
        DataType::Utf8View => Value::Str(col.as_string_view().value(r).to_string()),
        DataType::Boolean => Value::Bool(col.as_boolean().value(r)),
        DataType::Int8 => Value::Int(col.as_primitive::<Int8Type>().value(r) as i64),
        DataType::Int16 => Value::Int(col.as_primitive::<Int16Type>().value(r) as i64),
        DataType::Int32 => Value::Int(col.as_primitive::<Int32Type>().value(r) as i64),
        DataType::Int64 => Value::Int(col.as_primitive::<Int64Type>().value(r)),
        DataType::UInt8 => Value::Int(col.as_primitive::<UInt8Type>().value(r) as i64),
        DataType::UInt16 => Value::Int(col.as_primitive::<UInt16Type>().value(r) as i64),
        DataType::UInt32 => Value::Int(col.as_primitive::<UInt32Type>().value(r) as i64),
        DataType::UInt64 => {
            let v = col.as_primitive::<UInt64Type>().value(r);
            Value::Int(i64::try_from(v).map_err(|_| format!("value {v} does not fit a 64-bit signed int"))?)
        }
        DataType::Float32 => Value::Float(col.as_primitive::<Float32Type>().value(r) as f64),
        DataType::Float64 => Value::Float(col.as_primitive::<Float64Type>().value(r)),
        DataType::Date32 => Value::Str(Day(col.as_primitive::<Date32Type>().value(r)).to_string()),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => col.as_primitive::<TimestampSecondType>().value(r),
                TimeUnit::Millisecond => col
                    .as_primitive::<TimestampMillisecondType>()
                    .value(r)
                    .div_euclid(1_000),
                TimeUnit::Microsecond => col
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(r)
                    .div_euclid(1_000_000),
                TimeUnit::Nanosecond => col
                    .as_primitive::<TimestampNanosecondType>()
                    .value(r)
                    .div_euclid(1_000_000_000),
            };
            Value::Int(v)
        }
        other => return Err(format!("column type {other} is not supported")),
    })
}
