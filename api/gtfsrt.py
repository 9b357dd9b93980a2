"""GTFS-Realtime VehiclePositions feed built from the newest bus fixes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.transit import gtfs_realtime_pb2


def vehicle_feed(vehicles: Iterable[dict[str, Any]], now_s: int) -> bytes:
    """A FULL_DATASET FeedMessage; ``vehicles`` are dicts shaped like ``VehicleModel``."""
    feed = gtfs_realtime_pb2.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.incrementality = gtfs_realtime_pb2.FeedHeader.FULL_DATASET
    feed.header.timestamp = now_s
    for v in vehicles:
        entity = feed.entity.add()
        entity.id = v["vehicle_id"]
        vp = entity.vehicle
        vp.vehicle.id = v["vehicle_id"]
        if v.get("trip_id"):
            vp.trip.trip_id = v["trip_id"]
        if v.get("route_id"):
            vp.trip.route_id = v["route_id"]
        vp.position.latitude = v["latitude"]
        vp.position.longitude = v["longitude"]
        if v.get("bearing") is not None:
            vp.position.bearing = v["bearing"]
        if v.get("speed_kmh") is not None:
            vp.position.speed = v["speed_kmh"] / 3.6  # GTFS-RT speaks metres per second
        vp.timestamp = v["timestamp"]
    return bytes(feed.SerializeToString())
