//! The VictoriaMetrics side of `bench store` at tiny size, against the real Debian
//! binary (scripts/test.sh installs it): every point stored and read back, the plan's
//! queries answered, and tags with spaces, commas and equals signs written by the
//! gateway's export encoder round-tripped through the real server.

use std::path::PathBuf;
use std::time::Duration;

use linli_sim::bench_store::lineproto::write_line;
use linli_sim::bench_store::vm::{Vm, VmSide};
use linli_sim::bench_store::{profile_of, QueryPlan};
use linli_sim::corpus::{Corpus, CorpusConfig, DEFAULT_END_S};

const VM_BIN: &str = "/usr/bin/victoria-metrics";

fn vm_bin() -> PathBuf {
    let bin = PathBuf::from(VM_BIN);
    assert!(
        bin.exists(),
        "{VM_BIN} is missing: apt-get install victoria-metrics (scripts/test.sh does)"
    );
    bin
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("linli-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creating a scratch directory");
    d
}

#[test]
fn vm_side_stores_every_point_and_answers_the_plan() {
    let dir = scratch("vm-side");
    let corpus = Corpus::new(CorpusConfig {
        devices: 24,
        span_s: 3600,
        end_s: DEFAULT_END_S,
        seed: 9,
    })
    .unwrap();
    let stats = corpus.stats();
    let plan = QueryPlan::new(&corpus, 3).unwrap();
    let side = VmSide {
        bin: vm_bin(),
        dir: dir.clone(),
        batch_lines: 500,
        connections: 2,
        quiet: Duration::from_secs(3),
        settle_timeout: Duration::from_secs(120),
    };
    // `run` fails unless the CSV export returns exactly the points written.
    let f = side.run(&corpus, &plan).unwrap();
    assert_eq!(f.points, stats.points);
    assert_eq!(f.raw_points_returned, plan.expected_raw);
    assert!(plan.expected_raw > 600, "{}", plan.expected_raw);
    assert!(f.buckets_returned >= 55, "{}", f.buckets_returned);
    assert!(f.ingest_points_per_s > 0.0 && f.bytes_on_disk > 0 && f.peak_rss_bytes > 0);
    assert!(f.query_raw_24h_ms > 0.0 && f.query_1m_24h_ms > 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tag_values_with_spaces_commas_and_equals_round_trip() {
    let dir = scratch("vm-escape");
    let vm = Vm::start(&vm_bin(), &dir.join("data"), &dir.join("vm.log")).unwrap();
    let corpus = Corpus::new(CorpusConfig {
        devices: 1,
        span_s: 60,
        ..CorpusConfig::default()
    })
    .unwrap();
    let mut d = corpus.devices()[0].clone();
    d.id = "bed 3, room=12".into();
    d.site = "Riverside, East Bank";
    d.zone = "a=b c";
    let profile = profile_of(&d);
    let mut body = Vec::new();
    let mut points = 0;
    corpus.for_each(|it| {
        let mut it = *it;
        it.device = &d;
        points += write_line(&mut body, &profile, &it);
    });
    vm.write(&body).unwrap();
    vm.get("/internal/force_flush").unwrap();
    let q = "/api/v1/export?match[]=%7Bdevice%3D%22bed%203%2C%20room%3D12%22%7D";
    let out = vm.get(q).unwrap();
    let mut got = 0;
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["metric"]["device"], "bed 3, room=12");
        assert_eq!(v["metric"]["site"], "Riverside, East Bank");
        assert_eq!(v["metric"]["zone"], "a=b c");
        got += v["timestamps"].as_array().unwrap().len() as u64;
    }
    assert_eq!(got, points);
    drop(vm);
    let _ = std::fs::remove_dir_all(&dir);
}
