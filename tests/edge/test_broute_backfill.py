"""End to end: a simulated smart meter (pty) -> `machi edge run` -> Mosquitto ->
`machi ingest` -> InfluxDB. A 3-hour Wi-SUN outage is recovered from the meter's
half-hour history, and every half-hour is stored exactly once -- also after the edge
agent restarts and sends its backfill window again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract.influx import InfluxV1, quote_str
from contract.settings import Settings
from firmware_bridge.echonet_broute import frame as el
from firmware_bridge.echonet_broute.simulator import PASSWORD, RBID, BrouteSimulator
from machi.bench.edge import EdgeProcess
from machi.servers import Influxd, IngestProcess, Mosquitto
from tests.edge.helpers import wait_for

pytestmark = pytest.mark.integration
DEVICE = "meter-b-e2e"
HALF = el.HALF_HOUR_MS


def _doc(tmp: Path, mq: Mosquitto, prefix: str, sim: BrouteSimulator) -> dict[str, Any]:
    return {
        "agent": {"id": "edge-broute", "site": "kofu", "batch_s": 0.3, "status_interval_s": 0.5},
        "mqtt": {"url": mq.url, "topic_prefix": prefix},
        "outbox": {"path": str(tmp / "outbox.db"), "confirm_timeout_s": 3},
        "sources": [
            {
                "type": "echonet_broute",
                "device_id": DEVICE,
                "port": str(sim.path),
                "broute_id": RBID,
                "broute_password": PASSWORD,
                "interval_s": 0.2,
                "timeout_s": 0.5,
                "join_timeout_s": 2.0,
                "backfill_days": 1,
            }
        ],
    }


@pytest.fixture
def ingest(
    tmp_path: Path, own_mosquitto: Mosquitto, influxd: Influxd, settings: Settings
) -> Iterator[IngestProcess]:
    proc = IngestProcess(
        tmp_path / "ingest",
        own_mosquitto.url,
        influxd.url,
        settings.influx_db,
        settings.topic_prefix,
        extra_args=["--batch-seconds", "0.2"],
        open_mode=True,
    )
    proc.start()
    yield proc
    proc.kill()


def _stored(influx: InfluxV1) -> dict[int, dict[str, Any]]:
    rows = influx.rows(
        "SELECT fixed_import_kwh, fixed_export_kwh FROM energy_meter "
        f"WHERE device_id = {quote_str(DEVICE)} AND fixed_import_kwh >= 0"
    )
    return {r["time"]: r for r in rows}


def _count(influx: InfluxV1) -> int:
    series = influx.query(
        f"SELECT COUNT(fixed_import_kwh) FROM energy_meter WHERE device_id = {quote_str(DEVICE)}"
    )
    return int(series[0]["values"][0][1]) if series else 0


def test_three_hour_outage_backfilled_each_half_hour_stored_once(
    tmp_path: Path,
    own_mosquitto: Mosquitto,
    influxd: Influxd,
    settings: Settings,
    ingest: IngestProcess,
) -> None:
    influx = InfluxV1(influxd.url, settings.influx_db)
    influx.create_database()
    # The meter's clock starts 4 h back (readings stay inside the contract's 30 days),
    # 10 minutes after a boundary.
    now_ms = int(time.time() * 1000)
    b0 = now_ms - now_ms % HALF - 8 * HALF
    (tmp_path / "dev").mkdir()
    sim = BrouteSimulator(tmp_path / "dev", meter_time=(b0 + 600_000) / 1000).start()
    meter = sim.broute
    edge = EdgeProcess(tmp_path / "edge", _doc(tmp_path, own_mosquitto, settings.topic_prefix, sim))
    edge.start()
    try:
        first = list(range(b0 - 48 * HALF, b0 + 1, HALF))  # start backfill + the newest
        wait_for(lambda: set(_stored(influx)) >= set(first) or None, 60, "start backfill")
        meter.answer_gets = False  # Wi-SUN outage for 3 hours of meter time
        time.sleep(2.0)
        meter.meter_time = (b0 + 600_000) / 1000 + 3 * 3600
        meter.answer_gets = True
        every = list(range(b0 - 48 * HALF, b0 + 6 * HALF + 1, HALF))
        wait_for(lambda: set(_stored(influx)) >= set(every) or None, 60, "outage backfilled")
        edge.stop()
        # A restarted agent sends its whole window again: the same points, stored once.
        edge = EdgeProcess(
            tmp_path / "edge", _doc(tmp_path, own_mosquitto, settings.topic_prefix, sim)
        )
        edge.start()
        # 0xEC requests, 12 half-hours each: 4 at the first start, 1 for the outage's 5
        # missed half-hours, 4 again after the restart.
        ec = (el.GET, el.E_HISTORY2)
        wait_for(lambda: (meter.requests.count(ec) >= 9) or None, 60, "the restart's resend")
        time.sleep(3.0)  # its backfill batches reach InfluxDB
        edge.stop()
        time.sleep(1.0)
        stored = _stored(influx)
        assert sorted(stored) == every  # every half-hour of the outage, nothing else
        assert _count(influx) == len(every) == 55  # each exactly once
        for t, row in stored.items():
            truth = meter.fixed_truth(t)
            assert row["fixed_import_kwh"] == truth["fixed_import_kwh"]
            assert row["fixed_export_kwh"] == truth["fixed_export_kwh"]
        assert meter.requests.count(ec) == 9
    finally:
        edge.kill()
        sim.stop()
        influx.close()
