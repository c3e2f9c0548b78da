//! The replayed day: every reading the fleet sends over `hours` of simulated time,
//! deterministic from a seed, handed out in time order one chunk (a simulated minute) at
//! a time so the whole day never sits in memory.
//!
//! Owns the device models and the residents' routines: vitals every 10–30 s (they
//! dominate), pendant activity every 5 min, home-hub heartbeats every 15 min, street
//! lights and power meters every minute, water gauges every 5 min, manholes and bins
//! every 10 min, battery reports every 6 h; bed, PIR and door reports on change, from a
//! daily routine (bedtime, night trips to the bathroom, waking, moving about, going
//! out). And the anomalies that should raise alarms: SOS presses, falls (and stumbles
//! that should not), heart-rate and SpO2 episodes in bed (and short spikes that should
//! not), a night exit not followed by a return, no morning motion, silent hubs and
//! pendants, low batteries, dead lamps, tilted and removed manhole covers, flooded
//! underpasses, bin fires. Does not evaluate anything (see `eval`).

use linli_protocol::report::{
    Battery, Bed, Door, HubHeartbeat, Manhole, Motion, Pendant, PowerMeter, StreetLight, Vitals,
    WasteBin, WaterLevel,
};
use linli_protocol::{DeviceKind, Report};

use super::fleet::Fleet;
use crate::corpus::model::Rng;

const S: u64 = 1000;
const MIN: u64 = 60 * S;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;

/// One reading: gateway receive time (ms), device index, report.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// Receive time, ms since the epoch.
    pub t: u64,
    /// Index into [`Fleet::profiles`].
    pub device: u32,
    /// What the device said.
    pub report: Report,
}

/// Anomalies injected per day, as a share of the population they apply to (at least one
/// of each kind whenever that population exists).
#[derive(Debug, Clone, Copy)]
struct Rates;

impl Rates {
    const SOS: f64 = 0.02;
    const FALL: f64 = 0.003;
    const STUMBLE: f64 = 0.01;
    const PENDANT_DEAD: f64 = 0.003;
    const HUB_OUTAGE: f64 = 0.002;
    const LOW_BATTERY: f64 = 0.005;
    const HEART_RATE: f64 = 0.005;
    const HEART_SPIKE: f64 = 0.03;
    const SPO2_DIP: f64 = 0.003;
    const SPO2_BLIP: f64 = 0.03;
    const NOT_BACK: f64 = 0.005;
    const NO_MORNING: f64 = 0.003;
    const LAMP_DEAD: f64 = 0.005;
    const MANHOLE_TILT: f64 = 0.002;
    const MANHOLE_OPEN: f64 = 0.001;
    const FLOOD: f64 = 0.02;
    const BIN_FIRE: f64 = 0.001;
}

/// What the replay injected, by kind (what alarms to expect).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Injected {
    /// SOS presses (each 1–3 times).
    pub sos: u64,
    /// Falls (impact, then stillness).
    pub falls: u64,
    /// Stumbles (impact, then steps): no alarm.
    pub stumbles: u64,
    /// Pendants whose battery dies (silence).
    pub dead_pendants: u64,
    /// Home hubs off for 1–3 h (silence).
    pub hub_outages: u64,
    /// Devices reporting a low battery.
    pub low_batteries: u64,
    /// Heart rate over 135 for 3–10 min in bed.
    pub heart_rate: u64,
    /// Heart-rate spikes shorter than the hold: no alarm.
    pub heart_spikes: u64,
    /// SpO2 under 88 for 3–8 min in bed.
    pub spo2_dips: u64,
    /// Night exits not followed by a return within the limit.
    pub not_back: u64,
    /// Residents not moving in the morning window.
    pub no_morning: u64,
    /// Lamps that die.
    pub lamps_dead: u64,
    /// Manhole covers tilted.
    pub manholes_tilted: u64,
    /// Manhole covers removed.
    pub manholes_open: u64,
    /// Underpass gauges flooding.
    pub floods: u64,
    /// Bin fires.
    pub bin_fires: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Episode {
    /// The device sends nothing.
    Silent,
    /// The pendant's wearer lies still.
    Still,
    /// The resident is in bed (vitals sensor).
    InBed,
    HeartRate(u8),
    Spo2(u8),
    LowBattery,
    LampDead,
    TiltCdeg(i16),
    /// Peak water level, mm.
    Flood(u16),
    /// Bin temperature, 0.1 °C.
    Fire(i16),
}

#[derive(Debug, Clone, Copy)]
struct Span {
    from: u64,
    to: u64,
    what: Episode,
}

#[derive(Debug, Clone)]
struct Dev {
    kind: DeviceKind,
    next: u64,
    period: u64,
    next_battery: u64,
    battery_pct: u8,
    /// A per-device constant (resting heart rate, bin fill rate, meter load…).
    base: f64,
    /// A running quantity (meter energy, bin fill).
    acc: f64,
    episodes: Vec<Span>,
}

impl Dev {
    fn episode(&self, t: u64, pick: impl Fn(Episode) -> bool) -> Option<(Span, Episode)> {
        self.episodes
            .iter()
            .find(|s| s.from <= t && t < s.to && pick(s.what))
            .map(|s| (*s, s.what))
    }

    fn has(&self, t: u64, e: Episode) -> bool {
        self.episode(t, |w| w == e).is_some()
    }
}

const fn periodic_s(kind: DeviceKind) -> Option<(u64, u64)> {
    // (min, max) period, seconds
    match kind {
        DeviceKind::Vitals => Some((10, 30)),
        DeviceKind::Pendant => Some((300, 300)),
        DeviceKind::HomeHub => Some((900, 900)),
        DeviceKind::StreetLight | DeviceKind::PowerMeter => Some((60, 60)),
        DeviceKind::WaterLevel => Some((300, 300)),
        DeviceKind::Manhole | DeviceKind::WasteBin => Some((600, 600)),
        _ => None,
    }
}

const fn battery_powered(kind: DeviceKind) -> bool {
    matches!(
        kind,
        DeviceKind::Pendant
            | DeviceKind::Bed
            | DeviceKind::Motion
            | DeviceKind::Door
            | DeviceKind::Manhole
            | DeviceKind::WaterLevel
            | DeviceKind::WasteBin
    )
}

/// The replay: call [`Replay::next_chunk`] until it returns `None`.
#[derive(Debug)]
pub struct Replay<'f> {
    fleet: &'f Fleet,
    start: u64,
    end: u64,
    chunk_ms: u64,
    next: u64,
    scripted_until: u64,
    devs: Vec<Dev>,
    /// Scheduled readings (routines, anomalies), sorted by (t, device) from `pos` on.
    events: Vec<Reading>,
    pos: usize,
    rng: Rng,
    injected: Injected,
}

fn count(rate: f64, population: usize, days: f64) -> usize {
    if population == 0 {
        return 0;
    }
    ((rate * population as f64 * days).round() as usize).max(1)
}

impl<'f> Replay<'f> {
    /// A replay of `fleet` from `start` (local midnight, ms) for `span_ms`, in chunks of
    /// `chunk_ms`.
    pub fn new(fleet: &'f Fleet, start: u64, span_ms: u64, chunk_ms: u64, seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0xA1A5_0000);
        let end = start + span_ms;
        let devs = fleet
            .profiles
            .iter()
            .map(|p| {
                let (next, period) = match periodic_s(p.kind) {
                    Some((lo, hi)) => {
                        let period = (rng.range(lo as f64, hi as f64 + 1.0) as u64).min(hi) * S;
                        (start + (rng.unit() * period as f64) as u64, period)
                    }
                    None => (u64::MAX, 0),
                };
                let next_battery = if battery_powered(p.kind) {
                    start + (rng.unit() * (6 * HOUR) as f64) as u64
                } else {
                    u64::MAX
                };
                Dev {
                    kind: p.kind,
                    next,
                    period,
                    next_battery,
                    battery_pct: rng.range(40.0, 100.0) as u8,
                    base: rng.unit(),
                    acc: rng.unit(),
                    episodes: Vec::new(),
                }
            })
            .collect();
        let mut r = Replay {
            fleet,
            start,
            end,
            chunk_ms: chunk_ms.max(1),
            next: start,
            scripted_until: start,
            devs,
            events: Vec::new(),
            pos: 0,
            rng,
            injected: Injected::default(),
        };
        r.span_anomalies();
        r
    }

    /// What was injected so far (span anomalies at once; daily ones as days begin).
    pub fn injected(&self) -> &Injected {
        &self.injected
    }

    /// First and last (exclusive) ms of the replay.
    pub fn span(&self) -> (u64, u64) {
        (self.start, self.end)
    }

    fn at(&mut self, from: u64, to: u64) -> u64 {
        from + (self.rng.unit() * to.saturating_sub(from) as f64) as u64
    }

    fn pick(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n as u64) as usize
    }

    fn event(&mut self, t: u64, device: u32, report: Report) {
        if t < self.end {
            self.events.push(Reading { t, device, report });
        }
    }

    fn episode(&mut self, device: u32, from: u64, to: u64, what: Episode) {
        self.devs[device as usize]
            .episodes
            .push(Span { from, to, what });
    }

    /// Anomalies that may come at any time: spread uniformly over the whole span.
    fn span_anomalies(&mut self) {
        let fleet = self.fleet;
        let days = (self.end - self.start) as f64 / DAY as f64;
        let (start, end) = (self.start, self.end);
        let homes = fleet.homes.len();
        for _ in 0..count(Rates::SOS, homes, days) {
            let p = fleet.homes[self.pick(homes)].pendant;
            let t = self.at(start, end);
            let presses = 1 + self.pick(3) as u64;
            for k in 0..presses {
                self.event(t + k * 20 * S, p, Report::Pendant(Pendant::Sos));
            }
            self.injected.sos += 1;
        }
        for _ in 0..count(Rates::FALL, homes, days) {
            let p = fleet.homes[self.pick(homes)].pendant;
            let t = self.at(start, end);
            let impact_mg = self.rng.range(3000.0, 4500.0) as u16;
            self.event(t, p, Report::Pendant(Pendant::Impact { impact_mg }));
            self.episode(p, t, t + 30 * MIN, Episode::Still);
            self.injected.falls += 1;
        }
        for _ in 0..count(Rates::STUMBLE, homes, days) {
            let p = fleet.homes[self.pick(homes)].pendant;
            let t = self.at(start, end);
            let impact_mg = self.rng.range(2600.0, 3500.0) as u16;
            self.event(t, p, Report::Pendant(Pendant::Impact { impact_mg }));
            let after = self.at(2 * S, 6 * S);
            let steps = Report::Pendant(Pendant::Activity {
                level: 45,
                steps: 9,
            });
            self.event(t + after, p, steps);
            self.injected.stumbles += 1;
        }
        for _ in 0..count(Rates::PENDANT_DEAD, homes, days) {
            let p = fleet.homes[self.pick(homes)].pendant;
            let t = self.at(start, end);
            self.episode(p, t, u64::MAX, Episode::Silent);
            self.injected.dead_pendants += 1;
        }
        for _ in 0..count(Rates::HUB_OUTAGE, homes, days) {
            let h = fleet.homes[self.pick(homes)].hub;
            let t = self.at(start, end);
            let len = self.at(HOUR, 3 * HOUR);
            self.episode(h, t, t + len, Episode::Silent);
            self.injected.hub_outages += 1;
        }
        let battery: Vec<u32> = (0..fleet.profiles.len() as u32)
            .filter(|d| battery_powered(fleet.profiles[*d as usize].kind))
            .collect();
        for _ in 0..count(Rates::LOW_BATTERY, battery.len(), days) {
            let d = battery[self.pick(battery.len())];
            self.episode(d, start, u64::MAX, Episode::LowBattery);
            self.injected.low_batteries += 1;
        }
        let of = |k: DeviceKind| -> Vec<u32> {
            fleet
                .assets
                .iter()
                .filter(|a| a.kind == k)
                .map(|a| a.device)
                .collect()
        };
        let lamps = of(DeviceKind::StreetLight);
        for _ in 0..count(Rates::LAMP_DEAD, lamps.len(), days) {
            let d = lamps[self.pick(lamps.len())];
            let t = self.at(start, end);
            self.episode(d, t, u64::MAX, Episode::LampDead);
            self.injected.lamps_dead += 1;
        }
        let manholes = of(DeviceKind::Manhole);
        for _ in 0..count(Rates::MANHOLE_TILT, manholes.len(), days) {
            let d = manholes[self.pick(manholes.len())];
            let t = self.at(start, end);
            let len = self.at(20 * MIN, 60 * MIN);
            let tilt = self.rng.range(1500.0, 3000.0) as i16;
            self.episode(d, t, t + len, Episode::TiltCdeg(tilt));
            self.injected.manholes_tilted += 1;
        }
        for _ in 0..count(Rates::MANHOLE_OPEN, manholes.len(), days) {
            let d = manholes[self.pick(manholes.len())];
            let t = self.at(start, end);
            self.episode(d, t, t + 30 * MIN, Episode::TiltCdeg(9500));
            self.injected.manholes_open += 1;
        }
        let gauges = of(DeviceKind::WaterLevel);
        for _ in 0..count(Rates::FLOOD, gauges.len(), days) {
            let d = gauges[self.pick(gauges.len())];
            let t = self.at(start, end);
            let peak = self.rng.range(300.0, 400.0) as u16;
            self.episode(d, t, t + 3 * HOUR, Episode::Flood(peak));
            self.injected.floods += 1;
        }
        let bins = of(DeviceKind::WasteBin);
        for _ in 0..count(Rates::BIN_FIRE, bins.len(), days) {
            let d = bins[self.pick(bins.len())];
            let t = self.at(start, end);
            let temp = self.rng.range(650.0, 900.0) as i16;
            self.episode(d, t, t + 40 * MIN, Episode::Fire(temp));
            self.injected.bin_fires += 1;
        }
    }

    /// Every resident's routine for the day starting at `d0` (local midnight), with the
    /// anomalies tied to a time of day (night vitals, night exits, the morning window).
    fn script_day(&mut self, d0: u64) {
        let fleet = self.fleet;
        let homes = fleet.homes.len();
        let first = d0 == self.start;
        // Day-bound anomalies: who, tonight / this morning.
        let mut not_back = vec![false; homes];
        let mut no_morning = vec![false; homes];
        for _ in 0..count(Rates::NOT_BACK, homes, 1.0) {
            let i = self.pick(homes);
            not_back[i] = true;
        }
        for _ in 0..count(Rates::NO_MORNING, homes, 1.0) {
            let i = self.pick(homes);
            no_morning[i] = true;
        }
        let (start, end) = (self.start, self.end);
        let within = move |t: u64| t >= start && t < end;
        for (i, h) in fleet.homes.iter().enumerate() {
            let wake = if no_morning[i] {
                if within(d0 + 10 * HOUR) {
                    self.injected.no_morning += 1;
                }
                self.at(d0 + 10 * HOUR + 20 * MIN, d0 + 10 * HOUR + 50 * MIN)
            } else {
                self.at(d0 + 6 * HOUR + 5 * MIN, d0 + 7 * HOUR + 30 * MIN)
            };
            let bedtime = self.at(d0 + 21 * HOUR + 30 * MIN, d0 + 23 * HOUR + 30 * MIN);
            // Bed transitions: in bed at midnight; night trips; up at `wake`; back at
            // `bedtime`.
            let mut bed: Vec<(u64, bool)> = Vec::with_capacity(8);
            if first {
                let t = self.at(d0, d0 + 2 * MIN);
                bed.push((t, true));
            }
            let trips = match self.rng.unit() {
                u if u < 0.3 => 0,
                u if u < 0.8 => 1,
                _ => 2,
            };
            let mut t = self.at(d0 + 30 * MIN, d0 + 2 * HOUR);
            let mut made = 0;
            while made < trips || (not_back[i] && made == 0) {
                let long = not_back[i] && made + 1 >= trips.max(1);
                let len = if long {
                    self.at(25 * MIN, 60 * MIN)
                } else {
                    self.at(2 * MIN, 12 * MIN)
                };
                if t + len + 10 * MIN > d0 + 6 * HOUR {
                    break;
                }
                if long && within(t + 20 * MIN) {
                    self.injected.not_back += 1;
                }
                bed.push((t, false));
                bed.push((t + len, true));
                let m = self.at(10 * S, 40 * S);
                let count = 1 + self.pick(6) as u16;
                self.event(t + m, h.motion, motion(true, count));
                let m = self.at(60 * S, 120 * S);
                self.event(t + len + m, h.motion, motion(false, 0));
                made += 1;
                t += len + self.at(30 * MIN, 2 * HOUR);
            }
            bed.push((wake, false));
            bed.push((bedtime, true));
            let pressure = |rng: &mut Rng, occupied: bool| {
                if occupied {
                    rng.range(500.0, 700.0) as u16
                } else {
                    rng.range(0.0, 20.0) as u16
                }
            };
            // Vitals see the bed: in bed from midnight until the first exit, and so on.
            let mut in_since = Some(d0);
            for &(t, occupied) in &bed {
                let p = pressure(&mut self.rng, occupied);
                self.event(
                    t,
                    h.bed,
                    Report::Bed(Bed {
                        occupied,
                        pressure: p,
                    }),
                );
                match (occupied, in_since) {
                    (false, Some(from)) => {
                        self.episode(h.vitals, from, t, Episode::InBed);
                        in_since = None;
                    }
                    (true, None) => in_since = Some(t),
                    _ => {}
                }
            }
            if let Some(from) = in_since {
                self.episode(h.vitals, from, d0 + DAY, Episode::InBed);
            }
            // Moving about between waking and bedtime, with a guaranteed stir in the
            // morning; the PIR reports motion and, after its hold time, no motion.
            let mut t = wake + self.at(MIN, 5 * MIN);
            while t + 10 * MIN < bedtime {
                let len = self.at(2 * MIN, 15 * MIN);
                let count = 1 + self.pick(30) as u16;
                self.event(t, h.motion, motion(true, count));
                self.event(t + len, h.motion, motion(false, 0));
                let gap = (-(1.0 - self.rng.unit()).ln() * 25.0).min(80.0);
                t += len + MIN + (gap * MIN as f64) as u64;
            }
            // Going out and coming back, a few times a day.
            for _ in 0..2 + self.pick(5) {
                let t = self.at(wake + 30 * MIN, bedtime - 30 * MIN);
                let shut = self.at(5 * S, 90 * S);
                self.event(t, h.door, Report::Door(Door { open: true }));
                self.event(t + shut, h.door, Report::Door(Door { open: false }));
            }
            // Vitals in bed tonight: a real episode, or a spike too short to count.
            let night = |r: &mut Replay| r.at(d0 + HOUR, d0 + 5 * HOUR);
            if self.rng.chance(Rates::HEART_RATE) {
                let from = night(self);
                let len = self.at(3 * MIN, 10 * MIN);
                let bpm = self.rng.range(136.0, 155.0) as u8;
                self.episode(h.vitals, from, from + len, Episode::HeartRate(bpm));
                if within(from) {
                    self.injected.heart_rate += 1;
                }
            } else if self.rng.chance(Rates::HEART_SPIKE) {
                let from = night(self);
                let len = self.at(20 * S, 45 * S);
                self.episode(h.vitals, from, from + len, Episode::HeartRate(134));
                if within(from) {
                    self.injected.heart_spikes += 1;
                }
            }
            if self.rng.chance(Rates::SPO2_DIP) {
                let from = night(self);
                let len = self.at(3 * MIN, 8 * MIN);
                let pct = self.rng.range(84.0, 87.0) as u8;
                self.episode(h.vitals, from, from + len, Episode::Spo2(pct));
                if within(from) {
                    self.injected.spo2_dips += 1;
                }
            } else if self.rng.chance(Rates::SPO2_BLIP) {
                let from = night(self);
                let len = self.at(30 * S, 90 * S);
                self.episode(h.vitals, from, from + len, Episode::Spo2(89));
            }
        }
    }

    /// The next chunk of readings in time order (ties by device), or `None` at the end.
    pub fn next_chunk(&mut self, out: &mut Vec<Reading>) -> Option<(u64, u64)> {
        out.clear();
        if self.next >= self.end {
            return None;
        }
        let (a, b) = (self.next, (self.next + self.chunk_ms).min(self.end));
        if a >= self.scripted_until {
            let d0 = self.scripted_until;
            self.scripted_until = d0 + DAY;
            for d in &mut self.devs {
                d.episodes.retain(|s| s.to > a);
            }
            self.events.drain(..self.pos);
            self.pos = 0;
            self.script_day(d0);
            self.events.sort_by_key(|r| (r.t, r.device));
        }
        for (i, dev) in self.devs.iter_mut().enumerate() {
            while dev.next < b {
                let t = dev.next;
                let jitter = (self.rng.unit() * 600.0) as u64;
                dev.next = t + dev.period + jitter - 300;
                if let Some(report) = periodic(dev, t, self.start, &mut self.rng) {
                    out.push(Reading {
                        t,
                        device: i as u32,
                        report,
                    });
                }
            }
            while dev.next_battery < b {
                let t = dev.next_battery;
                dev.next_battery += 6 * HOUR;
                let percent = if dev.has(t, Episode::LowBattery) {
                    8 + (self.rng.unit() * 6.0) as u8
                } else {
                    dev.battery_pct
                };
                out.push(Reading {
                    t,
                    device: i as u32,
                    report: Report::Battery(Battery {
                        millivolts: 3000 + u16::from(percent) * 12,
                        percent,
                    }),
                });
            }
        }
        while let Some(e) = self.events.get(self.pos).filter(|e| e.t < b) {
            out.push(*e);
            self.pos += 1;
        }
        out.sort_by_key(|r| (r.t, r.device));
        self.next = b;
        Some((a, b))
    }
}

fn motion(motion: bool, count: u16) -> Report {
    Report::Motion(Motion { motion, count })
}

/// The periodic report of `dev` at `t`, or `None` when it is silent. `midnight` is a
/// local midnight at or before `t` (the replay's start).
fn periodic(dev: &mut Dev, t: u64, midnight: u64, rng: &mut Rng) -> Option<Report> {
    if dev.has(t, Episode::Silent) {
        return None;
    }
    let tod = (t - midnight) % DAY;
    Some(match dev.kind {
        DeviceKind::Vitals => {
            if !dev.has(t, Episode::InBed) {
                Report::Vitals(Vitals {
                    heart_rate_bpm: 0,
                    spo2_pct: 0,
                    respiration_bpm: 0,
                    quality: 0,
                })
            } else {
                let hr = match dev.episode(t, |e| matches!(e, Episode::HeartRate(_))) {
                    Some((_, Episode::HeartRate(v))) => v.saturating_add(rng.range(0.0, 3.0) as u8),
                    _ => (56.0 + dev.base * 16.0 + rng.normal() * 2.0) as u8,
                };
                let spo2 = match dev.episode(t, |e| matches!(e, Episode::Spo2(_))) {
                    Some((_, Episode::Spo2(v))) => v,
                    _ => 95 + (rng.unit() * 4.0) as u8,
                };
                Report::Vitals(Vitals {
                    heart_rate_bpm: hr,
                    spo2_pct: spo2,
                    respiration_bpm: 12 + (rng.unit() * 6.0) as u8,
                    quality: 70 + (rng.unit() * 30.0) as u8,
                })
            }
        }
        DeviceKind::Pendant => {
            let (level, steps) = if dev.has(t, Episode::Still) {
                (0, 0)
            } else if !(6 * HOUR..23 * HOUR).contains(&tod) {
                ((rng.unit() * 4.0) as u8, 0)
            } else {
                (10 + (rng.unit() * 50.0) as u8, (rng.unit() * 400.0) as u16)
            };
            Report::Pendant(Pendant::Activity { level, steps })
        }
        DeviceKind::HomeHub => Report::HubHeartbeat(HubHeartbeat {
            devices_seen: 5,
            mains: true,
        }),
        DeviceKind::StreetLight => {
            let on = !(6 * HOUR + 30 * MIN..17 * HOUR + 30 * MIN).contains(&tod);
            let dimming_pct: u8 = if !on {
                0
            } else if tod >= 12 * HOUR {
                100
            } else {
                50
            };
            let current_ma = match (on, dev.has(t, Episode::LampDead)) {
                (false, _) => 0,
                (true, true) => 10,
                (true, false) => {
                    (380.0 + dev.base * 140.0) as u16 * u16::from(dimming_pct) / 100
                        + (rng.unit() * 10.0) as u16
                }
            };
            Report::StreetLight(StreetLight {
                relay_on: on,
                current_ma,
                power_dw: (f64::from(current_ma) * 2.3) as u16,
                dimming_pct,
            })
        }
        DeviceKind::PowerMeter => {
            let load = 8.0
                + dev.base * 30.0
                + 6.0 * ((tod as f64 / DAY as f64) * std::f64::consts::TAU).sin();
            let current_ma = (load * 1000.0 + rng.normal() * 300.0).max(0.0) as u32;
            let power_w = (f64::from(current_ma) * 0.23 * 0.95) as i32;
            dev.acc += f64::from(power_w) / 60.0;
            Report::PowerMeter(PowerMeter {
                voltage_dv: (2300.0 + rng.normal() * 15.0) as u16,
                current_ma,
                power_w,
                power_factor_milli: 950,
                frequency_chz: (5000.0 + rng.normal() * 3.0) as u16,
                import_wh: dev.acc as u32,
            })
        }
        DeviceKind::Manhole => {
            let tilt_cdeg = match dev.episode(t, |e| matches!(e, Episode::TiltCdeg(_))) {
                Some((_, Episode::TiltCdeg(v))) => v + (rng.normal() * 30.0) as i16,
                _ => (20.0 + rng.normal() * 40.0) as i16,
            };
            Report::Manhole(Manhole {
                tilt_cdeg,
                water_mm: (150.0 + dev.base * 200.0 + rng.normal() * 5.0) as u16,
                gas_ppm: (rng.unit() * 4.0) as u16,
            })
        }
        DeviceKind::WaterLevel => {
            let level_mm = match dev.episode(t, |e| matches!(e, Episode::Flood(_))) {
                Some((s, Episode::Flood(peak))) => {
                    // 30 min up, held, the last hour down.
                    let f = ((t - s.from) as f64 / (30 * MIN) as f64)
                        .min((s.to - t) as f64 / HOUR as f64)
                        .min(1.0);
                    (f * f64::from(peak)) as u16 + 10
                }
                _ => (rng.unit() * 40.0) as u16,
            };
            Report::WaterLevel(WaterLevel { level_mm })
        }
        DeviceKind::WasteBin => {
            // Filling through the day, emptied at 06:00.
            let fill =
                ((tod + DAY - 6 * HOUR) % DAY) as f64 / DAY as f64 * (40.0 + dev.base * 60.0);
            let temperature_dc = match dev.episode(t, |e| matches!(e, Episode::Fire(_))) {
                Some((_, Episode::Fire(v))) => v,
                _ => (120.0 + rng.normal() * 30.0) as i16,
            };
            Report::WasteBin(WasteBin {
                fill_pct: fill.min(100.0) as u8,
                temperature_dc,
                tilt_deg: (rng.unit() * 3.0) as u8,
            })
        }
        _ => return None,
    })
}
