"""ECHONET Lite frames for the low-voltage smart electric energy meter (0x028801).

Format 1 frames: EHD ``10 81``, TID(2), SEOJ(3), DEOJ(3), ESV, OPC, then OPC x
(EPC, PDC, EDT). Property layouts follow the ECHONET Device Object Detailed
Specifications (APPENDIX, "Low-voltage smart electric energy meter class").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from firmware_bridge.base import DecodeError

CONTROLLER = bytes.fromhex("05FF01")
METER = bytes.fromhex("028801")
GET, GET_RES, GET_SNA = 0x62, 0x72, 0x52
INF, INFC, INFC_RES = 0x73, 0x74, 0x7A

E_COEFFICIENT, E_DIGITS, E_IMPORT, E_UNIT = 0xD3, 0xD7, 0xE0, 0xE1
E_EXPORT, E_POWER, E_CURRENT = 0xE3, 0xE7, 0xE8

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
