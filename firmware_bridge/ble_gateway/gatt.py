"""Decoders for the GATT characteristics care wearables notify.

Byte layouts follow the Bluetooth GATT Specification Supplement (Heart Rate
Measurement 0x2A37 s.3.113, PLX Continuous Measurement 0x2A5F s.3.171, Battery Level
0x2A19, Temperature Measurement 0x2A1C) and IEEE 11073-20601 for SFLOAT/FLOAT.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.base import DecodeError

HEART_RATE = 0x2A37
PLX_CONTINUOUS = 0x2A5F
BATTERY_LEVEL = 0x2A19
TEMPERATURE = 0x2A1C

# IEEE 11073 special values: the device says "no number here".
SFLOAT_SPECIAL = {0x07FF: "NaN", 0x0800: "NRes", 0x07FE: "+INF", 0x0802: "-INF", 0x0801: "reserved"}
FLOAT_SPECIAL = {
    0x007FFFFF: "NaN",
    0x00800000: "NRes",
    0x007FFFFE: "+INF",
    0x00800002: "-INF",
    0x00800001: "reserved",
}


class NotANumber(DecodeError):
    """An IEEE-11073 special value (NaN, NRes, +-INF): the field has no number."""

    def __init__(self, what: str, name: str) -> None:
        super().__init__(f"{what} is the IEEE-11073 special value {name}", "not_a_number")
        self.name = name


def sfloat(raw: int, what: str = "SFLOAT") -> float:
    """16-bit SFLOAT: 4-bit signed exponent (high), 12-bit signed mantissa."""
    return _ieee11073(raw, what, SFLOAT_SPECIAL, mantissa_bits=12, exponent_bits=4)


def float32(raw: int, what: str = "FLOAT") -> float:
    """32-bit FLOAT: 8-bit signed exponent (high), 24-bit signed mantissa."""
    return _ieee11073(raw, what, FLOAT_SPECIAL, mantissa_bits=24, exponent_bits=8)


def _ieee11073(
    raw: int, what: str, special: dict[int, str], mantissa_bits: int, exponent_bits: int
) -> float:
    """An IEEE-11073 float: signed exponent in the high bits, signed mantissa below."""
    if raw in special:
        raise NotANumber(what, special[raw])
    mantissa = _signed(raw & ((1 << mantissa_bits) - 1), mantissa_bits)
    return _scaled(mantissa, _signed(raw >> mantissa_bits, exponent_bits))


def _signed(value: int, bits: int) -> int:
    """``value`` read as a ``bits``-bit two's complement number."""
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _scaled(mantissa: int, exponent: int) -> float:
    # Divide for negative exponents: 364 / 10 is exactly the double nearest 36.4,
    # 364 * 0.1 is not.
    return float(mantissa * 10**exponent) if exponent >= 0 else mantissa / 10**-exponent


@dataclass(frozen=True)
class HeartRate:
    bpm: int
    contact: bool | None  # None: the sensor does not report contact
    energy_kj: int | None = None
    rr_s: tuple[float, ...] = field(default_factory=tuple)


def decode_heart_rate(data: bytes) -> HeartRate:
    """0x2A37 Heart Rate Measurement."""
    if len(data) < 2:
        raise DecodeError(f"heart rate: {len(data)} bytes, need at least 2", "truncated")
    flags = data[0]
    pos = 1
    if flags & 0x01:
        if len(data) < 3:
            raise DecodeError("heart rate: uint16 value flagged but only 1 byte", "truncated")
        bpm = data[1] | data[2] << 8
        pos = 3
    else:
        bpm = data[1]
        pos = 2
    contact = bool(flags & 0x02) if flags & 0x04 else None
    energy = None
    if flags & 0x08:
        if len(data) < pos + 2:
            raise DecodeError("heart rate: energy expended flagged but missing", "truncated")
        energy = data[pos] | data[pos + 1] << 8
        pos += 2
    rr: tuple[float, ...] = ()
    if flags & 0x10:
        rest = data[pos:]
        if not rest or len(rest) % 2:
            raise DecodeError(
                f"heart rate: RR intervals need pairs of bytes, got {len(rest)}", "truncated"
            )
        rr = tuple(v / 1024 for (v,) in struct.iter_unpack("<H", rest))
        pos = len(data)
    if pos != len(data):
        raise DecodeError(f"heart rate: {len(data) - pos} unexpected trailing bytes")
    return HeartRate(bpm, contact, energy, rr)


@dataclass(frozen=True)
class Plx:
    """SpO2 % and pulse rate bpm; None where the device sent a special value."""

    spo2_pct: float | None
    pulse_bpm: float | None
    specials: tuple[str, ...] = ()


def decode_plx_continuous(data: bytes) -> Plx:
    """0x2A5F PLX Continuous Measurement (only the mandatory SpO2PR-Normal pair is used)."""
    if len(data) < 5:
        raise DecodeError(f"PLX continuous: {len(data)} bytes, need at least 5", "truncated")
    flags = data[0]
    # Optional fields by flag: Fast(4), Slow(4), measurement status(2),
    # device+sensor status(3), pulse amplitude index(2).
    need = 5 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 2 * bool(flags & 4)
    need += 3 * bool(flags & 8) + 2 * bool(flags & 16)
    if len(data) < need:
        raise DecodeError(
            f"PLX continuous: flags 0x{flags:02X} need {need} bytes, got {len(data)}", "truncated"
        )
    values: list[float | None] = []
    specials: list[str] = []
    for off, what in ((1, "SpO2"), (3, "pulse rate")):
        try:
            values.append(sfloat(data[off] | data[off + 1] << 8, what))
        except NotANumber as exc:
            values.append(None)
            specials.append(f"{what}={exc.name}")
    return Plx(values[0], values[1], tuple(specials))


def decode_battery(data: bytes) -> int:
    """0x2A19 Battery Level: uint8 percent (0-100)."""
    if len(data) != 1:
        raise DecodeError(f"battery level: expected 1 byte, got {len(data)}")
    if data[0] > 100:
        raise DecodeError(f"battery level {data[0]} is over 100 %")
    return data[0]


def decode_temperature(data: bytes) -> float:
    """0x2A1C Temperature Measurement -> degrees Celsius (Fahrenheit converted)."""
    if len(data) < 5:
        raise DecodeError(f"temperature: {len(data)} bytes, need at least 5", "truncated")
    value = float32(int.from_bytes(data[1:5], "little"), "temperature")
    return (value - 32) * 5 / 9 if data[0] & 0x01 else value


def to_reading(uuid16: int, data: bytes) -> dict[str, Any]:
    """Contract wearable fields for one notification; DecodeError if none is usable."""
    reading: dict[str, Any] = {}
    if uuid16 == HEART_RATE:
        hr = decode_heart_rate(data)
        if hr.contact is False:  # strap/band not on the skin: the value means nothing
            raise DecodeError("heart rate sent without skin contact", "no_contact")
        reading["heart_rate_bpm"] = hr.bpm
    elif uuid16 == PLX_CONTINUOUS:
        plx = decode_plx_continuous(data)
        if plx.spo2_pct is not None:
            reading["spo2_pct"] = plx.spo2_pct
        if plx.pulse_bpm is not None:
            reading["heart_rate_bpm"] = plx.pulse_bpm
        if not reading:
            raise DecodeError(
                "PLX: no usable value (" + ", ".join(plx.specials) + ")", "not_a_number"
            )
    elif uuid16 == BATTERY_LEVEL:
        reading["battery_pct"] = decode_battery(data)
    elif uuid16 == TEMPERATURE:
        reading["skin_temp_c"] = decode_temperature(data)
    else:
        raise DecodeError(f"characteristic 0x{uuid16:04X} is not one we decode", "unsupported")
    for key, value in reading.items():
        if not math.isfinite(value):  # belt and braces: the contract has no NaN
            raise DecodeError(f"{key} is not finite", "not_a_number")
    return _in_range(reading)


_RANGES = {
    "heart_rate_bpm": (0, 300),
    "spo2_pct": (0, 100),
    "skin_temp_c": (-50, 100),
    "battery_pct": (0, 100),
}


def _in_range(reading: dict[str, Any]) -> dict[str, Any]:
    for key, value in reading.items():
        lo, hi = _RANGES[key]
        if not lo <= value <= hi:
            raise DecodeError(
                f"{key}={value} is outside the plausible range [{lo}, {hi}]", "out_of_range"
            )
    return reading
