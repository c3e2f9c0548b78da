//! The alarm benchmark's fleet: care residents, each with a pendant, a bed sensor, a
//! vital-sign sensor, a PIR, a door contact and a home hub, and street assets (lights,
//! manholes, water-level gauges, waste bins, power meters), with the registry profiles
//! the gateway would hold for them.
//!
//! Owns the layout (ids, sites, zones, heartbeats); does not own what devices report
//! (see `day`) or the rules (see `rules`).

use linli_gateway::registry::{DeviceProfile, SubjectKind, Trust};
use linli_protocol::DeviceKind;

/// Every 20 subjects: 10 residents, then 4 street lights, 2 manholes, 1 water-level
/// gauge, 2 waste bins and 1 power meter.
const ASSET_SLOTS: [DeviceKind; 10] = [
    DeviceKind::StreetLight,
    DeviceKind::Manhole,
    DeviceKind::StreetLight,
    DeviceKind::WasteBin,
    DeviceKind::WaterLevel,
    DeviceKind::StreetLight,
    DeviceKind::Manhole,
    DeviceKind::PowerMeter,
    DeviceKind::StreetLight,
    DeviceKind::WasteBin,
];

/// Residents per care-home wing (zone), and wings per care home (site).
const RESIDENTS_PER_WING: usize = 20;
const WINGS_PER_HOME: usize = 10;
/// Assets per street zone, and zones per district (site).
const ASSETS_PER_STREET: usize = 25;
const STREETS_PER_DISTRICT: usize = 20;

/// Heartbeat of pendants and home hubs, seconds (supervision: lost after 3 misses).
pub const HEARTBEAT_S: u64 = 900;

/// One resident's devices, as indices into [`Fleet::profiles`].
#[derive(Debug, Clone)]
pub struct Home {
    /// Resident id, e.g. `R-00042`.
    pub resident: String,
    /// Fall pendant.
    pub pendant: u32,
    /// Bed occupancy sensor.
    pub bed: u32,
    /// Vital-sign sensor (under the mattress).
    pub vitals: u32,
    /// PIR motion sensor.
    pub motion: u32,
    /// Front-door contact.
    pub door: u32,
    /// Home hub.
    pub hub: u32,
}

/// One street asset and its device.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Asset id, e.g. `A-00013`.
    pub id: String,
    /// Its device, as an index into [`Fleet::profiles`].
    pub device: u32,
    /// The device's kind.
    pub kind: DeviceKind,
}

/// Residents, assets and every device's profile.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Every device, by device index.
    pub profiles: Vec<DeviceProfile>,
    /// Care residents.
    pub homes: Vec<Home>,
    /// Street assets.
    pub assets: Vec<Asset>,
}

impl Fleet {
    /// Lays out `subjects` residents and assets (half of each, interleaved).
    pub fn new(subjects: usize) -> Fleet {
        let mut f = Fleet {
            profiles: Vec::with_capacity(subjects * 7 / 2 + 6),
            homes: Vec::new(),
            assets: Vec::new(),
        };
        for i in 0..subjects {
            let slot = i % 20;
            if slot < 10 {
                f.add_home();
            } else {
                f.add_asset(ASSET_SLOTS[slot - 10]);
            }
        }
        f
    }

    fn push(&mut self, p: DeviceProfile) -> u32 {
        self.profiles.push(p);
        (self.profiles.len() - 1) as u32
    }

    fn add_home(&mut self) {
        let n = self.homes.len();
        let resident = format!("R-{n:05}");
        let wing = n / RESIDENTS_PER_WING;
        let site = format!("care-{:03}", wing / WINGS_PER_HOME);
        let zone = format!("wing-{wing:04}");
        let dev = |f: &mut Fleet, prefix: &str, kind: DeviceKind, hb: Option<u64>| {
            f.push(DeviceProfile {
                id: format!("{prefix}-{n:05}"),
                kind,
                site: site.clone(),
                zone: zone.clone(),
                subject: Some((SubjectKind::Resident, resident.clone())),
                heartbeat_s: hb,
                trust: Trust::Sealed,
            })
        };
        let home = Home {
            pendant: dev(self, "pendant", DeviceKind::Pendant, Some(HEARTBEAT_S)),
            bed: dev(self, "bed", DeviceKind::Bed, None),
            vitals: dev(self, "vitals", DeviceKind::Vitals, None),
            motion: dev(self, "pir", DeviceKind::Motion, None),
            door: dev(self, "door", DeviceKind::Door, None),
            hub: dev(self, "hub", DeviceKind::HomeHub, Some(HEARTBEAT_S)),
            resident,
        };
        self.homes.push(home);
    }

    fn add_asset(&mut self, kind: DeviceKind) {
        let n = self.assets.len();
        let id = format!("A-{n:05}");
        let street = n / ASSETS_PER_STREET;
        let prefix = match kind {
            DeviceKind::StreetLight => "lamp",
            DeviceKind::Manhole => "manhole",
            DeviceKind::WaterLevel => "gauge",
            DeviceKind::WasteBin => "bin",
            _ => "meter",
        };
        let device = self.push(DeviceProfile {
            id: format!("{prefix}-{n:05}"),
            kind,
            site: format!("district-{:02}", street / STREETS_PER_DISTRICT),
            zone: format!("street-{street:04}"),
            subject: Some((SubjectKind::Asset, id.clone())),
            heartbeat_s: None,
            trust: Trust::Sealed,
        });
        self.assets.push(Asset { id, device, kind });
    }

    /// Devices per kind, kinds present only, in wire order.
    pub fn per_kind(&self) -> Vec<(DeviceKind, usize)> {
        DeviceKind::ALL
            .iter()
            .map(|k| (*k, self.profiles.iter().filter(|p| p.kind == *k).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_residents_half_assets() {
        let f = Fleet::new(40);
        assert_eq!(f.homes.len(), 20);
        assert_eq!(f.assets.len(), 20);
        assert_eq!(f.profiles.len(), 20 * 6 + 20);
        let h = &f.homes[3];
        assert_eq!(f.profiles[h.bed as usize].id, "bed-00003");
        assert_eq!(
            f.profiles[h.hub as usize].subject,
            Some((SubjectKind::Resident, "R-00003".into()))
        );
        assert_eq!(f.profiles[f.assets[0].device as usize].id, "lamp-00000");
    }
}
