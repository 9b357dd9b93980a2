"""Nothing lost, nothing doubled: ingest killed, InfluxDB down, workers sharing the load."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from contract.influx import InfluxV1
from contract.settings import Settings
from machi.servers import Influxd, IngestProcess, Mosquitto
from machi.simulate import Fleet, Publisher
from machi.testkit import stored_total, wait_until


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
        open_mode=True,
    )  # fmt: skip


def test_sigkill_mid_stream_loses_and_doubles_nothing(
    settings: Settings, influx: InfluxV1, mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    ing = ingest_proc(tmp_path, "ingest", mosquitto.url, influxd.url, settings)
    ing.start()
    th, sent = publish_stream(settings, rounds=40, pause_s=0.1)
    for _ in range(3):
        time.sleep(1.0)
        ing.kill()  # SIGKILL: no chance to flush or ack
        time.sleep(0.3)
        ing.start()  # same client id: the broker resumes the persistent session
    th.join(60)
    assert not th.is_alive()
    got = wait_until(lambda: stored_total(influx), lambda n: n >= sent[0], 60)
    assert got == sent[0] == 40 * 20 * 20
    time.sleep(1.5)  # redeliveries still in flight must not add points
    assert stored_total(influx) == sent[0]
    ing.stop()


def test_influxdb_down_for_10s_loses_nothing(
    settings: Settings, mosquitto: Mosquitto, own_influxd: Influxd, tmp_path: Path
) -> None:
    ing = ingest_proc(tmp_path, "ingest", mosquitto.url, own_influxd.url, settings)
    ing.start()
    th, sent = publish_stream(settings, rounds=60, pause_s=0.25)
    time.sleep(2)
    own_influxd.kill()
    time.sleep(10)
    assert ing.running, "ingest must ride out the outage, not exit"
    assert ing.metric("machi_ingest_write_retries_total") > 0
    own_influxd.start()
    th.join(60)
    db = InfluxV1(own_influxd.url, settings.influx_db)
    got = wait_until(lambda: stored_total(db), lambda n: n >= sent[0], 90)
    assert got == sent[0] == 60 * 20 * 20
    ing.stop()


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
