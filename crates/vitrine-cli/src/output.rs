//! Printing rows as an aligned table, JSON lines or CSV. JSON and CSV keep every float exactly
//! (shortest form that reads back to the same value); the table rounds for reading.

use crate::args::Format;
use std::io::Write;

/// Rows of named cells, printed in one of the [`Format`]s.
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

impl Rows {
    pub fn new(columns: &[&str]) -> Rows {
        Rows {
            columns: columns.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn print(&self, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
        match format {
            Format::Jsonl => {
                for r in &self.rows {
                    let obj: serde_json::Map<String, serde_json::Value> =
                        self.columns.iter().cloned().zip(r.iter().cloned()).collect();
                    writeln!(out, "{}", serde_json::Value::Object(obj))?;
                }
            }
            Format::Csv => {
                // The writer's own error type hides the I/O error (a closed pipe) that callers
                // look for; hand it back as the io::Error it is.
                let io = |e: csv::Error| match e.into_kind() {
                    csv::ErrorKind::Io(e) => e,
                    other => std::io::Error::other(format!("{other:?}")),
                };
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&self.columns).map_err(io)?;
                for r in &self.rows {
                    w.write_record(r.iter().map(exact_cell)).map_err(io)?;
                }
                w.flush()?;
            }
            Format::Table => {
                let cells: Vec<Vec<String>> = self.rows.iter().map(|r| r.iter().map(cell).collect()).collect();
                let widths: Vec<usize> = (0..self.columns.len())
                    .map(|c| {
                        cells
                            .iter()
                            .map(|r| r[c].chars().count())
                            .chain([self.columns[c].len()])
                            .max()
                            .unwrap_or(0)
                    })
                    .collect();
                let line = |vals: &[String]| {
                    vals.iter()
                        .zip(&widths)
                        .map(|(v, w)| format!("{v:<w$}"))
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_string()
                };
                writeln!(out, "{}", line(&self.columns))?;
                for r in &cells {
                    writeln!(out, "{}", line(r))?;
                }
            }
        }
        Ok(())
    }
}

/// A cell as data: floats in their shortest form that reads back to the same value.
fn exact_cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => f.to_string(),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A cell for people: floats to 6 decimals.
fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.6}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}
