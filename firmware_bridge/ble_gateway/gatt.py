"""Decoders for the GATT characteristics care wearables notify.

Byte layouts follow the Bluetooth GATT Specification Supplement (Heart Rate
Measurement 0x2A37 s.3.113, PLX Spot-Check Measurement 0x2A5E and PLX Continuous
Measurement 0x2A5F with their Measurement Status and Device and Sensor Status fields,
Date Time, Battery Level 0x2A19, Temperature Measurement 0x2A1C) and IEEE 11073-20601
for SFLOAT/FLOAT.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from firmware_bridge.base import DecodeError

HEART_RATE = 0x2A37
PLX_CONTINUOUS = 0x2A5F
PLX_SPOT_CHECK = 0x2A5E
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


#: PLX Measurement Status (16 bits) -> reject reason, for the flags that make a value
#: unfit for care decisions. The others (measurement ongoing, early estimated,
#: validated, fully qualified, from storage) describe a usable value.
MEASUREMENT_STATUS_REJECT = {
    15: "plx_invalid",  # Invalid Measurement Detected
    13: "plx_unavailable",  # Measurement Unavailable
    14: "plx_questionable",  # Questionable Measurement Detected
    12: "plx_calibrating",  # Calibration Ongoing
    10: "plx_demonstration",  # Data for Demonstration
    11: "plx_testing",  # Data for Testing
}
#: PLX Device and Sensor Status (24 bits) -> reject reason: the sensor is not measuring
#: the resident. Signal-quality advisories (low perfusion, poor or erratic signal, ...)
#: are kept: the device still reports a value it stands behind.
SENSOR_STATUS_REJECT = {
    15: "plx_sensor_disconnected",  # Sensor Disconnected
    11: "plx_sensor_unconnected",  # Sensor Unconnected to User
    14: "plx_sensor_malfunction",  # Sensor Malfunctioning
    1: "plx_equipment_malfunction",  # Equipment Malfunction Detected
    13: "plx_sensor_displaced",  # Sensor Displaced
    12: "plx_unknown_sensor",  # Unknown Sensor Connected
}


@dataclass(frozen=True)
class Plx:
    """SpO2 % and pulse rate bpm; None where the device sent a special value.

    ``measurement_status`` / ``sensor_status`` are None when the device did not send
    the field; ``t_ms`` is the Spot-Check timestamp (None when absent or clock not set).
    """

    spo2_pct: float | None
    pulse_bpm: float | None
    specials: tuple[str, ...] = ()
    measurement_status: int | None = None
    sensor_status: int | None = None
    t_ms: int | None = None


def _spo2_pr(data: bytes, off: int) -> tuple[list[float | None], list[str]]:
    values: list[float | None] = []
    specials: list[str] = []
    for o, what in ((off, "SpO2"), (off + 2, "pulse rate")):
        try:
            values.append(sfloat(data[o] | data[o + 1] << 8, what))
        except NotANumber as exc:
            values.append(None)
            specials.append(f"{what}={exc.name}")
    return values, specials


def decode_plx_continuous(data: bytes) -> Plx:
    """0x2A5F PLX Continuous Measurement: SpO2PR-Normal and both status fields."""
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
    values, specials = _spo2_pr(data, 1)
    pos = 5 + 4 * bool(flags & 1) + 4 * bool(flags & 2)
    ms = ss = None
    if flags & 4:
        ms = int.from_bytes(data[pos : pos + 2], "little")
        pos += 2
    if flags & 8:
        ss = int.from_bytes(data[pos : pos + 3], "little")
    return Plx(values[0], values[1], tuple(specials), ms, ss)


def decode_plx_spot_check(data: bytes, tz: dt.tzinfo | None = None) -> Plx:
    """0x2A5E PLX Spot-Check Measurement: SpO2PR-Spot-Check, Timestamp (Date Time, the
    device's local time in ``tz``, default Asia/Tokyo), both status fields."""
    if len(data) < 5:
        raise DecodeError(f"PLX spot-check: {len(data)} bytes, need at least 5", "truncated")
    flags = data[0]
    # Optional fields by flag: timestamp(7), measurement status(2), device+sensor
    # status(3), pulse amplitude index(2); bit 4: the device clock is not set.
    need = 5 + 7 * bool(flags & 1) + 2 * bool(flags & 2) + 3 * bool(flags & 4)
    need += 2 * bool(flags & 8)
    if len(data) < need:
        raise DecodeError(
            f"PLX spot-check: flags 0x{flags:02X} need {need} bytes, got {len(data)}", "truncated"
        )
    values, specials = _spo2_pr(data, 1)
    pos = 5
    t_ms = None
    if flags & 1:
        t_ms = _date_time(data[pos : pos + 7], tz or DEVICE_TZ, clock_set=not flags & 0x10)
        pos += 7
    ms = ss = None
    if flags & 2:
        ms = int.from_bytes(data[pos : pos + 2], "little")
        pos += 2
    if flags & 4:
        ss = int.from_bytes(data[pos : pos + 3], "little")
    return Plx(values[0], values[1], tuple(specials), ms, ss, t_ms)


#: Date Time carries no zone; the care devices are set to the city's local time.
DEVICE_TZ = ZoneInfo("Asia/Tokyo")


def _date_time(raw: bytes, tz: dt.tzinfo, clock_set: bool) -> int | None:
    """Date Time (year uint16, month, day, hours, minutes, seconds) -> epoch ms, or None
    when the device says its clock is not set or leaves the date unknown (0)."""
    year = int.from_bytes(raw[0:2], "little")
    month, day, hours, minutes, seconds = raw[2:7]
    if not clock_set or year == 0 or month == 0 or day == 0:
        return None
    try:
        local = dt.datetime(year, month, day, hours, minutes, seconds, tzinfo=tz)
    except ValueError as exc:
        raise DecodeError(f"PLX timestamp {raw.hex()} is not a date: {exc}") from None
    return int(local.timestamp()) * 1000


def _refuse_status(plx: Plx) -> None:
    """Raise with the first flagged condition's reason; the message names them all."""
    flagged = []
    for status, table, what in (
        (plx.measurement_status, MEASUREMENT_STATUS_REJECT, "measurement status"),
        (plx.sensor_status, SENSOR_STATUS_REJECT, "device and sensor status"),
    ):
        if status is not None:
            flagged += [(reason, what, bit) for bit, reason in table.items() if status >> bit & 1]
    if flagged:
        names = ", ".join(f"{what} bit {bit} ({reason})" for reason, what, bit in flagged)
        raise DecodeError(f"PLX value flagged by the device: {names}", flagged[0][0])


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


def to_reading(uuid16: int, data: bytes, tz: dt.tzinfo | None = None) -> dict[str, Any]:
    """Contract wearable fields for one notification; DecodeError if none is usable.

    ``tz`` is the zone of the device's clock (PLX Spot-Check timestamps)."""
    reading: dict[str, Any] = {}
    t_ms: int | None = None
    if uuid16 == HEART_RATE:
        hr = decode_heart_rate(data)
        if hr.contact is False:  # strap/band not on the skin: the value means nothing
            raise DecodeError("heart rate sent without skin contact", "no_contact")
        reading["heart_rate_bpm"] = hr.bpm
    elif uuid16 in (PLX_CONTINUOUS, PLX_SPOT_CHECK):
        if uuid16 == PLX_CONTINUOUS:
            plx = decode_plx_continuous(data)
        else:
            plx = decode_plx_spot_check(data, tz)
        _refuse_status(plx)
        t_ms = plx.t_ms
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
    reading = _in_range(reading)
    if t_ms is not None:
        reading["t"] = t_ms  # the device's measurement time (a stored spot-check is old)
    return reading


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
