//! Partitions: the rows of one (source, UTC day), and their statistics.

use crate::manifest::Manifest;
use crate::Day;
use std::collections::BTreeMap;

/// Statistics of one (source, day) partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionInfo {
    /// Source.
    pub source: String,
    /// Day.
    pub day: Day,
    /// Segment files.
    pub segments: usize,
    /// Live rows (not deleted).
    pub rows: u64,
    /// Deleted rows whose space `compact` would reclaim.
    pub deleted: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

pub(crate) fn partitions_of(m: &Manifest) -> Vec<PartitionInfo> {
    let mut map: BTreeMap<(String, Day), PartitionInfo> = BTreeMap::new();
    for e in &m.segments {
        let p = map.entry((e.source.clone(), e.day)).or_insert_with(|| PartitionInfo {
            source: e.source.clone(),
            day: e.day,
            segments: 0,
            rows: 0,
            deleted: 0,
            bytes: 0,
        });
        p.segments += 1;
        p.rows += e.rows - e.deleted;
        p.deleted += e.deleted;
        p.bytes += e.bytes;
    }
    map.into_values().collect()
}
