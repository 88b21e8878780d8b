//! The engine's one error type, with a [`ErrorKind`] a server maps to a status code.

use std::path::PathBuf;

/// What kind of failure an [`Error`] is, for choosing an HTTP status or an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The caller's input is wrong (a bad filter, a wrong dimension, an unreadable query image).
    BadInput,
    /// A named thing does not exist (collection, partition, row, model).
    NotFound,
    /// The request conflicts with the state (the writer lock is held, the collection exists,
    /// another model filled the collection).
    Conflict,
    /// Data on disk is damaged.
    Corrupt,
    /// The backend cannot be reached or cannot serve now (server down, disk full, time out).
    Unavailable,
    /// The backend does not offer this operation (e.g. `check` on a remote database).
    Unsupported,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorKind {
    /// A short name ("bad_input", "not_found", ...), as in JSON error bodies.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "bad_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Everything that can go wrong in the engine. Errors of the crates below are kept whole (their
/// variants and causes), so [`Error::kind`] can look inside them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the embedded store.
    #[error(transparent)]
    Store(#[from] vitrine_store::Error),
    /// From reading vectors or metadata files.
    #[error(transparent)]
    Import(#[from] vitrine_import::Error),
    /// From the model.
    #[error(transparent)]
    Model(#[from] vitrine_clip::Error),
    /// From image decoding or preprocessing.
    #[error(transparent)]
    Image(#[from] vitrine_image::Error),
    /// A file of the engine's own (ledger, manifest of inputs) could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file of the engine's own (a log beside a collection, a watchlist's state) is damaged:
    /// a line fails its checksum or does not parse. Unlike [`Error::Io`] this is never the
    /// caller's fault.
    #[error("{}: {why}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where and how ("line 3: checksum mismatch (the line was altered)").
        why: String,
    },
    /// The request is wrong; the message names the argument or input at fault.
    #[error("{0}")]
    Invalid(String),
    /// A named thing does not exist; the message says what and where.
    #[error("{0}")]
    NotFound(String),
    /// A model other than the one that filled the collection.
    #[error("{0}")]
    ModelMismatch(String),
    /// A legal hold keeps what the request would remove; the message names the hold.
    #[error("{0}")]
    Held(String),
    /// Something of that name exists already (a watchlist); the message names it.
    #[error("{0}")]
    Exists(String),
    /// The backend does not offer an operation.
    #[error("{operation} is not supported by {backend}")]
    Unsupported {
        /// What was asked ("compact", "check").
        operation: &'static str,
        /// The backend ("milvus://host:19530").
        backend: String,
    },
    /// An error with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        /// What was being done ("products.npy: rows 0..100000").
        context: String,
        /// The error.
        #[source]
        source: Box<Error>,
    },
    /// An error of a remote backend, with its kind and cause.
    #[error("{backend}: {message}")]
    Backend {
        /// The backend ("milvus://host:19530").
        backend: String,
        /// What failed.
        message: String,
        /// What kind of failure it is.
        kind: ErrorKind,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Store(e) => store_kind(e),
            Error::Import(e) => match e {
                vitrine_import::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    ErrorKind::NotFound
                }
                vitrine_import::Error::Store(s) => store_kind(s),
                _ => ErrorKind::BadInput,
            },
            Error::Model(e) => match e {
                vitrine_clip::Error::NotFound(_) => ErrorKind::NotFound,
                vitrine_clip::Error::Input(_) => ErrorKind::BadInput,
                vitrine_clip::Error::Checkpoint { .. } | vitrine_clip::Error::Config(_) => ErrorKind::Corrupt,
                _ => ErrorKind::Internal,
            },
            Error::Image(e) => match e {
                vitrine_image::Error::Config { .. } => ErrorKind::Corrupt,
                _ => ErrorKind::BadInput,
            },
            Error::Io { source, .. } => io_kind(source),
            Error::Damaged { .. } => ErrorKind::Corrupt,
            Error::Invalid(_) => ErrorKind::BadInput,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::ModelMismatch(_) | Error::Held(_) | Error::Exists(_) => ErrorKind::Conflict,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Context { source, .. } => source.kind(),
            Error::Backend { kind, .. } => *kind,
        }
    }

    /// An [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    /// This error, with what was being done.
    pub fn context(self, context: impl Into<String>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn damaged(path: impl Into<PathBuf>, why: impl std::fmt::Display) -> Error {
        Error::Damaged {
            path: path.into(),
            why: why.to_string(),
        }
    }
}

fn store_kind(e: &vitrine_store::Error) -> ErrorKind {
    use vitrine_store::Error as S;
    match e {
        S::Locked { .. } | S::CollectionExists(_) => ErrorKind::Conflict,
        S::UnknownCollection { .. } | S::UnknownPartition { .. } | S::NoStore { .. } => ErrorKind::NotFound,
        S::UnknownSource { .. } | S::Invalid(_) | S::Filter(_) => ErrorKind::BadInput,
        S::Corrupt { .. } => ErrorKind::Corrupt,
        S::Io { source, .. } => io_kind(source),
        _ => ErrorKind::Internal,
    }
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => ErrorKind::NotFound,
        K::PermissionDenied | K::InvalidInput | K::InvalidData => ErrorKind::BadInput,
        K::StorageFull | K::QuotaExceeded | K::TimedOut | K::WouldBlock | K::Interrupted => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}
