#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs
# every test. Usage: scripts/test.sh   (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null || need_apt+=(mosquitto-clients)
[ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
[ -x /usr/bin/victoria-metrics ] || need_apt+=(victoria-metrics)
# Rule windows are local time: the system zone database (the gateway also carries a
# bundled copy, used when a zone is missing here).
[ -e /usr/share/zoneinfo/Asia/Shanghai ] || need_apt+=(tzdata)
/usr/bin/python3 -c "import aiosmtpd" 2>/dev/null || need_apt+=(python3-aiosmtpd)
# Modbus peers: Debian's pymodbus (TCP, and RTU over a socat pty pair; its serial server
# needs pyserial and pyserial-asyncio) and mbpoll, which reads the project's simulator.
/usr/bin/python3 -c "import pymodbus.server" 2>/dev/null \
  || need_apt+=(python3-pymodbus python3-serial python3-serial-asyncio)
command -v socat >/dev/null || need_apt+=(socat)
command -v mbpoll >/dev/null || need_apt+=(mbpoll)
# The pendant firmware's on-target test runs on an emulated Cortex-M4 (mps2-an386).
command -v qemu-system-arm >/dev/null || need_apt+=(qemu-system-arm)
# The dashboard's browser tests: Debian's chromium, driven headless by playwright-core
# (from npm, pinned in tests/browser/package-lock.json) under Debian's node.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || need_apt+=(fonts-dejavu-core)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing system packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# mosquitto-clients gives the tests a second, independent MQTT client (mosquitto_pub);
# the mosquitto broker is the peer of the ingest benchmark, victoria-metrics the peer of
# the storage benchmark (its smoke test runs the real binary). Tests bind their own free
# loopback ports, so a system broker on 1883 does not disturb them.
# victoria-metrics is the real server behind the InfluxDB export tests (it serves the
# InfluxDB v2 write API); the tests start their own on a free port.

# playwright-core only (no browser download: the tests use /usr/bin/chromium).
echo "==> installing the browser tests' npm packages"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# The device firmware's no_std logic is built for a Cortex-M4F as well as tested on the host.
rustup target list --installed | grep -qx thumbv7em-none-eabihf \
  || rustup target add thumbv7em-none-eabihf

# No incremental caches: a one-off build does not reuse them, and they cost gigabytes.
export CARGO_INCREMENTAL=0
echo "==> building"
cargo build --workspace --all-targets --locked
echo "==> building the firmware for thumbv7em-none-eabihf"
cargo build -p linli-firmware --target thumbv7em-none-eabihf --locked
# Every binary of firmware/qemu: the on-target test (cortex-m-rt + semihosting) that
# tests/firmware_qemu.rs runs under QEMU (the test's own build is then a no-op), and the
# pendant and street-light images whose flash and RAM firmware/qemu/README.md reports.
cargo build -p linli-firmware-qemu --target thumbv7em-none-eabihf --release --locked
echo "==> testing"
cargo nextest run --workspace --locked --no-fail-fast
