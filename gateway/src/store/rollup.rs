//! Time buckets: aggregating points into fixed-width, epoch-aligned buckets (min, max,
//! sum, count, last) and merging partial buckets, for roll-ups and bucketed queries.
//!
//! Pure: no I/O. Owns the arithmetic; not where buckets are kept.

use serde::Serialize;

/// One bucket's aggregates. Partial buckets of the same start merge exactly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    /// Bucket start, ms since the epoch (a multiple of the width).
    pub start: i64,
    /// Points in the bucket.
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of values.
    pub sum: f64,
    /// Value of the latest point.
    pub last: f64,
}

/// Aggregate wanted from a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean.
    Mean,
    /// Number of points.
    Count,
    /// Latest value.
    Last,
    /// Sum.
    Sum,
}

impl Agg {
    /// Parses `min|max|mean|avg|count|last|sum`.
    pub fn parse(s: &str) -> Option<Agg> {
        Some(match s {
            "min" => Agg::Min,
            "max" => Agg::Max,
            "mean" | "avg" => Agg::Mean,
            "count" => Agg::Count,
            "last" => Agg::Last,
            "sum" => Agg::Sum,
            _ => return None,
        })
    }
}

impl Bucket {
    fn of(start: i64, v: f64) -> Bucket {
        Bucket {
            start,
            count: 1,
            min: v,
            max: v,
            sum: v,
            last: v,
        }
    }

    /// Adds a later partial bucket of the same start.
    pub fn merge_later(&mut self, later: &Bucket) {
        self.count += later.count;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.sum += later.sum;
        self.last = later.last;
    }

    /// The aggregate `agg` of this bucket.
    pub fn value(&self, agg: Agg) -> f64 {
        match agg {
            Agg::Min => self.min,
            Agg::Max => self.max,
            Agg::Mean => self.sum / self.count.max(1) as f64,
            Agg::Count => self.count as f64,
            Agg::Last => self.last,
            Agg::Sum => self.sum,
        }
    }
}

/// Start of the `width`-ms bucket holding `t`.
pub fn bucket_start(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}

/// Buckets of `points` (sorted by time) `width` ms wide.
pub fn aggregate(points: &[(i64, f64)], width: i64) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for &(t, v) in points {
        let start = bucket_start(t, width);
        match out.last_mut() {
            Some(b) if b.start == start => b.merge_later(&Bucket::of(start, v)),
            _ => out.push(Bucket::of(start, v)),
        }
    }
    out
}

/// Merges runs of buckets given in time order of their sources (later sources win
/// `last`); buckets of equal start are combined.
pub fn merge_runs(runs: impl IntoIterator<Item = Vec<Bucket>>) -> Vec<Bucket> {
    let mut all: Vec<Bucket> = runs.into_iter().flatten().collect();
    // Stable: buckets of equal start keep source order, so `last` comes from the latest.
    all.sort_by_key(|b| b.start);
    let mut out: Vec<Bucket> = Vec::with_capacity(all.len());
    for b in all {
        match out.last_mut() {
            Some(prev) if prev.start == b.start => prev.merge_later(&b),
            _ => out.push(b),
        }
    }
    out
}

/// Re-buckets finer buckets into `width`-ms ones (width a multiple of theirs).
pub fn coarsen(buckets: &[Bucket], width: i64) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for b in buckets {
        let start = bucket_start(b.start, width);
        match out.last_mut() {
            Some(prev) if prev.start == start => prev.merge_later(b),
            _ => out.push(Bucket { start, ..*b }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_and_merges_partials_exactly() {
        let pts: Vec<(i64, f64)> = (0..120).map(|i| (i * 1000, i as f64)).collect();
        let whole = aggregate(&pts, 60_000);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].count, 60);
        assert_eq!(whole[0].value(Agg::Mean), 29.5);
        assert_eq!(whole[1].value(Agg::Last), 119.0);
        assert_eq!(whole[1].value(Agg::Min), 60.0);
        // Split at an unaligned point: partial buckets merge to the same answer.
        let (a, b) = pts.split_at(37);
        let merged = merge_runs([aggregate(a, 60_000), aggregate(b, 60_000)]);
        assert_eq!(merged, whole);
        let hour = coarsen(&whole, 3_600_000);
        assert_eq!(hour.len(), 1);
        assert_eq!(hour[0].count, 120);
        assert_eq!(hour[0].value(Agg::Max), 119.0);
        assert_eq!(hour[0].value(Agg::Last), 119.0);
    }

    #[test]
    fn negative_times_bucket_downwards() {
        assert_eq!(bucket_start(-1, 60_000), -60_000);
        assert_eq!(bucket_start(59_999, 60_000), 0);
    }
}
