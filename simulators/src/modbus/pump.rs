//! The pump / level station model (profile `pump-station`): pump command and feedback,
//! a sump level that rises with the inflow and falls while the pump moves water.
//!
//! Register map (zero-based): coil 0 pump command (rw); discrete 0 pump running; input 0
//! sump level mm, input 1 pump current 0.01 A, input 2 flow 0.1 l/s.

use std::time::Duration;

use serde::Serialize;

use super::lamp::frozen_by;
use super::{noise, to_u16, Actuator, Fault};

pub(super) const COIL_PUMP: u16 = 0;

/// Highest level the level register can show, mm.
const LEVEL_MAX_MM: f64 = u16::MAX as f64;

/// A pump station's hydraulics and initial state.
#[derive(Debug, Clone, PartialEq)]
pub struct PumpConfig {
    /// Inflow into the sump, mm/min of level.
    pub inflow_mm_per_min: f64,
    /// Level drop while the pump moves water, mm/min.
    pub pump_out_mm_per_min: f64,
    /// Current drawn while running, A.
    pub current_a: f64,
    /// Flow while running, l/s.
    pub flow_lps: f64,
    /// Sump level at start, mm.
    pub level_mm: f64,
    /// Pump running at start.
    pub running: bool,
    /// Time from a command to the pump following it.
    pub command_delay: Duration,
    /// Noise on current and flow, ± percent (changes once a second); 0 by default.
    pub noise_pct: f64,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for PumpConfig {
    fn default() -> Self {
        PumpConfig {
            inflow_mm_per_min: 10.0,
            pump_out_mm_per_min: 60.0,
            current_a: 8.5,
            flow_lps: 25.0,
            level_mm: 500.0,
            running: false,
            command_delay: Duration::ZERO,
            noise_pct: 0.0,
            seed: 0,
        }
    }
}

/// What a pump station's registers show.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PumpState {
    /// Coil 0: the pump command last written.
    pub pump_command: bool,
    /// Discrete 0: pump running feedback.
    pub running: bool,
    /// Input 0 (mm): sump level, mm.
    pub level_mm: f64,
    /// Input 1 (0.01 A): pump current, A.
    pub current_a: f64,
    /// Input 2 (0.1 l/s): flow, l/s.
    pub flow_lps: f64,
    /// The unit's fault, if any.
    pub fault: Option<Fault>,
}

impl PumpState {
    pub(super) fn coil(&self, addr: u16) -> Option<bool> {
        (addr == COIL_PUMP).then_some(self.pump_command)
    }

    pub(super) fn discrete(&self, addr: u16) -> Option<bool> {
        (addr == 0).then_some(self.running)
    }

    pub(super) fn input(&self, addr: u16) -> Option<u16> {
        match addr {
            0 => Some(to_u16(self.level_mm, 1.0)),
            1 => Some(to_u16(self.current_a, 0.01)),
            2 => Some(to_u16(self.flow_lps, 0.1)),
            _ => None,
        }
    }
}

/// A simulated pump station. Pure: time comes in through [`Pump::advance`].
#[derive(Debug, Clone)]
pub struct Pump {
    cfg: PumpConfig,
    pump: Actuator<bool>,
    level_mm: f64,
    fault: Option<Fault>,
    now: Duration,
}

impl Pump {
    /// A healthy station in the configured initial state, at time 0.
    pub fn new(cfg: PumpConfig) -> Self {
        Pump {
            pump: Actuator::new(cfg.running),
            level_mm: cfg.level_mm.clamp(0.0, LEVEL_MAX_MM),
            fault: None,
            now: Duration::ZERO,
            cfg,
        }
    }

    /// Its fault, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Sets or clears its fault. Clearing `deaf` or `supply_lost` makes the pump follow
    /// its command again (after the command delay).
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        if frozen_by(self.fault) && !frozen_by(fault) {
            self.pump.thaw(self.now);
        }
        self.fault = fault;
        self.advance(self.now);
    }

    /// Coil 0 written.
    pub fn command_pump(&mut self, on: bool) {
        self.pump.command(on, self.now);
        self.advance(self.now);
    }

    /// Brings it to time `now`: the level moves, a pending command takes effect when due.
    pub fn advance(&mut self, now: Duration) {
        let now = self.now.max(now);
        let (delay, frozen) = (self.cfg.command_delay, frozen_by(self.fault));
        if let Some(due) = self.pump.due(delay).filter(|&due| due <= now && !frozen) {
            self.flow_until(due.max(self.now));
            self.pump.settle(due, delay, frozen);
        }
        self.flow_until(now);
    }

    /// What its registers show now.
    pub fn state(&self) -> PumpState {
        if self.fault == Some(Fault::SupplyLost) {
            return PumpState {
                pump_command: false,
                running: false,
                level_mm: 0.0,
                current_a: 0.0,
                flow_lps: 0.0,
                fault: self.fault,
            };
        }
        let c = &self.cfg;
        let jitter = |channel| 1.0 + c.noise_pct / 100.0 * noise(c.seed, channel, self.now);
        let running = self.pump.actual;
        PumpState {
            pump_command: self.pump.command,
            running,
            level_mm: self.level_mm,
            current_a: if running {
                c.current_a * jitter(0)
            } else {
                0.0
            },
            flow_lps: if self.pumping() {
                c.flow_lps * jitter(1)
            } else {
                0.0
            },
            fault: self.fault,
        }
    }

    /// Water is moved: running, with supply, not broken.
    fn pumping(&self) -> bool {
        self.pump.actual && !matches!(self.fault, Some(Fault::Broken | Fault::SupplyLost))
    }

    /// Integrates the level from `self.now` to `until` in the current state.
    fn flow_until(&mut self, until: Duration) {
        let minutes = until.saturating_sub(self.now).as_secs_f64() / 60.0;
        let out = if self.pumping() {
            self.cfg.pump_out_mm_per_min
        } else {
            0.0
        };
        let level = self.level_mm + (self.cfg.inflow_mm_per_min - out) * minutes;
        self.level_mm = level.clamp(0.0, LEVEL_MAX_MM);
        self.now = self.now.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(s: &PumpState) -> [u16; 3] {
        [0, 1, 2].map(|a| s.input(a).unwrap_or(u16::MAX))
    }

    #[test]
    fn level_rises_with_inflow_and_falls_while_pumping() {
        let mut p = Pump::new(PumpConfig::default());
        p.advance(Duration::from_secs(600));
        let s = p.state();
        assert!(!s.running);
        assert_eq!(inputs(&s), [600, 0, 0]);
        p.command_pump(true);
        let s = p.state();
        assert!(s.running && s.pump_command);
        assert_eq!(inputs(&s), [600, 850, 250]);
        // Net -50 mm/min.
        p.advance(Duration::from_secs(600 + 360));
        assert_eq!(p.state().input(0), Some(300));
        // Floor at 0.
        p.advance(Duration::from_secs(3600));
        assert_eq!(p.state().input(0), Some(0));
        assert_eq!(
            (p.state().coil(0), p.state().discrete(0)),
            (Some(true), Some(true))
        );
        assert_eq!((p.state().input(3), p.state().coil(1)), (None, None));
    }

    #[test]
    fn delayed_start_counts_the_level_piecewise() {
        let mut p = Pump::new(PumpConfig {
            command_delay: Duration::from_secs(60),
            ..PumpConfig::default()
        });
        p.command_pump(true);
        assert!(!p.state().running);
        // 1 min idle (+10) then 2 min pumping (-100).
        p.advance(Duration::from_secs(180));
        let s = p.state();
        assert!(s.running);
        assert_eq!(s.input(0), Some(410));
    }

    #[test]
    fn broken_pump_runs_dry() {
        let mut p = Pump::new(PumpConfig {
            running: true,
            ..PumpConfig::default()
        });
        p.set_fault(Some(Fault::Broken));
        p.advance(Duration::from_secs(60));
        let s = p.state();
        assert!(s.running);
        assert_eq!(inputs(&s), [510, 850, 0]);
    }

    #[test]
    fn deaf_pump_ignores_its_command_until_healed() {
        let mut p = Pump::new(PumpConfig::default());
        p.set_fault(Some(Fault::Deaf));
        p.command_pump(true);
        p.advance(Duration::from_secs(60));
        let s = p.state();
        assert!(s.pump_command && !s.running);
        assert_eq!(inputs(&s), [510, 0, 0]);
        p.set_fault(None);
        p.advance(Duration::from_secs(120));
        let s = p.state();
        assert!(s.running);
        assert_eq!(inputs(&s), [460, 850, 250]);
    }

    #[test]
    fn supply_lost_reads_zero_and_the_sump_fills() {
        let mut p = Pump::new(PumpConfig {
            running: true,
            ..PumpConfig::default()
        });
        p.set_fault(Some(Fault::SupplyLost));
        p.advance(Duration::from_secs(120));
        assert_eq!(inputs(&p.state()), [0, 0, 0]);
        assert_eq!(p.state().discrete(0), Some(false));
        p.set_fault(None);
        assert_eq!(inputs(&p.state()), [520, 850, 250]);
    }
}
