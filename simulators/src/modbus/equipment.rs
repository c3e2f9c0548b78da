//! [`Equipment`]: the units behind one Modbus server (unit id → simulated unit), shared
//! between the server's connections and the caller that sets faults and reads states;
//! and the answer to one Modbus request (exceptions included).
//!
//! Time is the tokio clock since the equipment was made (so a test that pauses tokio's
//! clock controls it). Does no I/O.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_modbus::{ExceptionCode, Request, Response};

use super::{Error, Fault, Kind, State, Unit, MAX_UNIT};

/// Most registers one read may ask for.
const MAX_READ_REGISTERS: u16 = 125;
/// Most bits one read may ask for.
const MAX_READ_BITS: u16 = 2000;
/// Most registers one write may carry.
const MAX_WRITE_REGISTERS: usize = 123;
/// Most coils one write may carry.
const MAX_WRITE_BITS: usize = 1968;

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A normal response.
    Response(Response),
    /// An exception response.
    Exception(ExceptionCode),
    /// The unit is silent: nothing goes back.
    NoReply,
    /// No unit has this id (TCP answers GatewayTargetDevice, RTU nothing).
    NoSuchUnit,
}

/// A cloneable handle on the units behind one server (unit id → unit).
#[derive(Debug, Clone)]
pub struct Equipment {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    units: Mutex<BTreeMap<u8, Unit>>,
}

impl Default for Equipment {
    fn default() -> Self {
        Self::new()
    }
}

impl Equipment {
    /// No units yet; its clock starts now.
    pub fn new() -> Self {
        Equipment {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                units: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Adds `unit` as unit id `id` (1..=247), starting at the equipment's present time.
    pub fn insert(&self, id: u8, unit: impl Into<Unit>) -> Result<(), Error> {
        if id == 0 || id > MAX_UNIT {
            return Err(Error::InvalidUnit(id));
        }
        let mut unit = unit.into();
        unit.advance(self.now());
        let mut units = self.lock();
        if units.contains_key(&id) {
            return Err(Error::UnitTaken(id));
        }
        units.insert(id, unit);
        Ok(())
    }

    /// Removes unit `id` (it then gets GatewayTargetDevice), returning it.
    pub fn remove(&self, id: u8) -> Option<Unit> {
        self.lock().remove(&id)
    }

    /// The unit ids and kinds, in id order.
    pub fn units(&self) -> Vec<(u8, Kind)> {
        self.lock().iter().map(|(&id, u)| (id, u.kind())).collect()
    }

    /// Sets (`Some`) or clears (`None`) unit `id`'s fault, from now on.
    pub fn set_fault(&self, id: u8, fault: Option<Fault>) -> Result<(), Error> {
        self.with_unit(id, |u| u.set_fault(fault))
    }

    /// Unit `id`'s fault.
    pub fn fault(&self, id: u8) -> Result<Option<Fault>, Error> {
        self.with_unit(id, |u| u.fault())
    }

    /// What unit `id`'s registers show now (the actual state: relay, dimming, power, ...).
    pub fn state(&self, id: u8) -> Result<State, Error> {
        self.with_unit(id, |u| u.state())
    }

    /// Runs `f` on unit `id`, brought to the present time first (e.g. to change a meter's
    /// load: `|u| if let Unit::Meter(m) = u { m.set_load_w(500.0) }`).
    pub fn with_unit<R>(&self, id: u8, f: impl FnOnce(&mut Unit) -> R) -> Result<R, Error> {
        let now = self.now();
        let mut units = self.lock();
        let unit = units.get_mut(&id).ok_or(Error::NoSuchUnit(id))?;
        unit.advance(now);
        Ok(f(unit))
    }

    /// Answers one request to unit `id`, as the unit would.
    pub fn answer(&self, id: u8, request: &Request<'_>) -> Answer {
        let now = self.now();
        let mut units = self.lock();
        let Some(unit) = units.get_mut(&id) else {
            return Answer::NoSuchUnit;
        };
        unit.advance(now);
        if unit.fault() == Some(Fault::Silent) {
            return Answer::NoReply;
        }
        match handle(unit, request) {
            Ok(r) => Answer::Response(r),
            Err(e) => Answer::Exception(e),
        }
    }

    fn now(&self) -> Duration {
        self.inner.epoch.elapsed()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u8, Unit>> {
        // A panic while holding the lock leaves the models consistent enough for a
        // simulator: keep serving.
        self.inner
            .units
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One request against one (present, not silent) unit.
fn handle(unit: &mut Unit, request: &Request<'_>) -> Result<Response, ExceptionCode> {
    use Request as Q;
    let state = unit.state();
    match request {
        Q::ReadCoils(addr, qty) => {
            read(*addr, *qty, MAX_READ_BITS, |a| state.coil(a)).map(Response::ReadCoils)
        }
        Q::ReadDiscreteInputs(addr, qty) => read(*addr, *qty, MAX_READ_BITS, |a| state.discrete(a))
            .map(Response::ReadDiscreteInputs),
        Q::ReadHoldingRegisters(addr, qty) => {
            read(*addr, *qty, MAX_READ_REGISTERS, |a| state.holding(a))
                .map(Response::ReadHoldingRegisters)
        }
        Q::ReadInputRegisters(addr, qty) => {
            read(*addr, *qty, MAX_READ_REGISTERS, |a| state.input(a))
                .map(Response::ReadInputRegisters)
        }
        Q::WriteSingleCoil(addr, value) => {
            unit.write_coil(*addr, *value)?;
            Ok(Response::WriteSingleCoil(*addr, *value))
        }
        Q::WriteSingleRegister(addr, value) => {
            unit.write_holding(*addr, *value)?;
            Ok(Response::WriteSingleRegister(*addr, *value))
        }
        Q::WriteMultipleCoils(addr, values) => {
            let qty = write_quantity(*addr, values.len(), MAX_WRITE_BITS, |a| {
                state.coil(a).is_some()
            })?;
            write_all(unit, *addr, values, Unit::write_coil)?;
            Ok(Response::WriteMultipleCoils(*addr, qty))
        }
        Q::WriteMultipleRegisters(addr, values) => {
            let qty = write_quantity(*addr, values.len(), MAX_WRITE_REGISTERS, |a| {
                state.holding(a).is_some()
            })?;
            write_all(unit, *addr, values, Unit::write_holding)?;
            Ok(Response::WriteMultipleRegisters(*addr, qty))
        }
        _ => Err(ExceptionCode::IllegalFunction),
    }
}

/// `qty` values from `addr` on; IllegalDataValue for a bad quantity, IllegalDataAddress
/// if any address is missing.
fn read<T>(
    addr: u16,
    qty: u16,
    max: u16,
    value: impl Fn(u16) -> Option<T>,
) -> Result<Vec<T>, ExceptionCode> {
    if qty == 0 || qty > max {
        return Err(ExceptionCode::IllegalDataValue);
    }
    (0..qty)
        .map(|i| {
            addr.checked_add(i)
                .and_then(&value)
                .ok_or(ExceptionCode::IllegalDataAddress)
        })
        .collect()
}

/// Checks a multiple write's quantity and addresses before anything is written.
fn write_quantity(
    addr: u16,
    len: usize,
    max: usize,
    exists: impl Fn(u16) -> bool,
) -> Result<u16, ExceptionCode> {
    if len == 0 || len > max {
        return Err(ExceptionCode::IllegalDataValue);
    }
    let qty = u16::try_from(len).map_err(|_| ExceptionCode::IllegalDataValue)?;
    for i in 0..qty {
        if !addr.checked_add(i).is_some_and(&exists) {
            return Err(ExceptionCode::IllegalDataAddress);
        }
    }
    Ok(qty)
}

/// Writes every value, or none if one is refused.
fn write_all<T: Copy>(
    unit: &mut Unit,
    addr: u16,
    values: &[T],
    write: fn(&mut Unit, u16, T) -> Result<(), ExceptionCode>,
) -> Result<(), ExceptionCode> {
    let mut staged = unit.clone();
    for (a, &v) in (addr..).zip(values) {
        write(&mut staged, a, v)?;
    }
    *unit = staged;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::modbus::{Lamp, LampConfig, Meter, MeterConfig, Pump, PumpConfig};

    fn equipment() -> Equipment {
        let e = Equipment::new();
        let quiet_lamp = LampConfig {
            noise_pct: 0.0,
            ..LampConfig::default()
        };
        let quiet_meter = MeterConfig {
            noise_pct: 0.0,
            ..MeterConfig::default()
        };
        assert!(e.insert(1, Lamp::new(quiet_lamp)).is_ok());
        assert!(e.insert(2, Meter::new(quiet_meter)).is_ok());
        assert!(e.insert(3, Pump::new(PumpConfig::default())).is_ok());
        e
    }

    fn exception(code: ExceptionCode) -> Answer {
        Answer::Exception(code)
    }

    #[test]
    fn insert_checks_ids() {
        let e = equipment();
        let lamp = || Lamp::new(LampConfig::default());
        assert!(matches!(e.insert(0, lamp()), Err(Error::InvalidUnit(0))));
        assert!(matches!(
            e.insert(248, lamp()),
            Err(Error::InvalidUnit(248))
        ));
        assert!(matches!(e.insert(1, lamp()), Err(Error::UnitTaken(1))));
        assert!(matches!(e.state(9), Err(Error::NoSuchUnit(9))));
        assert_eq!(
            e.units(),
            vec![(1, Kind::Lamp), (2, Kind::Meter), (3, Kind::Pump)]
        );
    }

    #[test]
    fn reads_follow_the_register_maps() {
        let e = equipment();
        assert_eq!(
            e.answer(1, &Request::ReadInputRegisters(0, 4)),
            Answer::Response(Response::ReadInputRegisters(vec![100, 435, 1000, 2300]))
        );
        assert_eq!(
            e.answer(2, &Request::ReadInputRegisters(0, 2)),
            Answer::Response(Response::ReadInputRegisters(vec![0x4366, 0]))
        );
        assert_eq!(
            e.answer(3, &Request::ReadDiscreteInputs(0, 1)),
            Answer::Response(Response::ReadDiscreteInputs(vec![false]))
        );
        assert!(matches!(
            e.answer(2, &Request::ReadInputRegisters(0, 0x4A)),
            Answer::Response(Response::ReadInputRegisters(words)) if words.len() == 0x4A
        ));
    }

    #[test]
    fn bad_requests_get_exceptions() {
        let e = equipment();
        use ExceptionCode::*;
        assert_eq!(
            e.answer(1, &Request::ReadInputRegisters(2, 3)),
            exception(IllegalDataAddress)
        );
        assert_eq!(
            e.answer(1, &Request::ReadInputRegisters(u16::MAX, 2)),
            exception(IllegalDataAddress)
        );
        assert_eq!(
            e.answer(2, &Request::ReadInputRegisters(0x48, 3)),
            exception(IllegalDataAddress)
        );
        assert_eq!(
            e.answer(2, &Request::ReadHoldingRegisters(0, 1)),
            exception(IllegalDataAddress)
        );
        assert_eq!(
            e.answer(1, &Request::ReadInputRegisters(0, 126)),
            exception(IllegalDataValue)
        );
        assert_eq!(
            e.answer(1, &Request::ReadCoils(0, 0)),
            exception(IllegalDataValue)
        );
        assert_eq!(
            e.answer(1, &Request::ReadCoils(0, 2001)),
            exception(IllegalDataValue)
        );
        assert_eq!(
            e.answer(1, &Request::WriteSingleRegister(0, 101)),
            exception(IllegalDataValue)
        );
        assert_eq!(
            e.answer(1, &Request::WriteSingleRegister(1, 5)),
            exception(IllegalDataAddress)
        );
        assert_eq!(
            e.answer(2, &Request::WriteSingleCoil(0, true)),
            exception(IllegalDataAddress)
        );
        assert_eq!(
            e.answer(1, &Request::ReportServerId),
            exception(IllegalFunction)
        );
        assert_eq!(
            e.answer(1, &Request::Custom(0x41, Cow::Borrowed(&[1, 2]))),
            exception(IllegalFunction)
        );
        assert_eq!(e.answer(7, &Request::ReadCoils(0, 1)), Answer::NoSuchUnit);
    }

    #[test]
    fn writes_apply_and_echo() {
        let e = equipment();
        assert_eq!(
            e.answer(1, &Request::WriteSingleRegister(0, 30)),
            Answer::Response(Response::WriteSingleRegister(0, 30))
        );
        assert_eq!(
            e.answer(1, &Request::WriteMultipleCoils(0, Cow::Borrowed(&[false]))),
            Answer::Response(Response::WriteMultipleCoils(0, 1))
        );
        let Ok(State::Lamp(s)) = e.state(1) else {
            panic!("not a lamp")
        };
        assert_eq!((s.relay_on, s.dimming_pct, s.power_w), (false, 30, 0.0));
        // All or nothing.
        assert_eq!(
            e.answer(
                1,
                &Request::WriteMultipleRegisters(0, Cow::Borrowed(&[50, 1]))
            ),
            exception(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            e.answer(
                1,
                &Request::WriteMultipleRegisters(0, Cow::Borrowed(&[500]))
            ),
            exception(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            e.answer(1, &Request::ReadHoldingRegisters(0, 1)),
            Answer::Response(Response::ReadHoldingRegisters(vec![30]))
        );
        assert_eq!(
            e.answer(3, &Request::WriteSingleCoil(0, true)),
            Answer::Response(Response::WriteSingleCoil(0, true))
        );
        assert!(matches!(e.state(3), Ok(State::Pump(s)) if s.running));
    }

    #[test]
    fn silent_units_do_not_answer() {
        let e = equipment();
        assert!(e.set_fault(1, Some(Fault::Silent)).is_ok());
        assert_eq!(e.answer(1, &Request::ReadCoils(0, 1)), Answer::NoReply);
        assert_eq!(
            e.answer(1, &Request::WriteSingleRegister(0, 10)),
            Answer::NoReply
        );
        assert!(matches!(e.state(1), Ok(State::Lamp(s)) if s.dimming_pct == 100));
        assert!(matches!(e.fault(1), Ok(Some(Fault::Silent))));
        assert!(e.set_fault(1, None).is_ok());
        assert!(matches!(
            e.answer(1, &Request::ReadCoils(0, 1)),
            Answer::Response(_)
        ));
        assert!(matches!(e.set_fault(9, None), Err(Error::NoSuchUnit(9))));
    }
}
