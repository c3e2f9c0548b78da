//! The dashboard's composed views: residents (list, and one resident's devices, alarms,
//! timeline and series), the street map (configured assets coloured by state), operations
//! (ingest, rejections, export spool, answer times) and the audit log.
//!
//! Owns these JSON shapes; it only reads shared state. Who may call each route is the
//! guard's (`session`); what each caller sees within it is `scope`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::scope::{audit_list, audit_view, sees_alarm, Residents};
use super::session::Caller;
use super::{bad_request, internal, not_found, ApiError, DeviceSummary};
use crate::alarms::db::Filter;
use crate::ingest::Rejection;
use crate::pipeline::Shared;
use crate::registry::{DeviceRecord, SubjectKind};
use crate::supervision::Liveness;

type S = State<Arc<Shared>>;

fn subject_of(d: &DeviceRecord, kind: SubjectKind) -> Option<&str> {
    match &d.profile.subject {
        Some((k, id)) if *k == kind => Some(id),
        _ => None,
    }
}

fn open_alarms(s: &Shared) -> Result<Vec<Value>, ApiError> {
    let f = Filter {
        open_only: true,
        limit: 10_000,
        ..Filter::default()
    };
    let list = tokio::task::block_in_place(|| s.alarms.list(&f)).map_err(internal)?;
    Ok(list.iter().map(super::alarms::view).collect())
}

/// `GET /api/residents`: the residents in the caller's zones.
pub async fn residents(
    State(s): S,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let devices = super::visible_devices(&s, &caller)?;
    let index = Residents::load(&s)?;
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    for a in open_alarms(&s)? {
        if let Some(r) = index.of_alarm(&a) {
            *open.entry(r).or_default() += 1;
        }
    }
    let mut by: BTreeMap<String, (String, String, Vec<String>)> = BTreeMap::new();
    for (d, _) in &devices {
        if let Some(r) = subject_of(d, SubjectKind::Resident) {
            let e = by
                .entry(r.to_owned())
                .or_insert_with(|| (d.profile.site.clone(), d.profile.zone.clone(), Vec::new()));
            e.2.push(d.profile.id.clone());
        }
    }
    audit_list(&s, &caller, "/api/residents", &by.keys().cloned().collect())?;
    let list: Vec<Value> = by
        .into_iter()
        .map(|(id, (site, zone, devices))| {
            json!({"id": id, "site": site, "zone": zone, "devices": devices,
                   "open_alarms": open.get(&id).copied().unwrap_or(0)})
        })
        .collect();
    Ok(Json(json!({ "residents": list })))
}

/// `GET /api/residents/:id`: one resident's devices, alarms, timeline and series. Audited.
pub async fn resident(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let devices: Vec<(Arc<DeviceRecord>, DeviceSummary)> = super::visible_devices(&s, &caller)?
        .into_iter()
        .filter(|(d, _)| subject_of(d, SubjectKind::Resident) == Some(id.as_str()))
        .collect();
    let Some((first, _)) = devices.first() else {
        // Unknown, or outside the caller's zones: the same answer, so ids cannot be probed.
        return Err(not_found(&format!("resident {id}")));
    };
    let (site, zone) = (first.profile.site.clone(), first.profile.zone.clone());
    audit_view(&s, &caller, &id, &format!("GET /api/residents/{id}"))?;
    let index = Residents::load(&s)?;
    let f = Filter {
        limit: 20_000,
        ..Filter::default()
    };
    let all = tokio::task::block_in_place(|| s.alarms.list(&f)).map_err(internal)?;
    let mut alarms = Vec::new();
    let mut timeline: Vec<Value> = Vec::new();
    for a in &all {
        let v = super::alarms::view(a);
        if index.of_alarm(&v).as_deref() != Some(id.as_str()) || !sees_alarm(&caller, &index, &v) {
            continue;
        }
        if alarms.len() < 50 {
            let found = tokio::task::block_in_place(|| s.alarms.get(a.id)).map_err(internal)?;
            for t in found.map(|(_, h)| h).unwrap_or_default() {
                let what = if t.action == "raised" {
                    "alarm"
                } else {
                    "action"
                };
                let by = if t.who == "rules" || t.who == "system" {
                    String::new()
                } else {
                    format!(" by {}", t.who)
                };
                let note = if t.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", t.note)
                };
                timeline.push(json!({"t_ms": t.at_ms, "what": what, "alarm_id": a.id,
                    "text": format!("{} {}{by}{note}", a.kind, t.action)}));
            }
        }
        alarms.push(v);
    }
    {
        let views = s.views.lock();
        for (d, _) in &devices {
            for r in views
                .get(&d.profile.id)
                .map(|v| v.recent.iter())
                .into_iter()
                .flatten()
            {
                if let Some(e) = r.report.event() {
                    timeline.push(json!({"t_ms": r.received_ms, "what": "event",
                        "device": d.profile.id, "text": format!("{} reported by {}", e.as_str(), d.profile.id)}));
                }
            }
        }
    }
    timeline.sort_by_key(|t| std::cmp::Reverse(t["t_ms"].as_u64().unwrap_or(0)));
    timeline.truncate(500);
    let ids: BTreeSet<String> = devices.iter().map(|(d, _)| d.profile.id.clone()).collect();
    let mut series: Vec<(usize, String, String)> = {
        let s2 = s.clone();
        tokio::task::spawn_blocking(move || s2.store.series(None))
            .await
            .map_err(internal)?
            .map_err(internal)?
            .into_iter()
            .filter(|x| ids.contains(&x.device))
            .filter_map(|x| Some((chart_rank(&x.metric)?, x.device, x.metric)))
            .collect()
    };
    series.sort();
    let series: Vec<Value> = series
        .into_iter()
        .map(|(_, device, metric)| json!({"device": device, "metric": metric}))
        .collect();
    Ok(Json(json!({
        "id": id,
        "site": site,
        "zone": zone,
        "devices": devices.into_iter().map(|(_, sum)| sum).collect::<Vec<_>>(),
        "alarms": alarms,
        "timeline": timeline,
        "series": series,
    })))
}

/// Where a metric's chart goes on a resident's page: vital signs first, then activity,
/// then the devices' health; `None` for what says nothing about the resident (uptime,
/// radio, event counters).
fn chart_rank(metric: &str) -> Option<usize> {
    const ORDER: [&str; 14] = [
        "heart_rate_bpm",
        "spo2_pct",
        "respiration_bpm",
        "vitals_quality",
        "bed_occupied",
        "activity",
        "steps",
        "still_s",
        "motion",
        "motion_count",
        "door_open",
        "impact_g",
        "battery_pct",
        "battery_v",
    ];
    ORDER.iter().position(|m| *m == metric)
}

/// The state an asset is drawn in: `alarm` (an open alarm of its own), `unknown` (no
/// device, no device heard yet, a lost device, or alarms explained by a root cause),
/// `late`, or `normal`.
fn asset_state(sums: &[&DeviceSummary], alarmed: bool) -> &'static str {
    if alarmed || sums.iter().any(|d| d.alarm_status == "alarm") {
        return "alarm";
    }
    if sums.is_empty()
        || sums.iter().any(|d| {
            d.last_seen_ms.is_none() || d.liveness == Liveness::Lost || d.alarm_status == "unknown"
        })
    {
        return "unknown";
    }
    if sums.iter().any(|d| d.liveness == Liveness::Late) {
        return "late";
    }
    "normal"
}

/// `GET /api/map`: the configured street assets with their state.
pub async fn map(
    State(s): S,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let devices = super::visible_devices(&s, &caller)?;
    let open = open_alarms(&s)?;
    let mut out = Vec::new();
    for m in &s.config.web.map {
        let mine: Vec<&(Arc<DeviceRecord>, DeviceSummary)> = devices
            .iter()
            .filter(|(d, _)| subject_of(d, SubjectKind::Asset) == Some(m.asset.as_str()))
            .collect();
        let zone = mine
            .first()
            .map(|(d, _)| d.profile.zone.clone())
            .or_else(|| m.zone.clone())
            .unwrap_or_default();
        if !caller.person.sees(&zone, false) {
            continue;
        }
        let alarms: Vec<Value> = open
            .iter()
            .filter(|a| {
                a.get("source").and_then(Value::as_str) == Some(&format!("asset:{}", m.asset))
                    || a.get("subject").and_then(Value::as_str) == Some(m.asset.as_str())
                    || mine.iter().any(|(d, _)| {
                        a.get("device").and_then(Value::as_str) == Some(d.profile.id.as_str())
                    })
            })
            .map(|a| json!({"id": a["id"], "kind": a["kind"], "priority": a["priority"]}))
            .collect();
        let sums: Vec<&DeviceSummary> = mine.iter().map(|(_, s)| s).collect();
        out.push(json!({
            "id": m.asset,
            "label": if m.label.is_empty() { &m.asset } else { &m.label },
            "kind": mine.first().map(|(d, _)| d.profile.kind.as_str()),
            "lat": m.lat,
            "lon": m.lon,
            "zone": zone,
            "site": mine.first().map(|(d, _)| d.profile.site.clone()),
            "state": asset_state(&sums, !alarms.is_empty()),
            "devices": mine.iter().map(|(d, _)| &d.profile.id).collect::<Vec<_>>(),
            "open_alarms": alarms,
        }));
    }
    Ok(Json(json!({ "assets": out })))
}

/// `GET /api/ops`: the gateway's health at a glance.
pub async fn ops(State(s): S) -> Result<Json<Value>, ApiError> {
    let m = &s.metrics;
    let rejected: BTreeMap<&str, u64> = Rejection::ALL
        .iter()
        .zip(m.rejected.iter())
        .map(|(r, n)| (r.as_str(), n.load(Relaxed)))
        .collect();
    let x = &m.export;
    Ok(Json(json!({
        "uptime_s": s.started.elapsed().as_secs(),
        "accepted_total": m.readings_accepted.load(Relaxed),
        "rejected_total": rejected.values().sum::<u64>(),
        "rejected_by_reason": rejected,
        "queue_depth": m.queue_depth.load(Relaxed),
        "connected": m.connected.load(Relaxed),
        "export": {
            "enabled": x.enabled.load(Relaxed) == 1,
            "spool_depth": x.spool_batches.load(Relaxed),
            "spool_bytes": x.spool_bytes.load(Relaxed),
            "stalled": x.stalled.load(Relaxed) == 1,
        },
        "kpis": super::delivery::kpi_view(&s, 24)?,
    })))
}

/// `GET /api/audit` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    target: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/audit`: who looked at and did what, newest first (`?target=resident:R-1`).
pub async fn audit(
    State(s): S,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(200).min(10_000);
    let log = tokio::task::block_in_place(|| s.people.audit_log(q.target.as_deref(), limit))
        .map_err(internal)?;
    Ok(Json(json!({ "audit": log })))
}
