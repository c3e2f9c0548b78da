//! Who is calling: `/api/session` (sign in with name and password, sign out, who am I),
//! the session cookie, the machine API token (`Authorization: Bearer`, from the data
//! directory's `api-token`), and the guard every other `/api/…` route passes through:
//! no caller → 401, a role the route's policy does not allow → 403, and every action
//! (any non-GET request) written to the audit log.
//!
//! Owns HTTP details of authentication; the records are `people::db`'s, the policy
//! `people::roles`', the brake `people::throttle`'s.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{internal, ApiError};
use crate::clock::now_ms;
use crate::people::db::api_person;
use crate::people::{roles::route_need, throttle, Person};
use crate::pipeline::Shared;

/// The session cookie's name.
pub const COOKIE: &str = "linli_session";

/// The caller of a request that passed the guard.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub person: Person,
    /// Through the machine API token (actions then name their `by` in the body).
    pub via_token: bool,
}

impl Caller {
    /// The name an action is recorded under: the signed-in person's, or for the API token
    /// the `by` the request names.
    pub fn by<'a>(&'a self, body_by: &'a str) -> Result<&'a str, ApiError> {
        if !self.via_token {
            return Ok(&self.person.name);
        }
        let by = body_by.trim();
        if by.is_empty() || by.len() > 128 {
            return Err(super::bad_request(
                "`by` (who does this, 1-128 characters) is required with the API token".into(),
            ));
        }
        Ok(by)
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthenticated",
        message: message.into(),
    }
}

/// 403 with why.
pub fn forbidden(message: String) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "forbidden",
        message,
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The caller a request's credentials name, if any is valid.
fn resolve(s: &Shared, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    if let Some(t) = bearer(headers) {
        return Ok(s.people.is_api_token(t).then(|| Caller {
            person: api_person(),
            via_token: true,
        }));
    }
    let Some(t) = cookie_token(headers) else {
        return Ok(None);
    };
    let p = tokio::task::block_in_place(|| s.people.session(&t, now_ms())).map_err(internal)?;
    Ok(p.map(|person| Caller {
        person,
        via_token: false,
    }))
}

/// The guard in front of every `/api/…` route but `/api/session`.
pub async fn guard(State(s): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !path.starts_with("/api/") || path == "/api/session" {
        return next.run(req).await;
    }
    let caller = match resolve(&s, req.headers()) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return unauthenticated(
                "sign in (POST /api/session) or send the API token (Authorization: Bearer, from the data directory's api-token)",
            )
            .into_response()
        }
        Err(e) => return e.into_response(),
    };
    let method = req.method().clone();
    let need = route_need(method.as_str(), &path);
    if !need.met_by(caller.person.role) {
        let p = &caller.person;
        tokio::task::block_in_place(|| {
            s.people
                .audit(p, "denied", &path, method.as_str(), now_ms())
        });
        return forbidden(format!(
            "{} ({}) may not {method} {path}: {}",
            p.name,
            p.role.as_str(),
            need.explain()
        ))
        .into_response();
    }
    req.extensions_mut().insert(caller.clone());
    let res = next.run(req).await;
    if method != Method::GET && method != Method::HEAD {
        let action = path.rsplit('/').next().unwrap_or_default();
        let detail = format!("{method} {path} → {}", res.status().as_u16());
        tokio::task::block_in_place(|| {
            s.people
                .audit(&caller.person, action, &path, &detail, now_ms())
        });
    }
    res
}

/// `POST /api/session` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    name: String,
    password: String,
}

fn user_json(p: &Person) -> serde_json::Value {
    json!({"user": {
        "name": p.name,
        "display_name": p.display_name,
        "role": p.role.as_str(),
        "zones": p.zones,
        "can": p.role.can(),
    }})
}

fn session_cookie(s: &Shared, value: &str, max_age_s: u64) -> HeaderValue {
    let secure = if s.config.web.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let c =
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Signs in: checks the password (slowed after failures), starts a session, sets the cookie.
pub async fn sign_in(
    State(s): State<Arc<Shared>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    b: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = super::alarms::body(b)?;
    let now = now_ms();
    let keys = throttle::keys(&b.name, Some(addr.ip()));
    let wait = s.people.throttle.lock().check(&keys, now);
    if let Err(ms) = wait {
        let secs = ms.div_ceil(1000);
        tracing::warn!(name = %b.name, addr = %addr.ip(), retry_after_s = secs, "sign-in refused: too many failed attempts");
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({
                "error": {"code": "slowed_down", "message": format!("too many failed sign-ins for this name or address: try again in {secs} s")},
                "retry_after_s": secs,
            })),
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Ok(r);
    }
    let found = tokio::task::spawn_blocking({
        let s = s.clone();
        let (name, pw) = (b.name.clone(), b.password.clone());
        move || s.people.check(&name, &pw)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    let Some(person) = found else {
        s.people.throttle.lock().failed(&keys, now);
        tracing::warn!(name = %b.name, addr = %addr.ip(), "sign-in failed: wrong name or password");
        let who = Person {
            name: b.name.chars().take(64).collect(),
            display_name: String::new(),
            role: crate::people::Role::Crew,
            zones: Vec::new(),
        };
        tokio::task::block_in_place(|| {
            s.people.audit(
                &who,
                "sign_in_failed",
                "session",
                &addr.ip().to_string(),
                now,
            )
        });
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "bad_credentials",
            message: "wrong name or password".into(),
        });
    };
    s.people.throttle.lock().succeeded(&keys);
    let token = tokio::task::block_in_place(|| s.people.start_session(&person.name, now))
        .map_err(internal)?;
    tokio::task::block_in_place(|| {
        s.people
            .audit(&person, "sign_in", "session", &addr.ip().to_string(), now)
    });
    tracing::info!(name = %person.name, role = person.role.as_str(), addr = %addr.ip(), "signed in");
    let max_age = s.config.web.session_max_hours * 3600;
    let mut r = Json(user_json(&person)).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&s, &token, max_age));
    Ok(r)
}

/// Who the session belongs to (401 when none).
pub async fn me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Result<Response, ApiError> {
    match resolve(&s, &headers)? {
        Some(c) => Ok(Json(user_json(&c.person)).into_response()),
        None => Err(unauthenticated("not signed in")),
    }
}

/// Signs out: ends the session and clears the cookie.
pub async fn sign_out(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(t) = cookie_token(&headers) {
        if let Some(c) = resolve(&s, &headers)? {
            tokio::task::block_in_place(|| {
                s.people
                    .audit(&c.person, "sign_out", "session", "", now_ms())
            });
        }
        tokio::task::block_in_place(|| s.people.end_session(&t)).map_err(internal)?;
    }
    let mut r = Json(json!({"ok": true})).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&s, "", 0));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; linli_session=abc123; b=2"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("abc123"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("linli_sessionx=1"));
        assert_eq!(cookie_token(&h), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  tok "),
        );
        assert_eq!(bearer(&h), Some("tok"));
    }
}
