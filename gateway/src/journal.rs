//! The ingest journal: an append-only, segmented, checksummed log of accepted
//! [`Reading`]s. Appending and committing a reading is the durability point; the device
//! is acked only after it.
//!
//! Owns the on-disk format, group commit with the configured fsync policy, and recovery
//! (a torn record at the tail is detected by length and CRC and cut, never served). Does
//! not own what readers do with replayed readings.
//!
//! Segment files are `journal/{first_seq:020}.log`; each record is
//! `len: u32 LE | crc32(payload): u32 LE | payload`, the payload being postcard of
//! `(seq: u64, Reading)`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::FsyncPolicy;
use crate::reading::Reading;

const RECORD_HEADER: usize = 8;
/// Records larger than this are corrupt by definition (a reading is ~100 B).
const MAX_RECORD: usize = 64 * 1024;

/// Journal errors.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// An I/O call failed.
    #[error("journal {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A checksummed record this version cannot decode: the journal was written by a
    /// newer gateway. Nothing is cut; run the newer version.
    #[error("journal {path} has a record at byte {offset} this version cannot read (written by a newer gateway?); refusing to start rather than drop it")]
    Unreadable {
        /// Segment file.
        path: PathBuf,
        /// Offset of the record.
        offset: u64,
    },
    /// A record could not be encoded (should not happen).
    #[error("journal record encoding: {0}")]
    Encode(#[from] postcard::Error),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Records replayed.
    pub records: u64,
    /// Segment files read.
    pub segments: usize,
    /// Bytes cut from the tail of the last segment (a torn write).
    pub truncated_bytes: u64,
    /// Corrupt stretches skipped because good records follow them (never cut).
    pub corrupt_records: u64,
}

/// The open journal, positioned for appending.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    out: BufWriter<File>,
    out_path: PathBuf,
    segment_len: u64,
    segment_max: u64,
    next_seq: u64,
    policy: FsyncPolicy,
    fsync_interval: Duration,
    last_sync: Instant,
    unsynced: bool,
    scratch: Vec<u8>,
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// What lies at an offset of a segment.
enum At {
    /// A whole record: (seq, reading, next position).
    Record(u64, Reading, usize),
    /// A whole, checksummed record this version cannot decode (written by a newer one).
    Unreadable,
    /// Not a whole, checksummed record.
    Garbage,
}

fn record_at(data: &[u8], pos: usize) -> At {
    let Some(head) = data.get(pos..pos + RECORD_HEADER) else {
        return At::Garbage;
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let start = pos + RECORD_HEADER;
    let payload = match data.get(start..start + len) {
        Some(p) if len <= MAX_RECORD && crc32fast::hash(p) == crc => p,
        _ => return At::Garbage,
    };
    match postcard::from_bytes::<(u64, Reading)>(payload) {
        Ok((seq, reading)) => At::Record(seq, reading, start + len),
        Err(_) => At::Unreadable,
    }
}

/// What reading one segment found.
struct SegmentScan {
    /// Offset just past the last good record.
    good_end: u64,
    /// Good records.
    records: u64,
    /// Corrupt stretches skipped because good records follow them.
    corrupt: u64,
}

/// Reads one segment, calling `f` per good record. A corrupt stretch followed by good
/// records is skipped (and counted), never allowed to hide them; a bad stretch with
/// nothing good after it is a torn tail, ending at `good_end`.
fn read_segment(path: &Path, f: &mut dyn FnMut(u64, Reading)) -> Result<SegmentScan, JournalError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut data))
        .map_err(io_err(path))?;
    let mut scan = SegmentScan {
        good_end: 0,
        records: 0,
        corrupt: 0,
    };
    let mut pos = 0usize;
    let mut last_seq: Option<u64> = None;
    while pos < data.len() {
        match record_at(&data, pos) {
            At::Record(seq, reading, next) => {
                last_seq = Some(seq);
                f(seq, reading);
                scan.records += 1;
                pos = next;
                scan.good_end = next as u64;
                continue;
            }
            At::Unreadable => {
                return Err(JournalError::Unreadable {
                    path: path.to_owned(),
                    offset: pos as u64,
                })
            }
            At::Garbage => {}
        }
        // Resynchronise: the next offset where a whole good record with a later sequence
        // number starts (a later one, so a record's own bytes cannot pass for one).
        let resync = (pos + 1..data.len()).find(|p| match record_at(&data, *p) {
            At::Record(seq, _, _) => last_seq.is_none_or(|l| seq > l),
            _ => false,
        });
        match resync {
            Some(p) => {
                scan.corrupt += 1;
                pos = p;
            }
            None => break,
        }
    }
    Ok(scan)
}

impl Journal {
    /// Opens the journal in `dir`, replaying its records into `replay` first: every
    /// segment that may hold a record at or after `from_seq` is read (earlier records in
    /// it are passed too; callers filter by sequence number). New records are numbered
    /// from at least `seq_floor`. A torn tail in the newest segment is cut.
    pub fn open(
        dir: &Path,
        segment_max: u64,
        policy: FsyncPolicy,
        fsync_interval: Duration,
        (from_seq, seq_floor): (u64, u64),
        replay: &mut dyn FnMut(u64, Reading),
    ) -> Result<(Journal, Recovery), JournalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let segs = segments(dir)?;
        let mut recovery = Recovery {
            segments: segs.len(),
            ..Recovery::default()
        };
        let mut next_seq = 0u64;
        let mut track = |seq: u64, r: Reading| {
            next_seq = next_seq.max(seq.saturating_add(1));
            replay(seq, r);
        };
        let mut tail: Option<(PathBuf, u64, u64)> = None;
        let mut skipped_floor = 0u64;
        for (i, (first_seq, path)) in segs.iter().enumerate() {
            let is_tail = i + 1 == segs.len();
            if !is_tail && segs[i + 1].0 <= from_seq {
                // Wholly before `from_seq`: every follower has it; only its numbering counts.
                skipped_floor = segs[i + 1].0;
                continue;
            }
            let scan = read_segment(path, &mut track)?;
            recovery.records += scan.records;
            recovery.corrupt_records += scan.corrupt;
            if is_tail {
                // The tail: cut a torn end, and make what was written durable, since it
                // was replayed (and so will be treated as accepted) before any fsync.
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io_err(path))?;
                let len = f.metadata().map_err(io_err(path))?.len();
                if len > scan.good_end {
                    recovery.truncated_bytes = len - scan.good_end;
                    f.set_len(scan.good_end).map_err(io_err(path))?;
                }
                f.sync_all().map_err(io_err(path))?;
                tail = Some((path.clone(), scan.good_end, *first_seq));
            }
        }
        next_seq = next_seq.max(skipped_floor);
        if seq_floor > next_seq {
            tracing::warn!(
                journal_next = next_seq,
                seq_floor,
                "journal numbering is behind the checkpoint and the followers (journal directory lost or reset?): continuing from the higher number"
            );
            next_seq = seq_floor;
        }
        let (out_path, segment_len) = match tail {
            Some((path, len, first_seq)) => {
                // Sequence numbers never go below the tail segment's name.
                next_seq = next_seq.max(first_seq);
                (path, len)
            }
            None => (segment_path(dir, next_seq), 0),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .map_err(io_err(&out_path))?;
        file.seek(SeekFrom::End(0)).map_err(io_err(&out_path))?;
        if segment_len == 0 {
            sync_dir(dir)?;
        }
        Ok((
            Journal {
                dir: dir.to_owned(),
                out: BufWriter::with_capacity(256 * 1024, file),
                out_path,
                segment_len,
                segment_max,
                next_seq,
                policy,
                fsync_interval,
                last_sync: Instant::now(),
                unsynced: false,
                scratch: Vec::with_capacity(512),
            },
            recovery,
        ))
    }

    /// Buffers one reading; it is durable only after [`Journal::commit`].
    pub fn append(&mut self, reading: &Reading) -> Result<u64, JournalError> {
        if self.segment_len >= self.segment_max {
            self.roll()?;
        }
        let seq = self.next_seq;
        self.scratch.clear();
        self.scratch.extend_from_slice(&[0u8; RECORD_HEADER]);
        let mut buf = std::mem::take(&mut self.scratch);
        buf = postcard::to_extend(&(seq, reading), buf)?;
        let len = (buf.len() - RECORD_HEADER) as u32;
        let crc = crc32fast::hash(&buf[RECORD_HEADER..]);
        buf[0..4].copy_from_slice(&len.to_le_bytes());
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let res = self.out.write_all(&buf).map_err(io_err(&self.out_path));
        self.segment_len += buf.len() as u64;
        self.scratch = buf;
        res?;
        self.next_seq += 1;
        self.unsynced = true;
        Ok(seq)
    }

    /// Group commit: writes buffered records and fsyncs as the policy says. Returns
    /// whether an fsync was issued. With `interval`, waits out the rest of the interval
    /// so that acks never precede durability.
    pub fn commit(&mut self) -> Result<bool, JournalError> {
        self.out.flush().map_err(io_err(&self.out_path))?;
        if !self.unsynced {
            return Ok(false);
        }
        let sync = match self.policy {
            FsyncPolicy::Batch => true,
            FsyncPolicy::Never => false,
            FsyncPolicy::Interval => {
                let due = self.last_sync + self.fsync_interval;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                true
            }
        };
        if sync {
            self.out
                .get_ref()
                .sync_data()
                .map_err(io_err(&self.out_path))?;
            self.last_sync = Instant::now();
        }
        self.unsynced = false;
        Ok(sync)
    }

    fn roll(&mut self) -> Result<(), JournalError> {
        self.out.flush().map_err(io_err(&self.out_path))?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(io_err(&self.out_path))?;
        let path = segment_path(&self.dir, self.next_seq);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        self.out = BufWriter::with_capacity(256 * 1024, file);
        self.out_path = path;
        self.segment_len = 0;
        Ok(())
    }

    /// Sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Deletes the segments whose records all come before `seq` (never the segment being
    /// written). Returns how many were deleted.
    pub fn release_before(&mut self, seq: u64) -> Result<usize, JournalError> {
        let segs = segments(&self.dir)?;
        let mut released = 0;
        for pair in segs.windows(2) {
            let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
            if *next_first > seq || *path == self.out_path {
                break;
            }
            fs::remove_file(path).map_err(io_err(path))?;
            released += 1;
        }
        if released > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(released)
    }
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Trust;
    use linli_protocol::report::{Heartbeat, Report};

    fn reading(counter: u32) -> Reading {
        Reading {
            device: "dev-1".into(),
            counter,
            device_time: 0,
            received_ms: 1_000 + u64::from(counter),
            trust: Trust::Sealed,
            report: Report::Heartbeat(Heartbeat { uptime_s: counter }),
        }
    }

    /// Writes readings 0..n into a fresh journal and returns the tail segment's path.
    fn write(dir: &Path, n: u32) -> PathBuf {
        let (mut j, _, _) = open(dir, 1 << 20);
        for c in 0..n {
            j.append(&reading(c)).unwrap();
        }
        j.commit().unwrap();
        j.out_path.clone()
    }

    fn open(dir: &Path, seg: u64) -> (Journal, Recovery, Vec<Reading>) {
        let mut got = Vec::new();
        let (j, r) = Journal::open(
            dir,
            seg,
            FsyncPolicy::Batch,
            Duration::from_millis(1),
            (0, 0),
            &mut |_, rd| got.push(rd),
        )
        .unwrap();
        (j, r, got)
    }

    #[test]
    fn append_commit_reopen_replays_everything_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _, got) = open(dir.path(), 1_000);
        assert!(got.is_empty());
        for c in 0..100 {
            j.append(&reading(c)).unwrap();
        }
        j.commit().unwrap();
        drop(j);
        let (j, rec, got) = open(dir.path(), 1_000);
        assert_eq!(got, (0..100).map(reading).collect::<Vec<_>>());
        assert!(rec.segments > 1, "small segments roll: {rec:?}");
        assert_eq!(rec.truncated_bytes, 0);
        assert_eq!(j.next_seq(), 100);
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 10);
        // Simulate a crash mid-write: half a record, then garbage.
        let full = fs::read(&path).unwrap();
        let one = full.len() / 10;
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&full[..one / 2]).unwrap();
        drop(f);
        let (mut j, rec, got) = open(dir.path(), 1 << 20);
        assert_eq!(got.len(), 10);
        assert_eq!(rec.truncated_bytes as usize, one / 2);
        j.append(&reading(10)).unwrap();
        j.commit().unwrap();
        drop(j);
        let (_, rec, got) = open(dir.path(), 1 << 20);
        assert_eq!(got.len(), 11);
        assert_eq!(rec.truncated_bytes, 0);
    }

    #[test]
    fn a_corrupt_record_mid_log_is_skipped_and_the_good_ones_after_it_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 20);
        let mut data = fs::read(&path).unwrap();
        let one = data.len() / 20;
        data[5 * one + RECORD_HEADER + 2] ^= 0x40; // inside record 5's payload
        fs::write(&path, &data).unwrap();
        let (mut j, rec, got) = open(dir.path(), 1 << 20);
        let want: Vec<_> = (0..20).filter(|c| *c != 5).map(reading).collect();
        assert_eq!(got, want, "records after the damage survive");
        assert_eq!(rec.corrupt_records, 1);
        assert_eq!(rec.truncated_bytes, 0);
        assert_eq!(j.append(&reading(20)).unwrap(), 20, "sequence continues");
    }

    #[test]
    fn a_checksummed_record_from_a_newer_version_stops_recovery_instead_of_being_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _, _) = open(dir.path(), 1 << 20);
        j.append(&reading(0)).unwrap();
        j.commit().unwrap();
        let path = j.out_path.clone();
        drop(j);
        let payload = [0xffu8; 12]; // not a (seq, Reading) this version knows
        let mut rec = (payload.len() as u32).to_le_bytes().to_vec();
        rec.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        rec.extend_from_slice(&payload);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&rec).unwrap();
        drop(f);
        let before = fs::metadata(&path).unwrap().len();
        let err = Journal::open(
            dir.path(),
            1 << 20,
            FsyncPolicy::Batch,
            Duration::from_millis(1),
            (0, 0),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(matches!(err, JournalError::Unreadable { .. }), "{err}");
        assert_eq!(fs::metadata(&path).unwrap().len(), before, "nothing cut");
    }

    #[test]
    fn flipped_byte_in_the_tail_record_is_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 5);
        let mut data = fs::read(&path).unwrap();
        let last = data.len() - 3;
        data[last] ^= 0x40;
        fs::write(&path, &data).unwrap();
        let (_, rec, got) = open(dir.path(), 1 << 20);
        assert_eq!(got, (0..4).map(reading).collect::<Vec<_>>());
        assert!(rec.truncated_bytes > 0);
    }
}
