//! The embedded time-series store (the default; no database server): series of
//! (device, metric) tagged with site, zone and resident/asset, fed from the journal as a
//! follower. The journal is its write-ahead log; each series' newest points sit in an
//! in-memory head until sealed into a pco-compressed chunk in SQLite, chunks of a seal
//! packed together into blocks. Small chunks are merged later, mostly dead blocks
//! rewritten; old chunks expire per class, leaving 1-minute and 1-hour roll-ups made as
//! they expire (kept longer, so old ranges stay queryable in buckets).
//!
//! Owns sealing, compaction and retention policy and the query entry points. The byte
//! format is `chunk`'s, the SQL `db`'s, block packing `blocks`', bucket arithmetic
//! `rollup`'s, head semantics `head`'s. Does not own HTTP (that is `api`); `influxdb` is the export plug-in.

pub mod blocks;
pub mod chunk;
pub mod db;
pub mod head;
pub mod influxdb;
mod query;
pub mod rollup;
mod stats;

use std::collections::HashMap;
use std::path::Path;

use linli_protocol::{DeviceKind, Report};
use parking_lot::Mutex;
use rusqlite::Connection;

use crate::config::StoreConfig;
use crate::follow::{Entry, Follower};
use crate::registry::DeviceProfile;
use blocks::BlockWriter;
use head::{Head, Point};
pub use query::{Latest, SeriesInfo};
pub use stats::Stats;

/// Roll-up resolutions kept beside raw chunks, ms.
pub const ROLLUPS: [i64; 2] = [60_000, 3_600_000];

const MINUTE_MS: u64 = 60_000;
/// Compaction writes its merged chunks in transactions of about this many bytes.
const COMPACT_BATCH_BYTES: usize = 16 << 20;
const DAY_MS: i64 = 86_400_000;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite file failed.
    #[error("time-series store (store.sqlite3): {0}")]
    Sql(#[from] rusqlite::Error),
    /// A chunk did not decode.
    #[error(
        "time-series store: chunk of series {series} starting at {start_ms} is damaged: {source}"
    )]
    Chunk {
        /// Series id.
        series: i64,
        /// Chunk start.
        start_ms: i64,
        /// Why.
        source: chunk::ChunkError,
    },
    /// The file was written with another schema.
    #[error("{path} has store schema version {found}, this gateway reads version {}; move the file aside (the journal replays what it still holds) or run the matching gateway", db::SCHEMA_VERSION)]
    Version {
        /// File.
        path: String,
        /// Version found.
        found: i64,
    },
    /// A raw query over more points than allowed.
    #[error(
        "{points} points in range, more than {cap}: narrow from/to, or ask for buckets (step=1m)"
    )]
    TooManyPoints {
        /// Points in range.
        points: usize,
        /// The cap.
        cap: usize,
    },
    /// No such series.
    #[error("no series {metric} for device {device}; GET /api/series/list?device={device} lists what exists")]
    UnknownSeries {
        /// Device.
        device: String,
        /// Metric.
        metric: String,
    },
}

/// Retention class of a series, from its device kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Care devices: personal data, kept shortest.
    Care,
    /// Street and facility devices.
    Facility,
}

impl Class {
    /// The class of a device kind.
    pub fn of(kind: DeviceKind) -> Class {
        match kind {
            DeviceKind::StreetLight
            | DeviceKind::Manhole
            | DeviceKind::WaterLevel
            | DeviceKind::WasteBin
            | DeviceKind::PowerMeter
            | DeviceKind::PumpStation => Class::Facility,
            DeviceKind::Pendant
            | DeviceKind::Bed
            | DeviceKind::Door
            | DeviceKind::Motion
            | DeviceKind::Vitals
            | DeviceKind::Hazard
            | DeviceKind::HomeHub => Class::Care,
        }
    }

    /// Name stored in the catalogue.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Care => "care",
            Class::Facility => "facility",
        }
    }
}

/// What writing one series' points (or compacting its chunks) changes: chunks to
/// delete, damaged chunks to quarantine, and the chunks to write instead.
#[derive(Default)]
struct Rewrite {
    series: i64,
    delete: Vec<db::ChunkKey>,
    quarantine: Vec<(db::ChunkRow, String)>,
    /// Encoded chunks to write: (first time, last time, points) and bytes.
    chunks: Vec<((i64, i64, usize), Vec<u8>)>,
}

impl Rewrite {
    /// Encodes sorted `points` as chunks of at most `max` points.
    fn encode(&mut self, points: &[Point], max: usize) {
        for piece in points.chunks(max.max(1)) {
            if let (Some(first), Some(last)) = (piece.first(), piece.last()) {
                self.chunks
                    .push(((first.0, last.0, piece.len()), chunk::encode_raw(piece)));
            }
        }
    }
}

struct Series {
    id: i64,
    head: Head,
    sealed_seq: u64,
}

#[derive(Default)]
struct Heads {
    /// device → metric → series.
    by_device: HashMap<String, HashMap<String, Series>>,
    /// Points in all heads.
    points: usize,
    /// One past the last journal record applied.
    applied_before: u64,
    /// First journal record not yet sealed for every series (persisted at each seal).
    durable_before: u64,
    /// Lowest journal record whose points could not be kept (a series could not be
    /// created): the watermark stays below it, so a restart replays it.
    failed_from: Option<u64>,
}

impl Heads {
    /// The watermark: nothing before it is only in memory.
    fn watermark(&self) -> u64 {
        self.by_device
            .values()
            .flat_map(|m| m.values())
            .filter_map(|s| s.head.min_seq)
            .chain(self.failed_from)
            .fold(self.applied_before, u64::min)
    }
}

/// The store. Share it in an `Arc`: the follower writes, the API reads.
pub struct Store {
    cfg: StoreConfig,
    clock: fn() -> u64,
    heads: Mutex<Heads>,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Counters for `/metrics`.
    pub stats: Stats,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn subject_tag(p: &DeviceProfile) -> Option<String> {
    p.subject
        .as_ref()
        .map(|(k, id)| format!("{}:{id}", k.as_str()))
}

impl Store {
    /// Opens (creating) `store.sqlite3` in `dir`.
    pub fn open(dir: &Path, cfg: StoreConfig, clock: fn() -> u64) -> Result<Store, StoreError> {
        let path = dir.join("store.sqlite3");
        let open = |path: &Path| match db::open(path)? {
            Ok(conn) => Ok(conn),
            Err(found) => Err(StoreError::Version {
                path: path.display().to_string(),
                found,
            }),
        };
        let writer = open(&path)?;
        let reader = open(&path)?;
        let mut heads = Heads::default();
        for row in db::all_series(&writer)? {
            heads.by_device.entry(row.device).or_default().insert(
                row.metric,
                Series {
                    id: row.id,
                    head: Head::default(),
                    sealed_seq: row.sealed_seq,
                },
            );
        }
        heads.durable_before = db::watermark(&writer)?;
        heads.applied_before = heads.durable_before;
        let stats = Stats::default();
        stats.set_series(heads.by_device.values().map(|m| m.len()).sum());
        Ok(Store {
            cfg,
            clock,
            heads: Mutex::new(heads),
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            stats,
        })
    }

    /// First journal record whose points are not all sealed: the store's replay start.
    pub fn durable_before(&self) -> u64 {
        self.heads.lock().durable_before
    }

    /// Adds the points of `entries` (journal order) to the heads.
    pub fn apply(&self, entries: &[Entry]) {
        self.append(entries.iter().map(|e| {
            (
                &e.device.profile,
                e.seq,
                &e.reading.report,
                e.reading.point_time_ms(),
            )
        }));
    }

    /// Adds reports as points: `(sender, journal sequence number, report, time ms)`, in
    /// journal order. [`Store::apply`] is this for journal entries; embedders and
    /// benchmarks feed reports directly.
    pub fn append<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a DeviceProfile, u64, &'a Report, i64)>,
    ) {
        let now = (self.clock)();
        let mut metrics: Vec<(&'static str, f64)> = Vec::with_capacity(8);
        let mut heads = self.heads.lock();
        for (device, seq, report, t) in items {
            metrics.clear();
            report.for_each_metric(&mut |m, v| metrics.push((m, v)));
            for (m, v) in metrics.iter().copied() {
                self.push(&mut heads, device, m, (t, v), seq, now);
            }
            if let Some(kind) = report.event() {
                let name = format!("event_{}", kind.as_str());
                self.push(&mut heads, device, &name, (t, 1.0), seq, now);
            }
            heads.applied_before = heads.applied_before.max(seq + 1);
        }
        if heads.points == 0 {
            // Nothing unsealed: everything applied is durable in the store already.
            heads.durable_before = heads.watermark();
        }
        let over = heads.points > self.cfg.max_head_points;
        drop(heads);
        if over {
            self.seal(|_| true);
        }
    }

    fn push(
        &self,
        heads: &mut Heads,
        device: &DeviceProfile,
        metric: &str,
        (t, v): (i64, f64),
        seq: u64,
        now: u64,
    ) {
        if !v.is_finite() {
            self.stats.count_non_finite();
            return;
        }
        // A device clock far off (an RTC reset to 1970, a year in the future) would file
        // the point where it expires at once or never; it is counted, not stored (the
        // reading itself stays in the journal and reaches the rules and the export).
        let keep_days = match Class::of(device.kind) {
            Class::Care => self.cfg.retention.care_days,
            Class::Facility => self.cfg.retention.facility_days,
        };
        let now_ms = now as i64;
        if t < now_ms - i64::from(keep_days) * DAY_MS || t > now_ms + DAY_MS {
            self.stats.count_out_of_range();
            return;
        }
        let series = match heads
            .by_device
            .get_mut(&device.id)
            .and_then(|m| m.get_mut(metric))
        {
            Some(s) => s,
            None => match self.add_series(device, metric) {
                Ok(id) => {
                    self.stats.set_series(self.stats.series() + 1);
                    heads
                        .by_device
                        .entry(device.id.clone())
                        .or_default()
                        .entry(metric.to_owned())
                        .or_insert(Series {
                            id,
                            head: Head::default(),
                            sealed_seq: 0,
                        })
                }
                Err(e) => {
                    // The point stays in the journal, and the watermark cannot pass it.
                    tracing::error!(error = %e, device = %device.id, metric, "cannot add series: the reading stays in the journal and is stored after a restart");
                    self.stats.count_error();
                    heads.failed_from = Some(heads.failed_from.map_or(seq, |f| f.min(seq)));
                    return;
                }
            },
        };
        if seq <= series.sealed_seq && series.sealed_seq > 0 {
            return; // Replayed after a restart, and sealed before it.
        }
        series.head.push(t, v, seq, now);
        heads.points += 1;
        self.stats.count_point();
    }

    fn add_series(&self, device: &DeviceProfile, metric: &str) -> Result<i64, StoreError> {
        let row = db::SeriesRow {
            id: 0,
            device: device.id.clone(),
            metric: metric.to_owned(),
            kind: device.kind.as_str().to_owned(),
            class: Class::of(device.kind).as_str().to_owned(),
            site: device.site.clone(),
            zone: device.zone.clone(),
            subject: subject_tag(device),
            sealed_seq: 0,
        };
        Ok(db::add_series(&self.writer.lock(), &row)?)
    }

    /// Seals every head `pick` chooses into chunks, in one transaction, and advances the
    /// watermark. On failure the points go back into their heads (and stay journaled).
    fn seal(&self, pick: impl Fn(&Head) -> bool) {
        let mut heads = self.heads.lock();
        // (device, metric, points, first seq, last seq) of each head taken.
        type Taken = (String, String, Vec<(i64, f64)>, u64, u64);
        let mut taken: Vec<Taken> = Vec::new();
        let mut removed = 0;
        for (device, metrics) in heads.by_device.iter_mut() {
            for (metric, s) in metrics.iter_mut() {
                if !s.head.is_empty() && pick(&s.head) {
                    removed += s.head.len();
                    let max_seq = s.head.max_seq;
                    let first_seq = s.head.min_seq.unwrap_or(max_seq);
                    taken.push((
                        device.clone(),
                        metric.clone(),
                        s.head.take(),
                        first_seq,
                        max_seq,
                    ));
                }
            }
        }
        if taken.is_empty() {
            return;
        }
        heads.points = heads.points.saturating_sub(removed);
        let ids: Vec<i64> = taken
            .iter()
            .map(|(d, m, ..)| heads.by_device[d][m].id)
            .collect();
        // Plan each series (reads only: merging stored chunks it overlaps); one that cannot
        // be planned stays in its head and pins the watermark. Then write every plan in
        // one transaction, chunks packed into shared blocks.
        let mut conn = self.writer.lock();
        let mut ok = vec![false; taken.len()];
        let mut plans = Vec::new();
        for (i, (t, id)) in taken.iter().zip(&ids).enumerate() {
            match self.plan(&conn, *id, t.2.clone()) {
                Ok(plan) => {
                    ok[i] = true;
                    plans.push((plan, t.4));
                }
                Err(e) => {
                    tracing::error!(error = %e, device = %t.0, metric = %t.1, "sealing a series failed: its points stay in memory and in the journal");
                    self.stats.count_error();
                }
            }
        }
        let result = (|| -> Result<u64, StoreError> {
            let tx = conn.transaction()?;
            let mut w = BlockWriter::default();
            for (plan, max_seq) in &plans {
                self.write(&tx, &mut w, plan)?;
                db::set_sealed(&tx, plan.series, *max_seq)?;
            }
            w.finish(&tx)?;
            // The watermark as if the failed series were back in their heads.
            let failed_min = taken
                .iter()
                .zip(&ok)
                .filter(|(_, ok)| !**ok)
                .map(|(t, _)| t.3)
                .min();
            let watermark = heads.watermark().min(failed_min.unwrap_or(u64::MAX));
            db::set_watermark(&tx, watermark)?;
            tx.commit()?;
            Ok(watermark)
        })();
        if let Err(e) = &result {
            // Nothing was sealed (disk, lock): every taken head goes back.
            tracing::error!(error = %e, "sealing failed: points stay in memory and in the journal");
            self.stats.count_error();
            ok.fill(false);
        }
        let (mut series, mut points) = (0, 0);
        for (t, sealed) in taken.into_iter().zip(ok) {
            let (d, m, pts, first_seq, max_seq) = t;
            let Some(s) = heads.by_device.get_mut(&d).and_then(|x| x.get_mut(&m)) else {
                continue;
            };
            if sealed {
                s.sealed_seq = max_seq;
                series += 1;
                points += pts.len();
            } else {
                let n = pts.len();
                for (t, v) in pts {
                    s.head.push(t, v, first_seq, (self.clock)());
                }
                s.head.max_seq = s.head.max_seq.max(max_seq);
                heads.points += n;
            }
        }
        if let Ok(watermark) = result {
            heads.durable_before = watermark;
        }
        self.stats.count_sealed(series, points);
        self.stats.set_head_points(heads.points);
    }

    /// Plans writing sorted, unique `points` of `series`: the stored chunks they overlap
    /// are read and merged in (the newer value of a timestamp wins); a stored chunk that
    /// does not decode is set aside for quarantine. Reads only.
    fn plan(
        &self,
        conn: &Connection,
        series: i64,
        points: Vec<Point>,
    ) -> Result<Rewrite, StoreError> {
        let mut plan = Rewrite {
            series,
            ..Rewrite::default()
        };
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return Ok(plan);
        };
        let overlapping = db::chunks_overlapping(conn, series, db::RAW, first.0, last.0)?;
        let points = if overlapping.is_empty() {
            points
        } else {
            let mut older = Vec::new();
            for c in overlapping {
                match decode(series, &c) {
                    Ok(p) => {
                        older.extend(p);
                        plan.delete.push(c.key);
                    }
                    Err(e) => plan.quarantine.push((c, e.to_string())),
                }
            }
            self.stats.count_merge();
            head::overlay(older, &points)
        };
        plan.encode(&points, self.cfg.compact_points);
        Ok(plan)
    }

    /// Carries out `plans` in one transaction.
    fn write_all(&self, conn: &mut Connection, plans: &[Rewrite]) -> Result<(), StoreError> {
        if plans.is_empty() {
            return Ok(());
        }
        let tx = conn.transaction()?;
        let mut w = BlockWriter::default();
        for plan in plans {
            self.write(&tx, &mut w, plan)?;
        }
        w.finish(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Carries out a [`Rewrite`] inside `tx`.
    fn write(
        &self,
        tx: &Connection,
        w: &mut BlockWriter,
        plan: &Rewrite,
    ) -> Result<(), StoreError> {
        for key in &plan.delete {
            db::delete_chunk(tx, *key)?;
        }
        for (c, why) in &plan.quarantine {
            // Set aside rather than block this series for good.
            tracing::error!(series = plan.series, start_ms = c.start_ms, why = %why, "damaged chunk moved to the quarantine table");
            self.stats.count_error();
            db::quarantine(tx, c, why)?;
        }
        for (span, bytes) in &plan.chunks {
            w.add(tx, plan.series, db::RAW, *span, bytes)?;
        }
        Ok(())
    }

    /// Background work: seal due heads, then (now and then) compact and expire.
    pub fn tick(&self, now_ms: u64, maintenance: bool) {
        let chunk_points = self.cfg.chunk_points;
        let max_age = self.cfg.head_max_age_s * 1000;
        self.seal(|h| h.len() >= chunk_points || now_ms.saturating_sub(h.opened_ms) >= max_age);
        if maintenance {
            if let Err(e) = self.compact(200) {
                tracing::error!(error = %e, "compaction failed; chunks stay as they are");
                self.stats.count_error();
            }
            if let Err(e) = self.expire(now_ms as i64) {
                tracing::error!(error = %e, "retention pass failed; it is retried later");
                self.stats.count_error();
            }
            let due = self.stats.collect_due(now_ms, 10 * MINUTE_MS);
            if let Err(e) = due.then(|| self.collect_blocks(100)).transpose() {
                tracing::error!(error = %e, "block collection failed; it is retried later");
                self.stats.count_error();
            }
        }
    }

    /// Seals every head now (shutdown, benchmarks).
    pub fn seal_all(&self) {
        self.seal(|_| true);
    }

    /// Brings the store to rest: seals every head, compacts until nothing is left to
    /// merge, folds the SQLite write-ahead log into the file and returns free pages.
    pub fn settle(&self) -> Result<(), StoreError> {
        self.seal_all();
        while self.compact(10_000)? > 0 {}
        {
            let mut conn = self.writer.lock();
            blocks::collect_all(&mut conn)?;
        }
        let conn = self.writer.lock();
        db::vacuum(&conn)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Rewrites up to `limit` blocks that are mostly dead (their chunks replaced or
    /// expired) and returns their pages to the file system. Returns how many went.
    pub fn collect_blocks(&self, limit: usize) -> Result<usize, StoreError> {
        let mut conn = self.writer.lock();
        let n = blocks::collect(&mut conn, limit)?;
        if n > 0 {
            db::vacuum(&conn)?;
        }
        Ok(n)
    }

    /// Merges runs of small adjacent raw chunks of up to `limit` series into chunks of
    /// up to `compact_points`. Returns how many chunks were merged away.
    pub fn compact(&self, limit: usize) -> Result<usize, StoreError> {
        let target = self.cfg.compact_points as i64;
        let mut conn = self.writer.lock();
        let candidates = db::compaction_candidates(&conn, self.cfg.compact_points / 2, limit)?;
        let mut merged = 0;
        let mut plans = Vec::new();
        let mut planned_bytes = 0;
        for series in candidates {
            let sizes = db::raw_chunk_sizes(&conn, series)?;
            let mut groups: Vec<Vec<db::ChunkKey>> = Vec::new();
            let mut group: Vec<db::ChunkKey> = Vec::new();
            let mut total = 0i64;
            for (start, points) in sizes {
                if total + points > target {
                    groups.push(std::mem::take(&mut group));
                    total = 0;
                }
                group.push((series, db::RAW, start));
                total += points;
            }
            groups.push(group);
            for g in groups.into_iter().filter(|g| g.len() > 1) {
                let mut plan = Rewrite {
                    series,
                    ..Rewrite::default()
                };
                let mut points = Vec::new();
                for key in &g {
                    let c = db::chunk(&conn, *key)?;
                    match decode(series, &c) {
                        Ok(p) => {
                            points.extend(p);
                            plan.delete.push(c.key);
                        }
                        Err(e) => plan.quarantine.push((c, e.to_string())),
                    }
                }
                head::normalize(&mut points);
                plan.encode(&points, points.len());
                merged += g.len() - 1;
                planned_bytes += plan.chunks.iter().map(|c| c.1.len()).sum::<usize>();
                plans.push(plan);
            }
            // Written in transactions of up to ~16 MiB, so merged chunks share blocks
            // and memory stays bounded.
            if planned_bytes >= COMPACT_BATCH_BYTES {
                self.write_all(&mut conn, &plans)?;
                plans.clear();
                planned_bytes = 0;
            }
        }
        self.write_all(&mut conn, &plans)?;
        if merged > 0 {
            db::vacuum(&conn)?;
            self.stats.count_compacted(merged);
        }
        Ok(merged)
    }

    /// Deletes chunks past their retention at `now_ms`. Returns how many went.
    pub fn expire(&self, now_ms: i64) -> Result<usize, StoreError> {
        let r = &self.cfg.retention;
        let days = |d: u32| now_ms - i64::from(d) * DAY_MS;
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        let mut w = BlockWriter::default();
        let mut n = 0;
        for class in [Class::Care, Class::Facility] {
            let raw_days = match class {
                Class::Care => r.care_days,
                Class::Facility => r.facility_days,
            };
            // Roll the expiring raw chunks up first, so their time stays queryable.
            for (series, c) in db::expiring_raw(&tx, class.as_str(), days(raw_days))? {
                match decode(series, &c) {
                    Ok(points) => write_rollups(&tx, &mut w, series, &points)?,
                    Err(e) => {
                        tracing::error!(error = %e, "expiring chunk damaged: moved to the quarantine table, not rolled up");
                        self.stats.count_error();
                        db::quarantine(&tx, &c, &e.to_string())?;
                    }
                }
            }
            w.finish(&tx)?;
            w = BlockWriter::default();
            n += db::expire(&tx, class.as_str(), db::RAW, days(raw_days))?;
            n += db::expire(&tx, class.as_str(), ROLLUPS[0], days(r.rollup_1m_days))?;
            n += db::expire(&tx, class.as_str(), ROLLUPS[1], days(r.rollup_1h_days))?;
        }
        tx.commit()?;
        if n > 0 {
            db::vacuum(&conn)?;
            self.stats.count_expired(n);
            tracing::info!(chunks = n, "retention: expired chunks deleted");
        }
        Ok(n)
    }
}

fn decode(series: i64, c: &db::ChunkRow) -> Result<Vec<(i64, f64)>, StoreError> {
    chunk::decode_raw(&c.data).map_err(|source| StoreError::Chunk {
        series,
        start_ms: c.start_ms,
        source,
    })
}

/// Writes the roll-ups of a raw chunk's sorted `points`, keyed by the chunk's start.
/// They are made when the raw chunk expires: until then raw points answer every query.
fn write_rollups(
    tx: &Connection,
    w: &mut BlockWriter,
    series: i64,
    points: &[Point],
) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(());
    };
    for res in ROLLUPS {
        let buckets = rollup::aggregate(points, res);
        w.add(
            tx,
            series,
            res,
            (first.0, last.0, buckets.len()),
            &chunk::encode_rollup(&buckets),
        )?;
    }
    Ok(())
}

/// The store as a journal follower (runs on its own thread).
#[derive(Debug, Clone)]
pub struct StoreFollower(pub std::sync::Arc<Store>);

impl Follower for StoreFollower {
    fn name(&self) -> &'static str {
        "store"
    }

    fn durable_before(&self) -> u64 {
        self.0.durable_before()
    }

    fn apply(&mut self, entries: &[Entry]) {
        self.0.apply(entries);
    }

    fn tick(&mut self, now_ms: u64) {
        let due = self.0.stats.maintenance_due(now_ms, MINUTE_MS);
        self.0.tick(now_ms, due);
    }
}

#[cfg(test)]
mod tests;
