//! Blocks: chunk bytes packed together into blobs of up to [`BLOCK_MAX`], so the
//! per-row page slack of SQLite is paid per block, not per chunk, with each chunk row
//! pointing at its bytes (block, offset, length). A block whose chunks have mostly been
//! replaced or expired is rewritten (its live chunks moved to a new block) and dropped.
//!
//! Owns block writing, reading a chunk's bytes and block garbage collection. Does not
//! decide what chunks exist (`store`), nor their other columns (`db`).

use rusqlite::{params, Connection, DatabaseName};

use super::db::ChunkKey;

/// Largest block, bytes (a chunk larger than this gets a block of its own). Small
/// enough that reading a chunk in the middle of a block walks few overflow pages.
pub const BLOCK_MAX: usize = 64 * 1024;

#[derive(Debug)]
enum Target {
    New {
        series: i64,
        res: i64,
        span: (i64, i64, usize),
    },
    Move {
        key: ChunkKey,
    },
}

/// Packs chunks written in one transaction into blocks. Call [`BlockWriter::finish`]
/// before committing: chunk rows are inserted when their block is, so a writer dropped
/// unfinished loses its chunks (which is right only when the transaction rolls back).
#[derive(Debug, Default)]
pub struct BlockWriter {
    buf: Vec<u8>,
    pending: Vec<(Target, usize, usize)>,
}

impl BlockWriter {
    /// Adds a new chunk (replacing one of the same series, resolution and start).
    pub fn add(
        &mut self,
        tx: &Connection,
        series: i64,
        res: i64,
        span: (i64, i64, usize),
        bytes: &[u8],
    ) -> rusqlite::Result<()> {
        self.push(tx, Target::New { series, res, span }, bytes)
    }

    /// Moves an existing chunk's bytes into this writer's blocks.
    pub fn relocate(
        &mut self,
        tx: &Connection,
        key: ChunkKey,
        bytes: &[u8],
    ) -> rusqlite::Result<()> {
        self.push(tx, Target::Move { key }, bytes)
    }

    fn push(&mut self, tx: &Connection, target: Target, bytes: &[u8]) -> rusqlite::Result<()> {
        if !self.buf.is_empty() && self.buf.len() + bytes.len() > BLOCK_MAX {
            self.flush(tx)?;
        }
        self.pending.push((target, self.buf.len(), bytes.len()));
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self, tx: &Connection) -> rusqlite::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO blocks (data, size) VALUES (?1, ?2)",
            params![self.buf, self.buf.len() as i64],
        )?;
        let block = tx.last_insert_rowid();
        for (target, offset, len) in self.pending.drain(..) {
            match target {
                Target::New {
                    series,
                    res,
                    span: (start, end, points),
                } => {
                    tx.execute(
                        "INSERT OR REPLACE INTO chunks
                         (series, res, start_ms, end_ms, points, block, offset, len)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            series,
                            res,
                            start,
                            end,
                            points as i64,
                            block,
                            offset as i64,
                            len as i64
                        ],
                    )?;
                }
                Target::Move { key } => {
                    tx.execute(
                        "UPDATE chunks SET block = ?4, offset = ?5
                         WHERE series = ?1 AND res = ?2 AND start_ms = ?3",
                        params![key.0, key.1, key.2, block, offset as i64],
                    )?;
                }
            }
        }
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered. Must run before the transaction commits.
    pub fn finish(mut self, tx: &Connection) -> rusqlite::Result<()> {
        self.flush(tx)
    }
}

/// Reads `len` bytes at `offset` of block `block`. A reference outside the block (a
/// damaged index row) is an error, never a huge allocation.
pub fn read(conn: &Connection, block: i64, offset: i64, len: i64) -> rusqlite::Result<Vec<u8>> {
    let blob = conn.blob_open(DatabaseName::Main, "blocks", "data", block, true)?;
    let (Ok(offset), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) else {
        return Err(rusqlite::Error::BlobSizeError);
    };
    if offset.checked_add(len).is_none_or(|end| end > blob.len()) {
        return Err(rusqlite::Error::BlobSizeError);
    }
    let mut buf = vec![0u8; len];
    blob.read_at_exact(&mut buf, offset)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok(buf)
}

/// Reads a whole block.
fn read_block(conn: &Connection, block: i64) -> rusqlite::Result<Vec<u8>> {
    conn.query_row("SELECT data FROM blocks WHERE id = ?1", [block], |r| {
        r.get(0)
    })
}

/// Blocks worth rewriting, up to `limit`: those less than half of which is still
/// referenced by chunks (the rest replaced or expired), and small ones (under a quarter
/// of [`BLOCK_MAX`], from seals of a few series) when there are several to pack together.
pub fn sparse(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<i64>> {
    let mut st = conn.prepare_cached(
        "WITH usage AS (
             SELECT b.id, b.size, COALESCE(c.live, 0) AS live FROM blocks b
             LEFT JOIN (SELECT block, SUM(len) AS live FROM chunks GROUP BY block) c
             ON c.block = b.id
         ),
         small AS (SELECT id FROM usage WHERE size < ?2 AND live * 2 >= size)
         SELECT id FROM usage WHERE live * 2 < size
         UNION ALL
         SELECT id FROM small WHERE (SELECT COUNT(*) FROM small) > 1
         LIMIT ?1",
    )?;
    let rows = st.query_map(params![limit as i64, (BLOCK_MAX / 4) as i64], |r| r.get(0))?;
    rows.collect()
}

/// Chunks stored in any of `blocks`: key, block, offset, len. One scan of the chunk
/// index for the lot (it has no block column index; this runs only when blocks are
/// collected).
pub fn chunks_in(
    conn: &Connection,
    blocks: &[i64],
) -> rusqlite::Result<Vec<(ChunkKey, i64, i64, i64)>> {
    let ids: Vec<String> = blocks.iter().map(i64::to_string).collect();
    let mut st = conn.prepare(&format!(
        "SELECT series, res, start_ms, block, offset, len FROM chunks WHERE block IN ({})",
        ids.join(",")
    ))?;
    let rows = st.query_map([], |r| {
        Ok((
            (r.get(0)?, r.get(1)?, r.get(2)?),
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })?;
    rows.collect()
}

/// Deletes a block (its chunks must have been moved or deleted).
pub fn delete(tx: &Connection, block: i64) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM blocks WHERE id = ?1", [block])?;
    Ok(())
}

/// Rewrites up to `limit` sparse blocks: their live chunks move to new blocks, the old
/// blocks go. Returns how many blocks were dropped.
pub fn collect(conn: &mut Connection, limit: usize) -> rusqlite::Result<usize> {
    let sparse = sparse(conn, limit)?;
    rewrite(conn, &sparse)
}

/// Rewrites every block with any dead bytes, and packs the small ones: the store at
/// rest. Returns how many blocks were dropped.
pub fn collect_all(conn: &mut Connection) -> rusqlite::Result<usize> {
    let ids = {
        let mut st = conn.prepare(
            "SELECT b.id FROM blocks b
             LEFT JOIN (SELECT block, SUM(len) AS live FROM chunks GROUP BY block) c
             ON c.block = b.id
             WHERE COALESCE(c.live, 0) < b.size OR b.size < ?1",
        )?;
        let rows = st.query_map([(BLOCK_MAX / 4) as i64], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<Vec<i64>>>()?
    };
    rewrite(conn, &ids)
}

fn rewrite(conn: &mut Connection, blocks: &[i64]) -> rusqlite::Result<usize> {
    let sparse = blocks;
    if sparse.is_empty() {
        return Ok(0);
    }
    let tx = conn.transaction()?;
    let mut w = BlockWriter::default();
    let mut chunks = chunks_in(&tx, sparse)?;
    chunks.sort_by_key(|c| (c.1, c.2));
    let mut current: Option<(i64, Vec<u8>)> = None;
    for (key, block, offset, len) in chunks {
        if current.as_ref().is_none_or(|c| c.0 != block) {
            current = Some((block, read_block(&tx, block).unwrap_or_default()));
        }
        let data = current.as_ref().map(|c| c.1.as_slice()).unwrap_or_default();
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(o, l)| data.get(o..o.checked_add(l)?));
        match range {
            Some(bytes) => w.relocate(&tx, key, bytes)?,
            None => {
                // The row points outside its block: keep what can be kept, for a look.
                tracing::error!(
                    series = key.0,
                    start_ms = key.2,
                    "chunk bytes unreadable; moved to the quarantine table"
                );
                tx.execute(
                    "INSERT INTO quarantine (series, res, start_ms, end_ms, points, data, why)
                     SELECT series, res, start_ms, end_ms, points, x'', 'bytes outside their block'
                     FROM chunks WHERE series = ?1 AND res = ?2 AND start_ms = ?3",
                    params![key.0, key.1, key.2],
                )?;
                super::db::delete_chunk(&tx, key)?;
            }
        }
    }
    w.finish(&tx)?;
    for block in sparse {
        delete(&tx, *block)?;
    }
    tx.commit()?;
    Ok(sparse.len())
}
