//! Checksummed JSON lines: the engine's logs beside a collection (the indexing ledger, legal
//! holds, tombstones, prompt sets, watchlist alerts) end every record with its own CRC-32:
//!
//! ```text
//! {"id":"h1","why":"case 7","crc32":"5d2e0f1a"}
//! ```
//!
//! The checksum covers the line as it would read without its `crc32` member, so a line stays
//! one JSON object that `jq` reads, and a bit flipped anywhere in it (even one that still
//! parses: a digit of a day) is caught. Lines written before checksums have none and are read
//! as they are; once a log has a checksummed line, a later line without one is damage.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

const KEY: &str = "\"crc32\":\"";

/// The line that records `v`: its JSON, its checksum, a newline.
pub(crate) fn line<T: Serialize>(v: &T) -> String {
    let json = serde_json::to_string(v).expect("log records serialise");
    let body = json.strip_suffix('}').expect("log records are JSON objects");
    let sep = if body.ends_with('{') { "" } else { "," };
    format!("{body}{sep}{KEY}{:08x}\"}}\n", crc32fast::hash(json.as_bytes()))
}

/// Whether `line` carries a checksum, and whether it matches.
fn verify(line: &str) -> std::result::Result<bool, String> {
    let Some(at) = line.rfind(KEY) else {
        // A line from before checksums, unless it ends like a sealed one whose member name
        // took a flipped bit ("crc33"): no record has such a member.
        let b = line.as_bytes();
        if b.len() >= 20 && b[b.len() - 20..b.len() - 18] == *b",\"" && b[b.len() - 13..b.len() - 10] == *b"\":\"" {
            let name = &b[b.len() - 18..b.len() - 13];
            let bits: u32 = name.iter().zip(b"crc32").map(|(x, y)| (x ^ y).count_ones()).sum();
            if bits == 1 {
                return Err("the checksum's name is damaged".into());
            }
        }
        return Ok(false);
    };
    let tail = &line[at + KEY.len()..];
    let hex = tail
        .strip_suffix("\"}")
        .filter(|h| h.len() == 8 && h.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
        .ok_or("the checksum is not 8 lowercase hex digits closing the line")?;
    let want = u32::from_str_radix(hex, 16).map_err(|_| format!("checksum {hex:?} is not hexadecimal"))?;
    let head = &line[..at];
    let body = head.strip_suffix(',').unwrap_or(head);
    let got = crc32fast::hash(format!("{body}}}").as_bytes());
    if got != want {
        return Err("checksum mismatch (the line was altered)".into());
    }
    Ok(true)
}

fn damaged(path: &Path, line: usize, why: impl std::fmt::Display) -> Error {
    Error::damaged(path, format!("line {line}: {why}"))
}

/// Checks and parses line `i` (0-based) of the log at `path`; `sealed` says whether an earlier
/// line carried a checksum, and is updated.
pub(crate) fn record<T: DeserializeOwned>(path: &Path, i: usize, line: &str, sealed: &mut bool) -> Result<T> {
    match verify(line) {
        Ok(true) => *sealed = true,
        Ok(false) if *sealed => return Err(damaged(path, i + 1, "no checksum, after lines that have one")),
        Ok(false) => {}
        Err(why) => return Err(damaged(path, i + 1, why)),
    }
    serde_json::from_str(line).map_err(|e| damaged(path, i + 1, e))
}

/// The text of the log at `path` (empty if there is none yet).
pub(crate) fn read_text(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The records of the log at `path`, in order. A torn last line (a crash while appending) is
/// not a record; any other damaged or unreadable line is an error naming the file and line.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = read_text(path)?;
    let torn = !text.is_empty() && !text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut sealed = false;
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match record(path, i, l, &mut sealed) {
            Ok(r) => out.push(r),
            Err(_) if torn && i + 1 == lines.len() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// What is wrong with the log at `path`, strictly, for `vitrine check`: every damaged line, and
/// a torn last line (an interrupted append, or damage: the two cannot be told apart).
pub(crate) fn problems(path: &Path) -> Vec<String> {
    let text = match read_text(path) {
        Ok(t) => t,
        Err(e) => return vec![e.to_string()],
    };
    let mut out = Vec::new();
    let mut sealed = false;
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        if let Err(e) = record::<serde_json::Value>(path, i, l, &mut sealed) {
            out.push(e.to_string());
        }
    }
    if !text.is_empty() && !text.ends_with('\n') {
        out.push(damaged(path, lines.len(), "torn: the file does not end with a whole line").to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_line_is_one_json_object_and_every_flipped_bit_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let rec = serde_json::json!({"id": "h1", "day": "2023-11-19", "n": 17, "why": "a \"quoted\" crc32"});
        let l = line(&rec);
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["n"], 17);
        assert!(v["crc32"].is_string());
        let legacy = format!("{}\n", serde_json::to_string(&rec).unwrap());
        std::fs::write(&path, format!("{legacy}{l}{l}")).unwrap();
        assert_eq!(read::<serde_json::Value>(&path).unwrap().len(), 3);
        assert!(problems(&path).is_empty());
        let good = std::fs::read(&path).unwrap();
        let mut caught = 0;
        for i in legacy.len()..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                std::fs::write(&path, &bad).unwrap();
                let p = problems(&path);
                assert!(
                    !p.is_empty(),
                    "byte {i} ({:?}) bit {bit} went unnoticed",
                    good[i] as char
                );
                assert!(p.iter().all(|p| p.contains("log.jsonl")), "{p:?}");
                caught += 1;
            }
        }
        assert_eq!(caught, (good.len() - legacy.len()) * 8);
    }

    #[test]
    fn a_line_without_a_checksum_after_sealed_ones_is_damage_and_a_torn_tail_is_skipped_by_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let a = line(&serde_json::json!({"k": 1}));
        std::fs::write(&path, format!("{a}{{\"k\":2}}\n")).unwrap();
        let e = read::<serde_json::Value>(&path).unwrap_err().to_string();
        assert!(e.contains("line 2: no checksum"), "{e}");
        std::fs::write(&path, format!("{a}{}", &a[..a.len() - 5])).unwrap();
        assert_eq!(read::<serde_json::Value>(&path).unwrap().len(), 1);
        assert!(problems(&path).iter().any(|p| p.contains("torn")));
        assert_eq!(
            line(&serde_json::json!({})),
            format!("{{{KEY}{:08x}\"}}\n", crc32fast::hash(b"{}"))
        );
    }
}
