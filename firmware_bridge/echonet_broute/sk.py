"""Lines of the Wi-SUN module's SK command interface (BP35A1, BP35C0/C2, RL7023)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge.base import DecodeError

ECHONET_PORT = 0x0E1A


@dataclass(frozen=True)
class Erxudp:
    sender: str
    dest: str
    rport: int
    lport: int
    sender_lla: str
    secured: int
    side: int | None
    lqi: int | None
    data: bytes


def _hex(token: str, what: str) -> int:
    try:
        return int(token, 16)
    except ValueError:
        raise DecodeError(f"ERXUDP {what} {token!r} is not hex", "malformed") from None


def parse_erxudp(line: str) -> Erxudp:
    """Both layouts, told apart by the token count:

    * 9  BP35A1/RL7023: ERXUDP sender dest rport lport lla secured datalen data
    * 10 BP35C0 (SA2=0): ... lla secured side datalen data
    * 11 BP35C0 (SA2=1): ... lla lqi secured side datalen data
    """
    parts = line.split()
    if not parts or parts[0] != "ERXUDP":
        raise DecodeError(f"not an ERXUDP line: {line[:30]!r}", "noise")
    n = len(parts)
    if n not in (9, 10, 11):
        raise DecodeError(f"ERXUDP has {n} tokens, expected 9, 10 or 11", "truncated")
    sender, dest, rport, lport, lla = parts[1:6]
    lqi = _hex(parts[6], "LQI") if n == 11 else None
    secured = _hex(parts[-4 if n >= 10 else -3], "secured")
    side = _hex(parts[-3], "side") if n >= 10 else None
    datalen, data_hex = _hex(parts[-2], "length"), parts[-1]
    if len(data_hex) != 2 * datalen:
        raise DecodeError(
            f"ERXUDP says {datalen} bytes but carries {len(data_hex) // 2}", "bad_length"
        )
    try:
        data = bytes.fromhex(data_hex)
    except ValueError:
        raise DecodeError(
            "ERXUDP data is not hex (is the module in ASCII mode, WOPT 01?)", "malformed"
        ) from None
    return Erxudp(
        sender, dest, _hex(rport, "rport"), _hex(lport, "lport"), lla, secured, side, lqi, data
    )


def parse_epandesc(lines: list[str]) -> dict[str, str]:
    """The indented ``Key:Value`` lines after EPANDESC -> dict."""
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.strip().partition(":")
        if sep:
            out[key.strip()] = value.strip()
    for need in ("Channel", "Pan ID", "Addr"):
        if need not in out:
            raise DecodeError(f"EPANDESC without {need!r}", "truncated")
    return out
