//! HTTP API (axum) and the web dashboard's files: health, Prometheus metrics, device
//! views, (in `series`) the time-series store's queries, and (in `alarms`) alarms,
//! people's actions on them and rule reloads; (in `delivery`) pages, work orders and
//! answer times; (in `modbus`) polled equipment and commands to it; (in `views`) the
//! dashboard's resident, street-map, operations and audit views. `session` signs people
//! in and guards every `/api/…` route; `scope` limits what each caller sees.
//!
//! Owns routes, JSON shapes and the error envelope
//! `{"error": {"code": "...", "message": "..."}}`. Actions go to the alarm desk, which
//! records them; everything else only reads shared state.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod alarms;
mod delivery;
mod downlink;
mod modbus;
mod scope;
mod series;
pub mod session;
mod views;

use session::Caller;

use crate::clock::now_ms;
use crate::pipeline::{device_liveness, Shared};
use crate::reading::Reading;
use crate::registry::{DeviceRecord, SubjectKind, Trust};
use crate::state::DeviceView;
use crate::supervision::Liveness;

/// An API error with a stable JSON shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: format!("{what} not found"),
    }
}

fn bad_request(message: String) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "bad_request",
        message,
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        message: e.to_string(),
    }
}

/// Builds the router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/api/session",
            post(session::sign_in)
                .get(session::me)
                .delete(session::sign_out),
        )
        .route("/api/residents", get(views::residents))
        .route("/api/residents/:id", get(views::resident))
        .route("/api/map", get(views::map))
        .route("/api/ops", get(views::ops))
        .route("/api/audit", get(views::audit))
        .route("/metrics", get(metrics))
        .route("/api/devices", get(devices))
        .route("/api/devices/:id", get(device))
        .route("/api/devices/:id/readings", get(readings))
        .route("/api/devices/:id/latest", get(series::latest))
        .route("/api/devices/:id/config", post(downlink::config))
        .route("/api/devices/:id/command", post(downlink::command))
        .route("/api/devices/:id/downlinks", get(downlink::list))
        .route("/api/series", get(series::series))
        .route("/api/series.csv", get(series::series_csv))
        .route("/api/series/list", get(series::list))
        .route("/api/alarms", get(alarms::list))
        .route("/api/alarms/:id", get(alarms::one))
        .route("/api/alarms/:id/ack", post(alarms::ack))
        .route("/api/alarms/:id/resolve", post(alarms::resolve))
        .route("/api/alarms/:id/assign", post(alarms::assign))
        .route("/api/alarms/:id/comment", post(alarms::comment))
        .route("/api/alarms/:id/shelve", post(alarms::shelve))
        .route("/api/alarms/:id/unshelve", post(alarms::unshelve))
        .route("/api/out-of-service", post(alarms::out_of_service))
        .route("/api/residents/:id/away", post(alarms::away))
        .route("/api/notes", get(alarms::notes))
        .route("/api/rules", get(alarms::rules))
        .route("/api/rules/reload", post(alarms::reload))
        .route("/api/events", get(delivery::events))
        .route("/api/work-orders", get(delivery::work_orders))
        .route("/api/work-orders/:id", get(delivery::work_order))
        .route("/api/work-orders/:id/:action", post(delivery::work_action))
        .route("/api/deliveries", get(delivery::deliveries))
        .route("/api/deliveries/:id/attempts", get(delivery::attempts))
        .route("/api/kpis", get(delivery::kpis))
        .route("/api/routing", get(delivery::routing))
        .route("/api/routing/reload", post(delivery::reload))
        .route("/api/modbus/devices", get(modbus::devices))
        .route("/api/modbus/devices/:id", get(modbus::device))
        .route("/api/modbus/devices/:id/write", post(modbus::write))
        .route("/api/modbus/commands", get(modbus::commands))
        .route("/api/modbus/jitter", get(modbus::jitter))
        .fallback(web_asset)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            session::guard,
        ))
        .with_state(shared)
}

/// The dashboard's files (anything that is not an API route).
async fn web_asset(uri: Uri) -> Response {
    let path = uri.path();
    let found = (!path.starts_with("/api/"))
        .then(|| crate::web::asset(path))
        .flatten();
    let Some(a) = found else {
        return not_found("route").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, a.content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        a.body,
    )
        .into_response()
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let failing = |reason: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "failing", "reason": reason})),
        )
            .into_response()
    };
    if s.metrics.ingest_up.load(Relaxed) != 1 {
        return failing("ingest stopped (journal failure); see logs".into());
    }
    let down = s.metrics.followers_down();
    if !down.is_empty() {
        return failing(format!(
            "journal follower stopped: {} (readings are still journaled and acked, but not stored or exported; the journal keeps them for a restart); see logs",
            down.join(", ")
        ));
    }
    if s.metrics.export.stalled.load(Relaxed) == 1 {
        return failing(
            "InfluxDB export stopped: its spool could not be written (disk full or failing); fix the disk and restart, the journal keeps the readings".into(),
        );
    }
    Json(json!({"status": "ok"})).into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let mut text = s.metrics.render();
    s.store.stats.render(&mut text);
    alarms::render_metrics(&s.alarms.metrics, &mut text);
    delivery::render_metrics(&s.notify.metrics, &mut text);
    if let Some(m) = &s.modbus {
        m.metrics().render(&mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// A device as listed.
#[derive(Debug, Serialize)]
struct DeviceSummary {
    id: String,
    kind: &'static str,
    site: String,
    zone: String,
    resident: Option<String>,
    asset: Option<String>,
    trust: Trust,
    liveness: Liveness,
    last_seen_ms: Option<u64>,
    battery_pct: Option<u8>,
    firmware: Option<String>,
    /// `alarm` (an open alarm of its own), `unknown` (its alarms are explained by a
    /// root cause, e.g. the cabinet's supply), or `normal`.
    alarm_status: &'static str,
}

fn summary(d: &DeviceRecord, v: Option<&DeviceView>, liveness: Liveness) -> DeviceSummary {
    let (resident, asset) = match &d.profile.subject {
        Some((SubjectKind::Resident, s)) => (Some(s.clone()), None),
        Some((SubjectKind::Asset, s)) => (None, Some(s.clone())),
        None => (None, None),
    };
    DeviceSummary {
        id: d.profile.id.clone(),
        kind: d.profile.kind.as_str(),
        site: d.profile.site.clone(),
        zone: d.profile.zone.clone(),
        resident,
        asset,
        trust: d.profile.trust,
        liveness,
        last_seen_ms: v.and_then(|v| v.last_seen_any_ms),
        battery_pct: v.and_then(|v| v.battery_pct),
        firmware: v.and_then(|v| v.firmware.clone()),
        alarm_status: "normal",
    }
}

/// Every device `caller` may see, with the summary the device list shows.
fn visible_devices(
    s: &Shared,
    caller: &Caller,
) -> Result<Vec<(Arc<DeviceRecord>, DeviceSummary)>, ApiError> {
    let all = s.registry.all().map_err(internal)?;
    let status = s.alarms.device_status();
    let views = s.views.lock();
    let now = now_ms();
    Ok(all
        .into_iter()
        .filter(|d| scope::sees_device(caller, d))
        .map(|d| {
            let l = device_liveness(&s.config.supervision, &views, &d, now);
            let mut sum = summary(&d, views.get(&d.profile.id), l);
            if let Some(st) = status.get(&d.profile.id) {
                sum.alarm_status = st;
            }
            (d, sum)
        })
        .collect())
}

async fn devices(
    State(s): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<DeviceSummary>>, ApiError> {
    let visible = visible_devices(&s, &caller)?;
    let named = visible
        .iter()
        .filter_map(|(_, d)| d.resident.clone())
        .collect();
    scope::audit_list(&s, &caller, "/api/devices", &named)?;
    Ok(Json(visible.into_iter().map(|(_, d)| d).collect()))
}

async fn device(
    State(s): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let d = scope::device(&s, &caller, &id, &format!("GET /api/devices/{id}"))?;
    let status = s.alarms.device_status();
    let views = s.views.lock();
    let v = views.get(&id);
    let l = device_liveness(&s.config.supervision, &views, &d, now_ms());
    let mut sum = summary(&d, v, l);
    if let Some(st) = status.get(&id) {
        sum.alarm_status = st;
    }
    let mut body = serde_json::to_value(sum).map_err(internal)?;
    let empty = DeviceView::default();
    let v = v.unwrap_or(&empty);
    body["heartbeat_s"] = json!(d
        .profile
        .heartbeat_s
        .unwrap_or(s.config.supervision.default_heartbeat_s));
    body["metrics"] = json!(v.metrics);
    body["last_event"] = json!(v
        .last_event
        .map(|(e, t)| json!({"event": e, "received_ms": t})));
    body["accepted_since_start"] = json!(v.accepted);
    body["rejected_since_start"] = json!(v.rejected);
    body["disconnected"] = json!(v.disconnected);
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
struct ReadingsQuery {
    limit: Option<usize>,
}

async fn readings(
    State(s): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<ReadingsQuery>,
) -> Result<Json<Vec<Reading>>, ApiError> {
    scope::device(&s, &caller, &id, &format!("GET /api/devices/{id}/readings"))?;
    let views = s.views.lock();
    let limit = q.limit.unwrap_or(100);
    let out = views
        .get(&id)
        .map(|v| {
            let skip = v.recent.len().saturating_sub(limit);
            v.recent.iter().skip(skip).cloned().collect()
        })
        .unwrap_or_default();
    Ok(Json(out))
}
