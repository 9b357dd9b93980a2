"""The events worker end to end over the real broker and influxd."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from contract.influx import InfluxV1
from contract.mqtt import MqttOptions, connect, make_client
from contract.schema import encode_message, make_message
from contract.settings import Settings
from contract.topics import Topics
from ingest.events.care import CareRules
from ingest.events.gtfs import Schedule
from ingest.events.worker import EventsOptions, EventsWorker
from machi.testkit import wait_for
from tests.events.gtfs_fixture import S1, S2, small_feed

pytestmark = pytest.mark.integration


class Peer:
    """A plain client that publishes telemetry and records alert notifications."""

    def __init__(self, settings: Settings) -> None:
        self.topics = Topics(settings.topic_prefix)
        opts = MqttOptions(client_id=f"peer-{time.monotonic_ns()}")
        self.client, url = make_client(settings, opts)
        self.alerts: list[dict] = []
        self.ready = threading.Event()
        self.client.on_connect = lambda c, *_: (
            c.subscribe(f"{settings.topic_prefix}/v1/alerts/#", qos=1),
            self.ready.set(),
        )
        self.client.on_message = lambda _c, _u, m: self.alerts.append(json.loads(m.payload))
        connect(self.client, url, opts)
        self.client.loop_start()
        assert self.ready.wait(10)

    def send(
        self,
        kind: str,
        dev: str,
        seq: int,
        readings: list[dict],
        site: str = "hama",
        raw: bytes | None = None,
    ) -> None:
        payload = (
            raw if raw is not None else encode_message(make_message(kind, dev, site, seq, readings))
        )
        self.client.publish(self.topics.telemetry(kind, dev), payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peer(settings: Settings) -> Iterator[Peer]:
    p = Peer(settings)
    yield p
    p.close()


def _worker(settings: Settings, schedule: Schedule | None = None) -> EventsWorker:
    w = EventsWorker(
        settings, CareRules(), schedule, EventsOptions(client_id="ev-" + settings.topic_prefix)
    )
    w.start()
    assert w.connected.wait(10)
    time.sleep(0.3)  # let the SUBACK land before publishing
    return w


def _alerts(influx: InfluxV1) -> list[tuple[str, str, str]]:
    rows = influx.rows('SELECT device_id, "type", state FROM care_alert')
    return [(r["device_id"], r["type"], r["state"]) for r in rows]


def test_care_episodes_once_each_through_redelivery_and_restart(
    settings: Settings, influx: InfluxV1, peer: Peer
) -> None:
    base = int(time.time() * 1000) - 600_000
    w = _worker(settings)
    try:
        high = [{"t": base + s * 1000, "heart_rate_bpm": 130.0} for s in range(0, 70, 10)]
        peer.send("wearable", "wb-1", 1, high)
        peer.send("wearable", "wb-1", 1, high)  # the same message delivered twice
        peer.send("wearable", "wb-1", 2, [], raw=b"{not json")  # bad input in between
        normal = [{"t": base + s * 1000, "heart_rate_bpm": 80.0} for s in range(70, 140, 10)]
        peer.send("wearable", "wb-1", 3, normal)
        peer.send("wearable", "wb-2", 1, [{"t": base + 200_000, "spo2_pct": 85.0}])
        wait_for(lambda: len(_alerts(influx)) == 3)
        wait_for(lambda: w.stats["messages"] == 5)
        assert sorted(_alerts(influx)) == [
            ("wb-1", "hr_high", "closed"),
            ("wb-1", "hr_high", "open"),
            ("wb-2", "spo2_low", "open"),
        ]
        assert w.stats["rejected_invalid_json"] == 1
        row = influx.rows("SELECT * FROM care_alert WHERE state = 'open' AND \"type\" = 'hr_high'")
        assert row[0]["time"] == base + 60_000 and row[0]["value"] == 130.0
        wait_for(lambda: len(peer.alerts) == 3)
        assert [(a["device_id"], a["type"], a["state"]) for a in peer.alerts] == [
            ("wb-1", "hr_high", "open"),
            ("wb-1", "hr_high", "closed"),
            ("wb-2", "spo2_low", "open"),
        ]
    finally:
        w.stop()
    # A new process: the open spo2 episode is rebuilt from InfluxDB, so more low
    # readings (and a redelivered old one) do not open a second episode.
    w2 = _worker(settings)
    try:
        assert w2.care.open_episodes() == 1
        peer.send("wearable", "wb-2", 1, [{"t": base + 200_000, "spo2_pct": 85.0}])
        peer.send("wearable", "wb-2", 2, [{"t": base + 210_000, "spo2_pct": 80.0}])
        peer.send("wearable", "wb-2", 3, [{"t": base + 300_000, "spo2_pct": 97.0}])
        wait_for(lambda: w2.stats["messages"] == 3)
        wait_for(lambda: len(_alerts(influx)) == 4)
        assert sorted(a for a in _alerts(influx) if a[0] == "wb-2") == [
            ("wb-2", "spo2_low", "closed"),
            ("wb-2", "spo2_low", "open"),
        ]
    finally:
        w2.stop()


def test_unacked_message_is_redelivered_after_a_crash(
    settings: Settings, influx: InfluxV1, peer: Peer
) -> None:
    """A worker that dies before acking gets the message again from its session."""
    base = int(time.time() * 1000) - 60_000
    w = _worker(settings)
    w._stop.set()  # processing thread exits: nothing is handled or acked
    w._thread.join(5)  # type: ignore[union-attr]
    peer.send("wearable", "wb-9", 1, [{"t": base, "fall": True}])
    time.sleep(0.5)
    w.client.disconnect()
    w.client.loop_stop()
    assert _alerts(influx) == []
    w2 = _worker(settings)
    try:
        wait_for(lambda: _alerts(influx) == [("wb-9", "fall", "open")])
    finally:
        w2.stop()


def test_bus_arrivals_with_delay(
    settings: Settings, influx: InfluxV1, peer: Peer, tmp_path: Path
) -> None:
    jst = ZoneInfo("Asia/Tokyo")
    t_s1 = (int(time.time()) - 300) * 1000
    local = datetime.fromtimestamp(t_s1 / 1000, jst)
    sec = local.hour * 3600 + local.minute * 60 + local.second
    # Scheduled 90 s before the observed arrival at S1 and 30 s after it at S2.
    sched_s1 = sec - 90 if sec >= 90 else sec - 90 + 86400
    feed = small_feed(tmp_path / "feed.zip", sched_s1, sched_s1 + 90 + 120 + 30)
    w = _worker(settings, Schedule.load(feed))
    try:
        fixes = [
            {
                "t": t_s1,
                "lat": S1[0],
                "lon": S1[1],
                "route_id": "R1",
                "trip_id": "T1",
                "speed_kmh": 5.0,
            },
            {"t": t_s1 + 10_000, "lat": S1[0], "lon": S1[1], "route_id": "R1", "trip_id": "T1"},
            {"t": t_s1 + 60_000, "lat": 34.0, "lon": 133.005, "route_id": "R1", "trip_id": "T1"},
            {"t": t_s1 + 120_000, "lat": S2[0], "lon": S2[1], "route_id": "R1", "trip_id": "T1"},
        ]
        peer.send("bus", "bus-7", 1, fixes, site="port")
        peer.send("bus", "bus-7", 1, fixes, site="port")  # redelivered
        wait_for(lambda: w.stats["messages"] == 2)
        rows = influx.rows("SELECT stop_id, delay_s, trip_id, scheduled_ms FROM bus_arrival")
        assert [(r["stop_id"], r["delay_s"], r["trip_id"]) for r in rows] == [
            ("S1", 90.0, "T1"),
            ("S2", -30.0, "T1"),
        ]
        assert w.stats["arrivals"] == 2
    finally:
        w.stop()


def test_headways_continue_across_a_restart_and_late_arrivals_fix_them(
    settings: Settings, influx: InfluxV1, peer: Peer, tmp_path: Path
) -> None:
    feed = small_feed(tmp_path / "feed.zip", 8 * 3600, 8 * 3600 + 300)
    t0 = (int(time.time()) // 60 - 40) * 60_000

    def at_s1(minute: int) -> list[dict]:
        fix = {"t": t0 + minute * 60_000, "lat": S1[0], "lon": S1[1], "route_id": "R1"}
        return [{**fix, "trip_id": "T1"}]  # an exact trip: no 30-minute route limit

    def headways() -> dict[str, float | None]:
        rows = influx.rows(
            "SELECT device_id, headway_s, delay_s FROM bus_arrival WHERE stop_id = 'S1'"
        )
        return {r["device_id"]: r["headway_s"] for r in rows}

    w = _worker(settings, Schedule.load(feed))
    try:
        peer.send("bus", "bus-a", 1, at_s1(0), site="port")
        peer.send("bus", "bus-c", 1, at_s1(20), site="port")
        wait_for(lambda: len(headways()) == 2)
    finally:
        w.stop()
    w2 = _worker(settings, Schedule.load(feed))  # state from InfluxDB only
    try:
        peer.send("bus", "bus-d", 1, at_s1(30), site="port")
        # bus-b's outbox drains late: its arrival splits bus-a -> bus-c, and bus-c's
        # stored headway is rewritten from 20 to 15 minutes.
        peer.send("bus", "bus-b", 1, at_s1(5), site="port")
        wait_for(lambda: w2.stats["messages"] == 2)
        wait_for(
            lambda: headways() == {"bus-a": None, "bus-b": 300.0, "bus-c": 900.0, "bus-d": 600.0}
        )
    finally:
        w2.stop()


def test_refused_derived_line_is_isolated_not_retried_forever(
    settings: Settings, influx: InfluxV1
) -> None:
    """The events worker stores through ingest's Writer: a line InfluxDB refuses (a field
    type conflict) is split off and counted; the other lines of the write are stored."""
    now = int(time.time() * 1000)
    assert influx.write_lines(f'bus_arrival,device_id=b0 headway_s="x" {now}'.encode()).is_success
    worker = EventsWorker(settings, opts=EventsOptions(client_id=f"ev-{time.monotonic_ns()}"))
    lines = [
        f"bus_arrival,device_id=b1 delay_s=12 {now}",
        f"bus_arrival,device_id=b0 delay_s=30,headway_s=60 {now + 1}",  # float into a string field
        f"bus_arrival,device_id=b2 delay_s=-3 {now}",
    ]
    t0 = time.monotonic()
    assert worker._write(lines) is True
    assert time.monotonic() - t0 < 10
    assert worker.stats["write_rejected"] == 1
    rows = influx.rows("SELECT delay_s, device_id FROM bus_arrival WHERE delay_s < 100")
    assert sorted(r["device_id"] for r in rows) == ["b1", "b2"]
    worker.influx.close()
