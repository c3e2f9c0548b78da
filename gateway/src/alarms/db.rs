//! Where alarms live: an SQLite file (`alarms.sqlite3`, WAL) holding every alarm (open
//! and closed), every transition with who and when, notes, shelves and out-of-service
//! marks, the rule engine's state (pending timers included), and the journal position
//! all of it reflects.
//!
//! Rule-driven changes commit with `synchronous=NORMAL`: they survive kill -9, and after
//! a power cut the journal replays whatever the file lost, because the position rolls
//! back with it. People's actions are not in the journal, so they commit with FULL.
//! Owns the schema and its statements; does not decide anything.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::lifecycle::{Changes, Controls};
use super::{Alarm, Note, Transition};
use crate::rules::Dirty;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA wal_autocheckpoint = 20000;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_state (
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (rule, target)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    zone TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    open INTEGER NOT NULL,
    raised_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alarms_open ON alarms (open) WHERE open = 1;
CREATE INDEX IF NOT EXISTS alarms_raised ON alarms (raised_ms);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    action TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    who TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_alarm ON transitions (alarm);
CREATE TABLE IF NOT EXISTS notes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    what TEXT NOT NULL,
    rule TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS controls (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL
);
";

/// Version of the schema above, kept in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// Why the alarm database failed.
#[derive(Debug, thiserror::Error)]
pub enum AlarmDbError {
    /// SQLite failed.
    #[error("alarm database {path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// The error.
        source: rusqlite::Error,
    },
    /// The file was written by another version.
    #[error("alarm database {path} has schema version {found}, this gateway reads {SCHEMA_VERSION}: use the matching gateway version or move the file away")]
    Version {
        /// The file.
        path: String,
        /// Its version.
        found: i64,
    },
    /// A stored record does not decode.
    #[error("alarm database {path}: damaged record: {what}")]
    Damaged {
        /// The file.
        path: String,
        /// Which.
        what: String,
    },
}

/// What a start-up reads back.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Rule engine records: (rule, target, state).
    pub states: Vec<(String, String, Vec<u8>)>,
    /// Open alarms.
    pub open: Vec<Alarm>,
    /// Shelves and out-of-service marks.
    pub controls: Controls,
    /// Next alarm id.
    pub next_id: u64,
    /// First journal sequence number not yet reflected.
    pub cursor: u64,
    /// Last time the engine was known to run, ms.
    pub alive_ms: u64,
}

/// Which alarms to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only open ones.
    pub open_only: bool,
    /// Only this zone.
    pub zone: Option<String>,
    /// Only this type.
    pub kind: Option<String>,
    /// Raised at or after, ms.
    pub since_ms: Option<u64>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// The alarm database.
#[derive(Debug)]
pub struct AlarmDb {
    conn: Connection,
    path: String,
}

impl AlarmDb {
    /// Opens (creating) `dir/alarms.sqlite3`.
    pub fn open(dir: &Path) -> Result<AlarmDb, AlarmDbError> {
        let p = dir.join("alarms.sqlite3");
        let path = p.display().to_string();
        let err = |source| AlarmDbError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&p).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        let fresh: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(err)?;
        if fresh > 0 && version != SCHEMA_VERSION {
            return Err(AlarmDbError::Version {
                path,
                found: version,
            });
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(err)?;
        Ok(AlarmDb { conn, path })
    }

    /// A second connection to the same file, for readers (WAL lets them run beside the
    /// writer).
    pub fn reader(&self) -> Result<AlarmDb, AlarmDbError> {
        let conn = Connection::open(&self.path).map_err(|source| self.sql(source))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|source| self.sql(source))?;
        Ok(AlarmDb {
            conn,
            path: self.path.clone(),
        })
    }

    fn sql(&self, source: rusqlite::Error) -> AlarmDbError {
        AlarmDbError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn damaged(&self, what: String) -> AlarmDbError {
        AlarmDbError::Damaged {
            path: self.path.clone(),
            what,
        }
    }

    /// Copies committed pages from the WAL into the file without blocking the writer
    /// (run off the alarm thread, so that commits never pay for it).
    pub fn checkpoint(&self) -> Result<(), AlarmDbError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|s| self.sql(s))
    }

    /// Deletes closed alarms raised before `before_ms` with their transitions, and notes
    /// older than that; returns the alarms deleted. Open alarms are never deleted.
    pub fn purge(&mut self, before_ms: u64) -> Result<usize, AlarmDbError> {
        let path = self.path.clone();
        let e = |source| AlarmDbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        let before = before_ms as i64;
        // Ids are never handed out twice, even once the newest alarms are purged.
        tx.execute(
            "INSERT INTO meta (key, value) SELECT 'next_id', coalesce(max(id), 0) + 1 FROM alarms WHERE true
             ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            [],
        )
        .map_err(e)?;
        tx.execute(
            "DELETE FROM transitions WHERE alarm IN
               (SELECT id FROM alarms WHERE open = 0 AND raised_ms < ?1)",
            [before],
        )
        .map_err(e)?;
        let n = tx
            .execute(
                "DELETE FROM alarms WHERE open = 0 AND raised_ms < ?1",
                [before],
            )
            .map_err(e)?;
        tx.execute("DELETE FROM notes WHERE at_ms < ?1", [before])
            .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(n)
    }

    /// Reads back everything a start needs.
    pub fn load(&self) -> Result<Loaded, AlarmDbError> {
        let e = |s| self.sql(s);
        let mut out = Loaded::default();
        let mut st = self
            .conn
            .prepare("SELECT rule, target, state FROM rule_state")
            .map_err(e)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(e)?;
        for row in rows {
            out.states.push(row.map_err(e)?);
        }
        out.open = self.list(&Filter {
            open_only: true,
            limit: usize::MAX,
            ..Filter::default()
        })?;
        let meta = |k: &str| -> Result<u64, AlarmDbError> {
            self.conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
                .map(|v| v.unwrap_or(0) as u64)
                .map_err(e)
        };
        out.cursor = meta("cursor")?;
        out.alive_ms = meta("alive_ms")?;
        let max: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM alarms", [], |r| r.get(0))
            .map_err(e)?;
        out.next_id = max.map_or(1, |m| m as u64 + 1).max(meta("next_id")?);
        let controls: Option<String> = self
            .conn
            .query_row("SELECT body FROM controls WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(e)?;
        if let Some(body) = controls {
            out.controls = serde_json::from_str(&body)
                .map_err(|err| self.damaged(format!("controls: {err}")))?;
        }
        Ok(out)
    }

    /// Writes one step's changes in one transaction. `cursor`: the journal position they
    /// reflect; `durable`: a person's action (synchronous=FULL).
    pub fn commit(
        &mut self,
        dirty: Vec<Dirty>,
        changes: &Changes,
        cursor: Option<u64>,
        alive_ms: u64,
        durable: bool,
    ) -> Result<(), AlarmDbError> {
        let path = self.path.clone();
        let e = |source| AlarmDbError::Sqlite {
            path: path.clone(),
            source,
        };
        if durable {
            self.conn
                .pragma_update(None, "synchronous", "FULL")
                .map_err(e)?;
        }
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO rule_state (rule, target, state) VALUES (?1, ?2, ?3)",
                )
                .map_err(e)?;
            let mut del = tx
                .prepare_cached("DELETE FROM rule_state WHERE rule = ?1 AND target = ?2")
                .map_err(e)?;
            for ((rule, target), bytes) in dirty {
                match bytes {
                    Some(b) => put.execute(params![rule, target, b]).map_err(e)?,
                    None => del.execute(params![rule, target]).map_err(e)?,
                };
            }
            let mut alarm = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO alarms (id, kind, source, zone, state, priority, open, raised_ms, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(e)?;
            for a in &changes.alarms {
                let body = serde_json::to_string(a).unwrap_or_default();
                alarm
                    .execute(params![
                        a.id as i64,
                        a.kind,
                        a.source,
                        a.zone,
                        a.state.as_str(),
                        a.priority,
                        a.state != super::AlarmState::Normal,
                        a.raised_ms as i64,
                        body
                    ])
                    .map_err(e)?;
            }
            let mut tr = tx
                .prepare_cached(
                    "INSERT INTO transitions (alarm, at_ms, action, from_state, to_state, who, note)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(e)?;
            for t in &changes.transitions {
                tr.execute(params![
                    t.alarm as i64,
                    t.at_ms as i64,
                    t.action,
                    t.from.as_str(),
                    t.to.as_str(),
                    t.who,
                    t.note
                ])
                .map_err(e)?;
            }
            let mut note = tx
                .prepare_cached("INSERT INTO notes (at_ms, what, rule, source, detail) VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(e)?;
            for n in &changes.notes {
                note.execute(params![n.at_ms as i64, n.what, n.rule, n.source, n.detail])
                    .map_err(e)?;
            }
            if let Some(c) = &changes.controls {
                tx.execute(
                    "INSERT OR REPLACE INTO controls (id, body) VALUES (1, ?1)",
                    [serde_json::to_string(c).unwrap_or_default()],
                )
                .map_err(e)?;
            }
            let mut meta = tx
                .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
                .map_err(e)?;
            if let Some(c) = cursor {
                meta.execute(params!["cursor", c as i64]).map_err(e)?;
            }
            meta.execute(params!["alive_ms", alive_ms as i64])
                .map_err(e)?;
        }
        tx.commit().map_err(e)?;
        if durable {
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(e)?;
        }
        Ok(())
    }

    /// Alarms matching `f`, newest first.
    pub fn list(&self, f: &Filter) -> Result<Vec<Alarm>, AlarmDbError> {
        let e = |s| self.sql(s);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT body FROM alarms
                 WHERE (?1 = 0 OR open = 1) AND (?2 IS NULL OR zone = ?2)
                   AND (?3 IS NULL OR kind = ?3) AND raised_ms >= ?4
                 ORDER BY raised_ms DESC, id DESC LIMIT ?5",
            )
            .map_err(e)?;
        let rows = st
            .query_map(
                params![
                    f.open_only,
                    f.zone,
                    f.kind,
                    f.since_ms.unwrap_or(0) as i64,
                    f.limit.min(i64::MAX as usize) as i64
                ],
                |r| r.get::<_, String>(0),
            )
            .map_err(e)?;
        let mut out = Vec::new();
        for body in rows {
            let body = body.map_err(e)?;
            out.push(
                serde_json::from_str(&body).map_err(|err| self.damaged(format!("alarm: {err}")))?,
            );
        }
        Ok(out)
    }

    /// One alarm.
    pub fn get(&self, id: u64) -> Result<Option<Alarm>, AlarmDbError> {
        let body: Option<String> = self
            .conn
            .query_row("SELECT body FROM alarms WHERE id = ?1", [id as i64], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|s| self.sql(s))?;
        body.map(|b| {
            serde_json::from_str(&b).map_err(|err| self.damaged(format!("alarm {id}: {err}")))
        })
        .transpose()
    }

    /// An alarm's transitions, oldest first.
    pub fn transitions(&self, id: u64) -> Result<Vec<Transition>, AlarmDbError> {
        let rows = self.select_transitions("alarm = ?1", id, i64::MAX)?;
        Ok(rows.into_iter().map(|(_, t)| t).collect())
    }

    /// Transitions recorded after number `seq` (of any alarm), oldest first, with their
    /// numbers: the delivery stage follows the alarms this way.
    pub fn transitions_after(
        &self,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Transition)>, AlarmDbError> {
        self.select_transitions("seq > ?1", seq, limit.min(i64::MAX as usize) as i64)
    }

    /// Number of the latest transition recorded (0 when none).
    pub fn last_transition(&self) -> Result<u64, AlarmDbError> {
        self.conn
            .query_row("SELECT coalesce(max(seq), 0) FROM transitions", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(|s| self.sql(s))
    }

    fn select_transitions(
        &self,
        filter: &str,
        arg: u64,
        limit: i64,
    ) -> Result<Vec<(u64, Transition)>, AlarmDbError> {
        let e = |s| self.sql(s);
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT seq, alarm, at_ms, action, from_state, to_state, who, note
                 FROM transitions WHERE {filter} ORDER BY seq LIMIT ?2"
            ))
            .map_err(e)?;
        let rows = st
            .query_map(rusqlite::params![arg as i64, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    (
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                    ),
                ))
            })
            .map_err(e)?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, (alarm, at, action, from, to, who, note)) = row.map_err(e)?;
            let state = |s: &str| {
                serde_json::from_value(serde_json::Value::String(s.to_owned()))
                    .map_err(|err| self.damaged(format!("transition state `{s}`: {err}")))
            };
            out.push((
                seq as u64,
                Transition {
                    alarm: alarm as u64,
                    at_ms: at as u64,
                    action,
                    from: state(&from)?,
                    to: state(&to)?,
                    who,
                    note,
                },
            ));
        }
        Ok(out)
    }

    /// The latest notes, newest first.
    pub fn notes(&self, limit: usize) -> Result<Vec<Note>, AlarmDbError> {
        let e = |s| self.sql(s);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT at_ms, what, rule, source, detail FROM notes ORDER BY seq DESC LIMIT ?1",
            )
            .map_err(e)?;
        let rows = st
            .query_map([limit.min(i64::MAX as usize) as i64], |r| {
                Ok(Note {
                    at_ms: r.get::<_, i64>(0)? as u64,
                    what: r.get(1)?,
                    rule: r.get(2)?,
                    source: r.get(3)?,
                    detail: r.get(4)?,
                })
            })
            .map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarms::{AlarmState, Transition};

    fn alarm(id: u64, raised_ms: u64, state: AlarmState) -> Alarm {
        let place = ("s".into(), "z".into());
        Alarm {
            state,
            ..Alarm::opened(
                id,
                "door_open".into(),
                format!("device:d-{id}"),
                place,
                3,
                raised_ms,
                String::new(),
            )
        }
    }

    #[test]
    fn purge_deletes_old_closed_alarms_with_their_history_and_keeps_open_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = AlarmDb::open(dir.path()).unwrap();
        let mut changes = Changes::default();
        for (id, raised, state) in [
            (1, 1_000, AlarmState::Normal),
            (2, 1_000, AlarmState::ActiveUnacked),
            (3, 9_000, AlarmState::Normal),
        ] {
            changes.alarms.push(alarm(id, raised, state));
            changes.transitions.push(Transition {
                alarm: id,
                at_ms: raised,
                action: "raised".into(),
                from: AlarmState::Normal,
                to: AlarmState::ActiveUnacked,
                who: "rules".into(),
                note: String::new(),
            });
        }
        db.commit(Vec::new(), &changes, Some(3), 9_000, false)
            .unwrap();
        assert_eq!(db.purge(5_000).unwrap(), 1);
        assert!(db.get(1).unwrap().is_none());
        assert!(db.transitions(1).unwrap().is_empty());
        assert!(db.get(2).unwrap().is_some(), "open alarms stay however old");
        assert_eq!(db.transitions(3).unwrap().len(), 1);
        assert_eq!(db.load().unwrap().next_id, 4);
        changes.alarms.clear();
        db.commit(Vec::new(), &changes, None, 99_000, false)
            .unwrap();
        db.purge(99_000).unwrap();
        assert_eq!(
            db.load().unwrap().next_id,
            4,
            "ids are not reused after a purge"
        );
    }
}
