"""A database on the session influxd holding the demo data, shared by the module."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from contract.influx import InfluxV1
from machi.servers import Influxd
from tests.dashboards.demo_data import Demo, demo


@pytest.fixture(scope="module")
def demo_db(influxd: Influxd) -> Iterator[tuple[InfluxV1, Demo]]:
    client = InfluxV1(influxd.url, f"dash_{uuid.uuid4().hex[:10]}")
    client.create_database()
    data = demo(int(time.time() * 1000))
    r = client.write_lines("\n".join(data.lines).encode())
    assert r.status_code == 204, r.text
    yield client, data
    client.close()
