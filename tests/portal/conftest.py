"""Fixtures of the portal tests: days of demo-city history in a real influxd, and the
real API app (TestClient with its lifespan, so the portal's refresher runs)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiConfig, KpiConfig
from api.quota import QuotaOptions
from contract.influx import InfluxV1
from contract.settings import Settings
from machi.democity.fleet import build_fleet
from machi.democity.history import write_history
from machi.simulate import Fleet, make_wearable
from portal.aggregates import TZ
from portal.options import PortalOptions
from portal.samples import SAMPLE_TARGETS as PORTAL_SAMPLE_TARGETS

PUBLIC = "public-key-0123456789"
OPERATOR = "operator-key-0123456789"
KEYS = f"{PUBLIC}:public,{OPERATOR}:operator"
SAMPLE_TARGETS = PORTAL_SAMPLE_TARGETS

#: Districts of the test city's care residents: 10 in each of three, 4 in minato.
SMALL_DISTRICT = "minato"


def city_fleet() -> Fleet:
    """The demo fleet (12 meters, 30 wearables in 3 districts, the GTFS buses) plus 4
    wearables in a district with too few residents to publish."""
    fleet = build_fleet(meters=12, wearables=30)
    rng = random.Random(11)
    for i in range(4):
        fleet.devices.append(make_wearable(rng, f"care-small-{i}", SMALL_DISTRICT))
    return fleet


def history_start(now: datetime) -> datetime:
    """Local midnight two days ago: two whole days and today so far."""
    local = now.astimezone(TZ).date() - timedelta(days=2)
    return datetime(local.year, local.month, local.day, tzinfo=TZ).astimezone(UTC)


@pytest.fixture
def city(influx: InfluxV1) -> InfluxV1:
    now = datetime.now(UTC)
    start = history_start(now)
    write_history(
        influx, city_fleet(), int(start.timestamp() * 1000), int(now.timestamp() * 1000) - 60_000
    )
    return influx


def portal_options(tmp_path: Path, db_url: str | None = None, **more: object) -> PortalOptions:
    values: dict[str, object] = {
        "feedback_db": db_url or f"sqlite:///{tmp_path / 'feedback.db'}",
        "portal_targets": SAMPLE_TARGETS,
        "portal_days": 3,
        "portal_weeks": 2,
        "feedback_min_fill_s": 0.3,
        "feedback_per_client": 5,
    }
    values.update(more)
    return PortalOptions(**values)  # type: ignore[arg-type]


def make_client(settings: Settings, tmp_path: Path, opts: PortalOptions) -> TestClient:
    cfg = ApiConfig(keys=KEYS, audit_log=tmp_path / "audit.jsonl", cache_ttl_s=0.0, refresh_s=0)
    # The cross-checks ask /v1/kpis for every published cell: no per-key rate limit here.
    quotas = QuotaOptions(rate_key=0, rate_client=0)
    return TestClient(create_app(settings, cfg, KpiConfig(), portal=opts, quotas=quotas))


def wait_ready(client: TestClient, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while client.app.state.api.portal.snapshot is None:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the portal computed no snapshot in time"
        time.sleep(0.2)


@pytest.fixture
def portal_client(settings: Settings, city: InfluxV1, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(settings, tmp_path, portal_options(tmp_path)) as c:
        wait_ready(c)
        yield c
