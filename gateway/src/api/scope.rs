//! What one caller may see: alarms, devices and events in their zones, and resident data
//! only for roles that care for residents. Every look at a resident's data is written to
//! the audit log here, in one place.
//!
//! Owns the question "is this item about a resident, and is it in the caller's scope";
//! the role table itself is `people::roles`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::session::{forbidden, Caller};
use super::{internal, not_found, ApiError};
use crate::clock::now_ms;
use crate::pipeline::Shared;
use crate::registry::{DeviceRecord, SubjectKind};

/// Which devices belong to which residents, from the registry.
#[derive(Debug, Default)]
pub struct Residents {
    by_device: HashMap<String, String>,
    ids: HashSet<String>,
}

impl Residents {
    /// Indexes the registry's devices.
    pub fn index(devices: &[Arc<DeviceRecord>]) -> Residents {
        let mut r = Residents::default();
        for d in devices {
            if let Some((SubjectKind::Resident, id)) = &d.profile.subject {
                r.by_device.insert(d.profile.id.clone(), id.clone());
                r.ids.insert(id.clone());
            }
        }
        r
    }

    /// Loads the index.
    pub fn load(s: &Shared) -> Result<Residents, ApiError> {
        Ok(Residents::index(&s.registry.all().map_err(internal)?))
    }

    /// The resident an alarm (as JSON: `source`, `subject`, `device`) is about, if any.
    pub fn of_alarm(&self, a: &Value) -> Option<String> {
        let s = |k: &str| a.get(k).and_then(Value::as_str);
        if let Some(r) = s("source").and_then(|x| x.strip_prefix("resident:")) {
            return Some(r.to_owned());
        }
        if let Some(r) = s("device").and_then(|d| self.by_device.get(d)) {
            return Some(r.clone());
        }
        s("subject")
            .filter(|x| self.ids.contains(*x))
            .map(str::to_owned)
    }
}

impl Residents {
    /// The resident device `id` reports about, if any.
    pub fn of_device(&self, id: &str) -> Option<&String> {
        self.by_device.get(id)
    }
}

/// Whether `caller` may see an alarm given as JSON.
pub fn sees_alarm(caller: &Caller, residents: &Residents, a: &Value) -> bool {
    let zone = a.get("zone").and_then(Value::as_str).unwrap_or_default();
    caller.person.sees(zone, residents.of_alarm(a).is_some())
}

/// 503: residents' data is not shown when the look cannot be recorded.
fn not_audited(e: crate::people::PeopleError) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        code: "not_audited",
        message: format!("residents' data is shown only when the look is recorded, and the audit log cannot be written: {e}"),
    }
}

/// Records that `caller` looked at `resident`'s data through `what`; when the record
/// cannot be written the data is not shown (503).
pub fn audit_view(s: &Shared, caller: &Caller, resident: &str, what: &str) -> Result<(), ApiError> {
    tokio::task::block_in_place(|| {
        s.people.audit(
            &caller.person,
            "view",
            &format!("resident:{resident}"),
            what,
            now_ms(),
        )
    })
    .map_err(not_audited)
}

/// Records that `caller` was shown a list naming `residents` through `route`: one record
/// per person and route while the set stays the same, again after ten minutes (a
/// dashboard re-reads its inbox every few seconds).
pub fn audit_list(
    s: &Shared,
    caller: &Caller,
    route: &str,
    residents: &std::collections::BTreeSet<String>,
) -> Result<(), ApiError> {
    if residents.is_empty() {
        return Ok(());
    }
    let listed: Vec<&str> = residents.iter().map(String::as_str).collect();
    let listed = listed.join(",");
    let now = now_ms();
    if !s.people.list_seen(&caller.person.name, route, &listed, now) {
        return Ok(());
    }
    let mut detail: String = listed.chars().take(2_000).collect();
    if detail.len() < listed.len() {
        detail.push('…');
    }
    tokio::task::block_in_place(|| {
        s.people
            .audit(&caller.person, "view_list", route, &detail, now)
    })
    .map_err(not_audited)
}

/// The device `id` if `caller` may see it (404 when unknown, 403 when out of scope); a
/// look at a resident's device is audited with `what`.
pub fn device(
    s: &Shared,
    caller: &Caller,
    id: &str,
    what: &str,
) -> Result<Arc<DeviceRecord>, ApiError> {
    let d = s
        .registry
        .get(id)
        .map_err(internal)?
        .ok_or_else(|| not_found(&format!("device {id}")))?;
    let resident = match &d.profile.subject {
        Some((SubjectKind::Resident, r)) => Some(r.clone()),
        _ => None,
    };
    // Resident data is refused outright to a role that never sees residents; otherwise a
    // device outside their zones does not exist for them (ids cannot be probed).
    if resident.is_some() && !caller.person.role.can().residents {
        return Err(forbidden(format!(
            "{} ({}) may not see device {id}: it reports about a resident",
            caller.person.name,
            caller.person.role.as_str(),
        )));
    }
    if !caller.person.sees_zone(&d.profile.zone) {
        return Err(not_found(&format!("device {id}")));
    }
    if let Some(r) = resident {
        audit_view(s, caller, &r, what)?;
    }
    Ok(d)
}

/// Whether `caller` may see device `d` in a list.
pub fn sees_device(caller: &Caller, d: &DeviceRecord) -> bool {
    let about_resident = matches!(d.profile.subject, Some((SubjectKind::Resident, _)));
    caller.person.sees(&d.profile.zone, about_resident)
}

/// Whether `caller` may see (and act on) `source` as out-of-service or away name it:
/// every registered device it covers must be in their scope, and it must cover one.
pub fn sees_source(s: &Shared, caller: &Caller, source: &str) -> Result<bool, ApiError> {
    let all = s.registry.all().map_err(internal)?;
    let (kind, id) = source.split_once(':').unwrap_or(("device", source));
    let covered: Vec<&Arc<DeviceRecord>> = all
        .iter()
        .filter(|d| {
            let p = &d.profile;
            match kind {
                "device" => p.id == id,
                "zone" => p.zone == id,
                "resident" | "asset" => p
                    .subject
                    .as_ref()
                    .is_some_and(|(k, s)| k.as_str() == kind && s == id),
                _ => false,
            }
        })
        .collect();
    Ok(!covered.is_empty() && covered.iter().all(|d| sees_device(caller, d)))
}
