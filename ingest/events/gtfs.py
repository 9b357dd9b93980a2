"""GTFS static schedule: the parts needed to match bus fixes to stop arrivals.

Reads ``stops.txt``, ``trips.txt``, ``stop_times.txt`` and ``routes.txt`` (plus the
agency's time zone from ``agency.txt`` when present) and the service calendar
(``calendar.txt`` and ``calendar_dates.txt``) from a feed zip.

A trip runs on a *service day* (a date in the agency's time zone) when its
``service_id`` is active that day: ``calendar.txt`` gives weekdays and an inclusive
``start_date``..``end_date`` range; ``calendar_dates.txt`` adds a date
(``exception_type`` 1) or removes one (2), which is how GTFS-JP publishers mark
public holidays. A feed with neither file (older feeds, hand-made test feeds) runs
every trip every day, as before.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

REQUIRED = {
    "routes.txt": ("route_id",),
    "trips.txt": ("route_id", "trip_id"),
    "stops.txt": ("stop_id", "stop_lat", "stop_lon"),
    "stop_times.txt": ("trip_id", "stop_id", "stop_sequence", "arrival_time"),
}


class GtfsError(ValueError):
    """The feed is missing a file or column, or has a malformed value."""


@dataclass(frozen=True)
class Stop:
    stop_id: str
    lat: float
    lon: float
    name: str = ""


@dataclass
class Trip:
    trip_id: str
    route_id: str
    #: (stop_id, scheduled arrival in seconds after the service day's midnight), in order.
    stop_times: list[tuple[str, int]] = field(default_factory=list)
    service_id: str = ""


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Service:
    """One ``calendar.txt`` row: the weekdays a service runs in a date range."""

    weekdays: frozenset[int]  # date.weekday(): Monday 0 .. Sunday 6
    start: date
    end: date  # inclusive


@dataclass
class Calendar:
    """Which services run on which service day (``calendar.txt`` + ``calendar_dates.txt``)."""

    services: dict[str, Service] = field(default_factory=dict)
    added: dict[str, set[date]] = field(default_factory=dict)
    removed: dict[str, set[date]] = field(default_factory=dict)
    #: False when the feed has neither file: every service runs every day.
    present: bool = True

    def active(self, service_id: str, day: date) -> bool:
        if not self.present:
            return True
        if day in self.removed.get(service_id, ()):
            return False
        if day in self.added.get(service_id, ()):
            return True
        svc = self.services.get(service_id)
        return svc is not None and svc.start <= day <= svc.end and day.weekday() in svc.weekdays


@dataclass
class Schedule:
    stops: dict[str, Stop]
    trips: dict[str, Trip]
    routes: dict[str, list[str]]  # route_id -> trip ids
    tz: ZoneInfo
    calendar: Calendar = field(default_factory=lambda: Calendar(present=False))

    def runs(self, trip_id: str, day: date) -> bool:
        """Whether ``trip_id`` runs on service day ``day`` (agency time zone)."""
        return self.calendar.active(self.trips[trip_id].service_id, day)

    def service_midnight_ms(self, day: date) -> int:
        """Epoch ms of the service day's reference time: noon minus 12 h (GTFS), which is
        local midnight except on days a DST change moves it."""
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=self.tz)
        return int(noon.timestamp() * 1000) - 12 * 3600 * 1000

    @classmethod
    def load(cls, path: str | Path, default_tz: str = "Asia/Tokyo") -> Schedule:
        try:
            zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise GtfsError(f"GTFS feed {path}: cannot open it as a zip ({exc})") from None
        with zf:
            tables = {name: _table(zf, name, cols, path) for name, cols in REQUIRED.items()}
            tz_name = default_tz
            if "agency.txt" in zf.namelist():
                agency = _table(zf, "agency.txt", ("agency_timezone",), path)
                if agency:
                    tz_name = agency[0]["agency_timezone"]
            calendar = _calendar(zf, path)
        try:
            tz = ZoneInfo(tz_name)
        except Exception:  # noqa: BLE001 - zoneinfo raises several types
            raise GtfsError(f"GTFS feed {path}: unknown agency_timezone {tz_name!r}") from None
        stops = {}
        for row in tables["stops.txt"]:
            try:
                stops[row["stop_id"]] = Stop(
                    row["stop_id"],
                    float(row["stop_lat"]),
                    float(row["stop_lon"]),
                    row.get("stop_name", ""),
                )
            except ValueError:
                raise GtfsError(
                    f"GTFS feed {path}: stops.txt stop {row['stop_id']!r} has a bad lat/lon"
                ) from None
        trips = {
            r["trip_id"]: Trip(r["trip_id"], r["route_id"], service_id=r.get("service_id", ""))
            for r in tables["trips.txt"]
        }
        rows = sorted(
            tables["stop_times.txt"], key=lambda r: (r["trip_id"], int(r["stop_sequence"]))
        )
        for r in rows:
            trip = trips.get(r["trip_id"])
            if trip is None or r["stop_id"] not in stops or not r["arrival_time"]:
                continue  # untimed stops and dangling references are not matchable
            trip.stop_times.append((r["stop_id"], parse_gtfs_time(r["arrival_time"], path)))
        routes: dict[str, list[str]] = {}
        for t in trips.values():
            routes.setdefault(t.route_id, []).append(t.trip_id)
        return cls(stops, trips, routes, tz, calendar)


def _calendar(zf: zipfile.ZipFile, path: object) -> Calendar:
    names = zf.namelist()
    if "calendar.txt" not in names and "calendar_dates.txt" not in names:
        return Calendar(present=False)
    cal = Calendar()
    if "calendar.txt" in names:
        cols = ("service_id", *WEEKDAYS, "start_date", "end_date")
        for row in _table(zf, "calendar.txt", cols, path):
            where = f"GTFS feed {path}: calendar.txt service {row['service_id']!r}"
            flags = [row[d] for d in WEEKDAYS]
            if any(f not in ("0", "1") for f in flags):
                raise GtfsError(f"{where}: weekday columns must be 0 or 1, got {flags}")
            cal.services[row["service_id"]] = Service(
                frozenset(i for i, f in enumerate(flags) if f == "1"),
                _date(row["start_date"], where),
                _date(row["end_date"], where),
            )
    if "calendar_dates.txt" in names:
        date_cols = ("service_id", "date", "exception_type")
        for row in _table(zf, "calendar_dates.txt", date_cols, path):
            where = f"GTFS feed {path}: calendar_dates.txt service {row['service_id']!r}"
            kind = {"1": cal.added, "2": cal.removed}.get(row["exception_type"])
            if kind is None:
                raise GtfsError(
                    f"{where}: exception_type must be 1 (added) or 2 (removed), "
                    f"got {row['exception_type']!r}"
                )
            kind.setdefault(row["service_id"], set()).add(_date(row["date"], where))
    return cal


def _date(value: str, where: str) -> date:
    """GTFS ``YYYYMMDD``."""
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise GtfsError(f"{where}: date {value!r} is not YYYYMMDD") from None


def _table(
    zf: zipfile.ZipFile, name: str, cols: tuple[str, ...], path: object
) -> list[dict[str, str]]:
    try:
        raw = zf.read(name)
    except KeyError:
        raise GtfsError(f"GTFS feed {path} has no {name}") from None
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
    missing = [c for c in cols if c not in (reader.fieldnames or [])]
    if missing:
        raise GtfsError(f"GTFS feed {path}: {name} lacks column(s) {', '.join(missing)}")
    return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def parse_gtfs_time(value: str, where: object = "") -> int:
    """``H:MM:SS`` (hours may exceed 24 for trips past midnight) to seconds."""
    try:
        h, m, s = (int(x) for x in value.split(":"))
    except ValueError:
        raise GtfsError(f"GTFS feed {where}: time {value!r} is not H:MM:SS") from None
    return h * 3600 + m * 60 + s


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))
