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

/// Whether `caller` may see an alarm given as JSON.
pub fn sees_alarm(caller: &Caller, residents: &Residents, a: &Value) -> bool {
    let zone = a.get("zone").and_then(Value::as_str).unwrap_or_default();
    caller.person.sees(zone, residents.of_alarm(a).is_some())
}

/// Records that `caller` looked at `resident`'s data through `what`.
pub fn audit_view(s: &Shared, caller: &Caller, resident: &str, what: &str) {
    tokio::task::block_in_place(|| {
        s.people.audit(
            &caller.person,
            "view",
            &format!("resident:{resident}"),
            what,
            now_ms(),
        )
    });
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
    if !caller.person.sees(&d.profile.zone, resident.is_some()) {
        return Err(forbidden(format!(
            "{} ({}) may not see device {id}: {}",
            caller.person.name,
            caller.person.role.as_str(),
            if resident.is_some() && !caller.person.role.can().residents {
                "it reports about a resident"
            } else {
                "it is outside their zones"
            }
        )));
    }
    if let Some(r) = resident {
        audit_view(s, caller, &r, what);
    }
    Ok(d)
}

/// Whether `caller` may see device `d` in a list.
pub fn sees_device(caller: &Caller, d: &DeviceRecord) -> bool {
    let about_resident = matches!(d.profile.subject, Some((SubjectKind::Resident, _)));
    caller.person.sees(&d.profile.zone, about_resident)
}
