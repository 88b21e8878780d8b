//! vitrine's embedded vector store.
//!
//! A **store** is a directory of **collections**. A collection has a [`Schema`] (dimension,
//! metric, user fields) and rows (`id`, `uri`, `source`, `timestamp`, fields, vector) grouped
//! into **partitions** keyed by (source, UTC day). Each partition is a set of immutable,
//! memory-mapped **segments**; deletes are bitmaps beside them; a manifest names the live files.
//!
//! ```text
//! Store ─▶ collection (manifest.json) ─▶ partition (source, day) ─▶ segment (.vseg + .del)
//! ```
//!
//! * **Writes** go through the store's single [`Writer`] (an `flock`ed `LOCK` file naming its
//!   holder). Each write is one commit: new files are written and fsync'd, then a new manifest
//!   is atomically published (write, fsync, rename, fsync directory). An acknowledged commit
//!   survives `kill -9` and power loss; an interrupted one leaves only orphan files that the next
//!   writer removes. Re-inserting an id replaces its row in the same commit (upsert).
//! * **Reads** open a [`Snapshot`] of the current manifest without any lock.
//! * **Search** is exact: a scan of each row's 8-bit code (or its f32 vector) gives an interval
//!   proven to hold its score; rows whose interval can reach the answer are re-scored in f32,
//!   then re-ranked in f64, so results equal a float64 brute force with ties broken by id (see
//!   [`search`](crate::SearchRequest)). Partitions outside the requested sources, days or
//!   filter are pruned before any vector is read.
//! * **Retention** drops whole partitions; **compaction** rewrites partitions with deleted rows,
//!   several small segments, or no scan codes.
//!
//! Dependencies beyond the obvious: `memmap2` (segments are read where they lie in the page
//! cache), `crc32fast` (checksums of every file), `rayon` (the scan, segment opening and code
//! encoding spread over cores) and `foldhash` (the writer's id index: SipHash cost 7 % of a
//! 1M-row import). The writer lock is std's `File::try_lock`.
//!
//! ```
//! use vitrine_store::{Batch, Metric, Row, Schema, SearchRequest, Selection, Store};
//! let dir = tempfile::tempdir().unwrap();
//! let w = Store::open_writer(dir.path()).unwrap();
//! w.create_collection("images", Schema::new(2, Metric::Cosine).unwrap()).unwrap();
//! let mut c = w.collection("images").unwrap();
//! let row = |id: &str| Row { id: id.into(), uri: String::new(), source: "products".into(),
//!                            timestamp: 1_700_000_000, fields: vec![] };
//! c.insert(&Batch { field_names: vec![], rows: vec![row("a"), row("b")],
//!                   vectors: vec![1.0, 0.0, 0.6, 0.8] }).unwrap();
//! let snap = w.snapshot("images").unwrap();
//! let res = snap.search(&SearchRequest { queries: vec![0.0, 1.0], k: Some(1), threshold: None,
//!                                        selection: Selection::default(), scan: Default::default() }).unwrap();
//! assert_eq!(res.hits[0][0].id, "b");
//! ```
#![deny(missing_docs)]

#[cfg(target_endian = "big")]
compile_error!("vitrine's file formats are little-endian");

mod day;
mod deletes;
mod error;
pub mod filter;
pub mod fsio;
mod lock;
mod manifest;
mod partition;
mod rows;
mod schema;
mod search;
mod segment;
mod selection;
mod snapshot;
mod store;
mod validate;
mod writer;

pub use day::{check_timestamp, days_back, parse_age, parse_timestamp, Day, TIMESTAMP_RANGE};
pub use error::{Error, Result};
pub use filter::{Expr, FilterError};
pub use fsio::faults;
pub use manifest::{Manifest, SegmentEntry};
pub use partition::PartitionInfo;
pub use rows::{Batch, Row};
pub use schema::{check_name, Field, FieldType, Metric, Schema, Value, RESERVED_FIELDS};
pub use search::{Hit, ScanMode, SearchRequest, SearchResults, SearchStats};
pub use selection::Selection;
pub use snapshot::{RowLocation, RowView, Snapshot};
pub use store::{CheckOutcome, Store, Writer};
pub use validate::{check_vector, validate_rows, MAX_NORM, MIN_COSINE_NORM};
pub use writer::{CollectionWriter, CompactReport, InsertReport, MAX_SEGMENT_ROWS};
