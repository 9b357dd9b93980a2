"""NMEA GPS receiver on a serial port -> contract ``bus`` readings."""

from __future__ import annotations

import time
from typing import Any

from firmware_bridge.base import DecodeError
from firmware_bridge.config import SourceConfig
from firmware_bridge.nmea_gps.decoder import Fix, decode_sentence
from firmware_bridge.serialport import LinePortSource

# A GGA is redundant while RMC sentences arrive (RMC has speed, track and the date);
# GGA-only receivers still produce readings once no RMC was seen for this long.
RMC_FRESH_S = 5.0


class NmeaSource(LinePortSource):
    """Reads RMC/GGA sentences; one reading per fix, ``t`` from the GPS clock (RMC)."""

    kind = "bus"

    def __init__(
        self,
        port: str,
        route_id: str,
        baudrate: int = 9600,
        *,
        trip_id: str | None = None,
        read_timeout_s: float = 2.0,
        use_gps_time: bool = True,
    ) -> None:
        super().__init__(port, baudrate, max_line=256)
        self.route_id = route_id
        self.trip_id = trip_id
        self.read_timeout_s = read_timeout_s
        self.use_gps_time = use_gps_time
        self._last_rmc = -1e9

    @classmethod
    def from_config(cls, cfg: SourceConfig) -> NmeaSource:
        trip = cfg.raw.get("trip_id")
        if trip is not None and (not isinstance(trip, str) or not trip.isprintable()):
            raise cfg.error(f"trip_id must be a printable string, got {trip!r}")
        gps_time = cfg.raw.get("use_gps_time", True)
        if not isinstance(gps_time, bool):
            raise cfg.error(f"use_gps_time must be true or false, got {gps_time!r}")
        return cls(
            cfg.str_("port", hint='add port = "/dev/serial/by-id/..."'),
            cfg.id_("route_id"),
            cfg.int_("baudrate", 9600, lo=300, hi=4_000_000),
            trip_id=trip,
            read_timeout_s=cfg.float_("interval_s", 2.0, lo=0.05, hi=3600),
            use_gps_time=gps_time,
        )

    def read(self) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self.read_timeout_s
        while (left := deadline - time.monotonic()) > 0:
            line = self._port.readline(left)
            if line is None:
                break
            reading = self._handle_line(line)
            if reading is not None:
                return [reading]
        return []

    def _handle_line(self, line: bytes) -> dict[str, Any] | None:
        if not line.strip():
            return None
        # Noise or a cut-off sentence can run into the next "$": reject the front part
        # and still decode the sentence that follows it.
        start = line.rfind(b"$")
        if start > 0:
            head = line[:start]
            self.reject("truncated" if head.startswith(b"$") else "noise", head)
            line = line[start:]
        try:
            fix = decode_sentence(line)
        except DecodeError as exc:
            self.reject(exc.reason, line)
            return None
        return None if fix is None else self._reading(fix)

    def _reading(self, fix: Fix) -> dict[str, Any] | None:
        now = time.monotonic()
        if fix.sentence == "RMC":
            self._last_rmc = now
        elif now - self._last_rmc < RMC_FRESH_S:
            return None
        reading: dict[str, Any] = {"lat": fix.lat, "lon": fix.lon, "route_id": self.route_id}
        if fix.speed_kmh is not None:
            reading["speed_kmh"] = fix.speed_kmh
        if fix.heading_deg is not None:
            reading["heading_deg"] = fix.heading_deg
        if self.trip_id is not None:
            reading["trip_id"] = self.trip_id
        if self.use_gps_time and fix.t_ms is not None:
            reading["t"] = fix.t_ms
        return reading
