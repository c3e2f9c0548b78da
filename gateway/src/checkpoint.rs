//! Checkpoint of the replay windows: written now and then by the ingest worker so that
//! journal segments can be released without forgetting which frame counters were seen.
//!
//! Owns the file format (`checkpoint/windows.bin`: crc32 + postcard of the journal
//! sequence number it covers and every device's window) and its atomic replacement
//! (temp file, fsync, rename, fsync of the directory). Does not decide when to write.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use linli_protocol::replay::ReplayWindow;

use crate::ingest::Windows;

const FORMAT: u8 = 1;

/// Checkpoint errors.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// I/O on the checkpoint file.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// The file is damaged or from a newer gateway.
    #[error("checkpoint {path} is damaged or from a newer gateway ({why}); the journal it stood for may be gone, so refusing to start: restore it, or delete it to accept replayed frames again")]
    Damaged {
        /// File.
        path: PathBuf,
        /// What is wrong.
        why: &'static str,
    },
}

/// Path of the windows checkpoint under `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoint").join("windows.bin")
}

/// Loads the checkpoint: the windows and the journal sequence number they cover (every
/// record before it). No file = empty windows at 0.
pub fn load(file: &Path) -> Result<(Windows, u64), CheckpointError> {
    let data = match fs::read(file) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Windows::new(), 0)),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: file.to_owned(),
                source,
            })
        }
    };
    let damaged = |why| CheckpointError::Damaged {
        path: file.to_owned(),
        why,
    };
    if data.len() < 5 || data[0] != FORMAT {
        return Err(damaged("unknown format"));
    }
    let (crc, body) = (&data[1..5], &data[5..]);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(damaged("checksum mismatch"));
    }
    let (seq, list): (u64, Vec<(String, ReplayWindow)>) =
        postcard::from_bytes(body).map_err(|_| damaged("undecodable"))?;
    Ok((list.into_iter().collect(), seq))
}

/// Atomically replaces the checkpoint with `windows` as of journal sequence `seq`.
pub fn store(file: &Path, windows: &Windows, seq: u64) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: file.to_owned(),
        source,
    };
    let list: Vec<(&String, &ReplayWindow)> = windows.iter().collect();
    let body = postcard::to_stdvec(&(seq, list)).map_err(|e| io(std::io::Error::other(e)))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    let tmp = file.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io)?;
    f.write_all(&[FORMAT]).map_err(io)?;
    f.write_all(&crc32fast::hash(&body).to_le_bytes())
        .map_err(io)?;
    f.write_all(&body).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, file).map_err(io)?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        assert_eq!(load(&file).unwrap().1, 0, "no file = start from 0");
        let mut w = Windows::new();
        w.entry("d1".into()).or_default().accept(7);
        w.entry("d2".into()).or_default().accept(9);
        store(&file, &w, 42).unwrap();
        let (back, seq) = load(&file).unwrap();
        assert_eq!(seq, 42);
        assert_eq!(back, w);
        let mut bytes = fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&file, bytes).unwrap();
        assert!(matches!(load(&file), Err(CheckpointError::Damaged { .. })));
    }
}
