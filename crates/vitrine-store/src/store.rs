//! A store: one directory holding collections, and the writer lock.
//!
//! ```text
//! STORE/
//!   LOCK                         writer lock (flock), names its holder
//!   collections/NAME/
//!     manifest.json              schema + live segments (atomically replaced)
//!     segments/seg-*.vseg        immutable segment files
//!     segments/seg-*.del-*       deletion bitmaps
//! ```

use crate::error::{IoContext, Result};
use crate::lock::WriterLock;
use crate::manifest::{sync_dir, Manifest};
use crate::schema::{check_name, Schema};
use crate::snapshot::Snapshot;
use crate::writer::CollectionWriter;
use crate::Error;
use std::path::{Path, PathBuf};

/// A store directory, opened for reading. Readers take no lock and never block a writer.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens an existing store for reading.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        if !root.join("collections").is_dir() {
            return Err(Error::NoStore { path: root });
        }
        Ok(Store { root })
    }

    /// Opens a store for writing, creating it if needed, and takes the writer lock.
    pub fn open_writer(root: impl AsRef<Path>) -> Result<Writer> {
        let root = root.as_ref().to_path_buf();
        let cols = root.join("collections");
        std::fs::create_dir_all(&cols).at(&cols)?;
        let lock = WriterLock::acquire(&root)?;
        // A collection being created or dropped when a writer died: finish it (the lock makes
        // this the only writer, and neither kind of directory is ever read).
        for ent in std::fs::read_dir(&cols).at(&cols)?.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.starts_with(".creating-") || name.starts_with(".dropped-") {
                tracing::info!(dir = %name, "removing a collection directory left by an interrupted writer");
                let _ = std::fs::remove_dir_all(ent.path());
            }
        }
        Ok(Writer {
            store: Store { root },
            lock: std::sync::Arc::new(lock),
        })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of collection `name` (other crates keep side files there, e.g. the
    /// indexer's ledger; they go when the collection is dropped).
    pub fn collection_dir(&self, name: &str) -> PathBuf {
        self.dir(name)
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join("collections").join(name)
    }

    /// Names of the collections, sorted.
    pub fn collections(&self) -> Result<Vec<String>> {
        let cols = self.root.join("collections");
        let mut out = Vec::new();
        for ent in std::fs::read_dir(&cols).at(&cols)? {
            let ent = ent.at(&cols)?;
            let name = ent.file_name().to_string_lossy().to_string();
            if !name.starts_with('.') && ent.path().join(crate::manifest::FILE).is_file() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn unknown(&self, name: &str) -> Error {
        let existing = self.collections().unwrap_or_default();
        Error::UnknownCollection {
            name: name.to_string(),
            store: self.root.clone(),
            existing: if existing.is_empty() {
                "none".into()
            } else {
                existing.join(", ")
            },
        }
    }

    /// Whether collection `name` exists.
    pub fn has_collection(&self, name: &str) -> bool {
        self.dir(name).join(crate::manifest::FILE).is_file()
    }

    /// Reads every file of collection `name` (manifest, segments, deletion bitmaps) and checks
    /// it against its checksums and the manifest; returns the files read, the live rows, and
    /// every damaged file (not only the first).
    pub fn check(&self, name: &str) -> Result<CheckOutcome> {
        check_name("collection", name)?;
        if !self.has_collection(name) {
            return Err(self.unknown(name));
        }
        let dir = self.dir(name);
        let mut out = CheckOutcome::default();
        let m = match Manifest::load(&dir) {
            Ok(m) => m,
            Err(e) => {
                // Which files are live is unknown; each is still checked on its own.
                out.problems.push(e);
                out.files = 1;
                let segdir = dir.join("segments");
                let mut names: Vec<PathBuf> = std::fs::read_dir(&segdir)
                    .at(&segdir)?
                    .map(|e| e.map(|e| e.path()).at(&segdir))
                    .collect::<Result<_>>()?;
                names.sort();
                for path in names {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    let checked = if name.ends_with(".vseg") {
                        crate::segment::Segment::open(&path).and_then(|s| s.verify())
                    } else if name.contains(".del-") {
                        crate::deletes::Bitmap::read_alone(&path).map(drop)
                    } else {
                        continue;
                    };
                    out.files += 1;
                    out.problems.extend(checked.err());
                }
                return Ok(out);
            }
        };
        out.files = 1;
        for e in &m.segments {
            out.files += 1;
            let seg = crate::segment::Segment::open(&crate::segment::seg_file(&dir, e.id))
                .and_then(|s| crate::snapshot::check_entry(e, &s, m.schema.dim).map(|_| s))
                .and_then(|s| s.verify());
            if let Err(err) = seg {
                out.problems.push(err);
            }
            if let Some(f) = &e.deletes {
                out.files += 1;
                if let Err(err) = crate::deletes::Bitmap::read(&dir.join("segments").join(f), e.rows as usize) {
                    out.problems.push(err);
                }
            }
            out.rows += e.rows - e.deleted;
        }
        Ok(out)
    }

    /// A read snapshot of collection `name`.
    pub fn snapshot(&self, name: &str) -> Result<Snapshot> {
        check_name("collection", name)?;
        if !self.has_collection(name) {
            return Err(self.unknown(name));
        }
        Snapshot::open(name, &self.dir(name))
    }
}

/// What [`Store::check`] found.
#[derive(Debug, Default)]
pub struct CheckOutcome {
    /// Files read.
    pub files: usize,
    /// Live rows, as the manifest counts them.
    pub rows: u64,
    /// Every damaged file, each as the error that names it.
    pub problems: Vec<Error>,
}

/// A store opened by its single writer.
#[derive(Debug)]
pub struct Writer {
    store: Store,
    lock: std::sync::Arc<WriterLock>,
}

impl std::ops::Deref for Writer {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Writer {
    /// Creates an empty collection; the manifest appears atomically (rename of a finished directory).
    pub fn create_collection(&self, name: &str, schema: Schema) -> Result<()> {
        check_name("collection", name)?;
        let dir = self.dir(name);
        if dir.exists() {
            return Err(Error::CollectionExists(name.to_string()));
        }
        let tmp = self.root.join("collections").join(format!(".creating-{name}"));
        let _ = std::fs::remove_dir_all(&tmp);
        crate::fsio::create_dir_all(&tmp.join("segments"))?;
        let m = Manifest {
            format: 1,
            version: 0,
            schema,
            next_segment: 1,
            segments: Vec::new(),
            info: Default::default(),
        };
        m.publish(&tmp)?;
        crate::fsio::rename(&tmp, &dir)?;
        sync_dir(&self.root.join("collections"))
    }

    /// Drops a collection and all its data.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        check_name("collection", name)?;
        if !self.has_collection(name) {
            return Err(self.unknown(name));
        }
        let dir = self.dir(name);
        let trash = self
            .root
            .join("collections")
            .join(format!(".dropped-{name}-{}", std::process::id()));
        crate::fsio::rename(&dir, &trash)?;
        sync_dir(&self.root.join("collections"))?;
        std::fs::remove_dir_all(&trash).at(&trash)
    }

    /// Opens collection `name` for writing (removing leftovers of any interrupted commit).
    pub fn collection(&self, name: &str) -> Result<CollectionWriter> {
        check_name("collection", name)?;
        if !self.has_collection(name) {
            return Err(self.unknown(name));
        }
        CollectionWriter::open(name, &self.dir(name), self.lock.clone())
    }
}
