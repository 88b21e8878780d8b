//! What an indexing run will read: image files under folders, or the rows of a manifest, and
//! the inputs known to fail before any image is read (bad manifest rows, missing files).

use crate::error::Result;
use std::path::{Path, PathBuf};
use vitrine_store::{Day, Value};

const EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif",
];

/// Image files under `paths` (files as given, folders recursively, by extension), sorted, and
/// the paths that could not be listed (missing, unreadable folders) with the reason: a folder
/// that cannot be read is reported, never silently skipped.
pub fn walk(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    fn visit(p: &Path, out: &mut Vec<PathBuf>, bad: &mut Vec<(PathBuf, String)>) {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(rd) => {
                    for e in rd {
                        match e {
                            Ok(e) => visit(&e.path(), out, bad),
                            Err(e) => bad.push((p.to_path_buf(), format!("cannot list folder: {e}"))),
                        }
                    }
                }
                Err(e) => bad.push((p.to_path_buf(), format!("cannot list folder: {e}"))),
            }
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(p.to_path_buf());
        }
    }
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else if p.exists() {
            visit(p, &mut out, &mut bad);
        } else {
            bad.push((p.clone(), "no such file or folder".into()));
        }
    }
    out.sort();
    out.dedup();
    (out, bad)
}

/// One image to index and what is known about it before it is read.
#[derive(Debug, Clone)]
pub struct Input {
    /// The local file.
    pub path: PathBuf,
    /// The uri stored in the row (the manifest's, or the file's absolute path).
    pub uri: String,
    /// Data source.
    pub source: String,
    /// From the manifest, if it gave one.
    pub timestamp: Option<i64>,
    /// From the manifest, if it gave one.
    pub id: Option<String>,
    /// User field values, aligned with the plan's field names.
    pub fields: Vec<Value>,
    /// Where the input came from, for messages ("m.csv line 7", or the path).
    pub origin: String,
}

/// An input that could not be indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Where it came from ("m.csv line 7", or the path).
    pub origin: String,
    /// Its uri, if known.
    pub uri: Option<String>,
    /// Its source, if known.
    pub source: Option<String>,
    /// Its day, if known.
    pub day: Option<Day>,
    /// A short category: "missing file", "bad manifest row", "not an image", "too large", …
    pub kind: &'static str,
    /// The full reason.
    pub reason: String,
}

impl Failure {
    /// The ledger's entry for this failure (keyed by its uri, or where it came from).
    pub fn ledger_entry(&self) -> crate::ledger::LedgerEntry {
        crate::ledger::LedgerEntry {
            uri: self.uri.clone().unwrap_or_else(|| self.origin.clone()),
            source: self.source.clone().unwrap_or_default(),
            day: self.day,
            state: crate::ledger::State::Failed,
            reason: Some(self.reason.clone()),
        }
    }
}

/// What to index: the inputs, the user fields they carry, and the inputs already known to fail
/// (bad manifest rows, missing files).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Inputs to index.
    pub inputs: Vec<Input>,
    /// User field names the inputs' values follow.
    pub field_names: Vec<String>,
    /// Inputs that failed before reading an image.
    pub failures: Vec<Failure>,
}

/// Folder inputs, all from `source`.
pub fn inputs_from_paths(paths: &[PathBuf], source: &str) -> Plan {
    let (files, bad) = walk(paths);
    let failures = bad
        .into_iter()
        .map(|(p, reason)| Failure {
            origin: p.display().to_string(),
            uri: None,
            source: Some(source.to_string()),
            day: None,
            kind: "unreadable",
            reason,
        })
        .collect();
    let inputs = files
        .into_iter()
        .map(|p| {
            let abs = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            Input {
                uri: abs.display().to_string(),
                origin: p.display().to_string(),
                path: p,
                source: source.to_string(),
                timestamp: None,
                id: None,
                fields: vec![],
            }
        })
        .collect();
    Plan {
        inputs,
        failures,
        ..Plan::default()
    }
}

/// Inputs of a manifest (`.csv` or `.jsonl`): columns `uri` (a path, relative to the manifest's
/// folder, or `file://`), `source` (else `default_source`), `timestamp` (RFC 3339, unix seconds
/// or YYYY-MM-DD; else EXIF, else mtime), optional `id`, and user fields. Each unusable row
/// becomes a failure naming its line.
pub fn inputs_from_manifest(manifest: &Path, default_source: Option<&str>) -> Result<Plan> {
    let (table, bad) = vitrine_import::metadata::read_lenient(manifest)?;
    let name = manifest.display().to_string();
    let base = manifest.parent().unwrap_or(Path::new("."));
    let mut failures: Vec<Failure> = bad
        .into_iter()
        .map(|(line, e)| Failure {
            origin: format!("{name} line {line}"),
            uri: None,
            source: None,
            day: None,
            kind: "bad manifest row",
            reason: e.to_string(),
        })
        .collect();
    let mut inputs = Vec::with_capacity(table.rows.len());
    for row in table.rows {
        let origin = format!("{name} {} {}", table.row_label, row.line.unwrap_or(0));
        let day = row.timestamp.map(Day::from_timestamp);
        let fail = |kind, reason: String| Failure {
            origin: origin.clone(),
            uri: row.uri.clone(),
            source: row.source.clone().or(default_source.map(str::to_string)),
            day,
            kind,
            reason: format!("{origin}: {reason}"),
        };
        let Some(uri) = row.uri.clone() else {
            failures.push(fail("bad manifest row", "no uri".into()));
            continue;
        };
        let Some(source) = row.source.clone().or(default_source.map(str::to_string)) else {
            failures.push(fail(
                "bad manifest row",
                "no source (add a source column or pass --source)".into(),
            ));
            continue;
        };
        if let Err(e) = vitrine_store::check_name("source", &source) {
            failures.push(fail("bad manifest row", e.to_string()));
            continue;
        }
        if let Some(t) = row.timestamp {
            if let Err(e) = vitrine_store::check_timestamp(t) {
                failures.push(fail("bad manifest row", e.to_string()));
                continue;
            }
        }
        if uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("s3://") {
            failures.push(fail(
                "remote uri",
                format!("{uri}: remote images are not fetched (vitrine never uses the network); copy them locally"),
            ));
            continue;
        }
        let local = uri.strip_prefix("file://").unwrap_or(&uri);
        let path = if Path::new(local).is_absolute() {
            PathBuf::from(local)
        } else {
            base.join(local)
        };
        if !path.is_file() {
            failures.push(fail("missing file", format!("{}: no such file", path.display())));
            continue;
        }
        inputs.push(Input {
            path,
            uri,
            source,
            timestamp: row.timestamp,
            id: row.id,
            fields: row.fields,
            origin,
        });
    }
    Ok(Plan {
        inputs,
        field_names: table.field_names,
        failures,
    })
}
