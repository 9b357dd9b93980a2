"""A GPS receiver on a pty: RMC + GGA (+ a GSV to be skipped) every ``period_s``.

``sim.sent`` holds, per intact RMC, the exact reading the source must produce
(``lat``, ``lon``, ``speed_kmh``, ``heading_deg``, ``t``), computed from the printed
digits the way the decoder reads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.nmea_gps.decoder import KNOT_KMH, checksum
from firmware_bridge.pty import DeviceModel, Frame, PtySimulator


def sentence(body: str) -> bytes:
    """``$<body>*hh\\r\\n`` with the correct checksum."""
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def _dm(value: float, width: int) -> tuple[str, float]:
    """Degrees-minutes text (ddmm.mmmm / dddmm.mmmm) and the value it denotes."""
    deg = int(abs(value))
    minutes = f"{(abs(value) - deg) * 60:07.4f}"
    if minutes.startswith("60"):  # rounding reached a full degree
        deg, minutes = deg + 1, "00.0000"
    exact = float(deg) + float(minutes) / 60
    return f"{deg:0{width}d}{minutes}", (-exact if value < 0 else exact)


@dataclass
class NmeaModel(DeviceModel):
    """Bus driving a straight line from ``start`` at ``speed_kn`` on ``track_deg``."""

    period_s: float = 0.2
    talker: str = "GN"
    start: tuple[float, float] = (35.681236, 139.767125)  # Tokyo Station
    speed_kn: float = 12.3
    track_deg: float = 84.4
    no_fix_epochs: int = 0  # first epochs without a fix (RMC V / GGA 0)
    #: first epochs with a position that is not measured, as receivers send it:
    #: "simulated" (Garmin simulator mode: RMC V/S, GGA 8) or "dead_reckoning"
    #: (sky lost: RMC V/E, GGA 6 with 0 satellites)
    unmeasured_epochs: int = 0
    unmeasured: str = "simulated"
    _next: float = 0.0
    _epoch: int = 0
    _pos: list[float] = field(default_factory=list)

    def tick(self, now: float) -> list[Frame]:
        if now < self._next:
            return []
        self._next = now + self.period_s
        if not self._pos:
            self._pos = list(self.start)
        self._epoch += 1
        self._pos[0] += 0.00003
        self._pos[1] += 0.00011
        no_fix = self._epoch <= self.no_fix_epochs
        unmeasured = self.no_fix_epochs < self._epoch <= self.no_fix_epochs + self.unmeasured_epochs
        return self.epoch(time.time(), no_fix, self.unmeasured if unmeasured else None)

    def epoch(self, wall: float, no_fix: bool, unmeasured: str | None = None) -> list[Frame]:
        """The sentences of one fix epoch at UTC ``wall``."""
        cs = int(wall * 100)
        hms = time.strftime("%H%M%S", time.gmtime(cs // 100)) + f".{cs % 100:02d}"
        dmy = time.strftime("%d%m%y", time.gmtime(cs // 100))
        tk = self.talker
        if no_fix:
            return [
                Frame(sentence(f"{tk}RMC,{hms},V,,,,,,,{dmy},,,N")),
                Frame(sentence(f"{tk}GGA,{hms},,,,,0,00,99.99,,,,,,")),
            ]
        lat_s, lat = _dm(self._pos[0], 2)
        lon_s, lon = _dm(self._pos[1], 3)
        ns = "N" if self._pos[0] >= 0 else "S"
        ew = "E" if self._pos[1] >= 0 else "W"
        spd, trk = f"{self.speed_kn:.1f}", f"{self.track_deg:.1f}"
        truth: dict[str, Any] = {
            "lat": lat,
            "lon": lon,
            "speed_kmh": float(spd) * KNOT_KMH,
            "heading_deg": float(trk),
            "t": cs * 10,
        }
        rmc = f"{tk}RMC,{hms},A,{lat_s},{ns},{lon_s},{ew},{spd},{trk},{dmy},,,A"
        gga = f"{tk}GGA,{hms},{lat_s},{ns},{lon_s},{ew},1,08,0.9,40.0,M,39.5,M,,"
        gsv = "GPGSV,1,1,01,05,45,120,40"
        if unmeasured is not None:  # no truth: the source must refuse both sentences
            mode, qual, sats = {"simulated": ("S", 8, "10"), "dead_reckoning": ("E", 6, "00")}[
                unmeasured
            ]
            rmc = f"{tk}RMC,{hms},V,{lat_s},{ns},{lon_s},{ew},{spd},{trk},{dmy},,,{mode}"
            gga = f"{tk}GGA,{hms},{lat_s},{ns},{lon_s},{ew},{qual},{sats},50.0,40.0,M,39.5,M,,"
            return [Frame(sentence(rmc)), Frame(sentence(gga))]
        return [Frame(sentence(rmc), truth), Frame(sentence(gga)), Frame(sentence(gsv))]


class NmeaSimulator(PtySimulator):
    """``with NmeaSimulator(tmp_path) as sim: NmeaSource(str(sim.path), "R1")``."""

    def __init__(self, directory: str | Path, link_name: str = "gps", **model: Any) -> None:
        super().__init__(directory, NmeaModel(**model), link_name)
