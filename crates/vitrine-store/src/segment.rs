//! Immutable segment files: the vectors and fields of one batch of rows of one partition.
//!
//! A segment is written once, fsync'd, and only then referenced by a manifest; it is never
//! modified afterwards (deletes live in separate bitmap files). Readers memory-map it and hand
//! the vector section straight to the kernels, so a search holds no second copy of the data.
//!
//! Layout (all integers little-endian, every section 64-byte aligned):
//!
//! ```text
//! [0, 64)              zero padding (keeps the vector section aligned)
//! vectors              rows × dim f32
//! norms                rows f32: ‖x‖ of each vector (cosine divides by it; l2 uses its square)
//! timestamp            rows i64
//! id, uri              string columns: (rows+1) u64 offsets, then UTF-8 bytes
//! user fields          per field: rows validity bytes (1 = present), then values
//!                      (i64 / f64 / u8, or a string column)
//! scan codes           rows × stride u8 (8-bit codes of each vector's residual from the
//!                      segment's mean), then rows f32 scales, rows f32 R, rows f32 E, and the
//!                      dim f32 mean: see [`vitrine_kernels::codes`]. Absent from segments written
//!                      before they existed; those are scanned in f32.
//! footer               JSON [`SegmentFooter`]
//! trailer (16 bytes)   u64 footer length, u32 CRC-32 of the footer, b"VSG1"
//! ```
//!
//! The footer carries a CRC-32 of everything before it, checked by `vitrine check` (a full read,
//! which also walks the string offsets); opening a segment checks only what costs nothing per
//! row: the trailer, the footer's own CRC and every section's bounds.

use crate::error::{IoContext, Result};
use crate::filter::ValueRef;
use crate::schema::{FieldType, Value};
use crate::{Day, Error};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file of segment `id` in collection folder `dir`.
pub(crate) fn seg_file(dir: &Path, id: u64) -> PathBuf {
    dir.join("segments").join(format!("seg-{id:08}.vseg"))
}

const MAGIC: &[u8; 4] = b"VSG1";
const ALIGN: u64 = 64;

/// Where one column lives in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnLayout {
    /// Field name.
    pub name: String,
    /// Field type.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// Offset of the validity bytes (user fields only).
    pub validity: Option<u64>,
    /// Offset of the values (for strings: of the offsets array).
    pub values: u64,
    /// Strings only: offset of the UTF-8 bytes.
    pub bytes: Option<u64>,
    /// Strings only: length of the UTF-8 bytes.
    pub bytes_len: Option<u64>,
}

/// Where the 8-bit scan codes live (offsets into the file).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct CodesLayout {
    /// Bytes per row of codes ([`vitrine_kernels::codes::code_stride`] of the dimension).
    pub stride: u64,
    /// The codes, `rows × stride` bytes.
    pub codes: u64,
    /// Per-row scales (f32).
    pub scale: u64,
    /// Per-row `R ≥ ‖s·c‖` (f32).
    pub resid: u64,
    /// Per-row `E ≥ ‖x − μ − s·c‖` (f32).
    pub err: u64,
    /// The segment's mean vector (`dim` f32).
    pub mean: u64,
}

/// A segment's self-description, stored at its end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentFooter {
    /// Format version (1).
    pub version: u32,
    /// Rows.
    pub rows: u64,
    /// Vector dimension.
    pub dim: u64,
    /// Partition source.
    pub source: String,
    /// Partition day.
    pub day: Day,
    /// Largest vector norm in the segment (bounds the kernels' rounding error).
    pub max_norm: f32,
    /// Offset of the norms.
    pub norms: u64,
    /// Columns: `timestamp`, `id`, `uri`, then user fields.
    pub columns: Vec<ColumnLayout>,
    /// The 8-bit scan codes (none in segments written before they existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes: Option<CodesLayout>,
    /// CRC-32 of every byte before the footer.
    pub body_crc: u32,
}

/// One row to be written.
#[derive(Debug, Clone)]
pub struct RowRef<'a> {
    /// Primary key.
    pub id: &'a str,
    /// Where the image lives.
    pub uri: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
    /// User field values, aligned with the writer's field list.
    pub fields: &'a [Value],
    /// The vector.
    pub vector: &'a [f32],
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    pos: u64,
}

impl<W: Write> CrcWriter<W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.crc.update(b);
        self.pos += b.len() as u64;
        self.inner.write_all(b)
    }
    fn align(&mut self) -> std::io::Result<u64> {
        let pad = (ALIGN - self.pos % ALIGN) % ALIGN;
        self.put(&vec![0u8; pad as usize])?;
        Ok(self.pos)
    }
}

/// The unit a segment is written in: 2 MiB, the x86-64 huge page.
const WRITE_CHUNK: usize = 2 << 20;

/// Buffers a file's bytes and writes them in whole [`WRITE_CHUNK`]s at aligned offsets (the
/// last one short). Kernels whose page cache has large folios (ext4 and xfs since Linux 6.x)
/// then keep the file in 2 MiB pages, which a later `mmap` maps with one page-table entry
/// each: a fresh `vitrine search` faults in a 1M-row scan 512 times less often. Elsewhere it is
/// just a buffered writer.
struct ChunkWriter<'p> {
    file: File,
    path: &'p Path,
    buf: Vec<u8>,
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = (WRITE_CHUNK - self.buf.len()).min(b.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == WRITE_CHUNK {
            crate::fsio::write(&mut self.file, self.path, &self.buf)?;
            self.buf.clear();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        crate::fsio::write(&mut self.file, self.path, &self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// Writes a segment file and fsyncs it. `fields` names the user fields (with types) that the
/// rows' `fields` slices follow.
pub fn write_segment(
    path: &Path,
    source: &str,
    day: Day,
    dim: usize,
    fields: &[(String, FieldType)],
    rows: &[RowRef<'_>],
) -> Result<u64> {
    // create_new: a segment file is never overwritten, even after an inconsistent failure.
    let file = crate::fsio::create(path, true)?;
    let mut w = CrcWriter {
        inner: ChunkWriter {
            file,
            path,
            buf: Vec::with_capacity(WRITE_CHUNK),
        },
        crc: crc32fast::Hasher::new(),
        pos: 0,
    };
    let io = |e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    // The f32 rows and columns are written while another thread encodes the scan codes.
    let (written, encoded) = rayon::join(|| write_rows(&mut w, dim, fields, rows), || encode_codes(dim, rows));
    let (max_norm, norms_at, columns) = written.map_err(io)?;
    let codes = write_codes(&mut w, dim, &encoded).map_err(io)?;
    let body_end = w.align().map_err(io)?;
    let footer = SegmentFooter {
        version: 1,
        rows: rows.len() as u64,
        dim: dim as u64,
        source: source.to_string(),
        day,
        max_norm,
        norms: norms_at,
        columns,
        codes: Some(codes),
        body_crc: w.crc.clone().finalize(),
    };
    let json = serde_json::to_vec(&footer).expect("footer serializes");
    w.put(&json).map_err(io)?;
    w.put(&(json.len() as u64).to_le_bytes()).map_err(io)?;
    w.put(&crc32fast::hash(&json).to_le_bytes()).map_err(io)?;
    w.put(MAGIC).map_err(io)?;
    w.inner.flush().map_err(io)?;
    crate::fsio::sync(&w.inner.file, path)?;
    let _ = body_end;
    Ok(w.pos)
}

/// Writes the f32 rows, their norms and every column; returns the largest norm, where the
/// norms start, and the columns' layouts.
fn write_rows<W: Write>(
    w: &mut CrcWriter<W>,
    dim: usize,
    fields: &[(String, FieldType)],
    rows: &[RowRef<'_>],
) -> std::io::Result<(f32, u64, Vec<ColumnLayout>)> {
    w.put(&[0u8; ALIGN as usize])?;
    let mut max_norm = 0f32;
    for r in rows {
        debug_assert_eq!(r.vector.len(), dim);
        w.put(as_bytes(r.vector))?;
    }
    let norms_at = w.align()?;
    for r in rows {
        let n = vitrine_kernels::norm_fast(r.vector) as f32;
        max_norm = max_norm.max(n);
        w.put(&n.to_le_bytes())?;
    }
    let mut columns = Vec::new();
    let at = w.align()?;
    for r in rows {
        w.put(&r.timestamp.to_le_bytes())?;
    }
    columns.push(ColumnLayout {
        name: "timestamp".into(),
        ty: FieldType::Int,
        validity: None,
        values: at,
        bytes: None,
        bytes_len: None,
    });
    for (name, get) in [("id", 0), ("uri", 1)] {
        let strs = rows.iter().map(|r| if get == 0 { r.id } else { r.uri });
        let mut col = write_strings(w, strs)?;
        col.name = name.into();
        columns.push(col);
    }
    for (fi, (name, ty)) in fields.iter().enumerate() {
        let validity = w.align()?;
        let present: Vec<u8> = rows
            .iter()
            .map(|r| u8::from(!matches!(r.fields[fi], Value::Null)))
            .collect();
        w.put(&present)?;
        let mut col = match ty {
            FieldType::String => write_strings(
                w,
                rows.iter().map(|r| match &r.fields[fi] {
                    Value::Str(s) => s.as_str(),
                    _ => "",
                }),
            )?,
            _ => {
                let values = w.align()?;
                for r in rows {
                    let bytes: [u8; 8] = match (ty, &r.fields[fi]) {
                        (FieldType::Int, Value::Int(i)) => i.to_le_bytes(),
                        (FieldType::Float, Value::Float(f)) => f.to_le_bytes(),
                        (FieldType::Float, Value::Int(i)) => (*i as f64).to_le_bytes(),
                        (FieldType::Bool, Value::Bool(b)) => (*b as u64).to_le_bytes(),
                        _ => [0; 8],
                    };
                    w.put(&bytes)?;
                }
                ColumnLayout {
                    name: String::new(),
                    ty: *ty,
                    validity: None,
                    values,
                    bytes: None,
                    bytes_len: None,
                }
            }
        };
        col.name = name.clone();
        col.ty = *ty;
        col.validity = Some(validity);
        columns.push(col);
    }
    Ok((max_norm, norms_at, columns))
}

/// A segment's rows as 8-bit scan codes, before they are written.
struct Encoded {
    mean: Vec<f32>,
    codes: Vec<u8>,
    meta: Vec<vitrine_kernels::codes::RowCode>,
}

/// Encodes every row, in parallel: the one compute-heavy part of writing a segment, so it runs
/// while the f32 vectors are being written.
fn encode_codes(dim: usize, rows: &[RowRef<'_>]) -> Encoded {
    use rayon::prelude::*;
    use vitrine_kernels::codes::{code_stride, encode_row};
    let stride = code_stride(dim);
    let mut acc = vec![0f64; dim];
    for r in rows {
        for (a, &v) in acc.iter_mut().zip(r.vector) {
            *a += v as f64;
        }
    }
    let mean: Vec<f32> = acc.iter().map(|a| (a / rows.len().max(1) as f64) as f32).collect();
    let mut codes = vec![0u8; rows.len() * stride];
    let meta = codes
        .par_chunks_mut(stride)
        .zip(rows.par_iter())
        .map(|(out, r)| encode_row(r.vector, &mean, out))
        .collect();
    Encoded { mean, codes, meta }
}

/// Writes the codes section.
fn write_codes<W: Write>(w: &mut CrcWriter<W>, dim: usize, enc: &Encoded) -> std::io::Result<CodesLayout> {
    use vitrine_kernels::codes::{code_stride, RowCode};
    let stride = code_stride(dim);
    let Encoded { mean, codes, meta } = enc;
    let at = w.align()?;
    w.put(codes)?;
    let mut layout = CodesLayout {
        stride: stride as u64,
        codes: at,
        scale: 0,
        resid: 0,
        err: 0,
        mean: 0,
    };
    let mut column = |get: fn(&RowCode) -> f32| -> std::io::Result<u64> {
        let at = w.align()?;
        let col: Vec<f32> = meta.iter().map(get).collect();
        w.put(as_bytes(&col))?;
        Ok(at)
    };
    layout.scale = column(|m| m.scale)?;
    layout.resid = column(|m| m.resid)?;
    layout.err = column(|m| m.err)?;
    layout.mean = w.align()?;
    w.put(as_bytes(mean))?;
    Ok(layout)
}

fn write_strings<'s, W: Write>(
    w: &mut CrcWriter<W>,
    strs: impl Iterator<Item = &'s str> + Clone,
) -> std::io::Result<ColumnLayout> {
    let values = w.align()?;
    let mut off = 0u64;
    w.put(&off.to_le_bytes())?;
    for s in strs.clone() {
        off += s.len() as u64;
        w.put(&off.to_le_bytes())?;
    }
    let bytes = w.align()?;
    for s in strs {
        w.put(s.as_bytes())?;
    }
    Ok(ColumnLayout {
        name: String::new(),
        ty: FieldType::String,
        validity: None,
        values,
        bytes: Some(bytes),
        bytes_len: Some(off),
    })
}

fn as_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

/// A memory-mapped segment.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    map: Mmap,
    footer: SegmentFooter,
}

/// Asks for a segment's pages to be kept in 2 MiB folios: `MADV_HUGEPAGE` and `MADV_RANDOM`
/// on the whole map, before its first read.
///
/// Where the page cache has to read a segment back (after eviction), each miss then reads
/// the one 2 MiB folio around it, and every later process maps each such folio with one
/// page-table entry: a fresh `vitrine search` over 1M rows in 100k-row segments took 860
/// page faults instead of 6,360 (small folios, a few mapped per fault), and the CPU's
/// prefetches no longer stop at unmapped pages.
///
/// - `MADV_RANDOM`, because without it the readahead after a miss sizes its folios from the
///   file's readahead window, which the scan's interleaved reads (a chunk's codes, then its
///   norms and bounds) keep resetting: the codes then come in 16 KiB folios, growing 4× per
///   8 MiB. Measured per 100k-row segment: 12 to 14 of 50 MB in 2 MiB folios without it, all
///   but the ragged edges with it.
/// - The whole map, vectors included: splitting a mapping in two costs page faults (a fault
///   maps a whole folio only within one mapping; measured on 2,740-row segments: 2.6× the
///   faults). A fault in the vectors reads 2 MiB instead of the default 8 MiB read-around;
///   the re-score's reads of evicted rows go through `prefetch_vector`, which reads only them.
///
/// Advice only: a kernel without it changes nothing but speed, so a failure is ignored.
fn advise_pages(map: &Mmap) {
    #[cfg(target_os = "linux")]
    {
        let _ = map.advise(memmap2::Advice::HugePage);
        let _ = map.advise(memmap2::Advice::Random);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = map;
}

impl Segment {
    /// Maps a segment file and validates its footer and section bounds.
    pub fn open(path: &Path) -> Result<Segment> {
        let file = File::open(path).at(path)?;
        // SAFETY: segment files are immutable once published; the store never writes to them.
        let map = unsafe { Mmap::map(&file) }.at(path)?;
        // Before the first read, which is of the footer.
        advise_pages(&map);
        let corrupt = |reason: String| Error::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let n = map.len();
        if n < 16 + ALIGN as usize || &map[n - 4..] != MAGIC {
            return Err(corrupt(format!("not a vitrine segment (length {n}, bad trailer)")));
        }
        let flen = u64::from_le_bytes(map[n - 16..n - 8].try_into().unwrap()) as usize;
        let fcrc = u32::from_le_bytes(map[n - 8..n - 4].try_into().unwrap());
        if flen > n - 16 {
            return Err(corrupt(format!("footer length {flen} exceeds the file")));
        }
        let fbytes = &map[n - 16 - flen..n - 16];
        if crc32fast::hash(fbytes) != fcrc {
            return Err(corrupt("footer checksum mismatch".into()));
        }
        let footer: SegmentFooter =
            serde_json::from_slice(fbytes).map_err(|e| corrupt(format!("unreadable footer: {e}")))?;
        let body = (n - 16 - flen) as u64;
        let rows = footer.rows;
        let need = |off: u64, len: Option<u64>| {
            len.and_then(|l| off.checked_add(l)).is_some_and(|end| end <= body) && off.is_multiple_of(8)
        };
        let mul = |a: u64, b: u64| a.checked_mul(b);
        let mut ok = need(ALIGN, mul(rows, footer.dim).and_then(|x| mul(x, 4))) && need(footer.norms, mul(rows, 4));
        for c in &footer.columns {
            ok &= c.validity.is_none_or(|v| need(v, Some(rows)));
            ok &= match c.ty {
                FieldType::String => {
                    need(c.values, rows.checked_add(1).and_then(|r| mul(r, 8)))
                        && need(c.bytes.unwrap_or(0), c.bytes_len)
                }
                _ => need(c.values, mul(rows, 8)),
            };
        }
        if let Some(c) = &footer.codes {
            let dim = footer.dim;
            ok &= c.stride == vitrine_kernels::codes::code_stride(dim as usize) as u64
                && need(c.codes, mul(rows, c.stride))
                && need(c.scale, mul(rows, 4))
                && need(c.resid, mul(rows, 4))
                && need(c.err, mul(rows, 4))
                && need(c.mean, mul(dim, 4));
        }
        // The built-in columns every accessor relies on.
        for required in ["timestamp", "id", "uri"] {
            ok &= footer
                .columns
                .iter()
                .any(|c| c.name == required && c.validity.is_none());
        }
        if !ok || footer.version != 1 {
            return Err(corrupt("a section lies outside the file or is misaligned".into()));
        }
        let seg = Segment {
            path: path.to_path_buf(),
            map,
            footer,
        };
        Ok(seg)
    }

    /// Checks what opening a segment leaves to the first access: every string column's
    /// offsets start at 0, never decrease and end at its byte length. (Opening does not walk
    /// them: that read 16 MB per million rows before a search began. An access through a bad
    /// offset reads as U+FFFD instead, as invalid UTF-8 does.)
    fn check_string_offsets(&self) -> Result<()> {
        let rows = self.footer.rows;
        for c in self.footer.columns.iter().filter(|c| c.ty == FieldType::String) {
            let offs = self.u64s(c.values, rows + 1);
            if offs[0] != 0 || offs.windows(2).any(|w| w[0] > w[1]) || offs[rows as usize] != c.bytes_len.unwrap_or(0) {
                return Err(Error::Corrupt {
                    path: self.path.clone(),
                    reason: format!("string column {:?} has invalid offsets", c.name),
                });
            }
        }
        Ok(())
    }

    /// Re-reads the whole file and checks the body checksum and the string offsets.
    pub fn verify(&self) -> Result<()> {
        self.check_string_offsets()?;
        let n = self.map.len();
        let flen = u64::from_le_bytes(self.map[n - 16..n - 8].try_into().unwrap()) as usize;
        let crc = crc32fast::hash(&self.map[..n - 16 - flen]);
        if crc != self.footer.body_crc {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                reason: "body checksum mismatch".into(),
            });
        }
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The footer.
    pub fn footer(&self) -> &SegmentFooter {
        &self.footer
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.footer.rows as usize
    }

    /// All vectors, row-major.
    pub fn vectors(&self) -> &[f32] {
        self.f32s(ALIGN, self.footer.rows * self.footer.dim)
    }

    /// Row `r`'s vector.
    pub fn vector(&self, r: usize) -> &[f32] {
        let d = self.footer.dim as usize;
        &self.vectors()[r * d..(r + 1) * d]
    }

    /// Asks the kernel to start reading row `r`'s vector into the page cache (`MADV_WILLNEED`)
    /// without waiting. A re-score that touches a few hundred scattered rows whose pages were
    /// evicted then waits for one round of reads issued together, not one read per row in
    /// turn. Advice only: a failure changes nothing but speed, so it is ignored.
    pub fn prefetch_vector(&self, r: usize) {
        let (offset, len) = self.vector_range(r);
        #[cfg(unix)]
        let _ = self.map.advise_range(memmap2::Advice::WillNeed, offset, len);
        #[cfg(not(unix))]
        let _ = (offset, len);
    }

    /// Whether row `r`'s vector is in the page cache (`mincore`); true where that cannot be
    /// told.
    pub fn vector_cached(&self, r: usize) -> bool {
        #[cfg(unix)]
        {
            let (offset, len) = self.vector_range(r);
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
            let start = self.map.as_ptr() as usize + offset;
            let first = start - start % page;
            let pages = (start + len - first).div_ceil(page).min(8);
            let mut resident = [0u8; 8];
            // SAFETY: `first..first + pages·page` lies within the mapping (rounded out to whole
            // pages, which the mapping has), and `resident` has room for `pages` bytes.
            let rc = unsafe { libc::mincore(first as *mut libc::c_void, pages * page, resident.as_mut_ptr()) };
            rc != 0 || resident[..pages].iter().all(|b| b & 1 == 1)
        }
        #[cfg(not(unix))]
        {
            let _ = r;
            true
        }
    }

    /// Row `r`'s vector as (offset in the file, length in bytes).
    fn vector_range(&self, r: usize) -> (usize, usize) {
        let len = self.footer.dim as usize * 4;
        (ALIGN as usize + r * len, len)
    }

    /// Norms of all vectors.
    pub fn norms(&self) -> &[f32] {
        self.f32s(self.footer.norms, self.footer.rows)
    }

    /// The 8-bit scan codes, if the segment has them.
    pub fn codes(&self) -> Option<SegmentCodes<'_>> {
        let c = self.footer.codes?;
        let rows = self.footer.rows;
        Some(SegmentCodes {
            stride: c.stride as usize,
            codes: &self.map[c.codes as usize..(c.codes + rows * c.stride) as usize],
            scale: self.f32s(c.scale, rows),
            resid: self.f32s(c.resid, rows),
            err: self.f32s(c.err, rows),
            mean: self.f32s(c.mean, self.footer.dim),
        })
    }

    fn f32s(&self, off: u64, len: u64) -> &[f32] {
        let b = &self.map[off as usize..(off + len * 4) as usize];
        // SAFETY: bounds and 8-byte alignment checked in `open`; the map is page-aligned.
        unsafe { std::slice::from_raw_parts(b.as_ptr().cast(), len as usize) }
    }

    fn u64s(&self, off: u64, len: u64) -> &[u64] {
        let b = &self.map[off as usize..(off + len * 8) as usize];
        // SAFETY: as in `f32s`.
        unsafe { std::slice::from_raw_parts(b.as_ptr().cast(), len as usize) }
    }

    fn column(&self, name: &str) -> Option<&ColumnLayout> {
        self.footer.columns.iter().find(|c| c.name == name)
    }

    fn str_at(&self, c: &ColumnLayout, r: usize) -> &str {
        let offs = self.u64s(c.values, self.footer.rows + 1);
        let (a, b) = (offs[r], offs[r + 1]);
        // `open` checked that the byte section [bytes, bytes + bytes_len) lies in the file,
        // not every offset (`verify` does): a bad pair reads as a replacement character.
        if a > b || b > c.bytes_len.unwrap_or(0) {
            return "\u{fffd}";
        }
        let base = c.bytes.unwrap_or(0) as usize;
        std::str::from_utf8(&self.map[base + a as usize..base + b as usize]).unwrap_or("\u{fffd}")
    }

    /// Row `r`'s primary key.
    pub fn id(&self, r: usize) -> &str {
        self.str_at(self.column("id").expect("id column"), r)
    }

    /// Row `r`'s URI.
    pub fn uri(&self, r: usize) -> &str {
        self.str_at(self.column("uri").expect("uri column"), r)
    }

    /// Row `r`'s timestamp.
    pub fn timestamp(&self, r: usize) -> i64 {
        self.u64s(
            self.column("timestamp").expect("timestamp column").values,
            self.footer.rows,
        )[r] as i64
    }

    /// A column accessor for filters: built-ins and user fields (absent columns read as null).
    pub fn accessor(&self, name: &str) -> Accessor<'_> {
        match name {
            "id" | "uri" => Accessor::Str(self, self.column(name).expect("builtin column"), None),
            "source" => Accessor::Const(ValueRef::Str(&self.footer.source)),
            "day" => Accessor::Day(self.footer.day.to_string()),
            "timestamp" => Accessor::Int(
                self.u64s(self.column(name).expect("timestamp").values, self.footer.rows),
                None,
            ),
            _ => match self.column(name) {
                None => Accessor::Const(ValueRef::Null),
                Some(c) => {
                    let valid = c
                        .validity
                        .map(|v| &self.map[v as usize..(v + self.footer.rows) as usize]);
                    match c.ty {
                        FieldType::String => Accessor::Str(self, c, valid),
                        FieldType::Int => Accessor::Int(self.u64s(c.values, self.footer.rows), valid),
                        FieldType::Float => Accessor::Float(self.u64s(c.values, self.footer.rows), valid),
                        FieldType::Bool => Accessor::Bool(self.u64s(c.values, self.footer.rows), valid),
                    }
                }
            },
        }
    }

    /// Row `r`'s user field values, as (name, value) pairs, nulls left out.
    pub fn user_fields(&self, r: usize) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for c in self.footer.columns.iter().filter(|c| c.validity.is_some()) {
            let v = match self.accessor(&c.name).get(r) {
                ValueRef::Null => continue,
                ValueRef::Str(s) => Value::Str(s.to_string()),
                ValueRef::Int(i) => Value::Int(i),
                ValueRef::Float(f) => Value::Float(f),
                ValueRef::Bool(b) => Value::Bool(b),
            };
            out.push((c.name.clone(), v));
        }
        out
    }
}

/// A segment's scan codes, in place in its mapping.
#[derive(Debug, Clone, Copy)]
pub struct SegmentCodes<'a> {
    /// Bytes per row.
    pub stride: usize,
    /// `rows × stride` codes.
    pub codes: &'a [u8],
    /// Per-row scales.
    pub scale: &'a [f32],
    /// Per-row `R`.
    pub resid: &'a [f32],
    /// Per-row `E`.
    pub err: &'a [f32],
    /// The segment's mean.
    pub mean: &'a [f32],
}

/// Reads one column of a segment for filter evaluation.
pub enum Accessor<'a> {
    /// The same value for every row (source; absent columns).
    Const(ValueRef<'a>),
    /// The segment's day as text.
    Day(String),
    /// A string column.
    Str(&'a Segment, &'a ColumnLayout, Option<&'a [u8]>),
    /// An int column.
    Int(&'a [u64], Option<&'a [u8]>),
    /// A float column (f64 bits).
    Float(&'a [u64], Option<&'a [u8]>),
    /// A bool column.
    Bool(&'a [u64], Option<&'a [u8]>),
}

impl Accessor<'_> {
    /// The value at row `r`.
    pub fn get(&self, r: usize) -> ValueRef<'_> {
        let null = |v: &Option<&[u8]>| v.is_some_and(|v| v[r] == 0);
        match self {
            Accessor::Const(v) => *v,
            Accessor::Day(d) => ValueRef::Str(d),
            Accessor::Str(seg, c, v) => {
                if null(v) {
                    ValueRef::Null
                } else {
                    ValueRef::Str(seg.str_at(c, r))
                }
            }
            Accessor::Int(x, v) => {
                if null(v) {
                    ValueRef::Null
                } else {
                    ValueRef::Int(x[r] as i64)
                }
            }
            Accessor::Float(x, v) => {
                if null(v) {
                    ValueRef::Null
                } else {
                    ValueRef::Float(f64::from_bits(x[r]))
                }
            }
            Accessor::Bool(x, v) => {
                if null(v) {
                    ValueRef::Null
                } else {
                    ValueRef::Bool(x[r] != 0)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an `n`-row segment at `path`; returns its ids and vectors.
    fn small_segment(path: &Path, n: usize, dim: usize) -> (Vec<String>, Vec<f32>) {
        let vectors: Vec<f32> = (0..n * dim).map(|i| (i % 7) as f32 - 3.0).collect();
        let ids: Vec<String> = (0..n).map(|i| format!("row-{i}")).collect();
        let rows: Vec<RowRef<'_>> = (0..n)
            .map(|i| RowRef {
                id: &ids[i],
                uri: "u",
                timestamp: 0,
                fields: &[],
                vector: &vectors[i * dim..(i + 1) * dim],
            })
            .collect();
        write_segment(path, "s", Day::from_timestamp(0), dim, &[], &rows).unwrap();
        (ids, vectors)
    }

    #[test]
    fn a_bad_string_offset_reads_as_a_replacement_and_check_names_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.vseg");
        let (ids, _) = small_segment(&path, 10, 8);
        let at = {
            let seg = Segment::open(&path).unwrap();
            seg.verify().unwrap();
            seg.column("id").unwrap().values as usize
        };
        // Row 3's end offset points far past the id bytes.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at + 4 * 8..at + 5 * 8].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();

        // Opening does not walk the offsets; reads through the bad one are not a panic.
        let seg = Segment::open(&path).unwrap();
        assert_eq!(seg.id(3), "\u{fffd}");
        assert_eq!(seg.id(4), "\u{fffd}");
        for r in [0, 1, 2, 5, 9] {
            assert_eq!(seg.id(r), ids[r]);
        }
        let err = seg.verify().unwrap_err().to_string();
        assert!(err.contains("string column \"id\" has invalid offsets"), "{err}");
    }

    /// The kernel flags of the mapping that holds `path`, from `/proc/self/smaps`.
    #[cfg(target_os = "linux")]
    fn vm_flags(path: &Path) -> Vec<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let name = path.to_str().unwrap();
        let mut lines = smaps.lines().skip_while(|l| !l.ends_with(name));
        lines
            .find_map(|l| l.strip_prefix("VmFlags:"))
            .map(|f| f.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_segment_is_mapped_for_huge_pages_and_single_misses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.vseg");
        small_segment(&path, 100, 8);
        let seg = Segment::open(&path).unwrap();
        let flags = vm_flags(&path);
        // hg: MADV_HUGEPAGE; rr: MADV_RANDOM (see `advise_pages`). A kernel built without
        // transparent huge pages refuses the first; it must still map the file.
        let thp = std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists();
        assert!(flags.iter().any(|f| f == "rr"), "{flags:?}");
        assert!(!thp || flags.iter().any(|f| f == "hg"), "{flags:?}");
        assert_eq!(seg.id(99), "row-99");
    }

    #[test]
    fn a_vector_read_is_cached_and_prefetching_any_row_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.vseg");
        let (n, dim) = (3000, 96);
        let (_, vectors) = small_segment(&path, n, dim);
        let seg = Segment::open(&path).unwrap();
        for r in [0, 1, n / 2, n - 1] {
            seg.prefetch_vector(r);
            // Reading a row faults its pages in; mincore must then see them.
            assert_eq!(seg.vector(r), &vectors[r * dim..(r + 1) * dim]);
            assert!(seg.vector_cached(r), "row {r}");
        }
    }
}
