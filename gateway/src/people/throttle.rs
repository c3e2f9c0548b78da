//! Slows down password guessing: after a few failed sign-ins in a row for one name, or
//! from one address, each further attempt must wait, twice as long each time, up to a cap.
//! Pure: time is an input, memory is bounded.
//!
//! Does not check passwords (`people::db` does) and does not lock accounts for good: a
//! wait always ends, so an attacker cannot lock a caregiver out of a night shift for more
//! than the cap.

use std::collections::HashMap;

/// Failed attempts allowed before waits begin.
pub const FREE_ATTEMPTS: u32 = 5;
/// The first wait.
pub const FIRST_WAIT_MS: u64 = 30_000;
/// The longest wait.
pub const MAX_WAIT_MS: u64 = 15 * 60_000;
/// A key idle this long is forgotten.
const FORGET_MS: u64 = 60 * 60_000;
/// Keys kept at most (oldest forgotten first when full).
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_ms: u64,
}

impl Entry {
    /// When the next attempt is allowed.
    fn next_allowed_ms(&self) -> u64 {
        if self.failures < FREE_ATTEMPTS {
            return 0;
        }
        let doublings = (self.failures - FREE_ATTEMPTS).min(16);
        let wait = FIRST_WAIT_MS
            .saturating_mul(1 << doublings)
            .min(MAX_WAIT_MS);
        self.last_ms.saturating_add(wait)
    }
}

/// Failed sign-ins by key (`name:…` and `ip:…`).
#[derive(Debug, Default)]
pub struct Throttle {
    keys: HashMap<String, Entry>,
}

impl Throttle {
    /// `Err(ms to wait)` when any of `keys` must still wait at `now_ms`.
    pub fn check(&self, keys: &[String], now_ms: u64) -> Result<(), u64> {
        let until = keys
            .iter()
            .filter_map(|k| self.keys.get(k))
            .map(|e| e.next_allowed_ms())
            .max()
            .unwrap_or(0);
        if until > now_ms {
            Err(until - now_ms)
        } else {
            Ok(())
        }
    }

    /// Counts a failed attempt against each key.
    pub fn failed(&mut self, keys: &[String], now_ms: u64) {
        if self.keys.len() + keys.len() > MAX_KEYS {
            self.keys
                .retain(|_, e| now_ms.saturating_sub(e.last_ms) < FORGET_MS);
        }
        while self.keys.len() + keys.len() > MAX_KEYS {
            let Some(oldest) = self
                .keys
                .iter()
                .min_by_key(|(_, e)| e.last_ms)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.keys.remove(&oldest);
        }
        for k in keys {
            let e = self.keys.entry(k.clone()).or_insert(Entry {
                failures: 0,
                last_ms: now_ms,
            });
            e.failures = e.failures.saturating_add(1);
            e.last_ms = now_ms;
        }
    }

    /// A successful sign-in clears each key's count.
    pub fn succeeded(&mut self, keys: &[String]) {
        for k in keys {
            self.keys.remove(k);
        }
    }
}

/// The keys one attempt counts against.
pub fn keys(name: &str, addr: Option<std::net::IpAddr>) -> Vec<String> {
    let mut k = vec![format!("name:{}", name.trim().to_lowercase())];
    if let Some(a) = addr {
        k.push(format!("ip:{a}"));
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_then_waits_that_double_up_to_the_cap() {
        let mut t = Throttle::default();
        let k = keys("Zhang", None);
        let mut now = 1_000_000;
        for _ in 0..FREE_ATTEMPTS {
            assert_eq!(t.check(&k, now), Ok(()));
            t.failed(&k, now);
            now += 1_000;
        }
        // The sixth attempt comes 1 s after the fifth failure: it must wait 29 s more.
        assert_eq!(t.check(&k, now), Err(FIRST_WAIT_MS - 1_000));
        now += FIRST_WAIT_MS;
        assert_eq!(t.check(&k, now), Ok(()));
        t.failed(&k, now);
        assert_eq!(t.check(&k, now), Err(2 * FIRST_WAIT_MS));
        for _ in 0..40 {
            t.failed(&k, now);
        }
        assert_eq!(t.check(&k, now), Err(MAX_WAIT_MS));
        // A wait always ends.
        assert_eq!(t.check(&k, now + MAX_WAIT_MS), Ok(()));
    }

    #[test]
    fn names_are_case_blind_and_an_address_is_slowed_across_names() {
        let mut t = Throttle::default();
        let ip = Some("127.0.0.1".parse().unwrap());
        for i in 0..FREE_ATTEMPTS {
            t.failed(&keys(&format!("user{i}"), ip), 0);
        }
        assert!(t.check(&keys("someone-else", ip), 0).is_err());
        assert!(t.check(&keys("someone-else", None), 0).is_ok());
        let mut t = Throttle::default();
        for _ in 0..FREE_ATTEMPTS {
            t.failed(&keys("Zhang", None), 0);
        }
        assert!(t.check(&keys(" zhang ", None), 0).is_err());
    }

    #[test]
    fn success_clears_and_memory_stays_bounded() {
        let mut t = Throttle::default();
        let k = keys("a", None);
        for _ in 0..4 {
            t.failed(&k, 0);
        }
        t.succeeded(&k);
        for _ in 0..4 {
            t.failed(&k, 0);
        }
        assert_eq!(t.check(&k, 0), Ok(()));
        for i in 0..(MAX_KEYS as u64 + 50) {
            t.failed(&[format!("name:{i}")], i);
        }
        assert!(t.keys.len() <= MAX_KEYS);
    }
}
