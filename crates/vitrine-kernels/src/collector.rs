//! Per-query candidate collection over score intervals, for exact re-ranking.

/// A row whose exact score is known to lie in `[lower, score]`: `score` is the upper bound
/// ("higher is better": the store negates distances), `seg` and `row` locate the row in the
/// snapshot being searched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Upper bound of the exact score.
    pub score: f32,
    /// Lower bound of the exact score.
    pub lower: f32,
    /// Index of the segment in the searched snapshot.
    pub seg: u32,
    /// Row inside the segment.
    pub row: u32,
}

/// Collects every row that could belong to a query's exact answer.
///
/// Each row comes with an interval that holds its exact score: an f32 score ± the kernels'
/// rounding bound, or an 8-bit code estimate ± its quantisation bound. With `k` it keeps every
/// row whose upper bound reaches the k-th best *lower* bound seen so far: any row below that
/// is beaten by k rows for certain, any row above it might not be. Without `k` (range search) it
/// keeps every row whose upper bound reaches the threshold.
///
/// Pushes are amortised O(1): candidates are appended to a buffer and the buffer is cut back
/// with a linear-time selection when it doubles.
#[derive(Debug, Clone)]
pub struct Collector {
    k: Option<usize>,
    floor: f32,
    cap: usize,
    buf: Vec<Candidate>,
}

impl Collector {
    /// A collector for the `k` best rows.
    pub fn top_k(k: usize) -> Self {
        let cap = k.saturating_mul(2).saturating_add(64);
        Collector {
            k: Some(k),
            floor: f32::NEG_INFINITY,
            cap,
            buf: Vec::with_capacity(cap.min(4096)),
        }
    }

    /// A collector for every row whose upper bound is at least `floor`.
    pub fn at_least(floor: f32) -> Self {
        Collector {
            k: None,
            floor,
            cap: usize::MAX,
            buf: Vec::new(),
        }
    }

    /// The lowest upper bound that is still worth pushing; callers may skip rows below it.
    #[inline]
    pub fn floor(&self) -> f32 {
        self.floor
    }

    /// Offers a row whose exact score lies in `[lower, upper]`. A NaN end (an estimate that
    /// overflowed) stands for "unknown": the row is kept and can never raise the floor.
    #[inline]
    pub fn push(&mut self, upper: f32, lower: f32, seg: u32, row: u32) {
        let upper = if upper.is_nan() { f32::INFINITY } else { upper };
        let lower = if lower.is_nan() { f32::NEG_INFINITY } else { lower };
        if upper >= self.floor {
            self.buf.push(Candidate {
                score: upper,
                lower,
                seg,
                row,
            });
            if self.buf.len() >= self.cap {
                self.shrink();
            }
        }
    }

    /// Moves every candidate of `other` into `self`.
    pub fn merge(&mut self, other: Collector) {
        // Either floor is a k-th best lower bound of a subset, so at most the overall one.
        self.floor = self.floor.max(other.floor);
        for c in other.buf {
            self.push(c.score, c.lower, c.seg, c.row);
        }
    }

    /// Raises the floor to the k-th best lower bound and drops what falls below it.
    fn shrink(&mut self) {
        let Some(k) = self.k else { return };
        if k == 0 {
            self.buf.clear();
            self.floor = f32::INFINITY;
            return;
        }
        if self.buf.len() >= k {
            // Rows dropped earlier had upper (so lower) bounds below the floor, so the k-th best
            // lower bound among those kept is the k-th best of all seen.
            self.buf
                .select_nth_unstable_by(k - 1, |a, b| b.lower.total_cmp(&a.lower));
            self.floor = self.floor.max(self.buf[k - 1].lower);
            let floor = self.floor;
            self.buf.retain(|c| c.score >= floor);
        }
        // Many rows with overlapping intervals can keep the buffer large; grow the cap so
        // pushes stay amortised O(1).
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
        // Scores ± 0.025: the 3rd best lower bound is 0.835, which 0.84's upper bound reaches.
        let mut c = Collector::top_k(3);
        for (i, s) in [0.1f32, 0.9, 0.5, 0.88, 0.7, 0.86, 0.2, 0.84, 0.8].iter().enumerate() {
            c.push(*s + 0.025, *s - 0.025, 0, i as u32);
        }
        let mut got: Vec<u32> = c.into_candidates().iter().map(|c| c.row).collect();
        got.sort();
        assert_eq!(got, vec![1, 3, 5, 7]);
    }

    #[test]
    fn many_pushes_stay_bounded_and_keep_the_best() {
        let mut c = Collector::top_k(5);
        for i in 0..100_000u32 {
            let s = ((i * 7919) % 100_000) as f32;
            c.push(s, s, 0, i);
            assert!(c.buf.len() <= c.cap);
        }
        let mut got: Vec<f32> = c.into_candidates().iter().map(|c| c.score).collect();
        got.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(got, vec![99_999.0, 99_998.0, 99_997.0, 99_996.0, 99_995.0]);
    }

    #[test]
    fn wide_intervals_keep_every_row_that_might_win() {
        // One row is certain (tight); one wide row could still beat it; one cannot.
        let mut c = Collector::top_k(1);
        c.push(0.60, 0.59, 0, 0);
        c.push(0.70, 0.10, 0, 1);
        c.push(0.58, 0.20, 0, 2);
        let mut got: Vec<u32> = c.into_candidates().iter().map(|c| c.row).collect();
        got.sort();
        assert_eq!(got, vec![0, 1]);
    }

    #[test]
    fn nan_bounds_keep_the_row_and_never_raise_the_floor() {
        let mut c = Collector::top_k(1);
        c.push(f32::NAN, f32::NAN, 0, 0);
        c.push(0.5, 0.4, 0, 1);
        let mut got: Vec<u32> = c.into_candidates().iter().map(|c| c.row).collect();
        got.sort();
        assert_eq!(got, vec![0, 1]);
    }

    #[test]
    fn range_collector_keeps_everything_above_floor() {
        let mut c = Collector::at_least(0.5);
        for i in 0..10 {
            c.push(i as f32 / 10.0, i as f32 / 10.0 - 0.5, 1, i);
        }
        assert_eq!(c.into_candidates().len(), 5);
    }

    #[test]
    fn k_larger_than_input_keeps_all() {
        let mut c = Collector::top_k(100);
        for i in 0..10 {
            c.push(i as f32, i as f32, 0, i);
        }
        assert_eq!(c.into_candidates().len(), 10);
    }
}
