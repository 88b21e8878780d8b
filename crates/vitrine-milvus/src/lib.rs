//! vitrine's scale-out backend: the engine's [`Backend`] over a Milvus server.
//!
//! `vitrine --backend milvus://HOST:PORT ...` runs every command against Milvus (2.3 and later)
//! through the official Rust SDK (`milvus-sdk-rust`, its gRPC `ClientV2`). The embedded store
//! stays the default; this crate translates, it does not re-implement:
//!
//! * **Collections.** A vitrine collection `name` is the Milvus collection `vitrine__<name>`
//!   (names escaped: `_` → `_u`, `-` → `_h`) with the columns `id` (VarChar primary key),
//!   `vector` (FloatVector, FLAT index: exact, with the collection's metric), `uri`, `source`,
//!   `day` (`YYYY-MM-DD`), `timestamp` (Int64) and `fields` (JSON: the user fields, thumbnails
//!   and content hashes included; a null is an absent key).
//! * **Partitions.** Milvus allows 4,096 partitions per collection; (source, day) partitions
//!   would pass that within three years of four sources. A Milvus partition holds one source and
//!   one calendar month (`p_<source>_<YYYYMM>`: 341 source-years fit) and searches add an exact
//!   `day` condition, so a search restricted to five days touches one or two Milvus partitions.
//!   Retention releases and drops a Milvus partition when every day of it goes, and deletes by
//!   `day in [...]` otherwise. See [`names`].
//! * **Vitrine's own records** (schema, provenance such as the model that filled a collection,
//!   and row counts per (source, day)) live in a Milvus collection `vitrine_meta`, so every
//!   client of the server sees them. See [`meta`].
//! * **Exact answers.** Milvus scores in float32 and breaks ties its own way. Searches ask for
//!   more candidates than needed, with their vectors, and re-score them in float64 exactly as the
//!   embedded store does (ties by id); they widen the request until no row left out could still
//!   enter the answer. See [`reader`].
//! * **Consistency.** Reads run at Milvus's `Eventually` level (no wait) and every vitrine write
//!   ends with one `Strong` read of what it wrote (about 200 ms on 2.3), so a write is visible
//!   to every reader once the command that made it returns. `?consistency=strong` makes every
//!   read wait instead (for writers other than vitrine, or several replicas).

#![deny(missing_docs)]

pub mod expr;
pub mod meta;
pub mod names;
pub mod reader;
pub mod writer;

use milvus::v2::prelude::*;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vitrine_engine::backend::{CollectionReader, StoreWriter};
use vitrine_engine::{Backend, Capabilities, Error, ErrorKind, Result};

/// How long one call to the server may take before it is reported as a time-out.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Waits between attempts of a read while the server is unavailable: about 6 s in all, enough
/// for a proxy restart or a load balancer's failover, short enough to fail clearly when the
/// server is gone.
const READ_BACKOFF: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_millis(600),
    Duration::from_millis(1_500),
    Duration::from_millis(3_500),
];

/// Runs `op`, and again after each pause of `backoff` while it fails as unavailable; any other
/// error, or the last one, is returned as it is.
fn retrying<T>(backoff: &[Duration], mut op: impl FnMut() -> Result<T>, mut sleep: impl FnMut(Duration)) -> Result<T> {
    let mut pauses = backoff.iter();
    loop {
        match op() {
            Err(e) if e.kind() == ErrorKind::Unavailable => match pauses.next() {
                Some(&p) => sleep(p),
                None => return Err(e),
            },
            other => return other,
        }
    }
}

/// Milvus's cap on results per request (top-k, offset + limit, range-search hits).
pub const MAX_LIMIT: usize = 16_384;

/// Where and how to reach a Milvus server: parsed from `milvus://[user:password@]host:port[/db]?opts`.
#[derive(Clone, PartialEq, Eq)]
pub struct MilvusConfig {
    /// `http://host:port` (or `https://` for `milvus+tls://`).
    pub endpoint: String,
    /// Database (default `default`).
    pub database: Option<String>,
    /// Token (`user:password` or an API key).
    pub token: Option<String>,
    /// User name.
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Every read waits for all earlier writes (`Strong`), instead of the default.
    pub strong_reads: bool,
}

impl std::fmt::Debug for MilvusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials.
        f.debug_struct("MilvusConfig")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("strong_reads", &self.strong_reads)
            .finish_non_exhaustive()
    }
}

impl MilvusConfig {
    /// Parses a backend URL: `milvus://host:19530`, `milvus+tls://host:443/mydb?token=...`.
    /// Query options: `token`, `user`, `password`, `db_name`, `consistency=strong`. The
    /// environment variables `MILVUS_TOKEN`, `MILVUS_USER` and `MILVUS_PASSWORD` fill options
    /// the URL leaves out (so secrets need not appear on a command line).
    pub fn parse(url: &str) -> Result<MilvusConfig> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "backend {url:?}: {why} (expected milvus://HOST:PORT[/DATABASE][?token=...])"
            ))
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let http = match scheme {
            "milvus" => "http",
            "milvus+tls" | "milvus+https" => "https",
            _ => return Err(bad(&format!("unknown scheme {scheme:?}"))),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if hostport.is_empty() {
            return Err(bad("no host"));
        }
        let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
            hostport.to_string()
        } else {
            format!("{hostport}:19530")
        };
        let mut c = MilvusConfig {
            endpoint: format!("{http}://{hostport}"),
            database: Some(path.trim_matches('/'))
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            token: None,
            user: None,
            password: None,
            strong_reads: false,
        };
        if let Some(u) = userinfo {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            c.user = Some(user.to_string());
            c.password = Some(pass.to_string());
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "token" => c.token = Some(v.to_string()),
                "user" | "username" => c.user = Some(v.to_string()),
                "password" => c.password = Some(v.to_string()),
                "db_name" | "database" => c.database = Some(v.to_string()),
                "consistency" => match v.to_ascii_lowercase().as_str() {
                    "strong" => c.strong_reads = true,
                    "eventually" | "default" => c.strong_reads = false,
                    _ => return Err(bad(&format!("consistency {v:?}: use strong or default"))),
                },
                _ => return Err(bad(&format!("unknown option {k:?}"))),
            }
        }
        let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        c.token = c.token.or_else(|| env("MILVUS_TOKEN"));
        c.user = c.user.or_else(|| env("MILVUS_USER"));
        c.password = c.password.or_else(|| env("MILVUS_PASSWORD"));
        Ok(c)
    }

    /// The server as users name it: `milvus://host:port/db` (no credentials).
    pub fn location(&self) -> String {
        let host = self
            .endpoint
            .split_once("://")
            .map_or(self.endpoint.as_str(), |(_, h)| h);
        match &self.database {
            Some(d) => format!("milvus://{host}/{d}"),
            None => format!("milvus://{host}"),
        }
    }
}

/// A connection to a Milvus server, shared by the backend, its readers and writers.
pub(crate) struct Remote {
    rt: tokio::runtime::Runtime,
    client: ClientV2,
    location: String,
    strong_reads: bool,
    side_root: PathBuf,
}

impl Remote {
    /// Runs one SDK call to completion on the connection's runtime. The engine's traits are
    /// synchronous; the future runs on the runtime's own threads, so this may be called from
    /// any thread, a tokio blocking thread included.
    pub(crate) fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(ClientV2) -> Fut,
        Fut: Future<Output = milvus::v2::error::Result<T>> + Send + 'static,
    {
        let fut = f(self.client.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(tokio::time::timeout(CALL_TIMEOUT, fut).await);
        });
        match rx.recv() {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(self.error(what, e)),
            Ok(Err(_)) => Err(Error::Backend {
                backend: self.location.clone(),
                message: format!("{what}: no answer within {} s", CALL_TIMEOUT.as_secs()),
                kind: ErrorKind::Unavailable,
                source: None,
            }),
            Err(_) => Err(self.fail(what, "the call was dropped", ErrorKind::Internal)),
        }
    }

    /// [`Remote::call`] for requests that are safe to send again (searches, queries, counts: they
    /// change nothing), retried with backoff while the server is unavailable (a restart, a
    /// dropped connection). Writes are never retried here: a write that timed out may have
    /// happened, and vitrine must not report one that did not.
    pub(crate) fn call_read<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(ClientV2) -> Fut,
        Fut: Future<Output = milvus::v2::error::Result<T>> + Send + 'static,
    {
        retrying(&READ_BACKOFF, || self.call(what, &f), std::thread::sleep)
    }

    /// An error of this server.
    pub(crate) fn fail(&self, what: &str, message: &str, kind: ErrorKind) -> Error {
        Error::Backend {
            backend: self.location.clone(),
            message: format!("{what}: {message}"),
            kind,
            source: None,
        }
    }

    fn error(&self, what: &str, e: milvus::v2::error::Error) -> Error {
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        use milvus::v2::error::Error as E;
        let kind = match &e {
            E::Grpc(_) | E::Timeout(_) | E::RetryExhausted { .. } | E::Cancelled(_) => ErrorKind::Unavailable,
            _ if lower.contains("auth") || lower.contains("credential") || lower.contains("permission") => {
                ErrorKind::Unavailable
            }
            _ if lower.contains("not found") || lower.contains("not exist") => ErrorKind::NotFound,
            E::Validation(_) => ErrorKind::BadInput,
            E::Server(_) if lower.contains("cannot parse expression") || lower.contains("invalid") => {
                ErrorKind::BadInput
            }
            _ => ErrorKind::Internal,
        };
        let message = if lower.contains("unauthenticated") || lower.contains("auth") && kind == ErrorKind::Unavailable {
            format!("{what}: authentication failed (check the token, or user and password): {text}")
        } else if matches!(e, E::Grpc(_)) {
            format!("{what}: cannot reach the server: {text}")
        } else {
            format!("{what}: {text}")
        };
        Error::Backend {
            backend: self.location.clone(),
            message,
            kind,
            source: Some(Box::new(e)),
        }
    }

    /// Rows of `collection` (in `partitions`; all when empty) matching `filter`, with the
    /// `output` columns, read at `level`: the one query every reader and writer sends.
    pub(crate) fn query(
        &self,
        what: &str,
        collection: &str,
        partitions: &[String],
        filter: &str,
        output: &[&str],
        level: ConsistencyLevel,
    ) -> Result<QueryResponse> {
        let mut b = QueryRequest::builder()
            .collection_name(collection.to_string())
            .filter(filter.to_string())
            .output_fields(output.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .consistency_level(level);
        if !partitions.is_empty() {
            b = b.partition_names(partitions.to_vec());
        }
        if output != ["count(*)"] {
            // Milvus answers at most this many rows (and refuses a limit on a count).
            b = b.limit(MAX_LIMIT as i64);
        }
        let req = b
            .build()
            .map_err(|e| self.fail(what, &e.to_string(), ErrorKind::Internal))?;
        self.call_read(what, |c| {
            let req = req.clone();
            async move { c.query(req).await }
        })
    }

    /// How many rows [`Remote::query`] would return.
    pub(crate) fn count(
        &self,
        what: &str,
        collection: &str,
        partitions: &[String],
        filter: &str,
        level: ConsistencyLevel,
    ) -> Result<u64> {
        let res = self.query(what, collection, partitions, filter, &["count(*)"], level)?;
        let n = res
            .results()
            .get_output_field("count(*)")
            .and_then(|f| f.as_int64())
            .and_then(|v| v.first().copied());
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// The consistency level of reads.
    pub(crate) fn read_level(&self) -> ConsistencyLevel {
        if self.strong_reads {
            ConsistencyLevel::Strong
        } else {
            ConsistencyLevel::Eventually
        }
    }
}

/// Milvus's name for a metric.
pub(crate) fn metric_type(m: vitrine_engine::Metric) -> MetricType {
    match m {
        vitrine_engine::Metric::Cosine => MetricType::Cosine,
        vitrine_engine::Metric::Ip => MetricType::Ip,
        vitrine_engine::Metric::L2 => MetricType::L2,
    }
}

/// A Milvus server as a vitrine backend.
#[derive(Clone)]
pub struct MilvusBackend {
    remote: Arc<Remote>,
}

impl MilvusBackend {
    /// Connects to the server `url` names (see [`MilvusConfig::parse`]) and makes sure vitrine's
    /// own records collection exists. Fails with a clear error naming the server when it cannot
    /// be reached or refuses the credentials.
    pub fn connect(url: &str) -> Result<MilvusBackend> {
        MilvusBackend::connect_with(&MilvusConfig::parse(url)?)
    }

    /// Connects with a parsed configuration.
    pub fn connect_with(config: &MilvusConfig) -> Result<MilvusBackend> {
        let location = config.location();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vitrine-milvus")
            .enable_all()
            .build()
            .map_err(|e| Error::Backend {
                backend: location.clone(),
                message: format!("cannot start the client's runtime: {e}"),
                kind: ErrorKind::Internal,
                source: Some(Box::new(e)),
            })?;
        let mut cc = ConnectConfig::new()
            .uri(config.endpoint.clone())
            .connect_timeout(Duration::from_secs(10));
        if let Some(t) = &config.token {
            cc = cc.token(t.clone());
        }
        if let Some(u) = &config.user {
            cc = cc.username(u.clone());
        }
        if let Some(p) = &config.password {
            cc = cc.password(p.clone());
        }
        if let Some(d) = &config.database {
            cc = cc.database(d.clone());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(tokio::time::timeout(Duration::from_secs(30), ClientV2::new(&cc)).await);
        });
        let unavailable = |message: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| Error::Backend {
            backend: location.clone(),
            message,
            kind: ErrorKind::Unavailable,
            source,
        };
        let client = match rx.recv() {
            Ok(Ok(Ok(c))) => c,
            Ok(Ok(Err(e))) => {
                return Err(unavailable(format!("cannot connect: {e}"), Some(Box::new(e))));
            }
            _ => return Err(unavailable("cannot connect: no answer within 30 s".into(), None)),
        };
        let side_root = side_root(&location);
        let remote = Arc::new(Remote {
            rt,
            client,
            location,
            strong_reads: config.strong_reads,
            side_root,
        });
        meta::ensure(&remote)?;
        Ok(MilvusBackend { remote })
    }
}

impl MilvusBackend {
    /// The Milvus partitions of collection `name` (for operators and tests: which source-months
    /// exist on the server).
    pub fn milvus_partitions(&self, name: &str) -> Result<Vec<String>> {
        let doc = meta::collection(&self.remote, name)?.ok_or_else(|| meta::unknown(&self.remote, name))?;
        let list = self
            .remote
            .call(&format!("listing partitions of {name}"), |c| async move {
                c.list_partitions(ListPartitionsRequest::builder().collection_name(doc.milvus).build()?)
                    .await
            })?;
        let mut names = list.partition_names().to_vec();
        names.sort();
        Ok(names)
    }
}

/// The local side folder of one collection (its indexing ledger), unique to this creation.
pub(crate) fn side_dir_of(r: &Remote, doc: &meta::CollectionDoc) -> PathBuf {
    r.side_root
        .join(format!("{}-{}", names::escape(&doc.name), doc.created))
}

/// Where the engine's local side files (the indexing ledger) for this server live.
fn side_root(location: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let safe: String = location
        .trim_start_matches("milvus://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join("vitrine").join("milvus").join(safe)
}

impl Backend for MilvusBackend {
    fn location(&self) -> String {
        self.remote.location.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            compact: false,
            check: false,
        }
    }

    fn collections(&self) -> Result<Vec<String>> {
        meta::collections(&self.remote)
    }

    fn has_collection(&self, name: &str) -> Result<bool> {
        Ok(meta::collection(&self.remote, name)?.is_some())
    }

    fn reader(&self, name: &str) -> Result<Box<dyn CollectionReader>> {
        Ok(Box::new(reader::MilvusReader::open(self.remote.clone(), name)?))
    }

    fn writer(&self) -> Result<Box<dyn StoreWriter>> {
        Ok(Box::new(writer::MilvusStoreWriter::new(self.remote.clone())))
    }

    fn side_dir(&self, name: &str) -> Result<PathBuf> {
        let doc = meta::collection(&self.remote, name)?.ok_or_else(|| meta::unknown(&self.remote, name))?;
        let dir = side_dir_of(&self.remote, &doc);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_are_retried_with_backoff_only_while_the_server_is_unavailable() {
        let down = || Error::Backend {
            backend: "milvus://h:1".into(),
            message: "down".into(),
            kind: ErrorKind::Unavailable,
            source: None,
        };
        let backoff = [
            Duration::from_millis(1),
            Duration::from_millis(2),
            Duration::from_millis(3),
        ];
        // Unavailable twice, then an answer: two pauses, the answer.
        let (mut tries, mut slept) = (0, Vec::new());
        let got = retrying(
            &backoff,
            || {
                tries += 1;
                if tries < 3 {
                    Err(down())
                } else {
                    Ok(7)
                }
            },
            |d| slept.push(d),
        );
        assert_eq!(got.unwrap(), 7);
        assert_eq!(slept, backoff[..2]);
        // Always unavailable: every pause, then the last error.
        let (mut tries, mut slept) = (0, Vec::new());
        let got: Result<()> = retrying(
            &backoff,
            || {
                tries += 1;
                Err(down())
            },
            |d| slept.push(d),
        );
        assert_eq!(got.unwrap_err().kind(), ErrorKind::Unavailable);
        assert_eq!((tries, slept.len()), (4, 3));
        // Any other error (not found, bad input, ...) is returned at once.
        let mut tries = 0;
        let got: Result<()> = retrying(
            &backoff,
            || {
                tries += 1;
                Err(Error::Backend {
                    backend: "milvus://h:1".into(),
                    message: "no such collection".into(),
                    kind: ErrorKind::NotFound,
                    source: None,
                })
            },
            |_| panic!("no pause for a permanent error"),
        );
        assert_eq!(got.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(tries, 1);
    }

    use super::*;

    #[test]
    fn backend_urls_parse_with_their_options_and_never_show_credentials() {
        let c = MilvusConfig::parse("milvus://root:Milvus@10.0.0.5:19541/risk?consistency=strong").unwrap();
        assert_eq!(c.endpoint, "http://10.0.0.5:19541");
        assert_eq!(c.database.as_deref(), Some("risk"));
        assert_eq!(c.user.as_deref(), Some("root"));
        assert_eq!(c.password.as_deref(), Some("Milvus"));
        assert!(c.strong_reads);
        assert_eq!(c.location(), "milvus://10.0.0.5:19541/risk");
        assert!(!format!("{c:?}").contains("Milvus\""));
        let c = MilvusConfig::parse("milvus+tls://in01.zillizcloud.com?token=abc").unwrap();
        assert_eq!(c.endpoint, "https://in01.zillizcloud.com:19530");
        assert_eq!(c.token.as_deref(), Some("abc"));
        for bad in [
            "http://x:1",
            "milvus://",
            "milvus://h:1?colour=red",
            "milvus://h:1?consistency=maybe",
        ] {
            let e = MilvusConfig::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadInput, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
