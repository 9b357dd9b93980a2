"""A two-stop GTFS feed for the arrival tests."""

from __future__ import annotations

from pathlib import Path

from machi.democity.gtfs import hms, write_gtfs

S1 = (34.0, 133.0)
S2 = (34.0, 133.01)  # about 920 m east


def small_feed(path: Path, t1_s1: int, t1_s2: int, extra_trip_s1: int | None = None) -> Path:
    trips = [{"route_id": "R1", "service_id": "daily", "trip_id": "T1"}]
    stop_times = [
        {
            "trip_id": "T1",
            "arrival_time": hms(t1_s1),
            "departure_time": hms(t1_s1),
            "stop_id": "S1",
            "stop_sequence": 1,
        },
        {
            "trip_id": "T1",
            "arrival_time": hms(t1_s2),
            "departure_time": hms(t1_s2),
            "stop_id": "S2",
            "stop_sequence": 2,
        },
    ]
    if extra_trip_s1 is not None:
        trips.append({"route_id": "R1", "service_id": "daily", "trip_id": "T2"})
        stop_times.append(
            {
                "trip_id": "T2",
                "arrival_time": hms(extra_trip_s1),
                "departure_time": hms(extra_trip_s1),
                "stop_id": "S1",
                "stop_sequence": 1,
            }
        )
    return write_gtfs(
        path,
        {
            "agency.txt": [
                {
                    "agency_id": "A",
                    "agency_name": "Test Bus",
                    "agency_url": "https://example.org",
                    "agency_timezone": "Asia/Tokyo",
                }
            ],
            "routes.txt": [
                {"route_id": "R1", "agency_id": "A", "route_short_name": "1", "route_type": 3}
            ],
            "trips.txt": trips,
            "stops.txt": [
                {"stop_id": "S1", "stop_name": "One", "stop_lat": S1[0], "stop_lon": S1[1]},
                {"stop_id": "S2", "stop_name": "Two", "stop_lat": S2[0], "stop_lon": S2[1]},
            ],
            "stop_times.txt": stop_times,
        },
    )
