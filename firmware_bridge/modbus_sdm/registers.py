"""Eastron SDM input-register map (FC04, float32 big-endian) and the RTU CRC16.

One request reads 0x0000..0x004B (76 registers = 38 floats, under the 40-float limit
per request); unused registers in the block read as 0 on SDM meters.
"""

from __future__ import annotations

import math
import struct

from pymodbus.client import ModbusSerialClient

from firmware_bridge.base import DecodeError

BLOCK_START = 0x0000
BLOCK_COUNT = 0x004C

#: contract field -> (register address, plausible range)
REGISTERS: dict[str, tuple[int, float, float]] = {
    "voltage_v": (0x0000, 0.0, 1e6),
    "current_a": (0x0006, -1e6, 1e6),
    "power_w": (0x000C, -1e9, 1e9),
    "energy_import_kwh": (0x0048, 0.0, 1e12),
    "energy_export_kwh": (0x004A, 0.0, 1e12),
}


def decode_block(registers: list[int]) -> dict[str, float]:
    """Contract fields from the 76-register block; DecodeError for NaN/inf/out of range."""
    if len(registers) != BLOCK_COUNT:
        raise DecodeError(f"expected {BLOCK_COUNT} registers, got {len(registers)}", "truncated")
    out: dict[str, float] = {}
    for name, (addr, lo, hi) in REGISTERS.items():
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
