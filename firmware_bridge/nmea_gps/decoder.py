"""NMEA 0183 RMC / GGA sentences -> position fixes, via pynmea2.

Any talker (GP, GN, GL, GA, BD, QZ, ...) is accepted. The checksum is mandatory.
Sentences without a fix (RMC status ``V`` with mode ``N`` or none, GGA quality 0, GNS
mode all ``N``) and other sentence types give ``None``: they are normal traffic.

A position the receiver itself marks as not measured is refused with its own reason
(:class:`DecodeError`), as gpsd refuses it: GGA quality 6 / mode ``E`` (dead reckoning),
7 / ``M`` (manual input), 8 / ``S`` (simulator), a fix from 0 satellites, and an RMC
that says ``A`` (valid) with mode ``N`` (no fix). Mode indicators (NMEA 2.3+) A, D, F,
R and P are fixes; sentences from receivers older than 2.3 have none and are trusted.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pynmea2

from firmware_bridge.base import DecodeError

KNOT_KMH = 1.852
# The standard says 82 characters including "$" and CRLF; some receivers exceed it a
# little, so accept up to 128 and reject longer lines as noise.
MAX_SENTENCE = 128


@dataclass(frozen=True)
class Fix:
    """One decoded position. ``t_ms`` only from RMC (it alone carries the date)."""

    sentence: str  # "RMC", "GGA" or "GNS"
    lat: float
    lon: float
    speed_kmh: float | None = None
    heading_deg: float | None = None
    t_ms: int | None = None


def decode_sentence(raw: bytes) -> Fix | None:
    """Decode one sentence (with or without CRLF). Raises DecodeError with a reason."""
    text_b = raw.strip(b"\r\n ")
    if len(text_b) > MAX_SENTENCE:
        raise DecodeError(f"sentence is {len(text_b)} bytes, over {MAX_SENTENCE}", "too_long")
    if not text_b.startswith(b"$"):
        raise DecodeError(f"sentence does not start with '$': {text_b[:20]!r}", "noise")
    try:
        text = text_b.decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError("sentence has non-ASCII bytes (line noise)", "noise") from None
    if not text.isprintable():
        raise DecodeError("sentence has control characters (line noise)", "noise")
    if "*" not in text:
        raise DecodeError("sentence has no '*hh' checksum (cut short?)", "truncated")
    try:
        msg = pynmea2.parse(text, check=True)
    except pynmea2.ChecksumError as exc:
        raise DecodeError(f"NMEA checksum mismatch: {exc.args[0]}", "bad_checksum") from None
    except pynmea2.SentenceTypeError:
        return None  # a sentence type pynmea2 does not know: not ours to decode
    except pynmea2.ParseError as exc:
        raise DecodeError(f"not an NMEA sentence: {exc.args[0]}", "malformed") from None
    except Exception as exc:  # noqa: BLE001 - pynmea2 raises assorted errors on junk
        raise DecodeError(f"NMEA parse failed: {exc!r}", "malformed") from None
    try:
        if isinstance(msg, pynmea2.RMC):
            return _rmc(msg)
        if isinstance(msg, pynmea2.GGA):
            return _gga(msg)
        if isinstance(msg, pynmea2.GNS):
            return _gns(msg)
    except DecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed fields surface as various errors
        raise DecodeError(f"{msg.sentence_type} has a malformed field: {exc!r}") from None
    return None


def _position(msg: pynmea2.NMEASentence) -> tuple[float, float]:
    if not msg.lat or not msg.lon:
        raise DecodeError(f"{msg.sentence_type} claims a fix but has no position")
    if msg.lat_dir not in ("N", "S") or msg.lon_dir not in ("E", "W"):
        raise DecodeError(f"{msg.sentence_type} hemisphere {msg.lat_dir!r}/{msg.lon_dir!r}")
    lat, lon = float(msg.latitude), float(msg.longitude)
    if not (math.isfinite(lat) and -90 <= lat <= 90 and math.isfinite(lon) and -180 <= lon <= 180):
        raise DecodeError(f"{msg.sentence_type} position {lat},{lon} is out of range")
    return lat, lon


#: NMEA 2.3+ mode indicator (RMC, GNS, GLL, VTG) and GGA quality -> reject reason.
MODE_FIX = frozenset("ADFRP")  # autonomous, differential, RTK float, RTK fixed, precise
MODE_REFUSED = {"E": "dead_reckoning", "M": "manual_input", "S": "simulated"}
GGA_REFUSED = {6: "dead_reckoning", 7: "manual_input", 8: "simulated"}


def _refuse_mode(kind: str, mode: str) -> None:
    """Raise for a mode indicator that marks the position as not measured."""
    if mode in MODE_REFUSED:
        raise DecodeError(f"{kind} mode {mode!r}: not a measured fix", MODE_REFUSED[mode])
    if mode and mode not in MODE_FIX and mode != "N":
        raise DecodeError(f"{kind} mode indicator {mode!r} is not an NMEA mode", "malformed")


def _no_satellites(kind: str, num_sats: str | None) -> None:
    # An empty field means "not reported" (trusted); an explicit 0 is no fix at all.
    if num_sats not in (None, "") and int(num_sats) == 0:
        raise DecodeError(f"{kind} claims a fix from 0 satellites", "no_satellites")


def _rmc(msg: pynmea2.RMC) -> Fix | None:
    mode = (getattr(msg, "mode_indicator", None) or "").strip()
    _refuse_mode("RMC", mode)
    if msg.status != "A":
        return None
    if mode == "N":
        raise DecodeError("RMC status A (valid) with mode N (no fix)", "no_fix_mode")
    lat, lon = _position(msg)
    speed = None
    if msg.spd_over_grnd not in (None, ""):
        speed = float(msg.spd_over_grnd) * KNOT_KMH
        if not (math.isfinite(speed) and 0 <= speed <= 400):
            raise DecodeError(f"RMC speed {msg.spd_over_grnd!r} kn is not plausible")
    heading = None
    if msg.true_course not in (None, ""):
        heading = float(msg.true_course)
        if not (math.isfinite(heading) and 0 <= heading <= 360):
            raise DecodeError(f"RMC track {msg.true_course!r} is not in [0, 360]")
    t_ms = None
    if msg.datestamp and msg.timestamp:
        stamp = dt.datetime.combine(msg.datestamp, msg.timestamp).replace(tzinfo=dt.UTC)
        t_ms = round(stamp.timestamp() * 1000)
    return Fix("RMC", lat, lon, speed, heading, t_ms)


def _gga(msg: pynmea2.GGA) -> Fix | None:
    if not msg.gps_qual or int(msg.gps_qual) == 0:
        return None
    quality = int(msg.gps_qual)
    if quality in GGA_REFUSED:
        raise DecodeError(f"GGA quality {quality}: not a measured fix", GGA_REFUSED[quality])
    if not 1 <= quality <= 5:
        raise DecodeError(f"GGA quality {quality} is not an NMEA fix quality", "malformed")
    _no_satellites("GGA", msg.num_sats)
    lat, lon = _position(msg)
    return Fix("GGA", lat, lon)


def _gns(msg: pynmea2.GNS) -> Fix | None:
    # One mode character per constellation (GPS, GLONASS, Galileo, BeiDou, ...): a fix
    # when any constellation has one; otherwise the first refused mode names the reason.
    modes = (msg.mode_indicator or "").strip()
    if not modes or set(modes) == {"N"}:
        return None
    if not any(m in MODE_FIX for m in modes):
        for m in modes:
            _refuse_mode("GNS", m)
        return None
    _no_satellites("GNS", msg.num_sats)
    lat, lon = _position(msg)
    return Fix("GNS", lat, lon)


def checksum(body: str) -> str:
    """The two-hex-digit XOR checksum of the characters between ``$`` and ``*``."""
    value = 0
    for ch in body.encode("ascii"):
        value ^= ch
    return f"{value:02X}"
