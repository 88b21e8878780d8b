//! [`Selection`]: which rows an operation applies to (sources, days, a filter).

use crate::deletes::Bitmap;
use crate::filter::Expr;
use crate::segment::Segment;
use crate::Day;

/// Which rows a search (or a delete) applies to.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these sources (all if empty).
    pub sources: Vec<String>,
    /// First day, inclusive.
    pub from: Option<Day>,
    /// Last day, inclusive.
    pub to: Option<Day>,
    /// A row filter.
    pub filter: Option<Expr>,
}

impl Selection {
    /// Whether partition (`source`, `day`) may hold selected rows.
    pub fn includes_partition(&self, source: &str, day: Day) -> bool {
        (self.sources.is_empty() || self.sources.iter().any(|s| s == source))
            && self.from.is_none_or(|f| day >= f)
            && self.to.is_none_or(|t| day <= t)
            && self.filter.as_ref().is_none_or(|f| f.may_match_partition(source, day))
    }

    /// True when the selection names nothing (every row).
    pub fn is_everything(&self) -> bool {
        self.sources.is_empty() && self.from.is_none() && self.to.is_none() && self.filter.is_none()
    }

    /// Rows of `seg` (in an included partition) to skip: deleted or failing the filter.
    /// Returns the mask (None if nothing is skipped), rows deleted, rows filtered out.
    pub(crate) fn excluded(&self, seg: &Segment, deletes: Option<&Bitmap>) -> (Option<Bitmap>, u64, u64) {
        let Some(filter) = &self.filter else {
            let n = deletes.map_or(0, |d| d.count() as u64);
            return (deletes.filter(|_| n > 0).cloned(), n, 0);
        };
        let fields = filter.fields();
        let acc: Vec<_> = fields.iter().map(|f| seg.accessor(f)).collect();
        let mut mask = deletes.cloned().unwrap_or_else(|| Bitmap::new(seg.rows()));
        let deleted = mask.count() as u64;
        let mut filtered = 0;
        for r in 0..seg.rows() {
            if mask.contains(r) {
                continue;
            }
            if !filter.eval(&fields, &|i| acc[i].get(r)) {
                mask.insert(r);
                filtered += 1;
            }
        }
        let any = deleted + filtered > 0;
        (any.then_some(mask), deleted, filtered)
    }
}
