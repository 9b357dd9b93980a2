"""Acknowledgements: a resumed session's backlog is acknowledged in full and in order."""

from __future__ import annotations

import time
from pathlib import Path

from contract.influx import InfluxV1
from contract.schema import make_message
from contract.settings import Settings
from ingest.service import IngestService
from machi.simulate import Publisher
from machi.testkit import stored, wait_until
from tests.ingest.conftest import service


def _service(settings: Settings, tmp_path: Path, **over: object) -> IngestService:
    acks = {"stats_interval_s": 3600.0, **over}
    return service(settings, tmp_path, f"acks-{settings.topic_prefix}", **acks)


def test_backlog_of_a_resumed_session_is_acked_in_full_and_in_order(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    first = _service(settings, tmp_path)
    first.start()
    assert first.wait_connected(10)
    first.stop()  # the persistent session now queues for us
    n = 3000
    pub = Publisher(settings, f"pub-{settings.topic_prefix}")
    t0 = time.time_ns() // 1_000_000 - 600_000
    for i in range(n):
        pub.publish(
            make_message(
                "energy_meter", f"m{i % 50}", "s", i // 50, [{"t": t0 + i, "power_w": 1.0}]
            )
        )
    assert pub.flush(30)
    pub.close()

    # Small batches and two writers: batches finish out of order, acks must not.
    svc = _service(settings, tmp_path, batch_lines=100, writers=2)
    received: list[int] = []
    acked: list[int] = []
    on_message, ack = svc._on_message, svc.client.ack
    svc.client.on_message = lambda c, u, m: (received.append(m.mid), on_message(c, u, m))
    svc.client.ack = lambda mid, qos: (acked.append(mid), ack(mid, qos))[1]  # type: ignore[method-assign]
    svc.start()
    assert wait_until(lambda: stored(influx, "energy_meter"), lambda k: k >= n, 60) == n
    wait_until(lambda: len(acked), lambda k: k >= n, 10)
    svc.stop()
    # Messages delivered before our SUBACK (a resumed session's backlog comes first)
    # are acknowledged too, each once, in the order they arrived.
    assert len(received) == n
    assert acked == received

    # Nothing was left unacknowledged: a third connection gets no redeliveries.
    again = _service(settings, tmp_path)
    again.start()
    assert again.wait_connected(10)
    time.sleep(1.5)
    again.stop()
    assert again.counts["messages"] == 0
