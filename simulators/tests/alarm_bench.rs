//! `bench alarms` at tiny size: part 1 (the replayed fleet through the alarm core) raises
//! the alarms its injected anomalies call for, evaluates at a positive rate, and is
//! deterministic.

use linli_sim::bench_alarms::eval::EvalConfig;
use linli_sim::bench_alarms::run_eval;

#[test]
fn part1_smoke_raises_alarms_at_a_positive_rate() {
    let cfg = EvalConfig {
        subjects: 50,
        hours: 1.0,
        seed: 7,
        progress_every_ms: None,
        ..EvalConfig::default()
    };
    let runs = run_eval(&cfg, 2).unwrap();
    let r = &runs[0];
    assert!(r.readings > 5_000, "{} readings", r.readings);
    assert!(r.rate() > 0.0);
    assert!(r.raised() > 0, "no alarm raised: {r:?}");
    // At least one SOS is injected into any span; every one raises (or repeats) an alarm.
    assert!(r.injected.sos >= 1);
    assert!(
        r.raised_by_kind.get("sos").copied().unwrap_or(0) >= 1,
        "{r:?}"
    );
    assert_eq!(runs[1].readings, r.readings);
    assert_eq!(runs[1].raised_by_kind, r.raised_by_kind);
}
