//! Modbus register maps as data: where a value lives (table, address), how its words
//! encode it (type, byte and word order), how it scales to units, and its valid range.
//! Decodes polled words into values (rejecting out-of-range ones), encodes values for
//! writes, and coalesces a map into read blocks of at most 125 registers.
//!
//! Pure: no I/O, no tokio-modbus. Does not poll, schedule or reconnect (`poller`).

/// Most registers one read may ask for (Modbus application protocol).
pub const MAX_READ_REGISTERS: u16 = 125;

/// Most coils or discrete inputs one read may ask for.
pub const MAX_READ_BITS: u16 = 2000;

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Read/write 16-bit registers.
    Holding,
    /// Read-only 16-bit registers.
    Input,
    /// Read/write bits.
    Coil,
    /// Read-only bits.
    Discrete,
}

impl Table {
    /// Bit tables (coils, discrete inputs).
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }
}

/// How a value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// One bit (coil or discrete input): 0 or 1.
    Bool,
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single.
    F32,
    /// Four registers, IEEE 754 double.
    F64,
}

impl DataType {
    /// Registers (or bits) it takes.
    pub fn width(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::F64 => 4,
        }
    }
}

/// Byte and word order of a multi-register value, named by where the most significant
/// byte `A` of `ABCD` lands: `Abcd` is big-endian words in big-endian order (the Modbus
/// convention, and Eastron's), `Cdab` swaps the words, `Badc` swaps the bytes in each
/// word, `Dcba` both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Big-endian bytes, most significant word first.
    Abcd,
    /// Big-endian bytes, least significant word first ("word swap").
    Cdab,
    /// Bytes swapped within each word, most significant word first.
    Badc,
    /// Little-endian throughout.
    Dcba,
}

/// One value in a device's register map.
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    /// Its name in the profile (`voltage_v`, `dimming_setpoint`, …).
    pub name: String,
    /// Table.
    pub table: Table,
    /// First register (or bit), zero-based.
    pub address: u16,
    /// Type.
    pub data_type: DataType,
    /// Byte and word order (multi-register types).
    pub order: Order,
    /// value = raw × scale + offset.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
    /// Valid range of the scaled value; outside it, the value is rejected, not stored.
    pub min: Option<f64>,
    /// Upper end.
    pub max: Option<f64>,
}

/// Why polled words did not give a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer words than the type needs.
    #[error("{name}: {got} word(s) for a {need}-register value")]
    Short {
        /// Register name.
        name: String,
        /// Words given.
        got: usize,
        /// Words needed.
        need: u16,
    },
    /// Not a number (NaN or infinite float).
    #[error("{name}: not a number")]
    NotANumber {
        /// Register name.
        name: String,
    },
    /// Outside the declared range.
    #[error("{name}: {value} is outside its range {min:?}..={max:?}")]
    OutOfRange {
        /// Register name.
        name: String,
        /// Scaled value.
        value: f64,
        /// Lower end.
        min: Option<f64>,
        /// Upper end.
        max: Option<f64>,
    },
}

/// The value's bytes, most significant first, from its words in `order`.
fn bytes(words: &[u16], order: Order) -> Vec<u8> {
    let ordered: Vec<u16> = match order {
        Order::Abcd | Order::Badc => words.to_vec(),
        Order::Cdab | Order::Dcba => words.iter().rev().copied().collect(),
    };
    ordered
        .iter()
        .flat_map(|w| match order {
            Order::Abcd | Order::Cdab => w.to_be_bytes(),
            Order::Badc | Order::Dcba => w.to_le_bytes(),
        })
        .collect()
}

/// The words that carry `bytes` (most significant first) in `order`.
fn words(bytes: &[u8], order: Order) -> Vec<u16> {
    let mut w: Vec<u16> = bytes
        .chunks(2)
        .map(|c| match order {
            Order::Abcd | Order::Cdab => u16::from_be_bytes([c[0], c[1]]),
            Order::Badc | Order::Dcba => u16::from_le_bytes([c[0], c[1]]),
        })
        .collect();
    if matches!(order, Order::Cdab | Order::Dcba) {
        w.reverse();
    }
    w
}

impl Register {
    /// The scaled value of polled words (bits as 0/1 words), checked against its range.
    pub fn decode(&self, w: &[u16]) -> Result<f64, DecodeError> {
        let need = self.data_type.width();
        if w.len() < need as usize {
            return Err(DecodeError::Short {
                name: self.name.clone(),
                got: w.len(),
                need,
            });
        }
        let b = bytes(&w[..need as usize], self.order);
        let raw = match self.data_type {
            DataType::Bool => f64::from(u8::from(w[0] != 0)),
            DataType::U16 => f64::from(u16::from_be_bytes([b[0], b[1]])),
            DataType::I16 => f64::from(i16::from_be_bytes([b[0], b[1]])),
            DataType::U32 => f64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            DataType::I32 => f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            DataType::F32 => f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            DataType::F64 => f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        };
        if !raw.is_finite() {
            return Err(DecodeError::NotANumber {
                name: self.name.clone(),
            });
        }
        let value = raw * self.scale + self.offset;
        if !value.is_finite() {
            return Err(DecodeError::NotANumber {
                name: self.name.clone(),
            });
        }
        let below = self.min.is_some_and(|m| value < m);
        let above = self.max.is_some_and(|m| value > m);
        if below || above {
            return Err(DecodeError::OutOfRange {
                name: self.name.clone(),
                value,
                min: self.min,
                max: self.max,
            });
        }
        Ok(value)
    }

    /// The words that write `value` (unscaled back to raw, rounded for integer types),
    /// or `None` when it does not fit the type.
    pub fn encode(&self, value: f64) -> Option<Vec<u16>> {
        if self.scale == 0.0 || !value.is_finite() {
            return None;
        }
        let raw = (value - self.offset) / self.scale;
        if !raw.is_finite() {
            return None;
        }
        let int = |lo: f64, hi: f64| Some(raw.round()).filter(|r| (lo..=hi).contains(r));
        let b: Vec<u8> = match self.data_type {
            DataType::Bool => return Some(vec![u16::from(raw.round() != 0.0)]),
            DataType::U16 => (int(0.0, f64::from(u16::MAX))? as u16)
                .to_be_bytes()
                .to_vec(),
            DataType::I16 => (int(f64::from(i16::MIN), f64::from(i16::MAX))? as i16)
                .to_be_bytes()
                .to_vec(),
            DataType::U32 => (int(0.0, f64::from(u32::MAX))? as u32)
                .to_be_bytes()
                .to_vec(),
            DataType::I32 => (int(f64::from(i32::MIN), f64::from(i32::MAX))? as i32)
                .to_be_bytes()
                .to_vec(),
            // Beyond f32's range the cast gives infinity: not a value to write.
            DataType::F32 => Some(raw as f32)
                .filter(|f| f.is_finite())?
                .to_be_bytes()
                .to_vec(),
            DataType::F64 => raw.to_be_bytes().to_vec(),
        };
        Some(words(&b, self.order))
    }
}

/// One read: a table range covering some registers of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Table.
    pub table: Table,
    /// First address.
    pub start: u16,
    /// Registers (or bits) to read.
    pub count: u16,
    /// Indexes into the map of the registers it carries.
    pub registers: Vec<usize>,
}

/// Coalesces the registers `members` of a map into reads: per table, registers in
/// address order join a block while the block stays within the read limit and the gap to
/// the previous one is at most `max_gap` unread registers (reading a few extra beats
/// another round trip).
pub fn blocks(map: &[Register], members: &[usize], max_gap: u16) -> Vec<Block> {
    let mut order: Vec<usize> = members.to_vec();
    order.sort_by_key(|&i| (map[i].table, map[i].address));
    let mut out: Vec<Block> = Vec::new();
    for i in order {
        let r = &map[i];
        let limit = if r.table.is_bits() {
            MAX_READ_BITS
        } else {
            MAX_READ_REGISTERS
        };
        let end = u32::from(r.address) + u32::from(r.data_type.width());
        let joined = out
            .last_mut()
            .filter(|b| b.table == r.table)
            .is_some_and(|b| {
                let b_end = u32::from(b.start) + u32::from(b.count);
                let fits = end - u32::from(b.start) <= u32::from(limit);
                let near = u32::from(r.address) <= b_end + u32::from(max_gap);
                if fits && near {
                    b.count = b.count.max((end - u32::from(b.start)) as u16);
                    b.registers.push(i);
                }
                fits && near
            });
        if !joined {
            out.push(Block {
                table: r.table,
                start: r.address,
                count: r.data_type.width(),
                registers: vec![i],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, table: Table, address: u16, data_type: DataType, order: Order) -> Register {
        Register {
            name: name.into(),
            table,
            address,
            data_type,
            order,
            scale: 1.0,
            offset: 0.0,
            min: None,
            max: None,
        }
    }

    #[test]
    fn every_type_decodes_in_every_order_and_encodes_back() {
        // 230.5 V as an Eastron float32: 0x4366 0x8000 big-endian.
        let v = reg("voltage_v", Table::Input, 0, DataType::F32, Order::Abcd);
        assert_eq!(v.decode(&[0x4366, 0x8000]), Ok(230.5));
        let cases: [(DataType, f64); 6] = [
            (DataType::U16, 65_000.0),
            (DataType::I16, -1234.0),
            (DataType::U32, 4_000_000_000.0),
            (DataType::I32, -2_000_000_000.0),
            (DataType::F32, -0.25),
            (DataType::F64, 123_456.789_012_5),
        ];
        for (t, value) in cases {
            for order in [Order::Abcd, Order::Cdab, Order::Badc, Order::Dcba] {
                let r = reg("x", Table::Holding, 10, t, order);
                let w = r
                    .encode(value)
                    .unwrap_or_else(|| panic!("{t:?} {order:?} encodes"));
                assert_eq!(w.len(), t.width() as usize);
                assert_eq!(r.decode(&w), Ok(value), "{t:?} {order:?} {w:04x?}");
            }
        }
        // The orders differ on the wire: 0x11223344 as u32.
        let u = |o| reg("x", Table::Holding, 0, DataType::U32, o).encode(f64::from(0x1122_3344u32));
        assert_eq!(u(Order::Abcd), Some(vec![0x1122, 0x3344]));
        assert_eq!(u(Order::Cdab), Some(vec![0x3344, 0x1122]));
        assert_eq!(u(Order::Badc), Some(vec![0x2211, 0x4433]));
        assert_eq!(u(Order::Dcba), Some(vec![0x4433, 0x2211]));
        // A 16-bit register's bytes swap in the byte-swapped orders; its one word has no
        // word order.
        let h = |o| reg("x", Table::Holding, 0, DataType::U16, o);
        assert_eq!(
            h(Order::Abcd).encode(f64::from(0x1122u16)),
            Some(vec![0x1122])
        );
        assert_eq!(
            h(Order::Cdab).encode(f64::from(0x1122u16)),
            Some(vec![0x1122])
        );
        assert_eq!(
            h(Order::Badc).encode(f64::from(0x1122u16)),
            Some(vec![0x2211])
        );
        assert_eq!(h(Order::Dcba).decode(&[0x2211]), Ok(f64::from(0x1122u16)));
    }

    #[test]
    fn scale_offset_and_range_make_out_of_range_values_rejections() {
        let mut t = reg("temperature_c", Table::Input, 3, DataType::I16, Order::Abcd);
        t.scale = 0.1;
        t.offset = -40.0;
        t.min = Some(-40.0);
        t.max = Some(85.0);
        assert!((t.decode(&[652]).expect("in range") - 25.2).abs() < 1e-9);
        assert!(matches!(
            t.decode(&[2000]),
            Err(DecodeError::OutOfRange { .. })
        ));
        assert!(matches!(
            t.decode(&[]),
            Err(DecodeError::Short {
                got: 0,
                need: 1,
                ..
            })
        ));
        let nan = reg("x", Table::Input, 0, DataType::F32, Order::Abcd);
        assert!(matches!(
            nan.decode(&[0x7fc0, 0]),
            Err(DecodeError::NotANumber { .. })
        ));
        assert_eq!(t.encode(25.2), Some(vec![652]));
        let small = reg("x", Table::Holding, 0, DataType::U16, Order::Abcd);
        assert_eq!(small.encode(70_000.0), None, "does not fit a u16");
        let f = reg("x", Table::Holding, 0, DataType::F32, Order::Abcd);
        assert_eq!(
            f.encode(1e39),
            None,
            "beyond f32 is not written as infinity"
        );
        let mut tiny = reg("x", Table::Holding, 0, DataType::F64, Order::Abcd);
        tiny.scale = 1e-300;
        assert_eq!(
            tiny.encode(1e300),
            None,
            "an infinite raw value is not written"
        );
    }

    #[test]
    fn a_map_coalesces_into_reads_of_at_most_125_registers_per_table() {
        // The Eastron map: voltage 0x00, current 0x06, power 0x0C, PF 0x1E, Hz 0x46, kWh 0x48.
        let eastron: Vec<Register> = [0x00, 0x06, 0x0C, 0x1E, 0x46, 0x48]
            .into_iter()
            .map(|a| reg("m", Table::Input, a, DataType::F32, Order::Abcd))
            .chain([reg("relay", Table::Coil, 0, DataType::Bool, Order::Abcd)])
            .collect();
        let b = blocks(&eastron, &(0..eastron.len()).collect::<Vec<_>>(), 16);
        assert_eq!(b.len(), 3, "{b:?}");
        assert_eq!(
            (b[0].table, b[0].start, b[0].count),
            (Table::Input, 0x00, 0x20)
        );
        assert_eq!(b[0].registers, [0, 1, 2, 3]);
        assert_eq!((b[1].start, b[1].count, b[1].registers.len()), (0x46, 4, 2));
        assert_eq!(b[2].table, Table::Coil);
        // A long map splits at the read limit.
        let long: Vec<Register> = (0..200)
            .map(|a| reg("m", Table::Holding, a, DataType::U16, Order::Abcd))
            .collect();
        let b = blocks(&long, &(0..long.len()).collect::<Vec<_>>(), 0);
        assert_eq!(b.iter().map(|x| x.count).collect::<Vec<_>>(), [125, 75]);
        assert!(b.iter().all(|x| x.count <= MAX_READ_REGISTERS));
    }
}
