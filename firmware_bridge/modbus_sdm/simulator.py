"""An Eastron SDM meter answering Modbus RTU FC04 on a pty (own responder, CRC16).

Each good response advances the meter (power, currents, energies change), and its truth
(``sim.sent``) is the reading the source must decode, after float32 rounding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.modbus_sdm.registers import REGISTERS, crc16, encode_float, with_crc
from firmware_bridge.pty import DeviceModel, Frame, PtySimulator


def f32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


@dataclass
class SdmModel(DeviceModel):
    unit_id: int = 1
    _buf: bytearray = field(default_factory=bytearray)
    _n: int = 0

    def values(self) -> dict[str, float]:
        n = self._n
        return {
            "voltage_v": f32(230.0 + (n % 7) * 0.1),
            "current_a": f32(4.2 + (n % 5) * 0.25),
            "power_w": f32(-350.5 if n % 4 == 3 else 960.0 + n),  # negative: export
            "energy_import_kwh": f32(12345.6 + n * 0.01),
            "energy_export_kwh": f32(321.0 + n * 0.001),
        }

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
        regs = [0] * 0x0200
        for name, (reg, _lo, _hi) in REGISTERS.items():
            regs[reg : reg + 2] = encode_float(vals[name])
        data = b"".join(struct.pack(">H", r) for r in regs[addr : addr + count])
        pdu = bytes([self.unit_id, 0x04, len(data)]) + data
        return Frame(with_crc(pdu), vals)

    def corrupt_checksum(self, raw: bytes) -> bytes:
        return raw[:-2] + bytes([raw[-2] ^ 0xFF, raw[-1]])


class SdmSimulator(PtySimulator):
    """``with SdmSimulator(tmp_path) as sim: SdmSource(str(sim.path))``."""

    def __init__(self, directory: str | Path, link_name: str = "sdm", **model: Any) -> None:
        super().__init__(directory, SdmModel(**model), link_name)
