//! The delivery database (`notify.sqlite3`): how far the alarm transitions have been
//! routed, escalations in progress, work orders with their history, every delivery with
//! its attempts and receipt, and answer times. Routing results commit in one
//! transaction with the position they reflect, so a crash re-routes (under the same
//! idempotency keys) rather than loses.
//!
//! Owns SQL only; what goes in is decided by the router and the stage.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::escalation::Escalation;
use super::router::{Answer, Routed};
use super::workorder::WorkOrder;
use super::Notification;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS escalations (
    alarm INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS work_orders (
    id INTEGER PRIMARY KEY,
    alarm INTEGER NOT NULL,
    state TEXT NOT NULL,
    open INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS work_orders_open ON work_orders (open) WHERE open = 1;
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    channel TEXT NOT NULL,
    person TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    delivered_ms INTEGER,
    last_error TEXT,
    receipt TEXT,
    body TEXT NOT NULL,
    UNIQUE (key, channel)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (state) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS attempts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery);
CREATE TABLE IF NOT EXISTS answers (
    alarm INTEGER NOT NULL,
    team TEXT NOT NULL,
    priority INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    answered_ms INTEGER NOT NULL,
    by TEXT NOT NULL,
    PRIMARY KEY (alarm, started_ms)
);
CREATE INDEX IF NOT EXISTS answers_time ON answers (answered_ms);
";

/// Why the delivery database failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyDbError {
    /// SQLite failed.
    #[error("delivery database {path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// The error.
        source: rusqlite::Error,
    },
    /// A stored record does not decode.
    #[error("delivery database {path}: damaged record: {what}")]
    Damaged {
        /// The file.
        path: String,
        /// Which.
        what: String,
    },
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Delivery {
    /// Row id (attempts refer to it).
    pub id: u64,
    /// The notification.
    pub notification: Notification,
    /// `pending`, `delivered`, `failed` (refused or expired) or `superseded` (a page
    /// whose alarm was answered or closed before it could be delivered).
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Receipt time, ms.
    pub delivered_ms: Option<u64>,
    /// Last error.
    pub last_error: Option<String>,
    /// Receipt (HTTP status, SMTP reply).
    pub receipt: Option<String>,
}

/// One attempt at a delivery.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    /// When, ms.
    pub at_ms: u64,
    /// It got a receipt.
    pub ok: bool,
    /// Status or error.
    pub detail: String,
}

/// What a start-up reads back.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Last alarm transition routed.
    pub cursor: Option<u64>,
    /// Next work order id.
    pub next_work_order: u64,
    /// Key epoch (raised each time the database starts over beside its alarm database).
    pub epoch: u64,
    /// Escalations in progress.
    pub escalations: Vec<Escalation>,
    /// Open work orders.
    pub work_orders: Vec<WorkOrder>,
    /// Deliveries without a receipt yet, oldest first.
    pub pending: Vec<Delivery>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Receipt.
    Delivered(String),
    /// This message failed; it is retried after its own backoff.
    Retry(String),
    /// The receiver is unreachable or refuses us as a whole (network, timeout, bad
    /// credentials): the channel pauses, and this message is retried.
    Unreachable(String),
    /// Refused for good (the receiver said the request is wrong).
    Failed(String),
}

/// The delivery database.
#[derive(Debug)]
pub struct NotifyDb {
    conn: Connection,
    path: String,
}

impl NotifyDb {
    /// Opens (creating) `dir/notify.sqlite3`.
    pub fn open(dir: &Path) -> Result<NotifyDb, NotifyDbError> {
        let p = dir.join("notify.sqlite3");
        let path = p.display().to_string();
        let err = |source| NotifyDbError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&p).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(NotifyDb { conn, path })
    }

    /// A second connection for readers.
    pub fn reader(&self) -> Result<NotifyDb, NotifyDbError> {
        let conn = Connection::open(&self.path).map_err(|s| self.sql(s))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|s| self.sql(s))?;
        Ok(NotifyDb {
            conn,
            path: self.path.clone(),
        })
    }

    fn sql(&self, source: rusqlite::Error) -> NotifyDbError {
        NotifyDbError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn damaged(&self, what: String) -> NotifyDbError {
        NotifyDbError::Damaged {
            path: self.path.clone(),
            what,
        }
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, NotifyDbError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|v| v.map(|v| v as u64))
            .map_err(|s| self.sql(s))
    }

    /// Reads back the state a start-up needs.
    pub fn load(&self) -> Result<Loaded, NotifyDbError> {
        let e = |s| self.sql(s);
        let mut out = Loaded {
            cursor: self.meta("cursor")?,
            next_work_order: self.meta("next_work_order")?.unwrap_or(1),
            epoch: self.meta("epoch")?.unwrap_or(0),
            ..Loaded::default()
        };
        let mut st = self
            .conn
            .prepare("SELECT alarm, body FROM escalations")
            .map_err(e)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(e)?;
        for row in rows {
            let (id, body) = row.map_err(e)?;
            out.escalations.push(
                serde_json::from_str(&body)
                    .map_err(|err| self.damaged(format!("escalation of alarm {id}: {err}")))?,
            );
        }
        out.work_orders = self.work_orders(true, usize::MAX)?;
        out.pending = self.deliveries(Some("pending"), usize::MAX, true)?;
        Ok(out)
    }

    /// Commits a routing result and the position it reflects; `durable`: a person's
    /// action (synchronous=FULL). Returns how many pending pages were superseded.
    pub fn commit(
        &mut self,
        r: &Routed,
        cursor: Option<u64>,
        next_work_order: u64,
        durable: bool,
    ) -> Result<usize, NotifyDbError> {
        if durable {
            self.conn
                .pragma_update(None, "synchronous", "FULL")
                .map_err(|s| self.sql(s))?;
        }
        let result = self.commit_tx(r, cursor, next_work_order);
        if durable {
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(|s| self.sql(s))?;
        }
        result
    }

    fn commit_tx(
        &mut self,
        r: &Routed,
        cursor: Option<u64>,
        next_work_order: u64,
    ) -> Result<usize, NotifyDbError> {
        let path = self.path.clone();
        let e = |source| NotifyDbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        for (id, esc) in &r.escalations {
            match esc {
                Some(esc) => {
                    let body = enc(esc).map_err(e)?;
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO escalations (alarm, body) VALUES (?1, ?2)",
                    )
                    .and_then(|mut s| s.execute(params![*id as i64, body]))
                    .map_err(e)?;
                }
                None => {
                    tx.prepare_cached("DELETE FROM escalations WHERE alarm = ?1")
                        .and_then(|mut s| s.execute([*id as i64]))
                        .map_err(e)?;
                }
            }
        }
        for w in &r.work_orders {
            let body = enc(w).map_err(e)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO work_orders (id, alarm, state, open, created_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![w.id as i64, w.alarm as i64, w.state.as_str(), w.live(), w.created_ms as i64, body])
            })
            .map_err(e)?;
        }
        for n in &r.notifications {
            insert_delivery(&tx, n).map_err(e)?;
        }
        let mut superseded = 0;
        for (pattern, at) in &r.superseded {
            // Pages of an answered or closed alarm that have not gone out yet (not the
            // pages of a later press, created after the answer).
            superseded += tx
                .prepare_cached(
                    "UPDATE deliveries SET state = 'superseded' WHERE state = 'pending' AND person IS NOT NULL AND key LIKE ?1 AND created_ms <= ?2",
                )
                .and_then(|mut s| s.execute(params![pattern, *at as i64]))
                .map_err(e)?;
        }
        for a in &r.answers {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO answers (alarm, team, priority, started_ms, answered_ms, by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![a.alarm as i64, a.team, a.priority, a.started_ms as i64, a.answered_ms as i64, a.by])
            })
            .map_err(e)?;
        }
        let set = |k: &str, v: u64| {
            tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![k, v as i64]))
                .map(|_| ())
        };
        if let Some(c) = cursor {
            set("cursor", c).map_err(e)?;
        }
        set("next_work_order", next_work_order).map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(superseded)
    }

    /// Records a new key epoch and the cursor it starts from.
    pub fn start_epoch(&mut self, epoch: u64, cursor: u64) -> Result<(), NotifyDbError> {
        for (k, v) in [("epoch", epoch), ("cursor", cursor)] {
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    params![k, v as i64],
                )
                .map_err(|s| self.sql(s))?;
        }
        Ok(())
    }

    /// Row ids of notifications just committed (new or already there), in order.
    pub fn ids(&self, ns: &[Notification]) -> Result<Vec<(u64, String)>, NotifyDbError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, state FROM deliveries WHERE key = ?1 AND channel = ?2")
            .map_err(|s| self.sql(s))?;
        ns.iter()
            .map(|n| {
                st.query_row(params![n.key, n.channel], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
                })
                .map_err(|s| self.sql(s))
            })
            .collect()
    }

    /// A delivery's state, if it exists.
    pub fn state(&self, delivery: u64) -> Result<Option<String>, NotifyDbError> {
        self.conn
            .prepare_cached("SELECT state FROM deliveries WHERE seq = ?1")
            .and_then(|mut s| s.query_row([delivery as i64], |r| r.get(0)).optional())
            .map_err(|s| self.sql(s))
    }

    /// Records an attempt and its outcome.
    pub fn attempt(
        &mut self,
        delivery: u64,
        at_ms: u64,
        outcome: &Outcome,
    ) -> Result<(), NotifyDbError> {
        let path = self.path.clone();
        let e = |source| NotifyDbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        let (ok, detail) = match outcome {
            Outcome::Delivered(d) => (true, d),
            Outcome::Retry(d) | Outcome::Unreachable(d) | Outcome::Failed(d) => (false, d),
        };
        tx.prepare_cached(
            "INSERT INTO attempts (delivery, at_ms, ok, detail) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![delivery as i64, at_ms as i64, ok, detail]))
        .map_err(e)?;
        let update = match outcome {
            Outcome::Delivered(_) => tx
                .prepare_cached("UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_ms = ?2, receipt = ?3 WHERE seq = ?1")
                .and_then(|mut s| s.execute(params![delivery as i64, at_ms as i64, detail])),
            Outcome::Retry(_) | Outcome::Unreachable(_) => tx
                .prepare_cached("UPDATE deliveries SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1")
                .and_then(|mut s| s.execute(params![delivery as i64, detail])),
            Outcome::Failed(_) => tx
                .prepare_cached("UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE seq = ?1")
                .and_then(|mut s| s.execute(params![delivery as i64, detail])),
        };
        update.map_err(e)?;
        tx.commit().map_err(e)
    }

    /// Deliveries, newest first (or oldest first with `oldest_first`), optionally in
    /// one state.
    pub fn deliveries(
        &self,
        state: Option<&str>,
        limit: usize,
        oldest_first: bool,
    ) -> Result<Vec<Delivery>, NotifyDbError> {
        let e = |s| self.sql(s);
        let order = if oldest_first { "ASC" } else { "DESC" };
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT seq, state, attempts, delivered_ms, last_error, receipt, body FROM deliveries
                 WHERE (?1 IS NULL OR state = ?1) ORDER BY seq {order} LIMIT ?2"
            ))
            .map_err(e)?;
        let rows = st
            .query_map(params![state, limit.min(i64::MAX as usize) as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(e)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, state, attempts, delivered, last_error, receipt, body) = row.map_err(e)?;
            let notification = serde_json::from_str(&body)
                .map_err(|err| self.damaged(format!("delivery {id}: {err}")))?;
            out.push(Delivery {
                id: id as u64,
                notification,
                state,
                attempts: attempts as u32,
                delivered_ms: delivered.map(|v| v as u64),
                last_error,
                receipt,
            });
        }
        Ok(out)
    }

    /// A delivery's attempts, oldest first.
    pub fn attempts(&self, delivery: u64) -> Result<Vec<Attempt>, NotifyDbError> {
        self.select(
            "SELECT at_ms, ok, detail FROM attempts WHERE delivery = ?1 ORDER BY seq",
            [delivery as i64],
            |r| {
                Ok(Attempt {
                    at_ms: r.get::<_, i64>(0)? as u64,
                    ok: r.get(1)?,
                    detail: r.get(2)?,
                })
            },
        )
    }

    fn select<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, NotifyDbError> {
        let mut st = self.conn.prepare_cached(sql).map_err(|s| self.sql(s))?;
        let rows = st.query_map(params, f).map_err(|s| self.sql(s))?;
        rows.collect::<Result<_, _>>().map_err(|s| self.sql(s))
    }

    /// Work orders, newest first: only open ones, or all.
    pub fn work_orders(
        &self,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, NotifyDbError> {
        let e = |s| self.sql(s);
        let mut st = self
            .conn
            .prepare_cached("SELECT id, body FROM work_orders WHERE (?1 = 0 OR open = 1) ORDER BY id DESC LIMIT ?2")
            .map_err(e)?;
        let rows = st
            .query_map(
                params![open_only, limit.min(i64::MAX as usize) as i64],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .map_err(e)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row.map_err(e)?;
            out.push(
                serde_json::from_str(&body)
                    .map_err(|err| self.damaged(format!("work order {id}: {err}")))?,
            );
        }
        Ok(out)
    }

    /// One work order.
    pub fn work_order(&self, id: u64) -> Result<Option<WorkOrder>, NotifyDbError> {
        let body: Option<String> = self
            .conn
            .query_row(
                "SELECT body FROM work_orders WHERE id = ?1",
                [id as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|s| self.sql(s))?;
        body.map(|b| {
            serde_json::from_str(&b).map_err(|err| self.damaged(format!("work order {id}: {err}")))
        })
        .transpose()
    }

    /// Deletes what is past retention: finished deliveries (with their attempts) and
    /// closed work orders created before `before_ms`, and older answers. Deliveries
    /// still pending and open work orders are never deleted. Returns deliveries deleted.
    pub fn purge(&mut self, before_ms: u64) -> Result<usize, NotifyDbError> {
        let path = self.path.clone();
        let e = |source| NotifyDbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        let b = before_ms as i64;
        tx.execute(
            "DELETE FROM attempts WHERE delivery IN
             (SELECT seq FROM deliveries WHERE state != 'pending' AND created_ms < ?1)",
            [b],
        )
        .map_err(e)?;
        let n = tx
            .execute(
                "DELETE FROM deliveries WHERE state != 'pending' AND created_ms < ?1",
                [b],
            )
            .map_err(e)?;
        tx.execute(
            "DELETE FROM work_orders WHERE open = 0 AND created_ms < ?1",
            [b],
        )
        .map_err(e)?;
        tx.execute("DELETE FROM answers WHERE answered_ms < ?1", [b])
            .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(n)
    }

    /// Answers at or after `since_ms`.
    pub fn answers(&self, since_ms: u64) -> Result<Vec<Answer>, NotifyDbError> {
        self.select(
            "SELECT alarm, team, priority, started_ms, answered_ms, by FROM answers WHERE answered_ms >= ?1 ORDER BY answered_ms",
            [since_ms as i64],
            |r| {
                Ok(Answer {
                    alarm: r.get::<_, i64>(0)? as u64,
                    team: r.get(1)?,
                    priority: r.get(2)?,
                    started_ms: r.get::<_, i64>(3)? as u64,
                    answered_ms: r.get::<_, i64>(4)? as u64,
                    by: r.get(5)?,
                })
            },
        )
    }
}

/// JSON for a stored record; a failure is reported like an SQLite error.
fn enc<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn insert_delivery(tx: &rusqlite::Transaction<'_>, n: &Notification) -> rusqlite::Result<()> {
    // A key already recorded (re-routed after a crash) keeps its state and receipt.
    let body = enc(n)?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO deliveries (key, channel, person, state, created_ms, body) VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
    )?
    .execute(params![n.key, n.channel, n.person.as_ref().map(|p| p.id.clone()), n.created_ms as i64, body])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(key: &str, at: u64) -> Notification {
        Notification {
            key: key.into(),
            channel: "webhook:sms".into(),
            person: Some(crate::notify::Recipient {
                id: "anna".into(),
                name: "Anna".into(),
                email: None,
                phone: None,
            }),
            subject: "s".into(),
            body: serde_json::json!({"type": "page"}),
            created_ms: at,
        }
    }

    #[test]
    fn a_key_routed_again_keeps_its_receipt_and_purge_spares_pending_ones() {
        let dir = tempfile::tempdir().expect("dir");
        let mut db = NotifyDb::open(dir.path()).expect("open");
        let r = Routed {
            notifications: vec![note("a1-t1-s0-anna", 10), note("a2-t5-s0-anna", 20)],
            ..Routed::default()
        };
        assert_eq!(db.commit(&r, Some(5), 1, false).expect("commit"), 0);
        let ids = db.ids(&r.notifications).expect("ids");
        db.attempt(ids[0].0, 11, &Outcome::Retry("HTTP 500".into()))
            .expect("attempt");
        db.attempt(ids[0].0, 12, &Outcome::Delivered("HTTP 200".into()))
            .expect("attempt");
        // Routed again after a crash: the same keys, nothing new, the receipt kept.
        db.commit(&r, Some(5), 1, true).expect("again");
        let again = db.ids(&r.notifications).expect("ids");
        assert_eq!(
            again,
            vec![
                (ids[0].0, "delivered".to_owned()),
                (ids[1].0, "pending".to_owned())
            ]
        );
        let d = db.deliveries(Some("delivered"), 10, true).expect("list");
        assert_eq!(
            (d.len(), d[0].attempts, d[0].receipt.as_deref()),
            (1, 2, Some("HTTP 200"))
        );
        assert_eq!(db.attempts(ids[0].0).expect("attempts").len(), 2);
        let loaded = db.load().expect("load");
        assert_eq!((loaded.cursor, loaded.pending.len()), (Some(5), 1));
        // The alarm was answered at 25: its pages from before then are superseded, a
        // page of a later press is not.
        let answered = Routed {
            notifications: vec![note("a2-t9-s0-anna", 30)],
            superseded: vec![("a2-%".into(), 25)],
            ..Routed::default()
        };
        assert_eq!(db.commit(&answered, Some(9), 1, false).expect("commit"), 1);
        let states: Vec<String> = db
            .ids(&[
                r.notifications[1].clone(),
                answered.notifications[0].clone(),
            ])
            .expect("ids")
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(states, ["superseded", "pending"]);
        // Past retention: the delivered one goes with its attempts; the pending one stays.
        assert_eq!(
            db.purge(1_000).expect("purge"),
            2,
            "the delivered and the superseded one"
        );
        assert!(db.attempts(ids[0].0).expect("attempts").is_empty());
        assert_eq!(db.load().expect("load").pending.len(), 1);
    }
}
