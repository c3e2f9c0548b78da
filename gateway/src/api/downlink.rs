//! `/api/devices/{id}/config`, `/command` and `/downlinks`: settings and commands to
//! firmware devices, and their audit with the device's answers.
//!
//! Owns these routes' request and response shapes; sealing, counters and the audit are
//! [`crate::downlink`]'s.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use linli_protocol::report::{Command, Settings, Threshold};
use serde::Deserialize;
use serde_json::{json, Value};

use super::alarms::body;
use super::session::Caller;
use super::{internal, not_found, ApiError};
use crate::clock::now_ms;
use crate::downlink::{DownlinkError, Order};
use crate::pipeline::Shared;

type S = State<Arc<Shared>>;

/// `POST /api/devices/{id}/config` body: each setting optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    heartbeat_s: Option<u16>,
    report_s: Option<u16>,
    alarm_report_s: Option<u16>,
    threshold: Option<Threshold>,
    #[serde(default)]
    by: String,
}

/// `POST /api/devices/{id}/command` body, e.g. `{"command": {"dim": {"percent": 40}}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    command: Command,
    #[serde(default)]
    by: String,
}

fn send(s: &Shared, id: &str, order: Order, by: &str) -> Result<Json<Value>, ApiError> {
    let device = s
        .registry
        .get(id)
        .map_err(internal)?
        .ok_or_else(|| not_found(&format!("device {id}")))?;
    let since = s.views.lock().get(id).and_then(|v| v.newest_counter);
    let r = tokio::task::block_in_place(|| s.downlinks.send(&device, order, since, by, now_ms()));
    match r {
        Ok(rec) => Ok(Json(json!(rec))),
        Err(e) => {
            let (status, code) = match &e {
                DownlinkError::NotSealed(..) => (StatusCode::CONFLICT, "not_sealed"),
                DownlinkError::NeverHeard(_) => (StatusCode::CONFLICT, "never_heard"),
                DownlinkError::Unfit(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                DownlinkError::Sqlite(_) | DownlinkError::Stopped => {
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

/// `POST /api/devices/{id}/config`: 200 with the audit record (`answer: "pending"` until
/// the device's `command_check` arrives); 400 when a setting does not fit the kind; 409
/// for devices without sealed downlinks.
pub async fn config(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    b: Result<Json<ConfigBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let settings = Settings {
        heartbeat_s: b.heartbeat_s,
        report_s: b.report_s,
        alarm_report_s: b.alarm_report_s,
        threshold: b.threshold,
    };
    send(&s, &id, Order::Config(settings), caller.by(&b.by)?)
}

/// `POST /api/devices/{id}/command`: like `config`, for a command.
pub async fn command(
    State(s): S,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    b: Result<Json<CommandBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    send(&s, &id, Order::Command(b.command), caller.by(&b.by)?)
}

/// `GET /api/devices/{id}/downlinks` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<u32>,
}

/// `GET /api/devices/{id}/downlinks?limit=`: what was sent and answered, newest first.
pub async fn list(
    State(s): S,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = tokio::task::block_in_place(|| {
        s.downlinks
            .list(Some(&id), q.limit.unwrap_or(100).min(10_000), now_ms())
    })
    .map_err(internal)?;
    Ok(Json(json!({ "downlinks": list })))
}
