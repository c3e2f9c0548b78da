//! HTTP routes of the time-series store: a series' points (raw or bucketed) as JSON or
//! CSV, the series catalogue, and the latest value of every metric of a device.
//!
//! Owns query-parameter parsing and response shapes; the store answers the queries. A
//! caller sees only the devices in their scope (`scope`); a look at a resident's series
//! is audited.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::session::Caller;
use super::{internal, scope, ApiError};
use crate::clock::now_ms;
use crate::pipeline::Shared;
use crate::store::rollup::Agg;
use crate::store::{Store, StoreError};

/// Most points a raw query returns; ask for buckets (`step`) beyond that.
const MAX_RAW_POINTS: usize = 200_000;
const DAY_MS: i64 = 86_400_000;
/// Latest time a query may name (2^53 ms, far beyond any device clock).
const MAX_TIME_MS: i64 = 1 << 53;

/// `?device=&metric=&from=&to=&step=&agg=`
#[derive(Debug, Deserialize)]
pub struct SeriesQuery {
    device: Option<String>,
    metric: Option<String>,
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    agg: Option<String>,
}

use super::bad_request as bad;

/// Parses a duration: plain milliseconds, or a number with `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let mul = match unit {
        "" | "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// Parses a time: ms since the epoch, `now`, or `now-<duration>`.
pub fn parse_time_ms(s: &str, now: i64) -> Option<i64> {
    if s == "now" {
        return Some(now);
    }
    if let Some(ago) = s.strip_prefix("now-") {
        return parse_duration_ms(ago).map(|d| now - d);
    }
    s.parse().ok()
}

/// A parsed, validated series query.
struct Plan {
    device: String,
    metric: String,
    from: i64,
    to: i64,
    step: Option<(i64, Agg)>,
}

fn plan(q: SeriesQuery) -> Result<Plan, ApiError> {
    let mut errors = Vec::new();
    let now = now_ms() as i64;
    let device = q.device.unwrap_or_default();
    let metric = q.metric.unwrap_or_default();
    if device.is_empty() {
        errors.push("device: required (a device id)".to_owned());
    }
    if metric.is_empty() {
        errors.push("metric: required (GET /api/series/list?device=ID lists them)".to_owned());
    }
    let time = |v: Option<String>, default: i64, key: &str, errors: &mut Vec<String>| match v {
        None => default,
        Some(s) => parse_time_ms(&s, now).unwrap_or_else(|| {
            errors.push(format!(
                "{key}: {s:?} is not ms since the epoch, `now` or `now-24h`"
            ));
            default
        }),
    };
    let to = time(q.to, now + 1, "to", &mut errors);
    let from = time(q.from, to.saturating_sub(DAY_MS), "from", &mut errors);
    for (key, t) in [("from", from), ("to", to)] {
        if !(0..=MAX_TIME_MS).contains(&t) {
            errors.push(format!("{key}: must be between 0 and {MAX_TIME_MS} ms"));
        }
    }
    if from >= to {
        errors.push("from: must be before to".to_owned());
    }
    let agg = match q.agg.as_deref() {
        None => None,
        Some(a) => match Agg::parse(a) {
            Some(a) => Some(a),
            None => {
                errors.push(format!(
                    "agg: {a:?} unknown; use min, max, mean, count, last or sum"
                ));
                None
            }
        },
    };
    let step = match q.step.as_deref() {
        None => {
            if agg.is_some() {
                errors.push("agg: needs a step (e.g. step=1m)".to_owned());
            }
            None
        }
        Some(s) => match parse_duration_ms(s) {
            Some(ms) if ms > 0 && ms <= MAX_TIME_MS => Some((ms, agg.unwrap_or(Agg::Mean))),
            _ => {
                errors.push(format!(
                    "step: {s:?} is not a duration like 60000, 30s, 1m, 1h, 1d"
                ));
                None
            }
        },
    };
    if let Some((ms, _)) = step {
        if to.saturating_sub(from) / ms > MAX_RAW_POINTS as i64 {
            errors.push(format!(
                "step: too fine for the range (more than {MAX_RAW_POINTS} buckets)"
            ));
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors.join("; ")));
    }
    Ok(Plan {
        device,
        metric,
        from,
        to,
        step,
    })
}

fn run(store: &Store, p: &Plan) -> Result<Vec<(i64, f64)>, ApiError> {
    let res = match p.step {
        Some((step, agg)) => store.buckets(&p.device, &p.metric, (p.from, p.to), step, agg),
        None => store.raw_capped(&p.device, &p.metric, (p.from, p.to), MAX_RAW_POINTS),
    };
    match res {
        Ok(points) => Ok(points),
        Err(e @ StoreError::TooManyPoints { .. }) => Err(bad(e.to_string())),
        Err(e @ StoreError::UnknownSeries { .. }) => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: e.to_string(),
        }),
        Err(e) => Err(internal(e)),
    }
}

async fn query(
    s: Arc<Shared>,
    caller: &Caller,
    q: SeriesQuery,
) -> Result<(Plan, Vec<(i64, f64)>), ApiError> {
    let p = plan(q)?;
    scope::device(
        &s,
        caller,
        &p.device,
        &format!("GET /api/series {}", p.metric),
    )?;
    tokio::task::spawn_blocking(move || {
        let points = run(&s.store, &p)?;
        Ok((p, points))
    })
    .await
    .map_err(internal)?
}

/// `GET /api/series`: JSON `{device, metric, from, to, step, agg, points: [[ms, value]]}`.
pub async fn series(
    State(s): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SeriesQuery>,
) -> Result<Response, ApiError> {
    let (p, points) = query(s, &caller, q).await?;
    let (step, agg) = match p.step {
        Some((ms, agg)) => (Some(ms), Some(format!("{agg:?}").to_lowercase())),
        None => (None, None),
    };
    Ok(Json(json!({
        "device": p.device,
        "metric": p.metric,
        "from": p.from,
        "to": p.to,
        "step": step,
        "agg": agg,
        "points": points,
    }))
    .into_response())
}

/// `GET /api/series.csv`: the same query as CSV (`time_ms,value`), as a download.
pub async fn series_csv(
    State(s): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SeriesQuery>,
) -> Result<Response, ApiError> {
    let (p, points) = query(s, &caller, q).await?;
    let mut body = String::with_capacity(points.len() * 24 + 16);
    body.push_str("time_ms,value\n");
    for (t, v) in points {
        let _ = writeln!(body, "{t},{v}");
    }
    let name = format!("{}_{}.csv", p.device, p.metric).replace(['"', '/', '\\'], "_");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `?device=`
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    device: Option<String>,
}

/// `GET /api/series/list`: the series catalogue.
pub async fn list(
    State(s): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    if let Some(d) = &q.device {
        scope::device(&s, &caller, d, "GET /api/series/list")?;
    }
    let all = s.registry.all().map_err(internal)?;
    let visible: std::collections::HashSet<String> = all
        .iter()
        .filter(|d| scope::sees_device(&caller, d))
        .map(|d| d.profile.id.clone())
        .collect();
    let residents = scope::Residents::index(&all);
    let store = s.store.clone();
    let mut list = tokio::task::spawn_blocking(move || store.series(q.device.as_deref()))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    list.retain(|x| visible.contains(&x.device));
    let named = list
        .iter()
        .filter_map(|x| residents.of_device(&x.device).cloned())
        .collect();
    scope::audit_list(&s, &caller, "/api/series/list", &named)?;
    Ok(Json(list).into_response())
}

/// `GET /api/devices/:id/latest`: latest value of every metric of a device.
pub async fn latest(
    State(s): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    scope::device(&s, &caller, &id, &format!("GET /api/devices/{id}/latest"))?;
    let latest = tokio::task::spawn_blocking(move || s.store.latest(&id))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    Ok(Json(latest).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_parse() {
        assert_eq!(parse_duration_ms("1m"), Some(60_000));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("2h"), Some(7_200_000));
        assert_eq!(parse_duration_ms("1w"), None);
        assert_eq!(parse_duration_ms("m"), None);
        assert_eq!(parse_time_ms("now-1h", 10_000_000), Some(6_400_000));
        assert_eq!(parse_time_ms("123", 0), Some(123));
        assert_eq!(parse_time_ms("yesterday", 0), None);
    }

    #[test]
    fn a_bad_query_names_every_bad_key() {
        let q = SeriesQuery {
            device: None,
            metric: Some("m".into()),
            from: Some("x".into()),
            to: None,
            step: Some("1w".into()),
            agg: Some("median".into()),
        };
        let Err(e) = plan(q) else { panic!("accepted") };
        for key in ["device:", "from:", "step:", "agg:"] {
            assert!(e.message.contains(key), "{key} missing in {}", e.message);
        }
    }
}
