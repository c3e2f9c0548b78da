#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs
# every test. Usage: scripts/test.sh   (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null || need_apt+=(mosquitto-clients)
command -v mosquitto >/dev/null && [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing system packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# mosquitto's Debian package may start a system broker on 1883; tests use their own
# ports, but stop it so nothing listens that we did not start.
if command -v systemctl >/dev/null 2>&1; then systemctl stop mosquitto >/dev/null 2>&1 || true; fi
pkill -x mosquitto >/dev/null 2>&1 || true

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

echo "==> building"
cargo build --workspace --all-targets --locked
echo "==> testing"
cargo nextest run --workspace --locked --no-fail-fast
