"""Eastron SDM meters on a pty: our own RTU responder, and pymodbus's RTU server.

:class:`SdmSimulator` is our own FC04 responder (CRC16): each good response advances
the meter (power, currents, energies change), and its truth (``sim.sent``) is the
reading the source must decode, after float32 rounding, laid out as ``model``.

:class:`PymodbusSdmSimulator` is an independent check: pymodbus's own RTU server
(``ModbusSerialServer`` + ``SimDevice``) holds the registers of a chosen model; the pty
harness relays the host's bytes to it over a second pty, so fault modes still apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import struct
import threading
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.modbus_sdm.registers import (
    BLOCK_COUNT,
    DEFAULT_MODEL,
    MODELS,
    crc16,
    encode_float,
    with_crc,
)
from firmware_bridge.pty import DeviceModel, Frame, PtySimulator


def f32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


@dataclass
class SdmModel(DeviceModel):
    unit_id: int = 1
    model: str = DEFAULT_MODEL
    _buf: bytearray = field(default_factory=bytearray)
    _n: int = 0

    def values(self) -> dict[str, float]:
        """The reading of poll ``n`` in the fields of ``model`` (float32-exact)."""
        n = self._n
        export = n % 4 == 3
        # Phases that do not add up to a multiple of L1, so reading L1 as the total shows.
        phases = (-179.75, -120.5, -46.25) if export else (960.0 + n, 410.25, 88.5)
        full = {
            "voltage_v": 230.0 + (n % 7) * 0.1,
            "current_a": 4.2 + (n % 5) * 0.25,
            "energy_import_kwh": 12345.6 + n * 0.01,
            "energy_export_kwh": 321.0 + n * 0.001,
            **{f"voltage_l{p}_v": 229.5 + p + (n % 7) * 0.1 for p in (1, 2, 3)},
            **{f"current_l{p}_a": 4.2 + p + (n % 5) * 0.25 for p in (1, 2, 3)},
            **{f"power_l{p}_w": phases[p - 1] for p in (1, 2, 3)},
        }
        three_phase = MODELS[self.model]["power_w"][0] == 0x0034  # total system power
        full["power_w"] = sum(phases) if three_phase else phases[0]  # negative: export
        return {k: f32(full[k]) for k in MODELS[self.model]}

    def on_input(self, data: bytes, now: float) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while len(self._buf) >= 8:
            req = bytes(self._buf[:8])
            if crc16(req[:6]) != int.from_bytes(req[6:], "little") or req[1] != 0x04:
                del self._buf[:1]  # resync on the next byte, as a real slave would
                continue
            del self._buf[:8]
            if req[0] != self.unit_id:
                continue  # addressed to another meter on the bus
            addr, count = struct.unpack(">HH", req[2:6])
            out.append(self._answer(addr, count))
        return out

    def _answer(self, addr: int, count: int) -> Frame:
        if count < 1 or count > 80 or addr + count > 0x0200:
            return Frame(with_crc(bytes([self.unit_id, 0x84, 0x02])))  # illegal address
        self._n += 1
        vals = self.values()
        regs = layout(self.model, vals, 0x0200)
        data = b"".join(struct.pack(">H", r) for r in regs[addr : addr + count])
        pdu = bytes([self.unit_id, 0x04, len(data)]) + data
        return Frame(with_crc(pdu), vals)

    def corrupt_checksum(self, raw: bytes) -> bytes:
        return raw[:-2] + bytes([raw[-2] ^ 0xFF, raw[-1]])


class SdmSimulator(PtySimulator):
    """``with SdmSimulator(tmp_path) as sim: SdmSource(str(sim.path))``."""

    def __init__(self, directory: str | Path, link_name: str = "sdm", **model: Any) -> None:
        super().__init__(directory, SdmModel(**model), link_name)


def layout(model: str, values: dict[str, float], size: int = BLOCK_COUNT) -> list[int]:
    """Input registers 0..size-1 of a ``model`` meter holding ``values`` (others 0)."""
    regs = [0] * size
    for name, (reg, _range) in MODELS[model].items():
        if name in values:
            regs[reg : reg + 2] = encode_float(values[name])
    return regs


@dataclass
class _Relay(DeviceModel):
    """Bytes from the host go to ``fd`` (pymodbus's pty); its answers come back as frames."""

    fd: int = -1

    def on_input(self, data: bytes, now: float) -> list[Frame]:
        os.write(self.fd, data)
        return []

    def tick(self, now: float) -> list[Frame]:
        chunks = b""
        while select.select([self.fd], [], [], 0.002)[0]:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks += chunk
        return [Frame(chunks)] if chunks else []

    def corrupt_checksum(self, raw: bytes) -> bytes:
        return raw[:-2] + bytes([raw[-2] ^ 0xFF, raw[-1]])


class PymodbusSdmSimulator(PtySimulator):
    """pymodbus's RTU server laid out as ``model`` with ``values``, behind ``sim.path``.

    ``with PymodbusSdmSimulator(tmp_path, "sdm630", {"power_w": -346.5}, unit_id=7)``.
    """

    def __init__(
        self,
        directory: str | Path,
        model: str,
        values: dict[str, float],
        unit_id: int = 1,
        link_name: str = "pymodbus-sdm",
    ) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self._server_master, self._server_slave = master, slave
        super().__init__(directory, _Relay(fd=master), link_name)
        self.registers = layout(model, values, 0x0100)
        self.unit_id = unit_id
        self._loop = asyncio.new_event_loop()
        self._server_thread: threading.Thread | None = None
        self._server: Any = None

    def start(self) -> PymodbusSdmSimulator:
        from pymodbus import FramerType
        from pymodbus.server import ModbusSerialServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        bits = [SimData(0, 1, 0, DataType.BITS)]
        device = SimDevice(
            self.unit_id,
            (
                bits,
                bits,
                [SimData(0, 1, 0, DataType.REGISTERS)],
                [SimData(0, values=self.registers, datatype=DataType.REGISTERS)],
            ),
        )
        port = os.ttyname(self._server_slave)
        ready = threading.Event()

        async def serve() -> None:
            self._server = ModbusSerialServer(
                device, framer=FramerType.RTU, port=port, baudrate=9600
            )
            ready.set()
            await self._server.serve_forever()

        self._server_thread = threading.Thread(
            target=lambda: self._loop.run_until_complete(serve()), daemon=True
        )
        self._server_thread.start()
        ready.wait(5)
        super().start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._server is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)
        if self._server_thread is not None:
            self._server_thread.join(5)
        for fd in (self._server_master, self._server_slave):
            with contextlib.suppress(OSError):
                os.close(fd)
