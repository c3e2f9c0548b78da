//! What a board flashes, less the board: the device loop every kind runs on the MQTT
//! client ([`run`]) and stand-ins for what the board's HAL and modem would give
//! ([`standin`]); each kind's sensor glue is `linli_firmware::boards`. The `pendant_image` and `street_light_image` binaries put them on a
//! Cortex-M to measure flash and RAM.
//!
//! Owns the loop (connect, subscribe, sample, flush, take downlinks, back off). Does not
//! own the
//! device logic (`linli_firmware::app`, `node`), the MQTT session settings
//! (`linli_firmware::mqtt`), the clock (the binaries' embassy-time driver) or startup.

use core::convert::Infallible;
use core::fmt;

use embassy_time::{with_timeout, Duration, Instant, Timer};
use linli_firmware::app::{Application, Device};
use linli_firmware::mqtt::{self, MqttPublisher};
use linli_firmware::node::FrameBuf;
use linli_firmware::publish::flush;
use minimq::{ConnectEvent, Connection, Io, Session};

/// One turn of the loop waits this long for a downlink: the pendant's 100 Hz.
pub const TURN_MS: u64 = 10;
/// Longest downlink frame taken (sealed settings are the largest), bytes.
pub const MAX_DOWNLINK: usize = 128;

/// Runs `device` for ever: saves its counter reserve with `save` (a flash write: true
/// when it succeeded), dials with `dial` (a fresh byte stream to the broker: the
/// modem's socket), connects `session`, subscribes to the device's downlink topics on a
/// fresh session, then turns the loop every [`TURN_MS`] — sample, publish what is due,
/// hand a downlink to the device — until the connection fails; then backs off as the
/// node says and dials again. Device time is 0: these boards have no calendar clock.
pub async fn run<A, IO, const N: usize, const K: usize>(
    device: &mut Device<'_, A, N, K>,
    sensors: &mut A::Sensors,
    session: &mut Session<'_>,
    mut save: impl FnMut(u32) -> bool,
    mut dial: impl FnMut() -> IO,
) -> Infallible
where
    A: Application,
    IO: Io,
    IO::Error: fmt::Debug,
{
    let mut buf = FrameBuf::default();
    let mut down = [0u8; MAX_DOWNLINK];
    loop {
        if let Ok(mut conn) = session.connect(dial()).await {
            device.node.connected(Instant::now().as_millis());
            let subscribed = match conn.connect_event() {
                ConnectEvent::Connected => mqtt::subscribe(&mut conn, &device.node).await.is_ok(),
                // The broker kept the session and its subscriptions.
                ConnectEvent::Reconnected => true,
            };
            if subscribed {
                serve(device, sensors, &mut conn, &mut buf, &mut down, &mut save).await;
            }
        }
        Timer::after_millis(device.node.disconnected(Instant::now().as_millis())).await;
    }
}

/// The connected loop; returns when the connection fails.
async fn serve<A, IO, const N: usize, const K: usize>(
    device: &mut Device<'_, A, N, K>,
    sensors: &mut A::Sensors,
    conn: &mut Connection<'_, '_, IO>,
    buf: &mut FrameBuf,
    down: &mut [u8],
    save: &mut impl FnMut(u32) -> bool,
) where
    A: Application,
    IO: Io,
    IO::Error: fmt::Debug,
{
    loop {
        let now_ms = Instant::now().as_millis();
        device.step(now_ms, 0, sensors);
        device.node.save_counter(&mut *save);
        if flush(&mut device.node, now_ms, buf, &mut MqttPublisher(conn))
            .await
            .is_err()
        {
            return;
        }
        match with_timeout(Duration::from_millis(TURN_MS), conn.poll()).await {
            // A quiet turn, or only acks and keep-alives at the MQTT level.
            Err(_) | Ok(Ok(None)) => {}
            Ok(Ok(Some(publish))) => {
                let payload = publish.payload();
                if let Some(frame) = down.get_mut(..payload.len()) {
                    frame.copy_from_slice(payload);
                    // Refusals are counted in the node's stats.
                    let _ = device.downlink(0, publish.topic(), frame, sensors);
                }
            }
            Ok(Err(_)) => return,
        }
    }
}

/// Stand-ins for the board: what a HAL's I2C, GPIO, PWM and ADC drivers and the modem's
/// socket are to the firmware — bytes and levels in and out — with nothing behind them.
/// Everything written goes into [`black_box`] and everything read comes out of it, so
/// the optimiser can assume nothing about what the chips, pins and broker answer and
/// keeps every path of the drivers, the client and the device logic: an image built on
/// them measures the firmware, not a test double (they are a few dozen bytes). Not for
/// running: the modem never answers.
pub mod standin {
    use core::future::Future;
    use core::hint::black_box;
    use core::pin::Pin;
    use core::task::{Context, Poll};

    use embedded_hal::digital::{self, InputPin, OutputPin};
    use embedded_hal::i2c::{self, I2c, NoAcknowledgeSource, Operation};
    use embedded_hal::pwm::{self, SetDutyCycle};
    use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
    use linli_firmware::sensors::analog::AdcChannel;

    /// The I2C peripheral.
    #[derive(Debug, Default)]
    pub struct I2cBus;

    impl i2c::ErrorType for I2cBus {
        type Error = i2c::ErrorKind;
    }

    impl I2c for I2cBus {
        fn transaction(
            &mut self,
            address: u8,
            operations: &mut [Operation<'_>],
        ) -> Result<(), Self::Error> {
            black_box(address);
            for op in operations {
                match op {
                    Operation::Write(bytes) => {
                        black_box(&**bytes);
                    }
                    Operation::Read(buf) => buf.iter_mut().for_each(|b| *b = black_box(0)),
                }
            }
            if black_box(false) {
                return Err(i2c::ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
            }
            Ok(())
        }
    }

    /// A GPIO pin, input or output.
    #[derive(Debug, Default)]
    pub struct Gpio;

    impl digital::ErrorType for Gpio {
        type Error = digital::ErrorKind;
    }

    impl InputPin for Gpio {
        fn is_high(&mut self) -> Result<bool, Self::Error> {
            Ok(black_box(false))
        }

        fn is_low(&mut self) -> Result<bool, Self::Error> {
            self.is_high().map(|h| !h)
        }
    }

    impl OutputPin for Gpio {
        fn set_low(&mut self) -> Result<(), Self::Error> {
            black_box(false);
            Ok(())
        }

        fn set_high(&mut self) -> Result<(), Self::Error> {
            black_box(true);
            Ok(())
        }
    }

    /// A PWM channel (16-bit duty).
    #[derive(Debug, Default)]
    pub struct Pwm;

    impl pwm::ErrorType for Pwm {
        type Error = pwm::ErrorKind;
    }

    impl SetDutyCycle for Pwm {
        fn max_duty_cycle(&self) -> u16 {
            u16::MAX
        }

        fn set_duty_cycle(&mut self, duty: u16) -> Result<(), Self::Error> {
            black_box(duty);
            Ok(())
        }
    }

    /// An ADC channel.
    #[derive(Debug, Default)]
    pub struct Adc;

    impl AdcChannel for Adc {
        type Error = ();

        fn read_mv(&mut self) -> Result<u16, ()> {
            Ok(black_box(0))
        }
    }

    /// The modem's socket to the broker: a byte stream (a UART to a cellular or NB-IoT
    /// modem on a board). Reads wait (yielding to the executor) until bytes arrive.
    #[derive(Debug, Default)]
    pub struct Modem;

    impl ErrorType for Modem {
        type Error = ErrorKind;
    }

    impl Read for Modem {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
            loop {
                let ready = black_box(0usize).min(buf.len());
                if ready > 0 {
                    buf[..ready].iter_mut().for_each(|b| *b = black_box(0));
                    return Ok(ready);
                }
                if black_box(false) {
                    return Err(ErrorKind::ConnectionReset);
                }
                YieldNow(false).await;
            }
        }
    }

    impl Write for Modem {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
            black_box(buf);
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), ErrorKind> {
            Ok(())
        }
    }

    /// Pending once, then ready: gives the executor a turn.
    struct YieldNow(bool);

    impl Future for YieldNow {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
