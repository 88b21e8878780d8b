//! What an indexing run will read: image files under folders, or the rows of a manifest, and
//! the inputs known to fail before any image is read (bad manifest rows, missing files).

use crate::error::Result;
use std::path::{Path, PathBuf};
use vitrine_store::{Day, Value};

const EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif",
];

/// A path that is not an input, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The path.
    pub path: PathBuf,
    /// A short category ("not a regular file", "symlink loop", ...).
    pub kind: &'static str,
    /// The full reason.
    pub reason: String,
}

/// What a path that is not a folder is: a regular file (following links), or why not.
fn regular_file(path: &Path) -> Result<(), (&'static str, String)> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) => {
            let t = m.file_type();
            let what = if t.is_fifo() {
                "a named pipe (FIFO)"
            } else if t.is_socket() {
                "a socket"
            } else if t.is_char_device() {
                "a character device"
            } else if t.is_block_device() {
                "a block device"
            } else {
                "not a regular file"
            };
            Err((
                "not a regular file",
                format!("{}: {what}, not an image file", path.display()),
            ))
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            Err(("symlink loop", format!("{}: a loop of symbolic links", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::fs::symlink_metadata(path).is_ok() => Err((
            "dangling link",
            format!("{}: a symbolic link to something that does not exist", path.display()),
        )),
        Err(e) => Err(("unreadable", format!("{}: {e}", path.display()))),
    }
}

fn has_image_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Image files under `paths` (files as given, folders recursively through links, by
/// extension), sorted, and every path that is not an input with the reason, each named once:
/// folders that cannot be listed, named pipes, sockets, devices (also behind a link),
/// symlink loops, dangling links, and names that are not UTF-8 (a uri must keep the name
/// exactly). Nothing is opened here, so a pipe never blocks the walk.
pub fn walk(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Skipped>) {
    let skipped = |path: &Path, kind: &'static str, reason: String| Skipped {
        path: path.to_path_buf(),
        kind,
        reason,
    };
    // An entry that is not a folder: an input, nothing (not an image name), or skipped.
    let take = |p: &Path, explicit: bool| -> Result<Option<PathBuf>, Skipped> {
        if p.to_str().is_none() {
            return Err(skipped(
                p,
                "non-UTF-8 name",
                format!(
                    "{}: the file name is not valid UTF-8; rename it (vitrine stores names exactly, never altered)",
                    p.display()
                ),
            ));
        }
        match regular_file(p) {
            Ok(()) if explicit || has_image_extension(p) => Ok(Some(p.to_path_buf())),
            Ok(()) => Ok(None),
            Err((kind, reason)) => Err(skipped(p, kind, reason)),
        }
    };
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    let mut keep = |r: Result<Option<PathBuf>, Skipped>| match r {
        Ok(Some(p)) => out.push(p),
        Ok(None) => {}
        Err(s) => bad.push(s),
    };
    for root in paths {
        if !std::fs::metadata(root).is_ok_and(|m| m.is_dir()) {
            keep(take(root, true));
            continue;
        }
        for entry in walkdir::WalkDir::new(root).follow_links(true).sort_by_file_name() {
            match entry {
                Ok(e) if e.file_type().is_dir() => {}
                Ok(e) => keep(take(e.path(), false)),
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_path_buf();
                    let io = e.io_error();
                    keep(Err(if e.loop_ancestor().is_some() {
                        skipped(
                            &path,
                            "symlink loop",
                            format!("{}: a link back to a folder above it", path.display()),
                        )
                    } else if io.is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) {
                        skipped(
                            &path,
                            "dangling link",
                            format!("{}: a symbolic link to something that does not exist", path.display()),
                        )
                    } else if io.is_some_and(|io| io.raw_os_error() == Some(libc::ELOOP)) {
                        skipped(
                            &path,
                            "symlink loop",
                            format!("{}: a loop of symbolic links", path.display()),
                        )
                    } else {
                        let why = io.map_or_else(|| e.to_string(), |io| io.to_string());
                        skipped(
                            &path,
                            "unreadable",
                            format!("{}: cannot list folder: {why}", path.display()),
                        )
                    }));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    (out, bad)
}

/// The id of an indexed upload with no id of its own: the BLAKE3 hash (32 hex digits) of its
/// source, uri and, when a manifest gives one, its timestamp. So the same picture uploaded under
/// two sources, two uris or (in a manifest) at two times is two rows, and one input indexed
/// again is the same row.
pub fn upload_id(source: &str, uri: &str, timestamp: Option<i64>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(source.as_bytes());
    h.update(b"\n");
    h.update(uri.as_bytes());
    if let Some(t) = timestamp {
        h.update(format!("\n{t}").as_bytes());
    }
    h.finalize().to_hex()[..32].to_string()
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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Failure {
    /// The row id the input would have had, once known.
    pub id: Option<String>,
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
    /// The ledger's entry for this failure (keyed by its uri, or where it came from), recorded
    /// under `scope`.
    pub fn ledger_entry(&self, scope: Option<String>) -> crate::ledger::LedgerEntry {
        let uri = self.uri.clone().unwrap_or_else(|| self.origin.clone());
        crate::ledger::LedgerEntry {
            // A failure with no id yet (a bad manifest line) is that line; a skipped path is
            // its absolute path.
            key: self.id.clone().unwrap_or_else(|| {
                if self.uri.as_deref().is_some_and(|u| Path::new(u).is_absolute()) {
                    uri.clone()
                } else {
                    self.origin.clone()
                }
            }),
            uri,
            source: self.source.clone().unwrap_or_default(),
            day: self.day,
            state: crate::ledger::State::Failed,
            reason: Some(self.reason.clone()),
            scope,
        }
    }
}

/// What a run covers, so the ledger can forget what this run no longer sees: failures under
/// these folders, or recorded by this manifest, are established again by every run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Absolute paths of the folders and files given.
    Paths(Vec<PathBuf>),
    /// `manifest:` + the manifest's absolute path.
    Manifest(String),
    /// Nothing to forget.
    #[default]
    None,
}

impl Scope {
    /// Whether a ledger entry (its key, and the scope it was recorded under) is this run's to
    /// establish again.
    pub fn covers(&self, key: &str, recorded: Option<&str>) -> bool {
        match self {
            Scope::Paths(roots) => roots.iter().any(|r| Path::new(key).starts_with(r)),
            Scope::Manifest(m) => recorded == Some(m.as_str()),
            Scope::None => false,
        }
    }

    /// The tag entries of this run are recorded under.
    pub fn tag(&self) -> Option<String> {
        match self {
            Scope::Manifest(m) => Some(m.clone()),
            _ => None,
        }
    }
}

/// What to index: the inputs, the user fields they carry, and the inputs already known to fail
/// (bad manifest rows, missing files).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// What the run covers (see [`Scope`]).
    pub scope: Scope,
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
    let mut failures: Vec<Failure> = bad
        .into_iter()
        .map(|b| Failure {
            id: None,
            origin: b.path.display().to_string(),
            uri: std::path::absolute(&b.path)
                .ok()
                .and_then(|p| p.to_str().map(str::to_string)),
            source: Some(source.to_string()),
            day: None,
            kind: b.kind,
            reason: b.reason,
        })
        .collect();
    let mut inputs = Vec::with_capacity(files.len());
    for p in files {
        // The uri is the canonical path: one file reached through two paths is one upload.
        let abs = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        let Some(uri) = abs.to_str() else {
            failures.push(Failure {
                id: None,
                origin: p.display().to_string(),
                uri: None,
                source: Some(source.to_string()),
                day: None,
                kind: "non-UTF-8 name",
                reason: format!("{}: the path is not valid UTF-8; rename it", abs.display()),
            });
            continue;
        };
        inputs.push(Input {
            uri: uri.to_string(),
            origin: p.display().to_string(),
            path: p,
            source: source.to_string(),
            timestamp: None,
            id: None,
            fields: vec![],
        });
    }
    Plan {
        scope: Scope::Paths(paths.iter().filter_map(|p| std::path::absolute(p).ok()).collect()),
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
            id: None,
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
            id: None,
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
        // A file that is gone may still be a row (indexed before): the failure carries the
        // upload's id, so a receipt counts it only if no row has it.
        let id = row
            .id
            .clone()
            .unwrap_or_else(|| upload_id(&source, &uri, row.timestamp));
        if std::fs::symlink_metadata(&path).is_err() {
            failures.push(Failure {
                id: Some(id),
                ..fail("missing file", format!("{}: no such file", path.display()))
            });
            continue;
        }
        if let Err((kind, reason)) = regular_file(&path) {
            failures.push(Failure {
                id: Some(id),
                ..fail(kind, reason)
            });
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
    if let Some(f) = table
        .field_names
        .iter()
        .find(|f| super::run::ENGINE_FIELDS.contains(&f.as_str()))
    {
        return Err(crate::Error::invalid(format!(
            "{name}: column {f:?} is a field `vitrine index` writes itself (reserved: {}); rename it",
            super::run::ENGINE_FIELDS.join(", ")
        )));
    }
    let scope = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    Ok(Plan {
        scope: Scope::Manifest(format!("manifest:{}", scope.display())),
        inputs,
        field_names: table.field_names,
        failures,
    })
}
