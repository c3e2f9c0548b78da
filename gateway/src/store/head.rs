//! The in-memory head of one series: points not yet sealed into a chunk, in arrival
//! order, with "same timestamp overwrites" semantics applied when read or sealed.
//!
//! Pure: no I/O; the wall clock comes in as an argument. Does not own sealing policy.

/// One point: time (ms since the epoch) and value.
pub type Point = (i64, f64);

/// Unsealed points of one series.
#[derive(Debug, Default, Clone)]
pub struct Head {
    points: Vec<(i64, f64)>,
    in_order: bool,
    /// Lowest journal sequence number among the points (None when empty).
    pub min_seq: Option<u64>,
    /// Highest journal sequence number among the points.
    pub max_seq: u64,
    /// Wall-clock ms when the first point arrived.
    pub opened_ms: u64,
}

impl Head {
    /// Appends a point from journal record `seq` at wall time `now_ms`.
    pub fn push(&mut self, t: i64, v: f64, seq: u64, now_ms: u64) {
        if self.points.is_empty() {
            self.in_order = true;
            self.min_seq = Some(seq);
            self.opened_ms = now_ms;
        } else if self.in_order && self.points.last().is_some_and(|p| p.0 >= t) {
            self.in_order = false;
        }
        self.points.push((t, v));
        self.max_seq = self.max_seq.max(seq);
    }

    /// Number of buffered points (before overwrites collapse).
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Sorted, unique-by-time points (the last written value of a timestamp wins).
    pub fn sorted(&mut self) -> &[(i64, f64)] {
        if !self.in_order {
            normalize(&mut self.points);
            self.in_order = true;
        }
        &self.points
    }

    /// Takes the points out (sorted, unique), leaving the head empty.
    pub fn take(&mut self) -> Vec<(i64, f64)> {
        self.sorted();
        self.min_seq = None;
        std::mem::take(&mut self.points)
    }
}

/// Sorts by time, keeping for each timestamp the value written last.
pub fn normalize(points: &mut Vec<(i64, f64)>) {
    // Stable sort keeps arrival order among equal timestamps; keep the last of each run.
    points.sort_by_key(|p| p.0);
    let mut out = 0;
    for i in 0..points.len() {
        if i + 1 < points.len() && points[i + 1].0 == points[i].0 {
            continue;
        }
        points[out] = points[i];
        out += 1;
    }
    points.truncate(out);
}

/// Merges `newer` over `older` (both sorted, unique): equal timestamps take `newer`.
pub fn overlay(older: Vec<(i64, f64)>, newer: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut all = older;
    all.extend_from_slice(newer);
    normalize(&mut all);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_and_duplicates_collapse_last_write_wins() {
        let mut h = Head::default();
        h.push(3000, 3.0, 10, 0);
        h.push(1000, 1.0, 11, 0);
        h.push(3000, 30.0, 12, 0);
        h.push(2000, 2.0, 13, 0);
        assert_eq!(h.min_seq, Some(10));
        assert_eq!(h.max_seq, 13);
        assert_eq!(h.sorted(), &[(1000, 1.0), (2000, 2.0), (3000, 30.0)]);
        assert_eq!(h.take().len(), 3);
        assert!(h.is_empty());
        assert_eq!(h.min_seq, None);
    }

    #[test]
    fn overlay_prefers_newer() {
        let merged = overlay(vec![(1, 1.0), (2, 2.0)], &[(2, 20.0), (3, 3.0)]);
        assert_eq!(merged, vec![(1, 1.0), (2, 20.0), (3, 3.0)]);
    }
}
