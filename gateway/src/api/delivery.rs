//! `/api/events` (server-sent events), `/api/work-orders`, `/api/deliveries`,
//! `/api/kpis` and `/api/routing`: the delivery stage seen from outside — live events,
//! crews' work order actions, every delivery with its attempts and receipt, answer
//! times, and who is on duty now.
//!
//! Owns these routes' JSON shapes; the decisions are the router's.

use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::alarms::body;
use super::scope::{sees_alarm, Residents};
use super::session::Caller;
use super::{bad_request, internal, not_found, ApiError};
use crate::clock::now_ms;
use crate::notify::router::{work_order_json, Answer};
use crate::notify::stage::{NotifyMetrics, WorkActionError};
use crate::notify::workorder::{WorkError, WorkOrder};
use crate::pipeline::Shared;

type S = State<Arc<Shared>>;

/// Every alarm and work order event as it is routed (`event: alarm` or `work_order`,
/// `id:` the event's key, `data:` the documented JSON). A subscriber too slow to keep
/// up gets an `event: lagged` with how many it missed, and should re-read
/// `/api/alarms?open=true`.
pub async fn events(
    State(s): S,
    Extension(caller): Extension<Caller>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = s.notify.subscribe();
    let residents = Residents::load(&s).unwrap_or_default();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Watch {
        s: s.clone(),
        caller,
        residents,
        recheck,
    };
    let stream = futures_util::stream::unfold((rx, state), |(mut rx, mut w)| async move {
        let e = loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(ev) if !sees_event(&w.caller, &w.residents, &ev.body) => continue,
                    Ok(ev) => break Ok(ev),
                    Err(e) => break Err(e),
                },
                _ = w.recheck.tick() => {
                    if !w.refresh() {
                        return None;
                    }
                }
            }
        };
        let e = match e {
            Ok(ev) => {
                let kind = ev
                    .body
                    .get("type")
                    .and_then(|t| t.as_str())
                    .unwrap_or("alarm");
                Event::default()
                    .event(kind)
                    .id(ev.key.clone())
                    .data(ev.body.to_string())
            }
            Err(RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(json!({"missed": n}).to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(e), (rx, w)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// How often a live stream re-checks its session and re-reads who belongs to which
/// resident.
const RECHECK: Duration = Duration::from_secs(30);

/// One live stream's caller and what it needs to filter events.
struct Watch {
    s: Arc<Shared>,
    caller: Caller,
    residents: Residents,
    recheck: tokio::time::Interval,
}

impl Watch {
    /// Re-reads the session (role and zones may have changed) and the resident index;
    /// false when the session has ended (signed out, expired, password changed, removed).
    fn refresh(&mut self) -> bool {
        if let Some(token) = &self.caller.session {
            match tokio::task::block_in_place(|| self.s.people.session(token, now_ms())) {
                Ok(Some(p)) => self.caller.person = p,
                Ok(None) => return false,
                Err(e) => {
                    tracing::warn!(error = %e, "live events: session re-check failed; keeping the stream")
                }
            }
        }
        if let Ok(r) = Residents::load(&self.s) {
            self.residents = r;
        }
        true
    }
}

/// Whether an event is for `caller`: alarm events for alarms in their scope, work order
/// events for street roles, anything else (pages) for operations.
fn sees_event(caller: &Caller, residents: &Residents, body: &Value) -> bool {
    let can = caller.person.role.can();
    if body.get("type").and_then(Value::as_str) == Some("work_order") && !can.street {
        return false;
    }
    match body.get("alarm") {
        Some(a) => sees_alarm(caller, residents, a),
        None => can.ops && caller.person.sees_zone("*"),
    }
}

/// `GET /api/work-orders` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkQuery {
    open: Option<bool>,
    limit: Option<usize>,
}

fn wo_view(w: &WorkOrder, now: u64) -> Value {
    let mut v = work_order_json(w);
    v["created_ms"] = json!(w.created_ms);
    v["closed_ms"] = json!(w.closed_ms);
    v["verify_by_ms"] = json!(w.verify_by_ms);
    v["role"] = json!(w.role);
    v["source"] = json!(w.source);
    v["due_in_s"] = json!((!w.state.closed()).then(|| (w.due_ms as i64 - now as i64) / 1000));
    v
}

/// Whether `caller` may see work order `w`: in their zones, and not about a resident
/// unless their role sees residents (a lost pendant makes a work order too).
fn sees_work_order(caller: &Caller, residents: &Residents, w: &WorkOrder) -> bool {
    let about =
        json!({"zone": w.zone, "source": w.source, "subject": w.subject, "device": w.device});
    sees_alarm(caller, residents, &about)
}

/// Work order `id` if `caller` may see it (404 otherwise: ids cannot be probed).
fn scoped_work_order(s: &Shared, caller: &Caller, id: u64) -> Result<WorkOrder, ApiError> {
    let w = tokio::task::block_in_place(|| s.notify.work_order(id))
        .map_err(internal)?
        .ok_or_else(|| not_found(&format!("work order {id}")))?;
    if !sees_work_order(caller, &Residents::load(s)?, &w) {
        return Err(not_found(&format!("work order {id}")));
    }
    Ok(w)
}

/// Work orders in the caller's scope, newest first (`?open=true` for open ones).
pub async fn work_orders(
    State(s): S,
    Extension(caller): Extension<Caller>,
    q: Result<Query<WorkQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(200).min(10_000);
    let list =
        tokio::task::block_in_place(|| s.notify.work_orders(q.open.unwrap_or(false), 20_000))
            .map_err(internal)?;
    let residents = Residents::load(&s)?;
    let now = now_ms();
    let shown: Vec<Value> = list
        .iter()
        .filter(|w| sees_work_order(&caller, &residents, w))
        .take(limit)
        .map(|w| wo_view(w, now))
        .collect();
    Ok(Json(json!({ "work_orders": shown })))
}

/// One work order with its history.
pub async fn work_order(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let w = scoped_work_order(&s, &caller, id)?;
    let mut v = wo_view(&w, now_ms());
    v["history"] = serde_json::to_value(&w.history).unwrap_or(Value::Null);
    Ok(Json(v))
}

/// Body of a work order action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkBody {
    #[serde(default)]
    by: String,
    #[serde(default)]
    note: String,
}

/// `POST /api/work-orders/{id}/{accept|arrive|fixed}`.
pub async fn work_action(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path((id, action)): Path<(u64, String)>,
    b: Result<Json<WorkBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    if !matches!(action.as_str(), "accept" | "arrive" | "fixed") {
        return Err(not_found(&format!(
            "work order action `{action}` (accept, arrive, fixed)"
        )));
    }
    let b = body(b)?;
    let by = caller.by(&b.by)?;
    scoped_work_order(&s, &caller, id)?;
    let w = tokio::task::block_in_place(|| s.notify.work_action(id, &action, by, &b.note))
        .map_err(|e| {
            let (status, code) = match e {
                WorkActionError::Refused(WorkError::NotFound(_)) => {
                    (StatusCode::NOT_FOUND, "not_found")
                }
                WorkActionError::Refused(WorkError::Invalid(..)) => {
                    (StatusCode::CONFLICT, "refused")
                }
                WorkActionError::NotStored => (StatusCode::SERVICE_UNAVAILABLE, "not_stored"),
            };
            ApiError {
                status,
                code,
                message: e.to_string(),
            }
        })?;
    Ok(Json(wo_view(&w, now_ms())))
}

/// `GET /api/deliveries` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    state: Option<String>,
    limit: Option<usize>,
}

/// Deliveries, newest first (`?state=pending|delivered|failed`).
pub async fn deliveries(
    State(s): S,
    q: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    if let Some(st) = q
        .state
        .as_deref()
        .filter(|s| !matches!(*s, "pending" | "delivered" | "failed" | "superseded"))
    {
        return Err(bad_request(format!(
            "state `{st}`: use pending, delivered or failed"
        )));
    }
    let list = tokio::task::block_in_place(|| {
        s.notify
            .deliveries(q.state.as_deref(), q.limit.unwrap_or(200).min(10_000))
    })
    .map_err(internal)?;
    Ok(Json(json!({"deliveries": list})))
}

/// A delivery's attempts.
pub async fn attempts(State(s): S, Path(id): Path<u64>) -> Result<Json<Value>, ApiError> {
    let list = tokio::task::block_in_place(|| s.notify.attempts(id)).map_err(internal)?;
    Ok(Json(json!({"delivery": id, "attempts": list})))
}

/// `GET /api/kpis` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiQuery {
    /// Window, hours (default 24).
    hours: Option<u64>,
}

/// Answer-time figures over a set of answers.
fn answer_stats(list: &[&Answer]) -> Value {
    let mut secs: Vec<f64> = list
        .iter()
        .map(|a| a.answered_ms.saturating_sub(a.started_ms) as f64 / 1000.0)
        .collect();
    secs.sort_by(f64::total_cmp);
    let n = secs.len();
    let q = |p: f64| (n > 0).then(|| secs[((n - 1) as f64 * p).round() as usize]);
    let within = list.iter().filter(|a| a.in_time()).count();
    json!({
        "answered": n,
        "within_60s": within,
        "share_within_60s": (n > 0).then(|| within as f64 / n as f64),
        "target_share": 0.985,
        "p50_s": q(0.5), "p90_s": q(0.9), "max_s": q(1.0),
    })
}

/// Time to acknowledge, overall and per team, over the last `hours` (default 24):
/// answered alarms, the share answered within 60 s (telecare practice: 98.5 %), and
/// quantiles.
pub async fn kpis(
    State(s): S,
    q: Result<Query<KpiQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    Ok(Json(kpi_view(&s, q.hours.unwrap_or(24))?))
}

/// Answer times over the last `hours` (1 h to 400 days), overall and per team.
pub(super) fn kpi_view(s: &Shared, hours: u64) -> Result<Value, ApiError> {
    let hours = hours.clamp(1, 24 * 400);
    let since = now_ms().saturating_sub(hours * 3_600_000);
    let all = tokio::task::block_in_place(|| s.notify.answers(since)).map_err(internal)?;
    let mut teams: std::collections::BTreeMap<&str, Vec<&Answer>> = Default::default();
    for a in &all {
        teams.entry(a.team.as_str()).or_default().push(a);
    }
    let per_team: serde_json::Map<String, Value> = teams
        .iter()
        .map(|(t, l)| ((*t).to_owned(), answer_stats(l)))
        .collect();
    Ok(json!({
        "hours": hours,
        "overall": answer_stats(&all.iter().collect::<Vec<_>>()),
        "teams": per_team,
    }))
}

/// The routing in force: teams with who is on duty now, and the policies.
pub async fn routing(State(s): S) -> Json<Value> {
    let r = s.notify.routing();
    let now = now_ms();
    let teams: Vec<Value> = r
        .teams
        .iter()
        .map(|t| {
            json!({
                "id": t.id, "role": t.role, "zones": t.zones, "sites": t.sites,
                "on_duty": r.on_duty(t, now).iter().map(|p| &p.id).collect::<Vec<_>>(),
            })
        })
        .collect();
    let policies: Vec<Value> = r
        .policies
        .iter()
        .map(|p| {
            json!({
                "priority": p.priority, "kinds": p.kinds, "renotify": p.renotify,
                "steps": p.steps.iter().map(|st| json!({"after_s": st.after_ms / 1000, "notify": st.roles})).collect::<Vec<_>>(),
                "work_order": p.work_order.as_ref().map(|w| json!({"role": w.role, "grade": w.grade.as_str()})),
            })
        })
        .collect();
    Json(json!({
        "source": s.config.delivery.routing.as_ref().map_or("built-in routing".into(), |p| p.display().to_string()),
        "timezone": r.local.name(),
        "people": r.people.len(),
        "teams": teams,
        "policies": policies,
    }))
}

/// Re-reads the routing file; 400 with every problem when it is invalid.
pub async fn reload(State(s): S) -> Result<Json<Value>, ApiError> {
    let r = tokio::task::block_in_place(|| s.notify.reload())
        .map_err(|e| bad_request(e.to_string()))?;
    Ok(Json(
        json!({"ok": true, "people": r.people.len(), "teams": r.teams.len(), "policies": r.policies.len()}),
    ))
}

/// The delivery stage's lines of `/metrics`.
pub fn render_metrics(m: &NotifyMetrics, out: &mut String) {
    use std::fmt::Write;
    let one: [(&str, &str, &str, &std::sync::atomic::AtomicU64); 10] = [
        (
            "linli_notifications_total",
            "counter",
            "Pages and work order messages to people created.",
            &m.notifications,
        ),
        (
            "linli_events_total",
            "counter",
            "Alarm and work order events published (MQTT, SSE, event webhooks).",
            &m.events,
        ),
        (
            "linli_deliveries_delivered_total",
            "counter",
            "Deliveries with a receipt.",
            &m.delivered,
        ),
        (
            "linli_delivery_retries_total",
            "counter",
            "Delivery attempts that failed and will be retried.",
            &m.retries,
        ),
        (
            "linli_deliveries_failed_total",
            "counter",
            "Deliveries refused for good by the receiver (4xx, SMTP 5xx) or expired.",
            &m.failed,
        ),
        (
            "linli_deliveries_superseded_total",
            "counter",
            "Pages dropped because their alarm was answered or closed first.",
            &m.superseded,
        ),
        (
            "linli_deliveries_pending",
            "gauge",
            "Deliveries queued in the channel workers.",
            &m.pending,
        ),
        (
            "linli_pages_unrouted_total",
            "counter",
            "Pages that found nobody on duty with a contact.",
            &m.unrouted,
        ),
        (
            "linli_work_orders_dispatched_total",
            "counter",
            "Work orders dispatched.",
            &m.work_orders,
        ),
        (
            "linli_delivery_db_errors_total",
            "counter",
            "Delivery commits that failed (retried).",
            &m.db_errors,
        ),
    ];
    for (name, kind, help, v) in one {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            v.load(Relaxed)
        );
    }
    // Team ids are validated (A-Z a-z 0-9 _ . -): safe as label values.
    let answers = m.answers.lock().clone();
    type Figure = fn(u64, u64) -> f64;
    let per_team: [(&str, &str, &str, Figure); 3] = [
        (
            "linli_alarms_answered_total",
            "counter",
            "Paged alarms acknowledged or resolved by a person, by the team first paged.",
            |n, _| n as f64,
        ),
        (
            "linli_alarms_answered_within_60s_total",
            "counter",
            "Of those, answered within 60 s of the first page.",
            |_, w| w as f64,
        ),
        (
            "linli_alarms_answered_within_60s_ratio",
            "gauge",
            "Share answered within 60 s since the gateway started (telecare target 0.985).",
            |n, w| w as f64 / n.max(1) as f64,
        ),
    ];
    for (name, kind, help, f) in per_team {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (team, (n, w)) in &answers {
            let _ = writeln!(out, "{name}{{team=\"{team}\"}} {}", f(*n, *w));
        }
    }
}
