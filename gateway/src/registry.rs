//! Device registry: sites, zones, residents/assets and devices with their keys and
//! credential hashes, kept in SQLite in the data dir, plus the in-memory directory the
//! broker's auth handler and ingest consult.
//!
//! Owns provisioning and lookup. Does not own liveness or readings (see `supervision`,
//! `state`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use linli_protocol::seal::DeviceKey;
use linli_protocol::topic::is_valid_device_id;
use linli_protocol::DeviceKind;
use parking_lot::Mutex;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How far the gateway trusts what a device says about who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Sealed frames under the device's own key: the sender is proven.
    Sealed,
    /// JSON from a third-party integration: only "some registered client" is proven.
    Integration,
    /// Modbus equipment the gateway polls itself: it never publishes, so anything that
    /// arrives over MQTT under its id is refused.
    Polled,
}

impl Trust {
    /// `sealed`, `integration` or `polled`, as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Trust::Sealed => "sealed",
            Trust::Integration => "integration",
            Trust::Polled => "polled",
        }
    }
}

/// Registry errors.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// SQLite failed.
    #[error("registry database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A device id outside `[A-Za-z0-9._-]{1,64}`.
    #[error("invalid device id {0:?}: use 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadId(String),
    /// A site/zone/resident/asset id that is empty or too long.
    #[error("invalid {what} id {id:?}: use 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadRef {
        /// Which kind of id.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// A heartbeat interval outside 1 s – 7 days.
    #[error("heartbeat interval {0} s is out of range: use 1 to 604800 seconds")]
    BadHeartbeat(u64),
    /// The device id is taken.
    #[error("device {0} is already provisioned")]
    Exists(String),
    /// A stored row could not be understood.
    #[error("registry row for device {id} is corrupt: {why}")]
    Corrupt {
        /// Device id.
        id: String,
        /// What is wrong.
        why: String,
    },
}

/// What a device is attached to: a resident (care) or an asset (facility).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A person in care.
    Resident,
    /// A street asset (lamp, manhole, gauge, bin, meter).
    Asset,
}

impl SubjectKind {
    /// `resident` or `asset`, as stored and as tagged in series and exports.
    pub const fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Resident => "resident",
            SubjectKind::Asset => "asset",
        }
    }
}

/// What a device is and where it belongs: given at provisioning, kept in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProfile {
    /// Device id (= MQTT client id = username).
    pub id: String,
    /// Device kind.
    pub kind: DeviceKind,
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Resident or asset id, and which.
    pub subject: Option<(SubjectKind, String)>,
    /// Heartbeat interval, seconds (None = the configured default).
    pub heartbeat_s: Option<u64>,
    /// Sealed or JSON integration device.
    pub trust: Trust,
}

/// Secrets handed out once at provisioning.
#[derive(Debug, Clone, Serialize)]
pub struct Credentials {
    /// Device id, MQTT client id and username.
    pub device_id: String,
    /// MQTT password.
    pub password: String,
    /// Key id of the sealing key.
    pub key_id: u8,
    /// 256-bit sealing key, hex.
    pub key_hex: String,
}

/// One registered device as ingest and auth see it: its profile and its secrets.
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    /// What the device is and where it belongs.
    pub profile: DeviceProfile,
    /// Current key id.
    pub key_id: u8,
    /// Current sealing key.
    pub key: DeviceKey,
    salt: [u8; 16],
    credential_hash: [u8; 32],
}

impl DeviceRecord {
    /// Checks an MQTT password in constant time.
    pub fn password_matches(&self, password: &str) -> bool {
        let h = hash_password(&self.salt, password);
        h.iter()
            .zip(self.credential_hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn hash_password(salt: &[u8; 16], password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    h.finalize().into()
}

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS sites (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS zones (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites(id)
);
CREATE TABLE IF NOT EXISTS subjects (
    id TEXT PRIMARY KEY,
    zone_id TEXT NOT NULL REFERENCES zones(id),
    kind TEXT NOT NULL CHECK (kind IN ('resident', 'asset'))
);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    zone_id TEXT NOT NULL REFERENCES zones(id),
    subject_id TEXT REFERENCES subjects(id),
    heartbeat_s INTEGER,
    trust TEXT NOT NULL CHECK (trust IN ('sealed', 'integration', 'polled')),
    key_id INTEGER NOT NULL,
    key_hex TEXT NOT NULL,
    salt_hex TEXT NOT NULL,
    credential_hash_hex TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
"#;

/// Registries made before Modbus equipment could be registered check `trust` against
/// two values: rebuild the table with the current check (SQLite cannot alter one).
fn allow_polled(conn: &Connection) -> Result<(), RegistryError> {
    let sql: String = conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'devices'",
        [],
        |r| r.get(0),
    )?;
    if sql.contains("'polled'") {
        return Ok(());
    }
    // The devices table's statement only, whatever follows it in the schema.
    let create = SCHEMA
        .split_once("CREATE TABLE IF NOT EXISTS devices")
        .and_then(|(_, rest)| rest.split_once(");"))
        .map(|(columns, _)| format!("CREATE TABLE devices_new{columns});"))
        .unwrap_or_default();
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF;
         BEGIN;
         {create}
         INSERT INTO devices_new SELECT * FROM devices;
         DROP TABLE devices;
         ALTER TABLE devices_new RENAME TO devices;
         COMMIT;
         PRAGMA foreign_keys = ON;"
    ))?;
    Ok(())
}

/// The registry database plus an in-memory directory of devices.
#[derive(Debug, Clone)]
pub struct Registry {
    db: Arc<Mutex<Connection>>,
    cache: Arc<Mutex<Cache>>,
}

#[derive(Debug, Default)]
struct Cache {
    known: HashMap<String, Arc<DeviceRecord>>,
    /// Ids looked up and not found, with when: keeps unknown-id floods off SQLite.
    missing: HashMap<String, Instant>,
}

/// Longest heartbeat interval a device may be registered with: a week.
const MAX_HEARTBEAT_S: u64 = 7 * 24 * 3600;

const NEGATIVE_TTL: Duration = Duration::from_secs(2);

fn check_ref(what: &'static str, id: &str) -> Result<(), RegistryError> {
    if is_valid_device_id(id) {
        Ok(())
    } else {
        Err(RegistryError::BadRef {
            what,
            id: id.into(),
        })
    }
}

impl Registry {
    /// Opens (creating if needed) `registry.sqlite3` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Registry, RegistryError> {
        std::fs::create_dir_all(data_dir).map_err(|source| RegistryError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let conn = Connection::open(data_dir.join("registry.sqlite3"))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        allow_polled(&conn)?;
        Ok(Registry {
            db: Arc::new(Mutex::new(conn)),
            cache: Arc::default(),
        })
    }

    /// Registers a device and returns its secrets; they are not stored in a form that
    /// can be shown again (the password only as a salted hash).
    pub fn provision(&self, new: &DeviceProfile) -> Result<Credentials, RegistryError> {
        if !is_valid_device_id(&new.id) {
            return Err(RegistryError::BadId(new.id.clone()));
        }
        if let Some(h) = new
            .heartbeat_s
            .filter(|h| !(1..=MAX_HEARTBEAT_S).contains(h))
        {
            return Err(RegistryError::BadHeartbeat(h));
        }
        check_ref("site", &new.site)?;
        check_ref("zone", &new.zone)?;
        if let Some((_, s)) = &new.subject {
            check_ref("resident/asset", s)?;
        }
        let mut rng = rand::rngs::OsRng;
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let mut pw = [0u8; 18];
        rng.fill_bytes(&mut pw);
        let password = hex::encode(pw);
        let hash = hash_password(&salt, &password);
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        let exists: Option<String> = tx
            .query_row("SELECT id FROM devices WHERE id = ?1", [&new.id], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return Err(RegistryError::Exists(new.id.clone()));
        }
        tx.execute("INSERT OR IGNORE INTO sites (id) VALUES (?1)", [&new.site])?;
        tx.execute(
            "INSERT OR IGNORE INTO zones (id, site_id) VALUES (?1, ?2)",
            [&new.zone, &new.site],
        )?;
        if let Some((kind, s)) = &new.subject {
            tx.execute(
                "INSERT OR IGNORE INTO subjects (id, zone_id, kind) VALUES (?1, ?2, ?3)",
                params![s, new.zone, kind.as_str()],
            )?;
        }
        let trust = new.trust.as_str();
        tx.execute(
            "INSERT INTO devices (id, kind, zone_id, subject_id, heartbeat_s, trust, key_id,
                key_hex, salt_hex, credential_hash_hex, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10)",
            params![
                new.id,
                new.kind.as_str(),
                new.zone,
                new.subject.as_ref().map(|s| &s.1),
                new.heartbeat_s.map(|h| h as i64),
                trust,
                hex::encode(key),
                hex::encode(salt),
                hex::encode(hash),
                crate::clock::now_ms() as i64,
            ],
        )?;
        tx.commit()?;
        self.cache.lock().missing.remove(&new.id);
        Ok(Credentials {
            device_id: new.id.clone(),
            password,
            key_id: 0,
            key_hex: hex::encode(key),
        })
    }

    /// Moves a polled device (Modbus equipment, whose config is the truth) to another
    /// site, zone or asset, or changes its heartbeat. Other devices are left alone.
    pub fn relocate_polled(
        &self,
        id: &str,
        site: &str,
        zone: &str,
        subject: Option<&(SubjectKind, String)>,
        heartbeat_s: u64,
    ) -> Result<(), RegistryError> {
        check_ref("site", site)?;
        check_ref("zone", zone)?;
        if let Some((_, s)) = subject {
            check_ref("resident/asset", s)?;
        }
        if !(1..=MAX_HEARTBEAT_S).contains(&heartbeat_s) {
            return Err(RegistryError::BadHeartbeat(heartbeat_s));
        }
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        tx.execute("INSERT OR IGNORE INTO sites (id) VALUES (?1)", [site])?;
        tx.execute(
            "INSERT OR IGNORE INTO zones (id, site_id) VALUES (?1, ?2)",
            [zone, site],
        )?;
        if let Some((kind, s)) = subject {
            tx.execute(
                "INSERT OR IGNORE INTO subjects (id, zone_id, kind) VALUES (?1, ?2, ?3)",
                params![s, zone, kind.as_str()],
            )?;
        }
        tx.execute(
            "UPDATE devices SET zone_id = ?2, subject_id = ?3, heartbeat_s = ?4
             WHERE id = ?1 AND trust = 'polled'",
            params![id, zone, subject.map(|s| &s.1), heartbeat_s as i64],
        )?;
        tx.commit()?;
        self.cache.lock().known.remove(id);
        Ok(())
    }

    /// Looks a device up, from memory when possible.
    pub fn get(&self, id: &str) -> Result<Option<Arc<DeviceRecord>>, RegistryError> {
        {
            let cache = self.cache.lock();
            if let Some(d) = cache.known.get(id) {
                return Ok(Some(d.clone()));
            }
            if cache
                .missing
                .get(id)
                .is_some_and(|t| t.elapsed() < NEGATIVE_TTL)
            {
                return Ok(None);
            }
        }
        let found = self.load(id)?;
        let mut cache = self.cache.lock();
        match &found {
            Some(d) => {
                cache.known.insert(id.to_owned(), d.clone());
            }
            None => {
                if cache.missing.len() > 100_000 {
                    cache.missing.clear();
                }
                cache.missing.insert(id.to_owned(), Instant::now());
            }
        }
        Ok(found)
    }

    fn load(&self, id: &str) -> Result<Option<Arc<DeviceRecord>>, RegistryError> {
        let db = self.db.lock();
        let mut stmt = db.prepare_cached(
            "SELECT d.id, d.kind, z.site_id, d.zone_id, d.subject_id, s.kind, d.heartbeat_s,
                    d.trust, d.key_id, d.key_hex, d.salt_hex, d.credential_hash_hex
             FROM devices d JOIN zones z ON z.id = d.zone_id
             LEFT JOIN subjects s ON s.id = d.subject_id WHERE d.id = ?1",
        )?;
        let row = stmt
            .query_row([id], |r| {
                Ok(RawRow {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    site: r.get(2)?,
                    zone: r.get(3)?,
                    subject: r.get(4)?,
                    subject_kind: r.get(5)?,
                    heartbeat_s: r.get(6)?,
                    trust: r.get(7)?,
                    key_id: r.get(8)?,
                    key_hex: r.get(9)?,
                    salt_hex: r.get(10)?,
                    hash_hex: r.get(11)?,
                })
            })
            .optional()?;
        row.map(RawRow::into_record)
            .transpose()
            .map(|r| r.map(Arc::new))
    }

    /// Every device id, sorted.
    pub fn device_ids(&self) -> Result<Vec<String>, RegistryError> {
        let db = self.db.lock();
        let mut stmt = db.prepare("SELECT id FROM devices ORDER BY id")?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    /// Every device, loaded.
    pub fn all(&self) -> Result<Vec<Arc<DeviceRecord>>, RegistryError> {
        let mut out = Vec::new();
        for id in self.device_ids()? {
            if let Some(d) = self.get(&id)? {
                out.push(d);
            }
        }
        Ok(out)
    }
}

struct RawRow {
    id: String,
    kind: String,
    site: String,
    zone: String,
    subject: Option<String>,
    subject_kind: Option<String>,
    heartbeat_s: Option<i64>,
    trust: String,
    key_id: i64,
    key_hex: String,
    salt_hex: String,
    hash_hex: String,
}

impl RawRow {
    fn into_record(self) -> Result<DeviceRecord, RegistryError> {
        let corrupt = |why: &str| RegistryError::Corrupt {
            id: self.id.clone(),
            why: why.into(),
        };
        let kind = DeviceKind::parse(&self.kind).ok_or_else(|| corrupt("unknown kind"))?;
        let key: [u8; 32] = hex::decode(&self.key_hex)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| corrupt("bad key"))?;
        let salt: [u8; 16] = hex::decode(&self.salt_hex)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| corrupt("bad salt"))?;
        let credential_hash: [u8; 32] = hex::decode(&self.hash_hex)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| corrupt("bad credential hash"))?;
        let trust = match self.trust.as_str() {
            "sealed" => Trust::Sealed,
            "integration" => Trust::Integration,
            "polled" => Trust::Polled,
            _ => return Err(corrupt("unknown trust")),
        };
        let subject = match (self.subject, self.subject_kind.as_deref()) {
            (Some(s), Some("resident")) => Some((SubjectKind::Resident, s)),
            (Some(s), Some("asset")) => Some((SubjectKind::Asset, s)),
            _ => None,
        };
        Ok(DeviceRecord {
            key_id: u8::try_from(self.key_id).map_err(|_| corrupt("bad key id"))?,
            key: DeviceKey::new(&key),
            profile: DeviceProfile {
                id: self.id,
                kind,
                site: self.site,
                zone: self.zone,
                subject,
                heartbeat_s: self.heartbeat_s.and_then(|h| u64::try_from(h).ok()),
                trust,
            },
            salt,
            credential_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_from_before_polled_devices_takes_them_and_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let old = SCHEMA.replace("'integration', 'polled'", "'integration'");
        Connection::open(dir.path().join("registry.sqlite3"))
            .unwrap()
            .execute_batch(&old)
            .unwrap();
        let r = Registry::open(dir.path()).unwrap();
        let creds = r.provision(&new("pendant-1")).unwrap();
        drop(r);
        // Reopened after the table was rebuilt with the new check.
        let r = Registry::open(dir.path()).unwrap();
        let lamp = DeviceProfile {
            id: "lamp-1".into(),
            kind: DeviceKind::StreetLight,
            subject: None,
            trust: Trust::Polled,
            ..new("lamp-1")
        };
        r.provision(&lamp).unwrap();
        let p = r.get("pendant-1").unwrap().unwrap();
        assert!(p.password_matches(&creds.password));
        assert_eq!(
            r.get("lamp-1").unwrap().unwrap().profile.trust,
            Trust::Polled
        );
        r.relocate_polled("lamp-1", "city", "main-street", None, 2)
            .unwrap();
        let moved = r.get("lamp-1").unwrap().unwrap();
        assert_eq!(
            (moved.profile.zone.as_str(), moved.profile.heartbeat_s),
            ("main-street", Some(2))
        );
        // Only polled devices follow the config.
        r.relocate_polled("pendant-1", "city", "main-street", None, 2)
            .unwrap();
        assert_eq!(r.get("pendant-1").unwrap().unwrap().profile.zone, "wing-a");
    }

    fn new(id: &str) -> DeviceProfile {
        DeviceProfile {
            id: id.into(),
            kind: DeviceKind::Pendant,
            site: "care-home-1".into(),
            zone: "wing-a".into(),
            subject: Some((SubjectKind::Resident, "R-12".into())),
            heartbeat_s: Some(60),
            trust: Trust::Sealed,
        }
    }

    #[test]
    fn provision_then_lookup_and_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        assert!(reg.get("p-1").unwrap().is_none());
        let creds = reg.provision(&new("p-1")).unwrap();
        let d = reg.get("p-1").unwrap().expect("found after provisioning");
        assert!(d.password_matches(&creds.password));
        assert!(!d.password_matches("guess"));
        assert_eq!(d.profile, new("p-1"));
        assert!(matches!(
            reg.provision(&new("p-1")),
            Err(RegistryError::Exists(_))
        ));
        let mut slow = new("p-2");
        slow.heartbeat_s = Some(u64::MAX);
        assert!(matches!(
            reg.provision(&slow),
            Err(RegistryError::BadHeartbeat(_))
        ));
        assert!(matches!(
            reg.provision(&new("bad id")),
            Err(RegistryError::BadId(_))
        ));
        // A second handle (another process) sees the device too.
        let other = Registry::open(dir.path()).unwrap();
        assert_eq!(other.device_ids().unwrap(), ["p-1"]);
    }
}
