//! The Modbus equipment simulator over real sockets: tokio-modbus clients (and mbpoll,
//! where installed) read and write simulated lamps, meters and pumps; faults, unknown
//! units, many connections, RTU over a pty, and the `linli-sim modbus` command line.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use linli_sim::modbus::{
    serve_rtu, serve_tcp, Equipment, Fault, Fleet, FleetConfig, Lamp, LampConfig, Meter,
    MeterConfig, Pump, PumpConfig, State,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::timeout;
use tokio_modbus::client::{tcp, Context, Reader, Writer};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Slave};

/// For calls that should succeed: long enough for a slow, busy machine.
const PATIENCE: Duration = Duration::from_secs(20);
/// For calls that should get no answer.
const SILENCE: Duration = Duration::from_millis(300);

/// Units 1, 2: lamps (no noise); 3: meter; 4: pump.
fn equipment() -> Equipment {
    let e = Equipment::new();
    let lamp = || {
        Lamp::new(LampConfig {
            noise_pct: 0.0,
            ..LampConfig::default()
        })
    };
    e.insert(1, lamp()).expect("lamp 1");
    e.insert(2, lamp()).expect("lamp 2");
    e.insert(3, Meter::new(MeterConfig::default()))
        .expect("meter");
    e.insert(4, Pump::new(PumpConfig::default())).expect("pump");
    e
}

/// Serves `e` on a free loopback port; dropping the sender stops the server.
async fn serve(e: &Equipment) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve_tcp(listener, e.clone(), async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

async fn connect(addr: SocketAddr, unit: u8) -> Context {
    timeout(PATIENCE, tcp::connect_slave(addr, Slave(unit)))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Awaits a client call that must succeed (transport and Modbus level).
async fn ok<T>(call: impl Future<Output = tokio_modbus::Result<T>>) -> T {
    timeout(PATIENCE, call)
        .await
        .expect("answer in time")
        .expect("transport")
        .expect("no exception")
}

/// Awaits a client call that must get exception `code`.
async fn exception<T: std::fmt::Debug>(
    call: impl Future<Output = tokio_modbus::Result<T>>,
    code: ExceptionCode,
) {
    let got = timeout(PATIENCE, call)
        .await
        .expect("answer in time")
        .expect("transport");
    assert_eq!(got.err(), Some(code));
}

fn f32_abcd(words: &[u16]) -> f32 {
    f32::from_bits(u32::from(words[0]) << 16 | u32::from(words[1]))
}

fn lamp_state(e: &Equipment, unit: u8) -> linli_sim::modbus::LampState {
    match e.state(unit) {
        Ok(State::Lamp(s)) => s,
        other => panic!("unit {unit}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_floats_decode_high_word_first() {
    let e = equipment();
    let (addr, _stop) = serve(&e).await;
    let mut meter = connect(addr, 3).await;
    let words = ok(meter.read_input_registers(0x0000, 2)).await;
    let volts = f32_abcd(&words);
    assert!((228.0..=232.0).contains(&volts), "{volts} V");
    let all = ok(meter.read_input_registers(0x0000, 0x4A)).await;
    let at = |a: usize| f32_abcd(&all[a..a + 2]);
    assert!((1980.0..=2020.0).contains(&at(0x0C)), "{} W", at(0x0C));
    assert_eq!(at(0x1E), 0.95);
    assert!((49.9..=50.1).contains(&at(0x46)), "{} Hz", at(0x46));
    assert!(at(0x48) >= 0.0);
    assert_eq!(&all[0x02..0x06], &[0, 0, 0, 0], "unmapped reads 0");
    exception(
        meter.read_input_registers(0x0048, 3),
        ExceptionCode::IllegalDataAddress,
    )
    .await;
    exception(
        meter.read_holding_registers(0, 1),
        ExceptionCode::IllegalDataAddress,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lamp_dims_after_a_write_and_its_power_falls() {
    let e = equipment();
    let (addr, _stop) = serve(&e).await;
    let mut lamp = connect(addr, 1).await;
    assert_eq!(
        ok(lamp.read_input_registers(0, 4)).await,
        [100, 435, 1000, 2300]
    );
    ok(lamp.write_single_register(0, 30)).await;
    assert_eq!(ok(lamp.read_holding_registers(0, 1)).await, [30]);
    assert_eq!(
        ok(lamp.read_input_registers(0, 4)).await,
        [30, 130, 300, 2300]
    );
    assert_eq!(lamp_state(&e, 1).power_w, 30.0);
    ok(lamp.write_single_coil(0, false)).await;
    assert_eq!(ok(lamp.read_discrete_inputs(0, 1)).await, [false]);
    assert_eq!(ok(lamp.read_input_registers(1, 2)).await, [0, 0]);
    exception(
        lamp.write_single_register(0, 101),
        ExceptionCode::IllegalDataValue,
    )
    .await;
    exception(
        lamp.read_input_registers(0, 126),
        ExceptionCode::IllegalDataValue,
    )
    .await;
    exception(lamp.read_coils(1, 1), ExceptionCode::IllegalDataAddress).await;
    exception(
        lamp.masked_write_register(0, 0xFF, 0),
        ExceptionCode::IllegalFunction,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deaf_lamp_echoes_the_command_but_keeps_its_power() {
    let e = equipment();
    e.set_fault(2, Some(Fault::Deaf)).expect("fault");
    let (addr, _stop) = serve(&e).await;
    let mut lamp = connect(addr, 2).await;
    ok(lamp.write_single_register(0, 30)).await;
    ok(lamp.write_single_coil(0, false)).await;
    assert_eq!(ok(lamp.read_holding_registers(0, 1)).await, [30]);
    assert_eq!(ok(lamp.read_coils(0, 1)).await, [false]);
    assert_eq!(ok(lamp.read_discrete_inputs(0, 1)).await, [true]);
    assert_eq!(
        ok(lamp.read_input_registers(0, 4)).await,
        [100, 435, 1000, 2300]
    );
    let s = lamp_state(&e, 2);
    assert_eq!((s.relay_on, s.dimming_pct, s.power_w), (true, 100, 100.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_unit_times_out_while_its_neighbours_answer() {
    let e = equipment();
    e.set_fault(1, Some(Fault::Silent)).expect("fault");
    let (addr, _stop) = serve(&e).await;
    let mut ctx = connect(addr, 1).await;
    assert!(
        timeout(SILENCE, ctx.read_input_registers(0, 4))
            .await
            .is_err(),
        "a silent unit answered"
    );
    // Same connection, still open: another unit answers.
    ctx.set_slave(Slave(3));
    assert_eq!(ok(ctx.read_input_registers(0, 2)).await.len(), 2);
    // And on a connection of its own.
    let mut pump = connect(addr, 4).await;
    ok(pump.write_single_coil(0, true)).await;
    assert_eq!(ok(pump.read_input_registers(1, 2)).await, [850, 250]);
    // Healed, it answers again.
    e.set_fault(1, None).expect("clear");
    let mut lamp = connect(addr, 1).await;
    assert_eq!(ok(lamp.read_input_registers(0, 1)).await, [100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_unit_gets_gateway_target_device() {
    let e = equipment();
    let (addr, _stop) = serve(&e).await;
    let mut ctx = connect(addr, 99).await;
    exception(
        ctx.read_input_registers(0, 1),
        ExceptionCode::GatewayTargetDevice,
    )
    .await;
    exception(
        ctx.write_single_coil(0, true),
        ExceptionCode::GatewayTargetDevice,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_serves_550_connections_at_once() {
    let fleet = Fleet::start(&FleetConfig {
        lamps: 500,
        meters: 50,
        ..FleetConfig::default()
    })
    .await
    .expect("fleet");
    assert_eq!(fleet.listeners().len(), 3);
    let mut contexts = Vec::new();
    for d in fleet.devices() {
        contexts.push((d.kind, connect(d.addr, d.unit).await));
    }
    let reads = contexts.into_iter().map(|(kind, mut ctx)| async move {
        let words = match kind {
            linli_sim::modbus::Kind::Meter => ok(ctx.read_input_registers(0x0C, 2)).await,
            _ => ok(ctx.read_input_registers(2, 1)).await,
        };
        (kind, words, ctx)
    });
    let mut tasks = tokio::task::JoinSet::new();
    for read in reads {
        tasks.spawn(read);
    }
    let mut n = 0;
    while let Some(done) = tasks.join_next().await {
        let (kind, words, _ctx) = done.expect("task");
        match kind {
            linli_sim::modbus::Kind::Meter => {
                let w = f32_abcd(&words);
                assert!((1980.0..=2020.0).contains(&w), "{w}");
            }
            _ => assert!((990..=1010).contains(&words[0]), "{words:?}"),
        }
        n += 1;
    }
    assert_eq!(n, 550);
    fleet
        .set_fault("lamp-0321", Some(Fault::Broken))
        .expect("fault");
    let d = fleet.device("lamp-0321").expect("device");
    let mut lamp = connect(d.addr, d.unit).await;
    assert_eq!(ok(lamp.read_input_registers(1, 2)).await, [0, 0]);
    assert_eq!(ok(lamp.read_discrete_inputs(0, 1)).await, [true]);
    fleet.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_over_a_pty() {
    use tokio_serial::SerialPort as _;
    let (master, slave) = tokio_serial::SerialStream::pair().expect("pty pair");
    let path = slave.name().expect("pty name");
    drop(slave);
    let e = equipment();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = serve_rtu(std::path::Path::new(&path), 9600, e.clone(), async move {
        let _ = stopped.await;
    })
    .expect("open the pty");
    let server = tokio::spawn(serving);
    let mut ctx = tokio_modbus::client::rtu::attach_slave(master, Slave(1));
    assert_eq!(
        ok(ctx.read_input_registers(0, 4)).await,
        [100, 435, 1000, 2300]
    );
    ok(ctx.write_single_register(0, 50)).await;
    assert_eq!(lamp_state(&e, 1).dimming_pct, 50);
    // On a bus an absent unit just does not answer.
    ctx.set_slave(Slave(42));
    assert!(timeout(SILENCE, ctx.read_coils(0, 1)).await.is_err());
    drop(stop);
    timeout(PATIENCE, server)
        .await
        .expect("server stops")
        .expect("task")
        .expect("served");
}

/// mbpoll (Debian package `mbpoll`), an independent Modbus master, reads a lamp's
/// input registers and a meter's voltage. Skipped where mbpoll is not installed, except
/// under CI (`CI` set), which must have it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbpoll_reads_the_simulator() {
    if Command::new("mbpoll").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "mbpoll is not installed (apt-get install mbpoll)"
        );
        eprintln!("skipped: mbpoll is not installed (apt-get install mbpoll)");
        return;
    }
    let e = equipment();
    let (addr, _stop) = serve(&e).await;
    let port = addr.port().to_string();
    // -r 1 is the first register in mbpoll's default 1-based numbering (address 0).
    let lamp = mbpoll(&["-a", "1", "-r", "1", "-c", "4", "-t", "3", "-p", &port]).await;
    assert_eq!(lamp, ["100", "435", "1000", "2300"]);
    // -0: zero-based; -B: big-endian word order.
    let meter = mbpoll(&[
        "-a", "3", "-0", "-r", "0", "-t", "3:float", "-B", "-p", &port,
    ])
    .await;
    let volts: f32 = meter[0].parse().expect("a float");
    assert!((228.0..=232.0).contains(&volts), "{volts}");
    // An unknown unit: exception 0x0B, in libmodbus's words.
    let out = run_mbpoll(&["-a", "9", "-r", "1", "-t", "3", "-p", &port]).await;
    assert!(out.contains("Target device failed to respond"), "{out}");
}

/// Runs mbpoll once against 127.0.0.1 and returns its output (stdout and stderr).
async fn run_mbpoll(args: &[&str]) -> String {
    let mut cmd = Command::new("mbpoll");
    cmd.args(["-m", "tcp", "-1", "-o", "5"])
        .args(args)
        .arg("127.0.0.1");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("task")
        .expect("mbpoll runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The values of mbpoll's `[ref]: \tvalue` lines.
async fn mbpoll(args: &[&str]) -> Vec<String> {
    let out = run_mbpoll(args).await;
    let values: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with('['))
        .filter_map(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .collect();
    assert!(!values.is_empty(), "no values in mbpoll's output:\n{out}");
    values
}

#[test]
fn the_command_line_lists_devices_and_takes_commands() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_linli-sim"))
        .args(["modbus", "--lamps", "2", "--meters", "1", "--pumps", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("linli-sim runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().expect("a line").expect("utf-8");
    let mut devices = Vec::new();
    loop {
        let line = next();
        if line == "ready" {
            break;
        }
        let d: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        devices.push(d);
    }
    let ids: Vec<&str> = devices.iter().filter_map(|d| d["id"].as_str()).collect();
    assert_eq!(ids, ["lamp-0001", "lamp-0002", "meter-001", "pump-01"]);
    assert_eq!(devices[2]["kind"], "meter");
    assert_eq!(devices[3]["unit"], 4);
    let addr: SocketAddr = devices[0]["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("an address");
    assert!(addr.ip().is_loopback());

    writeln!(stdin, "fault lamp-0002 broken").expect("write");
    assert_eq!(next(), "ok");
    writeln!(stdin, "state lamp-0002").expect("write");
    let state: serde_json::Value = serde_json::from_str(&next()).expect("state JSON");
    assert_eq!(state["id"], "lamp-0002");
    assert_eq!(state["fault"], "broken");
    assert_eq!(state["relay_on"], true);
    assert_eq!(state["power_w"], 0.0);
    writeln!(stdin, "fault nobody silent").expect("write");
    assert!(next().starts_with("error:"));

    // Polled over the network meanwhile.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut lamp = connect(addr, 2).await;
        assert_eq!(ok(lamp.read_input_registers(1, 2)).await, [0, 0]);
    });

    drop(stdin); // end of input: the simulator stops
    let status = child.wait().expect("exit");
    assert!(status.success(), "{status}");
}
