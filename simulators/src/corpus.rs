//! A deterministic, realistic time-series corpus for storage benchmarks: a fleet of
//! devices of mixed kinds reporting wire-protocol [`Report`]s at their natural rates.
//!
//! Owns the fleet layout (kinds, ids, site/zone tags), the reporting schedule and the
//! stats; the signal models are in [`model`]. Does not own how points are stored or sent:
//! consumers turn each [`Item`]'s report into points with [`Report::for_each_metric`], so
//! every storage side derives exactly the same points.
//!
//! **Order**: [`Corpus::for_each`] yields items in non-decreasing time order across the
//! whole fleet (devices interleaved, as a gateway receives them); within one second,
//! in device order, a device's main report before its battery report. Times are whole
//! seconds (`device_time`), in `[end - span, end)`. Every call regenerates the same items
//! from the seed, allocation-free.
//!
//! Rates: vitals every 5 s (heart rate, SpO2, respiration, quality), water-level gauges
//! and power meters every minute, street lights and manholes every 5 and 10 minutes,
//! waste bins every 15; battery-powered kinds add an hourly battery report. About 1 in 40
//! reports is one second late (the device's clock tick), as real devices are.

pub(crate) mod model;

use linli_protocol::report::{DeviceKind, Report};

use model::{Rain, Rng, State};

/// 2026-06-01T00:00:00Z: the default end of the corpus (fixed, so runs are comparable).
pub const DEFAULT_END_S: u32 = 1_780_272_000;

/// How big a corpus, and which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorpusConfig {
    /// Devices in the fleet.
    pub devices: usize,
    /// Simulated span, seconds.
    pub span_s: u32,
    /// End of the span (exclusive), Unix seconds.
    pub end_s: u32,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for CorpusConfig {
    /// 1 000 devices over 24 h: ~15 M points, ~3 500 series.
    fn default() -> Self {
        CorpusConfig {
            devices: 1_000,
            span_s: 24 * 3600,
            end_s: DEFAULT_END_S,
            seed: 1,
        }
    }
}

/// Why a corpus cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CorpusError {
    /// No devices or an empty span.
    #[error("the corpus needs at least one device and a span of at least one second")]
    Empty,
    /// The span starts before the Unix epoch.
    #[error("span {span_s} s does not fit before end {end_s}")]
    SpanTooLong {
        /// Span asked for.
        span_s: u32,
        /// End asked for.
        end_s: u32,
    },
}

/// The fleet pattern, repeated every 20 devices: 4 vitals, 6 street lights, 3 water
/// gauges, 2 power meters, 3 waste bins, 2 manholes.
const SLOTS: [DeviceKind; 20] = {
    use DeviceKind::*;
    [
        Vitals,
        StreetLight,
        WaterLevel,
        StreetLight,
        Vitals,
        PowerMeter,
        StreetLight,
        WasteBin,
        WaterLevel,
        Vitals,
        StreetLight,
        Manhole,
        WaterLevel,
        StreetLight,
        Vitals,
        WasteBin,
        PowerMeter,
        StreetLight,
        WasteBin,
        Manhole,
    ]
};

/// Site names as operators write them: spaces and commas included, so line-protocol
/// escaping is exercised by the real corpus.
const SITES: [&str; 6] = [
    "Nanshan Care Home",
    "Riverside, East Bank",
    "Old Town",
    "Xili Lake Park",
    "Harbour Road Depot",
    "Lane 7 Estate",
];

const ZONES: [&str; 5] = [
    "Block A",
    "Block B",
    "North Wing",
    "Street 12",
    "Underpass 3",
];

/// Reporting period of a kind's main report, seconds.
pub const fn period_s(kind: DeviceKind) -> u32 {
    match kind {
        DeviceKind::Vitals => 5,
        DeviceKind::WaterLevel | DeviceKind::PowerMeter => 60,
        DeviceKind::StreetLight => 300,
        DeviceKind::Manhole => 600,
        _ => 900,
    }
}

/// Period of the battery report of battery-powered kinds.
pub const BATTERY_PERIOD_S: u32 = 3600;

const fn has_battery(kind: DeviceKind) -> bool {
    matches!(
        kind,
        DeviceKind::Vitals | DeviceKind::WaterLevel | DeviceKind::WasteBin | DeviceKind::Manhole
    )
}

/// One device of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Device id, e.g. `vitals-00004`.
    pub id: String,
    /// Its kind.
    pub kind: DeviceKind,
    /// Site tag.
    pub site: &'static str,
    /// Zone tag.
    pub zone: &'static str,
    /// Main reporting period, seconds.
    pub period_s: u32,
    /// Sends an hourly battery report too.
    pub battery: bool,
    /// Position in [`Corpus::devices`].
    pub index: usize,
    pub(crate) site_index: usize,
}

/// One report of one device at one time.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// Who reported.
    pub device: &'a DeviceSpec,
    /// Device time in milliseconds (always whole seconds).
    pub time_ms: i64,
    /// What it reported.
    pub report: Report,
}

/// A generated fleet; see the module docs for order and rates.
#[derive(Debug, Clone)]
pub struct Corpus {
    config: CorpusConfig,
    devices: Vec<DeviceSpec>,
    rain: Vec<Vec<Rain>>,
}

/// What a corpus holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Devices.
    pub devices: usize,
    /// Devices per kind, in [`DeviceKind::ALL`] order, kinds present only.
    pub per_kind: Vec<(DeviceKind, usize)>,
    /// Distinct (device, metric) pairs.
    pub series: usize,
    /// Reports.
    pub reports: u64,
    /// Points (metrics over all reports).
    pub points: u64,
    /// Start (inclusive) and end (exclusive), Unix seconds.
    pub start_s: u32,
    /// End, exclusive.
    pub end_s: u32,
}

impl Corpus {
    /// Lays out the fleet and the weather.
    pub fn new(config: CorpusConfig) -> Result<Self, CorpusError> {
        if config.devices == 0 || config.span_s == 0 {
            return Err(CorpusError::Empty);
        }
        if config.span_s > config.end_s {
            return Err(CorpusError::SpanTooLong {
                span_s: config.span_s,
                end_s: config.end_s,
            });
        }
        let mut rng = Rng::new(config.seed ^ 0xC0FF_EE00_D15E_A5E5);
        let devices = (0..config.devices)
            .map(|i| {
                let kind = SLOTS[i % SLOTS.len()];
                let site_index = (rng.next_u64() % SITES.len() as u64) as usize;
                DeviceSpec {
                    id: format!("{}-{i:05}", kind.as_str()),
                    kind,
                    site: SITES[site_index],
                    zone: ZONES[(rng.next_u64() % ZONES.len() as u64) as usize],
                    period_s: period_s(kind),
                    battery: has_battery(kind),
                    index: i,
                    site_index,
                }
            })
            .collect();
        let start = config.end_s - config.span_s;
        let rain = SITES
            .iter()
            .map(|_| {
                let n = 1 + rng.next_u64() % 3;
                (0..n)
                    .map(|_| Rain {
                        start: start + (rng.unit() * f64::from(config.span_s)) as u32,
                        rise_s: rng.range(1_200.0, 5_400.0),
                        peak_mm: rng.range(100.0, 600.0),
                        tau_s: rng.range(3_600.0, 14_400.0),
                    })
                    .collect()
            })
            .collect();
        Ok(Corpus {
            config,
            devices,
            rain,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> CorpusConfig {
        self.config
    }

    /// The fleet.
    pub fn devices(&self) -> &[DeviceSpec] {
        &self.devices
    }

    /// First second of the span.
    pub fn start_s(&self) -> u32 {
        self.config.end_s - self.config.span_s
    }

    /// Calls `f` on every item, in time order (see the module docs). Allocates only the
    /// per-device state, once.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&Item<'a>)) {
        struct Sched {
            state: State,
            nominal: u32,
            next: u32,
            battery_next: u32,
        }
        let start = self.start_s();
        let mut sched: Vec<Sched> = self
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut state = State::new(self.config.seed.wrapping_mul(1_000_003) ^ i as u64);
                let nominal = start + (state.rng.next_u64() % u64::from(d.period_s)) as u32;
                let battery_next = start + (state.rng.next_u64() % 3600) as u32;
                Sched {
                    state,
                    nominal,
                    next: nominal,
                    battery_next,
                }
            })
            .collect();
        for t in start..self.config.end_s {
            let time_ms = i64::from(t) * 1000;
            for (d, s) in self.devices.iter().zip(sched.iter_mut()) {
                if s.next == t {
                    let report = s.state.report(d.kind, t, &self.rain[d.site_index]);
                    f(&Item {
                        device: d,
                        time_ms,
                        report,
                    });
                    s.nominal += d.period_s;
                    s.next = s.nominal + u32::from(s.state.rng.chance(1.0 / 40.0));
                }
                if d.battery && s.battery_next == t {
                    let report = s.state.battery();
                    f(&Item {
                        device: d,
                        time_ms,
                        report,
                    });
                    s.battery_next += BATTERY_PERIOD_S;
                }
            }
        }
    }

    /// Counts devices, series, reports and points (one pass over the corpus).
    pub fn stats(&self) -> Stats {
        let mut names: Vec<&'static str> = Vec::new();
        let mut masks = vec![0u64; self.devices.len()];
        let (mut reports, mut points) = (0u64, 0u64);
        self.for_each(|it| {
            reports += 1;
            let m = &mut masks[it.device.index];
            it.report.for_each_metric(&mut |name, _| {
                points += 1;
                let k = match names.iter().position(|n| *n == name) {
                    Some(k) => k,
                    None => {
                        names.push(name);
                        names.len() - 1
                    }
                };
                *m |= 1u64 << (k % 64);
            });
        });
        let per_kind = DeviceKind::ALL
            .into_iter()
            .map(|k| (k, self.devices.iter().filter(|d| d.kind == k).count()))
            .filter(|(_, n)| *n > 0)
            .collect();
        Stats {
            devices: self.devices.len(),
            per_kind,
            series: masks.iter().map(|m| m.count_ones() as usize).sum(),
            reports,
            points,
            start_s: self.start_s(),
            end_s: self.config.end_s,
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<String> = self
            .per_kind
            .iter()
            .map(|(k, n)| format!("{n} {}", k.as_str()))
            .collect();
        write!(
            f,
            "{} devices ({}), {} series, {} points in {} reports, span {:.1} h [{}, {}) s",
            self.devices,
            kinds.join(", "),
            self.series,
            self.points,
            self.reports,
            f64::from(self.end_s - self.start_s) / 3600.0,
            self.start_s,
            self.end_s
        )
    }
}

#[cfg(test)]
mod tests;
