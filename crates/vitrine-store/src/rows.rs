//! What is written: rows of metadata with their vectors.

use crate::schema::Value;

/// Rows to insert: flat vectors plus per-row metadata.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Names of the user fields that `rows[i].fields` follow.
    pub field_names: Vec<String>,
    /// Row metadata.
    pub rows: Vec<Row>,
    /// `rows.len() × dim` floats.
    pub vectors: Vec<f32>,
}

/// One row's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Primary key; re-inserting it replaces the old row.
    pub id: String,
    /// Where the image lives.
    pub uri: String,
    /// Data source (partition key, with the day).
    pub source: String,
    /// Unix seconds; its UTC day is the other half of the partition key.
    pub timestamp: i64,
    /// User field values aligned with [`Batch::field_names`].
    pub fields: Vec<Value>,
}
