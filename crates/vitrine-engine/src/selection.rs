//! Which rows a request covers, as a user says it: sources, a day range or "the last N days",
//! and a filter expression.
//!
//! **One rule for days.** An age of N days means the N calendar days (UTC) ending today, today
//! included: `--last 30d` covers today and the 29 days before it, and
//! `partitions retain --older-than 30d` drops every day before those 30, so it keeps exactly
//! what `--last 30d` shows. Ages in hours or weeks are first rounded up to whole days (36h is
//! 2 days), and an age is at least one day.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;
use vitrine_store::{Day, Expr, PartitionInfo, Schema, Selection};

/// An age such as `30d`, `12w`, `36h` or `1y` (see the module's rule for days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age {
    secs: i64,
}

impl Age {
    /// Whole days, rounded up, at least one.
    pub fn days(self) -> i64 {
        ((self.secs + 86_399) / 86_400).max(1)
    }

    /// The first day of the window of this age ending `today` (inclusive).
    pub fn first_day(self, today: Day) -> Day {
        vitrine_store::days_back(today, self.days() * 86_400)
    }
}

impl FromStr for Age {
    type Err = Error;
    fn from_str(s: &str) -> Result<Age> {
        Ok(Age {
            secs: vitrine_store::parse_age(s)?,
        })
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}d", self.days())
    }
}

/// Sources, days and a filter, before they are checked against a collection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectionSpec {
    /// Only these sources (all if empty).
    pub sources: Vec<String>,
    /// First day, inclusive.
    pub from: Option<Day>,
    /// Last day, inclusive.
    pub to: Option<Day>,
    /// Only the last N days, today included (instead of `from`/`to`).
    pub last: Option<Age>,
    /// A filter expression (the Milvus boolean-expression subset; see the README).
    pub filter: Option<String>,
}

impl SelectionSpec {
    /// Everything.
    pub fn all() -> SelectionSpec {
        SelectionSpec::default()
    }

    /// True when it selects every row.
    pub fn is_everything(&self) -> bool {
        self.sources.is_empty()
            && self.from.is_none()
            && self.to.is_none()
            && self.last.is_none()
            && self.filter.is_none()
    }

    /// The store selection for a collection with `schema`, days counted from `today`.
    pub fn resolve(&self, schema: &Schema, today: Day) -> Result<Selection> {
        let (mut from, mut to) = (self.from, self.to);
        if let Some(age) = self.last {
            if from.is_some() || to.is_some() {
                return Err(Error::invalid(
                    "give either the last N days or a from/to range, not both",
                ));
            }
            from = Some(age.first_day(today));
            to = Some(today);
        }
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(Error::invalid(format!("from {f} is after to {t}")));
            }
        }
        for s in &self.sources {
            vitrine_store::check_name("source", s)?;
        }
        let filter = match &self.filter {
            Some(text) => Some(Expr::parse(text, schema).map_err(vitrine_store::Error::from)?),
            None => None,
        };
        Ok(Selection {
            sources: self.sources.clone(),
            from,
            to,
            filter,
        })
    }
}

/// Fails when `selection` names a source (in its list of sources or in its filter) that no
/// partition has: a typo would otherwise read as "no matches", or delete nothing silently.
pub fn check_sources(collection: &str, selection: &Selection, partitions: &[PartitionInfo]) -> Result<()> {
    let mut known: Vec<&str> = partitions.iter().map(|p| p.source.as_str()).collect();
    known.sort_unstable();
    known.dedup();
    let mut named: Vec<String> = selection.sources.clone();
    if let Some(f) = &selection.filter {
        named.extend(f.sources_named());
    }
    match named.iter().find(|s| known.binary_search(&s.as_str()).is_err()) {
        None => Ok(()),
        Some(s) => Err(vitrine_store::Error::UnknownSource {
            collection: collection.to_string(),
            source_name: s.clone(),
            known: if known.is_empty() {
                "none yet".into()
            } else {
                known.join(", ")
            },
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_and_retention_count_days_the_same_way() {
        let today: Day = "2023-11-23".parse().unwrap();
        let age: Age = "30d".parse().unwrap();
        assert_eq!(age.first_day(today).to_string(), "2023-10-25");
        let hours: Age = "36h".parse().unwrap();
        assert_eq!(hours.days(), 2);
        assert_eq!(hours.first_day(today).to_string(), "2023-11-22");
        let one: Age = "1h".parse().unwrap();
        assert_eq!(one.first_day(today), today);
        let week: Age = "1w".parse().unwrap();
        assert_eq!(week.first_day(today).to_string(), "2023-11-17");
    }

    #[test]
    fn a_range_and_last_together_are_refused() {
        let schema = Schema::new(2, vitrine_store::Metric::Cosine).unwrap();
        let today: Day = "2023-11-23".parse().unwrap();
        let spec = SelectionSpec {
            last: Some("3d".parse().unwrap()),
            from: Some(today),
            ..Default::default()
        };
        assert!(spec.resolve(&schema, today).is_err());
        let back = SelectionSpec {
            from: Some(today),
            to: Some(Day(today.0 - 1)),
            ..Default::default()
        };
        let e = back.resolve(&schema, today).unwrap_err().to_string();
        assert!(e.contains("after"), "{e}");
    }
}
