"""A pymodbus server (Debian's python3-pymodbus, run with /usr/bin/python3) holding known
values in every type and word order, for the gateway's Modbus tests.

The values are encoded here with Python's struct module, independently of the gateway's
decoder, at the addresses of the all-types profile in tests/tests/modbus.rs. Unit N holds
12000 + N in holding register 0, so tests can tell units apart on one bus.

Usage: pymodbus_server.py --tcp PORT --units 1
       pymodbus_server.py --rtu /path/to/pty --units 1,2
"""

import argparse
import asyncio
import struct
import sys

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.transaction import ModbusRtuFramer

# (first address, struct format, value): each typed value in all four orders, at
# consecutive slots of its width.
TYPED = [
    (10, ">I", 3_000_000_000),
    (20, ">i", -123_456_789),
    (30, ">f", 230.5),
    (40, ">d", -12345.678),
]
ORDERS = ["abcd", "cdab", "badc", "dcba"]


def words(fmt, value, order):
    raw = struct.pack(fmt, value)
    ws = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order in ("cdab", "dcba"):
        ws.reverse()
    if order in ("badc", "dcba"):
        ws = [w[::-1] for w in ws]
    return [int.from_bytes(w, "big") for w in ws]


def unit_context(unit):
    hr = [0] * 100
    hr[0] = 12000 + unit
    hr[1] = struct.unpack(">H", struct.pack(">h", -1234))[0]
    for start, fmt, value in TYPED:
        width = struct.calcsize(fmt) // 2
        for k, order in enumerate(ORDERS):
            at = start + k * width
            hr[at : at + width] = words(fmt, value, order)
    hr[60] = 5000  # declared max 1000: must be rejected, not stored
    ir = [0] * 10
    ir[0] = 777
    return ModbusSlaveContext(
        di=ModbusSequentialDataBlock(0, [True] + [False] * 9),
        co=ModbusSequentialDataBlock(0, [True] + [False] * 9),
        hr=ModbusSequentialDataBlock(0, hr),
        ir=ModbusSequentialDataBlock(0, ir),
        zero_mode=True,
    )


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tcp", type=int)
    p.add_argument("--rtu")
    p.add_argument("--units", default="1")
    a = p.parse_args()
    units = [int(u) for u in a.units.split(",")]
    context = ModbusServerContext(
        slaves={u: unit_context(u) for u in units}, single=False
    )
    print("ready", flush=True)
    if a.tcp:
        await StartAsyncTcpServer(context, address=("127.0.0.1", a.tcp))
    elif a.rtu:
        await StartAsyncSerialServer(
            context, framer=ModbusRtuFramer, port=a.rtu, baudrate=19200
        )
    else:
        sys.exit("give --tcp PORT or --rtu PATH")


asyncio.run(main())
