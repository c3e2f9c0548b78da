//! `/api/alarms`, `/api/notes`, `/api/rules`: alarms with their history, people's
//! actions (acknowledge, resolve, shelve, out of service, away), and rule reloads.
//!
//! Owns these routes' JSON shapes; the decisions are the lifecycle's. Every action is
//! recorded under the signed-in person's name (or, with the API token, the body's `by`);
//! a caller sees and acts on alarms in their scope only (`scope`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::scope::{audit_list, audit_view, sees_alarm, sees_source, Residents};
use super::session::Caller;
use super::{bad_request, internal, not_found, ApiError};
use crate::alarms::db::Filter;
use crate::alarms::follower::AlarmMetrics;
use crate::alarms::{ActionError, Alarm};
use crate::pipeline::Shared;

type S = State<Arc<Shared>>;

pub(super) fn view(a: &Alarm) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("recent");
        o.insert("announced".into(), json!(a.announced()));
        o.insert("shown_as".into(), json!(a.shown_as()));
        // Answer time of this alarm (the per-team figures are in /api/kpis).
        let ack_s = a
            .acked_ms
            .map(|t| t.saturating_sub(a.raised_ms) as f64 / 1000.0);
        o.insert("time_to_ack_s".into(), json!(ack_s));
    }
    v
}

/// Runs a person's action at the desk and answers `{"ok": true}`, or why it was refused.
fn act(
    s: &Shared,
    f: impl FnOnce(&mut crate::alarms::core::AlarmCore, u64) -> Result<(), ActionError>,
) -> Result<Json<Value>, ApiError> {
    tokio::task::block_in_place(|| s.alarms.act(f)).map_err(refused)?;
    Ok(Json(json!({"ok": true})))
}

fn refused(e: ActionError) -> ApiError {
    let (status, code) = match e {
        ActionError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        _ => (StatusCode::CONFLICT, "refused"),
    };
    ApiError {
        status,
        code,
        message: e.to_string(),
    }
}

pub(super) fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t)
        .map_err(|e| bad_request(format!("request body: {}", e.body_text())))
}

/// 404 unless `caller` may see alarm `id` (alarms outside their scope do not exist
/// for them); a look at a resident's alarm is audited.
fn in_scope(s: &Shared, caller: &Caller, id: u64) -> Result<(), ApiError> {
    let found = tokio::task::block_in_place(|| s.alarms.get(id)).map_err(internal)?;
    let (a, _) = found.ok_or_else(|| not_found(&format!("alarm {id}")))?;
    let residents = Residents::load(s)?;
    let v = view(&a);
    if !sees_alarm(caller, &residents, &v) {
        return Err(not_found(&format!("alarm {id}")));
    }
    Ok(())
}

/// Alarms read for a caller who sees only some zones, before keeping theirs.
const SCOPED_READ: usize = 20_000;

/// `GET /api/alarms` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    open: Option<bool>,
    zone: Option<String>,
    kind: Option<String>,
    since: Option<u64>,
    limit: Option<usize>,
}

/// Alarms, newest first (`?open=true` for open ones only).
pub async fn list(
    State(s): S,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(200).min(10_000);
    // A caller who sees only part of the gateway reads deeper, so that other zones'
    // newer alarms cannot push theirs out of the answer.
    let p = &caller.person;
    let sees_all = p.sees_zone("*") && p.role.can().residents;
    let f = Filter {
        open_only: q.open.unwrap_or(false),
        zone: q.zone,
        kind: q.kind,
        since_ms: q.since,
        limit: if sees_all { limit } else { SCOPED_READ },
    };
    let alarms = tokio::task::block_in_place(|| s.alarms.list(&f)).map_err(internal)?;
    let residents = Residents::load(&s)?;
    let shown: Vec<Value> = alarms
        .iter()
        .map(view)
        .filter(|v| sees_alarm(&caller, &residents, v))
        .take(limit)
        .collect();
    let named = shown.iter().filter_map(|v| residents.of_alarm(v)).collect();
    audit_list(&s, &caller, "/api/alarms", &named)?;
    Ok(Json(json!({ "alarms": shown })))
}

/// One alarm with every transition (who, when, what).
pub async fn one(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let found = tokio::task::block_in_place(|| s.alarms.get(id)).map_err(internal)?;
    let (a, history) = found.ok_or_else(|| not_found(&format!("alarm {id}")))?;
    let mut v = view(&a);
    let residents = Residents::load(&s)?;
    if !sees_alarm(&caller, &residents, &v) {
        return Err(not_found(&format!("alarm {id}")));
    }
    if let Some(r) = residents.of_alarm(&v) {
        audit_view(&s, &caller, &r, &format!("GET /api/alarms/{id}"))?;
    }
    // People's names as others see them, beside the sign-in names the history keeps.
    let names: std::collections::HashMap<String, String> = s
        .people
        .list()
        .map_err(internal)?
        .into_iter()
        .map(|p| (p.name, p.display_name))
        .collect();
    let display = |who: &Value| {
        who.as_str()
            .and_then(|w| names.get(w))
            .map_or(Value::Null, |d| json!(d))
    };
    v["acked_by_display"] = display(&v["acked_by"]);
    v["assignee_display"] = display(&v["assignee"]);
    let mut history = serde_json::to_value(history).unwrap_or(Value::Null);
    for h in history.as_array_mut().into_iter().flatten() {
        h["who_display"] = display(&h["who"]);
    }
    v["history"] = history;
    Ok(Json(v))
}

/// Body of acknowledge, resolve and unshelve.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActBody {
    #[serde(default)]
    by: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    disposition: String,
}

/// Acknowledges an alarm.
pub async fn ack(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
    b: Result<Json<ActBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let by = caller.by(&b.by)?;
    in_scope(&s, &caller, id)?;
    act(&s, |c, now| c.alarms.ack(id, by, now, &b.note))
}

/// Body of assign and comment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    #[serde(default)]
    by: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
}

/// Assigns an alarm to a person (`to`).
pub async fn assign(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
    b: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let by = caller.by(&b.by)?;
    in_scope(&s, &caller, id)?;
    act(&s, |c, now| c.alarms.assign(id, b.to.trim(), by, now))
}

/// Adds a comment (`text`) to an alarm's history.
pub async fn comment(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
    b: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let by = caller.by(&b.by)?;
    in_scope(&s, &caller, id)?;
    act(&s, |c, now| c.alarms.comment(id, &b.text, by, now))
}

/// Closes an alarm with a disposition.
pub async fn resolve(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
    b: Result<Json<ActBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let by = caller.by(&b.by)?;
    in_scope(&s, &caller, id)?;
    // The disposition is what was done; a note adds detail to it.
    let disposition = match (b.disposition.trim(), b.note.trim()) {
        (d, "") => d.to_owned(),
        ("", n) => n.to_owned(),
        (d, n) => format!("{d} — {n}"),
    };
    act(&s, |c, now| c.alarms.resolve(id, by, now, &disposition))
}

/// Body of shelve.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShelveBody {
    #[serde(default)]
    by: String,
    seconds: u64,
    reason: String,
}

/// Shelves an alarm (capped; refused for life-safety alarms).
pub async fn shelve(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
    b: Result<Json<ShelveBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let by = caller.by(&b.by)?;
    in_scope(&s, &caller, id)?;
    if b.reason.trim().is_empty() {
        return Err(bad_request(
            "`reason` is required: say why the alarm is shelved".into(),
        ));
    }
    let granted = tokio::task::block_in_place(|| {
        s.alarms
            .act(|c, now| c.alarms.shelve(id, by, now, b.seconds, &b.reason))
    })
    .map_err(refused)?;
    Ok(Json(json!({"ok": true, "granted_s": granted / 1000})))
}

/// Takes a shelf off.
pub async fn unshelve(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
    b: Result<Json<ActBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let by = caller.by(&b.by)?;
    in_scope(&s, &caller, id)?;
    act(&s, |c, now| c.alarms.unshelve(id, by, now))
}

/// Body of out-of-service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OosBody {
    source: String,
    on: bool,
    #[serde(default)]
    by: String,
}

/// Takes a source or device out of service (or back).
pub async fn out_of_service(
    State(s): S,
    Extension(caller): Extension<Caller>,
    b: Result<Json<OosBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let by = caller.by(&b.by)?;
    if !sees_source(&s, &caller, &b.source)? {
        return Err(not_found(&format!(
            "source `{}` in your zones (give a device id, or device:ID, resident:ID, asset:ID, zone:ID of a registered device)",
            b.source
        )));
    }
    tokio::task::block_in_place(|| {
        s.alarms.act(|c, now| {
            c.alarms.set_out_of_service(&b.source, b.on, by, now);
            Ok(())
        })
    })
    .map_err(refused)?;
    Ok(Json(json!({"ok": true})))
}

/// Body of away.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwayBody {
    on: bool,
    #[serde(default)]
    by: String,
}

/// Marks a resident away (away-gated rules raise nothing) or back.
pub async fn away(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    b: Result<Json<AwayBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let by = caller.by(&b.by)?;
    if !sees_source(&s, &caller, &format!("resident:{id}"))? {
        return Err(not_found(&format!(
            "resident {id} in your zones (no registered device of theirs is)"
        )));
    }
    tokio::task::block_in_place(|| {
        s.alarms.act(|c, _| {
            c.rules.set_away(&id, b.on);
            Ok(())
        })
    })
    .map_err(refused)?;
    tracing::info!(resident = %id, away = b.on, by, "away mode changed");
    Ok(Json(json!({"ok": true, "resident": id, "away": b.on})))
}

/// `GET /api/notes` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotesQuery {
    limit: Option<usize>,
}

/// Notes (suspected and dismissed falls), newest first.
pub async fn notes(
    State(s): S,
    q: Result<Query<NotesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    let n = tokio::task::block_in_place(|| s.alarms.notes(q.limit.unwrap_or(200).min(10_000)))
        .map_err(internal)?;
    Ok(Json(json!({ "notes": n })))
}

fn rules_view(s: &Shared) -> Value {
    let r = s.alarms.rules();
    json!({
        "source": s.alarms.rules_source(),
        "timezone": r.local.name(),
        "rules": r.rules.iter().map(|x| json!({
            "name": &*x.name,
            "priority": x.priority,
            "life_safety": x.life_safety,
            "latching": x.latching,
            "test": format!("{:?}", x.test).split([' ', '{']).next().unwrap_or("").to_lowercase(),
        })).collect::<Vec<_>>(),
        "groups": r.groups.iter().map(|g| &*g.name).collect::<Vec<_>>(),
    })
}

/// The rules in force.
pub async fn rules(State(s): S) -> Json<Value> {
    Json(rules_view(&s))
}

/// Re-reads the rules file; 400 lists every problem (the running rules stay).
pub async fn reload(State(s): S) -> Result<Json<Value>, ApiError> {
    tokio::task::block_in_place(|| s.alarms.reload()).map_err(|e| bad_request(e.to_string()))?;
    Ok(Json(rules_view(&s)))
}

/// Appends the alarm stage's metrics in Prometheus text format.
pub fn render_metrics(m: &AlarmMetrics, out: &mut String) {
    use std::fmt::Write;
    let c = |x: &std::sync::atomic::AtomicU64| x.load(Relaxed);
    let _ = writeln!(out, "# HELP linli_alarms_raised_total Alarms raised.\n# TYPE linli_alarms_raised_total counter\nlinli_alarms_raised_total {}", c(&m.raised));
    let _ = writeln!(out, "# HELP linli_alarm_transitions_total Alarm transitions recorded.\n# TYPE linli_alarm_transitions_total counter\nlinli_alarm_transitions_total {}", c(&m.transitions));
    let _ = writeln!(out, "# HELP linli_alarms_open Open alarms.\n# TYPE linli_alarms_open gauge\nlinli_alarms_open {}", c(&m.open));
    let _ = writeln!(out, "# HELP linli_alarm_db_errors_total Alarm commits that failed (retried).\n# TYPE linli_alarm_db_errors_total counter\nlinli_alarm_db_errors_total {}", c(&m.db_errors));
    let _ = writeln!(out, "# HELP linli_rules_reloads_total Rule reloads by result.\n# TYPE linli_rules_reloads_total counter\nlinli_rules_reloads_total{{result=\"applied\"}} {}\nlinli_rules_reloads_total{{result=\"refused\"}} {}", c(&m.reloads), c(&m.reloads_refused));
    let _ = writeln!(out, "# HELP linli_alarm_latency_seconds From a reading's arrival to the commit of the alarm it raised or repeated (quantiles over the latest 10000).\n# TYPE linli_alarm_latency_seconds summary");
    if let Some((p50, p99, _)) = m.latency() {
        let _ = writeln!(out, "linli_alarm_latency_seconds{{quantile=\"0.5\"}} {p50}\nlinli_alarm_latency_seconds{{quantile=\"0.99\"}} {p99}");
    }
    let _ = writeln!(
        out,
        "linli_alarm_latency_seconds_sum {}\nlinli_alarm_latency_seconds_count {}",
        c(&m.latency_sum_us) as f64 / 1e6,
        c(&m.latency_count)
    );
}
