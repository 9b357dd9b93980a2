"""ECHONET Lite frames for the low-voltage smart electric energy meter (0x028801).

Format 1 frames: EHD ``10 81``, TID(2), SEOJ(3), DEOJ(3), ESV, OPC, then OPC x
(EPC, PDC, EDT). Property layouts follow the ECHONET Device Object Detailed
Specifications (APPENDIX, "Low-voltage smart electric energy meter class"):

- 0xEA / 0xEB fixed-time cumulative energy (normal / reverse): year uint16, month, day,
  hour, minute, second, then uint32 (11 bytes); the meter's local time (JST).
- 0xE5 day of historical data 1: uint8 0..99 (0 = the meter's today); 0xE2 / 0xE4
  historical data 1 (normal / reverse): that day uint16, then 48 x uint32, the
  cumulative amounts at 00:00, 00:30, ... 23:30 of that day (194 bytes).
- 0xED day and time of historical data 2: year uint16, month, day, hour, minute, number
  of 30-minute segments 1..12 (7 bytes); 0xEC historical data 2: the same 6-byte time,
  the number, then per segment normal uint32 + reverse uint32, the first at that time
  and each next one 30 minutes earlier.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass
from typing import Any

from firmware_bridge.base import DecodeError

CONTROLLER = bytes.fromhex("05FF01")
METER = bytes.fromhex("028801")
GET, GET_RES, GET_SNA = 0x62, 0x72, 0x52
SETC, SET_RES, SETC_SNA = 0x61, 0x71, 0x51
INF, INFC, INFC_RES = 0x73, 0x74, 0x7A

E_COEFFICIENT, E_DIGITS, E_IMPORT, E_UNIT = 0xD3, 0xD7, 0xE0, 0xE1
E_EXPORT, E_POWER, E_CURRENT = 0xE3, 0xE7, 0xE8
E_HISTORY_IMPORT, E_HISTORY_EXPORT, E_HISTORY_DAY = 0xE2, 0xE4, 0xE5
E_FIXED_IMPORT, E_FIXED_EXPORT = 0xEA, 0xEB
E_HISTORY2, E_HISTORY2_AT = 0xEC, 0xED
HISTORY_SLOTS = 48
HISTORY2_MAX = 12
MAX_HISTORY_DAY = 99

#: 0xE1 unit code -> (multiplier, divisor) in kWh; a divisor keeps 0.1 exact.
UNIT_CODES: dict[int, tuple[int, int]] = {
    0x00: (1, 1),
    0x01: (1, 10),
    0x02: (1, 100),
    0x03: (1, 1000),
    0x04: (1, 10000),
    0x0A: (10, 1),
    0x0B: (100, 1),
    0x0C: (1000, 1),
    0x0D: (10000, 1),
}
# "No data", overflow and underflow codes of the APPENDIX's data types.
NO_DATA_U32 = {0xFFFFFFFE, 0xFFFFFFFF}
NO_DATA_S32 = {0x7FFFFFFE, 0x7FFFFFFF, -0x80000000}
NO_DATA_S16 = {0x7FFE, 0x7FFF, -0x8000}


@dataclass(frozen=True)
class Frame:
    tid: int
    seoj: bytes
    deoj: bytes
    esv: int
    props: tuple[tuple[int, bytes], ...]

    @property
    def not_possible(self) -> bool:
        """ESV 0x5x: the node could not serve (some of) the request."""
        return 0x50 <= self.esv <= 0x5F


def build_get(tid: int, epcs: list[int]) -> bytes:
    """A Get (0x62) from the controller to the meter for ``epcs`` (PDC 0 each)."""
    if not 0 <= tid <= 0xFFFF or not 1 <= len(epcs) <= 255:
        raise ValueError("tid must fit 2 bytes and 1-255 properties are allowed")
    body = b"".join(bytes([epc, 0]) for epc in epcs)
    return (
        b"\x10\x81" + struct.pack(">H", tid) + CONTROLLER + METER + bytes([GET, len(epcs)]) + body
    )


def build_setc(tid: int, props: list[tuple[int, bytes]]) -> bytes:
    """A SetC (0x61, response required) from the controller to the meter."""
    if not 0 <= tid <= 0xFFFF or not 1 <= len(props) <= 255:
        raise ValueError("tid must fit 2 bytes and 1-255 properties are allowed")
    return build_frame(tid, CONTROLLER, METER, SETC, props)


def build_frame(
    tid: int, seoj: bytes, deoj: bytes, esv: int, props: list[tuple[int, bytes]]
) -> bytes:
    """Any format-1 frame (the simulator uses it for Get_Res / Get_SNA)."""
    body = b"".join(bytes([epc, len(edt)]) + edt for epc, edt in props)
    return b"\x10\x81" + struct.pack(">H", tid) + seoj + deoj + bytes([esv, len(props)]) + body


def parse_frame(data: bytes) -> Frame:
    """Parse a format-1 ECHONET Lite frame; DecodeError says what is wrong."""
    if len(data) < 12:
        raise DecodeError(f"ECHONET Lite frame is {len(data)} bytes, need 12+", "truncated")
    if data[:2] != b"\x10\x81":
        raise DecodeError(f"EHD is {data[:2].hex()}, not 1081 (format 1)", "malformed")
    tid = int.from_bytes(data[2:4], "big")
    opc = data[11]
    pos, props = 12, []
    for i in range(opc):
        if pos + 2 > len(data):
            raise DecodeError(f"property {i + 1}/{opc} header missing", "truncated")
        epc, pdc = data[pos], data[pos + 1]
        if pos + 2 + pdc > len(data):
            raise DecodeError(f"EPC 0x{epc:02X} says PDC {pdc} but the frame ends", "truncated")
        props.append((epc, bytes(data[pos + 2 : pos + 2 + pdc])))
        pos += 2 + pdc
    if pos != len(data):
        raise DecodeError(f"{len(data) - pos} bytes after the last property", "malformed")
    return Frame(tid, bytes(data[4:7]), bytes(data[7:10]), data[10], tuple(props))


def _need(epc: int, edt: bytes, n: int) -> bytes:
    if len(edt) != n:
        raise DecodeError(f"EPC 0x{epc:02X} has PDC {len(edt)}, expected {n}", "malformed")
    return edt


def power_w(edt: bytes) -> int | None:
    """0xE7: signed int32 W (negative = reverse flow); None for no-data codes."""
    value = int.from_bytes(_need(E_POWER, edt, 4), "big", signed=True)
    return None if value in NO_DATA_S32 else value


def currents_a(edt: bytes) -> tuple[float | None, float | None]:
    """0xE8: R and T phase, signed int16 x 0.1 A each; None for no-data codes."""
    r, t = struct.unpack(">hh", _need(E_CURRENT, edt, 4))
    return (None if r in NO_DATA_S16 else r / 10, None if t in NO_DATA_S16 else t / 10)


def energy_raw(epc: int, edt: bytes, digits: int | None = None) -> int | None:
    """0xE0/0xE3: uint32 count in units of 0xE1 x 0xD3; checked against 0xD7 digits."""
    value = int.from_bytes(_need(epc, edt, 4), "big")
    if value in NO_DATA_U32:
        return None
    if digits is not None and value >= 10**digits:
        raise DecodeError(
            f"EPC 0x{epc:02X} = {value} has more than {digits} digits", "out_of_range"
        )
    return value


def unit_code(edt: bytes) -> tuple[int, int]:
    code = _need(E_UNIT, edt, 1)[0]
    if code not in UNIT_CODES:
        raise DecodeError(f"0xE1 unit code 0x{code:02X} is not in the table", "malformed")
    return UNIT_CODES[code]


def coefficient(edt: bytes) -> int:
    value = int.from_bytes(_need(E_COEFFICIENT, edt, 4), "big")
    if not 1 <= value <= 999999:
        raise DecodeError(f"0xD3 coefficient {value} outside 1-999999", "out_of_range")
    return value


def digits(edt: bytes) -> int:
    value = _need(E_DIGITS, edt, 1)[0]
    if not 1 <= value <= 8:
        raise DecodeError(f"0xD7 effective digits {value} outside 1-8", "out_of_range")
    return value


def kwh(raw: int, unit: tuple[int, int], coeff: int) -> float:
    """Counter -> kWh, dividing last so 0.1 kWh units give the nearest double."""
    mul, div = unit
    return raw * coeff * mul / div


@dataclass
class Scale:
    """Per-session energy scaling read once from 0xE1 / 0xD3 / 0xD7."""

    unit: tuple[int, int] = (1, 1)
    coeff: int = 1
    digits: int | None = None


def to_reading(frame: Frame, scale: Scale) -> dict[str, Any]:
    """Contract energy_meter fields from a Get_Res / Get_SNA / INF of the meter.

    Properties with PDC 0 (refused in a Get_SNA) or no-data codes are left out;
    ``current_a`` is R + T (the total of a single-phase three-wire supply).
    """
    if frame.seoj[:2] != METER[:2]:
        raise DecodeError(f"SEOJ {frame.seoj.hex()} is not a smart meter (0288xx)", "malformed")
    out: dict[str, Any] = {}
    for epc, edt in frame.props:
        if not edt:
            continue  # refused (Get_SNA): the meter has no value for it
        if epc == E_POWER and (p := power_w(edt)) is not None:
            out["power_w"] = float(p)
        elif epc == E_CURRENT:
            r, t = currents_a(edt)
            if r is not None or t is not None:
                out["current_a"] = round((r or 0.0) + (t or 0.0), 1)
        elif epc in (E_IMPORT, E_EXPORT):
            raw = energy_raw(epc, edt, scale.digits)
            if raw is not None:
                name = "energy_import_kwh" if epc == E_IMPORT else "energy_export_kwh"
                out[name] = kwh(raw, scale.unit, scale.coeff)
    return out


def update_scale(frame: Frame, scale: Scale) -> None:
    """Take 0xE1 / 0xD3 / 0xD7 from a reply; a refused 0xD3 means coefficient 1."""
    for epc, edt in frame.props:
        if epc == E_UNIT and edt:
            scale.unit = unit_code(edt)
        elif epc == E_COEFFICIENT:
            scale.coeff = coefficient(edt) if edt else 1
        elif epc == E_DIGITS and edt:
            scale.digits = digits(edt)


# -- fixed-time values and their history ------------------------------------------------

#: The meter's clock: Japanese smart meters keep Japan Standard Time.
METER_TZ = dt.timezone(dt.timedelta(hours=9), "JST")
HALF_HOUR_MS = 30 * 60 * 1000


def _meter_time(raw: bytes, epc: int, seconds: bool = True) -> dt.datetime:
    year = int.from_bytes(raw[0:2], "big")
    month, day, hour, minute = raw[2], raw[3], raw[4], raw[5]
    second = raw[6] if seconds else 0
    try:
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=METER_TZ)
    except ValueError:
        raise DecodeError(f"EPC 0x{epc:02X} time {raw.hex()} is not a date", "malformed") from None


def epoch_ms(when: dt.datetime) -> int:
    return int(when.timestamp()) * 1000


def fixed_time(epc: int, edt: bytes, digits: int | None = None) -> tuple[int, int | None]:
    """0xEA / 0xEB: (boundary in epoch ms, raw count or None for no data).

    The time must be on a :00 or :30 boundary (seconds 0), as the meter stamps it."""
    raw = _need(epc, edt, 11)
    when = _meter_time(raw, epc)
    if when.minute not in (0, 30) or when.second:
        raise DecodeError(f"EPC 0x{epc:02X} time {when:%H:%M:%S} is not :00 or :30", "malformed")
    return epoch_ms(when), energy_raw(epc, raw[7:11], digits)


def history_day_edt(day: int) -> bytes:
    """0xE5 EDT for ``day`` days before the meter's today."""
    if not 0 <= day <= MAX_HISTORY_DAY:
        raise ValueError(f"history day {day} is outside 0-{MAX_HISTORY_DAY}")
    return bytes([day])


def history1(epc: int, edt: bytes, digits: int | None = None) -> tuple[int, list[int | None]]:
    """0xE2 / 0xE4: (day, 48 raw counts at 00:00..23:30, None where the meter has none)."""
    raw = _need(epc, edt, 2 + 4 * HISTORY_SLOTS)
    day = int.from_bytes(raw[0:2], "big")
    if day > MAX_HISTORY_DAY:
        raise DecodeError(f"EPC 0x{epc:02X} day {day} is outside 0-99", "malformed")
    values = [energy_raw(epc, raw[2 + 4 * i : 6 + 4 * i], digits) for i in range(HISTORY_SLOTS)]
    return day, values


def history2_edt(newest: dt.datetime, count: int) -> bytes:
    """0xED EDT: the newest half-hour to read (meter time) and how many segments."""
    if not 1 <= count <= HISTORY2_MAX or newest.minute not in (0, 30):
        raise ValueError("0xED needs 1-12 segments and a :00/:30 time")
    local = newest.astimezone(METER_TZ)
    return struct.pack(
        ">HBBBBB", local.year, local.month, local.day, local.hour, local.minute, count
    )


def history2(edt: bytes, digits: int | None = None) -> list[tuple[int, int | None, int | None]]:
    """0xEC: [(boundary epoch ms, normal raw or None, reverse raw or None)], newest first."""
    if len(edt) < 7:
        raise DecodeError(f"EPC 0xEC has PDC {len(edt)}, need 7+", "malformed")
    count = edt[6]
    if not 1 <= count <= HISTORY2_MAX or len(edt) != 7 + 8 * count:
        raise DecodeError(
            f"EPC 0xEC says {count} segments in PDC {len(edt)} (7 + 8 per segment, 1-12)",
            "malformed",
        )
    newest = _meter_time(edt[0:6] + b"\x00", E_HISTORY2, seconds=False)
    if newest.minute not in (0, 30):
        raise DecodeError(f"EPC 0xEC time {newest:%H:%M} is not :00 or :30", "malformed")
    out = []
    for i in range(count):
        seg = edt[7 + 8 * i : 15 + 8 * i]
        imp = energy_raw(E_HISTORY2, seg[0:4], digits)
        exp = energy_raw(E_HISTORY2, seg[4:8], digits)
        out.append((epoch_ms(newest) - i * HALF_HOUR_MS, imp, exp))
    return out
