"""Eastron SDM input-register maps per model (FC04, float32 big-endian) and the RTU CRC16.

One request reads 0x0000..0x004B (76 registers = 38 floats, under the 40-float limit
per request); unused registers in the block read as 0 on SDM meters. Which registers
mean what depends on the model (config ``model``): three-phase meters give the total
system power at 0x0034, whereas 0x000C is phase L1 only.
"""

from __future__ import annotations

import math
import struct

from pymodbus.client import ModbusSerialClient

from firmware_bridge.base import DecodeError

BLOCK_START = 0x0000
BLOCK_COUNT = 0x004C

_V = (0.0, 1e6)
_A = (-1e6, 1e6)
_W = (-1e9, 1e9)
_KWH = (0.0, 1e12)

#: Single-phase meters (SDM120, SDM230): L-N voltage, current, active power.
_SINGLE: dict[str, tuple[int, tuple[float, float]]] = {
    "voltage_v": (0x0000, _V),
    "current_a": (0x0006, _A),
    "power_w": (0x000C, _W),
    "energy_import_kwh": (0x0048, _KWH),
    "energy_export_kwh": (0x004A, _KWH),
}
#: Three-phase meters with per-phase registers (SDM630, SDM72D-M V2): the total system
#: power at 0x0034 and each phase's L-N voltage, current and power. A single voltage or
#: current does not describe a three-phase supply, so voltage_v / current_a are left out.
_THREE: dict[str, tuple[int, tuple[float, float]]] = {
    "power_w": (0x0034, _W),
    "energy_import_kwh": (0x0048, _KWH),
    "energy_export_kwh": (0x004A, _KWH),
    **{f"voltage_l{p}_v": (0x0000 + 2 * (p - 1), _V) for p in (1, 2, 3)},
    **{f"current_l{p}_a": (0x0006 + 2 * (p - 1), _A) for p in (1, 2, 3)},
    **{f"power_l{p}_w": (0x000C + 2 * (p - 1), _W) for p in (1, 2, 3)},
}

#: model -> contract field -> (register address, plausible range)
MODELS: dict[str, dict[str, tuple[int, tuple[float, float]]]] = {
    "sdm120": _SINGLE,
    "sdm230": _SINGLE,
    "sdm630": _THREE,
    # SDM72D-M (v1) has no voltage or current registers: total power and energies only.
    "sdm72": {k: _THREE[k] for k in ("power_w", "energy_import_kwh", "energy_export_kwh")},
    "sdm72v2": _THREE,
}
DEFAULT_MODEL = "sdm120"
#: The single-phase map, kept under its old name for callers that predate models.
REGISTERS = MODELS[DEFAULT_MODEL]


def decode_block(registers: list[int], model: str = DEFAULT_MODEL) -> dict[str, float]:
    """Contract fields of ``model`` from the 76-register block; DecodeError for
    NaN/inf/out of range."""
    if len(registers) != BLOCK_COUNT:
        raise DecodeError(f"expected {BLOCK_COUNT} registers, got {len(registers)}", "truncated")
    if any(not 0 <= r <= 0xFFFF for r in registers):
        raise DecodeError("a register value is not 16-bit", "malformed")
    out: dict[str, float] = {}
    for name, (addr, (lo, hi)) in MODELS[model].items():
        pair = registers[addr - BLOCK_START : addr - BLOCK_START + 2]
        value = ModbusSerialClient.convert_from_registers(
            pair, ModbusSerialClient.DATATYPE.FLOAT32, word_order="big"
        )
        assert isinstance(value, float)
        if not math.isfinite(value) or not lo <= value <= hi:
            raise DecodeError(
                f"{name} register 0x{addr:04X} = {value!r} is not plausible", "out_of_range"
            )
        out[name] = value
    return out


def encode_float(value: float) -> list[int]:
    """float32 big-endian (ABCD) as two registers."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def crc16(data: bytes) -> int:
    """Modbus RTU CRC16 (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(pdu: bytes) -> bytes:
    return pdu + struct.pack("<H", crc16(pdu))
