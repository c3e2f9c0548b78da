//! Slows down password guessing: after a few failed sign-ins in a row for one name from
//! one address, or many from one address whatever the names, each further attempt must
//! wait, twice as long each time, up to a cap. Pure: time is an input, memory is bounded.
//!
//! Does not check passwords (`people::db` does). Waits are per address, so a stranger
//! guessing from elsewhere cannot lock a caregiver out of a night shift; and a wait always
//! ends. IPv6 addresses count per /64 (one host's many addresses are one address).

use std::collections::HashMap;
use std::net::IpAddr;

/// Failed attempts allowed for one name from one address before waits begin.
pub const FREE_ATTEMPTS: u32 = 5;
/// Failed attempts allowed from one address, over all names, before waits begin.
pub const FREE_PER_ADDRESS: u32 = 20;
/// The first wait.
pub const FIRST_WAIT_MS: u64 = 30_000;
/// The longest wait.
pub const MAX_WAIT_MS: u64 = 15 * 60_000;
/// Failures older than this are forgotten.
const FORGET_MS: u64 = 60 * 60_000;
/// Keys kept at most (oldest forgotten first when full).
const MAX_KEYS: usize = 10_000;

/// What one attempt counts against, with the failures it may have before waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// `name@address` or `address`.
    pub id: String,
    /// Failures allowed before waits begin.
    pub free: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_ms: u64,
}

impl Entry {
    /// When the next attempt is allowed.
    fn next_allowed_ms(&self, free: u32, now_ms: u64) -> u64 {
        if self.failures < free || now_ms.saturating_sub(self.last_ms) >= FORGET_MS {
            return 0;
        }
        let doublings = (self.failures - free).min(16);
        let wait = FIRST_WAIT_MS
            .saturating_mul(1 << doublings)
            .min(MAX_WAIT_MS);
        self.last_ms.saturating_add(wait)
    }
}

/// Failed sign-ins by key.
#[derive(Debug, Default)]
pub struct Throttle {
    keys: HashMap<String, Entry>,
}

impl Throttle {
    /// `Err(ms to wait)` when any of `keys` must still wait at `now_ms`.
    pub fn check(&self, keys: &[Key], now_ms: u64) -> Result<(), u64> {
        let until = keys
            .iter()
            .filter_map(|k| Some(self.keys.get(&k.id)?.next_allowed_ms(k.free, now_ms)))
            .max()
            .unwrap_or(0);
        if until > now_ms {
            Err(until - now_ms)
        } else {
            Ok(())
        }
    }

    /// Counts a failed attempt against each key (counted before the password is checked,
    /// so parallel guesses cannot all slip through one check).
    pub fn failed(&mut self, keys: &[Key], now_ms: u64) {
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
            let e = self.keys.entry(k.id.clone()).or_insert(Entry {
                failures: 0,
                last_ms: now_ms,
            });
            if now_ms.saturating_sub(e.last_ms) >= FORGET_MS {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last_ms = now_ms;
        }
    }

    /// A successful sign-in takes back the attempt counted against each key, and clears
    /// the name's count from that address (not the address's own count: a valid account
    /// must not reset the address between guesses at other names).
    pub fn succeeded(&mut self, keys: &[Key]) {
        for k in keys {
            if k.id.contains('@') {
                self.keys.remove(&k.id);
            } else if let Some(e) = self.keys.get_mut(&k.id) {
                e.failures = e.failures.saturating_sub(1);
            }
        }
    }
}

/// The address an attempt counts against: IPv4 as is, IPv6 by its /64.
fn address(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The keys one attempt by `name` from `addr` counts against.
pub fn keys(name: &str, addr: IpAddr) -> Vec<Key> {
    let a = address(addr);
    vec![
        Key {
            id: format!("{}@{a}", name.trim().to_lowercase()),
            free: FREE_ATTEMPTS,
        },
        Key {
            id: a,
            free: FREE_PER_ADDRESS,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn five_failures_then_waits_that_double_up_to_the_cap() {
        let mut t = Throttle::default();
        let k = keys("Zhang", ip("10.0.0.1"));
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
        // A wait always ends, and an hour later the slate is clean.
        assert_eq!(t.check(&k, now + MAX_WAIT_MS), Ok(()));
        t.failed(&k, now + FORGET_MS);
        assert_eq!(t.check(&k, now + FORGET_MS), Ok(()));
    }

    #[test]
    fn a_guesser_elsewhere_does_not_lock_the_name_out_here() {
        let mut t = Throttle::default();
        for _ in 0..10 {
            t.failed(&keys("zhang", ip("10.0.0.66")), 0);
        }
        assert!(t.check(&keys("zhang", ip("10.0.0.66")), 0).is_err());
        assert!(t.check(&keys("ZHANG ", ip("10.0.0.66")), 0).is_err());
        assert_eq!(t.check(&keys("zhang", ip("10.0.0.7")), 0), Ok(()));
    }

    #[test]
    fn an_address_guessing_many_names_is_slowed_and_a_valid_account_does_not_reset_it() {
        let mut t = Throttle::default();
        let a = ip("10.0.0.9");
        for i in 0..FREE_PER_ADDRESS - 1 {
            t.failed(&keys(&format!("user{i}"), a), 0);
        }
        // The attacker's own account: counted, then taken back; the address's count stays.
        let own = keys("mallory", a);
        t.failed(&own, 0);
        t.succeeded(&own);
        t.failed(&keys("user-x", a), 0);
        assert!(t.check(&keys("someone-else", a), 0).is_err());
        assert_eq!(t.check(&keys("someone-else", ip("10.0.0.10")), 0), Ok(()));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            address(ip("2001:db8:1:2:aaaa::1")),
            address(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            address(ip("2001:db8:1:2::1")),
            address(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address(ip("::ffff:127.0.0.1")), "127.0.0.1");
    }

    #[test]
    fn memory_stays_bounded() {
        let mut t = Throttle::default();
        for i in 0..(MAX_KEYS as u64 + 50) {
            t.failed(
                &[Key {
                    id: format!("n{i}@x"),
                    free: FREE_ATTEMPTS,
                }],
                i,
            );
        }
        assert!(t.keys.len() <= MAX_KEYS);
    }
}
