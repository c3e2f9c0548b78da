//! Supervision: per-device liveness from heartbeats, traffic and Last Will.
//!
//! Pure: takes the times as arguments and does no I/O. Silence is `unknown`, never `ok`
//! and never `failed`: a device not heard from since the gateway started is `unknown`.

use serde::Serialize;

/// A device's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Heard from within its heartbeat interval.
    Ok,
    /// Missed at least `late_after_missed` intervals, or its connection dropped (Will).
    Late,
    /// Missed at least `lost_after_missed` intervals.
    Lost,
    /// Not heard from since the gateway started.
    Unknown,
}

impl Liveness {
    /// Every state, for metrics.
    pub const ALL: [Liveness; 4] = [
        Liveness::Ok,
        Liveness::Late,
        Liveness::Lost,
        Liveness::Unknown,
    ];

    /// Index into [`Liveness::ALL`] (declaration order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Liveness::Ok => "ok",
            Liveness::Late => "late",
            Liveness::Lost => "lost",
            Liveness::Unknown => "unknown",
        }
    }
}

/// Thresholds, in heartbeat intervals.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Missed intervals before `late`.
    pub late_after_missed: u32,
    /// Missed intervals before `lost`.
    pub lost_after_missed: u32,
}

/// Liveness of a device last heard at `last_seen_ms` (None = not since start), with a
/// heartbeat every `heartbeat_ms`, at time `now_ms`. `will` is true when the broker
/// published the device's Last Will after it was last heard.
pub fn liveness(
    last_seen_ms: Option<u64>,
    will: bool,
    heartbeat_ms: u64,
    now_ms: u64,
    t: Thresholds,
) -> Liveness {
    let Some(seen) = last_seen_ms else {
        return Liveness::Unknown;
    };
    let silent = now_ms.saturating_sub(seen);
    let hb = heartbeat_ms.max(1);
    if silent > hb.saturating_mul(u64::from(t.lost_after_missed)) {
        Liveness::Lost
    } else if will || silent > hb.saturating_mul(u64::from(t.late_after_missed)) {
        Liveness::Late
    } else {
        Liveness::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        late_after_missed: 1,
        lost_after_missed: 3,
    };

    #[test]
    fn never_seen_is_unknown_not_ok_or_lost() {
        assert_eq!(
            liveness(None, false, 60_000, 10_000_000, T),
            Liveness::Unknown
        );
    }

    #[test]
    fn walks_ok_late_lost_as_intervals_are_missed() {
        let hb = 60_000;
        assert_eq!(liveness(Some(0), false, hb, 0, T), Liveness::Ok);
        assert_eq!(liveness(Some(0), false, hb, hb, T), Liveness::Ok);
        assert_eq!(liveness(Some(0), false, hb, hb + 1, T), Liveness::Late);
        assert_eq!(liveness(Some(0), false, hb, 3 * hb, T), Liveness::Late);
        assert_eq!(liveness(Some(0), false, hb, 3 * hb + 1, T), Liveness::Lost);
    }

    #[test]
    fn will_makes_a_fresh_device_late_until_heard_again() {
        assert_eq!(liveness(Some(0), true, 60_000, 1_000, T), Liveness::Late);
        assert_eq!(liveness(Some(0), true, 60_000, 400_000, T), Liveness::Lost);
    }
}
