//! `pendant_image`: what a fall pendant flashes — cortex-m-rt's entry, the pendant's
//! device loop over its sensor adapters (LIS3DH accelerometer on I2C, button, battery
//! ADC), the node (sealing, counter, outbox) and the MQTT client (minimq via
//! `linli_firmware::mqtt`) on the modem's byte stream — with stand-ins for the HAL and
//! the modem (`linli_firmware_qemu::image::standin`). Built for thumbv7em-none-eabihf
//! to measure flash and RAM (README.md); not for running: the stand-in modem never
//! answers. On the host it only says what it is for.
//!
//! Owns the pendant's wiring and provisioning values; does not own the loop
//! (`linli_firmware_qemu::image::run`) or the clock (`image_target.rs`).

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[path = "../image_target.rs"]
mod target;

#[cfg(target_os = "none")]
mod image {
    use core::hint::black_box;

    use cortex_m_rt::entry;
    use linli_firmware::app::pendant::Pendant;
    use linli_firmware::app::Device;
    use linli_firmware::boards::PendantBoard;
    use linli_firmware::fall::Range;
    use linli_firmware::node::{Cadence, Node};
    use linli_firmware::sensors::accel::{Accelerometer, SlaveAddr};
    use linli_firmware::sensors::analog::{Battery, LI_ION_1S};
    use linli_firmware::{fall, mqtt, sos};
    use linli_firmware_qemu::block_on;
    use linli_firmware_qemu::image::run;
    use linli_firmware_qemu::image::standin::{Adc, Gpio, I2cBus, Modem};
    use linli_protocol::DeviceKey;
    use minimq::{Buffers, Session};

    use super::target;

    /// Provisioning, read from the device's configuration page (here: constants the
    /// optimiser may not look into).
    const ID: &str = "pendant-0001";
    const KEY: [u8; 32] = [0x5a; 32];
    const KEY_ID: u8 = 1;
    const SERIAL: u32 = 0x0001_0001;
    const PASSWORD: &str = "provisioned-mqtt-password";
    /// MQTT keep-alive, s.
    const KEEPALIVE_S: u16 = 120;
    /// Outbox slots, and of them reserved for alarms.
    const OUTBOX: usize = 16;
    const ALARMS: usize = 4;
    /// minimq's packet buffers: one inbound downlink; the CONNECT and one outbound
    /// publish (QoS 0 keeps nothing in flight).
    const RX_LEN: usize = 256;
    const TX_LEN: usize = 512;

    #[entry]
    fn main() -> ! {
        if let Some(cp) = cortex_m::Peripherals::take() {
            target::start_clock(cp.SYST);
        }
        let id: &'static str = black_box(ID);
        let accel = Accelerometer::new(I2cBus, SlaveAddr::Default, Range::G16).ok();
        let mut board = PendantBoard {
            accel,
            button: Gpio,
            adc: Adc,
            // The cell behind two equal resistors.
            battery: Battery::new(LI_ION_1S).with_divider(2, 1),
        };
        let key = DeviceKey::new(&black_box(KEY));
        let counter = black_box(0); // saved by the last boot
        let serial = black_box(SERIAL); // seeds the reconnect jitter
        let node = Node::new(id, key, KEY_ID, counter, Cadence::default(), 0, serial);
        let app = Pendant::new(fall::Config::default(), sos::Config::default());
        let mut device: Device<'_, Pendant, OUTBOX, ALARMS> = Device::new(node, app);
        let (mut rx, mut tx) = ([0u8; RX_LEN], [0u8; TX_LEN]);
        let config = mqtt::config(
            Buffers::new(&mut rx, &mut tx),
            id,
            black_box(PASSWORD),
            KEEPALIVE_S,
        );
        let Ok(config) = config else {
            panic!("MQTT settings do not fit the buffers");
        };
        let mut session = Session::new(config);
        // The board's flash: a stand-in that keeps what it is given.
        let save = |counter: u32| black_box(counter) != 0;
        match block_on(run(&mut device, &mut board, &mut session, save, || Modem)) {}
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "pendant_image is the pendant's flash image for thumbv7em-none-eabihf, built to \
         measure flash and RAM (see firmware/qemu/README.md); there is nothing to run on \
         the host."
    );
}
