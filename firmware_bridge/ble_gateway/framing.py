"""Line framing of the serial BLE gateway (our own gateway firmware's format).

One notification per line, ASCII::

    <MAC> <UUID16> <hex payload>*<checksum>\\r\\n
    AA:BB:CC:DD:EE:FF 2A37 1648*46

``MAC`` is the wearable's address (upper-case, colon-separated), ``UUID16`` the
characteristic as 4 hex digits, the payload is the raw notification value in hex (may
be empty), and ``checksum`` is the XOR of every byte before ``*`` as two upper-case hex
digits (as in NMEA 0183). Lines are at most 255 bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware_bridge.base import DecodeError

MAX_LINE = 255
_LINE = re.compile(
    rb"((?:[0-9A-F]{2}:){5}[0-9A-F]{2}) ([0-9A-F]{4}) ((?:[0-9A-Fa-f]{2})*)\*([0-9A-F]{2})\Z"
)


@dataclass(frozen=True)
class Notification:
    mac: str  # "AABBCCDDEEFF": the colon-less form used as config key and topic suffix
    uuid16: int
    payload: bytes


def xor_checksum(data: bytes) -> int:
    value = 0
    for b in data:
        value ^= b
    return value


def encode_line(mac: str, uuid16: int, payload: bytes) -> bytes:
    """The framed line for one notification (used by the simulator and gateway tests)."""
    pretty = ":".join(normalize_mac(mac)[i : i + 2] for i in range(0, 12, 2))
    body = f"{pretty} {uuid16:04X} {payload.hex().upper()}".encode("ascii")
    return body + b"*%02X\r\n" % xor_checksum(body)


def decode_line(raw: bytes) -> Notification:
    """Parse one line; DecodeError with reason noise/truncated/bad_checksum/too_long."""
    line = raw.rstrip(b"\r\n")
    if len(raw) > MAX_LINE:
        raise DecodeError(f"line is {len(raw)} bytes, over {MAX_LINE}", "too_long")
    m = _LINE.match(line)
    if m is None:
        if b"*" not in line and re.match(rb"(?:[0-9A-F]{2}:){5}[0-9A-F]{2} ", line):
            raise DecodeError(f"line without '*checksum' (cut short?): {line[:40]!r}", "truncated")
        raise DecodeError(f"not a '<MAC> <UUID16> <hex>*<cs>' line: {line[:40]!r}", "noise")
    star = line.rindex(b"*")
    want, got = xor_checksum(line[:star]), int(m.group(4), 16)
    if want != got:
        raise DecodeError(f"checksum {got:02X} != computed {want:02X}", "bad_checksum")
    return Notification(
        m.group(1).decode().replace(":", ""),
        int(m.group(2), 16),
        bytes.fromhex(m.group(3).decode()),
    )


def normalize_mac(mac: str) -> str:
    """``aa:bb:..`` / ``AA-BB-..`` / ``AABB..`` -> ``AABBCCDDEEFF``; ValueError otherwise."""
    flat = mac.replace(":", "").replace("-", "").upper()
    if not re.fullmatch(r"[0-9A-F]{12}", flat):
        raise ValueError(f"{mac!r} is not a Bluetooth MAC address (12 hex digits)")
    return flat
