"""Shared pytest fixtures: real Mosquitto and InfluxDB on free loopback ports.

One broker and one influxd serve the whole session (each test gets its own topic
prefix and database, so tests cannot see each other's data). Tests that kill or restart
a server ask for the function-scoped ``own_mosquitto`` / ``own_influxd`` instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.influx import InfluxV1
from contract.settings import Settings
from machi.servers import Influxd, Mosquitto, Postgres


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as m:
        yield m


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    with Influxd(tmp_path_factory.mktemp("influxd")) as i:
        yield i


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    m = Mosquitto(tmp_path / "own-mosquitto")
    m.start()
    yield m
    m.kill()


@pytest.fixture
def own_influxd(tmp_path: Path) -> Iterator[Influxd]:
    i = Influxd(tmp_path / "own-influxd")
    i.start()
    yield i
    i.kill()


#: Fixtures that start or use a real server: a test that asks for one (directly or through
#: another fixture) is an integration test.
SERVER_FIXTURES = frozenset(
    {"mosquitto", "influxd", "own_mosquitto", "own_influxd", "settings", "influx", "postgres"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark server tests ``integration``, so ``pytest -m "not integration"`` is a fast loop."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SERVER_FIXTURES or item.get_closest_marker("faults"):
            item.add_marker(pytest.mark.integration)


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(mosquitto: Mosquitto, influxd: Influxd) -> Settings:
    """Settings pointing at the session servers, with a fresh prefix and database."""
    return Settings(
        mqtt_url=mosquitto.url,
        influx_url=influxd.url,
        influx_db=_unique("t_"),
        topic_prefix=_unique("t"),
    )


@pytest.fixture
def influx(settings: Settings) -> Iterator[InfluxV1]:
    client = InfluxV1(settings.influx_url, settings.influx_db)
    client.create_database()
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One PostgreSQL cluster for the session (Debian's postgresql), database ``machi``."""
    with Postgres(tmp_path_factory.mktemp("postgres")) as p:
        yield p
