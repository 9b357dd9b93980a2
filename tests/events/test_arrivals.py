"""GTFS loading and the stop-arrival matching rule."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from contract.schema import BusReading
from ingest.events.arrivals import ArrivalMatcher
from ingest.events.gtfs import GtfsError, Schedule, distance_m
from machi.democity.gtfs import write_gtfs
from tests.events.gtfs_fixture import S1, S2, small_feed

JST = ZoneInfo("Asia/Tokyo")


def ms(hh: int, mm: int, ss: int = 0, day: int = 1) -> int:
    return int(datetime(2024, 5, day, hh, mm, ss, tzinfo=JST).timestamp() * 1000)


def fix(t: int, pos: tuple[float, float], trip: str | None = "T1") -> BusReading:
    return BusReading(t=t, lat=pos[0], lon=pos[1], route_id="R1", trip_id=trip)


@pytest.fixture
def schedule(tmp_path: Path) -> Schedule:
    return Schedule.load(
        small_feed(tmp_path / "f.zip", 8 * 3600, 8 * 3600 + 300, extra_trip_s1=24 * 3600 + 600)
    )


def test_first_fix_per_visit_with_delay(schedule: Schedule) -> None:
    m = ArrivalMatcher(schedule, radius_m=50)
    near_s1 = (S1[0] + 0.0002, S1[1])  # ~22 m north
    out = m.process(
        "bus1",
        "port",
        [
            fix(ms(8, 1, 30), near_s1),
            fix(ms(8, 1, 40), S1),  # same visit
            fix(ms(8, 3), (34.0, 133.005)),  # between stops
            fix(ms(8, 4, 30), S2),
        ],
    )
    assert [(a.stop_id, a.trip_id, a.delay_s) for a in out] == [
        ("S1", "T1", 90.0),
        ("S2", "T1", -30.0),
    ]
    assert (
        "bus_arrival,device_id=bus1,route_id=R1,site=port,stop_id=S1 delay_s=90.0" in out[0].line()
    )
    # Redelivered fixes are skipped.
    assert m.process("bus1", "port", [fix(ms(8, 1, 30), near_s1)]) == []


def test_route_only_fix_and_trip_past_midnight(schedule: Schedule) -> None:
    m = ArrivalMatcher(schedule)
    # No trip id: the closest scheduled arrival of the route at S1 (T2 at 24:10 of May 1).
    out = m.process("bus2", "port", [fix(ms(0, 10, 30, day=2), S1, trip=None)])
    assert [(a.trip_id, a.delay_s) for a in out] == [("T2", 30.0)]
    # Far from any scheduled time on that route: not an arrival.
    assert m.process("bus3", "port", [fix(ms(14, 0), S1, trip=None)]) == []


def test_restart_within_revisit_window_is_the_same_visit(schedule: Schedule) -> None:
    m = ArrivalMatcher(schedule, revisit_s=300)
    m.restore("bus1", "R1", "p", "S1", ms(8, 1, 30))
    assert m.process("bus1", "p", [fix(ms(8, 2), S1)]) == []
    assert len(m.process("bus1", "p", [fix(ms(8, 9), (34.0, 133.005)), fix(ms(8, 10), S1)])) == 1


def test_unknown_route_is_counted(schedule: Schedule) -> None:
    m = ArrivalMatcher(schedule)
    m.process("b", "p", [BusReading(t=ms(8, 0), lat=S1[0], lon=S1[1], route_id="R9")])
    assert m.unmatched == 1


def test_bad_feeds_say_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(GtfsError, match="zip"):
        Schedule.load(bad)
    feed = write_gtfs(tmp_path / "y.zip", {"routes.txt": [{"route_id": "R"}]})
    with pytest.raises(GtfsError, match="no trips.txt"):
        Schedule.load(feed)
    assert distance_m(*S1, *S2) == pytest.approx(922, abs=5)


def test_headway_from_the_previous_arrival_of_any_bus_of_the_route(schedule: Schedule) -> None:
    m = ArrivalMatcher(schedule)
    first = m.process("bus1", "p", [fix(ms(8, 1), S1)])
    second = m.process("bus2", "p", [fix(ms(8, 11), S1)])
    assert first[0].headway_s is None  # nothing known before it
    assert second[0].headway_s == 600.0
    assert "headway_s=600.0" in second[0].line()
    assert "headway_s" not in first[0].line()


def test_late_arrival_corrects_its_successor(schedule: Schedule) -> None:
    m = ArrivalMatcher(schedule)
    m.process("bus1", "p", [fix(ms(8, 1), S1)])
    m.process("bus2", "p", [fix(ms(8, 21), S1)])
    # bus3's outbox drains late: its 08:11 arrival splits the 20-minute gap.
    late = m.process("bus3", "q", [fix(ms(8, 11), S1)])
    assert late[0].headway_s == 600.0
    fixed = late[0].corrects
    assert fixed is not None and fixed.headway_s == 600.0
    lines = late[0].lines()
    assert len(lines) == 2
    # The correction rewrites bus2's point (same tags and time): InfluxDB merges the field.
    assert lines[1] == (
        f"bus_arrival,device_id=bus2,route_id=R1,site=p,stop_id=S1 headway_s=600.0 {ms(8, 21)}"
    )


def test_restored_arrivals_continue_headways_idempotently(schedule: Schedule) -> None:
    m = ArrivalMatcher(schedule)
    m.restore("bus1", "R1", "p", "S1", ms(8, 1))
    m.restore("bus1", "R1", "p", "S1", ms(8, 1))  # the same point twice: no change
    out = m.process("bus2", "p", [fix(ms(8, 16), S1)])
    assert out[0].headway_s == 900.0 and out[0].corrects is None
    # Only ~2 h of history per (route, stop) is kept, but the newest always is.
    out = m.process("bus1", "p", [fix(ms(13, 0), S1)])
    assert out[0].headway_s == (ms(13, 0) - ms(8, 16)) / 1000
    assert len(m.headways._seen[("R1", "S1")]) == 1
