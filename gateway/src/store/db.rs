//! Where sealed chunks live: an SQLite file (`store.sqlite3`, WAL, synchronous=FULL)
//! holding the series catalogue, the chunk index (compressed chunks of raw points and
//! roll-ups, their bytes packed into `blocks`), and the store's journal watermark.
//!
//! Owns the schema and the catalogue and index statements; does not decide what to
//! seal, compact or delete (that is `store`'s policy), nor encode chunks (`chunk`) or
//! pack their bytes (`blocks`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::blocks;

/// Resolution of raw chunks.
pub const RAW: i64 = 0;

// Blocks end in a part-filled overflow page; small pages keep that slack small.
const SCHEMA: &str = "
PRAGMA page_size = 512;
PRAGMA auto_vacuum = INCREMENTAL;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    class TEXT NOT NULL,
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    subject TEXT
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    device INTEGER NOT NULL,
    metric TEXT NOT NULL,
    sealed_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS chunks (
    series INTEGER NOT NULL,
    res INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    points INTEGER NOT NULL,
    block INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    len INTEGER NOT NULL,
    PRIMARY KEY (series, res, start_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    series INTEGER NOT NULL,
    res INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    points INTEGER NOT NULL,
    data BLOB NOT NULL,
    why TEXT NOT NULL
);
";

/// One row of the series catalogue (serialised without the store's bookkeeping).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeriesRow {
    /// Row id.
    #[serde(skip)]
    pub id: i64,
    /// Device id.
    pub device: String,
    /// Metric name.
    pub metric: String,
    /// Device kind.
    pub kind: String,
    /// Retention class.
    pub class: String,
    /// Site.
    pub site: String,
    /// Zone.
    pub zone: String,
    /// `resident:R-1` or `asset:A-1`.
    pub subject: Option<String>,
    /// Journal records up to this sequence number are sealed for this series.
    #[serde(skip)]
    pub sealed_seq: u64,
}

/// A chunk's identity: series, resolution, start.
pub type ChunkKey = (i64, i64, i64);

/// A stored chunk.
#[derive(Debug, Clone)]
pub struct ChunkRow {
    /// Series, resolution, start.
    pub key: ChunkKey,
    /// First point's (or bucket's) time, ms.
    pub start_ms: i64,
    /// Last point's time, ms.
    pub end_ms: i64,
    /// Points (or buckets).
    pub points: i64,
    /// Where its bytes are: block, offset, length.
    pub at: (i64, i64, i64),
    /// Encoded chunk.
    pub data: Vec<u8>,
}

/// Version of the schema above, kept in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 2;

/// Opens (creating) the store database. `Ok(Err(found))` when the file holds another
/// schema version (nothing is changed then).
pub fn open(path: &Path) -> rusqlite::Result<Result<Connection, i64>> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))?;
    if version != SCHEMA_VERSION && (version != 0 || tables > 0) {
        return Ok(Err(version));
    }
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    Ok(Ok(conn))
}

/// Every series.
pub fn all_series(conn: &Connection) -> rusqlite::Result<Vec<SeriesRow>> {
    let mut st = conn.prepare(
        "SELECT s.id, d.name, s.metric, d.kind, d.class, d.site, d.zone, d.subject, s.sealed_seq
         FROM series s JOIN devices d ON d.id = s.device",
    )?;
    let rows = st.query_map([], |r| {
        Ok(SeriesRow {
            id: r.get(0)?,
            device: r.get(1)?,
            metric: r.get(2)?,
            kind: r.get(3)?,
            class: r.get(4)?,
            site: r.get(5)?,
            zone: r.get(6)?,
            subject: r.get(7)?,
            sealed_seq: r.get::<_, i64>(8)? as u64,
        })
    })?;
    rows.collect()
}

/// Adds a series (and its device's tags, the first time) and returns its id.
pub fn add_series(conn: &Connection, s: &SeriesRow) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT OR IGNORE INTO devices (name, kind, class, site, zone, subject)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![s.device, s.kind, s.class, s.site, s.zone, s.subject],
    )?;
    conn.execute(
        "INSERT INTO series (device, metric, sealed_seq)
         SELECT id, ?2, 0 FROM devices WHERE name = ?1",
        params![s.device, s.metric],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The store's journal watermark (0 when never written).
pub fn watermark(conn: &Connection) -> rusqlite::Result<u64> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'durable_before'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.unwrap_or(0) as u64)
}

/// Sets the watermark inside `tx`.
pub fn set_watermark(tx: &Connection, seq: u64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('durable_before', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [seq as i64],
    )?;
    Ok(())
}

/// Records that `series` is sealed through journal sequence `seq`.
pub fn set_sealed(tx: &Connection, series: i64, seq: u64) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE series SET sealed_seq = ?2 WHERE id = ?1",
        params![series, seq as i64],
    )?;
    Ok(())
}

/// Moves a chunk that does not decode out of the way (kept for inspection, never read).
pub fn quarantine(tx: &Connection, c: &ChunkRow, why: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO quarantine (series, res, start_ms, end_ms, points, data, why)
         SELECT series, res, start_ms, end_ms, points, ?4, ?5 FROM chunks
         WHERE series = ?1 AND res = ?2 AND start_ms = ?3",
        params![c.key.0, c.key.1, c.key.2, c.data, why],
    )?;
    delete_chunk(tx, c.key)?;
    Ok(())
}

/// Deletes a chunk by row id.
pub fn delete_chunk(tx: &Connection, key: ChunkKey) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM chunks WHERE series = ?1 AND res = ?2 AND start_ms = ?3",
        params![key.0, key.1, key.2],
    )?;
    Ok(())
}

/// Chunks of `series` at `res` that overlap `[from, to]`, by start time.
pub fn chunks_overlapping(
    conn: &Connection,
    series: i64,
    res: i64,
    from: i64,
    to: i64,
) -> rusqlite::Result<Vec<ChunkRow>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {CHUNK_COLUMNS} FROM chunks
         WHERE series = ?1 AND res = ?2 AND start_ms <= ?4 AND end_ms >= ?3
         ORDER BY start_ms"
    ))?;
    let rows = st.query_map(params![series, res, from, to], chunk_row)?;
    with_data(conn, rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

const CHUNK_COLUMNS: &str = "series, res, start_ms, end_ms, points, block, offset, len";

fn chunk_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChunkRow> {
    Ok(ChunkRow {
        key: (r.get(0)?, r.get(1)?, r.get(2)?),
        start_ms: r.get(2)?,
        end_ms: r.get(3)?,
        points: r.get(4)?,
        at: (r.get(5)?, r.get(6)?, r.get(7)?),
        data: Vec::new(),
    })
}

/// Reads the bytes of each chunk from its block. A chunk whose bytes cannot be read
/// (its row points outside its block) gets none, so decoding it fails and the callers
/// quarantine it like any damaged chunk.
fn with_data(conn: &Connection, mut rows: Vec<ChunkRow>) -> rusqlite::Result<Vec<ChunkRow>> {
    for c in &mut rows {
        let (block, offset, len) = c.at;
        c.data = match blocks::read(conn, block, offset, len) {
            Ok(d) => d,
            Err(rusqlite::Error::BlobSizeError) => Vec::new(),
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.starts_with("no such rowid") => {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
    }
    Ok(rows)
}

/// The newest raw chunk of `series`.
pub fn last_raw_chunk(conn: &Connection, series: i64) -> rusqlite::Result<Option<ChunkRow>> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks
             WHERE series = ?1 AND res = 0 ORDER BY start_ms DESC LIMIT 1"
        ))?
        .query_row([series], chunk_row)
        .optional()?;
    Ok(with_data(conn, row.into_iter().collect())?.pop())
}

/// Start of the oldest raw chunk of `series`.
pub fn first_raw_start(conn: &Connection, series: i64) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT MIN(start_ms) FROM chunks WHERE series = ?1 AND res = 0",
        [series],
        |r| r.get(0),
    )
}

/// Series that have at least two raw chunks smaller than `small` points, in random
/// order (a series whose small chunks are not adjacent cannot hog every pass).
pub fn compaction_candidates(
    conn: &Connection,
    small: usize,
    limit: usize,
) -> rusqlite::Result<Vec<i64>> {
    let mut st = conn.prepare_cached(
        "SELECT series FROM chunks WHERE res = 0 AND points < ?1
         GROUP BY series HAVING COUNT(*) > 1 ORDER BY RANDOM() LIMIT ?2",
    )?;
    let rows = st.query_map(params![small as i64, limit as i64], |r| r.get(0))?;
    rows.collect()
}

/// Raw chunk headers of `series` (no data), by start.
pub fn raw_chunk_sizes(conn: &Connection, series: i64) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT start_ms, points FROM chunks WHERE series = ?1 AND res = 0 ORDER BY start_ms",
    )?;
    let rows = st.query_map([series], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// A chunk by row id.
pub fn chunk(conn: &Connection, key: ChunkKey) -> rusqlite::Result<ChunkRow> {
    let row = conn.query_row(
        &format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks WHERE series = ?1 AND res = ?2 AND start_ms = ?3"
        ),
        params![key.0, key.1, key.2],
        chunk_row,
    )?;
    Ok(with_data(conn, vec![row])?.remove(0))
}

/// Raw chunks of series of retention `class` that end before `cutoff`, with their series.
pub fn expiring_raw(
    conn: &Connection,
    class: &str,
    cutoff: i64,
) -> rusqlite::Result<Vec<(i64, ChunkRow)>> {
    let mut st = conn.prepare_cached(
        "SELECT series, start_ms FROM chunks
         WHERE res = 0 AND end_ms < ?2 AND series IN (SELECT s.id FROM series s JOIN devices d ON d.id = s.device
                        WHERE d.class = ?1)",
    )?;
    let ids = st
        .query_map(params![class, cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
    ids.into_iter()
        .map(|(series, start)| Ok((series, chunk(conn, (series, RAW, start))?)))
        .collect()
}

/// Returns every free page to the file system (auto_vacuum = INCREMENTAL).
pub fn vacuum(conn: &Connection) -> rusqlite::Result<()> {
    let mut st = conn.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = st.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// Deletes chunks at `res` of series of retention `class` that end before `cutoff`.
/// Returns how many were deleted.
pub fn expire(tx: &Connection, class: &str, res: i64, cutoff: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM chunks WHERE res = ?2 AND end_ms < ?3
         AND series IN (SELECT s.id FROM series s JOIN devices d ON d.id = s.device
                        WHERE d.class = ?1)",
        params![class, res, cutoff],
    )
}

/// Points and bytes kept at `res` (raw = 0).
pub fn totals(conn: &Connection, res: i64) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT COALESCE(SUM(points), 0), COALESCE(SUM(len), 0) FROM chunks WHERE res = ?1",
        [res],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}
