//! Roles and what they allow: which zones a person sees, whether resident data is theirs
//! to see, and which API routes each role may call. Pure: no I/O, no clock.
//!
//! Does not authenticate anyone (`people::db` and the API's session layer do) and does not
//! decide alarm lifecycles (the alarm desk does).

use serde::{Deserialize, Serialize};

/// What a person does on duty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Answers care alarms in their zones; sees their residents.
    Caregiver,
    /// A caregiver who may also shelve alarms, see street assets and run operations.
    Supervisor,
    /// Facility crew: street assets and work orders in their zones, never resident data.
    Crew,
    /// Everything, including settings, commands and reloads.
    Admin,
}

impl Role {
    /// Every role, in the order the CLI lists them.
    pub const ALL: [Role; 4] = [Role::Caregiver, Role::Supervisor, Role::Crew, Role::Admin];

    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Caregiver => "caregiver",
            Role::Supervisor => "supervisor",
            Role::Crew => "crew",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or typed role name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What the role may do, as the dashboard shows it.
    pub fn can(self) -> Can {
        let (residents, street, ops, shelve, admin) = match self {
            Role::Caregiver => (true, false, false, false, false),
            Role::Supervisor => (true, true, true, true, false),
            Role::Crew => (false, true, false, false, false),
            Role::Admin => (true, true, true, true, true),
        };
        Can {
            residents,
            street,
            ops,
            shelve,
            admin,
        }
    }
}

/// A role's permissions (sent to the dashboard so it shows only what may be used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Can {
    /// Residents' data: their devices, readings, timelines and care alarms.
    pub residents: bool,
    /// Street assets, their map and work orders.
    pub street: bool,
    /// Operations: every device's health, the gateway's health, deliveries, audit.
    pub ops: bool,
    /// Shelving alarms and taking devices out of service.
    pub shelve: bool,
    /// Settings, commands to devices, rule and routing reloads.
    pub admin: bool,
}

/// Someone the gateway knows, as a request acts on their behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    /// Sign-in name (also the name recorded on alarms and in the audit log).
    pub name: String,
    /// Name shown to others.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Zones they work in; `*` is every zone.
    pub zones: Vec<String>,
}

impl Person {
    /// Whether `zone` is one of theirs.
    pub fn sees_zone(&self, zone: &str) -> bool {
        self.zones.iter().any(|z| z == "*" || z == zone)
    }

    /// Whether they may see something in `zone` that is (or is not) about a resident.
    pub fn sees(&self, zone: &str, about_resident: bool) -> bool {
        self.sees_zone(zone) && (!about_resident || self.role.can().residents)
    }
}

/// What a route needs beyond a signed-in caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the route checks each item it returns against the caller's zones.
    Zones,
    /// `Can::residents`.
    Residents,
    /// `Can::street`.
    Street,
    /// `Can::ops`.
    Ops,
    /// `Can::ops` over every zone (`*`): gateway-wide records that name residents and
    /// staff of every zone (deliveries, notes, audit log, routing, rules, Modbus).
    OpsEverywhere,
    /// `Can::shelve`.
    Shelve,
    /// `Can::admin`.
    Admin,
}

impl Need {
    /// Whether `person` meets it.
    pub fn met_by(self, person: &Person) -> bool {
        let c = person.role.can();
        match self {
            Need::Zones => true,
            Need::Residents => c.residents,
            Need::Street => c.street,
            Need::Ops => c.ops,
            Need::OpsEverywhere => c.ops && person.zones.iter().any(|z| z == "*"),
            Need::Shelve => c.shelve,
            Need::Admin => c.admin,
        }
    }

    /// What the refusal says.
    pub fn explain(self) -> &'static str {
        match self {
            Need::Zones => "",
            Need::Residents => "residents' data is for caregivers, supervisors and admins",
            Need::Street => "street assets and work orders are for crews, supervisors and admins",
            Need::Ops => "operations are for supervisors and admins",
            Need::OpsEverywhere => {
                "gateway-wide records are for supervisors and admins of every zone (*)"
            }
            Need::Shelve => "shelving and out-of-service are for supervisors and admins",
            Need::Admin => "settings, commands and reloads are for admins",
        }
    }
}

/// The policy of every `/api/…` route, by method and path: one table, read top to bottom.
/// Routes that return items (alarms, devices, series) also check each item's zone and
/// whether it is about a resident.
pub fn route_need(method: &str, path: &str) -> Need {
    let post = method == "POST";
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match seg.as_slice() {
        ["api", "devices", _, "config" | "command"] if post => Need::Admin,
        ["api", "devices", _, "downlinks"] => Need::Admin,
        ["api", "rules", "reload"] | ["api", "routing", "reload"] => Need::Admin,
        ["api", "modbus", "devices", _, "write"] => Need::Admin,
        ["api", "alarms", _, "shelve" | "unshelve"] | ["api", "out-of-service"] => Need::Shelve,
        ["api", "residents", ..] => Need::Residents,
        ["api", "work-orders", ..] | ["api", "map"] => Need::Street,
        ["api", "kpis"] | ["api", "ops"] => Need::Ops,
        ["api", "deliveries", ..]
        | ["api", "routing"]
        | ["api", "audit"]
        | ["api", "notes"]
        | ["api", "modbus", ..]
        | ["api", "rules"] => Need::OpsEverywhere,
        _ => Need::Zones,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(role: Role, zones: &[&str]) -> Person {
        Person {
            name: "p".into(),
            display_name: "P".into(),
            role,
            zones: zones.iter().map(|z| z.to_string()).collect(),
        }
    }

    #[test]
    fn crew_never_sees_residents_even_in_their_zone() {
        let crew = person(Role::Crew, &["wing-a", "street-1"]);
        assert!(crew.sees("street-1", false));
        assert!(!crew.sees("wing-a", true));
        assert!(!crew.sees("street-2", false));
        let carer = person(Role::Caregiver, &["wing-a"]);
        assert!(carer.sees("wing-a", true));
        assert!(!carer.sees("wing-b", true));
        let admin = person(Role::Admin, &["*"]);
        assert!(admin.sees("anywhere", true));
    }

    #[test]
    fn the_route_table_guards_what_each_role_may_reach() {
        let cases = [
            ("GET", "/api/residents/R-1", Need::Residents),
            ("GET", "/api/residents", Need::Residents),
            ("GET", "/api/work-orders", Need::Street),
            ("POST", "/api/work-orders/3/start", Need::Street),
            ("GET", "/api/map", Need::Street),
            ("POST", "/api/devices/x/command", Need::Admin),
            ("POST", "/api/devices/x/config", Need::Admin),
            ("GET", "/api/devices/x/downlinks", Need::Admin),
            ("POST", "/api/rules/reload", Need::Admin),
            ("POST", "/api/modbus/devices/m/write", Need::Admin),
            ("POST", "/api/alarms/4/shelve", Need::Shelve),
            ("POST", "/api/out-of-service", Need::Shelve),
            ("GET", "/api/audit", Need::OpsEverywhere),
            ("GET", "/api/deliveries/3/attempts", Need::OpsEverywhere),
            ("GET", "/api/modbus/devices", Need::OpsEverywhere),
            ("GET", "/api/kpis", Need::Ops),
            ("GET", "/api/alarms", Need::Zones),
            ("POST", "/api/alarms/4/ack", Need::Zones),
            ("GET", "/api/devices/x/readings", Need::Zones),
            ("GET", "/api/series", Need::Zones),
        ];
        for (m, p, want) in cases {
            assert_eq!(route_need(m, p), want, "{m} {p}");
        }
        let some = |r| person(r, &["wing-a"]);
        let all = |r| person(r, &["*"]);
        assert!(!Need::Residents.met_by(&some(Role::Crew)));
        assert!(Need::Residents.met_by(&some(Role::Caregiver)));
        assert!(!Need::Street.met_by(&some(Role::Caregiver)));
        assert!(!Need::Shelve.met_by(&some(Role::Caregiver)));
        assert!(Need::Shelve.met_by(&some(Role::Supervisor)));
        assert!(!Need::Admin.met_by(&all(Role::Supervisor)));
        assert!(Need::Ops.met_by(&some(Role::Supervisor)));
        assert!(!Need::OpsEverywhere.met_by(&some(Role::Supervisor)));
        assert!(Need::OpsEverywhere.met_by(&all(Role::Supervisor)));
        assert!(!Need::OpsEverywhere.met_by(&all(Role::Caregiver)));
        assert!(Role::ALL
            .iter()
            .all(|r| Need::Admin.met_by(&all(*r)) == (*r == Role::Admin)));
    }

    #[test]
    fn roles_round_trip_by_name() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
