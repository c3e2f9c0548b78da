//! InfluxDB line protocol for corpus items: one line per report, the device kind as the
//! measurement, `device`/`site`/`zone` as tags, every metric of
//! [`Report::for_each_metric`](linli_protocol::Report::for_each_metric) as a float field,
//! millisecond timestamps. VictoriaMetrics names the series `{kind}_{metric}`.
//!
//! Owns formatting and escaping only; does not send anything.

use std::io::Write;

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

/// Appends `s` escaped for a measurement (commas and spaces).
pub fn escape_measurement(out: &mut Vec<u8>, s: &str) {
    escape(out, s, b", ");
}

/// Appends `s` escaped for a tag key, tag value or field key (commas, equals signs,
/// spaces). Line protocol cannot carry newlines in these: they become spaces (escaped).
pub fn escape_tag(out: &mut Vec<u8>, s: &str) {
    escape(out, s, b",= ");
}

fn escape(out: &mut Vec<u8>, s: &str, special: &[u8]) {
    for &b in s.as_bytes() {
        let b = if b == b'\n' || b == b'\r' { b' ' } else { b };
        if special.contains(&b) || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// Appends the line of one item; returns the points (fields) it holds. An item without
/// metrics writes nothing; non-finite values are left out (line protocol has no NaN).
pub fn write_line(out: &mut Vec<u8>, it: &Item<'_>) -> u64 {
    let mark = out.len();
    escape_measurement(out, it.device.kind.as_str());
    for (k, v) in [
        ("device", it.device.id.as_str()),
        ("site", it.device.site),
        ("zone", it.device.zone),
    ] {
        out.push(b',');
        escape_tag(out, k);
        out.push(b'=');
        escape_tag(out, v);
    }
    let mut n = 0u64;
    it.report.for_each_metric(&mut |name, value| {
        if !value.is_finite() {
            return;
        }
        out.push(if n == 0 { b' ' } else { b',' });
        escape_tag(out, name);
        // Writing to a Vec cannot fail; `{}` is the shortest exact decimal of the f64.
        let _ = write!(out, "={value}");
        n += 1;
    });
    if n == 0 {
        out.truncate(mark);
        return 0;
    }
    let _ = writeln!(out, " {}", it.time_ms);
    n
}

/// Formats the whole corpus into bodies of about `batch_lines` lines each.
pub fn format_corpus(corpus: &Corpus, batch_lines: usize) -> Batches {
    let batch_lines = batch_lines.max(1);
    let mut b = Batches::default();
    let mut cur = Vec::with_capacity(batch_lines * 128);
    let mut in_cur = 0usize;
    corpus.for_each(|it| {
        let n = write_line(&mut cur, it);
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
    use crate::corpus::{CorpusConfig, DeviceSpec};
    use linli_protocol::report::{DeviceKind, Report, Vitals, WaterLevel};

    fn spec(id: &str, site: &'static str, zone: &'static str) -> DeviceSpec {
        DeviceSpec {
            id: id.into(),
            kind: DeviceKind::Vitals,
            site,
            zone,
            period_s: 5,
            battery: true,
            index: 0,
            site_index: 0,
        }
    }

    #[test]
    fn escapes_spaces_commas_equals_and_backslashes_in_tags() {
        let d = spec("a b,c=d\\e", "Riverside, East Bank", "x=1\ny");
        let it = Item {
            device: &d,
            time_ms: 1_780_000_000_000,
            report: Report::Vitals(Vitals {
                heart_rate_bpm: 72,
                spo2_pct: 97,
                respiration_bpm: 0,
                quality: 90,
            }),
        };
        let mut out = Vec::new();
        assert_eq!(write_line(&mut out, &it), 3);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "vitals,device=a\\ b\\,c\\=d\\\\e,site=Riverside\\,\\ East\\ Bank,zone=x\\=1\\ y \
             heart_rate_bpm=72,spo2_pct=97,vitals_quality=90 1780000000000\n"
        );
    }

    #[test]
    fn decimals_come_out_exact() {
        let d = spec("w", "s", "z");
        let it = Item {
            device: &d,
            time_ms: 5_000,
            report: Report::WaterLevel(WaterLevel { level_mm: 1234 }),
        };
        let mut out = Vec::new();
        write_line(&mut out, &it);
        assert!(out.ends_with(b" water_level_m=1.234 5000\n"));
    }

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
