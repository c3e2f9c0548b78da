//! lis3dh / lis2dh12 raw counts ↔ milli-g, the unit the fall detector takes.
//!
//! Owns the count convention only; reading the sensor is the driver's.

/// Accelerometer full scale in high-resolution mode (12-bit data, left-justified in
/// i16): a raw count `r` is `(r >> 4) × mg_per_digit` milli-g.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// ±8 g, 4 mg per digit (clips at −8192 / +8188 mg).
    G8,
    /// ±16 g, 12 mg per digit (lis3dh datasheet value; clips at ±24.5 g).
    G16,
}

impl Range {
    /// Milli-g per 12-bit digit.
    pub const fn mg_per_digit(self) -> i16 {
        match self {
            Range::G8 => 4,
            Range::G16 => 12,
        }
    }

    /// Raw left-justified counts to milli-g.
    pub fn to_mg(self, raw: [i16; 3]) -> [i16; 3] {
        raw.map(|r| (r >> 4) * self.mg_per_digit())
    }

    /// Milli-g to the raw counts the sensor would give: rounded to a digit, clipped at
    /// full scale. The virtual sensor's side of [`Range::to_mg`].
    pub fn to_raw(self, mg: [i16; 3]) -> [i16; 3] {
        let d = i32::from(self.mg_per_digit());
        mg.map(|m| {
            let m = i32::from(m);
            let digits = (m + m.signum() * d / 2) / d;
            (digits.clamp(-2048, 2047) * 16) as i16
        })
    }
}
