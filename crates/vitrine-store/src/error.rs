//! The store's one error type.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in the store. Variants say whose fault it is: the caller's
/// input ([`Error::Invalid`], [`Error::Filter`], unknown names), the environment
/// ([`Error::Io`], [`Error::Locked`]) or the files on disk ([`Error::Corrupt`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error, with the path it happened on.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The directory holds no store.
    #[error("{}: no vitrine store here (create one with `vitrine import`, `vitrine index` or `vitrine collection create`)", path.display())]
    NoStore {
        /// The directory.
        path: PathBuf,
    },
    /// Another process holds the store's writer lock.
    #[error("store {} is locked by another writer ({holder}); wait for it to finish or stop it", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// What the lock file says about its holder (pid, command, start time).
        holder: String,
    },
    /// The named collection does not exist.
    #[error("collection {name:?} does not exist in store {} (existing: {existing})", store.display())]
    UnknownCollection {
        /// The name asked for.
        name: String,
        /// The store directory.
        store: PathBuf,
        /// Comma-separated names of the collections that do exist.
        existing: String,
    },
    /// A collection with that name already exists.
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    /// No partition has that (source, day).
    #[error("partition source={source_name:?} day={day} does not exist in collection {collection:?}")]
    UnknownPartition {
        /// The collection.
        collection: String,
        /// The source asked for.
        source_name: String,
        /// The day asked for.
        day: String,
    },
    /// A selection names a source that no partition of the collection has (a typo would
    /// otherwise read as "no matches").
    #[error("source {source_name:?} has no partitions in collection {collection:?} (its sources: {known})")]
    UnknownSource {
        /// The collection.
        collection: String,
        /// The source asked for.
        source_name: String,
        /// The sources it has, comma-separated.
        known: String,
    },
    /// Input that breaks the collection's schema or the store's rules; the message names the
    /// input (row, id, field) and the problem.
    #[error("{0}")]
    Invalid(String),
    /// A filter expression that does not parse or does not fit the schema.
    #[error("{0}")]
    Filter(#[from] FilterError),
    /// A store file whose contents are not what the manifest or its own checksum says.
    #[error("corrupt store file {}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an I/O result.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// A filter that failed to parse or to fit the schema, with the byte position of the problem.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    /// The expression text.
    pub expr: String,
    /// Byte offset of the problem in `expr`.
    pub pos: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let col = self.expr[..self.pos.min(self.expr.len())].chars().count();
        write!(
            f,
            "invalid filter at position {}: {}\n  {}\n  {}^",
            self.pos,
            self.message,
            self.expr,
            " ".repeat(col)
        )
    }
}

impl std::error::Error for FilterError {}
