//! Deletion bitmaps: which rows of a segment are deleted.
//!
//! A segment never changes, so deletes are recorded beside it in a small file named after the
//! segment and the manifest version that wrote it (`seg-00000007.del-00000042`). A new delete
//! writes a new bitmap file and a new manifest; the old file is removed once no manifest names it.
//!
//! File: b"VDEL", u32 CRC-32 of the rest, u64 rows, then ⌈rows/64⌉ u64 words (bit set = deleted).

use crate::error::{IoContext, Result};
use crate::Error;
use std::path::Path;

/// A fixed-size set of row numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    rows: usize,
    words: Vec<u64>,
}

impl Bitmap {
    /// An empty set over `rows` rows.
    pub fn new(rows: usize) -> Bitmap {
        Bitmap {
            rows,
            words: vec![0; rows.div_ceil(64)],
        }
    }

    /// Is row `r` in the set?
    #[inline]
    pub fn contains(&self, r: usize) -> bool {
        self.words[r / 64] >> (r % 64) & 1 == 1
    }

    /// Adds row `r`; returns true if it was not in the set.
    pub fn insert(&mut self, r: usize) -> bool {
        let was = self.contains(r);
        self.words[r / 64] |= 1 << (r % 64);
        !was
    }

    /// Number of rows in the set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Writes the bitmap to `path` and fsyncs it.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut body = Vec::with_capacity(8 + self.words.len() * 8);
        body.extend_from_slice(&(self.rows as u64).to_le_bytes());
        for w in &self.words {
            body.extend_from_slice(&w.to_le_bytes());
        }
        let mut file = Vec::with_capacity(8 + body.len());
        file.extend_from_slice(b"VDEL");
        file.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        file.extend_from_slice(&body);
        let mut f = crate::fsio::create(path, false)?;
        crate::fsio::write(&mut f, path, &file).at(path)?;
        crate::fsio::sync(&f, path)
    }

    /// Reads a bitmap written by [`Bitmap::write`], checking it covers `rows` rows.
    pub fn read(path: &Path, rows: usize) -> Result<Bitmap> {
        Bitmap::read_covering(path, Some(rows))
    }

    /// Reads a bitmap without knowing its segment (when the manifest is unreadable, `check`
    /// still verifies every file on its own).
    pub fn read_alone(path: &Path) -> Result<Bitmap> {
        Bitmap::read_covering(path, None)
    }

    fn read_covering(path: &Path, rows: Option<usize>) -> Result<Bitmap> {
        let b = std::fs::read(path).at(path)?;
        let corrupt = |reason: &str| Error::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        if b.len() < 16 || &b[..4] != b"VDEL" {
            return Err(corrupt("not a deletion bitmap"));
        }
        let crc = u32::from_le_bytes(b[4..8].try_into().unwrap());
        if crc32fast::hash(&b[8..]) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        let n = u64::from_le_bytes(b[8..16].try_into().unwrap()) as usize;
        let rows = rows.unwrap_or(n);
        if n != rows || b.len() != 16 + rows.div_ceil(64) * 8 {
            return Err(corrupt("row count does not match its segment"));
        }
        let words = b[16..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(Bitmap { rows, words })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d");
        let mut b = Bitmap::new(130);
        assert!(b.insert(0));
        assert!(b.insert(129));
        assert!(!b.insert(129));
        assert_eq!(b.count(), 2);
        b.write(&p).unwrap();
        assert_eq!(Bitmap::read(&p, 130).unwrap(), b);
        assert!(Bitmap::read(&p, 131).is_err());
        let mut raw = std::fs::read(&p).unwrap();
        raw[20] ^= 1;
        std::fs::write(&p, raw).unwrap();
        assert!(Bitmap::read(&p, 130).unwrap_err().to_string().contains("checksum"));
    }
}
