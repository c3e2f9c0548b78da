//! InfluxDB line protocol for journal entries: the export's schema (SCHEMA.md beside this
//! file) in code.
//!
//! Owns the mapping `Entry → lines` and the escaping rules. Pure: no I/O, no clock. Does
//! not own batching, the spool or sending.
//!
//! One line per reading that has metrics:
//!
//! ```text
//! {device kind} [asset|resident]={subject},device={id},site={site},zone={zone} {metric}={f64},... {point_time_ms}
//! ```
//!
//! and one line per event the reading carries:
//!
//! ```text
//! event,[asset|resident]={subject},device={id},device_kind={kind},kind={event},site={site},zone={zone} count=1i {point_time_ms}
//! ```
//!
//! Timestamps are milliseconds (written with `precision=ms`), from
//! [`Reading::point_time_ms`](crate::reading::Reading::point_time_ms), so a replayed
//! reading lands on the same point. Every metric is a float (booleans are 0/1); NaN and
//! infinities are not representable and are skipped (and counted); a line left without
//! fields is not written. Tags are in key order (what InfluxDB prefers); empty tags are
//! left out (line protocol has no empty tag value).

use std::io::Write;

use linli_protocol::Report;

use crate::follow::Entry;
use crate::registry::DeviceProfile;

/// What encoding one entry produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// Lines (points) appended.
    pub points: usize,
    /// Fields left out because their value was NaN or infinite.
    pub skipped_fields: u64,
}

/// Appends a measurement name: commas and spaces escaped, control characters (newlines
/// included) written as an escaped space, backslashes doubled.
pub fn push_measurement(out: &mut Vec<u8>, s: &str) {
    push_escaped(out, s, b", ");
}

/// Appends a tag key, tag value or field key: commas, equals signs and spaces escaped,
/// control characters (newlines included) written as an escaped space, backslashes
/// doubled.
pub fn push_key(out: &mut Vec<u8>, s: &str) {
    push_escaped(out, s, b",= ");
}

fn push_escaped(out: &mut Vec<u8>, s: &str, special: &[u8]) {
    for &b in s.as_bytes() {
        if b.is_ascii_control() {
            // Line protocol cannot carry a newline in a name or tag at all.
            out.extend_from_slice(b"\\ ");
        } else if b == b'\\' {
            out.extend_from_slice(b"\\\\");
        } else {
            if special.contains(&b) {
                out.push(b'\\');
            }
            out.push(b);
        }
    }
}

fn push_tag(out: &mut Vec<u8>, key: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    out.push(b',');
    push_key(out, key);
    out.push(b'=');
    push_key(out, value);
}

/// Appends the tags of device `p`, in key order, each preceded by a comma. `extra`
/// (already in order relative to each other) are merged in.
fn push_tags(out: &mut Vec<u8>, p: &DeviceProfile, extra: &[(&str, &str)]) {
    let subject = p.subject.as_ref().map(|(k, id)| (k.as_str(), id.as_str()));
    let mut tags: Vec<(&str, &str)> = Vec::with_capacity(4 + extra.len());
    tags.extend(subject);
    tags.push(("device", &p.id));
    tags.push(("site", &p.site));
    tags.push(("zone", &p.zone));
    tags.extend_from_slice(extra);
    tags.sort_unstable_by_key(|(k, _)| *k);
    for (k, v) in tags {
        push_tag(out, k, v);
    }
}

/// A field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A float (every metric).
    Float(f64),
    /// An integer (the event count).
    Int(i64),
}

/// Calls its argument once per field.
pub type Fields<'a> = dyn FnMut(&mut dyn FnMut(&'static str, Value)) + 'a;

/// Appends the lines of one entry to `out` (each ending in `\n`).
pub fn encode(out: &mut Vec<u8>, e: &Entry) -> Encoded {
    encode_report(
        out,
        &e.device.profile,
        &e.reading.report,
        e.reading.point_time_ms(),
    )
}

/// Appends the lines of `report` from device `device` at `ts` (ms); what [`encode`]
/// does for a journal entry, for callers that hold reports (benchmarks).
pub fn encode_report(
    out: &mut Vec<u8>,
    device: &DeviceProfile,
    report: &Report,
    ts: i64,
) -> Encoded {
    let mut done = push_line(
        out,
        device.kind.as_str(),
        device,
        &[],
        &mut |f| report.for_each_metric(&mut |name, v| f(name, Value::Float(v))),
        ts,
    );
    if let Some(kind) = report.event() {
        let tags = [
            ("device_kind", device.kind.as_str()),
            ("kind", kind.as_str()),
        ];
        let n = push_line(
            out,
            "event",
            device,
            &tags,
            &mut |f| f("count", Value::Int(1)),
            ts,
        );
        done.points += n.points;
        done.skipped_fields += n.skipped_fields;
    }
    done
}

/// Appends one line of `measurement` with `device`'s tags plus `extra_tags` and the fields
/// `fields` yields; NaN and infinite floats are skipped, and a line left without fields
/// is not written at all.
pub fn push_line(
    out: &mut Vec<u8>,
    measurement: &str,
    device: &DeviceProfile,
    extra_tags: &[(&str, &str)],
    fields: &mut Fields<'_>,
    ts: i64,
) -> Encoded {
    let mut done = Encoded::default();
    let start = out.len();
    push_measurement(out, measurement);
    push_tags(out, device, extra_tags);
    let mut sep = b' ';
    fields(&mut |name, v| {
        if let Value::Float(f) = v {
            if !f.is_finite() {
                done.skipped_fields += 1;
                return;
            }
        }
        out.push(sep);
        sep = b',';
        push_key(out, name);
        // Rust's f64 Display is the shortest round-trip form and never uses an exponent.
        let _ = match v {
            Value::Float(f) => write!(out, "={f}"),
            Value::Int(i) => write!(out, "={i}i"),
        };
    });
    if sep == b',' {
        let _ = writeln!(out, " {ts}");
        done.points = 1;
    } else {
        out.truncate(start);
    }
    done
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use linli_protocol::report::*;
    use linli_protocol::DeviceKind;

    use super::*;
    use crate::reading::Reading;
    use crate::registry::{DeviceProfile, DeviceRecord, Registry, SubjectKind, Trust};

    fn entry(kind: DeviceKind, subject: Option<(SubjectKind, &str)>, report: Report) -> Entry {
        let profile = DeviceProfile {
            id: "lamp-1".into(),
            kind,
            site: "site-1".into(),
            zone: "zone-1".into(),
            subject: subject.map(|(k, s)| (k, s.to_owned())),
            heartbeat_s: None,
            trust: Trust::Sealed,
        };
        Entry {
            seq: 7,
            reading: Reading {
                device: "lamp-1".into(),
                counter: 1,
                device_time: 1_764_230_400,
                received_ms: 1_764_230_401_234,
                trust: Trust::Sealed,
                report,
            },
            device: Arc::new(record(profile)),
            received_at: None,
        }
    }

    /// A real record (keys and all) from a throw-away registry, with `profile` put in
    /// afterwards (so tests can use ids the registry would refuse).
    fn record(profile: DeviceProfile) -> DeviceRecord {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = Registry::open(dir.path()).expect("registry");
        let valid = DeviceProfile {
            id: "d".into(),
            site: "s".into(),
            zone: "z".into(),
            subject: None,
            ..profile.clone()
        };
        reg.provision(&valid).expect("provision");
        let mut r = (*reg.get("d").expect("get").expect("there")).clone();
        r.profile = profile;
        r
    }

    fn text(e: &Entry) -> (String, Encoded) {
        let mut out = Vec::new();
        let n = encode(&mut out, e);
        (String::from_utf8(out).expect("utf-8"), n)
    }

    #[test]
    fn a_reading_is_one_line_with_every_metric_and_sorted_tags() {
        let e = entry(
            DeviceKind::StreetLight,
            Some((SubjectKind::Asset, "L-17")),
            Report::StreetLight(StreetLight {
                relay_on: true,
                current_ma: 420,
                power_dw: 950,
                dimming_pct: 80,
            }),
        );
        let (t, n) = text(&e);
        assert_eq!(
            t,
            "street_light,asset=L-17,device=lamp-1,site=site-1,zone=zone-1 relay_on=1,current_a=0.42,power_w=95,dimming_pct=80 1764230400000\n"
        );
        assert_eq!(
            n,
            Encoded {
                points: 1,
                skipped_fields: 0
            }
        );
    }

    #[test]
    fn device_time_zero_files_under_receive_time() {
        let mut e = entry(
            DeviceKind::Vitals,
            Some((SubjectKind::Resident, "R-1")),
            Report::Heartbeat(Heartbeat { uptime_s: 5 }),
        );
        e.reading.device_time = 0;
        let (t, _) = text(&e);
        assert_eq!(
            t,
            "vitals,device=lamp-1,resident=R-1,site=site-1,zone=zone-1 uptime_s=5 1764230401234\n"
        );
    }

    #[test]
    fn an_event_adds_an_event_line_and_a_reading_without_metrics_writes_none() {
        let e = entry(DeviceKind::Pendant, None, Report::Pendant(Pendant::Sos));
        let (t, n) = text(&e);
        assert_eq!(
            t,
            "event,device=lamp-1,device_kind=pendant,kind=sos,site=site-1,zone=zone-1 count=1i 1764230400000\n"
        );
        assert_eq!(n.points, 1);
        let (t, n) = text(&entry(DeviceKind::Pendant, None, Report::ConnectionLost));
        assert_eq!((t.as_str(), n.points), ("", 0));
    }

    #[test]
    fn separators_and_newlines_in_names_and_tags_cannot_break_a_line() {
        let mut e = entry(
            DeviceKind::Door,
            Some((SubjectKind::Resident, "a,b=c d\ne\\")),
            Report::Door(Door { open: true }),
        );
        let p = Arc::make_mut(&mut e.device);
        p.profile.site = "x\r\ny".into();
        p.profile.zone = String::new();
        let (t, _) = text(&e);
        assert_eq!(
            t,
            "door,device=lamp-1,resident=a\\,b\\=c\\ d\\ e\\\\,site=x\\ \\ y door_open=1 1764230400000\n"
        );
        assert_eq!(t.matches('\n').count(), 1);
        let mut m = Vec::new();
        push_measurement(&mut m, "a b,c=d");
        assert_eq!(m, b"a\\ b\\,c=d");
    }

    #[test]
    fn nan_and_infinite_fields_are_skipped_and_counted() {
        let e = entry(DeviceKind::Vitals, None, Report::ConnectionLost);
        let mut out = Vec::new();
        let n = push_line(
            &mut out,
            "vitals",
            &e.device.profile,
            &[],
            &mut |f| {
                f("a", Value::Float(f64::NAN));
                f("b", Value::Float(1.5));
                f("c", Value::Float(f64::INFINITY));
                f("d", Value::Float(f64::NEG_INFINITY));
            },
            5,
        );
        assert_eq!(
            n,
            Encoded {
                points: 1,
                skipped_fields: 3
            }
        );
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "vitals,device=lamp-1,site=site-1,zone=zone-1 b=1.5 5\n"
        );
        let mut out = Vec::new();
        let n = push_line(
            &mut out,
            "vitals",
            &e.device.profile,
            &[],
            &mut |f| f("a", Value::Float(f64::NAN)),
            5,
        );
        assert_eq!(
            (n.points, n.skipped_fields, out.len()),
            (0, 1, 0),
            "no line without fields"
        );
    }
}
