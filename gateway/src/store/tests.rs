//! Store tests at simulated time: sealing, overwrite semantics, late points, compaction,
//! retention with roll-ups, and restart from the watermark.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use linli_protocol::report::{Report, WaterLevel};
use linli_protocol::DeviceKind;

use super::rollup::Agg;
use super::*;
use crate::config::StoreConfig;
use crate::follow::Entry;
use crate::reading::Reading;
use crate::registry::{DeviceRecord, Registry, SubjectKind, Trust};

static NOW: AtomicU64 = AtomicU64::new(10 * 86_400_000);
fn clock() -> u64 {
    NOW.load(Relaxed)
}

fn device(dir: &Path) -> Arc<DeviceRecord> {
    let reg = Registry::open(dir).unwrap();
    reg.provision(&DeviceProfile {
        id: "wl-1".into(),
        kind: DeviceKind::WaterLevel,
        site: "s".into(),
        zone: "underpass".into(),
        subject: Some((SubjectKind::Asset, "UP-1".into())),
        heartbeat_s: None,
        trust: Trust::Sealed,
    })
    .unwrap();
    reg.get("wl-1").unwrap().unwrap()
}

fn entry(d: &Arc<DeviceRecord>, seq: u64, t_s: u32, level_mm: u16) -> Entry {
    Entry {
        seq,
        reading: Reading {
            device: d.profile.id.clone(),
            counter: seq as u32,
            device_time: t_s,
            received_ms: 0,
            trust: Trust::Sealed,
            report: Report::WaterLevel(WaterLevel { level_mm }),
        },
        device: d.clone(),
        received_at: None,
    }
}

fn small() -> StoreConfig {
    StoreConfig {
        chunk_points: 64,
        compact_points: 256,
        ..StoreConfig::default()
    }
}

const M: &str = "water_level_m";

#[test]
fn sealed_and_unsealed_points_answer_one_query_and_overwrites_never_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path());
    let store = Store::open(dir.path(), small(), clock).unwrap();
    let entries: Vec<Entry> = (0..100)
        .map(|i| entry(&d, i, 1_000 + i as u32 * 60, i as u16))
        .collect();
    store.apply(&entries);
    store.tick(clock(), false); // seals the head (100 >= 64)
    assert_eq!(store.durable_before(), 100);
    store.apply(&[entry(&d, 100, 1_000 + 100 * 60, 100)]);
    // A replayed point (same time) with a new value overwrites in the head...
    store.apply(&[entry(&d, 101, 1_000 + 100 * 60, 555)]);
    // ...and a late point for sealed time merges into the chunk.
    store.apply(&[entry(&d, 102, 1_000 + 5 * 60, 777)]);
    let pts = store.raw("wl-1", M, 0, i64::MAX).unwrap();
    assert_eq!(pts.len(), 101, "no duplicates");
    assert_eq!(pts[5], (1_000_000 + 5 * 60_000, 0.777));
    assert_eq!(pts[100].1, 0.555);
    store.seal_all();
    let again = store.raw("wl-1", M, 0, i64::MAX).unwrap();
    assert_eq!(again, pts, "sealing changes nothing a query sees");
    assert_eq!(store.durable_before(), 103);
    let latest = store.latest("wl-1").unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].value, 0.555);
    // Range is [from, to).
    let some = store
        .raw("wl-1", M, 1_000_000 + 60_000, 1_000_000 + 3 * 60_000)
        .unwrap();
    assert_eq!(some.len(), 2);
    assert!(matches!(
        store.raw("wl-1", "nope", 0, 1),
        Err(StoreError::UnknownSeries { .. })
    ));
}

#[test]
fn buckets_aggregate_and_roll_ups_answer_after_raw_expires() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path());
    let store = Store::open(dir.path(), small(), clock).unwrap();
    // Two hours, one point every 10 s: values 0..720 mm.
    let entries: Vec<Entry> = (0..720)
        .map(|i| entry(&d, i, 3_600 * 24 + i as u32 * 10, i as u16))
        .collect();
    store.apply(&entries);
    store.seal_all();
    let hour = 3_600_000;
    let day = 86_400_000;
    let before = store
        .buckets("wl-1", M, (0, i64::MAX / 2), hour, Agg::Mean)
        .unwrap();
    assert_eq!(before.len(), 2);
    assert_eq!(before[0].0, day);
    assert!((before[0].1 - 0.1795).abs() < 1e-12);
    let max = store
        .buckets("wl-1", M, (0, i64::MAX / 2), hour, Agg::Max)
        .unwrap();
    assert_eq!(max[1], (day + hour, 0.719));
    // Facility raw points expire after 365 days; roll-ups stay far longer.
    let expired = store.expire(day + 366 * day).unwrap();
    assert!(expired > 0);
    assert!(store.raw("wl-1", M, 0, i64::MAX).unwrap().is_empty());
    let after = store
        .buckets("wl-1", M, (0, i64::MAX / 2), hour, Agg::Mean)
        .unwrap();
    assert_eq!(after.len(), 2);
    assert!((after[0].1 - before[0].1).abs() < 1e-12);
    let count = store
        .buckets("wl-1", M, (0, i64::MAX / 2), hour, Agg::Count)
        .unwrap();
    assert_eq!(count, vec![(day, 360.0), (day + hour, 360.0)]);
    // 1-minute roll-ups too.
    let minutes = store
        .buckets("wl-1", M, (0, i64::MAX / 2), 60_000, Agg::Last)
        .unwrap();
    assert_eq!(minutes.len(), 120);
}

#[test]
fn compaction_merges_small_chunks_and_keeps_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path());
    let store = Store::open(dir.path(), small(), clock).unwrap();
    for batch in 0..10u64 {
        let entries: Vec<Entry> = (0..10)
            .map(|i| {
                let n = batch * 10 + i;
                entry(&d, n, 1_000 + n as u32 * 60, n as u16)
            })
            .collect();
        store.apply(&entries);
        store.seal_all();
    }
    let before = store.raw("wl-1", M, 0, i64::MAX).unwrap();
    let chunks = |s: &Store| db::raw_chunk_sizes(&s.reader.lock(), 1).unwrap().len();
    assert_eq!(chunks(&store), 10);
    let merged = store.compact(10).unwrap();
    assert_eq!(merged, 9);
    assert_eq!(chunks(&store), 1);
    assert_eq!(store.raw("wl-1", M, 0, i64::MAX).unwrap(), before);
    // The ten blocks the small chunks were written to are dead now: collected, and the
    // merged chunk still reads back.
    let blocks = |s: &Store| -> i64 {
        s.reader
            .lock()
            .query_row("SELECT COUNT(*) FROM blocks", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(blocks(&store), 11);
    assert_eq!(store.collect_blocks(100).unwrap(), 10);
    assert_eq!(blocks(&store), 1);
    assert_eq!(store.raw("wl-1", M, 0, i64::MAX).unwrap(), before);
    let per_min = store
        .buckets("wl-1", M, (0, i64::MAX / 2), 60_000, Agg::Count)
        .unwrap();
    assert_eq!(per_min.len(), 100);
}

#[test]
fn a_restart_replays_only_what_was_not_sealed_and_never_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path());
    let entries: Vec<Entry> = (0..100)
        .map(|i| entry(&d, i, 1_000 + i as u32 * 60, i as u16))
        .collect();
    {
        let store = Store::open(dir.path(), small(), clock).unwrap();
        store.apply(&entries[..70]);
        store.tick(clock(), false); // seals 70
        store.apply(&entries[70..]); // 30 in the head, lost at "crash"
        assert_eq!(store.durable_before(), 70);
    }
    let store = Store::open(dir.path(), small(), clock).unwrap();
    assert_eq!(store.durable_before(), 70, "replay starts at the watermark");
    // The journal replays from its segment start, which may include sealed records.
    store.apply(&entries[40..]);
    let pts = store.raw("wl-1", M, 0, i64::MAX).unwrap();
    assert_eq!(pts.len(), 100);
    assert_eq!(
        store.stats.points(),
        30,
        "records sealed before the restart are skipped"
    );
}

#[test]
fn old_heads_are_sealed_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path());
    let store = Store::open(dir.path(), small(), clock).unwrap();
    let t0 = clock();
    store.apply(&[entry(&d, 0, 1_000, 1)]);
    store.tick(t0 + 1_000, false);
    assert_eq!(store.durable_before(), 0, "young head stays");
    store.tick(t0 + 901_000, false);
    assert_eq!(store.durable_before(), 1, "900 s later it is sealed");
}

#[test]
fn device_clocks_far_off_are_counted_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path());
    let store = Store::open(dir.path(), small(), clock).unwrap();
    let ahead = (clock() / 1000) as u32 + 2 * 86_400;
    store.apply(&[entry(&d, 0, ahead, 1), entry(&d, 1, 1_000, 2)]);
    assert_eq!(store.raw("wl-1", M, 0, i64::MAX).unwrap().len(), 1);
    let mut text = String::new();
    store.stats.render(&mut text);
    assert!(text.contains("linli_store_out_of_range_total 1"), "{text}");
}

#[test]
fn sparse_series_keep_their_roll_ups_when_raw_points_expire() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path());
    let store = Store::open(dir.path(), small(), clock).unwrap();
    // One point every 2 h for two days.
    let entries: Vec<Entry> = (0..24)
        .map(|i| entry(&d, i, 1_000 + i as u32 * 7_200, i as u16))
        .collect();
    store.apply(&entries);
    store.seal_all();
    let all = (0, i64::MAX / 2);
    let before = store.buckets("wl-1", M, all, 60_000, Agg::Last).unwrap();
    assert_eq!(before.len(), 24);
    store.expire(400 * 86_400_000).unwrap();
    assert_eq!(
        store.buckets("wl-1", M, all, 60_000, Agg::Last).unwrap(),
        before
    );
    assert_eq!(
        store
            .buckets("wl-1", M, all, 3_600_000, Agg::Count)
            .unwrap()
            .len(),
        24
    );
}

/// Seals ten points, damages the store with `damage` (SQL), checks queries report it,
/// then seals a late point overlapping the damaged chunk: the chunk is quarantined and
/// sealing goes on. Returns the store.
fn damage_then_seal_a_late_point(dir: &Path, damage: &str) -> Store {
    let d = device(dir);
    let store = Store::open(dir, small(), clock).unwrap();
    let entries: Vec<Entry> = (0..10)
        .map(|i| entry(&d, i, 1_000 + i as u32 * 60, i as u16))
        .collect();
    store.apply(&entries);
    store.seal_all();
    store.writer.lock().execute(damage, []).unwrap();
    assert!(
        store.raw("wl-1", M, 0, i64::MAX).is_err(),
        "damage is an error, not a panic, a huge allocation or a silent gap"
    );
    store.apply(&[entry(&d, 10, 1_000 + 5 * 60, 55)]);
    store.seal_all();
    assert_eq!(store.durable_before(), 11, "the watermark moves on");
    assert_eq!(
        store.raw("wl-1", M, 0, i64::MAX).unwrap(),
        vec![(1_000_000 + 5 * 60_000, 0.055)]
    );
    store
}

#[test]
fn a_damaged_chunk_is_quarantined_and_sealing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        damage_then_seal_a_late_point(dir.path(), "UPDATE blocks SET data = zeroblob(size)");
    let quarantined: i64 = store
        .reader
        .lock()
        .query_row("SELECT COUNT(*) FROM quarantine", [], |r| r.get(0))
        .unwrap();
    assert_eq!(quarantined, 1);
}

#[test]
fn queries_racing_seals_compaction_and_block_collection_see_every_point_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path());
    let store = Arc::new(Store::open(dir.path(), small(), clock).unwrap());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = 0usize;
            let mut queries = 0;
            while !done.load(Relaxed) || queries == 0 {
                let pts = match store.raw("wl-1", M, 0, i64::MAX) {
                    Ok(p) => p,
                    Err(StoreError::UnknownSeries { .. }) => continue,
                    Err(e) => panic!("query failed while the store was busy: {e}"),
                };
                assert!(pts.windows(2).all(|w| w[0].0 < w[1].0), "sorted, unique");
                assert!(
                    pts.len() >= seen,
                    "a point went missing: {} < {seen}",
                    pts.len()
                );
                seen = pts.len();
                queries += 1;
            }
            seen
        })
    };
    let mut seq = 0u64;
    for round in 0..60u32 {
        let entries: Vec<Entry> = (0..20)
            .map(|_| {
                seq += 1;
                entry(&d, seq, 1_000 + seq as u32 * 60, (seq % 1000) as u16)
            })
            .collect();
        store.apply(&entries);
        store.seal_all();
        if round % 5 == 4 {
            store.compact(100).unwrap();
            store.collect_blocks(100).unwrap();
        }
    }
    done.store(true, Relaxed);
    let seen = reader.join().unwrap();
    assert!(seen <= 1200);
    assert_eq!(store.raw("wl-1", M, 0, i64::MAX).unwrap().len(), 1200);
}

#[test]
fn a_store_of_another_schema_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), small(), clock).unwrap());
    let path = dir.path().join("store.sqlite3");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 1;")
        .unwrap();
    let err = Store::open(dir.path(), small(), clock).unwrap_err();
    assert!(matches!(err, StoreError::Version { found: 1, .. }), "{err}");
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1, "left as it was");
}

#[test]
fn a_chunk_row_pointing_outside_its_block_is_quarantined_not_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        damage_then_seal_a_late_point(dir.path(), "UPDATE chunks SET len = len + 1000000000");
    store.collect_blocks(100).unwrap();
    store.expire(400 * 86_400_000).unwrap();
}
