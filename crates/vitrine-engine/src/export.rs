//! Evidence export: the rows of a case as one zip that can be verified later.
//!
//! A package holds, for every row: the original file as it is now (or, where it is gone, the
//! thumbnail stored at index time, and the package says so), its metadata, and whether the
//! original still has the bytes that were indexed (the BLAKE3 `content_hash` recorded by
//! `index`); plus what asked for the rows (the sweep, or the hits file and its hash), the model
//! and its weights hash, the recall receipt, and `MANIFEST.sha256`: the SHA-256 of every other
//! file, in `sha256sum` format, so `vitrine export --verify` (or `sha256sum -c`) can show later
//! that nothing was changed. The zip is written beside its destination and renamed into place
//! once complete and synced: a package either exists whole or not at all.

use crate::error::{Error, Result};
use crate::index::CONTENT_HASH_FIELD;
use crate::query::{visible_fields, SweepRequest};
use crate::receipt::Receipt;
use crate::thumbnail::{decode_stored, THUMBNAIL_FIELD};
use crate::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// The name of the checksum list inside a package.
pub const MANIFEST: &str = "MANIFEST.sha256";

/// Which rows go into the package.
#[derive(Debug, Clone)]
pub enum ExportRows {
    /// A CSV with an `id` column (as `search --format csv` and `sweep --out` write; `score`,
    /// `prompt` or `query` columns are carried along).
    HitsFile(PathBuf),
    /// The rows a sweep finds (run now; its receipt goes into the package).
    Sweep(Box<SweepRequest>),
}

/// An export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The collection.
    pub collection: String,
    /// The rows.
    pub rows: ExportRows,
    /// Why the package was made (a case number).
    pub reason: Option<String>,
    /// Who made it.
    pub by: Option<String>,
    /// The command line that asked for it, recorded as given.
    pub command: Option<String>,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// Rows in the package.
    pub rows: usize,
    /// Originals included.
    pub originals: usize,
    /// Of those, originals whose bytes differ from what was indexed.
    pub changed: usize,
    /// Rows whose original is gone, shown by their stored thumbnail.
    pub thumbnails: usize,
    /// Rows with neither original nor thumbnail.
    pub missing: usize,
    /// Ids asked for that no live row has (listed in the metadata as such).
    pub not_found: Vec<String>,
    /// Files in the package (the manifest included).
    pub files: usize,
    /// The SHA-256 of `MANIFEST.sha256`: one value that pins the whole package.
    pub manifest_sha256: String,
}

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Files whose checksum was compared.
    pub files: usize,
    /// The SHA-256 of `MANIFEST.sha256`.
    pub manifest_sha256: String,
    /// Every file that is missing, altered or not listed (empty: the package is intact).
    pub problems: Vec<String>,
}

/// One row asked for, as the hits file or sweep named it.
struct Wanted {
    id: String,
    score: Option<String>,
    query: Option<String>,
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A file name that is safe inside a zip and on any disk: the uri's last part, reduced to
/// letters, digits, `.`, `-` and `_`.
fn safe_name(uri: &str) -> String {
    let last = uri.rsplit(['/', '\\']).next().unwrap_or(uri);
    let s: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "file".into()
    } else {
        s
    }
}

/// The rows a hits file names, in its order, each id once.
fn read_hits(path: &Path) -> Result<Vec<Wanted>> {
    let name = path.display().to_string();
    let mut r = csv::Reader::from_path(path).map_err(|e| Error::invalid(format!("{name}: {e}")))?;
    let headers = r.headers().map_err(|e| Error::invalid(format!("{name}: {e}")))?.clone();
    let col = |n: &str| headers.iter().position(|h| h == n);
    let id = col("id").ok_or_else(|| {
        Error::invalid(format!(
            "{name}: no `id` column (its columns: {})",
            headers.iter().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let (score, query) = (col("score"), col("prompt").or_else(|| col("query")));
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| Error::invalid(format!("{name} line {}: {e}", i + 2)))?;
        let v = rec.get(id).unwrap_or_default().to_string();
        if v.is_empty() {
            return Err(Error::invalid(format!("{name} line {}: empty id", i + 2)));
        }
        if seen.insert(v.clone()) {
            out.push(Wanted {
                id: v,
                score: score.and_then(|c| rec.get(c)).map(String::from),
                query: query.and_then(|c| rec.get(c)).map(String::from),
            });
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(format!("{name}: names no rows")));
    }
    Ok(out)
}

/// A zip being written: every entry's SHA-256 is noted for the manifest.
struct Package {
    zip: zip::ZipWriter<std::fs::File>,
    sums: Vec<(String, String)>,
    /// The package's destination, for errors.
    out: PathBuf,
}

impl Package {
    fn add(&mut self, name: &str, bytes: &[u8], compress: bool) -> Result<String> {
        let method = if compress {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let opts = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        self.zip.start_file(name, opts).map_err(|e| zip_error(&self.out, e))?;
        self.zip.write_all(bytes).map_err(|e| io_error(&self.out, e))?;
        let sum = hex(Sha256::digest(bytes));
        self.sums.push((name.to_string(), sum.clone()));
        Ok(sum)
    }
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn zip_error(path: &Path, e: zip::result::ZipError) -> Error {
    match e {
        zip::result::ZipError::Io(e) => io_error(path, e),
        other => Error::invalid(format!("{}: {other}", path.display())),
    }
}

fn json(v: &serde_json::Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s.into_bytes()
}

impl Engine {
    /// Writes the evidence package for `req` to `out` (which must not exist yet).
    pub fn export(&self, req: &ExportRequest, out: &Path) -> Result<ExportReport> {
        if out.exists() {
            return Err(Error::invalid(format!(
                "{} already exists: an evidence package is never overwritten",
                out.display()
            )));
        }
        let reader = self.reader(&req.collection)?;
        // 1. The rows, and what asked for them.
        let mut query = serde_json::json!({
            "collection": req.collection,
            "created_utc": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "by": req.by,
            "reason": req.reason,
            "command": req.command,
            "vitrine": env!("CARGO_PKG_VERSION"),
        });
        let (wanted, receipt): (Vec<Wanted>, Option<Receipt>) = match &req.rows {
            ExportRows::HitsFile(path) => {
                let bytes = std::fs::read(path).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
                query["hits_file"] = serde_json::json!({
                    "path": path.display().to_string(),
                    "sha256": hex(Sha256::digest(&bytes)),
                });
                (read_hits(path)?, None)
            }
            ExportRows::Sweep(sweep) => {
                if sweep.collection != req.collection {
                    return Err(Error::invalid("the sweep names another collection than the export"));
                }
                let ans = self.sweep(sweep)?;
                query["sweep"] = serde_json::json!({
                    "prompts": sweep.prompts,
                    "not": sweep.negatives.prompts,
                    "not_margin": sweep.negatives.margin,
                    "threshold": sweep.threshold,
                    "top": sweep.top,
                    "selection": format!("{:?}", sweep.selection),
                    "warnings": ans.warnings,
                });
                let wanted = ans
                    .hits
                    .iter()
                    .map(|h| Wanted {
                        id: h.id.clone(),
                        score: Some(h.score.to_string()),
                        query: Some(ans.prompts[h.query].clone()),
                    })
                    .collect();
                (wanted, Some(ans.receipt))
            }
        };
        let ids: Vec<String> = wanted.iter().map(|w| w.id.clone()).collect();
        let mut fields = visible_fields(reader.schema());
        let has = |f: &str| reader.schema().field_type(f).is_some();
        let extra: Vec<String> = [CONTENT_HASH_FIELD, THUMBNAIL_FIELD]
            .iter()
            .filter(|f| has(f))
            .map(|f| f.to_string())
            .collect();
        let shown = fields.clone();
        fields.extend(extra);
        let records = reader.get(&ids, &fields, false)?;

        // 2. The package, written beside its destination.
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".vitrine-export-")
            .tempfile_in(dir)
            .map_err(|e| Error::invalid(format!("{}: cannot write there: {e}", dir.display())))?;
        let mut pkg = Package {
            zip: zip::ZipWriter::new(tmp.reopen().map_err(|e| io_error(out, e))?),
            sums: Vec::new(),
            out: out.to_path_buf(),
        };
        let mut report = ExportReport::default();
        let mut meta = csv::Writer::from_writer(Vec::new());
        let mut header = vec![
            "n",
            "id",
            "source",
            "day",
            "timestamp",
            "uri",
            "score",
            "query",
            "file",
            "file_sha256",
            "status",
        ];
        header.extend(shown.iter().map(String::as_str));
        meta.write_record(&header).map_err(|e| Error::invalid(e.to_string()))?;
        for (n, (w, rec)) in wanted.iter().zip(records).enumerate() {
            let n = n + 1;
            let Some(rec) = rec else {
                report.not_found.push(w.id.clone());
                let mut row = vec![n.to_string(), w.id.clone()];
                row.extend(["", "", "", ""].map(String::from));
                row.extend([w.score.clone().unwrap_or_default(), w.query.clone().unwrap_or_default()]);
                row.extend(["".into(), "".into(), "not found: no live row has this id".into()]);
                row.extend(shown.iter().map(|_| String::new()));
                meta.write_record(&row).map_err(|e| Error::invalid(e.to_string()))?;
                continue;
            };
            report.rows += 1;
            let path = Path::new(rec.uri.strip_prefix("file://").unwrap_or(&rec.uri));
            let original = if rec.uri.contains("://") && !rec.uri.starts_with("file://") {
                Err("not a local file".to_string())
            } else {
                crate::read_image_file(path).map_err(|e| e.to_string())
            };
            let indexed = rec.fields.get(CONTENT_HASH_FIELD).and_then(|v| match v {
                vitrine_store::Value::Str(s) => Some(s.clone()),
                _ => None,
            });
            let (file, sum, status) = match original {
                Ok(bytes) => {
                    report.originals += 1;
                    let name = format!("originals/{n:06}-{}", safe_name(&rec.uri));
                    let sum = pkg.add(&name, &bytes, false)?;
                    let status = match &indexed {
                        Some(h) if blake3::hash(&bytes).to_hex()[..h.len().min(64)] == *h => {
                            "original; its bytes are the ones indexed (BLAKE3 matches)".to_string()
                        }
                        Some(_) => {
                            report.changed += 1;
                            "original; CHANGED since it was indexed (BLAKE3 differs)".to_string()
                        }
                        None => "original (no hash recorded at import to compare with)".to_string(),
                    };
                    (name, sum, status)
                }
                Err(why) => match rec.fields.get(THUMBNAIL_FIELD).and_then(decode_stored) {
                    Some(jpeg) => {
                        report.thumbnails += 1;
                        let name = format!("thumbnails/{n:06}-{}.jpg", safe_name(&rec.id));
                        let sum = pkg.add(&name, &jpeg, false)?;
                        (
                            name,
                            sum,
                            format!("stored thumbnail only: the original is gone ({why})"),
                        )
                    }
                    None => {
                        report.missing += 1;
                        (
                            String::new(),
                            String::new(),
                            format!("no picture: the original is gone ({why}) and no thumbnail was stored"),
                        )
                    }
                },
            };
            let mut row = vec![
                n.to_string(),
                rec.id.clone(),
                rec.source.clone(),
                rec.day.to_string(),
                rec.timestamp.to_string(),
                rec.uri.clone(),
                w.score.clone().unwrap_or_default(),
                w.query.clone().unwrap_or_default(),
                file,
                sum,
                status,
            ];
            row.extend(shown.iter().map(|f| match rec.fields.get(f) {
                Some(vitrine_store::Value::Str(s)) => s.clone(),
                Some(vitrine_store::Value::Null) | None => String::new(),
                Some(v) => v.to_json().to_string(),
            }));
            meta.write_record(&row).map_err(|e| Error::invalid(e.to_string()))?;
        }
        let meta = meta.into_inner().map_err(|e| Error::invalid(e.to_string()))?;
        pkg.add("metadata.csv", &meta, true)?;
        pkg.add("query.json", &json(&query), true)?;
        let info = reader.info();
        let model = serde_json::json!({
            "model": info.get(crate::model::MODEL_KEY),
            "weights_blake3": info.get(crate::model::MODEL_HASH_KEY),
            "collection_info": info,
            "schema": {
                "dim": reader.schema().dim,
                "metric": format!("{:?}", reader.schema().metric).to_lowercase(),
            },
        });
        pkg.add("model.json", &json(&model), true)?;
        let receipt = match receipt {
            Some(r) => serde_json::to_value(r).unwrap_or_default(),
            None => serde_json::json!({"note": "the rows are those the hits file names; export ran no search"}),
        };
        pkg.add("receipt.json", &json(&receipt), true)?;
        let mut sums = std::mem::take(&mut pkg.sums);
        sums.sort();
        let manifest: String = sums.iter().map(|(name, sum)| format!("{sum}  {name}\n")).collect();
        report.files = sums.len() + 1;
        report.manifest_sha256 = hex(Sha256::digest(manifest.as_bytes()));
        pkg.add(MANIFEST, manifest.as_bytes(), true)?;
        let file = pkg.zip.finish().map_err(|e| zip_error(out, e))?;
        file.sync_all().map_err(|e| io_error(out, e))?;
        tmp.persist_noclobber(out).map_err(|e| io_error(out, e.error))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(report)
    }
}

/// Checks a package: every file in its manifest is there with the same SHA-256, and every file
/// there is in the manifest.
pub fn verify_export(path: &Path) -> Result<VerifyReport> {
    let name = path.display().to_string();
    let bad = |e: zip::result::ZipError| Error::invalid(format!("{name}: not a readable zip ({e})"));
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).map_err(|e| Error::invalid(format!("{name}: {e}")))?)
        .map_err(bad)?;
    let mut read = |entry: &str| -> Result<Option<Vec<u8>>> {
        let mut f = match zip.by_name(entry) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(bad(e)),
        };
        let mut bytes = Vec::new();
        match f.read_to_end(&mut bytes) {
            Ok(_) => Ok(Some(bytes)),
            // A damaged entry (its CRC-32 fails) is a finding about that file, not the end.
            Err(e) => Ok(Some(format!("unreadable: {e}").into_bytes())),
        }
    };
    let Some(manifest) = read(MANIFEST)? else {
        return Err(Error::invalid(format!(
            "{name}: no {MANIFEST}: not a vitrine evidence package"
        )));
    };
    let mut report = VerifyReport {
        manifest_sha256: hex(Sha256::digest(&manifest)),
        ..Default::default()
    };
    let text = String::from_utf8_lossy(&manifest).into_owned();
    let mut listed = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let Some((sum, entry)) = line.split_once("  ") else {
            report
                .problems
                .push(format!("{MANIFEST} line {}: not `SHA256  NAME`", i + 1));
            continue;
        };
        listed.insert(entry.to_string());
        report.files += 1;
        match read(entry)? {
            None => report
                .problems
                .push(format!("{entry}: listed in {MANIFEST} but missing")),
            Some(bytes) if hex(Sha256::digest(&bytes)) != sum => report
                .problems
                .push(format!("{entry}: altered (its SHA-256 is not the one in {MANIFEST})")),
            Some(_) => {}
        }
    }
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<std::result::Result<_, _>>()
        .map_err(bad)?;
    for n in names {
        if n != MANIFEST && !listed.contains(&n) {
            report
                .problems
                .push(format!("{n}: in the package but not in {MANIFEST}"));
        }
    }
    Ok(report)
}
