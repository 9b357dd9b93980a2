"""CRC and float decoding against published Modbus frames, plus fuzzing."""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from firmware_bridge.base import DecodeError
from firmware_bridge.modbus_sdm.registers import BLOCK_COUNT, crc16, decode_block, encode_float


@pytest.mark.parametrize(
    "frame",
    [
        # Eastron SDM protocol examples: read input registers 0x0000 (voltage), 2 regs.
        "01040000000271CB",
        # Modbus-over-serial-line examples (Modbus.org / Simply Modbus): FC03 reads.
        "01030000000AC5CD",
        "010300000001840A",
    ],
)
def test_crc_matches_published_frames_and_pymodbus(frame: str) -> None:
    raw = bytes.fromhex(frame)
    assert struct.pack("<H", crc16(raw[:-2])) == raw[-2:]
    # pymodbus keeps the CRC as the big-endian reading of the two wire bytes.
    assert struct.pack(">H", FramerRTU.compute_CRC(raw[:-2])) == raw[-2:]


def _block(**values: float) -> list[int]:
    regs = [0] * BLOCK_COUNT
    addr = {
        "voltage_v": 0x00,
        "current_a": 0x06,
        "power_w": 0x0C,
        "energy_import_kwh": 0x48,
        "energy_export_kwh": 0x4A,
    }
    for name, v in values.items():
        regs[addr[name] : addr[name] + 2] = encode_float(v)
    return regs


def test_float32_big_endian_registers() -> None:
    regs = [0] * BLOCK_COUNT
    regs[0:2] = [0x4366, 0x0000]  # IEEE-754 0x43660000 = 230.0 (V)
    regs[0x0C:0x0E] = [0xC3AF, 0x4000]  # 0xC3AF4000 = -350.5 (W, export)
    regs[0x48:0x4A] = [0x4640, 0xE666]  # 0x4640E666 = 12345.6 rounded to float32
    got = decode_block(regs)
    assert got["voltage_v"] == 230.0 and got["power_w"] == -350.5
    assert got["energy_import_kwh"] == struct.unpack(">f", bytes.fromhex("4640E666"))[0]
    assert got["current_a"] == 0.0 and got["energy_export_kwh"] == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_nan_inf_negative_energy_rejected(bad: float) -> None:
    with pytest.raises(DecodeError):
        decode_block(_block(energy_import_kwh=bad))


def test_short_block() -> None:
    with pytest.raises(DecodeError) as err:
        decode_block([0] * 10)
    assert err.value.reason == "truncated"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=2 * BLOCK_COUNT + 4))
def test_fuzz(data: bytes) -> None:
    regs = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data) - 1, 2)]
    with contextlib.suppress(DecodeError):
        out = decode_block(regs)
        assert all(math.isfinite(v) for v in out.values())
