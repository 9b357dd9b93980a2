"""Devices of the demo city for the simulator (``machi.simulate.Fleet``).

Meters and wearables are the simulator's own classes placed in the city's districts
(with more frequent care anomalies so a short demo shows alerts); buses run the city's
GTFS timetable with realistic delays, so the events worker can match their arrivals.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from machi.democity.city import DWELL_S, ROUTES, TZ, Route, service_id
from machi.simulate import Device, Fleet, _metres, make_meter, make_wearable

_TZ = ZoneInfo(TZ)


@dataclass
class GtfsBus(Device):
    """A bus working every ``n``-th trip of its route, late by a per-trip amount.

    Trip delays: a start delay ~ N(40 s, 90 s) clipped to [-90 s, 600 s], growing by
    0-12 % of the elapsed running time (traffic), so stop delays rise along a trip.
    """

    route: Route = ROUTES[0]
    index: int = 0
    every: int = 1
    _delays: dict[str, tuple[float, float]] = field(default_factory=dict)

    def _delay(self, trip_id: str) -> tuple[float, float]:
        if trip_id not in self._delays:
            r = random.Random(trip_id)
            d0 = min(600.0, max(-90.0, r.gauss(40, 90)))
            self._delays[trip_id] = (d0, r.uniform(0.0, 0.12))
        return self._delays[trip_id]

    def _state(self, t_ms: int) -> tuple[str | None, float]:
        """(trip id, seconds into its round) at time ``t_ms``; None when laid over.

        Trips of the service that runs on the service day (weekday or weekend/holiday
        timetable, :func:`machi.democity.city.service_id`); yesterday's run past midnight.
        """
        local = datetime.fromtimestamp(t_ms / 1000, _TZ)
        secs = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        length = self.route.round_trip_s()
        for day_shift in (0, 1):
            service = service_id(local.date() - timedelta(days=day_shift))
            s = secs + day_shift * 86400
            for k, dep in enumerate(self.route.departures(service)):
                if k % self.every != self.index:
                    continue
                tid = self.route.trip_id(k, service)
                d0, growth = self._delay(tid)
                into = (s - dep - d0) / (1 + growth)
                if 0 <= into <= length:
                    return tid, into
        return None, 0.0

    def _position(self, into: float) -> tuple[float, float, float, float]:
        """lat, lon, heading, speed (km/h) ``into`` seconds after departure."""
        stops = [*self.route.stops, self.route.stops[0]]
        offsets = self.route.offsets()
        for i in range(len(stops) - 1):
            a, b = stops[i], stops[i + 1]
            leave = offsets[i] + DWELL_S
            if into < leave:  # dwelling at stop i
                return a.lat, a.lon, 0.0, 0.0
            if into <= offsets[i + 1]:
                f = (into - leave) / max(1.0, offsets[i + 1] - leave)
                lat, lon = a.lat + (b.lat - a.lat) * f, a.lon + (b.lon - a.lon) * f
                heading = math.degrees(math.atan2(b.lon - a.lon, b.lat - a.lat)) % 360
                kmh = _metres((a.lat, a.lon), (b.lat, b.lon)) / max(1.0, offsets[i + 1] - leave)
                return lat, lon, heading, kmh * 3.6
        last = stops[-1]
        return last.lat, last.lon, 0.0, 0.0

    def reading(self, t_ms: int, dt_s: float) -> dict[str, object]:
        trip_id, into = self._state(t_ms)
        if trip_id is None:
            first = self.route.stops[0]
            lat, lon, heading, speed = first.lat, first.lon, 0.0, 0.0
        else:
            lat, lon, heading, speed = self._position(into)
        out: dict[str, object] = {
            "t": t_ms,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "route_id": self.route.route_id,
            "speed_kmh": round(max(0.0, speed * self.rng.uniform(0.9, 1.1)), 1),
            "heading_deg": round(heading, 1),
            "occupancy_pct": float(round(min(100, max(0, self.rng.gauss(45, 20))))),
        }
        if trip_id is not None:
            out["trip_id"] = trip_id
        return out


def build_fleet(
    meters: int = 30, wearables: int = 30, seed: int = 7, anomaly_rate: float = 0.003
) -> Fleet:
    """The demo city's devices: meters (homes with PV, factories), wearables, buses."""
    rng = random.Random(seed)
    devices: list[Device] = []
    for i in range(meters):
        pv_choices = (0.0, 3.5, 4.5, 6.0)
        devices.append(make_meter(rng, f"meter-{i:04d}", i, i % 6 == 5, pv_choices))
    for i in range(wearables):
        # Care residents live in the residential districts (>= k per site).
        site = ("yamate", "kaigan", "chuo")[i % 3]
        devices.append(make_wearable(rng, f"care-{i:04d}", site, anomaly_rate))
    for route in ROUTES:
        n = -(-route.round_trip_s() // route.headway_s)  # buses needed for the headway
        for j in range(n):
            devices.append(
                GtfsBus(
                    f"bus-{route.route_id.lower()}-{j}",
                    "bus",
                    route.site,
                    random.Random(rng.random()),
                    route=route,
                    index=j,
                    every=n,
                )
            )
    return Fleet(devices)
