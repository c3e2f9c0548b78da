//! The Grafana dashboards in `dashboards/grafana/` query only what the InfluxDB export
//! writes.
//!
//! The written schema is not listed here: it is derived by running the export's own
//! line-protocol encoder ([`linli_gateway::store::influxdb::line::encode_report`]) over one
//! report of every variant (and every sub-variant that changes the fields or the event),
//! for a device of every kind that may send it, with and without a resident or asset, and
//! parsing measurement, tag keys and field keys back out of the lines. That the samples
//! cover every variant is checked against the variant lists serde derives from the
//! protocol's enums, so a new report, event or device kind fails here until it is
//! sampled.
//!
//! Every Flux query of every panel, and of every query variable, is then scanned for the
//! names it uses: `r._measurement == "..."`, `r._field == "..."` (and `!=`, `=~ /^(a|b)$/`,
//! `contains(value: r.x, set: [...])`), column references `r.tag` / `r["tag"]` / `exists
//! r.tag`, and column arguments (`group(columns:)`, `keep(columns:)`, `pivot(...)`,
//! `count(column:)`, `rename(columns: {old: "new"})`, `schema.tagValues(tag:)`, ...). A name
//! that the export does not write for the measurements the query selects is reported with
//! the dashboard, the panel title and the name. Columns a query makes itself (`map(fn: (r)
//! => ({r with x: ...}))`, `rename`, `set(key:)`) count as known.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use linli_gateway::registry::{DeviceProfile, SubjectKind, Trust};
use linli_gateway::store::influxdb::line::encode_report;
use linli_protocol::report::{
    Answer, Battery, Bed, CommandCheck, CommandTarget, Door, EventKind, Hazard, HazardKind,
    Heartbeat, HubHeartbeat, Manhole, Motion, Pendant, PowerMeter, PumpStation, Status,
    StreetLight, Vitals, WasteBin, WaterLevel,
};
use linli_protocol::{DeviceKind, Report};
use serde_json::Value;

const DASHBOARDS: [&str; 3] = [
    "facility-overview.json",
    "care-overview.json",
    "gateway-health.json",
];

fn grafana_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dashboards/grafana"
    ))
}

// ------------------------------------------------------------------ the written schema

/// What the export writes, as parsed back from its lines.
#[derive(Debug, Default)]
struct Schema {
    /// Measurement → field keys written to it.
    fields: BTreeMap<String, BTreeSet<String>>,
    /// Measurement → tag keys written to it.
    tags: BTreeMap<String, BTreeSet<String>>,
    /// Tag key → values, for tags whose values come from the code rather than from
    /// provisioning (`kind`, `device_kind`): literals compared with them are checked too.
    code_tag_values: BTreeMap<String, BTreeSet<String>>,
}

/// Tags whose values the code fixes (the others carry registry ids).
const CODE_VALUED_TAGS: [&str; 2] = ["kind", "device_kind"];

impl Schema {
    fn measurements(&self) -> BTreeSet<String> {
        self.fields.keys().cloned().collect()
    }
}

/// One report of every variant, and of every sub-variant that changes which fields or
/// which event is written. [`sampled_variants_are_all_variants`] checks this is complete.
fn sample_reports() -> Vec<Report> {
    let mut v = vec![
        Report::Heartbeat(Heartbeat { uptime_s: 3_600 }),
        Report::Battery(Battery {
            millivolts: 3_700,
            percent: 80,
        }),
        Report::Pendant(Pendant::Fall {
            impact_mg: 3_100,
            still_s: 25,
        }),
        Report::Pendant(Pendant::FallCancelled),
        Report::Pendant(Pendant::Sos),
        Report::Pendant(Pendant::Activity {
            level: 40,
            steps: 120,
        }),
        Report::Pendant(Pendant::Impact { impact_mg: 2_800 }),
        Report::Bed(Bed {
            occupied: true,
            pressure: 512,
        }),
        Report::Door(Door { open: true }),
        Report::Motion(Motion {
            motion: true,
            count: 3,
        }),
        // Non-zero: a zero estimate is not written.
        Report::Vitals(Vitals {
            heart_rate_bpm: 72,
            spo2_pct: 97,
            respiration_bpm: 16,
            quality: 90,
        }),
        Report::HubHeartbeat(HubHeartbeat {
            devices_seen: 6,
            mains: true,
        }),
        Report::StreetLight(StreetLight {
            relay_on: true,
            current_ma: 420,
            power_dw: 950,
            dimming_pct: 80,
        }),
        Report::Manhole(Manhole {
            tilt_cdeg: 150,
            water_mm: 300,
            gas_ppm: 4,
        }),
        Report::WaterLevel(WaterLevel { level_mm: 120 }),
        Report::WasteBin(WasteBin {
            fill_pct: 60,
            temperature_dc: 215,
            tilt_deg: 2,
        }),
        Report::PowerMeter(PowerMeter {
            voltage_dv: 2_301,
            current_ma: 4_200,
            power_w: 950,
            power_factor_milli: 970,
            frequency_chz: 5_000,
            import_wh: 123_456,
        }),
        Report::ConnectionLost,
        Report::PumpStation(PumpStation {
            level_mm: 900,
            pump_on: true,
            pump_current_ca: 350,
            flow_dlps: 42,
        }),
    ];
    for tamper in [false, true] {
        v.push(Report::Status(Status {
            firmware: [1, 2, 3],
            rssi_dbm: -71,
            tamper,
        }));
    }
    for hazard in [
        HazardKind::Smoke,
        HazardKind::Gas,
        HazardKind::Co,
        HazardKind::Water,
    ] {
        for alarm in [false, true] {
            v.push(Report::Hazard(Hazard {
                hazard,
                alarm,
                level: 30,
            }));
        }
    }
    for target in [
        CommandTarget::Relay,
        CommandTarget::Dimming,
        CommandTarget::Pump,
        CommandTarget::Config,
    ] {
        let check = CommandCheck {
            target,
            requested: 1,
            observed: 0,
            applied: false,
        };
        v.push(Report::CommandCheck(check));
        v.push(Report::Answer(Answer { counter: 9, check }));
    }
    v
}

/// Splits one line of line protocol into measurement, tags and field keys (unescaped).
fn parse_line(line: &str) -> (String, Vec<(String, String)>, Vec<String>) {
    let b = line.as_bytes();
    let mut i = 0;
    // Reads until one of `stops` (unescaped); returns the unescaped text.
    let read = |i: &mut usize, stops: &[u8]| -> String {
        let mut out = Vec::new();
        while *i < b.len() {
            let c = b[*i];
            if c == b'\\' && *i + 1 < b.len() {
                out.push(b[*i + 1]);
                *i += 2;
                continue;
            }
            if stops.contains(&c) {
                break;
            }
            out.push(c);
            *i += 1;
        }
        String::from_utf8(out).expect("utf-8")
    };
    let measurement = read(&mut i, b", ");
    let mut tags = Vec::new();
    while i < b.len() && b[i] == b',' {
        i += 1;
        let k = read(&mut i, b"=");
        i += 1;
        let v = read(&mut i, b", ");
        tags.push((k, v));
    }
    assert!(i < b.len() && b[i] == b' ', "no field set in {line:?}");
    i += 1;
    let mut fields = Vec::new();
    loop {
        let k = read(&mut i, b"=");
        assert!(i < b.len(), "field without value in {line:?}");
        i += 1;
        if b[i] == b'"' {
            i += 1;
            read(&mut i, b"\"");
            i += 1;
        } else {
            read(&mut i, b", ");
        }
        fields.push(k);
        if i < b.len() && b[i] == b',' {
            i += 1;
        } else {
            break;
        }
    }
    assert!(i < b.len() && b[i] == b' ', "no timestamp in {line:?}");
    (measurement, tags, fields)
}

/// Runs the export's encoder over every sample report a device of each kind may send,
/// with no subject, a resident and an asset.
fn written_schema() -> Schema {
    let mut s = Schema::default();
    let subjects = [
        None,
        Some((SubjectKind::Resident, "R-1".to_owned())),
        Some((SubjectKind::Asset, "A-1".to_owned())),
    ];
    for kind in DeviceKind::ALL {
        for subject in &subjects {
            let profile = DeviceProfile {
                id: "dev-1".into(),
                kind,
                site: "site-1".into(),
                zone: "zone-1".into(),
                subject: subject.clone(),
                heartbeat_s: None,
                trust: Trust::Sealed,
            };
            for report in sample_reports() {
                if !report.allowed_for(kind) {
                    continue; // ingest refuses it
                }
                let mut out = Vec::new();
                encode_report(&mut out, &profile, &report, 1_764_230_400_000);
                for line in String::from_utf8(out).expect("utf-8").lines() {
                    let (m, tags, fields) = parse_line(line);
                    for (k, v) in tags {
                        if CODE_VALUED_TAGS.contains(&k.as_str()) {
                            s.code_tag_values.entry(k.clone()).or_default().insert(v);
                        }
                        s.tags.entry(m.clone()).or_default().insert(k);
                    }
                    s.fields.entry(m).or_default().extend(fields);
                }
            }
        }
    }
    s
}

/// The variant names serde derives for `T` (snake_case, as `to_value` writes them), read
/// from its "unknown variant" error: the list comes from the enum itself.
fn variant_names<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
    let err = serde_json::from_str::<T>("\"zz-no-such-variant\"")
        .expect_err("not a variant")
        .to_string();
    let (_, expected) = err
        .split_once("expected")
        .unwrap_or_else(|| panic!("unexpected serde message: {err}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The serde variant name of a value of an externally tagged enum.
fn variant_of<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v).expect("serialize") {
        Value::String(s) => s,
        Value::Object(o) if o.len() == 1 => o.keys().next().expect("one key").clone(),
        other => panic!("not an enum value: {other}"),
    }
}

// ------------------------------------------------------------------ a small Flux scanner

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Regex(String),
    Num,
    /// A Grafana variable outside a string (`${x}`, `$x`).
    Var,
    Op(String),
}

fn lex(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '"' {
            let mut s = String::new();
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' && i + 1 < c.len() {
                    s.push(c[i + 1]);
                    i += 2;
                } else {
                    s.push(c[i]);
                    i += 1;
                }
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if ch == '/' && matches!(out.last(), Some(Tok::Op(o)) if o == "=~" || o == "!~") {
            let mut s = String::new();
            i += 1;
            while i < c.len() && c[i] != '/' {
                if c[i] == '\\' && i + 1 < c.len() {
                    s.push(c[i]);
                    s.push(c[i + 1]);
                    i += 2;
                } else {
                    s.push(c[i]);
                    i += 1;
                }
            }
            i += 1;
            out.push(Tok::Regex(s));
        } else if ch.is_ascii_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else if ch.is_ascii_digit() {
            // Numbers and durations (`1.5`, `30d`, `1h30m`).
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num);
        } else if ch == '$' {
            i += 1;
            if c.get(i) == Some(&'{') {
                while i < c.len() && c[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
            out.push(Tok::Var);
        } else {
            let two: String = c[i..(i + 2).min(c.len())].iter().collect();
            if ["|>", "=>", "==", "!=", "=~", "!~", "<=", ">="].contains(&two.as_str()) {
                out.push(Tok::Op(two));
                i += 2;
            } else {
                out.push(Tok::Op(ch.to_string()));
                i += 1;
            }
        }
    }
    out
}

/// A literal condition on a column.
#[derive(Debug)]
struct Cond {
    column: String,
    /// `==`, `!=`, `=~`, `!~`, or `in` (`contains`).
    op: String,
    /// The literal values, or `None` when they are not literal (a Grafana variable).
    values: Option<Vec<String>>,
}

/// What a Flux query names.
#[derive(Debug, Default)]
struct Names {
    conds: Vec<Cond>,
    /// Columns read (`r.x`, `columns: [...]`, ...).
    columns: Vec<String>,
    /// Columns the query makes itself.
    defined: BTreeSet<String>,
    /// `schema.tagValues(tag: ...)`.
    tag_args: Vec<String>,
    /// Values of `bucket:` arguments (`None`: not a string literal).
    buckets: Vec<Option<String>>,
}

/// Arguments whose values are column names.
const COLUMN_ARGS: [&str; 10] = [
    "column",
    "columns",
    "rowKey",
    "columnKey",
    "valueColumn",
    "timeColumn",
    "timeSrc",
    "timeDst",
    "tag",
    "key",
];

/// The alternatives of a literal regex `^a$` / `^(a|b)$`; `None` if it is anything else.
fn regex_alternatives(re: &str) -> Option<Vec<String>> {
    let inner = re.strip_prefix('^')?.strip_suffix('$')?;
    let inner = inner
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(inner);
    let alts: Vec<String> = inner.split('|').map(str::to_owned).collect();
    alts.iter()
        .all(|a| {
            !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .then_some(alts)
}

/// Reads a column reference at `t[i..]` (`r.x` or `r["x"]`): the name and the index after.
fn column_ref(t: &[Tok], i: usize) -> Option<(String, usize)> {
    if t.get(i) != Some(&Tok::Ident("r".into())) {
        return None;
    }
    if i > 0 && t[i - 1] == Tok::Op(".".into()) {
        return None; // `x.r`
    }
    match (t.get(i + 1), t.get(i + 2), t.get(i + 3)) {
        (Some(Tok::Op(dot)), Some(Tok::Ident(name)), _) if dot == "." => {
            Some((name.clone(), i + 3))
        }
        (Some(Tok::Op(open)), Some(Tok::Str(name)), Some(Tok::Op(close)))
            if open == "[" && close == "]" =>
        {
            Some((name.clone(), i + 4))
        }
        _ => None,
    }
}

/// Index of the token closing the bracket opened at `t[open]`.
fn closing(t: &[Tok], open: usize) -> usize {
    let mut depth = 0i32;
    for (j, tok) in t.iter().enumerate().skip(open) {
        if let Tok::Op(o) = tok {
            match o.as_str() {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => {
                    depth -= 1;
                    if depth == 0 {
                        return j;
                    }
                }
                _ => {}
            }
        }
    }
    t.len()
}

fn scan(query: &str) -> Names {
    let t = lex(query);
    let mut n = Names::default();
    // Function names of the open parentheses ("" for a plain parenthesis).
    let mut calls: Vec<String> = Vec::new();
    let mut i = 0;
    while i < t.len() {
        // Column references and the literal they are compared with.
        if let Some((name, after)) = column_ref(&t, i) {
            n.columns.push(name.clone());
            if let (Some(Tok::Op(op)), Some(lit)) = (t.get(after), t.get(after + 1)) {
                if ["==", "!=", "=~", "!~"].contains(&op.as_str()) {
                    let values = match lit {
                        Tok::Str(s) if !s.contains('$') => Some(vec![s.clone()]),
                        Tok::Regex(re) => regex_alternatives(re),
                        _ => None,
                    };
                    n.conds.push(Cond {
                        column: name,
                        op: op.clone(),
                        values,
                    });
                }
            }
            i = after;
            continue;
        }
        match &t[i] {
            Tok::Ident(f) if t.get(i + 1) == Some(&Tok::Op("(".into())) => {
                if f == "contains" {
                    let end = closing(&t, i + 1);
                    let args = &t[i + 2..end];
                    let column = args
                        .iter()
                        .enumerate()
                        .find_map(|(j, _)| column_ref(args, j).map(|(c, _)| c));
                    let set_at = args.windows(3).position(|w| {
                        w[0] == Tok::Ident("set".into())
                            && w[1] == Tok::Op(":".into())
                            && w[2] == Tok::Op("[".into())
                    });
                    if let (Some(column), Some(at)) = (column, set_at) {
                        let list_end = closing(args, at + 2);
                        let items = &args[at + 3..list_end];
                        let values: Option<Vec<String>> = items
                            .iter()
                            .filter(|tok| **tok != Tok::Op(",".into()))
                            .map(|tok| match tok {
                                Tok::Str(s) => Some(s.clone()),
                                _ => None,
                            })
                            .collect();
                        n.conds.push(Cond {
                            column,
                            op: "in".into(),
                            values,
                        });
                    }
                }
                calls.push(f.clone());
                i += 2;
                continue;
            }
            Tok::Op(o) if o == "(" => calls.push(String::new()),
            Tok::Op(o) if o == ")" => {
                calls.pop();
            }
            // A record literal in a function body: `({r with a: ...})` or `({a: ...})`.
            Tok::Op(o) if o == "{" && i > 0 && t[i - 1] == Tok::Op("(".into()) => {
                let end = closing(&t, i);
                let mut j = i + 1;
                if t.get(j) == Some(&Tok::Ident("r".into()))
                    && t.get(j + 1) == Some(&Tok::Ident("with".into()))
                {
                    j += 2;
                }
                let mut expect_key = true;
                let mut depth = 0;
                while j < end {
                    match &t[j] {
                        Tok::Ident(k)
                            if expect_key
                                && depth == 0
                                && t.get(j + 1) == Some(&Tok::Op(":".into())) =>
                        {
                            n.defined.insert(k.clone());
                            expect_key = false;
                        }
                        Tok::Op(o) if ["(", "[", "{"].contains(&o.as_str()) => depth += 1,
                        Tok::Op(o) if [")", "]", "}"].contains(&o.as_str()) => depth -= 1,
                        Tok::Op(o) if o == "," && depth == 0 => expect_key = true,
                        _ => {}
                    }
                    j += 1;
                }
                // The values are scanned as usual (they may read columns).
                i += 1;
                continue;
            }
            Tok::Ident(k) if t.get(i + 1) == Some(&Tok::Op(":".into())) => {
                let call = calls.last().map(String::as_str).unwrap_or("");
                if k == "bucket" {
                    n.buckets.push(match t.get(i + 2) {
                        Some(Tok::Str(s)) => Some(s.clone()),
                        _ => None,
                    });
                }
                if COLUMN_ARGS.contains(&k.as_str())
                    && !(k == "key" && call != "set")
                    && !(k == "tag" && call != "tagValues")
                {
                    let (mut names, mut renames) = (Vec::new(), Vec::new());
                    let j = i + 2;
                    match t.get(j) {
                        Some(Tok::Str(s)) => names.push(s.clone()),
                        Some(Tok::Op(o)) if o == "[" => {
                            let end = closing(&t, j);
                            for tok in &t[j + 1..end] {
                                if let Tok::Str(s) = tok {
                                    names.push(s.clone());
                                }
                            }
                        }
                        Some(Tok::Op(o)) if o == "{" => {
                            let end = closing(&t, j);
                            let body = &t[j + 1..end];
                            for w in body.windows(3) {
                                if let (Tok::Ident(old), Tok::Op(colon), Tok::Str(new)) =
                                    (&w[0], &w[1], &w[2])
                                {
                                    if colon == ":" {
                                        renames.push((old.clone(), new.clone()));
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                    if call == "set" && k == "key" {
                        n.defined.extend(names);
                    } else if call == "tagValues" && k == "tag" {
                        n.tag_args.extend(names);
                    } else {
                        n.columns.extend(names);
                    }
                    for (old, new) in renames {
                        n.columns.push(old);
                        n.defined.insert(new);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    n
}

/// Columns every Flux table has.
const STANDARD_COLUMNS: [&str; 6] = [
    "_measurement",
    "_field",
    "_value",
    "_time",
    "_start",
    "_stop",
];

/// How many names the checks looked at.
#[derive(Debug, Default)]
struct Tally {
    queries: usize,
    measurements: BTreeSet<String>,
    fields: BTreeSet<(String, String)>,
    columns: usize,
}

/// The problems of one Flux query, each naming `at` (dashboard and panel).
fn check_flux(at: &str, query: &str, schema: &Schema, tally: &mut Tally) -> Vec<String> {
    let mut errs = Vec::new();
    let n = scan(query);
    tally.queries += 1;
    let known = schema.measurements();

    // Measurements the query selects.
    let mut positive = BTreeSet::new();
    let mut negative = BTreeSet::new();
    for c in n.conds.iter().filter(|c| c.column == "_measurement") {
        for m in c.values.iter().flatten() {
            if !known.contains(m) {
                errs.push(format!(
                    "{at}: unknown measurement `{m}` (the export writes {known:?})"
                ));
            }
            if ["==", "in", "=~"].contains(&c.op.as_str()) {
                positive.insert(m.clone());
            } else {
                negative.insert(m.clone());
            }
        }
    }
    let scope: BTreeSet<String> = if positive.is_empty() {
        known.difference(&negative).cloned().collect()
    } else {
        positive.intersection(&known).cloned().collect()
    };
    let union = |map: &BTreeMap<String, BTreeSet<String>>| -> BTreeSet<String> {
        scope
            .iter()
            .flat_map(|m| map.get(m).into_iter().flatten().cloned())
            .collect()
    };
    let fields = union(&schema.fields);
    let tags = union(&schema.tags);

    // Fields.
    let mut wanted_fields = BTreeSet::new();
    for c in n.conds.iter().filter(|c| c.column == "_field") {
        for f in c.values.iter().flatten() {
            if !fields.contains(f) {
                errs.push(format!(
                    "{at}: unknown field `{f}`: not written to measurement(s) {scope:?}"
                ));
            } else {
                for m in &scope {
                    if schema.fields[m].contains(f) {
                        tally.fields.insert((m.clone(), f.clone()));
                    }
                }
            }
            if ["==", "in", "=~"].contains(&c.op.as_str()) {
                wanted_fields.insert(f.clone());
            }
        }
    }
    // A measurement selected by name that has none of the fields asked for is a dead
    // filter (a field of another kind, a typo in one of two names).
    if !positive.is_empty() && !wanted_fields.is_empty() {
        for m in &scope {
            if schema.fields[m].is_disjoint(&wanted_fields) {
                errs.push(format!(
                    "{at}: measurement `{m}` has none of the fields {wanted_fields:?}"
                ));
            }
        }
    }
    tally.measurements.extend(scope.iter().cloned());

    // Tag values that the code fixes.
    for c in &n.conds {
        if let (Some(allowed), Some(values)) = (schema.code_tag_values.get(&c.column), &c.values) {
            for v in values {
                if !allowed.contains(v) {
                    errs.push(format!(
                        "{at}: tag `{}` is never `{v}` (the export writes {allowed:?})",
                        c.column
                    ));
                }
            }
        }
    }

    // Every column read.
    for col in &n.columns {
        tally.columns += 1;
        if !(STANDARD_COLUMNS.contains(&col.as_str())
            || tags.contains(col)
            || fields.contains(col)
            || n.defined.contains(col))
        {
            errs.push(format!(
                "{at}: unknown column `{col}`: not a tag or field of measurement(s) {scope:?}, nor made by the query"
            ));
        }
    }
    for tag in &n.tag_args {
        if !tags.contains(tag) {
            errs.push(format!(
                "{at}: unknown tag `{tag}` (tags written: {tags:?})"
            ));
        }
    }
    for b in &n.buckets {
        if !b.as_deref().is_some_and(|b| b.contains("${bucket}")) {
            errs.push(format!(
                "{at}: bucket {b:?} is not the `bucket` variable (`\"${{bucket}}\"`)"
            ));
        }
    }
    errs
}

/// Names of the Grafana variables a text uses (`$x`, `${x}`, `${x:fmt}`).
fn variables_used(text: &str) -> BTreeSet<String> {
    let c: Vec<char> = text.chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '$' {
            let braced = c.get(i + 1) == Some(&'{');
            let mut j = i + 1 + usize::from(braced);
            let start = j;
            while j < c.len() && (c[j].is_ascii_alphanumeric() || c[j] == '_') {
                j += 1;
            }
            if j > start {
                out.insert(c[start..j].iter().collect());
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Is `ds` (a `datasource` value) an InfluxDB one chosen by a variable?
fn datasource_problem(ds: &Value, ds_vars: &BTreeSet<String>) -> Option<String> {
    let uid = match ds {
        Value::Object(o) => {
            let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
            if ty != "influxdb" {
                return Some(format!("datasource type {ty:?}, not \"influxdb\""));
            }
            o.get("uid").and_then(Value::as_str).unwrap_or("")
        }
        Value::String(s) => s.as_str(),
        _ => return Some(format!("datasource {ds} is not an object")),
    };
    let vars = variables_used(uid);
    if vars.len() == 1 && uid.starts_with('$') && vars.is_subset(ds_vars) {
        None
    } else {
        Some(format!(
            "datasource uid {uid:?} is hard-coded or not a datasource variable ({ds_vars:?})"
        ))
    }
}

/// Every `"datasource"` value anywhere in `v`, with its JSON path.
fn datasources<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = format!("{path}/{k}");
                if k == "datasource" {
                    out.push((p.clone(), x));
                }
                datasources(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                datasources(x, format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Grafana's own variables (`$__interval`, `${__field.labels.x}`, ...).
fn builtin(var: &str) -> bool {
    var.starts_with("__")
}

/// All the problems of one dashboard; `file` names it in each.
fn check_dashboard(file: &str, d: &Value, schema: &Schema, tally: &mut Tally) -> Vec<String> {
    let mut errs = Vec::new();
    if str_of(d, "uid").is_empty() {
        errs.push(format!("{file}: no uid"));
    }
    if str_of(d, "title").is_empty() {
        errs.push(format!("{file}: no title"));
    }
    let schema_version = d.get("schemaVersion").and_then(Value::as_u64).unwrap_or(0);
    if schema_version < 39 {
        errs.push(format!("{file}: schemaVersion {schema_version} < 39"));
    }

    let vars: Vec<&Value> = d
        .pointer("/templating/list")
        .and_then(Value::as_array)
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    let var_names: BTreeSet<String> = vars.iter().map(|v| str_of(v, "name").to_owned()).collect();
    let ds_vars: BTreeSet<String> = vars
        .iter()
        .filter(|v| str_of(v, "type") == "datasource")
        .map(|v| {
            if str_of(v, "query") != "influxdb" {
                errs.push(format!(
                    "{file}: datasource variable `{}` does not pick InfluxDB data sources",
                    str_of(v, "name")
                ));
            }
            str_of(v, "name").to_owned()
        })
        .collect();
    if ds_vars.is_empty() {
        errs.push(format!("{file}: no datasource variable of type influxdb"));
    }
    if !var_names.contains("bucket") {
        errs.push(format!("{file}: no `bucket` variable"));
    }

    let mut check_query = |at: String, query: &str, errs: &mut Vec<String>| {
        for v in variables_used(query) {
            if !builtin(&v) && !var_names.contains(&v) {
                errs.push(format!("{at}: unknown variable `${v}`"));
            }
        }
        errs.extend(check_flux(&at, query, schema, tally));
    };

    // Query variables.
    for v in &vars {
        if str_of(v, "type") != "query" {
            continue;
        }
        let at = format!("{file}: variable `{}`", str_of(v, "name"));
        if let Some(p) = v
            .get("datasource")
            .and_then(|ds| datasource_problem(ds, &ds_vars))
        {
            errs.push(format!("{at}: {p}"));
        }
        let query = match v.get("query") {
            Some(Value::String(s)) => s.as_str(),
            Some(q) => str_of(q, "query"),
            None => "",
        };
        if query.trim().is_empty() {
            errs.push(format!("{at}: no query"));
        } else {
            check_query(at, query, &mut errs);
        }
    }

    // Panels, rows' panels included.
    let mut panels: Vec<&Value> = Vec::new();
    for p in d
        .get("panels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        panels.push(p);
        panels.extend(
            p.get("panels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    }
    if panels.iter().all(|p| str_of(p, "type") == "row") {
        errs.push(format!("{file}: no panels"));
    }
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = str_of(p, "title");
        let at = format!("{file}: panel \"{title}\"");
        if let Some(id) = p.get("id").and_then(Value::as_u64) {
            if !ids.insert(id) {
                errs.push(format!("{at}: duplicate panel id {id}"));
            }
        } else {
            errs.push(format!("{at}: no id"));
        }
        if str_of(p, "type") == "row" {
            continue;
        }
        if title.is_empty() {
            errs.push(format!("{at}: no title"));
        }
        match p.get("datasource") {
            None | Some(Value::Null) => errs.push(format!("{at}: no datasource")),
            Some(ds) => {
                if let Some(problem) = datasource_problem(ds, &ds_vars) {
                    errs.push(format!("{at}: {problem}"));
                }
            }
        }
        let targets = p.get("targets").and_then(Value::as_array);
        if targets.is_none_or(|t| t.is_empty()) {
            errs.push(format!("{at}: no query"));
        }
        for t in targets.into_iter().flatten() {
            let at = format!("{at} (refId {})", str_of(t, "refId"));
            let query = str_of(t, "query");
            if query.trim().is_empty() {
                errs.push(format!("{at}: empty query"));
                continue;
            }
            check_query(at, query, &mut errs);
        }
    }

    // Annotations with queries.
    for a in d
        .pointer("/annotations/list")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let query = a
            .pointer("/target/query")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !query.is_empty() {
            check_query(
                format!("{file}: annotation \"{}\"", str_of(a, "name")),
                query,
                &mut errs,
            );
        }
    }

    // No data source anywhere by a fixed uid (variables themselves aside).
    let mut all = Vec::new();
    datasources(d, String::new(), &mut all);
    for (path, ds) in all {
        if ds.is_null() {
            continue; // the default data source: panels without one are reported above
        }
        if let Some(problem) = datasource_problem(ds, &ds_vars) {
            errs.push(format!("{file}: {path}: {problem}"));
        }
    }
    errs.sort();
    errs.dedup();
    errs
}

fn load(file: &str) -> Value {
    let path = grafana_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not valid JSON: {e}"))
}

// ------------------------------------------------------------------ tests

#[test]
fn sampled_variants_are_all_variants() {
    let samples = sample_reports();
    let sampled: BTreeSet<String> = samples.iter().map(variant_of).collect();
    assert_eq!(
        sampled,
        variant_names::<Report>(),
        "sample_reports() must hold every Report variant"
    );
    let pendants: BTreeSet<String> = samples
        .iter()
        .filter_map(|r| match r {
            Report::Pendant(p) => Some(variant_of(p)),
            _ => None,
        })
        .collect();
    assert_eq!(pendants, variant_names::<Pendant>(), "every Pendant report");
    let hazards: BTreeSet<String> = samples
        .iter()
        .filter_map(|r| match r {
            Report::Hazard(h) if h.alarm => Some(variant_of(&h.hazard)),
            _ => None,
        })
        .collect();
    assert_eq!(
        hazards,
        variant_names::<HazardKind>(),
        "every hazard in alarm"
    );
    for answer in [false, true] {
        let targets: BTreeSet<String> = samples
            .iter()
            .filter_map(|r| match r {
                Report::CommandCheck(c) if !answer => Some(variant_of(&c.target)),
                Report::Answer(a) if answer => Some(variant_of(&a.check.target)),
                _ => None,
            })
            .collect();
        assert_eq!(
            targets,
            variant_names::<CommandTarget>(),
            "every command target"
        );
    }
    let kinds: BTreeSet<String> = DeviceKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    assert_eq!(kinds, variant_names::<DeviceKind>(), "DeviceKind::ALL");
}

#[test]
fn the_derived_schema_covers_every_kind_and_event() {
    let s = written_schema();
    let mut expected: BTreeSet<String> = DeviceKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    expected.insert("event".into());
    assert_eq!(s.measurements(), expected);
    assert_eq!(
        s.code_tag_values["kind"],
        variant_names::<EventKind>(),
        "an event line for every event kind"
    );
    let device_kinds: BTreeSet<String> = s
        .measurements()
        .into_iter()
        .filter(|m| m != "event")
        .collect();
    assert_eq!(s.code_tag_values["device_kind"], device_kinds);
    // Spot checks against SCHEMA.md.
    assert!(s.fields["street_light"].contains("power_w"));
    assert!(
        s.fields["street_light"].contains("battery_pct"),
        "common reports land in the kind's measurement"
    );
    assert_eq!(s.fields["event"], BTreeSet::from(["count".to_owned()]));
    assert!(s.tags["vitals"].is_superset(&BTreeSet::from(
        ["device", "site", "zone", "resident", "asset"].map(str::to_owned)
    )));
}

#[test]
fn dashboards_query_only_what_the_export_writes() {
    let schema = written_schema();
    let mut tally = Tally::default();
    let mut errs = Vec::new();
    for file in DASHBOARDS {
        errs.extend(check_dashboard(file, &load(file), &schema, &mut tally));
    }
    assert!(
        errs.is_empty(),
        "{} problem(s):\n{}",
        errs.len(),
        errs.join("\n")
    );
    assert!(tally.queries >= 3 * 10, "too few queries found: {tally:?}");
    println!(
        "checked {} Flux queries in {} dashboards: {} (measurement, field) pairs over {} measurements, {} column references",
        tally.queries,
        DASHBOARDS.len(),
        tally.fields.len(),
        tally.measurements.len(),
        tally.columns
    );
    // Informational: what the export writes that no dashboard plots.
    let unused: Vec<String> = schema
        .fields
        .iter()
        .flat_map(|(m, fs)| fs.iter().map(move |f| (m.clone(), f.clone())))
        .filter(|mf| !tally.fields.contains(mf))
        .map(|(m, f)| format!("{m}.{f}"))
        .collect();
    println!(
        "written but on no dashboard ({}): {}",
        unused.len(),
        unused.join(" ")
    );
}

#[test]
fn dashboard_uids_are_unique_and_provisioning_points_at_the_folder() {
    let uids: BTreeSet<String> = DASHBOARDS
        .iter()
        .map(|f| str_of(&load(f), "uid").to_owned())
        .collect();
    assert_eq!(uids.len(), DASHBOARDS.len(), "uids: {uids:?}");
    let provider =
        std::fs::read_to_string(grafana_dir().join("provisioning/dashboards.yaml")).expect("read");
    assert!(provider.contains("apiVersion: 1") && provider.contains("type: file"));
    assert!(provider.contains("path:"));
    let ds = std::fs::read_to_string(grafana_dir().join("provisioning/datasource.example.yaml"))
        .expect("read");
    assert!(ds.contains("type: influxdb") && ds.contains("version: Flux"));
    assert!(
        ds.contains("token: $"),
        "the token comes from the environment"
    );
}

/// A dashboard with one good panel and one bad panel per kind of mistake.
fn broken_dashboard() -> Value {
    let ds = serde_json::json!({"type": "influxdb", "uid": "${datasource}"});
    let head =
        "from(bucket: \"${bucket}\")\n  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n";
    let fixed_bucket = panel_with(
        &ds,
        12,
        "Fixed bucket",
        &format!("{head}  |> filter(fn: (r) => r._measurement == \"bed\")")
            .replace("${bucket}", "prod"),
    );
    let panel =
        |id: u64, title: &str, body: &str| panel_with(&ds, id, title, &format!("{head}{body}"));
    serde_json::json!({
        "uid": "test", "title": "Test", "schemaVersion": 39,
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "query": "influxdb"},
            {"type": "textbox", "name": "bucket", "query": "linli"},
            {"type": "query", "name": "site", "datasource": ds,
             "query": "import \"influxdata/influxdb/schema\"\nschema.tagValues(bucket: \"${bucket}\", tag: \"building\")"}
        ]},
        "panels": [
            panel(1, "Good", "  |> filter(fn: (r) => r._measurement == \"street_light\" and r._field == \"power_w\")\n  |> filter(fn: (r) => r.site =~ /^${site:regex}$/)\n  |> map(fn: (r) => ({r with kw: r._value / 1000.0}))\n  |> keep(columns: [\"_time\", \"kw\", \"device\", \"asset\"])"),
            panel(2, "Made-up field", "  |> filter(fn: (r) => r._measurement == \"street_light\" and r._field == \"made_up_field\")"),
            panel(3, "Made-up tag", "  |> filter(fn: (r) => r._measurement == \"manhole\" and r[\"building\"] == \"B\")"),
            panel(4, "Made-up measurement", "  |> filter(fn: (r) => r._measurement == \"street_lamp\")"),
            panel(5, "Field of another kind", "  |> filter(fn: (r) => r._measurement == \"water_level\" and r._field == \"fill_pct\")"),
            panel(6, "Made-up event", "  |> filter(fn: (r) => r._measurement == \"event\" and contains(value: r.kind, set: [\"sos\", \"fire\"]))"),
            panel(7, "Made-up group column", "  |> filter(fn: (r) => r._measurement == \"vitals\")\n  |> group(columns: [\"ward\"])"),
            panel(8, "Unknown variable", "  |> filter(fn: (r) => r.zone == \"${nope}\")"),
            {"id": 9, "type": "stat", "title": "No datasource",
             "targets": [{"refId": "A", "query": format!("{head}  |> filter(fn: (r) => r._measurement == \"bed\")")}]},
            {"id": 10, "type": "stat", "title": "Fixed uid", "datasource": {"type": "influxdb", "uid": "P951FEA4DE68E13C5"},
             "targets": [{"refId": "A", "query": format!("{head}  |> filter(fn: (r) => r._measurement == \"bed\")")}]},
            {"id": 11, "type": "stat", "title": "No query", "datasource": ds, "targets": []},
            fixed_bucket,
            panel(13, "Field in a regex", "  |> filter(fn: (r) => r._measurement == \"power_meter\" and r._field =~ /^(voltage_v|volts)$/)"),
        ]
    })
}

/// A time-series panel with one query.
fn panel_with(ds: &Value, id: u64, title: &str, query: &str) -> Value {
    serde_json::json!({
        "id": id, "type": "timeseries", "title": title, "datasource": ds,
        "targets": [{"refId": "A", "datasource": ds, "query": query}]
    })
}

#[test]
fn the_checker_reports_made_up_names() {
    let schema = written_schema();
    let errs = check_dashboard(
        "test.json",
        &broken_dashboard(),
        &schema,
        &mut Tally::default(),
    );
    let text = errs.join("\n");
    let expect = |needles: &[&str]| {
        assert!(
            errs.iter().any(|e| needles.iter().all(|n| e.contains(n))),
            "no problem mentions {needles:?}; got:\n{text}"
        );
    };
    expect(&["test.json", "panel \"Made-up field\"", "`made_up_field`"]);
    expect(&["panel \"Made-up tag\"", "`building`"]);
    expect(&["panel \"Made-up measurement\"", "`street_lamp`"]);
    expect(&["panel \"Field of another kind\"", "`fill_pct`"]);
    expect(&["panel \"Made-up event\"", "`fire`"]);
    expect(&["panel \"Made-up group column\"", "`ward`"]);
    expect(&["panel \"Unknown variable\"", "`$nope`"]);
    expect(&["panel \"No datasource\"", "no datasource"]);
    expect(&["panel \"Fixed uid\"", "P951FEA4DE68E13C5"]);
    expect(&["panel \"No query\"", "no query"]);
    expect(&["panel \"Fixed bucket\"", "prod"]);
    expect(&["panel \"Field in a regex\"", "`volts`"]);
    expect(&["variable `site`", "`building`"]);
    assert!(
        !text.contains("\"Good\""),
        "the good panel is not reported:\n{text}"
    );
    assert!(
        !text.contains("sos`"),
        "a real event kind is not reported:\n{text}"
    );
    assert!(
        !text.contains("`voltage_v`"),
        "a real field is not reported:\n{text}"
    );
}

#[test]
fn the_scanner_reads_the_flux_forms_the_dashboards_use() {
    let n = scan(
        r#"import "date"
cutoff = date.sub(d: duration(v: "${silence}"), from: now())
from(bucket: "${bucket}")
  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
  |> filter(fn: (r) => r["_measurement"] != "event" and r._measurement =~ /^${kind:regex}$/) // comment r.nope
  |> filter(fn: (r) => exists r.resident and contains(value: r.device_kind, set: ["pendant", "bed"]))
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> map(fn: (r) => ({r with silent_s: (int(v: now()) - int(v: r._time)) / 1000000000, b: r.battery_pct}))
  |> rename(columns: {device: "devices"})
  |> set(key: "x", value: "y")
  |> count(column: "devices")"#,
    );
    let conds: Vec<(String, String, Option<Vec<String>>)> = n
        .conds
        .iter()
        .map(|c| (c.column.clone(), c.op.clone(), c.values.clone()))
        .collect();
    assert_eq!(
        conds,
        vec![
            (
                "_measurement".into(),
                "!=".into(),
                Some(vec!["event".into()])
            ),
            ("_measurement".into(), "=~".into(), None),
            (
                "device_kind".into(),
                "in".into(),
                Some(vec!["pendant".into(), "bed".into()])
            ),
        ]
    );
    for c in [
        "resident",
        "device_kind",
        "_time",
        "_field",
        "_value",
        "battery_pct",
        "device",
        "devices",
    ] {
        assert!(n.columns.iter().any(|x| x == c), "{c} in {:?}", n.columns);
    }
    assert!(
        !n.columns.iter().any(|x| x == "nope"),
        "comments are skipped"
    );
    assert_eq!(
        n.defined,
        BTreeSet::from(["silent_s", "b", "devices", "x"].map(str::to_owned))
    );
    assert_eq!(n.buckets, vec![Some("${bucket}".to_owned())]);
    assert_eq!(
        regex_alternatives("^(a_b|c)$"),
        Some(vec!["a_b".into(), "c".into()])
    );
    assert_eq!(regex_alternatives("^.*$"), None);
}
