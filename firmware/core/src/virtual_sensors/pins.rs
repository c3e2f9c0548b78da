//! A virtual GPIO pin and ADC channel: a button or contact whose level the simulation
//! sets, an output whose level it reads, a voltage it holds. What the board glue
//! (`crate::boards`) reads besides the I2C chips.
//!
//! Owns levels and millivolts only; no timing (the simulation changes them when it
//! wants).

use embedded_hal::digital::{ErrorType, InputPin, OutputPin};

use crate::sensors::analog::AdcChannel;

/// A pin: input (the simulation sets `high`) or output (the firmware does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtualPin {
    /// The level.
    pub high: bool,
}

impl ErrorType for VirtualPin {
    type Error = core::convert::Infallible;
}

impl InputPin for VirtualPin {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        Ok(self.high)
    }

    fn is_low(&mut self) -> Result<bool, Self::Error> {
        Ok(!self.high)
    }
}

impl OutputPin for VirtualPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.high = false;
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.high = true;
        Ok(())
    }
}

/// An ADC channel reading a voltage the simulation holds (a battery behind its divider).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtualAdc {
    /// The voltage at the pin, mV.
    pub mv: u16,
}

impl AdcChannel for VirtualAdc {
    type Error = core::convert::Infallible;

    fn read_mv(&mut self) -> Result<u16, Self::Error> {
        Ok(self.mv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::pendant::PendantSensors;
    use crate::boards::PendantBoard;
    use crate::fall::scenario::{Kind, Scenario};
    use crate::fall::Range;
    use crate::sensors::accel::{Accelerometer, SlaveAddr};
    use crate::sensors::analog::{Battery, LI_ION_1S};
    use crate::virtual_sensors::VirtualLis3dh;

    #[test]
    fn a_pendant_board_reads_virtual_chips_pins_and_cell() {
        let chip = VirtualLis3dh::new(0x18, Scenario::new(Kind::Stand, 1, 100));
        let accel = Accelerometer::new(chip, SlaveAddr::Default, Range::G16).ok();
        assert!(accel.is_some(), "the driver takes the virtual chip");
        let mut board = PendantBoard {
            accel,
            button: VirtualPin::default(),
            adc: VirtualAdc { mv: 1_950 },
            battery: Battery::new(LI_ION_1S).with_divider(2, 1),
        };
        let a = board.acceleration_mg().expect("a sample");
        let m2: i32 = a.iter().map(|v| i32::from(*v).pow(2)).sum();
        assert!(
            (900 * 900..1_100 * 1_100).contains(&m2),
            "standing: about 1 g, {a:?}"
        );
        assert!(!board.sos_pressed());
        board.button.high = true;
        assert!(board.sos_pressed() && board.cancel_pressed());
        assert_eq!(
            board.battery_mv(),
            Some(3_900),
            "the divider halves the cell"
        );
    }
}
