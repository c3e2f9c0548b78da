//! Reading the store: raw points of a series in a time range, bucketed aggregates
//! (from raw points, and from roll-ups where raw points have expired), the latest value
//! of every metric of a device, and the series catalogue.
//!
//! Owns the merge of chunks and head (the head's value of a timestamp wins). Does no
//! writing.

use rusqlite::Connection;
use serde::Serialize;

use super::head::{self, Point};
use super::rollup::{self, Agg, Bucket};
use super::{db, decode, Store, StoreError, ROLLUPS};

/// A series as listed by the catalogue.
pub type SeriesInfo = db::SeriesRow;

/// Latest value of one metric.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latest {
    /// Metric name.
    pub metric: String,
    /// Time, ms since the epoch.
    pub time_ms: i64,
    /// Value.
    pub value: f64,
}

impl Store {
    fn series_id(&self, device: &str, metric: &str) -> Result<i64, StoreError> {
        self.heads
            .lock()
            .by_device
            .get(device)
            .and_then(|m| m.get(metric))
            .map(|s| s.id)
            .ok_or_else(|| StoreError::UnknownSeries {
                device: device.to_owned(),
                metric: metric.to_owned(),
            })
    }

    /// Head points of a series in `[from, to)`, sorted and unique.
    fn head_points(&self, device: &str, metric: &str, from: i64, to: i64) -> Vec<(i64, f64)> {
        let mut heads = self.heads.lock();
        let Some(s) = heads
            .by_device
            .get_mut(device)
            .and_then(|m| m.get_mut(metric))
        else {
            return Vec::new();
        };
        let pts = s.head.sorted();
        let a = pts.partition_point(|p| p.0 < from);
        let b = pts.partition_point(|p| p.0 < to);
        pts[a..b].to_vec()
    }

    /// Raw points of `device`/`metric` with `from <= time < to` (ms), by time.
    pub fn raw(
        &self,
        device: &str,
        metric: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        self.raw_capped(device, metric, (from, to), usize::MAX)
    }

    /// [`Store::raw`], refused with [`StoreError::TooManyPoints`] before anything is
    /// decoded when the range holds more than `cap` points.
    pub fn raw_capped(
        &self,
        device: &str,
        metric: &str,
        (from, to): (i64, i64),
        cap: usize,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let id = self.series_id(device, metric)?;
        // Head first: a seal racing this query then shows its points in a chunk too.
        let newer = self.head_points(device, metric, from, to);
        // One read transaction: chunk rows and their blocks from one snapshot, whatever
        // block collection commits meanwhile.
        let mut conn = self.reader.lock();
        let tx = conn.transaction()?;
        let mut points = Vec::new();
        scan_raw(&tx, id, &newer, (from, to), cap, &mut |run| {
            points.extend_from_slice(run)
        })?;
        Ok(points)
    }

    /// `step`-ms buckets of `device`/`metric` over `[from, to)`, epoch-aligned: from raw
    /// points where they are kept, from roll-ups before that (when `step` is a multiple
    /// of a roll-up's width). Returns `(bucket start, aggregate)` for non-empty buckets.
    pub fn buckets(
        &self,
        device: &str,
        metric: &str,
        (from, to): (i64, i64),
        step: i64,
        agg: Agg,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let id = self.series_id(device, metric)?;
        let step = step.max(1);
        let from = rollup::bucket_start(from, step);
        let newer = self.head_points(device, metric, i64::MIN, i64::MAX);
        // One snapshot for the floor, the roll-ups and the raw chunks: an expiry
        // committing meanwhile cannot open a gap between them.
        let mut conn = self.reader.lock();
        let tx = conn.transaction()?;
        let floor = match (db::first_raw_start(&tx, id)?, newer.first().map(|p| p.0)) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(to),
        };
        let mut runs: Vec<Vec<Bucket>> = Vec::new();
        if from < floor {
            if let Some(res) = ROLLUPS.iter().rev().find(|r| step % **r == 0) {
                let chunks = db::chunks_overlapping(&tx, id, *res, from, floor.min(to) - 1)?;
                for c in chunks {
                    let b = super::chunk::decode_rollup(&c.data).map_err(|source| {
                        StoreError::Chunk {
                            series: id,
                            start_ms: c.start_ms,
                            source,
                        }
                    })?;
                    let b: Vec<Bucket> = b
                        .into_iter()
                        .filter(|x| x.start >= from && x.start < floor.min(to))
                        .collect();
                    runs.push(rollup::coarsen(&b, step));
                }
            }
        }
        let (lo, hi) = (from.max(floor), to);
        let a = newer.partition_point(|p| p.0 < lo);
        let b = newer.partition_point(|p| p.0 < hi);
        scan_raw(
            &tx,
            id,
            &newer[a..b.max(a)],
            (lo, hi),
            usize::MAX,
            &mut |run| runs.push(rollup::aggregate(run, step)),
        )?;
        Ok(rollup::merge_runs(runs)
            .into_iter()
            .map(|b| (b.start, b.value(agg)))
            .collect())
    }

    /// The latest value of every metric of `device`.
    pub fn latest(&self, device: &str) -> Result<Vec<Latest>, StoreError> {
        let mut out = Vec::new();
        type Newest = (String, i64, Option<(i64, f64)>);
        let series: Vec<Newest> = {
            let mut heads = self.heads.lock();
            let Some(metrics) = heads.by_device.get_mut(device) else {
                return Ok(out);
            };
            metrics
                .iter_mut()
                .map(|(m, s)| (m.clone(), s.id, s.head.sorted().last().copied()))
                .collect()
        };
        let mut conn = self.reader.lock();
        let conn = conn.transaction()?;
        for (metric, id, in_head) in series {
            let stored = match db::last_raw_chunk(&conn, id)? {
                Some(c) => decode(id, &c)?.last().copied(),
                None => None,
            };
            let best = match (stored, in_head) {
                (Some(a), Some(b)) => Some(if b.0 >= a.0 { b } else { a }),
                (a, b) => a.or(b),
            };
            if let Some((time_ms, value)) = best {
                out.push(Latest {
                    metric,
                    time_ms,
                    value,
                });
            }
        }
        out.sort_by(|a, b| a.metric.cmp(&b.metric));
        Ok(out)
    }

    /// The series catalogue, optionally of one device.
    pub fn series(&self, device: Option<&str>) -> Result<Vec<SeriesInfo>, StoreError> {
        let conn = self.reader.lock();
        Ok(db::all_series(&conn)?
            .into_iter()
            .filter(|r| device.is_none_or(|d| d == r.device))
            .collect())
    }

    /// Points and encoded bytes kept in raw chunks, and in roll-up chunks.
    pub fn footprint(&self) -> Result<[(u64, u64); 2], StoreError> {
        let conn = self.reader.lock();
        let raw = db::totals(&conn, db::RAW)?;
        let mut roll = (0, 0);
        for r in ROLLUPS {
            let (p, b) = db::totals(&conn, r)?;
            roll = (roll.0 + p, roll.1 + b);
        }
        Ok([raw, roll])
    }
}

/// Hands the raw points of series `id` in `[from, to)` to `f` run by run, in time order
/// (one stored chunk at a time, then the head's), so memory stays bounded by a chunk.
/// `newer` are the head's points, already limited to the range; the head's value of a
/// timestamp wins over a stored one.
fn scan_raw(
    conn: &Connection,
    id: i64,
    newer: &[Point],
    (from, to): (i64, i64),
    cap: usize,
    f: &mut dyn FnMut(&[Point]),
) -> Result<(), StoreError> {
    if to <= from {
        return Ok(());
    }
    let chunks = db::chunks_overlapping(conn, id, db::RAW, from, to - 1)?;
    let stored: i64 = chunks.iter().map(|c| c.points).sum();
    let total = stored as usize + newer.len();
    if total > cap {
        return Err(StoreError::TooManyPoints { points: total, cap });
    }
    // Chunks never overlap each other, so each run (a chunk with the head points up
    // to its end laid over it) follows the previous one in time.
    let mut rest = newer;
    for c in &chunks {
        let mut pts = decode(id, c)?;
        let a = pts.partition_point(|p| p.0 < from);
        let b = pts.partition_point(|p| p.0 < to);
        pts.truncate(b);
        pts.drain(..a);
        let upto = rest.partition_point(|p| p.0 <= c.end_ms);
        let (mine, later) = rest.split_at(upto);
        rest = later;
        if mine.is_empty() {
            f(&pts);
        } else {
            f(&head::overlay(pts, mine));
        }
    }
    if !rest.is_empty() {
        f(rest);
    }
    Ok(())
}
