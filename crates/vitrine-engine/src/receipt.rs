//! Recall receipts: what a search or sweep covered, and what it could not see.
//!
//! A receipt joins the backend's scan statistics (partitions and rows scanned, rows excluded by
//! deletes and by the filter) with the indexing ledger's inputs in the same selection that are
//! not rows: inputs that failed to index and inputs still pending in an interrupted run. If the
//! ledger cannot be read, the receipt says coverage is unknown rather than claim it is complete.

use crate::backend::CollectionReader;
use crate::ledger::{Ledger, State, LEDGER_FILE};
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;
use vitrine_store::{Day, SearchStats, Selection};

/// Whether a receipt can vouch for everything in its selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Coverage {
    /// Every input in the selection is a row that was scanned (or excluded as reported).
    Complete,
    /// Some inputs in the selection failed to index or are pending: they are listed.
    Incomplete,
    /// The ledger could not be read: failed or pending inputs cannot be listed.
    Unknown,
}

/// An input in the selection that is not a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outstanding {
    /// Its uri (or, for a manifest row without one, where it came from).
    pub uri: String,
    /// Its source ("" if unknown).
    pub source: String,
    /// Its day, if known.
    pub day: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// What a search covered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    /// The backend's scan statistics.
    #[serde(flatten)]
    pub scan: SearchStats,
    /// Complete, incomplete (see `failed` and `pending`) or unknown (see `note`).
    pub coverage: Coverage,
    /// How many inputs in the selection failed to index.
    pub inputs_failed: usize,
    /// How many are pending (not yet indexed).
    pub inputs_pending: usize,
    /// The failed inputs.
    pub failed: Vec<Outstanding>,
    /// The pending inputs.
    pub pending: Vec<Outstanding>,
    /// What the reader should know (the filter could not apply to outstanding inputs; the
    /// ledger could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For a calibrated sweep: the precision to expect and the evidence for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::calibrate::Calibrated>,
}

impl Receipt {
    /// The receipt for a scan of `selection` in `reader`'s collection, whose ledger is in
    /// `side_dir` (none: nothing was ever indexed there, only imported).
    pub fn new(
        scan: SearchStats,
        reader: &dyn CollectionReader,
        side_dir: Option<&Path>,
        selection: &Selection,
    ) -> Receipt {
        let mut r = Receipt {
            scan,
            coverage: Coverage::Complete,
            inputs_failed: 0,
            inputs_pending: 0,
            failed: Vec::new(),
            pending: Vec::new(),
            note: None,
            calibration: None,
        };
        let Some(dir) = side_dir else { return r };
        let path = dir.join(LEDGER_FILE);
        let ledger = match Ledger::open(&path) {
            Ok(l) => l,
            Err(e) => {
                r.coverage = Coverage::Unknown;
                r.note = Some(format!(
                    "the indexing ledger could not be read ({e}): inputs that failed to index or are pending \
                     cannot be listed, so coverage is unknown"
                ));
                return r;
            }
        };
        // Knowing which uris are rows costs a pass over the collection: only when some ledger
        // entry is in the selection.
        let candidates = ledger.outstanding(&selection.sources, selection.from, selection.to, |_| false);
        if candidates.is_empty() {
            return r;
        }
        let mut ids: HashSet<String> = HashSet::new();
        let mut rows: HashSet<(String, String)> = HashSet::new();
        let mut uris: HashSet<String> = HashSet::new();
        let scanned = reader.scan(&Selection::default(), &[], false, &mut |rec| {
            ids.insert(rec.id);
            uris.insert(rec.uri.clone());
            rows.insert((rec.source, rec.uri));
            Ok(())
        });
        if let Err(e) = scanned {
            r.coverage = Coverage::Unknown;
            r.note = Some(format!(
                "the collection's uris could not be read ({e}), so coverage is unknown"
            ));
            return r;
        }
        // An entry is covered by the row with its id; entries of older ledgers (keyed by uri)
        // by a row with their source and uri.
        let is_row = |e: &crate::ledger::LedgerEntry| {
            ids.contains(&e.key)
                || (e.key == e.uri
                    && if e.source.is_empty() {
                        uris.contains(&e.uri)
                    } else {
                        rows.contains(&(e.source.clone(), e.uri.clone()))
                    })
        };
        for e in candidates.into_iter().filter(|e| !is_row(e)) {
            let o = Outstanding {
                uri: e.uri.clone(),
                source: e.source.clone(),
                day: e.day.map(|d: Day| d.to_string()),
                reason: e.reason.clone(),
            };
            match e.state {
                State::Failed => r.failed.push(o),
                State::Pending => r.pending.push(o),
            }
        }
        r.inputs_failed = r.failed.len();
        r.inputs_pending = r.pending.len();
        if r.inputs_failed + r.inputs_pending > 0 {
            r.coverage = Coverage::Incomplete;
            if selection.filter.is_some() {
                r.note = Some(
                    "failed and pending inputs have no field values, so the filter could not be applied to them".into(),
                );
            }
        }
        r
    }
}
