//! InfluxDB line protocol for corpus items, written by the gateway's export encoder
//! (`linli_gateway::store::influxdb::line`): one line per report, the device kind as the
//! measurement, `device`/`site`/`zone` as tags, every metric as a float field,
//! millisecond timestamps. VictoriaMetrics names the series `{kind}_{metric}`.
//!
//! Owns batching of the corpus into request bodies; escaping is the encoder's.

use linli_gateway::registry::DeviceProfile;
use linli_gateway::store::influxdb::line;

use super::profiles;
use crate::corpus::{Corpus, Item};

/// Line-protocol bodies ready to POST.
#[derive(Debug, Default)]
pub struct Batches {
    /// One request body each.
    pub bodies: Vec<Vec<u8>>,
    /// Points (fields) over all bodies.
    pub points: u64,
    /// Lines over all bodies.
    pub lines: u64,
}

/// Appends the line of one item, formatted by the gateway's InfluxDB export encoder
/// (so VictoriaMetrics gets exactly what the export would send); returns the points
/// (fields) it holds. An item without metrics writes nothing.
pub fn write_line(out: &mut Vec<u8>, profile: &DeviceProfile, it: &Item<'_>) -> u64 {
    let done = line::encode_report(out, profile, &it.report, it.time_ms);
    if done.points == 0 {
        return 0;
    }
    let mut fields = 0;
    it.report
        .for_each_metric(&mut |_, v| fields += u64::from(v.is_finite()));
    fields
}

/// Formats the whole corpus into bodies of about `batch_lines` lines each.
pub fn format_corpus(corpus: &Corpus, batch_lines: usize) -> Batches {
    let batch_lines = batch_lines.max(1);
    let mut b = Batches::default();
    let mut cur = Vec::with_capacity(batch_lines * 128);
    let mut in_cur = 0usize;
    let profiles = profiles(corpus);
    corpus.for_each(|it| {
        let n = write_line(&mut cur, &profiles[it.device.index], it);
        if n > 0 {
            b.points += n;
            b.lines += 1;
            in_cur += 1;
        }
        if in_cur >= batch_lines {
            let full = std::mem::replace(&mut cur, Vec::with_capacity(batch_lines * 128));
            b.bodies.push(full);
            in_cur = 0;
        }
    });
    if !cur.is_empty() {
        b.bodies.push(cur);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::CorpusConfig;

    #[test]
    fn formatted_corpus_holds_every_point_once() {
        let c = Corpus::new(CorpusConfig {
            devices: 30,
            span_s: 1800,
            ..CorpusConfig::default()
        })
        .unwrap();
        let stats = c.stats();
        let b = format_corpus(&c, 100);
        assert_eq!(b.points, stats.points);
        assert_eq!(b.lines, stats.reports);
        let (mut lines, mut fields) = (0u64, 0u64);
        for body in &b.bodies {
            let text = std::str::from_utf8(body).unwrap();
            assert!(text.ends_with('\n'));
            for l in text.lines() {
                lines += 1;
                // measurement+tags, fields, timestamp: the only unescaped spaces.
                let parts = split_unescaped(l, ' ');
                assert_eq!(parts.len(), 3, "{l}");
                fields += split_unescaped(&parts[1], ',').len() as u64;
            }
        }
        assert_eq!((lines, fields), (b.lines, b.points));
        assert!(b.bodies.len() as u64 >= stats.reports / 100);
    }

    fn split_unescaped(s: &str, sep: char) -> Vec<String> {
        let (mut out, mut cur, mut esc) = (Vec::new(), String::new(), false);
        for ch in s.chars() {
            if esc {
                cur.push(ch);
                esc = false;
            } else if ch == '\\' {
                cur.push(ch);
                esc = true;
            } else if ch == sep {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.push(ch);
            }
        }
        out.push(cur);
        out
    }
}
