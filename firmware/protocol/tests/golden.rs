//! Golden bytes: the wire format of every report is pinned here. If one of these fails,
//! the change broke deployed devices: add a new variant instead of changing an old one.

use linli_protocol::codec::{decode_downlink, encode_downlink};
use linli_protocol::json::JsonUplink;
use linli_protocol::report::*;
use linli_protocol::seal::{open, seal, DeviceKey, FrameClass, OVERHEAD};
use linli_protocol::{decode_uplink, encode_uplink, DecodeError};

fn samples() -> Vec<(Uplink, &'static str)> {
    let t = 1_764_230_400;
    let u = |report| Uplink {
        device_time: t,
        report,
    };
    vec![
        (
            u(Report::Heartbeat(Heartbeat { uptime_s: 3600 })),
            "808aa0c90600901c",
        ),
        (
            u(Report::Battery(Battery {
                millivolts: 3700,
                percent: 81,
            })),
            "808aa0c90601f41c51",
        ),
        (
            u(Report::Status(Status {
                firmware: [1, 2, 3],
                rssi_dbm: -71,
                tamper: false,
            })),
            "808aa0c90602010203b900",
        ),
        (
            u(Report::Pendant(Pendant::Fall {
                impact_mg: 3200,
                still_s: 25,
            })),
            "808aa0c9060300801919",
        ),
        (u(Report::Pendant(Pendant::Sos)), "808aa0c9060302"),
        (u(Report::Pendant(Pendant::FallCancelled)), "808aa0c9060301"),
        (
            u(Report::Pendant(Pendant::Activity {
                level: 40,
                steps: 300,
            })),
            "808aa0c906030328ac02",
        ),
        (
            u(Report::Pendant(Pendant::Impact { impact_mg: 3200 })),
            "808aa0c90603048019",
        ),
        (
            u(Report::Bed(Bed {
                occupied: true,
                pressure: 512,
            })),
            "808aa0c90604018004",
        ),
        (u(Report::Door(Door { open: true })), "808aa0c9060501"),
        (
            u(Report::Motion(Motion {
                motion: true,
                count: 3,
            })),
            "808aa0c906060103",
        ),
        (
            u(Report::Vitals(Vitals {
                heart_rate_bpm: 72,
                spo2_pct: 97,
                respiration_bpm: 16,
                quality: 90,
            })),
            "808aa0c906074861105a",
        ),
        (
            u(Report::Hazard(Hazard {
                hazard: HazardKind::Smoke,
                alarm: true,
                level: 150,
            })),
            "808aa0c9060800019601",
        ),
        (
            u(Report::HubHeartbeat(HubHeartbeat {
                devices_seen: 6,
                mains: true,
            })),
            "808aa0c906090601",
        ),
        (
            u(Report::StreetLight(StreetLight {
                relay_on: true,
                current_ma: 420,
                power_dw: 950,
                dimming_pct: 80,
            })),
            "808aa0c9060a01a403b60750",
        ),
        (
            u(Report::Manhole(Manhole {
                tilt_cdeg: -150,
                water_mm: 300,
                gas_ppm: 5,
            })),
            "808aa0c9060bab02ac0205",
        ),
        (
            u(Report::WaterLevel(WaterLevel { level_mm: 250 })),
            "808aa0c9060cfa01",
        ),
        (
            u(Report::WasteBin(WasteBin {
                fill_pct: 85,
                temperature_dc: 215,
                tilt_deg: 2,
            })),
            "808aa0c9060d55ae0302",
        ),
        (
            u(Report::PowerMeter(PowerMeter {
                voltage_dv: 2301,
                current_ma: 5120,
                power_w: 1150,
                power_factor_milli: 950,
                frequency_chz: 5001,
                import_wh: 123_456,
            })),
            "808aa0c906 0e fd11 8028 fc11 ec0e 8927 c0c407",
        ),
        (u(Report::ConnectionLost), "808aa0c9060f"),
        (
            u(Report::PumpStation(PumpStation {
                level_mm: 820,
                pump_on: true,
                pump_current_ca: 850,
                flow_dlps: 250,
            })),
            "808aa0c906 10 b406 01 d206 fa01",
        ),
        (
            u(Report::CommandCheck(CommandCheck {
                target: CommandTarget::Dimming,
                requested: 40,
                observed: 100,
                applied: false,
            })),
            "808aa0c906 11 01 50 c801 00",
        ),
        (
            u(Report::Answer(Answer {
                counter: 7,
                check: CommandCheck {
                    target: CommandTarget::Config,
                    requested: 7,
                    observed: 7,
                    applied: true,
                },
            })),
            "808aa0c906 12 07 03 0e 0e 01",
        ),
    ]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn golden_bytes_of_every_report() {
    let mut failures = Vec::new();
    for (uplink, golden) in samples() {
        let mut buf = [0u8; 64];
        let bytes = encode_uplink(&uplink, &mut buf).unwrap();
        let golden: String = golden.chars().filter(|c| !c.is_whitespace()).collect();
        if hex(bytes) != golden {
            failures.push(format!(
                "{}: got {} want {golden}",
                uplink.report.name(),
                hex(bytes)
            ));
        }
        assert_eq!(decode_uplink(bytes).unwrap(), uplink);
    }
    assert!(
        failures.is_empty(),
        "wire format changed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_report_fits_the_compact_budget() {
    for (uplink, _) in samples() {
        let mut buf = [0u8; 64];
        let n = encode_uplink(&uplink, &mut buf).unwrap().len();
        assert!(n + OVERHEAD <= 48, "{} is {n} B", uplink.report.name());
    }
}

#[test]
fn truncated_unknown_and_trailing_bodies_are_distinct_errors() {
    let (uplink, _) = &samples()[13];
    let mut buf = [0u8; 64];
    let bytes = encode_uplink(uplink, &mut buf).unwrap().to_vec();
    assert_eq!(
        decode_uplink(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Truncated)
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(decode_uplink(&longer), Err(DecodeError::TrailingBytes));
    let mut unknown = bytes[..5].to_vec();
    unknown.push(120); // a report variant from the future
    assert_eq!(decode_uplink(&unknown), Err(DecodeError::UnknownVariant));
}

#[test]
fn sealed_uplink_and_ack_round_trip() {
    let key = DeviceKey::new(&[3; 32]);
    let (uplink, _) = &samples()[3];
    let mut body = [0u8; 64];
    let body = encode_uplink(uplink, &mut body).unwrap();
    let mut frame = [0u8; 96];
    let n = seal(
        &key,
        0,
        FrameClass::Uplink,
        "pendant-9",
        77,
        body,
        &mut frame,
    )
    .unwrap();
    let (h, opened) = open(&key, FrameClass::Uplink, "pendant-9", &mut frame[..n]).unwrap();
    assert_eq!(h.counter, 77);
    assert_eq!(decode_uplink(opened).unwrap(), *uplink);

    let mut ack = [0u8; 16];
    let ack = encode_downlink(&Downlink::Ack { counter: 77 }, &mut ack).unwrap();
    let mut frame = [0u8; 64];
    let n = seal(&key, 0, FrameClass::Ack, "pendant-9", 77, ack, &mut frame).unwrap();
    let (_, opened) = open(&key, FrameClass::Ack, "pendant-9", &mut frame[..n]).unwrap();
    assert_eq!(
        decode_downlink(opened).unwrap(),
        Downlink::Ack { counter: 77 }
    );
}

#[test]
fn json_form_parses_and_rejects_unknown_fields() {
    let j = r#"{"counter":17,"device_time":1764230400,
        "report":{"street_light":{"relay_on":true,"current_ma":420,"power_dw":950,"dimming_pct":80}}}"#;
    let m: JsonUplink = serde_json::from_str(j).unwrap();
    assert_eq!(m.counter, 17);
    assert_eq!(m.report, samples()[14].0.report);
    let sos = r#"{"counter":1,"report":{"pendant":"sos"}}"#;
    assert_eq!(
        serde_json::from_str::<JsonUplink>(sos).unwrap().report,
        Report::Pendant(Pendant::Sos)
    );
    assert!(serde_json::from_str::<JsonUplink>(
        r#"{"counter":1,"x":2,"report":{"door":{"open":true}}}"#
    )
    .is_err());
    assert!(serde_json::from_str::<JsonUplink>(
        r#"{"counter":1,"report":{"door":{"open":"yes"}}}"#
    )
    .is_err());
}

#[test]
fn kinds_gate_reports_and_events_are_derived() {
    let fall = Report::Pendant(Pendant::Fall {
        impact_mg: 1,
        still_s: 1,
    });
    assert!(fall.allowed_for(DeviceKind::Pendant));
    assert!(!fall.allowed_for(DeviceKind::StreetLight));
    assert!(Report::Heartbeat(Heartbeat { uptime_s: 1 }).allowed_for(DeviceKind::Manhole));
    assert_eq!(fall.event(), Some(EventKind::Fall));
    for k in DeviceKind::ALL {
        assert_eq!(DeviceKind::parse(k.as_str()), Some(k));
    }
}

#[test]
fn every_json_example_in_wire_md_parses_and_names_its_channel() {
    let doc = include_str!("../WIRE.md");
    let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
    assert!(rows.len() >= 18, "one example per report");
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(|c| c.trim().trim_matches('`')).collect();
        let (name, channel, example) = (cells[1], cells[2], cells[3]);
        let m: JsonUplink = serde_json::from_str(example).unwrap_or_else(|e| panic!("{row}: {e}"));
        assert_eq!(m.report.name(), name, "{row}");
        assert_eq!(m.report.channel().as_str(), channel, "{row}");
    }
}

#[test]
fn golden_bytes_of_every_downlink() {
    use linli_protocol::report::{Command, Settings, Threshold};
    let cases: [(Downlink, &str); 5] = [
        (Downlink::Ack { counter: 300 }, "00ac02"),
        (
            Downlink::Config {
                since: 300,
                settings: Settings {
                    heartbeat_s: Some(600),
                    report_s: None,
                    alarm_report_s: Some(10),
                    threshold: Some(Threshold::WaterAlarmMm(150)),
                },
            },
            "01 ac02 01d804 00 010a 01019601",
        ),
        (
            Downlink::Config {
                since: 0,
                settings: Settings::default(),
            },
            "01 00 00000000",
        ),
        (
            Downlink::Command {
                since: 5,
                command: Command::Dim { percent: 40 },
            },
            "02 05 0128",
        ),
        (
            Downlink::Command {
                since: 1000,
                command: Command::Pump { on: true },
            },
            "02 e807 0201",
        ),
    ];
    for (downlink, golden) in cases {
        let mut buf = [0u8; 32];
        let bytes = encode_downlink(&downlink, &mut buf).unwrap();
        let golden: String = golden.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(hex(bytes), golden, "{downlink:?}");
        assert_eq!(decode_downlink(bytes).unwrap(), downlink);
    }
}
