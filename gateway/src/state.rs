//! Device views: what the gateway currently knows of each device (last seen, battery,
//! last value per metric, recent readings), fed from accepted readings and rebuilt from
//! the journal at start.
//!
//! Owns the in-memory view only; liveness rules live in `supervision`, durability in
//! `journal`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use crate::reading::Reading;

/// Last value of one metric.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LastValue {
    /// The value.
    pub value: f64,
    /// Gateway receive time, ms.
    pub received_ms: u64,
}

/// What the gateway knows of one device.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceView {
    /// Last accepted reading since this start (drives liveness), ms.
    pub last_seen_ms: Option<u64>,
    /// Last accepted reading ever, including before this start, ms.
    pub last_seen_any_ms: Option<u64>,
    /// Last Will received after the last reading.
    pub disconnected: bool,
    /// Battery, %.
    pub battery_pct: Option<u8>,
    /// Firmware version.
    pub firmware: Option<String>,
    /// Last value per metric.
    pub metrics: BTreeMap<&'static str, LastValue>,
    /// Last event name and when.
    pub last_event: Option<(&'static str, u64)>,
    /// Readings accepted since this start.
    pub accepted: u64,
    /// Rejections since this start.
    pub rejected: u64,
    /// The newest frame counter accepted from the device (wrapping order; Last Wills
    /// aside), what the gateway stamps its settings and commands with.
    #[serde(skip)]
    pub newest_counter: Option<u32>,
    /// Most recent readings, oldest first.
    #[serde(skip)]
    pub recent: VecDeque<Reading>,
}

/// All device views.
#[derive(Debug, Default)]
pub struct Views {
    devices: HashMap<String, DeviceView>,
    recent_cap: usize,
}

impl Views {
    /// Empty views keeping `recent_cap` readings per device.
    pub fn new(recent_cap: usize) -> Self {
        Views {
            devices: HashMap::new(),
            recent_cap: recent_cap.max(1),
        }
    }

    /// Applies an accepted reading. `live` is false while replaying the journal.
    pub fn apply(&mut self, r: &Reading, live: bool) {
        let v = self.devices.entry(r.device.clone()).or_default();
        let will = r.report == linli_protocol::Report::ConnectionLost;
        if live {
            // A Last Will says the device is gone; it is not a sign of life.
            if !will {
                v.last_seen_ms = Some(r.received_ms.max(v.last_seen_ms.unwrap_or(0)));
            }
            v.disconnected = will;
            v.accepted += 1;
        }
        if !will {
            v.last_seen_any_ms = Some(r.received_ms.max(v.last_seen_any_ms.unwrap_or(0)));
            if v.newest_counter
                .is_none_or(|n| linli_protocol::replay::is_after(r.counter, n))
            {
                v.newest_counter = Some(r.counter);
            }
        }
        if let Some(b) = r.report.battery_pct() {
            v.battery_pct = Some(b);
        }
        if let linli_protocol::Report::Status(s) = r.report {
            let [a, b, c] = s.firmware;
            v.firmware = Some(format!("{a}.{b}.{c}"));
        }
        if let Some(e) = r.report.event() {
            v.last_event = Some((e.as_str(), r.received_ms));
        }
        let received_ms = r.received_ms;
        r.report.for_each_metric(&mut |name, value| {
            v.metrics.insert(name, LastValue { value, received_ms });
        });
        if v.recent.len() == self.recent_cap {
            v.recent.pop_front();
        }
        v.recent.push_back(r.clone());
    }

    /// Fills what a device's view lacks from the store's latest values (after a restart,
    /// when the journal segments holding its readings have been released): last seen (the
    /// newest point's device time) and battery.
    pub fn seed(&mut self, device: &str, latest: &[crate::store::Latest]) {
        let Some(newest) = latest.iter().map(|l| l.time_ms).max() else {
            return;
        };
        let v = self.devices.entry(device.to_owned()).or_default();
        if v.last_seen_any_ms.is_none() {
            v.last_seen_any_ms = u64::try_from(newest).ok();
        }
        if v.battery_pct.is_none() {
            v.battery_pct = latest
                .iter()
                .find(|l| l.metric == "battery_pct")
                .map(|l| l.value.clamp(0.0, 100.0) as u8);
        }
    }

    /// Counts a rejection against a device.
    pub fn rejected(&mut self, device: &str) {
        if let Some(v) = self.devices.get_mut(device) {
            v.rejected += 1;
        }
    }

    /// One device's view.
    pub fn get(&self, device: &str) -> Option<&DeviceView> {
        self.devices.get(device)
    }
}
