//! Per-query candidate collection with a safety margin for exact re-ranking.

/// A scored row: `score` is "higher is better" (the store negates distances), `seg` and `row`
/// locate the row in the snapshot being searched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The approximate (f32) score.
    pub score: f32,
    /// Index of the segment in the searched snapshot.
    pub seg: u32,
    /// Row inside the segment.
    pub row: u32,
}

/// Collects every candidate that could belong to a query's exact answer.
///
/// With `k = Some(k)` it keeps the best `k` rows *plus every row within `margin` of the k-th
/// best*: a row whose f32 score is lower than the k-th f32 score by more than twice the error
/// bound can never enter the exact top k, but any row closer than that might. With
/// `k = None` (range search) it keeps every row scoring at least `floor`.
///
/// Pushes are amortised O(1): candidates are appended to a buffer and the buffer is cut back
/// with a linear-time selection when it doubles.
#[derive(Debug, Clone)]
pub struct Collector {
    k: Option<usize>,
    margin: f32,
    floor: f32,
    cap: usize,
    buf: Vec<Candidate>,
}

impl Collector {
    /// A collector for the `k` best rows, keeping `margin` of slack below the k-th score.
    pub fn top_k(k: usize, margin: f32) -> Self {
        let cap = k.saturating_mul(2).saturating_add(64);
        Collector {
            k: Some(k),
            margin,
            floor: f32::NEG_INFINITY,
            cap,
            buf: Vec::with_capacity(cap.min(4096)),
        }
    }

    /// A collector for every row scoring at least `floor` (already lowered by the margin).
    pub fn at_least(floor: f32) -> Self {
        Collector {
            k: None,
            margin: 0.0,
            floor,
            cap: usize::MAX,
            buf: Vec::new(),
        }
    }

    /// The lowest score that is still worth pushing; callers may skip rows below it.
    #[inline]
    pub fn floor(&self) -> f32 {
        self.floor
    }

    /// Offers a row.
    #[inline]
    pub fn push(&mut self, score: f32, seg: u32, row: u32) {
        if score >= self.floor {
            self.buf.push(Candidate { score, seg, row });
            if self.buf.len() >= self.cap {
                self.shrink();
            }
        }
    }

    /// Moves every candidate of `other` into `self`.
    pub fn merge(&mut self, other: Collector) {
        self.floor = self.floor.max(other.floor);
        for c in other.buf {
            self.push(c.score, c.seg, c.row);
        }
    }

    /// Cuts the buffer back to the k best plus the margin band.
    fn shrink(&mut self) {
        let Some(k) = self.k else { return };
        if k == 0 {
            self.buf.clear();
            self.floor = f32::INFINITY;
            return;
        }
        if self.buf.len() > k {
            self.buf
                .select_nth_unstable_by(k - 1, |a, b| b.score.total_cmp(&a.score));
            let kth = self.buf[k - 1].score;
            self.floor = self.floor.max(kth - self.margin);
            let floor = self.floor;
            self.buf.retain(|c| c.score >= floor);
        }
        // Many exact ties can keep the buffer large; grow the cap so pushes stay amortised O(1).
        self.cap = k.saturating_mul(2).saturating_add(64).max(2 * self.buf.len());
    }

    /// The surviving candidates (unordered), after a final cut.
    pub fn into_candidates(mut self) -> Vec<Candidate> {
        self.shrink();
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_top_k_and_the_margin_band() {
        let mut c = Collector::top_k(3, 0.05);
        for (i, s) in [0.1f32, 0.9, 0.5, 0.88, 0.7, 0.86, 0.2, 0.84].iter().enumerate() {
            c.push(*s, 0, i as u32);
        }
        let mut got: Vec<f32> = c.into_candidates().iter().map(|c| c.score).collect();
        got.sort_by(|a, b| b.total_cmp(a));
        // top 3 = 0.9, 0.88, 0.86; band keeps >= 0.81
        assert_eq!(got, vec![0.9, 0.88, 0.86, 0.84]);
    }

    #[test]
    fn many_pushes_stay_bounded_and_keep_the_best() {
        let mut c = Collector::top_k(5, 0.0);
        for i in 0..100_000u32 {
            c.push(((i * 7919) % 100_000) as f32, 0, i);
            assert!(c.buf.len() <= c.cap);
        }
        let mut got: Vec<f32> = c.into_candidates().iter().map(|c| c.score).collect();
        got.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(got, vec![99_999.0, 99_998.0, 99_997.0, 99_996.0, 99_995.0]);
    }

    #[test]
    fn range_collector_keeps_everything_above_floor() {
        let mut c = Collector::at_least(0.5);
        for i in 0..10 {
            c.push(i as f32 / 10.0, 1, i);
        }
        assert_eq!(c.into_candidates().len(), 5);
    }

    #[test]
    fn k_larger_than_input_keeps_all() {
        let mut c = Collector::top_k(100, 0.0);
        for i in 0..10 {
            c.push(i as f32, 0, i);
        }
        assert_eq!(c.into_candidates().len(), 10);
    }
}
