//! Settings and commands to MQTT devices (`down/config`, `down/cmd`): checked against
//! the device's kind, sealed under its key with a per-device command counter that is
//! stored before the frame leaves and never below the Unix time in seconds (the counter
//! is part of the nonce: it is never used twice, even across a crash or a lost
//! database), stamped with the newest uplink counter heard from the device (so a
//! recording replayed after the device reboots is refused by it), handed to the acker
//! thread to publish, and audited in `downlink.sqlite3` together with the device's
//! `answer` report, read from the journal by [`AnswerFollower`] and matched by counter.
//!
//! Owns that database and the kind checks. Does not own the broker link (the acker
//! publishes), Modbus equipment (see [`crate::ingest::modbus`], which verifies its own
//! writes by polling) or how the device applies what it gets (firmware).

use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use linli_protocol::replay::is_after;
use linli_protocol::report::{Answer, Command, CommandTarget, Settings, Threshold};
use linli_protocol::topic::DownChannel;
use linli_protocol::{DeviceKind, Downlink, Report};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::follow::{Entry, Follower};
use crate::ingest::sealed_downlink;
use crate::registry::{DeviceRecord, Trust};
use crate::worker::Outgoing;

/// Why a downlink was not sent.
#[derive(Debug, thiserror::Error)]
pub enum DownlinkError {
    /// The device sends JSON or is polled: it has no sealed downlinks.
    #[error("device {0} is not a sealed firmware device (trust {1}): it takes no settings or commands over MQTT")]
    NotSealed(String, &'static str),
    /// The settings or command do not belong to the device's kind.
    #[error("{0}")]
    Unfit(String),
    /// Nothing heard from the device since it was registered: it cannot be told this
    /// order is from after its boot.
    #[error("device {0} has not been heard from yet; settings and commands can be sent once its first heartbeat arrives")]
    NeverHeard(String),
    /// The database failed.
    #[error("downlink audit (downlink.sqlite3): {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The publisher is gone (the gateway is stopping).
    #[error("the broker link is stopped")]
    Stopped,
}

/// What the API asks a device to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// New settings (`down/config`).
    Config(Settings),
    /// A command (`down/cmd`).
    Command(Command),
}

impl Order {
    fn downlink(self, since: u32) -> Downlink {
        match self {
            Order::Config(settings) => Downlink::Config { since, settings },
            Order::Command(command) => Downlink::Command { since, command },
        }
    }
}

/// Checks that `o` makes sense for a device of `kind`; the message names what is wrong.
pub fn fits(kind: DeviceKind, o: &Order) -> Result<(), String> {
    match o {
        Order::Config(s) => {
            let zero = [
                ("heartbeat_s", s.heartbeat_s),
                ("report_s", s.report_s),
                ("alarm_report_s", s.alarm_report_s),
            ]
            .into_iter()
            .find(|(_, v)| *v == Some(0));
            if let Some((name, _)) = zero {
                return Err(format!("{name} must be at least 1 second"));
            }
            if s == &Settings::default() {
                return Err("settings change nothing: give heartbeat_s, report_s, alarm_report_s or threshold".into());
            }
            match s.threshold {
                None => Ok(()),
                Some(t) => {
                    let (name, kinds): (&str, &[DeviceKind]) = match t {
                        Threshold::ImpactMg(_) => ("impact_mg", &[DeviceKind::Pendant]),
                        Threshold::WaterAlarmMm(_) => (
                            "water_alarm_mm",
                            &[DeviceKind::WaterLevel, DeviceKind::Manhole],
                        ),
                        Threshold::TiltAlarmCdeg(_) => ("tilt_alarm_cdeg", &[DeviceKind::Manhole]),
                        Threshold::BinFullPct(_) => ("bin_full_pct", &[DeviceKind::WasteBin]),
                    };
                    if kinds.contains(&kind) {
                        Ok(())
                    } else {
                        Err(format!(
                            "threshold {name} is for {}, not {}",
                            names(kinds),
                            kind.as_str()
                        ))
                    }
                }
            }
        }
        Order::Command(c) => {
            let (name, for_kind) = match c {
                Command::Relay { .. } => ("relay", DeviceKind::StreetLight),
                Command::Dim { percent } if *percent > 100 => {
                    return Err(format!("dim percent {percent} is over 100"))
                }
                Command::Dim { .. } => ("dim", DeviceKind::StreetLight),
                Command::Pump { .. } => ("pump", DeviceKind::PumpStation),
            };
            if kind == for_kind {
                Ok(())
            } else {
                Err(format!(
                    "command {name} is for {}, not {}",
                    for_kind.as_str(),
                    kind.as_str()
                ))
            }
        }
    }
}

/// The command counter after `last`: never below the Unix time in seconds, so a lost or
/// restored database cannot bring back a counter (a nonce) already used.
fn next_counter(last: Option<u32>, now_ms: u64) -> u32 {
    let floor = (now_ms / 1_000) as u32;
    match last {
        Some(l) if !is_after(floor, l) => l.wrapping_add(1),
        _ => floor,
    }
}

fn names(kinds: &[DeviceKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// One downlink and what the device answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DownlinkRecord {
    /// Audit id.
    pub id: i64,
    /// Device id.
    pub device: String,
    /// `config` or `cmd`.
    pub channel: String,
    /// The frame counter it was sealed with.
    pub counter: u32,
    /// What was sent (the wire form as JSON).
    pub body: serde_json::Value,
    /// Who asked.
    pub by: String,
    /// When, ms since the epoch.
    pub requested_ms: u64,
    /// `pending` until the device answers, then `applied` or `not_applied`; `no_answer`
    /// when none came within ten minutes (a frame sent while the device was offline).
    pub answer: String,
    /// What the device observed (commands: the value its feedback shows).
    pub observed: Option<i64>,
    /// When the answer arrived, ms since the epoch.
    pub answered_ms: Option<u64>,
}

/// A downlink unanswered this long is shown as `no_answer`, ms.
const NO_ANSWER_MS: u64 = 10 * 60_000;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS counters (device TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS downlinks (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    channel TEXT NOT NULL,
    counter INTEGER NOT NULL,
    target TEXT NOT NULL,
    requested INTEGER NOT NULL,
    body TEXT NOT NULL,
    by_whom TEXT NOT NULL,
    requested_ms INTEGER NOT NULL,
    answer TEXT NOT NULL DEFAULT 'pending',
    observed INTEGER,
    answered_ms INTEGER
);
CREATE INDEX IF NOT EXISTS downlinks_device ON downlinks (device, id);
CREATE TABLE IF NOT EXISTS follower (id INTEGER PRIMARY KEY CHECK (id = 1), durable_before INTEGER NOT NULL);
";

/// The downlink sender and its audit.
#[derive(Debug)]
pub struct Downlinks {
    db: Mutex<Connection>,
    out: Mutex<Sender<Outgoing>>,
}

impl Downlinks {
    /// Opens (creating) `downlink.sqlite3` in `data_dir`; frames go to `out`.
    pub fn open(data_dir: &Path, out: Sender<Outgoing>) -> Result<Arc<Downlinks>, DownlinkError> {
        let conn = Connection::open(data_dir.join("downlink.sqlite3"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Arc::new(Downlinks {
            db: Mutex::new(conn),
            out: Mutex::new(out),
        }))
    }

    /// Checks, records and sends `order` to `device` on behalf of `by`; `since` is the
    /// newest uplink counter heard from the device (None: never heard).
    pub fn send(
        &self,
        device: &DeviceRecord,
        order: Order,
        since: Option<u32>,
        by: &str,
        now_ms: u64,
    ) -> Result<DownlinkRecord, DownlinkError> {
        let p = &device.profile;
        if p.trust != Trust::Sealed {
            return Err(DownlinkError::NotSealed(p.id.clone(), p.trust.as_str()));
        }
        fits(p.kind, &order).map_err(DownlinkError::Unfit)?;
        let since = since.ok_or_else(|| DownlinkError::NeverHeard(p.id.clone()))?;
        let (channel, target, requested) = match order {
            Order::Command(c) => {
                let (t, v) = c.target();
                (DownChannel::Cmd, t, i64::from(v))
            }
            Order::Config(_) => (DownChannel::Config, CommandTarget::Config, 0),
        };
        // The lock is held until the frame is queued: two requests for one device go out
        // in counter order (the device refuses a counter older than one it took).
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        let last: Option<i64> = tx
            .query_row(
                "SELECT last FROM counters WHERE device = ?1",
                [&p.id],
                |r| r.get(0),
            )
            .optional()?;
        let counter = next_counter(last.map(|l| l as u32), now_ms);
        let downlink = order.downlink(since);
        let (topic, payload) = sealed_downlink(device, channel, counter, &downlink)
            .ok_or_else(|| DownlinkError::Unfit("does not fit a frame".into()))?;
        // A config's check echoes its counter; a command's its value.
        let requested = if target == CommandTarget::Config {
            i64::from(counter as i32)
        } else {
            requested
        };
        let body = serde_json::to_value(downlink).unwrap_or_default();
        tx.execute(
            "INSERT INTO counters (device, last) VALUES (?1, ?2)
             ON CONFLICT (device) DO UPDATE SET last = ?2",
            params![p.id, counter],
        )?;
        tx.execute(
            "INSERT INTO downlinks (device, channel, counter, target, requested, body, by_whom, requested_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![p.id, channel.as_str(), counter, target.as_str(), requested, body.to_string(), by, now_ms as i64],
        )?;
        let id = tx.last_insert_rowid();
        // Durable before it leaves: a crash after this never reuses the counter.
        tx.commit()?;
        self.out
            .lock()
            .send(Outgoing::Frame { topic, payload })
            .map_err(|_| DownlinkError::Stopped)?;
        drop(db);
        tracing::info!(device = %p.id, channel = channel.as_str(), counter, since, %by, "downlink sent");
        self.one(id, now_ms)?.ok_or(DownlinkError::Stopped)
    }

    fn one(&self, id: i64, now_ms: u64) -> Result<Option<DownlinkRecord>, DownlinkError> {
        Ok(self.query("WHERE id = ?1", params![id], 1, now_ms)?.pop())
    }

    /// The audit at `now_ms`, newest first; one device's when `device` is given.
    pub fn list(
        &self,
        device: Option<&str>,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<DownlinkRecord>, DownlinkError> {
        match device {
            Some(d) => self.query("WHERE device = ?1", params![d], limit, now_ms),
            None => self.query("", params![], limit, now_ms),
        }
    }

    fn query(
        &self,
        filter: &str,
        p: &[&dyn rusqlite::ToSql],
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<DownlinkRecord>, DownlinkError> {
        let db = self.db.lock();
        let mut st = db.prepare(&format!(
            "SELECT id, device, channel, counter, body, by_whom, requested_ms, answer, observed, answered_ms
             FROM downlinks {filter} ORDER BY id DESC LIMIT {limit}"
        ))?;
        let rows = st.query_map(p, |r| {
            let requested_ms = r.get::<_, i64>(6)? as u64;
            let answer: String = r.get(7)?;
            // Devices answer within seconds when online; a frame sent while the device
            // was offline is lost (QoS 0) and never answered: say so after a while.
            let answer =
                if answer == "pending" && now_ms.saturating_sub(requested_ms) > NO_ANSWER_MS {
                    "no_answer".to_owned()
                } else {
                    answer
                };
            Ok(DownlinkRecord {
                id: r.get(0)?,
                device: r.get(1)?,
                channel: r.get(2)?,
                counter: r.get::<_, i64>(3)? as u32,
                body: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                by: r.get(5)?,
                requested_ms,
                answer,
                observed: r.get(8)?,
                answered_ms: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records `device`'s answer to the downlink with the answer's counter.
    fn answer(
        tx: &rusqlite::Transaction<'_>,
        device: &str,
        a: &Answer,
        at_ms: u64,
    ) -> rusqlite::Result<usize> {
        tx.execute(
            "UPDATE downlinks SET answer = ?3, observed = ?4, answered_ms = ?5
             WHERE device = ?1 AND counter = ?2 AND answer = 'pending'",
            params![
                device,
                a.counter,
                if a.check.applied {
                    "applied"
                } else {
                    "not_applied"
                },
                i64::from(a.check.observed),
                at_ms as i64
            ],
        )
    }

    /// The journal follower that reads the devices' answers.
    pub fn follower(self: &Arc<Self>) -> AnswerFollower {
        AnswerFollower {
            downlinks: self.clone(),
            stuck_at: None,
        }
    }
}

/// Reads the `answer` reports of sealed devices from the journal into the audit.
#[derive(Debug)]
pub struct AnswerFollower {
    downlinks: Arc<Downlinks>,
    /// The first journal entry of a batch that could not be recorded.
    stuck_at: Option<u64>,
}

impl Follower for AnswerFollower {
    fn name(&self) -> &'static str {
        "downlink-answers"
    }

    fn durable_before(&self) -> u64 {
        let db = self.downlinks.db.lock();
        db.query_row(
            "SELECT durable_before FROM follower WHERE id = 1",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_or(0, |v| v as u64)
    }

    fn apply(&mut self, entries: &[Entry]) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        // After a failed batch the durable point stays before it, so a restart reads it
        // again from the journal (answers are idempotent: only pending rows change).
        let durable = self.stuck_at.unwrap_or(last.seq + 1);
        let mut db = self.downlinks.db.lock();
        let r = (|| -> rusqlite::Result<()> {
            let tx = db.transaction()?;
            for e in entries {
                if let (Report::Answer(a), Trust::Sealed) = (&e.reading.report, e.reading.trust) {
                    Downlinks::answer(&tx, &e.reading.device, a, e.reading.received_ms)?;
                }
            }
            tx.execute(
                "INSERT INTO follower (id, durable_before) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET durable_before = ?1",
                [durable as i64],
            )?;
            tx.commit()
        })();
        if let Err(e) = r {
            self.stuck_at.get_or_insert(first.seq);
            tracing::error!(error = %e, "cannot record downlink answers; they are read again from the journal after a restart");
        }
    }

    fn tick(&mut self, _now_ms: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_commands_must_fit_the_kind() {
        let dim = Order::Command(Command::Dim { percent: 40 });
        assert_eq!(fits(DeviceKind::StreetLight, &dim), Ok(()));
        assert_eq!(
            fits(DeviceKind::Pendant, &dim),
            Err("command dim is for street_light, not pendant".into())
        );
        assert!(fits(
            DeviceKind::StreetLight,
            &Order::Command(Command::Dim { percent: 101 })
        )
        .is_err());
        let water = Order::Config(Settings {
            threshold: Some(Threshold::WaterAlarmMm(150)),
            ..Settings::default()
        });
        assert_eq!(fits(DeviceKind::Manhole, &water), Ok(()));
        assert_eq!(
            fits(DeviceKind::WasteBin, &water),
            Err("threshold water_alarm_mm is for water_level or manhole, not waste_bin".into())
        );
        let zero = Order::Config(Settings {
            heartbeat_s: Some(0),
            ..Settings::default()
        });
        assert_eq!(
            fits(DeviceKind::Door, &zero),
            Err("heartbeat_s must be at least 1 second".into())
        );
        assert!(fits(DeviceKind::Door, &Order::Config(Settings::default())).is_err());
    }

    #[test]
    fn command_counters_never_go_below_the_clock_nor_back() {
        let now_ms = 1_764_230_400_000;
        let now_s = 1_764_230_400;
        assert_eq!(next_counter(None, now_ms), now_s);
        // A lost database: the clock is the floor.
        assert_eq!(next_counter(Some(5), now_ms), now_s);
        // Several in one second: counting on past the clock.
        assert_eq!(next_counter(Some(now_s), now_ms), now_s + 1);
        assert_eq!(next_counter(Some(now_s + 7), now_ms), now_s + 8);
    }
}
