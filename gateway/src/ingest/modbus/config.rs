//! `[modbus]` in the gateway config: the equipment to poll (`[[modbus.device]]`), the
//! RS-485 buses they hang on (`[[modbus.bus]]`), timeouts and backoff.
//!
//! Owns this section's schema, defaults and validation (every problem named by key).
//! Checking profile names against the profiles needs the profiles file, so it happens
//! when the poller is built (`poller::plan`).

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::ConfigIssue;

/// `[modbus]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModbusConfig {
    /// A file of profiles besides the shipped ones (same form as
    /// `gateway/modbus.profiles.toml`).
    pub profiles: Option<PathBuf>,
    /// Every request's timeout, ms. A timeout drops the connection (a late reply would
    /// answer the next request).
    pub timeout_ms: u64,
    /// First reconnect delay after a failure, ms; doubles up to `backoff_max_ms`.
    pub backoff_min_ms: u64,
    /// Longest reconnect delay, ms.
    pub backoff_max_ms: u64,
    /// Unread registers a read may span to join two values into one request.
    pub max_gap: u16,
    /// Polls after a command within which the read-back must show it took.
    pub verify_polls: u32,
    /// Equipment.
    pub device: Vec<ModbusDevice>,
    /// RS-485 buses.
    pub bus: Vec<RtuBus>,
    /// Degrees north, for sunrise and sunset in schedules.
    pub latitude: Option<f64>,
    /// Degrees east.
    pub longitude: Option<f64>,
    /// How often schedules are evaluated, ms.
    pub schedule_tick_ms: u64,
    /// Lamp schedules.
    pub schedule: Vec<ScheduleDef>,
}

/// `[[modbus.schedule]]`: when a set of lamps is on, and dimmed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDef {
    /// Name (commands are audited as `schedule:NAME`).
    pub name: String,
    /// Lamps by device id.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Lamps by zone (every Modbus street light in it).
    #[serde(default)]
    pub zones: Vec<String>,
    /// On at: `"sunset+10m"`, `"18:30"`.
    pub on: String,
    /// Off at: `"sunrise-15m"`, `"06:30"`.
    pub off: String,
    /// Dimming windows.
    #[serde(default)]
    pub dim: Vec<DimDef>,
}

/// `[[modbus.schedule.dim]]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DimDef {
    /// Local window, `"23:00-05:00"`.
    pub window: String,
    /// Level, %.
    pub level: u8,
}

impl Default for ModbusConfig {
    fn default() -> Self {
        ModbusConfig {
            profiles: None,
            timeout_ms: 1000,
            backoff_min_ms: 500,
            backoff_max_ms: 30_000,
            max_gap: 8,
            verify_polls: 3,
            device: Vec::new(),
            bus: Vec::new(),
            latitude: None,
            longitude: None,
            schedule_tick_ms: 30_000,
            schedule: Vec::new(),
        }
    }
}

/// `[[modbus.device]]`: one piece of equipment, registered in the gateway as a device
/// of its profile's kind.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModbusDevice {
    /// Device id (as in the registry, alarms and series).
    pub id: String,
    /// Profile name (`street-light`, `eastron-sdm`, `pump-station`, or one of yours).
    pub profile: String,
    /// Modbus TCP `host:port`. Exactly one of `tcp` and `bus`.
    pub tcp: Option<String>,
    /// Name of the `[[modbus.bus]]` it hangs on.
    pub bus: Option<String>,
    /// Unit (slave) id, 1–247 (TCP gateways may also use 0 or 255).
    #[serde(default = "one")]
    pub unit: u8,
    /// Poll interval, ms.
    #[serde(default = "second")]
    pub poll_ms: u64,
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Asset id (the lamp post, the meter, the pump station).
    pub asset: Option<String>,
}

fn one() -> u8 {
    1
}

fn second() -> u64 {
    1000
}

/// Serial parity.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    /// None (8N1 with `stop_bits = 1`; Modbus says 8N2, many devices use 8N1).
    #[default]
    None,
    /// Even (the Modbus default, 8E1).
    Even,
    /// Odd.
    Odd,
}

/// `[[modbus.bus]]`: a serial line (RS-485) whose units are polled one at a time.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RtuBus {
    /// Name devices refer to.
    pub name: String,
    /// Serial port, e.g. `/dev/ttyUSB0`.
    pub port: PathBuf,
    /// Baud rate.
    #[serde(default = "baud")]
    pub baud: u32,
    /// Parity.
    #[serde(default)]
    pub parity: Parity,
    /// Stop bits, 1 or 2.
    #[serde(default = "stop_bits")]
    pub stop_bits: u8,
}

fn baud() -> u32 {
    9600
}

fn stop_bits() -> u8 {
    1
}

impl ModbusConfig {
    /// Adds every problem with this section to `issues`.
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let mut check = |ok: bool, key: String, message: &str| {
            if !ok {
                issues.push(ConfigIssue {
                    key,
                    message: message.into(),
                });
            }
        };
        check(
            (50..=60_000).contains(&self.timeout_ms),
            "modbus.timeout_ms".into(),
            "must be between 50 and 60000",
        );
        check(
            self.backoff_min_ms >= 10 && self.backoff_min_ms <= self.backoff_max_ms,
            "modbus.backoff_min_ms".into(),
            "must be at least 10 and at most backoff_max_ms",
        );
        check(
            self.backoff_max_ms <= 3_600_000,
            "modbus.backoff_max_ms".into(),
            "must be at most 3600000 (an hour)",
        );
        check(
            self.max_gap <= 64,
            "modbus.max_gap".into(),
            "must be at most 64",
        );
        check(
            (1..=100).contains(&self.verify_polls),
            "modbus.verify_polls".into(),
            "must be between 1 and 100",
        );
        check(
            self.latitude.is_none_or(|l| (-90.0..=90.0).contains(&l)),
            "modbus.latitude".into(),
            "must be between -90 and 90",
        );
        check(
            self.longitude.is_none_or(|l| (-180.0..=180.0).contains(&l)),
            "modbus.longitude".into(),
            "must be between -180 and 180",
        );
        check(
            (100..=3_600_000).contains(&self.schedule_tick_ms),
            "modbus.schedule_tick_ms".into(),
            "must be between 100 and 3600000",
        );
        let mut names = HashSet::new();
        for (i, s) in self.schedule.iter().enumerate() {
            let k = |f: &str| format!("modbus.schedule[{i}].{f}");
            check(
                !s.name.is_empty() && names.insert(s.name.as_str()),
                k("name"),
                "must be set and unique",
            );
            check(
                !s.devices.is_empty() || !s.zones.is_empty(),
                k("devices"),
                "name the lamps: `devices`, `zones` or both",
            );
            for d in &s.devices {
                check(
                    self.device.iter().any(|x| &x.id == d),
                    k("devices"),
                    &format!("`{d}` is no [[modbus.device]]"),
                );
            }
            for (f, text) in [("on", &s.on), ("off", &s.off)] {
                match super::schedule::Moment::parse(text) {
                    Ok(m) => check(
                        matches!(m, super::schedule::Moment::At(_))
                            || (self.latitude.is_some() && self.longitude.is_some()),
                        k(f),
                        "sunrise and sunset need modbus.latitude and modbus.longitude",
                    ),
                    Err(e) => check(false, k(f), &e),
                }
            }
            for (j, d) in s.dim.iter().enumerate() {
                if let Err(e) = crate::rules::localtime::Window::parse(&d.window) {
                    check(false, k(&format!("dim[{j}].window")), &e);
                }
                check(
                    d.level <= 100,
                    k(&format!("dim[{j}].level")),
                    "must be 0-100",
                );
            }
        }
        let mut buses = HashSet::new();
        let mut ports = HashSet::new();
        for (i, b) in self.bus.iter().enumerate() {
            let k = |f: &str| format!("modbus.bus[{i}].{f}");
            check(
                !b.name.is_empty() && buses.insert(b.name.as_str()),
                k("name"),
                "must be set and unique",
            );
            check(
                ports.insert(b.port.as_path()),
                k("port"),
                "another [[modbus.bus]] uses this serial port: put its units under one bus",
            );
            check(
                (300..=1_000_000).contains(&b.baud),
                k("baud"),
                "must be between 300 and 1000000",
            );
            check(
                matches!(b.stop_bits, 1 | 2),
                k("stop_bits"),
                "must be 1 or 2",
            );
        }
        let mut ids = HashSet::new();
        let mut units = HashSet::new();
        let mut endpoints = HashSet::new();
        for (i, d) in self.device.iter().enumerate() {
            let k = |f: &str| format!("modbus.device[{i}].{f}");
            check(
                linli_protocol::topic::is_valid_device_id(&d.id) && ids.insert(d.id.as_str()),
                k("id"),
                "must be a valid device id (letters, digits, - _ .) and unique",
            );
            for (f, v) in [
                ("site", Some(&d.site)),
                ("zone", Some(&d.zone)),
                ("asset", d.asset.as_ref()),
            ] {
                if let Some(v) = v {
                    check(
                        linli_protocol::topic::is_valid_device_id(v),
                        k(f),
                        "must be an id of letters, digits, - _ .",
                    );
                }
            }
            check(
                d.poll_ms >= 100 && d.poll_ms <= 3_600_000,
                k("poll_ms"),
                "must be between 100 and 3600000",
            );
            match (&d.tcp, &d.bus) {
                (Some(addr), None) => {
                    check(
                        addr.rsplit_once(':').is_some_and(|(h, p)| {
                            !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                        }),
                        k("tcp"),
                        "must be host:port, e.g. \"10.1.2.3:502\"",
                    );
                    check(
                        endpoints.insert((addr.as_str(), d.unit)),
                        k("unit"),
                        "another device has the same tcp address and unit id",
                    );
                }
                (None, Some(bus)) => {
                    check(
                        self.bus.iter().any(|b| &b.name == bus),
                        k("bus"),
                        "names no [[modbus.bus]]",
                    );
                    check(
                        (1..=247).contains(&d.unit),
                        k("unit"),
                        "must be 1–247 on a serial bus",
                    );
                    check(
                        units.insert((bus.as_str(), d.unit)),
                        k("unit"),
                        "another device on this bus has the same unit id",
                    );
                }
                _ => check(false, k("tcp"), "set exactly one of `tcp` and `bus`"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_named_by_key() {
        let c: ModbusConfig = toml::from_str(
            r#"
timeout_ms = 5
[[bus]]
name = "b1"
port = "/dev/null"
stop_bits = 3
[[bus]]
name = "b3"
port = "/dev/null"
[[device]]
id = "lamp 1"
profile = "street-light"
tcp = "nohost"
site = "s"
zone = "z"
[[device]]
id = "m1"
profile = "eastron-sdm"
bus = "b2"
unit = 0
site = "s"
zone = "z"
[[device]]
id = "m2"
profile = "eastron-sdm"
site = "s"
zone = "z"
[[device]]
id = "m3"
profile = "eastron-sdm"
tcp = "10.0.0.1:502"
site = "s"
zone = "z"
[[device]]
id = "m4"
profile = "eastron-sdm"
tcp = "10.0.0.1:502"
site = "s"
zone = "z"
"#,
        )
        .expect("parses");
        let mut issues = Vec::new();
        c.validate(&mut issues);
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "modbus.timeout_ms",
                "modbus.bus[0].stop_bits",
                "modbus.bus[1].port",
                "modbus.device[0].id",
                "modbus.device[0].tcp",
                "modbus.device[1].bus",
                "modbus.device[1].unit",
                "modbus.device[2].tcp",
                "modbus.device[4].unit",
            ]
        );
    }
}
