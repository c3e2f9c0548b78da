//! The street-light controller model (profile `street-light`): relay and dimming commands,
//! the actual relay and dimming that follow them, and the lamp's current and power.
//!
//! Register map (zero-based): coil 0 relay command (rw); holding 0 dimming set-point %
//! 0..=100 (rw); discrete 0 relay feedback; input 0 actual dimming %, input 1 current mA,
//! input 2 power 0.1 W, input 3 supply voltage 0.1 V.

use std::time::Duration;

use serde::Serialize;
use tokio_modbus::ExceptionCode;

use super::{noise, to_u16, Actuator, Fault};

pub(super) const COIL_RELAY: u16 = 0;
pub(super) const HOLDING_DIMMING: u16 = 0;

/// A lamp controller's ratings and initial state.
#[derive(Debug, Clone, PartialEq)]
pub struct LampConfig {
    /// Power at 100 % dimming, W.
    pub rated_w: f64,
    /// Supply voltage, V.
    pub supply_v: f64,
    /// Noise on power and supply voltage, ± percent (changes once a second).
    pub noise_pct: f64,
    /// Time from a command to the actual relay / dimming following it.
    pub command_delay: Duration,
    /// Relay on at start.
    pub relay_on: bool,
    /// Dimming at start, % (clamped to 100).
    pub dimming_pct: u16,
    /// Seed of the noise (give each unit its own).
    pub seed: u64,
}

impl Default for LampConfig {
    fn default() -> Self {
        LampConfig {
            rated_w: 100.0,
            supply_v: 230.0,
            noise_pct: 0.5,
            command_delay: Duration::ZERO,
            relay_on: true,
            dimming_pct: 100,
            seed: 0,
        }
    }
}

/// What a lamp controller's registers show.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LampState {
    /// Coil 0: the relay command last written.
    pub relay_command: bool,
    /// Holding 0: the dimming set-point last written, %.
    pub dimming_setpoint: u16,
    /// Discrete 0: relay feedback (closed).
    pub relay_on: bool,
    /// Input 0: actual dimming, % (kept while the relay is off).
    pub dimming_pct: u16,
    /// Input 1 (mA): lamp current, A.
    pub current_a: f64,
    /// Input 2 (0.1 W): lamp power, W.
    pub power_w: f64,
    /// Input 3 (0.1 V): supply voltage, V.
    pub supply_v: f64,
    /// The unit's fault, if any.
    pub fault: Option<Fault>,
}

impl LampState {
    pub(super) fn coil(&self, addr: u16) -> Option<bool> {
        (addr == COIL_RELAY).then_some(self.relay_command)
    }

    pub(super) fn discrete(&self, addr: u16) -> Option<bool> {
        (addr == 0).then_some(self.relay_on)
    }

    pub(super) fn holding(&self, addr: u16) -> Option<u16> {
        (addr == HOLDING_DIMMING).then_some(self.dimming_setpoint)
    }

    pub(super) fn input(&self, addr: u16) -> Option<u16> {
        match addr {
            0 => Some(self.dimming_pct),
            1 => Some(to_u16(self.current_a, 0.001)),
            2 => Some(to_u16(self.power_w, 0.1)),
            3 => Some(to_u16(self.supply_v, 0.1)),
            _ => None,
        }
    }
}

/// A simulated street-light controller. Pure: time comes in through [`Lamp::advance`].
#[derive(Debug, Clone)]
pub struct Lamp {
    cfg: LampConfig,
    relay: Actuator<bool>,
    dimming: Actuator<u16>,
    fault: Option<Fault>,
    now: Duration,
}

impl Lamp {
    /// A healthy lamp in the configured initial state, at time 0.
    pub fn new(cfg: LampConfig) -> Self {
        let dimming = cfg.dimming_pct.min(100);
        Lamp {
            relay: Actuator::new(cfg.relay_on),
            dimming: Actuator::new(dimming),
            fault: None,
            now: Duration::ZERO,
            cfg,
        }
    }

    /// Its fault, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Sets or clears its fault. Clearing `deaf` or `supply_lost` makes the actual state
    /// follow the commands again (after the command delay).
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        if self.frozen() && !frozen_by(fault) {
            self.relay.thaw(self.now);
            self.dimming.thaw(self.now);
        }
        self.fault = fault;
        self.advance(self.now);
    }

    /// Brings it to time `now`: applies commands whose delay has passed.
    pub fn advance(&mut self, now: Duration) {
        self.now = self.now.max(now);
        let (now, delay, frozen) = (self.now, self.cfg.command_delay, self.frozen());
        self.relay.settle(now, delay, frozen);
        self.dimming.settle(now, delay, frozen);
    }

    /// Coil 0 written.
    pub fn command_relay(&mut self, on: bool) {
        self.relay.command(on, self.now);
        self.advance(self.now);
    }

    /// Holding 0 written: IllegalDataValue above 100 %.
    pub fn command_dimming(&mut self, pct: u16) -> Result<(), ExceptionCode> {
        if pct > 100 {
            return Err(ExceptionCode::IllegalDataValue);
        }
        self.dimming.command(pct, self.now);
        self.advance(self.now);
        Ok(())
    }

    /// What its registers show now.
    pub fn state(&self) -> LampState {
        if self.fault == Some(Fault::SupplyLost) {
            return LampState {
                relay_command: false,
                dimming_setpoint: 0,
                relay_on: false,
                dimming_pct: 0,
                current_a: 0.0,
                power_w: 0.0,
                supply_v: 0.0,
                fault: self.fault,
            };
        }
        let c = &self.cfg;
        let jitter = |channel| 1.0 + c.noise_pct / 100.0 * noise(c.seed, channel, self.now);
        let supply_v = c.supply_v * jitter(0);
        let lit = self.relay.actual && self.fault != Some(Fault::Broken);
        let power_w = if lit {
            c.rated_w * f64::from(self.dimming.actual) / 100.0 * jitter(1)
        } else {
            0.0
        };
        LampState {
            relay_command: self.relay.command,
            dimming_setpoint: self.dimming.command,
            relay_on: self.relay.actual,
            dimming_pct: self.dimming.actual,
            current_a: if supply_v > 0.0 {
                power_w / supply_v
            } else {
                0.0
            },
            power_w,
            supply_v,
            fault: self.fault,
        }
    }

    fn frozen(&self) -> bool {
        frozen_by(self.fault)
    }
}

/// Faults under which the actual state does not follow commands.
pub(super) fn frozen_by(fault: Option<Fault>) -> bool {
    matches!(fault, Some(Fault::Deaf | Fault::SupplyLost))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> LampConfig {
        LampConfig {
            noise_pct: 0.0,
            ..LampConfig::default()
        }
    }

    fn inputs(s: &LampState) -> [u16; 4] {
        [0, 1, 2, 3].map(|a| s.input(a).unwrap_or(u16::MAX))
    }

    #[test]
    fn full_power_at_rated_supply() {
        let lamp = Lamp::new(quiet());
        let s = lamp.state();
        assert!(s.relay_on && s.relay_command);
        // 100 W / 230 V = 434.8 mA
        assert_eq!(inputs(&s), [100, 435, 1000, 2300]);
        assert_eq!(s.holding(0), Some(100));
        assert_eq!(s.coil(0), Some(true));
        assert_eq!(s.discrete(0), Some(true));
        assert_eq!((s.input(4), s.holding(1), s.coil(1)), (None, None, None));
    }

    #[test]
    fn dimming_and_relay_commands_apply_at_once() {
        let mut lamp = Lamp::new(quiet());
        lamp.advance(Duration::from_secs(5));
        assert_eq!(lamp.command_dimming(40), Ok(()));
        assert_eq!(inputs(&lamp.state()), [40, 174, 400, 2300]);
        lamp.command_relay(false);
        let s = lamp.state();
        assert!(!s.relay_on);
        assert_eq!(inputs(&s), [40, 0, 0, 2300]);
        assert_eq!(
            lamp.command_dimming(101),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(lamp.state().dimming_setpoint, 40);
    }

    #[test]
    fn commands_wait_for_the_delay() {
        let mut lamp = Lamp::new(LampConfig {
            command_delay: Duration::from_millis(300),
            ..quiet()
        });
        lamp.advance(Duration::from_secs(1));
        lamp.command_relay(false);
        let s = lamp.state();
        assert!(!s.relay_command && s.relay_on);
        lamp.advance(Duration::from_millis(1299));
        assert!(lamp.state().relay_on);
        lamp.advance(Duration::from_millis(1300));
        assert!(!lamp.state().relay_on);
    }

    #[test]
    fn noise_stays_within_one_percent() {
        let mut lamp = Lamp::new(LampConfig {
            seed: 7,
            ..LampConfig::default()
        });
        let mut seen = std::collections::HashSet::new();
        for t in 0..500 {
            lamp.advance(Duration::from_secs(t));
            let s = lamp.state();
            assert!((s.power_w - 100.0).abs() <= 1.0, "{}", s.power_w);
            assert!((s.supply_v - 230.0).abs() <= 2.3, "{}", s.supply_v);
            seen.insert(s.input(2));
        }
        assert!(seen.len() > 3, "power varies");
    }

    #[test]
    fn broken_lamp_draws_nothing_with_relay_on() {
        let mut lamp = Lamp::new(quiet());
        lamp.set_fault(Some(Fault::Broken));
        let s = lamp.state();
        assert!(s.relay_on);
        assert_eq!(inputs(&s), [100, 0, 0, 2300]);
        lamp.set_fault(None);
        assert_eq!(lamp.state().input(2), Some(1000));
    }

    #[test]
    fn deaf_lamp_echoes_commands_but_keeps_burning() {
        let mut lamp = Lamp::new(quiet());
        lamp.set_fault(Some(Fault::Deaf));
        lamp.advance(Duration::from_secs(3));
        assert_eq!(lamp.command_dimming(20), Ok(()));
        lamp.command_relay(false);
        lamp.advance(Duration::from_secs(60));
        let s = lamp.state();
        assert_eq!((s.relay_command, s.dimming_setpoint), (false, 20));
        assert!(s.relay_on);
        assert_eq!(inputs(&s), [100, 435, 1000, 2300]);
        // Healed, it follows its commands.
        lamp.set_fault(None);
        lamp.advance(Duration::from_secs(61));
        let s = lamp.state();
        assert!(!s.relay_on);
        assert_eq!(inputs(&s), [20, 0, 0, 2300]);
    }

    #[test]
    fn supply_lost_reads_all_zero_and_acts_on_return() {
        let mut lamp = Lamp::new(quiet());
        lamp.set_fault(Some(Fault::SupplyLost));
        let s = lamp.state();
        assert_eq!(inputs(&s), [0, 0, 0, 0]);
        assert_eq!(
            (s.coil(0), s.discrete(0), s.holding(0)),
            (Some(false), Some(false), Some(0))
        );
        assert_eq!(lamp.command_dimming(50), Ok(()));
        assert_eq!(lamp.state().input(0), Some(0));
        lamp.set_fault(None);
        assert_eq!(inputs(&lamp.state()), [50, 217, 500, 2300]);
    }
}
