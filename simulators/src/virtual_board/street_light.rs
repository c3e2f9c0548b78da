//! The street-light controller's virtual board: a lamp the simulation can break, fix,
//! weld or make deaf, measured through a virtual INA219 and the real `ina219` driver, on
//! the firmware's own board glue (`StreetLightBoard`).
//!
//! Owns the lamp's scene and its relay and dimming-driver pins; does not own the lamp
//! model (`linli_firmware::virtual_sensors::LampModel`) or the fault sensing.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use embedded_hal::digital::{self, InputPin, OutputPin};
use embedded_hal::pwm::{self, SetDutyCycle};
use linli_firmware::boards::StreetLightBoard;
use linli_firmware::sensors::analog::AdcChannel;
use linli_firmware::sensors::power::{PowerMonitor, Shunt};
use linli_firmware::virtual_sensors::{LampModel, PowerLevels, PowerSource, VirtualIna219};

use super::lock;

/// A street lamp the simulation can break, fix or make deaf while its controller runs:
/// the firmware's lamp model (relay, failure, welded relay) plus a dimming driver.
#[derive(Debug, Clone)]
pub struct Lamp(Arc<Mutex<LampState>>);

#[derive(Debug)]
struct LampState {
    model: LampModel,
    dim_pct: u8,
    deaf: bool,
}

impl Lamp {
    /// A working lamp drawing `lamp_ma` at full light on `supply_mv`, relay open.
    pub fn new(supply_mv: u16, lamp_ma: u16) -> Self {
        Lamp(Arc::new(Mutex::new(LampState {
            model: LampModel::new(supply_mv, lamp_ma),
            dim_pct: 100,
            deaf: false,
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut LampState) -> T) -> T {
        f(&mut lock(&self.0))
    }

    /// The lamp dies (true) or is replaced (false).
    pub fn set_broken(&self, broken: bool) {
        // The model's clock stays at 0: "failing at 0" is failed now.
        self.with(|l| l.model.fails_at_ms = broken.then_some(0));
    }

    /// The relay welds shut (true) or is replaced (false).
    pub fn set_welded(&self, welded: bool) {
        self.with(|l| l.model.welds_at_ms = welded.then_some(0));
    }

    /// The dimming driver ignores (true) or follows (false) its input.
    pub fn set_deaf(&self, deaf: bool) {
        self.with(|l| l.deaf = deaf);
    }

    /// The driver's dimming level, %.
    pub fn dimming_pct(&self) -> u8 {
        self.with(|l| l.dim_pct)
    }
}

impl PowerSource for Lamp {
    fn levels(&mut self) -> PowerLevels {
        self.with(|l| {
            let full = l.model.levels();
            PowerLevels {
                bus_mv: full.bus_mv,
                // A dimmed lamp draws proportionally less (the standby current of a dead
                // driver is not dimmed).
                current_ua: if l.model.fails_at_ms.is_some() {
                    full.current_ua
                } else {
                    full.current_ua * i32::from(l.dim_pct) / 100
                },
            }
        })
    }
}

/// The relay coil's output pin.
#[derive(Debug, Clone)]
pub struct RelayCoil(Lamp);

impl digital::ErrorType for RelayCoil {
    type Error = Infallible;
}

impl OutputPin for RelayCoil {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0.with(|l| l.model.set_relay(false));
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.0.with(|l| l.model.set_relay(true));
        Ok(())
    }
}

/// The relay's feedback contact: closed while the lamp's supply conducts.
#[derive(Debug, Clone)]
pub struct RelayContact(Lamp);

impl digital::ErrorType for RelayContact {
    type Error = Infallible;
}

impl InputPin for RelayContact {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.0.with(|l| l.model.conducting()))
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        self.is_high().map(|h| !h)
    }
}

/// The dimming driver's input (PWM) and its level feedback (ADC, 0–10 V as 0–10 000 mV).
#[derive(Debug, Clone)]
pub struct DimmingDriver(Lamp);

impl pwm::ErrorType for DimmingDriver {
    type Error = Infallible;
}

impl SetDutyCycle for DimmingDriver {
    fn max_duty_cycle(&self) -> u16 {
        u16::MAX
    }

    fn set_duty_cycle(&mut self, duty: u16) -> Result<(), Infallible> {
        self.0.with(|l| {
            if !l.deaf {
                l.dim_pct = (u32::from(duty) * 100 / u32::from(u16::MAX)) as u8;
            }
        });
        Ok(())
    }
}

impl AdcChannel for DimmingDriver {
    type Error = Infallible;

    fn read_mv(&mut self) -> Result<u16, Infallible> {
        Ok(u16::from(self.0.dimming_pct()) * 100)
    }
}

/// A street-light controller board on virtual chips: the lamp through an INA219 (0.1 Ω
/// shunt) and the real `ina219` driver, the relay coil and contact, the dimming driver.
pub type VirtualStreetLight =
    StreetLightBoard<VirtualIna219<Lamp>, RelayCoil, RelayContact, DimmingDriver, DimmingDriver>;

/// Builds a [`VirtualStreetLight`] for `lamp`.
pub fn street_light(lamp: &Lamp) -> Result<VirtualStreetLight> {
    let chip = VirtualIna219::new(0x40, 100_000, lamp.clone());
    let shunt = Shunt {
        r_shunt_uohm: 100_000,
        max_current_ma: 3_200,
    };
    let power = PowerMonitor::new(chip, 0x40, shunt).map_err(|e| anyhow!("virtual INA219: {e}"))?;
    Ok(StreetLightBoard {
        power: Some(power),
        relay: RelayCoil(lamp.clone()),
        relay_feedback: RelayContact(lamp.clone()),
        dimming: DimmingDriver(lamp.clone()),
        dimming_adc: DimmingDriver(lamp.clone()),
        dimming_full_mv: 10_000,
    })
}
