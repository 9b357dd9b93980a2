"""Nothing lost, nothing doubled: workers sharing the load.

The SIGKILL and InfluxDB-down scenarios live once, in tests/faults/test_fault_ingest.py
(seq-accounted: every reading checked for loss and doubles, not only the total).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from contract.influx import InfluxV1
from contract.settings import Settings
from machi.servers import Influxd, IngestProcess, Mosquitto
from machi.simulate import Fleet, Publisher
from machi.testing import stored_total, wait_until


def publish_stream(
    settings: Settings, rounds: int, pause_s: float, per_message: int = 20
) -> tuple[threading.Thread, list[int]]:
    """Publish ``rounds`` rounds of the fleet's messages in a thread; returns the count."""
    sent = [0]
    fleet = Fleet.build(meters=10, wearables=6, buses=4, seed=3)

    def run() -> None:
        pub = Publisher(settings, f"pub-{settings.topic_prefix}")
        t0 = time.time_ns() // 1_000_000 - rounds * per_message * 100 - 60_000
        for i in range(rounds):
            for msg in fleet.messages(t0 + i * per_message * 100, 0.1, per_message):
                pub.publish(msg)
                sent[0] += len(msg.readings)
            time.sleep(pause_s)
        assert pub.flush(60)
        pub.close()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, sent


def ingest_proc(
    tmp_path: Path, name: str, mqtt: str, influx_url: str, s: Settings, *extra: str
) -> IngestProcess:
    return IngestProcess(
        tmp_path / name, mqtt, influx_url, s.influx_db, s.topic_prefix,
        client_id=f"{name}-{s.topic_prefix}", extra_args=["--batch-seconds", "0.3", *extra],
    )  # fmt: skip


def test_two_workers_share_the_subscription(
    settings: Settings, influx: InfluxV1, mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    workers = [
        ingest_proc(tmp_path, f"w{i}", mosquitto.url, influxd.url, settings, "--shared-group", "g1")
        for i in range(2)
    ]
    for w in workers:
        w.start()
    th, sent = publish_stream(settings, rounds=20, pause_s=0.05)
    th.join(60)
    got = wait_until(lambda: stored_total(influx), lambda n: n >= sent[0], 60)
    assert got == sent[0]
    per_worker = [w.metric("machi_ingest_readings_total") for w in workers]
    assert all(n > 0 for n in per_worker), per_worker
    assert sum(per_worker) == sent[0]  # each reading stored by exactly one worker
    for w in workers:
        w.stop()
