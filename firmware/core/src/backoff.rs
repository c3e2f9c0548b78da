//! Reconnect backoff with jitter: the delay doubles from `min_ms` up to `max_ms`, and each
//! delay is drawn from its upper half, so devices that lost the gateway together do not
//! all come back in the same instant.
//!
//! Owns only the delays; does not own timers or connecting. The jitter comes from a
//! xorshift generator seeded per device (the seed mixed first, so consecutive serial
//! numbers do not move in step): no hardware RNG needed, reproducible in tests.

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
    rng: u32,
}

/// Spreads neighbouring seeds (serial numbers 41, 42, 43 ...) over the generator's
/// states, never zero (xorshift's fixed point).
fn mix(seed: u32) -> u32 {
    let mut x = seed.wrapping_add(0x9E37_79B9);
    x = (x ^ (x >> 16)).wrapping_mul(0x85EB_CA6B);
    x = (x ^ (x >> 13)).wrapping_mul(0xC2B2_AE35);
    x ^= x >> 16;
    if x == 0 {
        1
    } else {
        x
    }
}

impl Backoff {
    /// Delays from `min_ms` doubling to `max_ms`; `seed` varies the jitter per device.
    pub fn new(min_ms: u64, max_ms: u64, seed: u32) -> Self {
        Backoff {
            min_ms: min_ms.max(1),
            max_ms: max_ms.max(min_ms.max(1)),
            attempt: 0,
            rng: mix(seed),
        }
    }

    /// A connection succeeded: the next failure starts from `min_ms` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt, ms.
    pub fn next_delay_ms(&mut self) -> u64 {
        let ceiling = self
            .min_ms
            .saturating_mul(1u64 << self.attempt.min(30))
            .min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + u64::from(self.random()) % (ceiling - half + 1)
    }

    fn random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_up_to_the_ceiling_and_reset() {
        let mut b = Backoff::new(1_000, 8_000, 42);
        let ceilings = [1_000, 2_000, 4_000, 8_000, 8_000, 8_000];
        for c in ceilings {
            let d = b.next_delay_ms();
            assert!(d >= c / 2 && d <= c, "delay {d} outside [{}, {c}]", c / 2);
        }
        b.reset();
        assert!(b.next_delay_ms() <= 1_000);
    }

    #[test]
    fn devices_with_different_seeds_spread_out() {
        let mut delays = [0u64; 50];
        for (seed, d) in delays.iter_mut().enumerate() {
            let mut b = Backoff::new(1_000, 60_000, seed as u32 * 7919);
            for _ in 0..4 {
                *d = b.next_delay_ms();
            }
        }
        let min = delays.iter().min().copied().unwrap_or(0);
        let max = delays.iter().max().copied().unwrap_or(0);
        // The fourth delay is drawn from [4 s, 8 s]: 50 devices cover most of it.
        assert!(min >= 4_000 && max <= 8_000);
        assert!(max - min > 2_500, "jitter too narrow: {min}..{max}");
    }

    #[test]
    fn consecutive_seeds_do_not_move_in_step() {
        let first = |seed| Backoff::new(1_000, 60_000, seed).next_delay_ms();
        let same = (0..100u32)
            .filter(|s| first(2 * s) == first(2 * s + 1))
            .count();
        assert!(
            same < 5,
            "{same} of 100 neighbouring pairs drew the same delay"
        );
    }
}
