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

/// The session cookie's name when cookies are `Secure`: the `__Host-` prefix makes the
/// browser refuse one set by a sibling host or for a narrower path.
pub const COOKIE: &str = "__Host-linli_session";
/// Its name when `web.secure_cookies = false` (the prefix requires `Secure`).
pub const COOKIE_PLAIN: &str = "linli_session";

/// Password checks run at once at most (each Argon2id check holds about 19 MiB).
const MAX_CHECKS: usize = 4;
static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CHECKS);

fn cookie_name(s: &Shared) -> &'static str {
    if s.config.web.secure_cookies {
        COOKIE
    } else {
        COOKIE_PLAIN
    }
}

/// A name as logs show it: at most 64 characters.
fn short(name: &str) -> String {
    name.chars().take(64).collect()
}

/// The caller of a request that passed the guard.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub person: Person,
    /// Through the machine API token (actions then name their `by` in the body).
    pub via_token: bool,
    /// The session token (None for the API token), for long requests that re-check it.
    pub session: Option<String>,
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

fn cookie_token(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
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
            session: None,
        }));
    }
    let Some(t) = cookie_token(headers, cookie_name(s)) else {
        return Ok(None);
    };
    let p = tokio::task::block_in_place(|| s.people.session(&t, now_ms())).map_err(internal)?;
    Ok(p.map(|person| Caller {
        person,
        via_token: false,
        session: Some(t),
    }))
}

/// Refuses a state-changing request another site's page made the browser send (a form
/// POST, say): browsers mark them `Sec-Fetch-Site: cross-site` or `same-site`.
fn cross_site(req: &Request) -> bool {
    req.method() != Method::GET
        && req.method() != Method::HEAD
        && req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "same-origin" && v != "none")
}

/// The guard in front of every `/api/…` route but `/api/session`.
pub async fn guard(State(s): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/api/") && cross_site(&req) {
        return forbidden(format!(
            "{} {path} came from another site's page; use the dashboard or the API token",
            req.method()
        ))
        .into_response();
    }
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
    if !need.met_by(&caller.person) {
        let p = &caller.person;
        // A failed audit write is logged by the audit itself; the refusal stands.
        let _ = tokio::task::block_in_place(|| {
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
        // The action is done; a failed audit write is logged (error) by the audit itself.
        let _ = tokio::task::block_in_place(|| {
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
    let name = cookie_name(s);
    let c =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Signs in: checks the password (slowed after failures), starts a session, sets the cookie.
pub async fn sign_in(
    State(s): State<Arc<Shared>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    b: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = super::alarms::body(b)?;
    let bad = || ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "bad_credentials",
        message: "wrong name or password".into(),
    };
    // A name no one can have is refused before it costs anything or reaches the logs.
    if crate::people::db::check_name(b.name.trim()).is_err() || b.password.len() > 1024 {
        return Err(bad());
    }
    let name = b.name.trim().to_owned();
    let now = now_ms();
    let keys = throttle::keys(&name, addr.ip());
    let wait = {
        let mut t = s.people.throttle.lock();
        let wait = t.check(&keys, now);
        if wait.is_ok() {
            // Counted now and taken back on success, so parallel guesses cannot all pass.
            t.failed(&keys, now);
        }
        wait
    };
    if let Err(ms) = wait {
        let secs = ms.div_ceil(1000);
        tracing::warn!(name = %name, addr = %addr.ip(), retry_after_s = secs, "sign-in refused: too many failed attempts");
        return Ok(slowed_down(
            secs,
            format!(
                "too many failed sign-ins for this name from this address: try again in {secs} s"
            ),
        ));
    }
    let Ok(_permit) = CHECKS.try_acquire() else {
        s.people.throttle.lock().succeeded(&keys);
        return Ok(slowed_down(
            1,
            "the gateway is checking other sign-ins: try again in a moment".into(),
        ));
    };
    let found = tokio::task::spawn_blocking({
        let s = s.clone();
        let (name, pw) = (name.clone(), b.password.clone());
        move || s.people.check(&name, &pw)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    let Some(person) = found else {
        tracing::warn!(name = %name, addr = %addr.ip(), "sign-in failed: wrong name or password");
        let who = Person {
            name: short(&name),
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
        })
        .map_err(internal)?;
        return Err(bad());
    };
    s.people.throttle.lock().succeeded(&keys);
    let token = tokio::task::block_in_place(|| s.people.start_session(&person.name, now))
        .map_err(internal)?;
    tokio::task::block_in_place(|| {
        s.people
            .audit(&person, "sign_in", "session", &addr.ip().to_string(), now)
    })
    .map_err(internal)?;
    tracing::info!(name = %person.name, role = person.role.as_str(), addr = %addr.ip(), "signed in");
    let max_age = s.config.web.session_max_hours * 3600;
    let mut r = Json(user_json(&person)).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&s, &token, max_age));
    Ok(r)
}

/// 429 with `Retry-After`.
fn slowed_down(secs: u64, message: String) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({
            "error": {"code": "slowed_down", "message": message},
            "retry_after_s": secs,
        })),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
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
    if let Some(t) = cookie_token(&headers, cookie_name(&s)) {
        if let Some(c) = resolve(&s, &headers)? {
            tokio::task::block_in_place(|| {
                s.people
                    .audit(&c.person, "sign_out", "session", "", now_ms())
            })
            .map_err(internal)?;
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
        assert_eq!(cookie_token(&h, COOKIE_PLAIN).as_deref(), Some("abc123"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("linli_sessionx=1"));
        assert_eq!(cookie_token(&h, COOKIE_PLAIN), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  tok "),
        );
        assert_eq!(bearer(&h), Some("tok"));
    }
}
