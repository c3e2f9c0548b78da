//! Turns the values a poll read into the report of the device's kind, so polled
//! equipment flows through the journal, store, rules and alarms exactly like a device
//! that publishes the same report over MQTT.
//!
//! Owns which kinds can be polled and which metrics each kind's report needs; pure. Does
//! not read registers (`poller`) or decode words (`registers`).

use linli_protocol::report::{PowerMeter, PumpStation, StreetLight, WaterLevel};
use linli_protocol::{DeviceKind, Report};

/// A value that does not fit the report's wire field (a register map that promises more
/// than the report can carry, e.g. a 30 A lamp current in a u16 of milliamperes).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{metric} = {value} does not fit the {kind} report")]
pub struct AssembleError {
    /// Metric.
    pub metric: &'static str,
    /// Value.
    pub value: f64,
    /// Device kind.
    pub kind: &'static str,
}

/// The metrics a profile of `kind` must feed, or `None` when the kind is not polled.
pub fn metrics_of(kind: DeviceKind) -> Option<&'static [&'static str]> {
    Some(match kind {
        DeviceKind::StreetLight => &["relay_on", "current_a", "power_w", "dimming_pct"],
        DeviceKind::PowerMeter => &[
            "voltage_v",
            "current_a",
            "power_w",
            "power_factor",
            "frequency_hz",
            "energy_import_kwh",
        ],
        DeviceKind::PumpStation => &["water_level_m", "pump_on", "pump_current_a", "flow_lps"],
        DeviceKind::WaterLevel => &["water_level_m"],
        _ => return None,
    })
}

/// Kinds a Modbus profile may have.
pub const POLLED_KINDS: [DeviceKind; 4] = [
    DeviceKind::StreetLight,
    DeviceKind::PowerMeter,
    DeviceKind::PumpStation,
    DeviceKind::WaterLevel,
];

/// The report of `kind` from `value(metric)` for each of [`metrics_of`]`(kind)`.
pub fn assemble(
    kind: DeviceKind,
    value: impl Fn(&'static str) -> f64,
) -> Result<Report, AssembleError> {
    let field = |metric: &'static str, per_unit: f64, lo: f64, hi: f64| {
        let v = (value(metric) * per_unit).round();
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(AssembleError {
                metric,
                value: value(metric),
                kind: kind.as_str(),
            })
        }
    };
    let u16f = |m, k| field(m, k, 0.0, f64::from(u16::MAX)).map(|v| v as u16);
    let on = |m| value(m) >= 0.5;
    Ok(match kind {
        DeviceKind::StreetLight => Report::StreetLight(StreetLight {
            relay_on: on("relay_on"),
            current_ma: u16f("current_a", 1000.0)?,
            power_dw: u16f("power_w", 10.0)?,
            dimming_pct: field("dimming_pct", 1.0, 0.0, 100.0)? as u8,
        }),
        DeviceKind::PowerMeter => Report::PowerMeter(PowerMeter {
            voltage_dv: u16f("voltage_v", 10.0)?,
            current_ma: field("current_a", 1000.0, 0.0, f64::from(u32::MAX))? as u32,
            power_w: field("power_w", 1.0, f64::from(i32::MIN), f64::from(i32::MAX))? as i32,
            power_factor_milli: field("power_factor", 1000.0, -1000.0, 1000.0)? as i16,
            frequency_chz: u16f("frequency_hz", 100.0)?,
            import_wh: field("energy_import_kwh", 1000.0, 0.0, f64::from(u32::MAX))? as u32,
        }),
        DeviceKind::PumpStation => Report::PumpStation(PumpStation {
            level_mm: u16f("water_level_m", 1000.0)?,
            pump_on: on("pump_on"),
            pump_current_ca: u16f("pump_current_a", 100.0)?,
            flow_dlps: u16f("flow_lps", 10.0)?,
        }),
        DeviceKind::WaterLevel => Report::WaterLevel(WaterLevel {
            level_mm: u16f("water_level_m", 1000.0)?,
        }),
        _ => {
            return Err(AssembleError {
                metric: "",
                value: 0.0,
                kind: kind.as_str(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::signal::metric;

    #[test]
    fn every_polled_kind_round_trips_its_metrics() {
        for kind in POLLED_KINDS {
            let names = metrics_of(kind).expect("polled kind");
            let value = |m: &str| match m {
                "relay_on" | "pump_on" => 1.0,
                "power_factor" => 0.95,
                _ => 12.0,
            };
            let report = assemble(kind, value).expect("fits");
            for m in names {
                assert_eq!(metric(&report, m), Some(value(m)), "{kind:?} {m}");
            }
        }
    }

    #[test]
    fn a_value_the_field_cannot_carry_is_an_error() {
        let e = assemble(DeviceKind::StreetLight, |m| {
            if m == "current_a" {
                70.0
            } else {
                1.0
            }
        })
        .expect_err("70 A is 70 000 mA");
        assert_eq!(e.metric, "current_a");
        assert!(metrics_of(DeviceKind::Pendant).is_none());
    }
}
