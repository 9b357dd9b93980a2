"""GTFS static schedule: the parts needed to match bus fixes to stop arrivals.

Reads ``stops.txt``, ``trips.txt``, ``stop_times.txt`` and ``routes.txt`` (plus the
agency's time zone from ``agency.txt`` when present) from a feed zip.

Limitation: ``calendar.txt`` / ``calendar_dates.txt`` are not read: every trip is
assumed to run every day.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from dataclasses import dataclass, field
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


@dataclass
class Schedule:
    stops: dict[str, Stop]
    trips: dict[str, Trip]
    routes: dict[str, list[str]]  # route_id -> trip ids
    tz: ZoneInfo

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
        trips = {r["trip_id"]: Trip(r["trip_id"], r["route_id"]) for r in tables["trips.txt"]}
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
        return cls(stops, trips, routes, tz)


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
