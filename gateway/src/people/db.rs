//! The people the gateway knows, their sessions and the audit log, kept in the gateway's
//! database (`registry.sqlite3`, tables `people`, `sessions`, `audit`); and the machine
//! API token (`api-token` in the data directory).
//!
//! Owns password hashing (Argon2id), session tokens (random, stored only as SHA-256) and
//! the audit trail. Does not decide who may see what (`people::roles`) nor speak HTTP.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use parking_lot::Mutex;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::roles::{Person, Role};
use super::throttle::Throttle;

/// Why a people operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    /// The database failed.
    #[error("people database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The API token file could not be read or written.
    #[error("API token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The API token file holds too short a token.
    #[error("API token file {0} holds fewer than 32 characters: put a long random token in it, or delete it and the gateway makes one")]
    WeakToken(String),
    /// A bad name, role, zone list or password.
    #[error("{0}")]
    Invalid(String),
    /// No such person.
    #[error("no person named {0:?} (see `linli user list`)")]
    Unknown(String),
    /// The name is taken.
    #[error(
        "a person named {0:?} already exists (use `linli user passwd` to change the password)"
    )]
    Exists(String),
    /// Hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS people (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    zones TEXT NOT NULL,
    password TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 BLOB PRIMARY KEY,
    name TEXT NOT NULL REFERENCES people(name) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    t_ms INTEGER NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_target ON audit(target, t_ms);
"#;

/// The name actions are recorded under when the machine API token is used without a `by`.
pub const API_TOKEN_NAME: &str = "api-token";

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle_ms: u64,
    /// A session ends this long after sign-in, used or not.
    pub max_ms: u64,
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// When, ms since the epoch.
    pub t_ms: u64,
    /// Who.
    pub name: String,
    /// Their role then.
    pub role: String,
    /// What: `view`, `ack`, `resolve`, `sign_in`, `sign_in_failed`, …
    pub action: String,
    /// On what: `resident:R-1`, `alarm:12`, `device:pendant-1`, …
    pub target: String,
    /// Anything else (route, disposition, note).
    pub detail: String,
}

/// People, sessions, audit and the sign-in throttle.
#[derive(Debug)]
pub struct People {
    db: Mutex<Connection>,
    api_token_sha256: [u8; 32],
    limits: SessionLimits,
    /// Failed sign-ins (see `people::throttle`).
    pub throttle: Mutex<Throttle>,
    /// The lists of residents last recorded per (person, route), with when.
    lists: Mutex<std::collections::HashMap<(String, String), (String, u64)>>,
}

/// A list shown again with the same residents is recorded again after this long.
const LIST_AUDIT_EVERY_MS: u64 = 10 * 60_000;

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A sign-in name: 1–64 of letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<(), PeopleError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok && name != API_TOKEN_NAME {
        Ok(())
    } else {
        Err(PeopleError::Invalid(format!(
            "name {name:?}: use 1-64 letters, digits, '.', '_' or '-' (and not {API_TOKEN_NAME:?})"
        )))
    }
}

/// A password a person may choose: at least 10 characters.
pub fn check_password(pw: &str) -> Result<(), PeopleError> {
    if pw.chars().count() < 10 {
        return Err(PeopleError::Invalid(
            "password: use at least 10 characters".into(),
        ));
    }
    Ok(())
}

/// Parses a zone list: comma-separated zone ids, or `*` for every zone.
pub fn parse_zones(zones: &str) -> Result<Vec<String>, PeopleError> {
    let list: Vec<String> = zones
        .split(',')
        .map(|z| z.trim().to_owned())
        .filter(|z| !z.is_empty())
        .collect();
    if list.is_empty() {
        return Err(PeopleError::Invalid(
            "zones: name at least one zone (comma-separated), or * for every zone".into(),
        ));
    }
    Ok(list)
}

fn hash(password: &str) -> Result<String, PeopleError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PeopleError::Hash(e.to_string()))
}

fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn person_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Person> {
    let role: String = r.get(2)?;
    let zones: String = r.get(3)?;
    Ok(Person {
        name: r.get(0)?,
        display_name: r.get(1)?,
        // A role written by an older or newer gateway that this one does not know gets
        // the least it could mean.
        role: Role::parse(&role).unwrap_or(Role::Crew),
        zones: zones.split(',').map(str::to_owned).collect(),
    })
}

impl People {
    /// Opens the tables in `data_dir/registry.sqlite3` and the API token in
    /// `data_dir/api-token` (made, readable by the owner only, when missing).
    pub fn open(data_dir: &Path, limits: SessionLimits) -> Result<People, PeopleError> {
        let conn = Connection::open(data_dir.join("registry.sqlite3"))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        conn.execute_batch(SCHEMA)?;
        let token = load_or_make_token(&data_dir.join("api-token"))?;
        Ok(People {
            db: Mutex::new(conn),
            api_token_sha256: sha256(&token),
            limits,
            throttle: Mutex::default(),
            lists: Mutex::default(),
        })
    }

    /// Adds a person.
    pub fn add(
        &self,
        name: &str,
        display_name: &str,
        role: Role,
        zones: &[String],
        password: &str,
        now_ms: u64,
    ) -> Result<(), PeopleError> {
        check_name(name)?;
        check_password(password)?;
        let phc = hash(password)?;
        let display = if display_name.trim().is_empty() {
            name
        } else {
            display_name.trim()
        };
        let db = self.db.lock();
        let n = db.execute(
            "INSERT OR IGNORE INTO people (name, display_name, role, zones, password, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![name, display, role.as_str(), zones.join(","), phc, now_ms as i64],
        )?;
        if n == 0 {
            return Err(PeopleError::Exists(name.into()));
        }
        Ok(())
    }

    /// Sets a person's password and ends their sessions.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), PeopleError> {
        check_password(password)?;
        let phc = hash(password)?;
        let db = self.db.lock();
        let n = db.execute(
            "UPDATE people SET password = ?2 WHERE name = ?1",
            params![name, phc],
        )?;
        if n == 0 {
            return Err(PeopleError::Unknown(name.into()));
        }
        db.execute("DELETE FROM sessions WHERE name = ?1", params![name])?;
        Ok(())
    }

    /// Removes a person (their sessions end; the audit log keeps their name).
    pub fn remove(&self, name: &str) -> Result<(), PeopleError> {
        let n = self
            .db
            .lock()
            .execute("DELETE FROM people WHERE name = ?1", params![name])?;
        if n == 0 {
            return Err(PeopleError::Unknown(name.into()));
        }
        Ok(())
    }

    /// Everyone, by name.
    pub fn list(&self) -> Result<Vec<Person>, PeopleError> {
        let db = self.db.lock();
        let mut st =
            db.prepare("SELECT name, display_name, role, zones FROM people ORDER BY name")?;
        let rows = st.query_map([], person_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When nobody exists yet, adds `admin` with a random password and returns it (shown
    /// once, at the first start).
    pub fn first_admin(&self, now_ms: u64) -> Result<Option<String>, PeopleError> {
        let count: i64 = self
            .db
            .lock()
            .query_row("SELECT COUNT(*) FROM people", [], |r| r.get(0))?;
        if count > 0 {
            return Ok(None);
        }
        let password = random_hex(9);
        self.add(
            "admin",
            "Administrator",
            Role::Admin,
            &["*".into()],
            &password,
            now_ms,
        )?;
        Ok(Some(password))
    }

    /// Checks a password. Unknown names cost the same hashing work as known ones.
    pub fn check(&self, name: &str, password: &str) -> Result<Option<Person>, PeopleError> {
        let row = {
            let db = self.db.lock();
            db.query_row(
                "SELECT name, display_name, role, zones, password FROM people WHERE name = ?1",
                params![name.trim()],
                |r| Ok((person_from_row(r)?, r.get::<_, String>(4)?)),
            )
            .optional()?
        };
        match row {
            Some((p, phc)) => Ok(verify(password, &phc).then_some(p)),
            None => {
                let _ = hash(password);
                Ok(None)
            }
        }
    }

    /// Starts a session; returns its token (for the cookie; stored only as a hash).
    pub fn start_session(&self, name: &str, now_ms: u64) -> Result<String, PeopleError> {
        let token = random_hex(32);
        let db = self.db.lock();
        // Sessions nobody presented again until they ran out are cleared here.
        db.execute(
            "DELETE FROM sessions WHERE created_ms < ?1 OR seen_ms < ?2",
            params![
                now_ms.saturating_sub(self.limits.max_ms) as i64,
                now_ms.saturating_sub(self.limits.idle_ms) as i64
            ],
        )?;
        db.execute(
            "INSERT INTO sessions (token_sha256, name, created_ms, seen_ms) VALUES (?1, ?2, ?3, ?3)",
            params![&sha256(&token)[..], name, now_ms as i64],
        )?;
        Ok(token)
    }

    /// The person a session token belongs to, if the session is still alive at `now_ms`
    /// (and marks it used).
    pub fn session(&self, token: &str, now_ms: u64) -> Result<Option<Person>, PeopleError> {
        let key = sha256(token);
        let db = self.db.lock();
        let found = db
            .query_row(
                "SELECT p.name, p.display_name, p.role, p.zones, s.created_ms, s.seen_ms
                 FROM sessions s JOIN people p ON p.name = s.name WHERE s.token_sha256 = ?1",
                params![&key[..]],
                |r| {
                    Ok((
                        person_from_row(r)?,
                        r.get::<_, i64>(4)? as u64,
                        r.get::<_, i64>(5)? as u64,
                    ))
                },
            )
            .optional()?;
        let Some((p, created, seen)) = found else {
            return Ok(None);
        };
        let idle = now_ms.saturating_sub(seen) > self.limits.idle_ms;
        let old = now_ms.saturating_sub(created) > self.limits.max_ms;
        if idle || old {
            db.execute(
                "DELETE FROM sessions WHERE token_sha256 = ?1",
                params![&key[..]],
            )?;
            return Ok(None);
        }
        if now_ms.saturating_sub(seen) > 60_000 {
            db.execute(
                "UPDATE sessions SET seen_ms = ?2 WHERE token_sha256 = ?1",
                params![&key[..], now_ms as i64],
            )?;
        }
        Ok(Some(p))
    }

    /// Ends a session.
    pub fn end_session(&self, token: &str) -> Result<(), PeopleError> {
        self.db.lock().execute(
            "DELETE FROM sessions WHERE token_sha256 = ?1",
            params![&sha256(token)[..]],
        )?;
        Ok(())
    }

    /// Whether `token` is the machine API token.
    pub fn is_api_token(&self, token: &str) -> bool {
        // Compared as hashes: equal-length inputs, no early exit on the secret's bytes.
        sha256(token) == self.api_token_sha256
    }

    /// Records what someone did or looked at (an error is also logged: callers showing a
    /// resident's data refuse to when it cannot be recorded).
    pub fn audit(
        &self,
        who: &Person,
        action: &str,
        target: &str,
        detail: &str,
        now_ms: u64,
    ) -> Result<(), PeopleError> {
        let r = self.db.lock().execute(
            "INSERT INTO audit (t_ms, name, role, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![now_ms as i64, who.name, who.role.as_str(), action, target, detail],
        );
        if let Err(e) = &r {
            tracing::error!(error = %e, who = %who.name, action, target, "audit record not written");
        }
        r.map(|_| ()).map_err(PeopleError::from)
    }

    /// Whether showing `listed` (residents) to `name` through `route` at `now_ms` is to be
    /// recorded: a different set than last time, or the same after ten minutes.
    pub fn list_seen(&self, name: &str, route: &str, listed: &str, now_ms: u64) -> bool {
        let mut lists = self.lists.lock();
        if lists.len() > 10_000 {
            lists.clear();
        }
        let key = (name.to_owned(), route.to_owned());
        let fresh = lists
            .get(&key)
            .is_none_or(|(l, t)| l != listed || now_ms.saturating_sub(*t) >= LIST_AUDIT_EVERY_MS);
        if fresh {
            lists.insert(key, (listed.to_owned(), now_ms));
        }
        fresh
    }

    /// Audit records, newest first; `target` filters by exact target.
    pub fn audit_log(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, PeopleError> {
        let db = self.db.lock();
        let mut st = db.prepare(
            "SELECT t_ms, name, role, action, target, detail FROM audit
             WHERE (?1 IS NULL OR target = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![target, limit as i64], |r| {
            Ok(AuditEntry {
                t_ms: r.get::<_, i64>(0)? as u64,
                name: r.get(1)?,
                role: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The person requests with the machine API token act as.
pub fn api_person() -> Person {
    Person {
        name: API_TOKEN_NAME.into(),
        display_name: "API token".into(),
        role: Role::Admin,
        zones: vec!["*".into()],
    }
}

fn load_or_make_token(path: &Path) -> Result<String, PeopleError> {
    let err = |source| PeopleError::TokenFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let t = t.trim().to_owned();
            if t.len() < 32 {
                return Err(PeopleError::WeakToken(path.display().to_string()));
            }
            Ok(t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let t = random_hex(32);
            write_private(path, &t).map_err(err)?;
            Ok(t)
        }
        Err(e) => Err(err(e)),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Shared handle.
pub type SharedPeople = Arc<People>;

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SessionLimits = SessionLimits {
        idle_ms: 60 * 60_000,
        max_ms: 24 * 60 * 60_000,
    };

    #[test]
    fn passwords_sessions_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let p = People::open(dir.path(), LIMITS).unwrap();
        let first = p.first_admin(0).unwrap().expect("first admin");
        assert!(p.first_admin(0).unwrap().is_none());
        assert_eq!(p.check("admin", &first).unwrap().unwrap().role, Role::Admin);
        let zones = parse_zones("wing-a, wing-b").unwrap();
        p.add(
            "zhang",
            "Zhang Min",
            Role::Caregiver,
            &zones,
            "night-shift-1",
            0,
        )
        .unwrap();
        assert!(matches!(
            p.add("zhang", "", Role::Crew, &zones, "night-shift-1", 0),
            Err(PeopleError::Exists(_))
        ));
        assert!(p.add("x", "", Role::Crew, &zones, "short", 0).is_err());
        assert!(p
            .add("a b", "", Role::Crew, &zones, "long enough!", 0)
            .is_err());
        assert!(p.check("zhang", "wrong-password").unwrap().is_none());
        assert!(p.check("nobody", "night-shift-1").unwrap().is_none());
        let who = p.check("zhang", "night-shift-1").unwrap().unwrap();
        assert_eq!(who.zones, vec!["wing-a", "wing-b"]);
        assert_eq!(who.display_name, "Zhang Min");

        let t = p.start_session("zhang", 1_000).unwrap();
        assert_eq!(p.session(&t, 2_000).unwrap().unwrap().name, "zhang");
        assert!(p.session("not-a-token", 2_000).unwrap().is_none());
        // Idle too long: gone, and stays gone.
        assert!(p.session(&t, 2_000 + LIMITS.idle_ms + 1).unwrap().is_none());
        assert!(p.session(&t, 3_000).unwrap().is_none());
        // A password change ends sessions; so does removal.
        let t = p.start_session("zhang", 0).unwrap();
        p.set_password("zhang", "another-one-2").unwrap();
        assert!(p.session(&t, 1).unwrap().is_none());
        let t = p.start_session("zhang", 0).unwrap();
        p.remove("zhang").unwrap();
        assert!(p.session(&t, 1).unwrap().is_none());
        assert!(matches!(p.remove("zhang"), Err(PeopleError::Unknown(_))));
    }

    #[test]
    fn the_api_token_is_made_once_kept_private_and_weak_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = People::open(dir.path(), LIMITS).unwrap();
        let token = std::fs::read_to_string(dir.path().join("api-token")).unwrap();
        assert!(p.is_api_token(token.trim()));
        assert!(!p.is_api_token("guess"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("api-token"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "api-token must be private");
        }
        drop(p);
        let again = People::open(dir.path(), LIMITS).unwrap();
        assert!(again.is_api_token(token.trim()));
        let weak = tempfile::tempdir().unwrap();
        std::fs::write(weak.path().join("api-token"), "short\n").unwrap();
        assert!(matches!(
            People::open(weak.path(), LIMITS),
            Err(PeopleError::WeakToken(_))
        ));
    }

    #[test]
    fn audit_records_are_kept_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = People::open(dir.path(), LIMITS).unwrap();
        let who = api_person();
        p.audit(&who, "view", "resident:R-1", "GET /api/residents/R-1", 1)
            .unwrap();
        p.audit(&who, "ack", "alarm:3", "", 2).unwrap();
        let all = p.audit_log(None, 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].action, "ack");
        let r1 = p.audit_log(Some("resident:R-1"), 10).unwrap();
        assert_eq!(r1.len(), 1);
        assert_eq!(r1[0].name, API_TOKEN_NAME);
    }
}
