"""Ingest under fire: SIGKILLed five times mid-stream, InfluxDB stopped for 30 s."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from contract.influx import InfluxV1
from contract.settings import Settings
from machi.servers import Influxd, Mosquitto
from tests.faults.accounting import Ledger, assert_clean, settle
from tests.faults.harness import Stream, ingest

pytestmark = pytest.mark.faults


def test_ingest_sigkilled_five_times(
    settings: Settings, influx: InfluxV1, mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"kill schedule seed={seed}")
    ing = ingest(tmp_path, "ingest", mosquitto.url, influxd.url, settings)
    ing.start()
    ledger = Ledger()
    stream = Stream(settings, ledger, rounds=80, pause_s=0.1).start()
    for _ in range(5):
        time.sleep(rng.uniform(0.3, 1.5))
        ing.kill()  # SIGKILL: batches open, writes in flight, nothing acknowledged
        time.sleep(rng.uniform(0.0, 0.5))
        ing.start()  # same client id: the broker resumes the persistent session
    stream.join()
    assert ledger.readings == stream.expected
    assert_clean(settle("ingest SIGKILL x5", ledger, influx))
    ing.stop()


def test_influxdb_stopped_for_30s(
    settings: Settings, mosquitto: Mosquitto, own_influxd: Influxd, tmp_path: Path
) -> None:
    ing = ingest(tmp_path, "ingest", mosquitto.url, own_influxd.url, settings)
    ing.start()
    ledger = Ledger()
    stream = Stream(settings, ledger, rounds=90, pause_s=0.4).start()
    time.sleep(3)
    own_influxd.stop()
    time.sleep(30)
    assert ing.running, "ingest must ride out the outage, not exit"
    assert ing.metric("machi_ingest_write_retries_total") > 0, "the outage went unnoticed"
    own_influxd.start()
    stream.join()
    db = InfluxV1(own_influxd.url, settings.influx_db)
    assert_clean(settle("InfluxDB stopped 30 s", ledger, db, timeout=120))
    db.close()
    ing.stop()
