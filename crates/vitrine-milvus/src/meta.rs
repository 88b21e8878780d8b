//! vitrine's own records on the Milvus server: the collection `vitrine_meta`.
//!
//! One row per document, keyed by text:
//!
//! * `c/<name>`: a collection's schema (dimension, metric, user fields with their types) and its
//!   provenance entries (the model that filled it, its weights hash, ...);
//! * `d/<name>/<source>/<YYYYMM>`: the live rows of each day of one Milvus partition.
//!
//! Keeping them in Milvus means every client of the server (the CLI on any machine, `vitrine
//! serve`) sees the same schema, model check and partition list. Row counts per day are kept by
//! vitrine's writes (Milvus 2.3 cannot count grouped by a column without reading every row);
//! writes that bypass vitrine do not update them.

use crate::expr::string;
use crate::Remote;
use milvus::v2::prelude::*;
use std::collections::BTreeMap;
use vitrine_engine::{Day, Error, Result, Schema};

/// The Milvus collection of vitrine's records.
pub const META: &str = "vitrine_meta";

/// What vitrine keeps about one collection.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CollectionDoc {
    /// The vitrine name.
    pub name: String,
    /// Its Milvus collection.
    pub milvus: String,
    /// Dimension, metric, user fields.
    pub schema: Schema,
    /// Provenance entries.
    #[serde(default)]
    pub info: serde_json::Map<String, serde_json::Value>,
    /// When it was created (unix nanoseconds): names its local side folder, so a collection
    /// dropped and made again (or a server wiped) never inherits an old ledger.
    #[serde(default)]
    pub created: String,
}

/// Live rows per (source, day).
pub type DayCounts = BTreeMap<(String, Day), u64>;

/// Creates and loads `vitrine_meta` if it is missing.
pub(crate) fn ensure(r: &Remote) -> Result<()> {
    let exists = r.call("looking for vitrine_meta", |c| async move {
        c.has_collection(HasCollectionRequest::builder().collection_name(META).build()?)
            .await
            .map(|r| r.exists())
    })?;
    if !exists {
        let schema = CollectionSchema::new()
            .add_field(
                FieldSchema::new()
                    .name("key")
                    .data_type(DataType::VarChar)
                    .max_length(1024)
                    .primary_key(true),
            )
            .add_field(
                FieldSchema::new()
                    .name("doc")
                    .data_type(DataType::VarChar)
                    .max_length(65_535),
            )
            // Milvus needs a vector in every collection; this one is never searched.
            .add_field(
                FieldSchema::new()
                    .name("v")
                    .data_type(DataType::FloatVector)
                    .dimension(2),
            );
        r.call("creating vitrine_meta", |c| async move {
            c.create_collection(
                CreateCollectionRequest::builder()
                    .collection_name(META)
                    .description("vitrine's schemas, provenance and row counts")
                    .schema(schema)
                    .build()?,
            )
            .await?;
            c.create_index(
                CreateIndexRequest::builder()
                    .collection_name(META)
                    .index_param(
                        IndexParam::new()
                            .field_name("v")
                            .index_type(IndexType::Flat)
                            .metric_type(MetricType::L2),
                    )
                    .sync(true)
                    .build()?,
            )
            .await
        })?;
    }
    load(r, META)
}

/// Loads a collection into memory (a no-op when it is loaded), waiting until it is.
pub(crate) fn load(r: &Remote, collection: &str) -> Result<()> {
    let name = collection.to_string();
    r.call(&format!("loading {collection}"), |c| async move {
        c.load_collection(
            LoadCollectionRequest::builder()
                .collection_name(name)
                .sync(true)
                .build()?,
        )
        .await
    })
}

/// The documents whose keys lie in `[from, to)`: (key, doc).
fn range(r: &Remote, from: &str, to: &str) -> Result<Vec<(String, String)>> {
    let filter = format!("key >= {} and key < {}", string(from), string(to));
    let res = r.query(
        "reading vitrine_meta",
        META,
        &[],
        &filter,
        &["key", "doc"],
        r.read_level(),
    )?;
    let res = res.results();
    let keys = res.get_output_field("key").and_then(|f| f.as_varchar()).unwrap_or(&[]);
    let docs = res.get_output_field("doc").and_then(|f| f.as_varchar()).unwrap_or(&[]);
    Ok(keys.iter().cloned().zip(docs.iter().cloned()).collect())
}

fn put(r: &Remote, docs: Vec<(String, String)>) -> Result<()> {
    if docs.is_empty() {
        return Ok(());
    }
    let n = docs.len();
    let (keys, docs): (Vec<String>, Vec<String>) = docs.into_iter().unzip();
    r.call("writing vitrine_meta", |c| async move {
        c.upsert(
            UpsertRequest::builder()
                .insert(
                    InsertRequest::builder()
                        .collection_name(META)
                        .columns(vec![
                            FieldData::varchar("key", keys),
                            FieldData::varchar("doc", docs),
                            FieldData::float_vector("v", vec![vec![0.0, 0.0]; n]),
                        ])
                        .build()?,
                )
                .build()?,
        )
        .await
    })?;
    Ok(())
}

fn delete(r: &Remote, filter: String) -> Result<()> {
    r.call("deleting from vitrine_meta", |c| async move {
        c.delete(DeleteRequest::builder().collection_name(META).filter(filter).build()?)
            .await
    })?;
    Ok(())
}

fn bad_doc(r: &Remote, key: &str, e: impl std::fmt::Display) -> Error {
    r.fail(
        &format!("vitrine_meta row {key:?}"),
        &format!("unreadable: {e}"),
        vitrine_engine::ErrorKind::Corrupt,
    )
}

/// The record of collection `name`, if it exists.
pub(crate) fn collection(r: &Remote, name: &str) -> Result<Option<CollectionDoc>> {
    let key = format!("c/{name}");
    let found = range(r, &key, &format!("{key}\u{0}"))?;
    match found.into_iter().next() {
        Some((k, doc)) => serde_json::from_str(&doc).map(Some).map_err(|e| bad_doc(r, &k, e)),
        None => Ok(None),
    }
}

/// Names of the collections, sorted.
pub(crate) fn collections(r: &Remote) -> Result<Vec<String>> {
    let mut names: Vec<String> = range(r, "c/", "c0")?
        .into_iter()
        .map(|(k, _)| k["c/".len()..].to_string())
        .collect();
    names.sort();
    Ok(names)
}

/// Writes the record of a collection.
pub(crate) fn put_collection(r: &Remote, doc: &CollectionDoc) -> Result<()> {
    let text = serde_json::to_string(doc).map_err(|e| {
        r.fail(
            "writing vitrine_meta",
            &e.to_string(),
            vitrine_engine::ErrorKind::Internal,
        )
    })?;
    if text.len() > 65_535 {
        return Err(Error::Invalid(format!(
            "collection {}: schema and provenance take {} bytes, more than Milvus's 65,535 per text value",
            doc.name,
            text.len()
        )));
    }
    put(r, vec![(format!("c/{}", doc.name), text)])
}

/// Forgets a collection: its record and its row counts.
pub(crate) fn forget(r: &Remote, name: &str) -> Result<()> {
    delete(r, format!("key == {}", string(&format!("c/{name}"))))?;
    delete(
        r,
        format!(
            "key >= {} and key < {}",
            string(&format!("d/{name}/")),
            string(&format!("d/{name}0"))
        ),
    )
}

fn month_key(name: &str, source: &str, day: Day) -> String {
    let (y, m) = crate::names::month(day);
    format!("d/{name}/{source}/{y:04}{m:02}")
}

/// Live rows per (source, day) of collection `name`.
pub(crate) fn day_counts(r: &Remote, name: &str) -> Result<DayCounts> {
    let mut out = DayCounts::new();
    for (key, doc) in range(r, &format!("d/{name}/"), &format!("d/{name}0"))? {
        // d/<name>/<source>/<YYYYMM>: names and sources never contain '/'.
        let source = key.split('/').nth(2).unwrap_or_default().to_string();
        let days: BTreeMap<String, u64> = serde_json::from_str(&doc).map_err(|e| bad_doc(r, &key, e))?;
        for (d, n) in days {
            let day: Day = d.parse().map_err(|e| bad_doc(r, &key, e))?;
            if n > 0 {
                out.insert((source.clone(), day), n);
            }
        }
    }
    Ok(out)
}

/// Rewrites the month documents of every (source, day) in `touched` from `counts`.
pub(crate) fn put_day_counts(r: &Remote, name: &str, counts: &DayCounts, touched: &[(String, Day)]) -> Result<()> {
    let mut months: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (source, day) in touched {
        months.entry(month_key(name, source, *day)).or_default();
    }
    for ((source, day), n) in counts {
        if let Some(m) = months.get_mut(&month_key(name, source, *day)) {
            if *n > 0 {
                m.insert(day.to_string(), *n);
            }
        }
    }
    let (empty, full): (Vec<_>, Vec<_>) = months.into_iter().partition(|(_, m)| m.is_empty());
    put(
        r,
        full.into_iter()
            .map(|(k, m)| (k, serde_json::to_string(&m).unwrap_or_default()))
            .collect(),
    )?;
    if !empty.is_empty() {
        let keys: Vec<String> = empty.into_iter().map(|(k, _)| k).collect();
        delete(
            r,
            format!(
                "key in [{}]",
                keys.iter().map(|k| string(k)).collect::<Vec<_>>().join(", ")
            ),
        )?;
    }
    Ok(())
}

/// Rows of `collection` matching `filter`, read at `Strong` consistency: it returns once every
/// earlier write to the collection is visible, so it doubles as the write barrier.
pub(crate) fn strong_count(r: &Remote, collection: &str, filter: &str) -> Result<u64> {
    r.count(
        &format!("counting rows of {collection}"),
        collection,
        &[],
        filter,
        ConsistencyLevel::Strong,
    )
}

/// The "unknown collection" error, naming the ones that exist.
pub(crate) fn unknown(r: &Remote, name: &str) -> Error {
    let have = collections(r).unwrap_or_default();
    Error::NotFound(format!(
        "no collection {name:?} on {} (collections: {})",
        r.location,
        if have.is_empty() {
            "none".to_string()
        } else {
            have.join(", ")
        }
    ))
}

/// Waits until every earlier write to `collection` and to `vitrine_meta` is visible to every
/// reader: one `Strong` read of each, at once (about 200 ms on Milvus 2.3).
pub(crate) fn barrier(r: &Remote, collection: &str) -> Result<()> {
    let name = collection.to_string();
    let ask = |c: ClientV2, name: String, filter: &'static str| async move {
        c.query(
            QueryRequest::builder()
                .collection_name(name)
                .filter(filter)
                .output_fields(["count(*)"])
                .consistency_level(ConsistencyLevel::Strong)
                .build()?,
        )
        .await
    };
    r.call(&format!("waiting for writes to {collection}"), |c| async move {
        let (a, b) = tokio::join!(
            ask(c.clone(), name, "id == \"\""),
            ask(c, META.to_string(), "key == \"\"")
        );
        a?;
        b?;
        Ok(())
    })
}
