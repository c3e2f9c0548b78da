//! Chunk codec: a sealed run of one series' points (or of its roll-up buckets) as
//! columns compressed with `pco`, which suits decimal sensor readings.
//!
//! Owns the byte format only: a format byte, then postcard of the pco-compressed
//! columns. Every pco standalone column starts with the same five bytes (magic and
//! format version); when they are the expected ones they are left out and the format
//! byte says so (5 bytes a column, ~0.004 bytes/point on the benchmark corpus). Pure: no
//! I/O, no knowledge of where chunks are kept.

use serde::{Deserialize, Serialize};

use super::rollup::Bucket;

const FORMAT_RAW: u8 = 1;
const FORMAT_ROLLUP: u8 = 2;
/// Added to a format when its columns were written without [`PCO_PREFIX`].
const STRIPPED: u8 = 0x10;
/// The start of every pco standalone column this pco version writes: `pco!` and
/// standalone format version 3.
const PCO_PREFIX: [u8; 5] = [b'p', b'c', b'o', b'!', 3];

/// Chunk decoding errors (a damaged or foreign blob).
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Unknown format byte.
    #[error("chunk format {0} unknown (written by a newer gateway?)")]
    Format(u8),
    /// The column container is damaged.
    #[error("chunk container damaged: {0}")]
    Container(#[from] postcard::Error),
    /// A column did not decompress.
    #[error("chunk column damaged: {0}")]
    Column(String),
    /// Columns of different lengths.
    #[error("chunk columns disagree in length")]
    Ragged,
}

#[derive(Serialize, Deserialize)]
struct Columns(Vec<Vec<u8>>);

/// Level 12 (the highest): 1.3 % smaller than the default 8 on the benchmark corpus, for
/// about 20 % slower sealing; decompression is unaffected.
fn config() -> pco::ChunkConfig {
    pco::ChunkConfig::default().with_compression_level(12)
}

fn compress<T: pco::data_types::Number>(v: &[T]) -> Vec<u8> {
    // Compressing a finite slice of numbers with the default config cannot fail; an
    // empty column is stored empty.
    if v.is_empty() {
        return Vec::new();
    }
    pco::standalone::simple_compress(v, &config()).unwrap_or_default()
}

fn decompress<T: pco::data_types::Number>(b: &[u8]) -> Result<Vec<T>, ChunkError> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    pco::standalone::simple_decompress(b).map_err(|e| ChunkError::Column(e.to_string()))
}

fn pack(format: u8, mut cols: Vec<Vec<u8>>) -> Vec<u8> {
    let strip = cols
        .iter()
        .all(|c| c.is_empty() || c.starts_with(&PCO_PREFIX));
    if strip {
        for c in cols.iter_mut().filter(|c| !c.is_empty()) {
            c.drain(..PCO_PREFIX.len());
        }
    }
    let mut out = vec![if strip { format | STRIPPED } else { format }];
    // Serialising a Vec of byte vectors into a Vec cannot fail.
    out.extend(postcard::to_stdvec(&Columns(cols)).unwrap_or_default());
    out
}

fn unpack(blob: &[u8], format: u8) -> Result<Vec<Vec<u8>>, ChunkError> {
    match blob.first() {
        Some(f) if *f == format => Ok(postcard::from_bytes::<Columns>(&blob[1..])?.0),
        Some(f) if *f == format | STRIPPED => {
            let mut cols = postcard::from_bytes::<Columns>(&blob[1..])?.0;
            for c in cols.iter_mut().filter(|c| !c.is_empty()) {
                c.splice(0..0, PCO_PREFIX);
            }
            Ok(cols)
        }
        Some(f) => Err(ChunkError::Format(*f)),
        None => Err(ChunkError::Format(0)),
    }
}

/// Encodes points (time ms, value), sorted by time, no duplicates.
pub fn encode_raw(points: &[(i64, f64)]) -> Vec<u8> {
    let ts: Vec<i64> = points.iter().map(|p| p.0).collect();
    let vs: Vec<f64> = points.iter().map(|p| p.1).collect();
    pack(FORMAT_RAW, vec![compress(&ts), compress(&vs)])
}

/// Decodes what [`encode_raw`] wrote.
pub fn decode_raw(blob: &[u8]) -> Result<Vec<(i64, f64)>, ChunkError> {
    let cols = unpack(blob, FORMAT_RAW)?;
    let [ts, vs] = cols.as_slice() else {
        return Err(ChunkError::Ragged);
    };
    let ts: Vec<i64> = decompress(ts)?;
    let vs: Vec<f64> = decompress(vs)?;
    if ts.len() != vs.len() {
        return Err(ChunkError::Ragged);
    }
    Ok(ts.into_iter().zip(vs).collect())
}

/// Encodes roll-up buckets, sorted by start.
pub fn encode_rollup(buckets: &[Bucket]) -> Vec<u8> {
    let col = |f: fn(&Bucket) -> f64| compress(&buckets.iter().map(f).collect::<Vec<_>>());
    let starts: Vec<i64> = buckets.iter().map(|b| b.start).collect();
    let counts: Vec<u64> = buckets.iter().map(|b| b.count).collect();
    pack(
        FORMAT_ROLLUP,
        vec![
            compress(&starts),
            compress(&counts),
            col(|b| b.min),
            col(|b| b.max),
            col(|b| b.sum),
            col(|b| b.last),
        ],
    )
}

/// Decodes what [`encode_rollup`] wrote.
pub fn decode_rollup(blob: &[u8]) -> Result<Vec<Bucket>, ChunkError> {
    let cols = unpack(blob, FORMAT_ROLLUP)?;
    let [starts, counts, min, max, sum, last] = cols.as_slice() else {
        return Err(ChunkError::Ragged);
    };
    let starts: Vec<i64> = decompress(starts)?;
    let counts: Vec<u64> = decompress(counts)?;
    let f = |c: &[u8]| -> Result<Vec<f64>, ChunkError> {
        let v: Vec<f64> = decompress(c)?;
        if v.len() == starts.len() {
            Ok(v)
        } else {
            Err(ChunkError::Ragged)
        }
    };
    let (min, max, sum, last) = (f(min)?, f(max)?, f(sum)?, f(last)?);
    if counts.len() != starts.len() {
        return Err(ChunkError::Ragged);
    }
    Ok((0..starts.len())
        .map(|i| Bucket {
            start: starts[i],
            count: counts[i],
            min: min[i],
            max: max[i],
            sum: sum[i],
            last: last[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trips_and_compresses_decimal_readings() {
        let points: Vec<(i64, f64)> = (0..4096)
            .map(|i| {
                let wobble = ((i * 7919) % 13) as f64 / 10.0;
                (1_700_000_000_000 + i * 5000, 72.0 + wobble)
            })
            .collect();
        let blob = encode_raw(&points);
        assert_eq!(decode_raw(&blob).unwrap(), points);
        let per_point = blob.len() as f64 / points.len() as f64;
        assert!(per_point < 1.0, "{per_point} bytes/point");
    }

    #[test]
    fn the_constant_pco_prefix_is_left_out_and_restored() {
        let blob = encode_raw(&[(1, 1.5), (2, 2.5)]);
        assert_eq!(blob[0], FORMAT_RAW | STRIPPED);
        assert!(!blob.windows(4).any(|w| w == b"pco!"), "prefix left out");
        assert_eq!(decode_raw(&blob).unwrap(), vec![(1, 1.5), (2, 2.5)]);
        // A column pco writes differently one day is kept whole, and still decodes.
        let full = pack(
            FORMAT_RAW,
            vec![b"other".to_vec(), compress(&[1.0f64]), Vec::new()],
        );
        assert_eq!(full[0], FORMAT_RAW);
        assert_eq!(unpack(&full, FORMAT_RAW).unwrap()[0], b"other");
    }

    #[test]
    fn rollup_round_trips() {
        let b = vec![
            Bucket {
                start: 0,
                count: 12,
                min: 1.5,
                max: 2.5,
                sum: 24.0,
                last: 2.0,
            },
            Bucket {
                start: 60_000,
                count: 3,
                min: -1.0,
                max: 0.1,
                sum: -0.5,
                last: 0.1,
            },
        ];
        assert_eq!(decode_rollup(&encode_rollup(&b)).unwrap(), b);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let blob = encode_raw(&[(1, 1.0), (2, 2.0)]);
        assert!(decode_rollup(&blob).is_err(), "wrong format byte");
        for cut in 0..blob.len() {
            let _ = decode_raw(&blob[..cut]);
        }
        let mut bad = blob.clone();
        for i in 1..bad.len() {
            bad[i] ^= 0x5a;
            let _ = decode_raw(&bad);
            bad[i] ^= 0x5a;
        }
    }
}
