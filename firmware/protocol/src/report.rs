//! Payload types of every device kind, and how each maps to named metrics and events.
//!
//! Owns the data a device says; does not own encoding (see [`crate::codec`]) or sealing.
//! Units are fixed-point integers on the wire (the field name says the unit) and SI-ish
//! floats once turned into metrics by [`Report::for_each_metric`]. Append-only: add new
//! variants at the end of each enum, never change an existing one.

use serde::{Deserialize, Serialize};

use crate::topic::UpChannel;

/// What a device is. Decides which reports it may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Fall pendant or wristband (fall, SOS, motion).
    Pendant,
    /// Bed occupancy sensor.
    Bed,
    /// Door contact.
    Door,
    /// PIR motion sensor.
    Motion,
    /// Vital-sign sensor (heart rate, SpO2, respiration).
    Vitals,
    /// Smoke, gas, CO or water-leak detector.
    Hazard,
    /// Home hub that relays local devices.
    HomeHub,
    /// Street-light controller.
    StreetLight,
    /// Manhole cover monitor.
    Manhole,
    /// Water-level gauge (underpasses, drains).
    WaterLevel,
    /// Waste-bin fill sensor.
    WasteBin,
    /// Power meter.
    PowerMeter,
    /// Pump / level station (sumps, underpass drainage).
    PumpStation,
}

impl DeviceKind {
    /// Every kind, in wire order.
    pub const ALL: [DeviceKind; 13] = [
        DeviceKind::Pendant,
        DeviceKind::Bed,
        DeviceKind::Door,
        DeviceKind::Motion,
        DeviceKind::Vitals,
        DeviceKind::Hazard,
        DeviceKind::HomeHub,
        DeviceKind::StreetLight,
        DeviceKind::Manhole,
        DeviceKind::WaterLevel,
        DeviceKind::WasteBin,
        DeviceKind::PowerMeter,
        DeviceKind::PumpStation,
    ];

    /// Stable snake_case name, as used in config, the registry and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Pendant => "pendant",
            DeviceKind::Bed => "bed",
            DeviceKind::Door => "door",
            DeviceKind::Motion => "motion",
            DeviceKind::Vitals => "vitals",
            DeviceKind::Hazard => "hazard",
            DeviceKind::HomeHub => "home_hub",
            DeviceKind::StreetLight => "street_light",
            DeviceKind::Manhole => "manhole",
            DeviceKind::WaterLevel => "water_level",
            DeviceKind::WasteBin => "waste_bin",
            DeviceKind::PowerMeter => "power_meter",
            DeviceKind::PumpStation => "pump_station",
        }
    }

    /// Parses [`DeviceKind::as_str`] back.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One uplink message: what the device measured or saw, and when by its own clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Uplink {
    /// Device time, seconds since the Unix epoch (0 when the device has no clock).
    pub device_time: u32,
    /// The payload.
    pub report: Report,
}

/// Everything a device can report. Variant order is the wire format: append only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// Liveness; every kind sends it.
    Heartbeat(Heartbeat),
    /// Battery state; every battery-powered kind sends it.
    Battery(Battery),
    /// Device status; every kind sends it.
    Status(Status),
    /// Fall pendant / wristband.
    Pendant(Pendant),
    /// Bed occupancy.
    Bed(Bed),
    /// Door contact.
    Door(Door),
    /// PIR motion.
    Motion(Motion),
    /// Vital signs.
    Vitals(Vitals),
    /// Smoke, gas, CO or water detector.
    Hazard(Hazard),
    /// Home hub heartbeat with what it relays.
    HubHeartbeat(HubHeartbeat),
    /// Street-light controller.
    StreetLight(StreetLight),
    /// Manhole cover.
    Manhole(Manhole),
    /// Water-level gauge.
    WaterLevel(WaterLevel),
    /// Waste bin.
    WasteBin(WasteBin),
    /// Power meter.
    PowerMeter(PowerMeter),
    /// The device's Last Will: sealed when it connects (with a counter it reserves) and
    /// published by the broker if the connection drops. Every kind sends it.
    ConnectionLost,
    /// Pump / level station.
    PumpStation(PumpStation),
    /// Whether equipment did what it was commanded (the gateway checks a Modbus
    /// command's effect on the next polls).
    CommandCheck(CommandCheck),
    /// A device's answer to a settings or command frame the gateway sent it.
    Answer(Answer),
}

/// Periodic liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Seconds since boot.
    pub uptime_s: u32,
}

/// Battery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Battery {
    /// Cell voltage in millivolts.
    pub millivolts: u16,
    /// Estimated charge, 0–100 %.
    pub percent: u8,
}

/// Device status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Firmware version major, minor, patch.
    pub firmware: [u8; 3],
    /// Radio signal strength, dBm.
    pub rssi_dbm: i8,
    /// Enclosure opened or device moved from its mount.
    pub tamper: bool,
}

/// Fall pendant / wristband reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pendant {
    /// A confirmed fall: impact, then stillness past the cancel window.
    Fall {
        /// Peak acceleration of the impact, milli-g.
        impact_mg: u16,
        /// Seconds of stillness after the impact.
        still_s: u16,
    },
    /// The wearer cancelled a fall inside the cancel window.
    FallCancelled,
    /// SOS button pressed.
    Sos,
    /// Activity level over the last reporting interval, 0–100.
    Activity {
        /// Activity score, 0–100.
        level: u8,
        /// Steps counted in the interval.
        steps: u16,
    },
    /// An impact above the pendant's threshold, not yet confirmed as a fall: the gateway
    /// confirms it (stillness) or dismisses it (steps, a cancel) by its own rule.
    Impact {
        /// Peak acceleration, milli-g.
        impact_mg: u16,
    },
}

/// Bed occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bed {
    /// Someone is in bed.
    pub occupied: bool,
    /// Raw pressure reading, sensor units.
    pub pressure: u16,
}

/// Door contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Door {
    /// The door is open.
    pub open: bool,
}

/// PIR motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Motion {
    /// Motion seen in the interval.
    pub motion: bool,
    /// Number of triggers in the interval.
    pub count: u16,
}

/// Vital signs with a signal-quality flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vitals {
    /// Heart rate, beats per minute (0 = no estimate).
    pub heart_rate_bpm: u8,
    /// Oxygen saturation, % (0 = no estimate).
    pub spo2_pct: u8,
    /// Respiration rate, breaths per minute (0 = no estimate).
    pub respiration_bpm: u8,
    /// Signal quality, 0 (unusable) – 100.
    pub quality: u8,
}

/// What a hazard detector detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HazardKind {
    /// Smoke.
    Smoke,
    /// Combustible gas.
    Gas,
    /// Carbon monoxide.
    Co,
    /// Water leak.
    Water,
}

/// Smoke / gas / CO / water detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hazard {
    /// What is detected.
    pub hazard: HazardKind,
    /// The detector is in alarm.
    pub alarm: bool,
    /// Raw level (ppm for gas and CO, obscuration ‰ for smoke, 0/1 for water).
    pub level: u16,
}

/// Home hub heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubHeartbeat {
    /// Local devices the hub currently hears.
    pub devices_seen: u16,
    /// Mains power present (false = on battery).
    pub mains: bool,
}

/// Street-light controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreetLight {
    /// Relay commanded/closed.
    pub relay_on: bool,
    /// Lamp current, milliamperes.
    pub current_ma: u16,
    /// Lamp power, decawatt-tenths: 0.1 W.
    pub power_dw: u16,
    /// Dimming level, 0–100 %.
    pub dimming_pct: u8,
}

/// Manhole cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manhole {
    /// Tilt relative to the installed baseline, 0.01°.
    pub tilt_cdeg: i16,
    /// Water level below the cover, millimetres above the well floor.
    pub water_mm: u16,
    /// Gas concentration, ppm.
    pub gas_ppm: u16,
}

/// Water-level gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaterLevel {
    /// Water level above the gauge zero, millimetres.
    pub level_mm: u16,
}

/// Waste bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasteBin {
    /// Fill level, 0–100 %.
    pub fill_pct: u8,
    /// Temperature inside the bin, 0.1 °C.
    pub temperature_dc: i16,
    /// Tilt from upright, degrees.
    pub tilt_deg: u8,
}

/// Power meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerMeter {
    /// Voltage, 0.1 V.
    pub voltage_dv: u16,
    /// Current, milliamperes.
    pub current_ma: u32,
    /// Active power, watts (negative = export).
    pub power_w: i32,
    /// Power factor, 0.001.
    pub power_factor_milli: i16,
    /// Frequency, 0.01 Hz.
    pub frequency_chz: u16,
    /// Imported energy, watt-hours.
    pub import_wh: u32,
}

/// Pump / level station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PumpStation {
    /// Sump level above the sump floor, millimetres.
    pub level_mm: u16,
    /// The pump runs (feedback contact).
    pub pump_on: bool,
    /// Pump motor current, 0.01 A.
    pub pump_current_ca: u16,
    /// Flow, 0.1 l/s.
    pub flow_dlps: u16,
}

/// What a command set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandTarget {
    /// A lamp circuit's relay.
    Relay,
    /// A lamp's dimming level.
    Dimming,
    /// A pump's run command.
    Pump,
    /// A device's settings (`requested` and `observed` carry the config frame's counter).
    Config,
}

impl CommandTarget {
    /// Stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandTarget::Relay => "relay",
            CommandTarget::Dimming => "dimming",
            CommandTarget::Pump => "pump",
            CommandTarget::Config => "config",
        }
    }

    /// The metric a check of this target feeds: 1 = the command was not applied.
    pub const fn fault_metric(self) -> &'static str {
        match self {
            CommandTarget::Relay => "relay_fault",
            CommandTarget::Dimming => "dimming_fault",
            CommandTarget::Pump => "pump_fault",
            CommandTarget::Config => "config_fault",
        }
    }
}

/// A command's outcome, as observed on the equipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandCheck {
    /// What was commanded.
    pub target: CommandTarget,
    /// The commanded value (relay and pump: 0 or 1; dimming: %).
    pub requested: i32,
    /// The value read back.
    pub observed: i32,
    /// The equipment took the command.
    pub applied: bool,
}

/// Discrete events that rules turn into alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Confirmed fall.
    Fall,
    /// Fall cancelled by the wearer.
    FallCancelled,
    /// SOS pressed.
    Sos,
    /// Smoke detector in alarm.
    Smoke,
    /// Gas detector in alarm.
    Gas,
    /// CO detector in alarm.
    Co,
    /// Water-leak detector in alarm.
    WaterLeak,
    /// Device tampered with.
    Tamper,
    /// Impact seen by a pendant, a fall not yet confirmed.
    Impact,
}

impl EventKind {
    /// Stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Fall => "fall",
            EventKind::FallCancelled => "fall_cancelled",
            EventKind::Sos => "sos",
            EventKind::Smoke => "smoke",
            EventKind::Gas => "gas",
            EventKind::Co => "co",
            EventKind::WaterLeak => "water_leak",
            EventKind::Tamper => "tamper",
            EventKind::Impact => "impact",
        }
    }
}

/// Downlink payloads from the gateway to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Downlink {
    /// The frame with this counter is journaled; the device may drop it from its outbox.
    Ack {
        /// The acknowledged uplink frame counter.
        counter: u32,
    },
    /// New settings (`down/config`); the device applies them and sends an [`Answer`]
    /// whose check has target [`CommandTarget::Config`].
    Config {
        /// The newest uplink counter the gateway had accepted from the device when it
        /// sent this. A device refuses orders older than its own boot, so a recording
        /// replayed after a reboot does nothing.
        since: u32,
        /// The settings.
        settings: Settings,
    },
    /// Do something now (`down/cmd`); the device sends an [`Answer`] saying what it
    /// observed afterwards.
    Command {
        /// As for [`Downlink::Config`].
        since: u32,
        /// The command.
        command: Command,
    },
}

/// A device's answer to a settings or command frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The counter of the downlink frame it answers.
    pub counter: u32,
    /// What was asked and what the device observed.
    pub check: CommandCheck,
}

/// Device settings sent by the gateway. `None` keeps the device's current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Heartbeat interval, seconds.
    pub heartbeat_s: Option<u16>,
    /// Telemetry interval in normal times, seconds.
    pub report_s: Option<u16>,
    /// Telemetry interval while an alarm condition lasts, seconds.
    pub alarm_report_s: Option<u16>,
    /// One detection threshold of the device's kind.
    pub threshold: Option<Threshold>,
}

/// A detection threshold; each belongs to the device kinds that detect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// Pendant: impact that can start a fall, mg.
    ImpactMg(u16),
    /// Water-level gauge and manhole: alarm level, mm.
    WaterAlarmMm(u16),
    /// Manhole: tilt from the installed baseline that means "open", 0.01°.
    TiltAlarmCdeg(u16),
    /// Waste bin: fill that means "full", %.
    BinFullPct(u8),
}

/// A command to equipment a device drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Switch a lamp circuit's relay.
    Relay {
        /// Lamp on.
        on: bool,
    },
    /// Set a lamp's dimming level.
    Dim {
        /// Light output, % of full.
        percent: u8,
    },
    /// Run or stop a pump.
    Pump {
        /// Pump runs.
        on: bool,
    },
}

impl Command {
    /// What the command sets and the value it asks for, as a [`CommandCheck`] states it.
    pub const fn target(&self) -> (CommandTarget, i32) {
        match *self {
            Command::Relay { on } => (CommandTarget::Relay, on as i32),
            Command::Dim { percent } => (CommandTarget::Dimming, percent as i32),
            Command::Pump { on } => (CommandTarget::Pump, on as i32),
        }
    }
}

impl Report {
    /// Stable snake_case name of the report type.
    pub const fn name(&self) -> &'static str {
        match self {
            Report::Heartbeat(_) => "heartbeat",
            Report::Battery(_) => "battery",
            Report::Status(_) => "status",
            Report::Pendant(_) => "pendant",
            Report::Bed(_) => "bed",
            Report::Door(_) => "door",
            Report::Motion(_) => "motion",
            Report::Vitals(_) => "vitals",
            Report::Hazard(_) => "hazard",
            Report::HubHeartbeat(_) => "hub_heartbeat",
            Report::StreetLight(_) => "street_light",
            Report::Manhole(_) => "manhole",
            Report::WaterLevel(_) => "water_level",
            Report::WasteBin(_) => "waste_bin",
            Report::PowerMeter(_) => "power_meter",
            Report::ConnectionLost => "connection_lost",
            Report::PumpStation(_) => "pump_station",
            Report::CommandCheck(_) => "command_check",
            Report::Answer(_) => "answer",
        }
    }

    /// The device kind this report belongs to; `None` for reports every kind sends.
    pub const fn kind(&self) -> Option<DeviceKind> {
        Some(match self {
            Report::Heartbeat(_)
            | Report::Battery(_)
            | Report::Status(_)
            | Report::ConnectionLost
            | Report::CommandCheck(_)
            | Report::Answer(_) => return None,
            Report::Pendant(_) => DeviceKind::Pendant,
            Report::Bed(_) => DeviceKind::Bed,
            Report::Door(_) => DeviceKind::Door,
            Report::Motion(_) => DeviceKind::Motion,
            Report::Vitals(_) => DeviceKind::Vitals,
            Report::Hazard(_) => DeviceKind::Hazard,
            Report::HubHeartbeat(_) => DeviceKind::HomeHub,
            Report::StreetLight(_) => DeviceKind::StreetLight,
            Report::Manhole(_) => DeviceKind::Manhole,
            Report::WaterLevel(_) => DeviceKind::WaterLevel,
            Report::WasteBin(_) => DeviceKind::WasteBin,
            Report::PowerMeter(_) => DeviceKind::PowerMeter,
            Report::PumpStation(_) => DeviceKind::PumpStation,
        })
    }

    /// May a device of `kind` send this report?
    pub fn allowed_for(&self, kind: DeviceKind) -> bool {
        self.kind().is_none_or(|k| k == kind)
    }

    /// The channel this report travels on.
    pub const fn channel(&self) -> UpChannel {
        match self {
            Report::Heartbeat(_) | Report::HubHeartbeat(_) => UpChannel::Heartbeat,
            Report::Battery(_) | Report::Status(_) => UpChannel::Status,
            Report::ConnectionLost => UpChannel::Will,
            Report::Pendant(Pendant::Activity { .. }) => UpChannel::Telemetry,
            Report::Pendant(_) => UpChannel::Event,
            Report::Hazard(h) if h.alarm => UpChannel::Event,
            _ => UpChannel::Telemetry,
        }
    }

    /// The event this report carries, if any.
    pub const fn event(&self) -> Option<EventKind> {
        match self {
            Report::Pendant(Pendant::Fall { .. }) => Some(EventKind::Fall),
            Report::Pendant(Pendant::FallCancelled) => Some(EventKind::FallCancelled),
            Report::Pendant(Pendant::Sos) => Some(EventKind::Sos),
            Report::Pendant(Pendant::Impact { .. }) => Some(EventKind::Impact),
            Report::Hazard(Hazard {
                hazard,
                alarm: true,
                ..
            }) => Some(match hazard {
                HazardKind::Smoke => EventKind::Smoke,
                HazardKind::Gas => EventKind::Gas,
                HazardKind::Co => EventKind::Co,
                HazardKind::Water => EventKind::WaterLeak,
            }),
            Report::Status(Status { tamper: true, .. }) => Some(EventKind::Tamper),
            _ => None,
        }
    }

    /// Calls `f(metric, value)` for every numeric measurement in the report, in SI-ish
    /// units (the metric name carries the unit).
    pub fn for_each_metric(&self, f: &mut dyn FnMut(&'static str, f64)) {
        let b = |v: bool| if v { 1.0 } else { 0.0 };
        match *self {
            Report::Heartbeat(h) => f("uptime_s", h.uptime_s.into()),
            Report::Battery(x) => {
                f("battery_v", f64::from(x.millivolts) / 1000.0);
                f("battery_pct", x.percent.into());
            }
            Report::Status(x) => {
                f("rssi_dbm", x.rssi_dbm.into());
                f("tamper", b(x.tamper));
            }
            Report::Pendant(Pendant::Fall {
                impact_mg, still_s, ..
            }) => {
                f("impact_g", f64::from(impact_mg) / 1000.0);
                f("still_s", still_s.into());
            }
            Report::Pendant(Pendant::Impact { impact_mg }) => {
                f("impact_g", f64::from(impact_mg) / 1000.0);
            }
            Report::Pendant(Pendant::Activity { level, steps }) => {
                f("activity", level.into());
                f("steps", steps.into());
            }
            Report::Pendant(Pendant::Sos | Pendant::FallCancelled) | Report::ConnectionLost => {}
            Report::Bed(x) => {
                f("bed_occupied", b(x.occupied));
                f("bed_pressure", x.pressure.into());
            }
            Report::Door(x) => f("door_open", b(x.open)),
            Report::Motion(x) => {
                f("motion", b(x.motion));
                f("motion_count", x.count.into());
            }
            Report::Vitals(x) => {
                if x.heart_rate_bpm > 0 {
                    f("heart_rate_bpm", x.heart_rate_bpm.into());
                }
                if x.spo2_pct > 0 {
                    f("spo2_pct", x.spo2_pct.into());
                }
                if x.respiration_bpm > 0 {
                    f("respiration_bpm", x.respiration_bpm.into());
                }
                f("vitals_quality", x.quality.into());
            }
            Report::Hazard(x) => {
                f("hazard_alarm", b(x.alarm));
                f("hazard_level", x.level.into());
            }
            Report::HubHeartbeat(x) => {
                f("devices_seen", x.devices_seen.into());
                f("mains", b(x.mains));
            }
            Report::StreetLight(x) => {
                f("relay_on", b(x.relay_on));
                f("current_a", f64::from(x.current_ma) / 1000.0);
                f("power_w", f64::from(x.power_dw) / 10.0);
                f("dimming_pct", x.dimming_pct.into());
            }
            Report::Manhole(x) => {
                f("tilt_deg", f64::from(x.tilt_cdeg) / 100.0);
                f("water_m", f64::from(x.water_mm) / 1000.0);
                f("gas_ppm", x.gas_ppm.into());
            }
            Report::WaterLevel(x) => f("water_level_m", f64::from(x.level_mm) / 1000.0),
            Report::WasteBin(x) => {
                f("fill_pct", x.fill_pct.into());
                f("temperature_c", f64::from(x.temperature_dc) / 10.0);
                f("tilt_deg", x.tilt_deg.into());
            }
            Report::PowerMeter(x) => {
                f("voltage_v", f64::from(x.voltage_dv) / 10.0);
                f("current_a", f64::from(x.current_ma) / 1000.0);
                f("power_w", x.power_w.into());
                f("power_factor", f64::from(x.power_factor_milli) / 1000.0);
                f("frequency_hz", f64::from(x.frequency_chz) / 100.0);
                f("energy_import_kwh", f64::from(x.import_wh) / 1000.0);
            }
            Report::PumpStation(x) => {
                f("water_level_m", f64::from(x.level_mm) / 1000.0);
                f("pump_on", b(x.pump_on));
                f("pump_current_a", f64::from(x.pump_current_ca) / 100.0);
                f("flow_lps", f64::from(x.flow_dlps) / 10.0);
            }
            Report::CommandCheck(x) | Report::Answer(Answer { check: x, .. }) => {
                f(x.target.fault_metric(), b(!x.applied))
            }
        }
    }

    /// Battery percentage, when this report carries one.
    pub const fn battery_pct(&self) -> Option<u8> {
        match self {
            Report::Battery(b) => Some(b.percent),
            _ => None,
        }
    }
}
