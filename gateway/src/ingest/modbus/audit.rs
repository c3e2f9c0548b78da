//! The audit trail of commands to Modbus equipment (`modbus.sqlite3`): who or what asked
//! for which write, whether the equipment took the write, and whether the read-back then
//! showed it.
//!
//! Owns this table only; does not write registers (`poller`).

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// Audit errors.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// SQLite failed.
    #[error("modbus command audit (modbus.sqlite3): {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// One audited command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandRecord {
    /// Id.
    pub id: i64,
    /// Device id.
    pub device: String,
    /// Register name.
    pub register: String,
    /// Value asked for.
    pub value: f64,
    /// `api` or `schedule`.
    pub source: String,
    /// Who asked (a person, or the schedule's name).
    pub by: String,
    /// When, ms since the epoch.
    pub requested_ms: u64,
    /// `pending`, `written` or `failed`.
    pub result: String,
    /// Why the write failed.
    pub error: Option<String>,
    /// `pending`, `verified`, `not_applied` or `superseded`; None when nothing verifies
    /// this register.
    pub verify: Option<String>,
    /// The read-back that decided `verify`.
    pub observed: Option<f64>,
    /// When it was decided.
    pub verified_ms: Option<u64>,
}

/// The audit database.
#[derive(Debug)]
pub struct Audit {
    db: Mutex<Connection>,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    register TEXT NOT NULL,
    value REAL NOT NULL,
    source TEXT NOT NULL,
    by_whom TEXT NOT NULL,
    requested_ms INTEGER NOT NULL,
    result TEXT NOT NULL,
    error TEXT,
    verify TEXT,
    observed REAL,
    verified_ms INTEGER
);
CREATE INDEX IF NOT EXISTS commands_device ON commands (device, id);
";

impl Audit {
    /// Opens (creating) `modbus.sqlite3` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Audit, AuditError> {
        let conn = Connection::open(data_dir.join("modbus.sqlite3"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Audit {
            db: Mutex::new(conn),
        })
    }

    /// Records a request before it is written; returns its id.
    pub fn request(
        &self,
        device: &str,
        register: &str,
        value: f64,
        source: &str,
        by: &str,
        now_ms: u64,
    ) -> Result<i64, AuditError> {
        let db = self.db.lock();
        db.execute(
            "INSERT INTO commands (device, register, value, source, by_whom, requested_ms, result)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
            params![device, register, value, source, by, now_ms as i64],
        )?;
        Ok(db.last_insert_rowid())
    }

    /// Records the write's result; `verifying` marks it pending verification.
    pub fn written(&self, id: i64, error: Option<&str>, verifying: bool) -> Result<(), AuditError> {
        self.db.lock().execute(
            "UPDATE commands SET result = ?2, error = ?3, verify = ?4 WHERE id = ?1",
            params![
                id,
                if error.is_some() { "failed" } else { "written" },
                error,
                (verifying && error.is_none()).then_some("pending"),
            ],
        )?;
        Ok(())
    }

    /// Records a verification outcome (`verified`, `not_applied`, `superseded`).
    pub fn verified(
        &self,
        id: i64,
        outcome: &str,
        observed: Option<f64>,
        now_ms: u64,
    ) -> Result<(), AuditError> {
        self.db.lock().execute(
            "UPDATE commands SET verify = ?2, observed = ?3, verified_ms = ?4 WHERE id = ?1",
            params![id, outcome, observed, now_ms as i64],
        )?;
        Ok(())
    }

    /// What a previous run left open (a restart loses the poll state that was to decide
    /// it): checks still pending are marked `superseded`, and requests whose write never
    /// reported back (the gateway stopped between request and answer) `interrupted` —
    /// the device may or may not have taken them.
    pub fn close_pending(&self) -> Result<usize, AuditError> {
        let db = self.db.lock();
        let checks = db.execute(
            "UPDATE commands SET verify = 'superseded' WHERE verify = 'pending'",
            [],
        )?;
        let writes = db.execute(
            "UPDATE commands SET result = 'interrupted' WHERE result = 'pending'",
            [],
        )?;
        Ok(checks + writes)
    }

    /// The newest `limit` commands, of one device or all.
    pub fn list(&self, device: Option<&str>, limit: u32) -> Result<Vec<CommandRecord>, AuditError> {
        let db = self.db.lock();
        let mut st = db.prepare(
            "SELECT id, device, register, value, source, by_whom, requested_ms, result, error,
                    verify, observed, verified_ms
             FROM commands WHERE (?1 IS NULL OR device = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![device, limit], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One command.
    pub fn get(&self, id: i64) -> Result<Option<CommandRecord>, AuditError> {
        let db = self.db.lock();
        Ok(db
            .query_row(
                "SELECT id, device, register, value, source, by_whom, requested_ms, result,
                        error, verify, observed, verified_ms
                 FROM commands WHERE id = ?1",
                [id],
                row,
            )
            .optional()?)
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CommandRecord> {
    Ok(CommandRecord {
        id: r.get(0)?,
        device: r.get(1)?,
        register: r.get(2)?,
        value: r.get(3)?,
        source: r.get(4)?,
        by: r.get(5)?,
        requested_ms: r.get::<_, i64>(6)? as u64,
        result: r.get(7)?,
        error: r.get(8)?,
        verify: r.get(9)?,
        observed: r.get(10)?,
        verified_ms: r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_recorded_from_request_to_verification() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = Audit::open(dir.path()).expect("open");
        let id = a
            .request("lamp-1", "dimming_setpoint", 40.0, "api", "ops-li", 5)
            .expect("req");
        a.written(id, None, true).expect("written");
        let r = a.get(id).expect("get").expect("row");
        assert_eq!(
            (r.result.as_str(), r.verify.as_deref()),
            ("written", Some("pending"))
        );
        a.verified(id, "not_applied", Some(100.0), 9)
            .expect("verified");
        let failed = a
            .request("lamp-1", "relay_command", 1.0, "schedule", "night", 10)
            .expect("req");
        a.written(failed, Some("timed out"), true).expect("failed");
        let all = a.list(Some("lamp-1"), 10).expect("list");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].result, "failed");
        assert_eq!(all[0].verify, None, "a failed write is not verified");
        assert_eq!(all[1].verify.as_deref(), Some("not_applied"));
        assert_eq!(all[1].observed, Some(100.0));
        assert!(a.list(Some("lamp-2"), 10).expect("list").is_empty());

        // A restart closes what the last run left open.
        let open = a
            .request("lamp-1", "relay_command", 0.0, "api", "ops-li", 11)
            .expect("req");
        let checking = a
            .request("lamp-1", "dimming_setpoint", 30.0, "api", "ops-li", 12)
            .expect("req");
        a.written(checking, None, true).expect("written");
        assert_eq!(a.close_pending().expect("close"), 2);
        let r = |id| a.get(id).expect("get").expect("row");
        assert_eq!(r(open).result, "interrupted");
        assert_eq!(r(checking).verify.as_deref(), Some("superseded"));
    }
}
