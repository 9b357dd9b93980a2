"""GTFS calendars: a trip is expected only on its service days (calendar.txt weekdays and
date range, calendar_dates.txt added/removed dates, GTFS-JP holidays), service days in
the agency's time zone, times past 24:00:00 on the day before; and the on-time KPI of a
weekend service day from real InfluxDB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from api.kpis import KpiEngine, Window
from contract.influx import InfluxV1
from contract.schema import BusReading
from ingest.events.arrivals import ArrivalMatcher
from ingest.events.gtfs import GtfsError, Schedule
from machi.democity.gtfs import hms, write_gtfs

JST = ZoneInfo("Asia/Tokyo")
S1 = (36.0, 140.0)
# 2026-11-27 Friday, 28 Saturday, 29 Sunday; 2026-11-23 Monday is 勤労感謝の日, run on the
# weekend timetable as the feed's calendar_dates.txt says.
FRI, SAT, SUN, HOLIDAY = 27, 28, 29, 23

WEEK = {
    d: 1 if i < 5 else 0
    for i, d in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}


def _feed(path: Path, with_calendar: bool = True, **over: object) -> Path:
    trips = [
        {"route_id": "R1", "service_id": "weekday", "trip_id": "WD-1"},
        {"route_id": "R1", "service_id": "weekend", "trip_id": "WE-1"},
        {"route_id": "R1", "service_id": "weekday", "trip_id": "WD-night"},
    ]
    times = [
        ("WD-1", 8 * 3600 + 35 * 60),
        ("WE-1", 8 * 3600 + 30 * 60),
        ("WD-night", 24 * 3600 + 600),
    ]
    tables: dict[str, list[dict[str, object]]] = {
        "agency.txt": [
            {
                "agency_id": "A",
                "agency_name": "T",
                "agency_url": "https://example.org",
                "agency_timezone": "Asia/Tokyo",
            }
        ],
        "routes.txt": [{"route_id": "R1", "agency_id": "A", "route_type": 3}],
        "trips.txt": trips,
        "stops.txt": [{"stop_id": "S1", "stop_name": "One", "stop_lat": S1[0], "stop_lon": S1[1]}],
        "stop_times.txt": [
            {
                "trip_id": tid,
                "arrival_time": hms(t),
                "departure_time": hms(t),
                "stop_id": "S1",
                "stop_sequence": 1,
            }
            for tid, t in times
        ],
    }
    if with_calendar:
        weekend = {d: 1 - v for d, v in WEEK.items()}
        tables["calendar.txt"] = [
            {"service_id": "weekday", **WEEK, "start_date": "20260101", "end_date": "20261231"},
            {"service_id": "weekend", **weekend, "start_date": "20260101", "end_date": "20261231"},
        ]
        tables["calendar_dates.txt"] = [
            {"service_id": "weekday", "date": "20261123", "exception_type": 2},
            {"service_id": "weekend", "date": "20261123", "exception_type": 1},
        ]
    tables.update(over)  # type: ignore[arg-type]
    return write_gtfs(path, tables)


def ms(day: int, hh: int, mm: int, ss: int = 0) -> int:
    return int(datetime(2026, 11, day, hh, mm, ss, tzinfo=JST).timestamp() * 1000)


def _match(schedule: Schedule, t: int, bus: str = "bus1") -> list[tuple[str, float]]:
    m = ArrivalMatcher(schedule)
    fix = BusReading(t=t, lat=S1[0], lon=S1[1], route_id="R1")  # route only: no trip id
    return [(a.trip_id, a.delay_s) for a in m.process(bus, "p", [fix])]


@pytest.fixture
def schedule(tmp_path: Path) -> Schedule:
    return Schedule.load(_feed(tmp_path / "f.zip"))


def test_weekday_and_weekend_services(schedule: Schedule) -> None:
    assert _match(schedule, ms(FRI, 8, 33)) == [("WD-1", -120.0)]
    assert _match(schedule, ms(SAT, 8, 33)) == [("WE-1", 180.0)]  # WD-1 is closer, not running
    assert _match(schedule, ms(SUN, 8, 31)) == [("WE-1", 60.0)]


def test_holiday_from_calendar_dates_runs_the_weekend_timetable(schedule: Schedule) -> None:
    assert _match(schedule, ms(HOLIDAY, 8, 33)) == [("WE-1", 180.0)]
    assert _match(schedule, ms(HOLIDAY - 1, 8, 33)) == [("WE-1", 180.0)]  # a Sunday anyway
    assert _match(schedule, ms(HOLIDAY + 1, 8, 33)) == [("WD-1", -120.0)]  # Tuesday


def test_times_past_midnight_belong_to_the_service_day_before(schedule: Schedule) -> None:
    # 24:10 of Friday's weekday service is Saturday 00:10 local.
    assert _match(schedule, ms(SAT, 0, 12)) == [("WD-night", 120.0)]
    # Sunday 00:12 would be 24:10 of Saturday: no weekday service on Saturday.
    assert _match(schedule, ms(SUN, 0, 12)) == []


def test_date_range_bounds_are_inclusive(tmp_path: Path) -> None:
    cal = [
        {"service_id": "weekday", **WEEK, "start_date": "20261127", "end_date": "20261127"},
        {
            "service_id": "weekend",
            **{d: 1 for d in WEEK},
            "start_date": "20261128",
            "end_date": "20261128",
        },
    ]
    sched = Schedule.load(_feed(tmp_path / "r.zip", **{"calendar.txt": cal}))
    assert _match(sched, ms(FRI, 8, 33)) == [("WD-1", -120.0)]
    assert _match(sched, ms(FRI - 3, 8, 33)) == []  # Tuesday before the range
    assert _match(sched, ms(SAT, 8, 33)) == [("WE-1", 180.0)]
    assert _match(sched, ms(SUN, 8, 31)) == []  # after the weekend service's range


def test_feed_without_calendar_runs_every_trip_daily(tmp_path: Path) -> None:
    sched = Schedule.load(_feed(tmp_path / "n.zip", with_calendar=False))
    assert _match(sched, ms(SAT, 8, 33)) == [("WD-1", -120.0)]


@pytest.mark.parametrize(
    ("table", "rows", "message"),
    [
        (
            "calendar_dates.txt",
            [{"service_id": "x", "date": "20261123", "exception_type": 3}],
            "exception_type",
        ),
        (
            "calendar_dates.txt",
            [{"service_id": "x", "date": "2026-11-23", "exception_type": 1}],
            "YYYYMMDD",
        ),
        (
            "calendar.txt",
            [
                {
                    "service_id": "x",
                    **{d: 2 for d in WEEK},
                    "start_date": "20260101",
                    "end_date": "20261231",
                }
            ],
            "0 or 1",
        ),
    ],
)
def test_bad_calendar_rows_fail_with_the_file(
    tmp_path: Path, table: str, rows: list, message: str
) -> None:
    with pytest.raises(GtfsError, match=message):
        Schedule.load(_feed(tmp_path / "b.zip", **{table: rows}))


def test_weekend_on_time_figure_from_real_influxdb(tmp_path: Path, influx: InfluxV1) -> None:
    # Three buses at S1 on Saturday: +60 s, +180 s (on time, weekend WE-1 at 08:30) and
    # +420 s (late). Against the weekday timetable they would read -240, -120 (early)
    # and +120 s: 1 of 3 on time instead of 2 of 3.
    sched = Schedule.load(_feed(tmp_path / "k.zip"))
    m = ArrivalMatcher(sched)
    lines = []
    for bus, (hh, mm) in {"bus1": (8, 31), "bus2": (8, 33), "bus3": (8, 37)}.items():
        fix = BusReading(t=ms(SAT, hh, mm), lat=S1[0], lon=S1[1], route_id="R1")
        lines += [ln for a in m.process(bus, "p", [fix]) for ln in a.lines()]
    assert len(lines) == 3
    assert influx.write_lines("\n".join(lines).encode()).status_code == 204
    engine = KpiEngine(influx, use_rollups=False)
    start = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # Saturday 08:00 JST
    res = engine.theme("transit", Window(start, datetime(2026, 11, 28, 0, 0, tzinfo=UTC)))
    values = {k.id: k.value for k in res.kpis}
    assert values["on_time_performance_pct"] == round(200 / 3, 3)
    assert values["avg_delay_s"] == pytest.approx((60 + 180 + 420) / 3)


@pytest.mark.parametrize(
    ("day", "service"), [(datetime(2024, 5, 1), "weekday"), (datetime(2024, 5, 4), "weekend")]
)
def test_demo_city_buses_follow_their_service_day(
    tmp_path: Path, day: datetime, service: str
) -> None:
    from machi.democity import build_fleet, write_city_gtfs

    schedule = Schedule.load(write_city_gtfs(tmp_path / "city.zip"))
    assert schedule.calendar.present and set(schedule.calendar.services) == {"weekday", "weekend"}
    buses = [d for d in build_fleet().devices if d.kind == "bus"]
    m = ArrivalMatcher(schedule)
    noon = int(datetime(day.year, day.month, day.day, 12, tzinfo=JST).timestamp() * 1000)
    arrivals = []
    for t in range(noon - 3_600_000, noon, 10_000):
        for b in buses:
            arrivals += m.process(b.device_id, b.site, [BusReading(**b.reading(t, 10))])  # type: ignore[arg-type]
    assert arrivals and m.unmatched == 0
    assert {schedule.trips[a.trip_id].service_id for a in arrivals} == {service}
    delays = sorted(a.delay_s for a in arrivals)
    assert -90 <= delays[len(delays) // 2] <= 300
