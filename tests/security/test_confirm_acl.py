"""Ingest on a broker whose ACL does not grant it the storage-confirmation topics.

mosquitto 2.0.11 drops a client after any publish its ACL denies (QoS 0 included), so a
worker that kept confirming would be cut off after every batch. Ingest must notice the
first refusal (PUBACK 0x87), switch confirmations off and keep storing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pytest

from contract.influx import InfluxV1
from contract.schema import encode_message, make_message
from contract.settings import Settings
from ingest.config import IngestConfig
from ingest.service import IngestService
from machi.servers import Influxd
from machi.testkit import stored, wait_until

from .conftest import SecureBroker
from .probe import connect

pytestmark = pytest.mark.integration


def test_refused_confirmations_are_switched_off_and_storing_goes_on(
    secure_broker: SecureBroker,
    influxd: Influxd,
    influx: InfluxV1,
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sb, t = secure_broker, secure_broker.topics
    # The events account reads bus telemetry but may publish only alerts: no stored/#.
    s = dataclasses.replace(
        sb.settings("events"), influx_url=influxd.url, influx_db=settings.influx_db
    )
    cfg = IngestConfig(
        settings=s,
        client_id="ingest-noacl",
        dead_letter_file=tmp_path / "dl.jsonl",
        metrics_port=None,
        batch_s=0.2,
        open_mode=True,
    )
    caplog.set_level(logging.ERROR, logger="machi.ingest")
    svc = IngestService(cfg)
    svc.start()
    gw = connect(sb.settings("gw-1"))
    try:
        assert svc.wait_connected(10) and gw.ok
        t0 = time.time_ns() // 1_000_000
        for seq in range(20):
            r = {"t": t0 - 1000 + seq, "lat": 35.0, "lon": 138.0, "route_id": "R1"}
            msg = make_message("bus", "bus-1", "s1", seq, [r])
            assert gw.publish(t.telemetry("bus", "bus-1"), encode_message(msg)) == 0
            if seq == 4:
                wait_until(lambda: svc.confirmer.enabled, lambda on: not on, 15)
        assert wait_until(lambda: stored(influx, "bus"), lambda n: n >= 20, 20) == 20
        assert svc.wait_connected(10), "ingest must stay connected once confirmations are off"
        assert svc.counts["confirmations"] <= 1  # the one refused, then none
        assert "confirmations are OFF" in caplog.text and "stored/#" in caplog.text
    finally:
        gw.close()
        svc.stop()
