//! `.npy` files: a small header then a C-order matrix. Memory-mapped, never loaded whole.

use crate::{invalid, Error, Result};
use memmap2::Mmap;
use std::path::{Path, PathBuf};

/// Element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `<f4`
    F32,
    /// `<f2`
    F16,
}

/// A memory-mapped `.npy` matrix of shape `(rows, dim)` (a 1-D array is one row).
pub struct Npy {
    path: PathBuf,
    map: Mmap,
    offset: usize,
    dtype: Dtype,
    rows: usize,
    dim: usize,
}

impl Npy {
    /// Opens and validates `path`.
    pub fn open(path: &Path) -> Result<Npy> {
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // SAFETY: the file is only read; a concurrent truncation is outside our contract.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |m: String| invalid(path, m);
        if map.len() < 10 || &map[..6] != b"\x93NUMPY" {
            return Err(bad("not a .npy file (missing the \\x93NUMPY magic)".into()));
        }
        let (hlen, start) = match map[6] {
            1 => (u16::from_le_bytes([map[8], map[9]]) as usize, 10),
            2 | 3 if map.len() >= 12 => (u32::from_le_bytes(map[8..12].try_into().unwrap()) as usize, 12),
            v => return Err(bad(format!("unsupported .npy format version {v}"))),
        };
        if map.len() < start + hlen {
            return Err(bad("truncated .npy header".into()));
        }
        let header = std::str::from_utf8(&map[start..start + hlen]).map_err(|_| bad("header is not text".into()))?;
        let descr = dict_value(header, "descr").ok_or_else(|| bad(format!("header has no 'descr': {header}")))?;
        let descr = descr.trim_matches(|c| c == '\'' || c == '"');
        let dtype = match descr {
            "<f4" | "=f4" | "f4" => Dtype::F32,
            "<f2" | "=f2" | "f2" => Dtype::F16,
            other => {
                return Err(bad(format!(
                    "dtype {other:?} is not supported: vectors must be little-endian float32 (<f4) or float16 (<f2)"
                )))
            }
        };
        let fortran = dict_value(header, "fortran_order").unwrap_or("False");
        if fortran.starts_with("True") {
            return Err(bad(
                "array is in Fortran order; save it in C order (np.ascontiguousarray)".into(),
            ));
        }
        let shape = dict_value(header, "shape").ok_or_else(|| bad("header has no 'shape'".into()))?;
        let dims: Vec<usize> = shape
            .trim_matches(|c| c == '(' || c == ')')
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().map_err(|_| bad(format!("invalid shape {shape}"))))
            .collect::<Result<_>>()?;
        let (rows, dim) = match dims.as_slice() {
            [d] => (1, *d),
            [n, d] => (*n, *d),
            _ => return Err(bad(format!("shape {shape} is not a vector or a matrix"))),
        };
        if dim == 0 {
            return Err(bad("vectors have dimension 0".into()));
        }
        let offset = start + hlen;
        let size = if dtype == Dtype::F32 { 4 } else { 2 };
        let want = rows
            .checked_mul(dim)
            .and_then(|x| x.checked_mul(size))
            .ok_or_else(|| bad("shape overflows".into()))?;
        let have = map.len() - offset;
        if have < want {
            return Err(bad(format!(
                "truncated: shape ({rows}, {dim}) needs {want} bytes of data, the file has {have} (about {} complete rows)",
                have / (dim * size)
            )));
        }
        if have > want {
            return Err(bad(format!(
                "{} bytes of trailing data after the ({rows}, {dim}) array",
                have - want
            )));
        }
        Ok(Npy {
            path: path.to_path_buf(),
            map,
            offset,
            dtype,
            rows,
            dim,
        })
    }

    /// Number of vectors.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies rows `range` into `out` as f32 (replacing its contents).
    pub fn read_rows(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        out.clear();
        self.append_rows(range, out);
    }

    /// Hands the pages of rows `range` back to the kernel once they have been copied out: an
    /// import reads each row once or twice, and without this a 10 GiB file stays resident in
    /// the process (10 GiB of RSS, charged to its cgroup) until the import ends. The pages stay
    /// in the page cache; a later read faults them back in.
    pub fn release(&self, range: std::ops::Range<usize>) {
        let width = match self.dtype {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        };
        let (a, b) = (range.start * self.dim * width, range.end * self.dim * width);
        if b > a {
            // SAFETY: a shared, read-only mapping of a file: MADV_DONTNEED only drops our page
            // table entries, and the next access reads the same bytes from the page cache.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, self.offset + a, b - a)
            };
        }
    }

    /// Rows `range`, widened to f32, appended to `out`.
    pub fn append_rows(&self, range: std::ops::Range<usize>, out: &mut Vec<f32>) {
        let (a, b) = (range.start * self.dim, range.end * self.dim);
        match self.dtype {
            Dtype::F32 => {
                let bytes = &self.map[self.offset + a * 4..self.offset + b * 4];
                out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())));
            }
            Dtype::F16 => {
                let bytes = &self.map[self.offset + a * 2..self.offset + b * 2];
                out.extend(
                    bytes
                        .chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
                );
            }
        }
    }
}

/// The raw text of `key`'s value in a Python dict literal such as the .npy header.
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let k = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[k + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Writes `rows × dim` f32 values as a `.npy` file (used by tests, benchmarks and `vitrine demo`).
pub fn write_f32(path: &Path, data: &[f32], rows: usize, dim: usize) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    f.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    f.write_all(&(header.len() as u16).to_le_bytes()).map_err(io)?;
    f.write_all(header.as_bytes()).map_err(io)?;
    for v in data {
        f.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    f.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_f32_and_f16_and_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_f32(&p, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3).unwrap();
        let n = Npy::open(&p).unwrap();
        assert_eq!((n.rows(), n.dim(), n.dtype()), (2, 3, Dtype::F32));
        let mut v = Vec::new();
        n.read_rows(1..2, &mut v);
        assert_eq!(v, vec![4.0, 5.0, 6.0]);

        // float16: same header with <f2
        let mut bytes = std::fs::read(&p).unwrap();
        let end = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let h = String::from_utf8_lossy(&bytes[10..end]).replace("<f4", "<f2");
        bytes.splice(10..end, h.bytes());
        bytes.truncate(end);
        for x in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5] {
            bytes.extend(half::f16::from_f32(x).to_le_bytes());
        }
        let p16 = dir.path().join("h.npy");
        std::fs::write(&p16, &bytes).unwrap();
        let n = Npy::open(&p16).unwrap();
        n.read_rows(1..2, &mut v);
        assert_eq!(v, vec![4.0, 5.0, 6.5]);

        let full = std::fs::read(&p).unwrap();
        let t = dir.path().join("t.npy");
        std::fs::write(&t, &full[..full.len() - 5]).unwrap();
        let e = Npy::open(&t).err().unwrap().to_string();
        assert!(e.contains("t.npy") && e.contains("truncated"), "{e}");

        let i = dir.path().join("i.npy");
        let h = String::from_utf8_lossy(&full[10..end]).replace("<f4", "<i4");
        let mut b = full.clone();
        b.splice(10..end, h.bytes());
        std::fs::write(&i, &b).unwrap();
        let e = Npy::open(&i).err().unwrap().to_string();
        assert!(e.contains("\"<i4\" is not supported"), "{e}");

        let j = dir.path().join("j.npy");
        std::fs::write(&j, b"{\"not\": \"npy\"}").unwrap();
        assert!(Npy::open(&j).err().unwrap().to_string().contains("not a .npy file"));
    }
}
