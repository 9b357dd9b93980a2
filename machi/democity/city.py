"""The demo city: a fictional mid-sized Japanese coastal industrial city.

It uses the simulator's districts and centre (``machi.simulate.SITES``/``CITY_CENTER``:
a Pacific-coast industrial city in Ibaraki, on TEPCO's grid) and adds what the KPIs
need: bus routes with stops and a GTFS static timetable, and the district each device lives in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from machi.democity.gtfs import hms, write_gtfs
from machi.simulate import CITY_CENTER, SITES

TZ = "Asia/Tokyo"
BUS_KMH = 20.0  # scheduled average running speed between stops
DWELL_S = 20  # scheduled dwell at each stop
#: Service calendar (GTFS-JP style): a weekday timetable and a thinner one on Saturdays,
#: Sundays and holidays. The demo's holidays are New Year's Day only (a real feed lists
#: every public holiday in calendar_dates.txt); both sides of the demo read this.
WEEKDAY, WEEKEND = "weekday", "weekend"
CALENDAR_START, CALENDAR_END = date(2024, 1, 1), date(2030, 12, 31)
HOLIDAYS = tuple(date(y, 1, 1) for y in range(CALENDAR_START.year, CALENDAR_END.year + 1))


def service_id(day: date) -> str:
    """The service that runs on service day ``day`` (a local date in ``TZ``)."""
    return WEEKEND if day.weekday() >= 5 or day in HOLIDAYS else WEEKDAY


@dataclass(frozen=True)
class Stop:
    stop_id: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Route:
    route_id: str
    name: str
    site: str  # the district the route's buses report as their site
    stops: tuple[Stop, ...]  # a loop: the bus returns to the first stop
    headway_s: int
    first_s: int = 5 * 3600 + 30 * 60  # 05:30
    last_s: int = 23 * 3600 + 30 * 60  # 23:30 (its trips run past midnight)

    def offsets(self) -> list[int]:
        """Scheduled arrival offset of each stop (and of the return to the first) in s."""
        out, t = [0], 0
        loop = [*self.stops, self.stops[0]]
        for a, b in zip(loop, loop[1:], strict=False):
            d = _metres(a.lat, a.lon, b.lat, b.lon)
            t += DWELL_S + round(d / (BUS_KMH / 3.6))
            out.append(t)
        return out

    def round_trip_s(self) -> int:
        return self.offsets()[-1]

    def departures(self, service: str = WEEKDAY) -> list[int]:
        """Departure times of ``service``: every headway on weekdays, every other one on
        weekends and holidays."""
        step = self.headway_s * (2 if service == WEEKEND else 1)
        return list(range(self.first_s, self.last_s + 1, step))

    def trip_id(self, k: int, service: str = WEEKDAY) -> str:
        return f"{self.route_id}-{k:03d}" if service == WEEKDAY else f"{self.route_id}-we-{k:03d}"


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dlat = (lat2 - lat1) * 111_320
    dlon = (lon2 - lon1) * 111_320 * math.cos(math.radians(lat1))
    return math.hypot(dlat, dlon)


def _ring(prefix: str, names: list[str], dlat: float, dlon: float, r_km: float) -> tuple[Stop, ...]:
    lat0, lon0 = CITY_CENTER[0] + dlat, CITY_CENTER[1] + dlon
    stops = []
    for i, name in enumerate(names):
        ang = 2 * math.pi * i / len(names)
        stops.append(
            Stop(
                f"{prefix}{i + 1:02d}",
                name,
                round(lat0 + r_km / 111.32 * math.sin(ang), 6),
                round(lon0 + r_km / 111.32 * math.cos(ang) / math.cos(math.radians(lat0)), 6),
            )
        )
    return tuple(stops)


ROUTES: tuple[Route, ...] = (
    Route(
        "R1",
        "Ekimae - Minato loop",
        "ekimae",
        _ring(
            "EM",
            [
                "Ekimae",
                "Shiyakusho",
                "Chuo Koen",
                "Minato 1",
                "Minato Futo",
                "Uoichiba",
                "Kaigan-dori",
                "Ginza",
            ],
            0.0,
            0.0,
            1.6,
        ),
        headway_s=600,
    ),
    Route(
        "R2",
        "Kogyo danchi line",
        "kogyo",
        _ring(
            "KG",
            [
                "Kogyo Iriguchi",
                "Seitetsu Mae",
                "Kagaku Koujou",
                "Hatsuden-sho",
                "Soko-gai",
                "Kogyo Kita",
            ],
            -0.02,
            0.03,
            1.4,
        ),
        headway_s=900,
    ),
    Route(
        "R3",
        "Yamate hills",
        "yamate",
        _ring(
            "YM",
            ["Yamate Iriguchi", "Byoin Mae", "Koukou Mae", "Danchi", "Yamate Ue"],
            0.025,
            -0.02,
            1.0,
        ),
        headway_s=1200,
    ),
)


def gtfs_tables(routes: tuple[Route, ...] = ROUTES) -> dict[str, list[dict[str, object]]]:
    """The GTFS static feed of the city's buses as tables of rows."""
    trips: list[dict[str, object]] = []
    stop_times: list[dict[str, object]] = []
    stops: dict[str, dict[str, object]] = {}
    for r in routes:
        offsets = r.offsets()
        loop = [*r.stops, r.stops[0]]
        for s in r.stops:
            stops[s.stop_id] = {
                "stop_id": s.stop_id,
                "stop_name": s.name,
                "stop_lat": s.lat,
                "stop_lon": s.lon,
            }
        for service in (WEEKDAY, WEEKEND):
            for k, dep in enumerate(r.departures(service)):
                tid = r.trip_id(k, service)
                trips.append({"route_id": r.route_id, "service_id": service, "trip_id": tid})
                for seq, (s, off) in enumerate(zip(loop, offsets, strict=True), 1):
                    arr = dep + off
                    stop_times.append(
                        {
                            "trip_id": tid,
                            "arrival_time": hms(arr),
                            "departure_time": hms(arr + (DWELL_S if seq < len(loop) else 0)),
                            "stop_id": s.stop_id,
                            "stop_sequence": seq,
                        }
                    )
    return {
        "agency.txt": [
            {
                "agency_id": "minato-bus",
                "agency_name": "Minato City Bus (demo)",
                "agency_url": "https://example.org/minato-bus",
                "agency_timezone": TZ,
                "agency_lang": "ja",
            }
        ],
        "routes.txt": [
            {
                "route_id": r.route_id,
                "agency_id": "minato-bus",
                "route_short_name": r.route_id,
                "route_long_name": r.name,
                "route_type": 3,
            }
            for r in routes
        ],
        "calendar.txt": [
            {
                "service_id": service,
                **{d: int((i >= 5) == (service == WEEKEND)) for i, d in enumerate(_DAYS)},
                "start_date": CALENDAR_START.strftime("%Y%m%d"),
                "end_date": CALENDAR_END.strftime("%Y%m%d"),
            }
            for service in (WEEKDAY, WEEKEND)
        ],
        "calendar_dates.txt": [
            row
            for h in HOLIDAYS
            if h.weekday() < 5  # a holiday on a weekend runs the weekend timetable anyway
            for row in (
                {"service_id": WEEKDAY, "date": h.strftime("%Y%m%d"), "exception_type": 2},
                {"service_id": WEEKEND, "date": h.strftime("%Y%m%d"), "exception_type": 1},
            )
        ],
        "stops.txt": list(stops.values()),
        "trips.txt": trips,
        "stop_times.txt": stop_times,
    }


_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def write_city_gtfs(path: str | Path) -> Path:
    """Write the demo city's GTFS static zip (give it to ``machi events run --gtfs``)."""
    return write_gtfs(path, gtfs_tables())


__all__ = [
    "ROUTES",
    "SITES",
    "TZ",
    "Route",
    "Stop",
    "gtfs_tables",
    "service_id",
    "write_city_gtfs",
]
