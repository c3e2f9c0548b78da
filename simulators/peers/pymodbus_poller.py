"""The Modbus benchmark's peer: Debian's pymodbus (asyncio client) polling the same street
the gateway polls, with the same reads, so `linli-sim bench modbus` can set the gateway's
CPU and poll jitter beside a plain poller's.

It does only the polling: one client (one TCP connection) per device, every read under a
timeout, a device's polls spread evenly over the interval, and nothing done with the
values (no decoding, no journal, no store, no rules). Its figures are therefore a floor
for "poll this street from Python", not a like-for-like gateway.

Usage: /usr/bin/python3 pymodbus_poller.py PLAN.json
  PLAN.json: {"poll_ms": 1000, "timeout_ms": 1000,
              "devices": [{"id": "lamp-0001", "host": "127.0.0.1", "port": 40000,
                           "unit": 1, "reads": [["input", 0, 4], ["coil", 0, 1]]}]}
Prints `ready` once every device is connected, then reads commands on stdin:
  reset   clears the figures (answers `ok`)
  report  prints the figures as one JSON line and exits
"""

import asyncio
import json
import os
import sys
import time

from pymodbus.client import AsyncModbusTcpClient

READS = {
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
    "holding": "read_holding_registers",
    "input": "read_input_registers",
}


class Figures:
    def __init__(self):
        self.reset()

    def reset(self):
        self.late_ms = []
        self.readings = 0
        self.errors = 0
        self.missed = 0

    def report(self):
        late = sorted(self.late_ms)

        def q(p):
            return late[min(len(late) - 1, int(p * len(late)))] if late else None

        return {
            "samples": len(late),
            "p50_ms": q(0.50),
            "p99_ms": q(0.99),
            "max_ms": late[-1] if late else None,
            "readings": self.readings,
            "errors": self.errors,
            "missed": self.missed,
        }


async def poll(device, client, period, phase, timeout, figures, stop):
    calls = [(getattr(client, READS[table]), start, count) for table, start, count in device["reads"]]
    due = time.monotonic() + phase
    while not stop.is_set():
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
            now = time.monotonic()
        figures.late_ms.append((now - due) * 1000.0)
        ok = True
        for call, start, count in calls:
            try:
                reply = await asyncio.wait_for(call(start, count, slave=device["unit"]), timeout)
                if reply.isError():
                    ok = False
            except Exception:  # noqa: BLE001 - any failure is one error, as in the gateway
                ok = False
        if ok:
            figures.readings += 1
        else:
            figures.errors += 1
        due += period
        # A poll that overran its interval skips the slots it missed, like the gateway.
        while due < time.monotonic():
            due += period
            figures.missed += 1


async def main(plan_path):
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    period = plan["poll_ms"] / 1000.0
    timeout = plan.get("timeout_ms", 1000) / 1000.0
    devices = plan["devices"]
    clients = []
    for d in devices:
        c = AsyncModbusTcpClient(d["host"], port=d["port"], timeout=max(1, int(timeout)))
        await c.connect()
        if not c.connected:
            print(f"cannot connect to {d['id']} at {d['host']}:{d['port']}", file=sys.stderr)
            return 1
        clients.append(c)
    figures = Figures()
    stop = asyncio.Event()
    n = max(1, len(devices))
    tasks = [
        asyncio.create_task(poll(d, c, period, period * i / n, timeout, figures, stop))
        for i, (d, c) in enumerate(zip(devices, clients))
    ]
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        cmd = line.strip()
        if cmd == "reset":
            figures.reset()
            print("ok", flush=True)
        elif cmd == "report" or not line:
            print(json.dumps(figures.report()), flush=True)
            break
    # The stdin reader thread is still blocked in readline (asyncio.run would wait for it
    # until the bench hangs up) and the connections need no goodbye: leave now.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
