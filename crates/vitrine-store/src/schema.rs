//! Collection schemas: vector dimension, metric, and the typed fields every row carries.

use crate::error::{invalid, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity (higher is better). Vectors are stored as given; their norms are kept.
    Cosine,
    /// Inner product (higher is better).
    Ip,
    /// Euclidean distance (lower is better); reported scores are distances, not squares.
    L2,
}

impl Metric {
    /// True when a larger score is a better match.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }
}

impl FromStr for Metric {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" | "cos" => Ok(Metric::Cosine),
            "ip" | "dot" | "inner_product" => Ok(Metric::Ip),
            "l2" | "euclidean" => Ok(Metric::L2),
            _ => Err(invalid(format!("unknown metric {s:?}: expected cosine, ip or l2"))),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::Cosine => "cosine",
            Metric::Ip => "ip",
            Metric::L2 => "l2",
        })
    }
}

/// The type of a user field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int,
    /// 64-bit float.
    Float,
    /// Boolean.
    Bool,
}

impl FromStr for FieldType {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "string" | "str" | "varchar" => Ok(FieldType::String),
            "int" | "int64" | "integer" => Ok(FieldType::Int),
            "float" | "double" | "float64" => Ok(FieldType::Float),
            "bool" | "boolean" => Ok(FieldType::Bool),
            _ => Err(invalid(format!(
                "unknown field type {s:?}: expected string, int, float or bool"
            ))),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
        })
    }
}

/// A user field of a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The field's name (not one of [`RESERVED_FIELDS`]).
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: FieldType,
}

/// Names every row has built in; user fields cannot take them.
pub const RESERVED_FIELDS: &[&str] = &["id", "uri", "source", "timestamp", "day", "vector", "score"];

/// A collection's schema. Every row has `id` (primary key), `uri`, `source`, `timestamp`
/// (unix seconds; the UTC `day` derives from it) and a vector; user fields are optional per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Vector dimension.
    pub dim: usize,
    /// Comparison metric.
    pub metric: Metric,
    /// User fields, in the order they were added.
    #[serde(default)]
    pub fields: Vec<Field>,
}

impl Schema {
    /// A schema without user fields.
    pub fn new(dim: usize, metric: Metric) -> Result<Self> {
        if dim == 0 || dim > 65_536 {
            return Err(invalid(format!("vector dimension {dim} is out of range (1..=65536)")));
        }
        Ok(Schema {
            dim,
            metric,
            fields: Vec::new(),
        })
    }

    /// The type of user field `name`, if it exists.
    pub fn field_type(&self, name: &str) -> Option<FieldType> {
        self.fields.iter().find(|f| f.name == name).map(|f| f.ty)
    }

    /// Adds user field `name` of type `ty`, or checks that it already has that type.
    pub fn ensure_field(&mut self, name: &str, ty: FieldType) -> Result<()> {
        check_name("field", name)?;
        if RESERVED_FIELDS.contains(&name) {
            return Err(invalid(format!(
                "field name {name:?} is reserved (reserved: {})",
                RESERVED_FIELDS.join(", ")
            )));
        }
        match self.field_type(name) {
            Some(t) if t == ty => Ok(()),
            // An int column accepts floats only if declared float; ints widen into float fields.
            Some(FieldType::Float) if ty == FieldType::Int => Ok(()),
            Some(t) => Err(invalid(format!(
                "field {name:?} has type {t} in the collection, but the input gives {ty}"
            ))),
            None => {
                self.fields.push(Field {
                    name: name.to_string(),
                    ty,
                });
                Ok(())
            }
        }
    }
}

/// Checks a collection, field or source name: non-empty, at most 255 bytes, no control characters;
/// collection names are also limited to `[A-Za-z0-9_-]` because they name directories.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(invalid(format!(
            "invalid {what} name {name:?}: must be 1-255 bytes without control characters"
        )));
    }
    if what == "collection" && !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(invalid(format!(
            "invalid collection name {name:?}: use letters, digits, '_' and '-'"
        )));
    }
    Ok(())
}

/// A user field's value in one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent.
    Null,
    /// Text.
    Str(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

impl Value {
    /// The field type this value needs, or `None` for null.
    pub fn field_type(&self) -> Option<FieldType> {
        match self {
            Value::Null => None,
            Value::Str(_) => Some(FieldType::String),
            Value::Int(_) => Some(FieldType::Int),
            Value::Float(_) => Some(FieldType::Float),
            Value::Bool(_) => Some(FieldType::Bool),
        }
    }

    /// The value in words, for messages: `the number 1.5`, `text "a"`, `true`, `null`.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Str(s) => format!("text {s:?}"),
            Value::Int(i) => format!("the number {i}"),
            Value::Float(f) => format!("the number {f}"),
            Value::Bool(b) => b.to_string(),
        }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
            Value::Bool(b) => (*b).into(),
        }
    }
}
