//! Device profiles: named register maps with what each register feeds, which ones take
//! commands and which read-back verifies them. The shipped profiles
//! (`gateway/modbus.profiles.toml`: street-light, eastron-sdm, pump-station) plus any a
//! site adds in its own file of the same form.
//!
//! Parse, validate (every problem named by key), then build. Pure: reading the file is
//! the caller's job. Does not poll (`poller`).

use std::collections::BTreeMap;
use std::sync::Arc;

use linli_protocol::DeviceKind;
use serde::Deserialize;

use super::assemble::{metrics_of, POLLED_KINDS};
use super::registers::{DataType, Order, Register, Table};

/// The profiles that ship with the gateway.
pub const SHIPPED: &str = include_str!("../../../modbus.profiles.toml");

/// One problem in a profiles file, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ProfileIssue {
    /// Key path, e.g. `profile[street-light].register[2].feeds`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// One register of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRegister {
    /// Where and how it is stored.
    pub reg: Register,
    /// Unit, for display.
    pub unit: Option<String>,
    /// The metric of the kind's report it feeds.
    pub feeds: Option<&'static str>,
    /// Commands may write it.
    pub writable: bool,
    /// For a writable register: the register whose read-back shows a command took.
    pub verifies: Option<usize>,
    /// How far the read-back may be from the commanded value.
    pub tolerance: f64,
    /// Its own poll interval (else the device's).
    pub poll_ms: Option<u64>,
}

/// A named register map for one kind of equipment.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Name devices refer to.
    pub name: String,
    /// The device kind (decides the report its polls build).
    pub kind: DeviceKind,
    /// What it is for.
    pub description: String,
    /// Its registers.
    pub registers: Vec<ProfileRegister>,
}

impl Profile {
    /// A register's index by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.registers.iter().position(|r| r.reg.name == name)
    }

    /// The writable register whose read-back feeds `metric`: how a command sets it
    /// (`relay_on` → `relay_command`, `dimming_pct` → `dimming_setpoint`).
    pub fn command_register(&self, metric: &str) -> Option<&str> {
        self.registers
            .iter()
            .find(|r| {
                r.verifies
                    .is_some_and(|v| self.registers[v].feeds == Some(metric))
            })
            .map(|r| r.reg.name.as_str())
    }

    /// The plain register map, in profile order.
    pub fn map(&self) -> Vec<Register> {
        self.registers.iter().map(|r| r.reg.clone()).collect()
    }
}

/// Every profile a gateway knows, by name.
#[derive(Debug, Clone, Default)]
pub struct Profiles(BTreeMap<String, Arc<Profile>>);

impl Profiles {
    /// The shipped profiles plus those in `extra` (the text of a site's file), which may
    /// not reuse a shipped name.
    pub fn build(extra: Option<&str>) -> Result<Profiles, Vec<ProfileIssue>> {
        let mut all = BTreeMap::new();
        let mut issues = Vec::new();
        for (origin, text) in [("shipped", Some(SHIPPED)), ("modbus.profiles", extra)] {
            let Some(text) = text else { continue };
            match parse(text) {
                Ok(ps) => {
                    for p in ps {
                        if all.contains_key(&p.name) {
                            issues.push(ProfileIssue {
                                key: format!("profile[{}]", p.name),
                                message: format!(
                                    "a profile of that name already exists ({origin}); pick another name"
                                ),
                            });
                        } else {
                            all.insert(p.name.clone(), Arc::new(p));
                        }
                    }
                }
                Err(mut e) => issues.append(&mut e),
            }
        }
        if issues.is_empty() {
            Ok(Profiles(all))
        } else {
            Err(issues)
        }
    }

    /// A profile by name.
    pub fn get(&self, name: &str) -> Option<Arc<Profile>> {
        self.0.get(name).cloned()
    }

    /// Every profile name, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    profile: Vec<ProfileDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileDef {
    name: String,
    kind: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    register: Vec<RegisterDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterDef {
    name: String,
    table: String,
    address: u16,
    #[serde(rename = "type")]
    data_type: String,
    order: Option<String>,
    scale: Option<f64>,
    offset: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    unit: Option<String>,
    feeds: Option<String>,
    #[serde(default)]
    writable: bool,
    verifies: Option<String>,
    tolerance: Option<f64>,
    poll_ms: Option<u64>,
}

/// Parses and validates a profiles file.
pub fn parse(text: &str) -> Result<Vec<Profile>, Vec<ProfileIssue>> {
    let file: FileDef = toml::from_str(text).map_err(|e| {
        vec![ProfileIssue {
            key: "(file)".into(),
            message: e.to_string(),
        }]
    })?;
    let mut issues = Vec::new();
    let mut out = Vec::new();
    for (i, def) in file.profile.iter().enumerate() {
        if let Some(p) = build_profile(i, def, &mut issues) {
            out.push(p);
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

fn build_profile(i: usize, def: &ProfileDef, issues: &mut Vec<ProfileIssue>) -> Option<Profile> {
    let at = if def.name.is_empty() {
        format!("profile[{i}]")
    } else {
        format!("profile[{}]", def.name)
    };
    let mut issue = |key: String, message: String| issues.push(ProfileIssue { key, message });
    if def.name.is_empty() {
        issue(format!("{at}.name"), "must not be empty".into());
    }
    let polled: Vec<&str> = POLLED_KINDS.iter().map(|k| k.as_str()).collect();
    let kind = DeviceKind::parse(&def.kind).filter(|k| metrics_of(*k).is_some());
    if kind.is_none() {
        issue(
            format!("{at}.kind"),
            format!(
                "`{}` is not a polled kind; one of {}",
                def.kind,
                polled.join(", ")
            ),
        );
    }
    let needed = kind.and_then(metrics_of).unwrap_or(&[]);
    let mut registers = Vec::new();
    let mut fed: BTreeMap<&str, usize> = BTreeMap::new();
    for (j, r) in def.register.iter().enumerate() {
        let key = format!("{at}.register[{j}]");
        let table = match r.table.as_str() {
            "holding" => Some(Table::Holding),
            "input" => Some(Table::Input),
            "coil" => Some(Table::Coil),
            "discrete" => Some(Table::Discrete),
            other => {
                issue(
                    format!("{key}.table"),
                    format!("`{other}`: one of holding, input, coil, discrete"),
                );
                None
            }
        };
        let data_type = match r.data_type.as_str() {
            "bool" => Some(DataType::Bool),
            "u16" => Some(DataType::U16),
            "i16" => Some(DataType::I16),
            "u32" => Some(DataType::U32),
            "i32" => Some(DataType::I32),
            "f32" => Some(DataType::F32),
            "f64" => Some(DataType::F64),
            other => {
                issue(
                    format!("{key}.type"),
                    format!("`{other}`: one of bool, u16, i16, u32, i32, f32, f64"),
                );
                None
            }
        };
        let order = match r.order.as_deref().unwrap_or("abcd") {
            "abcd" => Some(Order::Abcd),
            "cdab" => Some(Order::Cdab),
            "badc" => Some(Order::Badc),
            "dcba" => Some(Order::Dcba),
            other => {
                issue(
                    format!("{key}.order"),
                    format!("`{other}`: one of abcd, cdab, badc, dcba"),
                );
                None
            }
        };
        if let (Some(t), Some(d)) = (table, data_type) {
            if t.is_bits() != (d == DataType::Bool) {
                issue(
                    format!("{key}.type"),
                    "coils and discrete inputs are `bool`, and only they are".into(),
                );
            }
            if u32::from(r.address) + u32::from(d.width()) > 65_536 {
                issue(format!("{key}.address"), "runs past address 65535".into());
            }
        }
        if r.writable && !matches!(table, Some(Table::Holding | Table::Coil)) {
            issue(
                format!("{key}.writable"),
                "only holding registers and coils can be written".into(),
            );
        }
        if r.verifies.is_some() && !r.writable {
            issue(
                format!("{key}.verifies"),
                "only a writable register is verified".into(),
            );
        }
        let scale = r.scale.unwrap_or(1.0);
        if scale == 0.0 || !scale.is_finite() {
            issue(format!("{key}.scale"), "must be a non-zero number".into());
        }
        for (field, v) in [("offset", r.offset), ("min", r.min), ("max", r.max)] {
            if v.is_some_and(|v| !v.is_finite()) {
                issue(format!("{key}.{field}"), "must be a finite number".into());
            }
        }
        if let (Some(lo), Some(hi)) = (r.min, r.max) {
            if lo > hi {
                issue(format!("{key}.min"), "is above max".into());
            }
        }
        if r.tolerance.is_some_and(|t| t.is_nan() || t < 0.0) {
            issue(format!("{key}.tolerance"), "must be 0 or more".into());
        }
        if r.poll_ms.is_some_and(|p| p < 100) {
            issue(format!("{key}.poll_ms"), "must be at least 100".into());
        }
        if def.register[..j].iter().any(|o| o.name == r.name) || r.name.is_empty() {
            issue(
                format!("{key}.name"),
                format!("`{}` is empty or used twice", r.name),
            );
        }
        let feeds = match &r.feeds {
            None => None,
            Some(m) => match needed.iter().find(|n| **n == m.as_str()) {
                Some(n) => {
                    if fed.insert(n, j).is_some() {
                        issue(format!("{key}.feeds"), format!("`{m}` is fed twice"));
                    }
                    Some(*n)
                }
                None => {
                    issue(
                        format!("{key}.feeds"),
                        format!(
                            "`{m}` is not a metric of {}: one of {}",
                            def.kind,
                            needed.join(", ")
                        ),
                    );
                    None
                }
            },
        };
        let (Some(table), Some(data_type), Some(order)) = (table, data_type, order) else {
            continue;
        };
        registers.push(ProfileRegister {
            reg: Register {
                name: r.name.clone(),
                table,
                address: r.address,
                data_type,
                order,
                scale,
                offset: r.offset.unwrap_or(0.0),
                min: r.min,
                max: r.max,
            },
            unit: r.unit.clone(),
            feeds,
            writable: r.writable,
            verifies: None,
            tolerance: r.tolerance.unwrap_or(0.5),
            poll_ms: r.poll_ms,
        });
    }
    for m in needed {
        if !fed.contains_key(m) {
            issue(
                format!("{at}.register"),
                format!("no register feeds `{m}`, which a {} report needs", def.kind),
            );
        }
    }
    for (j, r) in def.register.iter().enumerate() {
        let Some(v) = &r.verifies else { continue };
        match registers.iter().position(|x| &x.reg.name == v) {
            Some(k) if k != j => {
                if let Some(x) = registers.get_mut(j) {
                    x.verifies = Some(k);
                }
            }
            _ => issue(
                format!("{at}.register[{j}].verifies"),
                format!("`{v}` is not another register of this profile"),
            ),
        }
    }
    Some(Profile {
        name: def.name.clone(),
        kind: kind?,
        description: def.description.clone(),
        registers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_are_valid_and_match_the_eastron_map() {
        let p = Profiles::build(None).expect("shipped profiles are valid");
        assert_eq!(p.names(), ["eastron-sdm", "pump-station", "street-light"]);
        let sdm = p.get("eastron-sdm").expect("eastron");
        let at = |n: &str| {
            let r = &sdm.registers[sdm.index(n).expect(n)].reg;
            (r.table, r.address, r.data_type, r.order)
        };
        let f32_input = |a| (Table::Input, a, DataType::F32, Order::Abcd);
        assert_eq!(at("voltage_v"), f32_input(0x0000));
        assert_eq!(at("current_a"), f32_input(0x0006));
        assert_eq!(at("power_w"), f32_input(0x000C));
        assert_eq!(at("power_factor"), f32_input(0x001E));
        assert_eq!(at("frequency_hz"), f32_input(0x0046));
        assert_eq!(at("energy_import_kwh"), f32_input(0x0048));
        let lamp = p.get("street-light").expect("lamp");
        let set = &lamp.registers[lamp.index("dimming_setpoint").expect("set")];
        assert_eq!(set.verifies, lamp.index("dimming_pct"));
    }

    #[test]
    fn every_problem_is_named_by_key() {
        let text = r#"
[[profile]]
name = "street-light"
kind = "pendant"

[[profile]]
name = "x"
kind = "water_level"
[[profile.register]]
name = "level"
table = "inputs"
address = 0
type = "u16"
[[profile.register]]
name = "level"
table = "input"
address = 1
type = "bool"
feeds = "current_a"
writable = true
verifies = "nothing"
offset = nan
max = inf
"#;
        let issues = Profiles::build(Some(text)).expect_err("invalid");
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        for k in [
            "profile[street-light].kind",
            "profile[x].register[0].table",
            "profile[x].register[1].type",
            "profile[x].register[1].writable",
            "profile[x].register[1].name",
            "profile[x].register[1].feeds",
            "profile[x].register",
            "profile[x].register[1].verifies",
            "profile[x].register[1].offset",
            "profile[x].register[1].max",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
    }
}
