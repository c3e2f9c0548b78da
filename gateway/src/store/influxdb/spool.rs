//! The export's disk spool: closed batches of line protocol waiting to be sent, oldest
//! first, and the cursor saying how far the journal has been spooled.
//!
//! Owns the files under `data_dir/export/influxdb/`: batch files, the cursor, and
//! `rejected/` (batches the server refused, and files that failed their checksum). Owns
//! the size cap (the oldest batch goes when full, never the newest) and the spool gauges.
//! Does not own encoding, batching policy or sending.
//!
//! A batch file is `{id:020}.batch`: a 44-byte header — magic `LLXBAT01`, `seq_start: u64`,
//! `seq_end: u64` (the journal sequence numbers it covers, end exclusive), `points: u32`,
//! `created_ms: u64`, `body_len: u32`, `crc32: u32` of the header fields and the body,
//! all little-endian — then the body (line protocol). It is written as `*.tmp`, fsync'd,
//! renamed, and the directory fsync'd before the cursor (`cursor`: magic `LLXCUR01`,
//! `seq: u64`, `crc32: u32`, written the same way) moves past it. The cursor is the
//! authority on how far the journal is spooled: a crash between a batch and its cursor
//! only replays that batch again (sent twice, which lands on the same points). A torn
//! write is only ever a `*.tmp` file (removed on open) or a batch that fails its checksum
//! (set aside, and the cursor goes back to its first sequence number so the journal
//! refills it, as far as the journal still has it).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::metrics::Metrics;

const MAGIC: &[u8; 8] = b"LLXBAT01";
const CURSOR_MAGIC: &[u8; 8] = b"LLXCUR01";
const HEADER: usize = 44;
/// Batches larger than this are corrupt by definition (100 000 points of ~200 B).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Spool errors.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("export spool {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A batch file does not match its checksum or is cut short.
    #[error("export spool batch {path} is corrupt: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: &'static str,
    },
    /// A batch too large for the format.
    #[error("export batch of {0} bytes is too large; lower export.influxdb.batch_points")]
    TooLarge(usize),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a batch file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// First journal sequence number the batch covers.
    pub seq_start: u64,
    /// First journal sequence number after it.
    pub seq_end: u64,
    /// Points (lines).
    pub points: u32,
    /// When it was closed, ms since the epoch.
    pub created_ms: u64,
    /// File size, bytes.
    pub bytes: u64,
}

/// What opening the spool found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Batches waiting to be sent.
    pub batches: usize,
    /// `*.tmp` files (torn writes) removed.
    pub torn_removed: usize,
    /// Batch files that failed their checksum, moved to `rejected/`.
    pub corrupt: usize,
}

/// The spool directory and its index.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    rejected: PathBuf,
    index: BTreeMap<u64, BatchMeta>,
    next_id: u64,
    bytes: u64,
    max_bytes: u64,
    cursor: u64,
    metrics: Arc<Metrics>,
}

fn crc(meta: &BatchMeta, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header_fields(meta, body.len()));
    h.update(body);
    h.finalize()
}

fn header_fields(meta: &BatchMeta, body_len: usize) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0..8].copy_from_slice(&meta.seq_start.to_le_bytes());
    b[8..16].copy_from_slice(&meta.seq_end.to_le_bytes());
    b[16..20].copy_from_slice(&meta.points.to_le_bytes());
    b[20..28].copy_from_slice(&meta.created_ms.to_le_bytes());
    b[28..32].copy_from_slice(&(body_len as u32).to_le_bytes());
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

/// Why a file is not a good batch: its header when that much is readable, and what is
/// wrong.
type Damage = (Option<BatchMeta>, &'static str);

/// Parses a whole batch file. `Err(Some(meta))` when the header is readable but the file
/// is not (a torn or damaged body), `Err(None)` when not even the header is.
fn parse(bytes: &[u8]) -> Result<(BatchMeta, &[u8]), Damage> {
    if bytes.len() < HEADER || &bytes[0..8] != MAGIC {
        return Err((None, "no batch header"));
    }
    let body_len = u32_at(bytes, 36) as usize;
    let meta = BatchMeta {
        seq_start: u64_at(bytes, 8),
        seq_end: u64_at(bytes, 16),
        points: u32_at(bytes, 24),
        created_ms: u64_at(bytes, 28),
        bytes: bytes.len() as u64,
    };
    if bytes.len() != HEADER + body_len {
        return Err((Some(meta), "length does not match the header"));
    }
    let body = &bytes[HEADER..];
    if crc(&meta, body) != u32_at(bytes, 40) {
        return Err((Some(meta), "checksum mismatch"));
    }
    Ok((meta, body))
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes `bytes` to `path` through `path.tmp`: write, fsync, rename, fsync the directory.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(dir)
}

fn read_cursor(path: &Path) -> Option<u64> {
    let b = fs::read(path).ok()?;
    if b.len() != 20 || &b[0..8] != CURSOR_MAGIC {
        return None;
    }
    let seq = u64_at(&b, 8);
    (crc32fast::hash(&b[8..16]) == u32_at(&b, 16)).then_some(seq)
}

impl Spool {
    /// Opens (creating) the spool in `dir`: removes torn `*.tmp` files, sets aside batch
    /// files that fail their checksum, indexes the rest.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Result<(Spool, Recovered), SpoolError> {
        let rejected = dir.join("rejected");
        fs::create_dir_all(&rejected).map_err(io_err(&rejected))?;
        let mut rec = Recovered::default();
        let mut index = BTreeMap::new();
        let mut next_id = 0;
        let cursor_path = dir.join("cursor");
        let stored_cursor = read_cursor(&cursor_path);
        let mut refill_from: Option<u64> = None;
        // Ids are never reused, so a batch set aside never overwrites an earlier one.
        for ent in fs::read_dir(&rejected).map_err(io_err(&rejected))? {
            let name = ent.map_err(io_err(&rejected))?.file_name();
            let id = name.to_str().and_then(|n| n.get(..20)?.parse::<u64>().ok());
            if let Some(id) = id {
                next_id = next_id.max(id + 1);
            }
        }
        for ent in fs::read_dir(dir).map_err(io_err(dir))? {
            let path = ent.map_err(io_err(dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(io_err(&path))?;
                rec.torn_removed += 1;
                continue;
            }
            let Some(id) = name
                .strip_suffix(".batch")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            next_id = next_id.max(id + 1);
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            match parse(&bytes) {
                Ok((meta, _)) => {
                    index.insert(id, meta);
                }
                Err((meta, why)) => {
                    tracing::error!(
                        file = %path.display(),
                        why,
                        seq_start = meta.map(|m| m.seq_start),
                        "export spool batch is corrupt: set aside in rejected/; the journal refills it if it still has those readings"
                    );
                    let to = rejected.join(format!("{name}.corrupt"));
                    fs::rename(&path, &to).map_err(io_err(&to))?;
                    rec.corrupt += 1;
                    if let Some(m) = meta {
                        refill_from = Some(refill_from.map_or(m.seq_start, |r| r.min(m.seq_start)));
                    }
                }
            }
        }
        // A damaged or missing cursor file must not send everything again: the batches on
        // disk say how far the spool got. (A readable cursor is kept as it is, even below
        // them: it may have been lowered on purpose to refill a damaged batch.)
        let mut cursor = stored_cursor.unwrap_or_else(|| {
            index
                .values()
                .map(|m: &BatchMeta| m.seq_end)
                .max()
                .unwrap_or(0)
        });
        if let Some(r) = refill_from {
            cursor = cursor.min(r);
        }
        rec.batches = index.len();
        let spool = Spool {
            dir: dir.to_owned(),
            rejected,
            bytes: index.values().map(|m| m.bytes).sum(),
            index,
            next_id,
            max_bytes,
            cursor,
            metrics,
        };
        if refill_from.is_some() {
            spool.write_cursor()?;
        }
        spool.publish();
        Ok((spool, rec))
    }

    /// First journal sequence number not in the spool (or already sent from it).
    pub fn durable_before(&self) -> u64 {
        self.cursor
    }

    /// Batches waiting.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.batch"))
    }

    fn write_cursor(&self) -> Result<(), SpoolError> {
        let mut b = Vec::with_capacity(20);
        b.extend_from_slice(CURSOR_MAGIC);
        b.extend_from_slice(&self.cursor.to_le_bytes());
        b.extend_from_slice(&crc32fast::hash(&self.cursor.to_le_bytes()).to_le_bytes());
        write_atomically(&self.dir, &self.dir.join("cursor"), &b)
    }

    fn publish(&self) {
        let m = &self.metrics.export;
        m.spool_batches.store(self.index.len() as u64, Relaxed);
        m.spool_bytes.store(self.bytes, Relaxed);
        m.oldest_unsent_ms.store(
            self.index
                .values()
                .next()
                .map_or(0, |m| m.created_ms.max(1)),
            Relaxed,
        );
    }

    /// Makes a batch durable: writes and fsyncs it, then moves the cursor to `seq_end`.
    /// If the spool is then over its cap, drops the oldest batches (never this one) and
    /// returns what was dropped.
    pub fn push(
        &mut self,
        seq_start: u64,
        seq_end: u64,
        points: u32,
        created_ms: u64,
        body: &[u8],
    ) -> Result<Vec<BatchMeta>, SpoolError> {
        if body.len() > MAX_BODY {
            return Err(SpoolError::TooLarge(body.len()));
        }
        let mut meta = BatchMeta {
            seq_start,
            seq_end,
            points,
            created_ms,
            bytes: (HEADER + body.len()) as u64,
        };
        let mut file = Vec::with_capacity(HEADER + body.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&header_fields(&meta, body.len()));
        file.extend_from_slice(&crc(&meta, body).to_le_bytes());
        file.extend_from_slice(body);
        meta.bytes = file.len() as u64;
        let id = self.next_id;
        write_atomically(&self.dir, &self.path(id), &file)?;
        self.next_id += 1;
        self.index.insert(id, meta);
        self.bytes += meta.bytes;
        self.cursor = self.cursor.max(seq_end);
        if let Err(e) = self.write_cursor() {
            // The batch is durable; a stale cursor only means a restart replays (and
            // sends again, idempotently) what this batch and later ones hold.
            tracing::error!(error = %e, "cannot update the export spool cursor; check the disk");
        }
        let mut dropped = Vec::new();
        while self.bytes > self.max_bytes && self.index.len() > 1 {
            let Some((&old, _)) = self.index.iter().next() else {
                break;
            };
            // The new batch is durable already: a failure here must not report it as
            // not spooled (that would spool it twice).
            match self.forget(old) {
                Ok(Some(m)) => {
                    self.metrics.export.batches_dropped.fetch_add(1, Relaxed);
                    dropped.push(m);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot drop the oldest export batch; the spool stays over its cap");
                    break;
                }
            }
        }
        self.publish();
        Ok(dropped)
    }

    /// The oldest batch waiting, with its id.
    pub fn oldest(&self) -> Option<(u64, BatchMeta)> {
        self.index.iter().next().map(|(id, m)| (*id, *m))
    }

    /// Reads a batch's body, checking it.
    pub fn read(&self, id: u64) -> Result<Vec<u8>, SpoolError> {
        let path = self.path(id);
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err(&path))?;
        match parse(&bytes) {
            Ok(_) => Ok(bytes.split_off(HEADER)),
            Err((_, why)) => Err(SpoolError::Corrupt { path, why }),
        }
    }

    fn forget(&mut self, id: u64) -> Result<Option<BatchMeta>, SpoolError> {
        let Some(meta) = self.index.remove(&id) else {
            return Ok(None);
        };
        self.bytes -= meta.bytes;
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(Some(meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(meta)),
            Err(e) => Err(SpoolError::Io { path, source: e }),
        }
    }

    /// Deletes a batch after the server took it. `None` when it was already gone (dropped
    /// by the size cap meanwhile).
    pub fn remove(&mut self, id: u64) -> Result<Option<BatchMeta>, SpoolError> {
        let m = self.forget(id);
        self.publish();
        m
    }

    /// Moves a batch to `rejected/` with a `.reason` file beside it.
    pub fn set_aside(&mut self, id: u64, reason: &str) -> Result<Option<BatchMeta>, SpoolError> {
        let Some(meta) = self.index.remove(&id) else {
            return Ok(None);
        };
        self.bytes -= meta.bytes;
        self.publish();
        let from = self.path(id);
        let to = self.rejected.join(format!("{id:020}.batch"));
        fs::rename(&from, &to).map_err(io_err(&to))?;
        let why = self.rejected.join(format!("{id:020}.reason"));
        fs::write(&why, reason).map_err(io_err(&why))?;
        Ok(Some(meta))
    }

    /// Where refused and corrupt batches are kept.
    pub fn rejected_dir(&self) -> &Path {
        &self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, max: u64) -> (Spool, Recovered) {
        Spool::open(dir, max, Arc::new(Metrics::default())).expect("open")
    }

    #[test]
    fn batches_survive_reopen_in_order_and_the_cursor_is_the_last_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, rec) = open(dir.path(), 1 << 20);
        assert_eq!((s.durable_before(), rec), (0, Recovered::default()));
        s.push(0, 10, 2, 1, b"a 1\nb 2\n").expect("push");
        s.push(10, 25, 1, 2, b"c 3\n").expect("push");
        assert_eq!(s.durable_before(), 25);
        drop(s);
        let (mut s, rec) = open(dir.path(), 1 << 20);
        assert_eq!(rec.batches, 2);
        assert_eq!(s.durable_before(), 25);
        let (id, m) = s.oldest().expect("oldest");
        assert_eq!((m.seq_start, m.seq_end, m.points), (0, 10, 2));
        assert_eq!(s.read(id).expect("read"), b"a 1\nb 2\n");
        s.remove(id).expect("remove");
        let (id2, _) = s.oldest().expect("next");
        assert!(id2 > id);
        s.remove(id2).expect("remove");
        assert!(s.is_empty());
        drop(s);
        // Everything sent: the cursor alone remembers how far the journal was spooled.
        let (s, _) = open(dir.path(), 1 << 20);
        assert_eq!((s.durable_before(), s.len()), (25, 0));
    }

    #[test]
    fn a_damaged_cursor_falls_back_to_the_batches_not_to_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _) = open(dir.path(), 1 << 20);
        s.push(0, 10, 2, 1, b"a 1\nb 2\n").expect("push");
        s.push(10, 25, 1, 2, b"c 3\n").expect("push");
        drop(s);
        std::fs::write(dir.path().join("cursor"), b"garbage").expect("write");
        let (s, _) = open(dir.path(), 1 << 20);
        assert_eq!(s.durable_before(), 25, "no replay of what the batches hold");
    }

    #[test]
    fn when_full_the_oldest_batches_go_never_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = vec![b'x'; 1000];
        let one = (HEADER + body.len()) as u64;
        let m = Arc::new(Metrics::default());
        let (mut s, _) = Spool::open(dir.path(), 3 * one, m.clone()).expect("open");
        for i in 0..3 {
            assert!(s
                .push(i * 10, i * 10 + 10, 1, 1, &body)
                .expect("push")
                .is_empty());
        }
        let dropped = s.push(30, 40, 1, 1, &body).expect("push");
        assert_eq!(dropped.iter().map(|d| d.seq_start).collect::<Vec<_>>(), [0]);
        assert_eq!(s.oldest().map(|(_, m)| m.seq_start), Some(10));
        assert_eq!(s.len(), 3);
        assert_eq!(m.export.batches_dropped.load(Relaxed), 1);
        assert_eq!(m.export.spool_bytes.load(Relaxed), 3 * one);
        // A single batch larger than the whole cap is still kept (it is the newest).
        let big = vec![b'y'; 10_000];
        let dropped = s.push(40, 50, 1, 1, &big).expect("push");
        assert_eq!(dropped.len(), 3);
        assert_eq!(s.oldest().map(|(_, m)| m.seq_start), Some(40));
        assert_eq!(s.durable_before(), 50);
        assert_eq!(
            fs::read_dir(dir.path()).expect("ls").count(),
            3,
            "batch, cursor, rejected/"
        );
    }

    #[test]
    fn a_torn_write_is_removed_or_set_aside_and_replay_refills_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _) = open(dir.path(), 1 << 20);
        s.push(0, 10, 1, 1, b"a 1\n").expect("push");
        s.push(10, 20, 1, 1, b"b 2\n").expect("push");
        s.push(20, 30, 1, 1, b"c 3\n").expect("push");
        drop(s);
        // A crash mid-write leaves a .tmp; damage cuts the middle batch short.
        fs::write(
            dir.path().join("00000000000000000099.tmp"),
            b"LLXBAT01 half",
        )
        .expect("tmp");
        let middle = dir.path().join(format!("{:020}.batch", 1));
        let bytes = fs::read(&middle).expect("read");
        fs::write(&middle, &bytes[..bytes.len() - 2]).expect("cut");
        let (s, rec) = open(dir.path(), 1 << 20);
        assert_eq!(
            rec,
            Recovered {
                batches: 2,
                torn_removed: 1,
                corrupt: 1
            }
        );
        assert_eq!(s.durable_before(), 10, "replay starts at the damaged batch");
        assert!(s
            .rejected_dir()
            .join(format!("{:020}.batch.corrupt", 1))
            .exists());
        assert!(!dir.path().join("00000000000000000099.tmp").exists());
        drop(s);
        // The lowered cursor is itself durable.
        let (s, _) = open(dir.path(), 1 << 20);
        assert_eq!(s.durable_before(), 10);
    }

    #[test]
    fn set_aside_moves_the_batch_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, _) = open(dir.path(), 1 << 20);
        s.push(0, 10, 1, 1, b"a 1\n").expect("push");
        let (id, _) = s.oldest().expect("oldest");
        s.set_aside(id, "400 Bad Request: bad line").expect("aside");
        assert!(s.is_empty());
        let reason =
            fs::read_to_string(s.rejected_dir().join(format!("{id:020}.reason"))).expect("reason");
        assert!(reason.contains("bad line"));
        assert_eq!(s.durable_before(), 10);
        drop(s);
        // After a restart with an empty spool, ids still go up: nothing set aside is
        // overwritten.
        let (mut s, _) = open(dir.path(), 1 << 20);
        s.push(10, 20, 1, 1, b"b 2\n").expect("push");
        assert!(s.oldest().expect("batch").0 > id);
    }
}
