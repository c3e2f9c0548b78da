//! Simulated Modbus equipment: street-light controllers, power meters and pump stations
//! that answer Modbus TCP (and RTU) requests the way the real boxes do.
//!
//! Owns the equipment models ([`Lamp`], [`Meter`], [`Pump`]: pure, time is an input),
//! their register maps (zero-based, exactly those of `gateway/modbus.profiles.toml`), the
//! faults a unit can be told to have ([`Fault`]), the request handling with Modbus
//! exceptions ([`Equipment::answer`]), the servers ([`serve_tcp`], [`serve_rtu`]) and a
//! fleet spread over as many TCP listeners as needed ([`Fleet`]).
//!
//! Takes a listener (or a serial port) and a shutdown future; gives handles to change
//! faults and read each unit's actual state while it is being polled. Does not poll
//! anything itself and keeps no history.
//!
//! Request handling, as a real unit behind a Modbus TCP gateway:
//! - unknown unit id: exception 0x0B GatewayTargetDevice on TCP, no reply on RTU;
//! - a table or address the unit does not have: IllegalDataAddress;
//! - quantity 0 or above 125 registers / 2000 bits a read (123 / 1968 a write):
//!   IllegalDataValue; a dimming set-point above 100: IllegalDataValue;
//! - any other function: IllegalFunction;
//! - a [`Fault::Silent`] unit: no reply at all, the connection stays open.

mod equipment;
mod fleet;
mod lamp;
mod meter;
mod pump;
mod server;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use tokio_modbus::ExceptionCode;

pub use equipment::{Answer, Equipment};
pub use fleet::{Control, Device, Fleet, FleetConfig, Listener};
pub use lamp::{Lamp, LampConfig, LampState};
pub use meter::{Meter, MeterConfig, MeterState};
pub use pump::{Pump, PumpConfig, PumpState};
pub use server::{serve_rtu, serve_tcp};

/// Highest unit id a unit can have (1..=247; 0 is broadcast, 248..=255 reserved).
pub const MAX_UNIT: u8 = 247;

/// Errors of the simulator's handles.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unit ids are 1..=247.
    #[error("unit id {0} is outside 1..=247")]
    InvalidUnit(u8),
    /// [`Equipment::insert`] on an id already in use.
    #[error("unit {0} is already simulated here")]
    UnitTaken(u8),
    /// No unit with this id on this [`Equipment`].
    #[error("no simulated unit {0}")]
    NoSuchUnit(u8),
    /// No device with this id in the [`Fleet`].
    #[error("no simulated device {0:?}")]
    NoSuchDevice(String),
    /// A fault name that is not one of [`Fault`]'s.
    #[error("unknown fault {0:?} (expected silent, broken, deaf, supply_lost or none)")]
    UnknownFault(String),
    /// [`FleetConfig::units_per_listener`] outside 1..=247.
    #[error("units per listener must be 1..=247, got {0}")]
    UnitsPerListener(u8),
    /// A fleet on fixed ports would need a port past 65535.
    #[error("{listeners} listeners from port {first} run past port 65535")]
    PortRange {
        /// The first port asked for.
        first: u16,
        /// Listeners needed.
        listeners: usize,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The kinds of equipment simulated, each with its profile in `modbus.profiles.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Street-light controller (profile `street-light`).
    Lamp,
    /// Eastron SDM-style power meter (profile `eastron-sdm`).
    Meter,
    /// Pump / level station (profile `pump-station`).
    Pump,
}

impl Kind {
    /// The name used in ids and JSON: `lamp`, `meter`, `pump`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Lamp => "lamp",
            Kind::Meter => "meter",
            Kind::Pump => "pump",
        }
    }

    /// The gateway's register profile for this kind.
    pub fn profile(self) -> &'static str {
        match self {
            Kind::Lamp => "street-light",
            Kind::Meter => "eastron-sdm",
            Kind::Pump => "pump-station",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fault a unit can be told to have at run time (`None` = healthy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The unit stops answering: no reply at all, the connection stays open.
    Silent,
    /// Lamp: relay feedback follows the relay, but current and power read 0 (dead lamp).
    /// Pump: runs (feedback and current) but moves no water (flow 0, level not falling).
    /// Meter: current and power read 0 and energy stops (open current transformer).
    Broken,
    /// Writes are accepted (normal response) and the command registers read back the
    /// written value, but the actual state (relay / pump feedback, actual dimming, power)
    /// does not change. Once cleared, the actual state follows the commands again.
    Deaf,
    /// Every register reads 0, supply voltage included; writes are accepted and remembered
    /// but act only once supply is back. Pumps stop, meters stop counting.
    SupplyLost,
}

impl Fault {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Silent => "silent",
            Fault::Broken => "broken",
            Fault::Deaf => "deaf",
            Fault::SupplyLost => "supply_lost",
        }
    }

    /// Parses `silent|broken|deaf|supply_lost`, or `none` (no fault) as `None`.
    pub fn parse_optional(s: &str) -> Result<Option<Fault>, Error> {
        match s {
            "none" | "clear" => Ok(None),
            s => s.parse().map(Some),
        }
    }
}

impl FromStr for Fault {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "silent" => Ok(Fault::Silent),
            "broken" => Ok(Fault::Broken),
            "deaf" => Ok(Fault::Deaf),
            "supply_lost" | "supply-lost" => Ok(Fault::SupplyLost),
            other => Err(Error::UnknownFault(other.to_owned())),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One simulated unit of any kind.
#[derive(Debug, Clone)]
pub enum Unit {
    /// A street-light controller.
    Lamp(Lamp),
    /// A power meter.
    Meter(Meter),
    /// A pump station.
    Pump(Pump),
}

impl From<Lamp> for Unit {
    fn from(m: Lamp) -> Self {
        Unit::Lamp(m)
    }
}

impl From<Meter> for Unit {
    fn from(m: Meter) -> Self {
        Unit::Meter(m)
    }
}

impl From<Pump> for Unit {
    fn from(m: Pump) -> Self {
        Unit::Pump(m)
    }
}

impl Unit {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Unit::Lamp(_) => Kind::Lamp,
            Unit::Meter(_) => Kind::Meter,
            Unit::Pump(_) => Kind::Pump,
        }
    }

    /// Its current fault.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            Unit::Lamp(m) => m.fault(),
            Unit::Meter(m) => m.fault(),
            Unit::Pump(m) => m.fault(),
        }
    }

    /// Sets or clears its fault (takes effect at the last time it was advanced to).
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        match self {
            Unit::Lamp(m) => m.set_fault(fault),
            Unit::Meter(m) => m.set_fault(fault),
            Unit::Pump(m) => m.set_fault(fault),
        }
    }

    /// Brings it to time `now` (since its equipment's start; never goes back).
    pub fn advance(&mut self, now: Duration) {
        match self {
            Unit::Lamp(m) => m.advance(now),
            Unit::Meter(m) => m.advance(now),
            Unit::Pump(m) => m.advance(now),
        }
    }

    /// What its registers show now, in engineering units, faults applied.
    pub fn state(&self) -> State {
        match self {
            Unit::Lamp(m) => State::Lamp(m.state()),
            Unit::Meter(m) => State::Meter(m.state()),
            Unit::Pump(m) => State::Pump(m.state()),
        }
    }

    /// A write to a coil (function 05 / 15).
    pub fn write_coil(&mut self, addr: u16, value: bool) -> Result<(), ExceptionCode> {
        match self {
            Unit::Lamp(m) if addr == lamp::COIL_RELAY => {
                m.command_relay(value);
                Ok(())
            }
            Unit::Pump(m) if addr == pump::COIL_PUMP => {
                m.command_pump(value);
                Ok(())
            }
            _ => Err(ExceptionCode::IllegalDataAddress),
        }
    }

    /// A write to a holding register (function 06 / 16).
    pub fn write_holding(&mut self, addr: u16, value: u16) -> Result<(), ExceptionCode> {
        match self {
            Unit::Lamp(m) if addr == lamp::HOLDING_DIMMING => m.command_dimming(value),
            _ => Err(ExceptionCode::IllegalDataAddress),
        }
    }
}

/// What a unit's registers show, in engineering units (`{"kind": "lamp", ...}` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum State {
    /// A street-light controller.
    Lamp(LampState),
    /// A power meter.
    Meter(MeterState),
    /// A pump station.
    Pump(PumpState),
}

impl State {
    /// Coil `addr`, or `None` where the unit has none.
    pub fn coil(&self, addr: u16) -> Option<bool> {
        match self {
            State::Lamp(s) => s.coil(addr),
            State::Meter(_) => None,
            State::Pump(s) => s.coil(addr),
        }
    }

    /// Discrete input `addr`, or `None` where the unit has none.
    pub fn discrete(&self, addr: u16) -> Option<bool> {
        match self {
            State::Lamp(s) => s.discrete(addr),
            State::Meter(_) => None,
            State::Pump(s) => s.discrete(addr),
        }
    }

    /// Holding register `addr`, or `None` where the unit has none.
    pub fn holding(&self, addr: u16) -> Option<u16> {
        match self {
            State::Lamp(s) => s.holding(addr),
            State::Meter(_) | State::Pump(_) => None,
        }
    }

    /// Input register `addr`, or `None` where the unit has none.
    pub fn input(&self, addr: u16) -> Option<u16> {
        match self {
            State::Lamp(s) => s.input(addr),
            State::Meter(s) => s.input(addr),
            State::Pump(s) => s.input(addr),
        }
    }
}

/// A commanded value and the actual value that follows it `delay` after the command,
/// unless frozen (deaf, no supply).
#[derive(Debug, Clone, Copy)]
struct Actuator<T> {
    command: T,
    actual: T,
    /// When the command not yet applied was given.
    since: Option<Duration>,
}

impl<T: Copy + PartialEq> Actuator<T> {
    fn new(value: T) -> Self {
        Actuator {
            command: value,
            actual: value,
            since: None,
        }
    }

    fn command(&mut self, value: T, now: Duration) {
        self.command = value;
        self.since = Some(now);
    }

    /// When the pending command takes effect, if one is pending.
    fn due(&self, delay: Duration) -> Option<Duration> {
        self.since.map(|t| t.saturating_add(delay))
    }

    fn settle(&mut self, now: Duration, delay: Duration, frozen: bool) {
        if frozen {
            return;
        }
        if self.due(delay).is_some_and(|due| due <= now) {
            self.actual = self.command;
            self.since = None;
        }
    }

    /// After a fault that froze it is cleared: follow the command again from `now`.
    fn thaw(&mut self, now: Duration) {
        if self.command != self.actual {
            self.since = Some(now);
        }
    }
}

/// Deterministic noise in [-1, 1] for a seed, a channel and the whole second of `now`
/// (so both words of a float, and repeated reads within a second, agree).
fn noise(seed: u64, channel: u64, now: Duration) -> f64 {
    // splitmix64
    let mut z = seed
        .wrapping_add(channel.wrapping_mul(0xA076_1D64_78BD_642F))
        .wrapping_add(now.as_secs().wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// A value in `scale` units as a u16 register, rounded, clamped to 0..=65535.
fn to_u16(value: f64, scale: f64) -> u16 {
    let v = (value / scale).round();
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= f64::from(u16::MAX) {
        u16::MAX
    } else {
        v as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_bounded_and_deterministic() {
        for s in 0..2000u64 {
            let n = noise(s, 3, Duration::from_secs(s * 7));
            assert!((-1.0..=1.0).contains(&n), "{n}");
            assert_eq!(n, noise(s, 3, Duration::from_millis(s * 7000 + 999)));
        }
        assert_ne!(
            noise(1, 0, Duration::from_secs(5)),
            noise(2, 0, Duration::from_secs(5))
        );
    }

    #[test]
    fn to_u16_rounds_and_clamps() {
        assert_eq!(to_u16(0.4348, 0.001), 435);
        assert_eq!(to_u16(-3.0, 1.0), 0);
        assert_eq!(to_u16(f64::NAN, 1.0), 0);
        assert_eq!(to_u16(1e9, 1.0), u16::MAX);
    }

    #[test]
    fn faults_parse() {
        assert_eq!(Fault::parse_optional("none").ok(), Some(None));
        assert_eq!(
            Fault::parse_optional("supply_lost").ok(),
            Some(Some(Fault::SupplyLost))
        );
        for f in [Fault::Silent, Fault::Broken, Fault::Deaf, Fault::SupplyLost] {
            assert_eq!(f.as_str().parse::<Fault>().ok(), Some(f));
        }
        assert!(matches!(
            "melted".parse::<Fault>(),
            Err(Error::UnknownFault(_))
        ));
    }

    #[test]
    fn actuator_follows_after_delay_unless_frozen() {
        let d = Duration::from_millis(500);
        let mut a = Actuator::new(false);
        a.command(true, Duration::from_secs(1));
        a.settle(Duration::from_millis(1400), d, false);
        assert!(!a.actual);
        a.settle(Duration::from_millis(1500), d, false);
        assert!(a.actual);
        a.command(false, Duration::from_secs(2));
        a.settle(Duration::from_secs(10), d, true);
        assert!(a.actual, "frozen");
        a.thaw(Duration::from_secs(10));
        a.settle(Duration::from_millis(10_400), d, false);
        assert!(a.actual);
        a.settle(Duration::from_millis(10_500), d, false);
        assert!(!a.actual);
    }
}
