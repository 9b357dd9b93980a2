"""A database on the session influxd holding the demo data, shared by the module."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from api import rollups
from api.care_publish import publish_tile
from api.kpis import KpiEngine
from contract.influx import InfluxV1
from machi.servers import Influxd
from tests.dashboards.demo_data import Demo, demo


def ms(t: int) -> datetime:
    return datetime.fromtimestamp(t / 1000, UTC)


@pytest.fixture(scope="module")
def demo_db(influxd: Influxd) -> Iterator[tuple[InfluxV1, Demo]]:
    client = InfluxV1(influxd.url, f"dash_{uuid.uuid4().hex[:10]}")
    client.create_database()
    data = demo(int(time.time() * 1000))
    r = client.write_lines("\n".join(data.lines).encode())
    assert r.status_code == 204, r.text
    # The green panels read the API's rollups, as `machi api` keeps them.
    rollups.setup(client)
    rollups.run(client, ms(data.start_ms), ms(data.end_ms + 60_000))
    # The care panels read the API's published tiles, as its care publisher writes them
    # (here for the tile holding the demo data, complete or not).
    engine = KpiEngine(client)
    for t in {engine.policy.tile(ms(data.start_ms)), engine.policy.tile(ms(data.end_ms))}:
        publish_tile(engine, *t)
    yield client, data
    client.close()
