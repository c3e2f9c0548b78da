//! `/api/modbus/...`: polled equipment seen from outside — each device's link state,
//! errors, exceptions by code and its registers' last values; commands (write a register,
//! audited, verified by the next polls) and their audit trail; poll jitter.
//!
//! Owns these routes' JSON shapes; polling and commands are the poller's.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::alarms::body;
use super::session::Caller;
use super::{internal, not_found, ApiError};
use crate::clock::now_ms;
use crate::ingest::modbus::poller::{CommandError, Modbus};
use crate::pipeline::{device_liveness, Shared};

type S = State<Arc<Shared>>;

fn poller(s: &Shared) -> Result<&Arc<Modbus>, ApiError> {
    s.modbus
        .as_ref()
        .ok_or_else(|| not_found("Modbus poller (no [[modbus.device]] in the config)"))
}

fn with_liveness(s: &Shared, v: impl serde::Serialize, id: &str) -> Value {
    let mut j = json!(v);
    let liveness = s.registry.get(id).ok().flatten().map(|d| {
        let views = s.views.lock();
        device_liveness(&s.config.supervision, &views, &d, now_ms())
    });
    j["liveness"] = json!(liveness);
    j
}

/// `GET /api/modbus/devices`.
pub async fn devices(State(s): S) -> Result<Json<Value>, ApiError> {
    let m = poller(&s)?;
    let list: Vec<Value> = m
        .devices()
        .into_iter()
        .map(|d| {
            let id = d.id.clone();
            with_liveness(&s, d, &id)
        })
        .collect();
    Ok(Json(json!({ "devices": list })))
}

/// `GET /api/modbus/devices/{id}`.
pub async fn device(State(s): S, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let d = poller(&s)?
        .device(&id)
        .ok_or_else(|| not_found(&format!("Modbus device {id}")))?;
    Ok(Json(with_liveness(&s, d, &id)))
}

/// `POST /api/modbus/devices/{id}/write` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    register: String,
    value: f64,
    #[serde(default)]
    by: String,
}

/// `POST /api/modbus/devices/{id}/write`: 200 with the audit record once the device took
/// the write (`verify: "pending"` until the read-back shows it); 400 for a bad register
/// or value; 502 when the device did not take it (the record says why).
pub async fn write(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    b: Result<Json<WriteBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let by = caller.by(&b.by)?;
    let m = poller(&s)?;
    match m.command(&id, &b.register, b.value, "api", by).await {
        Ok(r) => Ok(Json(json!(r))),
        Err(e) => {
            let (status, code) = match &e {
                CommandError::UnknownDevice(_) => (StatusCode::NOT_FOUND, "not_found"),
                CommandError::UnknownRegister { .. }
                | CommandError::ReadOnly(_)
                | CommandError::BadValue { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
                CommandError::Write { .. } => (StatusCode::BAD_GATEWAY, "not_written"),
                CommandError::Stopped | CommandError::Audit(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                }
            };
            Err(ApiError {
                status,
                code,
                message: e.to_string(),
            })
        }
    }
}

/// `GET /api/modbus/commands` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsQuery {
    device: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/modbus/commands?device=&limit=`: the audit trail, newest first.
pub async fn commands(
    State(s): S,
    Query(q): Query<CommandsQuery>,
) -> Result<Json<Value>, ApiError> {
    let m = poller(&s)?;
    let list = tokio::task::block_in_place(|| {
        m.commands(q.device.as_deref(), q.limit.unwrap_or(100).min(10_000))
    })
    .map_err(internal)?;
    Ok(Json(json!({ "commands": list })))
}

/// `GET /api/modbus/jitter` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitterQuery {
    #[serde(default)]
    reset: bool,
}

/// `GET /api/modbus/jitter?reset=`: how late polls started, over the recent window
/// (`reset=true` starts a new window, for measuring one run).
pub async fn jitter(State(s): S, Query(q): Query<JitterQuery>) -> Result<Json<Value>, ApiError> {
    let m = poller(&s)?;
    Ok(Json(json!(m.metrics().jitter_summary(q.reset))))
}
