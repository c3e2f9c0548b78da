//! A fleet of firmware devices from a description file: which kinds, how many, in which
//! site and zone, for which residents or assets. The fleet is provisioned into a
//! gateway's registry (as `linli provision` does) and every device runs the firmware's
//! own application loop and MQTT client on a virtual board (`crate::board`,
//! `crate::virtual_board`), with its own credentials and key.
//!
//! Owns the description (parse, then validate collecting every error by key) and the
//! provisioning; running the fleet is [`run`]'s. Does not own a device's logic (the
//! firmware) or the boards.
//!
//! ```toml
//! [[group]]
//! kind = "pendant"        # the kinds with a virtual board: pendant | bed | door | motion
//!                         # | vitals | hazard | street_light | manhole | water_level | waste_bin
//! count = 4
//! id = "wing-a-pendant"   # ids wing-a-pendant-1 .. -4
//! site = "care-home-1"
//! zone = "wing-a"
//! resident = "R-A"        # residents R-A-1 .. R-A-4 (care kinds); `asset` for facility kinds
//! ```

mod run;

use std::path::Path;

use anyhow::{bail, Context, Result};
use linli_gateway::registry::{DeviceProfile, Registry, SubjectKind, Trust};
use linli_protocol::DeviceKind;
use serde::Deserialize;

use crate::virtual_board::KINDS;

pub use run::{start, wait_online, Fleet};

/// One group of alike devices.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Device kind: one with a virtual board (`pendant`, `street_light`, `water_level` ...).
    pub kind: String,
    /// How many.
    pub count: u32,
    /// Id prefix: the devices are `{id}-1` ... `{id}-{count}`.
    pub id: String,
    /// Site.
    pub site: String,
    /// Zone within the site.
    pub zone: String,
    /// Resident id prefix (care devices): `{resident}-1` ...
    pub resident: Option<String>,
    /// Asset id prefix (facility devices): `{asset}-1` ...
    pub asset: Option<String>,
    /// Heartbeat interval, s (the gateway's supervision expects it).
    pub heartbeat_s: Option<u16>,
}

/// A fleet description.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// The groups.
    #[serde(default)]
    pub group: Vec<Group>,
}

impl Description {
    /// Parses and validates `text` (from `path`, for messages); every problem is named
    /// by its key.
    pub fn parse(text: &str, path: &Path) -> Result<Description> {
        let d: Description = toml::from_str(text)
            .with_context(|| format!("fleet description {}", path.display()))?;
        let errors = d.problems();
        if !errors.is_empty() {
            bail!(
                "fleet description {}:\n  {}",
                path.display(),
                errors.join("\n  ")
            );
        }
        Ok(d)
    }

    /// Every problem of the description, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let d = self;
        let mut errors = Vec::new();
        if d.group.is_empty() {
            errors.push("no [[group]]: describe at least one group of devices".to_owned());
        }
        for (i, g) in d.group.iter().enumerate() {
            let at = format!("group[{i}]");
            match DeviceKind::parse(&g.kind) {
                Some(k) if KINDS.contains(&k) => {}
                _ => errors.push(format!(
                    "{at}.kind: {:?} has no virtual board; use one of {}",
                    g.kind,
                    KINDS.map(|k| k.as_str()).join(", ")
                )),
            }
            if g.count == 0 {
                errors.push(format!("{at}.count: at least 1"));
            }
            if !linli_protocol::topic::is_valid_device_id(&format!("{}-{}", g.id, g.count)) {
                errors.push(format!(
                    "{at}.id: {:?} is not a device id prefix (A-Z a-z 0-9 . _ -, ids up to 64)",
                    g.id
                ));
            }
            if g.resident.is_some() && g.asset.is_some() {
                errors.push(format!("{at}: give resident or asset, not both"));
            }
            if g.heartbeat_s == Some(0) {
                errors.push(format!("{at}.heartbeat_s: at least 1"));
            }
        }
        let mut ids: Vec<&str> = d.group.iter().map(|g| g.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            errors.push(format!("group ids: {:?} is used twice", w[0]));
        }
        errors
    }

    /// The kind of the device `id`, if the fleet has it.
    pub fn kind_of(&self, id: &str) -> Option<DeviceKind> {
        self.member(id)
            .and_then(|(g, _)| DeviceKind::parse(&g.kind))
    }

    /// The resident or asset device `id` serves (`R-A-2`), if the fleet has it and
    /// its group names one.
    pub fn subject_of(&self, id: &str) -> Option<String> {
        let (g, n) = self.member(id)?;
        let prefix = g.resident.as_ref().or(g.asset.as_ref())?;
        Some(format!("{prefix}-{n}"))
    }

    /// The group of device `id` and its number in it.
    fn member(&self, id: &str) -> Option<(&Group, u32)> {
        self.group.iter().find_map(|g| {
            let n = id
                .strip_prefix(g.id.as_str())?
                .strip_prefix('-')?
                .parse::<u32>()
                .ok()?;
            (1..=g.count).contains(&n).then_some((g, n))
        })
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Description> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading fleet description {}", path.display()))?;
        Description::parse(&text, path)
    }
}

/// One provisioned device.
#[derive(Debug, Clone)]
pub struct Member {
    /// Device id.
    pub id: String,
    /// Kind.
    pub kind: DeviceKind,
    /// MQTT password.
    pub password: String,
    /// Sealing key id.
    pub key_id: u8,
    /// Sealing key.
    pub key: [u8; 32],
    /// Heartbeat interval, s.
    pub heartbeat_s: u16,
    /// The frame counter its flash holds: where its next boot continues (0 when new).
    pub saved_counter: u32,
}

/// Registers every device of `d` in the registry under `data_dir` (the gateway's data
/// directory; the gateway may be running) and returns them with their secrets.
pub fn provision(d: &Description, data_dir: &Path) -> Result<Vec<Member>> {
    let registry = Registry::open(data_dir)
        .with_context(|| format!("opening the registry in {}", data_dir.display()))?;
    let mut members = Vec::new();
    for g in &d.group {
        let kind = DeviceKind::parse(&g.kind).context("validated kind")?;
        let heartbeat_s = g.heartbeat_s.unwrap_or(60);
        for n in 1..=g.count {
            let id = format!("{}-{n}", g.id);
            let subject = match (&g.resident, &g.asset) {
                (Some(r), _) => Some((SubjectKind::Resident, format!("{r}-{n}"))),
                (_, Some(a)) => Some((SubjectKind::Asset, format!("{a}-{n}"))),
                _ => None,
            };
            let c = registry
                .provision(&DeviceProfile {
                    id: id.clone(),
                    kind,
                    site: g.site.clone(),
                    zone: g.zone.clone(),
                    subject,
                    heartbeat_s: Some(u64::from(heartbeat_s)),
                    trust: Trust::Sealed,
                })
                .with_context(|| format!("provisioning {id}"))?;
            let key: [u8; 32] = hex::decode(&c.key_hex)
                .ok()
                .and_then(|k| k.try_into().ok())
                .context("the registry's key is 32 bytes of hex")?;
            members.push(Member {
                id,
                kind,
                password: c.password,
                key_id: c.key_id,
                key,
                heartbeat_s,
                saved_counter: 0,
            });
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_names_every_problem_by_key() {
        let text = r#"
            [[group]]
            kind = "pendant"
            count = 2
            id = "p"
            site = "s"
            zone = "z"
            resident = "R"

            [[group]]
            kind = "toaster"
            count = 0
            id = "bad id"
            site = "s"
            zone = "z"
            resident = "R"
            asset = "A"

            [[group]]
            kind = "street_light"
            count = 1
            id = "p"
            site = "s"
            zone = "z"
        "#;
        let e = Description::parse(text, Path::new("fleet.toml"))
            .expect_err("invalid")
            .to_string();
        for want in [
            "group[1].kind: \"toaster\" has no virtual board; use one of pendant, bed, door, motion, vitals, hazard, street_light, manhole, water_level, waste_bin",
            "group[1].count: at least 1",
            "group[1].id: \"bad id\"",
            "group[1]: give resident or asset, not both",
            "group ids: \"p\" is used twice",
        ] {
            assert!(e.contains(want), "{want:?} missing from:\n{e}");
        }
        assert!(!e.contains("group[0]"), "{e}");
        let unknown = Description::parse("[[group]]\nkinds = 1\n", Path::new("f.toml"));
        assert!(unknown.is_err(), "unknown keys are refused");
    }

    #[test]
    fn a_device_is_found_with_its_kind_and_subject() {
        let text = "[[group]]\nkind = \"pendant\"\ncount = 3\nid = \"p\"\nsite = \"s\"\nzone = \"z\"\nresident = \"R\"\n\
                    [[group]]\nkind = \"door\"\ncount = 1\nid = \"p-door\"\nsite = \"s\"\nzone = \"z\"\n";
        let d = Description::parse(text, Path::new("f.toml")).expect("valid");
        assert_eq!(d.kind_of("p-3"), Some(DeviceKind::Pendant));
        assert_eq!(d.subject_of("p-3").as_deref(), Some("R-3"));
        assert_eq!(d.kind_of("p-door-1"), Some(DeviceKind::Door));
        assert_eq!(d.subject_of("p-door-1"), None, "no resident or asset given");
        assert_eq!(d.kind_of("p-4"), None);
        assert_eq!(d.kind_of("p-0"), None);
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets/example.toml");
        let d = Description::load(&path).expect("valid");
        assert_eq!(d.group.iter().map(|g| g.count).sum::<u32>(), 16);
    }
}
