//! Board glue: each application's sensor trait implemented over embedded-hal 1.0
//! peripherals and this crate's adapters — what a board support package wires to its
//! HAL, what the images build on, and what the simulators drive with virtual chips.
//!
//! Owns the mapping from pins, ADC channels and adapters to the sensor traits. Does not
//! own the drivers ([`crate::sensors`]) or the device logic ([`crate::app`]).

use embedded_hal::digital::{InputPin, OutputPin};
use embedded_hal::i2c::I2c;
use embedded_hal::pwm::SetDutyCycle;

use crate::app::pendant::PendantSensors;
use crate::app::street_light::StreetLightSensors;
use crate::sensors::accel::Accelerometer;
use crate::sensors::analog::{AdcChannel, Battery};
use crate::sensors::power::PowerMonitor;

/// The pendant's board: the LIS3DH on I2C, one button (SOS, and cancel during a fall's
/// cancel window), the cell on an ADC pin behind a divider.
#[derive(Debug)]
pub struct PendantBoard<I2C, B, ADC> {
    /// The accelerometer; `None` when it did not answer at boot (the node still sends
    /// heartbeats, and the gateway sees no activity).
    pub accel: Option<Accelerometer<I2C>>,
    /// The button, high when pressed.
    pub button: B,
    /// The cell's ADC pin.
    pub adc: ADC,
    /// The cell's curve and divider.
    pub battery: Battery,
}

impl<I2C: I2c, B: InputPin, ADC: AdcChannel> PendantSensors for PendantBoard<I2C, B, ADC> {
    fn acceleration_mg(&mut self) -> Option<[i16; 3]> {
        self.accel.as_mut()?.poll_mg().ok().flatten()
    }

    fn sos_pressed(&mut self) -> bool {
        self.button.is_high().unwrap_or(false)
    }

    fn cancel_pressed(&mut self) -> bool {
        self.sos_pressed()
    }

    fn battery_mv(&mut self) -> Option<u16> {
        let pin_mv = self.adc.read_mv().ok()?;
        Some(self.battery.battery_mv(pin_mv))
    }
}

/// The street-light controller's board: the INA219 on I2C, the relay and its feedback
/// contact, the dimming output (PWM) and the driver's dimming feedback on an ADC pin.
#[derive(Debug)]
pub struct StreetLightBoard<I2C, R, F, D, ADC> {
    /// The current/voltage monitor; `None` when it did not answer at boot.
    pub power: Option<PowerMonitor<I2C>>,
    /// The relay coil.
    pub relay: R,
    /// The relay's feedback contact, high when closed.
    pub relay_feedback: F,
    /// The dimming output.
    pub dimming: D,
    /// The driver's dimming feedback, 0 mV (off) to `dimming_full_mv` (full light).
    pub dimming_adc: ADC,
    /// Feedback at full light, mV.
    pub dimming_full_mv: u16,
}

impl<I2C, R, F, D, ADC> StreetLightSensors for StreetLightBoard<I2C, R, F, D, ADC>
where
    I2C: I2c,
    R: OutputPin,
    F: InputPin,
    D: SetDutyCycle,
    ADC: AdcChannel,
{
    fn lamp(&mut self) -> Option<(u16, u16)> {
        let sample = self.power.as_mut()?.measure().ok()??;
        Some((sample.bus_mv, sample.lamp_current_ma()))
    }

    fn set_relay(&mut self, on: bool) {
        // A failed write shows in the feedback contact, which the command answer reads.
        let _ = self.relay.set_state(on.into());
    }

    fn relay_feedback(&mut self) -> bool {
        self.relay_feedback.is_high().unwrap_or(false)
    }

    fn set_dimming(&mut self, percent: u8) {
        let _ = self.dimming.set_duty_cycle_percent(percent.min(100));
    }

    fn dimming_feedback(&mut self) -> u8 {
        let mv = self.dimming_adc.read_mv().unwrap_or(0);
        let pct = u32::from(mv) * 100 / u32::from(self.dimming_full_mv.max(1));
        pct.min(100) as u8
    }
}
