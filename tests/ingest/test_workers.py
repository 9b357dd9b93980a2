"""`machi ingest --workers N`: N processes on one shared subscription, one metrics port each.

The SIGKILL and InfluxDB-down scenarios live once, in tests/faults/test_fault_ingest.py.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from contract.influx import InfluxV1
from contract.settings import ConfigError, Settings
from ingest.config import resolve_workers
from machi.servers import Influxd, IngestProcess, Mosquitto
from machi.simulate import Fleet, Publisher
from machi.testkit import stored_total, wait_until


def test_resolve_workers() -> None:
    assert resolve_workers("3") == 3
    assert resolve_workers("auto", cpus=2) == 1  # measured: no gain on 2 cores
    assert resolve_workers("auto", cpus=1) == 1
    assert resolve_workers("auto", cpus=8) == 6
    for bad in ("0", "-1", "many", "99"):
        with pytest.raises(ConfigError, match="--workers"):
            resolve_workers(bad)


def _metric(port: int, name: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0  # not up yet
    for row in text.splitlines():
        if row.startswith(name + " "):
            return float(row.split()[-1])
    return 0.0


def test_two_workers_store_everything_once_and_stop_on_sigterm(
    settings: Settings, influx: InfluxV1, mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    extra = ["--workers", "2", "--batch-seconds", "0.2"]
    ing = IngestProcess(
        tmp_path / "ing", mosquitto.url, influxd.url, settings.influx_db, settings.topic_prefix,
        client_id=f"w-{settings.topic_prefix}", extra_args=extra, open_mode=True,
    )  # fmt: skip
    ing.start()
    ports = [ing.port, ing.port + 1]
    wait_until(lambda: _metric(ports[1], "machi_ingest_mqtt_connected"), bool, timeout=30)
    fleet = Fleet.build(meters=10, wearables=6, buses=4, seed=5)
    pub = Publisher(settings, f"pub-{settings.topic_prefix}")
    sent = 0
    t0 = time.time_ns() // 1_000_000 - 600_000
    for i in range(30):
        for msg in fleet.messages(t0 + i * 1000, 0.1, 10):
            pub.publish(msg)
            sent += len(msg.readings)
    assert pub.flush(30)
    pub.close()
    got = wait_until(lambda: stored_total(influx), lambda n: n >= sent, timeout=60)
    assert got == sent
    per_worker = [_metric(p, "machi_ingest_readings_total") for p in ports]
    assert all(n > 0 for n in per_worker), per_worker
    assert sum(per_worker) == sent  # each reading stored by exactly one worker
    assert ing.proc is not None
    t = time.monotonic()
    ing.proc.send_signal(signal.SIGTERM)
    assert ing.proc.wait(30) == 0
    assert time.monotonic() - t <= 10
    for p in ports:  # the workers are gone too
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{p}/metrics", timeout=1).raise_for_status()
