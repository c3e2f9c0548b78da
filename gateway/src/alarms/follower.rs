//! The alarm stage as a journal follower: every journaled reading goes through the rule
//! engine and the lifecycle ([`AlarmCore`]), and each batch's changes (rule state with
//! its timers, alarms, transitions, notes) commit to the alarm database together with
//! the journal position they reflect. Timers fire on the follower's tick. People's
//! actions and rule reloads go through the same [`AlarmDesk`], under the same lock.
//!
//! Owns start-up recovery (restore, replay, resume), commit and retry, the alarm
//! metrics, and reload. Does not own rules, the lifecycle or SQL (their modules).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;

use super::core::AlarmCore;
use super::db::{AlarmDb, AlarmDbError, Filter};
use super::lifecycle::Changes;
use super::{ActionError, Alarm, Note, Transition};
use crate::clock::now_ms;
use crate::config::ConfigIssue;
use crate::follow::{Entry, Follower};
use crate::registry::Registry;
use crate::rules::{Defaults, Dirty, RuleSet};

/// Most latency samples kept for the quantiles in `/metrics`.
const LATENCY_SAMPLES: usize = 10_000;

/// Batches that changed no alarm commit their rule state and journal position at most
/// this often (an alarm change commits at once).
const QUIET_COMMIT_MS: u64 = 100;

/// Timers fire this long after their deadline by the wall clock, so that a reading
/// received just before a deadline (still on its way through ingest) is judged first.
pub const TIMER_GRACE_MS: u64 = 1000;

/// Why the alarm stage could not start.
#[derive(Debug, thiserror::Error)]
pub enum AlarmStartError {
    /// The rules file could not be read.
    #[error("cannot read rules file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The rules file is invalid.
    #[error("rules file {path} has {} problem(s):\n  {}", .issues.len(), .issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid {
        /// The file.
        path: String,
        /// Every problem.
        issues: Vec<ConfigIssue>,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] AlarmDbError),
}

/// Counters and latency samples of the alarm stage.
#[derive(Debug, Default)]
pub struct AlarmMetrics {
    /// Alarms raised (new ones).
    pub raised: AtomicU64,
    /// Transitions recorded.
    pub transitions: AtomicU64,
    /// Open alarms.
    pub open: AtomicU64,
    /// Commits that failed (retried on the next batch or tick).
    pub db_errors: AtomicU64,
    /// Rule reloads applied.
    pub reloads: AtomicU64,
    /// Rule reloads refused (invalid file).
    pub reloads_refused: AtomicU64,
    /// Reading arrival → alarm record committed, µs (latest samples, for quantiles).
    pub latency_us: Mutex<VecDeque<u64>>,
    /// Latency samples ever taken.
    pub latency_count: AtomicU64,
    /// Their sum, µs.
    pub latency_sum_us: AtomicU64,
}

impl AlarmMetrics {
    fn sample(&self, us: u64) {
        let mut lat = self.latency_us.lock();
        if lat.len() >= LATENCY_SAMPLES {
            lat.pop_front();
        }
        lat.push_back(us);
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(us, Relaxed);
    }

    /// (p50, p99, samples) of the latency over the latest samples, seconds.
    pub fn latency(&self) -> Option<(f64, f64, usize)> {
        let mut v: Vec<u64> = self.latency_us.lock().iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1e6;
        Some((q(0.5), q(0.99), v.len()))
    }
}

struct Inner {
    core: AlarmCore,
    db: AlarmDb,
    /// Changes a failed commit left behind (and the journal position they reflect),
    /// written with the next one.
    pending: Option<(Vec<Dirty>, Changes, Option<u64>)>,
    /// First journal sequence number not yet reflected in the database.
    cursor: u64,
    /// Start-up work left for when live following begins (after the journal replay):
    /// the last time the engine ran before this start.
    started: Option<u64>,
    /// Arrival of live readings that raised or repeated an alarm, not yet committed.
    raised_by: Vec<std::time::Instant>,
    /// Journal position applied but not yet committed (quiet batches), and when the
    /// last commit was.
    applied: Option<u64>,
    last_commit: std::time::Instant,
    /// Closed alarms and notes are deleted after this long, ms; checked hourly.
    retention_ms: u64,
    next_purge_ms: u64,
}

/// The alarm stage's shared side: the follower thread, the API and reloads use it.
pub struct AlarmDesk {
    inner: Mutex<Inner>,
    reader: Mutex<AlarmDb>,
    registry: Registry,
    rules_path: Option<PathBuf>,
    defaults: Defaults,
    cursor: AtomicU64,
    /// Signalled after every commit that recorded transitions (delivery follows them).
    committed: Arc<tokio::sync::Notify>,
    /// Counters.
    pub metrics: AlarmMetrics,
}

impl std::fmt::Debug for AlarmDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlarmDesk")
            .field("rules_path", &self.rules_path)
            .finish_non_exhaustive()
    }
}

/// Reads and compiles the rules (`path`, or the built-in rules).
pub fn load_rules(path: Option<&PathBuf>, defaults: &Defaults) -> Result<RuleSet, AlarmStartError> {
    let (text, name) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|source| AlarmStartError::Read {
                path: p.clone(),
                source,
            })?,
            p.display().to_string(),
        ),
        None => (
            crate::rules::config::DEFAULT_RULES.to_owned(),
            "built-in rules".to_owned(),
        ),
    };
    RuleSet::parse(&text, defaults)
        .map_err(|issues| AlarmStartError::Invalid { path: name, issues })
}

impl AlarmDesk {
    /// Opens the alarm database and restores the engine; the journal replay (through
    /// the follower) and the first tick finish the recovery.
    pub fn open(
        data_dir: &std::path::Path,
        rules_path: Option<PathBuf>,
        defaults: Defaults,
        registry: Registry,
        retention_days: u64,
    ) -> Result<Arc<AlarmDesk>, AlarmStartError> {
        let rules = Arc::new(load_rules(rules_path.as_ref(), &defaults)?);
        let db = AlarmDb::open(data_dir)?;
        let reader = db.reader()?;
        let loaded = db.load()?;
        let mut core = AlarmCore::new(rules, loaded.open, loaded.controls, loaded.next_id);
        core.rules.start_at(loaded.alive_ms);
        for (rule, target, state) in &loaded.states {
            core.rules.restore(rule, target, state);
        }
        tracing::info!(
            open = core.alarms.open().count(),
            states = loaded.states.len(),
            cursor = loaded.cursor,
            "alarm state restored"
        );
        let metrics = AlarmMetrics::default();
        metrics
            .open
            .store(core.alarms.open().count() as u64, Relaxed);
        let checkpointer = db.reader()?;
        let desk = Arc::new(AlarmDesk {
            inner: Mutex::new(Inner {
                core,
                db,
                pending: None,
                cursor: loaded.cursor,
                started: Some(loaded.alive_ms),
                raised_by: Vec::new(),
                applied: None,
                last_commit: std::time::Instant::now(),
                retention_ms: retention_days * 86_400_000,
                next_purge_ms: 0,
            }),
            reader: Mutex::new(reader),
            registry,
            rules_path,
            defaults,
            cursor: AtomicU64::new(loaded.cursor),
            committed: Arc::new(tokio::sync::Notify::new()),
            metrics,
        });
        // WAL checkpoints on their own thread: the alarm thread's commits stay short
        // (SQLite would otherwise checkpoint inside a commit now and then).
        let weak = Arc::downgrade(&desk);
        let spawned = std::thread::Builder::new()
            .name("linli-alarms-checkpoint".into())
            .spawn(move || {
                while weak.strong_count() > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    if let Err(e) = checkpointer.checkpoint() {
                        tracing::warn!(error = %e, "alarm database checkpoint failed; retrying");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no checkpoint thread: SQLite checkpoints inside commits");
        }
        Ok(desk)
    }

    /// The follower that feeds this desk from the journal; timers fire every `tick`.
    pub fn follower(self: &Arc<Self>, tick: std::time::Duration) -> AlarmFollower {
        AlarmFollower(self.clone(), tick)
    }

    /// Re-reads the rules file and swaps it in; on any problem the running rules stay.
    pub fn reload(&self) -> Result<Arc<RuleSet>, AlarmStartError> {
        match load_rules(self.rules_path.as_ref(), &self.defaults) {
            Ok(rules) => {
                let rules = Arc::new(rules);
                let mut inner = self.inner.lock();
                inner.core.reload(rules.clone());
                self.commit(&mut inner, None, false);
                self.metrics.reloads.fetch_add(1, Relaxed);
                tracing::info!(
                    rules = rules.rules.len(),
                    groups = rules.groups.len(),
                    "rules reloaded"
                );
                Ok(rules)
            }
            Err(e) => {
                self.metrics.reloads_refused.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "rules reload refused; the running rules stay");
                Err(e)
            }
        }
    }

    /// Signalled after each commit that recorded transitions.
    pub fn committed(&self) -> Arc<tokio::sync::Notify> {
        self.committed.clone()
    }

    /// A reading connection of its own to the alarm database.
    pub fn open_reader(&self) -> Result<AlarmDb, AlarmDbError> {
        self.reader.lock().reader()
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.inner.lock().core.rules.rules().clone()
    }

    /// Where the rules come from.
    pub fn rules_source(&self) -> String {
        self.rules_path
            .as_ref()
            .map_or("built-in rules".into(), |p| p.display().to_string())
    }

    /// Runs a person's action at the wall clock and commits it durably.
    pub fn act<T>(
        &self,
        f: impl FnOnce(&mut AlarmCore, u64) -> Result<T, ActionError>,
    ) -> Result<T, ActionError> {
        let mut inner = self.inner.lock();
        let now = now_ms().max(inner.core.rules.now());
        inner.core.advance(now.saturating_sub(TIMER_GRACE_MS));
        let out = f(&mut inner.core, now);
        // Refusals are recorded too (a refused shelve is audited).
        self.commit(&mut inner, None, true);
        out
    }

    /// Alarms from the database.
    pub fn list(&self, f: &Filter) -> Result<Vec<Alarm>, AlarmDbError> {
        self.reader.lock().list(f)
    }

    /// One alarm and its transitions.
    pub fn get(&self, id: u64) -> Result<Option<(Alarm, Vec<Transition>)>, AlarmDbError> {
        let db = self.reader.lock();
        match db.get(id)? {
            Some(a) => Ok(Some((a, db.transitions(id)?))),
            None => Ok(None),
        }
    }

    /// The latest notes.
    pub fn notes(&self, limit: usize) -> Result<Vec<Note>, AlarmDbError> {
        self.reader.lock().notes(limit)
    }

    /// Per device with open alarms: `alarm`, or `unknown` when every open alarm of the
    /// device is explained by a root cause.
    pub fn device_status(&self) -> std::collections::HashMap<String, &'static str> {
        let inner = self.inner.lock();
        let mut out = std::collections::HashMap::new();
        for a in inner.core.alarms.open() {
            let Some(d) = &a.device else { continue };
            let st = a.shown_as();
            let e = out.entry(d.clone()).or_insert(st);
            if st == "alarm" {
                *e = "alarm";
            }
        }
        out
    }

    fn commit(&self, inner: &mut Inner, cursor: Option<u64>, durable: bool) {
        // Whatever is committed includes the state of every applied reading: its
        // journal position goes with it.
        let mut cursor = cursor.max(inner.applied.take());
        let mut dirty = inner.core.rules.take_dirty();
        let mut changes = inner.core.take_changes();
        if let Some((d, c, pc)) = inner.pending.take() {
            dirty = d.into_iter().chain(dirty).collect();
            changes = merge(c, changes);
            // The failed commit's state reflects readings up to its position: it must
            // be written with it, or a restart would replay them into that state again.
            cursor = cursor.max(pc);
        }
        if dirty.is_empty()
            && changes.alarms.is_empty()
            && changes.transitions.is_empty()
            && changes.notes.is_empty()
            && changes.controls.is_none()
            && cursor.is_none_or(|c| c == inner.cursor)
        {
            return;
        }
        let alive = inner.core.rules.now();
        match inner
            .db
            .commit(dirty.clone(), &changes, cursor, alive, durable)
        {
            Ok(()) => {
                inner.last_commit = std::time::Instant::now();
                if let Some(c) = cursor {
                    inner.cursor = c;
                    self.cursor.store(c, Relaxed);
                }
                self.account(&changes, &inner.core);
                if !changes.transitions.is_empty() {
                    self.committed.notify_one();
                }
                // Readings that raised (or repeated) an alarm: from their arrival to now,
                // when the record is committed.
                for at in inner.raised_by.drain(..) {
                    self.metrics.sample(at.elapsed().as_micros() as u64);
                }
            }
            Err(e) => {
                self.metrics.db_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "alarm commit failed; retrying with the next batch");
                inner.pending = Some((dirty, changes, cursor));
            }
        }
    }

    fn account(&self, changes: &Changes, core: &AlarmCore) {
        let m = &self.metrics;
        m.transitions
            .fetch_add(changes.transitions.len() as u64, Relaxed);
        let raised = changes
            .transitions
            .iter()
            .filter(|t| t.action == "raised")
            .count();
        m.raised.fetch_add(raised as u64, Relaxed);
        m.open.store(core.alarms.open().count() as u64, Relaxed);
    }
}

fn merge(mut a: Changes, b: Changes) -> Changes {
    a.alarms.extend(b.alarms);
    a.transitions.extend(b.transitions);
    a.notes.extend(b.notes);
    if b.controls.is_some() {
        a.controls = b.controls;
    }
    a
}

/// The journal follower (see the module docs).
#[derive(Debug)]
pub struct AlarmFollower(Arc<AlarmDesk>, std::time::Duration);

impl Follower for AlarmFollower {
    fn name(&self) -> &'static str {
        "alarms"
    }

    fn durable_before(&self) -> u64 {
        self.0.cursor.load(Relaxed)
    }

    fn tick_interval(&self) -> std::time::Duration {
        self.1
    }

    fn apply(&mut self, entries: &[Entry]) {
        let desk = &self.0;
        let mut inner = desk.inner.lock();
        let mut last = None;
        let cursor = inner.cursor;
        for e in entries.iter().filter(|e| e.seq >= cursor) {
            let r = &e.reading;
            let raises = inner.core.alarms.raises();
            inner
                .core
                .apply(&e.device.profile, &r.report, r.received_ms);
            last = Some(e.seq + 1);
            if let (Some(at), true) = (e.received_at, inner.core.alarms.raises() > raises) {
                inner.raised_by.push(at);
            }
        }
        if last.is_some() {
            inner.applied = last;
        }
        let quiet = !inner.core.alarms.has_changes();
        if quiet && inner.last_commit.elapsed().as_millis() < u128::from(QUIET_COMMIT_MS) {
            return; // the tick (or the next alarm) commits it
        }
        let applied = inner.applied.take();
        desk.commit(&mut inner, applied, false);
    }

    fn live(&mut self, now: u64) {
        let desk = &self.0;
        let mut inner = desk.inner.lock();
        if let Some(alive) = inner.started.take() {
            // After the journal replay: the gateway was down from the later of its last
            // commit and the last replayed reading until now.
            let down_since = alive.max(inner.core.rules.now());
            inner.core.rules.resume(down_since, now);
            match desk.registry.all() {
                Ok(devices) => {
                    for d in devices {
                        inner.core.rules.register(&d.profile, now);
                    }
                    // Rules edited while the gateway was down may no longer select some
                    // restored targets.
                    inner.core.drop_unplanned(now);
                }
                Err(e) => {
                    tracing::error!(error = %e, "registry unreadable: absence windows start on first readings")
                }
            }
        }
        // What came due while the gateway was down fires now, once.
        inner.core.advance(now);
        desk.commit(&mut inner, None, false);
    }

    fn tick(&mut self, now: u64) {
        let desk = &self.0;
        let mut inner = desk.inner.lock();
        inner.core.advance(now.saturating_sub(TIMER_GRACE_MS));
        let applied = inner.applied.take();
        desk.commit(&mut inner, applied, false);
        if now >= inner.next_purge_ms {
            inner.next_purge_ms = now + 3_600_000;
            let before = now.saturating_sub(inner.retention_ms);
            match inner.db.purge(before) {
                Ok(0) => {}
                Ok(n) => tracing::info!(alarms = n, "closed alarms past their retention deleted"),
                Err(e) => {
                    tracing::warn!(error = %e, "alarm retention purge failed; retried in an hour")
                }
            }
        }
    }
}
