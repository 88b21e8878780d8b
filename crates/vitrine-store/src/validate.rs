//! The store's rules for vectors and rows, checked before anything is written.

use crate::error::{invalid, Result};
use crate::rows::Row;
use crate::schema::{check_name, FieldType, Schema};

/// Checks one vector for the store's rules: finite values, and not all zeros under cosine.
/// The message says what is wrong; callers prefix it with the row or file.
pub fn check_vector(metric: crate::Metric, v: &[f32]) -> std::result::Result<(), String> {
    let norm = vitrine_kernels::norm_fast(v);
    // A NaN or infinity anywhere makes the sum of squares NaN or infinite: only then look for it.
    if !norm.is_finite() {
        if let Some(j) = v.iter().position(|x| !x.is_finite()) {
            return Err(format!("vector value {j} is {}", v[j]));
        }
    }
    if metric == crate::Metric::Cosine && norm < MIN_COSINE_NORM {
        return Err(if norm == 0.0 {
            "zero vector, which has no cosine similarity".into()
        } else {
            format!("vector norm {norm:e} is too close to zero for cosine similarity")
        });
    }
    // Squares of norms must stay finite in f32 for the scan's error bounds to hold.
    if norm > MAX_NORM {
        return Err(format!("vector norm {norm:e} is larger than {MAX_NORM:e}"));
    }
    Ok(())
}

/// Largest vector norm accepted: its square stays far from f32 overflow.
pub const MAX_NORM: f64 = 1e18;
/// Smallest norm accepted under cosine: below it (subnormal territory) f32 division loses precision.
pub const MIN_COSINE_NORM: f64 = 1e-18;

/// Checks rows' metadata against `schema` (ids, sources, timestamps, field types) and returns
/// the schema extended by the fields they bring. Vectors are checked by [`check_vector`].
/// Importers call this over every input before writing anything.
pub fn validate_rows(schema: &Schema, field_names: &[String], rows: &[Row]) -> Result<Schema> {
    let mut schema = schema.clone();
    let mut types: Vec<Option<FieldType>> = field_names.iter().map(|f| schema.field_type(f)).collect();
    for (i, row) in rows.iter().enumerate() {
        if row.id.is_empty() {
            return Err(invalid(format!("row {i}: empty id")));
        }
        check_name("source", &row.source).map_err(|e| invalid(format!("row {i} (id {:?}): {e}", row.id)))?;
        crate::day::check_timestamp(row.timestamp).map_err(|e| invalid(format!("row {i} (id {:?}): {e}", row.id)))?;
        if row.fields.len() != field_names.len() {
            return Err(invalid(format!(
                "row {i}: {} field values for {} fields",
                row.fields.len(),
                field_names.len()
            )));
        }
        for (f, val) in row.fields.iter().enumerate() {
            let Some(t) = val.field_type() else { continue };
            match types[f] {
                None => types[f] = Some(t),
                Some(FieldType::Float) if t == FieldType::Int => {}
                Some(FieldType::Int) if t == FieldType::Float => types[f] = Some(FieldType::Float),
                Some(have) if have != t => {
                    return Err(invalid(format!(
                        "row {i} (id {:?}): field {:?} is {t} here but {have} elsewhere",
                        row.id, field_names[f]
                    )))
                }
                _ => {}
            }
        }
    }
    for (name, t) in field_names.iter().zip(&types) {
        if let Some(t) = t {
            schema.ensure_field(name, *t)?;
        }
    }
    Ok(schema)
}
